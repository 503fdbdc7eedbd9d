// Package gen writes large, realistic mail queues in the real on-disk formats
// of Postfix and qmail, for benchmarks and scale tests.
//
// The output is deterministic: message i is drawn from a random stream seeded
// by (Seed, i) alone, so the same Config gives the same messages whatever the
// number of workers. Only the queue IDs differ between runs, because both MTAs
// name a message after the inode of its file (Postfix: mail_queue.c:
// mail_queue_enter; qmail: qmail-queue.c:main), and so does this package.
//
// Nothing here prints: Postfix and Qmail report each message they wrote to a
// callback and return counts.
package gen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/qsurgeon/qsurgeon/internal/sysuser"
)

// Kinds of generated messages.
const (
	KindSpam       = "spam"       // the compromised SASL account, forged senders, bot IPs
	KindNewsletter = "newsletter" // one authenticated sender with many messages
	KindLegit      = "legit-sasl" // ordinary authenticated users
	KindLocal      = "local"      // local submission (sendmail/pickup, qmail-inject)
	KindNDR        = "ndr"        // null-sender bounces
	KindInbound    = "inbound"    // unauthenticated mail from the MX port
)

// Defaults shared by both MTAs.
const (
	DefaultCompromised = "hello@example.com"
	DefaultNewsletter  = "newsletter@example.com"
	LocalDomain        = "example.com"
	MyHostname         = "mail.example.com"
)

// Recipient is one envelope recipient as written.
type Recipient struct {
	Address string
	Done    bool
	// Channel is "local" or "remote" for preprocessed qmail messages.
	Channel string
}

// Message is what the generator wrote for one message: the truth a reader
// must find again.
type Message struct {
	Index int
	Kind  string
	// Queue is the Postfix queue name, or "queue"/"todo" for qmail.
	Queue string
	ID    string
	// Path is the message file relative to the queue root (qmail: mess).
	Path       string
	Sender     string // "" for the null sender
	Recipients []Recipient
	SASLUser   string
	ClientAddr string
	ClientName string
	HELO       string
	Arrival    time.Time
	FileSize   int64
	// Bouncing: a bounce log (Postfix bounce/ID, qmail bounce/N) was written.
	Bouncing bool
	// DeferLog: a Postfix defer log was written.
	DeferLog bool
	// Files are every file of the message relative to the queue root:
	// Postfix queue file and logs; qmail mess, info, local, remote, todo,
	// intd, bounce.
	Files []string
}

// Config is what both generators share.
type Config struct {
	// Root is the queue directory to create. It must not exist or be empty.
	Root string
	// Count is the number of messages.
	Count int
	// Seed selects the random stream; the same seed gives the same queue.
	Seed uint64
	// Now is the generated queue's "now": arrivals lie before it, retry
	// times after it.
	Now time.Time
	// Workers is the number of parallel writers (default: the CPUs).
	Workers int
	// Compromised is the SASL/AUTH user of the spam run (~10% of the mail).
	Compromised string
	// Newsletter is a sender with ~5% of the mail.
	Newsletter string
	// OnMessage, when set, is called once per message written, never
	// concurrently.
	OnMessage func(*Message)
	// Progress, when set, is called now and then with messages done and the
	// total, from any goroutine.
	Progress func(done, total int64)
}

// Stats counts what a generator wrote.
type Stats struct {
	Messages int            `json:"messages"`
	Files    int            `json:"files"`
	Bytes    int64          `json:"bytes"`
	ByQueue  map[string]int `json:"by_queue"`
	ByKind   map[string]int `json:"by_kind"`
	// Compromised is the number of messages of Config.Compromised.
	Compromised     int    `json:"compromised_messages"`
	CompromisedUser string `json:"compromised_user"`
	Newsletter      int    `json:"newsletter_messages"`
	NewsletterAddr  string `json:"newsletter_sender"`
	NullSender      int    `json:"null_sender_messages"`
	DoneRecipients  int    `json:"done_recipients"`
	Recipients      int    `json:"recipients"`
	Elapsed         string `json:"elapsed"`
}

func (c *Config) setDefaults() error {
	if c.Root == "" {
		return errors.New("gen: no root directory")
	}
	if c.Count < 0 {
		return errors.New("gen: negative count")
	}
	if c.Now.IsZero() {
		return errors.New("gen: no base time (Config.Now)")
	}
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.Compromised == "" {
		c.Compromised = DefaultCompromised
	}
	if c.Newsletter == "" {
		c.Newsletter = DefaultNewsletter
	}
	if ents, err := os.ReadDir(c.Root); err == nil && len(ents) > 0 {
		return fmt.Errorf("gen: %s exists and is not empty", c.Root)
	}
	return nil
}

// collector serialises OnMessage and accumulates Stats.
type collector struct {
	mu    sync.Mutex
	cfg   *Config
	st    Stats
	done  atomic.Int64
	files atomic.Int64
	bytes atomic.Int64
}

// writer is what both generators share: the collector of what was written
// and the owner/mode/time setting of each file and directory (owners only
// when running as root).
type writer struct {
	col   *collector
	chown bool
}

func newWriter(cfg *Config) writer {
	return writer{col: newCollector(cfg), chown: os.Geteuid() == 0}
}

// own sets the owner (as root) and mode of p.
func (w writer) own(p string, mode os.FileMode, uid, gid int) error {
	if w.chown {
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
	}
	return os.Chmod(p, mode)
}

// finish sets the owner (as root), mode and times of an open file.
func (w writer) finish(fd int, mode uint32, uid, gid int, mtime time.Time) error {
	if w.chown {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	tv := unix.NsecToTimeval(mtime.UnixNano())
	return unix.Futimes(fd, []unix.Timeval{tv, tv})
}

// userOr sets *v, when it is negative, to the uid of the account name, or
// to fallback when there is none.
func userOr(v *int, name string, fallback int) {
	if *v >= 0 {
		return
	}
	if uid, _, ok := sysuser.User(name); ok {
		*v = uid
		return
	}
	*v = fallback
}

// groupOr is userOr for a group.
func groupOr(v *int, name string, fallback int) {
	if *v >= 0 {
		return
	}
	if gid, ok := sysuser.Group(name); ok {
		*v = gid
		return
	}
	*v = fallback
}

func newCollector(cfg *Config) *collector {
	return &collector{cfg: cfg, st: Stats{ByQueue: map[string]int{}, ByKind: map[string]int{},
		CompromisedUser: cfg.Compromised, NewsletterAddr: cfg.Newsletter}}
}

func (c *collector) add(m *Message) {
	c.mu.Lock()
	c.st.Messages++
	c.st.ByQueue[m.Queue]++
	c.st.ByKind[m.Kind]++
	if m.SASLUser == c.cfg.Compromised {
		c.st.Compromised++
	}
	if m.Sender == c.cfg.Newsletter {
		c.st.Newsletter++
	}
	if m.Sender == "" {
		c.st.NullSender++
	}
	for _, r := range m.Recipients {
		c.st.Recipients++
		if r.Done {
			c.st.DoneRecipients++
		}
	}
	if c.cfg.OnMessage != nil {
		c.cfg.OnMessage(m)
	}
	c.mu.Unlock()
	n := c.done.Add(1)
	if c.cfg.Progress != nil && (n%4096 == 0 || n == int64(c.cfg.Count)) {
		c.cfg.Progress(n, int64(c.cfg.Count))
	}
}

func (c *collector) stats(start time.Time) Stats {
	st := c.st
	st.Files = int(c.files.Load())
	st.Bytes = c.bytes.Load()
	st.Elapsed = time.Since(start).Round(time.Millisecond).String()
	return st
}

// parallel runs fn(i) for i in [0, n) on w workers, each taking a strided
// share, and stops at the first error or cancellation.
func parallel(ctx context.Context, n, w int, fn func(worker, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for k := 0; k < w; k++ {
		g.Go(func() error {
			for i := k; i < n; i += w {
				if i%1024 == k && ctx.Err() != nil {
					return ctx.Err()
				}
				if err := fn(k, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// rng returns message i's own random stream.
func rng(seed uint64, i int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(i)*0x9E3779B97F4A7C15+1))
}

// ----- content helpers -----

var firstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki",
	"taro", "hana", "wei", "mia", "noah", "anna", "chen", "olga", "raj", "maria", "lukas", "sofia"}
var lastNames = []string{"smith", "meyer", "sato", "garcia", "novak", "silva", "chen", "miller", "kim",
	"rossi", "dubois", "yamamoto", "kowalski", "nguyen", "jensen", "lopez", "ivanova", "schmidt"}
var remoteDomains = []string{"freemail.example", "mobile.example", "corp.example", "mail.example.org",
	"oceanpost.example.net", "maplepost.example.org", "ironport.example.net", "green-web.example.org",
	"strict-isp.example", "webmail.example.com.test", "post.example.de", "inbox.example.jp",
	"mx.example.fr", "cablenet.test", "university.example.edu", "shop.example.biz"}
var words = []string{"the", "invoice", "meeting", "please", "review", "attached", "document", "confirm",
	"payment", "account", "update", "schedule", "project", "report", "quarter", "budget", "team",
	"thanks", "regards", "tomorrow", "monday", "offer", "limited", "discount", "pharmacy", "security",
	"verify", "password", "shipping", "order", "delivery", "customer", "service", "contract", "draft",
	"minutes", "agenda", "deadline", "release", "notes", "server", "backup", "ticket", "support"}
var spamSubjects = []string{"Payment confirmation %d", "Your account has been suspended #%d",
	"CANADA PHARMACY -%d%% today", "Invoice %d overdue", "Congratulations! You are winner %d",
	"=?utf-8?b?0JLQsNGIINC/0LDRgNC+0LvRjCDQuNGB0YLQtdC6?= %d", "Delivery failed for parcel %d"}
var legitSubjects = []string{"Re: meeting notes %d", "Quarterly report %d", "Project update %d",
	"Draft contract v%d", "Lunch on Friday? (%d)", "Fwd: ticket #%d", "=?iso-2022-jp?b?GyRCQEE1YT1xJE43byRLJEQkJCRGGyhC?= %d"}

func person(r *rand.Rand) string {
	return firstNames[r.IntN(len(firstNames))] + "." + lastNames[r.IntN(len(lastNames))] + strconv.Itoa(r.IntN(100))
}

func remoteAddr(r *rand.Rand) string {
	return person(r) + "@" + remoteDomains[r.IntN(len(remoteDomains))]
}

// legitUser returns the address and usual client IP of legit user k.
func legitUser(k int) (addr, ip string) {
	addr = firstNames[k%len(firstNames)] + "." + lastNames[(k/len(firstNames))%len(lastNames)] +
		strconv.Itoa(k) + "@" + LocalDomain
	ip = fmt.Sprintf("192.0.2.%d", 1+k%250)
	if k%3 == 1 {
		ip = fmt.Sprintf("198.51.100.%d", 1+k%250)
	}
	return addr, ip
}

// botIP returns one of the compromised account's many client addresses.
func botIP(r *rand.Rand) (ip string, v6 bool) {
	k := r.IntN(5000)
	if k%97 == 0 {
		return fmt.Sprintf("2001:db8:%x::%x", k/256, k%256+1), true
	}
	return fmt.Sprintf("%d.%d.%d.%d", 100+k%3, 64+(k/250)%64, (k*7)%250, 1+k%250), false
}

// bodySize draws a message body size: log-normal around 2.5 KB, with 1.5%
// of messages carrying a 100-200 KB attachment, and nothing under 1 KB.
func bodySize(r *rand.Rand) int {
	if r.Float64() < 0.015 {
		return 100<<10 + r.IntN(100<<10)
	}
	s := int(2500 * math.Exp(r.NormFloat64()*0.8))
	return min(max(s, 1024), 90<<10)
}

// textLines emits lines of words (no CR or LF, at most 76 bytes each) until
// about n bytes of text, calling line for each.
func textLines(r *rand.Rand, n int, line func(string)) {
	var b []byte
	for n > 0 {
		b = b[:0]
		for len(b) < 60 {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = append(b, words[r.IntN(len(words))]...)
		}
		if r.IntN(8) == 0 {
			line(string(b))
			line("")
			n -= len(b) + 1
			continue
		}
		line(string(b))
		n -= len(b) + 1
	}
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// base64Lines emits n bytes of random base64 text in 76-byte lines.
func base64Lines(r *rand.Rand, n int, line func(string)) {
	var b [76]byte
	for n > 0 {
		k := min(76, n)
		for j := 0; j < k; j++ {
			b[j] = b64[r.IntN(64)]
		}
		line(string(b[:k]))
		n -= k + 1
	}
}

// body emits the header-less part of a message of about size bytes:
// either plain text or a multipart message with an attachment.
func body(r *rand.Rand, size int, boundary string, line func(string)) (contentType string, emit func()) {
	if size < 20<<10 {
		return `text/plain; charset="us-ascii"`, func() { textLines(r, size, line) }
	}
	return `multipart/mixed; boundary="` + boundary + `"`, func() {
		line("This is a multi-part message in MIME format.")
		line("")
		line("--" + boundary)
		line(`Content-Type: text/plain; charset="us-ascii"`)
		line("")
		textLines(r, 600, line)
		line("--" + boundary)
		line(`Content-Type: application/zip; name="invoice.zip"`)
		line("Content-Transfer-Encoding: base64")
		line(`Content-Disposition: attachment; filename="invoice.zip"`)
		line("")
		base64Lines(r, size-900, line)
		line("--" + boundary + "--")
	}
}

// postfixDate formats t as Postfix's mail_date does (global/mail_date.c).
func postfixDate(t time.Time) string {
	return t.UTC().Format("Mon, _2 Jan 2006 15:04:05 +0000 (UTC)")
}

// createNamedByInode creates path exclusively (never through a symbolic
// link) and fstats it: both MTAs name a new message after the inode of the
// file they just created (Postfix mail_queue.c:mail_queue_enter, qmail
// qmail-queue.c:pidopen). The caller closes fd.
func createNamedByInode(path string, perm uint32) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return -1, st, fmt.Errorf("gen: %w", &os.PathError{Op: "create", Path: path, Err: err})
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, fmt.Errorf("gen: %w", &os.PathError{Op: "fstat", Path: path, Err: err})
	}
	return fd, st, nil
}
