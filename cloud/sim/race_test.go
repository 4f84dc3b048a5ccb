//go:build race

package sim_test

// raceEnabled: the race detector slows the worker's database tenfold.
const raceEnabled = true
