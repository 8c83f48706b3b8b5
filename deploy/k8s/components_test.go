package k8s_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/recur-ml/recur/deploy/internal/recurflags"
)

// TestComponents: the own-certs component patches what it says it does.
// Its JSON patches append to the first container's args and volumeMounts
// and to the pod's volumes, so every coordinator and worker workload of
// every variant must have a recur container first with all three lists;
// the flags it adds must be flags of `recur coordinator` and `recur
// worker`. Where kustomize (or kubectl) is installed, each variant is
// rendered with the component and the result checked.
func TestComponents(t *testing.T) {
	b, err := os.ReadFile("components/own-certs/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Patches    []struct {
			Target struct {
				Group, Kind   string
				LabelSelector string `yaml:"labelSelector"`
			} `yaml:"target"`
			Patch string `yaml:"patch"`
		} `yaml:"patches"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Kind != "Component" || c.APIVersion != "kustomize.config.k8s.io/v1alpha1" {
		t.Fatalf("own-certs: %s %s, want a kustomize Component", c.APIVersion, c.Kind)
	}
	kinds := map[string]bool{}
	var added []string
	for _, p := range c.Patches {
		kinds[p.Target.Kind] = true
		var ops []struct {
			Op, Path string
			Value    any
		}
		if err := yaml.Unmarshal([]byte(p.Patch), &ops); err != nil {
			t.Fatalf("patch for %s: %v", p.Target.Kind, err)
		}
		for _, op := range ops {
			if a, ok := op.Value.(string); ok && op.Path == "/spec/template/spec/containers/0/args/-" && !slices.Contains(added, a) {
				added = append(added, a)
			}
		}
	}
	for _, v := range variants(t) {
		for _, p := range []pod{v.coord, v.work} {
			if !kinds[p.owner.Kind] {
				t.Errorf("%s: own-certs does not patch the %s %s", v.dir, p.owner.Kind, p.owner.Metadata.Name)
			}
			if len(p.c.Args) == 0 || len(p.c.VolumeMounts) == 0 || len(p.owner.Spec.Template.Spec.Volumes) == 0 {
				t.Errorf("%s: %s has no args, volumeMounts or volumes for the patch to append to", v.dir, p.owner.Metadata.Name)
			}
			known, err := recurflags.Flags(p.cmd)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range added {
				name := strings.TrimPrefix(strings.SplitN(a, "=", 2)[0], "--")
				if !known[name] {
					t.Errorf("own-certs adds %s, which `recur %s` does not know", a, p.cmd)
				}
			}
		}
		render(t, v.dir, len(added))
	}
}

// render builds dir with the component where a kustomize is installed and
// counts the TLS flags in the result.
func render(t *testing.T, dir string, perWorkload int) {
	t.Helper()
	var cmd []string
	if k, err := exec.LookPath("kustomize"); err == nil {
		cmd = []string{k, "build"}
	} else if k, err := exec.LookPath("kubectl"); err == nil {
		cmd = []string{k, "kustomize"}
	} else {
		t.Logf("%s: no kustomize or kubectl, not rendered with own-certs", dir)
		return
	}
	tmp := t.TempDir()
	if out, err := exec.Command("cp", "-r", ".", tmp).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	kf := filepath.Join(tmp, dir, "kustomization.yaml")
	b, _ := os.ReadFile(kf)
	os.WriteFile(kf, append(b, []byte("\ncomponents:\n  - ../components/own-certs\n")...), 0o644)
	out, err := exec.Command(cmd[0], append(cmd[1:], filepath.Join(tmp, dir))...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s with own-certs: %v\n%s", dir, err, out)
	}
	if n := strings.Count(string(out), "--tls-"); n != 2*perWorkload {
		t.Errorf("%s with own-certs: %d TLS flags rendered, want %d", dir, n, 2*perWorkload)
	}
	if !strings.Contains(string(out), "secretName: recur-tls") {
		t.Errorf("%s with own-certs: the Secret recur-tls is not mounted", dir)
	}
}
