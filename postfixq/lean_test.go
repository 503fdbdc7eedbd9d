package postfixq

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/testkit"
	"github.com/qsurgeon/qsurgeon/queue"
)

// TestLeanRead: with SkipLogs and SkipAttrs every field a selection by
// sender, recipient, SASL user, client, HELO, age or size looks at is the
// same as in a full read; only the logs' reasons and the attribute map are
// left out, and AttachLogs brings the reasons back.
func TestLeanRead(t *testing.T) {
	dir := testkit.Extract(t, testkit.Fixture(t, "postfix-incident", "queue.tar.gz"))
	root := filepath.Join(dir, testkit.PostfixRoot)
	full, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	lean, err := Open(root, Options{SkipLogs: true, SkipAttrs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lean.Close()
	n, withReasons := 0, 0
	err = full.Walk(context.Background(), func(ref queue.Ref) error {
		a, err := full.Read(ref)
		if err != nil {
			return err
		}
		b, err := lean.Read(ref)
		if err != nil {
			return err
		}
		n++
		if b.Attrs != nil {
			t.Errorf("%s: lean read kept the attribute map", ref.ID)
		}
		if a.Sender != b.Sender || a.NullSender != b.NullSender || a.SASLUser != b.SASLUser || a.SASLMethod != b.SASLMethod ||
			a.ClientAddr != b.ClientAddr || a.ClientName != b.ClientName || a.HELO != b.HELO || !a.Arrival.Equal(b.Arrival) ||
			!a.CreateTime.Equal(b.CreateTime) || a.Size != b.Size || a.Inode != b.Inode || len(a.Recipients) != len(b.Recipients) {
			t.Errorf("%s: lean read differs:\n%+v\n%+v", ref.ID, a, b)
		}
		for i := range b.Recipients {
			if b.Recipients[i].Reason != "" {
				t.Errorf("%s: lean read has a reason", ref.ID)
			}
			if a.Recipients[i].Address != b.Recipients[i].Address || a.Recipients[i].Done != b.Recipients[i].Done {
				t.Errorf("%s: recipient %d differs", ref.ID, i)
			}
		}
		lean.AttachLogs(b)
		for i := range b.Recipients {
			if a.Recipients[i].Reason != b.Recipients[i].Reason {
				t.Errorf("%s: AttachLogs gave reason %q, full read %q", ref.ID, b.Recipients[i].Reason, a.Recipients[i].Reason)
			}
			if a.Recipients[i].Reason != "" {
				withReasons++
			}
		}
		if a.Bouncing != b.Bouncing {
			t.Errorf("%s: Bouncing %v after AttachLogs, full read %v", ref.ID, b.Bouncing, a.Bouncing)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 298 || withReasons == 0 {
		t.Fatalf("read %d messages, %d reasons: the fixture has 298 messages and many reasons", n, withReasons)
	}
}
