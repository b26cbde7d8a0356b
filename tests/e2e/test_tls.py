"""
test_tls.py: TLS on ternd's SMTP ports with a self-signed certificate the
test makes.  STARTTLS is offered on listen and submission_listen only when
tls_cert and tls_key are set; a message sent over it carries the protocol
version and cipher in our Received header; openssl s_client completes the
handshake; TLS 1.1 is refused while 1.2 and 1.3 work; smtps_listen greets
inside TLS; the STARTTLS command injection (commands pipelined behind
STARTTLS in plaintext) is not answered inside TLS; the state after
STARTTLS is reset (a new EHLO is needed, a second STARTTLS is refused, a
parameter is refused); SIGHUP with new certificate files gives new
sessions the new certificate while an open TLS session goes on.
"""

import os
import re
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import client_context, has_keyword, starttls  # noqa: E402
from ternlib import HELO, HOSTNAME, TernTestCase, queued_id  # noqa: E402

MSG = b"Subject: tls test\r\n\r\nHello over TLS.\r\n"
SENDER = "sender@origin.test"
REMOTE = "r@remote.test"	# relayed from 127.0.0.1: stays queued
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"

# Our Received header names the TLS session the way Postfix does:
# "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))".
USING_RE = r"\(using (TLSv1\.[0-9]) with cipher ([A-Za-z0-9_-]+)[ )]"


class TLSCase(TernTestCase):

    def setUp(self):
        super().setUp()
        self.sub_port = ternlib.free_port()
        self.smtps_port = ternlib.free_port()
        # One user, so that AUTH has something to offer.
        self.t = mailtest.mail_tern(self, tls=True, smtp={
            "submission_listen": "127.0.0.1:%d" % self.sub_port,
            "smtps_listen": "127.0.0.1:%d" % self.smtps_port},
            users=[("u@local.test", "-")])

    def conn(self, port=None):
        c = ternlib.Conn(port or self.t.port)
        self.t.conns.append(c)
        return c

    def tls_session(self, port=None, ctx=None):
        """Connected, EHLO, STARTTLS, EHLO again."""
        c = self.conn(port)
        c.ehlo()
        starttls(c, ctx)
        c.ehlo()
        return c

    def s_client(self, port, *extra):
        try:
            p = subprocess.run(
                [mailtest.OPENSSL, "s_client", "-starttls", "smtp",
                 "-connect", "127.0.0.1:%d" % port, "-brief"] + list(extra),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("openssl s_client did not finish within 20s")
        return (p.returncode, p.stdout.decode("utf-8", "replace") +
                p.stderr.decode("utf-8", "replace"))


class Advertise(TLSCase):

    def test_starttls_advertised_on_listen(self):
        c = self.conn()
        r = c.ehlo()
        self.assertTrue(has_keyword(r, "STARTTLS"),
                        "STARTTLS not advertised with tls_cert set: %r" % r)
        starttls(c)
        r = c.ehlo()
        self.assertFalse(has_keyword(r, "STARTTLS"),
                         "STARTTLS advertised again inside TLS: %r" % r)

    def test_starttls_advertised_on_submission(self):
        c = self.conn(self.sub_port)
        self.assertReply(c.greeting, "220 %s ESMTP tern" % HOSTNAME)
        r = c.ehlo()
        self.assertTrue(has_keyword(r, "STARTTLS"),
                        "STARTTLS not advertised on submission: %r" % r)
        starttls(c)
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(c.ehlo().code, 250)

    def test_no_auth_without_users(self):
        t = mailtest.mail_tern(self, tls=True)
        c = ternlib.Conn(t.port)
        t.conns.append(c)
        c.ehlo()
        starttls(c)
        self.assertFalse(has_keyword(c.ehlo(), "AUTH"),
                         "AUTH offered with nobody to log in")
        self.assertEqual(c.cmd("AUTH PLAIN").code, 503)


class NoCertificate(TernTestCase):

    def test_not_advertised_without_cert(self):
        t = self.tern()
        c = t.raw()
        r = c.ehlo()
        self.assertFalse(has_keyword(r, "STARTTLS"),
                         "STARTTLS advertised without a certificate: %r" % r)
        r = c.cmd("STARTTLS")
        self.assertIn(r.code, (454, 502), r)
        self.assertEqual(c.cmd("NOOP").code, 250, "the session is still "
                         "usable in plaintext")


class Session(TLSCase):

    def test_message_over_starttls_received_header(self):
        s = smtplib.SMTP("127.0.0.1", self.t.port, local_hostname=HELO,
                         timeout=ternlib.REPLY_TIMEOUT)
        try:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"))
            code, _ = s.starttls(context=client_context())
            self.assertEqual(code, 220)
            version, cipher = s.sock.version(), s.sock.cipher()[0]
            s.ehlo()
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.sendmail(SENDER, [REMOTE], MSG), {})
            self.assertEqual(s.quit()[0], 221)
        finally:
            s.close()
        qids = self.t.queued()
        self.assertEqual(len(qids), 1, "the message was not queued")
        data = self.t.read_msg(qids[0])
        self.assertTrue(data.endswith(MSG), data[-200:])
        hdr = mailtest.received_header(data)
        m = re.search(USING_RE, hdr)
        self.assertIsNotNone(m, "no TLS in the Received header: %r" % hdr)
        self.assertEqual(m.group(1), version, hdr)
        self.assertEqual(m.group(2), cipher, hdr)
        self.assertIn("id %s" % qids[0], hdr)

    def test_plaintext_received_header_has_no_tls(self):
        qid = self.t.send_message(SENDER, [REMOTE], MSG)
        hdr = mailtest.received_header(self.t.read_msg(qid))
        self.assertNotRegex(hdr, r"\(using ")

    def test_openssl_s_client_handshake(self):
        rc, out = self.s_client(self.t.port)
        self.assertEqual(rc, 0, out)
        self.assertIn("CONNECTION ESTABLISHED", out)
        self.assertNotIn("Didn't find STARTTLS", out)
        self.assertRegex(out, r"Protocol version: TLSv1\.[23]")

    def test_tls11_refused(self):
        # The client is made willing to speak TLS 1.1 (security level
        # 0), so the refusal comes from the server.
        rc, out = self.s_client(self.t.port, "-tls1_1", "-cipher",
                                "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(rc, 0, out)
        self.assertNotIn("CONNECTION ESTABLISHED", out)
        c = self.conn()
        c.ehlo()
        ctx = client_context(minimum=ssl.TLSVersion.TLSv1_1,
                             maximum=ssl.TLSVersion.TLSv1_1,
                             seclevel0=True)
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            starttls(c, ctx)
        # Refused by version only: TLS 1.2 and 1.3 both work.
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=v):
                c = self.tls_session(ctx=client_context(minimum=v,
                                                        maximum=v))
                self.assertEqual(c.sock.version(), v.name.replace(
                    "TLSv1_", "TLSv1."))
                self.assertEqual(c.cmd("NOOP").code, 250)

    def test_implicit_tls_on_smtps(self):
        s = smtplib.SMTP_SSL("127.0.0.1", self.smtps_port,
                             local_hostname=HELO, context=client_context(),
                             timeout=ternlib.REPLY_TIMEOUT)
        try:
            # The greeting came inside TLS: SMTP_SSL read it after the
            # handshake.
            self.assertIn(s.sock.version(), ("TLSv1.2", "TLSv1.3"))
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertFalse(s.has_extn("starttls"),
                             "STARTTLS offered inside implicit TLS")
            self.assertTrue(s.has_extn("auth"),
                            "AUTH not offered on smtps_listen")
            self.assertEqual(s.noop()[0], 250)
            self.assertEqual(s.quit()[0], 221)
        finally:
            s.close()
        # Raw: the greeting line itself, inside TLS.
        c = mailtest.implicit_tls_conn(self.smtps_port)
        self.t.conns.append(c)
        self.assertReply(c.greeting, "220 %s ESMTP tern" % HOSTNAME)
        self.assertEqual(c.ehlo().code, 250)

    def test_smtps_says_nothing_in_plaintext(self):
        c = ternlib.Conn(self.smtps_port, greet=False)
        self.t.conns.append(c)
        c.no_reply(0.5)

    def test_stalled_handshake_closed(self):
        # A client that never finishes a handshake holds nothing: after
        # tls_timeout the connection is closed, on both ports.
        t = mailtest.mail_tern(self, tls=True, smtp={
            "smtps_listen": "127.0.0.1:%d" % ternlib.free_port(),
            "tls_timeout": "1s"})
        port = int(t.smtp["smtps_listen"].rsplit(":", 1)[1])
        a = ternlib.Conn(port, greet=False, timeout=5.0)
        t.conns.append(a)
        b = ternlib.Conn(t.port, timeout=5.0)
        t.conns.append(b)
        b.ehlo()
        self.assertEqual(b.cmd("STARTTLS").code, 220)
        a.expect_eof(timeout=5.0)
        b.expect_eof(timeout=5.0)
        for _ in range(2):
            t.wait_log(r"disconnect from \[127\.0\.0\.1\] .*\(timeout "
                       r"during the TLS handshake\)")

    def test_starttls_injection_discarded(self):
        c = self.conn()
        c.ehlo()
        c.send(b"STARTTLS\r\nRSET\r\n")
        r = c.reply()
        self.assertRegex(r.line, mailtest.READY_RE)
        if c.buf:
            self.fail("plaintext reply to the injected command: %r" % c.buf)
        mailtest.tls_handshake(c)
        # Nothing may come inside TLS before we say something: the RSET
        # sent in plaintext must have been thrown away.
        c.no_reply(0.5)
        r = c.ehlo()
        self.assertEqual(r.code, 250)
        self.assertReply(c.cmd("NOOP"), "250 2.0.0 Ok")

    def test_injected_transaction_not_run(self):
        c = self.conn()
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@origin.test>\r\n"
               b"RCPT TO:<" + REMOTE.encode() + b">\r\nDATA\r\n")
        self.assertRegex(c.reply().line, mailtest.READY_RE)
        self.assertEqual(c.buf, b"")
        mailtest.tls_handshake(c)
        c.no_reply(0.5)
        c.ehlo()
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE),
                         "503 5.5.1 Error: need MAIL command")
        self.assertEqual(self.t.queued(), [])

    def test_mail_after_starttls_needs_ehlo(self):
        c = self.conn()
        c.ehlo()
        starttls(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), NEED_HELO)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), "250 2.1.0 Ok")

    def test_starttls_twice(self):
        c = self.tls_session()
        r = c.cmd("STARTTLS")
        self.assertRegex(r.line, r"^503 5\.5\.1 ")
        self.assertEqual(c.cmd("NOOP").code, 250, "still usable in TLS")

    def test_starttls_with_parameter(self):
        c = self.conn()
        c.ehlo()
        r = c.cmd("STARTTLS now")
        self.assertRegex(r.line, r"^501 5\.5\.[0-9] ")
        self.assertEqual(c.buf, b"")
        # Still plaintext and STARTTLS still possible.
        self.assertTrue(has_keyword(c.ehlo(), "STARTTLS"))
        starttls(c)
        self.assertEqual(c.ehlo().code, 250)

    def test_whole_transaction_in_tls(self):
        c = self.tls_session()
        qid = queued_id(c.mail(SENDER, [REMOTE], MSG))
        self.assertReply(c.cmd("QUIT"), "221 2.0.0 Bye")
        self.assertIn(qid, self.t.queued())
        self.assertRegex(mailtest.received_header(self.t.read_msg(qid)),
                         USING_RE)


class Reload(TLSCase):

    def test_sighup_new_certificate(self):
        old_fp = mailtest.cert_fingerprint(self.t.cert)
        old = self.tls_session()
        self.assertEqual(mailtest.peer_fingerprint(old.sock), old_fp)
        # New files made elsewhere, then renamed over the configured ones.
        newdir = os.path.join(self.t.dir, "tls-new")
        cert, key = mailtest.make_cert(newdir, "new.test.example")
        new_fp = mailtest.cert_fingerprint(cert)
        self.assertNotEqual(new_fp, old_fp)
        os.replace(key, self.t.key)
        os.replace(cert, self.t.cert)
        self.t.reload()
        new = self.tls_session()
        self.assertEqual(mailtest.peer_fingerprint(new.sock), new_fp,
                         "a session after SIGHUP still gets the old "
                         "certificate")
        # The session opened before goes on, with its certificate.
        self.assertEqual(mailtest.peer_fingerprint(old.sock), old_fp)
        qid = queued_id(old.mail(SENDER, [REMOTE], MSG))
        self.assertReply(old.cmd("QUIT"), "221 2.0.0 Bye")
        self.assertIn(qid, self.t.queued())
        rc, out = self.s_client(self.sub_port)
        self.assertEqual(rc, 0, out)
        self.assertIn("CN = new.test.example", out,
                      "submission_listen did not take the new certificate")


if __name__ == "__main__":
    ternlib.main()
