// Package safefs is the I/O layer every change to a mail queue goes through.
//
// An FS is confined to one root directory, held open as a descriptor. Every
// path is relative to that descriptor, must be clean and must not contain
// "..". Resolution never follows a symbolic link, not even in the last
// component, and never leaves the root: on Linux 5.6 and later the parent
// directory is opened with openat2(2) and RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; on older kernels each
// component is opened in turn with openat(O_NOFOLLOW|O_DIRECTORY). The final
// component is then acted on through the parent's descriptor with the *at
// system calls, with AT_SYMLINK_NOFOLLOW where the call would otherwise
// follow a link.
//
// FS implements queue.Mutator. DryRun records the calls instead of making
// them, and Faulty fails at a chosen call, for crash-safety tests.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Errors a caller can test with errors.Is. A refused operation returns an
// *Error wrapping one of these (or the system call's errno, which itself
// matches fs.ErrExist, fs.ErrNotExist and fs.ErrPermission).
var (
	// ErrBadPath: the path is empty, absolute, not clean or contains "..".
	ErrBadPath = errors.New("path must be relative, clean and without ..")
	// ErrSymlink: a component of the path is a symbolic link.
	ErrSymlink = errors.New("symbolic link in path refused")
	// ErrEscape: resolution would leave the root.
	ErrEscape = errors.New("path leaves the root")
	// ErrNotRegular: Open or Create met something that is not a regular
	// file; Chmod met a device.
	ErrNotRegular = queue.ErrNotRegular
	// ErrCrossDevice: MoveBetween's two roots are on different
	// filesystems. qsurgeon never copies a message instead of moving it:
	// a copy is not atomic and does not keep the inode a Postfix queue ID
	// encodes, so the destination must be on the queue's filesystem.
	ErrCrossDevice = errors.New("source and destination are on different filesystems; the destination directory must be on the same filesystem as the queue")
)

// Error is a refused or failed operation, naming the root and the path(s).
type Error struct {
	Op   string
	Root string
	Path string
	// Dest is the second path of Rename, Link and MoveBetween.
	Dest string
	// DestRoot is the destination root of MoveBetween when it differs.
	DestRoot string
	Err      error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("safefs: ")
	b.WriteString(e.Op)
	if e.Path != "" {
		b.WriteString(" ")
		b.WriteString(strconvQuote(e.Path))
	}
	if e.DestRoot != "" {
		b.WriteString(" in ")
		b.WriteString(e.Root)
	}
	if e.Dest != "" {
		b.WriteString(" -> ")
		b.WriteString(strconvQuote(e.Dest))
	}
	b.WriteString(" in ")
	if e.DestRoot != "" {
		b.WriteString(e.DestRoot)
	} else {
		b.WriteString(e.Root)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// strconvQuote quotes a path only when it holds bytes that would make the
// message ambiguous or drive a terminal (spaces, C0 and C1 controls,
// invalid UTF-8); strconv.Quote escapes all of them.
func strconvQuote(p string) string {
	for _, r := range p {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError || r == '"' {
			return strconv.Quote(p)
		}
	}
	return p
}

func (e *Error) Unwrap() error { return e.Err }

// openat2 support is probed on first use; tests can force the fallback.
var (
	openat2State  atomic.Int32 // 0 unknown, 1 works, 2 missing
	forceFallback bool
)

// FS is a directory tree reachable only beneath its root. It is safe for
// concurrent use. The zero value is not usable; call Open.
type FS struct {
	root string
	fd   int // O_RDONLY|O_DIRECTORY descriptor of the root
	dev  uint64
}

// Open opens root (which itself may be reached through symbolic links: it is
// the operator's choice) and confines every later operation beneath it.
func Open(root string) (*FS, error) {
	fd, err := OpenRoot(root)
	if err != nil {
		return nil, &Error{Op: "open root", Root: root, Err: errors.Unwrap(err)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "open root", Root: root, Err: err}
	}
	return &FS{root: root, fd: fd, dev: st.Dev}, nil
}

// Root returns the root directory as given to Open.
func (f *FS) Root() string { return f.root }

// Close releases the root descriptor.
func (f *FS) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	return err
}

// Sync commits the whole filesystem holding the root (syncfs(2)), once at
// the end of a batch of changes, instead of an fsync per directory.
func (f *FS) Sync() error {
	if err := unix.Syncfs(f.fd); err != nil {
		return &Error{Op: "sync", Root: f.root, Err: err}
	}
	return nil
}

// checkPath validates the syntax of a relative path. allowDot permits "."
// (the root itself) for read operations.
func checkPath(p string, allowDot bool) error {
	if p == "" || strings.IndexByte(p, 0) >= 0 || path.IsAbs(p) {
		return ErrBadPath
	}
	if p == "." {
		if allowDot {
			return nil
		}
		return ErrBadPath
	}
	// Every component non-empty and neither "." nor "..": then the path
	// is clean too. No allocation (this runs for every file read).
	for rest := p; ; {
		c, more, found := strings.Cut(rest, "/")
		if c == "" || c == "." || c == ".." {
			return ErrBadPath
		}
		if !found {
			return nil
		}
		rest = more
	}
}

// split returns the parent directory ("." for the root) and base name.
func split(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

// mapErr turns the errnos openat2 uses for refused resolution into the
// package's sentinels, keeping the errno.
func mapErr(err error) error {
	switch err {
	case unix.ELOOP:
		return fmt.Errorf("%w (%w)", ErrSymlink, err)
	case unix.EXDEV:
		return fmt.Errorf("%w (%w)", ErrEscape, err)
	}
	return err
}

// openDir opens dir (a checked relative path, or ".") beneath the root
// without following any symbolic link (OpenBeneath). flags is O_PATH or
// O_RDONLY.
func (f *FS) openDir(dir string, flags int) (int, error) {
	fd, err := OpenBeneath(f.fd, dir, flags|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, mapErr(err)
	}
	return fd, nil
}

// parent checks p and opens its parent directory as an O_PATH descriptor.
func (f *FS) parent(op, p string) (int, string, error) {
	if err := checkPath(p, false); err != nil {
		return -1, "", &Error{Op: op, Root: f.root, Path: p, Err: err}
	}
	dir, base := split(p)
	fd, err := f.openDir(dir, unix.O_PATH)
	if err != nil {
		return -1, "", &Error{Op: op, Root: f.root, Path: p, Err: err}
	}
	return fd, base, nil
}

// parents opens the parent directories of from and to (Rename, Link).
func (f *FS) parents(op, from, to string) (fd1 int, b1 string, fd2 int, b2 string, err error) {
	if fd1, b1, err = f.parent(op, from); err != nil {
		return -1, "", -1, "", err
	}
	if fd2, b2, err = f.parent(op, to); err != nil {
		unix.Close(fd1)
		err.(*Error).Path, err.(*Error).Dest = from, to
		return -1, "", -1, "", err
	}
	return fd1, b1, fd2, b2, nil
}

func (f *FS) fail(op, p string, err error) error {
	return &Error{Op: op, Root: f.root, Path: p, Err: err}
}

// unixMode converts an fs.FileMode's permission and special bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// Rename moves from to to inside the root with renameat2(RENAME_NOREPLACE),
// failing with an error matching fs.ErrExist when to exists. On a filesystem
// without RENAME_NOREPLACE a file is moved by link + unlink instead (also
// refusing to replace).
func (f *FS) Rename(from, to string) error {
	fd1, b1, fd2, b2, err := f.parents("rename", from, to)
	if err != nil {
		return err
	}
	defer unix.Close(fd1)
	defer unix.Close(fd2)
	if err := renameNoReplace(fd1, b1, fd2, b2); err != nil {
		return &Error{Op: "rename", Root: f.root, Path: from, Dest: to, Err: err}
	}
	return nil
}

func renameNoReplace(fd1 int, b1 string, fd2 int, b2 string) error {
	err := unix.Renameat2(fd1, b1, fd2, b2, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		return err
	}
	// Filesystem (or kernel) without RENAME_NOREPLACE: link refuses to
	// replace, then drop the old name. Works for files only, never for
	// directories, which is what a queue moves.
	if err := unix.Linkat(fd1, b1, fd2, b2, 0); err != nil {
		return err
	}
	return unix.Unlinkat(fd1, b1, 0)
}

// MoveBetween renames srcPath under src to dstPath under dst without
// replacing, for quarantine directories outside the queue. Both roots must
// be on the same filesystem: on EXDEV it returns an error matching
// ErrCrossDevice and changes nothing. It deliberately has no copy fallback
// (see ErrCrossDevice).
func MoveBetween(src *FS, srcPath string, dst *FS, dstPath string) error {
	fail := func(err error) error {
		return &Error{Op: "move", Root: src.root, Path: srcPath, DestRoot: dst.root, Dest: dstPath, Err: err}
	}
	if err := checkPath(srcPath, false); err != nil {
		return fail(err)
	}
	if err := checkPath(dstPath, false); err != nil {
		return fail(err)
	}
	if src.dev != dst.dev {
		return fail(ErrCrossDevice)
	}
	d1, b1 := split(srcPath)
	fd1, err := src.openDir(d1, unix.O_PATH)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(fd1)
	d2, b2 := split(dstPath)
	fd2, err := dst.openDir(d2, unix.O_PATH)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(fd2)
	if err := renameNoReplace(fd1, b1, fd2, b2); err != nil {
		if err == unix.EXDEV {
			err = fmt.Errorf("%w (%w)", ErrCrossDevice, err)
		}
		return fail(err)
	}
	return nil
}

// RemoveTwin unlinks p only when it is a second name of keep's file (same
// device and inode, two links or more, a regular file), so the data stays
// reachable under keep; anything else is refused and left alone.
func (f *FS) RemoveTwin(p, keep string) error {
	if path.Clean(p) == path.Clean(keep) {
		return &Error{Op: "remove", Root: f.root, Path: p, Err: errors.New("the name to keep; left alone")}
	}
	a, err := f.Lstat(p)
	if err != nil {
		return err
	}
	b, err := f.Lstat(keep)
	if err != nil {
		return err
	}
	as, aok := a.Sys().(*syscall.Stat_t)
	bs, bok := b.Sys().(*syscall.Stat_t)
	if !aok || !bok || !a.Mode().IsRegular() || as.Dev != bs.Dev || as.Ino != bs.Ino || as.Nlink < 2 {
		return &Error{Op: "remove", Root: f.root, Path: p, Err: fmt.Errorf("not a second name of %s; left alone", keep)}
	}
	return f.Remove(p)
}

// Remove unlinks a file, or removes an empty directory. A symbolic link is
// removed itself, never its target.
func (f *FS) Remove(p string) error {
	fd, base, err := f.parent("remove", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Unlinkat(fd, base, 0)
	if err == unix.EISDIR {
		err = unix.Unlinkat(fd, base, unix.AT_REMOVEDIR)
	}
	if err != nil {
		return f.fail("remove", p, err)
	}
	return nil
}

// Link makes to a new hard link to from (linkat without AT_SYMLINK_FOLLOW:
// a symbolic link is linked itself), failing with fs.ErrExist when to
// exists.
func (f *FS) Link(from, to string) error {
	fd1, b1, fd2, b2, err := f.parents("link", from, to)
	if err != nil {
		return err
	}
	defer unix.Close(fd1)
	defer unix.Close(fd2)
	if err := unix.Linkat(fd1, b1, fd2, b2, 0); err != nil {
		return &Error{Op: "link", Root: f.root, Path: from, Dest: to, Err: err}
	}
	return nil
}

// Mkdir creates a directory with exactly perm (umask does not apply) and the
// given owner (-1 keeps an id as created).
func (f *FS) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	fd, base, err := f.parent("mkdir", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mkdirat(fd, base, 0700); err != nil {
		return f.fail("mkdir", p, err)
	}
	if err := setOwnerMode(fd, base, perm, uid, gid); err != nil {
		return f.fail("mkdir", p, err)
	}
	return nil
}

// Mkfifo creates a named pipe with exactly perm and the given owner.
func (f *FS) Mkfifo(p string, perm fs.FileMode, uid, gid int) error {
	fd, base, err := f.parent("mkfifo", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mkfifoat(fd, base, 0600); err != nil {
		return f.fail("mkfifo", p, err)
	}
	if err := setOwnerMode(fd, base, perm, uid, gid); err != nil {
		return f.fail("mkfifo", p, err)
	}
	return nil
}

// setOwnerMode chowns (when asked) and then chmods base in dirfd, in that
// order because chown may clear set-id bits.
func setOwnerMode(dirfd int, base string, perm fs.FileMode, uid, gid int) error {
	if uid != -1 || gid != -1 {
		if err := unix.Fchownat(dirfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return chmodAt(dirfd, base, unixMode(perm))
}

// chmodAt changes the mode of base in dirfd without following a symbolic
// link and without opening it in a way that blocks (FIFO) or has side effects
// (device). It opens an O_PATH|O_NOFOLLOW descriptor, checks its type, then:
// regular files, directories and FIFOs are reopened O_RDONLY|O_NONBLOCK
// (same inode checked) and fchmod'ed, as postsuper does through safe_open;
// sockets (and files root-less callers cannot read) are changed through
// /proc/self/fd, which is how glibc implements fchmodat(AT_SYMLINK_NOFOLLOW).
// Symbolic links and devices are refused.
func chmodAt(dirfd int, base string, mode uint32) error {
	pfd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return ErrSymlink
	case unix.S_IFCHR, unix.S_IFBLK:
		return ErrNotRegular
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFIFO:
		rfd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err == nil {
			defer unix.Close(rfd)
			var st2 unix.Stat_t
			if err := unix.Fstat(rfd, &st2); err != nil {
				return err
			}
			if st2.Dev != st.Dev || st2.Ino != st.Ino {
				return fmt.Errorf("file replaced while changing its mode: %w", unix.ESTALE)
			}
			return unix.Fchmod(rfd, mode)
		}
		if err != unix.EACCES && err != unix.ENXIO {
			return err
		}
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", pfd), mode)
}

// Create writes a new file: O_CREAT|O_EXCL|O_NOFOLLOW with mode 0600, the
// data, fchown, fchmod to exactly perm, fsync. On any failure after the open
// the partial file is removed.
func (f *FS) Create(p string, data []byte, perm fs.FileMode, uid, gid int) error {
	fd, base, err := f.parent("create", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	wfd, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0600)
	if err != nil {
		return f.fail("create", p, err)
	}
	err = func() error {
		for b := data; len(b) > 0; {
			n, err := unix.Write(wfd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrShortWrite
			}
			b = b[n:]
		}
		if uid != -1 || gid != -1 {
			if err := unix.Fchown(wfd, uid, gid); err != nil {
				return err
			}
		}
		if err := unix.Fchmod(wfd, unixMode(perm)); err != nil {
			return err
		}
		return unix.Fsync(wfd)
	}()
	if cerr := unix.Close(wfd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(fd, base, 0)
		return f.fail("create", p, err)
	}
	return nil
}

// Chmod sets the permission (and set-id, sticky) bits without following a
// symbolic link and without blocking on a FIFO.
func (f *FS) Chmod(p string, perm fs.FileMode) error {
	fd, base, err := f.parent("chmod", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := chmodAt(fd, base, unixMode(perm)); err != nil {
		return f.fail("chmod", p, err)
	}
	return nil
}

// Chown sets owner and group (-1 leaves one unchanged) of the entry itself,
// never a symbolic link's target.
func (f *FS) Chown(p string, uid, gid int) error {
	fd, base, err := f.parent("chown", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchownat(fd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return f.fail("chown", p, err)
	}
	return nil
}

// Chtimes sets access and modification times (utimensat with
// AT_SYMLINK_NOFOLLOW). A zero time leaves that time unchanged.
func (f *FS) Chtimes(p string, atime, mtime time.Time) error {
	fd, base, err := f.parent("chtimes", p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return f.fail("chtimes", p, err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// Lstat describes p itself (a symbolic link is not followed). The result's
// Sys() is a *syscall.Stat_t, as with os.Lstat. "." is the root.
func (f *FS) Lstat(p string) (fs.FileInfo, error) {
	if err := checkPath(p, true); err != nil {
		return nil, f.fail("lstat", p, err)
	}
	var st unix.Stat_t
	if p == "." {
		if err := unix.Fstat(f.fd, &st); err != nil {
			return nil, f.fail("lstat", p, err)
		}
		return newFileInfo(path.Base(f.root), &st), nil
	}
	dir, base := split(p)
	fd, err := f.openDir(dir, unix.O_PATH)
	if err != nil {
		return nil, f.fail("lstat", p, err)
	}
	defer unix.Close(fd)
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, f.fail("lstat", p, err)
	}
	return newFileInfo(base, &st), nil
}

// Open opens a regular file for reading (OpenRegular: O_NOFOLLOW; a FIFO
// or device is refused without blocking).
func (f *FS) Open(p string) (*os.File, error) {
	if err := checkPath(p, false); err != nil {
		return nil, f.fail("open", p, err)
	}
	var st unix.Stat_t
	rfd, err := OpenRegular(f.fd, p, &st)
	if err != nil {
		return nil, f.fail("open", p, mapErr(err))
	}
	if err := unix.SetNonblock(rfd, false); err != nil {
		unix.Close(rfd)
		return nil, f.fail("open", p, err)
	}
	return os.NewFile(uintptr(rfd), path.Join(f.root, p)), nil
}

// ReadFile reads a whole regular file of at most max bytes; a larger file is
// an error (never allocate from an untrusted length).
func (f *FS) ReadFile(p string, max int64) ([]byte, error) {
	r, err := f.Open(p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, f.fail("read", p, err)
	}
	if int64(len(b)) > max {
		return nil, f.fail("read", p, fmt.Errorf("file larger than %d bytes", max))
	}
	return b, nil
}

// ReadDir lists the directory p ("." for the root), sorted by name. Each
// entry's Info is an Lstat through this FS.
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	if err := checkPath(p, true); err != nil {
		return nil, f.fail("readdir", p, err)
	}
	fd, err := f.openDir(p, unix.O_RDONLY)
	if err != nil {
		return nil, f.fail("readdir", p, err)
	}
	d := os.NewFile(uintptr(fd), path.Join(f.root, p))
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return nil, f.fail("readdir", p, err)
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		full := e.Name()
		if p != "." {
			full = p + "/" + e.Name()
		}
		out[i] = dirEntry{f: f, name: e.Name(), path: full, typ: e.Type()}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

type dirEntry struct {
	f    *FS
	name string
	path string
	typ  fs.FileMode
}

func (d dirEntry) Name() string               { return d.name }
func (d dirEntry) IsDir() bool                { return d.typ.IsDir() }
func (d dirEntry) Type() fs.FileMode          { return d.typ }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.f.Lstat(d.path) }
func (d dirEntry) String() string             { return fs.FormatDirEntry(d) }

type fileInfo struct {
	name string
	st   syscall.Stat_t
}

func newFileInfo(name string, st *unix.Stat_t) *fileInfo {
	fi := &fileInfo{name: name}
	fi.st.Dev = st.Dev
	fi.st.Ino = st.Ino
	fi.st.Nlink = st.Nlink
	fi.st.Mode = st.Mode
	fi.st.Uid = st.Uid
	fi.st.Gid = st.Gid
	fi.st.Rdev = st.Rdev
	fi.st.Size = st.Size
	fi.st.Blksize = st.Blksize
	fi.st.Blocks = st.Blocks
	fi.st.Atim = syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec}
	fi.st.Mtim = syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec}
	fi.st.Ctim = syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec}
	return fi
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.st.Size }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Sec, fi.st.Mtim.Nsec) }
func (fi *fileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *fileInfo) Sys() any           { return &fi.st }
func (fi *fileInfo) Mode() fs.FileMode  { return FileMode(fi.st.Mode) }

// FileMode converts a stat(2) st_mode into an fs.FileMode the way package
// os does (type bits, permissions, setuid, setgid, sticky).
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
