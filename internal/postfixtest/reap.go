package postfixtest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ownerFile in an instance's or sink's root holds the pid of the test
// process that made it. A test binary killed before its t.Cleanup ran (go
// test -timeout, SIGKILL) leaves a daemonized Postfix behind; the next test
// process removes such leftovers whose owner is gone.
const ownerFile = "owner.pid"

var reapOnce sync.Once

func writeOwner(root string) error {
	return os.WriteFile(filepath.Join(root, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// reapStale stops and removes leftovers of dead test processes: it kills
// the processes whose working directory is inside such a root (Postfix
// daemons run in queue_directory; smtp-sink's pid is in sink.pid) and
// removes the root. A live owner, or one whose pid was reused, keeps its
// directory: the mistake is always on the side of leaving things alone.
func reapStale() {
	reapOnce.Do(func() {
		for _, pattern := range []string{"qsurgeon-postfixtest-*", "qsurgeon-smtpsink-*"} {
			roots, _ := filepath.Glob(filepath.Join(os.TempDir(), pattern))
			for _, root := range roots {
				b, err := os.ReadFile(filepath.Join(root, ownerFile))
				if err != nil {
					continue
				}
				owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || owner <= 0 || owner == os.Getpid() {
					continue
				}
				if err := syscall.Kill(owner, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
					continue
				}
				reapRoot(root)
			}
		}
	})
}

func reapRoot(root string) {
	var victims []int
	if b, err := os.ReadFile(filepath.Join(root, "sink.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 && procComm(pid) == "smtp-sink" {
			victims = append(victims, pid)
		}
	}
	victims = append(victims, pidsIn(root)...)
	for _, p := range victims {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	if len(victims) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	_ = os.RemoveAll(root)
}

// pidsIn lists live processes whose working directory is dir or below it.
func pidsIn(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}
