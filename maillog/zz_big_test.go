package maillog

import (
	"os"
	"testing"
)

func TestZZBig(t *testing.T) {
	f := os.Getenv("BIGLOG")
	if f == "" {
		t.Skip()
	}
	a := NewAnalyzer()
	st := ReadAll([]string{f}, Options{}, a)
	t.Logf("%d lines %d accounts", st.Lines, len(a.Accounts(nil)))
}
