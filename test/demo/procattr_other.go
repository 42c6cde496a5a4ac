//go:build unix && !linux

package main

import "syscall"

// childAttr runs pgshard in its own process group, so that a terminal's
// Ctrl-C reaches only the demo, which stops pgshard before PostgreSQL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
