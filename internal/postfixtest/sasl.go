package postfixtest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// authServer speaks the server side of the Dovecot authentication protocol
// (version 1), the protocol smtpd uses with smtpd_sasl_type = dovecot
// (postfix/src/xsasl/xsasl_dovecot_server.c). It lets smtpd authenticate
// real SMTP AUTH PLAIN and LOGIN exchanges against a map of users, so the
// queue files smtpd writes carry a genuine sasl_method / sasl_username,
// without the Cyrus sasldb tools.
//
// Protocol as Postfix uses it (xsasl_dovecot_server_connect, _first, _next,
// _handle_reply):
//
//	S: VERSION 1 2, MECH <name> <props...>, ..., DONE    (handshake)
//	C: VERSION 1 0, CPID <pid>
//	C: AUTH <id> <mech> service=smtp nologin lip=.. rip=.. [secured] [resp=<b64>]
//	S: CONT <id> <b64 challenge> | OK <id> user=<name> | FAIL <id> [reason=..]
//	C: CONT <id> <b64 response>
//
// Fields are separated by TAB; Postfix keeps one connection per smtpd
// process and sends request ids that count up on it.
type authServer struct {
	ln    net.Listener
	users map[string]string

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
	log   []string // "OK user" / "FAIL user" per attempt
}

func startAuthServer(users map[string]string) (*authServer, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("postfixtest: auth server: %w", err)
	}
	a := &authServer{ln: ln, users: users, conns: map[net.Conn]bool{}}
	for u := range users {
		if strings.ContainsAny(u, "\t\n\x00") {
			ln.Close()
			return nil, fmt.Errorf("postfixtest: SASL user %q contains TAB, NUL or newline", u)
		}
	}
	a.wg.Add(1)
	go a.serve()
	return a, nil
}

func (a *authServer) Addr() string { return a.ln.Addr().String() }

// Close stops accepting, closes open connections and waits for handlers.
func (a *authServer) Close() {
	a.ln.Close()
	a.mu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// Log returns one line per finished authentication: "OK <user>" or
// "FAIL <user>".
func (a *authServer) Log() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.log...)
}

func (a *authServer) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		a.conns[c] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.handle(c)
			a.mu.Lock()
			delete(a.conns, c)
			a.mu.Unlock()
			c.Close()
		}()
	}
}

// pending is an AUTH request waiting for a CONT.
type pending struct {
	mech string
	step int
	user string
}

func (a *authServer) handle(c net.Conn) {
	var cookie [16]byte
	_, _ = rand.Read(cookie[:])
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t%d\nCUID\t1\nCOOKIE\t%s\nDONE\n",
		os.Getpid(), hex.EncodeToString(cookie[:]))
	if w.Flush() != nil {
		return
	}
	r := bufio.NewReaderSize(c, 64*1024)
	reqs := map[string]*pending{}
	b64 := base64.StdEncoding.EncodeToString
	for {
		// Idle smtpd processes keep the connection open; the read only
		// ends when Postfix or Close closes it.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
		var reply string
		switch f[0] {
		case "AUTH":
			if len(f) < 3 {
				return
			}
			id, mech := f[1], strings.ToUpper(f[2])
			var resp string
			hasResp := false
			for _, kv := range f[3:] {
				if v, ok := strings.CutPrefix(kv, "resp="); ok {
					resp, hasResp = v, true
				}
			}
			p := &pending{mech: mech}
			switch mech {
			case "PLAIN", "LOGIN":
			default:
				reply = fmt.Sprintf("FAIL\t%s\treason=unsupported mechanism\n", id)
			}
			if reply == "" {
				if hasResp {
					reply = a.step(id, p, resp, reqs)
				} else if mech == "PLAIN" {
					reqs[id] = p
					reply = fmt.Sprintf("CONT\t%s\t\n", id)
				} else {
					reqs[id] = p
					reply = fmt.Sprintf("CONT\t%s\t%s\n", id, b64([]byte("Username:")))
				}
			}
		case "CONT":
			if len(f) < 2 {
				return
			}
			p, ok := reqs[f[1]]
			if !ok {
				reply = fmt.Sprintf("FAIL\t%s\treason=unknown request\n", f[1])
				break
			}
			resp := ""
			if len(f) > 2 {
				resp = f[2]
			}
			reply = a.step(f[1], p, resp, reqs)
		default:
			// VERSION, CPID and anything else need no answer.
			continue
		}
		if _, err := w.WriteString(reply); err != nil || w.Flush() != nil {
			return
		}
	}
}

// step consumes one client response for request id and returns the reply
// line.
func (a *authServer) step(id string, p *pending, resp string, reqs map[string]*pending) string {
	data, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		delete(reqs, id)
		return fmt.Sprintf("FAIL\t%s\treason=invalid base64\n", id)
	}
	switch p.mech {
	case "PLAIN":
		// RFC 4616: authzid NUL authcid NUL passwd
		parts := bytes.SplitN(data, []byte{0}, 3)
		if len(parts) != 3 {
			delete(reqs, id)
			return fmt.Sprintf("FAIL\t%s\treason=malformed PLAIN response\n", id)
		}
		user, pass := string(parts[1]), string(parts[2])
		if len(parts[0]) > 0 && string(parts[0]) != user {
			delete(reqs, id)
			return a.verdict(id, user, false)
		}
		delete(reqs, id)
		return a.verdict(id, user, a.check(user, pass))
	case "LOGIN":
		if p.step == 0 {
			p.user = string(data)
			p.step = 1
			reqs[id] = p
			return fmt.Sprintf("CONT\t%s\t%s\n", id, base64.StdEncoding.EncodeToString([]byte("Password:")))
		}
		delete(reqs, id)
		return a.verdict(id, p.user, a.check(p.user, string(data)))
	}
	delete(reqs, id)
	return fmt.Sprintf("FAIL\t%s\n", id)
}

func (a *authServer) check(user, pass string) bool {
	want, ok := a.users[user]
	return ok && want == pass
}

func (a *authServer) verdict(id, user string, ok bool) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	clean := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == 0 {
			return '?'
		}
		return r
	}, user)
	if ok {
		a.log = append(a.log, "OK "+clean)
		return fmt.Sprintf("OK\t%s\tuser=%s\n", id, clean)
	}
	a.log = append(a.log, "FAIL "+clean)
	return fmt.Sprintf("FAIL\t%s\tuser=%s\treason=Authentication failed\n", id, clean)
}
