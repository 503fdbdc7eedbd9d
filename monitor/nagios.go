package monitor

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// WriteNagios writes the plugin output of a checked snapshot: one status
// line, then '|' and the performance data, in the format of the Monitoring
// Plugins Development Guidelines ("Plugin Output", "Performance data"):
// 'label'=value[UOM];[warn];[crit];[min];[max], UOM s, % or B. Every
// queue of the MTA is listed, empty or not, so graphs keep their series.
func WriteNagios(w io.Writer, s *Snapshot, r Result, warn, crit []Threshold) error {
	line := "QSURGEON " + r.Status.String() + " - " + Summary(s, r)
	return writePerf(w, line, s, warn, crit)
}

// Summary is the plugin status line's text after the status word: the
// depth, size and oldest age, the top account, and the thresholds passed,
// separated by " / " (Nagios turns a ";" in plugin output into ":").
func Summary(s *Snapshot, r Result) string {
	var line strings.Builder
	fmt.Fprintf(&line, "%d messages, %s", s.Messages, human(s.Bytes))
	if s.Messages > 0 {
		fmt.Fprintf(&line, ", oldest %s", formatLimit(MetricAge, float64(int64(s.OldestAgeSeconds))))
	}
	if top := s.TopAccount(); top != nil {
		fmt.Fprintf(&line, " / top account %s (%s): %d messages, %.0f%% of the queue, from %d client address(es)",
			Clean(top.Name), top.Kind, top.Messages, 100*top.Share, top.ClientAddresses)
	}
	if s.Log != nil {
		fmt.Fprintf(&line, " / logs, last %s:", formatLimit(MetricAge, s.Log.WindowSeconds))
		if top := s.TopLogAccount(); top != nil {
			fmt.Fprintf(&line, " top account %s: from %d client address(es), %d messages, %d failed login(s)",
				Clean(top.Name), top.ClientAddresses, top.Messages, top.LoginsFailed)
		} else {
			line.WriteString(" no account")
		}
	}
	if s.Unreadable > 0 {
		fmt.Fprintf(&line, " / %d unreadable", s.Unreadable)
	}
	if len(r.Alerts) > 0 {
		parts := make([]string, len(r.Alerts))
		for i, a := range r.Alerts {
			parts[i] = a.String() + " (" + strings.ToLower(a.Level.String()) + ")"
		}
		fmt.Fprintf(&line, " / above: %s", strings.Join(parts, ", "))
	}
	return line.String()
}

// writePerf is the rest of WriteNagios.
func writePerf(w io.Writer, line string, s *Snapshot, warn, crit []Threshold) error {
	var perf []string
	add := func(label string, v float64, uom, metric, min, max string) {
		wl, cl := Limits(metric, warn, crit)
		p := fmt.Sprintf("'%s'=%s%s;%s;%s;%s;%s", label, strconv.FormatFloat(v, 'f', -1, 64), uom, wl, cl, min, max)
		perf = append(perf, strings.TrimRight(p, ";"))
	}
	names := make([]string, 0, len(s.Queues))
	for q := range s.Queues {
		names = append(names, q)
	}
	sort.Slice(names, func(i, j int) bool { return queueOrder(s.MTA, names[i]) < queueOrder(s.MTA, names[j]) })
	for _, q := range names {
		add(q, float64(s.Queues[q].Messages), "", q, "0", "")
	}
	add(MetricMessages, float64(s.Messages), "", MetricMessages, "0", "")
	add(MetricBytes, float64(s.Bytes), "B", MetricBytes, "0", "")
	add("oldest_age", float64(int64(s.OldestAgeSeconds)), "s", MetricAge, "0", "")
	share, _ := s.Value(MetricShare)
	fanout, _ := s.Value(MetricFanout)
	acct, _ := s.Value(MetricAccount)
	add("top_account_share", float64(int64(share*10))/10, "%", MetricShare, "0", "100")
	add("top_account_fanout", fanout, "", MetricFanout, "0", "")
	add("top_account_messages", acct, "", MetricAccount, "0", "")
	add(MetricUnreadable, float64(s.Unreadable), "", MetricUnreadable, "0", "")
	if s.Log != nil {
		for _, m := range LogMetrics {
			v, _ := s.Value(m)
			add(m, v, "", m, "0", "")
		}
	}
	_, err := fmt.Fprintf(w, "%s | %s\n", line, strings.Join(perf, " "))
	return err
}

// queueOrder lists the MTA's queues first, in their usual order.
func queueOrder(mta, q string) string {
	for i, n := range QueueNames(mta) {
		if n == q {
			return fmt.Sprintf("0%02d", i)
		}
	}
	return "1" + q
}

func human(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
