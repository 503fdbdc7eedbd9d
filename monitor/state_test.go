package monitor

import (
	"os"
	"path/filepath"
	"testing"
)

// The watch state file: a missing or garbled file is OK (the first run),
// every status survives a round trip, and writing leaves no temporary file.
func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "watch.state")
	if st := ReadState(path); st != OK {
		t.Errorf("missing file: %s, want OK", st)
	}
	for _, st := range []Status{Critical, Warning, OK, Critical} {
		if err := WriteState(path, st); err != nil {
			t.Fatal(err)
		}
		if got := ReadState(path); got != st {
			t.Errorf("wrote %s, read %s", st, got)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != "CRITICAL\n" {
		t.Errorf("file holds %q, want \"CRITICAL\\n\"", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the directory, want only the state file", len(ents))
	}
	if err := os.WriteFile(path, []byte("PANIC\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st := ReadState(path); st != OK {
		t.Errorf("garbled file: %s, want OK", st)
	}
	if err := WriteState(filepath.Join(dir, "no", "such", "dir"), OK); err == nil {
		t.Error("writing into a missing directory: no error")
	}
}

// CriticalAccounts names the account and the log account of critical
// alerts only, and one account named by both once.
func TestCriticalAccounts(t *testing.T) {
	bob := &Account{Kind: KindSASL, Name: "bob@example.com"}
	eve := &Account{Kind: KindSASL, Name: "eve@example.com"}
	bobSender := &Account{Kind: KindSender, Name: "bob@example.com"}
	for _, c := range []struct {
		name string
		r    Result
		want []string
	}{
		{"none", Result{}, nil},
		{"warning only", Result{Account: bob, AccountStatus: Warning, LogAccount: eve, LogAccountStatus: Warning}, nil},
		{"account", Result{Account: bob, AccountStatus: Critical, LogAccount: eve, LogAccountStatus: Warning}, []string{"sasl_user bob@example.com"}},
		{"log account", Result{Account: bob, AccountStatus: Warning, LogAccount: eve, LogAccountStatus: Critical}, []string{"sasl_user eve@example.com"}},
		{"both", Result{Account: bob, AccountStatus: Critical, LogAccount: eve, LogAccountStatus: Critical}, []string{"sasl_user bob@example.com", "sasl_user eve@example.com"}},
		{"same twice", Result{Account: bob, AccountStatus: Critical, LogAccount: bob, LogAccountStatus: Critical}, []string{"sasl_user bob@example.com"}},
		{"same name, other kind", Result{Account: bobSender, AccountStatus: Critical, LogAccount: bob, LogAccountStatus: Critical}, []string{KindSender + " bob@example.com", "sasl_user bob@example.com"}},
	} {
		var got []string
		for _, a := range c.r.CriticalAccounts() {
			got = append(got, a.Kind+" "+a.Name)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %q, want %q", c.name, got, c.want)
			}
		}
	}
}
