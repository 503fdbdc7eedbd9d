package maillog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shardLogs writes logs of several chunks each from the real fixture logs:
// the Postfix incident log repeated (each repeat reuses every queue ID
// after its "removed" line, and every smtpd pid), then the vpopmail seed
// lines, then the qmail-send log; and a second Postfix log in RFC 3339
// with the repeats' stamps moved, so that accounts' first and last seen
// and addresses' first times come from different shards.
func shardLogs(t testing.TB) []string {
	pf, err := os.ReadFile("../testdata/queues/postfix-incident/maillog.txt")
	if err != nil {
		t.Fatal(err)
	}
	vp, err := os.ReadFile("testdata/vpopmail-seed001.log")
	if err != nil {
		t.Fatal(err)
	}
	qm, err := os.ReadFile("../testdata/queues/qmail-incident/qmail-send.log")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var a bytes.Buffer
	for a.Len() < 3*chunkSize {
		a.Write(pf)
	}
	a.Write(vp)
	a.Write(qm)
	// RFC 3339 form of the Postfix log, an hour later per repeat
	var b bytes.Buffer
	lines := strings.SplitAfter(string(pf), "\n")
	for rep := 0; b.Len() < 2*chunkSize; rep++ {
		for _, l := range lines {
			if len(l) < 16 {
				continue
			}
			ts, err := time.Parse(time.Stamp, l[:15])
			if err != nil {
				continue
			}
			// the first repeat at the same instants as the RFC 3164
			// lines (read as UTC), written in another zone: of two equal
			// stamps, first and last seen keep the one read first
			ts = ts.AddDate(2026, 0, 0).Add(time.Duration(rep+1) * time.Hour)
			fmt.Fprintf(&b, "%s%s", ts.Format("2006-01-02T15:04:05.000000+01:00"), l[15:])
		}
	}
	names := []string{filepath.Join(dir, "maillog.1"), filepath.Join(dir, "maillog")}
	if err := os.WriteFile(names[0], a.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(names[1], b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return names
}

// analyzerView is everything an Analyzer answers, as text.
func analyzerView(a *Analyzer) string {
	var b strings.Builder
	for _, r := range a.Accounts(map[string]int{"hello@example.com": 3}) {
		j, _ := json.Marshal(r)
		fmt.Fprintf(&b, "account %s %v %v\n", j, r.FirstSeen, r.LastSeen)
	}
	for _, r := range a.Impact() {
		j, _ := json.Marshal(r)
		fmt.Fprintf(&b, "impact %s\n", j)
	}
	// the first time each address was seen, which only the ranking reads
	for _, r := range a.Accounts(nil) {
		ac := a.accounts[r.User]
		if ac == nil {
			continue
		}
		var addrs []string
		for addr, t := range ac.addrs {
			addrs = append(addrs, fmt.Sprintf("%s@%v(%d)", addr, t, ac.addrN[addr].n))
		}
		sortStrings(addrs)
		fmt.Fprintf(&b, "addresses %s %v\n", r.User, addrs)
	}
	fmt.Fprintf(&b, "totals %+v unattributed %d kinds %v\n", a.Totals, a.UnattributedFailures, a.Kinds())
	s, e := a.Span()
	fmt.Fprintf(&b, "span %v %v\n", s, e)
	open := a.Open()
	ids := make([]string, 0, len(open))
	for id := range open {
		ids = append(ids, id)
	}
	sortStrings(ids)
	for _, id := range ids {
		m := open[id]
		fmt.Fprintf(&b, "open %s %s %s %s %q %v %d %s %v\n", id, m.User, m.ClientAddr, m.Sender, m.Parent, m.Via, m.Size, m.QP, m.Time)
	}
	src := a.TieSources()
	strs := make([]string, len(src))
	for i, x := range src {
		strs[i] = x.String()
	}
	sortStrings(strs)
	fmt.Fprintf(&b, "ties %v\n", strs)
	return b.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for k := i; k > 0 && s[k] < s[k-1]; k-- {
			s[k], s[k-1] = s[k-1], s[k]
		}
	}
}

// The join sharded over 2, 3 and 5 goroutines answers what one join
// answers, byte for byte: accounts (logins counted once per smtpd session,
// the failure twins, first and last seen), the impact table with and
// without a selection, the totals and the messages left open, over logs
// of several chunks that reuse queue IDs and smtpd pids.
func TestShardedJoinMatchesOne(t *testing.T) {
	names := shardLogs(t)
	sel := func(m *Message, rcpt string) bool {
		return m.User == "hello@example.com" || strings.HasSuffix(rcpt, ".org")
	}
	for _, impact := range []bool{false, true} {
		for _, s := range []func(*Message, string) bool{nil, sel} {
			run := func(shards int) (string, Stats) {
				a := NewAnalyzer()
				a.TrackImpact, a.Select = impact, s
				st := ReadAll(names, Options{Workers: 2, Shards: shards, Location: time.UTC}, a)
				return analyzerView(a), st
			}
			one, st1 := run(1)
			if st1.Unknown > 10 || st1.Known < 10000 {
				t.Fatalf("the logs did not read: %+v", st1)
			}
			if !strings.Contains(one, "hello@example.com") {
				t.Fatalf("no account read:\n%.500s", one)
			}
			for _, n := range []int{2, 3, 5} {
				got, st := run(n)
				if fmt.Sprint(st) != fmt.Sprint(st1) {
					t.Errorf("shards %d: stats %+v, one join %+v", n, st, st1)
				}
				if got != one {
					ol, gl := strings.Split(one, "\n"), strings.Split(got, "\n")
					for i := range ol {
						if i >= len(gl) || ol[i] != gl[i] {
							t.Fatalf("impact %v select %v shards %d differ at line %d:\none: %.400s\ngot: %.400s", impact, s != nil, n, i, ol[i], gl[min(i, len(gl)-1)])
						}
					}
					t.Fatalf("shards %d: differ", n)
				}
			}
		}
	}
}

// BenchmarkReadAllConfig reads the logs of TestShardedJoinMatchesOne
// with W parsing workers and S join shards.
func BenchmarkReadAllConfig(b *testing.B) {
	names := shardLogs(b)
	var size int64
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			b.Fatal(err)
		}
		size += st.Size()
	}
	for _, ws := range [][2]int{{1, 1}, {2, 1}, {1, 2}, {2, 2}, {3, 2}} {
		b.Run(fmt.Sprintf("W%d-S%d", ws[0], ws[1]), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				a := NewAnalyzer()
				a.TrackImpact = true
				ReadAll(names, Options{Workers: ws[0], Shards: ws[1]}, a)
			}
		})
	}
}

// A hostile nrcpt= (larger than 32 bits) and size= reach the account as
// the line has them, through the compact event of every shard count and
// through Add: the compact event does not narrow them.
func TestCompactEventKeepsLargeCounts(t *testing.T) {
	log := "Nov 22 15:58:55 mail postfix/submission/smtpd[22130]: 789CDBE2B1: client=gw.example.com[192.0.2.10], sasl_method=PLAIN, sasl_username=alice@example.com\n" +
		"Nov 22 15:58:55 mail postfix/qmgr[22087]: 789CDBE2B1: from=<alice@example.com>, size=99999999999, nrcpt=99999999999 (queue active)\n"
	f := filepath.Join(t.TempDir(), "maillog")
	if err := os.WriteFile(f, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(how string, a *Analyzer) {
		rows := a.Accounts(nil)
		if len(rows) != 1 || rows[0].Recipients != 99999999999 {
			t.Errorf("%s: accounts %+v, want 99999999999 recipients", how, rows)
		}
		if m := a.Open()["789CDBE2B1"]; m == nil || m.Size != 99999999999 || m.Nrcpt != 99999999999 {
			t.Errorf("%s: open message %+v", how, m)
		}
	}
	for _, shards := range []int{1, 2} {
		a := NewAnalyzer()
		ReadAll([]string{f}, Options{Workers: 1, Shards: shards}, a)
		check(fmt.Sprintf("ReadAll, %d shards", shards), a)
	}
	a := NewAnalyzer()
	r := Open([]string{f}, Options{})
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		a.Add(ev)
	}
	check("Add", a)
}

// indexColonSpace finds what bytes.Index(b, ": ") finds, in short and
// long lines, with and without ':' that no space follows.
func TestIndexColonSpace(t *testing.T) {
	long := strings.Repeat("x:y", 40)
	for _, s := range []string{"", ":", ": ", "a:", "a: b", "a:b: c", "::  ", "a::b", long, long + ": z", "postfix/smtpd[1]: 4A3F1C2B0D: client=x[1.2.3.4]"} {
		if got, want := indexColonSpace([]byte(s)), bytes.Index([]byte(s), []byte(": ")); got != want {
			t.Errorf("%q: %d, want %d", s, got, want)
		}
	}
}
