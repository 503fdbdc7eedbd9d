package surgery

import (
	"time"

	"github.com/qsurgeon/qsurgeon/quarantine"
	"github.com/qsurgeon/qsurgeon/rebuild"
)

// A queue's structure is checked, repaired and rebuilt by package rebuild;
// these are the calls and types a program (cmd/qsurgeon) needs for it, so
// that it goes through surgery for planning as for executing (ExecutePlan).
type (
	// Plan is a repair, rebuild, carry or swap plan (a queue.Plan).
	Plan = rebuild.Plan
	// Problem is one finding of a check.
	Problem = rebuild.Problem
	// IDs are the qmail accounts' numbers.
	IDs = rebuild.IDs
	// CheckOptions tune a qmail check and repair.
	CheckOptions = rebuild.Options
	// QmailCheck is what CheckQmail found.
	QmailCheck = rebuild.Report
	// PostfixCheckOptions tune a Postfix check.
	PostfixCheckOptions = rebuild.PostfixOptions
	// PostfixAssumed is what a Postfix check assumed about the layout.
	PostfixAssumed = rebuild.PostfixAssumed
)

// SeverityNote: a state qmail tolerates or cleans up itself.
const SeverityNote = rebuild.SeverityNote

// ErrOccupied: the place a quarantined part is restored to holds another
// file.
var ErrOccupied = quarantine.ErrOccupied

// ParseAssignment parses NAME=NUMBER (--user, --group).
func ParseAssignment(s string) (name string, id int, err error) { return rebuild.ParseAssignment(s) }

// ResolveIDs completes ids from the system's accounts.
func ResolveIDs(ids IDs) (IDs, error) { return rebuild.Resolve(ids) }

// AtRisk reports whether a problem puts mail at risk.
func AtRisk(probs []Problem) bool { return rebuild.AtRisk(probs) }

// CheckQmail checks a qmail queue's structure and every message (read-only).
func CheckQmail(root string, ids IDs, opts CheckOptions) (*QmailCheck, error) {
	return rebuild.InspectQmail(root, ids, opts)
}

// CheckPostfix checks a Postfix queue's names, hashing and files (read-only).
func CheckPostfix(root string, opts PostfixCheckOptions) ([]Problem, error) {
	return rebuild.CheckPostfix(root, opts)
}

// PlanRepair plans the repair of what CheckQmail finds in root.
func PlanRepair(root string, ids IDs, opts CheckOptions) (*Plan, error) {
	return rebuild.PlanRepair(root, nil, ids, opts)
}

// RebuildOptions say how to build a new qmail queue and what to carry
// into it.
type RebuildOptions struct {
	Split   int
	BigTodo bool
	IDs     IDs
	// CarryFrom is the old queue whose messages Carry (inode numbers)
	// are copied into the new one; "" carries nothing.
	CarryFrom string
	Carry     []uint64
}

// PlanRebuild plans a complete, empty qmail queue in newDir and, with
// CarryFrom, the copy of the selected messages into it.
func PlanRebuild(newDir string, o RebuildOptions) (*Plan, error) {
	plan, err := rebuild.PlanRebuild(newDir, o.Split, o.BigTodo, o.IDs)
	if err != nil || o.CarryFrom == "" {
		return plan, err
	}
	cp, err := rebuild.PlanCarry(o.CarryFrom, newDir, o.Carry, o.IDs, rebuild.CarryOptions{Split: o.Split, BigTodo: o.BigTodo})
	if err != nil {
		return nil, err
	}
	plan.Append(cp)
	return plan, nil
}

// PlanSwap plans renaming the old queue aside and the new one into its
// place (now names the backup; zero: the clock's now).
func PlanSwap(oldDir, newDir string, now time.Time) (*Plan, error) {
	return rebuild.PlanSwap(oldDir, newDir, now)
}
