//go:build linux

package test

import "syscall"

// childProcAttr puts a process the tests start (the pgshard binary) in its
// own process group, so that a terminal's Ctrl-C reaches only the test
// process, which stops it in order, and has it killed if the test process
// dies first.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
