package surgery_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// Delete everything one SASL account queued, without the CLI: open the
// queue, select by the account, preview, delete, and look again. The queue
// is a copy of the real Postfix 3.7 incident fixture, in which
// bob@example.com has 7 deferred messages and 1 in incoming/.
func Example_deleteOneAccount() {
	tmp, err := os.MkdirTemp("", "surgery-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(tmp)
	if err := testkit.Untar("../testdata/queues/postfix-incident/queue.tar.gz", tmp); err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	src, err := surgery.Open(surgery.OpenOptions{Dir: filepath.Join(tmp, "postfix-incident-a")})
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := filter.Spec{SASLUsers: []string{"bob@example.com"}}
	sel, err := surgery.Select(ctx, src, spec, surgery.SelectOptions{Keep: surgery.KeepSurgery})
	if err != nil {
		fmt.Println(err)
		return
	}
	perQueue := map[string]int{}
	for _, r := range sel.Results {
		perQueue[r.Msg.Queue]++
	}
	fmt.Printf("%s selects %d: %d deferred, %d incoming\n", src.MTA(), len(sel.Results), perQueue["deferred"], perQueue["incoming"])

	rep, err := surgery.Run(ctx, sel, surgery.Verb{Name: surgery.Delete}, surgery.RunOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("delete: %d done, %d skipped, %d failed\n", rep.OK, rep.Skipped, rep.Failed)

	again, err := surgery.Select(ctx, src, spec, surgery.SelectOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	all, _ := surgery.Select(ctx, src, filter.Spec{}, surgery.SelectOptions{Keep: surgery.KeepIDs})
	fmt.Printf("left of bob: %d; left in the queue: %d\n", len(again.Results), len(all.Results))
	// Output:
	// postfix selects 8: 7 deferred, 1 incoming
	// delete: 8 done, 0 skipped, 0 failed
	// left of bob: 0; left in the queue: 290
}
