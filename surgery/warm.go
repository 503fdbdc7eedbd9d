package surgery

import (
	"sync"
	"sync/atomic"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/postfixq"
	"github.com/qsurgeon/qsurgeon/queue"
)

// warmQueue bounds the IDs waiting to be warmed: when the lookups fall
// behind the scan, the rest are dropped (their unlinks are then cold, as
// without a warmer), so the scan never waits for them.
const warmQueue = 1 << 16

// Warmer returns, for a Postfix delete, a function to give Select as
// SelectOptions.Selected, and stop, to call once the selection is made.
// While the scan reads the queue, a few goroutines look up each selected
// message's bounce, defer and trace logs (postfixq.Spool.WarmLogs: an
// lstat each, read-only), whose directories and inodes the scan never
// reads: the delete then unlinks them from the cache instead of reading
// each from disk (seed 003: a cold 1M queue took 54 s to scan and ~20 s
// to unlink one account's 100k messages and logs, as long as `xargs rm`
// given the paths). Nothing is changed before the selection is complete,
// previewed and confirmed; a message warmed and then not deleted (--max,
// an answer of no) has only been looked at. stop abandons what is still
// queued and waits for the lookups under way. Other verbs and MTAs: nil,
// nil (a move or a qmail delete touches nothing the scan did not read).
func (j *Job) Warmer() (warm func(*queue.Message), stop func()) {
	sp, ok := j.src.(*postfixq.Spool)
	if !ok || j.verb.Name != Delete || j.verb.Into != nil {
		return nil, nil
	}
	ids := make(chan string, warmQueue)
	var quit atomic.Bool
	var wg sync.WaitGroup
	for range filter.DefaultWorkers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if !quit.Load() {
					sp.WarmLogs(id)
				}
			}
		}()
	}
	var once sync.Once
	warm = func(m *queue.Message) {
		select {
		case ids <- m.ID:
		default:
		}
	}
	stop = func() {
		once.Do(func() {
			quit.Store(true)
			close(ids)
			wg.Wait()
		})
	}
	return warm, stop
}
