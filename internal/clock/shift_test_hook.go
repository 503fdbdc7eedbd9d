//go:build qsurgeon_clockshift

package clock

import (
	"fmt"
	"os"
	"time"
)

// ShiftEnv names the environment variable a qsurgeon_clockshift build reads
// at start-up: a time.ParseDuration string such as "8760h". It exists only
// in that test build (make test-clock-ahead); release binaries ignore it.
const ShiftEnv = "QSURGEON_CLOCK_SHIFT"

func init() {
	v := os.Getenv(ShiftEnv)
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "clock: %s=%q: %v\n", ShiftEnv, v, err)
		os.Exit(2)
	}
	shift = d
}
