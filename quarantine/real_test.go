package quarantine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
)

// TestPostfixRealRoundTrip runs a real Postfix: three deferred messages;
// two are quarantined while Postfix is stopped, one is restored in place
// and one through maildrop (postsuper -r's route); after a start with the
// relay pointed at smtp-sink, all three arrive, each once, with the
// restored ones byte-identical in their bodies.
func TestPostfixRealRoundTrip(t *testing.T) {
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{})
	pf.Start()
	sink := postfixtest.StartSink(t)
	subjects := []string{"quarantine-in-place", "quarantine-into-maildrop", "never-quarantined"}
	ids := map[string]string{}
	for _, s := range subjects {
		ids[s] = pf.SendSMTP(postfixtest.Mail{From: "a@example.com", To: []string{"x@remote.example"},
			Data: postfixtest.NewMessage("a@example.com", []string{"x@remote.example"}, s, "body of "+s+"\n")})
	}
	pf.WaitQueued(len(subjects), 30*time.Second)
	pf.Stop()

	qdir := filepath.Join(filepath.Dir(pf.QueueDir), "quarantine")
	if err := os.Mkdir(qdir, 0o700); err != nil {
		t.Fatal(err)
	}
	queueFS, dirFS := testkit.OpenFS(t, pf.QueueDir), testkit.OpenFS(t, qdir)
	sp, err := postfixq.Open(pf.QueueDir, postfixq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := testkit.ReadAll(t, sp)
	entries := map[string]Entry{}
	for _, s := range subjects[:2] {
		m, ok := msgs[ids[s]]
		if !ok {
			t.Fatalf("%s (%s) not in the queue: %v", s, ids[s], msgs)
		}
		e, err := Quarantine(sp, m, dirFS, queueFS, Options{})
		if err != nil {
			t.Fatal(err)
		}
		entries[s] = e
	}
	if left := testkit.ReadAll(t, sp); len(left) != 1 {
		t.Fatalf("%d messages left after quarantine", len(left))
	}
	if _, err := Restore(entries[subjects[0]], dirFS, queueFS, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(entries[subjects[1]], dirFS, queueFS, RestoreOptions{Into: true}); err != nil {
		t.Fatal(err)
	}
	if out, err := pf.Postsuper("-s"); err != nil || strings.Contains(out, "enamed") {
		t.Errorf("postsuper -s: %v %s", err, out)
	}

	pf.Postconf("relayhost = [" + strings.Replace(sink.Addr, ":", "]:", 1))
	pf.Start()
	pf.Flush()
	got := sink.WaitMessages(len(subjects), 60*time.Second)
	seen := map[string]int{}
	for _, m := range got {
		for _, s := range subjects {
			if strings.Contains(string(m.Data), "Subject: "+s+"\n") && strings.Contains(string(m.Data), "body of "+s+"\n") {
				seen[s]++
			}
		}
	}
	for _, s := range subjects {
		if seen[s] != 1 {
			t.Errorf("%s arrived %d times", s, seen[s])
		}
	}
	if len(got) != len(subjects) {
		t.Errorf("sink got %d messages, want %d", len(got), len(subjects))
	}
}
