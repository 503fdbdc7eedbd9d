package postfixtest

import (
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// Sink is a running smtp-sink(1) on loopback that accepts every message and
// dumps each transaction to its own file (smtp-sink -d).
type Sink struct {
	t    testing.TB
	Addr string // 127.0.0.1:port
	Dir  string // dump directory
	cmd  *exec.Cmd
	done chan struct{}
}

// SinkMessage is one transaction smtp-sink received.
type SinkMessage struct {
	Path       string   // dump file
	ClientAddr string   // X-Client-Addr
	Helo       string   // X-Helo-Args
	MailFrom   string   // address inside X-Mail-Args <...>
	MailArgs   string   // the whole X-Mail-Args (with SIZE=, BODY= ...)
	Rcpts      []string // addresses inside each X-Rcpt-Args <...>
	// Data is the message as received, starting with smtp-sink's own
	// Received: header, with LF line ends.
	Data []byte
}

// Header parses Data's header (net/mail); nil when it does not parse.
func (m SinkMessage) Header() mail.Header { return testkit.Header(m.Data) }

// StartSink runs smtp-sink on a free loopback port (as user postfix; it
// needs -u when started by root) and waits, at most 10s, until it accepts
// connections. t.Cleanup stops it and removes its directory.
//
// extra are further smtp-sink options placed before the address, e.g.
// "-f", "RCPT" to reject every recipient with a hard 5xx error (so the
// instance bounces), or "-r", "RCPT" for a soft 4xx error (it defers).
func StartSink(t testing.TB, extra ...string) *Sink {
	t.Helper()
	Require(t)
	tools, _ := lookTools()
	root := mkRoot(t, "qsurgeon-smtpsink-")
	s := &Sink{t: t, Dir: filepath.Join(root, "dump"), done: make(chan struct{})}
	t.Cleanup(func() {
		s.Stop()
		removeAll(t, root)
	})
	uid, gid := lookupIDs(t, "postfix")
	must(t, os.Mkdir(s.Dir, 0o755))
	must(t, os.Chown(s.Dir, uid, gid))
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	// smtp-sink [-d dump-template] ...: "-d dump each mail transaction to
	// a single-message file whose name is created by expanding the
	// dump-template via strftime() and appending a pseudo-random
	// hexadecimal number". Backlog 64.
	args := append([]string{"-u", "postfix", "-d", filepath.Join(s.Dir, "msg.")}, extra...)
	s.cmd = exec.Command(tools["smtp-sink"], append(args, s.Addr, "64")...)
	var stderr bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &stderr, &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("postfixtest: smtp-sink: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	must(t, os.WriteFile(filepath.Join(root, "sink.pid"), []byte(strconv.Itoa(s.cmd.Process.Pid)+"\n"), 0o644))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp4", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("postfixtest: smtp-sink exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfixtest: smtp-sink not listening on %s after 10s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop terminates smtp-sink (SIGTERM, then SIGKILL after 5s).
func (s *Sink) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Messages parses every complete dump file, sorted by MAIL FROM and then by
// file name. A file is complete when smtp-sink has written the end of DATA
// (it appends an empty line after the message).
func (s *Sink) Messages() []SinkMessage {
	s.t.Helper()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		s.t.Fatalf("postfixtest: %v", err)
	}
	var msgs []SinkMessage
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(s.Dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			s.t.Fatalf("postfixtest: %v", err)
		}
		m, ok := parseSinkDump(b)
		if !ok {
			continue
		}
		m.Path = p
		msgs = append(msgs, m)
	}
	sort.SliceStable(msgs, func(i, j int) bool {
		if msgs[i].MailFrom != msgs[j].MailFrom {
			return msgs[i].MailFrom < msgs[j].MailFrom
		}
		return msgs[i].Path < msgs[j].Path
	})
	return msgs
}

// parseSinkDump splits smtp-sink's X-Client-Addr/-Proto, X-Helo-Args,
// X-Mail-Args and X-Rcpt-Args prefix from the message. ok is false for an
// empty or still growing file.
func parseSinkDump(b []byte) (m SinkMessage, ok bool) {
	if !bytes.HasSuffix(b, []byte("\n\n")) {
		return m, false
	}
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := string(rest[:i])
		name, val, found := strings.Cut(line, ": ")
		if !found {
			break
		}
		switch name {
		case "X-Client-Addr":
			m.ClientAddr = val
		case "X-Client-Proto":
		case "X-Helo-Args":
			m.Helo = val
		case "X-Mail-Args":
			m.MailArgs = val
			m.MailFrom = angle(val)
		case "X-Rcpt-Args":
			m.Rcpts = append(m.Rcpts, angle(val))
		default:
			m.Data = rest[:len(rest)-1] // drop smtp-sink's trailing empty line
			return m, m.MailArgs != ""
		}
		rest = rest[i+1:]
	}
	return m, false
}

func angle(s string) string {
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j >= 0 {
			return s[i+1 : i+j]
		}
	}
	return strings.Fields(s + " ")[0]
}

// WaitMessages waits (polling every 100ms, at most timeout) until at least
// n complete messages arrived, and returns them all.
func (s *Sink) WaitMessages(n int, timeout time.Duration) []SinkMessage {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs := s.Messages()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postfixtest: smtp-sink got %d messages, want %d, after %v", len(msgs), n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
