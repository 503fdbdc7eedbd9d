package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/qsurgeon/qsurgeon/estimate"
	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/urfave/cli/v2"
)

// sampleSummary runs summary --sample: the estimate from a random sample
// (package estimate). It opens its own reader, without the defer and
// bounce logs unless the selection needs them (they add two opens per
// sampled message and no estimate uses them). Read errors are warned about
// only when no exact pass follows to warn about them again.
func (e *env) sampleSummary(c *cli.Context, o globalOpts, ff *filterFlags, m *filter.Matcher, opt estimate.Options, only bool) (queue.Source, *estimate.Estimate, int, error) {
	w := io.Discard
	if only {
		w = e.stderr
	}
	src, err := openSource(o, w, readNeeds{logs: ff.needsLogs()})
	if err != nil {
		return nil, nil, 0, err
	}
	var nerr int
	opt.OnError = func(err *filter.ReadError) error {
		nerr++
		if only {
			e.warn(err)
		}
		return nil
	}
	est, err := estimate.Sample(c.Context, src, m, opt)
	if err != nil {
		return nil, nil, 0, err
	}
	if only {
		e.reportStrays(src)
	}
	return src, est, nerr, nil
}

// writeSampleJSON prints the estimate alone (summary --sample-only): the
// exact members would all be zeros.
func writeSampleJSON(w io.Writer, s *summary) error {
	enc := json.NewEncoder(safeJSON{w})
	enc.SetEscapeHTML(false)
	return enc.Encode(struct {
		MTA    string             `json:"mta"`
		Root   string             `json:"queue_directory"`
		Sample *estimate.Estimate `json:"sample"`
	}{s.MTA, s.Root, s.Sample})
}

// printSample prints the estimate as text.
func printSample(w io.Writer, s *summary) {
	est := s.Sample
	fmt.Fprintf(w, "%s queue %s: estimate from %d of %d messages", s.MTA, s.Root, est.SampleSize, est.Population)
	switch {
	case est.Exact:
		fmt.Fprint(w, " (the whole queue: exact figures)")
	default:
		fmt.Fprintf(w, " (uniform random sample, --seed %d)", est.Seed)
	}
	fmt.Fprintf(w, ", names listed in %.1f s, sample read in %.1f s\n", est.ListSeconds, est.ReadSeconds)
	if est.Matched != est.Read {
		fmt.Fprintf(w, "%d of the %d sampled messages read are selected: ~%d messages selected in the queue\n", est.Matched, est.Read, est.Messages)
	}
	if est.Read != est.SampleSize {
		fmt.Fprintf(w, "%d sampled messages left the queue or could not be read\n", est.SampleSize-est.Read)
	}
	fmt.Fprintln(w, "share of the messages (recipient domains: of the pending recipients), 95% confidence interval, estimated count")
	section := func(title string, es []estimate.Share) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s, estimated\n", title)
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, x := range es {
			fmt.Fprintf(t, "  %5.1f%%\t[%.1f%% – %.1f%%]\t~%d\t%s\n", 100*x.Share, 100*x.CILow, 100*x.CIHigh, x.Count, clip(printable(x.Key), 90))
		}
		t.Flush()
	}
	section("Queues", est.Queues)
	section("Top SASL users", est.SASLUsers)
	section("Top senders", est.Senders)
	section("Top client networks", est.ClientNetworks)
	section("Top recipient domains (pending recipients)", est.RecipientDomains)
}
