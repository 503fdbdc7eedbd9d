package filter

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCriteriaTable: every field of Spec but Invert and Now is filled by
// exactly one criterion, whose accessors reach that very field, so a new
// Spec field without its table entry (or an entry pointing at the wrong
// field) fails here; every flag is unique and documented.
func TestCriteriaTable(t *testing.T) {
	st := reflect.TypeOf(Spec{})
	byField := map[string]int{}
	flags := map[string]bool{}
	for i := range Criteria {
		c := &Criteria[i]
		byField[c.Field]++
		if flags[c.Flag] || !strings.HasPrefix(c.Flag, "--") {
			t.Errorf("flag %q is repeated or not a long flag", c.Flag)
		}
		flags[c.Flag] = true
		if c.Usage == "" || c.test == nil {
			t.Errorf("%s has no usage or no test", c.Flag)
		}
		if _, ok := st.FieldByName(c.Field); !ok {
			t.Errorf("%s fills Spec.%s, which does not exist", c.Flag, c.Field)
			continue
		}
		var s Spec
		if !s.Empty() || c.IsSet(&s) {
			t.Fatalf("%s: the zero Spec is not empty", c.Flag)
		}
		switch c.Kind {
		case List:
			*c.Strings(&s) = []string{"x"}
		case Switch:
			*c.Bool(&s) = true
		case Value:
			v := "1K"
			if f, _ := st.FieldByName(c.Field); f.Type == reflect.TypeOf(time.Duration(0)) {
				v = "1h"
			}
			if err := c.Parse(&s, v); err != nil {
				t.Fatalf("%s %s: %v", c.Flag, v, err)
			}
		}
		if reflect.ValueOf(s).FieldByName(c.Field).IsZero() {
			t.Errorf("%s does not fill Spec.%s", c.Flag, c.Field)
		}
		if !c.IsSet(&s) || s.Empty() {
			t.Errorf("%s set, but IsSet %v, Empty %v", c.Flag, c.IsSet(&s), s.Empty())
		}
	}
	for i := 0; i < st.NumField(); i++ {
		name := st.Field(i).Name
		if name == "Invert" || name == "Now" || name == "Extra" {
			continue // not criteria, and the caller's own (Custom)
		}
		if byField[name] != 1 {
			t.Errorf("Spec.%s is filled by %d criteria, want 1", name, byField[name])
		}
	}
}

// TestCriteriaCheapestFirst: the predicates run in table order, so the
// table lists envelope criteria before log, headers and body ones, except
// that a log criterion that only looks at a flag the reader already set
// (--bouncing) may come early.
func TestCriteriaCheapestFirst(t *testing.T) {
	seen := CostEnvelope
	for _, c := range Criteria {
		if c.Flag == FlagBouncing {
			continue
		}
		if c.Cost < seen {
			t.Errorf("%s (%s) comes after a %s criterion", c.Flag, c.Cost, seen)
		}
		seen = max(seen, c.Cost)
	}
}
