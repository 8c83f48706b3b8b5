// Package rnn implements recurrent layers (Elman RNN, LSTM, GRU) with
// backpropagation through time, in float32 for training and float64 for
// checking, with PyTorch-compatible weight layout.
package rnn
