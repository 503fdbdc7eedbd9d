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

	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/sysuser"
)

// QmailConfig configures Qmail.
type QmailConfig struct {
	Config
	// Split is conf-split (default 23).
	Split int
	// Numeric owners (qmail's hier.c): qmailq owns mess/todo/intd/pid,
	// qmails owns info/local/remote/bounce, everything is group qmail; mess
	// files from qmail-smtpd have the group nofiles (qmail-queue is setuid,
	// not setgid). Negative: the system's account, else the current user.
	QmailqUID, QmailsUID, QmailGID, NofilesGID int
	// SMTPDUID, when > 0, is the uid qmail-smtpd runs as instead of qmaild:
	// the vpopmail set-up, where qmail-smtpd runs as vpopmail (uid 89 by
	// convention) so that vchkpw can read the accounts. qmail-queue then
	// names the caller's uid for mail from the network: notqmail's
	// qmail-queue.c:receivedfmt writes "invoked from network" only when
	// getuid() == auto_uidd (qmaild) and "invoked by uid N" for any uid that
	// is not qmaild, alias or qmails, and main() writes the same uid in
	// the u record of intd/todo. The mess file's group is SMTPDGID (the
	// caller's group: qmail-queue is setuid qmailq, not setgid); <= 0
	// means the same number as SMTPDUID (vpopmail:vchkpw is 89:89).
	SMTPDUID, SMTPDGID int
}

type qmGen struct {
	cfg *QmailConfig
	writer
	qmailr int
	pid    int
}

// Qmail writes a qmail queue (the queue/ directory itself) at cfg.Root with
// cfg.Count messages, laid out as qmail 1.03/netqmail/notqmail do: split
// mess/info/local/remote, flat todo/intd/bounce. Each message is created the
// way qmail-queue.c:main does it (a pid/ file, its inode is the ID, linked
// into mess/, the pid name unlinked); most are then preprocessed as
// qmail-send.c:todo_do leaves them (info with the birth time as mtime,
// local/remote T/D records with the next retry as mtime); ~2% stay in the
// todo backlog (todo + intd hard links).
func Qmail(ctx context.Context, cfg QmailConfig) (Stats, error) {
	start := time.Now()
	if err := cfg.setDefaults(); err != nil {
		return Stats{}, err
	}
	if cfg.Split <= 0 {
		cfg.Split = 23
	}
	userOr(&cfg.QmailqUID, "qmailq", os.Getuid())
	userOr(&cfg.QmailsUID, "qmails", os.Getuid())
	groupOr(&cfg.QmailGID, "qmail", os.Getgid())
	groupOr(&cfg.NofilesGID, "nofiles", cfg.QmailGID)
	if cfg.SMTPDUID > 0 && cfg.SMTPDGID <= 0 {
		cfg.SMTPDGID = cfg.SMTPDUID
	}
	g := &qmGen{cfg: &cfg, writer: newWriter(&cfg.Config), pid: os.Getpid()}
	g.qmailr = cfg.QmailqUID
	if uid, _, ok := sysuser.User("qmailr"); ok {
		g.qmailr = uid
	}
	if err := g.mkdirs(); err != nil {
		return Stats{}, err
	}
	err := parallel(ctx, cfg.Count, cfg.Workers, func(_, i int) error { return g.one(i) })
	return g.col.stats(start), err
}

// mkdirs builds the hierarchy of hier.c (1.03: hier(); notqmail:
// hier_queue()).
func (g *qmGen) mkdirs() error {
	c := g.cfg
	q, s, gid := c.QmailqUID, c.QmailsUID, c.QmailGID
	dirs := []struct {
		name  string
		uid   int
		mode  os.FileMode
		split bool
	}{
		{"", q, 0o750, false}, {"pid", q, 0o700, false}, {"mess", q, 0o750, true},
		{"intd", q, 0o700, false}, {"todo", q, 0o750, false}, {"info", s, 0o700, true},
		{"local", s, 0o700, true}, {"remote", s, 0o700, true}, {"bounce", s, 0o700, false},
		{"lock", q, 0o750, false},
	}
	for _, d := range dirs {
		p := filepath.Join(c.Root, d.name)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := g.own(p, d.mode, d.uid, gid); err != nil {
			return err
		}
		if d.split {
			for k := 0; k < c.Split; k++ {
				sp := filepath.Join(p, strconv.Itoa(k))
				if err := os.Mkdir(sp, 0o700); err != nil {
					return err
				}
				if err := g.own(sp, d.mode, d.uid, gid); err != nil {
					return err
				}
			}
		}
	}
	lock := filepath.Join(c.Root, "lock")
	if err := os.WriteFile(filepath.Join(lock, "sendmutex"), nil, 0o600); err != nil {
		return err
	}
	if err := g.own(filepath.Join(lock, "sendmutex"), 0o600, s, gid); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(lock, "tcpto"), make([]byte, 1024), 0o644); err != nil {
		return err
	}
	if err := g.own(filepath.Join(lock, "tcpto"), 0o644, g.qmailr, gid); err != nil {
		return err
	}
	trig := filepath.Join(lock, "trigger")
	if err := unix.Mkfifo(trig, 0o622); err != nil {
		return fmt.Errorf("gen: mkfifo %s: %w", trig, err)
	}
	return g.own(trig, 0o622, s, gid)
}

type qmMsg struct {
	Message
	invoked  string // qmail-queue's "invoked ..." text
	injUID   int    // u record
	qp       int
	messGID  int
	authUser string
	proto    string
	remoteIP string
	subject  string
	fromHdr  string
	bodySize int
	todo     bool
}

func (g *qmGen) draw(r *rand.Rand, i int) *qmMsg {
	cfg := g.cfg
	m := &qmMsg{Message: Message{Index: i}, qp: 1000 + r.IntN(31000), bodySize: bodySize(r)}
	m.Kind = drawKind(r)
	back := drawAge(r, m.Kind)
	m.todo = r.Float64() < 0.02
	if m.todo {
		back = time.Duration(r.Int64N(int64(30 * time.Minute)))
	}
	m.Arrival = cfg.Now.Add(-back - time.Minute).Truncate(time.Second)
	m.invoked, m.injUID, m.messGID = "invoked from network", 995, cfg.NofilesGID
	if cfg.SMTPDUID > 0 {
		// Set for every kind; the kinds that do not come through
		// qmail-smtpd (local, bounces) set their own below.
		m.invoked, m.injUID, m.messGID = "invoked by uid "+strconv.Itoa(cfg.SMTPDUID), cfg.SMTPDUID, cfg.SMTPDGID
	}
	nrcpt := 1
	switch m.Kind {
	case KindSpam:
		m.authUser = cfg.Compromised
		m.Sender = person(r) + "@" + LocalDomain
		m.remoteIP, _ = botIP(r)
		for strings.Contains(m.remoteIP, ":") {
			m.remoteIP, _ = botIP(r)
		}
		m.HELO = []string{"hello", "[10.0.0.12]", "User", "localhost"}[r.IntN(4)]
		m.proto = "ESMTPA"
		nrcpt = 1 + r.IntN(6)
		m.subject = fmt.Sprintf(spamSubjects[r.IntN(len(spamSubjects))], r.IntN(100000))
		m.fromHdr = `"CANADA PHARMACY" <` + m.Sender + ">"
	case KindNewsletter:
		m.authUser = cfg.Newsletter
		m.Sender = cfg.Newsletter
		m.remoteIP, m.HELO, m.proto = "192.0.2.200", "web1.example.com", "ESMTPA"
		nrcpt = 1 + r.IntN(8)
		m.subject = fmt.Sprintf("Our newsletter, issue %d", 1+r.IntN(50))
		m.fromHdr = "Example Newsletter <" + m.Sender + ">"
	case KindLegit:
		m.Sender, m.remoteIP = legitUser(r.IntN(2000))
		m.authUser = m.Sender
		m.HELO, m.proto = "["+m.remoteIP+"]", "ESMTPA"
		nrcpt = 1 + r.IntN(3)
		m.subject = fmt.Sprintf(legitSubjects[r.IntN(len(legitSubjects))], r.IntN(1000))
		m.fromHdr = m.Sender
	case KindLocal:
		m.injUID = []int{0, 33, 1000}[r.IntN(3)]
		m.invoked = "invoked by uid " + strconv.Itoa(m.injUID)
		m.messGID = m.injUID
		m.Sender = []string{"root", "www-data", "noreply", "shop"}[r.IntN(4)] + "@" + LocalDomain
		nrcpt = 1 + r.IntN(2)
		m.subject = fmt.Sprintf("Order confirmation %d", r.IntN(100000))
		m.fromHdr = m.Sender
	case KindNDR:
		m.invoked, m.injUID, m.messGID = "invoked for bounce", cfg.QmailsUID, cfg.QmailGID
		if r.IntN(10) == 0 {
			m.Sender = "#@[]" // double bounce (qmail-send.c:injectbounce)
		}
		m.subject = "failure notice"
		m.fromHdr = "MAILER-DAEMON@mailserver." + LocalDomain
		m.bodySize = 1500 + r.IntN(3000)
	case KindInbound:
		m.Sender = remoteAddr(r)
		m.remoteIP = fmt.Sprintf("203.0.113.%d", 1+r.IntN(250))
		m.HELO, m.proto = "mx"+strconv.Itoa(r.IntN(9))+"."+remoteDomains[r.IntN(len(remoteDomains))], "SMTP"
		m.subject = fmt.Sprintf(legitSubjects[r.IntN(len(legitSubjects))], r.IntN(1000))
		m.fromHdr = m.Sender
	}
	m.SASLUser = m.authUser
	m.ClientAddr = m.remoteIP
	for j := 0; j < nrcpt; j++ {
		var rc Recipient
		switch {
		case m.Kind == KindInbound:
			rc.Address = person(r) + "@" + LocalDomain
		case m.Kind == KindLegit && j > 0 && r.IntN(3) == 0:
			rc.Address, _ = legitUser(r.IntN(2000))
		default:
			rc.Address = remoteAddr(r)
		}
		if !m.todo {
			rc.Channel = "remote"
			if strings.HasSuffix(rc.Address, "@"+LocalDomain) {
				rc.Channel = "local"
			}
			rc.Done = j < nrcpt-1 && r.IntN(5) == 0
		}
		m.Recipients = append(m.Recipients, rc)
	}
	m.Queue = "queue"
	if m.todo {
		m.Queue = "todo"
	}
	return m
}

func (g *qmGen) path(dir string, id uint64) string {
	return dir + "/" + strconv.FormatUint(id%uint64(g.cfg.Split), 10) + "/" + strconv.FormatUint(id, 10)
}

func (g *qmGen) one(i int) error {
	r := rng(g.cfg.Seed, i)
	m := g.draw(r, i)
	root := g.cfg.Root
	// qmail-queue.c:pidopen + main: pid/<pid>.<time>.<seq>, fstat, link
	// into mess/<id%split>/<id>, unlink the pid name, then write.
	pidPath := filepath.Join(root, "pid", fmt.Sprintf("%d.%d.%d", g.pid, m.Arrival.Unix(), i))
	fd, st, err := createNamedByInode(pidPath, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	id := st.Ino
	m.ID = strconv.FormatUint(id, 10)
	m.Path = g.path("mess", id)
	if err := unix.Link(pidPath, filepath.Join(root, m.Path)); err != nil {
		return fmt.Errorf("gen: link %s: %w", m.Path, err)
	}
	if err := unix.Unlink(pidPath); err != nil {
		return err
	}
	mess := g.mess(r, m)
	if err := writeAll(fd, mess); err != nil {
		return err
	}
	m.FileSize = int64(len(mess))
	if err := g.finish(fd, 0o644, g.cfg.QmailqUID, m.messGID, m.Arrival); err != nil {
		return err
	}
	unix.Close(fd)
	fd = -1
	files, bytes := int64(1), m.FileSize
	m.Files = append(m.Files, m.Path)
	add := func(rel string, data []byte, uid, gid int, mode uint32, mtime time.Time) error {
		m.Files = append(m.Files, rel)
		p := filepath.Join(root, rel)
		f, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, mode)
		if err != nil {
			return fmt.Errorf("gen: %w", &os.PathError{Op: "create", Path: p, Err: err})
		}
		err = writeAll(f, data)
		if err == nil {
			err = g.finish(f, mode, uid, gid, mtime)
		}
		unix.Close(f)
		files++
		bytes += int64(len(data))
		return err
	}
	sender := "F" + m.Sender + "\x00"
	if m.todo {
		// qmail-queue.c:main: intd/<id> holds u, p, F, T records (no final
		// empty record), then is linked to todo/<id>.
		env := fmt.Appendf(nil, "u%d\x00p%d\x00%s", m.injUID, m.qp, sender)
		for _, rc := range m.Recipients {
			env = append(env, 'T')
			env = append(env, rc.Address...)
			env = append(env, 0)
		}
		intd := "intd/" + m.ID
		if err := add(intd, env, g.cfg.QmailqUID, m.messGID, 0o644, m.Arrival); err != nil {
			return err
		}
		if err := unix.Link(filepath.Join(root, intd), filepath.Join(root, "todo", m.ID)); err != nil {
			return fmt.Errorf("gen: link todo/%s: %w", m.ID, err)
		}
		m.Files = append(m.Files, "todo/"+m.ID)
	} else {
		// qmail-send.c:todo_do: info holds F only, mtime = birth; a channel
		// file per channel with T/D records, mtime = next retry
		// (nextretry(): birth + (isqrt(age) + chanskip)^2).
		s := g.cfg.QmailsUID
		gid := g.cfg.QmailGID
		if err := add(g.path("info", id), []byte(sender), s, gid, 0o600, m.Arrival); err != nil {
			return err
		}
		for _, ch := range []string{"local", "remote"} {
			var recs []byte
			pending := false
			for _, rc := range m.Recipients {
				if rc.Channel != ch {
					continue
				}
				t := byte('T')
				if rc.Done {
					t = 'D'
				} else {
					pending = true
				}
				recs = append(recs, t)
				recs = append(recs, rc.Address...)
				recs = append(recs, 0)
			}
			if !pending {
				// qmail-send unlinks a channel file once all are done
				// (job_close); its D recipients stay visible nowhere.
				continue
			}
			skip := int64(20)
			if ch == "local" {
				skip = 10
			}
			if err := add(g.path(ch, id), recs, s, gid, 0o600, g.nextRetry(m.Arrival, skip)); err != nil {
				return err
			}
		}
		// addbounce(): bounce/<id> accumulates permanent failures while
		// other recipients are pending.
		if m.Sender != "" && m.Sender != "#@[]" && hasDoneRemote(m.Recipients) && r.IntN(2) == 0 {
			var b []byte
			for _, rc := range m.Recipients {
				if rc.Done && rc.Channel == "remote" {
					b = fmt.Appendf(b, "<%s>:\n127.0.0.1 does not like recipient.\nRemote host said: 550 5.1.1 <%s>: Recipient address rejected: User unknown\nGiving up on 127.0.0.1.\n\n", rc.Address, rc.Address)
				}
			}
			if err := add("bounce/"+m.ID, b, s, gid, 0o600, m.Arrival.Add(time.Minute)); err != nil {
				return err
			}
			m.Bouncing = true
		}
		// Done recipients whose channel file is gone are no longer in the
		// queue: report only what a reader can find.
		var kept []Recipient
		for _, rc := range m.Recipients {
			if rc.Done && !channelPending(m.Recipients, rc.Channel) {
				continue
			}
			kept = append(kept, rc)
		}
		// A bounced recipient stays visible in bounce/<id> even when its
		// channel file is gone.
		if m.Bouncing {
			for _, rc := range m.Recipients {
				if rc.Done && rc.Channel == "remote" && !channelPending(m.Recipients, "remote") {
					kept = append(kept, Recipient{Address: rc.Address, Done: true})
				}
			}
		}
		m.Recipients = kept
	}
	g.col.files.Add(files)
	g.col.bytes.Add(bytes)
	g.col.add(&m.Message)
	return nil
}

func hasDoneRemote(rs []Recipient) bool {
	for _, r := range rs {
		if r.Done && r.Channel == "remote" {
			return true
		}
	}
	return false
}

func channelPending(rs []Recipient, ch string) bool {
	for _, r := range rs {
		if r.Channel == ch && !r.Done {
			return true
		}
	}
	return false
}

func isqrt(x int64) int64 {
	if x <= 0 {
		return 0
	}
	y := int64(1)
	for (y+1)*(y+1) <= x {
		y++
		if y > 1<<20 {
			break
		}
	}
	return y
}

// nextRetry returns the first retry time after Now (qmail-send.c:nextretry).
func (g *qmGen) nextRetry(birth time.Time, skip int64) time.Time {
	age := int64(g.cfg.Now.Sub(birth) / time.Second)
	n := isqrt(age) + skip
	t := birth.Add(time.Duration(n*n) * time.Second)
	if !t.After(g.cfg.Now) {
		n++
		t = birth.Add(time.Duration(n*n) * time.Second)
	}
	return t
}

// qmailDate formats t as qmail's date822fmt does ("22 Nov 2026 16:13:13 -0000").
func qmailDate(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04:05 -0000") }

// mess renders the message file: qmail-queue's Received line
// (received.c via qmail-queue.c:receivedfmt), qmail-smtpd's Received header
// (with the SMTP AUTH patches' "(user@ip) ... with ESMTPA" for
// authenticated mail), the headers and the body.
func (g *qmGen) mess(r *rand.Rand, m *qmMsg) []byte {
	b := make([]byte, 0, m.bodySize+1024)
	line := func(s string) { b = append(b, s...); b = append(b, '\n') }
	date := qmailDate(m.Arrival)
	line(fmt.Sprintf("Received: (qmail %d %s); %s", m.qp, m.invoked, date))
	if m.remoteIP != "" {
		info := m.remoteIP
		if m.authUser != "" {
			info = m.authUser + "@" + m.remoteIP
		}
		line("Received: from unknown (HELO " + m.HELO + ") (" + info + ")")
		line("  by mailserver." + LocalDomain + " with " + m.proto + "; " + date)
	}
	to := "undisclosed-recipients:;"
	if len(m.Recipients) > 0 {
		to = m.Recipients[len(m.Recipients)-1].Address
	}
	line("Date: " + m.Arrival.UTC().Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	line("From: " + m.fromHdr)
	line("To: " + to)
	line("Subject: " + m.subject)
	line(fmt.Sprintf("Message-ID: <%s.%d.%x@%s>", m.Arrival.UTC().Format("20060102150405"), m.Index, r.Uint32(), LocalDomain))
	line("MIME-Version: 1.0")
	ctype, emit := body(r, m.bodySize, fmt.Sprintf("=_%d_%x", m.Index, r.Uint32()), line)
	line("Content-Type: " + ctype)
	line("")
	emit()
	return b
}
