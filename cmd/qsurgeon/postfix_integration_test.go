package main

// Integration tests against a REAL Postfix 3.7: a private instance
// (internal/postfixtest: its own config and queue directory, loopback only,
// relayhost on a closed port so remote mail defers) writes the queue files,
// and `qsurgeon list --format json` must agree field by field with what
// Postfix's own tools say about them: `postqueue -c DIR -j` (showq) and
// `postcat -c DIR -q ID`.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/transform"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
)

// realQueue is what realPostfixQueue made, with the queue IDs it knows from
// Postfix's own replies (SMTP "queued as", postqueue -j).
type realQueue struct {
	pf *postfixtest.Instance
	// ids by role: aliceTLS, aliceV6, bob, held, multi, nullSent, jp,
	// sendmail, ndr.
	ids map[string]string
	// subjects: the decoded Subject we wrote, by role.
	subjects map[string]string
}

const (
	// subjectJP is sent as an ISO-2022-JP encoded word.
	subjectJP = "会議の件について"
	// subjectUTF8 is sent as two folded UTF-8 encoded words (B and Q).
	subjectUTF8 = "Grüße aus Köln – ✓ erledigt"
)

// iso2022jpWord encodes s as one RFC 2047 ISO-2022-JP B encoded word, as
// Japanese mail clients do.
func iso2022jpWord(t testing.TB, s string) string {
	t.Helper()
	enc, _, err := transform.String(japanese.ISO2022JP.NewEncoder(), s)
	if err != nil {
		t.Fatal(err)
	}
	return "=?ISO-2022-JP?B?" + base64.StdEncoding.EncodeToString([]byte(enc)) + "?="
}

func rawMessage(from, to, subject, msgID, body string) []byte {
	return []byte("From: " + from + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) +
		"\r\nMessage-ID: <" + msgID + "@qsurgeon.test>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + "\r\n")
}

// realPostfixQueue starts a private Postfix, sends the messages of an
// incident (SASL users from several addresses, unauthenticated mail, a
// local delivery and a local bounce whose NDR then defers, a sendmail
// submission, a null-sender message, encoded Subjects), waits until all
// have settled in deferred, and holds one. Postfix keeps running.
func realPostfixQueue(t *testing.T) *realQueue {
	t.Helper()
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{
		SASLUsers:  map[string]string{"alice@example.com": "pw-alice", "bob": "pw-bob"},
		LocalUsers: []string{"carol"},
		// IPv6 XCLIENT addresses relay without AUTH too.
		MyNetworks: "0.0.0.0/0 [::]/0",
	})
	pf.Start()
	rq := &realQueue{pf: pf, ids: map[string]string{}, subjects: map[string]string{}}

	rq.subjects["aliceTLS"] = "alice one"
	rq.ids["aliceTLS"] = pf.SendSMTP(postfixtest.Mail{
		From: "alice@example.com", To: []string{"r1@remote.example"},
		AuthUser: "alice@example.com", AuthPass: "pw-alice",
		XClientAddr: "203.0.113.7", XClientName: "bot.example.net", HELO: "WIN-ALICE",
		Data: rawMessage("alice@example.com", "r1@remote.example", "alice one", "a1", "one"),
	})
	rq.subjects["aliceV6"] = "alice two"
	rq.ids["aliceV6"] = pf.SendSMTP(postfixtest.Mail{
		From: "alice@example.com", To: []string{"r2@remote.example", "r3@other.example"},
		AuthUser: "alice@example.com", AuthPass: "pw-alice", AuthMech: "LOGIN",
		XClientAddr: "2001:db8::7", HELO: "[IPv6:2001:db8::7]",
		Data: rawMessage("alice@example.com", "r2@remote.example, r3@other.example", "alice two", "a2", "two"),
	})
	rq.subjects["bob"] = "bob's report"
	rq.ids["bob"] = pf.SendSMTP(postfixtest.Mail{
		From: "bob@example.com", To: []string{"r4@remote.example"},
		AuthUser: "bob", AuthPass: "pw-bob",
		XClientAddr: "198.51.100.23", XClientName: "laptop.example.org", HELO: "laptop.example.org",
		Data: rawMessage("Bob <bob@example.com>", "r4@remote.example", "bob's report", "b1", "report"),
	})
	rq.subjects["held"] = "cheap pills"
	rq.ids["held"] = pf.SendSMTP(postfixtest.Mail{
		From: "spam@spammer.example", To: []string{"victim@remote.example"},
		XClientAddr: "192.0.2.10", HELO: "mx.spammer.example",
		Data: rawMessage("spam@spammer.example", "victim@remote.example", "cheap pills", "s1", "buy"),
	})
	// carol is delivered by local(8) (done), nosuchuser bounced by
	// local(8) (done + an NDR with the null sender to sender@remote.example,
	// which defers), r6 defers.
	rq.subjects["multi"] = "to three"
	rq.ids["multi"] = pf.SendSMTP(postfixtest.Mail{
		From: "sender@remote.example", To: []string{"carol@example.com", "nosuchuser@example.com", "r6@remote.example"},
		XClientAddr: "192.0.2.11", HELO: "relay.remote.example",
		Data: rawMessage("sender@remote.example", "carol@example.com, nosuchuser@example.com, r6@remote.example", "to three", "m1", "three"),
	})
	// Null sender sent over SMTP, UTF-8 Subject folded over two lines.
	utf8Subject := "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("Grüße aus Köln ")) + "?=\r\n =?UTF-8?Q?=E2=80=93_=E2=9C=93_erledigt?="
	rq.subjects["nullSent"] = subjectUTF8
	rq.ids["nullSent"] = pf.SendSMTP(postfixtest.Mail{
		From: "", To: []string{"r7@remote.example"},
		XClientAddr: "2001:db8:1::25", HELO: "bounce.example.net",
		Data: rawMessage("MAILER-DAEMON@bounce.example.net", "r7@remote.example", utf8Subject, "n1", "bounce"),
	})
	rq.subjects["jp"] = subjectJP
	rq.ids["jp"] = pf.SendSMTP(postfixtest.Mail{
		From: "jp@example.com", To: []string{"r8@remote.example"},
		XClientAddr: "192.0.2.12", HELO: "jp.example.com",
		Data: rawMessage("jp@example.com", "r8@remote.example", iso2022jpWord(t, subjectJP), "j1", "konnichiwa"),
	})
	rq.subjects["sendmail"] = "cron report"
	pf.Sendmail("cron@example.com", []string{"ops@remote.example"},
		[]byte("From: cron@example.com\nTo: ops@remote.example\nSubject: cron report\n\nall good\n"))

	q := pf.WaitQueued(9, 45*time.Second)
	known := map[string]bool{}
	for _, id := range rq.ids {
		known[id] = true
	}
	for _, e := range q {
		switch {
		case known[e.QueueID]:
		case e.Sender == "cron@example.com":
			rq.ids["sendmail"] = e.QueueID
		case e.Sender == "MAILER-DAEMON" && len(e.Recipients) == 1 && e.Recipients[0].Address == "sender@remote.example":
			rq.ids["ndr"] = e.QueueID
		default:
			t.Fatalf("unexpected message in the queue: %+v", e)
		}
	}
	if rq.ids["sendmail"] == "" || rq.ids["ndr"] == "" {
		t.Fatalf("sendmail message or NDR not found in the queue: %+v\nmaillog:\n%s", q, pf.MaillogTail(30))
	}
	if len(rq.ids) != 9 {
		t.Fatalf("ids = %v, want 9 distinct roles", rq.ids)
	}
	if out, err := pf.Postsuper("-h", rq.ids["held"]); err != nil || !strings.Contains(out, "1 message") {
		t.Fatalf("postsuper -h %s: %v: %s", rq.ids["held"], err, out)
	}
	return rq
}

// postcatView is what postcat printed about one queue file.
type postcatView struct {
	path       string // "deferred/7/7A6D1BE4D7", from the *** ENVELOPE RECORDS line
	arrival    int64
	created    int64 // create_time, -1 when there is none
	size       int64 // first field of message_size
	sender     string
	hasSender  bool
	attrs      map[string]string // named_attribute name -> value
	recipients []string
	done       []string
	headers    []string // unfolded header fields of the message contents
}

// parsePostcat reads the default output of postcat (postcat/postcat.c:
// postcat): "*** ENVELOPE RECORDS path ***", "name: value" lines whose names
// come from rec_type_name (global/rec_type.c), "named_attribute: n=v",
// "*** MESSAGE CONTENTS path ***" followed by the content lines as stored,
// "*** HEADER EXTRACTED path ***" with more records, and
// "*** MESSAGE FILE END path ***".
func parsePostcat(t testing.TB, out string) postcatView {
	t.Helper()
	v := postcatView{attrs: map[string]string{}, arrival: -1, created: -1, size: -1}
	section := ""
	inHeaders := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "*** ") && strings.HasSuffix(line, " ***") {
			inner := strings.TrimSuffix(strings.TrimPrefix(line, "*** "), " ***")
			for _, s := range []string{"ENVELOPE RECORDS ", "MESSAGE CONTENTS ", "HEADER EXTRACTED ", "MESSAGE FILE END "} {
				if strings.HasPrefix(inner, s) {
					section = strings.TrimSpace(s)
					if section == "ENVELOPE RECORDS" {
						v.path = strings.TrimPrefix(inner, s)
					}
					inHeaders = section == "MESSAGE CONTENTS"
				}
			}
			continue
		}
		switch section {
		case "MESSAGE CONTENTS":
			if !inHeaders {
				continue
			}
			if line == "" {
				inHeaders = false
				continue
			}
			if (line[0] == ' ' || line[0] == '\t') && len(v.headers) > 0 {
				v.headers[len(v.headers)-1] += "\n" + line
				continue
			}
			v.headers = append(v.headers, line)
		case "ENVELOPE RECORDS", "HEADER EXTRACTED":
			name, val, ok := strings.Cut(line, ": ")
			if !ok {
				name, ok = strings.CutSuffix(line, ":")
				if !ok {
					continue
				}
			}
			switch name {
			case "message_arrival_time", "create_time":
				// asctime(localtime(...)) in postcat.c.
				ts, err := time.ParseInLocation(time.ANSIC, strings.TrimSpace(val), time.Local)
				if err != nil {
					t.Errorf("postcat: %s %q: %v", name, val, err)
				}
				if name == "create_time" {
					v.created = ts.Unix()
				} else {
					v.arrival = ts.Unix()
				}
			case "message_size":
				f := strings.Fields(val)
				if len(f) == 0 {
					t.Errorf("postcat: empty message_size")
					continue
				}
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err != nil {
					t.Errorf("postcat: message_size %q: %v", val, err)
				}
				v.size = n
			case "sender":
				v.sender, v.hasSender = val, true
			case "recipient":
				v.recipients = append(v.recipients, val)
			case "done_recipient":
				v.done = append(v.done, val)
			case "named_attribute":
				n, a, _ := strings.Cut(val, "=")
				v.attrs[n] = a
			}
		}
	}
	if v.path == "" || v.size < 0 || v.arrival < 0 || !v.hasSender {
		t.Fatalf("postcat output not understood (path %q size %d arrival %d sender %v):\n%s", v.path, v.size, v.arrival, v.hasSender, out)
	}
	return v
}

// header returns the unfolded value of the first header field called name.
func (v postcatView) header(name string) (string, bool) {
	for _, h := range v.headers {
		n, val, ok := strings.Cut(h, ":")
		if ok && strings.EqualFold(n, name) {
			val = strings.ReplaceAll(val, "\r", "")
			val = strings.ReplaceAll(val, "\n", "")
			return strings.TrimSpace(val), true
		}
	}
	return "", false
}

// bounceLogSize is the size of the bounce log of id (bounce/ID, hashed or
// not), 0 when there is none.
func bounceLogSize(t testing.TB, queueDir, id string) int64 {
	t.Helper()
	var size int64
	err := filepath.WalkDir(filepath.Join(queueDir, "bounce"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == id && d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return size
}

// decodeWords is the test's own RFC 2047 decoder (net/mime with an
// ISO-2022-JP charset reader), independent of qsurgeon's.
func decodeWords(t testing.TB, s string) string {
	t.Helper()
	d := mime.WordDecoder{CharsetReader: func(charset string, in io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "iso-2022-jp") {
			return transform.NewReader(in, japanese.ISO2022JP.NewDecoder()), nil
		}
		return nil, fmt.Errorf("charset %s", charset)
	}}
	out, err := d.DecodeHeader(s)
	if err != nil {
		t.Errorf("decoding %q: %v", s, err)
		return s
	}
	return out
}

// listJSON runs `qsurgeon --queue DIR --format json list --headers` and
// returns its objects by queue ID.
func listJSON(t *testing.T, queueDir string) map[string]map[string]any {
	t.Helper()
	r := qs(t, "", "--queue", queueDir, "--format", "json", "list", "--headers")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("qsurgeon list: exit %d\nstderr: %s\nstdout: %s", r.code, r.stderr, r.stdout)
	}
	out := map[string]map[string]any{}
	for _, m := range jsonLines(t, r.stdout) {
		id := str(m["queue_id"])
		if _, dup := out[id]; dup {
			t.Errorf("qsurgeon lists %s twice", id)
		}
		out[id] = m
	}
	return out
}

func jsonInt(v any) (int64, bool) {
	f, ok := v.(float64)
	return int64(f), ok && f == float64(int64(f))
}

// recipientSet turns a JSON recipients array into sorted "address\x00reason"
// strings (reason only when withReason).
func recipientSet(t testing.TB, v any, withReason bool) []string {
	t.Helper()
	arr, ok := v.([]any)
	if !ok && v != nil {
		t.Errorf("recipients is %T, not an array", v)
	}
	var out []string
	for _, x := range arr {
		m, _ := x.(map[string]any)
		s := str(m["address"])
		if withReason {
			s += "\x00" + str(m["delay_reason"])
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// TestRealPostfixListMatchesPostqueueAndPostcat compares every message of a
// queue a real Postfix wrote: qsurgeon's JSON against postqueue -j for the
// showq members, and against postcat for the envelope and the headers.
func TestRealPostfixListMatchesPostqueueAndPostcat(t *testing.T) {
	start := time.Now()
	rq := realPostfixQueue(t)
	pf := rq.pf
	// Forced expiration on the held message (stays in hold, g+x) and on a
	// deferred one (qmgr only looks at deferred mail every
	// queue_run_delay = 300s, so it stays put during the test).
	for _, role := range []string{"held", "bob"} {
		if out, err := pf.Postsuper("-e", rq.ids[role]); err != nil || !strings.Contains(out, "1 message") {
			t.Fatalf("postsuper -e %s: %v: %s", rq.ids[role], err, out)
		}
	}

	pq := pf.Postqueue()
	got := listJSON(t, pf.QueueDir)
	if pq2 := pf.Postqueue(); fmt.Sprint(pq2) != fmt.Sprint(pq) {
		t.Fatalf("queue changed while listing:\nbefore %+v\nafter  %+v", pq, pq2)
	}
	roleOf := map[string]string{}
	for role, id := range rq.ids {
		roleOf[id] = role
	}

	// The two views list the same messages.
	var pqIDs, qsIDs []string
	for _, e := range pq {
		pqIDs = append(pqIDs, e.QueueID)
	}
	for id := range got {
		qsIDs = append(qsIDs, id)
	}
	if !slices.Equal(sorted(pqIDs), sorted(qsIDs)) {
		t.Errorf("queue IDs: postqueue -j %v, qsurgeon %v", sorted(pqIDs), sorted(qsIDs))
	}
	if len(pq) != 9 {
		t.Errorf("postqueue lists %d messages, want 9", len(pq))
	}

	for _, e := range pq {
		id := e.QueueID
		role := roleOf[id]
		j, ok := got[id]
		if !ok {
			continue
		}
		// postqueue -j (showq/showq.c:showq_report) versus qsurgeon.
		for _, name := range []string{"queue_name", "queue_id", "arrival_time", "message_size", "forced_expire", "sender"} {
			want, have := e.Raw[name], j[name]
			if fmt.Sprint(want) != fmt.Sprint(have) {
				t.Errorf("%s (%s): %s: postqueue -j %v, qsurgeon %v", id, role, name, want, have)
			}
		}
		if want, have := recipientSet(t, e.Raw["recipients"], true), recipientSet(t, j["recipients"], true); !slices.Equal(want, have) {
			t.Errorf("%s (%s): recipients with delay_reason:\n postqueue -j %q\n qsurgeon    %q", id, role, want, have)
		}

		// postcat versus qsurgeon.
		pc := parsePostcat(t, pf.Postcat("-q", id))
		if !strings.HasSuffix(pc.path, "/"+id) {
			t.Errorf("%s: postcat shows %s", id, pc.path)
		}
		if qn, _, _ := strings.Cut(pc.path, "/"); qn != str(j["queue_name"]) {
			t.Errorf("%s (%s): queue_name: postcat %s, qsurgeon %v", id, role, qn, j["queue_name"])
		}
		if p := str(j["path"]); p != pc.path && !strings.HasSuffix(p, "/"+pc.path) {
			t.Errorf("%s (%s): path: postcat %s, qsurgeon %s", id, role, pc.path, p)
		}
		if at, ok := jsonInt(j["arrival_time"]); !ok || at != pc.arrival {
			t.Errorf("%s (%s): arrival_time: postcat %d (%s), qsurgeon %v", id, role, pc.arrival, time.Unix(pc.arrival, 0), j["arrival_time"])
		}
		if sz, ok := jsonInt(j["message_size"]); !ok || sz != pc.size {
			t.Errorf("%s (%s): message_size: postcat %d, qsurgeon %v", id, role, pc.size, j["message_size"])
		}
		if ct, ok := jsonInt(j["create_time"]); pc.created >= 0 && (!ok || ct != pc.created) {
			t.Errorf("%s (%s): create_time: postcat %d, qsurgeon %v", id, role, pc.created, j["create_time"])
		}
		// The file itself: size, mtime (qmgr_active.c:qmgr_active_defer
		// stores the next attempt there), bounce log.
		fi, err := os.Lstat(filepath.Join(pf.QueueDir, pc.path))
		if err != nil {
			t.Fatal(err)
		}
		if fsz, ok := jsonInt(j["file_size"]); !ok || fsz != fi.Size() {
			t.Errorf("%s (%s): file_size: lstat %d, qsurgeon %v", id, role, fi.Size(), j["file_size"])
		}
		nr, hasNR := jsonInt(j["next_retry"])
		if e.QueueName == "deferred" && (!hasNR || nr != fi.ModTime().Unix()) {
			t.Errorf("%s (%s): next_retry: mtime %d, qsurgeon %v", id, role, fi.ModTime().Unix(), j["next_retry"])
		}
		if e.QueueName == "hold" && j["next_retry"] != nil {
			t.Errorf("%s (%s): held message has next_retry %v", id, role, j["next_retry"])
		}
		if b := bounceLogSize(t, pf.QueueDir, id) > 0; j["bouncing"] != b {
			t.Errorf("%s (%s): bouncing: non-empty bounce log %v, qsurgeon %v", id, role, b, j["bouncing"])
		}
		wantSender, wantNull := pc.sender, pc.sender == ""
		if wantNull {
			wantSender = "MAILER-DAEMON" // as postqueue -j shows it
		}
		if str(j["sender"]) != wantSender || j["null_sender"] != wantNull {
			t.Errorf("%s (%s): sender: postcat %q, qsurgeon sender %q null_sender %v", id, role, pc.sender, j["sender"], j["null_sender"])
		}
		for _, name := range []string{"sasl_method", "sasl_username", "client_address", "client_name", "helo_name"} {
			if want, have := pc.attrs[name], str(j[name]); want != have {
				t.Errorf("%s (%s): %s: postcat named_attribute %q, qsurgeon %q", id, role, name, want, have)
			}
		}
		if want, have := sorted(pc.recipients), recipientSet(t, j["recipients"], false); !slices.Equal(want, have) {
			t.Errorf("%s (%s): pending recipients: postcat recipient %q, qsurgeon recipients %q", id, role, want, have)
		}
		if want, have := sorted(pc.done), recipientSet(t, j["done_recipients"], false); !slices.Equal(want, have) {
			t.Errorf("%s (%s): done recipients: postcat done_recipient %q, qsurgeon done_recipients %q", id, role, want, have)
		}
		for _, h := range []struct{ header, member string }{{"Subject", "subject"}, {"From", "from"}, {"Message-ID", "message_id"}} {
			raw, ok := pc.header(h.header)
			want := ""
			if ok {
				want = decodeWords(t, raw)
			}
			if have := str(j[h.member]); have != want {
				t.Errorf("%s (%s): %s: postcat %q (decoded %q), qsurgeon %q", id, role, h.member, raw, want, have)
			}
		}
		if wantSubj, ok := rq.subjects[role]; ok {
			if raw, _ := pc.header("Subject"); decodeWords(t, raw) != wantSubj || str(j["subject"]) != wantSubj {
				t.Errorf("%s (%s): Subject sent %q; postcat %q decodes to %q; qsurgeon %q", id, role, wantSubj, raw, decodeWords(t, raw), j["subject"])
			}
		}

		// What the test sent must be what Postfix stored; otherwise the
		// comparisons above could agree on nothing.
		switch role {
		case "aliceTLS", "aliceV6":
			if pc.attrs["sasl_username"] != "alice@example.com" {
				t.Errorf("%s (%s): postcat sasl_username %q", id, role, pc.attrs["sasl_username"])
			}
		case "bob":
			if pc.attrs["sasl_username"] != "bob" || pc.attrs["client_address"] != "198.51.100.23" {
				t.Errorf("%s (bob): postcat attrs %v", id, pc.attrs)
			}
		case "multi":
			if !slices.Equal(sorted(pc.done), []string{"carol@example.com", "nosuchuser@example.com"}) ||
				!slices.Equal(pc.recipients, []string{"r6@remote.example"}) {
				t.Errorf("%s (multi): postcat recipients %q done %q", id, pc.recipients, pc.done)
			}
		case "ndr", "nullSent":
			if pc.sender != "" {
				t.Errorf("%s (%s): postcat sender %q, want null", id, role, pc.sender)
			}
		}
		if role != "sendmail" && role != "ndr" && pc.attrs["client_address"] == "" {
			t.Errorf("%s (%s): no client_address in postcat:\n%+v", id, role, pc.attrs)
		}
	}

	// The state this test set up, as both tools see it.
	byID := map[string]postfixtest.QueueEntry{}
	for _, e := range pq {
		byID[e.QueueID] = e
	}
	for role, id := range rq.ids {
		wantQueue, wantExpire := "deferred", false
		switch role {
		case "held":
			wantQueue, wantExpire = "hold", true
		case "bob":
			wantExpire = true
		}
		if e := byID[id]; e.QueueName != wantQueue || e.ForcedExpire != wantExpire {
			t.Errorf("%s (%s): postqueue -j queue %q forced_expire %v, want %q %v", id, role, e.QueueName, e.ForcedExpire, wantQueue, wantExpire)
		}
		if j := got[id]; j == nil || j["queue_name"] != wantQueue || j["forced_expire"] != wantExpire {
			t.Errorf("%s (%s): qsurgeon queue_name %v forced_expire %v, want %q %v", id, role, j["queue_name"], j["forced_expire"], wantQueue, wantExpire)
		}
		if fi, err := os.Lstat(pf.QueueFile(id)); err != nil || (fi.Mode().Perm()&0o010 != 0) != wantExpire {
			t.Errorf("%s (%s): queue file mode %v (%v), forced expire want %v", id, role, fi.Mode(), err, wantExpire)
		}
	}

	// Stopped, the files are the same; so is qsurgeon's listing.
	pf.Stop()
	if again := listJSON(t, pf.QueueDir); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("qsurgeon list differs after postfix stop:\nrunning %v\nstopped %v", got, again)
	}
	t.Logf("took %v", time.Since(start))
}

// TestRealPostfixFilters checks that the selection flags pick exactly the
// messages the test sent with those properties.
func TestRealPostfixFilters(t *testing.T) {
	rq := realPostfixQueue(t)
	ids := rq.ids
	all := []string{}
	for _, id := range ids {
		all = append(all, id)
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--sasl-user", "alice@example.com"}, []string{ids["aliceTLS"], ids["aliceV6"]}},
		{[]string{"--sasl-user", "bob"}, []string{ids["bob"]}},
		{[]string{"--sasl-user", "alice@example.com", "--sasl-user", "bob"}, []string{ids["aliceTLS"], ids["aliceV6"], ids["bob"]}},
		{[]string{"--client", "203.0.113.0/24"}, []string{ids["aliceTLS"]}},
		{[]string{"--client", "2001:db8::/32"}, []string{ids["aliceV6"], ids["nullSent"]}},
		{[]string{"--client", "2001:db8::7"}, []string{ids["aliceV6"]}},
		{[]string{"--client", "192.0.2.0/24"}, []string{ids["held"], ids["multi"], ids["jp"]}},
		{[]string{"--client", "192.0.2.0/24", "--not-client", "192.0.2.10"}, []string{ids["multi"], ids["jp"]}},
		{[]string{"--client", "laptop.example.org"}, []string{ids["bob"]}},
		{[]string{"--client", "*.example.net"}, []string{ids["aliceTLS"]}},
		{[]string{"--sasl-user", "alice@example.com", "--client", "2001:db8::/32"}, []string{ids["aliceV6"]}},
		{[]string{"--null-sender"}, []string{ids["nullSent"], ids["ndr"]}},
		{[]string{"--not-null-sender", "--client", "2001:db8::/32"}, []string{ids["aliceV6"]}},
		{[]string{"--queue-name", "hold"}, []string{ids["held"]}},
		{[]string{"--queue-name", "deferred", "--null-sender"}, []string{ids["nullSent"], ids["ndr"]}},
		{[]string{"--sender", "<>"}, []string{ids["nullSent"], ids["ndr"]}},
		{[]string{"--sender", "cron@example.com"}, []string{ids["sendmail"]}},
		{[]string{"--recipient", "r6@remote.example"}, []string{ids["multi"]}},
		{[]string{"--recipient", "carol@example.com"}, nil}, // delivered: not pending
		{[]string{"--helo", "WIN-*"}, []string{ids["aliceTLS"]}},
		{[]string{"--helo", `/^\[IPv6:/`}, []string{ids["aliceV6"]}},
		{[]string{"--subject", "^会議"}, []string{ids["jp"]}},
		{[]string{"--subject", "Köln"}, []string{ids["nullSent"]}},
		{nil, all},
	}
	for _, c := range cases {
		args := append([]string{"--queue", rq.pf.QueueDir, "--format", "ids", "list"}, c.args...)
		r := qs(t, "", args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("qsurgeon %q: exit %d, stderr %s", c.args, r.code, r.stderr)
			continue
		}
		have := strings.Fields(r.stdout)
		if want := sorted(c.want); !slices.Equal(sorted(have), want) {
			names := map[string]string{}
			for role, id := range ids {
				names[id] = role
			}
			label := func(l []string) string {
				var s []string
				for _, id := range sorted(l) {
					s = append(s, id+"("+names[id]+")")
				}
				return strings.Join(s, " ")
			}
			t.Errorf("qsurgeon list %s:\n selected %s\n want     %s", strings.Join(c.args, " "), label(have), label(want))
		}
	}
}
