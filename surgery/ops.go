package surgery

import (
	"path"
	"strings"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"github.com/qsurgeon/qsurgeon/quarantine"
)

// Op is one file operation a dry run would do.
type Op struct {
	Kind  string // rename, remove, chmod, move, create, record, ...
	Where string // the directory it acts in: deferred, defer, hold, "dir:ID", or "live maildrop" for --into
	Text  string // the whole operation, as --list-ops prints it
}

// firstDir is the first component of a queue-relative path ("deferred" of
// "deferred/7/7A6D1BE4D7").
func firstDir(p string) string {
	d, _, _ := strings.Cut(strings.TrimPrefix(path.Clean(p), "/"), "/")
	return d
}

// opsOf turns the calls a safefs.DryRun recorded into planned operations,
// leaving out those on files that do not exist: a real run would find
// nothing there and go on (Postfix's delete removes the defer, bounce and
// trace logs of a message "ENOENT ignored", as postsuper does), so listing
// them would describe work that never happens. What the run itself created
// or moved earlier counts as existing; a path below a directory the run
// touched is kept, as its existence cannot be told beforehand.
func opsOf(base *safefs.FS, ops []safefs.Op, wherePrefix, textPrefix string) []Op {
	touched := map[string]bool{} // created, moved in or out, removed
	exists := map[string]bool{}  // what the run made exist
	aboveTouched := func(p string) bool {
		for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
			if touched[d] {
				return true
			}
		}
		return false
	}
	there := func(p string) bool {
		if exists[p] {
			return true
		}
		if touched[p] {
			return false
		}
		if base == nil || aboveTouched(p) {
			return true
		}
		_, err := base.Lstat(p)
		return err == nil
	}
	out := make([]Op, 0, len(ops))
	for _, o := range ops {
		switch o.Op {
		case "remove", "rename", "link", "chmod", "chown", "chtimes":
			if !there(o.Path) {
				continue
			}
		}
		switch o.Op {
		case "remove":
			touched[o.Path], exists[o.Path] = true, false
		case "rename":
			touched[o.Path], exists[o.Path] = true, false
			touched[o.Dest], exists[o.Dest] = true, true
		case "link":
			touched[o.Dest], exists[o.Dest] = true, true
		case "mkdir", "mkfifo", "create":
			touched[o.Path], exists[o.Path] = true, true
		}
		out = append(out, Op{Kind: o.Op, Where: wherePrefix + firstDir(o.Path), Text: textPrefix + o.String()})
	}
	return out
}

// stepOps turns the steps a quarantine.DryRun recorded into planned
// operations.
func stepOps(steps []quarantine.Step) []Op {
	out := make([]Op, 0, len(steps))
	for _, s := range steps {
		root := s.Root
		if root == "" { // a manifest record: the quarantine's own step
			root = quarantine.InQueue
		}
		out = append(out, Op{Kind: s.Op, Where: string(root) + ":" + firstDir(s.Path), Text: s.String()})
	}
	return out
}
