package filter

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// TestCorruptIgnoresIDNotInode: on a qmail queue copied to another
// filesystem every message's name differs from its inode; --corrupt must
// not select them all for that (delete --corrupt would empty the queue).
func TestCorruptIgnoresIDNotInode(t *testing.T) {
	m, err := Compile(Spec{Corrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		msg  queue.Message
		want bool
	}{
		{queue.Message{Problems: []string{queue.ProblemIDNotInode + ": mess/1/1 has inode 2"}}, false},
		{queue.Message{}, false},
		{queue.Message{Problems: []string{queue.ProblemIDNotInode + ": x", "info-without-mess: y"}}, true},
		{queue.Message{Err: errors.New("truncated")}, true},
	}
	for i, c := range cases {
		if got, _ := m.MatchEnvelope(&c.msg); got != c.want {
			t.Errorf("case %d: selected %v, want %v", i, got, c.want)
		}
	}
}

// TestScanSkipsNotReady: a file the MTA is still writing is left alone
// quietly, like a message that vanished, never a read error.
func TestScanSkipsNotReady(t *testing.T) {
	src := newMemSource()
	src.add(&queue.Message{Queue: "incoming", ID: "A1", Sender: "a@example.com"})
	src.add(&queue.Message{Queue: "incoming", ID: "B2", Sender: "b@example.com"})
	src.fail["A1"] = fmt.Errorf("incoming/A1: still being written (%w)", queue.ErrNotReady)
	var st Stats
	res, err := Select(context.Background(), src, mustCompile(t, Spec{}), Options{Stats: &st})
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	if len(res) != 1 || res[0].Msg.ID != "B2" || st.Errors != 0 || st.Vanished != 1 {
		t.Fatalf("got %d results, stats %+v", len(res), st)
	}
}
