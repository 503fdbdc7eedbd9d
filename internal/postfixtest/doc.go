// Package postfixtest runs a real, private Postfix instance for integration
// tests, so that tests read queue files a real Postfix wrote.
//
// An Instance lives in its own temporary directory (config, queue, data,
// mailbox and log directories) and never touches /etc/postfix or
// /var/spool/postfix. Everything listens on 127.0.0.1 only: smtpd on a free
// port, an optional SASL authentication server (the Dovecot auth protocol,
// served in-process, so smtpd records a real sasl_username) and optional
// smtp-sink receivers. Outbound mail goes to relayhost [127.0.0.1]:PORT where
// nothing listens, so remote recipients defer ("Connection refused") until a
// test points the relay at a sink with SetRelay.
//
// Typical use:
//
//	func TestSomething(t *testing.T) {
//		postfixtest.Require(t)
//		pf := postfixtest.New(t, postfixtest.Options{SASLUsers: map[string]string{"alice@example.com": "pw"}})
//		pf.Start()
//		id := pf.SendSMTP(postfixtest.Mail{From: "a@example.com", To: []string{"x@remote.example"},
//			AuthUser: "alice@example.com", AuthPass: "pw"})
//		pf.WaitQueued(1, 20*time.Second)
//		path := pf.QueueFile(id) // deferred/<hash>/<id>, written by the real cleanup(8)
//		...
//	}
//
// Requirements: root, and the Debian packages postfix (postfix, postconf,
// postsuper, postqueue, postcat, postdrop, sendmail, smtp-sink). No Cyrus
// SASL packages are needed. Require fails the test when the toolchain is
// missing; only QSURGEON_NO_POSTFIX=1 turns that into a skip (CI never sets it).
//
// Every method that takes no error return fails the test (t.Fatal) on error.
// Failures go to the testing.TB given to New or StartSink, so call the
// methods from that test's goroutine (not from goroutines or parallel
// subtests); the Try... variants return errors instead. All waits are bounded, and t.Cleanup
// stops Postfix, kills leftover Postfix and smtp-sink processes of this
// instance and removes the directory, also when the test fails. Directories
// are $TMPDIR/qsurgeon-postfixtest-* and qsurgeon-smtpsink-* (mode 0755, so
// unprivileged Postfix processes can reach them; t.TempDir's parent is
// 0700). Each holds owner.pid; a later test process kills and removes the
// leftovers of a test process that died before its cleanup ran.
//
// API overview:
//
//	Available() error; Require(t); MailVersion(); FreePort()
//	New(t, Options) *Instance          // not started; fields ConfigDir, QueueDir, DataDir, MailDir, LogFile, SMTPAddr, ClosedRelay
//	(*Instance).Start / Stop / Running / Reload / SetRelay(addr) / Flush
//	(*Instance).Postconf(settings...) / PostconfValue(name)
//	(*Instance).SendSMTP(Mail) id / TrySendSMTP(Mail) (id, error) / SendSMTPAuth(user, pass, from, to, data) id
//	(*Instance).Sendmail(from, to, data) / TrySendmail
//	(*Instance).Postqueue() []QueueEntry / PostqueueJSON() []map[string]any
//	(*Instance).WaitQueue(timeout, what, cond) / WaitQueued(n, timeout)
//	(*Instance).QueueFiles() map[id]relpath / QueueFile(id) abspath
//	(*Instance).Postcat(args...) string / Postsuper(args...) (string, error)
//	(*Instance).Maillog() / MaillogTail(n) / SASLLog()
//	StartSink(t, extraArgs...) *Sink;  (*Sink).Messages() / WaitMessages(n, timeout) / Stop()
//	NewMessage(from, to, subject, body) []byte
package postfixtest
