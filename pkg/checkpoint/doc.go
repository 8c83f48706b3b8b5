// Package checkpoint stores training checkpoints in a bbolt file, keeps the
// last few and the best, and detects damaged ones.
//
// A Checkpoint holds everything a coordinator needs to resume a run at a
// step: model parameters, optimizer state, the learning-rate schedule's
// state, carried TBPTT hidden state, a hash of the configuration and the
// metrics of the step (the step alone determines the data position). MarshalBinary encodes it as a versioned binary record (magic
// "RCKP", a version byte, then fixed fields and length-prefixed fields);
// UnmarshalBinary decodes it defensively, checking every length against the
// bytes that remain, and never panics on bad input.
//
// A Store writes each checkpoint in one bbolt transaction: the record, its
// CRC-32C stored beside it, and the pruning of checkpoints beyond the last
// Options.Keep, except the best (lowest "val_loss" by default). Either all of
// it is on disk or none. Reading verifies the checksum and the record:
// Latest returns the newest good checkpoint and reports, in a Report, every
// newer one it had to skip as damaged, so a coordinator can log that it fell
// back rather than resume silently from an older step.
//
// The store holds one timeline. Saving step s discards the checkpoints after
// s: they belong to the run the caller abandoned by resuming from an earlier
// checkpoint, and Latest must not return them after the next restart.
//
// bbolt locks the file: a second Open of the same file, in this process or
// another, waits Options.Timeout and then fails with ErrLocked.
package checkpoint
