package rebuild

import (
	"errors"
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"
)

// The qmail accounts that own the queue (conf-users, conf-groups; see
// qmail-queue.md §4.1). The queue needs these four; the others (alias,
// qmaild, qmaill, qmailp, nofiles) never own a queue directory.
const (
	UserQ  = "qmailq" // qmail-queue, qmail-clean: mess, todo, intd, pid, lock
	UserS  = "qmails" // qmail-send: info, local, remote, bounce, trigger, sendmutex
	UserR  = "qmailr" // qmail-remote: lock/tcpto
	GroupQ = "qmail"  // group of the whole queue
)

// IDs maps qmail account names to numeric ids. A name missing here is
// looked up in the system's user and group databases by Resolve.
type IDs struct {
	Users  map[string]int
	Groups map[string]int
}

// ErrUnknownAccount is wrapped by Resolve when a needed account is neither
// given nor known to the system.
var ErrUnknownAccount = errors.New("unknown qmail account")

// ParseAssignment parses one --user/--group value "NAME=NUMBER".
func ParseAssignment(s string) (name string, id int, err error) {
	name, num, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return "", 0, fmt.Errorf("rebuild: %q: want NAME=NUMBER", s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 31)
	if err != nil {
		return "", 0, fmt.Errorf("rebuild: %q: %q is not a numeric id", s, num)
	}
	return name, int(n), nil
}

// Set records one assignment; kind is "user" or "group".
func (ids *IDs) Set(kind, name string, id int) {
	switch kind {
	case "group":
		if ids.Groups == nil {
			ids.Groups = map[string]int{}
		}
		ids.Groups[name] = id
	default:
		if ids.Users == nil {
			ids.Users = map[string]int{}
		}
		ids.Users[name] = id
	}
}

// Resolve returns a copy of ids in which every account the queue needs
// (qmailq, qmails, qmailr, group qmail) has a number: given ones win,
// the rest come from the system (os/user). It fails naming every account
// that is still unknown.
func Resolve(ids IDs) (IDs, error) {
	out := IDs{Users: map[string]int{}, Groups: map[string]int{}}
	for k, v := range ids.Users {
		out.Users[k] = v
	}
	for k, v := range ids.Groups {
		out.Groups[k] = v
	}
	var missing []string
	for _, u := range []string{UserQ, UserR, UserS} {
		if _, ok := out.Users[u]; ok {
			continue
		}
		pw, err := user.Lookup(u)
		if err == nil {
			if n, err := strconv.Atoi(pw.Uid); err == nil {
				out.Users[u] = n
				continue
			}
		}
		missing = append(missing, "user "+u)
	}
	for _, g := range []string{GroupQ} {
		if _, ok := out.Groups[g]; ok {
			continue
		}
		gr, err := user.LookupGroup(g)
		if err == nil {
			if n, err := strconv.Atoi(gr.Gid); err == nil {
				out.Groups[g] = n
				continue
			}
		}
		missing = append(missing, "group "+g)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return out, fmt.Errorf("rebuild: %w: %s not in the system databases; give them as --user NAME=UID / --group NAME=GID", ErrUnknownAccount, strings.Join(missing, ", "))
	}
	return out, nil
}

func (ids IDs) uid(name string) int {
	if n, ok := ids.Users[name]; ok {
		return n
	}
	return -1
}

func (ids IDs) gid(name string) int {
	if n, ok := ids.Groups[name]; ok {
		return n
	}
	return -1
}

// userName returns "qmails (990)" style text for a uid, or the number.
func (ids IDs) userName(uid int) string {
	return nameOf(ids.Users, uid)
}

func (ids IDs) groupName(gid int) string {
	return nameOf(ids.Groups, gid)
}

func nameOf(m map[string]int, id int) string {
	var names []string
	for k, v := range m {
		if v == id {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return strconv.Itoa(id)
	}
	sort.Strings(names)
	return fmt.Sprintf("%s(%d)", names[0], id)
}

// IDsFromFlags turns repeated --user NAME=UID and --group NAME=GID values
// into IDs and resolves the rest from the system (Resolve).
func IDsFromFlags(users, groups []string) (IDs, error) {
	var ids IDs
	for _, s := range users {
		name, n, err := ParseAssignment(s)
		if err != nil {
			return IDs{}, err
		}
		ids.Set("user", name, n)
	}
	for _, s := range groups {
		name, n, err := ParseAssignment(s)
		if err != nil {
			return IDs{}, err
		}
		ids.Set("group", name, n)
	}
	return Resolve(ids)
}
