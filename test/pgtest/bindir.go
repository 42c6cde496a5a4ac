package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// errNotFound is what BinDir reports when no PostgreSQL is installed.
var errNotFound = errors.New("PostgreSQL server binaries not found; install them (apt-get install postgresql) or set PG_BINDIR")

// binaries is a directory holding initdb and postgres of one version.
type binaries struct {
	dir     string
	version string // "15.18", as postgres --version prints it
}

// major is the major version as PostgreSQL writes it in PG_VERSION: "15".
func (b binaries) major() string {
	major, _, _ := strings.Cut(b.version, ".")
	return major
}

func (b binaries) path(name string) string { return filepath.Join(b.dir, name) }

var findOnce = sync.OnceValues(findBinaries)

// BinDir returns the directory of the PostgreSQL server binaries every
// Server uses: $PG_BINDIR when set; else the directory of the real postgres
// found on PATH (following symlinks; wrappers that are not PostgreSQL are
// skipped); else the newest of /usr/lib/postgresql/*/bin and other usual
// places. initdb and postgres must both be there, of the same version. The
// answer is computed once per process.
func BinDir() (string, error) {
	b, err := findOnce()
	return b.dir, err
}

func findBinaries() (binaries, error) {
	if dir := os.Getenv("PG_BINDIR"); dir != "" {
		b, err := checkBinDir(dir)
		if err != nil {
			return binaries{}, fmt.Errorf("PG_BINDIR=%s: %w", dir, err)
		}
		return b, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if b, err := checkBinDir(filepath.Dir(real)); err == nil {
				return b, nil
			}
		}
	}
	for _, dir := range installedBinDirs() {
		if b, err := checkBinDir(dir); err == nil {
			return b, nil
		}
	}
	return binaries{}, errNotFound
}

// installDirPatterns are where packages put versioned server binaries:
// Debian and Ubuntu, the PGDG RPMs, and Homebrew.
var installDirPatterns = []string{
	"/usr/lib/postgresql/*/bin",
	"/usr/pgsql-*/bin",
	"/opt/homebrew/opt/postgresql@*/bin",
	"/usr/local/opt/postgresql@*/bin",
	"/usr/local/pgsql/bin",
}

var versionInPath = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)

// installedBinDirs lists the candidate directories, newest version first.
func installedBinDirs() []string {
	type cand struct {
		dir          string
		major, minor int
	}
	var cands []cand
	for _, pat := range installDirPatterns {
		matches, _ := filepath.Glob(pat)
		for _, dir := range matches {
			c := cand{dir: dir}
			if m := versionInPath.FindStringSubmatch(dir); m != nil {
				c.major, _ = strconv.Atoi(m[1])
				c.minor, _ = strconv.Atoi(m[2])
			}
			cands = append(cands, c)
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.major != b.major {
			return b.major - a.major
		}
		return b.minor - a.minor
	})
	dirs := make([]string, len(cands))
	for i, c := range cands {
		dirs[i] = c.dir
	}
	return dirs
}

// checkBinDir verifies that dir holds PostgreSQL's own initdb and postgres,
// of the same version, by asking each for --version.
func checkBinDir(dir string) (binaries, error) {
	var version string
	for _, name := range []string{"postgres", "initdb"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err != nil {
			return binaries{}, fmt.Errorf("no %s there: %w", name, err)
		}
		out, err := exec.Command(path, "--version").Output()
		if err != nil {
			return binaries{}, fmt.Errorf("%s --version: %w", path, err)
		}
		// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
		_, rest, ok := strings.Cut(string(out), "(PostgreSQL) ")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 {
			return binaries{}, fmt.Errorf("%s is not PostgreSQL's: --version printed %q", path, strings.TrimSpace(string(out)))
		}
		if version != "" && fields[0] != version {
			return binaries{}, fmt.Errorf("postgres %s and initdb %s differ in %s", version, fields[0], dir)
		}
		version = fields[0]
	}
	return binaries{dir: dir, version: version}, nil
}
