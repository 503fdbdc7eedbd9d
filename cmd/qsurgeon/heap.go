package main

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
)

// actingHeadroom is how far the Go runtime's memory may grow beyond what it
// holds when an action starts (boundActingHeap).
const actingHeadroom = 16 << 20

// boundActingHeap sets a soft memory limit for the acting phase of a
// command and returns the function that puts the previous limit back.
//
// Once the selection is made, what the process holds is the selection
// itself (50 MB for 100,407 messages at 1M Postfix messages), and acting on
// it makes only small garbage per message (paths, journal lines: about
// 1.6 KB a Postfix delete). Go's collector would still let that garbage
// grow to as much again as what is held before collecting (GOGC=100): a
// heap of about 100 MB for 50 MB held. With the limit at what the process
// holds plus actingHeadroom, the collector runs a few more times while
// acting (13 collections in the 60 s of that delete, each marking the
// selection in tens of milliseconds) and the heap stayed at 64 MB;
// bench/notes.md has the figures. It is a soft limit: if the process
// needs more, it gets it, and the runtime caps the collector's share of
// CPU. A limit set by the user (GOMEMLIMIT) is left alone.
func boundActingHeap() (restore func()) {
	prev := debug.SetMemoryLimit(-1)
	if prev != math.MaxInt64 {
		return func() {} // GOMEMLIMIT given: the user's choice
	}
	// Collect what the scan left and return it, so that what remains
	// is what the action keeps.
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return func() {}
	}
	held := s[0].Value.Uint64() - s[1].Value.Uint64()
	debug.SetMemoryLimit(int64(held) + actingHeadroom)
	return func() { debug.SetMemoryLimit(prev) }
}
