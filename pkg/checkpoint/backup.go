package checkpoint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BackupPath returns the backup file of the store at path: path + ".bak".
func BackupPath(path string) string { return path + ".bak" }

// BackupInfo describes a Store's backups since Open.
type BackupInfo struct {
	Path string    // the backup file, BackupPath(Store.Path())
	Step uint64    // the newest checkpoint of the last backup written
	Time time.Time // when that backup was written; zero when none was
	Err  error     // why the last attempt failed; nil after a success
}

// LastBackup reports the Store's last backup and whether the last attempt
// failed, for the caller to log after a Save: Save does not fail when its
// backup does.
func (s *Store) LastBackup() BackupInfo {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	b := s.last
	b.Path = BackupPath(s.path)
	return b
}

// Backup writes a consistent copy of the store, as of one moment, to
// BackupPath(Path()), replacing the previous backup atomically: the copy
// goes to a temporary file, is synced and checked as Open would read it,
// and is renamed into place only when its newest checkpoint is good, so a
// damaged store never replaces a good backup. Readers and Save run beside
// it. Save calls it every Options.BackupEvery saves.
func (s *Store) Backup(ctx context.Context) error {
	if err := s.begin(ctx, "backup"); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return fmt.Errorf("checkpoint: backup %s: %w", s.file, ErrReadOnly)
	}
	step, err := s.backup()
	if err != nil {
		err = fmt.Errorf("checkpoint: backup %s to %s: %w", s.file, BackupPath(s.path), err)
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.last.Err = err
	if err == nil {
		s.last.Step, s.last.Time = step, time.Now()
	}
	return err
}

// backup writes the backup and returns the step of its newest checkpoint.
func (s *Store) backup() (uint64, error) {
	s.backupMu.Lock() // backups rename in the order of their snapshots
	defer s.backupMu.Unlock()
	dst := BackupPath(s.path)
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	err = s.view(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp) // reads through bbolt's file, not the mapping
		return err
	})
	if err == nil {
		err = tmp.Chmod(s.opts.Mode)
	}
	if err == nil && !s.opts.NoSync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	step, err := checkBackup(s.path, tmp.Name(), s.opts)
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	return step, syncDir(filepath.Dir(dst), s.opts)
}

// checkBackup opens the copy file of the store at path as a reader would
// and returns the step of its newest checkpoint, which must be good.
func checkBackup(path, file string, opts Options) (uint64, error) {
	opts.ReadOnly = true
	b, _, err := openFile(path, file, opts)
	if err != nil {
		return 0, fmt.Errorf("the copy does not open: %w", err)
	}
	defer closeQuietly(b)
	step, rep, err := b.probe()
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %w", ErrNoBackup, err)
	case len(rep.Skipped) > 0:
		return 0, fmt.Errorf("%w: the store's newest checkpoint is damaged: %w", ErrNoBackup, rep.Skipped[0].Err)
	}
	return step, nil
}
