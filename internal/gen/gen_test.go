package gen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/qmailtest"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

var testNow = time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)

// openDir makes a directory every Postfix process can reach (t.TempDir's
// parent is 0700 root, and showq/postcat drop privileges).
func openDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "qsurgeon-gen-test-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func genPostfix(t *testing.T, root string, n int, ids IDMode) (Stats, map[string]*Message) {
	t.Helper()
	truth := map[string]*Message{}
	st, err := Postfix(context.Background(), PostfixConfig{
		Config: Config{Root: root, Count: n, Seed: 7, Now: testNow, Workers: 2,
			OnMessage: func(m *Message) { c := *m; truth[m.Queue+"/"+m.ID] = &c }},
		IDs: ids, UID: -1, GID: -1, PostdropGID: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != n || len(truth) != n {
		t.Fatalf("wrote %d messages, reported %d, want %d", st.Messages, len(truth), n)
	}
	return st, truth
}

// TestPostfixDeterministic: the same seed gives the same messages (IDs
// aside, which come from inodes).
func TestPostfixDeterministic(t *testing.T) {
	dir := t.TempDir()
	key := func(m *Message) string {
		return fmt.Sprintf("%d %s %s %q %v %s %s %d", m.Index, m.Kind, m.Queue, m.Sender, m.Recipients, m.SASLUser, m.ClientAddr, m.Arrival.UnixMicro())
	}
	var runs [2][]string
	for k, w := range []int{1, 2} {
		var got []string
		_, err := Postfix(context.Background(), PostfixConfig{
			Config: Config{Root: filepath.Join(dir, fmt.Sprint(k)), Count: 50, Seed: 3, Now: testNow, Workers: w,
				OnMessage: func(m *Message) { got = append(got, key(m)) }},
			UID: -1, GID: -1, PostdropGID: -1})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		runs[k] = got
	}
	if strings.Join(runs[0], "\n") != strings.Join(runs[1], "\n") {
		t.Fatalf("1 and 2 workers gave different messages")
	}
}

// TestPostfixRealTools writes a small queue with short and long IDs and
// checks it with the real postcat and postqueue -j, then reads every message
// back with postfixq and compares with what the generator says it wrote.
func TestPostfixRealTools(t *testing.T) {
	postfixtest.Require(t)
	if os.Geteuid() != 0 {
		t.Fatal("needs root: postqueue reads the queue directly only for root")
	}
	dir := openDir(t)
	root := filepath.Join(dir, "spool")
	const n = 300
	st, truth := genPostfix(t, root, n, MixedIDs)
	for _, q := range []string{"deferred", "hold", "active", "incoming"} {
		if st.ByQueue[q] == 0 && q != "active" && q != "incoming" {
			t.Errorf("no message in %s: %v", q, st.ByQueue)
		}
	}
	if st.NullSender == 0 || st.DoneRecipients == 0 || st.Compromised < n/20 {
		t.Errorf("missing variety: %+v", st)
	}

	// Files: named after their own inode, in the right hash directory,
	// ready (0700) and owned like Postfix's.
	var longs, shorts int
	for _, m := range truth {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, m.Path), &s); err != nil {
			t.Fatal(err)
		}
		ino, err := postfixq.IDInode(m.ID)
		if err != nil || ino != s.Ino {
			t.Errorf("%s: ID inode %d (%v), file inode %d", m.Path, ino, err, s.Ino)
		}
		if id, _ := postfixq.ParseID(m.ID); id.Kind == postfixq.LongID {
			longs++
		} else {
			shorts++
		}
		wantMode := uint32(0o700)
		if m.Queue == "maildrop" {
			wantMode = 0o744
		}
		if s.Mode&0o7777 != wantMode {
			t.Errorf("%s: mode %o", m.Path, s.Mode&0o7777)
		}
		for _, f := range m.Files {
			if _, err := os.Lstat(filepath.Join(root, f)); err != nil {
				t.Errorf("manifest file of %s: %v", m.ID, err)
			}
		}
		if len(m.Files) != 1+btoi(m.DeferLog)+btoi(m.Bouncing) {
			t.Errorf("%s: files %v", m.ID, m.Files)
		}
		if m.Queue == "deferred" {
			if want := "deferred/" + postfixq.HashDir(m.ID, 1) + m.ID; m.Path != want {
				t.Errorf("path %s, want %s", m.Path, want)
			}
			if s.Mtim.Sec <= testNow.Unix() {
				t.Errorf("%s: deferred mtime %d not in the future", m.Path, s.Mtim.Sec)
			}
		}
	}
	if longs == 0 || shorts == 0 {
		t.Errorf("mixed IDs: %d long, %d short", longs, shorts)
	}

	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	mainCF := "queue_directory = " + root + "\ncompatibility_level = 3.6\n"
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// postcat on a sample (every 5th file, and every non-deferred one).
	i := 0
	for _, m := range truth {
		i++
		if m.Queue == "deferred" && i%5 != 0 {
			continue
		}
		out, errOut := run(t, "postcat", "-c", conf, "-v", filepath.Join(root, m.Path))
		for _, l := range strings.Split(errOut, "\n") {
			if strings.Contains(l, "warning") || strings.Contains(l, "fatal") {
				t.Errorf("postcat %s: %s", m.Path, l)
			}
		}
		if !strings.Contains(out, "*** MESSAGE FILE END") {
			t.Errorf("postcat %s: no end of file:\n%s", m.Path, out)
		}
		if want := "sender: " + m.Sender + "\n"; !strings.Contains(out, want) {
			t.Errorf("postcat %s: no %q", m.Path, want)
		}
		if m.SASLUser != "" && !strings.Contains(out, "named_attribute: sasl_username="+m.SASLUser+"\n") {
			t.Errorf("postcat %s: no sasl_username %s", m.Path, m.SASLUser)
		}
	}

	// postqueue -j sees every message with its sender and pending recipients.
	out, errOut := run(t, "postqueue", "-c", conf, "-j")
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if l != "" && !strings.Contains(l, "Mail system is down -- accessing queue directly") {
			t.Errorf("postqueue: %s", l)
		}
	}
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var j struct {
			Queue      string `json:"queue_name"`
			ID         string `json:"queue_id"`
			Sender     string `json:"sender"`
			Recipients []struct {
				Address string `json:"address"`
				Reason  string `json:"delay_reason"`
			} `json:"recipients"`
		}
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("postqueue -j line %q: %v", sc.Text(), err)
		}
		m := truth[j.Queue+"/"+j.ID]
		if m == nil {
			t.Errorf("postqueue lists %s/%s, which the generator did not write", j.Queue, j.ID)
			continue
		}
		seen++
		wantSender := m.Sender
		if wantSender == "" {
			wantSender = "MAILER-DAEMON"
		}
		if j.Sender != wantSender {
			t.Errorf("%s: postqueue sender %q, wrote %q", m.Path, j.Sender, m.Sender)
		}
		var got, want []string
		for _, r := range j.Recipients {
			got = append(got, r.Address)
			if m.DeferLog && r.Reason == "" {
				t.Errorf("%s: %s has no delay_reason from the defer log", m.Path, r.Address)
			}
		}
		for _, r := range m.Recipients {
			if !r.Done {
				want = append(want, r.Address)
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: postqueue recipients %v, pending written %v", m.Path, got, want)
		}
	}
	if seen != n {
		t.Errorf("postqueue -j listed %d of %d messages", seen, n)
	}

	// qshape reads the tree too (it parses queue files with its own Perl reader).
	if qs, qerr := run(t, "qshape", "-c", conf, "deferred"); !strings.Contains(qs, "TOTAL") || strings.TrimSpace(qerr) != "" {
		t.Errorf("qshape: %s %s", qs, qerr)
	}

	comparePostfixq(t, root, truth)
}

func comparePostfixq(t *testing.T, root string, truth map[string]*Message) {
	t.Helper()
	sp, err := postfixq.Open(root, postfixq.Options{OnNote: func(n postfixq.Note) { t.Errorf("postfixq note: %+v", n) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	read := 0
	err = sp.Walk(context.Background(), func(ref queue.Ref) error {
		m, err := sp.Read(ref)
		if err != nil {
			t.Errorf("%s: %v", ref.Path, err)
			return nil
		}
		w := truth[ref.Queue+"/"+ref.ID]
		if w == nil {
			t.Errorf("postfixq found %s/%s, not written", ref.Queue, ref.ID)
			return nil
		}
		read++
		if m.Err != nil {
			t.Errorf("%s: %v", ref.Path, m.Err)
		}
		if m.Sender != w.Sender || m.NullSender != (w.Sender == "") {
			t.Errorf("%s: sender %q, wrote %q", ref.Path, m.Sender, w.Sender)
		}
		if m.SASLUser != w.SASLUser || m.ClientAddr != w.ClientAddr {
			t.Errorf("%s: sasl %q client %q, wrote %q %q", ref.Path, m.SASLUser, m.ClientAddr, w.SASLUser, w.ClientAddr)
		}
		if !m.Arrival.Equal(w.Arrival) {
			t.Errorf("%s: arrival %v, wrote %v", ref.Path, m.Arrival, w.Arrival)
		}
		if m.FileSize != w.FileSize {
			t.Errorf("%s: size %d, wrote %d", ref.Path, m.FileSize, w.FileSize)
		}
		if len(m.Recipients) != len(w.Recipients) {
			t.Errorf("%s: %d recipients, wrote %d", ref.Path, len(m.Recipients), len(w.Recipients))
			return nil
		}
		for k, r := range m.Recipients {
			if r.Address != w.Recipients[k].Address || r.Done != w.Recipients[k].Done {
				t.Errorf("%s: recipient %d %q done=%v, wrote %+v", ref.Path, k, r.Address, r.Done, w.Recipients[k])
			}
		}
		if m.Bouncing != w.Bouncing {
			t.Errorf("%s: bouncing %v, wrote %v", ref.Path, m.Bouncing, w.Bouncing)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if read != len(truth) {
		t.Errorf("postfixq read %d of %d messages", read, len(truth))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func run(t *testing.T, name string, args ...string) (stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, e.String())
	}
	// Debug chatter of a default main.cf (no mynetworks) is not a problem.
	var keep []string
	for _, l := range strings.Split(e.String(), "\n") {
		if regexp.MustCompile(`^\S+: (name_mask|inet_addr_local|been_here|mynetworks_core): `).MatchString(l) {
			continue
		}
		keep = append(keep, l)
	}
	return o.String(), strings.Join(keep, "\n")
}

// qmail record shapes (qmail-queue.c, qmail-send.c:todo_do, markdone);
// TestQmailFormat first proves them on the real fixture, then applies them
// to generated files.
var qmailShapes = map[string]*regexp.Regexp{
	"info":   regexp.MustCompile(`^F[^\x00]*\x00$`),
	"local":  regexp.MustCompile(`^([TD][^\x00]+\x00)+$`),
	"remote": regexp.MustCompile(`^([TD][^\x00]+\x00)+$`),
	"todo":   regexp.MustCompile(`^u[0-9]+\x00p[0-9]+\x00F[^\x00]*\x00(T[^\x00]+\x00)+$`),
	"intd":   regexp.MustCompile(`^u[0-9]+\x00p[0-9]+\x00F[^\x00]*\x00(T[^\x00]+\x00)+$`),
	"mess":   regexp.MustCompile(`^Received: \(qmail [0-9]+ (invoked from network|invoked by uid [0-9]+|invoked by alias|invoked for bounce)\); [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} -0000\n`),
	"bounce": regexp.MustCompile(`^(<[^>\n]+>:\n([^\n]+\n)+\n)+$`),
}

// authShape is the SMTP AUTH patches' Received header as it appears in the
// fixture (the second header of mess).
var authShape = regexp.MustCompile(`\nReceived: from \S+ \(HELO [^)]+\) \(([^@()]+@[^@()]+)@([0-9.]+)\)\n  by \S+ with ESMTPA; [0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} -0000\n`)

type qmFile struct {
	part, rel string
	mode      uint32
	data      []byte
	st        unix.Stat_t
}

func qmailFiles(t *testing.T, root string) []qmFile {
	t.Helper()
	var out []qmFile
	for _, part := range []string{"mess", "info", "local", "remote", "todo", "intd", "bounce"} {
		err := filepath.WalkDir(filepath.Join(root, part), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			out = append(out, qmFile{part: part, rel: rel, mode: st.Mode & 0o7777, data: data, st: st})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestQmailFormat writes a small qmail queue and checks every file against
// the record shapes and modes of the real qmail fixture, then reads every
// message back with qmailq.
func TestQmailFormat(t *testing.T) {
	dir := t.TempDir()
	fx := filepath.Join(dir, "fixture")
	if err := os.Mkdir(fx, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "--numeric-owner", "-xpzf", "../../testdata/queues/qmail-incident/queue.tar.gz", "-C", fx).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	// The shapes and modes must hold for the real queue first.
	fixModes := map[string]map[uint32]bool{}
	auth := 0
	for _, f := range qmailFiles(t, filepath.Join(fx, "queue")) {
		if !qmailShapes[f.part].Match(f.data) {
			t.Fatalf("shape rule for %s does not fit the real %s: %q", f.part, f.rel, f.data[:min(len(f.data), 200)])
		}
		if fixModes[f.part] == nil {
			fixModes[f.part] = map[uint32]bool{}
		}
		fixModes[f.part][f.mode] = true
		if f.part == "mess" && authShape.Match(f.data[:min(len(f.data), 1024)]) {
			auth++
		}
	}
	if auth == 0 {
		t.Fatal("no ESMTPA Received header in the fixture: authShape is wrong")
	}

	root := filepath.Join(dir, "gen", "queue")
	truth := map[string]*Message{}
	uid, gid := os.Getuid(), os.Getgid()
	st, err := Qmail(context.Background(), QmailConfig{
		Config: Config{Root: root, Count: 300, Seed: 11, Now: testNow, Workers: 2,
			OnMessage: func(m *Message) { c := *m; truth[m.ID] = &c }},
		Split: 23, QmailqUID: uid, QmailsUID: uid, QmailGID: gid, NofilesGID: gid,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.ByQueue["todo"] == 0 || st.ByQueue["queue"] == 0 || st.Compromised == 0 || st.NullSender == 0 {
		t.Errorf("missing variety: %+v", st)
	}
	files := qmailFiles(t, root)
	inodes := map[string]uint64{}
	bounces := 0
	for _, f := range files {
		if !qmailShapes[f.part].Match(f.data) {
			t.Errorf("%s does not have the shape of the real %s files: %q", f.rel, f.part, f.data[:min(len(f.data), 200)])
		}
		if !fixModes[f.part][f.mode] {
			t.Errorf("%s: mode %o, the fixture's %s files have %v", f.rel, f.mode, f.part, fixModes[f.part])
		}
		id := filepath.Base(f.rel)
		switch f.part {
		case "mess":
			if fmt.Sprint(f.st.Ino) != id {
				t.Errorf("%s: inode %d", f.rel, f.st.Ino)
			}
			var want uint64
			fmt.Sscan(id, &want)
			if f.rel != fmt.Sprintf("mess/%d/%s", want%23, id) {
				t.Errorf("%s: wrong split directory", f.rel)
			}
			m := truth[id]
			if m != nil && m.SASLUser != "" {
				sm := authShape.FindSubmatch(f.data)
				if sm == nil || string(sm[1]) != m.SASLUser || string(sm[2]) != m.ClientAddr {
					t.Errorf("%s: AUTH Received header does not name %s@%s", f.rel, m.SASLUser, m.ClientAddr)
				}
			}
		case "todo", "intd":
			if f.st.Nlink != 2 {
				t.Errorf("%s: %d links, todo and intd are one inode", f.rel, f.st.Nlink)
			}
			if prev, ok := inodes[id]; ok && prev != f.st.Ino {
				t.Errorf("%s: todo and intd are different inodes", f.rel)
			}
			inodes[id] = f.st.Ino
		case "bounce":
			bounces++
		}
		if m := truth[id]; m == nil {
			t.Errorf("%s: not a generated message", f.rel)
		} else if !slices.Contains(m.Files, f.rel) {
			t.Errorf("%s: not in the manifest's files %v", f.rel, m.Files)
		}
	}
	if bounces == 0 {
		t.Error("no bounce/ files")
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "pid")); len(entries) != 0 {
		t.Errorf("pid/ left behind: %v", entries)
	}
	var fifo unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "lock", "trigger"), &fifo); err != nil || fifo.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("lock/trigger is not a FIFO: %v", err)
	}

	// Read back with qmailq.
	l, err := qmailq.DetectLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Split != 23 || l.BigTodo {
		t.Errorf("layout: split %d big-todo %v", l.Split, l.BigTodo)
	}
	q, err := qmailq.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	read := 0
	readQmail(t, q, func(ref queue.Ref, m *queue.Message) {
		w := truth[ref.ID]
		if w == nil {
			t.Errorf("qmailq found %s, not written", ref.ID)
			return
		}
		read++
		if len(m.Problems) > 0 || m.Err != nil {
			t.Errorf("%s: problems %v err %v", ref.ID, m.Problems, m.Err)
		}
		if ref.Queue != w.Queue || m.Path != w.Path {
			t.Errorf("%s: queue %s path %s, wrote %s %s", ref.ID, ref.Queue, m.Path, w.Queue, w.Path)
		}
		if m.Sender != w.Sender || m.SASLUser != w.SASLUser || m.ClientAddr != w.ClientAddr || m.Bouncing != w.Bouncing {
			t.Errorf("%s: sender %q sasl %q client %q bouncing %v; wrote %q %q %q %v", ref.ID,
				m.Sender, m.SASLUser, m.ClientAddr, m.Bouncing, w.Sender, w.SASLUser, w.ClientAddr, w.Bouncing)
		}
		got := map[string]string{}
		for _, r := range m.Recipients {
			got[r.Address] = fmt.Sprintf("%s %v", r.Channel, r.Done)
		}
		want := map[string]string{}
		for _, r := range w.Recipients {
			want[r.Address] = fmt.Sprintf("%s %v", r.Channel, r.Done)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: recipients %v, wrote %v", ref.ID, got, want)
		}
	})
	if read != len(truth) {
		t.Errorf("qmailq read %d of %d messages", read, len(truth))
	}
}

// receivedMask blanks the pid and the date of qmail-queue's Received line,
// the parts that differ from run to run.
var receivedMask = regexp.MustCompile(`^Received: \(qmail [0-9]+ ([^)]*)\); [^\n]*\n`)

func maskedReceived(data []byte) string {
	sm := receivedMask.FindSubmatch(data)
	if sm == nil {
		return ""
	}
	return "Received: (qmail PID " + string(sm[1]) + "); DATE"
}

// TestQmailSMTPDUID: with SMTPDUID 89 (qmail-smtpd run as vpopmail), the
// mail from the network carries the Received line and u record the real
// qmail-queue writes when run as uid 89, and qmailq trusts its SMTP-AUTH
// user only when told that uid 89 is qmail-smtpd's.
func TestQmailSMTPDUID(t *testing.T) {
	const vpopmail = 89
	// What the real qmail-queue writes when uid 89 runs it.
	q := qmailtest.New(t, qmailtest.Options{})
	q.QueueAs(vpopmail, "carol@example.com", []string{"x@remote.example"}, []byte("Subject: s\n\nbody\n"))
	var realMess, realTodo []byte
	for _, part := range []string{"mess", "todo"} {
		err := filepath.WalkDir(filepath.Join(q.QueueDir, part), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if part == "mess" {
				realMess = data
			} else {
				realTodo = data
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wantLine := maskedReceived(realMess)
	if wantLine != "Received: (qmail PID invoked by uid 89); DATE" {
		t.Fatalf("the real qmail-queue as uid 89 wrote %q", realMess[:min(len(realMess), 120)])
	}
	wantU, _, _ := bytes.Cut(realTodo, []byte{0})
	if string(wantU) != "u89" {
		t.Fatalf("the real todo starts %q", realTodo[:min(len(realTodo), 40)])
	}

	dir := t.TempDir()
	root := filepath.Join(dir, "queue")
	truth := map[string]*Message{}
	uid, gid := os.Getuid(), os.Getgid()
	_, err := Qmail(context.Background(), QmailConfig{
		Config: Config{Root: root, Count: 600, Seed: 5, Now: testNow, Workers: 2,
			OnMessage: func(m *Message) { c := *m; truth[m.ID] = &c }},
		Split: 23, QmailqUID: uid, QmailsUID: uid, QmailGID: gid, NofilesGID: gid, SMTPDUID: vpopmail,
	})
	if err != nil {
		t.Fatal(err)
	}
	network, todos, auth := 0, 0, 0
	for _, f := range qmailFiles(t, root) {
		m := truth[filepath.Base(f.rel)]
		if m == nil || m.ClientAddr == "" {
			continue // local submissions and bounces do not come through qmail-smtpd
		}
		switch f.part {
		case "mess":
			network++
			if got := maskedReceived(f.data); got != wantLine {
				t.Errorf("%s: %q, the real qmail-queue run as uid 89 writes %q", f.rel, got, wantLine)
			}
			if os.Geteuid() == 0 && f.st.Gid != vpopmail {
				t.Errorf("%s: group %d, want the caller's %d", f.rel, f.st.Gid, vpopmail)
			}
		case "todo", "intd":
			todos++
			if u, _, _ := bytes.Cut(f.data, []byte{0}); !bytes.Equal(u, wantU) {
				t.Errorf("%s: u record %q, the real one %q", f.rel, u, wantU)
			}
		}
	}
	for _, m := range truth {
		if m.SASLUser != "" {
			auth++
		}
	}
	if network == 0 || todos == 0 || auth == 0 {
		t.Fatalf("no variety: %d network messages, %d todo/intd files, %d authenticated", network, todos, auth)
	}

	// qmailq: untrusted by default (a local user could have written the
	// header), trusted with uid 89 named.
	for _, trust := range []bool{false, true} {
		qq, err := qmailq.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if trust {
			qq.TrustSMTPD(vpopmail)
		}
		found := 0
		readQmail(t, qq, func(ref queue.Ref, m *queue.Message) {
			w := truth[ref.ID]
			want := ""
			if trust {
				want = w.SASLUser
			}
			if m.SASLUser != want {
				t.Errorf("trust %v: %s: SASL user %q, want %q", trust, ref.ID, m.SASLUser, want)
			}
			if m.SASLUser != "" {
				found++
			}
		})
		untrusted := qq.UntrustedAuth()[vpopmail]
		switch {
		case trust && (found != auth || untrusted != 0):
			t.Errorf("trusted: %d AUTH users found of %d, %d untrusted", found, auth, untrusted)
		case !trust && untrusted != int64(auth):
			t.Errorf("untrusted: uid 89 counted %d times, %d messages authenticated", untrusted, auth)
		}
		qq.Close()
	}
}

// readQmail reads every message of q back and hands each to fn; a message
// that cannot be read fails the test.
func readQmail(t *testing.T, q *qmailq.Queue, fn func(queue.Ref, *queue.Message)) {
	t.Helper()
	err := q.Walk(context.Background(), func(ref queue.Ref) error {
		m, err := q.Read(ref)
		if err != nil {
			t.Errorf("%s: %v", ref.ID, err)
			return nil
		}
		fn(ref, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
