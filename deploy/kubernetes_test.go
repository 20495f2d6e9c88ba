package deploy

import (
	"net"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// manifests are the rendered objects of one kustomization, decoded strictly.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	monitors    []*monitoringv1.ServiceMonitor
	rules       []*monitoringv1.PrometheusRule
}

// render builds the kustomization in dir (relative to deploy/) with
// kustomize's own library and decodes every object into its Kubernetes type;
// a field the type does not know fails the test, and so does a kind this
// test does not know.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var m manifests
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		gvk := r.GetGvk()
		var obj any
		switch kind := gvk.ApiVersion() + "/" + gvk.Kind; kind {
		case "apps/v1/Deployment":
			obj = into(&m.deployments)
		case "v1/Service":
			obj = into(&m.services)
		case "v1/ConfigMap":
			obj = into(&m.configMaps)
		case "policy/v1/PodDisruptionBudget":
			obj = into(&m.pdbs)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = into(&m.hpas)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			obj = into(&m.monitors)
		case "monitoring.coreos.com/v1/PrometheusRule":
			obj = into(&m.rules)
		default:
			t.Fatalf("%s renders %s %s, a kind this test does not check", dir, kind, r.GetName())
		}
		if err := yaml.UnmarshalStrict(y, obj); err != nil {
			t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", dir, gvk.Kind, r.GetName(), err, y)
		}
	}
	return m
}

// into appends a new T to list and returns it to decode into.
func into[T any](list *[]*T) *T {
	o := new(T)
	*list = append(*list, o)
	return o
}

// imageName is the image name `make image` builds (scripts/image.sh's IMAGE
// default).
func imageName(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^IMAGE=\$\{IMAGE:-([^}]+)\}$`).FindSubmatch(readFile(t, "scripts/image.sh"))
	if m == nil {
		t.Fatal("scripts/image.sh has no IMAGE=${IMAGE:-name} line")
	}
	return string(m[1])
}

// dockerfileUser is the numeric USER of deploy/Dockerfile.
func dockerfileUser(t *testing.T) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindSubmatch(readFile(t, "deploy/Dockerfile"))
	if m == nil {
		t.Fatal("deploy/Dockerfile has no numeric USER uid:gid line")
	}
	uid, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return uid
}

func TestKustomizeBase(t *testing.T) {
	m := render(t, "kubernetes/base")
	if len(m.monitors)+len(m.rules) != 0 {
		t.Errorf("the base renders Prometheus operator objects; they belong to the monitoring component, so the base applies to any cluster")
	}
	cfg := checkManifests(t, m)
	d := m.deployments[0]
	if img := d.Spec.Template.Spec.Containers[0].Image; img != imageName(t) {
		t.Errorf("base image %q; want %q, the name `make image` builds", img, imageName(t))
	}

	// The ConfigMap's settings on the real binary (listeners moved to free
	// loopback ports, the embedded broker): the probe paths answer 200 on
	// the admin listener and not on the public one, and SIGTERM turns
	// readiness to 503 at once while the public listener keeps serving for
	// the drain delay.
	var extra []string
	for k, v := range cfg {
		if k != "ORDERFLOW_LISTEN" && k != "ORDERFLOW_ADMIN_LISTEN" && k != "KAFKA_BROKERS" {
			extra = append(extra, k+"="+v)
		}
	}
	env, base, admin := serverEnv(t, testDB(t), extra...)
	srv := startServer(t, env, base, admin)
	c := d.Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
		if code, body := get(admin + p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("probe path %s on the admin listener: %d %s; want 200", p.HTTPGet.Path, code, body)
		}
		if code, _ := get(base + p.HTTPGet.Path); code == http.StatusOK {
			t.Errorf("probe path %s answers 200 on the public listener too; the probes must test the admin listener", p.HTTPGet.Path)
		}
	}
	drain, _ := time.ParseDuration(cfg["ORDERFLOW_DRAIN_DELAY"])
	sent := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The order of events is what the drain needs, whatever the machine's
	// load: readiness 503 first, while the public listener still takes
	// orders, and the exit no sooner than the drain delay.
	for code, _ := get(admin + c.ReadinessProbe.HTTPGet.Path); code != http.StatusServiceUnavailable; code, _ = get(admin + c.ReadinessProbe.HTTPGet.Path) {
		select {
		case <-srv.done:
			t.Fatalf("the server exited %v after SIGTERM with readiness still %d; want 503 during the drain delay", time.Since(sent), code)
		case <-time.After(20 * time.Millisecond):
		}
	}
	notReady := time.Since(sent)
	if code, body := do(http.MethodPost, base+"/v1/orders", "application/json", orderJSON("drain_1")); code != http.StatusCreated {
		t.Errorf("POST once readiness was 503 (%v after SIGTERM): %d %s; want 201 until the drain delay ends", time.Since(sent), code, body)
	}
	<-srv.done
	if took := time.Since(sent); took < drain {
		t.Errorf("the server exited %v after SIGTERM, before the drain delay %v", took, drain)
	}
	t.Logf("readiness 503 %v after SIGTERM; exited after %v (drain delay %v)", notReady, time.Since(sent), drain)
}

func TestKustomizeExampleOverlay(t *testing.T) {
	m := render(t, "kubernetes/overlays/example")
	checkManifests(t, m)
	img := m.deployments[0].Spec.Template.Spec.Containers[0].Image
	if name, _, _ := strings.Cut(img, ":"); !strings.HasSuffix(name, "/"+imageName(t)) {
		t.Errorf("overlay image %q is not the `make image` name %q pushed to a registry", img, imageName(t))
	}
	for _, o := range m.deployments {
		if o.Namespace == "" {
			t.Errorf("the example overlay leaves Deployment %s without a namespace", o.Name)
		}
	}
	if len(m.monitors) != 1 || len(m.rules) != 1 {
		t.Fatalf("the example overlay renders %d ServiceMonitors and %d PrometheusRules; want 1 and 1", len(m.monitors), len(m.rules))
	}

	// The ServiceMonitor scrapes /metrics on the admin port of a Service
	// that exists and selects the pods.
	sm := m.monitors[0]
	var admin *corev1.Service
	for _, s := range m.services {
		if labelsMatch(sm.Spec.Selector.MatchLabels, s.Labels) {
			if admin != nil {
				t.Errorf("ServiceMonitor selects Services %s and %s; want one", admin.Name, s.Name)
			}
			admin = s
		}
	}
	if admin == nil {
		t.Fatalf("ServiceMonitor selector %v matches no Service", sm.Spec.Selector.MatchLabels)
	}
	for _, ep := range sm.Spec.Endpoints {
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor path %q; want /metrics", ep.Path)
		}
		if !slices.ContainsFunc(admin.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port && p.TargetPort.StrVal == "admin" }) {
			t.Errorf("ServiceMonitor port %q is not Service %s's port to the pods' admin port", ep.Port, admin.Name)
		}
	}

	// The PrometheusRule holds exactly the groups of the rule file promtool tests.
	var file struct {
		Groups any `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/prometheus/alerts.yaml"), &file); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	var inRule struct {
		Groups any `json:"groups"`
	}
	b, _ := yaml.Marshal(m.rules[0].Spec)
	if err := yaml.Unmarshal(b, &inRule); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(file.Groups, inRule.Groups) {
		t.Errorf("the PrometheusRule's groups differ from deploy/prometheus/alerts.yaml's; copy the file's groups into deploy/kubernetes/monitoring/prometheusrule.yaml")
	}
}

// checkManifests checks what base and overlay share, and returns the
// settings of the ConfigMap the Deployment reads.
func checkManifests(t *testing.T, m manifests) map[string]string {
	t.Helper()
	if len(m.deployments) != 1 || len(m.configMaps) != 1 || len(m.pdbs) != 1 || len(m.hpas) != 1 || len(m.services) != 2 {
		t.Fatalf("rendered %d Deployments, %d ConfigMaps, %d PDBs, %d HPAs, %d Services; want 1, 1, 1, 1, 2",
			len(m.deployments), len(m.configMaps), len(m.pdbs), len(m.hpas), len(m.services))
	}
	d, cm := m.deployments[0], m.configMaps[0]
	pod := d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	cfg := cm.Data

	// Every variable the pod gets is one orderflow reads.
	flags := flagTable(t)
	var names []string
	for k := range cfg {
		names = append(names, k)
	}
	for _, e := range c.Env {
		names = append(names, e.Name)
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Key != e.Name {
			t.Errorf("env %s comes from Secret key %s; name the key like the variable", e.Name, e.ValueFrom.SecretKeyRef.Key)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if !flags[n] {
			t.Errorf("the pod sets %s, which orderflow -h does not list: a renamed or misspelt setting", n)
		}
	}
	refs := c.EnvFrom
	if len(refs) != 1 || refs[0].ConfigMapRef == nil || refs[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom %+v; want the ConfigMap %s", refs, cm.Name)
	}
	secretKeys := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			secretKeys[e.Name] = true
		}
	}
	for _, k := range []string{"DATABASE_URL", "ORDERFLOW_API_KEYS"} {
		if !secretKeys[k] {
			t.Errorf("%s is not taken from a Secret", k)
		}
		if _, ok := cfg[k]; ok {
			t.Errorf("%s is in the ConfigMap; it is a secret", k)
		}
	}

	// Ports: the container ports are the listeners' ports; the probes test
	// the admin listener.
	port := func(name string) int32 {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Errorf("no container port named %s", name)
		return -1
	}
	listenPort := func(key string) int32 {
		_, p, err := net.SplitHostPort(cfg[key])
		n, err2 := strconv.Atoi(p)
		if err != nil || err2 != nil {
			t.Errorf("%s=%q is not host:port", key, cfg[key])
		}
		return int32(n)
	}
	if got, want := port("http"), listenPort("ORDERFLOW_LISTEN"); got != want {
		t.Errorf("container port http %d; ORDERFLOW_LISTEN says %d", got, want)
	}
	if got, want := port("admin"), listenPort("ORDERFLOW_ADMIN_LISTEN"); got != want {
		t.Errorf("container port admin %d; ORDERFLOW_ADMIN_LISTEN says %d", got, want)
	}
	probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
	wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/healthz"}
	for kind, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", kind)
			continue
		}
		if p.HTTPGet.Path != wantPath[kind] || p.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe GET %s on port %s; want %s on admin", kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), wantPath[kind])
		}
	}

	// The grace period covers the drain delay and the shutdown budget.
	dur := func(key string) time.Duration {
		v, err := time.ParseDuration(cfg[key])
		if err != nil || v <= 0 {
			t.Errorf("%s=%q; want a positive duration", key, cfg[key])
		}
		return v
	}
	drain, shutdown := dur("ORDERFLOW_DRAIN_DELAY"), dur("ORDERFLOW_SHUTDOWN_TIMEOUT")
	grace := pod.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second < drain+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v < drain delay %v + shutdown timeout %v: SIGKILL would cut the drain short", grace, drain, shutdown)
	}
	if rp := c.ReadinessProbe; rp != nil && time.Duration(rp.PeriodSeconds*rp.FailureThreshold)*time.Second > drain {
		t.Errorf("readiness needs %ds to turn false, longer than the drain delay %v", rp.PeriodSeconds*rp.FailureThreshold, drain)
	}

	// Security: non-root numeric user (the image's), read-only root, no
	// escalation, no capabilities.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Errorf("pod securityContext.runAsNonRoot is not true")
	}
	if uid := dockerfileUser(t); psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != uid {
		t.Errorf("pod runAsUser is not the image's user %d", uid)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container readOnlyRootFilesystem is not true")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container allowPrivilegeEscalation is not false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container capabilities %+v; want drop [ALL], add none", sc.Capabilities)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("no memory limit")
	}

	// Selectors: the Deployment's, the Services', the PDB's select the pods.
	if !labelsMatch(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	for _, s := range m.services {
		if len(s.Spec.Selector) == 0 || !labelsMatch(s.Spec.Selector, pod.Labels) {
			t.Errorf("Service %s selector %v does not select the pods %v", s.Name, s.Spec.Selector, pod.Labels)
		}
		for _, p := range s.Spec.Ports {
			port(p.TargetPort.StrVal)
		}
	}
	if pdb := m.pdbs[0]; !labelsMatch(pdb.Spec.Selector.MatchLabels, pod.Labels) || pdb.Spec.MaxUnavailable == nil {
		t.Errorf("PodDisruptionBudget selector %v / maxUnavailable %v: want it to select the pods and allow one down", pdb.Spec.Selector.MatchLabels, pdb.Spec.MaxUnavailable)
	}
	if h := m.hpas[0]; h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
		t.Errorf("HPA targets %s/%s with min %v; want the Deployment %s with at least 2 replicas (the PDB allows one down)", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name, h.Spec.MinReplicas, d.Name)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas %d; leave them to the HPA", *d.Spec.Replicas)
	}
	return cfg
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}
