package filter_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The engine over the real queues of the two incident fixtures, each
// selection compared with what the fixture's truth.json (made from the
// real queue, not by qsurgeon) says it must be.

// fixtureCase is one selection and the messages of the truth it must
// select.
type fixtureCase[M any] struct {
	name string
	spec filter.Spec
	want func(M) bool
}

// loadFixture unpacks a fixture's queue.tar.gz and reads its truth.json
// into truth.
func loadFixture(t *testing.T, name string, truth any) (dir string) {
	t.Helper()
	fix := testkit.Fixture(t, name)
	dir = testkit.Extract(t, filepath.Join(fix, "queue.tar.gz"))
	data, err := os.ReadFile(filepath.Join(fix, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, truth); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkSelections runs each case over src and compares what is selected
// (each message named by key) with the truth's messages that want
// accepts, keyed the same way; every message must be examined, the
// results sorted. check, if not nil, adds the MTA's own checks.
func checkSelections[M any](t *testing.T, src queue.Source, truth map[string]M, cases []fixtureCase[M], key func(*queue.Message) string,
	check func(t *testing.T, spec filter.Spec, m *filter.Matcher, res []filter.Result, st filter.Stats)) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for k, m := range truth {
				if tc.want(m) {
					want = append(want, k)
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
				got = append(got, key(r.Msg))
			}
			if !slices.IsSortedFunc(res, func(a, b filter.Result) int { return filter.Compare(a.Msg, b.Msg) }) {
				t.Error("results not sorted")
			}
			if check != nil {
				check(t, tc.spec, m, res, st)
			}
			slices.Sort(got)
			slices.Sort(want)
			t.Logf("%d of %d messages selected", len(got), st.Examined)
			if !slices.Equal(got, want) {
				t.Errorf("selected %d, want %d; extra %v missing %v", len(got), len(want), minus(got, want), minus(want, got))
			}
			if st.Examined != int64(len(truth)) {
				t.Errorf("examined %d of %d messages", st.Examined, len(truth))
			}
		})
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
		if len(out) == 5 {
			break
		}
	}
	return out
}

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
	var truth struct {
		Messages []postfixTruth `json:"messages"`
	}
	dir := loadFixture(t, "postfix-incident", &truth)
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

	cases := []fixtureCase[postfixTruth]{
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
	byKey := map[string]postfixTruth{}
	for _, m := range truth.Messages {
		byKey[m.Queue+"/"+m.ID] = m
	}
	checkSelections(t, src, byKey, cases, func(m *queue.Message) string { return m.Queue + "/" + m.ID }, nil)
}

// truthMessage is the part of the qmail-incident truth.json (made from the
// real queue by the fixture's generator, not by qsurgeon) the filters are
// checked against.
type truthMessage struct {
	ID    int64 `json:"id"`
	Parts struct {
		Todo bool `json:"todo"`
	} `json:"parts"`
	Sender     string `json:"sender"`
	Recipients []struct {
		Address string `json:"address"`
		State   string `json:"state"`
	} `json:"recipients"`
	AuthUser     *string `json:"auth_user"`
	SMTPClientIP *string `json:"smtp_client_ip"`
	Subject      *string `json:"subject"`
	MessSize     int64   `json:"mess_size"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestSelectQmailFixture runs the engine over the real qmail queue of the
// qmail-incident fixture (written by real qmail binaries) and compares each
// selection with what truth.json says it must be.
func TestSelectQmailFixture(t *testing.T) {
	var truth struct {
		Messages map[string]truthMessage `json:"messages"`
	}
	dir := loadFixture(t, "qmail-incident", &truth)
	if len(truth.Messages) < 300 {
		t.Fatalf("truth.json lists %d messages", len(truth.Messages))
	}
	src, err := qmailq.Open(filepath.Join(dir, testkit.QmailRoot))
	if err != nil {
		t.Fatal(err)
	}

	pending := func(m truthMessage) []string {
		var out []string
		for _, r := range m.Recipients {
			if r.State == "pending" {
				out = append(out, r.Address)
			}
		}
		return out
	}
	inNet := func(m truthMessage, net string) bool {
		a, err := netip.ParseAddr(str(m.SMTPClientIP))
		return err == nil && netip.MustParsePrefix(net).Contains(a)
	}
	generated := regexp.MustCompile(`^[a-z]+_[0-9]+@example\.com$`)

	cases := []fixtureCase[truthMessage]{
		{"sasl user", filter.Spec{SASLUsers: []string{"hello@example.com"}},
			func(m truthMessage) bool { return str(m.AuthUser) == "hello@example.com" }},
		{"sasl users OR", filter.Spec{SASLUsers: []string{"alice@example.com", "BOB@example.com"}},
			func(m truthMessage) bool {
				return str(m.AuthUser) == "alice@example.com" || str(m.AuthUser) == "bob@example.com"
			}},
		// Bounces and qmail's double bounces (sender #@[]) alike.
		{"null sender", filter.Spec{NullSender: true},
			func(m truthMessage) bool { return m.Sender == "" || m.Sender == "#@[]" }},
		{"sender <>", filter.Spec{Senders: []string{"<>"}},
			func(m truthMessage) bool { return m.Sender == "" }},
		{"sender @domain", filter.Spec{Senders: []string{"@example.com"}},
			func(m truthMessage) bool { return strings.HasSuffix(strings.ToLower(m.Sender), "@example.com") }},
		{"sender regex", filter.Spec{Senders: []string{`/^[a-z]+_[0-9]+@example\.com$/`}},
			func(m truthMessage) bool { return generated.MatchString(m.Sender) }},
		{"todo queue", filter.Spec{Queues: []string{"todo"}},
			func(m truthMessage) bool { return m.Parts.Todo }},
		{"client network", filter.Spec{Clients: []string{"37.0.0.0/8"}},
			func(m truthMessage) bool { return inNet(m, "37.0.0.0/8") }},
		{"pending recipient domain", filter.Spec{Recipients: []string{"@freemail.example"}},
			func(m truthMessage) bool {
				return slices.ContainsFunc(pending(m), func(a string) bool { return strings.HasSuffix(a, "@freemail.example") })
			}},
		{"size", filter.Spec{MinSize: 100000},
			func(m truthMessage) bool { return m.MessSize >= 100000 }},
		{"subject ISO-2022-JP/UTF-8", filter.Spec{Subjects: []string{"未払い料金"}},
			func(m truthMessage) bool { return strings.Contains(str(m.Subject), "未払い料金") }},
		{"null sender AND subject", filter.Spec{NullSender: true, Subjects: []string{"^failure notice$"}},
			func(m truthMessage) bool {
				return (m.Sender == "" || m.Sender == "#@[]") && str(m.Subject) == "failure notice"
			}},
		{"sasl AND client", filter.Spec{SASLUsers: []string{"hello@example.com"}, Clients: []string{"37.0.0.0/8"}},
			func(m truthMessage) bool { return str(m.AuthUser) == "hello@example.com" && inNet(m, "37.0.0.0/8") }},
		{"invert", filter.Spec{SASLUsers: []string{"hello@example.com"}, Invert: true},
			func(m truthMessage) bool { return str(m.AuthUser) != "hello@example.com" }},
	}
	checkSelections(t, src, truth.Messages, cases, func(m *queue.Message) string { return m.ID },
		func(t *testing.T, spec filter.Spec, m *filter.Matcher, res []filter.Result, st filter.Stats) {
			// qmail ids in one queue come out in numeric order.
			for i := 1; i < len(res); i++ {
				a, b := res[i-1].Msg, res[i].Msg
				na, _ := strconv.ParseInt(a.ID, 10, 64)
				nb, _ := strconv.ParseInt(b.ID, 10, 64)
				if a.Queue == b.Queue && na >= nb {
					t.Errorf("%s %s before %s", a.Queue, a.ID, b.ID)
				}
				if a.Queue == queue.QmailQueue && b.Queue == queue.QmailTodo {
					t.Errorf("queue %s before todo %s", a.ID, b.ID)
				}
			}
			if m.NeedsContent() && !spec.Invert {
				// Content is read only for envelope matches.
				env, _ := filter.Compile(filter.Spec{NullSender: spec.NullSender})
				envRes, _ := filter.Select(context.Background(), src, env, filter.Options{})
				if st.ContentRead != int64(len(envRes)) {
					t.Errorf("read content of %d messages, %d match the envelope", st.ContentRead, len(envRes))
				}
			}
		})
}
