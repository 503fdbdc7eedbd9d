package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// liveView redraws the summary so far in place on a terminal while the
// exact scan runs (summary only): the counts so far and the top SASL users
// and senders so far, so that the admin sees the answer forming. The final
// summary replaces the last frame. Every string from the queue goes
// through printable (internal/termsafe); every line is cut to the
// terminal's width so that none wraps and the cursor-up count stays right.
type liveView struct {
	// mu orders frames and the warnings other goroutines print (guard).
	mu            sync.Mutex
	w             io.Writer
	fd            int
	root          string
	start, last   time.Time
	interval      time.Duration
	lines         int
	width, height int
}

// liveMinInterval is the shortest time between two frames.
const liveMinInterval = 250 * time.Millisecond

// liveSummary returns the live view, or nil when stdout is not a terminal,
// the output is not text, or --no-progress was given. A nil *liveView does
// nothing.
func (e *env) liveSummary(o globalOpts) *liveView {
	if o.NoProgress || o.Format != "table" || !isTerminal(e.stdout) {
		return nil
	}
	return &liveView{w: e.stdout, fd: int(e.stdout.(*os.File).Fd()), start: time.Now(), interval: liveMinInterval}
}

// setRoot names the queue in the frames.
func (v *liveView) setRoot(root string) {
	if v != nil {
		v.mu.Lock()
		v.root = root
		v.mu.Unlock()
	}
}

// guard returns w, or with a live view a writer that clears the frame
// before each write: a warning on the same terminal then stands above the
// next frame instead of being drawn over (w is the terminal's stderr).
func (v *liveView) guard(w io.Writer) io.Writer {
	if v == nil {
		return w
	}
	return guarded{v, w}
}

type guarded struct {
	v *liveView
	w io.Writer
}

func (g guarded) Write(p []byte) (int, error) {
	g.v.mu.Lock()
	defer g.v.mu.Unlock()
	g.v.clearLocked()
	return g.w.Write(p)
}

// update draws a frame when the last one is old enough; examined is the
// number of messages read so far. Called from the scan's one collector
// goroutine, like the callback that feeds acc.
func (v *liveView) update(acc *summaryAcc, examined int64) {
	if v == nil || (!v.last.IsZero() && time.Since(v.last) < v.interval) {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t0 := time.Now()
	v.width, v.height = 80, 24
	if w, h, err := term.GetSize(v.fd); err == nil && w > 0 && h > 0 {
		v.width, v.height = w, h
	}
	var b bytes.Buffer
	v.erase(&b)
	n := 0
	line := func(format string, args ...any) {
		b.WriteString(fitWidth(fmt.Sprintf(format, args...), v.width-1))
		b.WriteByte('\n')
		n++
	}
	s := acc.s
	line("%s queue %s: so far %d messages, %s, %d pending recipients (%d read, %.0f s)",
		s.MTA, printable(v.root), s.Messages, humanBytes(s.Bytes), s.Recipients, examined, time.Since(v.start).Seconds())
	// Two lists of k lines and their titles must fit the screen.
	k := min(5, (v.height-4)/2)
	list := func(title string, c counter) {
		if k <= 0 || len(c) == 0 {
			return
		}
		line("%s so far (%d distinct)", title, len(c))
		for _, e := range topK(c, k) {
			line("  %7d  %s", e.Count, printable(e.Key))
		}
	}
	list("Top SASL users", acc.sasl)
	list("Top senders", acc.senders)
	_, _ = v.w.Write(b.Bytes())
	v.lines = n
	v.last = time.Now()
	// A queue with millions of distinct senders makes a frame cost
	// something: keep drawing under a tenth of the scan's time.
	v.interval = max(liveMinInterval, 10*v.last.Sub(t0))
}

// erase moves the cursor back to the first line of the last frame and
// clears from there to the end of the screen.
func (v *liveView) erase(b *bytes.Buffer) {
	if v.lines > 0 {
		fmt.Fprintf(b, "\x1b[%dA\r\x1b[J", v.lines)
	}
	v.lines = 0
}

// clear removes the last frame, leaving the cursor where it began.
func (v *liveView) clear() {
	if v == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clearLocked()
}

func (v *liveView) clearLocked() {
	if v.lines == 0 {
		return
	}
	var b bytes.Buffer
	v.erase(&b)
	_, _ = v.w.Write(b.Bytes())
}

// topK is counter.top(k) without sorting the whole map: one pass keeping
// the k largest (count descending, then key), as top orders them.
func topK(c counter, k int) []topEntry {
	out := make([]topEntry, 0, k+1)
	for key, v := range c {
		if len(out) == k && !before(v.Count, key, out[k-1]) {
			continue
		}
		i := len(out)
		out = append(out, topEntry{})
		for i > 0 && before(v.Count, key, out[i-1]) {
			out[i] = out[i-1]
			i--
		}
		out[i] = topEntry{Key: key, Count: v.Count, Bytes: v.Bytes}
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}

func before(n int64, key string, e topEntry) bool {
	return n > e.Count || n == e.Count && key < e.Key
}

// fitWidth cuts s to at most w terminal columns (East Asian wide and
// fullwidth characters counted as two, to be safe), the last one an
// ellipsis.
func fitWidth(s string, w int) string {
	w = max(w, 2)
	width := func(r rune) int {
		if r >= 0x1100 {
			return 2
		}
		return 1
	}
	total := 0
	for _, r := range s {
		total += width(r)
	}
	if total <= w {
		return s
	}
	cols := 0
	for i, r := range s {
		if cols+width(r) > w-1 {
			return s[:i] + "…"
		}
		cols += width(r)
	}
	return s
}
