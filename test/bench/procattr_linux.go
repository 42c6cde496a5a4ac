//go:build linux

package main

import "syscall"

// childAttr runs a child in its own process group, so that a terminal's
// Ctrl-C reaches only the bench, which stops its children in order; as cred
// when not nil; and kills it if the bench dies without doing so. Go sets
// the parent-death signal after switching credentials, which would
// otherwise clear it.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
