package quarantine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"golang.org/x/sys/unix"
)

// extract unpacks a fixture tarball into a fresh temporary directory with
// numeric owners and modes and returns that directory. The quarantine
// directory of a test lives in the same temporary directory, so on the
// same file system.
func extract(t *testing.T, fixture string) string {
	t.Helper()
	return testkit.Extract(t, testkit.Fixture(t, fixture, "queue.tar.gz"))
}

func openFS(t *testing.T, root string) *safefs.FS {
	t.Helper()
	f, err := safefs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fileState is what must not change about a file a test did not select.
type fileState struct {
	typ      uint32
	mode     uint32
	uid, gid uint32
	ino      uint64
	size     int64
	mtime    int64 // regular files only
	sum      [32]byte
}

func (s fileState) String() string {
	return fmt.Sprintf("type %o mode %04o owner %d:%d inode %d size %d mtime %d sum %x", s.typ, s.mode, s.uid, s.gid, s.ino, s.size, s.mtime, s.sum[:6])
}

// snapshot records every entry below root (symbolic links not followed),
// hashing regular files. Directory times are left out: adding and removing
// entries changes them.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{typ: st.Mode & unix.S_IFMT, mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, ino: st.Ino}
		if s.typ == unix.S_IFREG {
			s.size = st.Size
			s.mtime = st.Mtim.Nano()
			f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			copy(s.sum[:], h.Sum(nil))
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// diffSnapshots lists the differences between two snapshots, ignoring the
// paths skip accepts.
func diffSnapshots(a, b map[string]fileState, skip func(p string) bool) []string {
	var d []string
	for p, sa := range a {
		if skip != nil && skip(p) {
			continue
		}
		sb, ok := b[p]
		if !ok {
			d = append(d, "gone: "+p)
			continue
		}
		if sa != sb {
			d = append(d, fmt.Sprintf("changed: %s: %v -> %v", p, sa, sb))
		}
	}
	for p := range b {
		if skip != nil && skip(p) {
			continue
		}
		if _, ok := a[p]; !ok {
			d = append(d, "new: "+p)
		}
	}
	sort.Strings(d)
	return d
}

// readAll reads every message a source lists; any read error fails the
// test (the queue must stay readable).
func readAll(t *testing.T, src queue.Source) map[string]*queue.Message {
	t.Helper()
	out := map[string]*queue.Message{}
	var mu sync.Mutex
	err := src.Walk(context.Background(), func(ref queue.Ref) error {
		m, err := src.Read(ref)
		if err != nil {
			return fmt.Errorf("read %s: %w", ref.ID, err)
		}
		mu.Lock()
		out[m.ID] = m
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// envelopeKey is what a restore must give back about a message.
func envelopeKey(m *queue.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%d|%d|%v|", m.Queue, m.Path, m.Sender, m.SASLUser, m.ClientAddr, m.Size, m.Inode, m.Arrival.UnixNano())
	for _, r := range m.Recipients {
		fmt.Fprintf(&b, "%s/%v/%v/%s;", r.Address, r.Done, r.Canceled, r.Reason)
	}
	if m.Err != nil {
		b.WriteString("err:" + m.Err.Error())
	}
	b.WriteString(strings.Join(m.Problems, ";"))
	return b.String()
}

// faultyMover fails its failAt-th mutating call (Move, every Mutator
// call, Record) and every later one, as if the process had died there.
type faultyMover struct {
	Mover
	failAt int
	calls  int
	mu     sync.Mutex
}

func (f *faultyMover) step() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failAt > 0 && f.calls >= f.failAt {
		return safefs.ErrInjected
	}
	return nil
}

func (f *faultyMover) Move(a Root, from string, b Root, to string) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.Mover.Move(a, from, b, to)
}

func (f *faultyMover) Record(es ...Entry) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.Mover.Record(es...)
}

func (f *faultyMover) Mutator(r Root) queue.Mutator {
	return &faultyMut{Mutator: f.Mover.Mutator(r), f: f}
}

type faultyMut struct {
	queue.Mutator
	f *faultyMover
}

func (m *faultyMut) Rename(a, b string) error {
	if err := m.f.step(); err != nil {
		return err
	}
	return m.Mutator.Rename(a, b)
}

func (m *faultyMut) Mkdir(p string, perm fs.FileMode, uid, gid int) error {
	if err := m.f.step(); err != nil {
		return err
	}
	return m.Mutator.Mkdir(p, perm, uid, gid)
}

func (m *faultyMut) Chmod(p string, perm fs.FileMode) error {
	if err := m.f.step(); err != nil {
		return err
	}
	return m.Mutator.Chmod(p, perm)
}

func (m *faultyMut) Chown(p string, uid, gid int) error {
	if err := m.f.step(); err != nil {
		return err
	}
	return m.Mutator.Chown(p, uid, gid)
}

func (m *faultyMut) Chtimes(p string, a, b time.Time) error {
	if err := m.f.step(); err != nil {
		return err
	}
	return m.Mutator.Chtimes(p, a, b)
}

// partsAccounted checks that every part of every manifest entry is either
// in the queue (at its old place, or where a restore puts it) or in the
// quarantine directory, by inode.
func partsAccounted(t *testing.T, queueRoot, dir string, entries []Entry, queuePaths func(e Entry, p Part) []string) {
	t.Helper()
	for _, e := range entries {
		if e.State == StateRestored {
			continue // its parts may have been quarantined again since
		}
		for _, p := range e.Parts {
			found := false
			cands := []string{filepath.Join(dir, p.DirPath)}
			for _, q := range queuePaths(e, p) {
				cands = append(cands, filepath.Join(queueRoot, q))
			}
			for _, c := range cands {
				var st unix.Stat_t
				if unix.Lstat(c, &st) == nil && st.Ino == p.Inode {
					found = true
				}
			}
			if !found {
				t.Errorf("entry %s (%s): part %s (inode %d) is lost: not at %v", e.Key, e.State, p.Name, p.Inode, cands)
			}
		}
	}
}

func readManifest(t *testing.T, dir string) []Entry {
	t.Helper()
	es, err := ReadManifest(filepath.Join(dir, ManifestName))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return es
}
