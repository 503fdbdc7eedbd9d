package journal

import "syscall"

// noFollow refuses a symbolic link as the journal file itself.
const noFollow = syscall.O_NOFOLLOW
