// Package rebuild checks, repairs and rebuilds qmail queues (and checks
// Postfix queues) as plan → show → execute, the way restic's prune works:
// a Plan is built read-only, printed, then executed once through a
// queue.Mutator, so a dry-run mutator (safefs.DryRun) guarantees nothing is
// written.
//
// The expected qmail hierarchy (owners, groups, modes, conf-split, FIFO and
// lock files) is the declarative table in hier.go, transcribed from qmail's
// own hier.c (notqmail hier.c:hier_queue()).
//
// Nothing that could be mail is ever deleted: fragments that cannot be put
// back into a legal qmail state are renamed into a lost+found directory
// outside the queue, each next to a note saying where it came from.
//
// A command uses it like this:
//
//	ids, err := rebuild.IDsFromFlags(userFlags, groupFlags)
//	probs, err := rebuild.CheckQmail(root, ids, rebuild.Options{Split: n, Todo: layout})
//	plan, err := rebuild.PlanRepair(root, probs, ids, opts)  // refuses while qmail-send runs
//	fmt.Print(plan)                                          // show
//	fs, err := safefs.Open(plan.Base)                        // or safefs.NewDryRun for --dry-run
//	err = plan.Execute(fs, progress)                         // holds lock/sendmutex
//
//	plan, err := rebuild.PlanRebuild(newDir, split, bigTodo, ids)
//	carry, err := rebuild.PlanCarry(oldDir, newDir, selectedIDs, ids, rebuild.CarryOptions{Split: split, BigTodo: bigTodo})
//	plan.Append(carry)                                       // one plan, one Base
//	... Execute; plan.Carried() maps old ids to new ones
//	swap, err := rebuild.PlanSwap(oldDir, newDir, time.Time{})  // renames only; the old queue is kept
package rebuild
