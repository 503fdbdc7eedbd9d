package rebuild

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

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

type defects struct {
	Defects []struct {
		Defect     string           `json:"defect"`
		Kind       string           `json:"kind"`
		MessageIDs []int64          `json:"message_ids"`
		Details    []map[string]any `json:"details"`
	} `json:"defects"`
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
	var d defects
	readJSON(t, filepath.Join(qmailFixtures, "broken-defects.json"), &d)
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
