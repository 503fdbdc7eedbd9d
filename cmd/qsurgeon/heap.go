package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// actingHeadroom is how far the Go heap may grow beyond what is live when
// an action starts before the collector runs (boundActingHeap).
const actingHeadroom = 16 << 20

// boundActingHeap lowers the collector's target for the acting phase of a
// command and returns the function that puts the previous one back.
//
// Once the selection is made, what the process holds is the selection
// itself (50 MB for 100,407 messages at 1M Postfix messages), and acting on
// it makes only small garbage per message (paths, journal lines: about
// 1.6 KB a Postfix delete). Go's collector would still let that garbage
// grow to as much again as what is live before collecting (GOGC=100): a
// heap of about 100 MB for 50 MB live. With GOGC set so that the next
// collection comes after actingHeadroom more (never above 100, never below
// 10), the collector runs a few more times while acting (13 collections in
// the 60 s of that delete, each marking the selection in tens of
// milliseconds) and the heap stays near what is live plus 16 MB;
// bench/notes.md has the figures. A proportion, not a fixed memory limit:
// when what an action keeps grows (a dry run's list of operations, a
// report of many failures), the target grows with it, so the collector
// never runs back to back. A GOGC or GOMEMLIMIT set by the user is left
// alone.
func boundActingHeap() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {} // the user's choice
	}
	// Collect what the scan left and return it, so that what remains
	// is what the action keeps.
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[0].Value.Uint64() == 0 {
		return func() {}
	}
	pct := min(max(int(actingHeadroom*100/s[0].Value.Uint64()), 10), 100)
	prev := debug.SetGCPercent(pct)
	return func() { debug.SetGCPercent(prev) }
}
