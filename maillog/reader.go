package maillog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
)

// parser holds the per-file state of line parsing.
type parser struct {
	year yearGuess
	form uint8
}

// Options tune a Reader.
type Options struct {
	// Since and Until bound the events returned by time (Since inclusive,
	// Until exclusive); zero means unbounded. Lines without a stamp are
	// always returned: nothing says they are outside.
	Since, Until time.Time
	// Location is the zone of stamps that carry none (RFC 3164); nil is
	// the local zone.
	Location *time.Location
	// Stdin is read for the name "-".
	Stdin io.Reader
	// Workers and Shards, when above zero, set how many goroutines
	// parse the lines and how many the join is sharded over (ReadAll);
	// zero leaves it to the number of CPUs.
	Workers, Shards int
}

// Stats counts what a Reader saw.
type Stats struct {
	Files    int
	Bytes    int64
	Lines    int64
	Known    int64            // lines that became events (Other included)
	Unknown  int64            // lines not understood: counted, skipped
	Outside  int64            // understood, but outside --since/--until
	Forms    map[string]int64 // lines per stamp form
	Problems []string         // files that could not be read, with the reason
}

// Input is one log to read: its name and its newest possible time (the
// modification time; now for standard input), the reference for the year
// RFC 3164 stamps leave out.
type Input struct {
	Name string
	Ref  time.Time
	// first is the time of the first stamped line, used to put rotated
	// files in order; zero when none was found.
	first time.Time
}

// Order returns names sorted oldest first, as a rotated set must be read:
// by the stamp of each file's first line where one is found, else by the
// rotation number (maillog.2.gz before maillog.1 before maillog), and "-"
// where it was given. Files that cannot be opened keep their place; Read
// reports them.
func Order(names []string, opts Options) []Input {
	in := make([]Input, len(names))
	for i, n := range names {
		in[i] = Input{Name: n, Ref: clock.Now()}
		if n == "-" {
			continue
		}
		if st, err := os.Stat(n); err == nil {
			in[i].Ref = st.ModTime()
		}
		in[i].first = firstStamp(n, in[i].Ref, opts.Location)
	}
	idx := make([]int, len(in))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		x, y := in[idx[a]], in[idx[b]]
		if !x.first.IsZero() && !y.first.IsZero() && !x.first.Equal(y.first) {
			return x.first.Before(y.first)
		}
		bx, nx := rotation(x.Name)
		by, ny := rotation(y.Name)
		if bx == by && nx != ny {
			return nx > ny
		}
		return false
	})
	out := make([]Input, len(in))
	for i, j := range idx {
		out[i] = in[j]
	}
	return out
}

var rotRE = regexp.MustCompile(`^(.*?)(?:[.-](\d+))?(?:\.gz)?$`)

// rotation splits "maillog.2.gz" into ("maillog", 2); an unnumbered file is
// number 0, the newest.
func rotation(name string) (string, int) {
	m := rotRE.FindStringSubmatch(filepath.Base(name))
	if m == nil {
		return name, 0
	}
	n, _ := strconv.Atoi(m[2])
	if len(m[2]) == 8 { // dateext: maillog-20261122 sorts by date, newest last
		return filepath.Join(filepath.Dir(name), m[1]), -n
	}
	return filepath.Join(filepath.Dir(name), m[1]), n
}

// firstStamp reads up to 64 lines of a file for its first time stamp.
func firstStamp(name string, ref time.Time, loc *time.Location) time.Time {
	f, err := os.Open(name)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return time.Time{}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	p := parser{year: yearGuess{ref: ref, loc: loc}}
	for i := 0; i < 64; i++ {
		line, err := br.ReadSlice('\n')
		var ev Event
		msg := p.header(bytes.TrimRight(line, "\r\n"), &ev)
		p.classify(msg, &ev)
		if !ev.Time.IsZero() {
			return ev.Time
		}
		if err != nil {
			break
		}
	}
	return time.Time{}
}

// decompress returns r's content, gunzipped when it starts with the gzip
// magic (whatever the file is called). A plain file is read as it is, with
// no buffer copy in between.
func decompress(r io.Reader) (io.Reader, error) {
	var magic [2]byte
	n, err := io.ReadFull(r, magic[:])
	head := bytes.NewReader(magic[:n])
	if err != nil {
		return head, nil // shorter than two bytes
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(bufio.NewReaderSize(io.MultiReader(head, r), 256<<10))
	}
	return io.MultiReader(head, r), nil
}

// blockSize is how much a Reader reads at a time, into one buffer it
// reuses.
const blockSize = 1 << 20

// maxLine bounds one line; a longer one is cut there and counted unknown.
const maxLine = 64 << 10

// Reader streams the events of a sequence of logs.
type Reader struct {
	opts   Options
	inputs []Input
	cur    int
	f      io.Closer
	src    io.Reader
	p      parser
	name   string
	line   int64

	buf   []byte // the read buffer
	block []byte // its unread bytes
	eof   bool
	ev    Event
	forms [nForms]int64

	Stats Stats
}

// NewReader reads the inputs in the order given (see Order).
func NewReader(inputs []Input, opts Options) *Reader {
	return &Reader{opts: opts, inputs: inputs, cur: -1, Stats: Stats{Forms: map[string]int64{}}}
}

// Open is NewReader(Order(names, opts), opts).
func Open(names []string, opts Options) *Reader {
	return NewReader(Order(names, opts), opts)
}

// Next returns the next understood event in the window; io.EOF at the
// end. The Event is the Reader's own and so are the bytes its strings
// point into: both are valid until the next call (clone what you keep). A file that cannot be read is recorded in
// Stats.Problems and skipped: one bad file never stops the others.
func (r *Reader) Next() (*Event, error) {
	ev := &r.ev
	for {
		line, ok := r.nextLine()
		if !ok {
			r.flushForms()
			return nil, io.EOF
		}
		*ev = Event{File: r.name, Line: r.line}
		r.p.form = fNone
		msg := r.p.header(line, ev)
		r.p.classify(msg, ev)
		r.forms[r.p.form]++
		if ev.Kind == Unknown {
			r.Stats.Unknown++
			continue
		}
		r.Stats.Known++
		if !ev.Time.IsZero() && (!r.opts.Since.IsZero() && ev.Time.Before(r.opts.Since) ||
			!r.opts.Until.IsZero() && !ev.Time.Before(r.opts.Until)) {
			r.Stats.Outside++
			continue
		}
		return ev, nil
	}
}

// nextLine returns the next line without its end, opening the next input
// as needed.
func (r *Reader) nextLine() ([]byte, bool) {
	for {
		if r.src == nil && !r.openNext() {
			return nil, false
		}
		if i := bytes.IndexByte(r.block, '\n'); i >= 0 {
			line := r.block[:i]
			r.block = r.block[i+1:]
			return r.emit(line), true
		}
		if r.eof {
			if len(r.block) > 0 {
				line := r.block
				r.block = nil
				return r.emit(line), true
			}
			r.closeCur()
			continue
		}
		r.fill()
	}
}

func (r *Reader) flushForms() {
	for i, n := range r.forms {
		if n > 0 {
			r.Stats.Forms[formNames[i]] += n
		}
	}
	r.forms = [nForms]int64{}
}

func (r *Reader) emit(line []byte) []byte {
	r.line++
	r.Stats.Lines++
	r.Stats.Bytes += int64(len(line)) + 1
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	return line
}

// fill reads the next block, carrying the partial line over.
func (r *Reader) fill() {
	// The partial line moves to the front of the one buffer, which is
	// reused: an Event's strings are valid until the next call to Next.
	if cap(r.buf) < blockSize || len(r.block) >= cap(r.buf)/2 {
		r.buf = make([]byte, 0, max(blockSize, 2*len(r.block)))
	}
	nb := r.buf[:len(r.block)]
	copy(nb, r.block)
	// Not io.ReadFull: its ErrUnexpectedEOF would hide a truncated .gz.
	var err error
	for len(nb) < cap(nb) && err == nil {
		var n int
		n, err = r.src.Read(nb[len(nb):cap(nb)])
		nb = nb[:len(nb)+n]
	}
	r.block = nb
	if err != nil {
		if !errors.Is(err, io.EOF) {
			r.Stats.Problems = append(r.Stats.Problems, fmt.Sprintf("%s: line %d: %v", r.name, r.line+1, err))
		}
		r.eof = true
	}
	if len(r.block) > maxLine && bytes.IndexByte(r.block, '\n') < 0 && !r.eof {
		// a line longer than maxLine: keep its head, drop the rest
		r.block = r.block[:maxLine]
		for {
			one := make([]byte, 64<<10)
			n, err := r.src.Read(one)
			if i := bytes.IndexByte(one[:n], '\n'); i >= 0 {
				r.block = append(r.block, one[i:n]...)
				break
			}
			if err != nil {
				r.eof = true
				break
			}
		}
	}
}

func (r *Reader) openNext() bool {
	for {
		r.cur++
		if r.cur >= len(r.inputs) {
			return false
		}
		in := r.inputs[r.cur]
		r.name, r.line, r.eof, r.block = in.Name, 0, false, nil
		r.p = parser{year: yearGuess{ref: in.Ref, loc: r.opts.Location}}
		var raw io.Reader
		if in.Name == "-" {
			if r.opts.Stdin == nil {
				r.Stats.Problems = append(r.Stats.Problems, "-: no standard input")
				continue
			}
			raw = r.opts.Stdin
		} else {
			f, err := openLog(in.Name)
			if err != nil {
				r.Stats.Problems = append(r.Stats.Problems, err.Error())
				continue
			}
			r.f, raw = f, f
		}
		src, err := decompress(raw)
		if err != nil {
			r.Stats.Problems = append(r.Stats.Problems, fmt.Sprintf("%s: %v", in.Name, err))
			r.closeCur()
			continue
		}
		r.src = src
		r.Stats.Files++
		return true
	}
}

// openLog opens a log file for reading, refusing what is not a regular
// file or a pipe the user named (never blocks on a device or socket).
func openLog(name string) (*os.File, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() && st.Mode()&os.ModeNamedPipe == 0 {
		return nil, fmt.Errorf("%s: not a regular file (%v)", name, st.Mode().Type())
	}
	return os.Open(name)
}

func (r *Reader) closeCur() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.src, r.block = nil, nil, nil
}

// Close releases the open file.
func (r *Reader) Close() error {
	r.closeCur()
	return nil
}

// ReadAll feeds every event of the named logs (put in time order) to a
// and returns what the reader saw.
func ReadAll(names []string, opts Options, a *Analyzer) Stats {
	w, s := parallelWorkers(), joinShards()
	if opts.Workers > 0 {
		w = opts.Workers
	}
	if opts.Shards > 0 {
		s = opts.Shards
	}
	if runtime.GOMAXPROCS(0) > 1 || opts.Workers > 0 || opts.Shards > 0 {
		return readAllParallel(Order(names, opts), opts, a, w, s)
	}
	r := Open(names, opts)
	defer r.Close()
	for {
		ev, err := r.Next()
		if err != nil {
			break
		}
		a.Add(ev)
	}
	return r.Stats
}
