package rnn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// gemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices, with
// op(X) = X^T when the matching flag is set. It dispatches to blas32 or
// blas64, which use OpenBLAS when built with the "openblas" tag.
func gemm[F Float](tA, tB bool, m, n, k int, alpha F, a []F, lda int, b []F, ldb int, beta F, c []F, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	if k == 0 {
		// BLAS leaves C untouched for k == 0 only when beta == 1; scale by hand.
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if is32[F]() {
		blas32.Implementation().Sgemm(ta, tb, m, n, k, float32(alpha), as32(a), lda, as32(b), ldb, float32(beta), as32(c), ldc)
		return
	}
	blas64.Implementation().Dgemm(ta, tb, m, n, k, float64(alpha), as64(a), lda, as64(b), ldb, float64(beta), as64(c), ldc)
}

// addRowVec adds v to every row of the rows x len(v) matrix m.
func addRowVec[F Float](m []F, rows int, v []F) {
	n := len(v)
	for r := 0; r < rows; r++ {
		row := m[r*n : r*n+n]
		for j, x := range v {
			row[j] += x
		}
	}
}

// fillRows sets every row of the rows x len(v) matrix m to v.
func fillRows[F Float](m []F, rows int, v []F) {
	n := len(v)
	for r := 0; r < rows; r++ {
		copy(m[r*n:r*n+n], v)
	}
}

// addColSums adds the column sums of the rows x len(dst) matrix m to dst.
func addColSums[F Float](dst, m []F, rows int) {
	n := len(dst)
	for r := 0; r < rows; r++ {
		row := m[r*n : r*n+n]
		for j, x := range row {
			dst[j] += x
		}
	}
}
