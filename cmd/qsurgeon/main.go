// Command qsurgeon is mail-queue surgery for Postfix and qmail: it reads the
// queue files directly, selects messages in parallel, and deletes, holds,
// releases, requeues, quarantines or exports exactly those.
//
// This package is the only one that imports urfave/cli or progressbar,
// reads the terminal or calls os.Exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/qsurgeon/qsurgeon/qmailq"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// Exit codes. They never move: scripts depend on them.
const (
	exitOK       = 0 // success (check: queue is clean)
	exitError    = 1 // an error stopped the command
	exitUsage    = 2 // bad flags or arguments; or a confirmation that could not be asked
	exitPartial  = 3 // the command ran, but some messages failed (see the report)
	exitNoQueue  = 4 // the queue directory does not exist or is not a queue
	exitLocked   = 5 // the MTA is running / holds the queue lock
	exitProblems = 6 // check: problems were found
	exitAtRisk   = 7 // check: problems were found, and some put mail at risk
)

const exitCodeHelp = `EXIT CODES:
   0  success (check: the queue is clean)
   1  error
   2  usage error, or a confirmation was needed but no terminal was there to ask
   3  partial failure: some messages could not be processed (each is reported)
   4  no queue: the directory does not exist or is not a Postfix/qmail queue
   5  locked: the MTA is running on this queue (qmail-send holds lock/sendmutex,
      or Postfix master runs where the action needs it stopped)
   6  check found problems, none putting mail at risk
   7  check found problems that put mail at risk (lost, never delivered or
      delivered twice unless repaired)`

// exitErr is an error that carries its exit code and an optional hint;
// run prints it as 'qsurgeon: error: ...' and 'qsurgeon: hint: ...'.
type exitErr struct {
	code int
	err  error
	hint string
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// fail wraps err with the exit code it ends the program with and a hint
// naming the next step ("" for none).
func fail(code int, err error, hint string) error {
	return &exitErr{code: code, err: err, hint: hint}
}

// usageErr is a usage error (exit code 2) with a formatted message.
func usageErr(format string, args ...any) error {
	return fail(exitUsage, fmt.Errorf(format, args...), "")
}

// metaArgs is the App.Metadata key of the command line, for the journal.
const metaArgs = "args"

// commandLine is the command line run() was given.
func commandLine(c *cli.Context) []string {
	args, _ := c.App.Metadata[metaArgs].([]string)
	return args
}

// hintStopQmail is the one answer to qmail-send holding the queue.
const hintStopQmail = "stop qmail-send first: svc -d /service/qmail-send (daemontools) or systemctl stop qmail; qmail-smtpd may keep running"

// errorTable maps the errors the library marks to their exit code and the
// hint naming the next step; the first entry an error matches wins.
var errorTable = []struct {
	err  error
	code int
	hint string
}{
	{qmailq.ErrSendRunning, exitLocked, hintStopQmail},
	{surgery.ErrNoQueueDir, exitNoQueue, "give the queue directory with --queue DIR"},
	{surgery.ErrNotPostfix, exitNoQueue, "drop --mta (auto-detection), or point --queue at Postfix's queue_directory (it has deferred/ and incoming/, active/, hold/ or maildrop/)"},
	{surgery.ErrNotQmail, exitNoQueue, "drop --mta (auto-detection), or point --queue at qmail's queue (it has mess/, info/, local/, remote/, todo/ and lock/)"},
	{surgery.ErrUnknownLayout, exitNoQueue, "point --queue at the queue_directory (Postfix: it has deferred/, incoming/...; qmail: mess/, info/, todo/...) or force --mta"},
	{surgery.ErrNoQueue, exitNoQueue, ""},
	{surgery.ErrConfig, exitError, "--config-dir names the Postfix config directory (the one with main.cf)"},
	{surgery.ErrUsage, exitUsage, ""},
	{surgery.ErrPlanExists, exitError, "the plan file must not exist yet"},
	{surgery.ErrPlanFile, exitUsage, "a plan file is written by --plan-out; this one is not"},
	{surgery.ErrNotQuarantine, exitError, "DIR must be a directory written by 'qsurgeon quarantine'"},
	{surgery.ErrNoHoldQueue, exitUsage, "give --quarantine-dir DIR to hold the account's mail there"},
}

// exitCode is the exit code and hint of an error: its own when the
// command gave one (fail), else the first errorTable entry it matches.
func exitCode(err error) (int, string) {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code, ee.hint
	}
	for _, t := range errorTable {
		if errors.Is(err, t.err) {
			return t.code, t.hint
		}
	}
	if isFlagError(err) {
		return exitUsage, "see 'qsurgeon --help' or 'qsurgeon COMMAND --help'"
	}
	return exitError, ""
}

// silentExit ends the program with a code and no message (the command has
// already reported what happened).
type silentExit int

func (s silentExit) Error() string { return fmt.Sprintf("exit %d", int(s)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: tests call it directly too.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	app.Metadata = map[string]any{metaArgs: args}
	err := app.RunContext(ctx, permuteArgs(app, args))
	if err == nil {
		return exitOK
	}
	var se silentExit
	if errors.As(err, &se) {
		return int(se)
	}
	code, hint := exitCode(err)
	fmt.Fprintf(stderr, "qsurgeon: error: %s\n", printable(err.Error()))
	if hint != "" {
		fmt.Fprintf(stderr, "qsurgeon: hint: %s\n", hint)
	}
	return code
}

// joinHints joins several hints into one hint line.
func joinHints(h ...string) string { return strings.Join(h, "; ") }
