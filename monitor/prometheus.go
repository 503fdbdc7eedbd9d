package monitor

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// TextfileName is the file WriteTextfile writes in node_exporter's
// textfile directory (its collector reads only *.prom files).
const TextfileName = "qsurgeon.prom"

// Registry returns the snapshot as Prometheus metrics.
//
// Where postfix_exporter (kumina/postfix_exporter, showq/collector.go) has
// a metric for the same thing, the name, the label and the buckets are
// its own: postfix_showq_message_size_bytes and
// postfix_showq_message_age_seconds, histograms by "queue" (Postfix queues
// only: the names say postfix). The rest is qsurgeon_*: depth, bytes and
// oldest age per queue for either MTA, and per-account series for the top
// accounts only (the snapshot holds the top N), so the label cardinality
// stays bounded however many accounts send.
func Registry(s *Snapshot) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	c := &collector{s: s}
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	return reg, nil
}

// WriteTextfile writes the snapshot to dir/qsurgeon.prom through a
// temporary file in dir and a rename (prometheus.WriteToTextfile), so
// node_exporter never reads half a file.
func WriteTextfile(dir string, s *Snapshot) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s: not a directory", dir)
	}
	reg, err := Registry(s)
	if err != nil {
		return "", err
	}
	name := filepath.Join(dir, TextfileName)
	return name, prometheus.WriteToTextfile(name, reg)
}

var (
	descSize = prometheus.NewDesc("postfix_showq_message_size_bytes",
		"Size of messages in Postfix's message queue, in bytes", []string{"queue"}, nil)
	descAge = prometheus.NewDesc("postfix_showq_message_age_seconds",
		"Age of messages in Postfix's message queue, in seconds", []string{"queue"}, nil)
	descMessages = prometheus.NewDesc("qsurgeon_queue_messages",
		"Messages in the queue (qsurgeon reads the queue files)", []string{"mta", "queue"}, nil)
	descBytes = prometheus.NewDesc("qsurgeon_queue_size_bytes",
		"Total size of the messages in the queue, in bytes", []string{"mta", "queue"}, nil)
	descOldest = prometheus.NewDesc("qsurgeon_queue_oldest_message_age_seconds",
		"Age of the oldest message in the queue, in seconds (0 when empty)", []string{"mta", "queue"}, nil)
	descUnreadable = prometheus.NewDesc("qsurgeon_queue_unreadable_messages",
		"Messages that could not be read in the last snapshot", []string{"mta"}, nil)
	descAccounts = prometheus.NewDesc("qsurgeon_queue_accounts",
		"Distinct accounts (SASL user, else envelope sender) with mail in the queue", []string{"mta"}, nil)
	descAcctMessages = prometheus.NewDesc("qsurgeon_account_messages",
		"Queued messages of one of the top accounts", []string{"account", "kind"}, nil)
	descAcctBytes = prometheus.NewDesc("qsurgeon_account_size_bytes",
		"Total size of the queued messages of one of the top accounts, in bytes", []string{"account", "kind"}, nil)
	descAcctShare = prometheus.NewDesc("qsurgeon_account_share_ratio",
		"One of the top accounts' share of all queued messages, 0 to 1", []string{"account", "kind"}, nil)
	descAcctFanout = prometheus.NewDesc("qsurgeon_account_client_addresses",
		"Distinct SMTP client addresses the queued mail of one of the top accounts came from", []string{"account", "kind"}, nil)
	descLogWindow = prometheus.NewDesc("qsurgeon_log_window_seconds",
		"The window of the mail logs the qsurgeon_log_* series count (monitor --window)", nil, nil)
	descLogAccounts = prometheus.NewDesc("qsurgeon_log_accounts",
		"Distinct SASL accounts in the mail logs of the window", nil, nil)
	descLogFanout = prometheus.NewDesc("qsurgeon_log_account_client_addresses",
		"Distinct client addresses one of the top log accounts logged in from in the window", []string{"account"}, nil)
	descLogMessages = prometheus.NewDesc("qsurgeon_log_account_messages",
		"Messages one of the top log accounts sent in the window", []string{"account"}, nil)
	descLogFailed = prometheus.NewDesc("qsurgeon_log_account_failed_logins",
		"Failed logins of one of the top log accounts in the window", []string{"account"}, nil)
	descTime = prometheus.NewDesc("qsurgeon_snapshot_timestamp_seconds",
		"When the snapshot was taken, in seconds since the epoch", nil, nil)
)

type collector struct{ s *Snapshot }

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	names := make([]string, 0, len(s.Queues))
	for q := range s.Queues {
		names = append(names, q)
	}
	sort.Strings(names)
	for _, q := range names {
		st := s.Queues[q]
		label := Clean(q)
		ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(st.Messages), s.MTA, label)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(st.Bytes), s.MTA, label)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.OldestAgeSeconds, s.MTA, label)
		if s.MTA != "postfix" {
			continue
		}
		ch <- prometheus.MustNewConstHistogram(descSize, uint64(st.Messages), float64(st.Bytes), cumulative(SizeBuckets, st.SizeCounts), label)
		ch <- prometheus.MustNewConstHistogram(descAge, uint64(st.Messages), st.AgeSum, cumulative(AgeBuckets, st.AgeCounts), label)
	}
	ch <- prometheus.MustNewConstMetric(descUnreadable, prometheus.GaugeValue, float64(s.Unreadable), s.MTA)
	ch <- prometheus.MustNewConstMetric(descAccounts, prometheus.GaugeValue, float64(s.DistinctAccounts), s.MTA)
	for _, a := range s.Accounts {
		name := Clean(a.Name)
		ch <- prometheus.MustNewConstMetric(descAcctMessages, prometheus.GaugeValue, float64(a.Messages), name, a.Kind)
		ch <- prometheus.MustNewConstMetric(descAcctBytes, prometheus.GaugeValue, float64(a.Bytes), name, a.Kind)
		ch <- prometheus.MustNewConstMetric(descAcctShare, prometheus.GaugeValue, a.Share, name, a.Kind)
		ch <- prometheus.MustNewConstMetric(descAcctFanout, prometheus.GaugeValue, float64(a.ClientAddresses), name, a.Kind)
	}
	if s.Log != nil {
		ch <- prometheus.MustNewConstMetric(descLogWindow, prometheus.GaugeValue, s.Log.WindowSeconds)
		ch <- prometheus.MustNewConstMetric(descLogAccounts, prometheus.GaugeValue, float64(s.Log.DistinctAccounts))
		for _, a := range s.Log.Accounts {
			name := Clean(a.Name)
			ch <- prometheus.MustNewConstMetric(descLogFanout, prometheus.GaugeValue, float64(a.ClientAddresses), name)
			ch <- prometheus.MustNewConstMetric(descLogMessages, prometheus.GaugeValue, float64(a.Messages), name)
			ch <- prometheus.MustNewConstMetric(descLogFailed, prometheus.GaugeValue, float64(a.LoginsFailed), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descTime, prometheus.GaugeValue, float64(s.Time.UnixMilli())/1000)
}

// cumulative turns per-bucket counts into the upper-bound → cumulative
// count map a const histogram takes (the +Inf bucket is the total).
func cumulative(bounds []float64, counts []uint64) map[float64]uint64 {
	m := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, b := range bounds {
		n += counts[i]
		m[b] = n
	}
	return m
}
