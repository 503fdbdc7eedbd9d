package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
)

// readOnly bind-mounts dir onto itself read-only (mount --bind, then
// mount -o remount,ro,bind, as root); the mount is undone in t.Cleanup,
// before the directory itself is removed.
func readOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("read-only bind mounts need root")
	}
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s read-only: %v: %s", dir, err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, ".probe"), nil, 0o600); err == nil {
		t.Fatalf("%s is still writable after the read-only remount", dir)
	}
}

// TestDryRunWritesNothing runs every destructive command with --dry-run on
// queues, quarantine directories, live queues, plan targets and journals
// that are mounted read-only: any write, by any code path, fails with
// EROFS and so fails the command. Every dry run must still succeed and
// print its plan; a real run on the same mounts must fail (the proof that
// the mounts do refuse writes).
func TestDryRunWritesNothing(t *testing.T) {
	acct := fixtureAccounts
	mustRun := func(t *testing.T, what string, args ...string) {
		t.Helper()
		if r := qs(t, "", args...); r.code != 0 {
			t.Fatalf("%s: exit %d: %s %s", what, r.code, r.stdout, r.stderr)
		}
	}

	// Postfix: a queue with a plan file and an existing quarantine
	// directory, a second copy already quarantined from, and an empty
	// live queue.
	pf := extract(t, filepath.Join(postfixFixture, "queue.tar.gz"))
	pq := filepath.Join(pf, "postfix-incident-a")
	live := filepath.Join(extract(t, filepath.Join(postfixFixture, "queue.tar.gz")), "postfix-incident-a")
	emptyPostfixQueue(t, live)
	if err := os.Mkdir(filepath.Join(pf, "held"), 0o700); err != nil {
		t.Fatal(err)
	}
	plan := filepath.Join(pf, "bob.plan")
	mustRun(t, "plan", "--queue", pq, "delete", "--sasl-user", "bob@example.com", "--plan-out", plan)
	pf2 := extract(t, filepath.Join(postfixFixture, "queue.tar.gz"))
	pq2 := filepath.Join(pf2, "postfix-incident-a")
	mustRun(t, "quarantine", "--queue", pq2, "quarantine", filepath.Join(pf2, "held"), "--sasl-user", "alice@example.com", "--yes", "--journal", "none")

	// qmail: a copied queue (repaired, as an admin must before running
	// qmail on it) with an empty live queue beside it, and a second copy
	// already quarantined from.
	qb := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	qq := filepath.Join(qb, "queue")
	qlive := filepath.Join(qb, "live")
	mustRun(t, "rebuild", append([]string{"rebuild", "--new", qlive, "--split", "23", "--yes", "--journal", "none"}, acct...)...)
	qb2 := extract(t, filepath.Join(qmailFixture, "queue.tar.gz"))
	qq2 := filepath.Join(qb2, "queue")
	mustRun(t, "repair", append([]string{"--queue", qq2, "repair", "--yes", "--lost-found", filepath.Join(qb2, "lf")}, acct...)...)
	mustRun(t, "quarantine", "--queue", qq2, "quarantine", filepath.Join(qb2, "held"), "--sasl-user", "alice@example.com", "--yes", "--journal", "none")

	bases := []string{pf, filepath.Dir(live), pf2, qb, qb2}
	snaps := map[string]testkit.Tree{}
	for _, b := range bases {
		snaps[b] = testkit.Snapshot(t, b)
		readOnly(t, b)
	}
	journal := filepath.Join(pf, "journal.jsonl") // on a read-only mount: a dry run never opens it
	sel := []string{"--sasl-user", "hello@example.com", "--queue-name", "deferred"}
	cases := []struct {
		name string
		args []string
		want string // in the dry run's standard output
	}{
		{"postfix delete", append([]string{"--queue", pq, "delete"}, sel...), "remove "},
		{"postfix hold", append([]string{"--queue", pq, "hold"}, sel...), "rename "},
		{"postfix release", []string{"--queue", pq, "release", "--queue-name", "hold"}, "rename "},
		{"postfix requeue", append([]string{"--queue", pq, "requeue"}, sel...), "rename "},
		{"postfix expire", append([]string{"--queue", pq, "expire"}, sel...), "chmod "},
		{"postfix requeue --into", []string{"--queue", pq, "requeue", "--sasl-user", "alice@example.com", "--into", live}, "maildrop/"},
		{"postfix quarantine into an existing DIR", append([]string{"--queue", pq, "quarantine", filepath.Join(pf, "held")}, sel...), "move queue:"},
		{"postfix quarantine into a new DIR", append([]string{"--queue", pq, "quarantine", filepath.Join(pf, "new-held")}, sel...), "mkdir dir:."},
		{"postfix apply", []string{"--queue", pq, "apply", plan, "delete"}, "remove "},
		{"postfix restore", []string{"--queue", pq2, "restore", filepath.Join(pf2, "held"), "--all"}, "move dir:"},
		{"qmail delete", []string{"--queue", qq, "delete", "--sasl-user", "bob@example.com", "--detached"}, "remove "},
		{"qmail requeue", []string{"--queue", qq, "requeue", "--sasl-user", "bob@example.com"}, "chtimes "},
		{"qmail expire", []string{"--queue", qq, "expire", "--sasl-user", "bob@example.com"}, "chtimes "},
		{"qmail requeue --into", []string{"--queue", qq, "requeue", "--sasl-user", "bob@example.com", "--into", qlive}, "todo/"},
		{"qmail quarantine", []string{"--queue", qq, "quarantine", filepath.Join(qb, "held"), "--sasl-user", "bob@example.com"}, "move queue:"},
		{"qmail restore", []string{"--queue", qq2, "restore", filepath.Join(qb2, "held"), "--all"}, "move dir:"},
		{"qmail repair", append([]string{"--queue", qq, "repair"}, acct...), "dry run: nothing changed"},
		{"qmail rebuild --carry-from", append([]string{"rebuild", "--new", filepath.Join(qb, "new"), "--carry-from", qq, "--all"}, acct...), "carry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append(append([]string{}, c.args...), "--dry-run", "--list-ops", "--journal", journal)
			r := qs(t, "", args...)
			if r.code != 0 {
				t.Fatalf("qsurgeon %s: exit %d:\n%s\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, c.want) {
				t.Errorf("qsurgeon %s: the dry run does not show %q:\n%s", strings.Join(args, " "), c.want, r.stdout)
			}
		})
	}
	// The same mounts refuse a real run.
	if r := qs(t, "", append([]string{"--queue", pq, "delete", "--yes", "--journal", "none"}, sel...)...); r.code == 0 {
		t.Errorf("delete on a read-only queue succeeded: %s", r.stderr)
	}
	for _, b := range bases {
		if d := snaps[b].Diff(testkit.Snapshot(t, b)); d != nil {
			t.Errorf("%s changed: %v", b, d)
		}
	}
}
