package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestEveryCommandAndFlagHasUsage fails when a command or flag has no usage
// text, or a command's help has no example (gopass checks the same).
func TestEveryCommandAndFlagHasUsage(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	if len(app.Commands) < 3 {
		t.Fatalf("only %d commands", len(app.Commands))
	}
	checkFlags := func(where string, flags []cli.Flag) {
		for _, f := range flags {
			df, ok := f.(cli.DocGenerationFlag)
			if !ok || strings.TrimSpace(df.GetUsage()) == "" {
				t.Errorf("%s: flag %v has no usage text", where, f.Names())
			}
		}
	}
	checkFlags("qsurgeon", app.Flags)
	for _, c := range app.Commands {
		if strings.TrimSpace(c.Usage) == "" {
			t.Errorf("command %s has no usage text", c.Name)
		}
		if !strings.Contains(c.Description, "EXAMPLES:") || !strings.Contains(c.Description, "qsurgeon ") {
			t.Errorf("command %s: its help has no example", c.Name)
		}
		checkFlags(c.Name, c.Flags)
		// Every flag name once per command (urfave/cli panics otherwise).
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("command %s: %v", c.Name, r)
				}
			}()
			for _, f := range c.Flags {
				if err := f.Apply(fs); err != nil {
					t.Errorf("command %s: %v", c.Name, err)
				}
			}
		}()
	}
}

// TestGlobalFlagsEitherSide: a global flag after the command wins over the
// same flag before it, and one given only before is kept.
func TestGlobalFlagsEitherSide(t *testing.T) {
	e := &env{app: globalOpts{Queue: "/before", Format: "json"}, cmd: globalOpts{Queue: "/after", Format: "table"}}
	var got globalOpts
	app := &cli.App{Flags: globalFlags(&e.app)}
	app.Commands = []*cli.Command{{Name: "x", Flags: globalFlags(&e.cmd), Action: func(c *cli.Context) error {
		got = e.opts(c)
		return nil
	}}}
	if err := app.Run([]string{"qs", "--queue", "/before", "--format", "json", "x", "--queue", "/after"}); err != nil {
		t.Fatal(err)
	}
	if got.Queue != "/after" || got.Format != "json" {
		t.Fatalf("got queue %q format %q, want /after json", got.Queue, got.Format)
	}
}

// TestDocsUpToDate: the committed man page and command reference are what
// 'make docs' generates from the command table now; the completion scripts
// it writes are complete.
func TestDocsUpToDate(t *testing.T) {
	dir := t.TempDir()
	r := qs(t, "", "gen-docs", "--man", dir+"/qsurgeon.1", "--markdown", dir+"/commands.md", "--bash", dir+"/qsurgeon.bash", "--zsh", dir+"/qsurgeon.zsh")
	if r.code != 0 {
		t.Fatalf("gen-docs: exit %d: %s", r.code, r.stderr)
	}
	for _, f := range []string{"qsurgeon.1", "commands.md"} {
		want, err := os.ReadFile(dir + "/" + f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile("../../docs/" + f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/%s is not what the command table generates: run 'make docs'", f)
		}
	}
	// The completion scripts are not committed ('make docs' writes them,
	// .gitignore keeps them out): they are the templates, written whole.
	for f, want := range map[string]string{"qsurgeon.bash": bashCompletion, "qsurgeon.zsh": zshCompletion} {
		got, err := os.ReadFile(dir + "/" + f)
		if err != nil || string(got) != want {
			t.Errorf("gen-docs wrote %s wrong (%v)", f, err)
		}
	}
}
