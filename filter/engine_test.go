package filter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/queue"
)

// memSource is an in-memory queue.Source. filter parses no format, so the
// engine is tested against this seam; the fixture test runs it over real
// queue files.
type memSource struct {
	refs    []queue.Ref
	msgs    map[string]*queue.Message
	content map[string]*queue.Content
	vanish  map[string]bool  // Read fails with fs.ErrNotExist
	gone    map[string]bool  // ReadContent fails with fs.ErrNotExist
	fail    map[string]error // Read fails with this
	delay   time.Duration    // per Read

	reads, contentReads, bodyReads atomic.Int64
	inflight, maxInflight          atomic.Int64
	mu                             sync.Mutex
	contentIDs                     []string
}

func newMemSource() *memSource {
	return &memSource{
		msgs: map[string]*queue.Message{}, content: map[string]*queue.Content{},
		vanish: map[string]bool{}, gone: map[string]bool{}, fail: map[string]error{},
	}
}

func (s *memSource) add(m *queue.Message) {
	s.refs = append(s.refs, queue.Ref{Queue: m.Queue, ID: m.ID, Path: m.Path})
	s.msgs[m.ID] = m
}

func (s *memSource) MTA() queue.MTA { return queue.Postfix }
func (s *memSource) Root() string   { return "/mem" }

func (s *memSource) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	for _, r := range s.refs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Read(r queue.Ref) (*queue.Message, error) {
	s.reads.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for {
		old := s.maxInflight.Load()
		if n <= old || s.maxInflight.CompareAndSwap(old, n) {
			break
		}
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.vanish[r.ID] {
		return nil, &fs.PathError{Op: "open", Path: r.Path, Err: syscall.ENOENT}
	}
	if err := s.fail[r.ID]; err != nil {
		return nil, err
	}
	m, ok := s.msgs[r.ID]
	if !ok {
		return nil, fmt.Errorf("no such message %s", r.ID)
	}
	c := *m // a fresh Message per read, as a real reader returns
	return &c, nil
}

func (s *memSource) ReadContent(m *queue.Message, opt queue.ContentOptions) (*queue.Content, error) {
	s.contentReads.Add(1)
	if opt.Body {
		s.bodyReads.Add(1)
	}
	s.mu.Lock()
	s.contentIDs = append(s.contentIDs, m.ID)
	s.mu.Unlock()
	if s.gone[m.ID] {
		return nil, fs.ErrNotExist
	}
	c, ok := s.content[m.ID]
	if !ok {
		return nil, errors.New("no content")
	}
	cc := *c
	if !opt.Body {
		cc.Body = nil
	}
	return &cc, nil
}

// bigSource builds n messages spread over the queues, listed in a shuffled
// order; every third one is sent by spammer@example.com.
func bigSource(n int) *memSource {
	s := newMemSource()
	queues := []string{queue.Deferred, queue.Hold, queue.Active, queue.Incoming, queue.Maildrop, queue.QmailQueue, queue.QmailTodo}
	for i := range n {
		q := queues[i%len(queues)]
		id := fmt.Sprintf("%X", 0xA0000+i*7919%100003)
		if q == queue.QmailQueue || q == queue.QmailTodo {
			id = fmt.Sprint(i * 7919 % 100003) // numeric, like qmail's inode ids
		}
		sender := fmt.Sprintf("user%d@example.org", i)
		if i%3 == 0 {
			sender = "spammer@example.com"
		}
		s.add(&queue.Message{Queue: q, ID: id, Path: q + "/" + id, Sender: sender, Size: int64(i)})
		s.content[id] = &queue.Content{Subject: fmt.Sprintf("subject %d", i), Body: []byte(fmt.Sprintf("body %d", i))}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(s.refs), func(i, j int) { s.refs[i], s.refs[j] = s.refs[j], s.refs[i] })
	return s
}

func mustCompile(t *testing.T, spec Spec) *Matcher {
	t.Helper()
	m, err := Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSelectSortedAndComplete(t *testing.T) {
	src := bigSource(2000)
	m := mustCompile(t, Spec{Senders: []string{"spammer@example.com"}})

	// What the selection must be, computed without the engine.
	var want []string
	for _, r := range src.refs {
		if src.msgs[r.ID].Sender == "spammer@example.com" {
			want = append(want, r.Queue+"/"+r.ID)
		}
	}
	rank := map[string]int{"maildrop": 0, "incoming": 1, "active": 2, "deferred": 3, "hold": 4, "todo": 7, "queue": 8}
	slices.SortFunc(want, func(a, b string) int {
		var qa, ia, qb, ib string
		qa, ia = splitRef(a)
		qb, ib = splitRef(b)
		if rank[qa] != rank[qb] {
			return rank[qa] - rank[qb]
		}
		if qa == "queue" || qa == "todo" {
			var na, nb int
			fmt.Sscan(ia, &na)
			fmt.Sscan(ib, &nb)
			return na - nb
		}
		if ia < ib {
			return -1
		}
		if ia > ib {
			return 1
		}
		return 0
	})

	for run := range 3 {
		var st Stats
		res, err := Select(context.Background(), src, m, Options{Workers: 2 + run*3, Stats: &st})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res {
			got = append(got, r.Msg.Queue+"/"+r.Msg.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: %d results not in the expected order (first %v, want %v)", run, len(got), got[:5], want[:5])
		}
		if st.Walked != 2000 || st.Examined != 2000 || st.Matched != int64(len(want)) || st.ContentRead != 0 {
			t.Errorf("stats %+v", st)
		}
	}
	if src.contentReads.Load() != 0 {
		t.Errorf("an envelope-only spec read content %d times", src.contentReads.Load())
	}
}

func splitRef(s string) (string, string) {
	for i := range len(s) {
		if s[i] == '/' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func TestScanParallelSerialisedCallback(t *testing.T) {
	src := bigSource(200)
	src.delay = 2 * time.Millisecond
	m := mustCompile(t, Spec{})
	var inFn, maxInFn, calls atomic.Int64
	err := Scan(context.Background(), src, m, Options{Workers: 4}, func(r Result) error {
		n := inFn.Add(1)
		if n > maxInFn.Load() {
			maxInFn.Store(n)
		}
		time.Sleep(100 * time.Microsecond)
		inFn.Add(-1)
		calls.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 200 {
		t.Errorf("fn called %d times, want 200", calls.Load())
	}
	if maxInFn.Load() != 1 {
		t.Errorf("fn ran %d times concurrently", maxInFn.Load())
	}
	if got := src.maxInflight.Load(); got < 2 || got > 4 {
		t.Errorf("max concurrent reads %d, want 2..4 with 4 workers", got)
	}
}

// endlessSource walks forever, ignoring ctx, so only the engine's
// callback can stop it.
type endlessSource struct {
	memSource
	walked   atomic.Int64
	walkDone chan struct{}
}

func (s *endlessSource) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	defer close(s.walkDone)
	for i := 0; ; i++ {
		s.walked.Add(1)
		if err := fn(queue.Ref{Queue: queue.Deferred, ID: fmt.Sprint(i)}); err != nil {
			return err
		}
	}
}

func (s *endlessSource) Read(r queue.Ref) (*queue.Message, error) {
	return &queue.Message{Queue: r.Queue, ID: r.ID, Sender: "a@example.com"}, nil
}

func TestScanCancelStopsWalk(t *testing.T) {
	src := &endlessSource{walkDone: make(chan struct{})}
	m := mustCompile(t, Spec{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- Scan(ctx, src, m, Options{Workers: 3}, func(Result) error {
			if got.Add(1) == 100 {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Scan after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Scan did not stop after cancel")
	}
	select {
	case <-src.walkDone:
	case <-time.After(5 * time.Second):
		t.Fatal("Walk still running after Scan returned")
	}
	// Bounded channels: the walk got at most the batches that fit in the
	// channel buffers and hands past the cancel (3 workers: 2*3 buffered
	// refs, 3 in work, 2*3 buffered results, 1 at the collector, 1 being
	// filled by the walker).
	if w := src.walked.Load(); w > 100+(2*3+3+2*3+1+1)*scanBatch {
		t.Errorf("walked %d refs after cancelling at 100", w)
	}
}

func TestScanCallbackErrorAndStop(t *testing.T) {
	m := mustCompile(t, Spec{})
	boom := errors.New("boom")
	src := &endlessSource{walkDone: make(chan struct{})}
	n := 0
	err := Scan(context.Background(), src, m, Options{}, func(Result) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("Scan = %v, want the callback's error", err)
	}
	<-src.walkDone

	src = &endlessSource{walkDone: make(chan struct{})}
	n = 0
	err = Scan(context.Background(), src, m, Options{}, func(Result) error {
		n++
		if n == 10 {
			return ErrStop
		}
		return nil
	})
	if err != nil || n != 10 {
		t.Errorf("Scan with ErrStop = %v after %d results, want nil after 10", err, n)
	}
	<-src.walkDone
}

type failingWalk struct{ memSource }

var errWalk = errors.New("walk: permission denied")

func (s *failingWalk) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	if err := s.memSource.Walk(ctx, fn); err != nil {
		return err
	}
	return errWalk
}

func TestScanWalkError(t *testing.T) {
	src := &failingWalk{*bigSource(10)}
	_, err := Select(context.Background(), src, mustCompile(t, Spec{}), Options{})
	if !errors.Is(err, errWalk) {
		t.Errorf("Select = %v, want the walk error", err)
	}
}

func TestScanVanishedAndErrors(t *testing.T) {
	build := func() *memSource {
		src := bigSource(300)
		src.vanish[src.refs[5].ID] = true
		src.vanish[src.refs[6].ID] = true
		src.fail[src.refs[7].ID] = &fs.PathError{Op: "open", Path: src.refs[7].Path, Err: syscall.EACCES}
		src.fail[src.refs[8].ID] = errors.New("short read")
		return src
	}
	src := build()
	var st Stats
	res, err := Select(context.Background(), src, mustCompile(t, Spec{}), Options{Stats: &st})
	var pe *PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Select = %v, want *PartialError", err)
	}
	if pe.Total != 2 || len(pe.Errs) != 2 {
		t.Fatalf("PartialError %d/%d errors, want 2", len(pe.Errs), pe.Total)
	}
	if !errors.Is(err, syscall.EACCES) {
		t.Error("PartialError does not unwrap to EACCES")
	}
	ids := []string{pe.Errs[0].Ref.ID, pe.Errs[1].Ref.ID}
	slices.Sort(ids)
	want := []string{src.refs[7].ID, src.refs[8].ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("errors for %v, want %v", ids, want)
	}
	if len(res) != 296 {
		t.Errorf("%d results with a partial error, want 296", len(res))
	}
	if st.Vanished != 2 || st.Errors != 2 || st.Examined != 300 || st.Matched != 296 {
		t.Errorf("stats %+v", st)
	}

	// With OnError the errors go to the callback and Scan succeeds.
	src = build()
	var seen []string
	res, err = Select(context.Background(), src, mustCompile(t, Spec{}), Options{OnError: func(e *ReadError) error {
		seen = append(seen, e.Ref.ID)
		return nil
	}})
	if err != nil || len(seen) != 2 || len(res) != 296 {
		t.Errorf("with OnError: err %v, %d errors seen, %d results", err, len(seen), len(res))
	}

	// OnError may abort the scan.
	src = build()
	stop := errors.New("too many errors")
	_, err = Select(context.Background(), src, mustCompile(t, Spec{}), Options{OnError: func(*ReadError) error { return stop }})
	if !errors.Is(err, stop) {
		t.Errorf("OnError abort: %v", err)
	}
}

func TestScanContentOnlyForEnvelopeMatches(t *testing.T) {
	src := bigSource(900)
	m := mustCompile(t, Spec{Senders: []string{"spammer@example.com"}, Subjects: []string{`^subject [0-9]*5$`}})
	var st Stats
	res, err := Select(context.Background(), src, m, Options{Stats: &st})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.contentReads.Load(); got != 300 {
		t.Errorf("ReadContent called %d times, want 300 (the envelope matches)", got)
	}
	if src.bodyReads.Load() != 0 {
		t.Errorf("body read %d times for a subject-only spec", src.bodyReads.Load())
	}
	for _, id := range src.contentIDs {
		if src.msgs[id].Sender != "spammer@example.com" {
			t.Fatalf("content read for non-matching %s", id)
		}
	}
	// i%3==0 and i%10==5: i = 15, 45, ... below 900.
	if len(res) != 30 || st.ContentRead != 300 || st.Matched != 30 {
		t.Errorf("%d results, stats %+v", len(res), st)
	}
	for _, r := range res {
		if r.Msg.Content == nil || r.Msg.Content.Subject == "" {
			t.Errorf("%s: content not attached to the result", r.Msg.ID)
		}
	}

	// A body spec reads bodies, but the results do not keep them.
	src = bigSource(90)
	m = mustCompile(t, Spec{Senders: []string{"spammer@example.com"}, Bodies: []string{"^body 3$"}})
	res, err = Select(context.Background(), src, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.bodyReads.Load() != 30 || len(res) != 1 || res[0].Msg.Content.Body != nil {
		t.Errorf("body reads %d, results %d", src.bodyReads.Load(), len(res))
	}

	// Inverted: envelope misses are selected without reading content.
	src = bigSource(90)
	m = mustCompile(t, Spec{Senders: []string{"spammer@example.com"}, Subjects: []string{"^subject 3$"}, Invert: true})
	res, err = Select(context.Background(), src, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if src.contentReads.Load() != 30 || len(res) != 89 {
		t.Errorf("inverted: content reads %d, results %d, want 30 and 89", src.contentReads.Load(), len(res))
	}
}

func TestScanContentVanishedAndFailing(t *testing.T) {
	src := bigSource(30)
	src.gone[src.refs[0].ID] = true
	delete(src.content, src.refs[1].ID) // ReadContent fails
	m := mustCompile(t, Spec{Subjects: []string{"subject"}})
	var st Stats
	res, err := Select(context.Background(), src, m, Options{Stats: &st})
	var pe *PartialError
	if !errors.As(err, &pe) || pe.Total != 1 || pe.Errs[0].Ref.ID != src.refs[1].ID || pe.Errs[0].Op != "read content" {
		t.Fatalf("Select = %v", err)
	}
	if len(res) != 28 || st.Vanished != 1 {
		t.Errorf("%d results, stats %+v", len(res), st)
	}
}

func TestScanCorrupt(t *testing.T) {
	src := bigSource(30)
	for _, id := range []string{src.refs[3].ID, src.refs[4].ID} {
		src.msgs[id].Err = errors.New("truncated")
	}
	var st Stats
	res, err := Select(context.Background(), src, mustCompile(t, Spec{Corrupt: true}), Options{Stats: &st})
	if err != nil || len(res) != 2 || st.Corrupt != 2 {
		t.Fatalf("corrupt: err %v, %d results, stats %+v", err, len(res), st)
	}
	for _, r := range res {
		if r.Msg.Err == nil || r.Why[0] != "corrupt: truncated" {
			t.Errorf("%s: %v %q", r.Msg.ID, r.Msg.Err, r.Why)
		}
	}
	// Corrupt messages are matched on what was read, and not an error.
	res, err = Select(context.Background(), src, mustCompile(t, Spec{}), Options{})
	if err != nil || len(res) != 30 {
		t.Errorf("all: err %v, %d results", err, len(res))
	}
}

func TestScanProgress(t *testing.T) {
	src := bigSource(3000)
	var last, calls atomic.Int64
	err := Scan(context.Background(), src, mustCompile(t, Spec{MinSize: 2999}), Options{Progress: func(done, total int64) {
		if total != -1 {
			t.Errorf("total %d, want -1", total)
		}
		if done < last.Load() {
			t.Errorf("progress went back from %d to %d", last.Load(), done)
		}
		last.Store(done)
		calls.Add(1)
	}}, func(Result) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if last.Load() != 3000 || calls.Load() < 2 {
		t.Errorf("last progress %d after %d calls, want 3000 after at least 2", last.Load(), calls.Load())
	}
}

func TestScanEmptyAndDefaultWorkers(t *testing.T) {
	if w := DefaultWorkers(); w < 2 || w > 16 {
		t.Errorf("DefaultWorkers = %d", w)
	}
	res, err := Select(context.Background(), newMemSource(), mustCompile(t, Spec{}), Options{})
	if err != nil || len(res) != 0 {
		t.Errorf("empty queue: %v %d", err, len(res))
	}
}

type panickySource struct{ memSource }

func (s *panickySource) Read(r queue.Ref) (*queue.Message, error) {
	if r.ID == s.refs[2].ID {
		var m map[string]int
		m["x"]++ // a reader bug
	}
	return s.memSource.Read(r)
}

func TestScanSourcePanicIsPerMessageError(t *testing.T) {
	src := &panickySource{*bigSource(20)}
	res, err := Select(context.Background(), src, mustCompile(t, Spec{}), Options{})
	var pe *PartialError
	if !errors.As(err, &pe) || pe.Total != 1 || pe.Errs[0].Ref.ID != src.refs[2].ID || !errors.Is(err, errPanic) {
		t.Fatalf("Select = %v", err)
	}
	if len(res) != 19 {
		t.Errorf("%d results, want 19", len(res))
	}
}

func BenchmarkScanMiss(b *testing.B) {
	src := bigSource(100000)
	m, _ := Compile(Spec{Senders: []string{"nobody@example.net"}})
	b.ReportAllocs()
	for b.Loop() {
		if err := Scan(context.Background(), src, m, Options{}, func(Result) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
