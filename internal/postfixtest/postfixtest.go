package postfixtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SkipEnv names the environment variable that turns a missing Postfix
// toolchain into a skip instead of a failure. CI never sets it.
const SkipEnv = "QSURGEON_NO_POSTFIX"

// Tools are the Postfix programs the harness runs.
var Tools = []string{"postfix", "postconf", "postsuper", "postqueue", "postcat", "postdrop", "sendmail", "smtp-sink", "postalias"}

var (
	toolOnce  sync.Once
	toolPaths map[string]string
	toolErr   error
)

// lookTools resolves every tool once, also in /usr/sbin and /usr/lib/postfix
// (sbin is often not on a test runner's PATH).
func lookTools() (map[string]string, error) {
	toolOnce.Do(func() {
		toolPaths = map[string]string{}
		var missing []string
		for _, name := range Tools {
			p, err := exec.LookPath(name)
			if err != nil {
				for _, dir := range []string{"/usr/sbin", "/usr/lib/postfix/sbin", "/usr/bin"} {
					c := filepath.Join(dir, name)
					if st, e := os.Stat(c); e == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
						p, err = c, nil
						break
					}
				}
			}
			if err != nil {
				missing = append(missing, name)
				continue
			}
			toolPaths[name] = p
		}
		var problems []string
		if len(missing) > 0 {
			problems = append(problems, "missing programs: "+strings.Join(missing, ", ")+" (apt-get install postfix)")
		}
		if os.Geteuid() != 0 {
			problems = append(problems, "not running as root (a private Postfix instance needs root)")
		}
		for _, u := range []string{"postfix", "nobody"} {
			if _, err := user.Lookup(u); err != nil {
				problems = append(problems, "no user "+u)
			}
		}
		if _, err := user.LookupGroup("postdrop"); err != nil {
			problems = append(problems, "no group postdrop")
		}
		if len(problems) == 0 {
			out, err := exec.Command(toolPaths["postconf"], "-d", "-h", "mail_version").CombinedOutput()
			if err != nil {
				problems = append(problems, fmt.Sprintf("postconf -d mail_version: %v: %s", err, bytes.TrimSpace(out)))
			}
		}
		if len(problems) > 0 {
			toolErr = errors.New("postfixtest: Postfix toolchain unusable: " + strings.Join(problems, "; "))
		}
	})
	return toolPaths, toolErr
}

// Available reports whether a private Postfix instance can run here: all of
// Tools are installed, the users postfix and nobody and the group postdrop
// exist, and the process runs as root.
func Available() error {
	_, err := lookTools()
	return err
}

// Require fails the test when Available reports a problem. Only when the
// environment variable QSURGEON_NO_POSTFIX=1 is set does it skip instead
// (for developer machines without Postfix; CI never sets it).
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%v (skipped because %s=1)", err, SkipEnv)
	}
	t.Fatalf("%v\nInstall Postfix and run as root, or set %s=1 to skip Postfix integration tests locally.", err, SkipEnv)
}

// MailVersion returns `postconf -d -h mail_version`, e.g. "3.7.11".
func MailVersion() (string, error) {
	tools, err := lookTools()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(tools["postconf"], "-d", "-h", "mail_version").Output()
	return strings.TrimSpace(string(out)), err
}

// Options configure an Instance. The zero value is a usable instance for
// mail.example.com / example.com whose remote mail defers.
type Options struct {
	// MyHostname and MyDomain default to mail.example.com and example.com.
	// mydestination is "$myhostname, localhost, $mydomain".
	MyHostname, MyDomain string
	// LocalUsers are local parts that get an alias to a file
	// MailDir/<user> (delivered by the real local(8)); postmaster always
	// exists. Other local recipients are accepted (local_recipient_maps is
	// empty) and then bounced by local(8) as "unknown user".
	LocalUsers []string
	// SASLUsers (user -> password) enables SMTP AUTH (PLAIN, LOGIN) on the
	// smtpd port; smtpd asks an in-process Dovecot-protocol auth server.
	SASLUsers map[string]string
	// RelayHost is the relayhost; default "[127.0.0.1]:P" with a port P
	// where nothing listens, so remote mail defers. See SetRelay.
	RelayHost string
	// QueueRunDelay and MinimalBackoff set queue_run_delay and
	// minimal_backoff_time (whole seconds); zero keeps Postfix's 300s, so
	// deferred mail stays put unless the test flushes.
	QueueRunDelay, MinimalBackoff time.Duration
	// LongQueueIDs sets enable_long_queue_ids = yes.
	LongQueueIDs bool
	// MyNetworks defaults to "0.0.0.0/0" so that XCLIENT-pretended client
	// addresses may relay without AUTH (everything is on loopback).
	MyNetworks string
	// MainCF holds extra "name = value" settings, applied last.
	MainCF []string
	// MasterCF holds extra master.cf lines (e.g. a second smtpd on
	// another port with "-o" overrides), appended verbatim.
	MasterCF []string
}

// Instance is one private Postfix. Its fields are read-only.
type Instance struct {
	t    testing.TB
	opts Options

	Root      string // the temporary directory holding everything below
	ConfigDir string // config_directory (main.cf, master.cf)
	QueueDir  string // queue_directory
	DataDir   string // data_directory
	MailDir   string // where local(8) writes LocalUsers' mail (files in mbox format)
	LogFile   string // maillog_file
	SMTPAddr  string // 127.0.0.1:port of smtpd
	// ClosedRelay is the default relayhost address, [127.0.0.1]:port with
	// no listener.
	ClosedRelay string

	auth    *authServer
	mu      sync.Mutex
	running bool
}

var (
	portMu   sync.Mutex
	portUsed = map[int]bool{}
)

// FreePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before.
func FreePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for range 50 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !portUsed[p] {
			portUsed[p] = true
			return p, nil
		}
	}
	return 0, errors.New("postfixtest: no free loopback port")
}

// mkRoot makes a 0755 directory for the instance or sink. t.TempDir's own
// parent is 0700, which would keep unprivileged Postfix processes (local(8)
// as nobody, smtp-sink as postfix, postlogd) out; so the harness makes its
// own and removes it in t.Cleanup after the processes are gone.
func mkRoot(t testing.TB, pattern string) string {
	t.Helper()
	reapStale()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	if err := writeOwner(dir); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	return dir
}

func removeAll(t testing.TB, dir string) {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("postfixtest: cleanup: %v", err)
}

// New creates (but does not start) a private Postfix instance. t.Cleanup
// stops it and removes its directory.
func New(t testing.TB, opts Options) *Instance {
	t.Helper()
	Require(t)
	if opts.MyHostname == "" {
		opts.MyHostname = "mail.example.com"
	}
	if opts.MyDomain == "" {
		opts.MyDomain = "example.com"
	}
	if opts.MyNetworks == "" {
		opts.MyNetworks = "0.0.0.0/0"
	}
	root := mkRoot(t, "qsurgeon-postfixtest-")
	in := &Instance{
		t:         t,
		opts:      opts,
		Root:      root,
		ConfigDir: filepath.Join(root, "conf"),
		QueueDir:  filepath.Join(root, "spool"),
		DataDir:   filepath.Join(root, "data"),
		MailDir:   filepath.Join(root, "mail"),
		LogFile:   filepath.Join(root, "maillog"),
	}
	// Registered before anything can start, so it runs even when New fails
	// half-way: stop Postfix, kill what is left, close the auth server,
	// remove the tree.
	t.Cleanup(func() {
		in.shutdown()
		if in.auth != nil {
			in.auth.Close()
		}
		removeAll(t, root)
	})

	smtpPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", smtpPort)
	closed, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	in.ClosedRelay = fmt.Sprintf("[127.0.0.1]:%d", closed)
	if opts.RelayHost == "" {
		opts.RelayHost = in.ClosedRelay
	}

	pfUID, pfGID := lookupIDs(t, "postfix")
	nobodyUID, _ := lookupIDs(t, "nobody")
	for _, d := range []string{in.ConfigDir, in.QueueDir, in.DataDir, in.MailDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// local(8) writes alias-file deliveries as nobody and mailboxes as the
	// recipient; a sticky world-writable spool like /var/mail serves both.
	must(t, os.Chmod(in.MailDir, 0o1777))
	must(t, os.Chown(in.DataDir, pfUID, pfGID))
	_ = nobodyUID

	// The meta files post-install needs (postfix-files lists the queue
	// tree's owners and modes), as make.sh does with cp -aL.
	for _, f := range []string{"dynamicmaps.cf", "dynamicmaps.cf.d", "postfix-files", "postfix-files.d", "main.cf.proto", "master.cf.proto", "post-install", "postfix-script", "makedefs.out"} {
		src := filepath.Join("/etc/postfix", f)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if out, err := exec.Command("cp", "-aL", src, in.ConfigDir+"/").CombinedOutput(); err != nil {
			t.Fatalf("postfixtest: cp %s: %v: %s", src, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(in.ConfigDir, "postfix-files")); err != nil {
		if out, err := exec.Command("cp", "-aL", "/usr/share/postfix/postfix-files", in.ConfigDir+"/").CombinedOutput(); err != nil {
			t.Fatalf("postfixtest: no postfix-files in /etc/postfix or /usr/share/postfix: %v: %s", err, out)
		}
	}
	must(t, os.WriteFile(filepath.Join(in.ConfigDir, "main.cf"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(in.ConfigDir, "master.cf"), []byte(in.masterCF()), 0o644))

	// Aliases: every LocalUser to a file in MailDir; root/MAILER-DAEMON to
	// postmaster so nothing is ever written outside Root.
	var al strings.Builder
	users := append([]string{"postmaster"}, opts.LocalUsers...)
	seen := map[string]bool{}
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		fmt.Fprintf(&al, "%s: %s\n", u, filepath.Join(in.MailDir, u))
	}
	al.WriteString("MAILER-DAEMON: postmaster\nroot: postmaster\n")
	must(t, os.WriteFile(filepath.Join(in.ConfigDir, "aliases"), []byte(al.String()), 0o644))

	settings := []string{
		"compatibility_level = 3.6",
		"config_directory = " + in.ConfigDir,
		"meta_directory = " + in.ConfigDir,
		"queue_directory = " + in.QueueDir,
		"data_directory = " + in.DataDir,
		"maillog_file = " + in.LogFile,
		"maillog_file_prefixes = " + root,
		"myhostname = " + opts.MyHostname,
		"mydomain = " + opts.MyDomain,
		"myorigin = $mydomain",
		"mydestination = $myhostname, localhost, $mydomain",
		"inet_interfaces = 127.0.0.1",
		// "all" so that XCLIENT may pretend IPv6 clients (smtpd.c
		// xclient_cmd refuses IPV6: addresses otherwise); still only
		// 127.0.0.1 listens.
		"inet_protocols = all",
		"mynetworks = " + opts.MyNetworks,
		"relayhost = " + opts.RelayHost,
		"smtp_dns_support_level = disabled",
		"smtp_host_lookup = native",
		"lmtp_host_lookup = native",
		"biff = no",
		"append_dot_mydomain = no",
		"alias_maps = hash:" + filepath.Join(in.ConfigDir, "aliases"),
		"alias_database = hash:" + filepath.Join(in.ConfigDir, "aliases"),
		"local_recipient_maps =",
		"mail_spool_directory = " + in.MailDir,
		"forward_path =",
		"smtpd_banner = $myhostname ESMTP $mail_name",
		"smtpd_authorized_xclient_hosts = 127.0.0.1",
		"enable_long_queue_ids = " + yesNo(opts.LongQueueIDs),
	}
	if opts.QueueRunDelay > 0 {
		settings = append(settings, fmt.Sprintf("queue_run_delay = %ds", max(1, int(opts.QueueRunDelay/time.Second))))
	}
	if opts.MinimalBackoff > 0 {
		settings = append(settings, fmt.Sprintf("minimal_backoff_time = %ds", max(1, int(opts.MinimalBackoff/time.Second))))
	}
	if len(opts.SASLUsers) > 0 {
		as, err := startAuthServer(opts.SASLUsers)
		if err != nil {
			t.Fatal(err)
		}
		in.auth = as
		settings = append(settings,
			"smtpd_sasl_auth_enable = yes",
			"smtpd_sasl_type = dovecot",
			// "inet:" is accepted by xsasl_dovecot_server.c
			// (xsasl_dovecot_server_connect: "necessary for testing").
			"smtpd_sasl_path = inet:"+as.Addr(),
		)
	}
	settings = append(settings, opts.MainCF...)
	in.Postconf(settings...)
	if out, err := in.run("postalias", "-c", in.ConfigDir, filepath.Join(in.ConfigDir, "aliases")); err != nil {
		t.Fatalf("postfixtest: postalias: %v: %s", err, out)
	}
	// postfix check runs post-install create-missing: it makes the queue
	// subdirectories with the owners and modes of postfix-files.
	if out, err := in.run("postfix", "-c", in.ConfigDir, "check"); err != nil {
		t.Fatalf("postfixtest: postfix check: %v: %s", err, out)
	}
	return in
}

// masterServices are master.cf's lines for every service but smtpd, less
// their leading comment.
//
//go:embed master-services.cf
var masterServicesFile string

var masterServices = masterServicesFile[strings.Index(masterServicesFile, "\npickup ")+1:]

// masterCF is a minimal master.cf (Debian's services, no chroot) with smtpd
// on the instance's loopback port.
func (in *Instance) masterCF() string {
	return `# postfixtest master.cf
# service type  private unpriv  chroot  wakeup  maxproc command + args
` + in.SMTPAddr + ` inet n - n - - smtpd
` + masterServices + strings.Join(append(in.opts.MasterCF, ""), "\n")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
}

func lookupIDs(t testing.TB, name string) (int, int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("postfixtest: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// cmdTimeout bounds every Postfix command the harness runs.
const cmdTimeout = 60 * time.Second

// run executes a Postfix tool with a bounded time and returns its combined
// output.
func (in *Instance) run(tool string, args ...string) ([]byte, error) {
	return in.runInput(nil, tool, args...)
}

func (in *Instance) runInput(stdin []byte, tool string, args ...string) ([]byte, error) {
	stdout, stderr, err := runTool(stdin, tool, args...)
	return append(stdout, stderr...), err
}

func runTool(stdin []byte, tool string, args ...string) (stdout, stderr []byte, err error) {
	tools, err := lookTools()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools[tool], args...)
	// Postfix's commands find their siblings through the config; keep
	// the environment minimal and predictable.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %v", tool, strings.Join(args, " "), cmdTimeout)
	}
	return o.Bytes(), e.Bytes(), err
}

// Postconf sets main.cf parameters ("name = value") with postconf -e. A
// running instance needs Reload to see them.
func (in *Instance) Postconf(settings ...string) {
	in.t.Helper()
	if out, err := in.run("postconf", append([]string{"-c", in.ConfigDir, "-e"}, settings...)...); err != nil {
		in.t.Fatalf("postfixtest: postconf -e: %v: %s", err, out)
	}
}

// PostconfValue returns the value of one main.cf parameter (postconf -h).
func (in *Instance) PostconfValue(name string) string {
	in.t.Helper()
	out, err := in.run("postconf", "-c", in.ConfigDir, "-h", name)
	if err != nil {
		in.t.Fatalf("postfixtest: postconf -h %s: %v: %s", name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Start starts the instance's master and waits (at most 20s) until smtpd's
// port accepts connections and the pickup and qmgr services exist.
func (in *Instance) Start() {
	in.t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.running {
		in.t.Fatal("postfixtest: Start: already running")
	}
	// New ran "postfix check"; postfix-script's start skips its slow
	// check-fatal/check-warn pass when queue_directory/quick-start exists
	// (and removes the file).
	for attempt := 1; ; attempt++ {
		must(in.t, os.WriteFile(filepath.Join(in.QueueDir, "quick-start"), nil, 0o644))
		out, err := in.run("postfix", "-c", in.ConfigDir, "start")
		if err == nil {
			break
		}
		// Another process (another test binary) may have taken the
		// port FreePort chose; master then dies at startup with
		// "bind 127.0.0.1 port PORT: Address already in use"
		// (inet_listen.c). Move smtpd to another port.
		_, port, _ := net.SplitHostPort(in.SMTPAddr)
		if attempt < 3 && strings.Contains(in.Maillog(), "bind 127.0.0.1 port "+port+": Address already in use") {
			_ = os.Remove(filepath.Join(in.QueueDir, "quick-start"))
			port, perr := FreePort()
			if perr != nil {
				in.t.Fatal(perr)
			}
			in.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", port)
			must(in.t, os.WriteFile(filepath.Join(in.ConfigDir, "master.cf"), []byte(in.masterCF()), 0o644))
			continue
		}
		in.t.Fatalf("postfixtest: postfix start: %v: %s\n%s", err, out, in.MaillogTail(30))
	}
	in.running = true
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", in.SMTPAddr, time.Second)
		if err == nil {
			c.Close()
			_, e1 := os.Stat(filepath.Join(in.QueueDir, "public", "pickup"))
			_, e2 := os.Stat(filepath.Join(in.QueueDir, "public", "qmgr"))
			if e1 == nil && e2 == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("postfixtest: Postfix did not come up on %s within 20s (%v)\n%s", in.SMTPAddr, err, in.MaillogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether Start was called without a later Stop.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.running
}

// Stop stops the instance (postfix stop) and waits, at most 20s, until no
// process of this instance is left; stragglers are killed.
func (in *Instance) Stop() {
	in.t.Helper()
	if err := in.stop(); err != nil {
		in.t.Fatal(err)
	}
}

func (in *Instance) stop() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.running {
		return nil
	}
	in.running = false
	out, err := in.run("postfix", "-c", in.ConfigDir, "stop")
	// Wait for master and its children: every Postfix daemon runs with
	// its working directory in queue_directory (master.c chdir), which is
	// how the harness tells this instance's processes from others'.
	deadline := time.Now().Add(20 * time.Second)
	for {
		pids := in.pids()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			time.Sleep(200 * time.Millisecond)
			if err == nil {
				err = fmt.Errorf("postfixtest: processes %v of %s did not exit after postfix stop; killed", pids, in.QueueDir)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("postfixtest: postfix stop: %v: %s", err, out)
	}
	return nil
}

// shutdown is the cleanup path: stop, and failing that kill whatever runs
// in this queue directory.
func (in *Instance) shutdown() {
	if err := in.stop(); err != nil {
		in.t.Errorf("%v", err)
	}
	for _, p := range in.pids() {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// pids lists the processes whose working directory is this instance's
// queue directory or below it: every Postfix daemon chdirs there (master.c).
func (in *Instance) pids() []int { return pidsIn(in.QueueDir) }

// Reload runs postfix reload (when running), e.g. after Postconf, and waits
// (at most 10s) until every daemon that ran before the reload has exited and
// a new qmgr runs, so later deliveries use the new main.cf.
func (in *Instance) Reload() {
	in.t.Helper()
	if !in.Running() {
		return
	}
	master := in.masterPID()
	var old []int
	for _, p := range in.pids() {
		if p != master {
			old = append(old, p)
		}
	}
	if out, err := in.run("postfix", "-c", in.ConfigDir, "reload"); err != nil {
		in.t.Fatalf("postfixtest: postfix reload: %v: %s", err, out)
	}
	// master.c: on SIGHUP master_refresh() re-reads the configuration and
	// the children of the old generation exit once idle.
	deadline := time.Now().Add(10 * time.Second)
	for {
		alive := 0
		for _, p := range old {
			if procComm(p) != "" {
				alive++
			}
		}
		qmgr := false
		for _, p := range in.pids() {
			if procComm(p) == "qmgr" {
				qmgr = true
			}
		}
		if alive == 0 && qmgr {
			return
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("postfixtest: reload: %d old processes still alive after 10s (qmgr running: %v)\n%s", alive, qmgr, in.MaillogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// masterPID reads pid/master.pid (0 when absent).
func (in *Instance) masterPID() int {
	b, err := os.ReadFile(filepath.Join(in.QueueDir, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// procComm returns a live process's command name ("" when it is gone or a
// zombie).
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// "pid (comm) state ..."; comm may contain spaces and parentheses.
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i || j+2 >= len(s) || s[j+2] == 'Z' {
		return ""
	}
	return s[i+1 : j]
}

// SetRelay points relayhost at addr ("127.0.0.1:port" or "[host]:port") and
// reloads a running instance.
func (in *Instance) SetRelay(addr string) {
	in.t.Helper()
	if !strings.HasPrefix(addr, "[") {
		if h, p, err := net.SplitHostPort(addr); err == nil {
			addr = "[" + h + "]:" + p
		}
	}
	in.Postconf("relayhost = " + addr)
	in.Reload()
}

// Flush runs postqueue -f: every deferred message is tried now.
func (in *Instance) Flush() {
	in.t.Helper()
	if out, err := in.run("postqueue", "-c", in.ConfigDir, "-f"); err != nil {
		in.t.Fatalf("postfixtest: postqueue -f: %v: %s", err, out)
	}
}

// Postsuper runs postsuper -c ConfigDir args... and returns its combined
// output (postsuper reports counts on stderr).
func (in *Instance) Postsuper(args ...string) (string, error) {
	out, err := in.run("postsuper", append([]string{"-c", in.ConfigDir}, args...)...)
	return string(out), err
}

// Postcat runs postcat -c ConfigDir args... (e.g. "-o", "-v", path or
// "-q", id) and returns its standard output; it fails the test on error.
func (in *Instance) Postcat(args ...string) string {
	in.t.Helper()
	stdout, stderr, err := runTool(nil, "postcat", append([]string{"-c", in.ConfigDir}, args...)...)
	if err != nil {
		in.t.Fatalf("postfixtest: postcat %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return string(stdout)
}

// QueueRecipient is one recipient in postqueue -j output.
type QueueRecipient struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason"`
}

// QueueEntry is one line of postqueue -j (showq_report in showq.c).
type QueueEntry struct {
	QueueName    string           `json:"queue_name"`
	QueueID      string           `json:"queue_id"`
	ArrivalTime  int64            `json:"arrival_time"`
	MessageSize  int64            `json:"message_size"`
	ForcedExpire bool             `json:"forced_expire"`
	Sender       string           `json:"sender"`
	Recipients   []QueueRecipient `json:"recipients"`
	// Raw is the whole JSON object as postqueue printed it.
	Raw map[string]any `json:"-"`
}

// Postqueue returns postqueue -j, sorted by queue ID. It needs a running
// instance (postqueue asks showq(8)).
func (in *Instance) Postqueue() []QueueEntry {
	in.t.Helper()
	q, err := in.postqueue()
	if err != nil {
		in.t.Fatal(err)
	}
	return q
}

// PostqueueJSON returns the raw objects of postqueue -j, one per message.
func (in *Instance) PostqueueJSON() []map[string]any {
	in.t.Helper()
	var out []map[string]any
	for _, e := range in.Postqueue() {
		out = append(out, e.Raw)
	}
	return out
}

func (in *Instance) postqueue() ([]QueueEntry, error) {
	stdout, stderr, err := runTool(nil, "postqueue", "-c", in.ConfigDir, "-j")
	if err != nil {
		return nil, fmt.Errorf("postfixtest: postqueue -j: %v: %s", err, stderr)
	}
	var q []QueueEntry
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e QueueEntry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("postfixtest: postqueue -j: %v in %q", err, line)
		}
		if err := json.Unmarshal(line, &e.Raw); err != nil {
			return nil, fmt.Errorf("postfixtest: postqueue -j: %v", err)
		}
		q = append(q, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("postfixtest: postqueue -j: %v", err)
	}
	sort.Slice(q, func(i, j int) bool { return q[i].QueueID < q[j].QueueID })
	return q, nil
}

// WaitQueue polls postqueue -j (every 100ms, at most timeout) until ok
// returns true, and returns that queue listing; on timeout it fails the test
// showing the last listing and the end of the mail log.
func (in *Instance) WaitQueue(timeout time.Duration, what string, ok func([]QueueEntry) bool) []QueueEntry {
	in.t.Helper()
	deadline := time.Now().Add(timeout)
	var last []QueueEntry
	var lastErr error
	for {
		q, err := in.postqueue()
		if err == nil && ok(q) {
			return q
		}
		last, lastErr = q, err
		if time.Now().After(deadline) {
			js, _ := json.MarshalIndent(last, "", " ")
			in.t.Fatalf("postfixtest: timed out after %v waiting for %s (last error %v); queue:\n%s\nmaillog:\n%s", timeout, what, lastErr, js, in.MaillogTail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitQueued waits until the queue holds exactly n messages and all of them
// have settled in deferred or hold (none in maildrop, incoming or active).
func (in *Instance) WaitQueued(n int, timeout time.Duration) []QueueEntry {
	in.t.Helper()
	return in.WaitQueue(timeout, fmt.Sprintf("%d settled messages", n), func(q []QueueEntry) bool {
		if len(q) != n {
			return false
		}
		for _, e := range q {
			if e.QueueName != "deferred" && e.QueueName != "hold" {
				return false
			}
		}
		return true
	})
}

// messageQueues are the queue directories that hold message files.
var messageQueues = []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt", "saved"}

// QueueFiles walks the queue directory (works while stopped) and returns
// queue ID -> path relative to QueueDir, e.g. "deferred/A/A1B2C3D4E5".
func (in *Instance) QueueFiles() map[string]string {
	in.t.Helper()
	files := map[string]string{}
	for _, q := range messageQueues {
		err := filepath.WalkDir(filepath.Join(in.QueueDir, q), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				rel, _ := filepath.Rel(in.QueueDir, p)
				files[d.Name()] = rel
			}
			return nil
		})
		if err != nil {
			in.t.Fatalf("postfixtest: %v", err)
		}
	}
	return files
}

// QueueFile returns the absolute path of message id's queue file, failing
// the test when there is none.
func (in *Instance) QueueFile(id string) string {
	in.t.Helper()
	rel, ok := in.QueueFiles()[id]
	if !ok {
		in.t.Fatalf("postfixtest: no queue file for %s", id)
	}
	return filepath.Join(in.QueueDir, rel)
}

// Maillog returns the instance's mail log so far.
func (in *Instance) Maillog() string {
	b, _ := os.ReadFile(in.LogFile)
	return string(b)
}

// MaillogTail returns the last n lines of the mail log (for failure messages).
func (in *Instance) MaillogTail(n int) string {
	lines := strings.Split(strings.TrimRight(in.Maillog(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// SASLLog returns one line per SMTP AUTH attempt the instance's auth server
// decided: "OK <user>" or "FAIL <user>".
func (in *Instance) SASLLog() []string {
	if in.auth == nil {
		return nil
	}
	return in.auth.Log()
}
