package surgery

import (
	"fmt"
	"path"
	"slices"
	"testing"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
)

// TestSpreadByDir: every message once, neighbours in different
// directories while more than one directory has messages left, and each
// directory's messages in their first order.
func TestSpreadByDir(t *testing.T) {
	var in []filter.Result
	// Sorted by ID as a selection is: directory A's messages first.
	for _, d := range []string{"A", "B", "C"} {
		n := map[string]int{"A": 5, "B": 3, "C": 1}[d]
		for i := range n {
			id := fmt.Sprintf("%s%04d", d, i)
			in = append(in, filter.Result{Msg: &queue.Message{ID: id, Path: "deferred/" + d + "/" + id}})
		}
	}
	order := spreadByDir(in)
	var got []string
	var out []filter.Result
	for _, i := range order {
		got = append(got, in[i].Msg.ID)
		out = append(out, in[i])
	}
	want := []string{"A0000", "B0000", "C0000", "A0001", "B0001", "A0002", "B0002", "A0003", "A0004"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	for i := 1; i < 7; i++ {
		if path.Dir(out[i].Msg.Path) == path.Dir(out[i-1].Msg.Path) {
			t.Errorf("%s and %s side by side in one directory", out[i-1].Msg.ID, out[i].Msg.ID)
		}
	}
	if order := spreadByDir(in[:5]); order != nil {
		t.Errorf("one directory: order %v, want the selection's own (nil)", order)
	}
}
