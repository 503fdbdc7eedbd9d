package main

import (
	"fmt"

	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// postfixSurgeon applies actions to a Postfix queue the way postsuper does.
type postfixSurgeon struct {
	spool   *postfixq.Spool
	running bool // master runs on this queue directory
}

func newPostfixSurgeon(src queue.Source) (surgeon, error) {
	s, ok := src.(*postfixq.Spool)
	if !ok {
		return nil, fmt.Errorf("not a Postfix spool")
	}
	return &postfixSurgeon{spool: s}, nil
}

func (p *postfixSurgeon) source() queue.Source { return p.spool }

func (p *postfixSurgeon) supports(action string) error { return nil }

func (p *postfixSurgeon) prepare(action string, dryRun bool) (func(), error) {
	running, err := postfixq.MasterRunning(p.spool.Root())
	if err != nil {
		return nil, err
	}
	p.running = running
	return func() {}, nil
}

func (p *postfixSurgeon) act(action string, m *queue.Message, mut queue.Mutator) error {
	return fmt.Errorf("%s: not implemented yet", action)
}
