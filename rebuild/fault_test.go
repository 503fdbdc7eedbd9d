package rebuild

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
)

// copyTree copies a queue with cp -a (owners, modes, times, hard links and
// the FIFO kept) into a fresh directory; the copy has new inodes, like
// every extraction.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dir := fastTempDir(t)
	out, err := exec.Command("cp", "-a", src, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return filepath.Join(dir, filepath.Base(src))
}

// faultPoints returns the calls to fail: all of them when
// QSURGEON_ALL_FAULTS is set (CI, slow), else the first 40 (lost+found
// preparation, hierarchy fixes) and 40 spread evenly over the rest (the
// message moves and renames), always including the last.
func faultPoints(n int) []int {
	var out []int
	all := os.Getenv("QSURGEON_ALL_FAULTS") != ""
	stride := max(1, (n-40)/40)
	for k := 1; k <= n; k++ {
		if all || k <= 40 || (k-40)%stride == 0 || k == n {
			out = append(out, k)
		}
	}
	return out
}

// TestRepairFaults interrupts the repair of the broken queue at each
// mutating call and checks that a second repair then finishes the job:
// the queue checks clean and every file is either in it or in lost+found.
func TestRepairFaults(t *testing.T) {
	template := extract(t, "broken.tar.gz")
	ids := fixtureIDs(t)
	opts := Options{Now: fixtureNow(t)}

	// Count the calls of an uninterrupted repair.
	q := copyTree(t, template)
	p, err := PlanRepair(q, nil, ids, opts)
	if err != nil {
		t.Fatal(err)
	}
	counter := safefs.NewFaulty(openFS(t, p.Base), 0)
	if err := p.Execute(counter, nil); err != nil {
		t.Fatal(err)
	}
	n := counter.Calls()
	if n < 50 {
		t.Fatalf("only %d calls", n)
	}
	for _, k := range faultPoints(n) {
		t.Run(strconv.Itoa(k), func(t *testing.T) {
			q := copyTree(t, template)
			before := inventory(t, q)
			p, err := PlanRepair(q, nil, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Execute(safefs.NewFaulty(openFS(t, p.Base), k), nil)
			if !errors.Is(err, safefs.ErrInjected) {
				t.Fatalf("Execute with a fault at call %d: %v", k, err)
			}
			// Whatever was done so far lost nothing.
			verifyNothingLost(t, q, q+".lost+found", before)
			p2, err := PlanRepair(q, nil, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(p2.Skipped) > 0 {
				t.Errorf("second repair skips %v", p2.Skipped)
			}
			if err := p2.Execute(openFS(t, p2.Base), nil); err != nil {
				t.Fatalf("second repair: %v", err)
			}
			probs, err := CheckQmail(q, ids, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, pr := range probs {
				t.Errorf("after interrupted + second repair: %v", pr)
			}
			verifyNothingLost(t, q, q+".lost+found", before)
		})
	}
}

// fastTempDir is a temporary directory on tmpfs when the machine has
// /dev/shm (creating 1300 files there is ~15 times faster than on a
// virtual disk), else t.TempDir().
func fastTempDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "qsurgeon-rebuild-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
