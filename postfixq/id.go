package postfixq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Queue IDs (global/mail_queue.h MQID_* macros, global/mail_queue.c).
//
// A short ID is "%05X" of the creation microseconds followed by "%lX" of the
// inode number. A long ID (enable_long_queue_ids = yes) is base-52 seconds
// (at least 6 characters), exactly 4 base-52 microsecond characters, 'z',
// and the base-51 inode (which never contains 'z').

// IDKind tells short from long queue IDs.
type IDKind int

// The two queue ID formats.
const (
	ShortID IDKind = iota + 1
	LongID
)

func (k IDKind) String() string {
	switch k {
	case ShortID:
		return "short"
	case LongID:
		return "long"
	}
	return "invalid"
}

// lgAlphabet is the long-ID alphabet (mail_queue.h, safe_ultostr.c): digits
// and letters without vowels; a character's value is its index.
const lgAlphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"

// Long-ID field widths (mail_queue.h MQID_LG_*).
const (
	mqidLgSecPad   = 6
	mqidLgUsecPad  = 4
	mqidLgTimePad  = mqidLgSecPad + mqidLgUsecPad
	mqidLgInumSep  = 'z'
	mqidLgSecBase  = 52
	mqidLgUsecBase = 52
	mqidLgInumBase = 51
	mqidShUsecPad  = 5
)

var lgValue [256]int8

func init() {
	for i := range lgValue {
		lgValue[i] = -1
	}
	for i := 0; i < len(lgAlphabet); i++ {
		lgValue[lgAlphabet[i]] = int8(i)
	}
}

// ID is a parsed queue ID.
type ID struct {
	Kind  IDKind
	Sec   int64 // creation seconds (long IDs only)
	Usec  int   // creation microseconds
	Inode uint64
}

var errBadID = errors.New("invalid queue id")

// ValidName reports whether name is acceptable as a queue file name:
// global/mail_queue.c:mail_queue_id_ok, i.e. ^[A-Za-z0-9_]{1,255}$
// (VALID_HOSTNAME_LEN is 255). Anything else (temporary "usec.pid" names,
// postsuper's "ID#FIX") is invisible to qmgr, showq and pickup.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// longSep returns the index of the long-ID separator:
// MQID_FIND_LG_INUM_SEPARATOR, the last 'z' at index >= 10; -1 if none.
func longSep(id string) int {
	i := strings.LastIndexByte(id, mqidLgInumSep)
	if i < mqidLgTimePad {
		return -1
	}
	return i
}

// ParseID parses a queue ID in either format, strictly as Postfix writes
// them: short IDs are upper-case hex (5 usec digits, at least one inode
// digit, usec < 1000000); long IDs use the base-52/51 alphabet.
func ParseID(id string) (ID, error) {
	if !ValidName(id) {
		return ID{}, fmt.Errorf("postfixq: %w: %q", errBadID, id)
	}
	if z := longSep(id); z >= 0 {
		sec, ok1 := decodeBase(id[:z-mqidLgUsecPad], mqidLgSecBase)
		usec, ok2 := decodeBase(id[z-mqidLgUsecPad:z], mqidLgUsecBase)
		inode, ok3 := decodeBase(id[z+1:], mqidLgInumBase)
		if !ok1 || !ok2 || !ok3 || z-mqidLgUsecPad < mqidLgSecPad || usec >= 1000000 || sec > 1<<62 {
			return ID{}, fmt.Errorf("postfixq: %w: %q", errBadID, id)
		}
		return ID{Kind: LongID, Sec: int64(sec), Usec: int(usec), Inode: inode}, nil
	}
	if len(id) <= mqidShUsecPad {
		return ID{}, fmt.Errorf("postfixq: %w: %q", errBadID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return ID{}, fmt.Errorf("postfixq: %w: %q", errBadID, id)
		}
	}
	usec, _ := strconv.ParseUint(id[:mqidShUsecPad], 16, 32)
	inode, err := strconv.ParseUint(id[mqidShUsecPad:], 16, 64)
	if err != nil || usec >= 1000000 {
		return ID{}, fmt.Errorf("postfixq: %w: %q", errBadID, id)
	}
	return ID{Kind: ShortID, Usec: int(usec), Inode: inode}, nil
}

// decodeBase decodes s in base (52 or 51) with the long-ID alphabet; it
// fails on an empty string, a character outside the base or overflow.
func decodeBase(s string, base int) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		d := lgValue[s[i]]
		if d < 0 || int(d) >= base {
			return 0, false
		}
		if v > (^uint64(0)-uint64(d))/uint64(base) {
			return 0, false
		}
		v = v*uint64(base) + uint64(d)
	}
	return v, true
}

// encodeBase is safe_ultostr with the long-ID alphabet, zero-padded to pad.
func encodeBase(v uint64, base, pad int) string {
	var tmp [72]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = lgAlphabet[v%uint64(base)]
		v /= uint64(base)
		if v == 0 {
			break
		}
	}
	for len(tmp)-i < pad {
		i--
		tmp[i] = '0'
	}
	return string(tmp[i:])
}

// String formats the ID the way Postfix names the file.
func (id ID) String() string {
	if id.Kind == LongID {
		return NewLongID(id.Sec, id.Usec, id.Inode)
	}
	return NewShortID(id.Usec, id.Inode)
}

// NewShortID returns a short queue ID: "%05X%lX" of microseconds and inode
// (mail_queue.c:mail_queue_enter, MQID_SH_ENCODE_*).
func NewShortID(usec int, inode uint64) string {
	return fmt.Sprintf("%05X%X", usec, inode)
}

// NewLongID returns a long queue ID (mail_queue.c:mail_queue_enter with
// var_long_queue_ids): base-52 seconds padded to 6, base-52 microseconds
// padded to 4, 'z', base-51 inode.
func NewLongID(sec int64, usec int, inode uint64) string {
	return encodeBase(uint64(sec), mqidLgSecBase, mqidLgSecPad) +
		encodeBase(uint64(usec), mqidLgUsecBase, mqidLgUsecPad) +
		string(rune(mqidLgInumSep)) +
		encodeBase(inode, mqidLgInumBase, 0)
}

// IDInode returns the inode number encoded in a queue ID, the way
// MQID_GET_INUM reads it (postsuper compares it with the file's inode).
func IDInode(id string) (uint64, error) {
	p, err := ParseID(id)
	if err != nil {
		return 0, err
	}
	return p.Inode, nil
}

// HashDir returns the hash subdirectory path ("7/" for depth 1, "7/A/" for
// depth 2) that global/mail_queue.c:mail_queue_dir puts in front of a
// queue file name in a hashed queue, "" for depth 0. For a long ID the
// levels come from "%05X" of its microseconds (MQID_LG_GET_HEX_USEC), so
// both ID kinds share the directories 0-9A-F; names shorter than the depth
// get '_' levels (util/dir_forest.c:dir_forest).
func HashDir(name string, depth int) string {
	if depth <= 0 || name == "" {
		return ""
	}
	key := name
	if z := longSep(name); z >= 0 {
		// safe_strtoul stops at the first bad character; MQID_LG_GET_HEX_USEC
		// ignores the error, so decode the valid prefix.
		var v uint64
		for _, c := range []byte(name[z-mqidLgUsecPad : z]) {
			d := lgValue[c]
			if d < 0 {
				break
			}
			v = v*mqidLgUsecBase + uint64(d)
		}
		key = fmt.Sprintf("%05X", v)
	}
	var b strings.Builder
	b.Grow(2 * depth)
	for i := 0; i < depth; i++ {
		if i < len(key) {
			b.WriteByte(key[i])
		} else {
			b.WriteByte('_')
		}
		b.WriteByte('/')
	}
	return b.String()
}
