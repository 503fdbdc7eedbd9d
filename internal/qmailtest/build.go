package qmailtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"golang.org/x/sys/unix"
)

// PrefixEnv names an existing qmail installation (made by build-qmail.sh)
// to use instead of building one.
const PrefixEnv = "QSURGEON_QMAIL_PREFIX"

// readyMark is written into a prefix once the harness finished preparing
// it (the build, the pristine queue copy and instcheck).
const readyMark = ".qsurgeon-ready"

// pristine is the copy of the empty queue that `make setup` created; every
// Instance starts from it.
const pristine = "queue.pristine"

// howTo is appended to every skip message.
const howTo = "to run the real-qmail tests: as root, with cc and make (apt-get install -y build-essential), " +
	"keep ../shared/tools/build-qmail.sh and ../shared/vendor/notqmail-*.tar.gz beside the checkout, " +
	"or set " + PrefixEnv + " to a prefix that script built; under CI=true these tests fail instead of skipping"

var (
	prefixOnce sync.Once
	prefixDir  string
	prefixErr  error
	prefixSkip bool // the error means "not available here", not "broken"
)

// Prefix returns a qmail prefix built by build-qmail.sh, building it at
// most once per machine and source tarball: the prefix is
// $TMPDIR/qsurgeon-qmail-<sha256 of the tarball>, made under an exclusive
// lock so that the test processes of several packages (go test runs them
// in parallel) share one build. When neither the script nor a built prefix
// is there, the test is skipped with a message saying how to run it; under
// CI=true it fails instead.
func Prefix(t testing.TB) string {
	t.Helper()
	prefixOnce.Do(func() { prefixDir, prefixSkip, prefixErr = findOrBuild() })
	if prefixErr != nil {
		if prefixSkip && os.Getenv("CI") != "true" {
			t.Skipf("qmailtest: %v (%s)", prefixErr, howTo)
		}
		t.Fatalf("qmailtest: %v (%s)", prefixErr, howTo)
	}
	return prefixDir
}

// Available reports whether Prefix would succeed without building (a
// prefix is ready) or could build one; it never builds.
func Available() error {
	if os.Getuid() != 0 {
		return errors.New("qmailtest: needs root (qmail-send switches users)")
	}
	if p := os.Getenv(PrefixEnv); p != "" {
		if _, err := os.Stat(filepath.Join(p, "bin", "qmail-send")); err != nil {
			return fmt.Errorf("qmailtest: %s=%s holds no qmail: %w", PrefixEnv, p, err)
		}
		return nil
	}
	_, _, err := sources()
	return err
}

// sources finds build-qmail.sh and the notqmail tarball beside the
// repository.
func sources() (script, tarball string, err error) {
	repo, err := testkit.RepoDir()
	if err != nil {
		return "", "", err
	}
	shared := filepath.Join(filepath.Dir(repo), "shared")
	script = filepath.Join(shared, "tools", "build-qmail.sh")
	if _, err := os.Stat(script); err != nil {
		return "", "", fmt.Errorf("no build script: %w", err)
	}
	tgz, _ := filepath.Glob(filepath.Join(shared, "vendor", "notqmail-*.tar.gz"))
	if len(tgz) == 0 {
		return "", "", fmt.Errorf("no notqmail source in %s", filepath.Join(shared, "vendor"))
	}
	return script, tgz[0], nil
}

func findOrBuild() (dir string, skip bool, err error) {
	if os.Getuid() != 0 {
		return "", true, errors.New("needs root (qmail-send switches users)")
	}
	if p := os.Getenv(PrefixEnv); p != "" {
		if !filepath.IsAbs(p) {
			return "", false, fmt.Errorf("%s=%s is not an absolute path", PrefixEnv, p)
		}
		return p, false, prepare(p, "", "")
	}
	script, tarball, err := sources()
	if err != nil {
		return "", true, err
	}
	if _, err := exec.LookPath("cc"); err != nil {
		return "", true, errors.New("no C compiler (cc)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		return "", true, errors.New("no make")
	}
	sum, err := fileHash(tarball)
	if err != nil {
		return "", false, err
	}
	dir = filepath.Join(os.TempDir(), "qsurgeon-qmail-"+sum[:16])
	return dir, false, prepare(dir, script, tarball)
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// prepare builds prefix (when script is given) and adds what the harness
// needs, all under prefix.lock: the first process builds, the others wait
// and find readyMark.
func prepare(prefix, script, tarball string) error {
	unlock, err := lockFile(prefix+".lock", 15*time.Minute)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(prefix, readyMark)); err == nil {
		return nil
	}
	if script != "" {
		cmd := exec.Command("bash", script, prefix)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build-qmail.sh %s: %v\n%s", prefix, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(prefix, "bin", "qmail-send")); err != nil {
		return fmt.Errorf("%s holds no qmail: %w", prefix, err)
	}
	if _, err := os.Stat(filepath.Join(prefix, pristine)); err != nil {
		// The empty queue exactly as `make setup` (hier.c) made it.
		if out, err := exec.Command("cp", "-a", filepath.Join(prefix, "queue"), filepath.Join(prefix, pristine)).CombinedOutput(); err != nil {
			return fmt.Errorf("copying the empty queue: %v: %s", err, out)
		}
	}
	if tarball != "" {
		if err := buildInstcheck(prefix, tarball); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(prefix, readyMark), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644)
}

// buildInstcheck compiles qmail's own instcheck for prefix (build-qmail.sh
// runs it once and does not install it): it compares every file and
// directory of hier.c, the queue included, with what is on disk.
func buildInstcheck(prefix, tarball string) error {
	work, err := os.MkdirTemp("", "qsurgeon-instcheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if out, err := exec.Command("tar", "-xzf", tarball, "-C", work).CombinedOutput(); err != nil {
		return fmt.Errorf("instcheck: %v: %s", err, out)
	}
	src := filepath.Join(work, "notqmail")
	if err := os.WriteFile(filepath.Join(src, "conf-qmail"), []byte(prefix+"\n"), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("make", "instcheck")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make instcheck: %v: %s", err, tail(string(out), 2000))
	}
	dst := filepath.Join(prefix, "qsurgeon-bin")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(src, "instcheck"))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, "instcheck"), b, 0o755)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// lockFile takes an exclusive flock on path (created if needed), waiting at
// most wait. The returned function releases it.
func lockFile(path string, wait time.Duration) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: still held by another test process after %v", path, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
