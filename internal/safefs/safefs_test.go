package safefs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// modes runs f once with openat2 and once with the component-by-component
// fallback, so both resolution paths face every hostile tree.
func modes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, fb := range []bool{false, true} {
		name := "openat2"
		if fb {
			name = "fallback"
		}
		t.Run(name, func(t *testing.T) {
			old := forceFallback
			forceFallback = fb
			defer func() { forceFallback = old }()
			f(t)
		})
	}
}

// treeHash hashes names, types, modes, owners, sizes, inodes, link counts,
// mtimes, ctimes and contents of everything under dir (without following
// links), so any change made through an escape shows.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d ino=%d nlink=%d mtime=%d.%d ctime=%d.%d",
			strings.TrimPrefix(p, dir), st.Mode, st.Uid, st.Gid, st.Size, st.Ino, st.Nlink,
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" sum=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(h, l)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

type hostile struct {
	base, root, outside string
	fs                  *FS
}

// newHostile builds base/outside (the tree that must never change) and
// base/root with symbolic links pointing out of the root, to a directory
// outside, to a directory inside, and a FIFO.
func newHostile(t *testing.T) *hostile {
	t.Helper()
	base := t.TempDir()
	h := &hostile{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(h.outside, "dir"), 0755))
	must(os.WriteFile(filepath.Join(h.outside, "secret"), []byte("secret\n"), 0600))
	must(os.WriteFile(filepath.Join(h.outside, "dir", "x"), []byte("x\n"), 0644))
	must(unix.Mkfifo(filepath.Join(h.outside, "fifo"), 0600))
	must(os.MkdirAll(filepath.Join(h.root, "a", "b"), 0700))
	must(os.WriteFile(filepath.Join(h.root, "a", "file"), []byte("file\n"), 0600))
	must(os.Symlink("../outside/secret", filepath.Join(h.root, "link_out")))
	must(os.Symlink(filepath.Join(h.outside, "secret"), filepath.Join(h.root, "abs_link")))
	must(os.Symlink("../outside", filepath.Join(h.root, "dirlink")))
	must(os.Symlink(h.outside, filepath.Join(h.root, "a", "absdirlink")))
	must(os.Symlink("a", filepath.Join(h.root, "dirlink_in")))
	must(os.Symlink("../outside/fifo", filepath.Join(h.root, "fifolink")))
	must(unix.Mkfifo(filepath.Join(h.root, "a", "fifo"), 0600))
	f, err := Open(h.root)
	must(err)
	t.Cleanup(func() { f.Close() })
	h.fs = f
	return h
}

// Paths whose resolution must be refused: ".." anywhere, absolute, unclean,
// or a symbolic link before the last component.
var refusedPaths = []string{
	"", ".", absOutside, "../outside/secret", "a/../../outside/secret", "a/../file",
	"a/./file", "a//file", "a/file/", "./a/file", "dirlink/secret", "dirlink/new", "dirlink/dir/x",
	"dirlink_in/file", "a/absdirlink/secret", "a/absdirlink/new", "dirlink/fifo", "a\x00b",
}

// absOutside stands for an absolute path to a file outside the root; the
// tests replace it with one inside their own temporary tree, never a real
// system file (a regression must not be able to clobber the machine).
const absOutside = "\x00ABS-OUTSIDE"

func (h *hostile) resolve(p string) string {
	if p == absOutside {
		return filepath.Join(h.outside, "secret")
	}
	return p
}

// Paths whose last component is a symbolic link: an op may act on the link
// itself but never on its target.
var finalLinks = []string{"link_out", "abs_link", "dirlink", "fifolink", "a/absdirlink"}

type opFunc struct {
	name string
	// mustRefuseFinalLink: acting on a final symlink must fail (the op
	// would otherwise open or create through it).
	mustRefuseFinalLink bool
	do                  func(f *FS, p string) error
}

func allOps() []opFunc {
	now := time.Unix(1700000000, 0)
	return []opFunc{
		{"rename-from", false, func(f *FS, p string) error { return f.Rename(p, "moved") }},
		{"rename-to", true, func(f *FS, p string) error { return f.Rename("a/file", p) }},
		{"remove", false, func(f *FS, p string) error { return f.Remove(p) }},
		{"link-from", false, func(f *FS, p string) error { return f.Link(p, "linked") }},
		{"link-to", true, func(f *FS, p string) error { return f.Link("a/file", p) }},
		{"mkdir", true, func(f *FS, p string) error { return f.Mkdir(p, 0700, -1, -1) }},
		{"mkfifo", true, func(f *FS, p string) error { return f.Mkfifo(p, 0600, -1, -1) }},
		{"create", true, func(f *FS, p string) error { return f.Create(p, []byte("evil"), 0644, -1, -1) }},
		{"chmod", true, func(f *FS, p string) error { return f.Chmod(p, 0777) }},
		{"chown", false, func(f *FS, p string) error { return f.Chown(p, 12345, 12345) }},
		{"chtimes", false, func(f *FS, p string) error { return f.Chtimes(p, now, now) }},
		{"open", true, func(f *FS, p string) error {
			r, err := f.Open(p)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{"readfile", true, func(f *FS, p string) error { _, err := f.ReadFile(p, 100); return err }},
		{"readdir", true, func(f *FS, p string) error { _, err := f.ReadDir(p); return err }},
		{"lstat", false, func(f *FS, p string) error { _, err := f.Lstat(p); return err }},
		{"move-out", false, func(f *FS, p string) error { return MoveBetween(f, p, f, "moved2") }},
		{"move-in", true, func(f *FS, p string) error { return MoveBetween(f, "a/file", f, p) }},
	}
}

func TestHostileTreeRefused(t *testing.T) {
	modes(t, func(t *testing.T) {
		for _, op := range allOps() {
			for _, p := range refusedPaths {
				if (op.name == "readdir" || op.name == "lstat") && p == "." {
					continue // the root itself is readable
				}
				h := newHostile(t)
				before := treeHash(t, h.outside)
				err := op.do(h.fs, h.resolve(p))
				if err == nil {
					t.Errorf("%s %q: accepted, want refusal", op.name, p)
				}
				if after := treeHash(t, h.outside); after != before {
					t.Errorf("%s %q: the tree outside the root changed", op.name, p)
				}
				var e *Error
				if err != nil && !errors.As(err, &e) {
					t.Errorf("%s %q: error %v is not a *safefs.Error", op.name, p, err)
				}
				if err != nil && !strings.Contains(err.Error(), h.root) {
					t.Errorf("%s %q: error %q does not name the root", op.name, p, err)
				}
			}
			for _, p := range finalLinks {
				h := newHostile(t)
				before := treeHash(t, h.outside)
				done := make(chan error, 1)
				go func() { done <- op.do(h.fs, p) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s %q: hung (opened a FIFO through a link?)", op.name, p)
				}
				if op.mustRefuseFinalLink && err == nil {
					t.Errorf("%s %q: accepted, want refusal", op.name, p)
				}
				if after := treeHash(t, h.outside); after != before {
					t.Errorf("%s %q: the tree outside the root changed (err=%v)", op.name, p, err)
				}
			}
		}
	})
}

func TestSymlinkErrorsAreTyped(t *testing.T) {
	modes(t, func(t *testing.T) {
		h := newHostile(t)
		for _, p := range []string{"dirlink/secret", "dirlink_in/file", "a/absdirlink/x"} {
			if err := h.fs.Remove(p); !errors.Is(err, ErrSymlink) {
				t.Errorf("remove %q: %v, want ErrSymlink", p, err)
			}
		}
		if err := h.fs.Chmod("link_out", 0600); !errors.Is(err, ErrSymlink) {
			t.Errorf("chmod link_out: %v, want ErrSymlink", err)
		}
		for _, p := range []string{"../x", "/x", "a/../b"} {
			if err := h.fs.Remove(p); !errors.Is(err, ErrBadPath) {
				t.Errorf("remove %q: %v, want ErrBadPath", p, err)
			}
		}
		if _, err := h.fs.Lstat("a/missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lstat missing: %v, want fs.ErrNotExist", err)
		}
	})
}

func TestRenameNoClobber(t *testing.T) {
	modes(t, func(t *testing.T) {
		h := newHostile(t)
		if err := h.fs.Create("a/other", []byte("other\n"), 0600, -1, -1); err != nil {
			t.Fatal(err)
		}
		before := treeHash(t, h.root)
		err := h.fs.Rename("a/file", "a/other")
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("rename onto an existing file: %v, want fs.ErrExist", err)
		}
		if err := h.fs.Link("a/file", "a/other"); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("link onto an existing file: %v, want fs.ErrExist", err)
		}
		if err := MoveBetween(h.fs, "a/file", h.fs, "a/other"); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("move onto an existing file: %v, want fs.ErrExist", err)
		}
		if after := treeHash(t, h.root); after != before {
			t.Fatal("a refused rename changed the tree")
		}
		// The move itself keeps the inode.
		fi1, _ := h.fs.Lstat("a/file")
		if err := h.fs.Rename("a/file", "a/b/file"); err != nil {
			t.Fatal(err)
		}
		fi2, err := h.fs.Lstat("a/b/file")
		if err != nil {
			t.Fatal(err)
		}
		if fi1.Sys().(*syscall.Stat_t).Ino != fi2.Sys().(*syscall.Stat_t).Ino {
			t.Fatal("rename changed the inode")
		}
		if _, err := h.fs.Lstat("a/file"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("old name still there: %v", err)
		}
	})
}

func TestFIFOChmodDoesNotHang(t *testing.T) {
	modes(t, func(t *testing.T) {
		h := newHostile(t)
		done := make(chan error, 1)
		go func() {
			if err := h.fs.Mkfifo("a/trigger", 0622, -1, -1); err != nil {
				done <- err
				return
			}
			if err := h.fs.Chmod("a/fifo", 0640); err != nil {
				done <- err
				return
			}
			done <- h.fs.Chown("a/fifo", 0, 0)
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("chmod of a FIFO hung")
		}
		for p, want := range map[string]fs.FileMode{"a/trigger": 0622, "a/fifo": 0640} {
			fi, err := os.Lstat(filepath.Join(h.root, p))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeNamedPipe || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want named pipe %o", p, fi.Mode(), want)
			}
		}
		if _, err := h.fs.Open("a/fifo"); !errors.Is(err, ErrNotRegular) {
			t.Errorf("open of a FIFO: %v, want ErrNotRegular", err)
		}
	})
}

func TestOperationsWork(t *testing.T) {
	modes(t, func(t *testing.T) {
		h := newHostile(t)
		f := h.fs
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(f.Mkdir("q", 0750, 1, 2))
		must(f.Create("q/msg", []byte("hello"), 0700|fs.ModeSetgid, 3, 4))
		must(f.Link("q/msg", "q/msg2"))
		must(f.Chmod("q/msg", 0770))
		must(f.Chown("q/msg", 5, -1))
		mt := time.Unix(1600000000, 123456789)
		must(f.Chtimes("q/msg", time.Time{}, mt))
		fi, err := f.Lstat("q/msg")
		must(err)
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != 0770 || st.Uid != 5 || st.Gid != 4 || st.Nlink != 2 || !fi.ModTime().Equal(mt) || fi.Size() != 5 {
			t.Errorf("q/msg: mode %v uid %d gid %d nlink %d mtime %v size %d", fi.Mode(), st.Uid, st.Gid, st.Nlink, fi.ModTime(), fi.Size())
		}
		fi, err = f.Lstat("q")
		must(err)
		st = fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != fs.ModeDir|0750 || st.Uid != 1 || st.Gid != 2 {
			t.Errorf("q: mode %v owner %d:%d", fi.Mode(), st.Uid, st.Gid)
		}
		b, err := f.ReadFile("q/msg2", 5)
		must(err)
		if string(b) != "hello" {
			t.Errorf("read %q", b)
		}
		if _, err := f.ReadFile("q/msg2", 4); err == nil {
			t.Error("ReadFile over the limit succeeded")
		}
		ents, err := f.ReadDir("q")
		must(err)
		if len(ents) != 2 || ents[0].Name() != "msg" || ents[1].Name() != "msg2" {
			t.Errorf("readdir: %v", ents)
		}
		if _, err := ents[0].Info(); err != nil {
			t.Error(err)
		}
		if err := f.Create("q/msg", nil, 0600, -1, -1); !errors.Is(err, fs.ErrExist) {
			t.Errorf("create over existing: %v", err)
		}
		must(f.Remove("q/msg"))
		must(f.Remove("q/msg2"))
		must(f.Remove("q"))
		must(f.Remove("link_out")) // the link, not its target
		if _, err := os.Stat(filepath.Join(h.outside, "secret")); err != nil {
			t.Fatal("removing a link removed its target")
		}
		must(f.Sync())
	})
}

// otherFilesystem returns a directory on a filesystem other than dir's.
func otherFilesystem(t *testing.T, dir string) string {
	var st1 unix.Stat_t
	if err := unix.Stat(dir, &st1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"/dev/shm", "/run", "/var/tmp", "/tmp"} {
		var st2 unix.Stat_t
		if unix.Stat(c, &st2) != nil || st2.Dev == st1.Dev {
			continue
		}
		d, err := os.MkdirTemp(c, "safefs-test")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	t.Fatal("no second filesystem (/dev/shm, /run, /var/tmp, /tmp) to test EXDEV")
	return ""
}

func TestMoveBetween(t *testing.T) {
	modes(t, func(t *testing.T) {
		h := newHostile(t)
		qdir := filepath.Join(h.base, "quarantine")
		if err := os.Mkdir(qdir, 0700); err != nil {
			t.Fatal(err)
		}
		q, err := Open(qdir)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		fi1, _ := h.fs.Lstat("a/file")
		if err := MoveBetween(h.fs, "a/file", q, "file"); err != nil {
			t.Fatal(err)
		}
		fi2, err := q.Lstat("file")
		if err != nil {
			t.Fatal(err)
		}
		if fi1.Sys().(*syscall.Stat_t).Ino != fi2.Sys().(*syscall.Stat_t).Ino {
			t.Fatal("move changed the inode")
		}
		if err := MoveBetween(q, "file", h.fs, "dirlink/file"); !errors.Is(err, ErrSymlink) {
			t.Fatalf("move through a link: %v", err)
		}

		other := otherFilesystem(t, h.base)
		o, err := Open(other)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		before := treeHash(t, qdir)
		err = MoveBetween(q, "file", o, "file")
		if !errors.Is(err, ErrCrossDevice) {
			t.Fatalf("cross-device move: %v, want ErrCrossDevice", err)
		}
		if !strings.Contains(err.Error(), qdir) || !strings.Contains(err.Error(), other) {
			t.Errorf("error %q does not name both roots", err)
		}
		if treeHash(t, qdir) != before {
			t.Fatal("a refused move changed the source")
		}
		if ents, _ := os.ReadDir(other); len(ents) != 0 {
			t.Fatal("a refused move wrote to the destination")
		}
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	h := newHostile(t)
	before := treeHash(t, h.base)
	d := NewDryRun(h.fs)
	now := time.Unix(1700000000, 0)
	calls := []func() error{
		func() error { return d.Rename("a/file", "a/b/file") },
		func() error { return d.Remove("a/file") },
		func() error { return d.Link("a/file", "a/b/l") },
		func() error { return d.Mkdir("n", 0700, 1, 1) },
		func() error { return d.Mkfifo("a/f2", 0622, 1, 1) },
		func() error { return d.Create("a/new", []byte("xyz"), 0600, 1, 1) },
		func() error { return d.Chmod("a/file", 0777) },
		func() error { return d.Chown("a/file", 1, 1) },
		func() error { return d.Chtimes("a/file", now, now) },
	}
	for i, c := range calls {
		if err := c(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := d.Remove("../outside/secret"); !errors.Is(err, ErrBadPath) {
		t.Errorf("dry-run accepted a bad path: %v", err)
	}
	if err := d.Rename("a/file", "/etc/x"); !errors.Is(err, ErrBadPath) {
		t.Errorf("dry-run accepted a bad destination: %v", err)
	}
	if _, err := d.Lstat("a/file"); err != nil {
		t.Errorf("dry-run lstat: %v", err)
	}
	if after := treeHash(t, h.base); after != before {
		t.Fatal("dry run changed the tree")
	}
	ops := d.Ops()
	want := []string{
		"rename a/file -> a/b/file",
		"remove a/file",
		"link a/file -> a/b/l",
		"mkdir n mode 0700 owner 1:1",
		"mkfifo a/f2 mode 0622 owner 1:1",
		"create a/new mode 0600 owner 1:1 size 3",
		"chmod a/file 0777",
		"chown a/file 1:1",
		"chtimes a/file atime 2023-11-14T22:13:20Z mtime 2023-11-14T22:13:20Z",
	}
	if len(ops) != len(want) {
		t.Fatalf("recorded %d ops, want %d", len(ops), len(want))
	}
	for i := range want {
		if ops[i].String() != want[i] {
			t.Errorf("op %d: %q, want %q", i, ops[i], want[i])
		}
	}
}

func TestFaultyFailsExactlyAtN(t *testing.T) {
	steps := []string{"s1", "s2", "s3", "s4", "s5"}
	for n := 0; n <= len(steps)+1; n++ {
		h := newHostile(t)
		f := NewFaulty(h.fs, n)
		var failedAt int
		for i, s := range steps {
			if err := f.Create("a/"+s, []byte(s), 0600, -1, -1); err != nil {
				if !errors.Is(err, ErrInjected) {
					t.Fatalf("n=%d step %d: %v", n, i+1, err)
				}
				if failedAt == 0 {
					failedAt = i + 1
				}
			}
		}
		wantFail := n
		if n <= 0 || n > len(steps) {
			wantFail = 0
		}
		if failedAt != wantFail {
			t.Errorf("n=%d: first failure at %d, want %d", n, failedAt, wantFail)
		}
		if f.Calls() != len(steps) {
			t.Errorf("n=%d: %d calls counted", n, f.Calls())
		}
		for i, s := range steps {
			_, err := os.Lstat(filepath.Join(h.root, "a", s))
			performed := err == nil
			if wantPerf := wantFail == 0 || i+1 < wantFail; performed != wantPerf {
				t.Errorf("n=%d: step %d performed=%v", n, i+1, performed)
			}
		}
		if len(f.Done()) != min(len(steps), max(wantFail-1, 0)) && wantFail != 0 {
			t.Errorf("n=%d: Done has %d ops", n, len(f.Done()))
		}
	}
}

// TestRemoveTwin: a second name of the kept file goes; a file of its own, a
// missing keep or a single name is refused and stays.
func TestRemoveTwin(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"keep", "other"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "keep"), filepath.Join(dir, "twin")); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range [][2]string{{"other", "keep"}, {"keep", "missing"}, {"keep", "keep"}} {
		if err := f.RemoveTwin(c[0], c[1]); err == nil {
			t.Errorf("RemoveTwin(%s, %s) removed it", c[0], c[1])
		}
	}
	for _, n := range []string{"keep", "other", "twin"} {
		if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("%s gone after refused removes: %v", n, err)
		}
	}
	if err := f.RemoveTwin("twin", "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "twin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("twin still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("keep: %q %v", b, err)
	}
}
