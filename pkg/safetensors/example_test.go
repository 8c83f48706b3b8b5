package safetensors_test

import (
	"bytes"
	"fmt"

	"github.com/recur-ml/recur/pkg/safetensors"
)

func Example() {
	f := &safetensors.File{
		Metadata: map[string]string{"format": "pt"},
		Tensors: map[string]safetensors.Tensor{
			"rnn.weight_ih_l0": safetensors.FromFloat32([]int{2, 2}, []float32{1, 2, 3, 4}),
			"rnn.bias_ih_l0":   safetensors.FromFloat32([]int{2}, []float32{0.5, -0.5}),
		},
	}
	var buf bytes.Buffer
	if err := safetensors.Write(&buf, f); err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes, header %s\n", buf.Len(), bytes.TrimSpace(buf.Bytes()[8:buf.Len()-24]))

	back, err := safetensors.Read(&buf)
	if err != nil {
		panic(err)
	}
	w := back.Tensors["rnn.weight_ih_l0"]
	vals, _ := w.Float32s()
	fmt.Println(w.DType, w.Shape, vals, back.Metadata["format"])
	// Output:
	// 208 bytes, header {"__metadata__":{"format":"pt"},"rnn.bias_ih_l0":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"rnn.weight_ih_l0":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]}}
	// F32 [2 2] [1 2 3 4] pt
}

func ExampleRead_errors() {
	// A header whose offsets disagree with the shape.
	header := `{"rnn.weight_ih_l0":{"dtype":"F32","shape":[512,128],"data_offsets":[0,1000]}}`
	data := append([]byte{byte(len(header)), 0, 0, 0, 0, 0, 0, 0}, header...)
	_, err := safetensors.Read(bytes.NewReader(append(data, make([]byte, 1000)...)))
	fmt.Println(err)
	// Output: safetensors: tensor "rnn.weight_ih_l0": shape [512 128] needs 262144 bytes, data_offsets give 1000
}
