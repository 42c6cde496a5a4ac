//go:build unix && !linux

package main

import "syscall"

// childAttr runs a child in its own process group, so that a terminal's
// Ctrl-C reaches only the bench, which stops its children in order; as cred
// when not nil. Outside Linux a bench killed outright leaves them running.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
