package surgery_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// Delete everything one SASL account queued, without the CLI: open the
// queue, select by the account, preview, delete, and look again. The queue
// is a copy of the real Postfix 3.7 incident fixture, in which
// bob@example.com has 7 deferred messages and 1 in incoming/.
func Example_deleteOneAccount() {
	ctx := context.Background()
	src, _, done := incidentCopy() // surgery.Open(surgery.OpenOptions{Dir: ...}) on a fresh copy
	defer done()
	if src == nil {
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

// Keep one SASL account's queued mail as evidence, without the CLI: select
// by the account, then write each message as DIR/<id>.eml with its
// envelope beside it, and the same messages once more as one mbox. The
// queue is a copy of the real Postfix 3.7 incident fixture, in which
// bob@example.com has 8 messages.
func Example_exportOneAccount() {
	src, tmp, done := incidentCopy()
	defer done()
	if src == nil {
		return
	}
	ctx := context.Background()
	sel, err := surgery.Select(ctx, src, filter.Spec{SASLUsers: []string{"bob@example.com"}}, surgery.SelectOptions{Keep: surgery.KeepAll})
	if err != nil {
		fmt.Println(err)
		return
	}
	envelope := func(m *queue.Message) any {
		return map[string]any{"id": m.ID, "sasl_username": m.SASLUser, "subject": m.Content.Subject}
	}
	dir := filepath.Join(tmp, "evidence")
	rep, err := surgery.ExportDir(ctx, sel, dir, surgery.ExportOptions{Envelope: envelope})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("dir: %d exported, %d failed\n", rep.Exported, rep.Failed())
	emls, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	jsons, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	fmt.Printf("%d .eml, %d .json\n", len(emls), len(jsons))

	mbox := filepath.Join(tmp, "bob.mbox")
	rep, err = surgery.ExportMbox(ctx, sel, mbox, surgery.ExportOptions{Envelope: envelope})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := os.ReadFile(mbox)
	j, _ := os.ReadFile(mbox + ".jsonl")
	fmt.Printf("mbox: %d exported, %d \"From \" lines, %d envelope lines, all bob's: %v\n",
		rep.Exported, bytes.Count(b, []byte("\nFrom "))+1, strings.Count(string(j), "\n"),
		strings.Count(string(j), `"sasl_username":"bob@example.com"`) == rep.Exported)

	// Every file is new: a second export into the same directory refuses.
	_, err = surgery.ExportDir(ctx, sel, dir, surgery.ExportOptions{})
	fmt.Println("again:", os.IsExist(err))
	// Output:
	// dir: 8 exported, 0 failed
	// 8 .eml, 8 .json
	// mbox: 8 exported, 8 "From " lines, 8 envelope lines, all bob's: true
	// again: true
}
