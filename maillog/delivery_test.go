package maillog

import (
	"bufio"
	"bytes"
	"os"
	"testing"
)

// TestDeliveryFastPath checks deliveryLine (log_adhoc.c's fixed layout
// read with a few searches) against the general key=value reader on every
// delivery line of the real Postfix log of the bundled fixture, and on
// layouts it must read the same or leave to the general reader.
func TestDeliveryFastPath(t *testing.T) {
	f, err := os.Open("../testdata/queues/postfix-incident/maillog.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if i := bytes.Index(line, []byte(": to=<")); i >= 0 {
			lines = append(lines, append([]byte(nil), line[i+2:]...))
		}
	}
	if len(lines) < 500 {
		t.Fatalf("only %d delivery lines in the fixture", len(lines))
	}
	lines = append(lines,
		// orig_to and conn_use (log_adhoc.c writes both when they apply)
		[]byte("to=<bob@example.net>, orig_to=<alias@example.com>, relay=mx.example.net[192.0.2.7]:25, conn_use=2, delay=0.4, delays=0.1/0/0.1/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4A3F1C2B0)"),
		// no text after the status
		[]byte(`to=<a@example.net>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred`),
		// an address holding ">, ": both readers cut it there alike
		[]byte(`to=<"a>, b"@example.net>, relay=none, delay=1, delays=1/0/0/0, dsn=4.4.1, status=deferred (x)`),
		// layouts the fast path must decline, and the general reader reads
		[]byte("to=<x@example.net>, status=sent, relay=local, dsn=2.0.0"),
		[]byte("to=<x@example.net>, relay=a b, delay=1, dsn=2.0.0, status=sent (x)"),
		[]byte("to=<x@example.net"),
		// Postfix before 2.3: no dsn=, and a text that holds one
		[]byte("to=<x@example.net>, relay=local, delay=0, status=sent (delivered, dsn=5.0.0, x)"),
	)
	fast := 0
	for _, m := range lines {
		var a, b Event
		deliveryFields(m, &a)
		if deliveryLine(m, &b) {
			fast++
			if a != b {
				t.Errorf("%s:\n fast    %+v\n general %+v", m, b, a)
			}
		} else if b != (Event{}) {
			t.Errorf("%s: declined but set %+v", m, b)
		}
	}
	if fast != len(lines)-5 {
		t.Errorf("fast path read %d of %d lines, want all but the 5 odd ones", fast, len(lines))
	}
}
