package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// initdbArgs are initdb's options besides -D.
var initdbArgs = []string{
	"-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
	"-E", "UTF8", "--no-locale", "--no-sync",
}

// A new cluster is a copy of a template data directory made by initdb:
// under load initdb takes seconds, a copy a tenth of one. Templates live
// in os.TempDir, shared by every test process of the same binaries and OS
// user, one per day so that tmp cleaners, which remove files older than
// some days, never find one half gone; sweepOnce removes older ones.
const templatePrefix = "pgtest-template-"

// templateMu keeps the servers of one process from making the same
// template at once; other processes race by rename, and one wins.
var templateMu sync.Mutex

// templateData returns the data directory of today's template, making it
// if needed.
func templateData(ctx context.Context, bin binaries, cred *syscall.Credential) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	final := filepath.Join(os.TempDir(), templateName(bin, cred, time.Now()))
	data := filepath.Join(final, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return data, nil
	}
	// Build aside, with an owner file so that sweepOnce removes it if we
	// die, then rename into place without one.
	work, err := os.MkdirTemp("", "pgtest-building-")
	if err != nil {
		return "", err
	}
	owner := filepath.Join(work, ownerFile)
	err = os.WriteFile(owner, []byte(strconv.Itoa(os.Getpid())), 0o644)
	if err == nil && cred != nil {
		err = os.Chown(work, int(cred.Uid), int(cred.Gid))
	}
	if err == nil {
		err = runProgram(ctx, bin, cred, work, "initdb", append([]string{"-D", filepath.Join(work, "data")}, initdbArgs...)...)
	}
	if err == nil {
		err = os.Remove(owner)
	}
	if err == nil {
		err = os.Rename(work, final)
		if _, serr := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil && serr == nil {
			err = nil // another process made it first
		}
	}
	if err != nil {
		os.RemoveAll(work)
		return "", err
	}
	return data, nil
}

// templateName identifies a template by what makes it: the binaries, the
// owner, initdb's options and the day.
func templateName(bin binaries, cred *syscall.Credential, now time.Time) string {
	owner := os.Geteuid()
	if cred != nil {
		owner = int(cred.Uid)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s", bin.dir, bin.version, owner, strings.Join(initdbArgs, "\x00")))
	return templatePrefix + hex.EncodeToString(h[:6]) + "-" + now.Format("20060102")
}

// staleTemplate reports whether dir is a template from before yesterday.
func staleTemplate(dir string, now time.Time) bool {
	name := filepath.Base(dir)
	if !strings.HasPrefix(name, templatePrefix) {
		return false
	}
	day, err := time.ParseInLocation("20060102", name[strings.LastIndexByte(name, '-')+1:], now.Location())
	return err == nil && now.Sub(day) > 48*time.Hour
}

// copyTree copies the data directory src to the new directory dst,
// keeping permissions, owned by cred when set.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = os.Mkdir(target, info.Mode().Perm())
		case d.Type().IsRegular():
			err = copyFile(path, target, info.Mode().Perm())
		default:
			err = fmt.Errorf("unexpected %v in a template data directory", info.Mode().Type())
		}
		if err == nil && cred != nil {
			err = os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return err
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
