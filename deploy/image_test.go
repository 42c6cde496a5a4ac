package deploy

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfile is what the checks read of deploy/Dockerfile.
type dockerfile struct {
	stages []string          // names of the stages so far ("" for unnamed)
	copies []dockerCopy      // COPY instructions
	runs   []string          // RUN commands
	args   map[string]string // ARG defaults
	user   string            // the last USER
	expose []string          // EXPOSE ports
}

type dockerCopy struct {
	from    string // --from stage, or "" for the build context
	sources []string
	dest    string
	line    int
}

// parseDockerfile reads the instructions the checks need; continued lines
// are joined.
func parseDockerfile(t *testing.T, text string) dockerfile {
	t.Helper()
	df := dockerfile{args: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	var inst string
	line, start := 0, 0
	flush := func() {
		fields := strings.Fields(inst)
		inst = ""
		if len(fields) == 0 {
			return
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			name := ""
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				name = fields[3]
			}
			df.stages = append(df.stages, name)
		case "COPY", "ADD":
			c := dockerCopy{line: start}
			var rest []string
			for _, f := range fields[1:] {
				if v, ok := strings.CutPrefix(f, "--from="); ok {
					c.from = v
				} else if !strings.HasPrefix(f, "--") {
					rest = append(rest, f)
				}
			}
			if len(rest) < 2 {
				t.Errorf("Dockerfile line %d: COPY needs a source and a destination", start)
				return
			}
			c.sources, c.dest = rest[:len(rest)-1], rest[len(rest)-1]
			df.copies = append(df.copies, c)
		case "RUN":
			df.runs = append(df.runs, strings.Join(fields[1:], " "))
		case "ARG":
			k, v, _ := strings.Cut(fields[1], "=")
			df.args[k] = strings.Trim(v, `"`)
		case "USER":
			df.user = fields[1]
		case "EXPOSE":
			df.expose = append(df.expose, fields[1:]...)
		}
	}
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if inst == "" && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if inst == "" {
			start = line
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			inst += s + " "
			continue
		}
		inst += l
		flush()
	}
	return df
}

// dockerignored reports whether .dockerignore keeps rel (a path relative
// to the context) out of the build context, for the plain patterns it
// uses: a name or a glob, anchored at the root.
func dockerignored(t *testing.T, rel string) bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Split(string(raw), "\n") {
		p = strings.TrimSpace(p)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		for r := rel; r != "." && r != "/"; r = path.Dir(r) {
			if ok, _ := path.Match(strings.TrimPrefix(p, "/"), r); ok {
				return true
			}
		}
	}
	return false
}

// TestDockerfile checks deploy/Dockerfile: stages referred to exist,
// COPY sources are in the build context (the repository root, less
// .dockerignore), the build builds the command that exists and links the
// version into a variable that exists, and the runtime user is not root.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "deploy/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := parseDockerfile(t, string(raw))
	if len(df.stages) < 2 {
		t.Errorf("%d stages, want a build stage and a runtime one", len(df.stages))
	}
	for _, c := range df.copies {
		if c.from != "" {
			if !slices.Contains(df.stages[:len(df.stages)-1], c.from) {
				t.Errorf("Dockerfile line %d: COPY --from=%s names no earlier stage (stages: %q)", c.line, c.from, df.stages)
			}
			continue
		}
		for _, src := range c.sources {
			rel := path.Clean(src)
			if rel == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
				t.Errorf("Dockerfile line %d: COPY %s: %v", c.line, src, err)
			} else if dockerignored(t, rel) {
				t.Errorf("Dockerfile line %d: COPY %s, which .dockerignore leaves out of the context", c.line, src)
			}
		}
	}
	var build string
	for _, r := range df.runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	pkg := regexp.MustCompile(`\./cmd/[a-z]+`).FindString(build)
	if pkg == "" {
		t.Fatalf("no go build of ./cmd/... in %q", df.runs)
	}
	mustExist(t, "the package the image builds", pkg, true)
	if !strings.Contains(build, "CGO_ENABLED=1") {
		t.Error("the build must enable cgo (pg_query_go)")
	}
	// -X main.version=${VERSION}: the variable must exist, or the linker
	// sets nothing and says nothing.
	m := regexp.MustCompile(`-X main\.([A-Za-z_]+)=\$\{?([A-Z_]+)`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("the build does not link the version in with -X main.<var>=${VERSION}: %q", build)
	}
	if _, ok := df.args[m[2]]; !ok {
		t.Errorf("-X uses ${%s}, which no ARG declares", m[2])
	}
	mainGo, err := os.ReadFile(filepath.Join(root, pkg, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^var ` + m[1] + ` string$`).Match(mainGo) {
		t.Errorf("%s/main.go declares no `var %s string` for -X main.%s", pkg, m[1], m[1])
	}
	if df.user == "" || df.user == "root" || df.user == "0" {
		t.Errorf("the runtime image runs as %q; it must not be root", df.user)
	}
	for _, port := range []string{"6432", "9930"} {
		if !slices.Contains(df.expose, port) {
			t.Errorf("EXPOSE %v lacks %s", df.expose, port)
		}
	}
	// The image carries the k8s config renderer the Deployment runs.
	if !slices.ContainsFunc(df.copies, func(c dockerCopy) bool {
		return c.dest == "/usr/local/bin/pgshard-render-config" && slices.Contains(c.sources, "deploy/k8s/render-config.sh")
	}) {
		t.Error("the image lacks /usr/local/bin/pgshard-render-config from deploy/k8s/render-config.sh")
	}
	if !bytes.Contains(raw, []byte("FROM golang:")) {
		t.Error("the build stage is not a golang image")
	}
}
