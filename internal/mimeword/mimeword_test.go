package mimeword

import (
	"io"
	"mime"
	"strings"
	"testing"
)

func TestDecodeHeader(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?b?44GK6I236YCB?=", "お荷送"},
		// A character split across two encoded words survives.
		{"=?utf-8?b?44GK6I23?= =?utf-8?b?6YCB?=", "お荷送"},
		{"=?iso-2022-jp?b?GyRCJCoyWUoqGyhC?=", "お荷物"},
		{"\x1b$B$*2YJ*\x1b(B", "お荷物"},
		{"raw 8-bit UTF-8: Привет", "raw 8-bit UTF-8: Привет"},
		{"=?ISO-8859-1?Q?caf=E9?=", "café"},
		{"=?koi8-r?b?8NLJ18XU?=", "Привет"},
		{"bad \xff byte", "bad \u00ff byte"},
		{"=?broken", "=?broken"},
	}
	for _, c := range cases {
		if got := DecodeHeader(c.in); got != c.want {
			t.Errorf("DecodeHeader(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCharsetReader(t *testing.T) {
	d := mime.WordDecoder{CharsetReader: CharsetReader}
	got, err := d.DecodeHeader("=?shift_jis?b?gqiJ1w==?=")
	if err != nil || got != "お荷" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := CharsetReader("x-no-such-charset", strings.NewReader("")); err == nil {
		t.Fatal("unknown charset accepted")
	}
	r, _ := CharsetReader("utf-8", strings.NewReader("ok"))
	b, _ := io.ReadAll(r)
	if string(b) != "ok" {
		t.Fatalf("utf-8 passthrough: %q", b)
	}
}
