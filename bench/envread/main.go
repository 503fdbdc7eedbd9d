// Command envread is make bench's envelope-read floor for Postfix: it opens
// every file below the given queue directories and reads its first 4 KB
// (one pread), with as many readers at once as qsurgeon's scan uses
// (filter.DefaultWorkers, or -j), one walker feeding them as qsurgeon's
// does. It prints the number of files and bytes read. A selection by
// envelope needs at least this much I/O: the envelope is at the start of
// each queue file. Nothing is parsed, nothing is written.
//
// -safe opens each file as qsurgeon does instead (safefs.OpenRegular: from
// a descriptor of ROOT with openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, then
// fstat): the floor plus the security checks, so that make bench can say
// how much of the gap between the floor and a selection they are.
//
//	envread [-j N] [-bytes 4096] [-safe] ROOT DIR...
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/qsurgeon/qsurgeon/filter"
	"github.com/qsurgeon/qsurgeon/internal/safefs"
	"golang.org/x/sys/unix"
)

func main() {
	workers := flag.Int("j", filter.DefaultWorkers(), "parallel readers (default: as many as qsurgeon's scan)")
	size := flag.Int("bytes", 4096, "bytes read from the start of each file")
	safe := flag.Bool("safe", false, "open as qsurgeon does: openat2 beneath ROOT, then fstat")
	flag.Parse()
	if flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: envread [-j N] [-bytes 4096] [-safe] ROOT DIR...")
		os.Exit(2)
	}
	root := flag.Arg(0)
	rootFD, err := safefs.OpenRoot(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "envread:", err)
		os.Exit(1)
	}
	paths := make(chan string, 1024)
	var files, bytes, errs atomic.Int64
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, *size)
			var st unix.Stat_t
			for p := range paths {
				var fd int
				var err error
				if *safe {
					rel, _ := filepath.Rel(root, p)
					fd, err = safefs.OpenRegular(rootFD, rel, &st)
				} else {
					// No symbolic link, no blocking on a special file, no
					// atime update: the floor's own open.
					fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOATIME|unix.O_CLOEXEC, 0)
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				n, _ := unix.Pread(fd, buf, 0)
				unix.Close(fd)
				files.Add(1)
				bytes.Add(int64(max(n, 0)))
			}
		}()
	}
	// One walker, directory by directory (Postfix's queues are hashed one
	// or two levels deep; maildrop is flat).
	var walk func(dir string)
	walk = func(dir string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs.Add(1)
			return
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case e.IsDir():
				walk(p)
			case e.Type().IsRegular():
				paths <- p
			}
		}
	}
	for _, d := range flag.Args()[1:] {
		walk(filepath.Join(root, d))
	}
	close(paths)
	wg.Wait()
	fmt.Printf("%d files %d bytes %d errors %d readers\n", files.Load(), bytes.Load(), errs.Load(), *workers)
}
