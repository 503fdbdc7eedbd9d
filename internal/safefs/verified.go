package safefs

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotVerified: the file at the path is no longer the one a caller
// verified (another inode, or more than one hard link where the caller's
// files never have one), so nothing was done to it. A hard link of a file
// outside the queue, swapped in between a check and an action by name, is
// exactly this.
var ErrNotVerified = errors.New("file is not the one verified (inode changed, or hard-linked)")

// Verified is implemented by the mutators that can act on the very file a
// caller verified, not merely on whatever has its name by then: FS, DryRun
// and Faulty. ino is the inode the caller read; the file must also have
// exactly one link.
type Verified interface {
	// ChmodFile fchmods p through a descriptor opened without following
	// or blocking, after checking on that descriptor that it is the
	// regular file ino with one link: no window between check and act.
	ChmodFile(p string, perm fs.FileMode, ino uint64) error
	// RenameFile renames from to to (never replacing) when from is the
	// regular file ino with one link, and checks the result: should
	// another file have taken from's name in between, it is renamed back
	// and ErrNotVerified returned.
	RenameFile(from, to string, ino uint64) error
	// ChtimesFile sets the times of p through a descriptor, after the
	// same check as ChmodFile.
	ChtimesFile(p string, atime, mtime time.Time, ino uint64) error
}

var (
	_ Verified = (*FS)(nil)
	_ Verified = (*DryRun)(nil)
	_ Verified = (*Faulty)(nil)
)

func checkOne(st *unix.Stat_t, ino uint64) error {
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return fmt.Errorf("%w: not a regular file", ErrNotVerified)
	case st.Ino != ino:
		return fmt.Errorf("%w: inode %d, verified %d", ErrNotVerified, st.Ino, ino)
	case st.Nlink != 1:
		return fmt.Errorf("%w: %d hard links", ErrNotVerified, st.Nlink)
	}
	return nil
}

// ChmodFile implements Verified.
func (f *FS) ChmodFile(p string, perm fs.FileMode, ino uint64) error {
	return f.onVerified("chmod", p, ino, func(fd int) error { return unix.Fchmod(fd, unixMode(perm)) })
}

// ChtimesFile implements Verified (futimens: a zero time is left as it is).
func (f *FS) ChtimesFile(p string, atime, mtime time.Time, ino uint64) error {
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	return f.onVerified("chtimes", p, ino, func(fd int) error { return unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH) })
}

// onVerified opens p without following or blocking, checks on the
// descriptor that it is the regular file ino with one link, and calls do
// with it.
func (f *FS) onVerified(op, p string, ino uint64, do func(fd int) error) error {
	fd, base, err := f.parent(op, p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	rfd, err := Openat(fd, base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return f.fail(op, p, mapErr(err))
	}
	defer unix.Close(rfd)
	var st unix.Stat_t
	if err := unix.Fstat(rfd, &st); err != nil {
		return f.fail(op, p, err)
	}
	if err := checkOne(&st, ino); err != nil {
		return f.fail(op, p, err)
	}
	if err := do(rfd); err != nil {
		return f.fail(op, p, err)
	}
	return nil
}

// RenameFile implements Verified.
func (f *FS) RenameFile(from, to string, ino uint64) error {
	fd1, b1, fd2, b2, err := f.parents("rename", from, to)
	if err != nil {
		return err
	}
	defer unix.Close(fd1)
	defer unix.Close(fd2)
	fail := func(err error) error { return &Error{Op: "rename", Root: f.root, Path: from, Dest: to, Err: err} }
	var st unix.Stat_t
	if err := unix.Fstatat(fd1, b1, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail(err)
	}
	if err := checkOne(&st, ino); err != nil {
		return fail(err)
	}
	if err := renameNoReplace(fd1, b1, fd2, b2); err != nil {
		return fail(err)
	}
	// rename(2) takes no inode: compare after, and undo a swap that won
	// the race between the fstatat above and the rename.
	if err := unix.Fstatat(fd2, b2, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail(err)
	}
	if err := checkOne(&st, ino); err != nil {
		if uerr := renameNoReplace(fd2, b2, fd1, b1); uerr != nil {
			return fail(fmt.Errorf("%w; moving it back failed: %v", err, uerr))
		}
		return fail(err)
	}
	return nil
}

// ChmodFile records a chmod.
func (d *DryRun) ChmodFile(p string, perm fs.FileMode, _ uint64) error { return d.Chmod(p, perm) }

// ChtimesFile records a chtimes.
func (d *DryRun) ChtimesFile(p string, atime, mtime time.Time, _ uint64) error {
	return d.Chtimes(p, atime, mtime)
}

// RenameFile records a rename.
func (d *DryRun) RenameFile(from, to string, _ uint64) error { return d.Rename(from, to) }

// ChmodFile passes through (to ChmodFile where M has it) unless this call
// is to fail.
func (f *Faulty) ChmodFile(p string, perm fs.FileMode, ino uint64) error {
	if err := f.step(Op{Op: "chmod", Path: p, Perm: perm}); err != nil {
		return err
	}
	if v, ok := f.M.(Verified); ok {
		return v.ChmodFile(p, perm, ino)
	}
	return f.M.Chmod(p, perm)
}

// RenameFile passes through (to RenameFile where M has it) unless this
// call is to fail.
func (f *Faulty) RenameFile(from, to string, ino uint64) error {
	if err := f.step(Op{Op: "rename", Path: from, Dest: to}); err != nil {
		return err
	}
	if v, ok := f.M.(Verified); ok {
		return v.RenameFile(from, to, ino)
	}
	return f.M.Rename(from, to)
}

// ChtimesFile passes through (to ChtimesFile where M has it) unless this
// call is to fail.
func (f *Faulty) ChtimesFile(p string, atime, mtime time.Time, ino uint64) error {
	if err := f.step(Op{Op: "chtimes", Path: p, Atime: atime, Mtime: mtime}); err != nil {
		return err
	}
	if v, ok := f.M.(Verified); ok {
		return v.ChtimesFile(p, atime, mtime, ino)
	}
	return f.M.Chtimes(p, atime, mtime)
}
