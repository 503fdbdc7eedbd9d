package qmailtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// SMTPMessage is one transaction the loopback sink accepted.
type SMTPMessage struct {
	MailFrom string
	Rcpts    []string
	// Data is the message as received, dot-unstuffed, with CRLF line ends
	// turned into LF.
	Data []byte
}

// RcptReply decides the sink's answer to RCPT TO:<addr>: code 250 accepts,
// 4xx defers, 5xx makes qmail-remote fail the recipient permanently.
type RcptReply func(addr string) (code int, text string)

// sink is a minimal SMTP server on 127.0.0.1 (what qmail-remote needs:
// HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). Go's listener uses the
// kernel's somaxconn as backlog, far above the 256 that qmail-remote's
// concurrency needs (build-qmail.sh's header).
type sink struct {
	ln    net.Listener
	rcpt  RcptReply
	mu    sync.Mutex
	msgs  []SMTPMessage
	wg    sync.WaitGroup
	conns map[net.Conn]bool
}

func startSink(rcpt RcptReply) (*sink, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, rcpt: rcpt, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *sink) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *sink) messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

func (s *sink) session(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) bool {
		fmt.Fprintf(w, format+"\r\n", args...)
		return w.Flush() == nil
	}
	if !reply("220 sink.qsurgeon.test ESMTP") {
		return
	}
	var from string
	var rcpts []string
	inTx := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(verb, "EHLO"):
			reply("250-sink.qsurgeon.test\r\n250 8BITMIME")
		case strings.HasPrefix(verb, "HELO"):
			reply("250 sink.qsurgeon.test")
		case strings.HasPrefix(verb, "MAIL FROM:"):
			from, rcpts, inTx = angle(line[len("MAIL FROM:"):]), nil, true
			reply("250 ok")
		case strings.HasPrefix(verb, "RCPT TO:"):
			if !inTx {
				reply("503 MAIL first")
				continue
			}
			addr := angle(line[len("RCPT TO:"):])
			code, text := 250, "ok"
			if s.rcpt != nil {
				code, text = s.rcpt(addr)
			}
			if code == 250 {
				rcpts = append(rcpts, addr)
			}
			reply("%d %s", code, text)
		case verb == "DATA":
			if len(rcpts) == 0 {
				reply("503 no valid recipients")
				continue
			}
			if !reply("354 go ahead") {
				return
			}
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				l = strings.TrimRight(l, "\r\n")
				if l == "." {
					break
				}
				l = strings.TrimPrefix(l, ".")
				data.WriteString(l)
				data.WriteByte('\n')
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, SMTPMessage{MailFrom: from, Rcpts: rcpts, Data: data.Bytes()})
			s.mu.Unlock()
			from, rcpts, inTx = "", nil, false
			reply("250 accepted")
		case verb == "RSET":
			from, rcpts, inTx = "", nil, false
			reply("250 ok")
		case verb == "NOOP":
			reply("250 ok")
		case verb == "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unimplemented")
		}
	}
}

// angle returns the address inside <...> (qmail-remote always sends it
// bracketed).
func angle(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j >= 0 {
			return s[i+1 : i+j]
		}
	}
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}
