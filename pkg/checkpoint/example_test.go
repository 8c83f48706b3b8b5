package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/recur-ml/recur/pkg/checkpoint"
)

// A coordinator saves a checkpoint per validation and, on restart, resumes
// from the newest good one after checking the configuration.
func Example() {
	dir, err := os.MkdirTemp("", "ckpt")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg := map[string]any{"hidden": 128, "lr": 0.001}
	hash, _ := checkpoint.HashConfig(cfg)

	store, err := checkpoint.Open(filepath.Join(dir, "run.db"), checkpoint.Options{Keep: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()

	if _, _, err := store.Latest(ctx); errors.Is(err, checkpoint.ErrNoCheckpoint) {
		fmt.Println("fresh start")
	}
	losses := []float64{2.0, 1.5, 1.7, 1.6}
	for i, loss := range losses {
		step := uint64(i+1) * 100
		c := &checkpoint.Checkpoint{
			Step: step, ConfigHash: hash, Params: []byte("weights"),
			Metrics: map[string]float64{"val_loss": loss},
		}
		if err := store.Save(ctx, c); err != nil {
			fmt.Println(err)
			return
		}
	}

	infos, _ := store.List(ctx)
	for _, in := range infos {
		fmt.Printf("step %d val_loss %.1f ok=%v best=%v\n", in.Step, in.Metrics["val_loss"], in.OK, in.Best)
	}
	latest, report, err := store.Latest(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if len(report.Skipped) > 0 {
		fmt.Println(report)
	}
	fmt.Println("resume at step", latest.Step, "config ok:", latest.CheckConfig(hash) == nil)
	// Output:
	// fresh start
	// step 200 val_loss 1.5 ok=true best=true
	// step 300 val_loss 1.7 ok=true best=false
	// step 400 val_loss 1.6 ok=true best=false
	// resume at step 400 config ok: true
}

// A store file truncated on disk (or deleted) is restored from the backup
// Save keeps beside it, and Open says so for the log. A file deleted under
// a running store makes Save fail rather than write into the void.
func Example_recovery() {
	dir, err := os.MkdirTemp("", "ckpt")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "run.db")

	store, err := checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, step := range []uint64{100, 200} {
		c := &checkpoint.Checkpoint{Step: step, Params: make([]byte, 50_000)}
		if err := store.Save(ctx, c); err != nil {
			fmt.Println(err)
			return
		}
	}
	store.Close()

	os.Truncate(path, 8<<10) // the disk lost the file's tail
	store, err = checkpoint.Open(path, checkpoint.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if rec := store.Recovery(); rec != nil { // log rec.String() and count it
		fmt.Println("damaged:", errors.Is(rec.Reason, checkpoint.ErrDamaged), "restored:", rec.Restored,
			"step:", rec.Step, "damaged file kept:", rec.MovedTo != "")
	}
	latest, _, _ := store.Latest(ctx)
	fmt.Println("resume at step", latest.Step)

	os.Remove(path) // an operator cleans up the wrong file
	err = store.Save(ctx, &checkpoint.Checkpoint{Step: 300})
	fmt.Println("save into a deleted file fails:", errors.Is(err, checkpoint.ErrFileGone))
	store.Close()
	store, _ = checkpoint.Open(path, checkpoint.Options{}) // restores step 200 again
	defer store.Close()
	latest, _, _ = store.Latest(ctx)
	fmt.Println("after reopening: step", latest.Step, "from backup:", store.Recovery() != nil)
	// Output:
	// damaged: true restored: true step: 200 damaged file kept: true
	// resume at step 200
	// save into a deleted file fails: true
	// after reopening: step 200 from backup: true
}
