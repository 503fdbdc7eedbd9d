package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// env is what every command needs from the process: its streams, and the
// global options resolved from either side of the command name.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	app globalOpts // global flags given before the command
	cmd globalOpts // the same flags given after the command
}

// globalOpts are the options every command accepts. They may be given
// before the command name (qsurgeon --queue DIR list) or after it
// (qsurgeon list --queue DIR); a value after the command wins.
type globalOpts struct {
	Queue      string
	MTA        string
	Format     string
	Workers    int
	ConfigDir  string
	NoProgress bool
	// SMTPDUIDs: --smtpd-uid, the uids qmail-smtpd runs as besides qmaild.
	SMTPDUIDs cli.IntSlice
}

const (
	flagQueue      = "queue"
	flagMTA        = "mta"
	flagFormat     = "format"
	flagWorkers    = "workers"
	flagConfigDir  = "config-dir"
	flagNoProgress = "no-progress"
	flagSMTPDUID   = "smtpd-uid"
)

// globalFlags returns the options every command accepts, bound to g.
func globalFlags(g *globalOpts) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagQueue, Aliases: []string{"q"}, Destination: &g.Queue, Usage: "queue directory (default: postconf -h queue_directory, else /var/spool/postfix; /var/qmail/queue with --mta qmail)"},
		&cli.StringFlag{Name: flagMTA, Value: "auto", Destination: &g.MTA, Usage: "auto|postfix|qmail: which MTA wrote the queue (auto: decide from the directory's layout)"},
		&cli.StringFlag{Name: flagFormat, Aliases: []string{"o"}, Value: "table", Destination: &g.Format, Usage: "table|json|csv|ids: output format (json: one object per line; ids: bare queue IDs for postsuper -d -)"},
		&cli.IntFlag{Name: flagWorkers, Aliases: []string{"j"}, Destination: &g.Workers, Usage: "parallel readers (default: 2 per CPU, at most 16)"},
		&cli.StringFlag{Name: flagConfigDir, Aliases: []string{"c"}, Destination: &g.ConfigDir, Usage: "Postfix config directory of the instance (hash_queue_names/depth); optional: the hashing is discovered from the tree"},
		&cli.BoolFlag{Name: flagNoProgress, Destination: &g.NoProgress, Usage: "never show a progress bar"},
		&cli.IntSliceFlag{Name: flagSMTPDUID, Destination: &g.SMTPDUIDs, Usage: "qmail: a uid qmail-smtpd runs as (repeatable): trust the SMTP-AUTH Received header after qmail-queue's 'invoked by uid N' (default: vpopmail's uid when that account exists; 'invoked from network', qmaild, is always trusted)"},
	}
}

// opts merges the two sets of global options for the running command.
func (e *env) opts(c *cli.Context) globalOpts {
	o := e.app
	set := func(name string) bool {
		// IsSet on the command's context looks at the command's own flag
		// set first, where the global flags are defined again.
		return c.Command != nil && c.Command.Name != "" && c.IsSet(name)
	}
	if set(flagQueue) {
		o.Queue = e.cmd.Queue
	}
	if set(flagMTA) {
		o.MTA = e.cmd.MTA
	}
	if set(flagFormat) {
		o.Format = e.cmd.Format
	}
	if set(flagWorkers) {
		o.Workers = e.cmd.Workers
	}
	if set(flagConfigDir) {
		o.ConfigDir = e.cmd.ConfigDir
	}
	if set(flagNoProgress) {
		o.NoProgress = e.cmd.NoProgress
	}
	if set(flagSMTPDUID) {
		o.SMTPDUIDs = e.cmd.SMTPDUIDs
	}
	return o
}

// isTerminal reports whether w is a file open on a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// commandTable is the one command table, in the order --help lists the
// commands: looking first, then surgery, then queue repair. Each
// cmd_<verb>.go holds its command's factory; a new command is one entry.
func commandTable() []func(e *env) *cli.Command {
	t := []func(*env) *cli.Command{summaryCommand, monitorCommand, watchCommand, listCommand, showCommand,
		exportCommand, accountsCommand, impactCommand}
	for _, a := range actions {
		t = append(t, func(e *env) *cli.Command { return actCommand(e, a) })
	}
	return append(t, applyCommand, quarantineCommand, restoreCommand, checkCommand, repairCommand, rebuildCommand,
		versionCommand, docsCommand)
}

// newApp builds the application over the given streams: the global
// flags, then every command of commandTable with the global flags
// repeated.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	app := &cli.App{
		Name:  "qsurgeon",
		Usage: "mail-queue surgery for Postfix and qmail",
		Description: "qsurgeon reads Postfix queue files and qmail's split queue directly, selects messages in\n" +
			"parallel by sender, recipient, SASL user, client IP, age, size, headers and bounce status, and\n" +
			"acts on exactly those. Destructive commands preview first, ask before acting, and can run as\n" +
			"--dry-run.\n\n" + exitCodeHelp,
		Flags:                globalFlags(&e.app),
		Version:              readVersion().Version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      false,
		ExitErrHandler:       func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			flags := c.App.Flags
			if c.Command != nil && c.Command.Name != "" {
				flags = c.Command.Flags
			}
			hint := flagSuggestion(err, flags)
			if hint == "" {
				hint = "see 'qsurgeon --help' or 'qsurgeon COMMAND --help'"
			}
			return fail(exitUsage, err, hint)
		},
		// An unknown command is a usage error naming the nearest command
		// (urfave/cli would answer "No help topic for ..." with exit 1).
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cli.ShowAppHelp(c)
			}
			return fail(exitUsage, fmt.Errorf("unknown command %q", c.Args().First()),
				joinHints(commandSuggestion(c.Args().First(), c.App.Commands), "see 'qsurgeon --help' for the commands"))
		},
	}
	for _, f := range commandTable() {
		cmd := f(e)
		cmd.Flags = append(cmd.Flags, globalFlags(&e.cmd)...)
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = app.OnUsageError
		}
		app.Commands = append(app.Commands, cmd)
	}
	return app
}

// isFlagError recognises urfave/cli's flag parsing errors by their text
// (it has no typed error for them), so they exit with the usage code.
func isFlagError(err error) bool {
	s := err.Error()
	for _, p := range []string{"flag provided but not defined", "Incorrect Usage", "invalid value", "flag needs an argument", "Required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}
