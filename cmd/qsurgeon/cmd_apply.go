package main

import (
	"fmt"
	"slices"

	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

func applyCommand(e *env) *cli.Command {
	var sf safetyFlags
	return &cli.Command{
		Name:      "apply",
		Usage:     "act on a plan written earlier with --plan-out, re-checking every message first",
		ArgsUsage: "PLAN-FILE ACTION",
		Description: `Reads a plan written by 'ACTION --plan-out FILE' and applies ACTION (delete, hold, release,
requeue, expire) to each message in it — but only after re-reading the message and checking
that it is still the same one: same inode, sender and arrival time. Anything that changed or
left the queue is skipped and reported. This closes the race postsuper documents and cannot
close: a short Postfix queue ID reused by a new message between listing and acting.

EXAMPLES:
   qsurgeon delete --sasl-user hello@example.com --plan-out /root/hello.plan
   less /root/hello.plan
   qsurgeon apply /root/hello.plan delete --yes`,
		Flags: sf.flags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErr("apply needs PLAN-FILE and ACTION")
			}
			planPath, name := c.Args().Get(0), c.Args().Get(1)
			if !slices.Contains(surgery.Verbs, name) {
				hint := ""
				if n := nearest(name, surgery.Verbs); n != "" {
					hint = fmt.Sprintf("did you mean '%s'?", n)
				}
				return fail(exitUsage, fmt.Errorf("apply: unknown action %q (delete, hold, release, requeue, expire)", name), hint)
			}
			entries, err := surgery.ReadPlan(planPath)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				fmt.Fprintln(e.stderr, "the plan is empty; nothing to do.")
				return nil
			}
			o := e.opts(c)
			if !c.IsSet(flagQueue) && e.app.Queue == "" {
				o.Queue = entries[0].QueueDir
			}
			if o.MTA == "auto" || o.MTA == "" {
				o.MTA = entries[0].MTA
			}
			src, err := openSource(o, e.stderr, readNeeds{})
			if err != nil {
				return err
			}
			job, err := surgery.NewJob(src, surgery.Verb{Name: name})
			if err != nil {
				return err
			}
			results, changed := surgery.Recheck(src, entries)
			for _, ch := range changed {
				fmt.Fprintf(e.stderr, "qsurgeon: %s: skipped: %s\n", printable(ch.ID), printable(ch.Err.Error()))
			}
			sf.all = true
			return e.execute(c, o, name, job, results, &sf, false, len(changed))
		},
	}
}
