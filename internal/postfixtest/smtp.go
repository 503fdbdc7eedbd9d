package postfixtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// Mail is one SMTP transaction for SendSMTP.
type Mail struct {
	From string   // envelope sender; "" sends MAIL FROM:<>
	To   []string // envelope recipients
	// Data is the message (header, blank line, body); LF or CRLF line
	// ends; dot-stuffing is done by the client. Nil sends NewMessage(...).
	Data []byte
	// HELO is the EHLO argument; default "client.example.net".
	HELO string
	// XClientAddr / XClientName, when set, make smtpd believe the client
	// is that address / hostname (XCLIENT ADDR= NAME=, allowed for
	// 127.0.0.1 by smtpd_authorized_xclient_hosts). IPv6 addresses are
	// sent with the IPV6: prefix.
	XClientAddr, XClientName string
	// AuthUser / AuthPass authenticate with SASL (needs
	// Options.SASLUsers); AuthMech is "PLAIN" (default) or "LOGIN".
	AuthUser, AuthPass, AuthMech string
}

// NewMessage returns a small RFC 5322 message with a unique Message-ID.
func NewMessage(from string, to []string, subject, body string) []byte {
	var b [8]byte
	_, _ = rand.Read(b[:])
	f := from
	if f == "" {
		f = "MAILER-DAEMON"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "From: <%s>\r\n", f)
	fmt.Fprintf(&s, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&s, "Subject: %s\r\n", subject)
	fmt.Fprintf(&s, "Date: %s\r\n", time.Now().UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&s, "Message-ID: <%s@postfixtest.example>\r\n", hex.EncodeToString(b[:]))
	s.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	s.WriteString(strings.ReplaceAll(strings.TrimRight(body, "\n"), "\n", "\r\n"))
	s.WriteString("\r\n")
	return []byte(s.String())
}

// SendSMTP delivers m to the instance's smtpd and returns the queue ID from
// "250 2.0.0 Ok: queued as ID"; it fails the test on any error, including a
// refused recipient.
func (in *Instance) SendSMTP(m Mail) string {
	in.t.Helper()
	id, err := in.TrySendSMTP(m)
	if err != nil {
		in.t.Fatalf("%v\nmaillog:\n%s", err, in.MaillogTail(20))
	}
	return id
}

// SendSMTPAuth is SendSMTP with SASL PLAIN as user/pass and a generated
// message.
func (in *Instance) SendSMTPAuth(user, pass, from string, to []string, data []byte) string {
	in.t.Helper()
	return in.SendSMTP(Mail{From: from, To: to, Data: data, AuthUser: user, AuthPass: pass})
}

// SMTPError is a reply the server gave that the client did not expect.
type SMTPError struct {
	Stage string // "greeting", "EHLO", "XCLIENT", "AUTH", "MAIL", "RCPT <addr>", "DATA", "end of data"
	Code  int
	Msg   string
}

func (e *SMTPError) Error() string {
	return fmt.Sprintf("postfixtest: SMTP %s: %d %s", e.Stage, e.Code, e.Msg)
}

// TrySendSMTP is SendSMTP returning the error (an *SMTPError when the server
// refused something) instead of failing the test. The whole session is
// bounded to 60 seconds.
func (in *Instance) TrySendSMTP(m Mail) (id string, err error) {
	conn, err := net.DialTimeout("tcp4", in.SMTPAddr, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("postfixtest: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := textproto.NewConn(conn)
	defer c.Close()

	expect := func(stage string, codes ...int) (int, string, error) {
		code, msg, err := c.ReadResponse(0)
		if err != nil && !isProtoErr(err) {
			return code, msg, fmt.Errorf("postfixtest: SMTP %s: %w", stage, err)
		}
		for _, want := range codes {
			if code == want {
				return code, msg, nil
			}
		}
		return code, msg, &SMTPError{Stage: stage, Code: code, Msg: msg}
	}
	cmd := func(stage string, codes []int, format string, args ...any) (string, error) {
		if err := c.PrintfLine(format, args...); err != nil {
			return "", fmt.Errorf("postfixtest: SMTP %s: %w", stage, err)
		}
		_, msg, err := expect(stage, codes...)
		return msg, err
	}
	if _, _, err := expect("greeting", 220); err != nil {
		return "", err
	}
	helo := m.HELO
	if helo == "" {
		helo = "client.example.net"
	}
	ext, err := cmd("EHLO", []int{250}, "EHLO %s", helo)
	if err != nil {
		return "", err
	}
	if m.XClientAddr != "" || m.XClientName != "" {
		if !hasExt(ext, "XCLIENT") {
			return "", errors.New("postfixtest: smtpd does not offer XCLIENT")
		}
		var attrs []string
		if m.XClientAddr != "" {
			a := m.XClientAddr
			if strings.Contains(a, ":") {
				a = "IPV6:" + a
			}
			attrs = append(attrs, "ADDR="+a)
		}
		if m.XClientName != "" {
			attrs = append(attrs, "NAME="+m.XClientName)
		}
		if _, err := cmd("XCLIENT", []int{220}, "XCLIENT %s", strings.Join(attrs, " ")); err != nil {
			return "", err
		}
		// XCLIENT resets the session; smtpd greets again (the 220 above).
		if ext, err = cmd("EHLO", []int{250}, "EHLO %s", helo); err != nil {
			return "", err
		}
	}
	if m.AuthUser != "" {
		if !hasExt(ext, "AUTH") {
			return "", errors.New("postfixtest: smtpd does not offer AUTH (Options.SASLUsers empty?)")
		}
		b64 := base64.StdEncoding.EncodeToString
		switch strings.ToUpper(m.AuthMech) {
		case "", "PLAIN":
			if _, err := cmd("AUTH", []int{235}, "AUTH PLAIN %s", b64([]byte("\x00"+m.AuthUser+"\x00"+m.AuthPass))); err != nil {
				return "", err
			}
		case "LOGIN":
			if _, err := cmd("AUTH", []int{334}, "AUTH LOGIN"); err != nil {
				return "", err
			}
			if _, err := cmd("AUTH", []int{334}, "%s", b64([]byte(m.AuthUser))); err != nil {
				return "", err
			}
			if _, err := cmd("AUTH", []int{235}, "%s", b64([]byte(m.AuthPass))); err != nil {
				return "", err
			}
		default:
			return "", fmt.Errorf("postfixtest: unknown AuthMech %q", m.AuthMech)
		}
	}
	if _, err := cmd("MAIL", []int{250}, "MAIL FROM:<%s>", m.From); err != nil {
		return "", err
	}
	for _, r := range m.To {
		if _, err := cmd("RCPT "+r, []int{250, 251}, "RCPT TO:<%s>", r); err != nil {
			return "", err
		}
	}
	if _, err := cmd("DATA", []int{354}, "DATA"); err != nil {
		return "", err
	}
	data := m.Data
	if data == nil {
		data = NewMessage(m.From, m.To, "postfixtest message", "Hello from postfixtest.\n")
	}
	w := c.DotWriter()
	if _, err := w.Write(data); err != nil {
		return "", fmt.Errorf("postfixtest: SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("postfixtest: SMTP DATA: %w", err)
	}
	_, msg, err := expect("end of data", 250)
	if err != nil {
		return "", err
	}
	// smtpd.c: "250 2.0.0 Ok: queued as %s"
	const marker = "queued as "
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return "", fmt.Errorf("postfixtest: no queue ID in %q", msg)
	}
	id = strings.TrimSpace(msg[i+len(marker):])
	_, _ = cmd("QUIT", []int{221}, "QUIT")
	return id, nil
}

func isProtoErr(err error) bool {
	var pe *textproto.Error
	return errors.As(err, &pe)
}

func hasExt(ehlo, name string) bool {
	for _, l := range strings.Split(ehlo, "\n") {
		f := strings.Fields(strings.ToUpper(l))
		if len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// Sendmail submits data with Postfix's sendmail(1) (-f from -i -- to...;
// from "" leaves out -f, so the sender is root@$myorigin; nil data sends
// NewMessage(...)),
// which hands it to postdrop(1): a file in maildrop/ that pickup(8) takes
// when the instance runs, and that stays in maildrop/ while it is stopped.
func (in *Instance) Sendmail(from string, to []string, data []byte) {
	in.t.Helper()
	if err := in.TrySendmail(from, to, data); err != nil {
		in.t.Fatal(err)
	}
}

// TrySendmail is Sendmail returning the error.
func (in *Instance) TrySendmail(from string, to []string, data []byte) error {
	if data == nil {
		data = NewMessage(from, to, "postfixtest sendmail message", "Hello from sendmail.\n")
	}
	args := []string{"-C", in.ConfigDir, "-i"}
	if from != "" {
		args = append(args, "-f", from)
	}
	args = append(args, "--")
	args = append(args, to...)
	out, err := in.runInput(data, "sendmail", args...)
	if err != nil {
		return fmt.Errorf("postfixtest: sendmail: %v: %s", err, out)
	}
	return nil
}
