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
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
)

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
	fix := testkit.Fixture(t, "qmail-incident")
	dir := testkit.Extract(t, filepath.Join(fix, "queue.tar.gz"))
	data, err := os.ReadFile(filepath.Join(fix, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var truth struct {
		Messages map[string]truthMessage `json:"messages"`
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
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

	cases := []struct {
		name string
		spec filter.Spec
		want func(truthMessage) bool
	}{
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
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for id, m := range truth.Messages {
				if tc.want(m) {
					want = append(want, id)
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
				got = append(got, r.Msg.ID)
			}
			if !slices.IsSortedFunc(res, func(a, b filter.Result) int { return filter.Compare(a.Msg, b.Msg) }) {
				t.Error("results not sorted")
			}
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
			slices.Sort(got)
			slices.Sort(want)
			t.Logf("%d of %d messages selected", len(got), st.Examined)
			if !slices.Equal(got, want) {
				t.Errorf("selected %d, want %d; extra %v missing %v", len(got), len(want), minus(got, want), minus(want, got))
			}
			if st.Examined != int64(len(truth.Messages)) {
				t.Errorf("examined %d of %d messages", st.Examined, len(truth.Messages))
			}
			if m.NeedsContent() && !tc.spec.Invert {
				// Content is read only for envelope matches.
				env, _ := filter.Compile(filter.Spec{NullSender: tc.spec.NullSender})
				envRes, _ := filter.Select(context.Background(), src, env, filter.Options{})
				if st.ContentRead != int64(len(envRes)) {
					t.Errorf("read content of %d messages, %d match the envelope", st.ContentRead, len(envRes))
				}
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
