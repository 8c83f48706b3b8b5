package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Checkpoint is the state of a run at the end of a step.
type Checkpoint struct {
	// Step is the number of optimizer steps taken; it keys the store.
	Step uint64
	// Params are the model parameters' bytes.
	Params []byte
	// Optimizer is the optimizer state's bytes.
	Optimizer []byte
	// Schedule is the learning-rate schedule's state (a plateau
	// schedule's reductions; schedule.Schedule.MarshalBinary). Records
	// written before it existed held an unused random-generator blob
	// here, always empty.
	Schedule []byte
	// Hidden is the TBPTT hidden state carried into the next window.
	Hidden []byte
	// ConfigHash identifies the configuration of the run (see HashConfig).
	ConfigHash string
	// Metrics of the step, such as "train_loss" and "val_loss". Values
	// must be finite.
	Metrics map[string]float64
	// WallTime is when the checkpoint was taken; Store.Save fills it in
	// when it is zero. It is stored to the nanosecond and read back in UTC.
	WallTime time.Time
}

// CheckConfig returns nil when the checkpoint was written under the
// configuration with hash current, and a *ConfigMismatchError naming the
// step and both hashes otherwise.
func (c *Checkpoint) CheckConfig(current string) error {
	if c.ConfigHash == current {
		return nil
	}
	return &ConfigMismatchError{Step: c.Step, Stored: c.ConfigHash, Current: current}
}

// HashConfig returns "sha256:" and the hex SHA-256 of v's canonical JSON:
// v marshaled by encoding/json, then every object's keys sorted and no
// spaces, so that a struct and a map with the same fields and values hash
// alike. It fails when v does not marshal (a channel, a NaN float).
func HashConfig(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("checkpoint: hash config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers exactly as written
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return "", fmt.Errorf("checkpoint: hash config: %w", err)
	}
	canon, err := json.Marshal(generic) // maps marshal with sorted keys
	if err != nil {
		return "", fmt.Errorf("checkpoint: hash config: %w", err)
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
