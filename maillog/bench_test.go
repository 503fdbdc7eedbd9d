package maillog

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadAll reads the real incident log repeated to 32 MB, parsing
// every line and folding it into accounts. bench/maillog.sh compares the
// CLI with grep -c on a 1 GB file.
func BenchmarkReadAll(b *testing.B) {
	src, err := os.ReadFile("../testdata/queues/postfix-incident/maillog.txt")
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for len(data) < 32<<20 {
		data = append(data, src...)
	}
	f := filepath.Join(b.TempDir(), "maillog")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := NewAnalyzer()
		st := ReadAll([]string{f}, Options{}, a)
		if st.Unknown != 0 || len(a.Accounts(nil)) != 6 {
			b.Fatalf("%+v", st)
		}
	}
}
