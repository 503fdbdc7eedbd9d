package surgery_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
	"github.com/qsurgeon/qsurgeon/surgery"
)

// Keep one SASL account's queued mail as evidence, without the CLI: select
// by the account, then write each message as DIR/<id>.eml with its
// envelope beside it, and the same messages once more as one mbox. The
// queue is a copy of the real Postfix 3.7 incident fixture, in which
// bob@example.com has 8 messages.
func Example_exportOneAccount() {
	tmp, err := os.MkdirTemp("", "surgery-export")
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
