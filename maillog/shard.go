package maillog

// The join sharded. The joins depend on log order, but each on the order
// of its own key only, so each key's events go to one shard, in log order:
//
//   - a Postfix message's state lives under its queue ID: every line with
//     that queue ID goes to the shard of the ID, so a queue ID reused after
//     its "removed" line is still seen removed first; the bounce daemon's
//     "QID: sender non-delivery notification: NEWQID" opens NEWQID, so it
//     goes to NEWQID's shard;
//   - an smtpd session (one login counted between "connect from" lines of
//     one process) lives under the process: "connect from" and the login
//     half of a "client=" line with a SASL user go to the shard of the
//     program and pid; the message half of that line to its queue ID's;
//   - everything else is order-dependent across keys or rare, and goes to
//     shard 0: the failed-login twins within 3 s (dupFail's ring), the
//     logins kept per address for the qmail join, all qmail-send lines
//     (a delivery number names a message number), rejects and holds.
//
// Per-account figures are sums and unions, merged at the end (merge); the
// few that depend on order (first and last seen, the first time an
// address was seen) carry the log position they were taken at, so the
// merge keeps what a single pass would.

// The parts of a "client=" line an entry of job.shards asks for, in its
// top bits.
const (
	partMsg   = 1 // the message: queue ID, client, account seen from the address
	partLogin = 2 // the session's login count
	partAll   = partMsg | partLogin
	partShift = 30
	partMask  = 3 << partShift
)

// route appends event i of the job to the list of the shard (or two
// shards) that folds it.
func (j *job) route(i, nshards int) {
	c := &j.events[i]
	s := 0
	switch c.kind {
	case Client:
		s = j.shardOf(c.qid, sref{}, nshards)
		if c.user.n > 0 {
			if l := j.shardOf(c.prog, c.pid, nshards); l != s {
				j.shards[s] = append(j.shards[s], uint32(i)|partMsg<<partShift)
				j.shards[l] = append(j.shards[l], uint32(i)|partLogin<<partShift)
				return
			}
		}
	case MessageID, Pickup, Queued, Expired, Removed:
		s = j.shardOf(c.qid, sref{}, nshards)
	case Delivery:
		if c.aux1.n == 0 { // Postfix; qmail's delivery numbers stay in shard 0
			s = j.shardOf(c.qid, sref{}, nshards)
		}
	case BounceNotice:
		s = j.shardOf(c.aux1, sref{}, nshards)
	case Connect:
		s = j.shardOf(c.prog, c.pid, nshards)
	}
	j.shards[s] = append(j.shards[s], uint32(i)|partAll<<partShift)
}

// shardOf hashes the bytes of a and b (FNV-1a) to a shard.
func (j *job) shardOf(a, b sref, nshards int) int {
	h := uint32(2166136261)
	for _, r := range [2]sref{a, b} {
		s := j.str(r)
		for k := 0; k < len(s); k++ {
			h = (h ^ uint32(s[k])) * 16777619
		}
		h = (h ^ '/') * 16777619
	}
	return int(h % uint32(nshards))
}

// merge folds o, the Analyzer of another shard of the same logs, into a.
func (a *Analyzer) merge(o *Analyzer) {
	for k, oc := range o.accounts {
		ac := a.accounts[k]
		if ac == nil {
			a.accounts[k] = oc
			continue
		}
		ac.merge(oc)
	}
	for id, m := range o.msgs {
		m.ac = nil
		a.msgs[id] = m // a queue ID lives in one shard
	}
	for k, m := range o.qmsgs {
		a.qmsgs[k] = m
	}
	for k, r := range o.impact {
		x := a.impact[k]
		if x == nil {
			a.impact[k] = r
			continue
		}
		x.Deliveries += r.Deliveries
		for rc := range r.rcpts {
			x.rcpts[rc] = struct{}{}
		}
		for id := range r.msgs {
			x.msgs[id] = struct{}{}
		}
	}
	a.span.merge(&o.span)
	a.Totals.Received += o.Totals.Received
	a.Totals.Sent += o.Totals.Sent
	a.Totals.Deferrals += o.Totals.Deferrals
	a.Totals.Bounced += o.Totals.Bounced
	a.Totals.Rejected += o.Totals.Rejected
	a.Totals.Held += o.Totals.Held
	a.UnattributedFailures += o.UnattributedFailures
}

// merge folds o, the same account in another shard, into ac.
func (ac *acct) merge(o *acct) {
	ac.ok += o.ok
	ac.failed += o.failed
	ac.messages += o.messages
	ac.recipients += o.recipients
	ac.sent += o.sent
	ac.def += o.def
	ac.bounce += o.bounce
	// first and last as one pass sets them: the earliest stamp, and of
	// equal stamps the one read first; the latest, and of equal ones the
	// one read first
	if !o.first.IsZero() && (ac.first.IsZero() || o.first.Before(ac.first) || o.first.Equal(ac.first) && o.firstSeq < ac.firstSeq) {
		ac.first, ac.firstSeq = o.first, o.firstSeq
	}
	if o.last.After(ac.last) || !o.last.IsZero() && o.last.Equal(ac.last) && o.lastSeq < ac.lastSeq {
		ac.last, ac.lastSeq = o.last, o.lastSeq
	}
	for addr, oc := range o.addrN {
		c := ac.addrN[addr]
		if c == nil {
			ac.addrN[addr] = oc
			ac.addrs[addr] = o.addrs[addr]
			continue
		}
		c.n += oc.n
		if oc.seq < c.seq { // the address's first time is the one read first
			c.seq = oc.seq
			ac.addrs[addr] = o.addrs[addr]
		}
	}
	for nw := range o.nets {
		ac.nets[nw] = struct{}{}
	}
	for d, k := range o.domains {
		if _, ok := ac.domains[d]; !ok {
			ac.domains[d] = k
		}
	}
	for s := range o.senders {
		ac.senders[s] = struct{}{}
	}
	for f := range o.failAddrs {
		if ac.failAddrs == nil {
			ac.failAddrs = map[string]struct{}{}
		}
		ac.failAddrs[f] = struct{}{}
	}
	ac.lastAddr, ac.lastDom = nil, ""
}
