package main

// Regression tests for issue 16 (hostile queues and failing disks), one per
// finding, each named after what it reproduces and driven through the
// binary on a copy of a real fixture. Every run has a timeout: a command
// that blocks (a FIFO) fails its test quickly instead of hanging the suite.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/journal"
)

// qsT runs the binary like qs, but kills it after timeout and fails the
// test saying it hung. It also returns the peak RSS in KiB.
func qsT(t testing.TB, timeout time.Duration, args ...string) (result, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qsBin, args...)
	cmd.Stdin = strings.NewReader("")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("qsurgeon %s hung: killed after %s\nstderr: %s", strings.Join(args, " "), timeout, clipStderr(se.String()))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running qsurgeon %v: %v", args, err)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return result{so.String(), se.String(), code}, rss
}

const hangTimeout = 20 * time.Second

func postfixCopy(t *testing.T) string {
	t.Helper()
	return filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
}

func qmailCopy(t *testing.T) string {
	t.Helper()
	return filepath.Join(extract(t, filepath.Join(qmailFixture, "queue.tar.gz")), "queue")
}

// filesUnder lists the regular files below dir by base name.
func filesUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			out[fi.Name()] = p
		}
		return nil
	})
	return out
}

// deferredWithLog returns n IDs of deferred messages that have a defer log.
func deferredWithLog(t *testing.T, root string, n int) []string {
	t.Helper()
	logs := filesUnder(t, filepath.Join(root, "defer"))
	var ids []string
	for id := range filesUnder(t, filepath.Join(root, "deferred")) {
		if logs[id] != "" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) < n {
		t.Fatalf("fixture has %d deferred messages with a defer log, need %d", len(ids), n)
	}
	return ids[:n]
}

// mountTmpfs mounts a tmpfs of size bytes on a new directory (as root, which
// the suite runs as) and unmounts it at the end.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Fatalf("mount tmpfs (the test needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillUp writes a file into dir until fewer than leave bytes are free.
func fillUp(t *testing.T, dir string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, free-leave), 0o600); err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
}

// 1. A FIFO where a defer log, a bounce log, a message or pid/master.pid
// belongs blocked open(2) forever.
func TestFIFOInQueueDoesNotHang(t *testing.T) {
	root := postfixCopy(t)
	ids := deferredWithLog(t, root, 2)
	logs := filesUnder(t, filepath.Join(root, "defer"))
	mkfifo := func(p string) {
		t.Helper()
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(logs[ids[0]])                                  // defer/X/ID
	mkfifo(filepath.Join(root, "bounce", ids[1]))         // bounce/ID
	mkfifo(filepath.Join(root, "hold", "FFFFFABCDE"))     // a "message"
	mkfifo(filepath.Join(root, "incoming", "FFFFFABCDF")) // a "message"
	mkfifo(filepath.Join(root, "pid", "master.pid"))      // master's pid file
	outDir := t.TempDir()
	for _, args := range [][]string{
		{"summary"},
		{"list", "--format", "json"},
		{"list", "--bouncing"},
		{"list", "--reason", "refused"},
		{"show", ids[0]},
		{"show", ids[1]},
		{"show", "FFFFFABCDE"},
		{"export", "--id", ids[0], "--id", ids[1], outDir},
		{"check"},
		{"delete", "--id", ids[0], "--yes", "--journal", "none"},
		{"requeue", "--id", ids[1], "--yes", "--journal", "none"},
	} {
		r, _ := qsT(t, hangTimeout, append([]string{"--queue", root}, args...)...)
		if r.code == exitError && !strings.Contains(r.stderr, "master.pid") && args[0] != "show" {
			t.Errorf("%v: exit %d: %s", args, r.code, clipStderr(r.stderr))
		}
		if args[0] == "list" && !strings.Contains(r.stderr, "not a regular file") {
			t.Errorf("%v: the FIFOs are not reported: %s", args, clipStderr(r.stderr))
		}
		if args[0] == "delete" || args[0] == "requeue" {
			// A pid file that is not a regular file: whether master
			// runs is unknown, so nothing is touched.
			if r.code == 0 || !strings.Contains(r.stderr, "master.pid") {
				t.Errorf("%v with a FIFO as pid/master.pid: exit %d: %s", args, r.code, clipStderr(r.stderr))
			}
			if _, err := os.Stat(filesUnder(t, filepath.Join(root, "deferred"))[ids[0]]); err != nil {
				t.Errorf("%v changed the queue although master's state is unknown: %v", args, err)
			}
		}
	}
}

// 2. An empty one-character directory in hold/ (which the postfix user can
// make) made hold write to hold/X/ID, where Postfix never looks.
func TestEmptyHoldSubdirDoesNotHideHeldMail(t *testing.T) {
	root := postfixCopy(t)
	if err := os.Mkdir(filepath.Join(root, "hold", "0"), 0o700); err != nil {
		t.Fatal(err)
	}
	// And a stray second level in every deferred hash directory.
	ents, _ := os.ReadDir(filepath.Join(root, "deferred"))
	for _, e := range ents {
		os.Mkdir(filepath.Join(root, "deferred", e.Name(), "0"), 0o700)
	}
	id := deferredWithLog(t, root, 1)[0]
	r, _ := qsT(t, hangTimeout, "--queue", root, "hold", "--id", id, "--yes", "--journal", "none")
	if r.code != 0 {
		t.Fatalf("hold: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "hold", id)); err != nil {
		t.Fatalf("held message is not at hold/%s (Postfix hashes hold only when hash_queue_names says so): %v; found at %s",
			id, err, filesUnder(t, filepath.Join(root, "hold"))[id])
	}
	// Postfix's own lookup by ID (mail_queue_open through postcat -q)
	// finds it.
	postcatFinds(t, root, id)
	// release with deferred/X/0 everywhere: back to deferred/<first char>/ID.
	r, _ = qsT(t, hangTimeout, "--queue", root, "release", "--id", id, "--yes", "--journal", "none")
	if r.code != 0 {
		t.Fatalf("release: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "deferred", id[:1], id)); err != nil {
		t.Fatalf("released message is not at deferred/%s/%s: %v; found at %s", id[:1], id, err, filesUnder(t, filepath.Join(root, "deferred"))[id])
	}
	postcatFinds(t, root, id)
	// check flags a held message where Postfix does not look.
	if err := os.Rename(filepath.Join(root, "deferred", id[:1], id), filepath.Join(root, "hold", "0", id)); err != nil {
		t.Fatal(err)
	}
	r, _ = qsT(t, hangTimeout, "--queue", root, "check")
	if !strings.Contains(r.stdout, "hold/0/"+id) {
		t.Errorf("check does not flag hold/0/%s:\n%s", id, r.stdout)
	}
}

// postcatFinds runs the real postcat -q on the queue copy: it opens a message
// by ID the way showq and qmgr do (hash_queue_names, hash_queue_depth).
func postcatFinds(t *testing.T, root, id string) {
	t.Helper()
	if _, err := exec.LookPath("postcat"); err != nil {
		t.Fatalf("postcat is needed: %v", err)
	}
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "main.cf"), []byte("queue_directory = "+root+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("postcat", "-c", cfg, "-q", id).CombinedOutput()
	if err != nil {
		t.Fatalf("postcat -q %s (Postfix's own lookup) does not find it: %v: %s", id, err, out)
	}
}

// 3. With the journal on a full file system, 226 messages were deleted with
// exit 0, a cut journal and no end record.
func TestJournalOnFullDiskStopsAction(t *testing.T) {
	root := postfixCopy(t)
	jdir := mountTmpfs(t, 256<<10)
	fillUp(t, jdir, 24<<10)
	jpath := filepath.Join(jdir, "journal.jsonl")
	before := filesUnder(t, filepath.Join(root, "deferred"))
	r, _ := qsT(t, 2*time.Minute, "--queue", root, "delete", "--queue-name", "deferred", "--yes", "--journal", jpath)
	if r.code == 0 {
		t.Fatalf("delete with a journal that cannot be written exits 0: %s", r.stderr)
	}
	if !strings.Contains(r.stderr, "journal") {
		t.Errorf("the failure does not name the journal: %s", r.stderr)
	}
	data, err := os.ReadFile(jpath)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Errorf("the journal ends in a cut line: %q", data[max(0, len(data)-80):])
	}
	entries, err := journal.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("journal unreadable: %v", err)
	}
	journaled := map[string]bool{}
	for _, e := range entries {
		if e.Type == journal.TypeMessage && e.Result == "ok" {
			journaled[e.ID] = true
		}
	}
	after := filesUnder(t, filepath.Join(root, "deferred"))
	deleted := 0
	for id := range before {
		if _, ok := after[id]; ok {
			continue
		}
		deleted++
		if !journaled[id] && !strings.Contains(r.stderr, id) {
			t.Errorf("%s was deleted, is not in the journal and the error does not name it", id)
		}
	}
	if deleted == len(before) {
		t.Errorf("every message was deleted although the journal failed")
	}
	t.Logf("deleted %d of %d; journal %d bytes; %s", deleted, len(before), len(data), clipStderr(r.stderr))
}

// unsafeOut finds what a terminal would obey in s: C0 controls other than
// tab and newline, DEL, C1 controls, invalid UTF-8.
func unsafeOut(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return fmt.Sprintf("%U", r)
		}
	}
	return ""
}

// 4. Control characters from a queue reached the terminal: headers (any
// remote sender writes them on qmail), the SASL user, file names in
// warnings; printable() let C1 (U+009B, a one-byte CSI) through.
func TestControlCharsFromQueueAreEscaped(t *testing.T) {
	const evil = "\x1b]0;owned\x07\u009b6n\x7f\xff"
	t.Run("qmail", func(t *testing.T) {
		root := qmailCopy(t)
		id := firstFile(t, filepath.Join(root, "mess", "0"))
		p := filepath.Join(root, "mess", "0", id)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data = append([]byte("X-Evil"+evil+": v"+evil+"\nSubject: s"+evil+"\n"), data...)
		data = append(data, []byte("body "+evil+"\n")...)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "mess", "0", "9\x1b[2J"), []byte("x"), 0o644)
		for _, args := range [][]string{
			{"list", "--id", id},
			{"list"},
			{"list", "--id", id, "--format", "json"},
			{"show", id},
			{"show", "--body", id},
			{"show", "--format", "json", id},
			{"summary"},
		} {
			r, _ := qsT(t, hangTimeout, append([]string{"--queue", root}, args...)...)
			for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
				if bad := unsafeOut(out); bad != "" {
					t.Errorf("%v: %s holds %s: %q", args, name, bad, clipStderr(out))
				}
			}
			if args[0] == "show" && len(args) == 2 && !strings.Contains(r.stdout, `\x1b]0;owned\x07\u009b6n\x7f\xff`) {
				t.Errorf("%v: the escaped header is not shown: %s", args, r.stdout)
			}
		}
	})
	t.Run("postfix-sasl", func(t *testing.T) {
		root := postfixCopy(t)
		// Rewrite a SASL user in place, same length: the record stays
		// valid and the user becomes hostile.
		re := regexp.MustCompile(`sasl_username=([^\x00-\x1f]{8,})`)
		var id string
		for name, p := range filesUnder(t, filepath.Join(root, "deferred")) {
			data, _ := os.ReadFile(p)
			m := re.FindSubmatchIndex(data)
			if m == nil {
				continue
			}
			repl := []byte("\x1b[2J\xc2\x9b\x7f")
			copy(data[m[2]:], repl)
			if err := os.WriteFile(p, data, 0o700); err != nil {
				t.Fatal(err)
			}
			id = name
			break
		}
		if id == "" {
			t.Fatal("no deferred message of the fixture has a SASL user")
		}
		for _, args := range [][]string{
			{"list", "--id", id},
			{"show", id},
			{"list", "--format", "json", "--id", id},
			{"delete", "--id", id}, // the preview, then no terminal to confirm
		} {
			r, _ := qsT(t, hangTimeout, append([]string{"--queue", root}, args...)...)
			for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
				if bad := unsafeOut(out); bad != "" {
					t.Errorf("%v: %s holds %s: %q", args, name, bad, clipStderr(out))
				}
			}
			if args[0] == "delete" && !strings.Contains(r.stderr, `\x1b[2J\u009b\x7f`) {
				t.Errorf("the delete preview does not show the escaped SASL user: %s", r.stderr)
			}
		}
	})
}

// 5. requeue --into (copy mode) that failed part-way on ENOSPC re-injected
// the messages it had copied when run again.
func TestRequeueIntoRerunAfterENOSPCInjectsNoDuplicate(t *testing.T) {
	src := postfixCopy(t)
	live := mountTmpfs(t, 64<<20)
	if out, err := exec.Command("tar", "--numeric-owner", "-xpzf", filepath.Join(postfixFixture, "queue.tar.gz"), "-C", live).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	liveRoot := filepath.Join(live, "postfix-incident-a")
	for _, d := range []string{"maildrop", "incoming", "active", "deferred", "hold", "defer", "bounce"} {
		for _, p := range filesUnder(t, filepath.Join(liveRoot, d)) {
			os.Remove(p)
		}
	}
	// A live queue that takes about a third of the deferred messages.
	if err := syscall.Mount("tmpfs", live, "tmpfs", syscall.MS_REMOUNT, "size=400k"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	fillUp(t, live, 200<<10)
	want := filesUnder(t, filepath.Join(src, "deferred"))
	args := []string{"--queue", src, "requeue", "--queue-name", "deferred", "--into", liveRoot, "--yes", "--journal", "none"}
	r, _ := qsT(t, 2*time.Minute, args...)
	first := len(filesUnder(t, filepath.Join(liveRoot, "maildrop")))
	if r.code == 0 || first == 0 || first >= len(want) {
		t.Fatalf("the first run should fail part-way on a full disk: exit %d, %d of %d injected: %s", r.code, first, len(want), clipStderr(r.stderr))
	}
	os.Remove(filepath.Join(live, "filler"))
	if err := syscall.Mount("tmpfs", live, "tmpfs", syscall.MS_REMOUNT, "size=64m"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	r, _ = qsT(t, 2*time.Minute, args...)
	got := len(filesUnder(t, filepath.Join(liveRoot, "maildrop")))
	if got != len(want) {
		t.Errorf("after the re-run the live maildrop holds %d files for %d messages (first run: %d): %s", got, len(want), first, clipStderr(r.stderr))
	}
	if !strings.Contains(r.stderr, "already injected") {
		t.Errorf("the re-run does not say what it skipped: %s", clipStderr(r.stderr))
	}
}

// 6. A sparse 10 GB defer log made ReadLog allocate 64 MB; 270 of them took
// summary from 12 MB to 834 MB.
func TestSparseDeferLogsDoNotAmplifyMemory(t *testing.T) {
	root := postfixCopy(t)
	logs := filesUnder(t, filepath.Join(root, "defer"))
	ids := deferredWithLog(t, root, 100)
	for _, id := range ids {
		if err := os.Truncate(logs[id], 10<<30); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"summary"}, {"list", "--reason", "refused"}, {"list", "--format", "json"}} {
		r, rss := qsT(t, 2*time.Minute, append([]string{"--queue", root}, args...)...)
		if r.code != 0 && r.code != exitPartial {
			t.Errorf("%v: exit %d: %s", args, r.code, clipStderr(r.stderr))
		}
		t.Logf("%v: peak RSS %d MiB", args, rss>>10)
		if rss > 100<<10 {
			t.Errorf("%v with %d sparse 10 GB defer logs: peak RSS %d MiB, want at most 100", args, len(ids), rss>>10)
		}
	}
}

// 7. verify() checked the inode, then acted by name: a hard link of a file
// outside the queue was moved into maildrop by requeue and chmod'ed by
// expire.
func TestHardLinkedQueueFileIsNotActedOn(t *testing.T) {
	root := postfixCopy(t)
	outside := filepath.Join(filepath.Dir(root), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	ids := deferredWithLog(t, root, 2)
	files := filesUnder(t, filepath.Join(root, "deferred"))
	for i, id := range ids {
		// A file outside the queue, hard-linked in under a queue name.
		o := filepath.Join(outside, fmt.Sprintf("secret%d", i))
		if err := os.Rename(files[id], o); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(o, files[id]); err != nil {
			t.Fatal(err)
		}
	}
	fi0, _ := os.Stat(filepath.Join(outside, "secret0"))
	r, _ := qsT(t, hangTimeout, "--queue", root, "expire", "--id", ids[0], "--yes", "--journal", "none")
	if fi, _ := os.Stat(filepath.Join(outside, "secret0")); fi.Mode() != fi0.Mode() {
		t.Errorf("expire changed the mode of a file outside the queue: %v -> %v (%s)", fi0.Mode(), fi.Mode(), r.stderr)
	}
	if r.code != exitPartial || !strings.Contains(r.stderr, "hard link") {
		t.Errorf("expire of a hard-linked file: exit %d: %s", r.code, r.stderr)
	}
	r, _ = qsT(t, hangTimeout, "--queue", root, "requeue", "--id", ids[1], "--yes", "--journal", "none")
	if _, ok := filesUnder(t, filepath.Join(root, "maildrop"))[ids[1]]; ok {
		t.Errorf("requeue moved a hard link of an outside file into maildrop (%s)", r.stderr)
	}
	if r.code != exitPartial || !strings.Contains(r.stderr, "hard link") {
		t.Errorf("requeue of a hard-linked file: exit %d: %s", r.code, r.stderr)
	}
}

// 8. A manifest line cut by a full disk was joined by the next append, so
// that entry was lost and every later read warned.
func TestQuarantineManifestCutLineIsNotJoined(t *testing.T) {
	root := postfixCopy(t)
	qdir := filepath.Join(filepath.Dir(root), "quarantine")
	ids := deferredWithLog(t, root, 2)
	r, _ := qsT(t, hangTimeout, "--queue", root, "quarantine", qdir, "--id", ids[0], "--yes", "--journal", "none")
	if r.code != 0 {
		t.Fatalf("quarantine: exit %d: %s", r.code, r.stderr)
	}
	var manifest string
	filepath.Walk(qdir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && strings.Contains(fi.Name(), "manifest") {
			manifest = p
		}
		return nil
	})
	if manifest == "" {
		t.Fatalf("no manifest in %s", qdir)
	}
	f, err := os.OpenFile(manifest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"key":"cut-by-a-full-disk","id":"0123`) // no newline
	f.Close()
	r, _ = qsT(t, hangTimeout, "--queue", root, "quarantine", qdir, "--id", ids[1], "--yes", "--journal", "none")
	if r.code != 0 {
		t.Fatalf("second quarantine: exit %d: %s", r.code, r.stderr)
	}
	r, _ = qsT(t, hangTimeout, "--queue", root, "restore", qdir, "--all", "--yes", "--journal", "none")
	if strings.Contains(r.stderr, "line") || strings.Contains(r.stderr, "warning") {
		t.Errorf("restore warns about the manifest after the cut line: %s", r.stderr)
	}
	for _, id := range ids {
		if _, ok := filesUnder(t, filepath.Join(root, "deferred"))[id]; !ok {
			t.Errorf("%s was not restored (its manifest line was joined to a cut one?): exit %d: %s", id, r.code, r.stderr)
		}
	}
}

// 9. A killed qmail delete left a mess file without envelope; the re-run
// exited 3 ("younger than 36 hours") unless --detached.
func TestQmailDeleteRerunFinishesKilledRun(t *testing.T) {
	for _, journaled := range []bool{true, false} {
		t.Run(fmt.Sprintf("journaled=%v", journaled), func(t *testing.T) {
			root := qmailCopy(t)
			id := firstFile(t, filepath.Join(root, "mess", "0"))
			// What a delete killed just before its last unlink leaves
			// (qmailq's deleteOrder removes mess last): the mess alone,
			// recently written.
			for _, part := range []string{"info", "local", "remote", "todo", "intd", "bounce"} {
				for name, p := range filesUnder(t, filepath.Join(root, part)) {
					if name == id {
						os.Remove(p)
					}
				}
			}
			recent := clock.Now().Add(-time.Hour)
			if err := os.Chtimes(filepath.Join(root, "mess", "0", id), recent, recent); err != nil {
				t.Fatal(err)
			}
			jpath := filepath.Join(t.TempDir(), "journal.jsonl")
			if journaled {
				j, err := journal.Open(jpath)
				if err != nil {
					t.Fatal(err)
				}
				run, err := j.Begin([]string{"qsurgeon", "--queue", root, "delete", "--id", id, "--yes"}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := run.Starting("delete", []string{id}, []string{"mess"}); err != nil {
					t.Fatal(err)
				}
				j.Close() // killed: no outcome, no end record
			}
			r, _ := qsT(t, hangTimeout, "--queue", root, "delete", "--id", id, "--yes", "--journal", jpath)
			_, err := os.Stat(filepath.Join(root, "mess", "0", id))
			if journaled && (r.code != 0 || err == nil) {
				t.Errorf("re-run of a killed delete: exit %d, mess still there: %v: %s", r.code, err == nil, r.stderr)
			}
			if !journaled && (r.code != exitPartial || err != nil) {
				t.Errorf("a young mess-only message qsurgeon never touched must be left alone: exit %d, removed: %v", r.code, err != nil)
			}
		})
	}
}

// 10a. apply with a plan line over 4 MB said "bufio.Scanner: token too long"
// without file or line.
func TestApplyOverlongPlanLineNamesFileAndLine(t *testing.T) {
	root := postfixCopy(t)
	plan := filepath.Join(t.TempDir(), "big.plan")
	line := `{"queue_id":"` + strings.Repeat("A", 5<<20) + `"}` + "\n"
	if err := os.WriteFile(plan, []byte("\n"+line), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := qsT(t, hangTimeout, "--queue", root, "apply", plan, "delete", "--yes", "--journal", "none")
	if r.code == 0 || !strings.Contains(r.stderr, plan) || !strings.Contains(r.stderr, "line 2") {
		t.Errorf("apply of an over-long plan line: exit %d: %s", r.code, r.stderr)
	}
}

// 10b. export on ENOSPC left a 0-byte .eml or a cut mbox.
func TestExportOnFullDiskLeavesNoPartialFile(t *testing.T) {
	root := postfixCopy(t)
	dir := mountTmpfs(t, 128<<10)
	fillUp(t, dir, 40<<10)
	out := filepath.Join(dir, "eml")
	os.Mkdir(out, 0o700)
	r, _ := qsT(t, time.Minute, "--queue", root, "export", "--queue-name", "deferred", out)
	if r.code == 0 {
		t.Fatalf("export to a full disk exits 0: %s", r.stderr)
	}
	ents, _ := os.ReadDir(out)
	full := t.TempDir()
	qsT(t, time.Minute, "--queue", root, "export", "--queue-name", "deferred", full)
	for _, e := range ents {
		got, _ := os.ReadFile(filepath.Join(out, e.Name()))
		want, err := os.ReadFile(filepath.Join(full, e.Name()))
		if strings.HasPrefix(e.Name(), ".") || err != nil || !bytes.Equal(got, want) {
			t.Errorf("export left %s (%d bytes) on a full disk, not a complete file", e.Name(), len(got))
		}
	}
	mbox := filepath.Join(dir, "all.mbox")
	r, _ = qsT(t, time.Minute, "--queue", root, "export", "--queue-name", "deferred", "--mbox", mbox)
	if r.code == 0 {
		t.Fatalf("mbox export to a full disk exits 0: %s", r.stderr)
	}
	for _, p := range []string{mbox, mbox + ".jsonl"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() != 0 {
			t.Errorf("a failed mbox export left %s with %d bytes", p, fi.Size())
		}
	}
}

// TestAllAttacksAtOnce plants every attack of issue 16 in one Postfix queue
// and one qmail queue (FIFOs where messages, logs, envelope parts and the
// pid file belong; stray hash directories; control characters in headers,
// a SASL user and a file name; sparse 10 GB logs and envelope files; hard
// links of outside files; symbolic links) and runs every read-only command
// on them under a timeout, with peak RSS bounded and nothing a terminal
// obeys in the output. make test-hostile runs it alone.
func TestAllAttacksAtOnce(t *testing.T) {
	const maxRSS = 150 << 10 // KiB
	run := func(t *testing.T, root string, cmds [][]string) {
		for _, args := range cmds {
			r, rss := qsT(t, 60*time.Second, append([]string{"--queue", root}, args...)...)
			t.Logf("%v: exit %d, peak RSS %d MiB", args, r.code, rss>>10)
			if r.code != 0 && r.code != exitPartial && args[0] != "show" && args[0] != "check" {
				t.Errorf("%v: exit %d: %s", args, r.code, clipStderr(r.stderr))
			}
			if rss > maxRSS {
				t.Errorf("%v: peak RSS %d MiB, want at most %d", args, rss>>10, maxRSS>>10)
			}
			for name, out := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
				if args[len(args)-1] == "csv" {
					continue // machine output: the fields as they are
				}
				if bad := unsafeOut(out); bad != "" {
					t.Errorf("%v: %s holds %s", args, name, bad)
				}
			}
		}
	}
	t.Run("postfix", func(t *testing.T) {
		root := postfixCopy(t)
		outside := filepath.Join(filepath.Dir(root), "outside")
		os.Mkdir(outside, 0o755)
		ids := deferredWithLog(t, root, 60)
		logs := filesUnder(t, filepath.Join(root, "defer"))
		msgs := filesUnder(t, filepath.Join(root, "deferred"))
		for _, p := range []string{logs[ids[0]], filepath.Join(root, "bounce", ids[1]), filepath.Join(root, "hold", "FFFFFABCDE"), filepath.Join(root, "pid", "master.pid")} {
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		os.Mkdir(filepath.Join(root, "hold", "0"), 0o700)
		os.Mkdir(filepath.Join(root, "deferred", "0", "0"), 0o700)
		os.WriteFile(filepath.Join(root, "deferred", "0", "\x1b[2J\u009b"), []byte("x"), 0o700)
		os.Symlink("/etc/passwd", filepath.Join(root, "deferred", "0", "FFFFFABCDF"))
		for _, id := range ids[2:42] {
			if err := os.Truncate(logs[id], 10<<30); err != nil {
				t.Fatal(err)
			}
		}
		o := filepath.Join(outside, "secret")
		os.Rename(msgs[ids[42]], o)
		os.Link(o, msgs[ids[42]])
		re := regexp.MustCompile(`sasl_username=([^\x00-\x1f]{8,})`)
		for _, id := range ids[43:] {
			data, _ := os.ReadFile(msgs[id])
			if m := re.FindSubmatchIndex(data); m != nil {
				copy(data[m[2]:], "\x1b[2J\xc2\x9b\x7f")
				os.WriteFile(msgs[id], data, 0o700)
				break
			}
		}
		export := t.TempDir()
		run(t, root, [][]string{
			{"summary"}, {"summary", "--format", "json"},
			{"list"}, {"list", "--format", "json"}, {"list", "--format", "csv"}, {"list", "--format", "ids"},
			{"list", "--bouncing"}, {"list", "--reason", "refused", "--explain"}, {"list", "--subject", "x"},
			{"show", ids[0]}, {"show", ids[1]}, {"show", "--body", ids[43]}, {"show", "--format", "json", ids[2]},
			{"show", "FFFFFABCDE"},
			{"export", "--queue-name", "deferred", export},
			{"check"},
		})
	})
	t.Run("qmail", func(t *testing.T) {
		root := qmailCopy(t)
		var ids []string
		for name := range filesUnder(t, filepath.Join(root, "info")) {
			ids = append(ids, name)
		}
		sort.Strings(ids)
		find := func(part, id string) string { return filesUnder(t, filepath.Join(root, part))[id] }
		for _, p := range []string{find("info", ids[0]), find("remote", ids[1]), find("mess", ids[2])} {
			if p == "" {
				continue
			}
			os.Remove(p)
			syscall.Mkfifo(p, 0o600)
		}
		for _, p := range []string{find("info", ids[3]), find("remote", ids[4]), find("mess", ids[5])} {
			if p != "" {
				os.Truncate(p, 10<<30)
			}
		}
		if p := find("mess", ids[6]); p != "" {
			data, _ := os.ReadFile(p)
			os.WriteFile(p, append([]byte("Subject: \x1b]0;x\x07\u009b\x7f\xff\n"), data...), 0o644)
		}
		os.WriteFile(filepath.Join(root, "mess", "0", "9\x1b[2J"), []byte("x"), 0o644)
		export := t.TempDir()
		run(t, root, [][]string{
			{"summary"}, {"list"}, {"list", "--format", "json"}, {"list", "--format", "csv"},
			{"list", "--bouncing"}, {"list", "--subject", "x"},
			{"show", ids[0]}, {"show", ids[2]}, {"show", "--body", ids[6]}, {"show", ids[5]},
			{"export", export},
			{"check"},
		})
	})
}
