package schedule_test

import (
	"fmt"

	"github.com/recur-ml/recur/pkg/schedule"
)

// A warmup in front of cosine annealing, with the linear scaling rule: the
// lr was tuned at 2 workers and the run has 8.
func ExampleSchedule_LR() {
	cfg := schedule.DefaultConfig()
	cfg.Kind = schedule.KindCosine
	cfg.BaseLR = 0.025
	cfg.Warmup, cfg.WarmupStart = 4, 0.25
	cfg.TMax = 8
	cfg.ScaleByWorld, cfg.BaseWorld = true, 2
	s, err := schedule.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for step := 0; step <= 12; step += 2 {
		fmt.Printf("step %2d: %.4f\n", step, s.LR(step, 8))
	}
	fmt.Printf("world 4: %.4f\n", s.LR(4, 4))
	// Output:
	// step  0: 0.0250
	// step  2: 0.0625
	// step  4: 0.1000
	// step  6: 0.0854
	// step  8: 0.0500
	// step 10: 0.0146
	// step 12: 0.0000
	// world 4: 0.0500
}

// Reduce-on-plateau: the lr halves after two observations without
// improvement, and the state survives a restart.
func ExampleSchedule_Observe() {
	cfg := schedule.DefaultConfig()
	cfg.Kind, cfg.BaseLR = schedule.KindPlateau, 0.1
	cfg.Plateau.Factor, cfg.Plateau.Patience = 0.5, 1
	s, _ := schedule.New(cfg)
	for step, loss := range []float64{1.0, 0.8, 0.8, 0.8, 0.7} {
		reduced, err := s.Observe(step, loss)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("step %d loss %.1f reduced=%v lr=%.3f\n", step, loss, reduced, s.LR(step+1, 1))
	}
	state, _ := s.MarshalBinary()
	restarted, _ := schedule.New(cfg)
	if err := restarted.UnmarshalBinary(state); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("after restart lr=%.3f\n", restarted.LR(5, 1))
	// Output:
	// step 0 loss 1.0 reduced=false lr=0.100
	// step 1 loss 0.8 reduced=false lr=0.100
	// step 2 loss 0.8 reduced=false lr=0.100
	// step 3 loss 0.8 reduced=true lr=0.050
	// step 4 loss 0.7 reduced=false lr=0.050
	// after restart lr=0.050
}
