package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMonitorUnderNagios4 runs monitor --nagios the way a monitoring
// server does: a private Debian nagios4 (package nagios4-core) with one
// service whose check command is qsurgeon, on a real queue. Nagios's own
// status file must then hold qsurgeon's state, status line and perfdata.
func TestMonitorUnderNagios4(t *testing.T) {
	nagios, err := exec.LookPath("nagios4")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nagios4"); err != nil {
			t.Fatal("nagios4 (Debian package nagios4-core) is not installed")
		}
		nagios = "/usr/sbin/nagios4"
	}
	q := filepath.Join(extract(t, postfixFixture+"/queue.tar.gz"), "postfix-incident-a")
	dir := t.TempDir()
	args := []string{"--queue", q, "monitor", "--nagios", "--warn", "deferred=100", "--crit", "fanout=20"}
	direct := qs(t, "", args...)
	line, perf, _ := strings.Cut(strings.TrimSpace(direct.stdout), " | ")

	must := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "checkresults"), 0o755)
	must("resource.cfg", "")
	cfg := strings.NewReplacer("DIR", dir).Replace(`log_file=DIR/nagios.log
cfg_file=DIR/objects.cfg
object_cache_file=DIR/objects.cache
precached_object_file=DIR/objects.precache
resource_file=DIR/resource.cfg
status_file=DIR/status.dat
status_update_interval=1
nagios_user=root
nagios_group=root
check_external_commands=0
command_file=DIR/nagios.cmd
lock_file=DIR/nagios.lock
temp_file=DIR/nagios.tmp
temp_path=DIR
check_result_path=DIR/checkresults
query_socket=DIR/nagios.qh
retain_state_information=0
state_retention_file=DIR/retention.dat
interval_length=1
max_service_check_spread=1
service_inter_check_delay_method=n
execute_host_checks=0
enable_notifications=0
enable_event_handlers=0
check_for_updates=0
`)
	must("nagios.cfg", cfg)
	must("objects.cfg", fmt.Sprintf(`define command {
  command_name check_qsurgeon
  command_line %s %s
}
define command {
  command_name check_dummy
  command_line /bin/true
}
define timeperiod {
  timeperiod_name always
  alias always
  sunday 00:00-24:00
  monday 00:00-24:00
  tuesday 00:00-24:00
  wednesday 00:00-24:00
  thursday 00:00-24:00
  friday 00:00-24:00
  saturday 00:00-24:00
}
define contact {
  contact_name nobody
  host_notifications_enabled 0
  service_notifications_enabled 0
  host_notification_period always
  service_notification_period always
  host_notification_options n
  service_notification_options n
  host_notification_commands check_dummy
  service_notification_commands check_dummy
}
define host {
  host_name mx1
  address 127.0.0.1
  check_command check_dummy
  max_check_attempts 1
  check_period always
  notification_period always
  contacts nobody
}
define service {
  host_name mx1
  service_description mailqueue
  check_command check_qsurgeon
  max_check_attempts 1
  check_interval 60
  retry_interval 60
  check_period always
  notification_period always
  contacts nobody
}
`, qsBin, strings.Join(args, " ")))
	if out, err := exec.Command(nagios, "-v", filepath.Join(dir, "nagios.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("nagios4 -v: %v\n%s", err, out)
	}
	cmd := exec.Command(nagios, filepath.Join(dir, "nagios.cfg"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
	}()
	var st map[string]string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		st = serviceStatus(filepath.Join(dir, "status.dat"))
		if st["has_been_checked"] == "1" {
			break
		}
	}
	if st["has_been_checked"] != "1" {
		log, _ := os.ReadFile(filepath.Join(dir, "nagios.log"))
		t.Fatalf("nagios4 never ran the check: %v\n%s", st, log)
	}
	if st["current_state"] != strconv.Itoa(direct.code) || direct.code != 2 {
		t.Errorf("nagios state %s, qsurgeon exit %d (want 2: fanout above 20)", st["current_state"], direct.code)
	}
	// The two runs are seconds apart: the oldest age may differ by that.
	got, want := perfdata(t, "x | "+st["performance_data"]), perfdata(t, "x | "+perf)
	ga, _ := strconv.Atoi(got["oldest_age"][0])
	wa, _ := strconv.Atoi(want["oldest_age"][0])
	delete(got, "oldest_age")
	delete(want, "oldest_age")
	oldest := regexp.MustCompile(`oldest [0-9dhms]+`)
	if oldest.ReplaceAllString(st["plugin_output"], "") != oldest.ReplaceAllString(line, "") || fmt.Sprint(got) != fmt.Sprint(want) || ga < wa || ga > wa+60 {
		t.Errorf("nagios read\n  %q | %q\nqsurgeon printed\n  %q | %q", st["plugin_output"], st["performance_data"], line, perf)
	}
}

// serviceStatus is the first servicestatus block of a Nagios status file.
func serviceStatus(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "servicestatus {":
			in = true
		case in && l == "}":
			return out
		case in:
			if k, v, ok := strings.Cut(l, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}
