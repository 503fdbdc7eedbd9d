package surgery_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// incidentCopy opens a copy of the real Postfix 3.7 incident fixture in a
// new temporary directory tmp; done removes it. On an error it prints it
// and returns a nil src.
func incidentCopy() (src queue.Source, tmp string, done func()) {
	tmp, err := os.MkdirTemp("", "surgery-example")
	if err != nil {
		fmt.Println(err)
		return nil, "", func() {}
	}
	done = func() { os.RemoveAll(tmp) }
	if err := testkit.Untar("../testdata/queues/postfix-incident/queue.tar.gz", tmp); err != nil {
		fmt.Println(err)
		return nil, tmp, done
	}
	if src, err = surgery.Open(surgery.OpenOptions{Dir: filepath.Join(tmp, "postfix-incident-a")}); err != nil {
		fmt.Println(err)
	}
	return src, tmp, done
}

// openFixture opens a fresh copy of a bundled fixture (its tarball under
// testdata/queues, the queue at sub inside it) and returns its root.
func openFixture(t *testing.T, tarball, sub string) (queue.Source, string) {
	t.Helper()
	root := filepath.Join(testkit.Extract(t, "../testdata/queues/"+tarball), sub)
	src, err := surgery.Open(surgery.OpenOptions{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	return src, root
}
