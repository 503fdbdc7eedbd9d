package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// buildDate and commit can be set at link time (-ldflags '-X
// main.buildDate=... -X main.commit=...', as make build does): the build
// info has no build date, and has the commit only when the go command
// stamped it (-buildvcs). Without buildDate the commit's date from the
// build info is shown, and said to be that.
var buildDate, commit string

// versionInfo is what 'qsurgeon --version' and 'qsurgeon version' print:
// the module version, the VCS commit and a date, from debug.ReadBuildInfo
// (the go command stamps vcs.revision, vcs.time and vcs.modified when it
// builds inside a git checkout).
type versionInfo struct {
	Version, Commit, Date, DateKind, Go string
	Modified                            bool
}

func readVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", Commit: "(unknown)", Date: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = &debug.BuildInfo{}
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Date, v.DateKind = s.Value, "commit date"
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if v.Commit == "(unknown)" && commit != "" {
		v.Commit = commit
	}
	if buildDate != "" {
		v.Date, v.DateKind = buildDate, "build date"
	}
	return v
}

func printVersion(w io.Writer) {
	v := readVersion()
	commit := v.Commit
	if v.Modified {
		commit += " (with uncommitted changes)"
	}
	date := v.Date
	if v.DateKind != "" {
		date += " (" + v.DateKind + ")"
	}
	fmt.Fprintf(w, "qsurgeon %s\ncommit:  %s\ndate:    %s\ngo:      %s\n", v.Version, commit, date, v.Go)
}

func init() {
	// --version only: -v means verbose to most admins.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version, commit and build date"}
	cli.VersionPrinter = func(c *cli.Context) { printVersion(c.App.Writer) }
}

// versionCommand prints what --version prints.
func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "version",
		Usage:     "print the version, commit and build date (same as --version)",
		ArgsUsage: " ",
		Description: `The module version, the commit it was built from and the build date (make build links the
commit and the date in; otherwise they come from the Go build info, where present).

EXAMPLES:
   qsurgeon version
   qsurgeon --version`,
		Action: func(c *cli.Context) error {
			printVersion(e.stdout)
			return nil
		},
	}
}
