// Package rnn implements recurrent networks — Elman RNN (tanh, ReLU), LSTM
// and GRU — with backpropagation through time, in float32 for training and
// float64 for checking. It is usable on its own, without the cluster.
//
// # Compatibility with PyTorch
//
// Equations, gate order (LSTM i,f,g,o; GRU r,z,n with b_hn inside the reset
// product), parameter shapes and default initialisation are those of
// PyTorch's nn.RNN, nn.LSTM and nn.GRU. Parameter names are PyTorch
// state_dict names ("rnn.weight_ih_l0", "rnn.bias_hh_l1_reverse",
// "embedding.weight", "head.weight"), and Model.StateDict/LoadStateDict read
// and write safetensors files, so weights move between Recur and PyTorch
// both ways. The tests check outputs, final states and every gradient
// against fixtures made by PyTorch (testdata/gen_fixtures.py).
//
// # Layout
//
// Tensors are flat slices, time-major: the input of sequence b at step t is
// x[(t*B+b)*In : (t*B+b+1)*In]. States are [Layers*Dirs, B, Hidden] as
// PyTorch's h_n and c_n. All parameters of a Model live in one vector
// (Params.Value) with one gradient vector of the same layout (Params.Grad),
// so an optimizer, gradient clipping and a ring allreduce each work on a
// single slice.
//
// # Variable lengths
//
// Batch.Lengths gives each sequence's valid steps. At a padded step the
// state is carried unchanged, the output is zero and no gradient flows, so
// the final state is the state after the last valid step (what PyTorch's
// packed sequences give).
//
// # Truncated BPTT
//
// For a long stream (a character corpus), train on windows of T steps and
// pass each window's final state (Result.Final, cloned) as the next window's
// initial state: the forward pass sees the whole history, the gradient
// stops at the window boundary (k1 = k2 = T). Choose T as long as the
// dependencies you want the gradient to teach, within memory: activations
// grow linearly in T*B. Character models commonly use T = 50..200; if the
// loss plateaus while a longer context would help, raise T; if a step is too
// slow or memory-bound, lower T and raise B. Reset a stream's state when it
// restarts (pkg/shard marks those rows).
//
// # Speed
//
// Each layer computes the input projection of all T steps in one GEMM, one
// GEMM per step for the recurrence, and every weight gradient over all steps
// in one GEMM; gate arithmetic is one fused loop per step with AVX2
// activations; buffers live in a Tape and are reused, so the time loop does
// not allocate. For token inputs the embedding table is projected once
// (vocab rows instead of T*B rows). A Trainer may split each batch over
// goroutines, each running the whole window on its share of sequences with
// its own gradient buffer, then sums the gradients: no synchronisation
// inside the time loop. Trainer.ComputeReady sums each layer's gradients
// as soon as every goroutine has finished that layer and tells the caller,
// which may then reduce them across workers while backward goes on. Build with the tag "openblas" (cgo, Debian's
// libopenblas-dev) to use OpenBLAS; plain builds use gonum's pure-Go BLAS.
package rnn
