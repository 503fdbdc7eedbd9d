// Package rebuild checks, repairs and rebuilds qmail queues (and checks
// Postfix queues) as plan → show → execute, the way restic's prune works:
// a Plan is built read-only, printed, then executed once through a
// queue.Mutator, so a dry-run mutator guarantees nothing is written.
//
// The expected qmail hierarchy (owners, groups, modes, conf-split, FIFO and
// lock files) is the declarative table in hier.go, transcribed from qmail's
// own hier.c (notqmail hier.c:hier_queue()).
//
// Nothing that could be mail is ever deleted: fragments that cannot be put
// back into a legal qmail state are renamed into a lost+found directory
// outside the queue, each next to a note saying where it came from.
package rebuild
