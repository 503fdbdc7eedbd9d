package qmailq

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Flat is the Subdir of a file that lies directly in its top-level
// directory (todo/id, bounce/id, or a misplaced mess/id).
const Flat = -1

// Location is one file of a message found on disk.
type Location struct {
	Part Part
	// Subdir is the numeric subdirectory the file is in, or Flat.
	Subdir int
}

// Path is the file's path relative to the queue root.
func (loc Location) Path(id uint64) string {
	if loc.Subdir == Flat {
		return loc.Part.Dir() + "/" + strconv.FormatUint(id, 10)
	}
	return loc.Part.Dir() + "/" + strconv.Itoa(loc.Subdir) + "/" + strconv.FormatUint(id, 10)
}

// absent marks a part not found in entry.where.
const absent = -2

// entry is where the files of one message were found. It is kept small:
// a queue can hold a million messages.
type entry struct {
	where [numParts]int32 // subdir, Flat, or absent
	extra []Location      // further copies of a part (rare)
}

func newEntry() *entry {
	e := &entry{}
	for i := range e.where {
		e.where[i] = absent
	}
	return e
}

func (e *entry) add(p Part, sub int) {
	if e.where[p] == absent {
		e.where[p] = int32(sub)
		return
	}
	e.extra = append(e.extra, Location{Part: p, Subdir: sub})
}

func (e *entry) has(p Part) bool { return e.where[p] != absent }

// locations lists every file of the message, first copy of each part first.
func (e *entry) locations() []Location {
	var out []Location
	for _, p := range Parts {
		if e.has(p) {
			out = append(out, Location{Part: p, Subdir: int(e.where[p])})
		}
	}
	return append(out, e.extra...)
}

// Stray is a directory entry in the queue that is not a message file:
// a name that is not a canonical decimal id, or something that is not a
// regular file where a message file belongs.
type Stray struct {
	Path string // relative to the queue root
	Mode fs.FileMode
	// Why it is a stray.
	Why string
}

// Inventory is what a directory walk of the queue found.
type Inventory struct {
	// IDs of every message that has at least one file, ascending.
	IDs []uint64
	// Strays are entries that belong to no message.
	Strays  []Stray
	entries map[uint64]*entry
	// badDirs are split positions ("remote/3") holding something that is
	// not a directory (a symbolic link, a file) or that could not be read.
	badDirs map[string]bool
	// odd are entries named like a message file that are not regular files
	// (symbolic links, directories, FIFOs...): never opened, reported.
	odd map[uint64][]oddFile
}

type oddFile struct {
	loc  Location
	mode fs.FileMode
}

func (inv *Inventory) addOdd(id uint64, loc Location, mode fs.FileMode) {
	if inv.odd == nil {
		inv.odd = map[uint64][]oddFile{}
	}
	inv.odd[id] = append(inv.odd[id], oddFile{loc, mode})
	inv.entry(id) // listed, so the problem is seen
}

// Locations lists the files of message id found by the walk (nil if none).
func (inv *Inventory) Locations(id uint64) []Location {
	e := inv.entries[id]
	if e == nil {
		return nil
	}
	return e.locations()
}

// Has reports whether the walk found part p of message id anywhere.
func (inv *Inventory) Has(id uint64, p Part) bool {
	e := inv.entries[id]
	return e != nil && e.has(p)
}

// Inventory lists every directory of the queue (directory reads only, no
// stat per file unless the file system gives no d_type) and records where
// each message's files are. Subdirectories at or beyond the split and files
// lying in the wrong place are included: they are what a repair needs to
// see. The result is also kept for Read.
func (q *Queue) Inventory(ctx context.Context) (*Inventory, error) {
	inv := &Inventory{entries: make(map[uint64]*entry, 1024)}
	var err error
	inv.Strays, inv.badDirs, err = q.list(ctx, nil, func(id uint64, loc Location) { inv.entry(id).add(loc.Part, loc.Subdir) }, inv.addOdd)
	if err != nil {
		return nil, err
	}
	inv.IDs = make([]uint64, 0, len(inv.entries))
	for id := range inv.entries {
		inv.IDs = append(inv.IDs, id)
	}
	sort.Slice(inv.IDs, func(i, j int) bool { return inv.IDs[i] < inv.IDs[j] })
	q.inv.Store(inv)
	q.walk.Store(nil)
	return inv, nil
}

func (inv *Inventory) entry(id uint64) *entry {
	e := inv.entries[id]
	if e == nil {
		e = newEntry()
		inv.entries[id] = e
	}
	return e
}

// list lists every part's directory and each numeric subdirectory in it
// (directory reads only, no stat per file unless the file system gives no
// d_type) and sorts what it finds: a regular file named like a message id
// goes to file, an entry named like one that is not a regular file to odd
// (and the strays), anything else to the strays. badDirs are the split
// positions ("remote/3") holding something that is not a directory or
// that could not be read. Inventory and Walk's first pass both list
// through here.
//
// skip (may be nil) names the files of split subdirectories file need not
// hear of (Walk's pass 1 skips those where fmtqfn() puts them). The
// subdirectories are listed by a few goroutines at once (the kernel's
// directory reads are most of the work), and what they found is handed to
// file, odd and the strays in the order of a sequential listing.
func (q *Queue) list(ctx context.Context, skip func(id uint64, loc Location) bool, file func(id uint64, loc Location), odd func(id uint64, loc Location, mode fs.FileMode)) (strays []Stray, badDirs map[string]bool, err error) {
	badDirs = map[string]bool{}
	stray := func(p string, mode fs.FileMode, why string) {
		strays = append(strays, Stray{Path: p, Mode: mode, Why: why})
	}
	// The top directories first, one at a time (a few dozen entries each,
	// and todo/'s or bounce/'s files).
	type topEnt struct {
		name string
		id   uint64
		isID bool
		typ  fs.FileMode
		job  int // index into jobs of its listing, -1 if none
	}
	type topList struct {
		ents []topEnt
		err  error
	}
	tops := make([]topList, len(Parts))
	var jobs []*subListing
	for i, p := range Parts {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		top := p.Dir()
		tops[i].err = q.eachEntry(top, func(bname []byte, t fs.FileMode) {
			id, isID := parseIDBytes(bname)
			e := topEnt{name: string(bname), id: id, isID: isID, typ: t, job: -1}
			if t.IsDir() && isID && p != PartBounce && id < 1<<31 {
				e.job = len(jobs)
				jobs = append(jobs, &subListing{rel: top + "/" + e.name, part: p, sub: int(id), done: make(chan struct{})})
			}
			tops[i].ents = append(tops[i].ents, e)
		})
		if err := tops[i].err; err != nil && !os.IsNotExist(err) {
			break // the listing ends there: nothing after it is looked at
		}
	}
	lctx, cancel := context.WithCancel(ctx)
	consumed, wait := q.listSubdirs(lctx, jobs, skip)
	defer func() {
		// Nothing may still use the root's descriptor once list returns.
		cancel()
		wait()
	}()
	for i, p := range Parts {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		top := p.Dir()
		if err := tops[i].err; err != nil {
			if os.IsNotExist(err) {
				continue // the layout notes say so; not fatal for reading
			}
			return nil, nil, err
		}
		for _, e := range tops[i].ents {
			id, isID, t := e.id, e.isID, e.typ
			switch {
			case e.job >= 0:
				if err := ctx.Err(); err != nil {
					return nil, nil, err
				}
				j := jobs[e.job]
				<-j.done
				consumed()
				if err := ctx.Err(); err != nil {
					// A listing cut short by the cancellation is no bad
					// directory: stop here, whatever part comes next.
					return nil, nil, err
				}
				rel, sub := j.rel, j.sub
				if j.err != nil {
					if !os.IsNotExist(j.err) { // else vanished since the parent was listed
						badDirs[rel] = true
						stray(rel, 0, j.err.Error())
					}
					continue
				}
				for _, se := range j.ents {
					switch {
					case se.typ.IsRegular() && se.isID:
						file(se.id, Location{Part: p, Subdir: sub})
					case !se.isID:
						stray(rel+"/"+se.name, se.typ, "name is not a message id")
					default:
						stray(rel+"/"+se.name, se.typ, "not a regular file")
						odd(se.id, Location{Part: p, Subdir: sub}, se.typ)
					}
				}
			case t.IsRegular() && isID:
				file(id, Location{Part: p, Subdir: Flat})
			case isID && p != PartBounce && id < 1<<31:
				rel := top + "/" + e.name
				badDirs[rel] = true
				stray(rel, t, "not a directory where a split subdirectory belongs")
			case t.IsDir():
				stray(top+"/"+e.name, t, "directory that is not a split subdirectory")
			case !isID:
				stray(top+"/"+e.name, t, "name is not a message id")
			default:
				stray(top+"/"+e.name, t, "not a regular file")
				odd(id, Location{Part: p, Subdir: Flat}, t)
			}
		}
	}
	return strays, badDirs, nil
}

// subListing is one split subdirectory's listing, made by listSubdirs.
type subListing struct {
	rel  string
	part Part
	sub  int
	ents []subEnt
	err  error
	done chan struct{} // closed when ents and err are set
}

// subEnt is an entry of a split subdirectory; name only for a stray (not
// an id, or not a regular file).
type subEnt struct {
	id   uint64
	isID bool
	typ  fs.FileMode
	name string
}

// listers is how many subdirectories list lists at once.
func listers() int { return min(max(2*runtime.GOMAXPROCS(0), 2), 8) }

// listSubdirs lists the jobs' directories in the background, in order and
// a few at a time, closing each job's done when it is listed (also when
// ctx ends first: then with ctx's error). At most a few listings wait to
// be consumed (the caller calls consumed after each, in order), so an
// Inventory's memory does not double. wait returns once every goroutine
// has stopped; cancel ctx first when not every job was consumed.
func (q *Queue) listSubdirs(ctx context.Context, jobs []*subListing, skip func(id uint64, loc Location) bool) (consumed, wait func()) {
	next := make(chan *subListing, len(jobs))
	for _, j := range jobs {
		next <- j
	}
	close(next)
	n := min(listers(), len(jobs))
	// A token per listing begun and not yet consumed, taken before the
	// job: the job the caller waits for always holds one.
	tokens := make(chan struct{}, 2*n)
	for range cap(tokens) {
		tokens <- struct{}{}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-tokens:
				case <-ctx.Done():
					for j := range next {
						j.err = ctx.Err()
						close(j.done)
					}
					return
				}
				j, ok := <-next
				if !ok {
					return
				}
				if err := ctx.Err(); err != nil {
					j.err = err
					close(j.done)
					continue
				}
				j.err = q.eachEntry(j.rel, func(name []byte, t fs.FileMode) {
					id, isID := parseIDBytes(name)
					if isID && t.IsRegular() && skip != nil && skip(id, Location{Part: j.part, Subdir: j.sub}) {
						return
					}
					e := subEnt{id: id, isID: isID, typ: t}
					if !isID || !t.IsRegular() {
						e.name = string(name) // a stray, named by its path
					}
					j.ents = append(j.ents, e)
				})
				if j.err != nil {
					j.ents = nil
				}
				close(j.done)
			}
		}()
	}
	consumed = func() {
		select {
		case tokens <- struct{}{}:
		default:
		}
	}
	return consumed, wg.Wait
}

// readDir lists a directory below the root, never through a symbolic link.
func (q *Queue) readDir(rel string) ([]fs.DirEntry, error) {
	fd, err := openatBeneath(q.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: q.layout.Abs(rel), Err: err}
	}
	f := os.NewFile(uintptr(fd), q.layout.Abs(rel))
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return ents, fmtReadErr(rel, err)
	}
	return ents, nil
}

func fmtReadErr(rel string, err error) error { return fmt.Errorf("qmailq: reading %s: %w", rel, err) }

// Strays returns the entries that belong to no message (names that are not
// ids, symbolic links, directories where files belong, ...) as the last
// Walk or Inventory found them; nil before either ran.
func (q *Queue) Strays() []Stray {
	if inv := q.inv.Load(); inv != nil {
		return inv.Strays
	}
	if ws := q.walk.Load(); ws != nil {
		return ws.idx.strays
	}
	return nil
}
