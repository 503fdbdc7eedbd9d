package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qsurgeon/qsurgeon/maillog"
	"github.com/urfave/cli/v2"
)

func accountsCommand(e *env) *cli.Command {
	var lf logFlags
	var topN int
	return &cli.Command{
		Name:      "accounts",
		Usage:     "per SASL account from the mail logs: logins, addresses, networks, messages, recipients, ranked (read-only)",
		ArgsUsage: "[LOG...]",
		Description: `Reads the mail logs (Postfix smtpd/qmgr/delivery lines, qmail-send, vpopmail's vchkpw,
dovecot, saslauthd, courier) and prints one row per authenticated account: logins that
succeeded and failed, distinct client addresses and /24 (/48) networks they came from, first
and last seen, messages accepted, recipients and recipient domains, how the recipients ended
(sent, deferred, bounced) and, when the queue is readable, how many of its messages are
queued now. Rows are ranked so that a stolen account comes first without knowing its name
(address fan-out and volume against the other accounts, envelope senders that are not the
account, failure share, new addresses against its own earlier days); each row says why.
--format json prints one object per account and line.

EXAMPLES:
   qsurgeon accounts --log /var/log/mail.log --log /var/log/mail.log.1 --log /var/log/mail.log.2.gz
   qsurgeon accounts --since 24h --log /var/log/maillog*
   journalctl -u postfix -o json | qsurgeon --format json accounts --log -`,
		Flags: append(lf.flags(),
			&cli.IntFlag{Name: "top", Value: 0, Destination: &topN, Usage: "show only the first N accounts (0: all)"},
		),
		Action: func(c *cli.Context) error {
			o := e.opts(c)
			if o.Format != "table" && o.Format != "json" {
				return usageErr("accounts prints --format table or json")
			}
			a, err := lf.read(e, c, false, nil)
			if err != nil {
				return err
			}
			var queued map[string]int
			j, msgs, err := e.queueJoin(c, o, a)
			if err != nil {
				return err
			}
			if j != nil {
				queued = map[string]int{}
				for _, m := range msgs {
					if u := j.User(m); u != "" {
						queued[u]++
					}
				}
			}
			rows := a.Accounts(queued)
			if topN > 0 && len(rows) > topN {
				rows = rows[:topN]
			}
			if a.UnattributedFailures > 0 {
				fmt.Fprintf(e.stderr, "qsurgeon: note: %d failed login(s) name no account (not in the table)\n", a.UnattributedFailures)
			}
			if o.Format == "json" {
				for _, r := range rows {
					if err := writeJSON(e.stdout, r); err != nil {
						return err
					}
				}
				return nil
			}
			return accountsTable(e, rows)
		},
	}
}

func accountsTable(e *env, rows []maillog.Account) error {
	if len(rows) == 0 {
		fmt.Fprintln(e.stdout, "no authenticated account in the logs")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tACCOUNT\tSCORE\tLOGINS OK/FAIL\tADDRS\tNETS\tMSGS\tRCPTS\tDOMAINS\tQUEUED\tSENT/DEF/BOUNCED\tFIRST SEEN\tLAST SEEN")
	for i, r := range rows {
		q := "-"
		if r.Queued != nil {
			q = fmt.Sprint(*r.Queued)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d/%d/%d\t%s\t%s\n", i+1, printable(clip(r.User, 40)), r.Score,
			r.LoginsOK, r.LoginsFailed, r.ClientAddresses, r.Networks, r.Messages, r.Recipients, r.RecipientDomains, q,
			r.Sent, r.Deferred, r.Bounced, stamp(r.FirstSeen), stamp(r.LastSeen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\nwhy:")
	for i, r := range rows {
		fmt.Fprintf(e.stdout, "  %d %s: %s\n", i+1, printable(r.User), printable(strings.Join(r.Why, "; ")))
		if len(r.TopAddresses) > 0 && i < 5 {
			fmt.Fprintf(e.stdout, "      top addresses (logins): %s\n", printable(strings.Join(r.TopAddresses, " ")))
		}
	}
	return nil
}

func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}
