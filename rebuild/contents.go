package rebuild

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/qsurgeon/qsurgeon/qmailq"
)

// This file reads what qmail-send reads of a preprocessed message (info,
// local, remote) with qmailq's parsers, the one parser of qmail's formats,
// and says what qmail-send would make of it (notqmail qmail-send.c).

// contents adds the findings about the envelope files' contents. A message
// with a todo entry is skipped: qmail-send.c:todo_do() rewrites info,
// local and remote from the envelope first.
func (a *analysis) contents(m *msg) {
	l := a.s.layout
	if a.lost[m.ID] || m.has(qmailq.PartTodo) {
		return
	}
	idStr := itoa(m.ID)
	add := func(f finding) {
		f.ID, f.msg = idStr, m
		a.findings = append(a.findings, f)
	}
	if info := m.one(qmailq.PartInfo, l); info != nil {
		data, err := a.read(info, maxEnvelope)
		switch {
		case err != nil:
			add(finding{Problem: Problem{Kind: KindCorruptInfo, Path: info.Rel, Detail: "cannot be read: " + err.Error(), Fix: "none automatic"}, act: actNone})
		case len(data) == 0:
			// qmail-send.c:getinfo(): getln() finds no NUL-terminated line
			// and returns 0; pass_dochan() then logs "trouble opening
			// <channel file>; will try again later" and reschedules the
			// channel for ever.
			a.infoFromEvidence(m, KindEmptyInfo, info.Rel, "info is empty: qmail-send's getinfo() fails, so it logs 'trouble opening' for the message's channel files on every pass and never delivers any of its recipients (qmail-send.c:getinfo(), pass_dochan())", info)
		default:
			if _, perr := qmailq.ParseInfo(info.Rel, data); perr != nil && (data[0] != 'F' || bytes.IndexByte(data, 0) < 0) {
				// getinfo() wants a complete first record starting with F.
				a.infoFromEvidence(m, KindCorruptInfo, info.Rel, fmt.Sprintf("%v: qmail-send's getinfo() rejects it, logs 'trouble opening' on every pass and never delivers the message (qmail-send.c:getinfo())", perr), info)
			}
		}
	}
	if a.lost[m.ID] {
		return
	}
	for _, p := range []qmailq.Part{qmailq.PartLocal, qmailq.PartRemote} {
		n := m.one(p, l)
		if n == nil {
			continue
		}
		data, err := a.read(n, maxEnvelope)
		if err != nil {
			add(finding{Problem: Problem{Kind: KindCorruptChannel, Path: n.Rel, Detail: "cannot be read: " + err.Error(), Fix: "none automatic"}, act: actNone})
			continue
		}
		ch, perr := qmailq.ParseChannel(n.Rel, data)
		var ce *qmailq.CorruptError
		switch {
		case perr != nil && errors.Is(perr, io.ErrUnexpectedEOF) && errors.As(perr, &ce):
			// qmail-send.c:pass_dochan(): getln() without a NUL is taken
			// for the end of the file (flaghiteof); the cut recipient is
			// neither delivered nor bounced, and once the others are done
			// job_close() unlinks the file: the recipient is gone.
			cut := data[ce.Offset:]
			addr := string(cut[1:])
			keep := ch
			var fix string
			switch {
			case cut[0] == 'D':
				fix = fmt.Sprintf("move it to lost+found (with a note) and write back its %d complete records; the cut record was already done", len(ch.Recipients))
			default:
				full := a.completeAddr(m, addr)
				if full != "" {
					keep.Recipients = append(keep.Recipients, qmailq.ChanRecipient{Addr: full})
					fix = fmt.Sprintf("move it to lost+found (with a note) and write back its %d complete records plus %s (the only To:/Cc: address of the message that starts with %q)", len(ch.Recipients), full, addr)
				} else {
					fix = fmt.Sprintf("move it to lost+found (with a note naming the cut address %q, for the admin to re-inject) and write back its %d complete records", addr, len(ch.Recipients))
				}
			}
			detail := fmt.Sprintf("%v: the recipient %q is cut; qmail-send takes the cut record for the end of the file and never delivers nor bounces it (qmail-send.c:pass_dochan())", perr, addr)
			add(finding{Problem: Problem{Kind: KindChannelCut, Path: n.Rel, Detail: detail, Fix: fix}, act: actRewriteChannel, node: n, channel: &keep})
		case perr != nil:
			// pass_dochan(): a record that is neither T nor D logs "unknown
			// record type" and closes the job without reaching the end:
			// the recipients after it are never delivered and the message
			// never finishes.
			detail := fmt.Sprintf("%v: qmail-send logs 'unknown record type' on every pass; the recipients after it are never delivered and the message never finishes (qmail-send.c:pass_dochan())", perr)
			add(finding{Problem: Problem{Kind: KindCorruptChannel, Path: n.Rel, Detail: detail, Fix: fmt.Sprintf("move it to lost+found (with a note) and write back its %d T/D records", len(ch.Recipients))}, act: actRewriteChannel, node: n, channel: &ch})
		case ch.TrailingNUL:
			detail := "ends with an extra NUL: qmail-send reads it as an empty record of unknown type, so the message never finishes and its bounces are never sent (qmail-send.c:pass_dochan())"
			add(finding{Problem: Problem{Kind: KindChannelTrailing, Path: n.Rel, Detail: detail, Fix: fmt.Sprintf("move it to lost+found (with a note) and write back its %d records without the extra NUL", len(ch.Recipients))}, act: actRewriteChannel, node: n, channel: &ch})
		default:
			pending := 0
			for _, r := range ch.Recipients {
				if !r.Done {
					pending++
				}
			}
			if pending == 0 {
				// pass_dochan() reads the D records, hits the end with
				// numtodo 0 and job_close() unlinks the file.
				add(finding{Problem: Problem{Kind: KindChannelAllDone, Path: n.Rel, Detail: fmt.Sprintf("%d record(s), all done: qmail-send removes the file on its next pass (qmail-send.c:job_close()); qmail itself removes such a file as soon as its last recipient is done", len(ch.Recipients)), Fix: "none needed: qmail-send cleans it up"}, act: actNone})
			}
		}
	}
}

// completeAddr returns the one To:/Cc: address of the message that starts
// with the cut address prefix, "" unless there is exactly one.
func (a *analysis) completeAddr(m *msg, prefix string) string {
	mess := m.one(qmailq.PartMess, a.s.layout)
	if mess == nil || prefix == "" {
		return ""
	}
	head, err := a.head(mess)
	if err != nil {
		return ""
	}
	msg, err := mail.ReadMessage(bytes.NewReader(head))
	if err != nil {
		return ""
	}
	found := map[string]bool{}
	for _, h := range []string{"To", "Cc"} {
		list, _ := msg.Header.AddressList(h)
		for _, ad := range list {
			if len(ad.Address) > len(prefix) && strings.HasPrefix(ad.Address, prefix) {
				found[ad.Address] = true
			}
		}
	}
	if len(found) != 1 {
		return ""
	}
	for k := range found {
		return k
	}
	return ""
}

// infoFromEvidence adds the finding for a message whose info must be
// (re)created: with the sender the evidence gives, or, with no evidence,
// the whole message to lost+found: the null sender is never invented (a
// message sent as MAIL FROM:<> loses every failure report without trace).
// old is the broken info file to move aside first (nil when there is none).
func (a *analysis) infoFromEvidence(m *msg, kind, p, detail string, old *node) {
	idStr := itoa(m.ID)
	sender, evidence, ok := a.senderEvidence(m)
	if !ok {
		var nodes []*node
		for _, pt := range qmailq.Parts {
			nodes = append(nodes, m.parts[pt]...)
		}
		a.lost[m.ID] = true
		a.findings = append(a.findings, finding{Problem: Problem{Kind: kind, ID: idStr, Path: p,
			Detail: detail + "; nothing tells the envelope sender (no todo/intd, no Return-Path, SMTP-AUTH user or From: address)",
			Fix:    "move the message to lost+found with a note (never the null sender by guess): re-inject it with the right sender (qmail-inject -f SENDER) and the recipients of its local/remote files"},
			act: actLostFound, msg: m, nodes: nodes})
		return
	}
	shown := sender
	if shown == "" {
		shown = "<> (the null sender)"
	} else {
		shown = "<" + shown + ">"
	}
	fix := fmt.Sprintf("recreate info/%s with sender %s from %s; birth = the mess mtime", idStr, shown, evidence)
	var nodes []*node
	if old != nil {
		fix = "move the broken info to lost+found (with a note), then " + fix
		nodes = []*node{old}
	}
	a.findings = append(a.findings, finding{Problem: Problem{Kind: kind, ID: idStr, Path: p, Detail: detail, Fix: fix},
		act: actMakeInfo, msg: m, nodes: nodes, sender: sender, evidence: evidence})
}

// senderEvidence finds the envelope sender of a message whose info is
// gone, strongest evidence first: the F record of its todo/intd envelope
// (what qmail-queue was given); qmail-queue's own Received line saying
// "invoked for bounce" (qmail-send made it: the null sender,
// qmail-send.c:injectbounce()); a Return-Path header (qmail-local writes
// it before a forward re-injects the message with the same sender); the
// SMTP-AUTH user of its Received header; its From: address.
func (a *analysis) senderEvidence(m *msg) (sender, evidence string, ok bool) {
	l := a.s.layout
	for _, p := range []qmailq.Part{qmailq.PartTodo, qmailq.PartIntd} {
		if n := m.one(p, l); n != nil {
			if data, err := a.read(n, maxEnvelope); err == nil {
				if e, err := qmailq.ParseEnvelope(n.Rel, data); e.HasSender && (err == nil || len(e.Recipients) > 0) {
					return e.Sender, "the F record of " + n.Rel, true
				}
			}
		}
	}
	mess := m.one(qmailq.PartMess, l)
	if mess == nil {
		return "", "", false
	}
	head, err := a.head(mess)
	if err != nil || len(head) == 0 {
		return "", "", false
	}
	tr := qmailq.ParseTrace(head)
	if tr.Queue != nil {
		// qmail-send logged the sender when it preprocessed the message:
		// the same id, the same qmail-queue pid and the same size.
		seen := map[string]bool{}
		var sender string
		for _, in := range a.sendLog()[m.ID] {
			if in.QP == tr.Queue.QP && int64(in.Bytes) == mess.Size && in.Safe {
				seen[in.Sender], sender = true, in.Sender
			}
		}
		if len(seen) == 1 {
			return sender, fmt.Sprintf("qmail-send's log ('info msg %d: bytes %d from <%s> qp %d')", m.ID, mess.Size, sender, tr.Queue.QP), true
		}
	}
	if tr.Queue != nil && tr.Queue.Invoked == qmailq.InvokedForBounce {
		return "", "qmail-queue's Received line 'invoked for bounce' (a bounce qmail-send made)", true
	}
	if rp, found := returnPathOf(head); found {
		return rp, "its Return-Path header", true
	}
	if strings.Contains(tr.AuthUser, "@") {
		return tr.AuthUser, "the SMTP-AUTH user of its Received header", true
	}
	if msg, err := mail.ReadMessage(bytes.NewReader(head)); err == nil {
		if ad, err := mail.ParseAddress(msg.Header.Get("From")); err == nil && strings.Contains(ad.Address, "@") {
			return ad.Address, "its From: header (the weakest evidence: check it)", true
		}
	}
	return "", "", false
}

// sendLog reads the "info msg" lines of Options.SendLogs once. A log that
// cannot be read gives no evidence.
func (a *analysis) sendLog() map[uint64][]qmailq.SendLogInfo {
	if a.infoLog != nil || len(a.opts.SendLogs) == 0 {
		return a.infoLog
	}
	a.infoLog = map[uint64][]qmailq.SendLogInfo{}
	for _, p := range a.opts.SendLogs {
		f, err := os.Open(p)
		if err != nil {
			continue // the command checked it could open it
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			if in, ok := qmailq.ParseSendLogInfo(sc.Text()); ok {
				a.infoLog[in.ID] = append(a.infoLog[in.ID], in)
			}
		}
		f.Close()
	}
	return a.infoLog
}
