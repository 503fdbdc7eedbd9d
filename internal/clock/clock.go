// Package clock is qsurgeon's one source of "now": every decision that
// depends on age (ossified qmail fragments, stale pid files, --older-than,
// retry and expiry times, age buckets, journal and manifest stamps) asks
// Now, never time.Now directly.
//
// A test build can move the clock (see shift_test_hook.go): `make test`
// runs the whole suite a second time with the clock a year ahead, so no test
// passes or fails by the date it runs on. Deadlines and timeouts are not
// "now" in this sense and keep using the time package.
package clock

import "time"

// shift is added to the real time. It is zero in every binary built
// without the qsurgeon_clockshift tag.
var shift time.Duration

// Now returns the current time as qsurgeon's decisions see it.
func Now() time.Time { return time.Now().Add(shift) }

// Shift returns how far this build's clock is moved from the real one:
// zero outside the clock-shifted test run.
func Shift() time.Duration { return shift }
