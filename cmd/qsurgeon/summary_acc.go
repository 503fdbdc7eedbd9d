package main

import (
	"fmt"
	"sort"
	"time"

	"github.com/qsurgeon/qsurgeon/estimate"
	"github.com/qsurgeon/qsurgeon/queue"
)

// summaryAcc accumulates the exact summary one message at a time (from the
// scan's one callback goroutine), so that the live view can show the
// counts so far.
type summaryAcc struct {
	s                                                  *summary
	senders, sasl, clients, networks, domains, reasons counter
	saslClients                                        map[string]map[string]struct{}
	buckets                                            []int64
	now                                                time.Time
}

func newSummaryAcc(s *summary, now time.Time) *summaryAcc {
	return &summaryAcc{s: s, senders: counter{}, sasl: counter{}, clients: counter{}, networks: counter{},
		domains: counter{}, reasons: counter{}, saslClients: map[string]map[string]struct{}{},
		buckets: make([]int64, len(ageBuckets)+1), now: now}
}

func (a *summaryAcc) add(msg *queue.Message) {
	s := a.s
	s.Messages++
	s.Bytes += msg.Size
	qc := s.Queues[msg.Queue]
	if qc == nil {
		qc = &countSize{}
		s.Queues[msg.Queue] = qc
	}
	qc.Count++
	qc.Bytes += msg.Size
	s.NullSender += one(msg.NullSender)
	s.Bouncing += one(msg.Bouncing)
	s.Corrupt += one(msg.Err != nil)
	s.WithProblems += one(len(significantProblems(msg)) > 0)
	s.IDNotInode += one(hasIDNotInode(msg))
	s.TodoBacklog += one(msg.Queue == queue.QmailTodo)
	a.senders.add(displaySender(msg), msg.Size)
	if msg.SASLUser != "" {
		a.sasl.add(msg.SASLUser, msg.Size)
		if msg.ClientAddr != "" {
			set := a.saslClients[msg.SASLUser]
			if set == nil {
				set = map[string]struct{}{}
				a.saslClients[msg.SASLUser] = set
			}
			set[msg.ClientAddr] = struct{}{}
		}
	}
	if msg.ClientAddr != "" {
		a.clients.add(msg.ClientAddr, msg.Size)
		a.networks.add(estimate.Network(msg.ClientAddr), msg.Size)
	}
	var seenReason map[string]bool
	for _, rc := range msg.Recipients {
		if rc.Done || rc.Canceled {
			continue
		}
		s.Recipients++
		a.domains.add(estimate.Domain(rc.Address), 0)
		if rc.Channel != "" {
			if s.Channels == nil {
				s.Channels = map[string]int64{}
			}
			s.Channels[rc.Channel]++
		}
		if rc.Reason != "" && !seenReason[rc.Reason] {
			if seenReason == nil {
				seenReason = map[string]bool{}
			}
			seenReason[rc.Reason] = true
			a.reasons.add(rc.Reason, 0)
		}
	}
	mins := int(a.now.Sub(msg.Arrival).Minutes())
	a.buckets[sort.SearchInts(ageBuckets, mins+1)]++
}

// finish fills in the summary's top lists and buckets.
func (a *summaryAcc) finish(topN int) {
	s := a.s
	for i, n := range a.buckets {
		b := ageBucket{Count: n}
		if i < len(ageBuckets) {
			b.MaxMinutes = ageBuckets[i]
			b.Label = fmt.Sprintf("<=%dm", ageBuckets[i])
		} else {
			b.Label = fmt.Sprintf(">%dm", ageBuckets[len(ageBuckets)-1])
		}
		s.AgeBuckets = append(s.AgeBuckets, b)
	}
	s.Senders, s.SASLUsers, s.Clients, s.Networks = a.senders.top(topN), a.sasl.top(topN), a.clients.top(topN), a.networks.top(topN)
	for i := range s.SASLUsers {
		s.SASLUsers[i].Clients = len(a.saslClients[s.SASLUsers[i].Key])
	}
	s.RcptDomains, s.Reasons = a.domains.top(topN), a.reasons.top(topN)
	s.DistinctSender, s.DistinctSASL, s.DistinctClient, s.DistinctNet = len(a.senders), len(a.sasl), len(a.clients), len(a.networks)
	s.DistinctDomain, s.DistinctReason = len(a.domains), len(a.reasons)
}

// one is 1 for true: a message counted in a flag's total.
func one(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
