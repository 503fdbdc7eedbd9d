package sysuser

import "testing"

func TestLookups(t *testing.T) {
	if uid, gid, ok := User("root"); !ok || uid != 0 || gid != 0 {
		t.Errorf("User(root) = %d, %d, %v", uid, gid, ok)
	}
	if _, _, ok := User("qsurgeon-no-such-user"); ok {
		t.Error("User of a missing user is ok")
	}
	if gid, ok := Group("root"); !ok || gid != 0 {
		t.Errorf("Group(root) = %d, %v", gid, ok)
	}
	if _, ok := Group("qsurgeon-no-such-group"); ok {
		t.Error("Group of a missing group is ok")
	}
}
