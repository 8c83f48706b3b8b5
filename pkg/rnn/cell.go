package rnn

import (
	"fmt"
	"strings"
)

// Cell selects the recurrent cell. Equations and gate order follow PyTorch's
// nn.RNN, nn.LSTM and nn.GRU so that weights can be exchanged:
//
//	RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or ReLU
//	LSTM: i,f,g,o = σ,σ,tanh,σ(W_ih x + b_ih + W_hh h + b_hh)  (blocks in that order)
//	      c' = f*c + i*g,  h' = o*tanh(c')
//	GRU:  r,z = σ(W_ir x + b_ir + W_hr h + b_hr), σ(...)
//	      n = tanh(W_in x + b_in + r*(W_hn h + b_hn)),  h' = (1-z)*n + z*h
type Cell int

const (
	// RNNTanh is the Elman RNN with tanh (PyTorch nonlinearity='tanh').
	RNNTanh Cell = iota
	// RNNReLU is the Elman RNN with ReLU (PyTorch nonlinearity='relu').
	RNNReLU
	// LSTM is the long short-term memory cell.
	LSTM
	// GRU is the gated recurrent unit.
	GRU
)

// gates returns the number of gate blocks G (weight_ih has G*H rows).
func (c Cell) gates() int {
	switch c {
	case LSTM:
		return 4
	case GRU:
		return 3
	default:
		return 1
	}
}

// String returns the cell's configuration name.
func (c Cell) String() string {
	switch c {
	case RNNTanh:
		return "rnn_tanh"
	case RNNReLU:
		return "rnn_relu"
	case LSTM:
		return "lstm"
	case GRU:
		return "gru"
	}
	return fmt.Sprintf("Cell(%d)", int(c))
}

// ParseCell parses "lstm", "gru", "rnn" (tanh), "rnn_tanh" or "rnn_relu".
func ParseCell(s string) (Cell, error) {
	switch strings.ToLower(s) {
	case "lstm":
		return LSTM, nil
	case "gru":
		return GRU, nil
	case "rnn", "rnn_tanh", "tanh":
		return RNNTanh, nil
	case "rnn_relu", "relu":
		return RNNReLU, nil
	}
	return 0, fmt.Errorf("rnn: unknown cell %q (want lstm, gru, rnn_tanh or rnn_relu)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (c Cell) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Cell) UnmarshalText(b []byte) error {
	v, err := ParseCell(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
