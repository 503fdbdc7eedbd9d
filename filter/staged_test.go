package filter_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// plainSource hides a source's StagedSource methods: every message is read
// whole, as before staging existed.
type plainSource struct{ queue.Source }

// countingStaged counts how a StagedSource is asked.
type countingStaged struct {
	*qmailq.Queue
	fields, rest, whole atomic.Int64
}

func (c *countingStaged) Read(r queue.Ref) (*queue.Message, error) {
	c.whole.Add(1)
	return c.Queue.Read(r)
}

func (c *countingStaged) ReadFields(r queue.Ref, f queue.Fields) (*queue.Message, error) {
	c.fields.Add(1)
	return c.Queue.ReadFields(r, f)
}

func (c *countingStaged) ReadRest(r queue.Ref, f queue.Fields) (*queue.Message, error) {
	c.rest.Add(1)
	return c.Queue.ReadRest(r, f)
}

func describeResults(rs []filter.Result) []string {
	var out []string
	for _, r := range rs {
		m := r.Msg
		out = append(out, fmt.Sprintf("%s %s %s sender=%q null=%v sasl=%q rcpts=%d problems=%q why=%q",
			m.Queue, m.ID, m.Path, m.Sender, m.NullSender, m.SASLUser, len(m.Recipients), m.Problems, r.Why))
	}
	return out
}

// A selection by AUTH user or sender over a real qmail queue reads whole
// only the messages those fields let through, and selects exactly what
// reading every message whole selects, with the same untrusted-AUTH count.
func TestStagedSelectionQmail(t *testing.T) {
	fix := testkit.Fixture(t, "qmail-incident")
	dir := testkit.Extract(t, filepath.Join(fix, "queue.tar.gz"))
	root := filepath.Join(dir, testkit.QmailRoot)
	open := func() *qmailq.Queue {
		q, err := qmailq.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	// the most frequent AUTH user and sender of the queue
	all, err := filter.Select(context.Background(), open(), compileSpec(t, filter.Spec{}), filter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(key func(*queue.Message) string) string {
		n := map[string]int{}
		best := ""
		for _, r := range all {
			if k := key(r.Msg); k != "" {
				n[k]++
				if n[k] > n[best] {
					best = k
				}
			}
		}
		return best
	}
	user := count(func(m *queue.Message) string { return m.SASLUser })
	sender := count(func(m *queue.Message) string { return m.Sender })
	if user == "" || sender == "" {
		t.Fatalf("fixture has no AUTH user (%q) or sender (%q)", user, sender)
	}
	for _, spec := range []filter.Spec{
		{SASLUsers: []string{user}},
		{Senders: []string{sender}},
		{SASLUsers: []string{user}, Senders: []string{sender}},
		{NotSASLUsers: []string{user}},
		{SASLUsers: []string{user}, Invert: true},
		{SASLUsers: []string{user}, Recipients: []string{"*"}},
	} {
		mt := compileSpec(t, spec)
		pq := open()
		want, err := filter.Select(context.Background(), plainSource{pq}, mt, filter.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cq := &countingStaged{Queue: open()}
		got, err := filter.Select(context.Background(), cq, mt, filter.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 && !spec.Invert && len(spec.NotSASLUsers) == 0 {
			t.Errorf("%+v selects nothing", spec)
		}
		if w, g := describeResults(want), describeResults(got); !slices.Equal(w, g) {
			t.Errorf("%+v: staged selection differs\n got %q\nwant %q", spec, g, w)
		}
		if fmt.Sprint(pq.UntrustedAuth()) != fmt.Sprint(cq.UntrustedAuth()) {
			t.Errorf("%+v: untrusted AUTH %v, read whole %v", spec, cq.UntrustedAuth(), pq.UntrustedAuth())
		}
		staged := !spec.Invert && len(spec.Recipients) == 0
		whole := cq.whole.Load() + cq.rest.Load()
		switch {
		case staged && (cq.fields.Load() != int64(len(all)) || whole >= int64(len(all))):
			t.Errorf("%+v: %d ReadFields, %d read whole of %d messages", spec, cq.fields.Load(), whole, len(all))
		case !staged && (cq.fields.Load() != 0 || whole != int64(len(all))):
			t.Errorf("%+v: staged although it needs every message (%d ReadFields)", spec, cq.fields.Load())
		}
	}
}

func compileSpec(t *testing.T, spec filter.Spec) *filter.Matcher {
	t.Helper()
	m, err := filter.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
