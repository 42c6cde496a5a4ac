//go:build unix && !linux

package pgtest

import "syscall"

// sysProcAttr puts a child in its own process group. Outside Linux there is
// no parent-death signal: a test process killed outright leaves its server
// running until it is stopped by hand.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// childPIDs is unknown outside Linux; Kill then kills only the postmaster,
// and its backends exit when they notice.
func childPIDs(int) []int { return nil }

func processGone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

func isPostgres(pid int) bool { return !processGone(pid) }
