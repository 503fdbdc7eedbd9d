package monitor

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
)

func TestParseThreshold(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit float64
		bad   bool
	}{
		{"deferred=500", 500, false},
		{"bytes=2G", 2 << 30, false},
		{"bytes=10M", 10 << 20, false},
		{"age=90m", 5400, false},
		{"age=3d", 3 * 86400, false},
		{"age=600", 600, false},
		{"share=50%", 50, false},
		{"share=101", 0, true},
		{"fanout=-1", 0, true},
		{"fanout", 0, true},
		{"=3", 0, true},
		{"deferred=lots", 0, true},
	} {
		got, err := ParseThreshold(c.in)
		if (err != nil) != c.bad || (!c.bad && got.Limit != c.limit) {
			t.Errorf("ParseThreshold(%q) = %v, %v; want limit %v, error %v", c.in, got, err, c.limit, c.bad)
		}
	}
}

// TestSnapshotOfRealQueue builds a snapshot of the Postfix incident queue
// (written by a real Postfix) and checks it against the scan itself: the
// per-queue counts add up, the histograms hold every message, and the
// thresholds pick the levels and the offending account.
func TestSnapshotOfRealQueue(t *testing.T) {
	root := filepath.Join(testkit.Extract(t, "../testdata/queues/postfix-incident/queue.tar.gz"), "postfix-incident-a")
	sp, err := postfixq.Open(root, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1795363135, 0).Add(30 * 24 * time.Hour) // 30 days after the fixture's messages
	m, err := filter.Compile(filter.Spec{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder("mx1", "postfix", root, now)
	var n int64
	perAcct := map[string]int64{}
	if err := filter.Scan(context.Background(), sp, m, filter.Options{}, func(r filter.Result) error {
		n++
		if k, name, ok := AccountOf(r.Msg); ok {
			perAcct[k+" "+name]++
		}
		b.Add(r.Msg)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s := b.Snapshot(3)
	var sum int64
	for q, st := range s.Queues {
		sum += st.Messages
		var h uint64
		for _, c := range st.SizeCounts {
			h += c
		}
		if h != uint64(st.Messages) {
			t.Errorf("queue %s: size histogram holds %d of %d", q, h, st.Messages)
		}
	}
	if s.Messages != n || sum != n || len(s.Accounts) != 3 || s.DistinctAccounts != len(perAcct) {
		t.Fatalf("snapshot: %d messages (queues %d, scan %d), %d accounts of %d (want 3 of %d)", s.Messages, sum, n, len(s.Accounts), s.DistinctAccounts, len(perAcct))
	}
	top := s.TopAccount()
	for k, c := range perAcct {
		if c > top.Messages {
			t.Errorf("%s has %d messages, more than the top account %s's %d", k, c, top.Name, top.Messages)
		}
	}
	if s.OldestAgeSeconds < 29*86400 {
		t.Errorf("oldest age %v, the fixture's mail is 30 days old at now", s.OldestAgeSeconds)
	}

	fan := float64(top.ClientAddresses)
	res, err := Check(s, []Threshold{{MetricFanout, fan - 1}}, []Threshold{{MetricFanout, fan}})
	if err != nil || res.Status != Warning || res.Account == nil || res.AccountStatus != Warning {
		t.Errorf("fanout %v over warn %v, at crit %v: %+v, %v", fan, fan-1, fan, res, err)
	}
	res, _ = Check(s, []Threshold{{MetricFanout, fan - 1}}, []Threshold{{MetricMessages, float64(n - 1)}})
	if res.Status != Critical || res.AccountStatus != Warning || len(res.Alerts) != 2 {
		t.Errorf("messages over crit, fanout over warn: %+v", res)
	}
	if _, err := Check(s, []Threshold{{"todo", 1}}, nil); err == nil {
		t.Error("a qmail queue name on a Postfix snapshot is accepted")
	}
	var out bytes.Buffer
	if err := WriteNagios(&out, s, res, nil, []Threshold{{MetricMessages, float64(n - 1)}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "QSURGEON CRITICAL - ") || !strings.Contains(out.String(), "'messages'="+itoa(n)+";;"+itoa(n-1)+";0") {
		t.Errorf("plugin output %q", out.String())
	}
}

func itoa(n int64) string { return formatLimit("", float64(n)) }

func TestClean(t *testing.T) {
	if got := Clean("a\x1b[2Jb|c\xffd\u202e"); got != "a?[2Jb?c?d?" {
		t.Errorf("Clean = %q", got)
	}
}
