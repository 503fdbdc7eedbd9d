package main

import (
	"fmt"
	"strings"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/surgery"
	"github.com/urfave/cli/v2"
)

// headerAutoLimit is how many selected messages the table format reads the
// Subject of without --headers.
const headerAutoLimit = 20000

// listKeep is what list holds of each selected message: bare IDs need
// nothing else.
func listKeep(format string, headers bool) surgery.Keep {
	if format == "ids" && !headers {
		return surgery.KeepIDs
	}
	return surgery.KeepAll
}

func listCommand(e *env) *cli.Command {
	var ff filterFlags
	var headers bool
	var sortBy string
	var limit int
	return &cli.Command{
		Name:      "list",
		Aliases:   []string{"ls"},
		Usage:     "list the messages the filter selects (read-only)",
		ArgsUsage: " ",
		Description: `Lists one line per selected message. --format json prints one JSON object per line whose
members are a superset of postqueue -j (queue_name, queue_id, arrival_time, message_size,
forced_expire, sender, recipients) plus mta, path, null_sender, done_recipients, next_retry,
create_time, file_size, sasl_method, sasl_username, client_address, client_name, helo_name and,
when headers were read, subject, from and message_id. --format ids prints bare queue IDs.

EXAMPLES:
   # everything the stolen account sent from outside the office network 192.0.2.0/24
   qsurgeon list --sasl-user hello@example.com --not-client 192.0.2.0/24

   # the loop bounces: a queued NDR carries its reason in its body, not in a defer log
   qsurgeon list --null-sender --body 'mail forwarding loop' --explain

   # feed the IDs of all backscatter to postsuper
   qsurgeon --format ids list --null-sender --queue-name deferred | postsuper -d -

   # the 20 largest messages
   qsurgeon list --sort -size --limit 20`,
		Flags: append(ff.flags(),
			&cli.BoolFlag{Name: "headers", Destination: &headers, Usage: "read Subject, From and Message-ID of every selected message (table does so by itself up to 20000 messages)"},
			&cli.StringFlag{Name: "sort", Destination: &sortBy, Usage: "order by FIELD: " + strings.Join(filter.SortFieldNames, ", ") + "; a leading '-' reverses (--sort -size: largest first)"},
			&cli.IntFlag{Name: "limit", Destination: &limit, Usage: "print at most N messages (after --sort)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("list takes no arguments (got %q); use --id ID to select by queue ID", c.Args().First())
			}
			o := e.opts(c)
			if limit < 0 {
				return usageErr("--limit %d: want a count of messages", limit)
			}
			if sortBy != "" {
				if err := filter.SortBy(nil, sortBy); err != nil {
					return fail(exitUsage, err, "")
				}
			}
			r, err := newRenderer(e.stdout, o.Format, ff.explain)
			if err != nil {
				return err
			}
			// JSON carries delay reasons and the bounce state; the other
			// formats show neither.
			src, err := openSource(o, e.stderr, readNeeds{logs: o.Format == "json" || ff.needsLogs()})
			if err != nil {
				return err
			}
			k := listKeep(o.Format, headers)
			if sortBy != "" {
				k = surgery.KeepAll // the sort key may be any field
			}
			sel, err := e.selectMessages(c, o, &ff, src, k)
			if err != nil {
				return err
			}
			if sortBy != "" {
				_ = filter.SortBy(sel.Results, sortBy) // checked above
			}
			if limit > 0 && len(sel.Results) > limit {
				sel.Results = sel.Results[:limit]
			}
			if headers || (o.Format == "table" && len(sel.Results) <= headerAutoLimit) {
				readContents(c.Context, src, sel.Results, o.Workers, e.warn)
			}
			if err := r.list(sel.Results); err != nil {
				return err
			}
			if len(sel.Errs) > 0 {
				fmt.Fprintf(e.stderr, "qsurgeon: %d message(s) could not be read (see warnings above)\n", len(sel.Errs))
				return silentExit(exitPartial)
			}
			return nil
		},
	}
}
