package qmailq

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

const fixtureDir = "../testdata/queues/qmail-incident"

// extract unpacks a fixture tarball into a fresh temporary directory and
// returns the queue root.
func extract(t testing.TB, tarball string) string {
	t.Helper()
	return filepath.Join(testkit.Extract(t, filepath.Join(fixtureDir, tarball)), testkit.QmailRoot)
}

func TestDetectLayoutClean(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	if !IsQmailQueue(root) {
		t.Fatal("IsQmailQueue false on the fixture")
	}
	if IsQmailQueue(filepath.Dir(root)) {
		t.Fatal("IsQmailQueue true on the parent directory")
	}
	l, err := DetectLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Split != 23 || l.SplitGuessed {
		t.Errorf("split %d guessed %v, want 23", l.Split, l.SplitGuessed)
	}
	if l.BigTodo || l.TodoGuessed {
		t.Errorf("BigTodo %v guessed %v (%s), want flat from evidence", l.BigTodo, l.TodoGuessed, l.TodoEvidence)
	}
	if len(l.Notes) != 0 {
		t.Errorf("notes on the clean queue: %q", l.Notes)
	}
	if got := l.MessPath(10003311); got != "mess/13/10003311" {
		t.Errorf("MessPath = %q", got)
	}
	if got := l.TodoPath(10003311); got != "todo/10003311" {
		t.Errorf("TodoPath = %q", got)
	}
	if got := l.BouncePath(10003311); got != "bounce/10003311" {
		t.Errorf("BouncePath = %q", got)
	}
	if _, err := os.Lstat(l.Abs(l.InfoPath(10003311))); err != nil {
		t.Errorf("info path of a known message: %v", err)
	}
}

func TestDetectLayoutBroken(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	l, err := DetectLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Split != 23 {
		t.Errorf("split %d, want 23 despite the split-29 copy", l.Split)
	}
	if len(l.Notes) == 0 {
		t.Error("no notes on the broken queue (a subdirectory >= 23 exists)")
	}
	t.Logf("notes: %q", l.Notes)
}

func TestDetectLayoutBigTodoAndOddSplit(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"info", "local", "remote", "mess", "lock", "bounce"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// a non-prime split of 10, big-todo with one envelope in todo/3/
	for i := 0; i < 10; i++ {
		for _, d := range []string{"mess", "info", "local", "remote", "todo", "intd"} {
			os.MkdirAll(filepath.Join(root, d, itoa(i)), 0o755)
		}
	}
	os.WriteFile(filepath.Join(root, "todo/3/13"), []byte("u0\x00p1\x00F\x00Ta@b\x00"), 0o644)
	l, err := DetectLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Split != 10 || !l.BigTodo {
		t.Fatalf("split %d bigtodo %v (%s)", l.Split, l.BigTodo, l.TodoEvidence)
	}
	if got := l.TodoPath(13); got != "todo/3/13" {
		t.Errorf("TodoPath = %q", got)
	}
	// the same tree with todo/N but no files: flat, and guessed
	os.Remove(filepath.Join(root, "todo/3/13"))
	l, _ = DetectLayout(root)
	if l.BigTodo || !l.TodoGuessed {
		t.Errorf("empty todo/N: bigtodo %v guessed %v", l.BigTodo, l.TodoGuessed)
	}
	// empty tree: default split
	empty := t.TempDir()
	l, _ = DetectLayout(empty)
	if l.Split != DefaultSplit || !l.SplitGuessed {
		t.Errorf("empty: split %d guessed %v", l.Split, l.SplitGuessed)
	}
}

func itoa(i int) string { return filepath.Base(filepath.Join("x", string(rune('0'+i)))) }

func TestSendLock(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	locked, err := SendLocked(root)
	if err != nil || locked {
		t.Fatalf("SendLocked = %v, %v on an idle queue", locked, err)
	}
	unlock, err := LockSend(root)
	if err != nil {
		t.Fatal(err)
	}
	if locked, err := SendLocked(root); err != nil || !locked {
		t.Fatalf("SendLocked = %v, %v while held", locked, err)
	}
	if _, err := LockSend(root); !errors.Is(err, ErrSendRunning) {
		t.Fatalf("second LockSend: %v", err)
	}
	unlock()
	if locked, _ := SendLocked(root); locked {
		t.Fatal("still locked after unlock")
	}
	// another process holding the lock the way qmail-send does (flock)
	// (own process group: flock's child sleep inherits the locked fd)
	cmd := exec.Command("flock", "--exclusive", filepath.Join(root, "lock/sendmutex"), "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		locked, err := SendLocked(root)
		if err != nil {
			t.Fatal(err)
		}
		if locked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lock held by another process not seen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := LockSend(root); !errors.Is(err, ErrSendRunning) {
		t.Fatalf("LockSend while another process holds it: %v", err)
	}
	stop()
	// the grandchild (sleep) exits asynchronously after SIGKILL
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if locked, _ := SendLocked(root); !locked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still locked after the holder died")
		}
	}
	// a symbolic link in place of lock/ is never followed
	os.Rename(filepath.Join(root, "lock"), filepath.Join(root, "lock.real"))
	os.Symlink("lock.real", filepath.Join(root, "lock"))
	if _, err := SendLocked(root); err == nil {
		t.Fatal("SendLocked followed a symbolic link")
	}
}

// parseIDBytes, used on names listed in place, is ParseID.
func TestParseIDBytes(t *testing.T) {
	names := []string{"", "0", "00", "01", "1", "457", "18446744073709551615", "18446744073709551616",
		"99999999999999999999", "123456789012345678901", "12a", "-1", "+1", " 1", "1 ", "4294967296"}
	for _, n := range names {
		a, ok := ParseID(n)
		b, ok2 := parseIDBytes([]byte(n))
		if a != b || ok != ok2 {
			t.Errorf("%q: ParseID %d %v, parseIDBytes %d %v", n, a, ok, b, ok2)
		}
	}
}
