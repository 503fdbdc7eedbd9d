package surgery

import "github.com/qsurgeon/qsurgeon/rebuild"

// ExecutePlan carries out a repair, rebuild, carry or swap plan once
// through the mutation seam rooted at the plan's base: the root-confined
// mutator, or for a dry run the recorder (whose calls are the Report's
// Ops). The plan takes the MTA's locks it names itself.
func ExecutePlan(p *rebuild.Plan, o RunOptions) (Report, error) {
	rep := Report{Verb: p.Title}
	s, err := openSeam(p.Base, o.DryRun)
	if err != nil {
		return rep, err
	}
	defer s.close()
	if err := p.Execute(s.mut, o.Progress); err != nil {
		return rep, err
	}
	rep.OK = len(p.Steps)
	rep.Ops = s.ops("", "")
	return rep, nil
}
