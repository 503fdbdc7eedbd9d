// Package sysuser looks up the numeric ids of this machine's system users
// and groups (postfix, postdrop, the qmail users), for the generator and
// the tests that give files to them.
package sysuser

import (
	"os/user"
	"strconv"
)

// User returns the uid and primary gid of a system user, or ok=false.
func User(name string) (uid, gid int, ok bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	return uid, gid, err1 == nil && err2 == nil
}

// Group returns the gid of a system group, or ok=false.
func Group(name string) (int, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	gid, err := strconv.Atoi(g.Gid)
	return gid, err == nil
}
