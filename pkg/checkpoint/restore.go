package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Recovery reports that a store came from its backup because its own file
// could not be used, for the caller to log and count.
type Recovery struct {
	// Reason says why the store's file was not used: an error wrapping
	// ErrDamaged (the file, or every checkpoint in it, is damaged),
	// ErrNoCheckpoint (it holds none) or fs.ErrNotExist.
	Reason error
	// Backup is the backup file.
	Backup string
	// Step is the step of the backup's newest good checkpoint (for a
	// read that fell back: of the checkpoint it returned).
	Step uint64
	// Restored is true when Open, as a writer, copied the backup into the
	// store's place; false when the backup is only read.
	Restored bool
	// MovedTo is where Open moved the damaged file; "" when it held no
	// checkpoint to keep, or the backup is only read.
	MovedTo string
}

// String is a line for the log: the reason, the backup and its step, and
// where the damaged file is kept.
func (r *Recovery) String() string {
	verb := "reading"
	if r.Restored {
		verb = "restored the store from"
	}
	s := fmt.Sprintf("store file unusable: %v; %s backup %s (step %d)", r.Reason, verb, r.Backup, r.Step)
	if r.MovedTo != "" {
		s += "; the damaged file is kept as " + r.MovedTo
	}
	return s
}

// errChanged reports a store file replaced while Open restored it.
var errChanged = errors.New("the file changed while Open restored it")

// restore replaces the store file at path, which Open found unusable as
// the file judged, by a copy of the backup bak, under the file's lock.
// With keep, it first moves the file aside, to a name that says when, and
// returns that name.
func restore(path string, judged os.FileInfo, bak string, keep bool, opts Options) (moved string, err error) {
	opts.ReadOnly = false
	f, fi, err := openLocked(path, opts)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if judged == nil || !os.SameFile(fi, judged) {
		return "", errChanged
	}
	tmp, err := copyToTemp(bak, path, opts)
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp) // after the rename, there is nothing to remove
	if keep {
		moved = path + ".damaged-" + time.Now().UTC().Format("20060102T150405.000000000Z")
		if err := os.Rename(path, moved); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return moved, err
	}
	return moved, syncDir(filepath.Dir(path), opts)
}

// removeTemps removes the temporary files that a writer killed during a
// backup or a restore left beside the store at path. The caller holds the
// store's lock: no other writer is writing them.
func removeTemps(path string) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefixes := []string{"." + filepath.Base(path) + ".tmp", "." + filepath.Base(BackupPath(path)) + ".tmp"}
	for _, e := range entries {
		for _, p := range prefixes {
			if strings.HasPrefix(e.Name(), p) && e.Type().IsRegular() {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// copyToTemp copies src to a new file beside dst and returns its name.
func copyToTemp(src, dst string, opts Options) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chmod(opts.Mode)
	}
	if err == nil && !opts.NoSync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string, opts Options) error {
	if opts.NoSync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
