package qmailq

import (
	"encoding/binary"
	"io/fs"
	"math"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// A split subdirectory of a large queue holds tens of thousands of names,
// and a selection lists every directory of the queue twice (Walk's two
// passes). os.File.ReadDir reads 8 KB per getdents64 and allocates a
// DirEntry and a string per name; eachEntry reads a whole directory into
// one pooled buffer and hands out the names in place.

// dirBufSize is the first size of a listing buffer: one getdents64 call
// for a subdirectory of 20,000 messages' files (about 32 bytes each).
const dirBufSize = 1 << 20

var dirBufPool = sync.Pool{New: func() any { b := make([]byte, dirBufSize); return &b }}

// The fixed part of struct linux_dirent64: d_ino (8), d_off (8),
// d_reclen (2), d_type (1), then the NUL-terminated name.
const (
	direntReclenOff = 16
	direntTypeOff   = 18
	direntNameOff   = 19
)

// eachEntry lists the directory rel below the root, never through a
// symbolic link, and calls fn for every entry but "." and ".." in the
// order getdents64 gives them, as os.File.ReadDir would (readDir, whose
// errors it returns alike). fn is called only once the whole directory is
// read without error; name is valid during the call only. Where the file
// system leaves a type unknown (DT_UNKNOWN), the directory is listed again
// by readDir, which lstats those entries.
func (q *Queue) eachEntry(rel string, fn func(name []byte, typ fs.FileMode)) error {
	fd, err := openatBeneath(q.rootfd, rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: q.layout.Abs(rel), Err: err}
	}
	bp := dirBufPool.Get().(*[]byte)
	buf := *bp
	n := 0
	for {
		if len(buf)-n < 64<<10 {
			buf = append(buf[:cap(buf)], make([]byte, len(buf))...)
		}
		got, err := unix.Getdents(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			unix.Close(fd)
			putDirBuf(bp, buf)
			return fmtReadErr(rel, &os.PathError{Op: "readdirent", Path: q.layout.Abs(rel), Err: err})
		}
		if got <= 0 {
			break
		}
		n += got
	}
	unix.Close(fd)
	defer putDirBuf(bp, buf)
	// As os.File.ReadDir: the listing ends at a malformed record.
	recs := buf[:n]
	for pass := 0; pass < 2; pass++ {
		b := recs
		for len(b) >= direntNameOff {
			reclen := int(binary.NativeEndian.Uint16(b[direntReclenOff:]))
			if reclen < direntNameOff || reclen > len(b) {
				break
			}
			rec := b[:reclen]
			b = b[reclen:]
			name := rec[direntNameOff:]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if string(name) == "." || string(name) == ".." {
				continue
			}
			typ := direntMode(rec[direntTypeOff])
			if pass == 0 {
				if typ == ^fs.FileMode(0) {
					// Rare (some file systems have no d_type): do
					// what os.File.ReadDir does.
					ents, err := q.readDir(rel)
					if err != nil {
						return err
					}
					for _, de := range ents {
						fn([]byte(de.Name()), de.Type())
					}
					return nil
				}
				continue
			}
			fn(name, typ)
		}
	}
	return nil
}

// direntMode is os's direntType: the mode bits of a d_type, ^0 for unknown.
func direntMode(t byte) fs.FileMode {
	switch t {
	case unix.DT_BLK:
		return fs.ModeDevice
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_DIR:
		return fs.ModeDir
	case unix.DT_FIFO:
		return fs.ModeNamedPipe
	case unix.DT_LNK:
		return fs.ModeSymlink
	case unix.DT_REG:
		return 0
	case unix.DT_SOCK:
		return fs.ModeSocket
	}
	return ^fs.FileMode(0)
}

// parseIDBytes is ParseID of a name held in bytes (no string made).
func parseIDBytes(name []byte) (uint64, bool) {
	if len(name) == 0 || len(name) > 20 || (len(name) > 1 && name[0] == '0') {
		return 0, false
	}
	var n uint64
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false // out of range, as strconv.ParseUint says
		}
		n = n*10 + d
	}
	return n, true
}

// putDirBuf gives a listing buffer back to the pool unless it grew past
// four times its first size (a huge directory's buffer is not kept).
func putDirBuf(bp *[]byte, buf []byte) {
	if cap(buf) <= 4*dirBufSize {
		*bp = buf
		dirBufPool.Put(bp)
	}
}
