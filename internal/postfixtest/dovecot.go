package postfixtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dovecot is a real dovecot (Debian's dovecot-core) serving only its auth
// service, on 127.0.0.1, from a directory of the test's own: Postfix's
// smtpd asks it with smtpd_sasl_type = dovecot (see Options.MainCF and
// DovecotSASL). Its log (log_path, dovecot's own format) is LogFile.
type Dovecot struct {
	Dir, LogFile, Addr string
	cmd                *exec.Cmd
}

// StartDovecot starts dovecot with a passwd-file of users (user ->
// password, PLAIN scheme) and auth_verbose, so that failed logins are
// logged. It fails the test when dovecot is not installed.
func StartDovecot(t testing.TB, users map[string]string) *Dovecot {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		t.Fatalf("postfixtest: dovecot not installed (apt-get install dovecot-core; .ci/run installs it): %v", err)
	}
	dir := mkRoot(t, "qsurgeon-dovecot-")
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := &Dovecot{Dir: dir, LogFile: filepath.Join(dir, "dovecot.log"), Addr: fmt.Sprintf("127.0.0.1:%d", port)}
	for _, sub := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var pw strings.Builder
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s::::::\n", u, users[u])
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`protocols =
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
auth_verbose = yes
auth_mechanisms = plain login
ssl = no
disable_plaintext_auth = no
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = %[2]d
  }
}
`, dir, port)
	cf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", cf)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("postfixtest: dovecot: %v", err)
	}
	t.Cleanup(func() {
		// the process group of the dovecot this test started, and only it
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		}
		out.Close()
		removeAll(t, dir)
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			l, _ := os.ReadFile(d.LogFile)
			t.Fatalf("postfixtest: dovecot auth does not listen on %s: %v\n%s%s", d.Addr, err, b, l)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DovecotSASL returns the main.cf settings that make smtpd authenticate
// through d (Options.MainCF; leave Options.SASLUsers empty).
func (d *Dovecot) DovecotSASL() []string {
	return []string{"smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot", "smtpd_sasl_path = inet:" + d.Addr}
}
