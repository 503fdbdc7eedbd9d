package testkit

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/qsurgeon/qsurgeon/internal/sysuser"
	"golang.org/x/sys/unix"
)

// The postfix-incident fixture's numeric owners on the machine that made it
// (testdata/queues/postfix-incident/README.md, "Numeric owners").
const (
	PostfixFixtureUID  = 102 // postfix
	PostfixFixtureGID  = 105 // postfix
	PostdropFixtureGID = 106 // postdrop
)

// AdoptPostfixOwners gives an extracted copy of the postfix-incident queue
// to this machine's postfix user and postfix and postdrop groups, as a
// queue made here would be owned: the real postsuper drops privileges to
// mail_owner and must be able to open what it owns. Debian gives the
// postfix user whatever id is free when the package is installed, so the
// fixture's 102/105/106 need not be this machine's. Owners other than the
// fixture's (root's, a test's own) are left alone, no symbolic link is
// followed, and the modes stay as archived. Without root, or without the
// postfix user and postdrop group, it does nothing: the tests that need
// them say so themselves.
func AdoptPostfixOwners(t testing.TB, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid, ok := sysuser.User("postfix")
	postdrop, dok := sysuser.Group("postdrop")
	if !ok || !dok {
		return
	}
	if uid == PostfixFixtureUID && gid == PostfixFixtureGID && postdrop == PostdropFixtureGID {
		return
	}
	err := chownTree(root, map[uint32]int{PostfixFixtureUID: uid},
		map[uint32]int{PostfixFixtureGID: gid, PostdropFixtureGID: postdrop})
	if err != nil {
		t.Fatalf("testkit: giving %s to this machine's postfix: %v", root, err)
	}
}

// chownTree gives every entry below root (root too, no link followed) owned
// by a key of newUID or newGID the id it maps to, keeping set-id bits.
func chownTree(root string, newUID, newGID map[uint32]int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		u, uok := newUID[st.Uid]
		g, gok := newGID[st.Gid]
		if !uok && !gok {
			return nil
		}
		if !uok {
			u = -1
		}
		if !gok {
			g = -1
		}
		if err := os.Lchown(p, u, g); err != nil {
			return err
		}
		// chown clears the set-id bits of a file: put them back.
		if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			return unix.Chmod(p, st.Mode&0o7777)
		}
		return nil
	})
}
