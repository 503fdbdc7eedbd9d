package postfixq

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

func walkAll(t *testing.T, s *Spool) []queue.Ref {
	t.Helper()
	var refs []queue.Ref
	if err := s.Walk(context.Background(), func(r queue.Ref) error {
		refs = append(refs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return refs
}

func strp(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestFixtureEnvelopes reads every queue file of the real fixture and
// compares it with truth.json.
func TestFixtureEnvelopes(t *testing.T) {
	root := fixtureRoot(t)
	tf := loadTruth(t)
	pq := loadPostqueue(t)
	pqByID := map[string]pqMessage{}
	for _, m := range pq {
		pqByID[m.QueueID] = m
	}
	var notes []Note
	s, err := Open(root, Options{OnNote: func(n Note) { notes = append(notes, n) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refs := walkAll(t, s)
	for _, n := range notes {
		t.Errorf("unexpected note on the pristine fixture: %+v", n)
	}
	byPath := map[string]queue.Ref{}
	for _, r := range refs {
		if _, dup := byPath[r.Path]; dup {
			t.Errorf("walk listed %s twice", r.Path)
		}
		byPath[r.Path] = r
	}
	if len(refs) != len(tf.Messages) {
		t.Errorf("walk found %d files, truth has %d", len(refs), len(tf.Messages))
	}
	for _, want := range tf.Messages {
		t.Run(want.Path, func(t *testing.T) {
			ref, ok := byPath[want.Path]
			if !ok {
				t.Fatalf("walk did not list %s", want.Path)
			}
			if ref.Queue != want.Queue || ref.ID != want.QueueID {
				t.Errorf("ref = %+v, want queue %s id %s", ref, want.Queue, want.QueueID)
			}
			m, env, err := s.ReadEnvelope(ref)
			if err != nil {
				t.Fatal(err)
			}
			if m.Err != nil {
				t.Fatalf("Err = %v", m.Err)
			}
			checkMessage(t, m, env, want, pqByID[want.QueueID])
		})
	}
}

func checkMessage(t *testing.T, m *queue.Message, env *Envelope, want truthMessage, pq pqMessage) {
	t.Helper()
	if m.MTA != queue.Postfix || m.Queue != want.Queue || m.ID != want.QueueID || m.Path != want.Path {
		t.Errorf("identity = %s %s %s %s", m.MTA, m.Queue, m.ID, m.Path)
	}
	if m.Sender != want.Sender || m.NullSender != (want.Sender == "") {
		t.Errorf("sender = %q null=%v, want %q", m.Sender, m.NullSender, want.Sender)
	}
	if got := m.Arrival; got.Unix() != want.ArrivalTime || int64(got.Nanosecond()/1000) != want.ArrivalTimeUsec {
		t.Errorf("arrival = %v, want %d.%06d", got, want.ArrivalTime, want.ArrivalTimeUsec)
	}
	if ct, ok := want.Attributes["create_time"]; ok {
		if strconv.FormatInt(m.CreateTime.Unix(), 10) != ct {
			t.Errorf("create time = %d, want %s", m.CreateTime.Unix(), ct)
		}
	} else if !m.CreateTime.Equal(m.Arrival) {
		t.Errorf("create time %v should default to arrival %v", m.CreateTime, m.Arrival)
	}
	// message_size: the C record's first field, else (maildrop) the file
	// size -- and always what postqueue -j printed.
	if want.MessageSize != nil && m.Size != *want.MessageSize {
		t.Errorf("size = %d, want %d", m.Size, *want.MessageSize)
	}
	if m.Size != pq.MessageSize {
		t.Errorf("size = %d, postqueue says %d", m.Size, pq.MessageSize)
	}
	if want.SizeRecord != nil {
		s := env.Size
		got := []int64{s.DataSize, s.DataOffset, s.RcptCount, s.QmgrFlags, s.ContLength, s.SendOpts}
		if !env.HasSize || fmt.Sprint(got) != fmt.Sprint(want.SizeRecord) {
			t.Errorf("size record = %v (has %v), want %v", got, env.HasSize, want.SizeRecord)
		}
	} else if env.HasSize {
		t.Errorf("size record found in a file without one")
	}
	if m.FileSize != want.FileSize {
		t.Errorf("file size = %d, want %d", m.FileSize, want.FileSize)
	}
	if fmt.Sprintf("%04o", uint32(m.Mode.Perm())) != want.Mode || m.UID != want.UID || m.GID != want.GID {
		t.Errorf("mode/uid/gid = %04o %d %d, want %s %d %d", uint32(m.Mode.Perm()), m.UID, m.GID, want.Mode, want.UID, want.GID)
	}
	if m.ModTime.Unix() != want.Mtime {
		t.Errorf("mtime = %d, want %d", m.ModTime.Unix(), want.Mtime)
	}
	if want.Queue == queue.Deferred {
		if !m.NextRetry.Equal(m.ModTime) {
			t.Errorf("next retry = %v, want mtime %v", m.NextRetry, m.ModTime)
		}
	} else if !m.NextRetry.IsZero() {
		t.Errorf("next retry set outside deferred: %v", m.NextRetry)
	}
	if m.ForcedExpire != pq.ForcedExpire {
		t.Errorf("forced expire = %v, postqueue says %v", m.ForcedExpire, pq.ForcedExpire)
	}
	if m.SASLUser != strp(want.SASLUsername) || m.SASLMethod != strp(want.SASLMethod) {
		t.Errorf("sasl = %q %q, want %q %q", m.SASLMethod, m.SASLUser, strp(want.SASLMethod), strp(want.SASLUsername))
	}
	wantAddr := strp(want.ClientAddress)
	if wantAddr == "" {
		wantAddr = strings.TrimPrefix(strp(want.LogClientAddress), "IPv6:")
	}
	if m.ClientAddr != wantAddr {
		t.Errorf("client address = %q, want %q", m.ClientAddr, wantAddr)
	}
	if want.ClientName != nil && m.ClientName != *want.ClientName {
		t.Errorf("client name = %q, want %q", m.ClientName, *want.ClientName)
	}
	if want.HeloName != nil && m.HELO != *want.HeloName {
		t.Errorf("helo = %q, want %q", m.HELO, *want.HeloName)
	}
	if len(m.Attrs) != len(want.Attributes) {
		t.Errorf("attrs = %v, want %v", m.Attrs, want.Attributes)
	}
	for k, v := range want.Attributes {
		if m.Attrs[k] != v {
			t.Errorf("attr %s = %q, want %q", k, m.Attrs[k], v)
		}
	}
	if len(m.Recipients) != len(want.Recipients) || len(env.DSN) != len(m.Recipients) {
		t.Fatalf("recipients = %+v (dsn %d), want %+v", m.Recipients, len(env.DSN), want.Recipients)
	}
	for i, w := range want.Recipients {
		r := m.Recipients[i]
		state := "todo"
		if r.Done {
			state = "done"
		}
		if r.Canceled {
			state = "canceled"
		}
		if r.Address != w.Address || state != w.State || r.Offset != w.Offset || r.Original != strp(w.OriginalRecipient) {
			t.Errorf("recipient %d = %+v (%s), want %+v", i, r, state, w)
		}
		if env.DSN[i].ORcpt != strp(w.DSNOrigRcpt) {
			t.Errorf("recipient %d dsn_orig_rcpt = %q, want %q", i, env.DSN[i].ORcpt, strp(w.DSNOrigRcpt))
		}
	}
	// Reasons from the defer and bounce logs.
	for _, lr := range want.LogReasons {
		found := false
		for _, r := range m.Recipients {
			if r.Address == lr.Recipient && r.Reason == lr.Reason && r.Status == lr.Status && r.Action == lr.Action {
				found = true
			}
		}
		if !found {
			t.Errorf("no recipient carries log reason %+v: %+v", lr, m.Recipients)
		}
	}
	withReason := 0
	for _, r := range m.Recipients {
		if r.Reason != "" {
			withReason++
		}
	}
	if withReason != len(want.LogReasons) {
		t.Errorf("%d recipients have reasons, truth has %d log reasons", withReason, len(want.LogReasons))
	}
	if m.Bouncing != want.HasBounceLog {
		t.Errorf("bouncing = %v, want %v", m.Bouncing, want.HasBounceLog)
	}
	if len(m.Problems) != 0 {
		t.Errorf("problems: %v", m.Problems)
	}
}

// TestPostqueueOrder compares Walk's order and ShowqRecipients with the
// real postqueue -j output.
func TestPostqueueOrder(t *testing.T) {
	root := fixtureRoot(t)
	pq := loadPostqueue(t)
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refs := walkAll(t, s)
	if len(refs) != len(pq) {
		t.Fatalf("walk found %d, postqueue %d", len(refs), len(pq))
	}
	// Same sequence of queue names (order within a directory is readdir
	// order for both).
	for i := range pq {
		if refs[i].Queue != pq[i].QueueName {
			t.Fatalf("entry %d: walk queue %s, postqueue %s", i, refs[i].Queue, pq[i].QueueName)
		}
	}
	byID := map[string]queue.Ref{}
	for _, r := range refs {
		byID[r.ID] = r
	}
	for _, p := range pq {
		ref, ok := byID[p.QueueID]
		if !ok {
			t.Errorf("%s not walked", p.QueueID)
			continue
		}
		m, err := s.Read(ref)
		if err != nil || m.Err != nil {
			t.Fatalf("%s: %v %v", p.QueueID, err, m.Err)
		}
		sender := m.Sender
		if m.NullSender {
			sender = "MAILER-DAEMON" // showq: empty_address_recipient
		}
		if sender != p.Sender || m.Arrival.Unix() != p.ArrivalTime || m.Size != p.MessageSize || m.ForcedExpire != p.ForcedExpire {
			t.Errorf("%s: %q %d %d %v, postqueue %q %d %d %v", p.QueueID, sender, m.Arrival.Unix(), m.Size, m.ForcedExpire,
				p.Sender, p.ArrivalTime, p.MessageSize, p.ForcedExpire)
		}
		deferLog, err := s.ReadLog(LogDefer, m.ID)
		if err != nil && !isNotExist(err) {
			t.Fatal(err)
		}
		got := ShowqRecipients(m, deferLog)
		if len(got) != len(p.Recipients) {
			t.Errorf("%s: recipients %+v, postqueue %+v", p.QueueID, got, p.Recipients)
			continue
		}
		for i, w := range p.Recipients {
			if got[i].Address != w.Address || got[i].Reason != w.DelayReason {
				t.Errorf("%s recipient %d: %q (%q), postqueue %q (%q)", p.QueueID, i, got[i].Address, got[i].Reason, w.Address, w.DelayReason)
			}
		}
	}
}

var _ = time.Second

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r     *bytes.Reader
	bytes int64
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls++
	n, err := c.r.ReadAt(p, off)
	c.bytes += int64(n)
	return n, err
}

// TestEnvelopeSkipsBody checks the performance promise: the envelope of a
// large message is read with two small preads (the start and the
// extracted segment), never the body.
func TestEnvelopeSkipsBody(t *testing.T) {
	root := fixtureRoot(t)
	n := 0
	for _, want := range loadTruth(t).Messages {
		if want.FileSize < 100<<10 {
			continue
		}
		data := readFixtureFile(t, root, want.Path)
		c := &countingReaderAt{r: bytes.NewReader(data)}
		m, _ := ParseEnvelope(c, int64(len(data)), want.Path)
		if m.Err != nil {
			t.Fatal(m.Err)
		}
		if c.bytes > 3*defaultWindow || c.calls > 3 {
			t.Errorf("%s (%d bytes): envelope read %d bytes in %d calls", want.Path, len(data), c.bytes, c.calls)
		}
		c = &countingReaderAt{r: bytes.NewReader(data)}
		if _, err := ReadContent(c, int64(len(data)), want.Path, queue.ContentOptions{}); err != nil {
			t.Fatal(err)
		}
		if c.bytes > 2*contentWindow+defaultWindow {
			t.Errorf("%s: headers-only read %d bytes", want.Path, c.bytes)
		}
		n++
	}
	if n != 13 {
		t.Errorf("%d files over 100 KB, README says 13", n)
	}
}
