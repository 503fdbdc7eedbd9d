package rebuild

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/postfixq"
)

func TestCheckQmailBroken(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{Now: fixtureNow(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if p.Kind != KindIDNotInode {
			t.Log(p)
		}
	}
	if missing := matchDefects(t, probs); len(missing) > 0 {
		t.Errorf("defects not reported: %v", missing)
	}
}

func TestCheckQmailClean(t *testing.T) {
	root := extract(t, "queue.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range probs {
		if p.Kind == KindIDNotInode {
			n++
			continue
		}
		t.Errorf("false problem on the clean queue: %v", p)
	}
	if n != 371 {
		t.Errorf("%d id-not-inode problems, want one per message (371)", n)
	}
}

// TestCheckQmailDefectKinds: each planted defect is reported with the kind
// a reader of broken-defects.json would expect (written here from the
// defect descriptions, not from the code's output).
func TestCheckQmailDefectKinds(t *testing.T) {
	root := extract(t, "broken.tar.gz")
	probs, err := CheckQmail(root, fixtureIDs(t), Options{Now: fixtureNow(t)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind, id, path string
	}{
		{KindMessWithoutEnvelope, "10004805", ""},
		{KindZeroLengthMess, "10004835", ""},
		{KindStalePid, "", "pid/10473.1795364104.1"},
		{KindWrongSubdir, "10003718", "mess/13/10003718"},
		{KindWrongSubdir, "10003718", "info/13/10003718"},
		{KindWrongSubdir, "10003718", "remote/13/10003718"},
		{KindWrongSubdir, "10004533", "mess/0/10004533"},
		{KindWrongSubdir, "10006318", "remote/14/10006318"},
		{KindWrongSubdir, "10003719", "mess/24/10003719"},
		{KindWrongSubdir, "10006092", "info/19/10006092"},
		{KindExtraSplitDir, "", "mess/24"},
		{KindInfoWithoutMess, "10004796", ""},
		{KindInfoWithoutMess, "10006447", ""},
		{KindMessWithoutEnvelope, "10006490", ""},
		{KindTodoWithoutIntd, "10004436", "todo/10004436"},
		{KindTodoWithoutIntd, "10006773", "todo/10006773"},
		{KindZeroLengthMess, "10004643", "mess/11/10004643"},
		{KindWrongOwner, "", "info/17"},
		{KindWrongOwner, "10006326", "remote/15/10006326"},
		{KindWrongMode, "10006326", "remote/15/10006326"},
		{KindWrongOwner, "10006771", "remote/0/10006771"},
		{KindWrongOwner, "10003570", "mess/19/10003570"},
		{KindWrongMode, "10003570", "mess/19/10003570"},
		{KindWrongMode, "", "todo"},
		{KindWrongOwner, "10006300", "local/12/10006300"},
		{KindMissing, "", "lock/trigger"},
	}
	for _, w := range want {
		found := false
		for _, p := range probs {
			if p.Kind == w.kind && (w.id == "" || p.ID == w.id) && (w.path == "" || p.Path == w.path) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s problem for id %q path %q", w.kind, w.id, w.path)
		}
	}
	// id-not-inode exactly once per message that has a mess file.
	seen := map[string]int{}
	for _, p := range probs {
		if p.Kind == KindIDNotInode {
			seen[p.ID]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("id-not-inode reported %d times for %s", n, id)
		}
	}
	if len(seen) < 360 {
		t.Errorf("id-not-inode for %d messages only", len(seen))
	}
}

const qmailFixtures = "../testdata/queues/qmail-incident"

// extract unpacks a fixture tarball as root keeps it (numeric owners,
// modes, the FIFO) into a fresh temporary directory and returns the queue
// root inside it.
func extract(t testing.TB, tarball string) string {
	t.Helper()
	dir := testkit.ExtractInto(t, filepath.Join(qmailFixtures, tarball), testkit.FastTempDir(t))
	return filepath.Join(dir, testkit.QmailRoot)
}

func fixtureIDs(t testing.TB) IDs {
	t.Helper()
	users, groups := testkit.QmailOwners(t)
	return IDs{Users: users, Groups: groups}
}

func readJSON(t testing.TB, p string, v any) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// fixtureNow is a reference time 48 h after the fixtures were made, so ages
// do not depend on when the test runs.
func fixtureNow(t testing.TB) time.Time {
	var tr struct {
		Generated string `json:"generated_utc"`
	}
	readJSON(t, filepath.Join(qmailFixtures, "truth.json"), &tr)
	g, err := time.Parse(time.RFC3339, tr.Generated)
	if err != nil {
		t.Fatal(err)
	}
	return g.Add(48 * time.Hour)
}

// matchDefects mirrors check_qmail_check.py: a defect with message ids is
// reported when every id appears as a problem's id or inside its path; a
// queue-level one when any of its paths appears in a problem's JSON text.
func matchDefects(t testing.TB, probs []Problem) (missing []string) {
	d := testkit.BrokenDefects(t)
	if len(d.Defects) == 0 {
		t.Fatal("no defects in broken-defects.json")
	}
	var text []string
	for _, p := range probs {
		b, _ := json.Marshal(p)
		text = append(text, string(b))
	}
	for _, def := range d.Defects {
		hit := false
		if len(def.MessageIDs) > 0 {
			hit = true
			for _, id := range def.MessageIDs {
				s := itoa(uint64(id))
				found := false
				for _, p := range probs {
					if p.ID == s || strings.Contains(p.Path, s) {
						found = true
					}
				}
				hit = hit && found
			}
		} else {
			for _, det := range def.Details {
				for _, k := range []string{"path", "removed", "created"} {
					v, _ := det[k].(string)
					v = strings.TrimPrefix(v, "queue/")
					for _, tx := range text {
						if v != "" && strings.Contains(tx, v) {
							hit = true
						}
					}
				}
			}
		}
		if !hit {
			missing = append(missing, def.Defect+" "+def.Kind)
		}
	}
	return missing
}

func inodeOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

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
	testkit.AdoptPostfixOwners(t, root)
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
