package optim_test

import (
	"fmt"

	"github.com/recur-ml/recur/pkg/rnn/optim"
)

func ExampleNew() {
	opt, err := optim.New[float64](optim.DefaultConfig("sgd"))
	if err != nil {
		panic(err)
	}
	params := []optim.Param[float64]{
		{Name: "rnn.weight_ih_l0", Shape: []int{2}, Value: []float64{1, 2}, Grad: []float64{0.5, -1}},
	}
	if err := opt.Step(params, 0.1); err != nil {
		panic(err)
	}
	fmt.Println(params[0].Value)
	// Output: [0.95 2.1]
}

func ExampleAdam_MarshalBinary() {
	params := []optim.Param[float32]{
		{Name: "rnn.weight_hh_l0", Value: []float32{1, -1}, Grad: []float32{0.1, 0.2}},
		{Name: "rnn.bias_hh_l0", Value: []float32{0}, Grad: []float32{1}, NoDecay: true},
	}
	opt, _ := optim.NewAdamW[float32](optim.DefaultAdamWConfig())
	_ = opt.Step(params, 1e-3)
	checkpoint, _ := opt.MarshalBinary()

	// Resume: a fresh optimizer, parameters in another order.
	resumed, _ := optim.NewAdamW[float32](optim.DefaultAdamWConfig())
	if err := resumed.UnmarshalBinary(checkpoint); err != nil {
		panic(err)
	}
	params[0], params[1] = params[1], params[0]
	fmt.Println(resumed.Steps(), resumed.Step(params, 1e-3))

	// A checkpoint of another kind is refused.
	sgd, _ := optim.NewSGD[float32](optim.DefaultSGDConfig())
	fmt.Println(sgd.UnmarshalBinary(checkpoint))
	// Output:
	// 1 <nil>
	// optim: optimizer kind mismatch: state was written by "adamw", this optimizer is "sgd"
}

func ExampleClipGlobalNorm() {
	params := []optim.Param[float32]{
		{Name: "a", Value: make([]float32, 2), Grad: []float32{3, 0}},
		{Name: "b", Value: make([]float32, 1), Grad: []float32{4}},
	}
	if err := optim.CheckFinite(params); err != nil {
		panic(err)
	}
	norm := optim.ClipGlobalNorm(params, 1)
	fmt.Printf("norm %.1f, clipped %.3f %.3f\n", norm, params[0].Grad, params[1].Grad)
	// Output: norm 5.0, clipped [0.600 0.000] [0.800]
}
