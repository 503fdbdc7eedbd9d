package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// nearest returns the candidate closest to typed by edit distance, or ""
// when none is close enough to be what was meant (at most a third of the
// longer name, and never more than 3 edits).
func nearest(typed string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(typed, c)
		if best == "" || d < bestD {
			best, bestD = c, d
		}
	}
	limit := min(3, max(1, max(len(typed), len(best))/3))
	if best == "" || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance, transpositions counting once
// (restricted Damerau: "sasl-usre" is one typo from "sasl-user").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// flagSuggestion turns urfave/cli's "flag provided but not defined: -x"
// into a hint naming the nearest flag of the command (or the global flags
// when there is no command), "" when nothing is near.
func flagSuggestion(err error, flags []cli.Flag) string {
	const p = "flag provided but not defined: "
	s := err.Error()
	i := strings.Index(s, p)
	if i < 0 {
		return ""
	}
	typed := strings.TrimLeft(strings.TrimSpace(s[i+len(p):]), "-")
	var names []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) > 1 {
				names = append(names, n)
			}
		}
	}
	if n := nearest(typed, names); n != "" {
		return fmt.Sprintf("did you mean --%s?", n)
	}
	return ""
}

// commandSuggestion names the nearest command (or alias) to an unknown one.
func commandSuggestion(typed string, cmds []*cli.Command) string {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	if n := nearest(typed, names); n != "" {
		return fmt.Sprintf("did you mean '%s'?", n)
	}
	return ""
}
