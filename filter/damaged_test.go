package filter

import (
	"errors"
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
