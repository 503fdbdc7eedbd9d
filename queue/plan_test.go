package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
	"time"
)

// TestStepString: a step of a plan on one base (repair, rebuild) and a
// step of a two-tree plan (quarantine, restore) print as they did when
// rebuild and quarantine each had their own Step.
func TestStepString(t *testing.T) {
	mt := time.Date(2026, 11, 22, 16, 13, 13, 0, time.UTC)
	for _, tc := range []struct {
		s    Step
		want string
	}{
		{Step{Op: "rename", Path: "q/mess/3/70", Dest: "q/mess/1/68", Kind: "id-not-inode", ID: "70", Why: "name it after its inode"},
			"rename  q/mess/3/70 -> q/mess/1/68   # id-not-inode #70: name it after its inode"},
		{Step{Op: "mkdir", Path: "q/lost+found", Perm: 0o700, UID: -1, GID: 7, Why: "lost+found"},
			"mkdir   q/lost+found 0700 -:7   # lost+found"},
		{Step{Op: "create", Path: "q/lock/sendmutex", Perm: 0o600, UID: 1, GID: 2}, "create  q/lock/sendmutex 0600 1:2 (0 bytes)"},
		{Step{Op: "chtimes", Path: "q/info/1/68", Mtime: mt}, "chtimes q/info/1/68 mtime 2026-11-22T16:13:13Z"},
		{Step{Op: "unlink", Path: "q/mess/3/70", Dest: "q/mess/1/68"}, "unlink  q/mess/3/70 (a second name of q/mess/1/68)"},
		{Step{Op: "carry", Path: "old/mess/1/5", Dest: "new"}, "carry   old/mess/1/5 -> new"},
		{Step{Op: "move", Root: InQueue, Path: "deferred/A/ABC", DestRoot: InDir, Dest: "k/ABC", Inode: 9}, "move queue:deferred/A/ABC -> dir:k/ABC"},
		{Step{Op: "chmod", Root: InDir, Path: "k/ABC", Perm: 0o700 | fs.ModeSetuid}, "chmod 4700 dir:k/ABC"},
		{Step{Op: "chown", Root: InDir, Path: "k/ABC", UID: 89, GID: 89}, "chown 89:89 dir:k/ABC"},
		{Step{Op: "chtimes", Root: InQueue, Path: "maildrop/ABC", Mtime: mt}, "chtimes queue:maildrop/ABC atime=unchanged mtime=2026-11-22T16:13:13Z"},
		{Step{Op: "record", Payload: "k quarantined (postfix ABC)"}, "record k quarantined (postfix ABC)"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc.s, got, tc.want)
		}
	}
}

// calls records the Mutator calls a step makes.
type calls []string

func (c *calls) add(f string, a ...any) error { *c = append(*c, fmt.Sprintf(f, a...)); return nil }
func (c *calls) Rename(from, to string) error { return c.add("rename %s %s", from, to) }
func (c *calls) Remove(p string) error        { return c.add("remove %s", p) }
func (c *calls) Link(from, to string) error   { return c.add("link %s %s", from, to) }
func (c *calls) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	*c = append(*c, fmt.Sprintf("mkdir %s %o %d %d", p, perm, uid, gid))
	return fs.ErrExist
}
func (c *calls) Mkfifo(p string, perm fs.FileMode, uid, gid int) error {
	return c.add("mkfifo %s %o", p, perm)
}
func (c *calls) Create(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	return c.add("create %s %q", p, data)
}
func (c *calls) Chmod(p string, perm fs.FileMode) error { return c.add("chmod %s %o", p, perm) }
func (c *calls) Chown(p string, uid, gid int) error     { return c.add("chown %s %d %d", p, uid, gid) }
func (c *calls) Chtimes(p string, a, m time.Time) error { return c.add("chtimes %s", p) }

// TestStepApply: the Mutator-call steps go to the Mutator (an existing
// directory is fine only when the step says so); any other step is left
// to the plan's package.
func TestStepApply(t *testing.T) {
	var c calls
	for _, s := range []Step{{Op: "rename", Path: "a", Dest: "b"}, {Op: "create", Path: "f", Data: []byte("x")}, {Op: "mkdir", Path: "d", Perm: 0o700, Exist: true}} {
		if handled, err := s.Apply(&c); !handled || err != nil {
			t.Errorf("%s: handled %v, %v", s.Op, handled, err)
		}
	}
	if _, err := (Step{Op: "mkdir", Path: "d"}).Apply(&c); !errors.Is(err, fs.ErrExist) {
		t.Errorf("mkdir of an existing directory without Exist: %v", err)
	}
	for _, op := range []string{"move", "record", "unlink", "rmdir", "carry"} {
		if handled, _ := (Step{Op: op, Path: "x"}).Apply(&c); handled {
			t.Errorf("%s handled by Apply", op)
		}
	}
	want := `[rename a b create f "x" mkdir d 700 0 0 mkdir d 0 0 0]`
	if got := fmt.Sprint(c); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

// TestStepError: a numbered step (rebuild) and a message's step
// (quarantine) name themselves as before; the cause stays testable.
func TestStepError(t *testing.T) {
	cause := errors.New("boom")
	e1 := &StepError{Format: "rebuild", N: 2, Total: 5, Step: Step{Op: "rename", Path: "q/a"}, Err: cause}
	e2 := &StepError{Format: "quarantine", ID: "ABC", Key: "k", Step: Step{Op: "move", Root: InQueue, Path: "p", DestRoot: InDir, Dest: "d"}, Err: cause}
	for e, want := range map[*StepError]string{
		e1: "rebuild: step 2 of 5 (rename q/a): boom",
		e2: "quarantine: ABC (k): move queue:p -> dir:d: boom",
	} {
		if e.Error() != want || !errors.Is(e, cause) {
			t.Errorf("%q (is cause: %v), want %q", e.Error(), errors.Is(e, cause), want)
		}
	}
}
