// Package compose_test checks docker-compose.yml against the recur
// binary's flags and against itself: commands, mounts, ports, health
// checks. scripts/cluster_test.sh runs the cluster for real.
package compose_test

import (
	"net"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/recur-ml/recur/deploy/internal/recurflags"
	"github.com/recur-ml/recur/internal/job"
)

func TestMain(m *testing.M) {
	code := m.Run()
	recurflags.Cleanup()
	os.Exit(code)
}

type service struct {
	Hostname    string   `yaml:"hostname"`
	Command     []string `yaml:"command"`
	Volumes     []string `yaml:"volumes"`
	Ports       []string `yaml:"ports"`
	EnvFile     string   `yaml:"env_file"`
	Restart     string   `yaml:"restart"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	flags map[string]string
}

func load(t *testing.T) map[string]*service {
	t.Helper()
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]*service `yaml:"services"`
		Volumes  map[string]any      `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"coordinator", "worker"} {
		s := f.Services[name]
		if s == nil {
			t.Fatalf("no service %s", name)
		}
		if len(s.Command) == 0 || s.Command[0] != name {
			t.Fatalf("service %s runs %v, want `recur %s`", name, s.Command, name)
		}
		known, err := recurflags.Flags(name)
		if err != nil {
			t.Fatal(err)
		}
		args, err := recurflags.Parse(s.Command[1:], map[string]bool{"fresh": true})
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		s.flags = map[string]string{}
		for _, a := range args {
			if !known[a.Name] {
				t.Errorf("service %s: `recur %s` has no flag --%s", name, name, a.Name)
			}
			s.flags[a.Name] = a.Value
		}
		if s.EnvFile == "" || s.Restart == "" || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s: wants env_file (the key), restart and healthcheck", name)
		}
	}
	if _, ok := f.Volumes["run"]; !ok {
		t.Errorf("no named volume run")
	}
	return f.Services
}

func port(t *testing.T, s *service, flag string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(s.flags[flag])
	if err != nil {
		t.Fatalf("--%s=%q: %v", flag, s.flags[flag], err)
	}
	return h, p
}

// mount returns the volume entry (source:target[:mode]) whose target holds file.
func mount(s *service, file string) (source, target string, readOnly, ok bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		// ${VAR:?message}:target:ro splits inside the variable: rejoin.
		for len(parts) > 2 && strings.HasPrefix(parts[0], "${") && !strings.Contains(parts[0], "}") {
			parts = append([]string{parts[0] + ":" + parts[1]}, parts[2:]...)
		}
		if len(parts) < 2 {
			continue
		}
		if file == parts[1] || strings.HasPrefix(file, strings.TrimSuffix(parts[1], "/")+"/") {
			return parts[0], parts[1], len(parts) > 2 && parts[2] == "ro", true
		}
	}
	return "", "", false, false
}

func TestCompose(t *testing.T) {
	s := load(t)
	c, w := s["coordinator"], s["worker"]

	// Checkpoints on the named volume, the job file mounted read-only.
	if src, _, _, ok := mount(c, c.flags["dir"]); !ok || src != "run" {
		t.Errorf("coordinator --dir=%s is not on the named volume run", c.flags["dir"])
	}
	src, target, ro, ok := mount(c, c.flags["config"])
	if !ok || !ro || target != c.flags["config"] {
		t.Fatalf("coordinator --config=%s is not a read-only file mount", c.flags["config"])
	}
	jc, err := job.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := jc.Validate(); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	for name, svc := range s {
		if _, _, ro, ok := mount(svc, jc.Data.Text); !ok || !ro {
			t.Errorf("service %s: data.text %s is not mounted read-only", name, jc.Data.Text)
		}
	}

	// Metrics published on loopback only, and probed by the health check.
	_, metrics := port(t, c, "metrics")
	if len(c.Ports) != 1 || !strings.HasPrefix(c.Ports[0], "127.0.0.1:") || !strings.HasSuffix(c.Ports[0], ":"+metrics) {
		t.Errorf("coordinator ports %v: want 127.0.0.1:HOSTPORT:%s only", c.Ports, metrics)
	}
	if hc := strings.Join(c.Healthcheck.Test, " "); !strings.Contains(hc, ":"+metrics+"/healthz") {
		t.Errorf("coordinator healthcheck %q does not probe /healthz on --metrics port %s", hc, metrics)
	}
	if _, ring := port(t, w, "ring-listen"); !strings.Contains(strings.Join(w.Healthcheck.Test, " "), ":"+ring) {
		t.Errorf("worker healthcheck %v does not probe the ring port %s", w.Healthcheck.Test, ring)
	}

	// Workers reach the coordinator by its host name, on its ports.
	for wf, cf := range map[string]string{"coordinator": "listen", "gossip": "gossip"} {
		host, p := port(t, w, wf)
		_, want := port(t, c, cf)
		if (host != "coordinator" && host != c.Hostname) || p != want {
			t.Errorf("worker --%s=%s does not reach the coordinator's --%s=%s", wf, w.flags[wf], cf, c.flags[cf])
		}
	}
	// The coordinator listens on its own host name (an address workers can
	// dial back for checkpoint state), not 0.0.0.0 or loopback.
	if h, _ := port(t, c, "listen"); h != c.Hostname {
		t.Errorf("coordinator --listen host %q is not its hostname %q", h, c.Hostname)
	}
}
