package quarantine

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	dir := testkit.Extract(t, testkit.Fixture(t, fixture, "queue.tar.gz"))
	if fixture == "postfix-incident" {
		testkit.AdoptPostfixOwners(t, filepath.Join(dir, testkit.PostfixRoot))
	}
	return dir
}

// diffSnapshots lists how snapshot b differs from a, leaving out the
// paths skip accepts and the times and sizes of all but regular files
// (adding and removing entries changes a directory's).
func diffSnapshots(a, b testkit.Tree, skip func(p string) bool) []string {
	return a.Diff(b, testkit.IgnoreNonFileTimes(), testkit.IgnorePaths(skip))
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
