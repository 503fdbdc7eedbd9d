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
	// oddByGroup lists the ids of odd by canonical subdirectory.
	oddByGroup map[int][]uint64
	// extra are files not in their canonical split subdirectory (flat
	// parts' files, such as todo/, intd/ and bounce/, and misplaced
	// copies), 16 bytes each, sorted by their message's canonical
	// subdirectory, then id, each message's in the order pass 1 found
	// them: one group's are one run.
	extra []fileLoc
}

// fileLoc is one file of message id: part p in subdirectory sub (or Flat).
type fileLoc struct {
	id   uint64
	sub  int32
	part uint8
}

// noPart marks a fileLoc that stands for no file: a message pass 1 found
// only entries of that are not regular files (walkIndex.odd).
const noPart = 255

func (f fileLoc) loc() Location { return Location{Part: Part(f.part), Subdir: int(f.sub)} }

// extraRun returns the files of extra whose message belongs to
// subdirectory sub and, when id is not nil, is *id.
func (idx *walkIndex) extraRun(l *Layout, sub int, id *uint64) []fileLoc {
	key := func(f fileLoc) (int, uint64) { return l.Subdir(f.id), f.id }
	lo, _ := slices.BinarySearchFunc(idx.extra, sub, func(f fileLoc, sub int) int {
		g, fid := key(f)
		if g != sub {
			return cmp.Compare(g, sub)
		}
		if id != nil {
			return cmp.Compare(fid, *id)
		}
		return 0
	})
	hi := lo
	for hi < len(idx.extra) {
		g, fid := key(idx.extra[hi])
		if g != sub || id != nil && fid != *id {
			break
		}
		hi++
	}
	return idx.extra[lo:hi]
}

// extraOf lists the files of extra of message id.
func (idx *walkIndex) extraOf(l *Layout, id uint64) []Location {
	var out []Location
	for _, f := range idx.extraRun(l, l.Subdir(id), &id) {
		out = append(out, f.loc())
	}
	return out
}

// walkGroup is one subdirectory number's messages, kept for the reads that
// follow the walk closely.
type walkGroup struct {
	sub int
	// ents are the group's messages, sorted by id (64 bytes each).
	ents []groupEntry
	// probe marks split parts whose subdirectory could not be listed in
	// pass 2: Inspect looks there for every message of the group.
	probe [numParts]bool
}

type groupEntry struct {
	id uint64
	e  entry
}

// find returns the entry of id in g, nil when g has none.
func (g *walkGroup) find(id uint64) *entry {
	i, ok := slices.BinarySearchFunc(g.ents, id, func(ge groupEntry, id uint64) int { return cmp.Compare(ge.id, id) })
	if !ok {
		return nil
	}
	return &g.ents[i].e
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
			return g.find(id), g
		}
	}
	return nil, nil
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
	for sub := 0; sub < l.Split; sub++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		g := &walkGroup{sub: sub}
		// Every file of the group, the listed ones first (in Parts'
		// order), then pass 1's: sorted stably by id, each message's
		// first copy of a part is the one entry.add keeps in where, as
		// pass 1 found them.
		var files []fileLoc
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
					files = append(files, fileLoc{id: id, sub: int32(sub), part: uint8(p)})
				}
			})
			if err != nil && !os.IsNotExist(err) {
				g.probe[p] = true
			}
		}
		files = append(files, idx.extraRun(l, sub, nil)...)
		for _, id := range idx.oddByGroup[sub] {
			// Listed, so the problem is seen, even with no file.
			files = append(files, fileLoc{id: id, part: noPart})
		}
		slices.SortStableFunc(files, func(a, b fileLoc) int { return cmp.Compare(a.id, b.id) })
		n := 0
		for i := range files {
			if i == 0 || files[i].id != files[i-1].id {
				n++
			}
		}
		g.ents = make([]groupEntry, 0, n)
		for _, f := range files {
			if n := len(g.ents); n == 0 || g.ents[n-1].id != f.id {
				g.ents = append(g.ents, groupEntry{id: f.id, e: *newEntry()})
			}
			if f.part != noPart {
				g.ents[len(g.ents)-1].e.add(Part(f.part), int(f.sub))
			}
		}
		files = nil
		ws.push(g)
		for i := range g.ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			id, e := g.ents[i].id, &g.ents[i].e
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
	idx := &walkIndex{odd: map[uint64][]oddFile{}, oddByGroup: map[int][]uint64{}}
	canonical := func(id uint64, loc Location) bool {
		return loc.Subdir != Flat && l.IsSplit(loc.Part) && l.Subdir(id) == loc.Subdir
	}
	file := func(id uint64, loc Location) {
		if canonical(id, loc) {
			return // where fmtqfn() puts it: pass 2 finds it
		}
		idx.extra = append(idx.extra, fileLoc{id: id, sub: int32(loc.Subdir), part: uint8(loc.Part)})
	}
	odd := func(id uint64, loc Location, mode fs.FileMode) {
		if _, ok := idx.odd[id]; !ok {
			sub := l.Subdir(id)
			idx.oddByGroup[sub] = append(idx.oddByGroup[sub], id)
		}
		idx.odd[id] = append(idx.odd[id], oddFile{loc, mode})
	}
	var err error
	idx.strays, idx.badDirs, err = q.list(ctx, canonical, file, odd)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(idx.extra, func(a, b fileLoc) int {
		return cmp.Or(cmp.Compare(l.Subdir(a.id), l.Subdir(b.id)), cmp.Compare(a.id, b.id))
	})
	return idx, nil
}

// locations is what the latest Walk knows of id's files: its group's
// entry when still kept (ok true), else only the unusual ones.
func (ws *walkState) locations(q *Queue, id uint64) (locs []Location, probe [numParts]bool, ok bool) {
	e, g := ws.lookup(id, q.layout.Subdir(id))
	if g != nil {
		if e != nil {
			locs = e.locations()
		}
		return locs, g.probe, true
	}
	return ws.idx.extraOf(q.layout, id), probe, false
}
