package testkit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRepo(t *testing.T) {
	root := Repo(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "module github.com/qsurgeon/qsurgeon\n") {
		t.Fatalf("%s/go.mod is not qsurgeon's", root)
	}
	// The answer does not depend on the working directory.
	t.Chdir(t.TempDir())
	if got := Repo(t); got != root {
		t.Errorf("Repo from elsewhere = %q, want %q", got, root)
	}
}

// fakeTB records a fatal failure instead of failing the real test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Fatal(args ...any) {
	f.failed = true
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeTB on its own goroutine (Fatal ends it) and
// returns the fake.
func run(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	var wg sync.WaitGroup
	wg.Go(func() { fn(f) })
	wg.Wait()
	return f
}

func TestFixture(t *testing.T) {
	p := Fixture(t, "qmail-incident", "queue.tar.gz")
	if p != filepath.Join(Repo(t), "testdata", "queues", "qmail-incident", "queue.tar.gz") {
		t.Errorf("Fixture = %q", p)
	}
	f := run(t, func(tb testing.TB) { Fixture(tb, "qmail-incident", "no-such.tar.gz") })
	if !f.failed || !strings.Contains(f.msg, "no-such.tar.gz") {
		t.Errorf("a missing fixture: failed %v, message %q", f.failed, f.msg)
	}
}

func TestExtractQmail(t *testing.T) {
	users, groups := QmailOwners(t)
	dir := Extract(t, Fixture(t, "qmail-incident", "queue.tar.gz"))
	root := filepath.Join(dir, QmailRoot)
	// Owners by number and modes as archived (queue/ is qmailq:qmail
	// 0750, lock/trigger a FIFO).
	var st syscall.Stat_t
	if err := syscall.Lstat(root, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != users["qmailq"] || int(st.Gid) != groups["qmail"] || st.Mode&0o7777 != 0o750 {
		t.Errorf("queue/: owner %d:%d mode %04o, want %d:%d 0750", st.Uid, st.Gid, st.Mode&0o7777, users["qmailq"], groups["qmail"])
	}
	fi, err := os.Lstat(filepath.Join(root, "lock", "trigger"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("lock/trigger is %v, want a FIFO", fi.Mode())
	}
}

func TestExtractPostfix(t *testing.T) {
	dir := FastTempDir(t)
	if got := ExtractInto(t, Fixture(t, "postfix-incident", "queue.tar.gz"), dir); got != dir {
		t.Fatalf("ExtractInto returned %q, want %q", got, dir)
	}
	fi, err := os.Lstat(filepath.Join(dir, PostfixRoot, "maildrop"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		t.Errorf("maildrop is %v", fi.Mode())
	}
}

func TestUntarError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.tar.gz")
	err := Untar(missing, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Untar of a missing tarball: %v", err)
	}
	f := run(t, func(tb testing.TB) { Extract(tb, missing) })
	if !f.failed {
		t.Error("Extract of a missing tarball did not fail the test")
	}
}

func TestFastTempDir(t *testing.T) {
	var dir string
	t.Run("use", func(t *testing.T) {
		dir = FastTempDir(t)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("%s is not empty", dir)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind after the test: %v", dir, err)
	}
}

func TestQmailOwners(t *testing.T) {
	users, groups := QmailOwners(t)
	for _, u := range []string{"alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"} {
		if _, ok := users[u]; !ok {
			t.Errorf("no uid for %s in %v", u, users)
		}
	}
	for _, g := range []string{"qmail", "nofiles"} {
		if _, ok := groups[g]; !ok {
			t.Errorf("no gid for %s in %v", g, groups)
		}
	}
}

// TestChownTree: the owners the Postfix fixture was made with are mapped,
// every other owner and every mode (set-id bits too) is kept, and no
// symbolic link is followed.
func TestChownTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change owners")
	}
	root := filepath.Join(Extract(t, Fixture(t, "postfix-incident", "queue.tar.gz")), PostfixRoot)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(outside, PostfixFixtureUID, PostfixFixtureGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "active", "link")); err != nil {
		t.Fatal(err)
	}
	setgid := filepath.Join(root, "public", "setgid")
	if err := os.WriteFile(setgid, nil, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(setgid, PostfixFixtureUID, PostdropFixtureGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(setgid, 0o2755); err != nil {
		t.Fatal(err)
	}
	before := Snapshot(t, root)
	if err := chownTree(root, map[uint32]int{PostfixFixtureUID: 4242}, map[uint32]int{PostfixFixtureGID: 4243, PostdropFixtureGID: 4244}); err != nil {
		t.Fatal(err)
	}
	after := Snapshot(t, root)
	mapped := 0
	for p, b := range before {
		a := after[p]
		wantUID, wantGID := b.UID, b.GID
		switch b.UID {
		case PostfixFixtureUID:
			wantUID = 4242
		}
		switch b.GID {
		case PostfixFixtureGID:
			wantGID = 4243
		case PostdropFixtureGID:
			wantGID = 4244
		}
		if a.UID != wantUID || a.GID != wantGID || a.Mode != b.Mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", p, a.UID, a.GID, a.Mode, wantUID, wantGID, b.Mode)
		}
		if wantUID != b.UID {
			mapped++
		}
	}
	if mapped < 100 {
		t.Errorf("only %d entries mapped", mapped)
	}
	var st unix.Stat_t
	if err := unix.Stat(outside, &st); err != nil || st.Uid != PostfixFixtureUID {
		t.Errorf("the link's target outside the tree changed owner: %d, %v", st.Uid, err)
	}
}
