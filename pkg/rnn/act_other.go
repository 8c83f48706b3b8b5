//go:build !amd64

package rnn

func vecExp32(x []float32) int     { return 0 }
func vecSigmoid32(x []float32) int { return 0 }
func vecTanh32(x []float32) int    { return 0 }
