package clock

import (
	"testing"
	"time"
)

func TestNowFollowsShift(t *testing.T) {
	before := time.Now().Add(shift)
	got := Now()
	after := time.Now().Add(shift)
	if got.Before(before) || got.After(after) {
		t.Fatalf("Now() = %v, want between %v and %v (shift %v)", got, before, after, shift)
	}
	if Shift() != shift {
		t.Fatalf("Shift() = %v, want %v", Shift(), shift)
	}
}
