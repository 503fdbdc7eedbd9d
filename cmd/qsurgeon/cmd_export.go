package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

func exportCommand(e *env) *cli.Command {
	var ff filterFlags
	var mbox string
	return &cli.Command{
		Name:      "export",
		Usage:     "copy the selected messages out as .eml files (or one mbox), each with its envelope as JSON (read-only)",
		ArgsUsage: "DIR",
		Description: `Writes DIR/<queue-id>.eml (the exact message as RFC 5322 text) and DIR/<queue-id>.json (its
envelope: sender, recipients, SASL user, client, reasons — the members of 'list --format json')
for every selected message. With --mbox FILE, appends the messages to one mbox file instead
(mboxrd quoting) and writes FILE.jsonl with the envelopes. The queue is not changed.

EXAMPLES:
   # keep evidence of the spam run before deleting it
   qsurgeon export /root/evidence --sasl-user hello@example.com
   qsurgeon export --mbox /root/bounces.mbox --null-sender`,
		Flags: append(ff.flags(),
			&cli.StringFlag{Name: "mbox", Destination: &mbox, Usage: "write one mbox FILE (and FILE.jsonl) instead of a directory of .eml files"},
		),
		Action: func(c *cli.Context) error {
			dir := c.Args().First()
			if (dir == "") == (mbox == "") || c.NArg() > 1 {
				return usageErr("export needs a directory, or --mbox FILE (not both)")
			}
			o := e.opts(c)
			src, err := openSource(o, e.stderr, readNeeds{logs: true})
			if err != nil {
				return err
			}
			if err := surgery.Exportable(src); err != nil {
				return err
			}
			sel, err := e.selectMessages(c, o, &ff, src, surgery.KeepAll)
			if err != nil {
				return err
			}
			missing := surgery.MissingIDs(ff.ids(), sel.Results)
			if len(missing) > 0 {
				fmt.Fprintf(e.stderr, "qsurgeon: not exported (not in the queue, or filtered out): %s\n", strings.Join(missing, " "))
				if len(sel.Results) == 0 {
					return silentExit(exitError)
				}
			}
			eo := surgery.ExportOptions{Workers: o.Workers, Envelope: func(m *queue.Message) any { return toJSON(m, nil) }}
			var rep surgery.ExportReport
			if mbox != "" {
				rep, err = surgery.ExportMbox(c.Context, sel, mbox, eo)
			} else {
				rep, err = surgery.ExportDir(c.Context, sel, dir, eo)
			}
			for _, f := range rep.Failures {
				if ae := (*queue.ActionError)(nil); errors.As(f, &ae) {
					fmt.Fprintf(e.stderr, "qsurgeon: %s: %s\n", ae.ID, printable(ae.Err.Error()))
				} else {
					fmt.Fprintf(e.stderr, "qsurgeon: %s\n", printable(f.Error()))
				}
			}
			if err != nil {
				return err
			}
			failed := rep.Failed()
			fmt.Fprintf(e.stderr, "exported %d message(s), %d failed\n", len(sel.Results)-failed, failed)
			if failed > 0 || len(sel.Errs) > 0 || len(missing) > 0 {
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}
