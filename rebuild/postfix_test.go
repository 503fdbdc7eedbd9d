package rebuild

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
)

func TestCheckPostfixCopied(t *testing.T) {
	dir := testkit.Extract(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz"))
	root := filepath.Join(dir, testkit.PostfixRoot)
	cfg := postfixq.DefaultConfig()
	probs, err := CheckPostfix(root, PostfixOptions{Config: &cfg, Now: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, p := range probs {
		kinds[p.Kind]++
		if p.Kind != KindIDNotInode {
			t.Log(p)
		}
		if p.Kind == KindIDNotInode && !strings.Contains(p.Fix, p.ID[:5]) {
			t.Errorf("%v: new name does not keep the microseconds", p)
		}
	}
	if kinds[KindIDNotInode] < 200 {
		t.Errorf("only %d id-not-inode problems on a copied queue", kinds[KindIDNotInode])
	}
}

// TestCheckPostfixMatchesPostsuper: on a copied queue, CheckPostfix
// predicts exactly the renames the real postsuper -s then makes.
func TestCheckPostfixMatchesPostsuper(t *testing.T) {
	postfixtest.Require(t)
	pf := postfixtest.New(t, postfixtest.Options{})
	// postsuper drops privileges to mail_owner: the queue's parents must
	// be searchable.
	dir, err := os.MkdirTemp("", "qsurgeon-postsuper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.ExtractInto(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz"), dir)
	root := filepath.Join(dir, testkit.PostfixRoot)
	cfg := postfixq.DefaultConfig()
	probs, err := CheckPostfix(root, PostfixOptions{Config: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	predicted := map[string]bool{}
	for _, p := range probs {
		if p.Kind == KindIDNotInode || p.Kind == KindLongID || p.Kind == KindWrongHashDir {
			_, after, _ := strings.Cut(p.Fix, "postsuper -s: ")
			if p.Kind == KindWrongHashDir {
				after = strings.TrimPrefix(p.Fix, "rename to ")
			}
			predicted[p.Path+" -> "+strings.Fields(strings.TrimSuffix(after, ")"))[0]] = true
		}
	}
	before := listFiles(t, root)
	pf.Postconf("queue_directory = "+root, "hash_queue_names = deferred, defer", "hash_queue_depth = 1")
	// postsuper logs to maillog_file as mail_owner: let it.
	if f, err := os.OpenFile(pf.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Close()
	}
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(pf.LogFile, uid, -1)
	}
	if out, err := pf.Postsuper("-s"); err != nil {
		t.Fatalf("postsuper -s: %v\n%s", err, out)
	}
	after := listFiles(t, root)
	actual := map[string]bool{}
	for ino, rel := range before {
		if now, ok := after[ino]; ok && now != rel && !isLog(rel) {
			actual[rel+" -> "+now] = true
		}
	}
	for r := range predicted {
		if !actual[r] {
			t.Errorf("predicted but postsuper did not: %s", r)
		}
	}
	for r := range actual {
		if !predicted[r] {
			t.Errorf("postsuper did but not predicted: %s", r)
		}
	}
	if len(actual) < 200 {
		t.Errorf("postsuper renamed only %d files", len(actual))
	}
}

func isLog(rel string) bool {
	for _, d := range pfLogQueues {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// listFiles maps inode -> relative path of every regular file.
func listFiles(t *testing.T, root string) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for rel, ino := range inventory(t, root) {
		out[ino] = rel
	}
	return out
}
