// Package shard turns training data into batches for data-parallel RNN
// training: readers for text corpora, CSV time series, IDX image files
// (MNIST, Fashion-MNIST) and JSONL sequences; length bucketing; a global
// batch order that depends on (seed, epoch) and never on the number of
// workers; and a cursor that resumes exactly, with any number of workers.
//
// # Batches
//
// A Batch is laid out time-major, as pkg/rnn consumes it: token inputs
// Tokens[t*B+b], feature inputs X[(t*B+b)*Dim+i]. Shorter rows are padded
// with zeros and their true lengths are in Lengths (Mask builds the [T][B]
// mask).
//
// # Sharding
//
// A Sampler orders the examples of epoch e from splitmix64 seeded by
// (Seed, e): it shuffles each length bucket, cuts it into global batches of
// BatchSize, then shuffles the batches. Rank r of W workers takes the
// contiguous slice Span(n, r, W) of each global batch, so the global batches
// are the same for 1, 2 or 4 workers, every example is seen exactly once per
// epoch (KeepLast) and slices may differ by one row: Batch.RankSizes and
// GlobalB let the trainer weight gradients by example count.
//
// # Streams
//
// For language models on one long corpus, Streams cuts the tokens into B
// contiguous segments read window by window (truncated BPTT, as char-rnn).
// Each row carries its stream id, so hidden state kept per stream id follows
// the stream when W changes, and a Reset flag at the start of every epoch.
//
// # Cursor
//
// Loader and Streams implement Source; their Cursor (epoch, next global
// batch, and the offset of every stream) marshals to a versioned,
// CRC-32C-checked binary form for checkpoints.
//
// Pure logic (Sampler, Span, bucketing, Streams over Tokens, Cursor) does no
// I/O; the readers sit at the edge and report bad input as *InputError with
// file:line.
package shard
