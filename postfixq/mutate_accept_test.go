package postfixq

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// realPostfix is a minimal config directory for a queue copy, with the real
// postsuper and postqueue run against it.
type realPostfix struct {
	t    *testing.T
	conf string
}

func newRealPostfix(t *testing.T, root string) *realPostfix {
	t.Helper()
	postsuperTwin(t, root) // makes the path searchable by mail_owner
	conf := t.TempDir()
	os.Chmod(conf, 0o755)
	mainCF := fmt.Sprintf("compatibility_level = 3.6\nqueue_directory = %s\ndata_directory = %s\nmail_owner = postfix\nsetgid_group = postdrop\nhash_queue_depth = 1\nhash_queue_names = deferred, defer\n", root, t.TempDir())
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return &realPostfix{t: t, conf: conf}
}

func (r *realPostfix) run(bin string, args ...string) []byte {
	r.t.Helper()
	out, err := exec.Command(bin, append([]string{"-c", r.conf}, args...)...).Output()
	if err != nil {
		r.t.Fatalf("%s %v: %v", bin, args, err)
	}
	return out
}

// TestFaultCutPostfixAccepts cuts every action at every step on a copy of
// the real fixture and asks the real Postfix about what is left: `postsuper
// -s` (what every `postfix start` and `reload` runs) must find nothing to
// rename or move, and `postqueue -j` must still list every message the
// reader lists. (The copy is first made valid with `postsuper -s` itself:
// an extracted queue's names no longer match their inodes.)
func TestFaultCutPostfixAccepts(t *testing.T) {
	for _, c := range mutCases() {
		t.Run(c.action, func(t *testing.T) {
			steps := -1
			for k := 1; steps < 0 || k <= steps; k++ {
				root := copyFixture(t)
				pf := newRealPostfix(t, root)
				pf.run("/usr/sbin/postsuper", "-s")
				s, msgs := mutReadAll(t, root)
				m := msgs[c.choose(s, msgs)[0]]
				if steps < 0 {
					// Count the steps on a twin of this copy.
					twin := copyFixture(t)
					newRealPostfix(t, twin).run("/usr/sbin/postsuper", "-s")
					ts, tmsgs := mutReadAll(t, twin)
					counter := safefs.NewFaulty(testkit.OpenFS(t, twin), 0)
					if err := c.do(ts, counter, tmsgs[c.choose(ts, tmsgs)[0]], ActOptions{}); err != nil {
						t.Fatal(err)
					}
					steps = counter.Calls()
					if steps == 0 {
						t.Fatal("no steps")
					}
				}
				label := fmt.Sprintf("%s of %s cut at %d/%d", c.action, m.ID, k, steps)
				if err := c.do(s, safefs.NewFaulty(testkit.OpenFS(t, root), k), m, ActOptions{}); err == nil && k < steps {
					t.Fatalf("%s: the cut did not happen", label)
				}
				cut := testkit.Snapshot(t, root)
				pf.run("/usr/sbin/postsuper", "-s")
				if d := cut.Diff(testkit.Snapshot(t, root), testkit.IgnoreDirTimes()); len(d) > 0 {
					t.Errorf("%s: postsuper -s changed the queue:\n%s", label, strings.Join(d, "\n"))
				}
				_, left := mutReadAll(t, root)
				listed := 0
				sc := bufio.NewScanner(bytes.NewReader(pf.run("/usr/sbin/postqueue", "-j")))
				sc.Buffer(make([]byte, 1<<20), 16<<20)
				for sc.Scan() {
					if len(bytes.TrimSpace(sc.Bytes())) > 0 {
						listed++
					}
				}
				if listed != len(left) {
					t.Errorf("%s: postqueue -j lists %d messages, the reader %d", label, listed, len(left))
				}
			}
		})
	}
}
