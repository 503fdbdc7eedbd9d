package qmailq

import (
	"cmp"
	"context"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Walk's memory is bounded by what is unusual in the queue and by one
// split subdirectory's messages, not by the queue: qmail's fmtqfn() puts
// every split part of message id in subdirectory id % conf-split, so the
// files of one message meet in one subdirectory number across mess/, info/,
// local/, remote/ (and todo/, intd/ with big-todo).
//
// Pass 1 lists every directory by name only and keeps just what does not
// lie where fmtqfn() puts it: files of flat parts (todo/, bounce/, also
// where qmail looks for them), files in the wrong subdirectory or directly
// in a split part, entries that are not message files (strays), special
// files and unreadable directories. Pass 2 goes through subdirectory
// numbers 0..split-1, lists that number in every split part (warm: pass 1
// just read those directory blocks), merges in the pass-1 files whose
// message belongs there, and reports the group's ids in ascending order.

// walkIndex is what pass 1 keeps; read-only once pass 2 starts.
type walkIndex struct {
	strays  []Stray
	badDirs map[string]bool
	odd     map[uint64][]oddFile
	// extra are files not in their canonical split subdirectory: flat
	// parts' files and misplaced copies.
	extra map[uint64][]Location
	// byGroup lists the ids of extra and odd by canonical subdirectory.
	byGroup map[int][]uint64
}

// walkGroup is one subdirectory number's messages, kept for the reads that
// follow the walk closely.
type walkGroup struct {
	sub int
	// ids ascending, and ents[i] where the files of ids[i] are.
	ids  []uint64
	ents []entry
	// probe marks split parts whose subdirectory could not be listed in
	// pass 2: Inspect looks there for every message of the group.
	probe [numParts]bool
}

// walkState is the latest Walk's index and its last two groups (the
// readers trail the walk by at most a few thousand refs).
type walkState struct {
	idx    *walkIndex
	mu     sync.RWMutex
	groups [2]*walkGroup
}

func (ws *walkState) push(g *walkGroup) {
	ws.mu.Lock()
	ws.groups[0], ws.groups[1] = ws.groups[1], g
	ws.mu.Unlock()
}

// lookup returns the entry of id in a kept group, and the group (nil when
// the group is no longer kept).
func (ws *walkState) lookup(id uint64, sub int) (*entry, *walkGroup) {
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	for _, g := range ws.groups {
		if g != nil && g.sub == sub {
			return g.entry(id), g
		}
	}
	return nil, nil
}

// entry is the files of id in the group, nil if it has none.
func (g *walkGroup) entry(id uint64) *entry {
	if i, ok := slices.BinarySearch(g.ids, id); ok {
		return &g.ents[i]
	}
	return nil
}

// groupFile is one file of a group's message as the walk found it; seq
// keeps the order in which they were found (entry.add keeps the first
// copy of a part).
type groupFile struct {
	id   uint64
	seq  uint32
	sub  int32
	part Part
}

// Walk lists every message id that has any file in mess, info, local,
// remote, todo, intd or bounce (directory listings only) and calls fn with
// a Ref for each: grouped by split subdirectory (0, 1, ...), ascending
// within a group. Ref.Queue is queue.QmailQueue when info exists and no
// todo entry does, queue.QmailTodo otherwise (not, or not completely,
// preprocessed). Ref.Path is the mess file where it was found, "" when
// there is none. Entries that are not message files are not reported here;
// Strays lists them after the walk.
//
// Memory follows one subdirectory's messages plus what lies where qmail
// does not put it (see walkIndex), not the queue.
func (q *Queue) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	idx, err := q.walkPass1(ctx)
	if err != nil {
		return err
	}
	ws := &walkState{idx: idx}
	q.walk.Store(ws)
	q.inv.Store(nil)
	l := q.layout
	var files []groupFile // reused from group to group
	for sub := 0; sub < l.Split; sub++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		g := &walkGroup{sub: sub}
		files = files[:0]
		found := func(id uint64, p Part, sub int) {
			files = append(files, groupFile{id: id, seq: uint32(len(files)), sub: int32(sub), part: p})
		}
		for _, p := range Parts {
			if !l.IsSplit(p) {
				continue
			}
			dir := p.Dir() + "/" + strconv.Itoa(sub)
			if idx.badDirs[dir] {
				continue
			}
			err := q.eachEntry(dir, func(name []byte, t fs.FileMode) {
				id, isID := parseIDBytes(name)
				if isID && t.IsRegular() && l.Subdir(id) == sub {
					found(id, p, sub)
				}
			})
			if err != nil && !os.IsNotExist(err) {
				g.probe[p] = true
			}
		}
		for _, id := range idx.byGroup[sub] {
			if len(idx.extra[id]) == 0 {
				// Only odd files (not regular): listed all the same.
				files = append(files, groupFile{id: id, seq: uint32(len(files)), part: -1})
			}
			for _, loc := range idx.extra[id] {
				found(id, loc.Part, loc.Subdir)
			}
		}
		slices.SortFunc(files, func(a, b groupFile) int {
			if c := cmp.Compare(a.id, b.id); c != 0 {
				return c
			}
			return cmp.Compare(a.seq, b.seq)
		})
		for i, f := range files {
			if i == 0 || f.id != files[i-1].id {
				g.ids = append(g.ids, f.id)
				g.ents = append(g.ents, *newEntry())
			}
			if f.part >= 0 {
				g.ents[len(g.ents)-1].add(f.part, int(f.sub))
			}
		}
		ws.push(g)
		for i, id := range g.ids {
			if err := ctx.Err(); err != nil {
				return err
			}
			e := &g.ents[i]
			ref := queue.Ref{Queue: queueName(e.has(PartInfo), e.has(PartTodo)), ID: strconv.FormatUint(id, 10)}
			if e.has(PartMess) {
				ref.Path = Location{Part: PartMess, Subdir: int(e.where[PartMess])}.Path(id)
			}
			if err := fn(ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkPass1 lists every directory and keeps what walkIndex describes. Its
// classification of entries is Inventory's.
func (q *Queue) walkPass1(ctx context.Context) (*walkIndex, error) {
	l := q.layout
	idx := &walkIndex{extra: map[uint64][]Location{}, odd: map[uint64][]oddFile{}, byGroup: map[int][]uint64{}}
	note := func(id uint64) {
		if _, ok := idx.extra[id]; !ok {
			if _, ok := idx.odd[id]; !ok {
				sub := l.Subdir(id)
				idx.byGroup[sub] = append(idx.byGroup[sub], id)
			}
		}
	}
	canonical := func(id uint64, loc Location) bool {
		return loc.Subdir != Flat && l.IsSplit(loc.Part) && l.Subdir(id) == loc.Subdir
	}
	file := func(id uint64, loc Location) {
		if canonical(id, loc) {
			return // where fmtqfn() puts it: pass 2 finds it
		}
		note(id)
		idx.extra[id] = append(idx.extra[id], loc)
	}
	odd := func(id uint64, loc Location, mode fs.FileMode) {
		note(id)
		idx.odd[id] = append(idx.odd[id], oddFile{loc, mode})
	}
	var err error
	idx.strays, idx.badDirs, err = q.list(ctx, canonical, file, odd)
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// walkLocations is what the latest Walk knows of id's files: its group's
// entry when still kept (ok true), else only the unusual ones.
func (ws *walkState) locations(q *Queue, id uint64) (locs []Location, probe [numParts]bool, ok bool) {
	e, g := ws.lookup(id, q.layout.Subdir(id))
	if g != nil {
		if e != nil {
			locs = e.locations()
		}
		return locs, g.probe, true
	}
	return ws.idx.extra[id], probe, false
}
