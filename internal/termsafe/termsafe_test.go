package termsafe

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"Grüße 日本", "Grüße 日本"},
		{"a\x1b[31mred", `a\x1b[31mred`},
		{"tab\tnl\ncr\r", `tab\tnl\ncr\r`},
		{"del\x7f", `del\x7f`},
		{"csi\u009b31m", `csi\u009b31m`},
		{"c1 \u0080 \u009f", `c1 \u0080 \u009f`},
		{"bad \xff\xfe utf8 \xc2", `bad \xff\xfe utf8 \xc2`},
		{"nul\x00", `nul\x00`},
		{"\u00a0nbsp ok", "\u00a0nbsp ok"},
		{"evil\u202egpj.exe", `evil\u202egpj.exe`},
		{"iso\u2066x\u2069 lrm\u200e", `iso\u2066x\u2069 lrm\u200e`},
		{"zwj \u200d kept", "zwj \u200d kept"},
	} {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestText(t *testing.T) {
	in := "line1\r\nline2\tx\n\x1b]0;title\x07\u009b\n"
	want := "line1\nline2\tx\n\\x1b]0;title\\x07\\u009b\n"
	if got := Text(in); got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

// Nothing String or Text returns may hold a control character other than
// what Text keeps, or invalid UTF-8, whatever the input.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a\x1bb", "\u009b", "\xff", "x\r\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, out := range map[string]string{"String": String(s), "Text": Text(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", name, s, out)
			}
			for _, r := range out {
				if unsafeRune(r) && !(name == "Text" && textKeep(r)) {
					t.Fatalf("%s(%q) = %q holds %U", name, s, out, r)
				}
			}
		}
	})
}

func TestJSON(t *testing.T) {
	v := map[string]string{"s": "a\u009b31m\x7f\u0085 ok é"}
	b, _ := json.Marshal(v)
	out := JSON(b)
	for _, c := range out {
		if c == 0x7f {
			t.Fatalf("DEL left in %q", out)
		}
	}
	for _, r := range string(out) {
		if unsafeRune(r) {
			t.Fatalf("%U left in %q", r, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["s"] != v["s"] {
		t.Fatalf("JSON changed the value: %q -> %q (%v)", v["s"], back["s"], err)
	}
}
