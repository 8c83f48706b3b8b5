package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
)

// Keygen runs `recur keygen`: a new random cluster key, 32 bytes in hex.
func Keygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", stderr, "",
		"Prints a new random cluster key (32 bytes, hex). Give the same key to the coordinator,\n"+
			"every worker and recur status, in RECUR_CLUSTER_KEY or a --key-file:\n\n"+
			"  export RECUR_CLUSTER_KEY=$(recur keygen)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: keygen takes no arguments, got %q", errUsage, fs.Arg(0))
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand since Go 1.24)
	_, err := fmt.Fprintln(stdout, hex.EncodeToString(b))
	return err
}
