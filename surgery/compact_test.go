package surgery

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
)

// A KeepIDs or KeepSurgery selection, kept as compact records during the
// scan, gives exactly the messages a KeepAll selection trimmed afterwards
// gives, in the same order: on the real Postfix and qmail fixtures and on
// the broken qmail queue (problems and errors: kept whole). Most messages
// of the healthy queues fit a record (the memory the records save).
func TestCompactSelectionSame(t *testing.T) {
	ctx := context.Background()
	for _, fx := range []struct{ tarball, sub string }{
		{"postfix-incident/queue.tar.gz", "postfix-incident-a"},
		{"qmail-incident/queue.tar.gz", testkit.QmailRoot},
		{"qmail-incident/broken.tar.gz", testkit.QmailRoot},
	} {
		root := filepath.Join(testkit.Extract(t, "../testdata/queues/"+fx.tarball), fx.sub)
		src, err := Open(OpenOptions{Dir: root})
		if err != nil {
			t.Fatal(err)
		}
		all, err := Select(ctx, src, filter.Spec{}, SelectOptions{Keep: KeepAll})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Results) < 10 {
			t.Fatalf("%s: %d messages selected, want the whole fixture", fx.tarball, len(all.Results))
		}
		for _, k := range []Keep{KeepIDs, KeepSurgery} {
			sel, err := Select(ctx, src, filter.Spec{}, SelectOptions{Keep: k})
			if err != nil {
				t.Fatal(err)
			}
			if len(sel.Results) != len(all.Results) {
				t.Fatalf("%s keep %d: %d messages, want %d", fx.tarball, k, len(sel.Results), len(all.Results))
			}
			packed := 0
			for i, r := range all.Results {
				want := *r.Msg
				if want.Content != nil {
					c := *want.Content
					want.Content = &c
				}
				k.trim(&want)
				if got := sel.Results[i].Msg; !reflect.DeepEqual(*got, want) {
					t.Errorf("%s keep %d: message %d:\n got %+v\nwant %+v", fx.tarball, k, i, *got, want)
				}
				var ok bool
				if k == KeepIDs {
					_, ok = packID(&want)
				} else {
					_, ok = packSurgery(&want)
				}
				if ok {
					packed++
				}
			}
			t.Logf("%s keep %d: %d of %d messages in compact records", fx.tarball, k, packed, len(all.Results))
			if fx.tarball != "qmail-incident/broken.tar.gz" && packed < len(all.Results)/2 {
				t.Errorf("%s keep %d: only %d of %d messages fit a compact record", fx.tarball, k, packed, len(all.Results))
			}
		}
	}
}

// A record gives back the very message it was made from; what it cannot
// carry exactly (a time not in time.Unix's form, an odd MTA, content) is
// refused, so Select keeps that message whole.
func TestCompactRecordExact(t *testing.T) {
	m := queue.Message{MTA: queue.Postfix, Queue: queue.Deferred, ID: "4ABC", Path: "deferred/4/4ABC", Inode: 7, Mode: 0o700,
		UID: 89, GID: 89, Size: 100, FileSize: 1200, Sender: "a@example.com", SASLUser: "u@example.com", ForcedExpire: true,
		NullSender: false, DoubleBounce: true, Bouncing: true}
	m.Arrival = m.ModTime // zero times stay zero
	for _, m := range []queue.Message{m, func() queue.Message {
		d := m
		d.Problems, d.Err = []string{"id-not-inode: x"}, errors.New("damaged")
		return d
	}()} {
		r, ok := packSurgery(&m)
		if !ok {
			t.Fatalf("%+v does not fit a record", m)
		}
		var got queue.Message
		r.unpack(&got)
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("got %+v\nwant %+v", got, m)
		}
	}
	for name, bad := range map[string]func(*queue.Message){
		"content":  func(m *queue.Message) { m.Content = &queue.Content{Subject: "s"} },
		"utc time": func(m *queue.Message) { m.Arrival = m.Arrival.UTC().AddDate(2000, 0, 0) },
		"mta":      func(m *queue.Message) { m.MTA = "exim" },
		"helo":     func(m *queue.Message) { m.HELO = "h" },
	} {
		b := m
		bad(&b)
		if _, ok := packSurgery(&b); ok {
			t.Errorf("%s: packed, want kept whole", name)
		}
	}
}
