//go:build unix && !linux

package test

import "syscall"

// childProcAttr puts a process the tests start (the pgshard binary) in its
// own process group, so that a terminal's Ctrl-C reaches only the test
// process, which stops it in order. Outside Linux a test process killed
// outright leaves it running.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
