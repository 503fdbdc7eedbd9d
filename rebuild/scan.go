package rebuild

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"golang.org/x/sys/unix"
)

// node is one directory entry as lstat saw it.
type node struct {
	Rel   string      // relative to the queue root
	Type  fs.FileMode // type bits only (0 for a regular file)
	Perm  fs.FileMode // permission, set-id and sticky bits
	UID   int
	GID   int
	Size  int64
	Ino   uint64
	Dev   uint64
	Nlink uint64
	Atime time.Time
	Mtime time.Time
}

func (n *node) isDir() bool  { return n.Type == fs.ModeDir }
func (n *node) isFile() bool { return n.Type == 0 }

func nodeFromStat(rel string, st *unix.Stat_t) *node {
	n := &node{
		Rel:   rel,
		UID:   int(st.Uid),
		GID:   int(st.Gid),
		Size:  st.Size,
		Ino:   st.Ino,
		Dev:   uint64(st.Dev),
		Nlink: uint64(st.Nlink),
		Atime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		Mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Perm:  fs.FileMode(st.Mode & 0o777),
	}
	if st.Mode&unix.S_ISUID != 0 {
		n.Perm |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		n.Perm |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		n.Perm |= fs.ModeSticky
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.Type = fs.ModeDir
	case unix.S_IFLNK:
		n.Type = fs.ModeSymlink
	case unix.S_IFIFO:
		n.Type = fs.ModeNamedPipe
	case unix.S_IFSOCK:
		n.Type = fs.ModeSocket
	case unix.S_IFCHR:
		n.Type = fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		n.Type = fs.ModeDevice
	case unix.S_IFREG:
	default:
		n.Type = fs.ModeIrregular
	}
	return n
}

func typeName(t fs.FileMode) string {
	switch {
	case t == 0:
		return "regular file"
	case t == fs.ModeDir:
		return "directory"
	case t == fs.ModeSymlink:
		return "symbolic link"
	case t == fs.ModeNamedPipe:
		return "fifo"
	case t == fs.ModeSocket:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// tree reads a directory tree without ever following a symbolic link below
// its root: every directory is opened with openat(O_NOFOLLOW|O_DIRECTORY)
// relative to its parent's descriptor.
type tree struct {
	root string
	fd   int
}

func openTree(root string) (*tree, error) {
	fd, err := safefs.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	return &tree{root: root, fd: fd}, nil
}

func (t *tree) close() { unix.Close(t.fd) }

// openAt opens rel ("." for the root) beneath the root through
// safefs.OpenBeneath: no symbolic link followed, on the way or at the end.
func (t *tree) openAt(rel string, flags int) (int, error) {
	if rel == "." || rel == "" {
		return unix.Dup(t.fd)
	}
	fd, err := safefs.OpenBeneath(t.fd, rel, flags, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			err = fmt.Errorf("%s: symbolic link or non-directory refused: %w", rel, err)
		}
		return -1, &os.PathError{Op: "open", Path: path.Join(t.root, rel), Err: err}
	}
	return fd, nil
}

// openRegular opens a regular file beneath the root to read it
// (safefs.OpenRegular): a FIFO or device planted in the queue is refused
// without blocking.
func (t *tree) openRegular(rel string) (*os.File, error) {
	var st unix.Stat_t
	fd, err := safefs.OpenRegular(t.fd, rel, &st)
	if err == safefs.ErrNotRegular {
		return nil, fmt.Errorf("%s: not a regular file", path.Join(t.root, rel))
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path.Join(t.root, rel), Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(t.root, rel)), nil
}

func (t *tree) lstat(rel string) (*node, error) {
	if rel == "." {
		var st unix.Stat_t
		if err := unix.Fstat(t.fd, &st); err != nil {
			return nil, &os.PathError{Op: "stat", Path: t.root, Err: err}
		}
		return nodeFromStat(".", &st), nil
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	dfd, err := t.openAt(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path.Join(t.root, rel), Err: err}
	}
	return nodeFromStat(rel, &st), nil
}

// list returns the entries of directory rel, lstat'ed, sorted by name.
func (t *tree) list(rel string) ([]*node, error) {
	dfd, err := t.openAt(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), path.Join(t.root, rel))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]*node, 0, len(names))
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // vanished while listing
			}
			return nil, &os.PathError{Op: "lstat", Path: path.Join(t.root, rel, name), Err: err}
		}
		r := name
		if rel != "." {
			r = rel + "/" + name
		}
		out = append(out, nodeFromStat(r, &st))
	}
	return out, nil
}

// readFile reads a regular file of at most max bytes (O_NOFOLLOW, no
// atime update where the kernel allows it).
func (t *tree) readFile(rel string, max int64) ([]byte, error) {
	f, err := t.openRegular(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", f.Name(), fi.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: grew beyond %d bytes", f.Name(), max)
	}
	return data, nil
}

// msg gathers every file that carries one message name, wherever in the
// queue it was found.
type msg struct {
	ID    uint64
	parts [7][]*node // indexed by qmailq.Part
	// merged lists names whose parts were attached to this message because
	// they carry the inode of its mess file (an interrupted rename).
	merged []uint64
	// twin maps a file under the old name to the same file already linked
	// under the new name by an interrupted repair.
	twin map[*node]*node
}

func (m *msg) has(p qmailq.Part) bool { return len(m.parts[p]) > 0 }

// mess returns the message's mess file (the one in the right place when
// there are several).
func (m *msg) one(p qmailq.Part, l *qmailq.Layout) *node {
	ns := m.parts[p]
	if len(ns) == 0 {
		return nil
	}
	for _, n := range ns {
		if n.Rel == l.Path(p, m.ID) {
			return n
		}
	}
	return ns[0]
}

// snapshot is what one walk over a qmail queue found.
type snapshot struct {
	root    string
	layout  *qmailq.Layout
	top     map[string]*node // "." and top-level entries
	subdirs map[string]map[int]*node
	// flatSub: numeric subdirectories inside a flat todo/ or intd/.
	flatSub []*node
	lock    map[string]*node
	pids    []*node
	strays  []stray
	msgs    map[uint64]*msg
	errs    []error
}

type stray struct {
	n   *node
	why string
}

var partOf = map[string]qmailq.Part{
	"mess": qmailq.PartMess, "intd": qmailq.PartIntd, "todo": qmailq.PartTodo,
	"info": qmailq.PartInfo, "local": qmailq.PartLocal, "remote": qmailq.PartRemote,
	"bounce": qmailq.PartBounce,
}

var partNames = []string{"mess", "intd", "todo", "info", "local", "remote", "bounce"}

// takeSnapshot walks root. split <= 0 and todo == TodoAuto mean "as
// detected".
func takeSnapshot(root string, split int, todo TodoLayout) (*snapshot, error) {
	l, err := qmailq.DetectLayout(root)
	if err != nil {
		return nil, err
	}
	if split > 0 {
		l.Split = split
	}
	switch todo {
	case TodoFlat:
		l.BigTodo = false
	case TodoBig:
		l.BigTodo = true
	}
	t, err := openTree(l.Root)
	if err != nil {
		return nil, err
	}
	defer t.close()
	s := &snapshot{
		root:    l.Root,
		layout:  l,
		top:     map[string]*node{},
		subdirs: map[string]map[int]*node{},
		lock:    map[string]*node{},
		msgs:    map[uint64]*msg{},
	}
	rootNode, err := t.lstat(".")
	if err != nil {
		return nil, err
	}
	s.top["."] = rootNode
	ents, err := t.list(".")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		s.top[e.Rel] = e
	}
	addPart := func(p qmailq.Part, n *node) {
		id, ok := qmailq.ParseID(path.Base(n.Rel))
		if !ok || !n.isFile() {
			why := "name is not a qmail message id"
			if ok {
				why = "a " + typeName(n.Type) + " where a message file belongs"
			}
			s.strays = append(s.strays, stray{n, why})
			return
		}
		m := s.msgs[id]
		if m == nil {
			m = &msg{ID: id}
			s.msgs[id] = m
		}
		m.parts[p] = append(m.parts[p], n)
	}
	for _, top := range partNames {
		tn := s.top[top]
		if tn == nil || !tn.isDir() {
			continue
		}
		p := partOf[top]
		split := isSplitDir(top, l.BigTodo)
		ents, err := t.list(top)
		if err != nil {
			s.errs = append(s.errs, err)
			continue
		}
		for _, e := range ents {
			num, numeric := qmailq.ParseID(path.Base(e.Rel))
			if e.isDir() && numeric && top != "bounce" {
				if split {
					if s.subdirs[top] == nil {
						s.subdirs[top] = map[int]*node{}
					}
					if num < 1<<31 {
						s.subdirs[top][int(num)] = e
					}
				} else {
					s.flatSub = append(s.flatSub, e)
				}
				sub, err := t.list(e.Rel)
				if err != nil {
					s.errs = append(s.errs, err)
					continue
				}
				for _, f := range sub {
					addPart(p, f)
				}
				continue
			}
			addPart(p, e)
		}
	}
	if n := s.top["pid"]; n != nil && n.isDir() {
		ents, err := t.list("pid")
		if err != nil {
			s.errs = append(s.errs, err)
		}
		for _, e := range ents {
			if e.isFile() {
				s.pids = append(s.pids, e)
			} else {
				s.strays = append(s.strays, stray{e, "a " + typeName(e.Type) + " in pid/"})
			}
		}
	}
	if n := s.top["lock"]; n != nil && n.isDir() {
		for _, name := range []string{"lock/sendmutex", "lock/tcpto", "lock/trigger"} {
			if n, err := t.lstat(name); err == nil {
				s.lock[name] = n
			} else if !errors.Is(err, fs.ErrNotExist) {
				s.errs = append(s.errs, err)
			}
		}
	}
	s.mergeRenamed()
	return s, nil
}

// mergeRenamed attaches to a misnamed message the parts already moved to
// its inode number by an interrupted repair (repairer.build): parts named
// after the inode of a misnamed mess belong to it when they have no mess of
// their own (a message that keeps its name renames mess last) or when
// their mess is the same file (a message renamed to its inode is linked to
// the new name first; such second names are recorded in msg.twin, and the
// repair then only unlinks the old name).
func (s *snapshot) mergeRenamed() {
	ids := make([]uint64, 0, len(s.msgs))
	for id := range s.msgs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		m := s.msgs[id]
		if m == nil || len(m.parts[qmailq.PartMess]) != 1 {
			continue
		}
		ino := m.parts[qmailq.PartMess][0].Ino
		if ino == id {
			continue
		}
		o := s.msgs[ino]
		if o == nil {
			continue
		}
		// A mess under the inode's name that is the same file (a second
		// hard link): repair links the files to their new names before it
		// moves info (see repairer.build), so that is an interrupted
		// repair too.
		if o.has(qmailq.PartMess) && (len(o.parts[qmailq.PartMess]) != 1 || o.parts[qmailq.PartMess][0].Ino != ino) {
			continue
		}
		for p := range o.parts {
			for _, on := range o.parts[p] {
				if tw := twinOf(m.parts[p], on); tw != nil {
					if m.twin == nil {
						m.twin = map[*node]*node{}
					}
					m.twin[tw] = on
					continue
				}
				m.parts[p] = append(m.parts[p], on)
			}
		}
		m.merged = append(m.merged, ino)
		delete(s.msgs, ino)
	}
}

// twinOf returns the node of ns that is the same file as n (a second
// name made by link(2)), or nil.
func twinOf(ns []*node, n *node) *node {
	for _, x := range ns {
		if x.Ino == n.Ino && x.Type.IsRegular() && n.Type.IsRegular() {
			return x
		}
	}
	return nil
}

func (s *snapshot) sortedIDs() []uint64 {
	ids := make([]uint64, 0, len(s.msgs))
	for id := range s.msgs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
