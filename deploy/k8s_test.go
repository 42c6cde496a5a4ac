package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pgshard/pgshard/config"
)

// k8sObject is what the checks read of a Kubernetes manifest: every kind
// used in deploy/k8s, the fields the checks need.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`       // ConfigMap
	StringData map[string]string `yaml:"stringData"` // Secret
	Spec       struct {
		// Deployment
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				InitContainers []k8sContainer `yaml:"initContainers"`
				Containers     []k8sContainer `yaml:"containers"`
				Volumes        []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
					EmptyDir any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service: the selector is a plain map, read from the node.
		Ports []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		// PodDisruptionBudget
		MinAvailable any `yaml:"minAvailable"`
	} `yaml:"spec"`

	raw  map[string]any
	file string
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// hasPort reports whether the container declares port, a name or a number.
func (c k8sContainer) hasPort(port any) (int, bool) {
	for _, p := range c.Ports {
		switch v := port.(type) {
		case string:
			if p.Name == v {
				return p.ContainerPort, true
			}
		case int:
			if p.ContainerPort == v {
				return v, true
			}
		}
	}
	return 0, false
}

// mountedAt is the volume mounted over file p, or "".
func (c k8sContainer) mountedAt(p string) string {
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return m.Name
		}
	}
	return ""
}

// readK8s reads the manifests kustomization.yaml lists, checking that
// every YAML file of deploy/k8s is one of them and that each document has
// apiVersion, kind and metadata.name.
func readK8s(t *testing.T) []*k8sObject {
	t.Helper()
	dir := filepath.Join(root, "deploy/k8s")
	var kust struct {
		Kind      string   `yaml:"kind"`
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(mustRead(t, "deploy/k8s/kustomization.yaml"), &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if kust.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: kind %q", kust.Kind)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("deploy/k8s/%s is not among kustomization.yaml's resources", b)
		}
	}
	var objs []*k8sObject
	for _, res := range kust.Resources {
		raw := mustRead(t, filepath.Join("deploy/k8s", res))
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("deploy/k8s/%s: %v", res, err)
			}
			o := &k8sObject{file: res}
			if err := node.Decode(o); err != nil {
				t.Fatalf("deploy/k8s/%s: %v", res, err)
			}
			if err := node.Decode(&o.raw); err != nil {
				t.Fatalf("deploy/k8s/%s: %v", res, err)
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("deploy/k8s/%s: a document lacks apiVersion, kind or metadata.name", res)
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func findK8s(objs []*k8sObject, kind, name string) *k8sObject {
	for _, o := range objs {
		if o.Kind == kind && (name == "" || o.Metadata.Name == name) {
			return o
		}
	}
	return nil
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// TestK8sManifests checks deploy/k8s: required fields, API versions, the
// Deployment's probes on ports its container declares (/readyz and
// /healthz on the metrics port of the configuration), the ConfigMap and
// Secret it uses existing with the keys it uses, the Service and the
// PodDisruptionBudget selecting its pods, and the scrape annotations.
func TestK8sManifests(t *testing.T) {
	objs := readK8s(t)
	wantAPI := map[string]string{"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1", "PodDisruptionBudget": "policy/v1"}
	for _, kind := range slices.Sorted(maps.Keys(wantAPI)) {
		o := findK8s(objs, kind, "")
		if o == nil {
			t.Errorf("no %s in deploy/k8s", kind)
		} else if o.APIVersion != wantAPI[kind] {
			t.Errorf("%s %s: apiVersion %s, want %s", kind, o.Metadata.Name, o.APIVersion, wantAPI[kind])
		}
	}
	dep := findK8s(objs, "Deployment", "")
	if dep == nil {
		t.FailNow()
	}
	pod := dep.Spec.Template
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("Deployment: replicas %v, want 2 or more", dep.Spec.Replicas)
	}
	if !subset(dep.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("Deployment: selector %v does not match its pods' labels %v", dep.Spec.Selector.MatchLabels, pod.Metadata.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("Deployment: %d containers, want pgshard alone", len(pod.Spec.Containers))
	}
	ctr := pod.Spec.Containers[0]

	// The configuration the pod runs: the ConfigMap's template, filled in
	// by the init container.
	volumes := map[string]int{}
	for i, v := range pod.Spec.Volumes {
		volumes[v.Name] = i
		if v.ConfigMap != nil && findK8s(objs, "ConfigMap", v.ConfigMap.Name) == nil {
			t.Errorf("volume %s: ConfigMap %s is not in deploy/k8s", v.Name, v.ConfigMap.Name)
		}
		if v.Secret != nil && findK8s(objs, "Secret", v.Secret.SecretName) == nil {
			t.Errorf("volume %s: Secret %s is not in deploy/k8s", v.Name, v.Secret.SecretName)
		}
	}
	for _, c := range slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts %s, which is not a volume of the pod", c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			s := findK8s(objs, "Secret", ref.Name)
			if s == nil {
				t.Errorf("container %s: %s comes from Secret %s, which is not in deploy/k8s", c.Name, e.Name, ref.Name)
			} else if _, ok := s.StringData[ref.Key]; !ok {
				t.Errorf("container %s: %s comes from key %s of Secret %s, which has no such key", c.Name, e.Name, ref.Key, ref.Name)
			}
		}
	}
	configPath := argAfter(ctr.Args, "-config")
	if configPath == "" || ctr.mountedAt(configPath) == "" {
		t.Fatalf("pgshard's -config %q is on no volume", configPath)
	}
	var render *k8sContainer
	for i, c := range pod.Spec.InitContainers {
		if len(c.Command) == 3 && c.Command[0] == "pgshard-render-config" {
			render = &pod.Spec.InitContainers[i]
		}
	}
	if render == nil {
		t.Fatal("no init container runs pgshard-render-config TEMPLATE OUTPUT")
	}
	if render.mountedAt(render.Command[2]) != ctr.mountedAt(configPath) || filepath.Base(render.Command[2]) != filepath.Base(configPath) {
		t.Errorf("render-config writes %s, but pgshard reads %s", render.Command[2], configPath)
	}
	tmplVol := pod.Spec.Volumes[volumes[render.mountedAt(render.Command[1])]]
	if tmplVol.ConfigMap == nil {
		t.Fatalf("render-config's template %s is not on a ConfigMap volume", render.Command[1])
	}
	if v := pod.Spec.Volumes[volumes[ctr.mountedAt(configPath)]]; v.EmptyDir == nil {
		t.Errorf("the rendered configuration, holding passwords, should be on an emptyDir, not %s", v.Name)
	}
	cm := findK8s(objs, "ConfigMap", tmplVol.ConfigMap.Name)
	if cm == nil {
		t.FailNow()
	}
	tmpl, ok := cm.Data[filepath.Base(render.Command[1])]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", cm.Metadata.Name, filepath.Base(render.Command[1]))
	}
	c, err := config.Parse([]byte(tmpl))
	if err != nil {
		t.Fatalf("ConfigMap %s, proxy.yaml: %v", cm.Metadata.Name, err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal([]byte(tmpl), &keys); err != nil {
		t.Fatal(err)
	}
	if _, set := keys["instance_id"]; set {
		t.Error("the ConfigMap's proxy.yaml sets instance_id, which every pod would then share; leave it to the host name")
	}
	// Every placeholder is an environment variable of the init container.
	env := map[string]bool{}
	for _, e := range render.Env {
		env[e.Name] = true
	}
	for _, m := range regexp.MustCompile(`\$\{(PGSHARD_[A-Za-z0-9_]+)\}`).FindAllStringSubmatch(tmpl, -1) {
		if !env[m[1]] {
			t.Errorf("the template uses ${%s}, which the init container does not set", m[1])
		}
	}

	// Probes: /readyz and /healthz on the metrics port, which the
	// container declares and pgshard listens on.
	_, metricsPort, _ := strings.Cut(c.MetricsListen, ":")
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"readinessProbe", ctr.ReadinessProbe, "/readyz"}, {"livenessProbe", ctr.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("pgshard has no %s httpGet", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %s, want %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		port, ok := ctr.hasPort(p.probe.HTTPGet.Port)
		if !ok {
			t.Errorf("%s: port %v is not one the container declares", p.name, p.probe.HTTPGet.Port)
		} else if strconv.Itoa(port) != metricsPort {
			t.Errorf("%s: port %d, but metrics_listen is %s", p.name, port, c.MetricsListen)
		}
	}
	if _, listenPort, _ := strings.Cut(c.Listen, ":"); !slices.ContainsFunc(ctr.Ports, func(p struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}) bool {
		return strconv.Itoa(p.ContainerPort) == listenPort
	}) {
		t.Errorf("the container does not declare listen's port %s", listenPort)
	}
	ann := pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != metricsPort || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v: want prometheus.io/scrape true, port %s, path /metrics", ann, metricsPort)
	}

	// The Service and the PodDisruptionBudget select the pods; the
	// Service's target ports are the container's.
	svc := findK8s(objs, "Service", "")
	if svc == nil {
		t.FailNow()
	}
	sel := map[string]string{}
	if spec, ok := svc.raw["spec"].(map[string]any); ok {
		if m, ok := spec["selector"].(map[string]any); ok {
			for k, v := range m {
				sel[k], _ = v.(string)
			}
		}
	}
	if !subset(sel, pod.Metadata.Labels) {
		t.Errorf("Service %s: selector %v does not match the pods' labels %v", svc.Metadata.Name, sel, pod.Metadata.Labels)
	}
	var portNames []string
	for _, p := range svc.Spec.Ports {
		if _, ok := ctr.hasPort(p.TargetPort); !ok {
			t.Errorf("Service %s: port %s targets %v, which the container does not declare", svc.Metadata.Name, p.Name, p.TargetPort)
		}
		portNames = append(portNames, p.Name)
	}
	if !slices.Contains(portNames, "metrics") {
		t.Errorf("Service %s has no port named metrics for a ServiceMonitor", svc.Metadata.Name)
	}
	pdb := findK8s(objs, "PodDisruptionBudget", "")
	if pdb == nil {
		t.FailNow()
	}
	if !subset(pdb.Spec.Selector.MatchLabels, pod.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget: selector %v does not match the pods' labels", pdb.Spec.Selector.MatchLabels)
	}
	if n, ok := pdb.Spec.MinAvailable.(int); !ok || n < 1 || n >= *dep.Spec.Replicas {
		t.Errorf("PodDisruptionBudget: minAvailable %v, want at least 1 and fewer than the %d replicas", pdb.Spec.MinAvailable, *dep.Spec.Replicas)
	}
}

// TestK8sRenderConfig runs render-config.sh as the init container does,
// with the Secret's values, and loads what it writes with pgshard's
// config package: the passwords are the Secret's. A value that YAML would
// misread, and a missing variable, are refused.
func TestK8sRenderConfig(t *testing.T) {
	objs := readK8s(t)
	cm := findK8s(objs, "ConfigMap", "pgshard-config")
	dep := findK8s(objs, "Deployment", "")
	if cm == nil || dep == nil || len(dep.Spec.Template.Spec.InitContainers) == 0 {
		t.Fatal("no ConfigMap pgshard-config, or no Deployment with an init container")
	}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "template.yaml")
	if err := os.WriteFile(tmpl, []byte(cm.Data["proxy.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "proxy.yaml")
	script, err := filepath.Abs(filepath.Join(root, "deploy/k8s/render-config.sh"))
	if err != nil {
		t.Fatal(err)
	}
	render := func(env map[string]string) (string, error) {
		cmd := exec.Command("bash", script, tmpl, out)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	// Values as the Secret would give them, with characters a shell or a
	// substitution could mangle.
	values := map[string]string{}
	ctr := dep.Spec.Template.Spec.InitContainers[0]
	secretValue := map[string]string{}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		v := "p&w $HOME `x` 'q' " + e.ValueFrom.SecretKeyRef.Key
		values[e.Name], secretValue[e.ValueFrom.SecretKeyRef.Key] = v, v
	}
	if msg, err := render(values); err != nil {
		t.Fatalf("render-config: %v\n%s", err, msg)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the rendered file has mode %v, want 0600", st.Mode().Perm())
	}
	c, err := config.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range c.Users {
		got[u.Name] = string(u.Password)
	}
	for _, d := range c.Databases {
		got["backend:"+d.BackendUser] = string(d.BackendPassword)
	}
	want := map[string]string{
		"app":         secretValue["app-password"],
		"admin":       secretValue["admin-password"],
		"backend:app": secretValue["backend-password"],
	}
	if !maps.Equal(got, want) {
		t.Errorf("passwords after rendering: %q, want %q", got, want)
	}

	bad := maps.Clone(values)
	bad["PGSHARD_APP_PASSWORD"] = `a"b`
	if msg, err := render(bad); err == nil || !strings.Contains(msg, "PGSHARD_APP_PASSWORD holds a double quote") {
		t.Errorf("a value with a double quote: %v, %q; want a refusal naming the variable", err, msg)
	}
	missing := maps.Clone(values)
	delete(missing, "PGSHARD_BACKEND_PASSWORD")
	if msg, err := render(missing); err == nil || !strings.Contains(msg, "PGSHARD_BACKEND_PASSWORD is not set") {
		t.Errorf("a missing variable: %v, %q; want a refusal naming it", err, msg)
	}
}
