#include "textflag.h"

// Vectorised float32 activations, 8 lanes per iteration (AVX2). Each
// function works in place on n elements (n a positive multiple of 8) with
// the constant table c laid out as actConsts in act_amd64.go.

// EXP8 computes Y1 = exp(Y0) (Y0 is clamped in place); uses Y2-Y5.
#define EXP8 \
	VMAXPS  Y8, Y0, Y0 \
	VMINPS  Y9, Y0, Y0 \
	VMULPS  Y10, Y0, Y1 \
	VADDPS  Y11, Y1, Y1 \
	VSUBPS  Y11, Y1, Y2 \
	VMULPS  Y12, Y2, Y3 \
	VSUBPS  Y3, Y0, Y3 \
	VMULPS  Y13, Y2, Y4 \
	VSUBPS  Y4, Y3, Y3 \
	VBROADCASTSS 24(DX), Y4 \
	VMULPS  Y3, Y4, Y4 \
	VBROADCASTSS 28(DX), Y5 \
	VADDPS  Y5, Y4, Y4 \
	VMULPS  Y3, Y4, Y4 \
	VBROADCASTSS 32(DX), Y5 \
	VADDPS  Y5, Y4, Y4 \
	VMULPS  Y3, Y4, Y4 \
	VBROADCASTSS 36(DX), Y5 \
	VADDPS  Y5, Y4, Y4 \
	VMULPS  Y3, Y4, Y4 \
	VBROADCASTSS 40(DX), Y5 \
	VADDPS  Y5, Y4, Y4 \
	VMULPS  Y3, Y4, Y4 \
	VADDPS  Y15, Y4, Y4 \
	VMULPS  Y3, Y4, Y4 \
	VADDPS  Y15, Y4, Y4 \
	VPSUBD  Y14, Y1, Y1 \
	VPSLLD  $23, Y1, Y1 \
	VMULPS  Y1, Y4, Y1

#define LOADCONSTS \
	VBROADCASTSS 0(DX), Y8 \
	VBROADCASTSS 4(DX), Y9 \
	VBROADCASTSS 8(DX), Y10 \
	VBROADCASTSS 12(DX), Y11 \
	VBROADCASTSS 16(DX), Y12 \
	VBROADCASTSS 20(DX), Y13 \
	VBROADCASTSS 48(DX), Y14 \
	VBROADCASTSS 44(DX), Y15

// func expAVX2(x *float32, n int, c *[16]float32)
TEXT ·expAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ c+16(FP), DX
	LOADCONSTS
expLoop:
	VMOVUPS (SI), Y0
	EXP8
	VMOVUPS Y1, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  expLoop
	VZEROUPPER
	RET

// func sigmoidAVX2(x *float32, n int, c *[16]float32)
TEXT ·sigmoidAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ c+16(FP), DX
	LOADCONSTS
	VBROADCASTSS 52(DX), Y7
sigLoop:
	VMOVUPS (SI), Y0
	VMULPS  Y7, Y0, Y0
	EXP8
	VADDPS  Y15, Y1, Y1
	VDIVPS  Y1, Y15, Y2
	VMOVUPS Y2, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  sigLoop
	VZEROUPPER
	RET

// func tanhAVX2(x *float32, n int, c *[16]float32)
TEXT ·tanhAVX2(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ c+16(FP), DX
	LOADCONSTS
	VBROADCASTSS 56(DX), Y7
	VBROADCASTSS 60(DX), Y6
tanhLoop:
	VMOVUPS (SI), Y0
	VMULPS  Y7, Y0, Y0
	EXP8
	VADDPS  Y15, Y1, Y1
	VDIVPS  Y1, Y6, Y2
	VSUBPS  Y15, Y2, Y2
	VMOVUPS Y2, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  tanhLoop
	VZEROUPPER
	RET
