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
// Every method that takes no error return fails the test (t.Fatal) on error,
// so call them from the test goroutine. All waits are bounded, and t.Cleanup
// stops Postfix, kills leftover Postfix and smtp-sink processes of this
// instance and removes the directory, also when the test fails.
package postfixtest
