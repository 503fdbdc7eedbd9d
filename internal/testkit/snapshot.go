package testkit

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
)

// Entry is what Snapshot records about one entry of a tree: everything an
// action on a queue must not change on what it did not select.
type Entry struct {
	Mode     fs.FileMode // type and permission bits (os.Lstat)
	UID, GID uint32
	Ino      uint64
	Size     int64
	Mtime    time.Time
	Atime    time.Time         // recorded, never compared by Diff or Equal
	Sum      [sha256.Size]byte // regular files: SHA-256 of the content
	Target   string            // symbolic links: what they point at
}

// Tree maps the path of every entry below a root, relative to it (the
// root itself is "."), to what Snapshot recorded about it.
type Tree map[string]Entry

// Snapshot records every entry below root without following symbolic
// links (lstat; regular files are opened with O_NOFOLLOW and hashed).
// The atime of an entry is taken before its content is read.
func Snapshot(t testing.TB, root string) Tree {
	t.Helper()
	out := Tree{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		e, err := entryOf(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("testkit: snapshot of %s: %v", root, err)
	}
	return out
}

func entryOf(p string) (Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Entry{}, fmt.Errorf("%s: no stat_t", p)
	}
	e := Entry{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, Ino: st.Ino, Size: st.Size,
		Mtime: time.Unix(st.Mtim.Unix()), Atime: time.Unix(st.Atim.Unix())}
	switch {
	case fi.Mode().IsRegular():
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return Entry{}, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return Entry{}, fmt.Errorf("%s: %w", p, err)
		}
		h.Sum(e.Sum[:0])
	case fi.Mode()&fs.ModeSymlink != 0:
		if e.Target, err = os.Readlink(p); err != nil {
			return Entry{}, err
		}
	}
	return e, nil
}

// String describes the entry on one line, for test failures.
func (e Entry) String() string {
	s := fmt.Sprintf("%v %d:%d ino=%d size=%d mtime=%s", e.Mode, e.UID, e.GID, e.Ino, e.Size,
		e.Mtime.UTC().Format(time.RFC3339Nano))
	switch {
	case e.Mode.IsRegular():
		s += fmt.Sprintf(" sha256=%x", e.Sum[:8])
	case e.Mode&fs.ModeSymlink != 0:
		s += " target=" + e.Target
	}
	return s
}

// Equal reports whether e and o agree on everything but the access time.
func (e Entry) Equal(o Entry) bool {
	return e.key(diffOpts{}) == o.key(diffOpts{})
}

// key is what Diff compares of e under opts.
func (e Entry) key(o diffOpts) Entry {
	e.Atime = time.Time{}
	e.Mtime = time.Unix(0, e.Mtime.UnixNano()) // no monotonic clock or location
	if (o.dirTimes && e.Mode.IsDir()) || (o.nonFileTimes && !e.Mode.IsRegular()) {
		e.Mtime, e.Size = time.Time{}, 0
	}
	if o.inodes {
		e.Ino = 0
	}
	return e
}

// A DiffOption makes Tree.Diff leave something out.
type DiffOption func(*diffOpts)

type diffOpts struct {
	dirTimes, nonFileTimes, inodes bool
	skip                           func(string) bool
}

// IgnoreDirTimes leaves out the mtime and size of directories: both change
// as entries come and go.
func IgnoreDirTimes() DiffOption { return func(o *diffOpts) { o.dirTimes = true } }

// IgnoreNonFileTimes leaves out the mtime and size of every entry that is
// not a regular file (directories, FIFOs a trigger writes to, links).
func IgnoreNonFileTimes() DiffOption { return func(o *diffOpts) { o.nonFileTimes = true } }

// IgnoreInodes leaves out inode numbers, to compare trees that come from
// different extractions.
func IgnoreInodes() DiffOption { return func(o *diffOpts) { o.inodes = true } }

// IgnorePaths leaves out the paths skip accepts, on both sides.
func IgnorePaths(skip func(rel string) bool) DiffOption {
	return func(o *diffOpts) { o.skip = skip }
}

// Diff lists, sorted, how other differs from t: "removed P" for a path
// only t has, "added P" for one only other has, "changed P: <t's> ->
// <other's>" for one whose entries differ. Access times are never
// compared. Nil means the trees agree.
func (t Tree) Diff(other Tree, opts ...DiffOption) []string {
	var o diffOpts
	for _, f := range opts {
		f(&o)
	}
	skip := func(p string) bool { return o.skip != nil && o.skip(p) }
	var d []string
	for p, a := range t {
		if skip(p) {
			continue
		}
		b, ok := other[p]
		switch {
		case !ok:
			d = append(d, "removed "+p)
		case a.key(o) != b.key(o):
			d = append(d, fmt.Sprintf("changed %s: %v -> %v", p, a, b))
		}
	}
	for p := range other {
		if _, ok := t[p]; !ok && !skip(p) {
			d = append(d, "added "+p)
		}
	}
	sort.Strings(d)
	return d
}
