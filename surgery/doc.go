// Package surgery is queue surgery as library calls: open a queue (Open),
// select messages with a filter.Spec (Select), and act on the selection
// with one verb (Run): delete, hold, release, requeue, expire, quarantine,
// requeue into a live queue, and restore from a quarantine directory.
//
// Every change goes through one mutation seam: a root-confined
// queue.Mutator (internal/safefs), or its dry-run twin that only records,
// chosen here and never by a caller, so nothing a command does can write
// when RunOptions.DryRun is set. The parallel action loop, the look-up of
// known Postfix queue IDs, the plan file and its re-checks live here;
// cmd/qsurgeon adds flags, prompts, progress bars and rendering.
//
// Nothing here prints: results come back as a Report, per-message
// outcomes through RunOptions.OnResult, progress through a callback.
package surgery
