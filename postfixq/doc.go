// Package postfixq reads Postfix queue directories directly, without
// postcat, postqueue or showq, and without a helper process per message.
//
// The format lives in record.go (record types from global/rec_type.h, the
// Reader and Writer of global/record.c, the fixed-width C and p records);
// id.go has queue IDs (global/mail_queue.[ch]); envelope.go turns a queue
// file into a queue.Message the way qmgr reads it; content.go reads
// headers and bodies; logs.go parses the defer and bounce logfiles; spool.go
// walks a queue directory (queue.Source) and knows its paths.
//
// Choices worth knowing:
//
//   - A file whose owner bits are not rwx is still being written
//     (global/mail_open_ok.c). Walk does not list it; it reports it through
//     Options.OnNote (NoteInProgress) and leaves it alone. Read of such a
//     file returns ErrInProgress.
//   - Message.ClientAddr, ClientName and HELO come from the actual
//     connection attributes (client_address, client_name, helo_name) and
//     fall back to the log_* ones ("IPv6:" prefix removed); every named
//     attribute stays available, raw, in Message.Attrs.
//   - The envelope read never reads the message content: it jumps from the
//     M record to the X record with the C record's fields 1 and 2 (as qmgr
//     does), so damage reachable only from the content (for example a
//     truncated milter-added header in the heap after E) is found by
//     ReadContent/WriteRaw, not by ParseEnvelope.
//   - Record lengths follow record.c:rec_get_raw, which reads up to five
//     length bytes (it stops at shift >= 32) and refuses a length that is
//     negative as a C int; Writer always writes the shortest form.
//
// Nothing in this package prints or exits; corrupt input gives a
// *CorruptError naming the file and offset.
package postfixq
