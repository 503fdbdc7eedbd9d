package filter

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/queue"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// testMessages are hand-built envelopes covering the fields Spec looks at.
// filter parses no format, so building them by hand tests the predicate
// alone; the fixture test runs it over real queue files.
func testMessages() map[string]*queue.Message {
	return map[string]*queue.Message{
		"spam": {
			MTA: queue.Postfix, Queue: queue.Deferred, ID: "4A3F1C2B0", Path: "deferred/4/4A3F1C2B0",
			Sender: "Bob@Example.com",
			Recipients: []queue.Recipient{
				{Address: "x@fastbox.example.net", Reason: "connect to 127.0.0.1[127.0.0.1]:2599: Connection refused"},
				{Address: "alice@example.com", Done: true},
				{Address: "spam@blocklisted.example", Canceled: true},
			},
			SASLUser: "hello@example.com", ClientAddr: "100.64.1.2", ClientName: "unknown",
			HELO: "bot.example.org", Arrival: testNow.Add(-3 * time.Hour), Size: 5000,
		},
		"ndr": {
			MTA: queue.Postfix, Queue: queue.Hold, ID: "7A6D1BE4D7", Path: "hold/7A6D1BE4D7",
			Sender: "", NullSender: true, Bouncing: true,
			Recipients: []queue.Recipient{
				{Address: "forged@remote.example", Reason: "host said: 550 unknown user"},
			},
			Arrival: testNow.Add(-10 * time.Minute), Size: 2000,
		},
		"v6": {
			MTA: queue.Qmail, Queue: queue.QmailQueue, ID: "123456", Path: "mess/12/123456",
			Sender: "alice@example.com",
			Recipients: []queue.Recipient{
				{Address: "partner@mail.partner.example", Channel: queue.ChannelRemote},
				{Address: "bob@example.com", Channel: queue.ChannelLocal, Done: true, Reason: "bounced: mailbox full"},
			},
			SASLUser: "alice@example.com", ClientAddr: "2001:db8::5", ClientName: "mail.partner.example",
			HELO: "[2001:db8::5]", Arrival: testNow.Add(-48 * time.Hour), Size: 100000,
		},
		"broken": {
			MTA: queue.Postfix, Queue: queue.Incoming, ID: "B1C2D3", Path: "incoming/B1C2D3",
			Sender:     "carol@example.com",
			Recipients: []queue.Recipient{{Address: "dave@example.com"}},
			Size:       300,
			Err:        errors.New("record 'R' at offset 0x1f3: length overflows"),
		},
	}
}

func selectNames(t *testing.T, spec Spec) []string {
	t.Helper()
	spec.Now = testNow
	m, err := Compile(spec)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	var got []string
	for name, msg := range testMessages() {
		if ok, _ := m.Match(msg, nil); ok {
			got = append(got, name)
		}
	}
	slices.Sort(got)
	return got
}

func TestMatchEnvelope(t *testing.T) {
	all := []string{"broken", "ndr", "spam", "v6"}
	tests := []struct {
		name string
		spec Spec
		want []string
	}{
		{"zero spec selects all", Spec{}, all},
		{"ids", Spec{IDs: []string{"4A3F1C2B0", "123456", "nope"}}, []string{"spam", "v6"}},
		{"id case-sensitive", Spec{IDs: []string{"4a3f1c2b0"}}, nil},
		{"queues", Spec{Queues: []string{"hold", "queue"}}, []string{"ndr", "v6"}},

		{"sender exact case-insensitive", Spec{Senders: []string{"bob@example.com"}}, []string{"spam"}},
		{"sender angle brackets", Spec{Senders: []string{"<BOB@example.com>"}}, []string{"spam"}},
		{"sender @domain", Spec{Senders: []string{"@example.com"}}, []string{"broken", "spam", "v6"}},
		{"sender @DOMAIN", Spec{Senders: []string{"@EXAMPLE.COM"}}, []string{"broken", "spam", "v6"}},
		{"sender @domain is exact", Spec{Senders: []string{"@example"}}, nil},
		{"sender glob", Spec{Senders: []string{"*@example.com"}}, []string{"broken", "spam", "v6"}},
		{"sender glob ?", Spec{Senders: []string{"b?b@*"}}, []string{"spam"}},
		{"sender @glob domain", Spec{Senders: []string{"@*.com"}}, []string{"broken", "spam", "v6"}},
		{"sender star excludes null sender", Spec{Senders: []string{"*"}}, []string{"broken", "spam", "v6"}},
		{"sender empty is null sender", Spec{Senders: []string{""}}, []string{"ndr"}},
		{"sender <> is null sender", Spec{Senders: []string{"<>"}}, []string{"ndr"}},
		{"sender regex as given", Spec{Senders: []string{`/^[a-z]+@example\.com$/`}}, []string{"broken", "v6"}},
		{"sender regex (?i)", Spec{Senders: []string{`/(?i)^bob@/`}}, []string{"spam"}},
		{"sender OR", Spec{Senders: []string{"bob@example.com", "<>"}}, []string{"ndr", "spam"}},
		{"not sender domain", Spec{NotSenders: []string{"@example.com"}}, []string{"ndr"}},
		{"not sender null", Spec{NotSenders: []string{""}}, []string{"broken", "spam", "v6"}},
		{"not sender OR", Spec{NotSenders: []string{"bob@example.com", "alice@example.com"}}, []string{"broken", "ndr"}},

		{"recipient domain pending", Spec{Recipients: []string{"@fastbox.example.net"}}, []string{"spam"}},
		{"recipient done does not count", Spec{Recipients: []string{"alice@example.com"}}, nil},
		{"recipient done (qmail) does not count", Spec{Recipients: []string{"bob@example.com"}}, nil},
		{"recipient canceled does not count", Spec{Recipients: []string{"@blocklisted.example"}}, nil},
		{"recipient glob", Spec{Recipients: []string{"*@*.example"}}, []string{"ndr", "v6"}},
		{"not recipient", Spec{NotRecipients: []string{"@fastbox.example.net"}}, []string{"broken", "ndr", "v6"}},
		{"not recipient ignores done", Spec{NotRecipients: []string{"alice@example.com"}}, all},

		{"sasl", Spec{SASLUsers: []string{"hello@example.com"}}, []string{"spam"}},
		{"sasl OR", Spec{SASLUsers: []string{"hello@example.com", "alice@example.com"}}, []string{"spam", "v6"}},
		{"sasl empty is unauthenticated", Spec{SASLUsers: []string{""}}, []string{"broken", "ndr"}},
		{"sasl star is authenticated", Spec{SASLUsers: []string{"*"}}, []string{"spam", "v6"}},
		{"not sasl", Spec{NotSASLUsers: []string{"hello@example.com"}}, []string{"broken", "ndr", "v6"}},

		{"client cidr v4", Spec{Clients: []string{"100.0.0.0/8"}}, []string{"spam"}},
		{"client cidr unmasked", Spec{Clients: []string{"100.64.1.77/16"}}, []string{"spam"}},
		{"client ip v4", Spec{Clients: []string{"100.64.1.2"}}, []string{"spam"}},
		{"client ip v4-mapped", Spec{Clients: []string{"::ffff:100.64.1.2"}}, []string{"spam"}},
		{"client cidr v4-mapped", Spec{Clients: []string{"::ffff:100.0.0.0/104"}}, []string{"spam"}},
		{"client cidr v6", Spec{Clients: []string{"2001:db8::/32"}}, []string{"v6"}},
		{"client ip v6 canonical", Spec{Clients: []string{"2001:DB8:0:0::5"}}, []string{"v6"}},
		{"client ip v6 bracketed", Spec{Clients: []string{"[2001:db8::5]"}}, []string{"v6"}},
		{"client ip v6 IPv6: prefix", Spec{Clients: []string{"IPv6:2001:db8::5"}}, []string{"v6"}},
		{"client other v6 net", Spec{Clients: []string{"2001:db9::/32"}}, nil},
		{"client hostname glob", Spec{Clients: []string{"*.PARTNER.example"}}, []string{"v6"}},
		{"client hostname exact", Spec{Clients: []string{"mail.partner.example"}}, []string{"v6"}},
		{"client hostname regex", Spec{Clients: []string{"/partner/"}}, []string{"v6"}},
		{"client address glob", Spec{Clients: []string{"100.64.*"}}, []string{"spam"}},
		{"client empty is local", Spec{Clients: []string{""}}, []string{"broken", "ndr"}},
		{"client OR", Spec{Clients: []string{"100.0.0.0/8", "2001:db8::/32"}}, []string{"spam", "v6"}},
		{"not client", Spec{NotClients: []string{"100.0.0.0/8"}}, []string{"broken", "ndr", "v6"}},

		{"helo exact", Spec{HELOs: []string{"BOT.example.org"}}, []string{"spam"}},
		{"helo glob", Spec{HELOs: []string{"*.example.org"}}, []string{"spam"}},
		{"helo regex", Spec{HELOs: []string{`/^\[/`}}, []string{"v6"}},

		{"older than", Spec{OlderThan: time.Hour}, []string{"spam", "v6"}},
		{"newer than", Spec{NewerThan: time.Hour}, []string{"ndr"}},
		{"age window", Spec{OlderThan: time.Hour, NewerThan: 24 * time.Hour}, []string{"spam"}},
		{"older than boundary is strict", Spec{OlderThan: 3 * time.Hour}, []string{"v6"}},

		{"min size inclusive", Spec{MinSize: 5000}, []string{"spam", "v6"}},
		{"max size inclusive", Spec{MaxSize: 5000}, []string{"broken", "ndr", "spam"}},
		{"size window", Spec{MinSize: 3000, MaxSize: 6000}, []string{"spam"}},

		{"null sender", Spec{NullSender: true}, []string{"ndr"}},
		{"not null sender", Spec{NotNullSender: true}, []string{"broken", "spam", "v6"}},
		{"bouncing", Spec{Bouncing: true}, []string{"ndr"}},
		{"corrupt", Spec{Corrupt: true}, []string{"broken"}},
		{"corrupt still matches read fields", Spec{Senders: []string{"carol@example.com"}}, []string{"broken"}},

		{"reason", Spec{Reasons: []string{"unknown user"}}, []string{"ndr"}},
		{"reason regex OR", Spec{Reasons: []string{`Connection refused$`, "^nothing"}}, []string{"spam"}},
		{"reason of done recipient", Spec{Reasons: []string{"mailbox full"}}, []string{"v6"}},

		{"AND across fields", Spec{SASLUsers: []string{"hello@example.com"}, Queues: []string{"deferred"}, Clients: []string{"100.0.0.0/8"}}, []string{"spam"}},
		{"AND fails on one field", Spec{SASLUsers: []string{"hello@example.com"}, Queues: []string{"hold"}}, nil},
		{"positive and negative", Spec{Senders: []string{"@example.com"}, NotSASLUsers: []string{"hello@example.com"}}, []string{"broken", "v6"}},

		{"invert", Spec{Senders: []string{"@example.com"}, Invert: true}, []string{"ndr"}},
		{"invert zero spec selects none", Spec{Invert: true}, nil},
		{"invert AND", Spec{SASLUsers: []string{"hello@example.com"}, Queues: []string{"deferred"}, Invert: true}, []string{"broken", "ndr", "v6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := selectNames(t, tc.spec)
			if !slices.Equal(got, tc.want) {
				t.Errorf("selected %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMatchNowDefaultsToClock(t *testing.T) {
	m, err := Compile(Spec{NewerThan: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Match(&queue.Message{Arrival: clock.Now().Add(-time.Minute)}, nil); !ok {
		t.Error("a minute-old message is not newer than 1h with Now unset")
	}
	if ok, _ := m.Match(&queue.Message{Arrival: clock.Now().Add(-2 * time.Hour)}, nil); ok {
		t.Error("a 2h-old message is newer than 1h with Now unset")
	}
}

func TestExplain(t *testing.T) {
	msgs := testMessages()
	tests := []struct {
		spec Spec
		msg  string
		want []string
	}{
		{Spec{SASLUsers: []string{"hello@example.com"}, Clients: []string{"100.0.0.0/8"}}, "spam",
			[]string{"sasl_user=hello@example.com", "client 100.64.1.2 in 100.0.0.0/8"}},
		{Spec{Senders: []string{"<>"}, Bouncing: true}, "ndr",
			[]string{"bouncing", "sender=<>"}},
		{Spec{Senders: []string{"@example.com"}, Queues: []string{"queue"}}, "v6",
			[]string{"queue=queue", "sender=alice@example.com matches @example.com"}},
		{Spec{Recipients: []string{"@fastbox.example.net"}, OlderThan: time.Hour}, "spam",
			[]string{"age=3h0m0s older than 1h0m0s", "recipient=x@fastbox.example.net matches @fastbox.example.net"}},
		{Spec{Clients: []string{"*.partner.example"}}, "v6",
			[]string{"client_name=mail.partner.example matches *.partner.example"}},
		{Spec{Senders: []string{"@example.com"}, Invert: true}, "ndr",
			[]string{"invert: --sender does not hold"}},
	}
	for _, tc := range tests {
		tc.spec.Now = testNow
		m, err := Compile(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		ok, why := m.Match(msgs[tc.msg], nil)
		if !ok {
			t.Errorf("%+v does not select %s", tc.spec, tc.msg)
			continue
		}
		for _, w := range tc.want {
			if !slices.Contains(why, w) {
				t.Errorf("%s: why %q lacks %q", tc.msg, why, w)
			}
		}
	}
	// The null sender explanation says so.
	m, _ := Compile(Spec{Senders: []string{""}})
	_, why := m.Match(msgs["ndr"], nil)
	if len(why) != 1 || why[0] != "sender=<>" {
		t.Errorf("null sender why = %q", why)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		spec  Spec
		flag  string
		value string
	}{
		{Spec{Senders: []string{"/(/"}}, FlagSender, "/(/"},
		{Spec{Senders: []string{"@"}}, FlagSender, "@"},
		{Spec{Recipients: []string{"/a[/"}}, FlagRecipient, "/a[/"},
		{Spec{SASLUsers: []string{"/*/"}}, FlagSASLUser, "/*/"},
		{Spec{NotSenders: []string{"/(/"}}, FlagNotSender, "/(/"},
		{Spec{NotRecipients: []string{"@a@b"}}, FlagNotRecipient, "@a@b"},
		{Spec{NotSASLUsers: []string{"/(/"}}, FlagNotSASLUser, "/(/"},
		{Spec{Clients: []string{"10.0.0.0/33"}}, FlagClient, "10.0.0.0/33"},
		{Spec{Clients: []string{"10.0.0/8"}}, FlagClient, "10.0.0/8"},
		{Spec{Clients: []string{"300.1.2.3"}}, FlagClient, "300.1.2.3"},
		{Spec{Clients: []string{"2001:db8::zz"}}, FlagClient, "2001:db8::zz"},
		{Spec{Clients: []string{"/(/"}}, FlagClient, "/(/"},
		{Spec{NotClients: []string{"1.2.3.4/40"}}, FlagNotClient, "1.2.3.4/40"},
		{Spec{HELOs: []string{"/[/"}}, FlagHELO, "/[/"},
		{Spec{Reasons: []string{"("}}, FlagReason, "("},
		{Spec{Subjects: []string{"[z-a]"}}, FlagSubject, "[z-a]"},
		{Spec{Bodies: []string{"x{2,1}"}}, FlagBody, "x{2,1}"},
		{Spec{Headers: []string{"NoColon"}}, FlagHeader, "NoColon"},
		{Spec{Headers: []string{": value"}}, FlagHeader, ": value"},
		{Spec{Headers: []string{"Bad Name: x"}}, FlagHeader, "Bad Name: x"},
		{Spec{Headers: []string{"Subject: ("}}, FlagHeader, "Subject: ("},
		{Spec{Queues: []string{"defered"}}, FlagQueueName, "defered"},
		{Spec{IDs: []string{""}}, FlagID, ""},
		{Spec{OlderThan: -time.Hour}, FlagOlderThan, "-1h0m0s"},
		{Spec{NewerThan: -time.Second}, FlagNewerThan, "-1s"},
		{Spec{MinSize: -1}, FlagMinSize, "-1"},
		{Spec{MaxSize: -5}, FlagMaxSize, "-5"},
		{Spec{MinSize: 10, MaxSize: 5}, FlagMinSize, "10"},
		{Spec{NullSender: true, NotNullSender: true}, FlagNullSender, ""},
	}
	for _, tc := range tests {
		m, err := Compile(tc.spec)
		if err == nil {
			t.Errorf("Compile(%+v) = %v, want error", tc.spec, m)
			continue
		}
		var se *SpecError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%+v): %T %v, want *SpecError", tc.spec, err, err)
			continue
		}
		if se.Flag != tc.flag || se.Value != tc.value {
			t.Errorf("Compile(%+v): flag %q value %q, want %q %q", tc.spec, se.Flag, se.Value, tc.flag, tc.value)
		}
		if !strings.Contains(err.Error(), tc.flag) || (tc.value != "" && !strings.Contains(err.Error(), tc.value)) {
			t.Errorf("error %q does not name %s %q", err, tc.flag, tc.value)
		}
	}
	// Valid forms near the error cases compile.
	for _, s := range []Spec{
		{Clients: []string{"host-1.example", "2001:db8::/32", "::1", "10.1.2.3", "*", "/x/"}},
		{Headers: []string{"X-Spam-Flag:YES", "Subject:", "list-id : .*"}},
		{Queues: []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt", "saved", "todo", "queue"}},
	} {
		if _, err := Compile(s); err != nil {
			t.Errorf("Compile(%+v): %v", s, err)
		}
	}
}

func TestSpecEmpty(t *testing.T) {
	if s := (Spec{Invert: true, Now: testNow}); !s.Empty() {
		t.Error("Spec with only Invert and Now is not Empty")
	}
	for _, s := range []Spec{
		{IDs: []string{"x"}}, {Senders: []string{""}}, {OlderThan: 1}, {MaxSize: 1},
		{Bouncing: true}, {Corrupt: true}, {Bodies: []string{"x"}}, {NotClients: []string{"x"}},
	} {
		if s.Empty() {
			t.Errorf("%+v is Empty", s)
		}
	}
}

func contentMessage() *queue.Message {
	return &queue.Message{
		Queue: queue.Deferred, ID: "C0FFEE", Sender: "x1@example.com", SASLUser: "hello@example.com",
		Content: &queue.Content{
			Headers: []queue.Header{
				{Name: "Received", Value: " from bot by mail.example.com"},
				{Name: "From", Value: ` "CANADA PHARMACY" <x1@example.com>`},
				{Name: "Subject", Value: " =?UTF-8?B?0J/RgNC40LLQtdGC?="},
				{Name: "X-Attachment-Scan", Value: " clean"},
				{Name: "Received", Value: " from localhost by bot"},
			},
			Subject: "Привет",
			From:    `"CANADA PHARMACY" <x1@example.com>`,
			Body:    []byte("Buy cheap pills\r\nnow\r\n"),
		},
	}
}

func TestMatchContent(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want bool
	}{
		{"header raw", Spec{Headers: []string{"From: CANADA PHARMACY"}}, true},
		{"header name case-insensitive, value trimmed", Spec{Headers: []string{"x-attachment-scan: ^clean$"}}, true},
		{"header second of two fields", Spec{Headers: []string{"Received: ^from localhost"}}, true},
		{"header rfc2047 decoded", Spec{Headers: []string{"Subject: ^Привет$"}}, true},
		{"header absent", Spec{Headers: []string{"List-Id: ."}}, false},
		{"header OR", Spec{Headers: []string{"List-Id: .", "From: PHARMACY"}}, true},
		{"header regex as given", Spec{Headers: []string{"From: canada"}}, false},
		{"header (?i)", Spec{Headers: []string{"From: (?i)canada"}}, true},
		{"subject decoded", Spec{Subjects: []string{"Прив"}}, true},
		{"subject no match", Spec{Subjects: []string{"Undelivered Mail"}}, false},
		{"body", Spec{Bodies: []string{`pills\r\nnow`}}, true},
		{"body no match", Spec{Bodies: []string{"viagra"}}, false},
		{"content AND envelope", Spec{SASLUsers: []string{"hello@example.com"}, Subjects: []string{"Привет"}}, true},
		{"envelope fails first", Spec{SASLUsers: []string{"alice@example.com"}, Subjects: []string{"Привет"}}, false},
		{"AND across content fields", Spec{Subjects: []string{"Привет"}, Bodies: []string{"viagra"}}, false},
		{"invert content", Spec{Subjects: []string{"Undelivered"}, Invert: true}, true},
		{"invert content match", Spec{Subjects: []string{"Привет"}, Invert: true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if !m.NeedsContent() {
				t.Fatal("NeedsContent false for a content spec")
			}
			if got := m.NeedsBody(); got != (len(tc.spec.Bodies) > 0) {
				t.Errorf("NeedsBody = %v", got)
			}
			msg := contentMessage()
			if got, why := m.Match(msg, nil); got != tc.want {
				t.Errorf("Match = %v (why %q), want %v", got, why, tc.want)
			}
			// The same through an explicit content argument.
			c := msg.Content
			msg.Content = nil
			if got, _ := m.Match(msg, c); got != tc.want {
				t.Errorf("Match(m, c) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMatchContentPhases(t *testing.T) {
	m, err := Compile(Spec{Senders: []string{"@example.com"}, Subjects: []string{"Привет"}})
	if err != nil {
		t.Fatal(err)
	}
	msg := contentMessage()
	c := msg.Content
	msg.Content = nil
	if ok, why := m.MatchEnvelope(msg); !ok || !slices.Equal(why, []string{"sender=x1@example.com matches @example.com"}) {
		t.Errorf("MatchEnvelope = %v %q", ok, why)
	}
	if ok, why := m.MatchContent(msg, c); !ok || len(why) != 1 || !strings.HasPrefix(why[0], `subject "Привет" matches`) {
		t.Errorf("MatchContent = %v %q", ok, why)
	}
	// Without content a content spec cannot hold.
	if ok, _ := m.MatchContent(msg, nil); ok {
		t.Error("MatchContent without content holds")
	}
	if ok, _ := m.Match(msg, nil); ok {
		t.Error("Match without content holds")
	}
	env, _ := Compile(Spec{Senders: []string{"@example.com"}})
	if env.NeedsContent() || env.NeedsBody() {
		t.Error("envelope spec needs content")
	}
	if ok, _ := env.MatchContent(msg, nil); !ok {
		t.Error("MatchContent of an envelope spec without content is false")
	}
	if ok, _ := env.Match(msg, nil); !ok {
		t.Error("envelope spec needs content to match")
	}
}

func TestHeaderCharsetReader(t *testing.T) {
	m, err := Compile(Spec{Headers: []string{"X-Test: ^decoded$"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &queue.Content{Headers: []queue.Header{{Name: "X-Test", Value: "=?x-test?Q?ignored?="}}}
	msg := &queue.Message{}
	if ok, _ := m.Match(msg, c); ok {
		t.Fatal("unknown charset decoded without a charset reader")
	}
	m.SetCharsetReader(func(charset string, _ io.Reader) (io.Reader, error) {
		if charset != "x-test" {
			return nil, errors.New("unexpected charset " + charset)
		}
		return strings.NewReader("decoded"), nil
	})
	if ok, _ := m.Match(msg, c); !ok {
		t.Error("charset reader not used")
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "x", true},
		{"a*b", "ab", true},
		{"a*b", "axxb", true},
		{"a*b", "axxbc", false},
		{"a*b*c", "abxbxc", true},
		{"?", "é", true},
		{"??", "é", false},
		{"*@EXAMPLE.com", "Ünïcode@example.COM", true},
		{"ü*", "Über", true},
		{"a?c", "abbc", false},
		{"*a*a*a*a*b", strings.Repeat("a", 60), false},
	}
	for _, tc := range tests {
		if got := globMatch(lowerRunes(tc.pat), tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

func TestCompareIDs(t *testing.T) {
	ids := []string{"100", "9", "0010", "B2", "10", "A1", "1000000000000000000000"}
	slices.SortFunc(ids, CompareIDs)
	want := []string{"9", "0010", "10", "100", "1000000000000000000000", "A1", "B2"}
	if !slices.Equal(ids, want) {
		t.Errorf("sorted %v, want %v", ids, want)
	}
}

// A non-matching message must not allocate: the engine runs the envelope
// check on every message of a million-message queue.
func TestMatchEnvelopeAllocs(t *testing.T) {
	m, err := Compile(Spec{
		Senders:    []string{"@example.com", "*@*.example.org", `/^[a-z]+[0-9]+@/`},
		SASLUsers:  []string{"hello@example.com"},
		Clients:    []string{"100.0.0.0/8", "2001:db8::/32", "*.bot.example"},
		Recipients: []string{"@fastbox.example.net"},
		Reasons:    []string{"refused"},
		OlderThan:  time.Minute,
		Now:        testNow,
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := testMessages()
	miss := msgs["v6"] // fails at --sasl-user after senders and ages matched
	n := testing.AllocsPerRun(200, func() {
		if ok, _ := m.Match(miss, nil); ok {
			t.Fatal("matched")
		}
	})
	if n != 0 {
		t.Errorf("Match of a non-matching message allocates %v times", n)
	}
	// The cheap decision of a matching message allocates nothing either
	// (the explanation is built only afterwards).
	hit := msgs["spam"]
	hit.Sender = "bob1@example.com"
	n = testing.AllocsPerRun(200, func() {
		if ok, _ := m.envelope(hit, nil); !ok {
			t.Fatal("no match")
		}
	})
	if n != 0 {
		t.Errorf("envelope check of a matching message allocates %v times", n)
	}
}

func BenchmarkMatchEnvelopeMiss(b *testing.B) {
	m, _ := Compile(Spec{Senders: []string{"@example.com"}, SASLUsers: []string{"hello@example.com"}, Clients: []string{"100.0.0.0/8"}})
	msg := testMessages()["v6"]
	b.ReportAllocs()
	for b.Loop() {
		m.Match(msg, nil)
	}
}
