package postfixq

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// TestRealSendmailLongLines has the real Postfix sendmail/postdrop write a
// maildrop file into a private queue directory: lines longer than
// line_length_limit (2048) are stored as L records (REC_TYPE_CONT) ending
// in an N record, which the fixture does not contain. The reader must join
// them, in the headers and in the body, exactly as postcat does.
func TestRealSendmailLongLines(t *testing.T) {
	longHeader := "X-Long: " + strings.Repeat("y", 3000)
	longBody := strings.Repeat("x", 5000)
	msg := "Subject: long line test\nFrom: a@example.com\n" + longHeader + "\n\n" + longBody + "\nshort\n"
	q := realMaildrop(t, "", msg)
	s, err := Open(q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refs := walkAll(t, s)
	if len(refs) != 1 || refs[0].Queue != queue.Maildrop {
		t.Fatalf("refs = %+v", refs)
	}
	m, err := s.Read(refs[0])
	if err != nil || m.Err != nil {
		t.Fatalf("%v %v", err, m.Err)
	}
	// A short ID names the file's inode (mail_queue.c:mail_queue_enter).
	if id, err := ParseID(m.ID); err != nil || id.Kind != ShortID || id.Inode != m.Inode {
		t.Errorf("ID %s = %+v %v, file inode %d", m.ID, id, err, m.Inode)
	}
	if m.Sender != "a@example.com" || len(m.Recipients) != 2 || m.Recipients[1].Address != "c@example.org" || m.Size != m.FileSize {
		t.Errorf("envelope = %+v", m)
	}
	data := readFixtureFile(t, q, refs[0].Path)
	nL := 0
	for _, r := range logicalRecords(t, data, refs[0].Path) {
		if r.Type == RecTypeCont {
			nL++
		}
	}
	if nL < 3 {
		t.Fatalf("postdrop wrote %d L records; expected the long lines split", nL)
	}
	c, err := s.ReadContent(m, queue.ContentOptions{Body: true})
	if err != nil {
		t.Fatal(err)
	}
	var xlong string
	for _, h := range c.Headers {
		if h.Name == "X-Long" {
			xlong = h.Value
		}
	}
	if xlong != strings.Repeat("y", 3000) || c.Subject != "long line test" {
		t.Errorf("long header = %d bytes, subject %q", len(xlong), c.Subject)
	}
	if string(c.Body) != longBody+"\nshort\n" {
		t.Errorf("body = %d bytes", len(c.Body))
	}
	var raw bytes.Buffer
	if err := s.WriteRaw(&raw, m); err != nil {
		t.Fatal(err)
	}
	pc := postcatConfig(t)
	if want := postcat(t, pc, filepath.Join(q, refs[0].Path), "-bh"); !bytes.Equal(raw.Bytes(), want) {
		t.Errorf("WriteRaw differs from postcat -bh:\n%q\n%q", raw.Bytes(), want)
	}
	if raw.String() != msg {
		t.Errorf("WriteRaw is not the submitted message")
	}
}

// TestRealLongQueueID has postdrop name a file with a long queue ID
// (enable_long_queue_ids = yes) and checks the parsed time and inode
// against the file itself.
func TestRealLongQueueID(t *testing.T) {
	before := time.Now().Add(-2 * time.Second)
	q := realMaildrop(t, "enable_long_queue_ids = yes\n", "Subject: long id\n\nbody\n")
	s, err := Open(q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refs := walkAll(t, s)
	if len(refs) != 1 {
		t.Fatalf("refs = %+v", refs)
	}
	m, err := s.Read(refs[0])
	if err != nil || m.Err != nil {
		t.Fatalf("%v %v", err, m.Err)
	}
	id, err := ParseID(m.ID)
	if err != nil || id.Kind != LongID {
		t.Fatalf("ParseID(%s) = %+v, %v", m.ID, id, err)
	}
	created := time.Unix(id.Sec, int64(id.Usec)*1000)
	if id.Inode != m.Inode || created.Before(before) || created.After(time.Now().Add(2*time.Second)) || id.String() != m.ID {
		t.Errorf("long ID %s = %+v (created %v), file inode %d", m.ID, id, created, m.Inode)
	}
	if got, want := HashDir(m.ID, 1), fmt.Sprintf("%05X", id.Usec)[:1]+"/"; got != want {
		t.Errorf("HashDir(%s) = %s, want %s", m.ID, got, want)
	}
}

// realMaildrop runs the real sendmail/postdrop against a private queue
// directory and returns it; the file lands in maildrop/ (Postfix is not
// running, as in the fixture's maildrop files).
func realMaildrop(t *testing.T, mainCF, msg string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cfg")
	q := filepath.Join(dir, "q")
	for _, d := range []string{cfg, filepath.Join(q, "maildrop"), filepath.Join(q, "public")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "main.cf"), []byte("queue_directory = "+q+"\ncompatibility_level = 3.6\n"+mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	// conf/postfix-files: maildrop is postfix:postdrop 1730, public 2710.
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("no postfix user: %v", err)
	}
	pd, err := user.LookupGroup("postdrop")
	if err != nil {
		t.Fatalf("no postdrop group: %v", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pd.Gid)
	for d, mode := range map[string]os.FileMode{"maildrop": 0o730 | os.ModeSticky, "public": 0o710 | os.ModeSetgid} {
		p := filepath.Join(q, d)
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/usr/sbin/sendmail", "-C", cfg, "-i", "-f", "a@example.com", "--", "b@example.net", "c@example.org")
	cmd.Stdin = strings.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v: %s", err, out)
	}
	return q
}
