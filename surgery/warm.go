package surgery

import (
	"path"
	"sync"

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
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range filter.DefaultWorkers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				case id := <-ids:
					sp.WarmLogs(id)
				}
			}
		}()
	}
	var once sync.Once
	// ids is never closed: a late call (a scan worker still running when
	// stop is called) is dropped instead of panicking on a closed channel.
	warm = func(m *queue.Message) {
		select {
		case <-done:
		case ids <- m.ID:
		default:
		}
	}
	stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
	return warm, stop
}

// spreadByDir is the order in which to act on a selection (indices into
// results) so that messages next to each other are in different
// directories, round robin over the directories in the order they first
// appear, for the workers that act on several messages at once; nil when
// the selection's own order will do (one directory). A selection sorted by
// queue ID puts the messages of one hash directory together (a short
// Postfix ID hashes by its first characters), and an unlink or rename
// holds its directory's lock while it looks the name up and reads the
// inode: workers side by side in one directory wait for each other's disk
// reads, one at a time, and a parallel delete took as long as `xargs rm`
// did. Spread, each worker waits in its own directory. The order is the
// only change: every message is still acted on once, and an interrupted
// run still leaves those not taken untouched. It costs 12 bytes a message
// (a copy of the selection's results in buckets cost 60 or more, held
// while every message is acted on).
func spreadByDir(results []filter.Result) []int32 {
	idx := map[string]int32{}
	dirOf := make([]int32, len(results))
	var count []int32
	for i, r := range results {
		d := path.Dir(r.Msg.Path)
		b, ok := idx[d]
		if !ok {
			b = int32(len(count))
			idx[d] = b
			count = append(count, 0)
		}
		dirOf[i] = b
		count[b]++
	}
	if len(count) < 2 {
		return nil
	}
	// members lists each directory's messages in their first order, one
	// directory after the other; start[b] is where directory b begins.
	start := make([]int32, len(count))
	fill := make([]int32, len(count))
	var at int32
	for b, c := range count {
		start[b], fill[b] = at, at
		at += c
	}
	members := make([]int32, len(results))
	for i, b := range dirOf {
		members[fill[b]] = int32(i)
		fill[b]++
	}
	dirOf = nil
	order := make([]int32, 0, len(results))
	for k := int32(0); len(order) < len(results); k++ {
		for b, c := range count {
			if k < c {
				order = append(order, members[start[b]+k])
			}
		}
	}
	return order
}
