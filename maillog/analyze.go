package maillog

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Message is what the logs say about one queued message: who submitted
// it, from where, and what became of its recipients. Via names the line
// that tied it to its SASL user.
type Message struct {
	MTA        string // "postfix" or "qmail"
	ID         string // Postfix queue ID; qmail message number
	Time       time.Time
	User       string
	Method     string
	ClientAddr string
	ClientName string
	Sender     string
	HasSender  bool // a from= / info msg line was seen (Sender "" is then the null sender)
	Size       int64
	Nrcpt      int
	QP         string // qmail: qmail-queue's pid, the N of "Received: (qmail N invoked ...)"
	Parent     string // for a non-delivery notification: the message it reports on
	Via        Source // the line that gave User (or the sender, for qmail)
	Removed    bool

	counted      bool
	nrcptCounted bool
	ac           *acct          // the account of User, once looked up
	rcpts        []rcptSt       // recipient -> last status, in arrival order
	rcptIdx      map[string]int // index into rcpts, once there are many
}

// rcptSt is one recipient of a message and its last delivery status.
type rcptSt struct{ addr, status string }

// rcptMapAt is how many recipients a message holds in a plain slice
// (searched linearly) before they are indexed by a map.
const rcptMapAt = 16

// setRcpt records status as rcpt's latest.
func (m *Message) setRcpt(rcpt, status string) {
	if m.rcptIdx != nil {
		if i, ok := m.rcptIdx[rcpt]; ok {
			m.rcpts[i].status = status
			return
		}
	} else {
		for i := range m.rcpts {
			if m.rcpts[i].addr == rcpt {
				m.rcpts[i].status = status
				return
			}
		}
	}
	r := clone(rcpt)
	if want := min(max(m.Nrcpt, 1), rcptMapAt+1); len(m.rcpts) == 0 && cap(m.rcpts) < want {
		// qmgr's nrcpt= came first: one allocation for them all
		m.rcpts = make([]rcptSt, 0, want)
	}
	m.rcpts = append(m.rcpts, rcptSt{r, status})
	switch {
	case m.rcptIdx != nil:
		m.rcptIdx[r] = len(m.rcpts) - 1
	case len(m.rcpts) > rcptMapAt:
		m.rcptIdx = make(map[string]int, 2*len(m.rcpts))
		for i, x := range m.rcpts {
			m.rcptIdx[x.addr] = i
		}
	}
}

// Source is a place in the logs.
type Source struct {
	File string
	Line int64
}

func (s Source) String() string {
	if s.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Account is one authenticated user's row. The JSON names are the ones
// the issue asked for; Score and Why rank it.
type Account struct {
	User             string     `json:"sasl_username"`
	LoginsOK         int        `json:"logins_ok"`
	LoginsFailed     int        `json:"logins_failed"`
	ClientAddresses  int        `json:"client_addresses"`
	FailedAddresses  int        `json:"failed_addresses"`
	Networks         int        `json:"networks"`
	FirstSeen        *time.Time `json:"first_seen"`
	LastSeen         *time.Time `json:"last_seen"`
	Messages         int        `json:"messages"`
	Recipients       int        `json:"recipients"`
	RecipientDomains int        `json:"recipient_domains"`
	Queued           *int       `json:"queued"` // nil: the queue was not read
	Sent             int        `json:"sent"`
	Deferred         int        `json:"deferred"`
	Bounced          int        `json:"bounced"`
	EnvelopeSenders  int        `json:"envelope_senders"`
	ForgedSenders    int        `json:"forged_senders"`
	TopAddresses     []string   `json:"top_addresses"`
	Score            float64    `json:"score"`
	Why              []string   `json:"why"`
}

type acct struct {
	user              string
	ok, failed        int
	addrs             map[string]time.Time // client address -> first seen
	addrN             map[string]*addrCount
	nets              map[string]struct{}
	first, last       time.Time
	firstSeq, lastSeq uint64 // the log positions first and last were taken at (see merge)
	messages          int
	recipients        int
	domains           map[string]string // recipient domain -> itself (the stored key)
	senders           map[string]struct{}
	sent, def, bounce int
	failAddrs         map[string]struct{}
	lastAddr          *addrCount // the last address seen() counted
	lastDom           string     // the last recipient domain added to domains (a key of it)
}

// failAddr records an address a failed login came from; client_addresses
// counts only the addresses that got in.
func (ac *acct) failAddr(addr string) {
	if addr == "" {
		return
	}
	if ac.failAddrs == nil {
		ac.failAddrs = map[string]struct{}{}
	}
	if _, ok := ac.failAddrs[addr]; !ok {
		ac.failAddrs[clone(addr)] = struct{}{}
	}
}

// ImpactRow is one line of the impact table: recipients and messages per
// recipient domain, relay and status.
type ImpactRow struct {
	Domain     string `json:"recipient_domain"`
	Relay      string `json:"relay"`
	Status     string `json:"status"`
	Recipients int    `json:"recipients"`
	Messages   int    `json:"messages"`
	Deliveries int    `json:"deliveries"`

	rcpts map[string]struct{}
	msgs  map[string]struct{}
}

type impactKey struct{ domain, relay, status string }

type session struct{ prog, pid string }

// login is one successful login, kept per client address so that a qmail
// message (whose log names no user) can be tied to the login that came
// from its client address just before it arrived.
type login struct {
	key  string // the map key it is stored under (a heap copy)
	user string
	t    time.Time
	src  Source
}

// maxLoginsPerAddr bounds the logins kept per address (the latest win).
const maxLoginsPerAddr = 8

// Kinds returns how many events of each kind were added.
func (a *Analyzer) Kinds() map[Kind]int64 {
	out := map[Kind]int64{}
	for k, n := range a.span.kinds {
		if n > 0 {
			out[Kind(k)] = n
		}
	}
	return out
}

type qdelivery struct{ msg, rcpt, channel string }

type recentFail struct {
	user, addr, prog string
	t                time.Time
	used             bool
}

// Analyzer folds events into accounts, an impact table and the index of
// messages still open at the end (not removed), for the join with a
// queue. Its memory grows with accounts, addresses and open messages.
type Analyzer struct {
	// Select, when set, limits the impact table to the deliveries (a
	// message and one of its recipients) it accepts: the command's filter
	// flags.
	Select func(m *Message, rcpt string) bool
	// TrackImpact keeps the impact table (distinct recipients and messages
	// per domain, relay and status); off, Impact returns nothing.
	TrackImpact bool

	accounts map[string]*acct
	strs     map[string]string   // interned client addresses, names, methods, senders
	last     [nLast]string       // the last value interned per field (internAt)
	msgs     map[string]*Message // Postfix, by queue ID
	qmsgs    map[string]*Message // qmail, by message number
	qdel     map[string]qdelivery
	sessions map[session]string // smtpd process -> authenticated user of the session
	logins   map[string][]login // client address -> latest successful logins (vchkpw, dovecot, ...)
	impact   map[impactKey]*ImpactRow
	free     []*Message // removed Messages for reuse
	lastRow  *ImpactRow // the impact row the last delivery went to
	lastMsg  *Message   // the message msg found last (see msg)
	fails    [16]recentFail
	scratch  job    // Add's
	nadd     uint64 // events Add was given
	nfail    int

	span span // kinds counted and the first and last stamp
	// Totals counts as pflogsumm's "Grand Totals" do: received is one per
	// smtpd "client=" and pickup "uid=" line (a queue ID entering), sent,
	// deferrals and bounced one per delivery line of that status.
	Totals Totals
	// UnattributedFailures counts failed logins whose log line names no
	// user (Postfix without sasl_username, authdaemond).
	UnattributedFailures int
}

// Totals are message counts over the whole window.
type Totals struct {
	Received  int `json:"received"`
	Sent      int `json:"sent"`
	Deferrals int `json:"deferrals"`
	Bounced   int `json:"bounced"`
	Rejected  int `json:"rejected"`
	Held      int `json:"held"`
}

// NewAnalyzer returns an empty Analyzer.
func NewAnalyzer() *Analyzer {
	return &Analyzer{accounts: map[string]*acct{}, msgs: map[string]*Message{}, qmsgs: map[string]*Message{},
		qdel: map[string]qdelivery{}, strs: map[string]string{}, sessions: map[session]string{}, logins: map[string][]login{}, impact: map[impactKey]*ImpactRow{}}
}

func clone(s string) string { return strings.Clone(s) }

// maxInterned bounds the intern table; past it, strings are cloned.
const maxInterned = 1 << 20

// intern returns a heap copy of s that is shared by every equal string
// (client addresses, names, SASL methods and senders repeat on every
// message): no allocation for a value seen before.
func (a *Analyzer) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := a.strs[s]; ok {
		return v
	}
	v := clone(s)
	if len(a.strs) < maxInterned {
		a.strs[v] = v
	}
	return v
}

// The kinds of value internAt remembers the last of.
const (
	lastAddr = iota
	lastName
	lastUser
	lastMethod
	lastSender
	nLast
)

// internAt is intern that first compares s with the last value interned
// for the same field (a burst of messages from one client and account
// repeats them line after line): a comparison instead of a map lookup.
func (a *Analyzer) internAt(field int, s string) string {
	if v := a.last[field]; v == s {
		return v
	}
	v := a.intern(s)
	a.last[field] = v
	return v
}

// acctOf is the account of m.User (which must not be empty), looked up
// once per message.
func (a *Analyzer) acctOf(m *Message) *acct {
	if m.ac == nil {
		m.ac = a.account(m.User)
	}
	return m.ac
}

func (a *Analyzer) account(user string) *acct {
	key := lower(user)
	ac := a.accounts[key]
	if ac == nil {
		ac = &acct{user: clone(key), addrs: map[string]time.Time{}, addrN: map[string]*addrCount{}, nets: map[string]struct{}{},
			domains: map[string]string{}, senders: map[string]struct{}{}}
		a.accounts[ac.user] = ac
	}
	return ac
}

func (ac *acct) seen(t time.Time, addr string, seq uint64) {
	if !t.IsZero() {
		if ac.first.IsZero() || t.Before(ac.first) {
			ac.first, ac.firstSeq = t, seq
		}
		if t.After(ac.last) {
			ac.last, ac.lastSeq = t, seq
		}
	}
	if addr == "" {
		return
	}
	// Never assign to a map with a key that points into the Reader's
	// buffer: Go replaces the stored string key on assignment.
	if ac.lastAddr != nil && ac.lastAddr.addr == addr {
		ac.lastAddr.n++
		return
	}
	if c, ok := ac.addrN[addr]; ok {
		c.n++
		ac.lastAddr = c
		return
	}
	addr = clone(addr)
	c := &addrCount{addr, 1, seq}
	ac.addrN[addr] = c
	ac.lastAddr = c
	ac.addrs[addr] = t
	if nw := Network(addr); nw != "" {
		ac.nets[nw] = struct{}{}
	}
}

// Network is the /24 (IPv4) or /48 (IPv6) an address belongs to, the
// unit of "different places"; "" when addr is not an IP address.
func Network(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return ""
	}
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// span is the count of events per kind and the first and last stamp of
// a run of events: what Add keeps of every event whatever its kind.
// Order does not matter to it, so parallel workers fold their chunks'
// own and the Analyzer merges them.
type span struct {
	kinds      [nKinds]int64
	start, end time.Time
}

func (s *span) add(ev *Event) {
	if ev.Kind < nKinds {
		s.kinds[ev.Kind]++
	}
	if !ev.Time.IsZero() {
		if s.start.IsZero() || ev.Time.Before(s.start) {
			s.start = ev.Time
		}
		if ev.Time.After(s.end) {
			s.end = ev.Time
		}
	}
}

func (s *span) merge(o *span) {
	for k, n := range o.kinds {
		s.kinds[k] += n
	}
	if !o.start.IsZero() && (s.start.IsZero() || o.start.Before(s.start)) {
		s.start = o.start
	}
	if o.end.After(s.end) {
		s.end = o.end
	}
}

// spanOnly reports whether Add does nothing with an event of kind k but
// count it in the span (so a worker may fold it in its chunk's span and
// drop it).
func spanOnly(k Kind) bool { return k == Other }

// Add folds one event in.
func (a *Analyzer) Add(ev *Event) {
	a.span.add(ev)
	// its strings copied into the scratch job's bytes: Add is the
	// sequential Reader's way in, not the parallel reader's
	j := &a.scratch
	j.name, j.line0 = ev.File, ev.Line
	j.setData(nil)
	j.events, j.extra, j.locs, j.lastLoc = j.events[:0], j.extra[:0], j.locs[:0], 0
	j.seq = a.nadd
	a.nadd++
	j.pack(ev, ev.Line)
	a.add(j, 0, partAll)
}

// add is Add without the span: it folds event i of job j, or of a
// "client=" line the part of it this shard folds (see route).
func (a *Analyzer) add(j *job, i int, part uint8) {
	c := &j.events[i]
	seq := j.seq<<32 | uint64(i)
	qid := j.str(c.qid)
	switch c.kind {
	case Connect:
		delete(a.sessions, session{j.str(c.prog), j.str(c.pid)})
	case Reject:
		a.Totals.Rejected++
	case Held:
		a.Totals.Held++
	case Client:
		t, addr, user := j.time(c), j.str(c.addr), j.str(c.user)
		var ac *acct
		if part&partMsg != 0 {
			a.Totals.Received++
			m := a.newMsg()
			m.MTA, m.ID, m.Time, m.ClientAddr, m.ClientName = "postfix", clone(qid), t, a.internAt(lastAddr, addr), a.internAt(lastName, j.str(c.name))
			a.setMsg(m)
			if user != "" {
				m.User, m.Method, m.Via = a.internAt(lastUser, user), a.internAt(lastMethod, j.str(c.method)), j.src(c)
				ac = a.acctOf(m)
				ac.seen(t, addr, seq)
			}
		}
		if part&partLogin != 0 && user != "" {
			// One login per smtpd session: the session is the process
			// between "connect from" and the next one.
			sk := session{j.str(c.prog), j.str(c.pid)}
			if sk.pid == "" || a.sessions[sk] != user {
				u := a.internAt(lastUser, user)
				if ac == nil {
					ac = a.account(u)
				}
				ac.ok++
				if sk.pid != "" {
					a.sessions[session{clone(sk.prog), clone(sk.pid)}] = u
				}
			}
		}
	case AuthFailed, LoginFailed:
		if a.dupFail(j, c, seq) {
			return
		}
		if j.str(c.user) == "" {
			a.UnattributedFailures++
			return
		}
		ac := a.account(j.str(c.user))
		ac.failed++
		ac.seen(j.time(c), "", seq)
		ac.failAddr(j.str(c.addr))
	case Login:
		t, addr := j.time(c), j.str(c.addr)
		ac := a.account(j.str(c.user))
		ac.ok++
		ac.seen(t, addr, seq)
		if addr != "" && !t.IsZero() {
			l := a.logins[addr]
			key := ""
			if len(l) > 0 {
				key = l[0].key
			} else {
				key = clone(addr)
			}
			if len(l) == maxLoginsPerAddr {
				l = append(l[:0], l[1:]...)
			}
			a.logins[key] = append(l, login{key, ac.user, t, j.src(c)})
		}
	case MessageID:
		if m := a.msg(qid); m != nil {
			a.count(m)
		} else {
			m = a.newMsg()
			m.MTA, m.ID, m.Time = "postfix", clone(qid), j.time(c)
			a.setMsg(m)
		}
	case Pickup:
		a.Totals.Received++
		m := a.newMsg()
		m.MTA, m.ID, m.Time, m.Sender, m.HasSender = "postfix", clone(qid), j.time(c), a.internAt(lastSender, j.str(c.sender)), true
		a.setMsg(m)
	case Queued, Expired:
		m := a.msg(qid)
		if m == nil {
			m = a.newMsg()
			m.MTA, m.ID, m.Time = "postfix", clone(qid), j.time(c)
			a.setMsg(m)
		}
		if !m.HasSender || m.Sender != j.str(c.sender) {
			m.Sender, m.HasSender = a.internAt(lastSender, j.str(c.sender)), true
		}
		if m.User != "" {
			ac := a.acctOf(m)
			if _, ok := ac.senders[m.Sender]; !ok {
				ac.senders[strings.ToLower(m.Sender)] = struct{}{}
			}
		}
		if c.kind == Queued {
			m.Size, m.Nrcpt = c.size, int(c.nrcpt)
			if m.User != "" && !m.counted {
				a.count(m)
			}
			if m.User != "" && m.Nrcpt > 0 && !m.nrcptCounted {
				a.acctOf(m).recipients += m.Nrcpt
				m.nrcptCounted = true
			}
		}
	case BounceNotice:
		if j.str(c.aux1) != "" {
			n := a.msg(j.str(c.aux1))
			if n == nil {
				n = a.newMsg()
				n.MTA, n.ID, n.Time = "postfix", clone(j.str(c.aux1)), j.time(c)
				a.setMsg(n)
			}
			n.Parent = clone(qid)
		}
	case Delivery:
		if j.str(c.aux1) != "" { // qmail
			d, ok := a.qdel[j.str(c.aux1)]
			if !ok {
				return
			}
			delete(a.qdel, j.str(c.aux1))
			st := map[string]string{"success": "sent", "deferral": "deferred", "failure": "bounced"}[j.str(c.status)]
			a.deliver(a.qmsgs[d.msg], d.msg, d.rcpt, d.channel, st)
			return
		}
		m := a.msg(qid)
		a.deliver(m, qid, j.str(c.rcpt), j.str(c.relay), j.str(c.status))
	case Removed:
		if m := a.msg(qid); m != nil {
			a.settle(m)
			a.deleteMsg(m)
			a.release(m)
		}
	case QmailNew:
		a.qmsgs[clone(qid)] = &Message{MTA: "qmail", ID: clone(qid), Time: j.time(c)}
	case QmailInfo:
		m := a.qmsgs[qid]
		if m == nil {
			m = &Message{MTA: "qmail", ID: clone(qid), Time: j.time(c)}
			a.qmsgs[m.ID] = m
		}
		m.Sender, m.HasSender, m.Size, m.QP, m.Via = clone(j.str(c.sender)), true, c.size, clone(j.str(c.aux2)), j.src(c)
	case QmailStart:
		a.qdel[clone(j.str(c.aux1))] = qdelivery{msg: clone(qid), rcpt: clone(j.str(c.rcpt)), channel: clone(j.str(c.aux2))}
	case QmailEnd:
		if m := a.qmsgs[qid]; m != nil {
			a.settle(m)
			delete(a.qmsgs, qid)
		}
	}
}

// twinWindow is how far apart the two lines of one failed login may lie:
// dovecot logs the mismatch at once and answers after auth_failure_delay
// (2 s by default), and only then does smtpd log its warning.
const twinWindow = 3 * time.Second

// dupFail reports whether the same failure (user, address, within
// twinWindow) was just counted from another program: Postfix and its dovecot
// SASL back end both log one failed login. Each counted failure absorbs
// at most one such twin; two failures of one program are two failures.
func (a *Analyzer) dupFail(j *job, c *cev, seq uint64) bool {
	user, addr, prog, t := j.str(c.user), j.str(c.addr), j.str(c.prog), j.time(c)
	for i := range a.fails {
		f := &a.fails[i]
		if f.used || f.t.IsZero() || t.IsZero() || f.prog == service(prog) || f.addr != addr ||
			!(f.user == user || f.user == "" || user == "") || absDur(f.t.Sub(t)) > twinWindow {
			continue
		}
		f.used = true
		if f.user == "" && user != "" {
			// the earlier line had no user: attribute it now
			a.UnattributedFailures--
			f.user = clone(user)
			ac := a.account(user)
			ac.failed++
			ac.seen(t, "", seq)
			ac.failAddr(addr)
		}
		return true
	}
	a.fails[a.nfail%len(a.fails)] = recentFail{user: clone(user), addr: clone(addr), prog: service(clone(prog)), t: t}
	a.nfail++
	return false
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func (a *Analyzer) count(m *Message) {
	if m.counted || m.User == "" {
		return
	}
	m.counted = true
	ac := a.acctOf(m)
	ac.messages++
	if m.HasSender {
		ac.senders[strings.ToLower(m.Sender)] = struct{}{}
	}
}

// lower is strings.ToLower with a quicker look at the usual case, a
// string without upper case or non-ASCII bytes, which it returns as is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c-'A' < 26 || c >= 0x80 {
			return strings.ToLower(s)
		}
	}
	return s
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return lower(addr[i+1:])
	}
	return ""
}

// status returns the interned form of a delivery status.
func status(s string) string {
	switch s {
	case "sent":
		return "sent"
	case "deferred":
		return "deferred"
	case "bounced":
		return "bounced"
	case "expired":
		return "expired"
	case "":
		return ""
	}
	return clone(s)
}

func (a *Analyzer) deliver(m *Message, id, rcpt, relay, status0 string) {
	status := status(status0)
	switch status {
	case "sent":
		a.Totals.Sent++
	case "deferred":
		a.Totals.Deferrals++
	case "bounced":
		a.Totals.Bounced++
	}
	dom, haveDom := "", false // the recipient's domain, found once
	if m != nil && m.User != "" {
		m.setRcpt(rcpt, status)
		if m.User != "" {
			ac := a.acctOf(m)
			dom, haveDom = domainOf(rcpt), true
			if d := dom; d != "" && d != ac.lastDom {
				k, ok := ac.domains[d]
				if !ok {
					k = clone(d)
					ac.domains[k] = k
				}
				ac.lastDom = k
			}
			if m.HasSender && !m.counted {
				a.count(m)
			}
		}
	}
	if !a.TrackImpact {
		return
	}
	if a.Select != nil {
		if m == nil {
			m = &Message{ID: id}
		}
		if !a.Select(m, rcpt) {
			return
		}
	}
	if !haveDom {
		dom = domainOf(rcpt)
	}
	k := impactKey{dom, relay, status}
	row := a.lastRow
	if row == nil || row.Domain != k.domain || row.Relay != k.relay || row.Status != k.status {
		row = a.impact[k]
	}
	if row == nil {
		k = impactKey{clone(k.domain), clone(relay), clone(status)}
		row = &ImpactRow{Domain: k.domain, Relay: k.relay, Status: k.status, rcpts: map[string]struct{}{}, msgs: map[string]struct{}{}}
		a.impact[k] = row
	}
	row.Deliveries++
	a.lastRow = row
	if _, ok := row.rcpts[rcpt]; !ok {
		row.rcpts[clone(lower(rcpt))] = struct{}{}
	}
	if _, ok := row.msgs[id]; !ok {
		row.msgs[clone(id)] = struct{}{}
	}
}

// msg is a.msgs[qid], the message of the line before first: a message's
// lines mostly follow each other (client=, message-id=, from=, its
// deliveries, removed), so a comparison spares most map look-ups.
// Invariant: lastMsg is nil or a.msgs[lastMsg.ID] == lastMsg.
func (a *Analyzer) msg(qid string) *Message {
	if m := a.lastMsg; m != nil && m.ID == qid {
		return m
	}
	m := a.msgs[qid]
	if m != nil {
		a.lastMsg = m
	}
	return m
}

// setMsg indexes m by its ID, in place of any message of that ID.
func (a *Analyzer) setMsg(m *Message) {
	a.msgs[m.ID] = m
	a.lastMsg = m
}

// deleteMsg takes m out of the index.
func (a *Analyzer) deleteMsg(m *Message) {
	delete(a.msgs, m.ID)
	if a.lastMsg == m {
		a.lastMsg = nil
	}
}

// maxFree bounds the Messages kept for reuse.
const maxFree = 4096

// newMsg returns an empty Message, one a "removed" line let go of when
// there is one: most messages live from their client= line to their
// removed line, so the consumer need not allocate one per message.
func (a *Analyzer) newMsg() *Message {
	n := len(a.free)
	if n == 0 {
		return new(Message)
	}
	m := a.free[n-1]
	a.free = a.free[:n-1]
	r := m.rcpts[:0]
	*m = Message{rcpts: r}
	return m
}

// release hands m, removed from the index and referenced nowhere else,
// back for reuse.
func (a *Analyzer) release(m *Message) {
	if len(a.free) < maxFree {
		a.free = append(a.free, m)
	}
}

// settle folds a message's final recipient states into its account.
func (a *Analyzer) settle(m *Message) {
	m.Removed = true
	if m.User == "" {
		return
	}
	ac := a.acctOf(m)
	for _, r := range m.rcpts {
		switch r.status {
		case "sent":
			ac.sent++
		case "bounced", "expired":
			ac.bounce++
		case "deferred":
			ac.def++
		}
	}
	m.rcpts, m.rcptIdx = m.rcpts[:0], nil
}

// Open returns the messages the logs leave open (never removed): the ones
// that may still be in the queue, by queue ID (Postfix) or message number
// (qmail).
func (a *Analyzer) Open() map[string]*Message {
	out := make(map[string]*Message, len(a.msgs)+len(a.qmsgs))
	for k, m := range a.msgs {
		out[k] = m
	}
	for k, m := range a.qmsgs {
		out[k] = m
	}
	return out
}

// Span is the time of the first and the last stamped event.
func (a *Analyzer) Span() (time.Time, time.Time) { return a.span.start, a.span.end }

// Accounts returns one row per account, ranked: the most suspicious
// first. queued, when not nil, gives each account's messages in the queue
// now.
func (a *Analyzer) Accounts(queued map[string]int) []Account {
	// Messages still open count their recipients as they stand now.
	pending := map[string][3]int{}
	for _, m := range a.msgs {
		if m.User == "" {
			continue
		}
		k := strings.ToLower(m.User)
		p := pending[k]
		for _, r := range m.rcpts {
			switch r.status {
			case "sent":
				p[0]++
			case "deferred":
				p[1]++
			case "bounced", "expired":
				p[2]++
			}
		}
		pending[k] = p
	}
	var out []Account
	for _, ac := range a.accounts {
		row := Account{User: ac.user, LoginsOK: ac.ok, LoginsFailed: ac.failed, ClientAddresses: len(ac.addrN), FailedAddresses: len(ac.failAddrs),
			Networks: len(ac.nets), Messages: ac.messages, Recipients: ac.recipients, RecipientDomains: len(ac.domains),
			Sent: ac.sent + pending[ac.user][0], Deferred: ac.def + pending[ac.user][1], Bounced: ac.bounce + pending[ac.user][2]}
		if !ac.first.IsZero() {
			f, l := ac.first, ac.last
			row.FirstSeen, row.LastSeen = &f, &l
		}
		if queued != nil {
			n := queued[ac.user]
			row.Queued = &n
		}
		row.EnvelopeSenders = len(ac.senders)
		for s := range ac.senders {
			if s != ac.user {
				row.ForgedSenders++
			}
		}
		row.TopAddresses = topAddrs(ac.addrN, 5)
		out = append(out, row)
	}
	// Accounts the queue holds mail of but the logs never show logging
	// in (logs rotated away, or a qmail-send log without vchkpw's): a row
	// each, so that nothing queued is left out of the table.
	for u, n := range queued {
		if _, ok := a.accounts[u]; ok || u == "" {
			continue
		}
		n := n
		out = append(out, Account{User: u, Queued: &n, Why: []string{"in the queue only: the logs show no login or message of it"}})
	}
	a.rank(out)
	return out
}

// addrCount is how many times an account was seen from one address.
type addrCount struct {
	addr string
	n    int
	seq  uint64 // the log position it was first seen at (see merge)
}

func topAddrs(m map[string]*addrCount, n int) []string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v.n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].v != all[j].v {
			return all[i].v > all[j].v
		}
		return all[i].k < all[j].k
	})
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, fmt.Sprintf("%s(%d)", all[i].k, all[i].v))
	}
	return out
}

func median(v []int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]int(nil), v...)
	sort.Ints(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

// rank scores every account against the others in the same logs and
// against its own earlier activity, and sorts by score. The parts, each
// log-scaled so that no single one dominates:
//
//   - address fan-out: distinct /24 (/48) networks over the median account's;
//   - volume: messages over the median account's;
//   - forged-sender variety: envelope senders that are not the account;
//   - failure share: failed logins over all logins (from 3 failures on);
//   - own history: client addresses first seen in the last 24 h of the logs
//     against those seen before (when the logs span more than 48 h).
func (a *Analyzer) rank(rows []Account) {
	var nets, msgs []int
	for _, r := range rows {
		nets = append(nets, r.Networks)
		msgs = append(msgs, r.Messages)
	}
	mNets, mMsgs := math.Max(1, median(nets)), math.Max(1, median(msgs))
	histCut := time.Time{}
	if !a.span.start.IsZero() && a.span.end.Sub(a.span.start) > 48*time.Hour {
		histCut = a.span.end.Add(-24 * time.Hour)
	}
	for i := range rows {
		r := &rows[i]
		ac := a.accounts[r.User]
		var why []string
		fan := math.Log2(1 + float64(r.Networks)/mNets)
		if float64(r.Networks) >= 3*mNets && r.Networks >= 3 {
			why = append(why, fmt.Sprintf("logged in from %d addresses in %d networks (median account: %g networks)", r.ClientAddresses, r.Networks, mNets))
		}
		vol := math.Log2(1 + float64(r.Messages)/mMsgs)
		if float64(r.Messages) >= 3*mMsgs && r.Messages >= 10 {
			why = append(why, fmt.Sprintf("%d messages (median account: %g)", r.Messages, mMsgs))
		}
		forged := math.Log2(1 + float64(r.ForgedSenders))
		if r.ForgedSenders >= 2 {
			why = append(why, fmt.Sprintf("%d envelope senders that are not the account", r.ForgedSenders))
		}
		fail := 0.0
		if r.LoginsFailed >= 3 {
			share := float64(r.LoginsFailed) / float64(r.LoginsFailed+r.LoginsOK)
			fail = 4 * share
			why = append(why, fmt.Sprintf("%d of %d logins failed (%.0f%%)", r.LoginsFailed, r.LoginsFailed+r.LoginsOK, 100*share))
		}
		hist := 0.0
		if !histCut.IsZero() && ac != nil {
			var recent, before int
			for _, t := range ac.addrs {
				if t.IsZero() {
					continue
				}
				if t.Before(histCut) {
					before++
				} else {
					recent++
				}
			}
			hist = math.Log2(1 + float64(recent)/float64(max(1, before)))
			if recent >= 3 && recent >= 3*max(1, before) {
				why = append(why, fmt.Sprintf("%d new client addresses in the last 24 h of the logs (%d before)", recent, before))
			}
		}
		r.Score = math.Round((fan+vol+forged+fail+hist)*100) / 100
		if ac == nil {
			continue // queue only: its why is set
		}
		if len(why) == 0 {
			why = append(why, fmt.Sprintf("nothing stands out: %d networks, %d messages, %d failed logins", r.Networks, r.Messages, r.LoginsFailed))
		}
		r.Why = why
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].Score != rows[j].Score {
			return rows[i].Score > rows[j].Score
		}
		if qi, qj := queuedOf(rows[i]), queuedOf(rows[j]); qi != qj {
			return qi > qj
		}
		return rows[i].User < rows[j].User
	})
}

// Impact returns the impact table, largest first.
func (a *Analyzer) Impact() []ImpactRow {
	var out []ImpactRow
	for _, r := range a.impact {
		row := *r
		row.Recipients, row.Messages = len(r.rcpts), len(r.msgs)
		row.rcpts, row.msgs = nil, nil
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Recipients != out[j].Recipients {
			return out[i].Recipients > out[j].Recipients
		}
		if out[i].Domain != out[j].Domain {
			return out[i].Domain < out[j].Domain
		}
		if out[i].Status != out[j].Status {
			return out[i].Status < out[j].Status
		}
		return out[i].Relay < out[j].Relay
	})
	return out
}

// LoginBefore finds the successful login from addr that most closely
// precedes t, no more than window before it: the account a qmail message
// from that client submitted as, when the AUTH patch wrote no user into
// the Received header. It refuses (ok false, with the reason) when the
// logs have no such login, or when two accounts logged in from addr in
// that window: then nothing says which one sent the message.
func (a *Analyzer) LoginBefore(addr string, t time.Time, window time.Duration) (user string, src Source, ok bool, why string) {
	if addr == "" || t.IsZero() {
		return "", Source{}, false, "no client address or arrival time"
	}
	var best *login
	users := map[string]bool{}
	for i, l := range a.logins[addr] {
		if l.t.After(t.Add(time.Second)) || t.Sub(l.t) > window {
			continue
		}
		users[l.user] = true
		if best == nil || l.t.After(best.t) {
			best = &a.logins[addr][i]
		}
	}
	switch {
	case best == nil:
		return "", Source{}, false, fmt.Sprintf("no login from %s in the %v before arrival", addr, window)
	case len(users) > 1:
		return "", Source{}, false, fmt.Sprintf("%d accounts logged in from %s in the %v before arrival", len(users), addr, window)
	}
	return best.user, best.src, true, ""
}

func queuedOf(r Account) int {
	if r.Queued == nil {
		return 0
	}
	return *r.Queued
}
