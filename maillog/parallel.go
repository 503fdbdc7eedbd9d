package maillog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is how much of a log one parsing job holds.
const chunkSize = 1 << 20

// job is one chunk of a log: whole lines, parsed by a worker into events,
// handed to the analyzer in the order the chunks were read.
type job struct {
	name  string
	in    Input
	data  []byte
	line0 int64 // the number of the chunk's first line, minus one

	events  []cev  // the events the join needs, compact
	extra   []byte // the bytes of the srefs not in data
	locs    []*time.Location
	lastLoc uint16
	base    uintptr // data's address and length, for ref
	dlen    uintptr
	span    span // the kinds and stamps of all events, the dropped ones too
	forms   [nForms]int64
	lines   int64
	bytes   int64
	known   int64
	unk     int64
	out     int64
	done    chan struct{}

	seq     uint64     // the job's place in the read, for the events' log order across shards
	shards  [][]uint32 // per shard, the events (indexes into events, with a part flag) it folds
	pending atomic.Int32
}

// readAllParallel is ReadAll with the parsing spread over workers and
// the join over nshards shards: one goroutine reads chunks cut at line
// ends, the workers parse them, and each shard folds the events routed
// to it (see route) in the order of the lines (the joins depend on it);
// shard 0 runs on the caller's goroutine into a, the others into
// Analyzers of their own merged into a at the end. Memory is bounded by
// the chunks in flight.
func readAllParallel(inputs []Input, opts Options, a *Analyzer, workers, nshards int) Stats {
	st := Stats{Forms: map[string]int64{}}
	nshards = max(1, nshards)
	inflight := 2*workers + 2
	jobs := make(chan *job, inflight)
	orders := make([]chan *job, nshards)
	for s := range orders {
		orders[s] = make(chan *job, inflight)
	}
	free := make(chan *job, inflight+1)
	for i := 0; i < inflight+1; i++ {
		free <- &job{data: make([]byte, 0, chunkSize)}
	}
	for w := 0; w < workers; w++ {
		go func() {
			for j := range jobs {
				j.parse(opts, nshards)
				close(j.done)
			}
		}()
	}
	var seq uint64
	var problems []string
	go func() {
		defer func() {
			for _, o := range orders {
				close(o)
			}
		}()
		defer close(jobs)
		for _, in := range inputs {
			var raw io.Reader
			var closer io.Closer
			if in.Name == "-" {
				if opts.Stdin == nil {
					problems = append(problems, "-: no standard input")
					continue
				}
				raw = opts.Stdin
			} else {
				f, err := openLog(in.Name)
				if err != nil {
					problems = append(problems, err.Error())
					continue
				}
				raw, closer = f, f
			}
			src, err := decompress(raw)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", in.Name, err))
				if closer != nil {
					closer.Close()
				}
				continue
			}
			st.Files++
			var carry []byte
			var line int64
			eof := false
			for !eof {
				j := <-free
				j.name, j.in, j.line0 = in.Name, in, line
				j.data = append(j.data[:0], carry...)
				for len(j.data) < cap(j.data) {
					n, err := src.Read(j.data[len(j.data):cap(j.data)])
					j.data = j.data[:len(j.data)+n]
					if err != nil {
						if !errors.Is(err, io.EOF) {
							problems = append(problems, fmt.Sprintf("%s: line %d: %v", in.Name, line+int64(bytes.Count(j.data, []byte{'\n'}))+1, err))
						}
						eof = true
						break
					}
				}
				cut := len(j.data)
				if !eof {
					cut = bytes.LastIndexByte(j.data, '\n') + 1
					if cut == 0 {
						// one line longer than a chunk: keep its head
						// (parsed, then counted unknown) and drop the rest
						j.data = append(j.data[:maxLine], '\n')
						var rest []byte
						rest, eof = skipLine(src)
						cut = len(j.data)
						j.data = append(j.data, rest...)
					}
				}
				carry = append(carry[:0], j.data[cut:]...)
				j.data = j.data[:cut]
				line += int64(bytes.Count(j.data, []byte{'\n'}))
				if eof && len(j.data) > 0 && j.data[len(j.data)-1] != '\n' {
					line++
				}
				j.done = make(chan struct{})
				j.seq = seq
				seq++
				j.pending.Store(int32(nshards))
				jobs <- j
				for _, o := range orders {
					o <- j
				}
			}
			if closer != nil {
				closer.Close()
			}
		}
	}()
	// the shards
	done := func(j *job) {
		if j.pending.Add(-1) == 0 {
			free <- j
		}
	}
	subs := make([]*Analyzer, nshards)
	var wg sync.WaitGroup
	for s := 1; s < nshards; s++ {
		b := NewAnalyzer()
		b.Select, b.TrackImpact = a.Select, a.TrackImpact
		subs[s] = b
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range orders[s] {
				<-j.done
				for _, i := range j.shards[s] {
					b.add(j, int(i&^partMask), uint8(i>>partShift))
				}
				done(j)
			}
		}()
	}
	for j := range orders[0] {
		<-j.done
		a.span.merge(&j.span)
		if nshards == 1 {
			for i := range j.events {
				a.add(j, i, partAll)
			}
		} else {
			for _, i := range j.shards[0] {
				a.add(j, int(i&^partMask), uint8(i>>partShift))
			}
		}
		for i, n := range j.forms {
			if n > 0 {
				st.Forms[formNames[i]] += n
			}
		}
		st.Lines += j.lines
		st.Bytes += j.bytes
		st.Known += j.known
		st.Unknown += j.unk
		st.Outside += j.out
		done(j)
	}
	wg.Wait()
	for _, b := range subs[1:] {
		a.merge(b)
	}
	st.Problems = problems
	return st
}

// skipLine reads src up to and including the next '\n' and returns what
// it read after it; eof reports whether src ended.
func skipLine(src io.Reader) (rest []byte, eof bool) {
	var b [4096]byte
	for {
		n, err := src.Read(b[:])
		if i := bytes.IndexByte(b[:n], '\n'); i >= 0 {
			return append([]byte(nil), b[i+1:n]...), err != nil
		}
		if err != nil {
			return nil, true
		}
	}
}

// parse turns the job's lines into events, routed to nshards shards.
func (j *job) parse(opts Options, nshards int) {
	p := parser{year: yearGuess{ref: j.in.Ref, loc: opts.Location}}
	j.forms = [nForms]int64{}
	j.span = span{}
	if cap(j.events) == 0 {
		j.events = make([]cev, 0, len(j.data)/128+1)
	}
	j.events, j.extra, j.locs, j.lastLoc = j.events[:0], j.extra[:0], j.locs[:0], 0
	j.setData(j.data)
	if nshards > 1 {
		if len(j.shards) != nshards {
			j.shards = make([][]uint32, nshards)
		}
		for s := range j.shards {
			j.shards[s] = j.shards[s][:0]
		}
	}
	var ev Event
	j.lines, j.bytes, j.known, j.unk, j.out = 0, 0, 0, 0, 0
	b := j.data
	n := j.line0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		n++
		j.lines++
		j.bytes += int64(len(line)) + 1
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		if len(line) > maxLine {
			line = line[:maxLine]
		}
		ev = Event{}
		p.form = fNone
		msg := p.header(line, &ev)
		p.classify(msg, &ev)
		j.forms[p.form]++
		switch {
		case ev.Kind == Unknown:
			j.unk++
		case !ev.Time.IsZero() && (!opts.Since.IsZero() && ev.Time.Before(opts.Since) ||
			!opts.Until.IsZero() && !ev.Time.Before(opts.Until)):
			j.known++
			j.out++
		default:
			j.known++
			j.span.add(&ev)
			if !spanOnly(ev.Kind) {
				j.pack(&ev, n)
				if nshards > 1 {
					j.route(len(j.events)-1, nshards)
				}
			}
		}
	}
}

// parallelWorkers is how many goroutines parse: all CPUs but the one
// the analyzer runs on, at least one.
func parallelWorkers() int {
	return max(1, runtime.GOMAXPROCS(0)-joinShards())
}

// joinShards is how many shards the join is spread over when Options
// leave it open: one below 8 CPUs. Routing and merging cost the shards
// 8-12 % more instructions than one join (docs/benchmarks-maillog.md,
// follow-up 3), so a second shard pays only once the parsing workers
// outrun the one join goroutine, which takes about a third of the CPU of
// reading a log: with a quarter of the CPUs as shards, the rest parse.
func joinShards() int {
	return max(1, runtime.GOMAXPROCS(0)/4)
}
