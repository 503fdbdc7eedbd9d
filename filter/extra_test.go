package filter

import (
	"testing"

	"github.com/qsurgeon/qsurgeon/queue"
)

func TestExtraCriterion(t *testing.T) {
	tied := Custom{Flag: "--logged-sasl-user", Match: func(m *queue.Message) (bool, string) {
		if m.ID == "A1" {
			return true, "log says so"
		}
		return false, ""
	}}
	s := Spec{Extra: []Custom{tied}}
	if s.Empty() {
		t.Fatal("a Spec with an Extra criterion is not empty")
	}
	m, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	ok, why := m.Match(&queue.Message{ID: "A1"}, nil)
	if !ok || len(why) != 1 || why[0] != "log says so" {
		t.Errorf("A1: %v %v", ok, why)
	}
	if ok, _ := m.Match(&queue.Message{ID: "B2"}, nil); ok {
		t.Error("B2 selected")
	}
	s.Invert = true
	m, _ = Compile(s)
	if ok, why := m.Match(&queue.Message{ID: "B2"}, nil); !ok || len(why) != 1 || why[0] != "invert: --logged-sasl-user does not hold" {
		t.Errorf("inverted B2: %v %v", ok, why)
	}
}
