// Package k8s_test checks the Kubernetes manifests in this directory
// against each other and against the recur binary: every flag in a
// container's args exists in `recur COMMAND --help`, every address flag has
// a matching container port, Service and probe, and every path flag lies on
// the right kind of volume. No cluster is needed.
package k8s_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/recur-ml/recur/deploy/internal/recurflags"
	"github.com/recur-ml/recur/internal/cluster"
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
		Resources  []string          `yaml:"resources"` // Kustomization
		file       string
	}
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	spec struct {
		ClusterIP   string         `yaml:"clusterIP"`
		Selector    map[string]any `yaml:"selector"`
		Ports       []servicePort  `yaml:"ports"`
		ServiceName string         `yaml:"serviceName"`
		Replicas    *int           `yaml:"replicas"`
		Template    struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []object `yaml:"volumeClaimTemplates"`
		AccessModes          []string `yaml:"accessModes"`
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
		Containers []container `yaml:"containers"`
		Volumes    []volume    `yaml:"volumes"`
	}
	container struct {
		Name           string   `yaml:"name"`
		Image          string   `yaml:"image"`
		Command        []string `yaml:"command"`
		Args           []string `yaml:"args"`
		Env            []envVar `yaml:"env"`
		Ports          []containerPort
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
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
			FieldRef     *struct{ FieldPath string } `yaml:"fieldRef"`
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
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
)

// manifests parses every YAML file here.
func manifests(t *testing.T) []*object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var objs []*object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			o := &object{file: f}
			if err := dec.Decode(o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.APIVersion == "" || o.Kind == "" || (o.Metadata.Name == "" && o.Kind != "Kustomization") {
				t.Errorf("%s: an object without apiVersion, kind or metadata.name: %+v", f, o.Metadata)
			}
			objs = append(objs, o)
		}
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

func TestKustomizationListsEveryManifest(t *testing.T) {
	objs := manifests(t)
	k := find(t, objs, "Kustomization", "")
	for _, o := range objs {
		if o.Kind == "Kustomization" || strings.HasSuffix(o.file, ".example.yaml") {
			continue
		}
		if !slices.Contains(k.Resources, o.file) {
			t.Errorf("kustomization.yaml does not list %s (%s %s)", o.file, o.Kind, o.Metadata.Name)
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

// pod is a workload's pod template with its single recur container.
type pod struct {
	owner *object
	c     container
	cmd   string            // coordinator or worker
	flags map[string]string // --name → value, $(VAR) kept
}

func recurPod(t *testing.T, o *object) pod {
	t.Helper()
	cs := o.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s %s: want one container, have %d", o.Kind, o.Metadata.Name, len(cs))
	}
	c := cs[0]
	if len(c.Command) != 0 {
		t.Errorf("%s: command overrides the image's entrypoint /recur", c.Name)
	}
	if len(c.Args) == 0 {
		t.Fatalf("%s: no args", c.Name)
	}
	p := pod{owner: o, c: c, cmd: c.Args[0], flags: map[string]string{}}
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
			t.Errorf("%s %s: `recur %s` has no flag --%s", o.Kind, o.Metadata.Name, p.cmd, a.Name)
		}
		p.flags[a.Name] = a.Value
	}
	return p
}

// port returns the port of an address flag, which must be set.
func (p pod) port(t *testing.T, flag string) (host string, port int) {
	t.Helper()
	v, ok := p.flags[flag]
	if !ok {
		t.Fatalf("%s: --%s is not set", p.c.Name, flag)
	}
	h, ps, err := net.SplitHostPort(v)
	if err != nil {
		t.Fatalf("%s: --%s=%s: %v", p.c.Name, flag, v, err)
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n == 0 {
		t.Fatalf("%s: --%s=%s: want a fixed port", p.c.Name, flag, v)
	}
	return h, n
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
	t.Errorf("%s: no %s container port %q", p.c.Name, protocol, ref)
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

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkCommon checks what every recur container needs: $(VAR) references
// defined, the cluster key from the Secret, a non-root user matching the
// image, resource requests, address flags with container ports.
func checkCommon(t *testing.T, objs []*object, p pod, addrFlags map[string][]string) {
	t.Helper()
	env := map[string]envVar{}
	for _, e := range p.c.Env {
		env[e.Name] = e
	}
	for _, a := range p.c.Args {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("%s: arg %q uses $(%s), which the container's env does not define", p.c.Name, a, m[1])
			}
		}
	}
	key, ok := env["RECUR_CLUSTER_KEY"]
	if !ok || key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil {
		t.Errorf("%s: RECUR_CLUSTER_KEY must come from a Secret", p.c.Name)
	} else {
		ref := key.ValueFrom.SecretKeyRef
		if _, ok := find(t, objs, "Secret", ref.Name).StringData[ref.Key]; !ok {
			t.Errorf("%s: Secret %s has no key %s", p.c.Name, ref.Name, ref.Key)
		}
	}
	if !strings.HasPrefix(p.c.Image, "recur:") && !strings.Contains(p.c.Image, "/recur:") {
		t.Errorf("%s: image %q is not the recur image", p.c.Name, p.c.Image)
	}
	sc := p.owner.Spec.Template.Spec.SecurityContext
	if !sc.RunAsNonRoot || sc.RunAsUser != imageUser(t) {
		t.Errorf("%s: securityContext runAsNonRoot=%v runAsUser=%d, want true and the image's USER %d", p.c.Name, sc.RunAsNonRoot, sc.RunAsUser, imageUser(t))
	}
	if p.c.Resources.Requests["cpu"] == "" || p.c.Resources.Requests["memory"] == "" {
		t.Errorf("%s: no cpu or memory request", p.c.Name)
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

func TestCoordinator(t *testing.T) {
	objs := manifests(t)
	sts := find(t, objs, "StatefulSet", "recur-coordinator")
	p := recurPod(t, sts)
	if p.cmd != "coordinator" {
		t.Fatalf("the StatefulSet runs `recur %s`, want coordinator", p.cmd)
	}
	checkCommon(t, objs, p, map[string][]string{"listen": {"TCP"}, "gossip": {"TCP", "UDP"}, "metrics": {"TCP"}})
	if r := sts.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("the coordinator StatefulSet needs exactly 1 replica")
	}
	if !labelsMatch(sts.Spec.Selector, sts.Spec.Template.Metadata.Labels) {
		t.Errorf("StatefulSet selector %v does not match its pod labels %v", sts.Spec.Selector, sts.Spec.Template.Metadata.Labels)
	}

	// The headless Service: the StatefulSet's serviceName, selecting its
	// pods, every port reaching a container port.
	svc := find(t, objs, "Service", sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != "None" {
		t.Errorf("Service %s: clusterIP %q, want None (headless)", svc.Metadata.Name, svc.Spec.ClusterIP)
	}
	if !labelsMatch(svc.Spec.Selector, sts.Spec.Template.Metadata.Labels) {
		t.Errorf("Service %s does not select the coordinator pods", svc.Metadata.Name)
	}
	for _, sp := range svc.Spec.Ports {
		if got := p.containerPort(t, sp.TargetPort, cmp(sp.Protocol, "TCP")); got != sp.Port {
			t.Errorf("Service port %s: port %d reaches container port %d", sp.Name, sp.Port, got)
		}
	}

	// Readiness (and liveness) from /healthz on the --metrics port.
	_, metrics := p.port(t, "metrics")
	for name, pr := range map[string]*probe{"readiness": p.c.ReadinessProbe, "liveness": p.c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("coordinator: no httpGet %s probe", name)
			continue
		}
		if pr.HTTPGet.Path != "/healthz" || p.containerPort(t, pr.HTTPGet.Port, "TCP") != metrics {
			t.Errorf("coordinator: %s probe %s on port %s, want /healthz on --metrics port %d", name, pr.HTTPGet.Path, pr.HTTPGet.Port, metrics)
		}
	}

	// --dir on the PersistentVolumeClaim template, so checkpoints survive.
	m, ok := p.mountOf(p.flags["dir"])
	if !ok || m.ReadOnly || !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(o object) bool { return o.Metadata.Name == m.Name }) {
		t.Errorf("coordinator: --dir=%s is not on a writable volumeClaimTemplate mount (mount %+v)", p.flags["dir"], m)
	}

	// --config is a key of a ConfigMap volume, and that job loads.
	job := loadJob(t, objs, p)
	if _, ok := p.mountOf(job.Data.Text); !ok {
		t.Errorf("coordinator: data.text %s is on no mount", job.Data.Text)
	}
}

// loadJob returns the job the coordinator's --config names, read from its
// ConfigMap and validated like `recur coordinator` does.
func loadJob(t *testing.T, objs []*object, p pod) cluster.JobConfig {
	t.Helper()
	file := p.flags["config"]
	m, ok := p.mountOf(file)
	if !ok {
		t.Fatalf("coordinator: --config=%s is on no mount", file)
	}
	v, ok := p.volume(m.Name)
	if !ok || v.ConfigMap == nil {
		t.Fatalf("coordinator: --config=%s is not on a ConfigMap volume", file)
	}
	cm := find(t, objs, "ConfigMap", v.ConfigMap.Name)
	key := strings.TrimPrefix(strings.TrimPrefix(file, m.MountPath), "/")
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %q (--config=%s)", cm.Metadata.Name, key, file)
	}
	tmp := filepath.Join(t.TempDir(), path.Base(file))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	job, err := cluster.LoadJob(tmp)
	if err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Metadata.Name, key, err)
	}
	if err := job.Validate(); err != nil {
		t.Fatalf("ConfigMap %s %s: %v", cm.Metadata.Name, key, err)
	}
	return job
}

func TestWorkers(t *testing.T) {
	objs := manifests(t)
	dep := find(t, objs, "Deployment", "recur-worker")
	w := recurPod(t, dep)
	if w.cmd != "worker" {
		t.Fatalf("the Deployment runs `recur %s`, want worker", w.cmd)
	}
	checkCommon(t, objs, w, map[string][]string{"ring-listen": {"TCP"}, "peer-listen": {"TCP"}, "gossip-listen": {"TCP", "UDP"}})
	if !labelsMatch(dep.Spec.Selector, dep.Spec.Template.Metadata.Labels) {
		t.Errorf("Deployment selector %v does not match its pod labels", dep.Spec.Selector)
	}
	if _, ok := w.flags["id"]; !ok {
		t.Errorf("worker: no --id (the pod name keeps logs readable)")
	}
	// Listeners bind the pod IP: a worker advertises its listeners'
	// addresses, and 127.0.0.1 would be unreachable from other pods.
	for _, f := range []string{"ring-listen", "peer-listen", "gossip-listen"} {
		if h, _ := w.port(t, f); h == "127.0.0.1" || h == "localhost" || h == "" {
			t.Errorf("worker: --%s=%s binds no reachable address", f, w.flags[f])
		}
	}
	if w.c.ReadinessProbe == nil || w.c.ReadinessProbe.TCPSocket == nil {
		t.Errorf("worker: no tcpSocket readiness probe")
	} else if _, ring := w.port(t, "ring-listen"); w.containerPort(t, w.c.ReadinessProbe.TCPSocket.Port, "TCP") != ring {
		t.Errorf("worker: readiness probe port %s is not the ring port %d", w.c.ReadinessProbe.TCPSocket.Port, ring)
	}

	// --coordinator and --gossip reach the coordinator's listeners
	// through its Service.
	sts := find(t, objs, "StatefulSet", "recur-coordinator")
	c := recurPod(t, sts)
	svc := find(t, objs, "Service", sts.Spec.ServiceName)
	for wf, cf := range map[string]string{"coordinator": "listen", "gossip": "gossip"} {
		host, port := w.port(t, wf)
		if h := strings.Split(host, ".")[0]; h != svc.Metadata.Name && !strings.HasPrefix(host, sts.Metadata.Name+"-0."+svc.Metadata.Name) {
			t.Errorf("worker: --%s=%s is not the coordinator Service %s", wf, w.flags[wf], svc.Metadata.Name)
		}
		_, want := c.port(t, cf)
		i := slices.IndexFunc(svc.Spec.Ports, func(sp servicePort) bool { return sp.Port == port && cmp(sp.Protocol, "TCP") == "TCP" })
		if i < 0 {
			t.Errorf("worker: --%s port %d is not a port of Service %s", wf, port, svc.Metadata.Name)
		} else if got := c.containerPort(t, svc.Spec.Ports[i].TargetPort, "TCP"); got != want {
			t.Errorf("worker: --%s reaches container port %d, the coordinator's --%s is %d", wf, got, cf, want)
		}
	}

	// The corpus: the job's data.text is on the same read-only claim in
	// the coordinator and the workers.
	job := loadJob(t, objs, c)
	claim := func(p pod) string {
		m, ok := p.mountOf(job.Data.Text)
		if !ok {
			t.Fatalf("%s: data.text %s is on no mount", p.c.Name, job.Data.Text)
		}
		v, ok := p.volume(m.Name)
		if !ok || v.PersistentVolumeClaim == nil || !m.ReadOnly || !v.PersistentVolumeClaim.ReadOnly {
			t.Fatalf("%s: data.text %s is not on a read-only PersistentVolumeClaim mount", p.c.Name, job.Data.Text)
		}
		return v.PersistentVolumeClaim.ClaimName
	}
	if a, b := claim(c), claim(w); a != b {
		t.Errorf("the coordinator reads the corpus from claim %s, the workers from %s", a, b)
	} else {
		find(t, objs, "PersistentVolumeClaim", a)
	}
	if job.Train.Threads > 0 {
		if cpu, err := strconv.ParseFloat(strings.TrimSuffix(w.c.Resources.Requests["cpu"], "m"), 64); err == nil {
			if strings.HasSuffix(w.c.Resources.Requests["cpu"], "m") {
				cpu /= 1000
			}
			if cpu < float64(job.Train.Threads) {
				t.Errorf("worker: cpu request %s is below train.threads %d", w.c.Resources.Requests["cpu"], job.Train.Threads)
			}
		}
	}
}
