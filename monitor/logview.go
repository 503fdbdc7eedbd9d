package monitor

import (
	"slices"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/maillog"
)

// Log metrics: the same kind of thresholds over the mail logs' last
// minutes (monitor --log FILE --window 15m) instead of the queue.
const (
	MetricLogFanout   = "log_fanout"   // the top log account's distinct client addresses
	MetricLogMessages = "log_messages" // its messages accepted
	MetricLogFailed   = "log_failed"   // its failed logins
)

// LogMetrics name the top log account when crossed.
var LogMetrics = []string{MetricLogFanout, MetricLogMessages, MetricLogFailed}

// LogAccount is one SASL account as the logs of the window show it.
type LogAccount struct {
	Name string `json:"name"`
	// ClientAddresses are the distinct addresses it logged in from.
	ClientAddresses int `json:"client_addresses"`
	Messages        int `json:"messages"`
	LoginsOK        int `json:"logins_ok"`
	LoginsFailed    int `json:"logins_failed"`
}

// LogView is the logs' part of a snapshot: the accounts of the lines
// stamped at or after Since, the top N by address fan-out.
type LogView struct {
	Since            time.Time    `json:"since"`
	WindowSeconds    float64      `json:"window_seconds"`
	Accounts         []LogAccount `json:"top_accounts"`
	DistinctAccounts int          `json:"distinct_accounts"`
}

// SetLog adds the logs' view to the snapshot: accts are maillog's rows
// for the lines of the window (the caller reads with Since = s.Time -
// window). The accounts are ranked by distinct client addresses, then
// messages, then failed logins, then name: log_fanout is then the
// largest fan-out of any account in the window, so a threshold on it
// cannot miss a stolen account that sends less than a busy honest one.
func (s *Snapshot) SetLog(window time.Duration, accts []maillog.Account, n int) {
	v := &LogView{Since: s.Time.Add(-window), WindowSeconds: window.Seconds(), DistinctAccounts: len(accts)}
	for _, a := range accts {
		v.Accounts = append(v.Accounts, LogAccount{Name: a.User, ClientAddresses: a.ClientAddresses,
			Messages: a.Messages, LoginsOK: a.LoginsOK, LoginsFailed: a.LoginsFailed})
	}
	slices.SortFunc(v.Accounts, func(x, y LogAccount) int {
		for _, d := range []int{y.ClientAddresses - x.ClientAddresses, y.Messages - x.Messages, y.LoginsFailed - x.LoginsFailed} {
			if d != 0 {
				return d
			}
		}
		return strings.Compare(x.Name, y.Name)
	})
	if n >= 0 && len(v.Accounts) > n {
		v.Accounts = v.Accounts[:n]
	}
	s.Log = v
}

// TopLogAccount is the log account with the most client addresses, or nil
// (no --log, or no account in the window).
func (s *Snapshot) TopLogAccount() *LogAccount {
	if s.Log == nil || len(s.Log.Accounts) == 0 {
		return nil
	}
	return &s.Log.Accounts[0]
}

// logValue is a log metric's value; ok is false without a log view.
func (s *Snapshot) logValue(metric string) (float64, bool) {
	if s.Log == nil {
		return 0, false
	}
	top := s.TopLogAccount()
	if top == nil {
		return 0, true
	}
	switch metric {
	case MetricLogFanout:
		return float64(top.ClientAddresses), true
	case MetricLogMessages:
		return float64(top.Messages), true
	}
	return float64(top.LoginsFailed), true
}
