// Package k8s_test checks the Kubernetes manifests under deploy/k8s
// against each other and against the recur binary, for every variant (a
// kustomization that no other one includes: service, batch, and any copy
// of them): every flag in a container's args exists in `recur COMMAND
// --help`, every address flag has a matching container port, Service and
// probe, every path flag lies on the right kind of volume, requests equal
// limits with whole CPUs and GOMAXPROCS from the CPU limit, the batch Jobs
// map exit codes to success, failure and retry, the PodDisruptionBudget
// covers the workers, and the kustomizations name, label and retag each
// variant so that two of them share a namespace.
//
// The manifests are read as written (kustomize's namePrefix renames both
// ends of a reference alike); the kustomization fields that rename what
// kustomize does not (a Service name in args) are checked as such. No
// cluster is needed; when kubectl is on PATH, TestKustomizeBuild also
// renders every variant and checks the result.
package k8s_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/recur-ml/recur/deploy/internal/recurflags"
	"github.com/recur-ml/recur/internal/job"
)

func TestMain(m *testing.M) {
	code := m.Run()
	recurflags.Cleanup()
	os.Exit(code)
}

// The subset of Kubernetes objects the checks read.
type (
	object struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   meta              `yaml:"metadata"`
		Spec       spec              `yaml:"spec"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
		file       string
	}
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	spec struct {
		// Service
		ClusterIP                string         `yaml:"clusterIP"`
		PublishNotReadyAddresses bool           `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]any `yaml:"selector"`
		Ports                    []servicePort  `yaml:"ports"`
		// StatefulSet, Deployment
		ServiceName string `yaml:"serviceName"`
		Replicas    *int   `yaml:"replicas"`
		Template    struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []object `yaml:"volumeClaimTemplates"`
		// Job
		Completions      *int              `yaml:"completions"`
		Parallelism      *int              `yaml:"parallelism"`
		BackoffLimit     *int              `yaml:"backoffLimit"`
		PodFailurePolicy *podFailurePolicy `yaml:"podFailurePolicy"`
		// PodDisruptionBudget
		MaxUnavailable             any    `yaml:"maxUnavailable"`
		MinAvailable               any    `yaml:"minAvailable"`
		UnhealthyPodEvictionPolicy string `yaml:"unhealthyPodEvictionPolicy"`
		// PersistentVolumeClaim
		AccessModes []string `yaml:"accessModes"`
	}
	servicePort struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
		Protocol   string `yaml:"protocol"`
	}
	podSpec struct {
		SecurityContext struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
			RunAsUser    int  `yaml:"runAsUser"`
		} `yaml:"securityContext"`
		RestartPolicy                 string      `yaml:"restartPolicy"`
		TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
		InitContainers                []container `yaml:"initContainers"`
		Containers                    []container `yaml:"containers"`
		Volumes                       []volume    `yaml:"volumes"`
	}
	container struct {
		Name           string          `yaml:"name"`
		Image          string          `yaml:"image"`
		Command        []string        `yaml:"command"`
		Args           []string        `yaml:"args"`
		Env            []envVar        `yaml:"env"`
		Ports          []containerPort `yaml:"ports"`
		ReadinessProbe *probe          `yaml:"readinessProbe"`
		LivenessProbe  *probe          `yaml:"livenessProbe"`
		StartupProbe   *probe          `yaml:"startupProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		VolumeMounts []mount `yaml:"volumeMounts"`
	}
	containerPort struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	}
	envVar struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			ResourceFieldRef *struct {
				ContainerName string `yaml:"containerName"`
				Resource      string `yaml:"resource"`
				Divisor       string `yaml:"divisor"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		TCPSocket *struct {
			Port string `yaml:"port"`
		} `yaml:"tcpSocket"`
	}
	mount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	}
	volume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
			ReadOnly  bool   `yaml:"readOnly"`
		} `yaml:"persistentVolumeClaim"`
	}
	podFailurePolicy struct {
		Rules []struct {
			Action      string `yaml:"action"`
			OnExitCodes *struct {
				ContainerName string `yaml:"containerName"`
				Operator      string `yaml:"operator"`
				Values        []int  `yaml:"values"`
			} `yaml:"onExitCodes"`
			OnPodConditions []struct {
				Type   string `yaml:"type"`
				Status string `yaml:"status"`
			} `yaml:"onPodConditions"`
		} `yaml:"rules"`
	}
)

// kustomization holds the kustomize fields these checks model. It is
// decoded strictly: a field not listed here (patches, components,
// generators, commonLabels, …) would change the objects in ways the checks
// do not see, so it fails them until the checks learn it.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	NamePrefix string   `yaml:"namePrefix"`
	Resources  []string `yaml:"resources"`
	Labels     []struct {
		Pairs            map[string]string `yaml:"pairs"`
		IncludeSelectors bool              `yaml:"includeSelectors"`
		IncludeTemplates bool              `yaml:"includeTemplates"`
	} `yaml:"labels"`
	Images       []image `yaml:"images"`
	Replacements []struct {
		Source struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"source"`
		Targets []struct {
			Select struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"select"`
			FieldPaths []string `yaml:"fieldPaths"`
		} `yaml:"targets"`
	} `yaml:"replacements"`
	dir string
}

// image is an entry of a kustomization's images.
type image struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
	Digest  string `yaml:"digest"`
}

// image returns the images entry for an image name.
func (k *kustomization) image(name string) (image, bool) {
	i := slices.IndexFunc(k.Images, func(im image) bool { return im.Name == name })
	if i < 0 {
		return image{}, false
	}
	return k.Images[i], true
}

// instanceLabel tells the pods of two variants apart; every variant sets
// it, selectors included.
const instanceLabel = "app.kubernetes.io/instance"

// wantKinds are the variants the README applies, with the kinds of their
// coordinator and worker workloads.
var wantKinds = map[string][2]string{
	"service": {"StatefulSet", "Deployment"},
	"batch":   {"Job", "Job"},
}

var workloadKinds = []string{"StatefulSet", "Deployment", "Job", "DaemonSet", "ReplicaSet"}

// decode parses the objects of a YAML stream.
func decode(t *testing.T, name string, b []byte) []*object {
	t.Helper()
	var objs []*object
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		o := &object{file: name}
		if err := dec.Decode(o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: an object without apiVersion, kind or metadata.name: %+v", name, o.Metadata)
		}
		objs = append(objs, o)
	}
	return objs
}

func readObjects(t *testing.T, file string) []*object {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, file, b)
}

func readKustomization(t *testing.T, dir string) *kustomization {
	t.Helper()
	f := filepath.Join(dir, "kustomization.yaml")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	k := &kustomization{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(k); err != nil {
		t.Fatalf("%s: %v (a kustomize field these checks do not model: teach manifests_test.go)", f, err)
	}
	if k.Kind != "Kustomization" {
		t.Errorf("%s: kind %q, want Kustomization", f, k.Kind)
	}
	return k
}

// kustomizationDirs returns every directory here with a kustomization.yaml.
func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == "components" {
			return fs.SkipDir // components (kind: Component) are checked by TestComponents
		}
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(p))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// build returns the objects of the kustomization in dir and of the ones
// it includes, as written.
func build(t *testing.T, dir string) []*object {
	t.Helper()
	var objs []*object
	for _, r := range readKustomization(t, dir).Resources {
		p := filepath.Join(dir, r)
		if st, err := os.Stat(p); err != nil {
			t.Fatalf("%s/kustomization.yaml lists %s: %v", dir, r, err)
		} else if st.IsDir() {
			objs = append(objs, build(t, p)...)
		} else {
			objs = append(objs, readObjects(t, p)...)
		}
	}
	return objs
}

// examples are the objects of the *.example.yaml files (the Secret), which
// no kustomization applies.
func examples(t *testing.T) []*object {
	t.Helper()
	files, err := filepath.Glob("*.example.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.example.yaml: %v", err)
	}
	var objs []*object
	for _, f := range files {
		objs = append(objs, readObjects(t, f)...)
	}
	return objs
}

func find(t *testing.T, objs []*object, kind, name string) *object {
	t.Helper()
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return o
		}
	}
	t.Fatalf("no %s %q in the manifests", kind, name)
	return nil
}

func ofKind(objs []*object, kind string) []*object {
	var out []*object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// variant is a kustomization that no other one includes: what
// `kubectl apply -k` applies.
type variant struct {
	dir          string
	k            *kustomization
	objs         []*object
	coord, work  pod
	fromExamples []*object
}

func variants(t *testing.T) []*variant {
	t.Helper()
	dirs := kustomizationDirs(t)
	included := map[string]bool{}
	for _, d := range dirs {
		for _, r := range readKustomization(t, d).Resources {
			included[filepath.Clean(filepath.Join(d, r))] = true
		}
	}
	var vs []*variant
	for _, d := range dirs {
		if included[d] {
			continue
		}
		v := &variant{dir: d, k: readKustomization(t, d), objs: build(t, d), fromExamples: examples(t)}
		seen := map[string]string{}
		for _, o := range v.objs {
			id := o.Kind + "/" + o.Metadata.Name
			if f, ok := seen[id]; ok {
				t.Errorf("%s: %s is in %s and %s", d, id, f, o.file)
			}
			seen[id] = o.file
		}
		var coords, works []pod
		for _, o := range v.objs {
			if !slices.Contains(workloadKinds, o.Kind) {
				continue
			}
			switch p := newPod(t, o); p.cmd {
			case "coordinator":
				coords = append(coords, p)
			case "worker":
				works = append(works, p)
			default:
				t.Errorf("%s: %s %s runs `recur %s`", d, o.Kind, o.Metadata.Name, p.cmd)
			}
		}
		if len(coords) != 1 || len(works) != 1 {
			t.Fatalf("%s: want one coordinator and one worker workload, have %d and %d", d, len(coords), len(works))
		}
		v.coord, v.work = coords[0], works[0]
		vs = append(vs, v)
	}
	for name := range wantKinds {
		if !slices.ContainsFunc(vs, func(v *variant) bool { return v.dir == name }) {
			t.Errorf("no variant %s (a kustomization no other one includes)", name)
		}
	}
	return vs
}

// each runs f for every variant as a subtest.
func each(t *testing.T, f func(t *testing.T, v *variant)) {
	for _, v := range variants(t) {
		t.Run(v.dir, func(t *testing.T) { f(t, v) })
	}
}

// TestLayout: every YAML file is in a kustomization or an example, and
// every resource a kustomization lists exists.
func TestLayout(t *testing.T) {
	dirs := kustomizationDirs(t)
	listed := map[string]bool{}
	for _, d := range dirs {
		k := readKustomization(t, d)
		if len(k.Resources) == 0 {
			t.Errorf("%s/kustomization.yaml lists no resources", d)
		}
		for _, r := range k.Resources {
			p := filepath.Join(d, r)
			st, err := os.Stat(p)
			switch {
			case err != nil:
				t.Errorf("%s/kustomization.yaml lists %s: %v", d, r, err)
			case st.IsDir():
				if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
					t.Errorf("%s/kustomization.yaml lists directory %s, which has no kustomization.yaml", d, r)
				}
			default:
				listed[filepath.Clean(p)] = true
			}
		}
	}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") || d.Name() == "kustomization.yaml" || strings.HasSuffix(p, ".example.yaml") {
			return err
		}
		if !listed[p] {
			t.Errorf("%s is in no kustomization: no variant applies it", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestKustomizations: each variant has its own name prefix and instance
// label (selectors included), so two variants share a namespace, and an
// images entry for its image, so a retag is one edit.
func TestKustomizations(t *testing.T) {
	vs := variants(t)
	prefixes, instances := map[string]string{}, map[string]string{}
	for _, v := range vs {
		k := v.k
		if k.NamePrefix == "" || !strings.HasSuffix(k.NamePrefix, "-") {
			t.Errorf("%s: namePrefix %q: want a prefix ending in '-' so the variant's objects have names of their own", v.dir, k.NamePrefix)
		} else if other, ok := prefixes[k.NamePrefix]; ok {
			t.Errorf("%s and %s share namePrefix %q: their objects would collide in one namespace", other, v.dir, k.NamePrefix)
		}
		prefixes[k.NamePrefix] = v.dir
		instance := ""
		for _, l := range k.Labels {
			if val, ok := l.Pairs[instanceLabel]; ok && l.IncludeSelectors {
				instance = val
			}
		}
		if instance == "" {
			t.Errorf("%s: no labels entry with %s and includeSelectors: true; without it the variant's Services, workloads and PodDisruptionBudget select another variant's pods", v.dir, instanceLabel)
		} else if other, ok := instances[instance]; ok {
			t.Errorf("%s and %s share %s=%s: their selectors would select each other's pods", other, v.dir, instanceLabel, instance)
		}
		instances[instance] = v.dir
		for _, o := range v.objs {
			for _, c := range containers(o) {
				name := imageName(c.Image)
				if im, ok := k.image(name); !ok {
					t.Errorf("%s: kustomization.yaml has no images entry named %q (%s %s)", v.dir, name, o.Kind, o.Metadata.Name)
				} else if im.NewName == "" && im.NewTag == "" && im.Digest == "" {
					t.Errorf("%s: images entry %q sets no newName, newTag or digest", v.dir, name)
				}
			}
		}
	}
}

// imageName is an image reference without its tag or digest.
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func containers(o *object) []container {
	ps := o.Spec.Template.Spec
	return append(slices.Clone(ps.InitContainers), ps.Containers...)
}

// pod is a workload's pod template with its single recur container.
type pod struct {
	owner   *object
	c       container
	cmd     string            // coordinator or worker
	flags   map[string]string // --name → value, $(VAR) kept
	env     map[string]envVar
	unknown []string // flags `recur CMD --help` does not list
}

func newPod(t *testing.T, o *object) pod {
	t.Helper()
	cs := o.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s %s (%s): want one container, have %d", o.Kind, o.Metadata.Name, o.file, len(cs))
	}
	c := cs[0]
	if len(c.Args) == 0 {
		t.Fatalf("%s: no args", c.Name)
	}
	p := pod{owner: o, c: c, cmd: c.Args[0], flags: map[string]string{}, env: map[string]envVar{}}
	for _, e := range c.Env {
		p.env[e.Name] = e
	}
	known, err := recurflags.Flags(p.cmd)
	if err != nil {
		t.Fatal(err)
	}
	args, err := recurflags.Parse(c.Args[1:], map[string]bool{"fresh": true})
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	for _, a := range args {
		if !known[a.Name] {
			p.unknown = append(p.unknown, a.Name)
		}
		p.flags[a.Name] = a.Value
	}
	return p
}

func (p pod) String() string {
	return fmt.Sprintf("%s %s (%s)", p.owner.Kind, p.owner.Metadata.Name, p.owner.file)
}

// port returns the port of an address flag, which must be set.
func (p pod) port(t *testing.T, flag string) (host string, port int) {
	t.Helper()
	v, ok := p.flags[flag]
	if !ok {
		t.Fatalf("%s: --%s is not set", p, flag)
	}
	h, ps, err := net.SplitHostPort(v)
	if err != nil {
		t.Fatalf("%s: --%s=%s: %v", p, flag, v, err)
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n == 0 {
		t.Fatalf("%s: --%s=%s: want a fixed port", p, flag, v)
	}
	return h, n
}

// duration returns a duration flag, or def when it is not set.
func (p pod) duration(t *testing.T, flag string, def time.Duration) time.Duration {
	t.Helper()
	v, ok := p.flags[flag]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Errorf("%s: --%s=%s: %v", p, flag, v, err)
	}
	return d
}

// containerPort resolves a port name or number to a declared container port.
func (p pod) containerPort(t *testing.T, ref, protocol string) int {
	t.Helper()
	for _, cp := range p.c.Ports {
		proto := cmp(cp.Protocol, "TCP")
		if (cp.Name == ref || strconv.Itoa(cp.ContainerPort) == ref) && proto == protocol {
			return cp.ContainerPort
		}
	}
	t.Errorf("%s: no %s container port %q", p, protocol, ref)
	return -1
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// mountOf returns the volume mount holding file path p.
func (p pod) mountOf(file string) (mount, bool) {
	var best mount
	for _, m := range p.c.VolumeMounts {
		if (file == m.MountPath || strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	return best, best.Name != ""
}

func (p pod) volume(name string) (volume, bool) {
	for _, v := range p.owner.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return volume{}, false
}

func (p pod) labels() map[string]string { return p.owner.Spec.Template.Metadata.Labels }

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestFlags: every flag in the args exists in the binary.
func TestFlags(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		for _, p := range []pod{v.coord, v.work} {
			for _, f := range p.unknown {
				t.Errorf("%s: `recur %s` has no flag --%s", p, p.cmd, f)
			}
		}
	})
}

// checkCommon checks what every recur container needs: the image's own
// entrypoint, $(VAR) references defined, the cluster key from the Secret,
// a non-root user matching the image, address flags with container ports.
func checkCommon(t *testing.T, v *variant, p pod, addrFlags map[string][]string) {
	t.Helper()
	if len(p.c.Command) != 0 {
		t.Errorf("%s: command overrides the image's entrypoint /recur (and would hide its exit codes from the Job)", p)
	}
	for _, a := range p.c.Args {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if _, ok := p.env[m[1]]; !ok {
				t.Errorf("%s: arg %q uses $(%s), which the container's env does not define", p, a, m[1])
			}
		}
	}
	key, ok := p.env["RECUR_CLUSTER_KEY"]
	if !ok || key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: RECUR_CLUSTER_KEY must come from a Secret", p)
	} else {
		ref := key.ValueFrom.SecretKeyRef
		if _, ok := find(t, v.fromExamples, "Secret", ref.Name).StringData[ref.Key]; !ok {
			t.Errorf("%s: Secret %s has no key %s", p, ref.Name, ref.Key)
		}
	}
	if !strings.HasPrefix(p.c.Image, "recur:") && !strings.Contains(p.c.Image, "/recur:") {
		t.Errorf("%s: image %q is not the recur image", p, p.c.Image)
	}
	sc := p.owner.Spec.Template.Spec.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser != imageUser(t) {
		t.Errorf("%s: securityContext runAsNonRoot=%v runAsUser=%d, want true and the image's USER %d", p, sc.RunAsNonRoot, sc.RunAsUser, imageUser(t))
	}
	for flag, protos := range addrFlags {
		_, port := p.port(t, flag)
		for _, proto := range protos {
			p.containerPort(t, strconv.Itoa(port), proto)
		}
	}
}

// imageUser is the numeric USER of deploy/image/Dockerfile.
func imageUser(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("../image/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/image/Dockerfile has no numeric USER")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func labelsMatch(selector map[string]any, labels map[string]string) bool {
	if ml, ok := selector["matchLabels"].(map[string]any); ok {
		selector = ml
	}
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// checkProbe checks that pr is an httpGet of /healthz on port want.
func checkProbe(t *testing.T, p pod, kind string, pr *probe, flag string, want int) {
	t.Helper()
	if pr == nil || pr.HTTPGet == nil {
		t.Errorf("%s: no httpGet %s probe", p, kind)
		return
	}
	if pr.HTTPGet.Path != "/healthz" || p.containerPort(t, pr.HTTPGet.Port, "TCP") != want {
		t.Errorf("%s: %s probe %s on port %s, want /healthz on the --%s port %d", p, kind, pr.HTTPGet.Path, pr.HTTPGet.Port, flag, want)
	}
}

// probedHost fails when an address flag that a kubelet probe reaches is
// bound to loopback (the kubelet probes the pod IP).
func probedHost(t *testing.T, p pod, flag string) int {
	t.Helper()
	h, port := p.port(t, flag)
	if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
		t.Errorf("%s: --%s=%s: the kubelet probes the pod IP, not loopback", p, flag, p.flags[flag])
	}
	return port
}

// coordinatorService is the Service that selects the coordinator pods.
func (v *variant) coordinatorService(t *testing.T) *object {
	t.Helper()
	var found *object
	for _, svc := range ofKind(v.objs, "Service") {
		if labelsMatch(svc.Spec.Selector, v.coord.labels()) {
			if found != nil {
				t.Errorf("%s: Services %s and %s both select the coordinator", v.dir, found.Metadata.Name, svc.Metadata.Name)
			}
			found = svc
		}
	}
	if found == nil {
		t.Fatalf("%s: no Service selects the coordinator pods %v", v.dir, v.coord.labels())
	}
	return found
}

func TestCoordinator(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		p, o := v.coord, v.coord.owner
		checkCommon(t, v, p, map[string][]string{"listen": {"TCP"}, "gossip": {"TCP", "UDP"}, "metrics": {"TCP"}})
		if kinds, ok := wantKinds[v.dir]; ok && o.Kind != kinds[0] {
			t.Errorf("%s: the coordinator is a %s, want a %s", v.dir, o.Kind, kinds[0])
		}
		switch o.Kind {
		case "StatefulSet", "Deployment":
			if r := o.Spec.Replicas; r == nil || *r != 1 {
				t.Errorf("%s: the coordinator needs exactly 1 replica", p)
			}
		case "Job":
			// checked by TestJobs
		default:
			t.Errorf("%s: a coordinator cannot be a %s", p, o.Kind)
		}
		if o.Kind != "Job" && !labelsMatch(o.Spec.Selector, p.labels()) {
			t.Errorf("%s: selector %v does not match its pod labels %v", p, o.Spec.Selector, p.labels())
		}
		if _, ok := p.flags["fresh"]; ok {
			t.Errorf("%s: --fresh would make every restarted pod throw its checkpoints away", p)
		}

		// The headless Service: the StatefulSet's serviceName, selecting
		// its pods only, every port reaching a container port, and
		// publishing the coordinator while it is not ready (workers dial
		// it before, and while /healthz reports a stall).
		svc := v.coordinatorService(t)
		if o.Kind == "StatefulSet" && o.Spec.ServiceName != svc.Metadata.Name {
			t.Errorf("%s: serviceName %q, the Service selecting it is %s", p, o.Spec.ServiceName, svc.Metadata.Name)
		}
		if svc.Spec.ClusterIP != "None" {
			t.Errorf("Service %s: clusterIP %q, want None (headless)", svc.Metadata.Name, svc.Spec.ClusterIP)
		}
		if !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: publishNotReadyAddresses is not true: workers could not reach a coordinator whose /healthz fails while it waits for them", svc.Metadata.Name)
		}
		if labelsMatch(svc.Spec.Selector, v.work.labels()) {
			t.Errorf("Service %s also selects the worker pods", svc.Metadata.Name)
		}
		for _, sp := range svc.Spec.Ports {
			if got := p.containerPort(t, sp.TargetPort, cmp(sp.Protocol, "TCP")); got != sp.Port {
				t.Errorf("Service port %s: port %d reaches container port %d", sp.Name, sp.Port, got)
			}
		}

		// Readiness and liveness from /healthz on the --metrics port,
		// which fails on a stall (--stall-timeout) or failed saves.
		metrics := probedHost(t, p, "metrics")
		checkProbe(t, p, "readiness", p.c.ReadinessProbe, "metrics", metrics)
		checkProbe(t, p, "liveness", p.c.LivenessProbe, "metrics", metrics)
		if _, ok := p.flags["stall-timeout"]; !ok {
			t.Errorf("%s: no --stall-timeout: say when /healthz fails for want of steps", p)
		} else if p.duration(t, "stall-timeout", 0) <= 0 {
			t.Errorf("%s: --stall-timeout=%s: /healthz would never fail on a stalled run", p, p.flags["stall-timeout"])
		}
		// A SIGTERM saves a final checkpoint within --stop-timeout; the
		// kubelet's SIGKILL must not come first.
		grace := 30 * time.Second
		if g := o.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = time.Duration(*g) * time.Second
		}
		if stop := p.duration(t, "stop-timeout", 2*time.Minute); grace <= stop {
			t.Errorf("%s: terminationGracePeriodSeconds %v is not longer than --stop-timeout %v: the final checkpoint would be killed", p, grace, stop)
		}

		// --dir on a PersistentVolumeClaim, so checkpoints survive a new pod.
		dir := p.flags["dir"]
		m, ok := p.mountOf(dir)
		vol, _ := p.volume(m.Name)
		switch {
		case !ok || m.ReadOnly:
			t.Errorf("%s: --dir=%s is not on a writable mount", p, dir)
		case slices.ContainsFunc(o.Spec.VolumeClaimTemplates, func(c object) bool { return c.Metadata.Name == m.Name }):
		case vol.PersistentVolumeClaim != nil && !vol.PersistentVolumeClaim.ReadOnly:
			pvc := find(t, v.objs, "PersistentVolumeClaim", vol.PersistentVolumeClaim.ClaimName)
			if !slices.Contains(pvc.Spec.AccessModes, "ReadWriteOnce") && !slices.Contains(pvc.Spec.AccessModes, "ReadWriteMany") {
				t.Errorf("PersistentVolumeClaim %s (--dir) has access modes %v, want ReadWriteOnce", pvc.Metadata.Name, pvc.Spec.AccessModes)
			}
		default:
			t.Errorf("%s: --dir=%s is not on a PersistentVolumeClaim (mount %+v): checkpoints would not survive a new pod", p, dir, m)
		}

		// --config is a key of a ConfigMap volume, and that job loads.
		jc := loadJob(t, v, p)
		if _, ok := p.mountOf(jc.Data.Text); !ok {
			t.Errorf("%s: data.text %s is on no mount", p, jc.Data.Text)
		}
	})
}

// loadJob returns the job the coordinator's --config names, read from its
// ConfigMap and validated like `recur coordinator` does.
func loadJob(t *testing.T, v *variant, p pod) job.Config {
	t.Helper()
	file := p.flags["config"]
	m, ok := p.mountOf(file)
	if !ok {
		t.Fatalf("%s: --config=%s is on no mount", p, file)
	}
	vol, ok := p.volume(m.Name)
	if !ok || vol.ConfigMap == nil {
		t.Fatalf("%s: --config=%s is not on a ConfigMap volume", p, file)
	}
	cm := find(t, v.objs, "ConfigMap", vol.ConfigMap.Name)
	key := strings.TrimPrefix(strings.TrimPrefix(file, m.MountPath), "/")
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (--config=%s)", cm.Metadata.Name, key, file)
	}
	tmp := filepath.Join(t.TempDir(), path.Base(file))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	jc, err := job.Load(tmp)
	if err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Metadata.Name, key, err)
	}
	if err := jc.Validate(); err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Metadata.Name, key, err)
	}
	return jc
}

func TestWorkers(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		w, o := v.work, v.work.owner
		checkCommon(t, v, w, map[string][]string{"ring-listen": {"TCP"}, "peer-listen": {"TCP"}, "gossip-listen": {"TCP", "UDP"}, "health": {"TCP"}})
		if kinds, ok := wantKinds[v.dir]; ok && o.Kind != kinds[1] {
			t.Errorf("%s: the workers are a %s, want a %s", v.dir, o.Kind, kinds[1])
		}
		if o.Kind != "Job" && !labelsMatch(o.Spec.Selector, w.labels()) {
			t.Errorf("%s: selector %v does not match its pod labels", w, o.Spec.Selector)
		}
		if labelsMatch(o.Spec.Selector, v.coord.labels()) {
			t.Errorf("%s: selector %v also selects the coordinator pods", w, o.Spec.Selector)
		}
		if _, ok := w.flags["id"]; !ok {
			t.Errorf("%s: no --id (the pod name keeps logs readable)", w)
		}
		// Listeners bind the pod IP: a worker advertises its listeners'
		// addresses, and 127.0.0.1 would be unreachable from other pods.
		for _, f := range []string{"ring-listen", "peer-listen", "gossip-listen"} {
			if h, _ := w.port(t, f); h == "127.0.0.1" || h == "localhost" || h == "" {
				t.Errorf("%s: --%s=%s binds no reachable address", w, f, w.flags[f])
			}
		}

		// Ready while in a ring generation: /healthz on --health. A
		// liveness probe on it would kill workers that wait for one.
		health := probedHost(t, w, "health")
		checkProbe(t, w, "readiness", w.c.ReadinessProbe, "health", health)
		for kind, pr := range map[string]*probe{"liveness": w.c.LivenessProbe, "startup": w.c.StartupProbe} {
			if pr != nil && pr.HTTPGet != nil && w.containerPort(t, pr.HTTPGet.Port, "TCP") == health {
				t.Errorf("%s: a %s probe on the --health port fails while the worker waits for a generation, and would kill it", w, kind)
			}
		}

		// --coordinator and --gossip reach the coordinator's listeners
		// through its Service, whose name namePrefix changes: the host is
		// an env var that a replacement fills with the Service's name.
		c := v.coord
		svc := v.coordinatorService(t)
		for wf, cf := range map[string]string{"coordinator": "listen", "gossip": "gossip"} {
			host, port := w.port(t, wf)
			if m := envRef.FindStringSubmatch(host); m == nil || m[0] != host {
				t.Errorf("%s: --%s=%s: want $(VAR) as the host, VAR set to the coordinator Service by a replacement in %s/kustomization.yaml (namePrefix does not rename a literal host)", w, wf, w.flags[wf], v.dir)
			} else if e := w.env[m[1]]; e.Value != svc.Metadata.Name || e.ValueFrom != nil {
				t.Errorf("%s: --%s=%s: env %s is %q, want the coordinator Service %s", w, wf, w.flags[wf], m[1], e.Value, svc.Metadata.Name)
			} else if !v.replacesWithName(svc, w, m[1]) {
				t.Errorf("%s: %s/kustomization.yaml has no replacement from Service %s metadata.name to %s %s env %s: the workers would dial the unprefixed name", w, v.dir, svc.Metadata.Name, o.Kind, o.Metadata.Name, m[1])
			}
			_, want := c.port(t, cf)
			i := slices.IndexFunc(svc.Spec.Ports, func(sp servicePort) bool { return sp.Port == port && cmp(sp.Protocol, "TCP") == "TCP" })
			if i < 0 {
				t.Errorf("%s: --%s port %d is not a port of Service %s", w, wf, port, svc.Metadata.Name)
			} else if got := c.containerPort(t, svc.Spec.Ports[i].TargetPort, "TCP"); got != want {
				t.Errorf("%s: --%s reaches container port %d, the coordinator's --%s is %d", w, wf, got, cf, want)
			}
		}

		// The corpus: the job's data.text is on the same read-only claim in
		// the coordinator and the workers.
		jc := loadJob(t, v, c)
		claim := func(p pod) string {
			m, ok := p.mountOf(jc.Data.Text)
			if !ok {
				t.Fatalf("%s: data.text %s is on no mount", p, jc.Data.Text)
			}
			vol, ok := p.volume(m.Name)
			if !ok || vol.PersistentVolumeClaim == nil || !m.ReadOnly || !vol.PersistentVolumeClaim.ReadOnly {
				t.Fatalf("%s: data.text %s is not on a read-only PersistentVolumeClaim mount", p, jc.Data.Text)
			}
			return vol.PersistentVolumeClaim.ClaimName
		}
		if a, b := claim(c), claim(w); a != b {
			t.Errorf("the coordinator reads the corpus from claim %s, the workers from %s", a, b)
		} else {
			find(t, v.objs, "PersistentVolumeClaim", a)
		}

		// A worker's threads come from the job (train.threads), not from
		// its environment: they must match its CPU limit.
		if cpu, err := quantity(w.c.Resources.Limits["cpu"]); err == nil && float64(jc.Train.Threads) != cpu {
			t.Errorf("%s: train.threads %d in the job ConfigMap is not the workers' CPU limit %s", w, jc.Train.Threads, w.c.Resources.Limits["cpu"])
		}

		// The first step waits for --start-workers workers: no more than
		// the workers there are.
		n := 0
		switch o.Kind {
		case "Job":
			if o.Spec.Parallelism != nil {
				n = *o.Spec.Parallelism
			}
		default:
			if o.Spec.Replicas != nil {
				n = *o.Spec.Replicas
			} else {
				n = 1
			}
		}
		if s, ok := c.flags["start-workers"]; !ok {
			t.Errorf("%s: no --start-workers: say how many workers the first step waits for (%d)", c, n)
		} else if sw, err := strconv.Atoi(s); err != nil || sw > n || (o.Kind == "Job" && sw != n) {
			t.Errorf("%s: --start-workers=%s, %s %s runs %d workers (a Job's parallelism must equal it)", c, s, o.Kind, o.Metadata.Name, n)
		}
	})
}

// replacesWithName reports whether the variant's kustomization copies
// svc's (final, prefixed) name into env of w's container.
func (v *variant) replacesWithName(svc *object, w pod, env string) bool {
	want := fmt.Sprintf("spec.template.spec.containers.[name=%s].env.[name=%s].value", w.c.Name, env)
	for _, r := range v.k.Replacements {
		if r.Source.Kind != "Service" || r.Source.Name != svc.Metadata.Name || cmp(r.Source.FieldPath, "metadata.name") != "metadata.name" {
			continue
		}
		for _, tg := range r.Targets {
			if tg.Select.Kind == w.owner.Kind && (tg.Select.Name == "" || tg.Select.Name == w.owner.Metadata.Name) && slices.Contains(tg.FieldPaths, want) {
				return true
			}
		}
	}
	return false
}

// quantity parses a Kubernetes resource quantity.
func quantity(s string) (float64, error) {
	for _, x := range []struct {
		suffix string
		mult   float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50}, {"Ei", 1 << 60},
		{"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15}, {"E", 1e18}} {
		if n, ok := strings.CutSuffix(s, x.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			return f * x.mult, err
		}
	}
	return strconv.ParseFloat(s, 64)
}

// TestResources: every container has requests equal to its limits
// (Guaranteed QoS) with a whole number of CPUs, and GOMAXPROCS from its
// CPU limit.
func TestResources(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		for _, o := range v.objs {
			for _, c := range containers(o) {
				where := fmt.Sprintf("%s %s container %s (%s)", o.Kind, o.Metadata.Name, c.Name, o.file)
				req, lim := c.Resources.Requests, c.Resources.Limits
				for _, r := range []string{"cpu", "memory"} {
					if req[r] == "" || lim[r] == "" {
						t.Errorf("%s: no %s request or limit", where, r)
					}
				}
				for r := range mergeKeys(req, lim) {
					a, errA := quantity(req[r])
					b, errB := quantity(lim[r])
					if errA != nil || errB != nil || a != b {
						t.Errorf("%s: %s request %q and limit %q differ: want requests equal to limits", where, r, req[r], lim[r])
					}
				}
				if cpu, err := quantity(lim["cpu"]); err != nil || cpu < 1 || cpu != math.Trunc(cpu) {
					t.Errorf("%s: CPU limit %q is not a whole number of CPUs", where, lim["cpu"])
				}
				e := slices.IndexFunc(c.Env, func(e envVar) bool { return e.Name == "GOMAXPROCS" })
				if e < 0 {
					t.Errorf("%s: no GOMAXPROCS env", where)
					continue
				}
				if vf := c.Env[e].ValueFrom; vf == nil || vf.ResourceFieldRef == nil {
					t.Errorf("%s: GOMAXPROCS is not from a resourceFieldRef", where)
				} else if ref := vf.ResourceFieldRef; ref.Resource != "limits.cpu" || ref.Divisor != "1" || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
					t.Errorf("%s: GOMAXPROCS from %+v, want this container's limits.cpu with divisor \"1\"", where, *ref)
				}
			}
		}
	})
}

func mergeKeys(ms ...map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

// exit codes of recur (internal/cli/exit.go): permanent ones fail a Job
// at once; the others are retried.
var (
	permanentExits = []int{1, 2, 3}           // error, usage, diverged
	retryExits     = []int{75, 130, 137, 143} // retry later, interrupted, SIGKILL/OOM, SIGTERM
)

// outcome is what the Job controller does with a pod whose container c
// exited with code (0: the pod succeeded), the pod having conditions.
func (pfp *podFailurePolicy) outcome(c string, code int, conditions ...string) string {
	if code == 0 {
		return "Succeeded"
	}
	if pfp == nil {
		return "Count"
	}
	for _, r := range pfp.Rules {
		if e := r.OnExitCodes; e != nil {
			if (e.ContainerName == "" || e.ContainerName == c) && slices.Contains(e.Values, code) == (e.Operator == "In") {
				return r.Action
			}
			continue
		}
		for _, pc := range r.OnPodConditions {
			if slices.Contains(conditions, pc.Type) && cmp(pc.Status, "True") == "True" {
				return r.Action
			}
		}
	}
	return "Count"
}

// TestJobs: the Jobs of the batch variant map recur's exit codes: 0 makes
// the pod (and a one-pod Job) succeed, 1 2 3 fail the Job at once, the
// others retry a new pod, an eviction is not counted.
func TestJobs(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		for _, p := range []pod{v.coord, v.work} {
			o := p.owner
			if o.Kind != "Job" {
				continue
			}
			s := o.Spec
			if s.Template.Spec.RestartPolicy != "Never" {
				t.Errorf("%s: restartPolicy %q: a podFailurePolicy needs Never (each retry is a new pod)", p, s.Template.Spec.RestartPolicy)
			}
			if s.BackoffLimit == nil || *s.BackoffLimit < 1 {
				t.Errorf("%s: backoffLimit not set above 0: exits 75 and 130 would not be retried", p)
			}
			pfp := s.PodFailurePolicy
			if pfp == nil {
				t.Errorf("%s: no podFailurePolicy", p)
			} else {
				for i, r := range pfp.Rules {
					if !slices.Contains([]string{"FailJob", "Ignore", "Count", "FailIndex"}, r.Action) {
						t.Errorf("%s: podFailurePolicy rule %d: action %q", p, i, r.Action)
					}
					if e := r.OnExitCodes; e != nil {
						if e.Operator != "In" && e.Operator != "NotIn" {
							t.Errorf("%s: podFailurePolicy rule %d: operator %q", p, i, e.Operator)
						}
						if e.Operator == "In" && slices.Contains(e.Values, 0) {
							t.Errorf("%s: podFailurePolicy rule %d: exit 0 is a success, not a failure to match", p, i)
						}
						if !slices.IsSorted(e.Values) || len(slices.Compact(slices.Clone(e.Values))) != len(e.Values) {
							t.Errorf("%s: podFailurePolicy rule %d: values %v must be sorted and unique", p, i, e.Values)
						}
					}
				}
			}
			for _, code := range permanentExits {
				if got := pfp.outcome(p.c.Name, code); got != "FailJob" {
					t.Errorf("%s: exit %d (permanent) gives %s, want FailJob: a retry would fail the same way", p, code, got)
				}
			}
			for _, code := range retryExits {
				if got := pfp.outcome(p.c.Name, code); got != "Count" && got != "Ignore" {
					t.Errorf("%s: exit %d gives %s, want a retry (Count or Ignore)", p, code, got)
				}
				if got := pfp.outcome(p.c.Name, code, "DisruptionTarget"); got != "Ignore" {
					t.Errorf("%s: an evicted or preempted pod (DisruptionTarget) exiting %d gives %s, want Ignore: a node drain must not use up backoffLimit", p, code, got)
				}
			}
			if p.cmd == "coordinator" {
				// One coordinator; its exit 0 completes the Job.
				if c := s.Completions; c != nil && *c != 1 {
					t.Errorf("%s: completions %d: one coordinator exiting 0 must complete the Job", p, *c)
				}
				if n := s.Parallelism; n != nil && *n != 1 {
					t.Errorf("%s: parallelism %d: a job has one coordinator", p, *n)
				}
			} else {
				// Workers all exit 0 when the run is over; without
				// completions the first success ends the Job once all
				// pods are done, and no new worker starts after it.
				if s.Parallelism == nil || *s.Parallelism < 1 {
					t.Errorf("%s: no parallelism: say how many workers run", p)
				} else if c := s.Completions; c != nil && *c != *s.Parallelism {
					t.Errorf("%s: completions %d is not parallelism %d: the Job would not end when its workers exit 0", p, *c, *s.Parallelism)
				}
			}
		}
	})
}

// TestDisruptionBudget: a PodDisruptionBudget limits voluntary evictions
// of workers, and lets not-ready ones (waiting for a generation) go.
func TestDisruptionBudget(t *testing.T) {
	each(t, func(t *testing.T, v *variant) {
		var found bool
		for _, pdb := range ofKind(v.objs, "PodDisruptionBudget") {
			if labelsMatch(pdb.Spec.Selector, v.coord.labels()) && !labelsMatch(pdb.Spec.Selector, v.work.labels()) {
				continue // a budget for the coordinator is fine too
			}
			if !labelsMatch(pdb.Spec.Selector, v.work.labels()) {
				t.Errorf("PodDisruptionBudget %s selects %v, not the worker pods %v", pdb.Metadata.Name, pdb.Spec.Selector, v.work.labels())
				continue
			}
			found = true
			if labelsMatch(pdb.Spec.Selector, v.coord.labels()) {
				t.Errorf("PodDisruptionBudget %s selects the coordinator too", pdb.Metadata.Name)
			}
			if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
				t.Errorf("PodDisruptionBudget %s: set one of maxUnavailable and minAvailable", pdb.Metadata.Name)
			}
			if pdb.Spec.UnhealthyPodEvictionPolicy != "AlwaysAllow" {
				t.Errorf("PodDisruptionBudget %s: unhealthyPodEvictionPolicy %q, want AlwaysAllow: workers that wait for a generation are not ready and would block a drain", pdb.Metadata.Name, pdb.Spec.UnhealthyPodEvictionPolicy)
			}
		}
		if !found {
			t.Errorf("%s: no PodDisruptionBudget selects the worker pods %v", v.dir, v.work.labels())
		}
	})
}

// TestKustomizeBuild renders every variant with `kubectl kustomize` and
// checks what the other tests take on trust: names carry the prefix, the
// workers dial the renamed Service, images are retagged, and no
// variant's names or selectors reach another variant's objects.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("no kubectl: the rendered variants are not checked")
	}
	type rendered struct {
		v    *variant
		objs []*object
		pods []map[string]string
	}
	var all []rendered
	for _, v := range variants(t) {
		out, err := exec.Command(kubectl, "kustomize", v.dir).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%v: %s", err, ee.Stderr)
			}
			t.Errorf("kubectl kustomize %s: %v", v.dir, err)
			continue
		}
		r := rendered{v: v, objs: decode(t, v.dir+" (rendered)", out)}
		var coord, work *pod
		for _, o := range r.objs {
			if !strings.HasPrefix(o.Metadata.Name, v.k.NamePrefix) {
				t.Errorf("%s: rendered %s %s lacks the prefix %s", v.dir, o.Kind, o.Metadata.Name, v.k.NamePrefix)
			}
			if o.Metadata.Labels[instanceLabel] == "" {
				t.Errorf("%s: rendered %s %s has no %s label", v.dir, o.Kind, o.Metadata.Name, instanceLabel)
			}
			for _, c := range containers(o) {
				// The images entry of the manifests' image (TestKustomizations
				// reports a missing one).
				if im, ok := v.k.image(imageName(v.coord.c.Image)); ok {
					want := cmp(im.NewName, im.Name)
					switch {
					case im.Digest != "":
						want += "@" + im.Digest
					case im.NewTag != "":
						want += ":" + im.NewTag
					}
					if c.Image != want && (im.NewTag != "" || im.Digest != "" || imageName(c.Image) != want) {
						t.Errorf("%s: rendered image %q, want %s (the images entry)", v.dir, c.Image, want)
					}
				}
			}
			if !slices.Contains(workloadKinds, o.Kind) {
				continue
			}
			p := newPod(t, o)
			r.pods = append(r.pods, p.labels())
			if p.labels()[instanceLabel] == "" {
				t.Errorf("%s: rendered %s pods have no %s label", v.dir, o.Metadata.Name, instanceLabel)
			}
			switch p.cmd {
			case "coordinator":
				coord = &p
			case "worker":
				work = &p
			}
		}
		if coord == nil || work == nil {
			t.Errorf("%s: rendered, no coordinator or no worker workload", v.dir)
			continue
		}
		rv := &variant{dir: v.dir, objs: r.objs, coord: *coord, work: *work}
		svc := rv.coordinatorService(t)
		for _, f := range []string{"coordinator", "gossip"} {
			host, _ := work.port(t, f)
			if m := envRef.FindStringSubmatch(host); m != nil && m[0] == host {
				host = work.env[m[1]].Value
			}
			if host != svc.Metadata.Name {
				t.Errorf("%s: rendered, the workers' --%s host is %q, the coordinator Service is %s", v.dir, f, host, svc.Metadata.Name)
			}
		}
		all = append(all, r)
	}
	for i, a := range all {
		for j, b := range all {
			if i == j {
				continue
			}
			for _, oa := range a.objs {
				for _, ob := range b.objs {
					if i < j && oa.Kind == ob.Kind && oa.Metadata.Name == ob.Metadata.Name {
						t.Errorf("%s and %s both render %s %s", a.v.dir, b.v.dir, oa.Kind, oa.Metadata.Name)
					}
				}
				for _, labels := range b.pods {
					if labelsMatch(oa.Spec.Selector, labels) {
						t.Errorf("%s's %s %s selects pods of %s (%v)", a.v.dir, oa.Kind, oa.Metadata.Name, b.v.dir, labels)
					}
				}
			}
		}
	}
}
