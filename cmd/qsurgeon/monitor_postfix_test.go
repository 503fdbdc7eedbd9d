package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/postfixtest"
)

// checkMailq is Debian's check_mailq (package monitoring-plugins-standard).
const checkMailq = "/usr/lib/nagios/plugins/check_mailq"

// TestMonitorBesideCheckMailq runs Debian's check_mailq and qsurgeon
// monitor --nagios on the same real Postfix queue: the same message count
// and, for the same limits, the same plugin state. check_mailq -w N alerts
// at N messages itself; qsurgeon's --warn messages=N (the plugin
// guidelines' range) above N, so qsurgeon is given N-1. qsurgeon alone
// also sees the account and its client-address fan-out, and watch holds
// that account's mail while this Postfix runs.
func TestMonitorBesideCheckMailq(t *testing.T) {
	postfixtest.Require(t)
	if _, err := exec.LookPath(checkMailq); err != nil {
		t.Fatalf("%s (Debian package monitoring-plugins-standard) is not installed", checkMailq)
	}
	users := map[string]string{"stolen@example.com": "pw-stolen", "legit@example.com": "pw-legit"}
	pf := postfixtest.New(t, postfixtest.Options{SASLUsers: users})
	pf.Start()
	const spam, legit = 6, 2
	for i := range spam + legit {
		user, addr := "stolen@example.com", fmt.Sprintf("198.51.100.%d", 10+i)
		if i >= spam {
			user, addr = "legit@example.com", "192.0.2.7"
		}
		pf.SendSMTP(postfixtest.Mail{From: user, To: []string{fmt.Sprintf("r%d@remote.example", i)},
			AuthUser: user, AuthPass: users[user], XClientAddr: addr})
	}
	pf.WaitQueued(spam+legit, 45*time.Second)
	n := spam + legit

	unsent := regexp.MustCompile(`\|unsent=(\d+);`)
	for _, c := range []struct {
		w, c int
		want int
	}{{n + 5, n + 10, 0}, {n, n + 10, 1}, {n - 4, n, 2}} {
		cmd := exec.Command(checkMailq, "-M", "postfix", "-d", pf.ConfigDir, "-w", strconv.Itoa(c.w), "-c", strconv.Itoa(c.c))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		m := unsent.FindStringSubmatch(out.String())
		if code != c.want || m == nil || m[1] != strconv.Itoa(n) {
			t.Fatalf("check_mailq -w %d -c %d: exit %d, %q; want exit %d and unsent=%d", c.w, c.c, code, out.String(), c.want, n)
		}

		r := qs(t, "", "--queue", pf.QueueDir, "monitor", "--nagios",
			"--warn", fmt.Sprintf("messages=%d", c.w-1), "--crit", fmt.Sprintf("messages=%d", c.c-1))
		if r.code != code {
			t.Errorf("-w %d -c %d: qsurgeon exit %d (%q), check_mailq %d (%q)", c.w, c.c, r.code, r.stdout, code, out.String())
		}
		p := perfdata(t, r.stdout)
		if p["messages"][0] != m[1] || p["deferred"][0] != m[1] {
			t.Errorf("qsurgeon perfdata messages=%s deferred=%s, check_mailq unsent=%s", p["messages"][0], p["deferred"][0], m[1])
		}
		if p["top_account_fanout"][0] != strconv.Itoa(spam) || p["top_account_messages"][0] != strconv.Itoa(spam) {
			t.Errorf("top account: %v messages from %v addresses, sent %d from %d", p["top_account_messages"], p["top_account_fanout"], spam, spam)
		}
		if !strings.Contains(r.stdout, "top account stolen@example.com (sasl_user)") {
			t.Errorf("status line does not name the account: %q", r.stdout)
		}
	}

	// watch on the live instance: the account above --crit fanout has its
	// mail put on hold while Postfix runs (postqueue sees it in hold), the
	// other account's mail stays deferred, nothing is deleted.
	r := qs(t, "", "--queue", pf.QueueDir, "watch", "--count", "1", "--crit", fmt.Sprintf("fanout=%d", spam-1),
		"--hold-new-from-account", "--journal", "none")
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("hold: %d done, 0 skipped, 0 failed", spam)) {
		t.Fatalf("watch --hold-new-from-account: exit %d, %s", r.code, r.stderr)
	}
	got := map[string]int{}
	for _, e := range pf.Postqueue() {
		got[e.Sender+" "+e.QueueName]++
	}
	if got["stolen@example.com hold"] != spam || got["legit@example.com deferred"] != legit || len(got) != 2 {
		t.Errorf("postqueue -j after the watch: %v; want %d of stolen@ in hold, %d of legit@ deferred", got, spam, legit)
	}
}
