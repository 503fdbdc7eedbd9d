package quarantine

import (
	"os"
	"path/filepath"
	"testing"
)

// An append after a line cut short (a crash, a full disk) drops the cut
// line instead of joining it: both entries read back, without a warning.
func TestAppendManifestDropsCutLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "manifest.jsonl")
	if err := appendManifest(p, Entry{Key: "a", ID: "A"}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"key":"cut","id`)
	f.Close()
	if err := appendManifest(p, Entry{Key: "b", ID: "B"}); err != nil {
		t.Fatal(err)
	}
	es, err := ReadManifest(p)
	if err != nil || len(es) != 2 || es[0].ID != "A" || es[1].ID != "B" {
		t.Errorf("ReadManifest = %+v, %v", es, err)
	}
}
