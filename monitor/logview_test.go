package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/maillog"
)

// The log view ranks by fan-out, not by volume: a stolen account used from
// many addresses is the one log_fanout watches even when an honest bulk
// sender sends more; crossing a log threshold names it as a SASL user.
// (The same through the binary on a real log: cmd/qsurgeon TestMonitorLogFanout.)
func TestLogViewRanksByFanout(t *testing.T) {
	s := &Snapshot{Time: time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC), MTA: "postfix"}
	if _, err := Check(s, nil, []Threshold{{Metric: MetricLogFanout, Limit: 20}}); err == nil || !strings.Contains(err.Error(), "--log") {
		t.Fatalf("log metric without a log view: %v", err)
	}
	s.SetLog(15*time.Minute, []maillog.Account{
		{User: "newsletter@example.com", ClientAddresses: 1, Messages: 900},
		{User: "hello@example.com", ClientAddresses: 62, Messages: 226, LoginsFailed: 3},
		{User: "bob@example.com", ClientAddresses: 2, Messages: 4},
	}, 2)
	if len(s.Log.Accounts) != 2 || s.Log.DistinctAccounts != 3 || !s.Log.Since.Equal(s.Time.Add(-15*time.Minute)) {
		t.Fatalf("log view %+v", s.Log)
	}
	r, err := Check(s, []Threshold{{Metric: MetricLogFailed, Limit: 1}}, []Threshold{{Metric: MetricLogFanout, Limit: 20}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != Critical || r.LogAccountStatus != Critical || r.LogAccount == nil || r.LogAccount.Name != "hello@example.com" ||
		r.LogAccount.Kind != KindSASL || r.Account != nil || len(r.Alerts) != 2 {
		t.Errorf("result %+v", r)
	}
	if v, _ := s.Value(MetricLogMessages); v != 226 {
		t.Errorf("log_messages %v", v)
	}
}
