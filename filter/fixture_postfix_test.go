package filter_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
)

// postfixTruth is the part of the postfix-incident truth.json (made from
// the real queue with postqueue -j and postcat, not by qsurgeon) the
// filters are checked against.
type postfixTruth struct {
	Queue      string `json:"queue"`
	ID         string `json:"queue_id"`
	Sender     string `json:"sender"`
	Recipients []struct {
		Address string `json:"address"`
		State   string `json:"state"`
	} `json:"recipients"`
	SASLUser      *string `json:"sasl_username"`
	ClientAddress *string `json:"client_address"`
	LogClient     *string `json:"log_client_address"`
	Subject       *string `json:"subject_decoded"`
	HasBounceLog  bool    `json:"has_bounce_log"`
	LogReasons    []struct {
		Reason string `json:"reason"`
	} `json:"log_reasons"`
	Headers map[string][]string `json:"headers"`
}

// TestSelectPostfixFixture runs the engine over the real Postfix queue of
// the postfix-incident fixture and compares each selection with truth.json
// (the same cases as the acceptance script check_filters_postfix.py, and
// more).
func TestSelectPostfixFixture(t *testing.T) {
	fix := testkit.Fixture(t, "postfix-incident")
	dir := testkit.Extract(t, filepath.Join(fix, "queue.tar.gz"))
	data, err := os.ReadFile(filepath.Join(fix, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Messages []postfixTruth `json:"messages"`
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	if len(truth.Messages) < 250 {
		t.Fatalf("truth.json lists %d messages", len(truth.Messages))
	}
	src, err := postfixq.Open(filepath.Join(dir, testkit.PostfixRoot), postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	ip := func(m postfixTruth) string {
		if a := str(m.ClientAddress); a != "" {
			return a
		}
		return str(m.LogClient)
	}
	inNet := func(m postfixTruth, net string) bool {
		a, err := netip.ParseAddr(ip(m))
		return err == nil && netip.MustParsePrefix(net).Contains(a)
	}
	pendingAt := func(m postfixTruth, domain string) bool {
		return slices.ContainsFunc(m.Recipients, func(r struct {
			Address string `json:"address"`
			State   string `json:"state"`
		}) bool {
			return r.State == "todo" && strings.HasSuffix(r.Address, domain)
		})
	}
	reason := func(m postfixTruth, s string) bool {
		for _, r := range m.LogReasons {
			if strings.Contains(r.Reason, s) {
				return true
			}
		}
		return false
	}
	generated := regexp.MustCompile(`^[a-z]+[0-9]+@example\.com$`)

	cases := []struct {
		name string
		spec filter.Spec
		want func(postfixTruth) bool
	}{
		{"sasl user", filter.Spec{SASLUsers: []string{"hello@example.com"}},
			func(m postfixTruth) bool { return str(m.SASLUser) == "hello@example.com" }},
		{"sasl users OR", filter.Spec{SASLUsers: []string{"hello@example.com", "alice@example.com"}},
			func(m postfixTruth) bool {
				return str(m.SASLUser) == "hello@example.com" || str(m.SASLUser) == "alice@example.com"
			}},
		{"null sender", filter.Spec{NullSender: true},
			func(m postfixTruth) bool { return m.Sender == "" }},
		{"queue hold", filter.Spec{Queues: []string{"hold"}},
			func(m postfixTruth) bool { return m.Queue == "hold" }},
		{"sender exact", filter.Spec{Senders: []string{"bob@example.com"}},
			func(m postfixTruth) bool { return m.Sender == "bob@example.com" }},
		{"sender regex", filter.Spec{Senders: []string{`/^[a-z]+[0-9]+@example\.com$/`}},
			func(m postfixTruth) bool { return generated.MatchString(m.Sender) }},
		{"client network", filter.Spec{Clients: []string{"100.0.0.0/8"}},
			func(m postfixTruth) bool { return inNet(m, "100.0.0.0/8") }},
		{"client IPv6 network", filter.Spec{Clients: []string{"::/0"}},
			func(m postfixTruth) bool { return inNet(m, "::/0") }},
		{"subject", filter.Spec{Subjects: []string{"Undelivered Mail"}},
			func(m postfixTruth) bool { return strings.Contains(str(m.Subject), "Undelivered Mail") }},
		{"subject ISO-2022-JP", filter.Spec{Subjects: []string{"未払い料金"}},
			func(m postfixTruth) bool { return strings.Contains(str(m.Subject), "未払い料金") }},
		{"header", filter.Spec{Headers: []string{"From: CANADA PHARMACY"}},
			func(m postfixTruth) bool {
				return slices.ContainsFunc(m.Headers["from"], func(v string) bool { return strings.Contains(v, "CANADA PHARMACY") })
			}},
		{"reason", filter.Spec{Reasons: []string{"unknown user"}},
			func(m postfixTruth) bool { return reason(m, "unknown user") }},
		{"bouncing", filter.Spec{Bouncing: true},
			func(m postfixTruth) bool { return m.HasBounceLog }},
		{"sasl AND queue AND client", filter.Spec{SASLUsers: []string{"hello@example.com"}, Queues: []string{"deferred"}, Clients: []string{"100.0.0.0/8"}},
			func(m postfixTruth) bool {
				return str(m.SASLUser) == "hello@example.com" && m.Queue == "deferred" && inNet(m, "100.0.0.0/8")
			}},
		{"pending recipient domain", filter.Spec{Recipients: []string{"@fastbox.example.net"}},
			func(m postfixTruth) bool { return pendingAt(m, "@fastbox.example.net") }},
		{"not sasl user", filter.Spec{NotSASLUsers: []string{"hello@example.com"}, NotNullSender: true},
			func(m postfixTruth) bool { return str(m.SASLUser) != "hello@example.com" && m.Sender != "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, m := range truth.Messages {
				if tc.want(m) {
					want = append(want, m.Queue+"/"+m.ID)
				}
			}
			if len(want) == 0 {
				t.Fatal("the truth selects nothing: the case tests nothing")
			}
			m, err := filter.Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var st filter.Stats
			res, err := filter.Select(context.Background(), src, m, filter.Options{Stats: &st})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res {
				got = append(got, r.Msg.Queue+"/"+r.Msg.ID)
			}
			if !slices.IsSortedFunc(res, func(a, b filter.Result) int { return filter.Compare(a.Msg, b.Msg) }) {
				t.Error("results not sorted")
			}
			slices.Sort(got)
			slices.Sort(want)
			t.Logf("%d of %d messages selected", len(got), st.Examined)
			if !slices.Equal(got, want) {
				t.Errorf("selected %d, want %d; extra %v missing %v", len(got), len(want), minus(got, want), minus(want, got))
			}
			if st.Examined != int64(len(truth.Messages)) {
				t.Errorf("examined %d of %d messages", st.Examined, len(truth.Messages))
			}
		})
	}
}
