package allreduce

import (
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestLinkTokenBindsGenerationAndEdge(t *testing.T) {
	h := LinkHello{Generation: 4, From: Member{ID: "a"}, To: Member{ID: "b"}}
	md := helloMetadata(testSecret, h)
	if k, ok, err := parseHello(testSecret, md); err != nil || !ok || k != (linkKey{4, "a", "b"}) {
		t.Fatalf("own token: %v %v %v", k, ok, err)
	}
	for _, tamper := range []func(metadata.MD){
		func(m metadata.MD) { m.Set(mdGeneration, "5") },
		func(m metadata.MD) { m.Set(mdFrom, "c") },
		func(m metadata.MD) { m.Set(mdTo, "a") },
	} {
		m := md.Copy()
		tamper(m)
		if _, ok, _ := parseHello(testSecret, m); ok {
			t.Fatalf("token accepted after tampering: %v", m)
		}
	}
	if _, ok, _ := parseHello([]byte("another-secret-of-16+"), md); ok {
		t.Fatal("token verified under another secret")
	}
}

// Stream metadata comes from anyone who can connect.
func FuzzParseHello(f *testing.F) {
	f.Add("1", "a", "b", linkToken(testSecret, 1, "a", "b"))
	f.Add("x", "", "", "")
	f.Fuzz(func(t *testing.T, gen, from, to, token string) {
		md := metadata.Pairs(mdGeneration, gen, mdFrom, from, mdTo, to, mdToken, token)
		k, ok, err := parseHello(testSecret, md)
		if ok && (err != nil || token != linkToken(testSecret, k.gen, k.from, k.to)) {
			t.Fatalf("accepted a token that is not the HMAC: %q", token)
		}
	})
}
