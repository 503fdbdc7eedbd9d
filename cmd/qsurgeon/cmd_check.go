package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/termsafe"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// accountFlags are --user NAME=UID and --group NAME=GID, for queues copied
// from another machine and for containers without the qmail accounts.
type accountFlags struct {
	users, groups cli.StringSlice
	split         int
	sendLogs      cli.StringSlice
}

func (a *accountFlags) flags() []cli.Flag {
	cat := "qmail accounts and layout:"
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "user", Category: cat, Destination: &a.users, Usage: "NAME=UID of a qmail user (qmailq, qmails, qmailr, ...), instead of the system's; repeatable"},
		&cli.StringSliceFlag{Name: "group", Category: cat, Destination: &a.groups, Usage: "NAME=GID of a qmail group (qmail, nofiles), instead of the system's; repeatable"},
		&cli.IntFlag{Name: "split", Category: cat, Destination: &a.split, Usage: "conf-split of the queue (default: detected from the tree, else 23)"},
	}
}

// logFlag is --send-log (check and repair).
func (a *accountFlags) logFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "send-log", Destination: &a.sendLogs, Usage: "a qmail-send log file: its 'info msg' lines give the sender of a message whose info is lost (repeatable)"}
}

// logs returns --send-log, each file checked to be readable.
func (a *accountFlags) logs() ([]string, error) {
	for _, p := range a.sendLogs.Value() {
		f, err := os.Open(p)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("--send-log: %w", err), "")
		}
		f.Close()
	}
	return a.sendLogs.Value(), nil
}

func (a *accountFlags) ids() (surgery.IDs, error) {
	var ids surgery.IDs
	for kind, vals := range map[string][]string{"user": a.users.Value(), "group": a.groups.Value()} {
		for _, v := range vals {
			name, id, err := surgery.ParseAssignment(v)
			if err != nil {
				return ids, usageErr("--%s: %v", kind, err)
			}
			ids.Set(kind, name, id)
		}
	}
	r, err := surgery.ResolveIDs(ids)
	if err != nil {
		return ids, fail(exitUsage, err, "give the numbers with --user qmailq=UID --user qmails=UID --user qmailr=UID --group qmail=GID")
	}
	return r, nil
}

// qmailQueue is what check and repair of a qmail queue start from: the
// queue root, the accounts' numbers and the --send-log files.
func (a *accountFlags) qmailQueue(o globalOpts) (root string, ids surgery.IDs, logs []string, err error) {
	if root, err = qmailRoot(o); err != nil {
		return "", ids, nil, err
	}
	if ids, err = a.ids(); err != nil {
		return "", ids, nil, err
	}
	if logs, err = a.logs(); err != nil {
		return "", ids, nil, err
	}
	return root, ids, logs, nil
}

func qmailRoot(o globalOpts) (string, error) {
	if o.Queue == "" && o.MTA != string(queue.Qmail) {
		o.MTA = string(queue.Qmail)
	}
	dir := queueDir(o)
	if o.MTA == string(queue.Qmail) {
		if _, err := os.Stat(dir); err == nil {
			if err := checkLayout(dir, o.MTA); err != nil {
				return "", err
			}
		}
	}
	if !qmailq.IsQmailQueue(dir) {
		return "", fail(exitNoQueue, fmt.Errorf("%s is not a qmail queue", dir), "point --queue at the qmail queue directory (it has mess/, info/, todo/, lock/)")
	}
	return dir, nil
}

func checkCommand(e *env) *cli.Command {
	var af accountFlags
	return &cli.Command{
		Name:      "check",
		Usage:     "check a queue's structure, owners, modes and every message's parts (read-only; qmail and Postfix)",
		ArgsUsage: " ",
		Description: `qmail: the split of every split directory, flat or big-todo todo/intd, every directory's and
file's owner, group and mode against qmail's own hierarchy (hier.c), lock/trigger (a FIFO),
lock/sendmutex and lock/tcpto, names equal to inodes, and every message's parts forming a legal
state — orphans, zero-length mess files, stale pid/ files, stale bounce/ files, files in the
wrong subdirectory. Postfix: names that no longer match their inodes (what 'postsuper -s' would
rename), files in the wrong hash directory, stale temporary files, orphan defer/bounce/trace
logs, corrupt queue files. One line per problem with the fix; --format json prints
one object per problem (kind, id, path, detail, fix, severity). qmail problems carry a severity:
at-risk (mail is lost, never delivered or delivered twice unless repaired), fault (the queue is
not as qmail makes it, no mail at risk) or note (qmail tolerates it or cleans it up itself).
Exit code 0: clean (notes at most), 6: problems found, none at risk, 7: mail at risk.

EXAMPLES:
   qsurgeon --queue /var/qmail/queue check
   qsurgeon --queue ./queue --format json check --user qmailq=992 --user qmails=990 --user qmailr=991 --group qmail=995`,
		Flags: append(af.flags(), af.logFlag()),
		Action: func(c *cli.Context) error {
			o := e.opts(c)
			// surgery.DetectMTA decides, as for every other command; a
			// forced --mta postfix on another layout is refused.
			dir := queueDir(o)
			mta, err := surgery.DetectMTA(dir, o.MTA)
			if err != nil && o.MTA == string(queue.Postfix) {
				return err
			}
			if mta == queue.Postfix {
				return e.checkPostfix(o, dir)
			}
			root, ids, logs, err := af.qmailQueue(o)
			if err != nil {
				return err
			}
			rep, err := surgery.CheckQmail(root, ids, surgery.CheckOptions{Split: af.split, SendLogs: logs})
			if err != nil {
				return err
			}
			if o.Format == "json" {
				enc := json.NewEncoder(safeJSON{e.stdout})
				enc.SetEscapeHTML(false)
				for _, p := range rep.Problems {
					if err := enc.Encode(p); err != nil {
						return err
					}
				}
			} else {
				todo := "flat todo/intd"
				if rep.BigTodo {
					todo = "big-todo (split todo/intd)"
				}
				fmt.Fprintf(e.stdout, "qmail queue %s: conf-split %d, %s, %d messages, %d problem(s)\n", root, rep.Split, todo, rep.Messages, len(rep.Problems))
				for _, p := range rep.Problems {
					fmt.Fprintln(e.stdout, printable(p.String()))
				}
			}
			return checkExit(rep.Problems)
		},
	}
}

// checkPostfix reports what 'postsuper -s' would rename (names that no
// longer match their inodes), files in the wrong hash directory, stale
// temporary files, orphan logs and corrupt queue files.
func (e *env) checkPostfix(o globalOpts, root string) error {
	var opts surgery.PostfixCheckOptions
	if o.ConfigDir != "" {
		cfg, err := postfixq.LoadConfig(o.ConfigDir)
		if err != nil {
			return err
		}
		opts.Config = &cfg
	}
	var assumed surgery.PostfixAssumed
	opts.Assumed = &assumed
	probs, err := surgery.CheckPostfix(root, opts)
	if err != nil {
		return fail(exitNoQueue, err, "")
	}
	layout := postfixLayout(assumed)
	if o.Format == "json" {
		enc := json.NewEncoder(safeJSON{e.stdout})
		enc.SetEscapeHTML(false)
		for _, p := range probs {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stderr, "qsurgeon: checked against %s\n", layout)
	} else {
		fmt.Fprintf(e.stdout, "Postfix queue %s: checked against %s\n", root, layout)
		fmt.Fprintf(e.stdout, "Postfix queue %s: %d problem(s)\n", root, len(probs))
		for _, p := range probs {
			fmt.Fprintln(e.stdout, printable(p.String()))
		}
	}
	if len(probs) > 0 {
		return silentExit(exitProblems)
	}
	return nil
}

// postfixLayout says what a Postfix check assumed: enable_long_queue_ids
// and the hashing, and where they came from.
func postfixLayout(a surgery.PostfixAssumed) string {
	long := "no"
	if a.LongIDs {
		long = "yes"
	}
	byDepth := map[int][]string{}
	var depths []int
	for _, d := range []string{queue.Incoming, queue.Active, queue.Deferred, queue.Hold, "defer", "bounce", "trace"} {
		n := a.HashDepth[d]
		if n == 0 {
			continue
		}
		if len(byDepth[n]) == 0 {
			depths = append(depths, n)
		}
		byDepth[n] = append(byDepth[n], d)
	}
	hash := "no directory hashed"
	if len(depths) > 0 {
		var parts []string
		for _, n := range depths {
			parts = append(parts, fmt.Sprintf("%s hashed %d deep", strings.Join(byDepth[n], ", "), n))
		}
		hash = strings.Join(parts, "; ")
	}
	from := "from --config-dir"
	if !a.FromConfig {
		from = "inferred from the tree (give --config-dir to check against main.cf)"
	}
	return fmt.Sprintf("enable_long_queue_ids = %s, %s: %s", long, hash, from)
}

func repairCommand(e *env) *cli.Command {
	var af accountFlags
	var sf safetyFlags
	var lostFound string
	return &cli.Command{
		Name:      "repair",
		Usage:     "fix what check found, as a plan shown first; nothing that could be mail is deleted",
		ArgsUsage: " ",
		Description: `Builds a plan from what 'check' finds, prints it, asks, and executes it once. Recoverable
messages are put back into a legal state (renamed to their inode with their side files, moved
to the right subdirectory, re-preprocessed into todo/intd when only the envelope is missing);
unrecoverable fragments go to a lost+found directory outside the queue (--lost-found, default
QUEUE.lost+found next to it) with a note of where each came from. Fragments younger than 36
hours are left alone, as qmail itself does, unless --detached says nothing can be writing them. A lost
or unreadable info is recreated only with a sender there is evidence for (the todo/intd envelope,
qmail-send's log given with --send-log, a bounce's own Received line, Return-Path, the SMTP-AUTH
user, From:), never a guessed null sender; without evidence the message goes to lost+found. A
local/remote file cut inside an address keeps its complete records (the cut one completed from
the To:/Cc: header when that is unambiguous) and the original goes to lost+found. Owners, modes, missing
directories and the lock/trigger FIFO are fixed as in qmail's hier.c. qmail-send must be
stopped; repair holds lock/sendmutex while it works.

EXAMPLES:
   qsurgeon --queue /var/qmail/queue repair --dry-run
   qsurgeon --queue /var/qmail/queue repair --yes`,
		Flags: append(append(af.flags(), sf.flags()...), af.logFlag(),
			&cli.StringFlag{Name: "lost-found", Destination: &lostFound, Usage: "where unrecoverable fragments go (outside the queue, same filesystem)"},
		),
		Action: func(c *cli.Context) error {
			o := e.opts(c)
			root, ids, logs, err := af.qmailQueue(o)
			if err != nil {
				return err
			}
			// qmail's own rule leaves an orphan alone until it is 36
			// hours old, because a live qmail-queue may own it
			// (qmail-send.c OSSIFIED). On a detached queue nothing can.
			opts := surgery.CheckOptions{Split: af.split, LostFound: lostFound, Detached: sf.detached, SendLogs: logs}
			plan, err := surgery.PlanRepair(root, ids, opts)
			if err != nil {
				return err
			}
			return e.runPlan(c, plan, &sf, "repair")
		},
	}
}

// runPlan prints a rebuild plan, asks, and executes it once through a
// mutator rooted at the plan's base (or the dry-run recorder).
func (e *env) runPlan(c *cli.Context, plan *surgery.Plan, sf *safetyFlags, what string) error {
	if len(plan.Steps) == 0 {
		fmt.Fprint(e.stdout, termsafe.Text(plan.String()))
		return nil
	}
	_, err := e.perform(c, sf, operation{
		name:     what,
		question: fmt.Sprintf("%s: carry out these %d steps?", what, len(plan.Steps)),
		preview:  func() { fmt.Fprint(e.stdout, termsafe.Text(plan.String())) },
		run:      func(ro surgery.RunOptions) (surgery.Report, error) { return surgery.ExecutePlan(plan, ro) },
	})
	var se silentExit
	var ee *exitErr
	switch {
	case err == nil:
	case errors.As(err, &se), errors.As(err, &ee):
		return err // the confirmation's answer, or an error with its code
	default:
		if code, hint := exitCode(err); code != exitError {
			return fail(code, err, hint)
		}
		return fail(exitError, err, "the steps before the failing one were done; run 'qsurgeon check' and then this command again")
	}
	if sf.dryRun {
		fmt.Fprintf(e.stdout, "dry run: nothing changed (%d steps planned)\n", len(plan.Steps))
	} else {
		fmt.Fprintf(e.stderr, "%s: %d steps done\n", what, len(plan.Steps))
	}
	return nil
}

func rebuildCommand(e *env) *cli.Command {
	var af accountFlags
	var sf safetyFlags
	var ff filterFlags
	var newDir, carryFrom string
	var bigTodo, flatTodo, swap bool
	return &cli.Command{
		Name:      "rebuild",
		Usage:     "build a complete, empty, correct qmail queue; optionally carry selected messages into it and swap it in",
		ArgsUsage: " ",
		Description: `Builds every directory, owner, group, mode, FIFO and lock file of qmail's hier.c in a new
directory (--new). With --carry-from OLD and filter flags, the selected messages of the old queue
are copied in the way qmail-queue makes a message (new inode, new name, re-split; envelope, done
marks, birth and next-retry times kept). --swap then renames the old queue aside (it is never
deleted) and the new one into its place. qmail-send must be stopped.

EXAMPLES:
   qsurgeon rebuild --new /var/qmail/queue.new --split 23
   qsurgeon rebuild --new /var/qmail/queue.new --carry-from /var/qmail/queue --not-sasl-user hello@example.com --swap`,
		Flags: append(append(append(af.flags(), sf.flags()...), ff.flags()...),
			&cli.StringFlag{Name: "new", Destination: &newDir, Usage: "the directory to build the new queue in (must not exist)"},
			&cli.StringFlag{Name: "carry-from", Destination: &carryFrom, Usage: "the old queue to copy the selected messages from"},
			&cli.BoolFlag{Name: "big-todo", Destination: &bigTodo, Usage: "split todo/ and intd/ (for qmail built with the big-todo patch)"},
			&cli.BoolFlag{Name: "flat-todo", Destination: &flatTodo, Usage: "flat todo/ and intd/ (stock qmail, netqmail, notqmail; the default)"},
			&cli.BoolFlag{Name: "swap", Destination: &swap, Usage: "after building, rename the old queue aside and the new one into its place"},
		),
		Action: func(c *cli.Context) error {
			if newDir == "" {
				return usageErr("rebuild needs --new DIR")
			}
			if bigTodo && flatTodo {
				return usageErr("--big-todo and --flat-todo exclude each other")
			}
			if swap && carryFrom == "" {
				return usageErr("--swap needs --carry-from OLD (the queue to swap out)")
			}
			ids, err := af.ids()
			if err != nil {
				return err
			}
			split := af.split
			big := bigTodo
			var sel []uint64
			if carryFrom != "" {
				l, err := qmailq.DetectLayout(carryFrom)
				if err != nil {
					return fail(exitNoQueue, err, "")
				}
				if split == 0 {
					split = l.Split
				}
				if !bigTodo && !flatTodo {
					big = l.BigTodo
				}
				if all, err := ff.selectsAll(e.stdin); err != nil {
					return err
				} else if all && !sf.all {
					return usageErr("rebuild --carry-from with no selection would carry every message; add filter flags or --all")
				}
				src, err := qmailq.OpenLayout(l)
				if err != nil {
					return err
				}
				defer src.Close()
				o := e.opts(c)
				o.Format = "table"
				selRes, err := e.selectMessages(c, o, &ff, src, surgery.KeepIDs)
				if err != nil {
					return err
				}
				for _, r := range selRes.Results {
					id, err := strconv.ParseUint(r.Msg.ID, 10, 64)
					if err == nil {
						sel = append(sel, id)
					}
				}
				fmt.Fprintf(e.stderr, "carrying %d message(s) of %s\n", len(sel), carryFrom)
			}
			if split == 0 {
				split = 23
			}
			plan, err := surgery.PlanRebuild(newDir, surgery.RebuildOptions{Split: split, BigTodo: big, IDs: ids, CarryFrom: carryFrom, Carry: sel})
			if err != nil {
				return err
			}
			if err := e.runPlan(c, plan, &sf, "rebuild"); err != nil {
				return err
			}
			if swap && !sf.dryRun {
				sp, err := surgery.PlanSwap(filepath.Clean(carryFrom), filepath.Clean(newDir), time.Time{})
				if err != nil {
					return err
				}
				sf.yes = true // the rebuild's confirmation covered the swap
				return e.runPlan(c, sp, &sf, "swap")
			}
			return nil
		},
	}
}

// checkExit is check's exit code for a qmail queue: 7 when a problem puts
// mail at risk, 6 for other problems, 0 when only notes (states qmail
// tolerates) or nothing were found.
func checkExit(probs []surgery.Problem) error {
	if surgery.AtRisk(probs) {
		return silentExit(exitAtRisk)
	}
	for _, p := range probs {
		if p.Severity != surgery.SeverityNote {
			return silentExit(exitProblems)
		}
	}
	return nil
}
