package safefs

import (
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The one "open beneath a root" of qsurgeon. postfixq, qmailq and rebuild
// read queues through these descriptor-level functions; FS builds its
// mutations on them. Every path resolution below a queue root goes through
// OpenBeneath, so the openat2 fallback and the EINTR/EAGAIN/EPERM handling
// exist once.

// OpenRoot opens a queue root directory. The root itself may be reached
// through symbolic links (a /var/qmail/queue -> /data/queue link is common,
// and the path is the operator's choice); only what lies below it is never
// followed.
func OpenRoot(root string) (int, error) {
	for {
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: root, Err: err}
		}
		return fd, nil
	}
}

// Openat opens one name in dirfd (no slash: nothing to resolve on the way)
// with O_CLOEXEC|O_NOFOLLOW added, retrying on EINTR. Callers reading a
// file add O_NONBLOCK and check the type with fstat (see OpenRegular).
func Openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// OpenBeneath opens rel (relative, clean, no "..": ErrBadPath otherwise)
// beneath the directory dirfd without following any symbolic link, in the
// last component or on the way, and without leaving dirfd. O_CLOEXEC is
// always added. On Linux 5.6 and later one openat2(2) with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS resolves the
// whole path; where openat2 is missing (ENOSYS) or refused by a seccomp
// filter (EPERM for a harmless probe too), and when a concurrent rename
// keeps making openat2 ask for a retry (EAGAIN), the path is walked one
// component at a time with openat(O_NOFOLLOW|O_DIRECTORY). The error is the
// bare errno (ELOOP for a symbolic link, EXDEV for an escape), so callers
// can compare it; FS's methods wrap it.
//
// A caller opening something to read must pass O_NONBLOCK and check the
// type with fstat before reading (OpenRegular does both): an open of a FIFO
// without O_NONBLOCK blocks until a writer comes, which may be never.
func OpenBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	if err := checkPath(rel, true); err != nil {
		return -1, err
	}
	if rel == "." {
		return Openat(dirfd, ".", flags, mode)
	}
	if !forceFallback && openat2State.Load() != 2 {
		// RESOLVE_NO_SYMLINKS refuses a final symbolic link too (ELOOP);
		// O_NOFOLLOW is not added, as with O_PATH|O_DIRECTORY it would
		// turn that refusal into ENOTDIR.
		how := unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		for tries := 0; tries < 64; tries++ {
			fd, err := unix.Openat2(dirfd, rel, &how)
			switch err {
			case nil:
				openat2State.Store(1)
				return fd, nil
			case unix.EINTR, unix.EAGAIN:
				// EAGAIN: a rename elsewhere on the filesystem
				// raced the lookup and openat2 asks to retry.
				// After a few tries the walk below does it.
				continue
			case unix.ENOSYS:
				openat2State.Store(2) // kernel before 5.6
			case unix.EPERM:
				if openat2State.Load() == 1 || !openat2Refused(dirfd) {
					openat2State.Store(1)
					return -1, err // a real EPERM (O_NOATIME, ...)
				}
				openat2State.Store(2) // seccomp refuses openat2
			default:
				openat2State.Store(1)
				return -1, err
			}
			break
		}
	}
	return walkBeneath(dirfd, rel, flags, mode)
}

// openat2Refused tells a seccomp filter that refuses openat2 itself from an
// EPERM of the open asked for, with an open that cannot be refused.
func openat2Refused(dirfd int) bool {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC}
	fd, err := unix.Openat2(dirfd, ".", &how)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return err == unix.EPERM || err == unix.ENOSYS
}

// walkBeneath is OpenBeneath without openat2: one openat per component, the
// directories with O_PATH|O_DIRECTORY|O_NOFOLLOW, so a symbolic link
// anywhere fails with ELOOP (or ENOTDIR, turned into ELOOP after an lstat
// check). rel is checked and has no "." or ".." components.
func walkBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	cur := dirfd
	for {
		i := strings.IndexByte(rel, '/')
		last := i < 0
		c, fl, m := rel, flags, mode
		if !last {
			c, rel = rel[:i], rel[i+1:]
			fl, m = unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0
		}
		fd, err := Openat(cur, c, fl, m)
		if err == unix.ENOTDIR {
			var st unix.Stat_t
			if unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil || last {
			return fd, err
		}
		cur = fd
	}
}

// noNoatime is set once O_NOATIME was refused (not the owner, no
// CAP_FOWNER): later opens do without it instead of failing once each.
var noNoatime atomic.Bool

// OpenRegular opens rel beneath dirfd for reading, as every reader of a
// queue or log file must: O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_NOCTTY, and
// O_NOATIME where the kernel allows it (qmail-send's orphan clock is a mess
// file's atime). It fstats the descriptor into st and refuses anything but
// a regular file with ErrNotRegular, so a FIFO, socket or device planted in
// a queue never blocks or has a side effect. The descriptor stays
// O_NONBLOCK, which a regular file ignores: no system call more than an
// open and an fstat. A one-component rel costs one openat.
func OpenRegular(dirfd int, rel string, st *unix.Stat_t) (int, error) {
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
	var fd int
	var err error
	for {
		fl := flags
		if !noNoatime.Load() {
			fl |= unix.O_NOATIME
		}
		if strings.IndexByte(rel, '/') < 0 && rel != "." && rel != ".." && rel != "" {
			fd, err = Openat(dirfd, rel, fl, 0)
		} else {
			fd, err = OpenBeneath(dirfd, rel, fl, 0)
		}
		if err == unix.EPERM && fl&unix.O_NOATIME != 0 {
			noNoatime.Store(true)
			continue
		}
		break
	}
	if err != nil {
		return -1, err
	}
	if err := unix.Fstat(fd, st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, ErrNotRegular
	}
	return fd, nil
}
