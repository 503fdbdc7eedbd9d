package filter

import (
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// FuzzCompileMatch: any pattern either compiles or is refused with a
// *SpecError, and matching any value never panics.
func FuzzCompileMatch(f *testing.F) {
	for _, s := range []string{"", "<>", "@", "@x", "*", "?", "/(/", "//", "/a/", "a*b?", "10.0.0.0/8", "::1",
		"[::1]", "IPv6:::1", "1.2.3", "::ffff:1.2.3.4/120", "Subject: x", "é*", "\xff*"} {
		f.Add(s, "user@example.com")
		f.Add(s, "")
		f.Add(s, "\xffé@[::1]")
	}
	f.Fuzz(func(t *testing.T, pat, val string) {
		specs := []Spec{
			{Senders: []string{pat}}, {Recipients: []string{pat}}, {SASLUsers: []string{pat}},
			{Clients: []string{pat}}, {HELOs: []string{pat}}, {NotClients: []string{pat}},
			{Reasons: []string{pat}}, {Headers: []string{pat}}, {Subjects: []string{pat}}, {Bodies: []string{pat}},
		}
		msg := &queue.Message{
			Sender: val, SASLUser: val, ClientAddr: val, ClientName: val, HELO: val,
			Recipients: []queue.Recipient{{Address: val, Reason: val}},
			Arrival:    time.Unix(0, 0),
			Content: &queue.Content{
				Headers: []queue.Header{{Name: pat, Value: val}, {Name: "Subject", Value: val}},
				Subject: val, Body: []byte(val),
			},
		}
		for _, s := range specs {
			m, err := Compile(s)
			if err != nil {
				if _, ok := err.(*SpecError); !ok {
					t.Fatalf("Compile(%+v): %T", s, err)
				}
				continue
			}
			m.Match(msg, nil)
			m.MatchEnvelope(msg)
			m.MatchContent(msg, nil)
		}
	})
}
