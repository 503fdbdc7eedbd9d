package postfixq

import (
	"context"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// BenchmarkRead reads the envelope (and logs) of every fixture message
// through Spool.Read: one open, one pread of the first few KB, a jump over
// the content.
func BenchmarkRead(b *testing.B) {
	s, err := Open(fixtureRoot(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var refs []queue.Ref
	s.Walk(context.Background(), func(r queue.Ref) error { refs = append(refs, r); return nil })
	if len(refs) == 0 {
		b.Fatal("no messages")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, r := range refs {
			m, err := s.Read(r)
			if err != nil || m.Err != nil {
				b.Fatal(err, m.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(refs)), "ns/msg")
}
