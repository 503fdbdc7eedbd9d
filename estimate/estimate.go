// Package estimate answers an incident's first question — who is it — from
// a uniform random sample of a queue's messages, in seconds on a queue that
// takes minutes to read whole.
//
// Sample lists every message name of a queue.Source (Walk: directory
// entries only, no file is opened), keeps a uniform random sample of them
// (reservoir sampling, Vitter's Algorithm R), reads only those, through the
// same filter engine and the same compiled selection as an exact scan, and
// estimates the top SASL users, senders, client networks and recipient
// domains with their share and a 95% confidence interval.
//
// The intervals are Wilson score intervals with the finite-population
// correction (a sample as large as the queue gives the exact figures and
// zero-width intervals). Recipient domains are shares of pending
// recipients, which come in clusters (one message, many recipients): their
// interval uses the ratio estimator's variance through Kish's design
// effect. Nothing here prints; cmd/qsurgeon renders an Estimate.
package estimate

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
)

// DefaultSize is the sample size when none is given: a share within ±2
// points at 95% needs 1.96²·0.25/0.02² = 2,401 messages at worst (p = ½);
// 4,000 gives ±1.55 points at worst and ±0.93 at a 10% share.
const DefaultSize = 4000

// Options tune Sample. The zero Options are fine.
type Options struct {
	// Size is how many message names to draw; <= 0 means DefaultSize.
	Size int
	// Seed makes the draw reproducible when SeedSet; otherwise the seed
	// comes from crypto/rand (and is reported in Estimate.Seed).
	Seed    uint64
	SeedSet bool
	// Top is the length of each top list; <= 0 means all keys seen.
	Top int
	// Workers reading the sample; <= 0 means filter.DefaultWorkers().
	Workers int
	// OnError receives per-message read errors (see filter.Options).
	OnError func(*filter.ReadError) error
}

// Share is one key's estimate.
type Share struct {
	Key string `json:"key"`
	// SampleCount is what the sample holds: messages (recipients for a
	// recipient domain).
	SampleCount int64 `json:"sample_count"`
	// Count is the estimated count in the whole queue.
	Count int64 `json:"count"`
	// Share is SampleCount over the sampled messages of the selection
	// (over their pending recipients for a recipient domain), CILow and
	// CIHigh its 95% confidence interval.
	Share  float64 `json:"share"`
	CILow  float64 `json:"ci_low"`
	CIHigh float64 `json:"ci_high"`
}

// Shares is a list of estimates, largest first.
type Shares []Share

// Estimate is what Sample found.
type Estimate struct {
	// Population is the number of message names listed.
	Population int64 `json:"population"`
	// SampleSize is the number of names drawn (all of them when the queue
	// is no larger than the sample asked for).
	SampleSize int64 `json:"sample_size"`
	// Read is how many of those were read (not vanished, not unreadable);
	// Matched how many of them the selection kept: the denominator of
	// every message share.
	Read    int64 `json:"read"`
	Matched int64 `json:"matched"`
	// Exact: every name was drawn, so the figures are exact.
	Exact      bool    `json:"exact"`
	Seed       uint64  `json:"seed"`
	Confidence float64 `json:"confidence"`
	// Messages and Recipients are the estimated size of the selection and
	// its pending recipients.
	Messages   int64 `json:"messages"`
	Recipients int64 `json:"pending_recipients"`

	// Queues is every queue's share of the selection (Postfix queue
	// names; qmail's "queue" and "todo"), all of them, not a top list.
	Queues Shares `json:"queues"`
	// The top lists, as the exact summary orders them (count, then key).
	SASLUsers Shares `json:"top_sasl_users"`
	Senders   Shares `json:"top_senders"`
	// ClientNetworks: /24 and /64 (Network).
	ClientNetworks Shares `json:"top_client_networks"`
	// RecipientDomains: shares of the pending recipients.
	RecipientDomains Shares `json:"top_recipient_domains"`

	// ListSeconds is the time spent listing names, ReadSeconds reading the
	// sample.
	ListSeconds float64 `json:"list_seconds"`
	ReadSeconds float64 `json:"read_seconds"`
}

// Sender is how a summary names a message's sender: the null sender is
// MAILER-DAEMON, as postqueue and qshape show it.
func Sender(m *queue.Message) string {
	if m.NullSender {
		return "MAILER-DAEMON"
	}
	return m.Sender
}

// Network is the client network an address belongs to: its /24 for IPv4,
// its /64 for IPv6 (the smallest prefix a single site is given), and the
// address itself when it is not an IP address.
func Network(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		// Postfix writes "IPv6:..." in some places; qmail a bare address.
		if b, err2 := netip.ParseAddr(strings.TrimPrefix(addr, "IPv6:")); err2 == nil {
			a = b
		} else {
			return addr
		}
	}
	a = a.Unmap().WithZone("")
	bits := 24
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return addr
	}
	return p.String()
}

// Domain is the recipient domain a summary counts an address under.
func Domain(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return strings.ToLower(addr[at+1:])
	}
	return "(no domain)"
}

// Reservoir keeps a uniform random sample of at most Size items of a
// stream of unknown length (Vitter's Algorithm R): after n items, each
// has been kept with probability Size/n. Memory is the sample's.
type Reservoir[T any] struct {
	size  int
	seen  int64
	items []T
	rng   *rand.Rand
}

// NewReservoir returns a reservoir of size items drawing from rng.
func NewReservoir[T any](size int, rng *rand.Rand) *Reservoir[T] {
	return &Reservoir[T]{size: size, rng: rng, items: make([]T, 0, min(size, 1<<16))}
}

// Add offers one item.
func (r *Reservoir[T]) Add(x T) {
	r.seen++
	if len(r.items) < r.size {
		r.items = append(r.items, x)
		return
	}
	if j := r.rng.Int64N(r.seen); j < int64(r.size) {
		r.items[j] = x
	}
}

// Seen is how many items were offered; Items the sample.
func (r *Reservoir[T]) Seen() int64 { return r.seen }
func (r *Reservoir[T]) Items() []T  { return r.items }

// NewSeed returns a seed from crypto/rand.
func NewSeed() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:]) // never fails on Linux (getrandom)
	return binary.LittleEndian.Uint64(b[:])
}

// Sample draws a uniform random sample of src's message names, reads only
// those through filter.Scan with m (so the sample is of the same selection
// an exact scan would make), and estimates the top keys. It lists every
// name first: Walk opens directories, not message files.
func Sample(ctx context.Context, src queue.Source, m *filter.Matcher, opt Options) (*Estimate, error) {
	if m == nil {
		return nil, errors.New("estimate: Sample without a Matcher")
	}
	size := opt.Size
	if size <= 0 {
		size = DefaultSize
	}
	seed := opt.Seed
	if !opt.SeedSet {
		seed = NewSeed()
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	t0 := time.Now()
	res := NewReservoir[queue.Ref](size, rng)
	if err := src.Walk(ctx, func(r queue.Ref) error {
		res.Add(r)
		return ctx.Err()
	}); err != nil {
		return nil, err
	}
	refs := res.Items()
	// Read in path order: neighbours in a hash directory tend to be
	// neighbours on disk, which a cold read notices.
	slices.SortFunc(refs, func(a, b queue.Ref) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Queue, b.Queue), cmp.Compare(a.ID, b.ID))
	})
	e := &Estimate{
		Population: res.Seen(),
		SampleSize: int64(len(refs)),
		Exact:      int64(len(refs)) == res.Seen(),
		Seed:       seed,
		Confidence: 0.95,
	}
	t1 := time.Now()
	e.ListSeconds = t1.Sub(t0).Seconds()

	t := newTally()
	var st filter.Stats
	err := filter.Scan(ctx, sampled(src, refs), m, filter.Options{Workers: opt.Workers, OnError: opt.OnError, Stats: &st},
		func(r filter.Result) error { t.add(r.Msg); return nil })
	if err != nil {
		var pe *filter.PartialError
		if !errors.As(err, &pe) {
			return nil, err
		}
	}
	e.ReadSeconds = time.Since(t1).Seconds()
	e.Read = st.Examined - st.Vanished - st.Errors
	e.Matched = t.messages
	t.finish(e, opt.Top)
	return e, err
}

// tally counts the sample.
type tally struct {
	messages                int64
	queues                  map[string]int64
	sasl, senders, networks map[string]int64
	domains                 map[string]int64
	perMsgDomains           []map[string]int
	perMsgRecipients        []float64
	recipients              int64
}

func newTally() *tally {
	return &tally{queues: map[string]int64{}, sasl: map[string]int64{}, senders: map[string]int64{}, networks: map[string]int64{}, domains: map[string]int64{}}
}

func (t *tally) add(m *queue.Message) {
	t.messages++
	t.queues[m.Queue]++
	if m.SASLUser != "" {
		t.sasl[m.SASLUser]++
	}
	t.senders[Sender(m)]++
	if m.ClientAddr != "" {
		t.networks[Network(m.ClientAddr)]++
	}
	var doms map[string]int
	var n int
	for _, rc := range m.Recipients {
		if rc.Done || rc.Canceled {
			continue
		}
		d := Domain(rc.Address)
		if doms == nil {
			doms = map[string]int{}
		}
		doms[d]++
		t.domains[d]++
		n++
	}
	t.recipients += int64(n)
	t.perMsgDomains = append(t.perMsgDomains, doms)
	t.perMsgRecipients = append(t.perMsgRecipients, float64(n))
}

// finish turns the counts into estimates: counts scaled by the sampling
// fraction, shares of the sampled selection with their intervals.
func (t *tally) finish(e *Estimate, top int) {
	scale := 1.0
	if e.SampleSize > 0 {
		scale = float64(e.Population) / float64(e.SampleSize)
	}
	est := func(k int64) int64 {
		if e.Exact {
			return k
		}
		return int64(math.Round(float64(k) * scale))
	}
	e.Messages, e.Recipients = est(t.messages), est(t.recipients)
	// The selection's size in the queue: the finite population the
	// sampled selection was drawn from.
	pop := float64(t.messages) * scale
	neff := EffectiveN(float64(t.messages), pop)
	if e.Exact {
		neff = math.Inf(1)
	}
	msgShares := func(c map[string]int64) []Share {
		out := make([]Share, 0, len(c))
		for _, kv := range topKeys(c, top) {
			p := float64(kv.n) / float64(t.messages)
			lo, hi := Wilson(p, neff, Z95)
			out = append(out, Share{Key: kv.k, SampleCount: kv.n, Count: est(kv.n), Share: p, CILow: lo, CIHigh: hi})
		}
		return out
	}
	e.SASLUsers, e.Senders, e.ClientNetworks = msgShares(t.sasl), msgShares(t.senders), msgShares(t.networks)
	top = 0
	e.Queues = msgShares(t.queues)
	e.RecipientDomains = make([]Share, 0, len(t.domains))
	for _, kv := range topKeys(t.domains, top) {
		r := float64(kv.n) / float64(t.recipients)
		ys := make([]float64, len(t.perMsgDomains))
		for i, d := range t.perMsgDomains {
			ys[i] = float64(d[kv.k])
		}
		n := ratioNeff(ys, t.perMsgRecipients, r, pop)
		if e.Exact {
			n = math.Inf(1)
		}
		lo, hi := Wilson(r, n, Z95)
		e.RecipientDomains = append(e.RecipientDomains, Share{Key: kv.k, SampleCount: kv.n, Count: est(kv.n), Share: r, CILow: lo, CIHigh: hi})
	}
}

type keyCount struct {
	k string
	n int64
}

// topKeys sorts by count, then key, as the exact summary does.
func topKeys(c map[string]int64, top int) []keyCount {
	out := make([]keyCount, 0, len(c))
	for k, n := range c {
		out = append(out, keyCount{k, n})
	}
	slices.SortFunc(out, func(a, b keyCount) int { return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.k, b.k)) })
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	return out
}

// sampled returns src with a Walk that yields only refs (a queue.StagedSource
// stays one, so the engine keeps reading only what the criteria need).
func sampled(src queue.Source, refs []queue.Ref) queue.Source {
	s := &sampleSource{Source: src, refs: refs}
	if st, ok := src.(queue.StagedSource); ok {
		return &stagedSample{sampleSource: s, staged: st}
	}
	return s
}

type sampleSource struct {
	queue.Source
	refs []queue.Ref
}

func (s *sampleSource) Walk(ctx context.Context, fn func(queue.Ref) error) error {
	for _, r := range s.refs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

type stagedSample struct {
	*sampleSource
	staged queue.StagedSource
}

func (s *stagedSample) ReadFields(ref queue.Ref, f queue.Fields) (*queue.Message, error) {
	return s.staged.ReadFields(ref, f)
}

func (s *stagedSample) ReadRest(ref queue.Ref, f queue.Fields) (*queue.Message, error) {
	return s.staged.ReadRest(ref, f)
}
