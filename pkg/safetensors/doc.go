// Package safetensors reads and writes the safetensors tensor file format
// of Hugging Face (https://github.com/huggingface/safetensors), in which
// Recur exchanges model weights with PyTorch.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// describing each tensor (dtype, shape, and the [begin, end) byte range of
// its data), and then the data buffer. Read enforces the rules of the
// reference implementation — a header of at most 100 MB, valid UTF-8 JSON
// with no duplicate names, known dtypes, sizes that agree with shapes, and
// tensors that tile the buffer exactly — and reports the first violation as a
// *FormatError naming the tensor and field. It never panics on bad input.
//
// Write produces deterministic bytes: tensors ordered by decreasing element
// size and then by name (as the reference implementation orders them, so
// every tensor's data is aligned to its element size), metadata keys
// sorted, compact JSON, and the header padded with spaces to a multiple of
// 8 bytes.
package safetensors
