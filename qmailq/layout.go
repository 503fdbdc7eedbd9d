// Package qmailq reads a qmail queue directly: the conf-split hashed
// mess/info/local/remote trees, the todo/intd envelopes, bounce/ texts, and
// qmail-send's lock. It assembles each message into a queue.Message and lists
// what is inconsistent about partial messages as Problems.
//
// Paths handed out by this package are relative to the queue root
// ("mess/5/12345"); Layout.Abs joins them to the root. Nothing below the root
// is ever reached through a symbolic link.
package qmailq

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultSplit is qmail's stock conf-split ("This is the queue subdirectory
// split", conf-split; compiled into auto_split).
const DefaultSplit = 23

// Part is one of the places a qmail message lives in.
type Part int

// The parts of a qmail message, in the order qmail creates them
// (INTERNALS; qmail-queue.c:main(), qmail-send.c:todo_do(), addbounce()).
const (
	PartMess Part = iota
	PartIntd
	PartTodo
	PartInfo
	PartLocal
	PartRemote
	PartBounce
	numParts
)

// Parts lists every Part.
var Parts = []Part{PartMess, PartIntd, PartTodo, PartInfo, PartLocal, PartRemote, PartBounce}

var partDirs = [numParts]string{"mess", "intd", "todo", "info", "local", "remote", "bounce"}

// Dir is the top-level directory of the part: "mess", "info", ...
func (p Part) Dir() string {
	if p < 0 || p >= numParts {
		return "part" + strconv.Itoa(int(p))
	}
	return partDirs[p]
}

func (p Part) String() string { return p.Dir() }

// SplitDirs are the directories that are split by conf-split in every qmail
// version (fmtqfn.c:fmtqfn() with flagsplit set by fnmake_info, fnmake_mess,
// fnmake_chanaddr in qmail-send.c).
var SplitDirs = []string{"mess", "info", "local", "remote"}

// Layout is the shape of one qmail queue tree.
type Layout struct {
	// Root is the queue directory (e.g. /var/qmail/queue), absolute and
	// cleaned. It may itself be a symbolic link; nothing below it is followed.
	Root string
	// Split is conf-split: mess, info, local and remote (and todo/intd on
	// big-todo builds) hash ids into Split subdirectories 0..Split-1.
	Split int
	// BigTodo: todo/ and intd/ are split as well (big-todo patch).
	BigTodo bool
	// Subdirs holds, per top-level directory (mess, info, local, remote,
	// todo, intd), the numeric subdirectories found, sorted.
	Subdirs map[string][]int
	// SplitVotes says what each of mess/info/local/remote suggested as the
	// split (the length of its contiguous 0..n-1 run of subdirectories); 0
	// when it has none.
	SplitVotes map[string]int
	// SplitGuessed is true when no split subdirectory was found and Split is
	// DefaultSplit.
	SplitGuessed bool
	// TodoEvidence says how BigTodo was decided.
	TodoEvidence string
	// TodoGuessed is true when no envelope file was found in todo/ or intd/
	// and BigTodo is the stock default (false).
	TodoGuessed bool
	// Notes lists what is odd about the tree: disagreeing split evidence,
	// subdirectories beyond the split, missing ones, files where directories
	// belong. Informational: DetectLayout still returns a usable Layout.
	Notes []string
}

// ParseID parses a queue file name as qmail writes it (fmtqfn.c:fmtqfn() via
// fmt_ulong: decimal, no sign, no leading zero). It reports false for any
// other name, including "0123", which qmail would never produce.
// (readsubdir.c skips names that are not all digits.)
func ParseID(name string) (uint64, bool) {
	if name == "" || len(name) > 20 || (len(name) > 1 && name[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(name, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Subdir is the split subdirectory of id: id % Split (fmtqfn.c:fmtqfn()).
func (l *Layout) Subdir(id uint64) int {
	s := l.Split
	if s <= 0 {
		s = DefaultSplit
	}
	return int(id % uint64(s))
}

// IsSplit reports whether the part is hashed into subdirectories in this
// layout: mess/info/local/remote always, todo/intd on big-todo builds,
// bounce never (qmail-send.c:fnmake2_bounce uses fmtqfn(...,0)).
func (l *Layout) IsSplit(p Part) bool {
	switch p {
	case PartMess, PartInfo, PartLocal, PartRemote:
		return true
	case PartTodo, PartIntd:
		return l.BigTodo
	}
	return false
}

// Path is the path of part p of message id relative to the root, where
// qmail itself would look for it (fmtqfn.c:fmtqfn()).
func (l *Layout) Path(p Part, id uint64) string {
	ids := strconv.FormatUint(id, 10)
	if l.IsSplit(p) {
		return p.Dir() + "/" + strconv.Itoa(l.Subdir(id)) + "/" + ids
	}
	return p.Dir() + "/" + ids
}

// MessPath is "mess/<id%split>/<id>".
func (l *Layout) MessPath(id uint64) string { return l.Path(PartMess, id) }

// InfoPath is "info/<id%split>/<id>".
func (l *Layout) InfoPath(id uint64) string { return l.Path(PartInfo, id) }

// LocalPath is "local/<id%split>/<id>".
func (l *Layout) LocalPath(id uint64) string { return l.Path(PartLocal, id) }

// RemotePath is "remote/<id%split>/<id>".
func (l *Layout) RemotePath(id uint64) string { return l.Path(PartRemote, id) }

// TodoPath is "todo/<id>", or "todo/<id%split>/<id>" on big-todo.
func (l *Layout) TodoPath(id uint64) string { return l.Path(PartTodo, id) }

// IntdPath is "intd/<id>", or "intd/<id%split>/<id>" on big-todo.
func (l *Layout) IntdPath(id uint64) string { return l.Path(PartIntd, id) }

// BouncePath is "bounce/<id>" (never split, in any version).
func (l *Layout) BouncePath(id uint64) string { return l.Path(PartBounce, id) }

// Abs joins a root-relative path to the root.
func (l *Layout) Abs(rel string) string { return filepath.Join(l.Root, rel) }

// IsQmailQueue reports whether root looks like a qmail queue: mess/, info/,
// local/, remote/, todo/ and lock/ are directories (checked with lstat).
func IsQmailQueue(root string) bool {
	for _, d := range []string{"mess", "info", "local", "remote", "todo", "lock"} {
		fi, err := os.Lstat(filepath.Join(root, d))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// readDirBeneath lists root/rel (no symbolic link followed on the way).
func readDirBeneath(root, rel string) ([]fs.DirEntry, error) {
	f, err := openBeneath(root, rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

// entryType returns the type bits of a directory entry. os fills them from
// d_type and falls back to lstat itself for DT_UNKNOWN, so no extra call is
// needed here.
func entryType(_, _ string, e fs.DirEntry) fs.FileMode { return e.Type() }

// DetectLayout inspects the tree at root and works out conf-split and
// big-todo from what is on disk.
//
// Split: each of mess/info/local/remote votes with the length n of its
// contiguous run of numeric subdirectories 0..n-1 (what qmail's
// readsubdir.c would scan); the most common non-zero vote wins (info breaks
// ties: qmail-send.c:pqstart() scans info/). Any number is accepted, prime
// or not. With no subdirectories at all the split is DefaultSplit and
// SplitGuessed is set. Disagreements, gaps and subdirectories at or beyond
// the split (never read by qmail) are listed in Notes.
//
// BigTodo: decided by where the envelope files are, never by whether todo/0
// exists (the usual rebuild recipe creates todo/0..22 on flat builds):
// regular files directly in todo/ or intd/ mean flat; files in todo/N/ or
// intd/N/ mean big-todo (big-todo.103.patch: qmail-queue fnnum("todo/",1)).
// No files at all: flat, TodoGuessed set.
func DetectLayout(root string) (*Layout, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("qmailq: %s: not a directory", abs)
	}
	l := &Layout{
		Root:       abs,
		Subdirs:    map[string][]int{},
		SplitVotes: map[string]int{},
	}
	flatFiles := map[string]int{}
	splitFiles := map[string]int{}
	for _, top := range []string{"mess", "info", "local", "remote", "todo", "intd"} {
		ents, err := readDirBeneath(abs, top)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				l.Notes = append(l.Notes, top+"/ is missing")
			} else {
				l.Notes = append(l.Notes, fmt.Sprintf("%s/: %v", top, err))
			}
			continue
		}
		var nums []int
		for _, e := range ents {
			rel := top + "/" + e.Name()
			t := entryType(abs, rel, e)
			n, numeric := ParseID(e.Name())
			switch {
			case t.IsDir() && numeric && n < 1<<31:
				nums = append(nums, int(n))
			case t.IsDir():
				l.Notes = append(l.Notes, fmt.Sprintf("%s is a directory with a non-numeric name", rel))
			case t&fs.ModeSymlink != 0:
				l.Notes = append(l.Notes, fmt.Sprintf("%s is a symbolic link (never followed)", rel))
			case t.IsRegular():
				flatFiles[top]++
			}
		}
		sort.Ints(nums)
		if len(nums) > 0 {
			l.Subdirs[top] = nums
		}
		if top == "todo" || top == "intd" {
			for _, n := range nums {
				sub := top + "/" + strconv.Itoa(n)
				ents, err := readDirBeneath(abs, sub)
				if err != nil {
					continue
				}
				for _, e := range ents {
					if entryType(abs, sub+"/"+e.Name(), e).IsRegular() {
						splitFiles[top]++
					}
				}
			}
		}
	}

	// conf-split from mess/info/local/remote.
	votes := map[int]int{}
	for _, top := range SplitDirs {
		n := 0
		set := map[int]bool{}
		for _, d := range l.Subdirs[top] {
			set[d] = true
		}
		for set[n] {
			n++
		}
		l.SplitVotes[top] = n
		if n > 0 {
			votes[n]++
		}
	}
	switch {
	case len(votes) == 0:
		l.Split = DefaultSplit
		l.SplitGuessed = true
		l.Notes = append(l.Notes, fmt.Sprintf("no split subdirectories found; assuming conf-split %d", DefaultSplit))
	default:
		best, bestVotes := 0, 0
		for n, v := range votes {
			if v > bestVotes || v == bestVotes && (n == l.SplitVotes["info"] || best != l.SplitVotes["info"] && n < best) {
				best, bestVotes = n, v
			}
		}
		l.Split = best
	}
	for _, top := range SplitDirs {
		if v := l.SplitVotes[top]; v != 0 && v != l.Split {
			l.Notes = append(l.Notes, fmt.Sprintf("%s/ has subdirectories 0..%d, suggesting conf-split %d, but the queue's split is %d", top, v-1, v, l.Split))
		}
	}
	for _, top := range []string{"mess", "info", "local", "remote", "todo", "intd"} {
		if (top == "todo" || top == "intd") && !(len(l.Subdirs[top]) > 0) {
			continue
		}
		have := map[int]bool{}
		for _, d := range l.Subdirs[top] {
			have[d] = true
			if d >= l.Split {
				l.Notes = append(l.Notes, fmt.Sprintf("%s/%d is beyond conf-split %d: qmail never reads it", top, d, l.Split))
			}
		}
		if top == "todo" || top == "intd" {
			continue
		}
		var missing []int
		for d := 0; d < l.Split; d++ {
			if !have[d] {
				missing = append(missing, d)
			}
		}
		if len(missing) > 0 && len(missing) < l.Split {
			l.Notes = append(l.Notes, fmt.Sprintf("%s/ lacks split subdirectories %v", top, missing))
		} else if len(missing) == l.Split && !l.SplitGuessed {
			l.Notes = append(l.Notes, fmt.Sprintf("%s/ has no split subdirectories", top))
		}
	}

	// big-todo from where the envelope files are.
	flat := flatFiles["todo"] + flatFiles["intd"]
	split := splitFiles["todo"] + splitFiles["intd"]
	switch {
	case flat > 0 && split == 0:
		l.TodoEvidence = fmt.Sprintf("%d envelope files directly in todo/ and intd/: flat todo (stock qmail)", flat)
	case split > 0 && flat == 0:
		l.BigTodo = true
		l.TodoEvidence = fmt.Sprintf("%d envelope files in todo/N/ and intd/N/: big-todo", split)
	case split > 0 && flat > 0:
		l.BigTodo = split > flat
		l.TodoEvidence = fmt.Sprintf("conflicting: %d envelope files directly in todo/ and intd/, %d in their split subdirectories; taking %s", flat, split, map[bool]string{true: "big-todo", false: "flat"}[l.BigTodo])
		l.Notes = append(l.Notes, l.TodoEvidence)
	default:
		l.TodoGuessed = true
		l.TodoEvidence = "no envelope files in todo/ or intd/; assuming flat todo (stock qmail)"
		if len(l.Subdirs["todo"]) > 0 || len(l.Subdirs["intd"]) > 0 {
			l.TodoEvidence += "; todo/N or intd/N subdirectories exist but prove nothing"
		}
	}
	if !l.BigTodo {
		for _, top := range []string{"todo", "intd"} {
			if len(l.Subdirs[top]) > 0 && !l.TodoGuessed {
				l.Notes = append(l.Notes, fmt.Sprintf("%s/ holds numeric subdirectories on a flat-todo queue: qmail-send takes each for a message id", top))
			}
		}
	}
	return l, nil
}

// ErrSendRunning is returned by LockSend when qmail-send holds
// lock/sendmutex.
var ErrSendRunning = errors.New("qmail-send is running (lock/sendmutex is locked)")

// openSendmutex opens lock/sendmutex the way qmail-send.c:main() does
// (open_write: O_WRONLY|O_NDELAY), never creating it and never following a
// symbolic link.
func openSendmutex(root string) (*os.File, error) {
	f, err := openBeneath(root, "lock/sendmutex", unix.O_WRONLY|unix.O_NONBLOCK)
	if errors.Is(err, unix.EROFS) {
		// A queue on a read-only file system (a mounted snapshot, or a
		// dry run's proof): flock(2) locks through a read-only
		// descriptor just as well, and nothing can write there anyway.
		return openBeneath(root, "lock/sendmutex", unix.O_RDONLY|unix.O_NONBLOCK)
	}
	return f, err
}

// SendLocked reports whether qmail-send (or anyone else, LockSend included)
// holds lock/sendmutex. qmail-send.c:main() takes lock_exnb() = flock
// LOCK_EX|LOCK_NB (lock_exnb.c with HASFLOCK) for its whole life; trying the
// same lock tells whether it runs. A missing sendmutex is an error wrapping
// fs.ErrNotExist (qmail-send cannot start without it).
func SendLocked(root string) (bool, error) {
	f, err := openSendmutex(root)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = flockRetry(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	// A qmail built without HASFLOCK locks with lockf() (lock_exnb.c), a
	// POSIX lock that flock() does not see; ask for it without taking it.
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk); err == nil && lk.Type != unix.F_UNLCK {
		return true, nil
	}
	return false, nil // closing f releases the probe lock
}

// LockSend takes lock/sendmutex exactly as qmail-send does, without waiting,
// and holds it until unlock is called, so qmail-send cannot start while the
// queue is being changed. It fails with ErrSendRunning when the lock is held.
func LockSend(root string) (unlock func(), err error) {
	f, err := openSendmutex(root)
	if err != nil {
		return nil, err
	}
	err = flockRetry(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		f.Close()
		return nil, fmt.Errorf("qmailq: %s: %w", f.Name(), ErrSendRunning)
	}
	if err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err == unix.EINTR {
			continue
		}
		return err
	}
}
