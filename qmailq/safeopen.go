package qmailq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
)

// errPathEscapes is returned for a relative path that is absolute, empty or
// climbs out of the queue root with "..".
var errPathEscapes = errors.New("path leaves the queue root")

// cleanRel checks that rel is a clean path relative to the queue root.
func cleanRel(rel string) (string, error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("qmailq: %q: %w", rel, errPathEscapes)
	}
	c := path.Clean(rel)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("qmailq: %q: %w", rel, errPathEscapes)
	}
	return c, nil
}

// openatBeneath opens rel below the directory dirfd without following any
// symbolic link (in the last component or on the way) and without leaving
// dirfd: safefs.OpenBeneath, the one such walker of qsurgeon.
func openatBeneath(dirfd int, rel string, flags int, mode uint32) (int, error) {
	rel, err := cleanRel(rel)
	if err != nil {
		return -1, err
	}
	return safefs.OpenBeneath(dirfd, rel, flags, mode)
}

// openatRetry opens one name in dirfd (safefs.Openat: O_NOFOLLOW and
// O_CLOEXEC added, EINTR retried).
func openatRetry(dirfd int, name string, flags int, mode uint32) (int, error) {
	return safefs.Openat(dirfd, name, flags, mode)
}

// openRootDir opens the queue root itself. The root may be reached through
// a symbolic link (a /var/qmail/queue -> /data/queue link is common); only
// what lies below it is never followed.
func openRootDir(root string) (int, error) {
	return safefs.OpenRoot(root)
}

// openBeneath opens root/rel without following a symbolic link below root.
func openBeneath(root, rel string, flags int) (*os.File, error) {
	rfd, err := openRootDir(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := openatBeneath(rfd, rel, flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path.Join(root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(root, rel)), nil
}

// lstatBeneath lstats root/rel, refusing symbolic links on the way (the
// last component itself may be a link: it is reported, not followed).
func lstatBeneath(root, rel string) (fs.FileInfo, error) {
	c, err := cleanRel(rel)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(c)
	rfd, err := openRootDir(root)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	dfd := rfd
	if dir != "" {
		dfd, err = openatBeneath(rfd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return nil, &os.PathError{Op: "lstat", Path: path.Join(root, c), Err: err}
		}
		defer unix.Close(dfd)
	}
	var st unix.Stat_t
	if err := fstatatRetry(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path.Join(root, c), Err: err}
	}
	return newStatInfo(base, &st), nil
}

// statInfo is an fs.FileInfo made from a unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func newStatInfo(name string, st *unix.Stat_t) *statInfo {
	return &statInfo{name: name, st: *st}
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }
func (s *statInfo) Mode() fs.FileMode  { return safefs.FileMode(s.st.Mode) }

func fstatatRetry(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		err := unix.Fstatat(dirfd, name, st, flags)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}
