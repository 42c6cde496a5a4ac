//go:build race

package test

// raceEnabled says the tests run under the race detector, which allows
// at most 8128 goroutines alive at once.
const raceEnabled = true
