package qmailq

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseTraceCases(t *testing.T) {
	const q = "Received: (qmail 5299 invoked from network); 22 Nov 2026 16:13:13 -0000\n"
	for _, c := range []struct {
		name, head            string
		qp                    uint64
		invoked               Invocation
		uid                   int64
		user, ip, helo, proto string
		hops                  int
	}{
		{"auth", q + "Received: from unknown (HELO [10.0.0.12]) (dave@example.com@203.0.113.80)\n  by mx with ESMTPA; 22 Nov 2026 16:13:13 -0000\nSubject: x\n\nbody",
			5299, InvokedFromNetwork, -1, "dave@example.com", "203.0.113.80", "[10.0.0.12]", "ESMTPA", 0},
		{"auth over tls", q + "Received: from h.example (HELO h) (u@203.0.113.1)\n  by mx with ESMTPSA; date\n\n",
			5299, InvokedFromNetwork, -1, "u", "203.0.113.1", "h", "ESMTPSA", 0},
		{"forged AUTH= on plain SMTP", q + "Received: from unknown (HELO x) (victim@example.com@198.51.100.7)\n  by mx with SMTP; date\n\n",
			5299, InvokedFromNetwork, -1, "", "198.51.100.7", "x", "SMTP", 0},
		{"starttls, no auth", q + "Received: from unknown (HELO x) (198.51.100.7)\n  by mx with ESMTPS (TLS_AES_256_GCM_SHA384 encrypted); date\n\n",
			5299, InvokedFromNetwork, -1, "", "198.51.100.7", "x", "ESMTPS", 0},
		{"cipher first, no auth", q + "Received: from unknown (HELO x) (198.51.100.7)\n  by mx with (DHE-RSA-AES256-SHA encrypted) SMTP; date\n\n",
			5299, InvokedFromNetwork, -1, "", "198.51.100.7", "x", "SMTP", 0},
		{"no HELO shown", q + "Received: from mail.example (192.0.2.1)\n  by mx with SMTP; date\n\n",
			5299, InvokedFromNetwork, -1, "", "192.0.2.1", "mail.example", "SMTP", 0},
		{"ipv6", q + "Received: from unknown (HELO h) (u@x@2001:db8::1)\n  by mx with ESMTPA; date\n\n",
			5299, InvokedFromNetwork, -1, "u@x", "2001:db8::1", "h", "ESMTPA", 0},
		{"local injection", "Received: (qmail 10285 invoked by uid 0); 22 Nov 2026 16:14:53 -0000\nReceived: from evil (HELO e) (boss@example.com@1.2.3.4)\n  by mx with ESMTPA; date\n\n",
			10285, InvokedByUID, 0, "", "", "", "", 0},
		{"forward through alias", "Received: (qmail 6777 invoked by alias); d\nDelivered-To: frank@example.com\n" + q + "Received: from unknown (HELO o) (a@b@198.51.100.77)\n  by mx with ESMTPA; d\n\n",
			6777, InvokedByAlias, -1, "a@b", "198.51.100.77", "o", "ESMTPA", 1},
		{"header not directly after", q + "X-Junk: y\nReceived: from unknown (HELO x) (u@1.2.3.4)\n  by mx with ESMTPA; date\n\n",
			5299, InvokedFromNetwork, -1, "", "", "", "", 0},
		{"cut inside the smtpd header", q + "Received: from unknown (HELO x) (u@1.2.3.4)\n  by mx with ESMTPA; date",
			5299, InvokedFromNetwork, -1, "", "", "", "", 0},
		{"bounce", "Received: (qmail 5358 invoked for bounce); 22 Nov 2026 16:13:20 -0000\nDate: x\n\n",
			5358, InvokedForBounce, -1, "", "", "", "", 0},
	} {
		tr := ParseTrace([]byte(c.head))
		if tr.Queue == nil {
			t.Errorf("%s: no qmail-queue line", c.name)
			continue
		}
		if tr.Queue.QP != c.qp || tr.Queue.Invoked != c.invoked || tr.Queue.UID != c.uid || tr.Hops != c.hops {
			t.Errorf("%s: queue line %+v hops %d", c.name, *tr.Queue, tr.Hops)
		}
		proto := ""
		if tr.SMTP != nil {
			proto = tr.SMTP.Protocol
		}
		if tr.AuthUser != c.user || tr.ClientAddr() != c.ip || proto != c.proto {
			t.Errorf("%s: user %q ip %q proto %q, want %q %q %q", c.name, tr.AuthUser, tr.ClientAddr(), proto, c.user, c.ip, c.proto)
		}
		if tr.SMTP != nil && tr.SMTP.HELO != c.helo {
			t.Errorf("%s: helo %q, want %q", c.name, tr.SMTP.HELO, c.helo)
		}
	}
	// Anything that does not start with qmail-queue's line is not trusted.
	tr := ParseTrace([]byte("Received: from unknown (HELO x) (u@1.2.3.4)\n  by mx with ESMTPA; date\n\n"))
	if tr.Queue != nil || tr.AuthUser != "" {
		t.Errorf("trusted a header without qmail-queue's line: %+v", tr)
	}
}

func TestDecodeHeader(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"=?iso-2022-jp?b?GyRCMEtGIxsoQiAbJEJCZ0plGyhC?= <dave@example.com>", "伊藤 大輔 <dave@example.com>"},
		{"=?utf-8?b?44CQ?= =?utf-8?b?44GU?=", "【ご"},
		{"=?utf-8?b?4oKs?= =?UTF-8?Q?_a=C3=A9?=", "€ aé"},
		{"=?utf-8?b?44?= =?utf-8?b?gJA=?=", "【"}, // a character split across two words
		{"a =?bogus?x?y?= b", "a =?bogus?x?y?= b"},
		{"\x1b$B$3$s$K$A$O\x1b(B", "こんにちは"},
		{"caf\xe9", "café"},
		{"=?unknown-cs?q?abc?=", "abc"},
	} {
		if got := DecodeHeader(c.in); got != c.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Seeds: the heads of every real mess file of the fixture.
func FuzzParseTrace(f *testing.F) {
	root := extract(f, "queue.tar.gz")
	n := 0
	filepath.WalkDir(filepath.Join(root, "mess"), func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || n > 60 {
			return nil
		}
		b, _ := os.ReadFile(p)
		f.Add(b[:min(len(b), 2048)])
		n++
		return nil
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := ParseTrace(b)
		if tr.AuthUser != "" && (tr.SMTP == nil || !strings.Contains(string(b), tr.AuthUser)) {
			t.Fatalf("auth user %q out of nowhere", tr.AuthUser)
		}
		if tr.Queue == nil && (tr.SMTP != nil || tr.AuthUser != "") {
			t.Fatal("SMTP header trusted without qmail-queue's line")
		}
		for _, h := range ParseHeaders(b) {
			d := DecodeHeader(h.Value)
			if !utf8.ValidString(d) {
				t.Fatalf("DecodeHeader gave invalid UTF-8 for %q", h.Value)
			}
		}
		if !utf8.ValidString(DecodeHeader(string(b))) {
			t.Fatal("DecodeHeader gave invalid UTF-8")
		}
	})
}

// TestParseTraceUIDs: the SMTP-AUTH header after "invoked by uid N" is
// trusted only for the uids given; otherwise it is reported as untrusted.
func TestParseTraceUIDs(t *testing.T) {
	head := []byte("Received: (qmail 4711 invoked by uid 89); 7 Dec 2026 10:00:00 -0000\n" +
		"Received: from unknown (HELO pc) (carol@example.com@192.0.2.7)\n  by mail.example.com with ESMTPA; 7 Dec 2026 10:00:00 -0000\n\n")
	tr := ParseTrace(head)
	if tr.AuthUser != "" || tr.SMTP != nil || tr.UntrustedAuthUser != "carol@example.com" || tr.UntrustedUID != 89 {
		t.Errorf("untrusted: %+v", tr)
	}
	tr = ParseTraceUIDs(head, []int64{1000, 89})
	if tr.AuthUser != "carol@example.com" || tr.SMTP == nil || tr.SMTP.IP != "192.0.2.7" || tr.UntrustedAuthUser != "" {
		t.Errorf("trusted 89: %+v", tr)
	}
	tr = ParseTraceUIDs(head, []int64{1000})
	if tr.AuthUser != "" || tr.UntrustedUID != 89 {
		t.Errorf("trusted 1000 only: %+v", tr)
	}
}

// TestParseSendLogInfo reads the real qmail-send log of the qmail fixture.
func TestParseSendLogInfo(t *testing.T) {
	b, err := os.ReadFile("../testdata/queues/qmail-incident/qmail-send.log")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		in, ok := ParseSendLogInfo(l)
		if ok != strings.HasPrefix(l, "info msg ") {
			t.Fatalf("%q: ok=%v", l, ok)
		}
		if ok {
			n++
			if in.ID == 0 || in.QP == 0 || !strings.HasSuffix(l, fmt.Sprintf("from <%s> qp %d uid %d", in.Sender, in.QP, in.UID)) {
				t.Errorf("%q: %+v", l, in)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d info lines", n)
	}
	in, ok := ParseSendLogInfo("@400000006579a1b2 info msg 5: bytes 10 from <> qp 7 uid 0")
	if !ok || in.Sender != "" || in.ID != 5 || in.Bytes != 10 || !in.Safe {
		t.Errorf("multilog line: %+v %v", in, ok)
	}
}

// ReadFields reads the first traceFirst bytes of mess and the rest of the
// head only when parseTrace says it looked at their end: on every prefix
// of the real messages' heads (written by notqmail's qmail-queue and
// qmail-smtpd, forwards and bounces among them) where it says it did not,
// the Trace is the one of the whole head.
func TestParseTracePrefixes(t *testing.T) {
	for _, tarball := range []string{"queue.tar.gz", "broken.tar.gz"} {
		root := extract(t, tarball)
		files, _ := filepath.Glob(filepath.Join(root, "mess", "*", "*"))
		if len(files) < 100 {
			t.Fatalf("%s: %d mess files", tarball, len(files))
		}
		checked, short := 0, 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			b = b[:min(len(b), MaxTraceHead)]
			for _, uids := range [][]int64{nil, {33, 89, 995}} {
				full := ParseTraceUIDs(b, uids)
				for cut := 0; cut <= len(b) && cut <= 2*traceFirst; cut += 13 {
					tr, s := parseTrace(b[:cut], uids)
					if s {
						short++
						continue
					}
					checked++
					if !reflect.DeepEqual(tr, full) {
						t.Fatalf("%s cut at %d: %+v, whole head %+v", f, cut, tr, full)
					}
				}
			}
		}
		if checked == 0 || short == 0 {
			t.Fatalf("%s: %d prefixes complete, %d short", tarball, checked, short)
		}
	}
}

// fieldReader, read field by field in any order, is traceFields.
func TestFieldReaderIsTraceFields(t *testing.T) {
	heads := []string{
		"", "\n", "A: 1\n", "A: 1", "A: 1\nB: 2\n\nbody", " cont\nA: 1\n", "A: 1\n b\n\tc\nB: 2\r\nC",
		"A: 1\nB: 2\nC: 3\nD: 4\n", "A: 1\n b", "A: 1\nB",
	}
	for _, h := range heads {
		for max := 1; max <= 5; max++ {
			want := traceFields([]byte(h), max)
			for _, order := range [][]int{{0, 1, 2, 3, 4, 5}, {5, 0, 3}, {2, 2, 0}} {
				r := fieldReader{head: []byte(h), max: max}
				for _, k := range order {
					f, ok := r.get(k)
					if ok != (k < len(want)) || ok && f != want[k] {
						t.Errorf("%q max %d: get(%d) = %q, %v; traceFields %q", h, max, k, f, ok, want)
					}
				}
			}
		}
	}
	if got := traceFields([]byte("A: 1\n b\nB: 2\n\n"), 64); !reflect.DeepEqual(got, []string{"A: 1 b", "B: 2"}) {
		t.Errorf("traceFields = %q", got)
	}
}

// traceFields is fieldReader read to its end: every field it would give,
// all at once (the reference the lazy reads are checked against).
func traceFields(head []byte, max int) []string {
	r := fieldReader{head: head, max: max}
	for r.next() {
	}
	return r.out
}
