package qmailq

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// truthMessage is one message of the fixture's truth.json (computed by
// make.sh from the files a real qmail wrote).
type truthMessage struct {
	ID         uint64          `json:"id"`
	Subdir     int             `json:"subdir"`
	Parts      map[string]bool `json:"parts"`
	Sender     string          `json:"sender"`
	Recipients []struct {
		Address string `json:"address"`
		Channel string `json:"channel"`
		State   string `json:"state"`
	} `json:"recipients"`
	MessSize      int64    `json:"mess_size"`
	AuthUser      *string  `json:"auth_user"`
	ClientIP      *string  `json:"client_ip"`
	HELO          *string  `json:"helo"`
	AuthProto     *string  `json:"auth_proto"`
	SMTPClientIP  *string  `json:"smtp_client_ip"`
	InfoMtime     int64    `json:"info_mtime"`
	LocalMtime    int64    `json:"local_mtime"`
	RemoteMtime   int64    `json:"remote_mtime"`
	BounceRcpts   []string `json:"bounce_recipients"`
	Subject       *string  `json:"subject"`
	MessageID     *string  `json:"message_id"`
	HeaderFrom    *string  `json:"header_from"`
	QmailReceived *struct {
		QP      uint64 `json:"qp"`
		Invoked string `json:"invoked"`
	} `json:"qmail_received"`
	TodoUID *uint64 `json:"todo_uid"`
	TodoPID *uint64 `json:"todo_pid"`
}

func loadTruth(t *testing.T) map[string]*truthMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Messages map[string]*truthMessage `json:"messages"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Messages) == 0 {
		t.Fatal("truth.json has no messages")
	}
	return doc.Messages
}

// readAll walks the queue and reads every message, in parallel like the
// filter engine does.
func readAll(t *testing.T, q *Queue) (map[string]queue.Ref, map[string]*queue.Message) {
	t.Helper()
	refs := map[string]queue.Ref{}
	var order []queue.Ref
	err := q.Walk(context.Background(), func(r queue.Ref) error {
		if _, dup := refs[r.ID]; dup {
			return fmt.Errorf("id %s listed twice", r.ID)
		}
		refs[r.ID] = r
		order = append(order, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]*queue.Message{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ch := make(chan queue.Ref)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range ch {
				m, err := q.Read(r)
				if err != nil {
					t.Errorf("Read(%s): %v", r.ID, err)
					continue
				}
				mu.Lock()
				msgs[r.ID] = m
				mu.Unlock()
			}
		}()
	}
	for _, r := range order {
		ch <- r
	}
	close(ch)
	wg.Wait()
	return refs, msgs
}

func strp(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestReadCleanAgainstTruth(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	checkAgainstTruth(t, root, 23)
}

// The same real messages moved into a non-prime split of 10 with big-todo
// (todo/intd split too, hard links kept by rename) read the same.
func TestReadResplitBigTodo(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	const split = 10
	for _, part := range []string{"mess", "info", "local", "remote", "todo", "intd"} {
		dir := filepath.Join(root, part)
		for i := 0; i < split; i++ {
			if err := os.MkdirAll(filepath.Join(dir, strconv.Itoa(i)), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		var files []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		for _, p := range files {
			id, _ := strconv.ParseUint(filepath.Base(p), 10, 64)
			to := filepath.Join(dir, strconv.FormatUint(id%split, 10), filepath.Base(p))
			if to != p {
				if err := os.Rename(p, to); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := split; i < 23; i++ {
			os.Remove(filepath.Join(dir, strconv.Itoa(i)))
		}
	}
	l, err := DetectLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Split != split || !l.BigTodo || len(l.Notes) != 0 {
		t.Fatalf("layout: split %d big-todo %v notes %q", l.Split, l.BigTodo, l.Notes)
	}
	checkAgainstTruth(t, root, split)
}

func checkAgainstTruth(t *testing.T, root string, split uint64) {
	truth := loadTruth(t)
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	refs, msgs := readAll(t, q)
	if len(refs) != len(truth) {
		t.Errorf("walk listed %d messages, truth has %d", len(refs), len(truth))
	}
	for id := range refs {
		if truth[id] == nil {
			t.Errorf("%s listed but not in truth", id)
		}
	}
	var authSeen, clientSeen, bounceSeen, todoSeen, nullSeen int
	for id, tm := range truth {
		m := msgs[id]
		if m == nil {
			t.Errorf("%s: not read", id)
			continue
		}
		ref := refs[id]
		wantQueue := queue.QmailQueue
		if tm.Parts["todo"] && !tm.Parts["info"] {
			wantQueue = queue.QmailTodo
			todoSeen++
		}
		if ref.Queue != wantQueue || m.Queue != wantQueue {
			t.Errorf("%s: queue ref %q msg %q, want %q", id, ref.Queue, m.Queue, wantQueue)
		}
		wantPath := fmt.Sprintf("mess/%d/%s", tm.ID%split, id)
		if ref.Path != wantPath || m.Path != wantPath {
			t.Errorf("%s: path ref %q msg %q, want %q", id, ref.Path, m.Path, wantPath)
		}
		if m.MTA != queue.Qmail || m.ID != id {
			t.Errorf("%s: MTA %q ID %q", id, m.MTA, m.ID)
		}
		if m.Err != nil {
			t.Errorf("%s: Err %v", id, m.Err)
		}
		if m.Sender != tm.Sender {
			t.Errorf("%s: sender %q, want %q", id, m.Sender, tm.Sender)
		}
		if m.NullSender != (tm.Sender == "") {
			t.Errorf("%s: NullSender %v for sender %q", id, m.NullSender, tm.Sender)
		}
		if m.NullSender {
			nullSeen++
		}
		// recipients, as multisets of address/channel/done
		var want, got []string
		for _, r := range tm.Recipients {
			ch := r.Channel
			if ch == "unsorted" {
				ch = ""
			}
			want = append(want, fmt.Sprintf("%s|%s|%v", r.Address, ch, r.State == "done"))
		}
		for _, r := range m.Recipients {
			if fromBounceOnly(m, r) {
				continue
			}
			got = append(got, fmt.Sprintf("%s|%s|%v", r.Address, r.Channel, r.Done))
		}
		sort.Strings(want)
		sort.Strings(got)
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			t.Errorf("%s: recipients\n got %q\nwant %q", id, got, want)
		}
		if m.Size != tm.MessSize || m.FileSize != tm.MessSize {
			t.Errorf("%s: size %d/%d, want %d", id, m.Size, m.FileSize, tm.MessSize)
		}
		if m.SASLUser != strp(tm.AuthUser) {
			t.Errorf("%s: SASL user %q, want %q", id, m.SASLUser, strp(tm.AuthUser))
		}
		if m.SASLUser != "" {
			authSeen++
		}
		wantIP := strp(tm.SMTPClientIP)
		if wantIP == "" {
			wantIP = strp(tm.ClientIP)
		}
		if m.ClientAddr != wantIP {
			t.Errorf("%s: client %q, want %q", id, m.ClientAddr, wantIP)
		}
		if m.ClientAddr != "" {
			clientSeen++
		}
		if tm.HELO != nil && m.HELO != *tm.HELO {
			t.Errorf("%s: HELO %q, want %q", id, m.HELO, *tm.HELO)
		}
		if tm.Parts["info"] {
			if m.Arrival.Unix() != tm.InfoMtime {
				t.Errorf("%s: arrival %d, want info mtime %d", id, m.Arrival.Unix(), tm.InfoMtime)
			}
		} else if m.Arrival.IsZero() {
			t.Errorf("%s: no arrival time", id)
		}
		var next int64
		for _, mt := range []int64{tm.LocalMtime, tm.RemoteMtime} {
			if mt != 0 && (next == 0 || mt < next) {
				next = mt
			}
		}
		if next != 0 && m.NextRetry.Unix() != next || next == 0 && !m.NextRetry.IsZero() {
			t.Errorf("%s: next retry %v, want %d", id, m.NextRetry, next)
		}
		if m.Bouncing != tm.Parts["bounce"] {
			t.Errorf("%s: bouncing %v, want %v", id, m.Bouncing, tm.Parts["bounce"])
		}
		if m.Bouncing {
			bounceSeen++
		}
		for _, b := range tm.BounceRcpts {
			found := false
			for _, r := range m.Recipients {
				if r.Done && r.Address == b && r.Reason != "" {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: bounce recipient %s has no done recipient with a reason", id, b)
			}
		}
		// A copied queue: every mess name differs from its new inode.
		fi, err := os.Lstat(filepath.Join(root, wantPath))
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if m.Inode != ino {
			t.Errorf("%s: inode %d, lstat says %d", id, m.Inode, ino)
		}
		for _, p := range m.Problems {
			if !strings.HasPrefix(p, KindIDNotInode+":") {
				t.Errorf("%s: problem on the clean queue: %s", id, p)
			}
		}
		if (ino != tm.ID) != (len(m.Problems) == 1) {
			t.Errorf("%s: inode %d, problems %q", id, ino, m.Problems)
		}
		// content
		c, err := q.ReadContent(m, queue.ContentOptions{Body: true})
		if err != nil {
			t.Errorf("%s: ReadContent: %v", id, err)
			continue
		}
		if tm.Subject != nil && c.Subject != *tm.Subject {
			t.Errorf("%s: subject %q, want %q", id, c.Subject, *tm.Subject)
		}
		if tm.MessageID != nil && c.MessageID != *tm.MessageID {
			t.Errorf("%s: message-id %q, want %q", id, c.MessageID, *tm.MessageID)
		}
		if tm.HeaderFrom != nil && !strings.Contains(*tm.HeaderFrom, "=?") && c.From != *tm.HeaderFrom {
			t.Errorf("%s: from %q, want %q", id, c.From, *tm.HeaderFrom)
		}
		if len(c.Headers) == 0 || c.Headers[0].Name != "Received" {
			t.Errorf("%s: first header %v", id, c.Headers[:min(1, len(c.Headers))])
		}
		full, _ := os.ReadFile(filepath.Join(root, wantPath))
		hb := strings.Index(string(full), "\n\n")
		if hb < 0 || string(c.Body) != string(full[hb+2:]) {
			t.Errorf("%s: body differs from the file after the header block (%d vs %d bytes)", id, len(c.Body), len(full)-hb-2)
		}
		// trace: qmail-queue's own line
		if tm.QmailReceived != nil {
			tr := ParseTrace(full[:min(len(full), MaxTraceHead)])
			if tr.Queue == nil || tr.Queue.QP != tm.QmailReceived.QP || !strings.HasPrefix(tm.QmailReceived.Invoked, string(tr.Queue.Invoked)) {
				t.Errorf("%s: trace %+v, want %+v", id, tr.Queue, *tm.QmailReceived)
			}
		}
	}
	// The fixture has all of these; make sure the checks above ran on some.
	if authSeen == 0 || clientSeen == 0 || bounceSeen == 0 || todoSeen == 0 || nullSeen == 0 {
		t.Errorf("coverage: auth %d client %d bounce %d todo %d null %d", authSeen, clientSeen, bounceSeen, todoSeen, nullSeen)
	}
}

// qreadMessage is one message as qmail's own qmail-qread printed it.
type qreadMessage struct {
	date     string
	id       string
	size     int64
	sender   string
	bouncing bool
	rcpts    []string // "done|channel|addr"
}

var (
	qreadHead = regexp.MustCompile(`^(\d+ \w{3} \d{4} \d\d:\d\d:\d\d) GMT  #(\d+)  (\d+)  <(.*)> ( bouncing)?$`)
	qreadRcpt = regexp.MustCompile(`^(  done)?\t(local|remote)\t(.*)$`)
)

func parseQread(t *testing.T, path string) []*qreadMessage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*qreadMessage
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := qreadHead.FindStringSubmatch(line); m != nil {
			size, _ := strconv.ParseInt(m[3], 10, 64)
			out = append(out, &qreadMessage{date: m[1], id: m[2], size: size, sender: m[4], bouncing: m[5] != ""})
			continue
		}
		if m := qreadRcpt.FindStringSubmatch(line); m != nil && len(out) > 0 {
			cur := out[len(out)-1]
			cur.rcpts = append(cur.rcpts, fmt.Sprintf("%v|%s|%s", m[1] != "", m[2], m[3]))
			continue
		}
		t.Fatalf("qmail-qread.txt: unrecognised line %q", line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// qreadSafe is qmail-qread.c's putsafe(): bytes outside 32..126 become '_'.
func qreadSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

func TestReadCleanAgainstQmailQread(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	listed := parseQread(t, filepath.Join(fixtureDir, "qmail-qread.txt"))
	if len(listed) == 0 {
		t.Fatal("qmail-qread.txt lists nothing")
	}
	_, msgs := readAll(t, q)
	queued := 0
	for _, m := range msgs {
		if m.Queue == queue.QmailQueue {
			queued++
		}
	}
	// qmail-qread lists exactly the messages that have an info file.
	if queued != len(listed) {
		t.Errorf("%d messages in queue state, qmail-qread listed %d", queued, len(listed))
	}
	for _, want := range listed {
		m := msgs[want.id]
		if m == nil {
			t.Errorf("#%s listed by qmail-qread but not read", want.id)
			continue
		}
		if got := m.Arrival.UTC().Format("2 Jan 2006 15:04:05"); got != want.date {
			t.Errorf("#%s: date %q, qmail-qread %q", want.id, got, want.date)
		}
		if m.Size != want.size {
			t.Errorf("#%s: size %d, qmail-qread %d", want.id, m.Size, want.size)
		}
		if qreadSafe(m.Sender) != want.sender {
			t.Errorf("#%s: sender %q, qmail-qread %q", want.id, m.Sender, want.sender)
		}
		if m.Bouncing != want.bouncing {
			t.Errorf("#%s: bouncing %v, qmail-qread %v", want.id, m.Bouncing, want.bouncing)
		}
		// qmail-qread prints local then remote, each in file order.
		var got []string
		for _, r := range m.Recipients {
			if fromBounceOnly(m, r) {
				continue
			}
			got = append(got, fmt.Sprintf("%v|%s|%s", r.Done, r.Channel, qreadSafe(r.Address)))
		}
		if strings.Join(got, "\n") != strings.Join(want.rcpts, "\n") {
			t.Errorf("#%s: recipients\n got %q\nwant %q", want.id, got, want.rcpts)
		}
	}
}

func TestReadBrokenReportsEveryDefect(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	b, err := os.ReadFile(filepath.Join(fixtureDir, "broken-defects.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defects []struct {
			Defect     string   `json:"defect"`
			Kind       string   `json:"kind"`
			MessageIDs []uint64 `json:"message_ids"`
		} `json:"defects"`
		Messages map[string]struct {
			Parts []string `json:"parts"`
		} `json:"messages_after_damage"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	// what each planted defect must show up as
	expect := map[string][]string{
		"mess_only_by_crash":               {KindMessWithoutInfo},
		"zero_length_mess_orphan_by_crash": {KindZeroLengthMess, KindMessWithoutInfo},
		"wrong_split_subdir":               {KindWrongSubdir},
		"split_29_copy":                    {KindWrongSubdir},
		"info_without_mess":                {KindInfoWithoutMess},
		"mess_without_info_local_remote":   {KindMessWithoutInfo},
		"todo_without_intd":                {KindTodoWithoutIntd},
		"zero_length_mess":                 {KindZeroLengthMess},
	}
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	refs, msgs := readAll(t, q)
	for id := range doc.Messages {
		if _, ok := refs[id]; !ok {
			t.Errorf("%s: present after damage but not listed", id)
		}
	}
	damaged := map[string]bool{}
	checked := 0
	for _, d := range doc.Defects {
		if len(d.MessageIDs) == 0 {
			continue
		}
		kinds, ok := expect[d.Kind]
		if !ok {
			t.Errorf("%s %s: defect kind not known to this test", d.Defect, d.Kind)
			continue
		}
		for _, id := range d.MessageIDs {
			ids := strconv.FormatUint(id, 10)
			damaged[ids] = true
			m := msgs[ids]
			if m == nil {
				t.Errorf("%s %s: message %s not read", d.Defect, d.Kind, ids)
				continue
			}
			for _, k := range kinds {
				if !hasProblem(m, k) {
					t.Errorf("%s %s: message %s lacks problem %s; has %q", d.Defect, d.Kind, ids, k, m.Problems)
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no defect checked")
	}
	// The undamaged messages have no problem but id-not-inode.
	for id, m := range msgs {
		if damaged[id] {
			continue
		}
		for _, p := range m.Problems {
			if !strings.HasPrefix(p, KindIDNotInode+":") {
				t.Errorf("%s: unexpected problem %s", id, p)
			}
		}
	}
	// Read with no Walk before it still finds a misplaced message's files
	// where qmail would look and reports what is missing.
	q2, _ := Open(root)
	defer q2.Close()
	m, err := q2.Read(queue.Ref{ID: "10004796"})
	if err != nil || !hasProblem(m, KindInfoWithoutMess) {
		t.Errorf("Read without Walk: %v %v", err, m)
	}
	if _, err := q2.Read(queue.Ref{ID: "1"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing id: %v", err)
	}
}

// fromBounceOnly: a failed recipient known only from bounce/N (its channel
// file is gone).
func fromBounceOnly(m *queue.Message, r queue.Recipient) bool {
	return m.Queue == queue.QmailQueue && r.Channel == "" && r.Done && r.Offset == -1
}

func hasProblem(m *queue.Message, kind string) bool {
	for _, p := range m.Problems {
		if strings.HasPrefix(p, kind+":") {
			return true
		}
	}
	return false
}

func TestWalkCancel(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	stop := errors.New("stop")
	n := 0
	err = q.Walk(context.Background(), func(queue.Ref) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("walk returned %v after %d", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.Walk(ctx, func(queue.Ref) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled walk: %v", err)
	}
}

// A symbolic link planted in the queue is reported, never followed.
func TestSymlinkNotFollowed(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("F\x00"), 0o600)
	// replace one info file by a link to a file outside the queue
	truth := loadTruth(t)
	var victim *truthMessage
	for _, m := range truth {
		if m.Parts["info"] && m.Sender != "" {
			victim = m
			break
		}
	}
	info := filepath.Join(root, "info", strconv.Itoa(victim.Subdir), strconv.FormatUint(victim.ID, 10))
	os.Remove(info)
	if err := os.Symlink(outside, info); err != nil {
		t.Fatal(err)
	}
	// and one whole split directory by a link
	os.Rename(filepath.Join(root, "remote/3"), filepath.Join(root, "remote.3"))
	os.Symlink(filepath.Join(root, "remote.3"), filepath.Join(root, "remote/3"))
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m, err := q.Read(queue.Ref{ID: strconv.FormatUint(victim.ID, 10)})
	if err != nil {
		t.Fatal(err)
	}
	if m.NullSender {
		t.Errorf("read through a symbolic link: %+v", m)
	}
	if !hasProblem(m, KindUnreadable) || !strings.Contains(strings.Join(m.Problems, "\n"), "symbolic link") {
		t.Errorf("symlinked info not reported: %q", m.Problems)
	}
	if m.Sender != "" || m.Err != nil && !strings.Contains(m.Err.Error(), "symbolic") {
		t.Errorf("sender %q err %v", m.Sender, m.Err)
	}
	// a FIFO where a mess file belongs is reported, never opened
	fifoID := uint64(999999937)
	if err := syscall.Mkfifo(filepath.Join(root, "mess", strconv.FormatUint(fifoID%23, 10), strconv.FormatUint(fifoID, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	q.Walk(context.Background(), func(queue.Ref) error { return nil })
	fm, err := q.Read(queue.Ref{ID: strconv.FormatUint(fifoID, 10)})
	if err != nil || !hasProblem(fm, KindUnreadable) || !strings.Contains(strings.Join(fm.Problems, "\n"), "FIFO") {
		t.Errorf("FIFO: %v %v", err, fm)
	}
	for _, tm := range truth {
		if tm.Subdir == 3 && tm.Parts["remote"] {
			m, err := q.Read(queue.Ref{ID: strconv.FormatUint(tm.ID, 10)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range m.Recipients {
				if r.Channel == queue.ChannelRemote {
					t.Errorf("%d: remote recipients read through remote/3 symlink", tm.ID)
				}
			}
			break
		}
	}
}

// Names that are not message ids are reported as strays, never dropped
// silently and never taken for messages.
func TestInventoryStrays(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	for _, p := range []string{"mess/5/123.tmp", "todo/abc", "info/7/0123", "bounce/x"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("F\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "remote/junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Named like message files, not regular files: reported by their path.
	if err := syscall.Mkfifo(filepath.Join(root, "mess/6/99999981"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "info/3/99999976")); err != nil {
		t.Fatal(err)
	}
	q, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Walk's first pass lists through the same code as Inventory.
	if err := q.Walk(context.Background(), func(queue.Ref) error { return nil }); err != nil {
		t.Fatal(err)
	}
	walked := map[string]bool{}
	for _, s := range q.Strays() {
		walked[s.Path] = true
	}
	inv, err := q.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range inv.Strays {
		got[s.Path] = true
	}
	for _, p := range []string{"mess/5/123.tmp", "todo/abc", "info/7/0123", "bounce/x", "remote/junk", "mess/6/99999981", "info/3/99999976"} {
		if !got[p] {
			t.Errorf("stray %s not reported (strays %v)", p, inv.Strays)
		}
		if !walked[p] {
			t.Errorf("stray %s not reported by Walk", p)
		}
	}
	// The FIFO and the link are listed as messages 99999981 and
	// 99999976, so that their problem is seen.
	if len(inv.IDs) != len(loadTruth(t))+2 {
		t.Errorf("%d ids, want %d", len(inv.IDs), len(loadTruth(t))+2)
	}
	if inv.Has(123, PartMess) {
		t.Error("123.tmp taken for message 123")
	}
}

// summary is what a Read says of a message, in a comparable form.
func summary(t *testing.T, q *Queue, id string) string {
	t.Helper()
	m, err := q.Read(queue.Ref{ID: id})
	if err != nil {
		return "error: " + err.Error()
	}
	probs := slices.Clone(m.Problems)
	slices.Sort(probs)
	s := m.Queue + "|" + m.Path + "|" + m.Sender + "|" + m.SASLUser + "|" + strconv.Itoa(len(m.Recipients))
	for _, r := range m.Recipients {
		s += "|" + r.Address + r.Channel + strconv.FormatBool(r.Done) + r.Reason
	}
	for _, p := range probs {
		s += "\n" + p
	}
	return s
}

// The bounded Walk (two passes, one subdirectory number at a time) lists
// the same messages and strays as the whole-queue Inventory, and a Read
// after it (during the walk, from the kept group, or after it, from the
// unusual files only) says the same as a Read after Inventory, on a queue
// a real qmail wrote and that was then damaged in every way the fixture
// knows (wrong subdirectory, subdirectory beyond the split, parts
// missing), plus strays, a FIFO and a symbolic link.
func TestWalkMatchesInventory(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	for _, p := range []string{"mess/5/123.tmp", "todo/abc", "info/7/0123", "bounce/x"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("F\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "remote/junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	fifoID := uint64(999999937)
	if err := syscall.Mkfifo(filepath.Join(root, "mess", strconv.FormatUint(fifoID%23, 10), strconv.FormatUint(fifoID, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "info/4/999999944")); err != nil {
		t.Fatal(err)
	}

	qi, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer qi.Close()
	inv, err := qi.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, id := range inv.IDs {
		s := strconv.FormatUint(id, 10)
		want[s] = summary(t, qi, s)
	}

	qw, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer qw.Close()
	during := map[string]string{}
	lastSub := -1
	err = qw.Walk(context.Background(), func(r queue.Ref) error {
		if _, dup := during[r.ID]; dup {
			t.Errorf("%s listed twice", r.ID)
		}
		id, _ := ParseID(r.ID)
		sub := qw.layout.Subdir(id)
		if sub < lastSub {
			t.Errorf("%s (subdirectory %d) after subdirectory %d", r.ID, sub, lastSub)
		}
		lastSub = sub
		during[r.ID] = summary(t, qw, r.ID)
		ws := qw.walk.Load()
		for _, g := range ws.groups {
			if g != nil && g.sub != sub && g.sub != sub-1 {
				t.Errorf("walk keeps subdirectory %d while at %d", g.sub, sub)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != len(want) {
		t.Errorf("walk listed %d messages, inventory %d", len(during), len(want))
	}
	if _, ok := during[strconv.FormatUint(fifoID, 10)]; !ok {
		t.Error("message with a FIFO mess file not listed")
	}
	for id, w := range want {
		if during[id] != w {
			t.Errorf("%s read during the walk:\n%s\nafter Inventory:\n%s", id, during[id], w)
		}
		if after := summary(t, qw, id); after != w {
			t.Errorf("%s read after the walk:\n%s\nafter Inventory:\n%s", id, after, w)
		}
	}
	var ws, is []string
	for _, s := range qw.Strays() {
		ws = append(ws, s.Path+" "+s.Why)
	}
	for _, s := range inv.Strays {
		is = append(is, s.Path+" "+s.Why)
	}
	slices.Sort(ws)
	slices.Sort(is)
	if !slices.Equal(ws, is) || len(ws) < 5 {
		t.Errorf("walk strays %q\ninventory strays %q", ws, is)
	}
}

// BenchmarkRead reads every message of the fixture queue; ns/op is per
// message.
func BenchmarkRead(b *testing.B) {
	root := extract(b, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var refs []queue.Ref
	if err := q.Walk(context.Background(), func(r queue.Ref) error { refs = append(refs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := q.Read(refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalk lists the fixture queue; ns/op is per walk of 371 messages.
func BenchmarkWalk(b *testing.B) {
	root := extract(b, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := q.Walk(context.Background(), func(queue.Ref) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
