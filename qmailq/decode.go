package qmailq

import "github.com/qsurgeon/qsurgeon/internal/mimeword"

// DecodeHeader turns a raw header value into readable UTF-8: RFC 2047
// encoded words in any charset, raw ISO-2022-JP, raw UTF-8, else
// Windows-1252 (see internal/mimeword). It never fails.
func DecodeHeader(raw string) string { return mimeword.DecodeHeader(raw) }
