//go:build race

package main

// raceEnabled: the race detector is on (it makes parsing 75 MiB take minutes).
const raceEnabled = true
