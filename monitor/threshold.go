package monitor

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Status is a check's outcome, numbered as the monitoring-plugins exit
// codes are (Monitoring Plugins Development Guidelines, "Plugin Return
// Codes"): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
type Status int

const (
	OK       Status = 0
	Warning  Status = 1
	Critical Status = 2
	Unknown  Status = 3
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// Metric names a threshold can watch, beside the name of any queue
// (deferred, active, hold, ... ; qmail: queue, todo), which is that
// queue's message count.
const (
	MetricMessages   = "messages"   // all queues together
	MetricBytes      = "bytes"      // all queues together; 10M, 2G
	MetricAge        = "age"        // the oldest message; 90m, 12h, 3d
	MetricShare      = "share"      // the top account's share of the queue, in percent
	MetricFanout     = "fanout"     // the top account's distinct client addresses
	MetricAccount    = "account"    // the top account's messages
	MetricUnreadable = "unreadable" // messages that could not be read
)

// AccountMetrics are the metrics about the top account: crossing one of
// them names an offending account.
var AccountMetrics = []string{MetricShare, MetricFanout, MetricAccount}

// Threshold alerts when a metric's value is above Limit (the guidelines'
// range "N", i.e. 0:N: a value of N itself is fine).
type Threshold struct {
	Metric string
	Limit  float64
}

func (t Threshold) String() string {
	return fmt.Sprintf("%s=%s", t.Metric, formatLimit(t.Metric, t.Limit))
}

// ParseThreshold parses "METRIC=VALUE": deferred=500, bytes=2G, age=6h,
// share=50 (or 50%), fanout=20.
func ParseThreshold(s string) (Threshold, error) {
	name, val, ok := strings.Cut(s, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	val = strings.TrimSpace(val)
	if !ok || name == "" || val == "" {
		return Threshold{}, fmt.Errorf("threshold %q: want METRIC=VALUE, e.g. deferred=500, age=6h, fanout=20", s)
	}
	t := Threshold{Metric: name}
	var err error
	switch name {
	case MetricBytes:
		t.Limit, err = parseBytes(val)
	case MetricAge:
		t.Limit, err = parseAge(val)
	case MetricShare:
		t.Limit, err = strconv.ParseFloat(strings.TrimSuffix(val, "%"), 64)
		if err == nil && (t.Limit < 0 || t.Limit > 100) {
			err = fmt.Errorf("a percentage from 0 to 100")
		}
	default:
		t.Limit, err = strconv.ParseFloat(val, 64)
	}
	if err == nil && t.Limit < 0 {
		err = fmt.Errorf("negative")
	}
	if err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: %v", s, err)
	}
	return t, nil
}

func parseBytes(v string) (float64, error) {
	mult := 1.0
	switch strings.ToUpper(v[len(v)-1:]) {
	case "K":
		mult = 1 << 10
	case "M":
		mult = 1 << 20
	case "G":
		mult = 1 << 30
	case "T":
		mult = 1 << 40
	}
	if mult != 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseFloat(v, 64)
	return n * mult, err
}

func parseAge(v string) (float64, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return n, nil // seconds
	}
	mult := map[byte]float64{'d': 86400, 'w': 7 * 86400}[v[len(v)-1]]
	if mult != 0 {
		n, err := strconv.ParseFloat(v[:len(v)-1], 64)
		return n * mult, err
	}
	d, err := time.ParseDuration(v)
	return d.Seconds(), err
}

func formatLimit(metric string, v float64) string {
	switch metric {
	case MetricAge:
		return compactAge(int64(v))
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// Value is a metric's value in the snapshot; ok is false for a name that
// is neither a metric nor a queue of the snapshot's MTA.
func (s *Snapshot) Value(metric string) (v float64, ok bool) {
	if slices.Contains(LogMetrics, metric) {
		return s.logValue(metric)
	}
	top := s.TopAccount()
	switch metric {
	case MetricMessages:
		return float64(s.Messages), true
	case MetricBytes:
		return float64(s.Bytes), true
	case MetricAge:
		return s.OldestAgeSeconds, true
	case MetricUnreadable:
		return float64(s.Unreadable), true
	case MetricShare:
		if top == nil {
			return 0, true
		}
		return 100 * top.Share, true
	case MetricFanout:
		if top == nil {
			return 0, true
		}
		return float64(top.ClientAddresses), true
	case MetricAccount:
		if top == nil {
			return 0, true
		}
		return float64(top.Messages), true
	}
	if q, found := s.Queues[metric]; found {
		return float64(q.Messages), true
	}
	return 0, slices.Contains(QueueNames(s.MTA), metric)
}

// Alert is one threshold a snapshot is above.
type Alert struct {
	Level     Status    `json:"level"`
	Threshold Threshold `json:"-"`
	Metric    string    `json:"metric"`
	Value     float64   `json:"value"`
	Limit     float64   `json:"limit"`
}

func (a Alert) String() string {
	return fmt.Sprintf("%s %s > %s", a.Metric, formatLimit(a.Metric, a.Value), formatLimit(a.Metric, a.Limit))
}

// Result is a snapshot checked against thresholds.
type Result struct {
	Status Status  `json:"status"`
	Alerts []Alert `json:"alerts"`
	// Account is the top account when an account metric (share, fanout,
	// account) is above its threshold: the offending account.
	Account *Account `json:"offending_account,omitempty"`
	// AccountStatus is the level of the worst account-metric alert.
	AccountStatus Status `json:"account_status"`
	// LogAccount is the top log account when a log metric (log_fanout,
	// log_messages, log_failed) is above its threshold, as an Account of
	// kind sasl_user (the logs name the SASL user); LogAccountStatus the
	// level of the worst log-metric alert.
	LogAccount       *Account `json:"offending_log_account,omitempty"`
	LogAccountStatus Status   `json:"log_account_status"`
}

// CriticalAccounts are the accounts a --crit threshold names: the top
// account when an account metric is critical, and the top log account
// (its queued mail as SASL user) when a log metric is, once each.
func (r Result) CriticalAccounts() []Account {
	var out []Account
	if r.AccountStatus == Critical && r.Account != nil {
		out = append(out, *r.Account)
	}
	if r.LogAccountStatus == Critical && r.LogAccount != nil && !slices.ContainsFunc(out, func(a Account) bool {
		return a.Kind == r.LogAccount.Kind && a.Name == r.LogAccount.Name
	}) {
		out = append(out, *r.LogAccount)
	}
	return out
}

// Check compares the snapshot with the thresholds: CRITICAL when a crit
// threshold is exceeded, else WARNING when a warn one is, else OK. A
// metric the snapshot does not know is an error.
func Check(s *Snapshot, warn, crit []Threshold) (Result, error) {
	r := Result{Status: OK}
	for _, set := range []struct {
		level Status
		ts    []Threshold
	}{{Critical, crit}, {Warning, warn}} {
		for _, t := range set.ts {
			v, ok := s.Value(t.Metric)
			if !ok && slices.Contains(LogMetrics, t.Metric) {
				return Result{Status: Unknown}, fmt.Errorf("threshold %s: %s is a metric of the mail logs: give them with --log FILE", t, t.Metric)
			}
			if !ok {
				return Result{Status: Unknown}, fmt.Errorf("threshold %s: no metric %q on this %s queue (metrics: %s, or a queue name: %s)",
					t, t.Metric, s.MTA, strings.Join(MetricNames, ", "), strings.Join(QueueNames(s.MTA), ", "))
			}
			if v <= t.Limit || alerted(r.Alerts, t.Metric) {
				continue
			}
			r.Alerts = append(r.Alerts, Alert{Level: set.level, Threshold: t, Metric: t.Metric, Value: v, Limit: t.Limit})
			r.Status = max(r.Status, set.level)
			if slices.Contains(AccountMetrics, t.Metric) && s.TopAccount() != nil {
				r.Account = s.TopAccount()
				r.AccountStatus = max(r.AccountStatus, set.level)
			}
			if la := s.TopLogAccount(); la != nil && slices.Contains(LogMetrics, t.Metric) {
				r.LogAccount = &Account{Name: la.Name, Kind: KindSASL, Messages: int64(la.Messages), ClientAddresses: la.ClientAddresses}
				r.LogAccountStatus = max(r.LogAccountStatus, set.level)
			}
		}
	}
	return r, nil
}

// MetricNames are the metrics a threshold can name besides queue names.
var MetricNames = []string{MetricMessages, MetricBytes, MetricAge, MetricShare, MetricFanout, MetricAccount, MetricUnreadable,
	MetricLogFanout, MetricLogMessages, MetricLogFailed}

// alerted: a metric already at CRITICAL is not reported again as WARNING.
func alerted(as []Alert, metric string) bool {
	for _, a := range as {
		if a.Metric == metric {
			return true
		}
	}
	return false
}

// Limits returns the warn and crit limit of a metric ("" when none), for
// perfdata.
func Limits(metric string, warn, crit []Threshold) (w, c string) {
	for _, t := range warn {
		if t.Metric == metric {
			w = strconv.FormatFloat(t.Limit, 'f', -1, 64)
		}
	}
	for _, t := range crit {
		if t.Metric == metric {
			c = strconv.FormatFloat(t.Limit, 'f', -1, 64)
		}
	}
	return w, c
}

// compactAge prints seconds in at most two units: 45s, 12m30s, 5h12m, 15d2h.
func compactAge(s int64) string {
	units := []struct {
		n    int64
		name string
	}{{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}
	out := ""
	for i, u := range units {
		if s >= u.n || (u.n == 1 && out == "") {
			out = fmt.Sprintf("%d%s", s/u.n, u.name)
			if r := s % u.n; r > 0 && i+1 < len(units) && r/units[i+1].n > 0 {
				out += fmt.Sprintf("%d%s", r/units[i+1].n, units[i+1].name)
			}
			return out
		}
	}
	return out
}
