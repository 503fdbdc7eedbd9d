package gen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/sysuser"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"golang.org/x/sys/unix"
)

// IDMode chooses the Postfix queue ID format.
type IDMode int

// Queue ID formats: short (enable_long_queue_ids = no, the default), long,
// or a mix of both as after switching the parameter on a busy queue.
const (
	ShortIDs IDMode = iota
	LongIDs
	MixedIDs
)

// ParseIDMode parses "short", "long" or "mixed".
func ParseIDMode(s string) (IDMode, error) {
	switch s {
	case "short", "":
		return ShortIDs, nil
	case "long":
		return LongIDs, nil
	case "mixed":
		return MixedIDs, nil
	}
	return 0, fmt.Errorf("gen: unknown ID mode %q (short, long, mixed)", s)
}

// PostfixConfig configures Postfix.
type PostfixConfig struct {
	Config
	IDs IDMode
	// UID and GID own the queue files (mail_owner). Negative: the system's
	// postfix user if there is one, else the current user.
	UID, GID int
	// PostdropGID is the group of maildrop files and directory. Negative:
	// the system's postdrop group, else GID.
	PostdropGID int
}

// postfixQueues are the directories of a queue_directory
// (global/mail_queue.h, conf/postfix-files), with Debian's modes.
var postfixQueues = []struct {
	name string
	mode os.FileMode
	hash bool
}{
	{"maildrop", 0o730 | os.ModeSticky, false},
	{"incoming", 0o700, false},
	{"active", 0o700, false},
	{"deferred", 0o700, true},
	{"hold", 0o700, false},
	{"corrupt", 0o700, false},
	{"defer", 0o700, true},
	{"bounce", 0o700, false},
	{"trace", 0o700, false},
	{"flush", 0o700, false},
	{"saved", 0o700, false},
	{"private", 0o700, false},
	{"public", 0o710 | os.ModeSetgid, false},
}

const hexDigits = "0123456789ABCDEF"

// Postfix writes a Postfix queue_directory at cfg.Root with cfg.Count
// messages: hash_queue_depth = 1 over deferred and defer (the defaults),
// every file named after its own inode, mode 0700 and owned by mail_owner,
// defer logs for deferred and held messages, deferred mtimes in the future
// (the next retry, qmgr_active.c:qmgr_active_defer).
func Postfix(ctx context.Context, cfg PostfixConfig) (Stats, error) {
	start := time.Now()
	if err := cfg.setDefaults(); err != nil {
		return Stats{}, err
	}
	if cfg.UID < 0 || cfg.GID < 0 {
		if uid, gid, ok := sysuser.User("postfix"); ok {
			cfg.UID, cfg.GID = uid, gid
		} else {
			cfg.UID, cfg.GID = os.Getuid(), os.Getgid()
		}
	}
	groupOr(&cfg.PostdropGID, "postdrop", cfg.GID)
	g := &pfGen{cfg: &cfg, writer: newWriter(&cfg.Config)}
	if err := g.mkdirs(); err != nil {
		return Stats{}, err
	}
	err := parallel(ctx, cfg.Count, cfg.Workers, func(_, i int) error { return g.one(i) })
	return g.col.stats(start), err
}

type pfGen struct {
	cfg *PostfixConfig
	writer
}

func (g *pfGen) mkdirs() error {
	root := g.cfg.Root
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	for _, q := range postfixQueues {
		p := filepath.Join(root, q.name)
		if err := os.Mkdir(p, 0o700); err != nil {
			return err
		}
		gid := g.cfg.GID
		if q.name == "maildrop" || q.name == "public" {
			gid = g.cfg.PostdropGID
		}
		if err := g.own(p, q.mode, g.cfg.UID, gid); err != nil {
			return err
		}
		if q.hash {
			for _, c := range hexDigits {
				d := filepath.Join(p, string(c))
				if err := os.Mkdir(d, 0o700); err != nil {
					return err
				}
				if err := g.own(d, 0o700, g.cfg.UID, g.cfg.GID); err != nil {
					return err
				}
			}
		}
	}
	pid := filepath.Join(root, "pid")
	if err := os.Mkdir(pid, 0o755); err != nil {
		return err
	}
	return os.Chmod(pid, 0o755)
}

// pfMsg is one drawn Postfix message before it is written.
type pfMsg struct {
	Message
	usec       int
	long       bool
	saslMethod string
	clientPort int
	v6         bool
	subject    string
	fromHdr    string
	fullName   string
	uid        int // local submissions: the submitting user
	bodySize   int
}

// drawKind picks what a message is: 10% the compromised account's spam,
// 5% newsletter, 47% legitimate SASL mail, 18% local, 8% bounces, 12%
// inbound. One draw from r, so both formats stay deterministic.
func drawKind(r *rand.Rand) string {
	switch u := r.Float64(); {
	case u < 0.10:
		return KindSpam
	case u < 0.15:
		return KindNewsletter
	case u < 0.62:
		return KindLegit
	case u < 0.80:
		return KindLocal
	case u < 0.88:
		return KindNDR
	}
	return KindInbound
}

// drawAge is how long before now a message arrived: up to 5 days, the
// spam run within the last 12 hours (a second draw, as the generator has
// always made it, so queues stay byte for byte the same).
func drawAge(r *rand.Rand, kind string) time.Duration {
	back := time.Duration(r.Int64N(int64(5 * 24 * time.Hour)))
	if kind == KindSpam {
		back = time.Duration(r.Int64N(int64(12 * time.Hour)))
	}
	return back
}

// draw decides everything about message i except its ID.
func (g *pfGen) draw(r *rand.Rand, i int) *pfMsg {
	cfg := g.cfg
	m := &pfMsg{Message: Message{Index: i}}
	m.Kind = drawKind(r)
	// Arrival: up to 5 days back; the spam run is the last 12 hours.
	back := drawAge(r, m.Kind)
	m.Arrival = cfg.Now.Add(-back - time.Minute).Truncate(time.Microsecond)
	m.usec = m.Arrival.Nanosecond() / 1000
	switch cfg.IDs {
	case LongIDs:
		m.long = true
	case MixedIDs:
		m.long = r.IntN(2) == 0
	}
	m.saslMethod = "LOGIN"
	if r.IntN(3) == 0 {
		m.saslMethod = "PLAIN"
	}
	m.clientPort = 1024 + r.IntN(64000)
	m.bodySize = bodySize(r)
	nrcpt := 1
	switch m.Kind {
	case KindSpam:
		m.SASLUser = cfg.Compromised
		m.Sender = person(r) + "@" + LocalDomain
		m.ClientAddr, m.v6 = botIP(r)
		m.ClientName = "unknown"
		if r.IntN(2) == 0 && !m.v6 {
			m.ClientName = "host-" + strings.ReplaceAll(m.ClientAddr, ".", "-") + ".dyn.cablenet.test"
		}
		m.HELO = []string{"mail.example.com", "hello", "[10.0.0.12]", "User", "localhost"}[r.IntN(5)]
		nrcpt = 1 + r.IntN(6)
		m.subject = fmt.Sprintf(spamSubjects[r.IntN(len(spamSubjects))], r.IntN(100000))
		m.fromHdr = `"CANADA PHARMACY" <` + m.Sender + ">"
	case KindNewsletter:
		m.SASLUser = cfg.Newsletter
		m.Sender = cfg.Newsletter
		m.ClientAddr, m.ClientName, m.HELO = "192.0.2.200", "web1.example.com", "web1.example.com"
		nrcpt = 1 + r.IntN(8)
		m.subject = fmt.Sprintf("Our newsletter, issue %d", 1+r.IntN(50))
		m.fromHdr = "Example Newsletter <" + m.Sender + ">"
	case KindLegit:
		k := r.IntN(2000)
		m.Sender, m.ClientAddr = legitUser(k)
		m.SASLUser = m.Sender
		m.ClientName = "unknown"
		m.HELO = "[" + m.ClientAddr + "]"
		nrcpt = 1 + r.IntN(3)
		m.subject = fmt.Sprintf(legitSubjects[r.IntN(len(legitSubjects))], r.IntN(1000))
		m.fromHdr = m.Sender
	case KindLocal:
		m.Sender = []string{"root", "logwatch", "noreply", "shop", "www-data"}[r.IntN(5)] + "@" + LocalDomain
		m.fullName = "root"
		m.uid = []int{0, 33, 1000}[r.IntN(3)]
		nrcpt = 1 + r.IntN(2)
		m.subject = fmt.Sprintf("Cron <root@mail> run-parts /etc/cron.daily (%d)", r.IntN(1000))
		m.fromHdr = m.Sender
	case KindNDR:
		m.Sender = ""
		m.subject = "Undelivered Mail Returned to Sender"
		m.fromHdr = "Mail Delivery System <MAILER-DAEMON@" + LocalDomain + ">"
		m.bodySize = 1500 + r.IntN(3000)
	case KindInbound:
		m.Sender = remoteAddr(r)
		m.ClientAddr = fmt.Sprintf("203.0.113.%d", 1+r.IntN(250))
		m.ClientName = "mx" + strconv.Itoa(r.IntN(9)) + "." + remoteDomains[r.IntN(len(remoteDomains))]
		m.HELO = m.ClientName
		m.subject = fmt.Sprintf(legitSubjects[r.IntN(len(legitSubjects))], r.IntN(1000))
		m.fromHdr = m.Sender
	}
	// Recipients. Multi-recipient mail sometimes has a local colleague
	// already delivered (D): bounces and local deliveries flip R to D in
	// place (global/deliver_completed.c).
	for j := 0; j < nrcpt; j++ {
		var rc Recipient
		switch {
		case m.Kind == KindLocal && j == 0 && nrcpt > 1:
			rc = Recipient{Address: "postmaster@" + LocalDomain, Done: true}
		case m.Kind == KindInbound:
			rc = Recipient{Address: person(r) + "@" + LocalDomain}
		case m.Kind == KindLegit && j > 0 && r.IntN(3) == 0:
			a, _ := legitUser(r.IntN(2000))
			rc = Recipient{Address: a, Done: true}
		default:
			rc = Recipient{Address: remoteAddr(r), Done: j < nrcpt-1 && r.IntN(10) == 0}
		}
		m.Recipients = append(m.Recipients, rc)
	}
	// Queue: mostly deferred; some held by the admin; a few in flight.
	q := r.Float64()
	switch {
	case m.Kind == KindLocal && q < 0.01:
		m.Queue = "maildrop"
		for j := range m.Recipients {
			m.Recipients[j].Done = false // postdrop writes R only
		}
	case q < 0.03:
		m.Queue = "hold"
	case q < 0.035:
		m.Queue = "active"
	case q < 0.04:
		m.Queue = "incoming"
	default:
		m.Queue = "deferred"
	}
	return m
}

func (g *pfGen) one(i int) error {
	r := rng(g.cfg.Seed, i)
	m := g.draw(r, i)
	root := g.cfg.Root
	dir := filepath.Join(root, m.Queue)
	tmp := filepath.Join(dir, fmt.Sprintf("%d.%d", m.usec, i))
	// mail_queue.c:mail_queue_enter: create a temporary name, fstat, name
	// the file after the time and its inode, rename.
	fd, st, err := createNamedByInode(tmp, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	if m.long {
		m.ID = postfixq.NewLongID(m.Arrival.Unix(), m.usec, st.Ino)
	} else {
		m.ID = postfixq.NewShortID(m.usec, st.Ino)
	}
	hashed := m.Queue == "deferred"
	m.Path = m.Queue + "/" + m.ID
	if hashed {
		m.Path = m.Queue + "/" + postfixq.HashDir(m.ID, 1) + m.ID
	}
	buf, offsets := g.render(r, m)
	if err := writeAll(fd, buf); err != nil {
		return fmt.Errorf("gen: write %s: %w", tmp, err)
	}
	m.FileSize = int64(len(buf))
	mode, uid, gid := uint32(0o700), g.cfg.UID, g.cfg.GID
	if m.Queue == "maildrop" {
		mode, uid, gid = 0o744, m.uid, g.cfg.PostdropGID
	}
	if err := g.finish(fd, mode, uid, gid, g.mtime(r, m)); err != nil {
		return fmt.Errorf("gen: %s: %w", tmp, err)
	}
	if err := unix.Close(fd); err != nil {
		return err
	}
	fd = -1
	if err := os.Rename(tmp, filepath.Join(root, m.Path)); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	files := int64(1)
	bytes := m.FileSize
	m.Files = append(m.Files, m.Path)
	// Logs: deferred and held messages keep their defer log; an active
	// message with a bounced (done) recipient has a bounce log until the
	// NDR is sent (bounce/bounce_append_service.c).
	if m.Queue == "deferred" || m.Queue == "hold" {
		n, err := g.writeLog(m, "defer", g.deferLog(r, m, offsets))
		if err != nil {
			return err
		}
		m.DeferLog = true
		files++
		bytes += n
	}
	if m.Queue == "active" && hasDone(m.Recipients) && m.Sender != "" {
		n, err := g.writeLog(m, "bounce", g.bounceLog(m, offsets))
		if err != nil {
			return err
		}
		m.Bouncing = true
		files++
		bytes += n
	}
	g.col.files.Add(files)
	g.col.bytes.Add(bytes)
	g.col.add(&m.Message)
	return nil
}

func hasDone(rs []Recipient) bool {
	for _, r := range rs {
		if r.Done {
			return true
		}
	}
	return false
}

// mtime is the file's modification time: the next retry for deferred and
// held files (qmgr sets it when deferring; hold keeps it), the arrival
// otherwise.
func (g *pfGen) mtime(r *rand.Rand, m *pfMsg) time.Time {
	switch m.Queue {
	case "deferred", "hold":
		return g.cfg.Now.Add(time.Duration(60+r.IntN(3940)) * time.Second)
	case "active":
		return g.cfg.Now.Add(-time.Duration(r.IntN(60)) * time.Second)
	}
	return m.Arrival
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// writeLog writes a defer or bounce log (mode 0600) under the message's
// hashed name.
func (g *pfGen) writeLog(m *pfMsg, service string, text []byte) (int64, error) {
	rel := service + "/" + m.ID
	if service == "defer" {
		rel = service + "/" + postfixq.HashDir(m.ID, 1) + m.ID
	}
	m.Files = append(m.Files, rel)
	p := filepath.Join(g.cfg.Root, rel)
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("gen: %w", &os.PathError{Op: "create", Path: p, Err: err})
	}
	err = writeAll(fd, text)
	if err == nil {
		err = g.finish(fd, 0o600, g.cfg.UID, g.cfg.GID, m.Arrival.Add(time.Second))
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return int64(len(text)), err
}

var deferReasons = []struct{ status, reason string }{
	{"4.4.1", "connect to %s[127.0.0.1]:25: Connection refused"},
	{"4.4.1", "delivery temporarily suspended: connect to %s[127.0.0.1]:25: Connection refused"},
	{"4.7.1", "host %s[127.0.0.1] said: 451 4.7.1 Greylisted, please try again later (in reply to RCPT TO command)"},
	{"4.4.2", "conversation with %s[127.0.0.1] timed out while receiving the initial server greeting"},
}

// deferLog renders a defer log in bounce_append_service.c's format: per
// pending recipient an entry with the legacy line first
// (backwards_bounce_logfile_compatibility=yes), newest entry last.
func (g *pfGen) deferLog(r *rand.Rand, m *pfMsg, offsets []int64) []byte {
	var b []byte
	for j := len(m.Recipients) - 1; j >= 0; j-- {
		rc := m.Recipients[j]
		if rc.Done {
			continue
		}
		dr := deferReasons[r.IntN(len(deferReasons))]
		host := "mx." + rc.Address[strings.IndexByte(rc.Address, '@')+1:]
		reason := fmt.Sprintf(dr.reason, host)
		b = fmt.Appendf(b, "\n<%s>: %s\nrecipient=%s\noffset=%d\n", rc.Address, reason, rc.Address, offsets[j])
		if m.Queue != "maildrop" {
			b = fmt.Appendf(b, "dsn_orig_rcpt=rfc822;%s\n", rc.Address)
		}
		b = fmt.Appendf(b, "status=%s\naction=delayed\nreason=%s\n\n", dr.status, reason)
	}
	return b
}

func (g *pfGen) bounceLog(m *pfMsg, offsets []int64) []byte {
	var b []byte
	for j, rc := range m.Recipients {
		if !rc.Done {
			continue
		}
		reason := "host mx.example.net[127.0.0.1] said: 550 5.1.1 <" + rc.Address + ">: Recipient address rejected: User unknown (in reply to RCPT TO command)"
		b = fmt.Appendf(b, "\n<%s>: %s\nrecipient=%s\noffset=%d\ndsn_orig_rcpt=rfc822;%s\nstatus=5.1.1\naction=failed\ndiag_type=smtp\ndiag_text=550 5.1.1 <%s>: Recipient address rejected: User unknown\nmta_type=dns\nmta_mname=mx.example.net\nreason=%s\n\n",
			rc.Address, reason, rc.Address, offsets[j], rc.Address, rc.Address, reason)
	}
	return b
}

// pfWriter accumulates records.
type pfWriter struct{ b []byte }

func (w *pfWriter) rec(t postfixq.RecType, s string) {
	w.b = append(w.b, byte(t))
	n := len(s)
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		w.b = append(w.b, c)
		if n == 0 {
			break
		}
	}
	w.b = append(w.b, s...)
}

func (w *pfWriter) attr(name, value string) { w.rec(postfixq.RecTypeAttr, name+"="+value) }

// render builds the queue file the way cleanup writes it (the record order
// of cleanup_envelope.c, cleanup_message.c, cleanup_extracted.c and
// cleanup_final.c; no milters, so no pointer records), or the way postdrop
// writes a maildrop file (no C, no create_time, no O). It returns the file
// and the offset of each recipient record.
func (g *pfGen) render(r *rand.Rand, m *pfMsg) ([]byte, []int64) {
	w := &pfWriter{b: make([]byte, 0, m.bodySize+2048)}
	maildrop := m.Queue == "maildrop"
	if !maildrop {
		w.rec(postfixq.RecTypeSize, strings.Repeat(" ", postfixq.SizeRecordLen)) // rewritten below
	}
	w.rec(postfixq.RecTypeTime, strconv.FormatInt(m.Arrival.Unix(), 10)+" "+strconv.Itoa(m.usec))
	if !maildrop {
		w.attr("create_time", strconv.FormatInt(m.Arrival.Unix(), 10))
	}
	smtp := m.ClientAddr != ""
	switch {
	case m.Kind == KindNDR:
		// post_mail.c:post_mail_init for a bounce: no rewrite_context.
		w.attr("log_message_origin", "local")
		w.attr("trace_flags", "0")
	case smtp:
		w.attr("log_ident", m.ID)
		ctx := "local"
		if m.Kind == KindInbound {
			ctx = "remote"
		}
		w.attr("rewrite_context", ctx)
		if m.SASLUser != "" {
			w.attr("sasl_method", m.saslMethod)
			w.attr("sasl_username", m.SASLUser)
		}
	default:
		w.attr("rewrite_context", "local")
		w.rec(postfixq.RecTypeFull, m.fullName)
	}
	w.rec(postfixq.RecTypeFrom, m.Sender)
	if smtp {
		port, proto, stype := "587", "ESMTP", "2"
		if m.Kind == KindInbound {
			port = "25"
		}
		if m.v6 {
			stype = "10"
		}
		origin := m.ClientName + "[" + m.ClientAddr + "]"
		cport := strconv.Itoa(m.clientPort)
		w.attr("log_client_name", m.ClientName)
		w.attr("log_client_address", m.ClientAddr)
		w.attr("log_client_port", cport)
		w.attr("log_message_origin", origin)
		w.attr("log_helo_name", m.HELO)
		w.attr("log_protocol_name", proto)
		w.attr("client_name", m.ClientName)
		w.attr("reverse_client_name", m.ClientName)
		w.attr("client_address", m.ClientAddr)
		w.attr("client_port", cport)
		w.attr("server_address", "192.0.2.1")
		w.attr("server_port", port)
		w.attr("helo_name", m.HELO)
		w.attr("protocol_name", proto)
		w.attr("client_address_type", stype)
	}
	offsets := make([]int64, len(m.Recipients))
	for j, rc := range m.Recipients {
		if !maildrop {
			w.attr("dsn_orig_rcpt", "rfc822;"+rc.Address)
			w.rec(postfixq.RecTypeORcpt, rc.Address)
		}
		offsets[j] = int64(len(w.b))
		t := postfixq.RecTypeRcpt
		if rc.Done {
			t = postfixq.RecTypeDone
		}
		w.rec(t, rc.Address)
	}
	w.rec(postfixq.RecTypeMesg, "")
	dataOffset := len(w.b)
	g.content(r, m, func(line string) { w.rec(postfixq.RecTypeNorm, line) })
	xOffset := len(w.b)
	w.rec(postfixq.RecTypeXtra, "")
	if !maildrop && m.Kind == KindLocal {
		w.attr("encoding", "8bit")
	}
	w.rec(postfixq.RecTypeEnd, "")
	if !maildrop {
		size := int64(xOffset - dataOffset)
		c, err := postfixq.SizeRecord{DataSize: size, DataOffset: int64(dataOffset),
			RcptCount: int64(len(m.Recipients)), ContLength: size}.Format()
		if err != nil || len(c) != postfixq.SizeRecordLen {
			panic("gen: size record: " + fmt.Sprint(err)) // cannot happen: values are small
		}
		copy(w.b[2:], c)
	}
	return w.b, offsets
}

// content emits the message lines: Postfix's own Received header (smtpd,
// pickup or bounce), the headers, the body.
func (g *pfGen) content(r *rand.Rand, m *pfMsg, line func(string)) {
	date := postfixDate(m.Arrival)
	switch {
	case m.Kind == KindNDR:
		line("Received: by " + MyHostname + " (Postfix)")
		line("\tid " + m.ID + "; " + date)
	case m.ClientAddr != "":
		addr := m.ClientAddr
		if m.v6 {
			addr = "IPv6:" + addr
		}
		with := "ESMTP"
		if m.SASLUser != "" {
			with = "ESMTPA"
		}
		line("Received: from " + m.HELO + " (" + m.ClientName + " [" + addr + "])")
		line("\tby " + MyHostname + " (Postfix) with " + with + " id " + m.ID + ";")
		line("\t" + date)
	default:
		line("Received: by " + MyHostname + " (Postfix, from userid " + strconv.Itoa(m.uid) + ")")
		line("\tid " + m.ID + "; " + date)
	}
	to := "undisclosed-recipients:;"
	if len(m.Recipients) > 0 {
		to = m.Recipients[len(m.Recipients)-1].Address
	}
	line("From: " + m.fromHdr)
	line("To: " + to)
	line("Subject: " + m.subject)
	line("Date: " + date)
	line(fmt.Sprintf("Message-ID: <%s.%d.%d@%s>", m.Arrival.UTC().Format("20060102150405"), m.Index, r.IntN(1000), LocalDomain))
	line("MIME-Version: 1.0")
	ctype, emit := body(r, m.bodySize, fmt.Sprintf("=_%d_%x", m.Index, r.Uint32()), line)
	line("Content-Type: " + ctype)
	line("")
	emit()
}
