package safefs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// OpenRegular never blocks on a FIFO (no writer ever comes) and refuses
// every non-regular file, through both resolution paths.
func TestOpenRegularRefusesFIFOWithoutBlocking(t *testing.T) {
	modes(t, func(t *testing.T) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "defer", "0"), 0o700)
		if err := syscall.Mkfifo(filepath.Join(dir, "defer", "0", "ABC"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "defer", "0", "REG"), []byte("x"), 0o600)
		os.Symlink("REG", filepath.Join(dir, "defer", "0", "LNK"))
		root, err := OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(root)
		done := make(chan error, 1)
		go func() {
			var st unix.Stat_t
			_, err := OpenRegular(root, "defer/0/ABC", &st)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("FIFO: %v, want ErrNotRegular", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("OpenRegular blocked on a FIFO")
		}
		var st unix.Stat_t
		fd, err := OpenRegular(root, "defer/0/REG", &st)
		if err != nil || st.Size != 1 {
			t.Fatalf("regular file: %v", err)
		}
		unix.Close(fd)
		if _, err := OpenRegular(root, "defer/0/LNK", &st); err != unix.ELOOP {
			t.Errorf("symbolic link: %v, want ELOOP", err)
		}
		if _, err := OpenBeneath(root, "defer/../defer/0/REG", unix.O_RDONLY, 0); !errors.Is(err, ErrBadPath) {
			t.Errorf(".. in path: %v", err)
		}
	})
}

// ChmodFile and RenameFile refuse a hard link of a file from elsewhere and
// a file that is not the verified inode, and leave it untouched.
func TestVerifiedRefusesHardLinkAndSwap(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "deferred"), 0o700)
	os.MkdirAll(filepath.Join(dir, "maildrop"), 0o700)
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("s"), 0o600)
	os.Link(secret, filepath.Join(dir, "deferred", "A"))
	os.WriteFile(filepath.Join(dir, "deferred", "B"), []byte("b"), 0o700)
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ino := func(p string) uint64 {
		var st unix.Stat_t
		unix.Lstat(p, &st)
		return st.Ino
	}
	if err := f.ChmodFile("deferred/A", 0o710, ino(secret)); !errors.Is(err, ErrNotVerified) {
		t.Errorf("chmod of a hard link: %v", err)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o600 {
		t.Errorf("outside file mode changed to %v", fi.Mode())
	}
	if err := f.RenameFile("deferred/A", "maildrop/A", ino(secret)); !errors.Is(err, ErrNotVerified) {
		t.Errorf("rename of a hard link: %v", err)
	}
	if err := f.RenameFile("deferred/B", "maildrop/B", ino(secret)); !errors.Is(err, ErrNotVerified) {
		t.Errorf("rename of another inode: %v", err)
	}
	b := ino(filepath.Join(dir, "deferred", "B"))
	if err := f.ChmodFile("deferred/B", 0o710, b); err != nil {
		t.Errorf("chmod of the verified file: %v", err)
	}
	if err := f.RenameFile("deferred/B", "maildrop/B", b); err != nil {
		t.Errorf("rename of the verified file: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "maildrop", "B")); err != nil || fi.Mode().Perm() != 0o710 {
		t.Errorf("maildrop/B: %v %v", fi, err)
	}
	when := time.Unix(1700000000, 0)
	if err := f.ChtimesFile("maildrop/B", when, when, b); err != nil {
		t.Errorf("chtimes of the verified file: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "maildrop", "B")); !fi.ModTime().Equal(when) {
		t.Errorf("maildrop/B mtime %v, want %v", fi.ModTime(), when)
	}
	before, _ := os.Stat(secret)
	if err := f.ChtimesFile("deferred/A", when, when, ino(secret)); !errors.Is(err, ErrNotVerified) {
		t.Errorf("chtimes of a hard link: %v", err)
	}
	if after, _ := os.Stat(secret); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("outside file's mtime changed")
	}
}
