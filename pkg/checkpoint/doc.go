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
//
// # Damaged and missing files
//
// bbolt maps the file into memory and trusts it: a damaged page makes it
// panic, and a truncated file makes it touch memory past the file's end
// (SIGBUS or SIGSEGV). Open therefore checks the file's pages with plain
// reads before bbolt maps it (the meta pages, the page size, a file long
// enough for the pages the meta page counts, the freelist, and every page
// of the tree), and every use of bbolt turns a panic, and a memory fault
// (with runtime/debug.SetPanicOnFault), into a *FileDamagedError, which
// wraps ErrDamaged and names the file. No damage reaches the caller as a
// panic or a crash. A Store whose write transaction faulted refuses
// further use; reopening it recovers (see below).
//
// Save backs the store up, every Options.BackupEvery saves (default:
// every save), to BackupPath(path), path + ".bak": a consistent copy taken
// in a read transaction, checked, and renamed into place, so the backup
// always opens. When the store's file is damaged, missing, or holds no good
// checkpoint, Open uses the backup and says so in Store.Recovery, for the
// caller to log and count: a writer moves a damaged file aside, as
// path.damaged-TIME (nothing is deleted), and copies the backup into its
// place; a reader reads the backup. Latest and Best fall back to the backup
// too when the file faults under an open Store or all its checkpoints are
// damaged, and say so in Report.Recovery. To start a store afresh, remove
// both files.
//
// A store file deleted or replaced under an open Store (rm while training)
// would silently take the saves that follow, and the next Open would not
// see them. Save checks, before and after writing, that the path still
// names the open file and fails with ErrFileGone otherwise; CheckFile runs
// the same check. A caller that gets ErrFileGone closes the Store and opens
// it again: Open then restores the file from the backup, which, with the
// default BackupEvery, holds the last checkpoint saved.
package checkpoint
