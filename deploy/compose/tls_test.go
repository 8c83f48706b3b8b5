package compose_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/recur-ml/recur/deploy/internal/recurflags"
	"github.com/recur-ml/recur/internal/cluster"
)

// docker-compose.tls.yml repeats the base commands with the three TLS
// flags added, and mounts the certificates read-only where they point.
func TestComposeTLSOverride(t *testing.T) {
	base := load(t)
	b, err := os.ReadFile("docker-compose.tls.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]*service `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"coordinator", "worker"} {
		s := f.Services[name]
		if s == nil {
			t.Fatalf("no service %s in the override", name)
		}
		var extra []string
		for _, a := range s.Command {
			if !slices.Contains(base[name].Command, a) {
				extra = append(extra, a)
			}
		}
		want := []string{"--tls-cert=/certs/" + name + ".crt", "--tls-key=/certs/" + name + ".key", "--tls-ca=/certs/ca.crt"}
		if !slices.Equal(extra, want) || len(s.Command) != len(base[name].Command)+3 {
			t.Errorf("service %s: the override adds %v to the base command, want exactly %v", name, extra, want)
		}
		known, err := recurflags.Flags(name)
		if err != nil {
			t.Fatal(err)
		}
		args, err := recurflags.Parse(s.Command[1:], nil)
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		for _, a := range args {
			if !known[a.Name] {
				t.Errorf("service %s: `recur %s` has no flag --%s", name, name, a.Name)
			}
		}
		if src, _, ro, ok := mount(s, "/certs/ca.crt"); !ok || !ro || src != "./certs" {
			t.Errorf("service %s: the certificates are not mounted read-only from ./certs: %v", name, s.Volumes)
		}
	}
}

// make-certs.sh writes certificates that Recur's mutual TLS accepts: the
// coordinator's and a worker's authenticate each other.
func TestMakeCertsWorksWithRecur(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	for _, f := range []string{"make-certs.sh"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o755)
	}
	if out, err := exec.Command("bash", filepath.Join(dir, "make-certs.sh")).CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	certs := filepath.Join(dir, "certs")
	sec := func(name string) *cluster.Security {
		s, err := cluster.NewSecurity(cluster.SecurityConfig{Secret: []byte("test-cluster-key-0123456789"),
			CertFile: filepath.Join(certs, name+".crt"), KeyFile: filepath.Join(certs, name+".key"), CAFile: filepath.Join(certs, "ca.crt")})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	coord, worker := sec("coordinator"), sec("worker")
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := coord.HandshakeServer(ctx, a)
		done <- err
	}()
	if _, err := worker.HandshakeClient(ctx, b); err != nil {
		t.Fatalf("worker: %v", err)
	}
	if err := <-done; err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("coordinator: %v", err)
	}
}
