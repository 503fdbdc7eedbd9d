package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/qsurgeon/qsurgeon/internal/clock"
	"github.com/qsurgeon/qsurgeon/internal/termsafe"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// jsonRecipient is a pending recipient as postqueue -j prints it, plus the
// qmail channel and the DSN status when known.
type jsonRecipient struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason,omitempty"`
	Channel     string `json:"channel,omitempty"`
	Status      string `json:"status,omitempty"`
	Original    string `json:"original_recipient,omitempty"`
}

// jsonDone is a finished recipient.
type jsonDone struct {
	Address string `json:"address"`
	Channel string `json:"channel,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// jsonMessage is one line of `list --format json`: the members of
// postqueue -j first, in its order, then qsurgeon's own.
type jsonMessage struct {
	QueueName      string          `json:"queue_name"`
	QueueID        string          `json:"queue_id"`
	ArrivalTime    int64           `json:"arrival_time"`
	MessageSize    int64           `json:"message_size"`
	ForcedExpire   bool            `json:"forced_expire"`
	Sender         string          `json:"sender"`
	Recipients     []jsonRecipient `json:"recipients"`
	MTA            string          `json:"mta"`
	Path           string          `json:"path"`
	NullSender     bool            `json:"null_sender"`
	DoubleBounce   bool            `json:"double_bounce,omitempty"`
	DoneRecipients []jsonDone      `json:"done_recipients"`
	NextRetry      *int64          `json:"next_retry,omitempty"`
	CreateTime     *int64          `json:"create_time,omitempty"`
	FileSize       int64           `json:"file_size"`
	Bouncing       bool            `json:"bouncing"`
	SASLMethod     string          `json:"sasl_method,omitempty"`
	SASLUsername   string          `json:"sasl_username,omitempty"`
	ClientAddress  string          `json:"client_address,omitempty"`
	ClientName     string          `json:"client_name,omitempty"`
	HELOName       string          `json:"helo_name,omitempty"`
	Subject        *string         `json:"subject,omitempty"`
	From           *string         `json:"from,omitempty"`
	MessageID      *string         `json:"message_id,omitempty"`
	Problems       []string        `json:"problems,omitempty"`
	Error          string          `json:"error,omitempty"`
	Matched        []string        `json:"matched,omitempty"`
}

// unixPtr is t in Unix seconds, or nil for the zero time (omitted in JSON).
func unixPtr(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	v := t.Unix()
	return &v
}

// displaySender is the sender as postqueue shows it: the null sender is
// MAILER-DAEMON.
func displaySender(m *queue.Message) string {
	if m.NullSender {
		return "MAILER-DAEMON"
	}
	return m.Sender
}

// toJSON converts a message to its JSON line; why is the --explain list.
func toJSON(m *queue.Message, why []string) jsonMessage {
	j := jsonMessage{
		QueueName:      m.Queue,
		QueueID:        m.ID,
		ArrivalTime:    m.Arrival.Unix(),
		MessageSize:    m.Size,
		ForcedExpire:   m.ForcedExpire,
		Sender:         displaySender(m),
		Recipients:     []jsonRecipient{},
		MTA:            string(m.MTA),
		Path:           m.Path,
		NullSender:     m.NullSender,
		DoubleBounce:   m.DoubleBounce,
		DoneRecipients: []jsonDone{},
		NextRetry:      unixPtr(m.NextRetry),
		CreateTime:     unixPtr(m.CreateTime),
		FileSize:       m.FileSize,
		Bouncing:       m.Bouncing,
		SASLMethod:     m.SASLMethod,
		SASLUsername:   m.SASLUser,
		ClientAddress:  m.ClientAddr,
		ClientName:     m.ClientName,
		HELOName:       m.HELO,
		Problems:       m.Problems,
		Matched:        why,
	}
	if m.Arrival.IsZero() {
		j.ArrivalTime = 0
	}
	for _, r := range m.Recipients {
		switch {
		case r.Canceled:
		case r.Done:
			j.DoneRecipients = append(j.DoneRecipients, jsonDone{Address: r.Address, Channel: r.Channel, Reason: r.Reason})
		default:
			orig := ""
			if r.Original != "" && !strings.EqualFold(r.Original, r.Address) {
				orig = r.Original
			}
			j.Recipients = append(j.Recipients, jsonRecipient{Address: r.Address, DelayReason: r.Reason, Channel: r.Channel, Status: r.Status, Original: orig})
		}
	}
	if c := m.Content; c != nil {
		j.Subject, j.From, j.MessageID = &c.Subject, &c.From, &c.MessageID
	}
	if m.Err != nil {
		j.Error = m.Err.Error()
	}
	return j
}

// renderer prints a selection in one of the output formats.
type renderer struct {
	w       io.Writer
	format  string
	explain bool
	now     time.Time
}

// newRenderer checks --format and returns a renderer writing to w.
func newRenderer(w io.Writer, format string, explain bool) (*renderer, error) {
	switch format {
	case "table", "json", "csv", "ids":
	default:
		return nil, usageErr("--format %q: want table, json, csv or ids", format)
	}
	return &renderer{w: w, format: format, explain: explain, now: clock.Now()}, nil
}

// list prints the selected messages in the renderer's format.
func (r *renderer) list(results []filter.Result) error {
	switch r.format {
	case "ids":
		var b bytes.Buffer
		for _, res := range results {
			b.WriteString(res.Msg.ID)
			b.WriteByte('\n')
			if b.Len() > 64*1024 {
				if _, err := r.w.Write(b.Bytes()); err != nil {
					return err
				}
				b.Reset()
			}
		}
		_, err := r.w.Write(b.Bytes())
		return err
	case "json":
		enc := json.NewEncoder(safeJSON{r.w})
		enc.SetEscapeHTML(false)
		for _, res := range results {
			var why []string
			if r.explain {
				why = res.Why
			}
			if err := enc.Encode(toJSON(res.Msg, why)); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(r.w)
		_ = cw.Write([]string{"mta", "queue_name", "queue_id", "arrival_time", "message_size", "sender", "recipients", "done_recipients", "sasl_username", "client_address", "helo_name", "subject", "path", "problems"})
		for _, res := range results {
			m := res.Msg
			subj := ""
			if m.Content != nil {
				subj = m.Content.Subject
			}
			var pend, done []string
			for _, rc := range m.Recipients {
				if rc.Canceled {
					continue
				}
				if rc.Done {
					done = append(done, rc.Address)
				} else {
					pend = append(pend, rc.Address)
				}
			}
			_ = cw.Write([]string{string(m.MTA), m.Queue, m.ID, strconv.FormatInt(m.Arrival.Unix(), 10), strconv.FormatInt(m.Size, 10),
				displaySender(m), strings.Join(pend, " "), strings.Join(done, " "), m.SASLUser, m.ClientAddr, m.HELO, subj, m.Path,
				strings.Join(m.Problems, "; ")})
		}
		cw.Flush()
		return cw.Error()
	}
	// With --explain, each row is followed by its own indented line
	// saying what matched, never clipped: the table is laid out first,
	// then the lines are put between its rows.
	var table bytes.Buffer
	out := r.w
	if r.explain {
		out = &table
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tAGE\tSIZE\tSENDER\tSASL USER\tCLIENT\tRCPTS\tSUBJECT/NOTE")
	for _, res := range results {
		m := res.Msg
		note := ""
		if m.Content != nil {
			note = m.Content.Subject
		}
		if m.Err != nil {
			note = "CORRUPT: " + m.Err.Error()
		} else if p := significantProblems(m); len(p) > 0 {
			note = "PROBLEM: " + strings.Join(p, "; ")
		}
		pending := len(m.Pending())
		rc := strconv.Itoa(pending)
		if d := len(m.DoneRecipients()); d > 0 {
			rc += "+" + strconv.Itoa(d) + "done"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, idMark(m), m.Queue, age(r.now, m.Arrival), humanSize(m.Size),
			clip(printable(displaySender(m)), 40), clip(dash(printable(m.SASLUser)), 30), dash(printable(m.ClientAddr)), rc, clip(printable(note), 60))
	}
	if err := tw.Flush(); err != nil || !r.explain {
		return err
	}
	lines := strings.SplitAfter(table.String(), "\n")
	var b bytes.Buffer
	b.WriteString(lines[0])
	for i, res := range results {
		b.WriteString(lines[i+1])
		if len(res.Why) > 0 {
			fmt.Fprintf(&b, "    matched: %s\n", printable(strings.Join(res.Why, ", ")))
		}
	}
	_, err := r.w.Write(b.Bytes())
	return err
}

// idMark decorates an ID the way mailq does: * active, ! hold, # expired.
func idMark(m *queue.Message) string {
	s := ""
	switch m.Queue {
	case queue.Active:
		s = "*"
	case queue.Hold:
		s = "!"
	}
	if m.ForcedExpire {
		s += "#"
	}
	return s
}

// dash shows an empty table cell as "-".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n runes, the last one an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// printable escapes control characters (C0, DEL, C1) and invalid UTF-8 so
// a hostile header cannot drive the admin's terminal (termsafe.String).
func printable(s string) string { return termsafe.String(s) }

// writeJSON encodes v as one line through safeJSON, for the commands that
// print JSON of their own (monitor, accounts, impact): a name from a queue or
// a log never reaches the terminal as a raw DEL or C1 control.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(safeJSON{w})
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// safeJSON writes encoding/json's output with DEL and the C1 controls
// escaped too (termsafe.JSON): the same JSON value, harmless on a terminal.
type safeJSON struct{ w io.Writer }

func (s safeJSON) Write(p []byte) (int, error) {
	if _, err := s.w.Write(termsafe.JSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// age is how long ago t was, as the table shows it: minutes, hours
// (under two days) or days.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// humanSize is a message size as the table shows it: bytes, K or M.
func humanSize(n int64) string {
	switch {
	case n < 10*1024:
		return strconv.FormatInt(n, 10)
	case n < 10*1024*1024:
		return fmt.Sprintf("%dK", n/1024)
	default:
		return fmt.Sprintf("%dM", n/(1024*1024))
	}
}

// readContents reads the headers of every selected message that has none
// yet (surgery.ReadContents), warning about those it cannot read.
func readContents(ctx context.Context, src queue.Source, results []filter.Result, workers int, warn func(error)) {
	for _, err := range surgery.ReadContents(ctx, src, results, workers) {
		warn(err)
	}
}

// significantProblems are a message's problems other than id-not-inode.
func significantProblems(m *queue.Message) []string {
	var out []string
	for _, p := range m.Problems {
		if !strings.HasPrefix(p, queue.ProblemIDNotInode) {
			out = append(out, p)
		}
	}
	return out
}

// hasIDNotInode reports whether a message's name is not its inode
// (a queue copied from another filesystem).
func hasIDNotInode(m *queue.Message) bool {
	return len(significantProblems(m)) < len(m.Problems)
}
