// Package qmailtest runs the real qmail-send (notqmail 1.09, built from
// ../shared/vendor by ../shared/tools/build-qmail.sh) on queues that tests
// made with qsurgeon, and reports what it delivered and logged.
//
// qmail's binaries carry their prefix (conf-qmail) compiled in, so every
// Instance of one test run uses the same prefix and its queue directory;
// instances therefore take turns (an exclusive lock on the prefix, held
// from New until the test ends), also across the test processes of
// several packages.
//
//	func TestSomething(t *testing.T) {
//		q := qmailtest.New(t, qmailtest.Options{})  // skips, or fails under CI=true, without qmail
//		q.LayQueue(myQueueDir)                      // or run qsurgeon on q.QueueDir
//		q.Start()
//		res := q.WaitIdle(time.Minute)              // stops qmail-send by pid
//		for _, d := range res.Delivered { ... }     // local (Maildir) and remote (SMTP sink)
//		if strings.Contains(res.Log, "trouble") { ... }
//	}
//
// Mail to the local domains (Options.Locals, default example.com) goes,
// whatever the local part, to the Maildir of the alias user through
// users/assign and ~alias/.qmail-default; every other domain goes through
// control/smtproutes to an SMTP sink on 127.0.0.1 served by the test
// process. control/queuelifetime is ten years, so a fixture queue made
// months ago is delivered, not bounced as too old.
//
// Requirements: root, cc and make (build-essential), and
// ../shared/tools/build-qmail.sh with ../shared/vendor/notqmail-*.tar.gz
// beside the repository; or QSURGEON_QMAIL_PREFIX naming a prefix that
// script built. Without them the tests skip with a message saying how to
// run them, except under CI=true, where they fail.
package qmailtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// Options configure an Instance.
type Options struct {
	// Me is control/me (default mail.example.com).
	Me string
	// Locals are the local domains (default example.com); Me is added.
	Locals []string
	// RcptReply decides the sink's answer to each RCPT (default: 250).
	RcptReply RcptReply
	// ConcurrencyZero sets concurrencylocal and concurrencyremote to 0:
	// qmail-send runs and holds lock/sendmutex but delivers nothing.
	ConcurrencyZero bool
}

// Instance is the prefix's qmail, prepared for one test.
type Instance struct {
	t      testing.TB
	Prefix string
	// QueueDir is Prefix/queue, the only queue this qmail uses.
	QueueDir string
	// Maildir receives every local delivery.
	Maildir string
	// LogFile holds what qmail-send wrote (qmail-start's stdout).
	LogFile string
	// SinkAddr is the loopback SMTP sink (127.0.0.1:port).
	SinkAddr string

	sink    *sink
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
	aliasID [2]int
}

// Delivery is one message qmail delivered.
type Delivery struct {
	// Channel is "local" (Maildir) or "remote" (SMTP sink).
	Channel string
	// Sender is the envelope sender: MAIL FROM for remote, the
	// Return-Path qmail-local wrote for local ("" for <>, "#@[]" for a
	// double bounce).
	Sender string
	// Recipients: RCPT TO addresses for remote; for local the address
	// qmail-local was given (its Delivered-To line, with the "alias-"
	// prefix users/assign adds removed).
	Recipients []string
	// Data is the message as delivered (header lines qmail-local adds
	// included).
	Data []byte
}

// Header parses Data's header; nil when it does not parse.
func (d Delivery) Header() mail.Header { return testkit.Header(d.Data) }

// Result is what one run of qmail-send did.
type Result struct {
	Delivered []Delivery
	// Log is everything qmail-send logged.
	Log string
}

// New prepares the prefix for this test: it waits for the prefix lock,
// replaces the queue by an empty one as qmail's hier.c makes it, writes
// the control files, users/assign and an empty Maildir, and starts the SMTP
// sink. Nothing runs until Start. t.Cleanup stops qmail-send and the sink
// and releases the lock.
func New(t testing.TB, opts Options) *Instance {
	t.Helper()
	prefix := Prefix(t)
	unlock, err := lockFile(prefix+".run.lock", 20*time.Minute)
	if err != nil {
		t.Fatalf("qmailtest: %v", err)
	}
	q := &Instance{t: t, Prefix: prefix, QueueDir: filepath.Join(prefix, "queue"),
		Maildir: filepath.Join(prefix, "alias", "Maildir")}
	t.Cleanup(func() {
		q.stop()
		if q.sink != nil {
			q.sink.close()
		}
		unlock()
	})
	reapLeftovers(prefix)
	logDir := t.TempDir()
	q.LogFile = filepath.Join(logDir, "qmail-send.log")
	q.ResetQueue()

	if opts.Me == "" {
		opts.Me = "mail.example.com"
	}
	if len(opts.Locals) == 0 {
		opts.Locals = []string{"example.com"}
	}
	q.sink, err = startSink(opts.RcptReply)
	if err != nil {
		t.Fatalf("qmailtest: sink: %v", err)
	}
	q.SinkAddr = q.sink.addr()
	_, port, _ := strings.Cut(q.SinkAddr, ":")
	conc := ""
	if opts.ConcurrencyZero {
		conc = "0"
	}
	control := map[string]string{
		"me":        opts.Me,
		"locals":    strings.Join(append([]string{opts.Me}, opts.Locals...), "\n"),
		"rcpthosts": strings.Join(append([]string{opts.Me}, opts.Locals...), "\n"),
		// qmail-remote.c: smtproutes "domain:relay:port"; an empty domain
		// matches every domain.
		"smtproutes":    ":127.0.0.1:" + port,
		"queuelifetime": strconv.Itoa(10 * 365 * 24 * 3600),
		"defaultdomain": opts.Locals[0],
		"plusdomain":    opts.Locals[0],
	}
	cdir := filepath.Join(prefix, "control")
	ents, _ := os.ReadDir(cdir)
	for _, e := range ents {
		os.Remove(filepath.Join(cdir, e.Name()))
	}
	for name, val := range control {
		q.must(os.WriteFile(filepath.Join(cdir, name), []byte(val+"\n"), 0o644))
	}
	if conc != "" {
		q.must(os.WriteFile(filepath.Join(cdir, "concurrencylocal"), []byte(conc+"\n"), 0o644))
		q.must(os.WriteFile(filepath.Join(cdir, "concurrencyremote"), []byte(conc+"\n"), 0o644))
	}

	// Every local part to the alias user, whose .qmail-default delivers to
	// ./Maildir/ (build-qmail.sh's header).
	al, err := user.Lookup("alias")
	if err != nil {
		t.Fatalf("qmailtest: %v", err)
	}
	uid, _ := strconv.Atoi(al.Uid)
	gid, _ := strconv.Atoi(al.Gid)
	q.aliasID = [2]int{uid, gid}
	home := filepath.Join(prefix, "alias")
	assign := fmt.Sprintf("+:alias:%d:%d:%s:-::\n.\n", uid, gid, home)
	q.must(os.WriteFile(filepath.Join(prefix, "users", "assign"), []byte(assign), 0o644))
	q.run(filepath.Join(prefix, "bin", "qmail-newu"))
	q.must(os.RemoveAll(q.Maildir))
	q.must(os.WriteFile(filepath.Join(home, ".qmail-default"), []byte("./Maildir/\n"), 0o644))
	q.must(os.Chown(filepath.Join(home, ".qmail-default"), uid, gid))
	for _, d := range []string{"", "new", "cur", "tmp"} {
		p := filepath.Join(q.Maildir, d)
		q.must(os.Mkdir(p, 0o700))
		q.must(os.Chown(p, uid, gid))
	}
	return q
}

func (q *Instance) must(err error) {
	q.t.Helper()
	if err != nil {
		q.t.Fatalf("qmailtest: %v", err)
	}
}

func (q *Instance) run(bin string, args ...string) string {
	q.t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		q.t.Fatalf("qmailtest: %s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// SetControl writes control/name (value "" removes it), e.g.
// SetControl("concurrencyremote", "0") so that a started qmail-send holds
// lock/sendmutex and preprocesses todo/ but delivers nothing. qmail-send
// reads its control files when it starts.
func (q *Instance) SetControl(name, value string) {
	q.t.Helper()
	p := filepath.Join(q.Prefix, "control", name)
	if value == "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			q.t.Fatalf("qmailtest: %v", err)
		}
		return
	}
	q.must(os.WriteFile(p, []byte(value+"\n"), 0o644))
}

// Bin is the path of a qmail program of the prefix (qmail-inject,
// qmail-queue, qmail-qread, ...).
func (q *Instance) Bin(name string) string { return filepath.Join(q.Prefix, "bin", name) }

// ResetQueue replaces the queue by an empty one as `make setup` made it.
func (q *Instance) ResetQueue() {
	q.t.Helper()
	q.RemoveQueue()
	if out, err := exec.Command("cp", "-a", filepath.Join(q.Prefix, pristine), q.QueueDir).CombinedOutput(); err != nil {
		q.t.Fatalf("qmailtest: %v: %s", err, out)
	}
}

// RemoveQueue removes the queue directory altogether (for a tool that
// builds a new one in its place).
func (q *Instance) RemoveQueue() {
	q.t.Helper()
	if q.Running() {
		q.t.Fatal("qmailtest: RemoveQueue while qmail-send runs")
	}
	q.must(os.RemoveAll(q.QueueDir))
}

// LayQueue replaces the queue by a copy of dir (cp -a: owners, modes,
// times, hard links and the trigger FIFO kept).
func (q *Instance) LayQueue(dir string) {
	q.t.Helper()
	q.RemoveQueue()
	if out, err := exec.Command("cp", "-a", dir, q.QueueDir).CombinedOutput(); err != nil {
		q.t.Fatalf("qmailtest: %v: %s", err, out)
	}
}

// Instcheck runs qmail's own instcheck (hier.c against the disk) and
// returns its output and whether it passed.
func (q *Instance) Instcheck() (string, error) {
	bin := filepath.Join(q.Prefix, "qsurgeon-bin", "instcheck")
	if _, err := os.Stat(bin); err != nil {
		q.t.Fatalf("qmailtest: no instcheck in this prefix (made by the harness's own build only): %v", err)
	}
	out, err := exec.Command(bin).CombinedOutput()
	return string(out), err
}

// Inject runs qmail-inject -f from with the message on stdin (recipients
// from the arguments).
func (q *Instance) Inject(from string, to []string, msg []byte) {
	q.t.Helper()
	cmd := exec.Command(q.Bin("qmail-inject"), append([]string{"-f" + from}, to...)...)
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		q.t.Fatalf("qmailtest: qmail-inject: %v\n%s", err, out)
	}
}

// QueueAs runs the real qmail-queue with real uid uid (gid 0), the message
// on fd 0 and the envelope "F<sender>\0T<rcpt>\0...\0" on fd 1
// (qmail-queue.c: its Received line says "invoked from network" when uid is
// qmaild's, "by uid N" otherwise).
func (q *Instance) QueueAs(uid int, sender string, rcpts []string, msg []byte) {
	q.t.Helper()
	env := "F" + sender + "\x00"
	for _, r := range rcpts {
		env += "T" + r + "\x00"
	}
	env += "\x00"
	er, ew, err := os.Pipe()
	q.must(err)
	cmd := exec.Command(q.Bin("qmail-queue"))
	cmd.Stdin = bytes.NewReader(msg)
	cmd.ExtraFiles = nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// fd 1 is the envelope: qmail-queue reads it.
	cmd.Stdout = er
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: 0}}
	q.must(cmd.Start())
	er.Close()
	if _, err := ew.Write([]byte(env)); err != nil {
		q.t.Fatalf("qmailtest: writing the envelope: %v", err)
	}
	ew.Close()
	if err := cmd.Wait(); err != nil {
		q.t.Fatalf("qmailtest: qmail-queue as uid %d: %v: %s", uid, err, stderr.String())
	}
}

// Start runs qmail-start ./Maildir/ in the prefix with qmail-send's log on
// its standard output (env - PATH=..., as build-qmail.sh's header says),
// and waits until qmail-send holds lock/sendmutex.
func (q *Instance) Start() {
	q.t.Helper()
	if q.Running() {
		q.t.Fatal("qmailtest: already running")
	}
	logf, err := os.OpenFile(q.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	q.must(err)
	defer logf.Close()
	cmd := exec.Command(q.Bin("qmail-start"), "./Maildir/")
	cmd.Dir = q.Prefix
	cmd.Env = []string{"PATH=" + filepath.Join(q.Prefix, "bin") + ":/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	q.must(cmd.Start())
	q.cmd, q.done = cmd, make(chan struct{})
	go func() { q.exitErr = cmd.Wait(); close(q.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for !q.locked() {
		select {
		case <-q.done:
			q.t.Fatalf("qmailtest: qmail-send exited at start: %v\n%s", q.exitErr, q.Log())
		default:
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("qmailtest: qmail-send holds no lock/sendmutex after 20s\n%s", q.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// locked reports whether somebody holds lock/sendmutex (flock -n fails).
func (q *Instance) locked() bool {
	f, err := os.Open(filepath.Join(q.QueueDir, "lock", "sendmutex"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Running reports whether qmail-send runs.
func (q *Instance) Running() bool {
	if q.cmd == nil {
		return false
	}
	select {
	case <-q.done:
		return false
	default:
		return true
	}
}

// Pid is qmail-send's process id (qmail-start execs it).
func (q *Instance) Pid() int { return q.cmd.Process.Pid }

// WaitIdle waits until qmail-send has nothing left to do now (todo/ empty,
// its last status line shows no delivery in progress, and the log has not
// grown for two seconds), stops it, and returns what was delivered and
// logged. Deferred deliveries stay queued for their next retry.
func (q *Instance) WaitIdle(timeout time.Duration) Result {
	q.t.Helper()
	deadline := time.Now().Add(timeout)
	lastSize, stableSince := int64(-1), time.Now()
	for {
		fi, err := os.Stat(q.LogFile)
		q.must(err)
		if fi.Size() != lastSize {
			lastSize, stableSince = fi.Size(), time.Now()
		}
		if time.Since(stableSince) >= 2*time.Second && q.todoEmpty() && idleStatus(q.Log()) {
			break
		}
		if !q.Running() {
			q.t.Fatalf("qmailtest: qmail-send exited: %v\n%s", q.exitErr, q.Log())
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("qmailtest: qmail-send not idle after %v; log:\n%s", timeout, tail(q.Log(), 4000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	q.Stop()
	return Result{Delivered: q.Delivered(), Log: q.Log()}
}

// idleStatus: qmail-send.c:del_status() logs "status: local N/M remote N/M"
// whenever a delivery starts or ends.
func idleStatus(log string) bool {
	i := strings.LastIndex(log, "status: local ")
	if i < 0 {
		return false
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	f := strings.Fields(line)
	return len(f) >= 5 && strings.HasPrefix(f[2], "0/") && strings.HasPrefix(f[4], "0/")
}

func (q *Instance) todoEmpty() bool {
	n := 0
	filepath.WalkDir(filepath.Join(q.QueueDir, "todo"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n == 0
}

// Stop sends SIGTERM to qmail-send's pid and waits (30s at most) until it
// exited; qmail-send exits 0 once its deliveries are finished.
func (q *Instance) Stop() {
	q.t.Helper()
	if !q.Running() {
		return
	}
	if q.terminate() {
		q.t.Fatalf("qmailtest: qmail-send did not exit within 30s of SIGTERM\n%s", tail(q.Log(), 2000))
	}
	if q.exitErr != nil {
		q.t.Errorf("qmailtest: qmail-send exited: %v\n%s", q.exitErr, tail(q.Log(), 2000))
	}
	q.waitChildren()
}

// waitChildren waits until qmail-lspawn, -rspawn and -clean (same process
// group) are gone; they exit when qmail-send closes their pipes.
func (q *Instance) waitChildren() {
	pgid := q.cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func (q *Instance) stop() {
	if q.Running() {
		q.terminate()
		q.waitChildren()
	}
}

// terminate sends SIGTERM to qmail-send and waits for it, 30s at most,
// then kills its process group; it reports whether it had to.
func (q *Instance) terminate() (killed bool) {
	_ = q.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-q.done:
		return false
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
		<-q.done
		return true
	}
}

// Log is what qmail-send logged so far.
func (q *Instance) Log() string {
	b, err := os.ReadFile(q.LogFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		q.t.Fatalf("qmailtest: %v", err)
	}
	return string(b)
}

// Delivered lists the messages delivered so far: the Maildir's (new/ and
// cur/, by file name) and then the sink's (in arrival order).
func (q *Instance) Delivered() []Delivery {
	q.t.Helper()
	var out []Delivery
	var names []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(q.Maildir, sub))
		q.must(err)
		for _, e := range ents {
			names = append(names, filepath.Join(sub, e.Name()))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(q.Maildir, n))
		q.must(err)
		out = append(out, localDelivery(b))
	}
	for _, m := range q.sink.messages() {
		out = append(out, Delivery{Channel: "remote", Sender: m.MailFrom, Recipients: m.Rcpts, Data: m.Data})
	}
	return out
}

// localDelivery reads the envelope qmail-local put on top of the message:
// "Return-Path: <sender>" and "Delivered-To: alias-<recipient>"
// (qmail-local.c: rpline and dtline; the user is alias with dash "-" and
// the local part as extension, users/assign).
func localDelivery(b []byte) Delivery {
	d := Delivery{Channel: "local", Data: b}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			break
		}
		switch {
		case strings.HasPrefix(l, "Return-Path: ") && d.Sender == "" && len(d.Recipients) == 0:
			d.Sender = angle(strings.TrimPrefix(l, "Return-Path: "))
		case strings.HasPrefix(l, "Delivered-To: ") && len(d.Recipients) == 0:
			d.Recipients = []string{strings.TrimPrefix(strings.TrimPrefix(l, "Delivered-To: "), "alias-")}
		}
	}
	return d
}

// reapLeftovers kills the qmail processes a test process that died before
// its cleanup left running in the prefix (their program is in
// PREFIX/bin). It runs under the run lock, so no live test owns them.
func reapLeftovers(prefix string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	var victims []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dst, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(dst, filepath.Join(prefix, "bin")+"/") {
			victims = append(victims, pid)
		}
	}
	for _, pid := range victims {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(victims) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
}
