// Package testkit is test support shared by qsurgeon's packages: where the
// fixture queues are, how to unpack them the way root keeps them (numeric
// owners, modes, FIFOs), and what the fixtures say about themselves. Only
// _test.go files import it.
//
//	root := filepath.Join(testkit.Extract(t, testkit.Fixture(t, "qmail-incident", "queue.tar.gz")), "queue")
//	users, groups := testkit.QmailOwners(t)
//
// Every function that takes a testing.TB fails the test (t.Fatal) on
// error; Untar returns the error for extractions shared by several tests
// (sync.Once, TestMain).
package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/queue"
)

// The top directory inside each fixture's queue.tar.gz (and broken.tar.gz).
const (
	QmailRoot   = "queue"              // qmail-incident
	PostfixRoot = "postfix-incident-a" // postfix-incident
)

// Repo returns the repository root: the directory holding go.mod, found
// from this source file (runtime.Caller), else upwards from the working
// directory.
func Repo(t testing.TB) string {
	t.Helper()
	dir, err := repo()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// RepoDir is Repo for code that runs outside a test (a sync.Once shared by
// several tests).
func RepoDir() (string, error) { return repo() }

func repo() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Join(filepath.Dir(file), "..", "..")
		if isRoot(dir) {
			return filepath.Clean(dir), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testkit: %w", err)
	}
	for {
		if isRoot(dir) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("testkit: no go.mod above the working directory")
		}
		dir = up
	}
}

func isRoot(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "go.mod"))
	return err == nil && fi.Mode().IsRegular()
}

// Fixture returns the path of rel under testdata/queues (for example
// Fixture(t, "qmail-incident", "truth.json")) and fails the test when
// nothing is there.
func Fixture(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Repo(t), "testdata", "queues"}, rel...)...)
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("testkit: fixture: %v", err)
	}
	return p
}

// FastTempDir is a fresh temporary directory on tmpfs (/dev/shm) when the
// machine has one, else t.TempDir(); either way it is removed when the
// test ends. Creating the fixtures' thousand-odd files there is many times
// faster than on a journaling disk file system. Do not use it where a test
// needs its files on the same file system as t.TempDir() or os.TempDir().
func FastTempDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "qsurgeon-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// Untar unpacks the gzip tarball into the existing directory dir as root
// keeps it: tar --numeric-owner -xpzf (owners by number, not by the names
// on this machine; modes, FIFOs and times as archived).
func Untar(tarball, dir string) error {
	out, err := exec.Command("tar", "--numeric-owner", "-xpzf", tarball, "-C", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("testkit: extracting %s into %s: %v\n%s", tarball, dir, err, out)
	}
	return nil
}

// Extract unpacks tarball (see Untar) into a fresh t.TempDir() and returns
// that directory.
func Extract(t testing.TB, tarball string) string {
	t.Helper()
	return ExtractInto(t, tarball, t.TempDir())
}

// ExtractInto unpacks tarball (see Untar) into the existing directory dir
// and returns dir.
func ExtractInto(t testing.TB, tarball, dir string) string {
	t.Helper()
	if err := Untar(tarball, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// QmailOwners returns the qmail users and groups (name → numeric id) the
// qmail-incident fixture was made with, from its truth.json: the owners
// the files in its tarballs carry.
func QmailOwners(t testing.TB) (users, groups map[string]int) {
	t.Helper()
	p := Fixture(t, "qmail-incident", "truth.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Owners struct {
			UIDs map[string]int `json:"uids"`
			GIDs map[string]int `json:"gids"`
		} `json:"owners"`
	}
	if err := json.Unmarshal(data, &tr); err != nil {
		t.Fatalf("testkit: %s: %v", p, err)
	}
	if len(tr.Owners.UIDs) == 0 || len(tr.Owners.GIDs) == 0 {
		t.Fatalf("testkit: %s has no owners", p)
	}
	return tr.Owners.UIDs, tr.Owners.GIDs
}

// OpenFS opens root with the root-confined file operations (safefs), the
// one mutation seam, and closes it when the test ends.
func OpenFS(t testing.TB, root string) *safefs.FS {
	t.Helper()
	f, err := safefs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// ReadAll reads every message src lists, keyed by queue ID; a read error
// or an ID listed twice fails the test (the queue must stay readable).
func ReadAll(t testing.TB, src queue.Source) map[string]*queue.Message {
	t.Helper()
	out := map[string]*queue.Message{}
	var mu sync.Mutex
	err := src.Walk(context.Background(), func(ref queue.Ref) error {
		m, err := src.Read(ref)
		if err != nil {
			return fmt.Errorf("read %s (%s): %w", ref.ID, ref.Path, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if _, dup := out[m.ID]; dup {
			return fmt.Errorf("duplicate ID %s", m.ID)
		}
		out[m.ID] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Header parses the header of a message as delivered or received (net/mail);
// nil when it does not parse.
func Header(data []byte) mail.Header {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil
	}
	return m.Header
}

// Defects is the qmail-incident fixture's broken-defects.json: each damage
// done to broken.tar.gz's queue (its id, the kind of problem it is, the
// messages it hit) and where each message's files are after it.
type Defects struct {
	Defects []struct {
		Defect     string           `json:"defect"`
		Kind       string           `json:"kind"`
		MessageIDs []int64          `json:"message_ids"`
		Details    []map[string]any `json:"details"`
	} `json:"defects"`
	After map[string]struct {
		Paths map[string]string `json:"paths"`
	} `json:"messages_after_damage"`
}

// BrokenDefects reads the qmail-incident fixture's broken-defects.json.
func BrokenDefects(t testing.TB) Defects {
	t.Helper()
	var d Defects
	b, err := os.ReadFile(Fixture(t, "qmail-incident", "broken-defects.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("testkit: broken-defects.json: %v", err)
	}
	return d
}
