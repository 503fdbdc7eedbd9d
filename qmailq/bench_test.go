package qmailq

import (
	"context"
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

// BenchmarkRead reads every message of the fixture queue; ns/op is per
// message.
func BenchmarkRead(b *testing.B) {
	root := extract(b, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var refs []queue.Ref
	if err := q.Walk(context.Background(), func(r queue.Ref) error { refs = append(refs, r); return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := q.Read(refs[i%len(refs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWalk lists the fixture queue; ns/op is per walk of 371 messages.
func BenchmarkWalk(b *testing.B) {
	root := extract(b, "queue.tar.gz")
	q, err := Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := q.Walk(context.Background(), func(queue.Ref) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
