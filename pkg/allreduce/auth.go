package allreduce

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"google.golang.org/grpc/metadata"
)

// Metadata keys of a Link stream.
const (
	mdGeneration = "recur-generation"
	mdFrom       = "recur-from"
	mdTo         = "recur-to"
	mdToken      = "recur-token"
)

// minSecretBytes is the shortest accepted cluster secret.
const minSecretBytes = 16

// linkToken is the HMAC-SHA256, under the cluster secret, of the link's
// identity. It proves the dialer knows the secret and binds the proof to
// one generation and one directed edge, so a token seen on the wire cannot
// open any other link.
func linkToken(secret []byte, gen uint64, from, to string) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "recur-ring-v1\x00%d\x00%s\x00%s", gen, from, to)
	return hex.EncodeToString(m.Sum(nil))
}

// helloMetadata is what the dialer attaches to a Link stream.
func helloMetadata(secret []byte, h LinkHello) metadata.MD {
	return metadata.Pairs(
		mdGeneration, strconv.FormatUint(h.Generation, 10),
		mdFrom, h.From.ID,
		mdTo, h.To.ID,
		mdToken, linkToken(secret, h.Generation, h.From.ID, h.To.ID),
	)
}

// parseHello reads a Link stream's metadata; ok reports whether the token
// verifies (compared in constant time).
func parseHello(secret []byte, md metadata.MD) (k linkKey, ok bool, err error) {
	get := func(key string) (string, error) {
		v := md.Get(key)
		if len(v) != 1 || len(v[0]) > 256 {
			return "", fmt.Errorf("%w: metadata %s missing or malformed", ErrProtocol, key)
		}
		return v[0], nil
	}
	var gen, token string
	if token, err = get(mdToken); err != nil {
		return k, false, err
	}
	if gen, err = get(mdGeneration); err != nil {
		return k, false, err
	}
	if k.from, err = get(mdFrom); err != nil {
		return k, false, err
	}
	if k.to, err = get(mdTo); err != nil {
		return k, false, err
	}
	if k.gen, err = strconv.ParseUint(gen, 10, 64); err != nil {
		return k, false, fmt.Errorf("%w: metadata %s: %w", ErrProtocol, mdGeneration, err)
	}
	want := linkToken(secret, k.gen, k.from, k.to)
	return k, hmac.Equal([]byte(token), []byte(want)), nil
}
