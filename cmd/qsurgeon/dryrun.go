package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/qsurgeon/qsurgeon/surgery"
)

// printDryRun prints what a dry run of an action on n messages would do:
// by default the count of operations per kind and per directory, then a
// sample; with all, every operation.
func printDryRun(w io.Writer, action string, n int, ops []surgery.Op, all bool, sample int) {
	fmt.Fprintf(w, "dry run: %s of %d message(s) would do %d file operation(s)", action, n, len(ops))
	if len(ops) == 0 {
		fmt.Fprintln(w, ".")
		return
	}
	if all || len(ops) <= sample {
		fmt.Fprintln(w, ":")
		for _, op := range ops {
			fmt.Fprintf(w, "  %s\n", printable(op.Text))
		}
		return
	}
	fmt.Fprintln(w, ":")
	type count struct {
		n     int
		where map[string]int
	}
	kinds := map[string]*count{}
	var order []string
	for _, op := range ops {
		c := kinds[op.Kind]
		if c == nil {
			c = &count{where: map[string]int{}}
			kinds[op.Kind] = c
			order = append(order, op.Kind)
		}
		c.n++
		c.where[op.Where]++
	}
	width := 0
	for _, k := range order {
		width = max(width, len(k))
	}
	for _, k := range order {
		c := kinds[k]
		wheres := make([]string, 0, len(c.where))
		for d := range c.where {
			wheres = append(wheres, d)
		}
		sort.Slice(wheres, func(i, j int) bool {
			if c.where[wheres[i]] != c.where[wheres[j]] {
				return c.where[wheres[i]] > c.where[wheres[j]]
			}
			return wheres[i] < wheres[j]
		})
		parts := make([]string, len(wheres))
		for i, d := range wheres {
			parts[i] = fmt.Sprintf("%s %d", printable(d), c.where[d])
		}
		fmt.Fprintf(w, "  %-*s %7d  (%s)\n", width, k, c.n, strings.Join(parts, ", "))
	}
	if sample <= 0 {
		sample = 10
	}
	fmt.Fprintf(w, "first %d of them (--list-ops lists all %d):\n", min(sample, len(ops)), len(ops))
	for _, op := range ops[:min(sample, len(ops))] {
		fmt.Fprintf(w, "  %s\n", printable(op.Text))
	}
}
