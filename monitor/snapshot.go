// Package monitor turns one pass over a mail queue into what monitoring
// systems consume: a Snapshot (queue depth, bytes and oldest age per queue,
// the top accounts with their share of the queue and how many client
// addresses each used), thresholds over it, and the Snapshot rendered as a
// Nagios/Icinga plugin result or a Prometheus text file.
//
// It reads nothing itself: the caller feeds every message of a scan to a
// Builder. Nothing here prints; renderers write to the io.Writer given.
package monitor

import (
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/qsurgeon/qsurgeon/queue"
)

// Account kinds: who a message is charged to.
const (
	// KindSASL: the SMTP AUTH user (Postfix sasl_username; qmail: the
	// ESMTPA Received header) — the account a stolen password sends as.
	KindSASL = "sasl_user"
	// KindSender: no SASL user (local submission, a web script through
	// sendmail): the envelope sender stands for the account.
	KindSender = "sender"
)

// SizeBuckets and AgeBuckets are the histogram bounds of postfix_exporter's
// showq collector (kumina/postfix_exporter, showq/collector.go:
// postfix_showq_message_size_bytes and postfix_showq_message_age_seconds),
// so dashboards built on it read qsurgeon's text file unchanged.
var (
	SizeBuckets = []float64{1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}
	AgeBuckets  = []float64{1, 60, 5 * 60, 10 * 60, 3600, 3600 * 6, 3600 * 12, 3600 * 18, 3600 * 24, 2 * 3600 * 24}
)

// QueueStats is one queue's part of a snapshot.
type QueueStats struct {
	Messages         int64   `json:"messages"`
	Bytes            int64   `json:"bytes"`
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
	// Per-bucket (not cumulative) counts over SizeBuckets/AgeBuckets, the
	// last one counting what is above the highest bound; and the sums.
	SizeCounts []uint64 `json:"-"`
	AgeCounts  []uint64 `json:"-"`
	AgeSum     float64  `json:"-"`
}

// Account is one account's part of a snapshot.
type Account struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Messages int64  `json:"messages"`
	Bytes    int64  `json:"bytes"`
	// Share is Messages over the snapshot's messages, 0 to 1.
	Share float64 `json:"share"`
	// ClientAddresses is how many distinct SMTP client addresses the
	// account's queued mail came from: a stolen password shows dozens.
	ClientAddresses int `json:"client_addresses"`
}

// Snapshot is the state of one queue at one time, from one host: JSON
// snapshots of many hosts merge by host and time.
type Snapshot struct {
	Host             string                 `json:"host"`
	Time             time.Time              `json:"time"`
	MTA              string                 `json:"mta"`
	QueueDir         string                 `json:"queue_directory"`
	Messages         int64                  `json:"messages"`
	Bytes            int64                  `json:"bytes"`
	OldestAgeSeconds float64                `json:"oldest_age_seconds"`
	Unreadable       int64                  `json:"unreadable"`
	Queues           map[string]*QueueStats `json:"queues"`
	Accounts         []Account              `json:"top_accounts"`
	DistinctAccounts int                    `json:"distinct_accounts"`
	// Log is the logs' view of the last minutes (monitor --log), or nil.
	Log *LogView `json:"log,omitempty"`
}

// TopAccount is the account with the most messages, or nil.
func (s *Snapshot) TopAccount() *Account {
	if len(s.Accounts) == 0 {
		return nil
	}
	return &s.Accounts[0]
}

// QueueNames are the queues a snapshot of the MTA always reports, empty or
// not, so that graphs and perfdata keep their series.
func QueueNames(mta string) []string {
	if mta == string(queue.Qmail) {
		return []string{queue.QmailQueue, queue.QmailTodo}
	}
	return []string{queue.Maildrop, queue.Incoming, queue.Active, queue.Deferred, queue.Hold, queue.Corrupt}
}

// Builder accumulates messages into a Snapshot. Its methods are not safe
// for concurrent use (filter.Scan calls its callback from one goroutine).
type Builder struct {
	snap     Snapshot
	accounts map[acctKey]*acctState
}

type acctKey struct{ kind, name string }

type acctState struct {
	messages, bytes int64
	clients         map[string]struct{}
}

// NewBuilder starts a snapshot of the queue at dir taken at now.
func NewBuilder(host, mta, dir string, now time.Time) *Builder {
	b := &Builder{
		snap:     Snapshot{Host: host, Time: now, MTA: mta, QueueDir: dir, Queues: map[string]*QueueStats{}},
		accounts: map[acctKey]*acctState{},
	}
	for _, q := range QueueNames(mta) {
		b.queue(q)
	}
	return b
}

func (b *Builder) queue(name string) *QueueStats {
	q := b.snap.Queues[name]
	if q == nil {
		q = &QueueStats{SizeCounts: make([]uint64, len(SizeBuckets)+1), AgeCounts: make([]uint64, len(AgeBuckets)+1)}
		b.snap.Queues[name] = q
	}
	return q
}

// AccountOf is who a message is charged to: its SASL user, else its
// envelope sender; bounces (null sender) belong to no account.
func AccountOf(m *queue.Message) (kind, name string, ok bool) {
	if m.SASLUser != "" {
		return KindSASL, m.SASLUser, true
	}
	if m.NullSender || m.Sender == "" {
		return "", "", false
	}
	return KindSender, m.Sender, true
}

// Unreadable counts a message that could not be read at all.
func (b *Builder) Unreadable() { b.snap.Unreadable++ }

// Add counts one message.
func (b *Builder) Add(m *queue.Message) {
	s := &b.snap
	age := s.Time.Sub(m.Arrival).Seconds()
	if m.Arrival.IsZero() || age < 0 {
		age = 0 // no arrival time, or the clock of the writer ran ahead
	}
	s.Messages++
	s.Bytes += m.Size
	s.OldestAgeSeconds = max(s.OldestAgeSeconds, age)
	q := b.queue(m.Queue)
	q.Messages++
	q.Bytes += m.Size
	q.OldestAgeSeconds = max(q.OldestAgeSeconds, age)
	q.SizeCounts[sort.SearchFloat64s(SizeBuckets, float64(m.Size))]++
	q.AgeCounts[sort.SearchFloat64s(AgeBuckets, age)]++
	q.AgeSum += age
	kind, name, ok := AccountOf(m)
	if !ok {
		return
	}
	k := acctKey{kind, name}
	a := b.accounts[k]
	if a == nil {
		a = &acctState{clients: map[string]struct{}{}}
		b.accounts[k] = a
	}
	a.messages++
	a.bytes += m.Size
	if m.ClientAddr != "" {
		a.clients[m.ClientAddr] = struct{}{}
	}
}

// Snapshot ends the pass: the top n accounts by messages (ties by name),
// with their share and client-address fan-out.
func (b *Builder) Snapshot(n int) *Snapshot {
	s := b.snap
	all := make([]Account, 0, len(b.accounts))
	for k, a := range b.accounts {
		acc := Account{Name: k.name, Kind: k.kind, Messages: a.messages, Bytes: a.bytes, ClientAddresses: len(a.clients)}
		if s.Messages > 0 {
			acc.Share = float64(a.messages) / float64(s.Messages)
		}
		all = append(all, acc)
	}
	slices.SortFunc(all, func(x, y Account) int {
		if x.Messages != y.Messages {
			if x.Messages > y.Messages {
				return -1
			}
			return 1
		}
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return strings.Compare(x.Kind, y.Kind)
	})
	s.DistinctAccounts = len(all)
	if n >= 0 && len(all) > n {
		all = all[:n]
	}
	s.Accounts = all
	return &s
}

// Clean makes a name from a queue file safe to print in a status line or
// a label: invalid UTF-8, control and format (bidi) characters become '?', and '|' (the
// plugin output's perfdata separator) too.
func Clean(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	var sb strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		if r == utf8.RuneError && n <= 1 || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '|' {
			sb.WriteByte('?')
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
