package postfixq

import (
	"errors"
	"path"
	"strings"
	"testing"
)

// TestFixtureIDs parses every real queue ID and checks that the hash
// directory Postfix chose is the one HashDir computes.
func TestFixtureIDs(t *testing.T) {
	tf := loadTruth(t)
	for _, m := range tf.Messages {
		id, err := ParseID(m.QueueID)
		if err != nil || id.Kind != ShortID {
			t.Fatalf("%s: %+v %v", m.QueueID, id, err)
		}
		if id.String() != m.QueueID {
			t.Errorf("%s formats back as %s", m.QueueID, id)
		}
		if NewShortID(id.Usec, id.Inode) != m.QueueID {
			t.Errorf("NewShortID round trip of %s", m.QueueID)
		}
		if m.Queue == "deferred" {
			if want := path.Dir(m.Path) + "/"; "deferred/"+HashDir(m.QueueID, 1) != want {
				t.Errorf("%s: hash dir %q, file is in %q", m.QueueID, HashDir(m.QueueID, 1), want)
			}
		}
		ino, err := IDInode(m.QueueID)
		if err != nil || ino != id.Inode || ino == 0 {
			t.Errorf("IDInode(%s) = %d, %v", m.QueueID, ino, err)
		}
	}
}

func TestLongID(t *testing.T) {
	// Observed on Postfix 3.7 (shared doc §2, §3): deferred/A/4jXYNS51ffz5fnf.
	const real = "4jXYNS51ffz5fnf"
	id, err := ParseID(real)
	if err != nil {
		t.Fatal(err)
	}
	if id.Kind != LongID || id.Sec != 1795362424 || id.Usec != 707546 || id.Inode != 753814 {
		t.Errorf("ParseID(%s) = %+v", real, id)
	}
	if got := HashDir(real, 1); got != "A/" {
		t.Errorf("HashDir = %q, want A/", got)
	}
	if got := HashDir(real, 2); got != "A/C/" {
		t.Errorf("HashDir depth 2 = %q", got)
	}
	if NewLongID(1795362424, 707546, 753814) != real || id.String() != real {
		t.Errorf("NewLongID = %s", NewLongID(1795362424, 707546, 753814))
	}
	// The seconds part may contain 'z'; the separator is the last z at index >= 10.
	withZ := NewLongID(51, 3, 9) // "00000z" seconds
	if !strings.HasPrefix(withZ, "00000z") {
		t.Fatalf("NewLongID = %s", withZ)
	}
	if p, err := ParseID(withZ); err != nil || p.Sec != 51 || p.Usec != 3 || p.Inode != 9 {
		t.Errorf("ParseID(%s) = %+v %v", withZ, p, err)
	}
	for _, bad := range []string{"", "ABCDE", "abcdef", "0123G5", "4jXYNS51ffz", "4jXYNS51ffzz", "4jXYNa51ffz5fnf", "FFFFF1", "061A9B8088.123", "A#FIX"} {
		if _, err := ParseID(bad); !errors.Is(err, errBadID) {
			t.Errorf("ParseID(%q) = %v", bad, err)
		}
	}
}

func TestValidNameAndHashDir(t *testing.T) {
	for name, want := range map[string]bool{
		"061A9B8088": true, "4jXYNS51ffz5fnf": true, "example_com": true,
		"": false, "12345.678": false, "061A9B8088#FIX": false, "a/b": false,
		strings.Repeat("A", 255): true, strings.Repeat("A", 256): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
	if got := HashDir("061A9B8088", 1); got != "0/" {
		t.Errorf("%q", got)
	}
	if got := HashDir("061A9B8088", 3); got != "0/6/1/" {
		t.Errorf("%q", got)
	}
	if got := HashDir("AB", 3); got != "A/B/_/" { // dir_forest pads with '_'
		t.Errorf("%q", got)
	}
	if got := HashDir("061A9B8088", 0); got != "" {
		t.Errorf("%q", got)
	}
}
