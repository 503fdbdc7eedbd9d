// Command qsurgeon-gen writes large, realistic Postfix or qmail queues in the
// real on-disk formats, for benchmarks (see bench/run.sh and
// docs/benchmarks.md). The same -seed and -now give the same messages; only
// the inode-derived queue IDs differ between runs, as they do on a real MTA.
//
//	qsurgeon-gen -mta postfix -n 1000000 -root /tmp/pf -now 2026-11-22T16:00:00Z
//	qsurgeon-gen -mta qmail -n 450000 -root /tmp/qm/queue
//
// It prints the counts (JSON) on standard output; -manifest writes one JSON
// line per message (what a reader must find again).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/gen"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		mta         = flag.String("mta", "postfix", "queue format: postfix or qmail")
		root        = flag.String("root", "", "queue directory to create (must not exist or be empty); for qmail the queue/ directory itself")
		n           = flag.Int("n", 10000, "number of messages")
		seed        = flag.Uint64("seed", 1, "random seed")
		now         = flag.String("now", "2026-11-22T16:00:00Z", "the queue's 'now' (RFC 3339 or Unix seconds): arrivals lie before it, retries after it")
		workers     = flag.Int("workers", 0, "parallel writers (0: one per CPU)")
		ids         = flag.String("ids", "short", "Postfix queue IDs: short, long or mixed")
		compromised = flag.String("compromised", gen.DefaultCompromised, "the SASL/AUTH user of the spam run (~10% of the messages)")
		newsletter  = flag.String("newsletter", gen.DefaultNewsletter, "a sender with ~5% of the messages")
		split       = flag.Int("split", 23, "qmail conf-split")
		manifest    = flag.String("manifest", "", "write one JSON line per message to this file")
		progress    = flag.Bool("progress", false, "report progress on standard error")
		uid         = flag.Int("uid", -1, "Postfix: owner of queue files (-1: the postfix user, else the current user)")
		gid         = flag.Int("gid", -1, "Postfix: group of queue files (-1: the postfix user's group)")
		qmailq      = flag.Int("qmailq-uid", -1, "qmail: uid of qmailq (-1: the system's qmailq, else the current user)")
		qmails      = flag.Int("qmails-uid", -1, "qmail: uid of qmails (-1: the system's qmails, else the current user)")
		qmailGID    = flag.Int("qmail-gid", -1, "qmail: gid of the qmail group (-1: the system's, else the current group)")
		smtpdUID    = flag.Int("smtpd-uid", 0, "qmail: the uid qmail-smtpd runs as when not qmaild (the vpopmail set-up: 89); qmail-queue then writes \"invoked by uid N\" for mail from the network (0: qmaild, \"invoked from network\")")
		nofilesGID  = flag.Int("nofiles-gid", -1, "qmail: gid of nofiles, the group of mess files from the network (-1: the system's, else the qmail gid)")
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: qsurgeon-gen -mta postfix|qmail -root DIR [-n N] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *root == "" || flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	base, err := parseTime(*now)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: -now: %v\n", err)
		return 2
	}
	cfg := gen.Config{Root: *root, Count: *n, Seed: *seed, Now: base, Workers: *workers,
		Compromised: *compromised, Newsletter: *newsletter}
	var mw *bufio.Writer
	if *manifest != "" {
		f, err := os.Create(*manifest)
		if err != nil {
			fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: %v\n", err)
			return 1
		}
		defer f.Close()
		mw = bufio.NewWriterSize(f, 1<<20)
		defer mw.Flush()
		enc := json.NewEncoder(mw)
		cfg.OnMessage = func(m *gen.Message) { _ = enc.Encode(m) }
	}
	if *progress {
		start := time.Now()
		cfg.Progress = func(done, total int64) {
			el := time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "\rqsurgeon-gen: %d/%d messages, %.0f/s   ", done, total, float64(done)/el)
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var st gen.Stats
	switch *mta {
	case "postfix":
		mode, err := gen.ParseIDMode(*ids)
		if err != nil {
			fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: %v\n", err)
			return 2
		}
		st, err = gen.Postfix(ctx, gen.PostfixConfig{Config: cfg, IDs: mode, UID: *uid, GID: *gid, PostdropGID: -1})
		if err != nil {
			fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: %v\n", err)
			return 1
		}
	case "qmail":
		st, err = gen.Qmail(ctx, gen.QmailConfig{Config: cfg, Split: *split, QmailqUID: *qmailq,
			QmailsUID: *qmails, QmailGID: *qmailGID, NofilesGID: *nofilesGID, SMTPDUID: *smtpdUID})
		if err != nil {
			fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintf(os.Stderr, "qsurgeon-gen: error: -mta must be postfix or qmail\n")
		return 2
	}
	out, _ := json.MarshalIndent(st, "", "  ")
	fmt.Println(string(out))
	return 0
}

func parseTime(s string) (time.Time, error) {
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}
