package postfixq

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

func TestDiscoveredHashing(t *testing.T) {
	s, err := Open(fixtureRoot(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// README: hash_queue_names = deferred, defer; depth 1; the rest flat.
	for dir, want := range map[string]int{"deferred": 1, "defer": 1, "bounce": 0, "incoming": 0, "active": 0, "hold": 0, "maildrop": 0} {
		if got := s.HashDepth(dir); got != want {
			t.Errorf("HashDepth(%s) = %d, want %d", dir, got, want)
		}
	}
	if got := s.MessagePath("deferred", "7A6D1BE4D7"); got != "deferred/7/7A6D1BE4D7" {
		t.Errorf("MessagePath = %s", got)
	}
	if got := s.LogPath("defer", "7A6D1BE4D7"); got != "defer/7/7A6D1BE4D7" {
		t.Errorf("LogPath = %s", got)
	}
	if got := s.LogPath("bounce", "81713BE51B"); got != "bounce/81713BE51B" {
		t.Errorf("LogPath = %s", got)
	}
	// Every defer log of the fixture is where LogPath says.
	for _, m := range loadTruth(t).Messages {
		if m.HasDeferLog {
			if _, err := os.Lstat(filepath.Join(s.Root(), s.LogPath("defer", m.QueueID))); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestConfigHashing(t *testing.T) {
	dir := t.TempDir()
	mainCF := "# test\nhash_queue_names = deferred,\n   defer bounce, $extra\nextra = hold\nhash_queue_depth = ${depth}\ndepth = 2\n"
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.HashQueueNames, " ") != "deferred defer bounce hold" || c.HashQueueDepth != 2 || c.QueueDirectory != "/var/spool/postfix" {
		t.Errorf("config = %+v", c)
	}
	// Cross-check with the real postconf.
	out, err := exec.Command("/usr/sbin/postconf", "-c", dir, "-x", "-h", "hash_queue_names", "hash_queue_depth").Output()
	if err != nil {
		t.Fatalf("postconf: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	names := strings.FieldsFunc(lines[0], func(r rune) bool { return r == ' ' || r == ',' })
	if strings.Join(names, " ") != strings.Join(c.HashQueueNames, " ") || lines[1] != "2" {
		t.Errorf("postconf says %q, we parsed %+v", lines, c)
	}
	s, err := Open(fixtureRoot(t), Options{Config: &c})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.MessagePath("hold", "7A6D1BE4D7"); got != "hold/7/A/7A6D1BE4D7" {
		t.Errorf("MessagePath = %s", got)
	}
	if got := s.MessagePath("maildrop", "7A6D1BE4D7"); got != "maildrop/7A6D1BE4D7" {
		t.Errorf("maildrop hashed: %s", got)
	}
	// Empty main.cf: Postfix defaults.
	os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644)
	if c, err := LoadConfig(dir); err != nil || strings.Join(c.HashQueueNames, ",") != "deferred,defer" || c.HashQueueDepth != 1 {
		t.Errorf("defaults = %+v %v", c, err)
	}
}

// TestWalkSkipsUnsafeEntries damages a private copy of the fixture: a
// symlinked hash directory, a symlinked file, a file still being written,
// temporary names, a FIFO; Walk reports each and lists none, and Read
// refuses to go through a symbolic link or out of the root.
func TestWalkSkipsUnsafeEntries(t *testing.T) {
	root := copyFixture(t)
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A symlinked hash dir pointing at a real hash dir elsewhere.
	must(os.Mkdir(filepath.Join(outside, "Z"), 0o700))
	must(os.WriteFile(filepath.Join(outside, "Z", "ZZZZZ1"), []byte("x"), 0o700))
	must(os.Symlink(filepath.Join(outside, "Z"), filepath.Join(root, "deferred", "Z")))
	// A symlinked queue file.
	must(os.Symlink(filepath.Join(root, "deferred/7/7A6D1BE4D7"), filepath.Join(root, "hold", "ABCDE123")))
	// In progress: mode 0600.
	must(os.Chmod(filepath.Join(root, "incoming/D23C1BE526"), 0o600))
	// Temporary names.
	must(os.WriteFile(filepath.Join(root, "incoming", "123456.789"), nil, 0o600))
	must(os.WriteFile(filepath.Join(root, "deferred", "7", "7A6D1BE4D7#FIX"), nil, 0o700))
	must(unix.Mkfifo(filepath.Join(root, "active", "FIFO1"), 0o700))
	must(os.Mkdir(filepath.Join(root, "maildrop", "0"), 0o700))

	var notes []Note
	s, err := Open(root, Options{OnNote: func(n Note) { notes = append(notes, n) }})
	must(err)
	defer s.Close()
	refs := walkAll(t, s)
	// The file still being written is a regular file by its d_type, so
	// Walk lists it without a stat of its own and Read refuses it (below,
	// with queue.ErrNotReady, which the engine skips quietly).
	if len(refs) != 298 {
		t.Errorf("walk listed %d messages, want 298", len(refs))
	}
	for _, r := range refs {
		if r.ID == "ZZZZZ1" || r.ID == "ABCDE123" {
			t.Errorf("walk listed %s", r.Path)
		}
	}
	got := map[string]string{}
	for _, n := range notes {
		got[n.Path] = n.Kind
	}
	for p, kind := range map[string]string{
		"deferred/Z":                NoteSymlink,
		"hold/ABCDE123":             NoteSymlink,
		"incoming/123456.789":       NoteTemporary,
		"deferred/7/7A6D1BE4D7#FIX": NoteTemporary,
		"active/FIFO1":              NoteNotRegular,
		"maildrop/0":                NoteUnexpectedDir,
	} {
		if got[p] != kind {
			t.Errorf("note for %s = %q, want %q (all: %v)", p, got[p], kind, notes)
		}
	}
	if len(notes) != 6 {
		t.Errorf("%d notes: %v", len(notes), notes)
	}
	// Read never crosses a symlink or leaves the root.
	for _, p := range []string{"deferred/Z/ZZZZZ1", "hold/ABCDE123", "../x", "/etc/passwd", "deferred/../../x"} {
		if _, err := s.Read(queue.Ref{Path: p}); err == nil {
			t.Errorf("Read(%s) succeeded", p)
		}
	}
	if _, err := s.Read(queue.Ref{Queue: "incoming", ID: "D23C1BE526", Path: "incoming/D23C1BE526"}); !errors.Is(err, ErrInProgress) || !errors.Is(err, queue.ErrNotReady) {
		t.Errorf("Read of a 0600 file: %v", err)
	}
	if _, err := s.Read(queue.Ref{Queue: "deferred", ID: "0123456789"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing file: %v", err)
	}
	// Forced expiration: g+x (postsuper -e), mode 0710.
	must(os.Chmod(filepath.Join(root, "deferred/7/7A6D1BE4D7"), 0o710))
	m, err := s.Read(queue.Ref{Queue: "deferred", ID: "7A6D1BE4D7"})
	must(err)
	if !m.ForcedExpire || m.Path != "deferred/7/7A6D1BE4D7" {
		t.Errorf("forced expire not seen: %+v", m)
	}
}

// TestDiscoveryFlatAndDeep hashes a copy of the fixture two levels deep
// (as postsuper does after hash_queue_depth = 2) and checks discovery.
func TestDiscoveryFlatAndDeep(t *testing.T) {
	root := copyFixture(t)
	var moved []string
	err := filepath.WalkDir(filepath.Join(root, "deferred"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		moved = append(moved, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range moved {
		id := filepath.Base(p)
		dst := filepath.Join(root, "deferred", HashDir(id, 2), id)
		os.MkdirAll(filepath.Dir(dst), 0o700)
		if err := os.Rename(p, dst); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.HashDepth("deferred") != 2 || s.HashDepth("defer") != 1 {
		t.Errorf("depths %d %d", s.HashDepth("deferred"), s.HashDepth("defer"))
	}
	var ids []string
	for _, r := range walkAll(t, s) {
		if r.Queue == "deferred" {
			if r.Path != s.MessagePath("deferred", r.ID) {
				t.Errorf("%s is not at MessagePath %s", r.Path, s.MessagePath("deferred", r.ID))
			}
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	if len(ids) != 274 {
		t.Errorf("%d deferred messages after rehashing", len(ids))
	}
}

func TestMasterRunning(t *testing.T) {
	root := copyFixture(t)
	// The fixture's pid/master.pid is stale (Postfix was stopped).
	if up, err := MasterRunning(root); err != nil || up {
		t.Errorf("stale pid file: running=%v err=%v", up, err)
	}
	// Hold the lock the way master does (flock, another open file).
	f, err := os.Open(filepath.Join(root, "pid", "master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if up, err := MasterRunning(root); err != nil || !up {
		t.Errorf("locked pid file: running=%v err=%v", up, err)
	}
	f.Close()
	if up, err := MasterRunning(root); err != nil || up {
		t.Errorf("after unlock: running=%v err=%v", up, err)
	}
	os.Remove(filepath.Join(root, "pid", "master.pid"))
	if up, err := MasterRunning(root); err != nil || up {
		t.Errorf("no pid file: running=%v err=%v", up, err)
	}
}

func TestParseLog(t *testing.T) {
	root := fixtureRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "bounce", "81713BE51B"))
	if err != nil {
		t.Fatal(err)
	}
	e := ParseLog(data)
	if len(e) != 1 || e[0].Recipient != "j.doe@example.com" || e[0].Offset != 1016 || e[0].Status != "5.1.1" ||
		e[0].Action != "failed" || e[0].Reason != `unknown user: "j.doe"` || e[0].DSNOrigRcpt != "rfc822;j.doe@example.com" {
		t.Errorf("entries = %+v", e)
	}
	// Old-style only entries (backwards compatible logs).
	e = ParseLog([]byte("<a@b>: old reason\n\n<\"x y\"@c>: other\n"))
	if len(e) != 2 || e[0].Recipient != "a@b" || e[1].Reason != "other" || logAddress(e[1].Recipient) != "x y@c" {
		t.Errorf("legacy entries = %+v", e)
	}
	if quote822Local("x y@c") != `"x y"@c` || quote822Local("a.b@c") != "a.b@c" || quote822Local("a..b@c") != `"a..b"@c` {
		t.Error("quote822Local")
	}
}

// TestConcurrentRead reads every message from several goroutines at once
// (the filter engine's workers); run with -race to check the pooled
// readers.
func TestConcurrentRead(t *testing.T) {
	s, err := Open(fixtureRoot(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refs := walkAll(t, s)
	want := map[string]string{}
	for _, r := range refs {
		m, err := s.Read(r)
		if err != nil {
			t.Fatal(err)
		}
		want[r.ID] = fmt.Sprint(m.Sender, m.Recipients, m.Size, m.Attrs)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(refs); i += 4 {
				m, err := s.Read(refs[i])
				if err != nil {
					errs <- err
					return
				}
				if got := fmt.Sprint(m.Sender, m.Recipients, m.Size, m.Attrs); got != want[refs[i].ID] {
					errs <- fmt.Errorf("%s differs when read concurrently", refs[i].Path)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLeanRead: with SkipLogs and SkipAttrs every field a selection by
// sender, recipient, SASL user, client, HELO, age or size looks at is the
// same as in a full read; only the logs' reasons and the attribute map are
// left out, and AttachLogs brings the reasons back.
func TestLeanRead(t *testing.T) {
	dir := testkit.Extract(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz"))
	root := filepath.Join(dir, testkit.PostfixRoot)
	full, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	lean, err := Open(root, Options{SkipLogs: true, SkipAttrs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lean.Close()
	n, withReasons := 0, 0
	err = full.Walk(context.Background(), func(ref queue.Ref) error {
		a, err := full.Read(ref)
		if err != nil {
			return err
		}
		b, err := lean.Read(ref)
		if err != nil {
			return err
		}
		n++
		if b.Attrs != nil {
			t.Errorf("%s: lean read kept the attribute map", ref.ID)
		}
		if a.Sender != b.Sender || a.NullSender != b.NullSender || a.SASLUser != b.SASLUser || a.SASLMethod != b.SASLMethod ||
			a.ClientAddr != b.ClientAddr || a.ClientName != b.ClientName || a.HELO != b.HELO || !a.Arrival.Equal(b.Arrival) ||
			!a.CreateTime.Equal(b.CreateTime) || a.Size != b.Size || a.Inode != b.Inode || len(a.Recipients) != len(b.Recipients) {
			t.Errorf("%s: lean read differs:\n%+v\n%+v", ref.ID, a, b)
		}
		for i := range b.Recipients {
			if b.Recipients[i].Reason != "" {
				t.Errorf("%s: lean read has a reason", ref.ID)
			}
			if a.Recipients[i].Address != b.Recipients[i].Address || a.Recipients[i].Done != b.Recipients[i].Done {
				t.Errorf("%s: recipient %d differs", ref.ID, i)
			}
		}
		lean.AttachLogs(b)
		for i := range b.Recipients {
			if a.Recipients[i].Reason != b.Recipients[i].Reason {
				t.Errorf("%s: AttachLogs gave reason %q, full read %q", ref.ID, b.Recipients[i].Reason, a.Recipients[i].Reason)
			}
			if a.Recipients[i].Reason != "" {
				withReasons++
			}
		}
		if a.Bouncing != b.Bouncing {
			t.Errorf("%s: Bouncing %v after AttachLogs, full read %v", ref.ID, b.Bouncing, a.Bouncing)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 298 || withReasons == 0 {
		t.Fatalf("read %d messages, %d reasons: the fixture has 298 messages and many reasons", n, withReasons)
	}
}

// TestFixtureIDs parses every real queue ID and checks that the hash
// directory Postfix chose is the one HashDir computes.
func TestFixtureIDs(t *testing.T) {
	tf := loadTruth(t)
	for _, m := range tf.Messages {
		id, err := ParseID(m.QueueID)
		if err != nil || id.Kind != ShortID {
			t.Fatalf("%s: %+v %v", m.QueueID, id, err)
		}
		if id.String() != m.QueueID {
			t.Errorf("%s formats back as %s", m.QueueID, id)
		}
		if NewShortID(id.Usec, id.Inode) != m.QueueID {
			t.Errorf("NewShortID round trip of %s", m.QueueID)
		}
		if m.Queue == "deferred" {
			if want := path.Dir(m.Path) + "/"; "deferred/"+HashDir(m.QueueID, 1) != want {
				t.Errorf("%s: hash dir %q, file is in %q", m.QueueID, HashDir(m.QueueID, 1), want)
			}
		}
		ino, err := IDInode(m.QueueID)
		if err != nil || ino != id.Inode || ino == 0 {
			t.Errorf("IDInode(%s) = %d, %v", m.QueueID, ino, err)
		}
	}
}

func TestLongID(t *testing.T) {
	// Observed on Postfix 3.7 (shared doc §2, §3): deferred/A/4jXYNS51ffz5fnf.
	const real = "4jXYNS51ffz5fnf"
	id, err := ParseID(real)
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != LongID || id.Sec != 1795362424 || id.Usec != 707546 || id.Inode != 753814 {
		t.Errorf("ParseID(%s) = %+v", real, id)
	}
	if got := HashDir(real, 1); got != "A/" {
		t.Errorf("HashDir = %q, want A/", got)
	}
	if got := HashDir(real, 2); got != "A/C/" {
		t.Errorf("HashDir depth 2 = %q", got)
	}
	if NewLongID(1795362424, 707546, 753814) != real || id.String() != real {
		t.Errorf("NewLongID = %s", NewLongID(1795362424, 707546, 753814))
	}
	// The seconds part may contain 'z'; the separator is the last z at index >= 10.
	withZ := NewLongID(51, 3, 9) // "00000z" seconds
	if !strings.HasPrefix(withZ, "00000z") {
		t.Fatalf("NewLongID = %s", withZ)
	}
	if p, err := ParseID(withZ); err != nil || p.Sec != 51 || p.Usec != 3 || p.Inode != 9 {
		t.Errorf("ParseID(%s) = %+v %v", withZ, p, err)
	}
	for _, bad := range []string{"", "ABCDE", "abcdef", "0123G5", "4jXYNS51ffz", "4jXYNS51ffzz", "4jXYNa51ffz5fnf", "FFFFF1", "061A9B8088.123", "A#FIX"} {
		if _, err := ParseID(bad); !errors.Is(err, errBadID) {
			t.Errorf("ParseID(%q) = %v", bad, err)
		}
	}
}

func TestValidNameAndHashDir(t *testing.T) {
	for name, want := range map[string]bool{
		"061A9B8088": true, "4jXYNS51ffz5fnf": true, "example_com": true,
		"": false, "12345.678": false, "061A9B8088#FIX": false, "a/b": false,
		strings.Repeat("A", 255): true, strings.Repeat("A", 256): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
	if got := HashDir("061A9B8088", 1); got != "0/" {
		t.Errorf("%q", got)
	}
	if got := HashDir("061A9B8088", 3); got != "0/6/1/" {
		t.Errorf("%q", got)
	}
	if got := HashDir("AB", 3); got != "A/B/_/" { // dir_forest pads with '_'
		t.Errorf("%q", got)
	}
	if got := HashDir("061A9B8088", 0); got != "" {
		t.Errorf("%q", got)
	}
}

// BenchmarkRead reads the envelope (and logs) of every fixture message
// through Spool.Read: one open, one pread of the first few KB, a jump over
// the content.
func BenchmarkRead(b *testing.B) {
	s, err := Open(fixtureRoot(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var refs []queue.Ref
	s.Walk(context.Background(), func(r queue.Ref) error { refs = append(refs, r); return nil })
	if len(refs) == 0 {
		b.Fatal("no messages")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range refs {
			m, err := s.Read(r)
			if err != nil || m.Err != nil {
				b.Fatal(err, m.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(refs)), "ns/msg")
}
