package main

import (
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/qsurgeon/qsurgeon/internal/safefs"
)

// plannedOp is one file operation a dry run would do.
type plannedOp struct {
	kind  string // rename, remove, chmod, move, create, ...
	where string // the directory it acts in: deferred, defer, hold, or "live maildrop" for --into
	text  string // the whole operation, as --list-ops prints it
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
func opsOf(base *safefs.FS, ops []safefs.Op, wherePrefix, textPrefix string) []plannedOp {
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
	out := make([]plannedOp, 0, len(ops))
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
		out = append(out, plannedOp{kind: o.Op, where: wherePrefix + firstDir(o.Path), text: textPrefix + o.String()})
	}
	return out
}

// printDryRun prints what a dry run of an action on n messages would do:
// by default the count of operations per kind and per directory, then a
// sample; with all, every operation.
func printDryRun(w io.Writer, action string, n int, ops []plannedOp, all bool, sample int) {
	fmt.Fprintf(w, "dry run: %s of %d message(s) would do %d file operation(s)", action, n, len(ops))
	if len(ops) == 0 {
		fmt.Fprintln(w, ".")
		return
	}
	if all || len(ops) <= sample {
		fmt.Fprintln(w, ":")
		for _, op := range ops {
			fmt.Fprintf(w, "  %s\n", printable(op.text))
		}
		return
	}
	fmt.Fprintln(w, ":")
	type count struct {
		n     int
		where map[string]int
	}
	kinds := map[string]*count{}
	var order []string
	for _, op := range ops {
		c := kinds[op.kind]
		if c == nil {
			c = &count{where: map[string]int{}}
			kinds[op.kind] = c
			order = append(order, op.kind)
		}
		c.n++
		c.where[op.where]++
	}
	width := 0
	for _, k := range order {
		width = max(width, len(k))
	}
	for _, k := range order {
		c := kinds[k]
		wheres := make([]string, 0, len(c.where))
		for d := range c.where {
			wheres = append(wheres, d)
		}
		sort.Slice(wheres, func(i, j int) bool {
			if c.where[wheres[i]] != c.where[wheres[j]] {
				return c.where[wheres[i]] > c.where[wheres[j]]
			}
			return wheres[i] < wheres[j]
		})
		parts := make([]string, len(wheres))
		for i, d := range wheres {
			parts[i] = fmt.Sprintf("%s %d", printable(d), c.where[d])
		}
		fmt.Fprintf(w, "  %-*s %7d  (%s)\n", width, k, c.n, strings.Join(parts, ", "))
	}
	if sample <= 0 {
		sample = 10
	}
	fmt.Fprintf(w, "first %d of them (--list-ops lists all %d):\n", min(sample, len(ops)), len(ops))
	for _, op := range ops[:min(sample, len(ops))] {
		fmt.Fprintf(w, "  %s\n", printable(op.text))
	}
}
