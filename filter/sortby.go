package filter

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/qsurgeon/qsurgeon/queue"
)

// SortFields are the keys SortBy accepts, with what each orders by.
var SortFields = map[string]string{
	"queue":      "queue, then ID (the default order)",
	"id":         "queue ID",
	"arrival":    "arrival time, oldest first",
	"age":        "age, oldest first (the same as arrival)",
	"size":       "message size",
	"sender":     "envelope sender",
	"recipients": "number of pending recipients",
	"sasl-user":  "SASL user",
	"client":     "client address",
}

// SortFieldNames is SortFields' keys in a fixed order, for help texts.
var SortFieldNames = []string{"queue", "id", "arrival", "age", "size", "sender", "recipients", "sasl-user", "client"}

// SortBy orders results by one field (exipick's --sort); a leading '-'
// reverses it (--sort -size: largest first). Ties keep Compare's order, so
// the output stays deterministic.
func SortBy(rs []Result, field string) error {
	desc := strings.HasPrefix(field, "-")
	f := strings.TrimPrefix(field, "-")
	var key func(a, b *queue.Message) int
	switch f {
	case "queue":
		key = func(a, b *queue.Message) int { return 0 }
	case "id":
		key = func(a, b *queue.Message) int { return CompareIDs(a.ID, b.ID) }
	case "arrival", "age":
		key = func(a, b *queue.Message) int { return a.Arrival.Compare(b.Arrival) }
	case "size":
		key = func(a, b *queue.Message) int { return cmp.Compare(a.Size, b.Size) }
	case "sender":
		key = func(a, b *queue.Message) int { return strings.Compare(a.Sender, b.Sender) }
	case "recipients":
		key = func(a, b *queue.Message) int { return cmp.Compare(len(a.Pending()), len(b.Pending())) }
	case "sasl-user":
		key = func(a, b *queue.Message) int { return strings.Compare(a.SASLUser, b.SASLUser) }
	case "client":
		key = func(a, b *queue.Message) int { return strings.Compare(a.ClientAddr, b.ClientAddr) }
	default:
		return fmt.Errorf("--sort %q: want one of %s (a leading '-' reverses)", field, strings.Join(SortFieldNames, ", "))
	}
	slices.SortStableFunc(rs, func(a, b Result) int {
		c := key(a.Msg, b.Msg)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return Compare(a.Msg, b.Msg)
	})
	return nil
}
