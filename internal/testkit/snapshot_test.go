package testkit

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree makes a small tree with each kind of entry a queue holds.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(root, "mess"), 0o750))
	must(os.WriteFile(filepath.Join(root, "mess", "1"), []byte("body\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "mess", "2"), []byte("other\n"), 0o600))
	must(os.Symlink("../outside", filepath.Join(root, "link")))
	must(syscall.Mkfifo(filepath.Join(root, "trigger"), 0o622))
	old := time.Unix(1700000000, 123456789)
	for _, p := range []string{"mess/1", "mess/2", "mess"} {
		must(os.Chtimes(filepath.Join(root, p), old, old))
	}
	return root
}

func TestSnapshotRecords(t *testing.T) {
	root := tree(t)
	s := Snapshot(t, root)
	var paths []string
	for p := range s {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if want := []string{".", "link", "mess", "mess/1", "mess/2", "trigger"}; !slices.Equal(paths, want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	f := s["mess/1"]
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(root, "mess/1"), &st); err != nil {
		t.Fatal(err)
	}
	if !f.Mode.IsRegular() || f.Mode.Perm() != 0o644 || f.Size != 5 || f.Ino != st.Ino || f.UID != st.Uid || f.GID != st.Gid {
		t.Errorf("mess/1: %v", f)
	}
	if f.Sum != sha256.Sum256([]byte("body\n")) {
		t.Errorf("mess/1: sum %x", f.Sum)
	}
	if !f.Mtime.Equal(time.Unix(1700000000, 123456789)) {
		t.Errorf("mess/1: mtime %v", f.Mtime)
	}
	if l := s["link"]; l.Target != "../outside" || l.Mode&os.ModeSymlink == 0 {
		t.Errorf("link: %v", l)
	}
	if p := s["trigger"]; p.Mode&os.ModeNamedPipe == 0 || p.Sum != [32]byte{} {
		t.Errorf("trigger: %v", p)
	}
	if d := s["mess"]; !d.Mode.IsDir() || d.Mode.Perm() != 0o750 {
		t.Errorf("mess: %v", d)
	}
	if d := s.Diff(Snapshot(t, root)); d != nil {
		t.Errorf("two snapshots of an unchanged tree differ: %q", d)
	}
}

func TestSnapshotDiff(t *testing.T) {
	root := tree(t)
	before := Snapshot(t, root)
	j := func(p string) string { return filepath.Join(root, p) }
	// Same size, same mtime, other content.
	if err := os.WriteFile(j("mess/1"), []byte("BODY\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := before["mess/1"].Mtime
	if err := os.Chtimes(j("mess/1"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(j("mess/2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(j("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../elsewhere", j("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(j("mess/3"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	after := Snapshot(t, root)
	var got []string
	for _, l := range before.Diff(after) {
		got = append(got, strings.SplitN(l, ":", 2)[0])
	}
	slices.Sort(got)
	want := []string{"added mess/3", "changed .", "changed link", "changed mess", "changed mess/1", "removed mess/2"}
	if !slices.Equal(got, want) {
		t.Errorf("diff %q, want %q", before.Diff(after), want)
	}
	// Leaving the moved paths and directory times out leaves only the
	// changed file and link.
	moved := func(p string) bool { return p == "mess/2" || p == "mess/3" }
	got = nil
	for _, l := range before.Diff(after, IgnorePaths(moved), IgnoreDirTimes()) {
		got = append(got, strings.SplitN(l, ":", 2)[0])
	}
	slices.Sort(got)
	if want := []string{"changed link", "changed mess/1"}; !slices.Equal(got, want) {
		t.Errorf("diff with options %q, want %q", got, want)
	}
}

func TestSnapshotIgnore(t *testing.T) {
	root := tree(t)
	before := Snapshot(t, root)
	// Reading moves nothing Diff compares; atime is recorded but ignored.
	if err := os.Chtimes(filepath.Join(root, "mess/1"), time.Unix(1800000000, 0), time.Time{}); err != nil {
		t.Fatal(err)
	}
	after := Snapshot(t, root)
	if !after["mess/1"].Atime.Equal(time.Unix(1800000000, 0)) {
		t.Errorf("atime %v not recorded", after["mess/1"].Atime)
	}
	if d := before.Diff(after); d != nil || !before["mess/1"].Equal(after["mess/1"]) {
		t.Errorf("an atime change counts: %q", d)
	}
	// A FIFO's and a directory's mtime: only IgnoreNonFileTimes leaves
	// out the FIFO's, both leave out the directory's.
	now := time.Now()
	for _, p := range []string{"trigger", "mess"} {
		if err := os.Chtimes(filepath.Join(root, p), time.Time{}, now); err != nil {
			t.Fatal(err)
		}
	}
	after = Snapshot(t, root)
	if d := before.Diff(after); len(d) != 2 {
		t.Errorf("diff %q, want trigger and mess", d)
	}
	if d := before.Diff(after, IgnoreDirTimes()); len(d) != 1 || !strings.HasPrefix(d[0], "changed trigger:") {
		t.Errorf("IgnoreDirTimes: %q, want trigger only", d)
	}
	if d := before.Diff(after, IgnoreNonFileTimes()); d != nil {
		t.Errorf("IgnoreNonFileTimes: %q", d)
	}
	// A file's mtime always counts.
	if err := os.Chtimes(filepath.Join(root, "mess/2"), time.Time{}, now); err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(Snapshot(t, root), IgnoreNonFileTimes()); len(d) != 1 || !strings.HasPrefix(d[0], "changed mess/2:") {
		t.Errorf("file mtime: %q", d)
	}
	// A copy of the tree differs only by inodes.
	cp := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", root, cp).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	a, b := Snapshot(t, root), Snapshot(t, cp)
	if d := a.Diff(b); len(d) != len(a) {
		t.Errorf("a copy: %q, want every entry changed (inode)", d)
	}
	if d := a.Diff(b, IgnoreInodes()); d != nil {
		t.Errorf("a copy without inodes: %q", d)
	}
}
