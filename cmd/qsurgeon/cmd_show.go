package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/termsafe"
	"github.com/qsurgeon/qsurgeon/surgery"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/urfave/cli/v2"
)

func showCommand(e *env) *cli.Command {
	var body, raw bool
	return &cli.Command{
		Name:      "show",
		Usage:     "show one message: envelope, attributes, reasons, headers (read-only)",
		ArgsUsage: "ID [ID...]",
		Description: `Shows everything qsurgeon knows of a message: queue, envelope, pending and done recipients
with their delay/bounce reasons, Postfix named attributes (SASL user, client, HELO, ...), qmail
problems, and the headers with decoded Subject and From. --body adds the body, --raw prints
the exact message as RFC 5322 text (for saving or piping to another tool).

EXAMPLES:
   qsurgeon show 7A6D1BE4D7
   qsurgeon --queue /var/qmail/queue show --raw 10003311 > msg.eml`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "body", Destination: &body, Usage: "print the body too"},
			&cli.BoolFlag{Name: "raw", Destination: &raw, Usage: "print the exact message as RFC 5322 text, nothing else"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageErr("show needs a queue ID")
			}
			o := e.opts(c)
			src, err := openSource(o, e.stderr, readNeeds{logs: true, attrs: true})
			if err != nil {
				return err
			}
			ids := c.Args().Slice()
			m, err := filter.Compile(filter.Spec{IDs: ids})
			if err != nil {
				return fail(exitUsage, err, "")
			}
			res, err := filter.Select(c.Context, src, m, filter.Options{Workers: o.Workers})
			if err != nil {
				return err
			}
			found := map[string]bool{}
			for i, r := range res {
				found[r.Msg.ID] = true
				if raw {
					rw, ok := src.(surgery.RawWriter)
					if !ok {
						return fmt.Errorf("--raw is not supported for %s queues", src.MTA())
					}
					if err := rw.WriteRaw(e.stdout, r.Msg); err != nil {
						return err
					}
					continue
				}
				cont, cerr := src.ReadContent(r.Msg, queue.ContentOptions{Body: body})
				if cerr == nil {
					r.Msg.Content = cont
				}
				if o.Format == "json" {
					if err := showJSON(e.stdout, r.Msg, body); err != nil {
						return err
					}
					continue
				}
				if i > 0 {
					fmt.Fprintln(e.stdout)
				}
				showText(e.stdout, r.Msg, body, cerr)
			}
			var missing []string
			for _, id := range ids {
				if !found[id] {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return fail(exitError, fmt.Errorf("not in the queue: %s", strings.Join(missing, " ")),
					"the message may have been delivered or deleted; 'qsurgeon list' shows what is queued")
			}
			return nil
		},
	}
}

func showJSON(w io.Writer, m *queue.Message, body bool) error {
	type header struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	out := struct {
		jsonMessage
		Attributes map[string]string `json:"attributes,omitempty"`
		Headers    []header          `json:"headers,omitempty"`
		Body       *string           `json:"body,omitempty"`
	}{jsonMessage: toJSON(m, nil), Attributes: m.Attrs}
	if c := m.Content; c != nil {
		for _, h := range c.Headers {
			out.Headers = append(out.Headers, header{h.Name, h.Value})
		}
		if body {
			s := string(c.Body)
			out.Body = &s
		}
	}
	enc := json.NewEncoder(safeJSON{w})
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func showText(w io.Writer, m *queue.Message, body bool, contentErr error) {
	p := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-16s %s\n", k+":", printable(v))
		}
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + age(clock.Now(), t) + " ago)"
	}
	p("Queue ID", m.ID+idMark(m))
	p("Queue", string(m.MTA)+" "+m.Queue)
	p("Path", m.Path)
	p("Arrival", ts(m.Arrival))
	if !m.CreateTime.IsZero() && !m.CreateTime.Equal(m.Arrival) {
		p("Created", ts(m.CreateTime))
	}
	if !m.NextRetry.IsZero() {
		p("Next retry", m.NextRetry.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	p("Size", fmt.Sprintf("%d (file %d bytes)", m.Size, m.FileSize))
	sender := m.Sender
	if m.NullSender {
		sender = "<> (null sender: a bounce)"
	}
	p("Sender", sender)
	p("SASL user", strings.TrimSpace(m.SASLUser+" "+paren(m.SASLMethod)))
	client := m.ClientAddr
	if m.ClientName != "" && m.ClientName != "unknown" {
		client = m.ClientName + "[" + m.ClientAddr + "]"
	}
	p("Client", client)
	p("HELO", m.HELO)
	if m.ForcedExpire {
		p("Expire", "forced (returns to sender at the next delivery attempt)")
	}
	if m.Bouncing {
		p("Bouncing", "yes: a non-delivery report is pending")
	}
	for _, r := range m.Recipients {
		state := "pending"
		switch {
		case r.Canceled:
			state = "canceled"
		case r.Done:
			state = "done"
		}
		line := r.Address
		if r.Channel != "" {
			line = r.Channel + " " + line
		}
		line = state + "  " + line
		if r.Original != "" && !strings.EqualFold(r.Original, r.Address) {
			line += " (was " + r.Original + ")"
		}
		p("Recipient", line)
		if r.Reason != "" {
			st := ""
			if r.Status != "" {
				st = r.Status + " "
			}
			fmt.Fprintf(w, "%-16s   %s%s\n", "", st, printable(r.Reason))
		}
	}
	for _, pr := range m.Problems {
		p("Problem", pr)
	}
	if m.Err != nil {
		p("CORRUPT", m.Err.Error())
	}
	if len(m.Attrs) > 0 {
		keys := make([]string, 0, len(m.Attrs))
		for k := range m.Attrs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(w, "Attributes:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s=%s\n", printable(k), printable(m.Attrs[k]))
		}
	}
	if contentErr != nil {
		fmt.Fprintf(w, "Headers:         unreadable: %s\n", printable(contentErr.Error()))
		return
	}
	if c := m.Content; c != nil {
		p("Subject", c.Subject)
		p("From", c.From)
		p("Message-ID", c.MessageID)
		fmt.Fprintln(w, "Headers:")
		for _, h := range c.Headers {
			fmt.Fprintf(w, "  %s: %s\n", printable(h.Name), printable(strings.ReplaceAll(h.Value, "\n", " ")))
		}
		if body {
			fmt.Fprintln(w, "Body:")
			fmt.Fprintln(w, termsafe.Text(string(c.Body)))
		}
	}
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return "(" + s + ")"
}
