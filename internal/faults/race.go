//go:build race

package faults

// raceEnabled says whether the tests run with the race detector (reported with the figures:
// it slows everything down several times).
const raceEnabled = true
