package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdWatchUnit: contrib/systemd's service runs a command line
// qsurgeon accepts (its ExecStart with the default QSURGEON_WATCH_ARGS and
// with the defaults file's, on a real queue), and systemd-analyze verify
// accepts the unit and the timer when systemd is installed.
func TestSystemdWatchUnit(t *testing.T) {
	unit, err := os.ReadFile("../../contrib/systemd/qsurgeon-watch.service")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := os.ReadFile("../../contrib/systemd/qsurgeon-watch.default")
	if err != nil {
		t.Fatal(err)
	}
	exec1 := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/qsurgeon (.*)$`).FindSubmatch(unit)
	env := regexp.MustCompile(`(?m)^Environment="QSURGEON_WATCH_ARGS=(.*)"$`).FindSubmatch(unit)
	def := regexp.MustCompile(`(?m)^QSURGEON_WATCH_ARGS="(.*)"$`).FindSubmatch(defaults)
	if exec1 == nil || env == nil || def == nil {
		t.Fatalf("unit or defaults file lost its ExecStart/QSURGEON_WATCH_ARGS lines")
	}
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	for _, args := range []string{string(env[1]), string(def[1])} {
		line := strings.ReplaceAll(string(exec1[1]), "$QSURGEON_WATCH_ARGS", args)
		line = strings.ReplaceAll(line, "/var/lib/qsurgeon/", dir+"/")
		line = strings.ReplaceAll(line, "/var/lib/prometheus/node-exporter", dir)
		line = strings.ReplaceAll(line, "/usr/local/sbin/qsurgeon-alert", "true")
		r := qs(t, "", append([]string{"--queue", q}, strings.Fields(line)...)...)
		if r.code != 0 || !strings.Contains(r.stdout, "CRITICAL (was OK)") {
			t.Errorf("qsurgeon %s: exit %d, %q %s", line, r.code, r.stdout, r.stderr)
		}
		os.Remove(filepath.Join(dir, "watch.state"))
	}
	if _, err := os.Stat(filepath.Join(dir, "qsurgeon.prom")); err != nil {
		t.Errorf("the defaults' --textfile wrote nothing: %v", err)
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified")
		return
	}
	ud := t.TempDir()
	os.WriteFile(filepath.Join(ud, "qsurgeon-watch.service"), []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/qsurgeon", qsBin)), 0o644)
	timer, _ := os.ReadFile("../../contrib/systemd/qsurgeon-watch.timer")
	os.WriteFile(filepath.Join(ud, "qsurgeon-watch.timer"), timer, 0o644)
	out, err := exec.Command(sa, "verify", "--man=no", filepath.Join(ud, "qsurgeon-watch.service"), filepath.Join(ud, "qsurgeon-watch.timer")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
