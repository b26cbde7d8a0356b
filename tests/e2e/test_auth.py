"""
test_auth.py: SMTP AUTH (RFC 4954) against the users file: PLAIN (with
and without an initial response), LOGIN and CRAM-MD5, right and wrong;
AUTH offered only inside TLS unless auth_plaintext = yes; a cancelled
exchange; the failure delay that doubles and the disconnection after
auth_max_failures; the log line naming the client and user and never the
password; relaying allowed only after AUTH (delivered to a gateway
NextHop), and every address trick refused without it; submission_listen
and smtps_listen refusing MAIL before AUTH; the sender ownership check
and auth_sender_check = no; a hash made by `ternctl passwd`.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import (AUTH_BAD_RE, AUTH_OK_RE, auth_cram,  # noqa: E402
                      auth_login, auth_plain, b64, has_keyword, starttls)
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id  # noqa: E402

ALICE, ALICE_PW = "alice@local.test", "Alice-pass-7"
BOB, BOB_PW = "bob@local.test", "Bob-pass-8"
DAVE, DAVE_PW = "dave@local.test", "Dave-pass-9"	# {PLAIN}: CRAM-MD5 too
CAROL = "carol@local.test"				# "-": no login
ALIAS = "al@local.test"					# -> alice
WRONG_PW = "Wrong-guess-3141"

# Complete, so that submission adds no Date or Message-ID to it.
MSG = (b"Subject: auth test\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n"
       b"Message-ID: <auth-test@client.example>\r\n\r\nHello.\r\n")
REMOTE = "r@remote.test"
GW = "127.0.0.2"
NOT_US = "192.0.2.0/24"		# relay_networks that 127.0.0.1 is not in

MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
AUTH_MECHS = "AUTH PLAIN LOGIN CRAM-MD5"
NEED_AUTH_RE = re.compile(r"^530 5\.7\.0 ")
NOT_OWNER_RE = re.compile(r"^553 5\.7\.1 ")
LIMIT_RE = re.compile(r"^421 4\.7\.0 ")


def relay_denied(addr):
    return "554 5.7.1 <%s>: Relay access denied" % addr


class AuthCase(TernTestCase):
    """A ternd with TLS, the users of the module, submission and smtps
    ports, and a relay_networks that does not hold 127.0.0.1."""

    smtp = {}
    delivery = None

    def setUp(self):
        super().setUp()
        self.sub_port = ternlib.free_port()
        self.smtps_port = ternlib.free_port()
        smtp = {"submission_listen": "127.0.0.1:%d" % self.sub_port,
                "smtps_listen": "127.0.0.1:%d" % self.smtps_port,
                "relay_networks": NOT_US,
                "auth_failure_delay": "0",
                "auth_mechanisms": "PLAIN LOGIN CRAM-MD5"}
        smtp.update(self.smtp)
        self.t = self.start_tern(smtp)

    def start_tern(self, smtp, delivery=None):
        return mailtest.mail_tern(
            self, tls=True, smtp=smtp, delivery=delivery or self.delivery,
            users=[(ALICE, mailtest.crypt_hash(ALICE_PW)),
                   (BOB, mailtest.crypt_hash(BOB_PW)),
                   (DAVE, mailtest.plain_secret(DAVE_PW)),
                   (CAROL, "-")],
            aliases=[(ALIAS, [ALICE])])

    def conn(self, port=None, t=None):
        t = t or self.t
        c = ternlib.Conn(port or t.port)
        t.conns.append(c)
        return c

    def tls(self, port=None):
        """A session in TLS, after the second EHLO (returned with it)."""
        c = self.conn(port)
        c.ehlo()
        starttls(c)
        return c, c.ehlo()

    def login(self, port=None, user=ALICE, password=ALICE_PW):
        c, _ = self.tls(port)
        self.assertRegex(auth_plain(c, user, password).line, AUTH_OK_RE)
        return c


class Advertise(AuthCase):

    def test_not_offered_before_starttls(self):
        c = self.conn()
        r = c.ehlo()
        self.assertFalse(has_keyword(r, "AUTH"),
                         "AUTH offered in plaintext: %r" % r)
        self.assertTrue(has_keyword(r, "STARTTLS"), r)
        r = auth_plain(c, ALICE, ALICE_PW)
        self.assertRegex(r.line, r"^(530 5\.7\.0|538 5\.7\.11) ")
        # Still no identity: relaying stays refused.
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE), relay_denied(REMOTE))

    def test_offered_after_starttls(self):
        _, r = self.tls()
        self.assertIn(AUTH_MECHS, mailtest.ehlo_keywords(r))

    def test_submission_offers_auth_only_in_tls(self):
        c = self.conn(self.sub_port)
        r = c.ehlo()
        self.assertTrue(has_keyword(r, "STARTTLS"), r)
        self.assertFalse(has_keyword(r, "AUTH"), r)
        starttls(c)
        self.assertIn(AUTH_MECHS, mailtest.ehlo_keywords(c.ehlo()))

    def test_auth_plaintext_yes(self):
        t = self.start_tern({"auth_plaintext": "yes",
                             "auth_failure_delay": "0"})
        c = self.conn(t=t)
        r = c.ehlo()
        # The default auth_mechanisms: alice's hash rules out CRAM-MD5.
        self.assertIn("AUTH PLAIN LOGIN", mailtest.ehlo_keywords(r))
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Mechanisms(AuthCase):

    def check(self, method, user, password, expect):
        c, _ = self.tls()
        r = method(c, user, password)
        self.assertRegex(r.line, expect)
        self.assertEqual(c.cmd("NOOP").code, 250)
        return c

    def test_plain_initial_response(self):
        self.check(auth_plain, ALICE, ALICE_PW, AUTH_OK_RE)
        self.check(auth_plain, DAVE, DAVE_PW, AUTH_OK_RE)

    def test_plain_without_initial_response(self):
        self.check(lambda c, u, p: auth_plain(c, u, p, initial=False),
                   BOB, BOB_PW, AUTH_OK_RE)

    def test_plain_wrong(self):
        self.check(auth_plain, ALICE, WRONG_PW, AUTH_BAD_RE)
        self.check(auth_plain, ALICE, BOB_PW, AUTH_BAD_RE)
        self.check(auth_plain, "nosuch@local.test", WRONG_PW, AUTH_BAD_RE)
        self.check(auth_plain, CAROL, "-", AUTH_BAD_RE)
        self.check(auth_plain, CAROL, WRONG_PW, AUTH_BAD_RE)

    def test_login(self):
        self.check(auth_login, ALICE, ALICE_PW, AUTH_OK_RE)
        self.check(auth_login, DAVE, DAVE_PW, AUTH_OK_RE)

    def test_login_wrong(self):
        self.check(auth_login, ALICE, WRONG_PW, AUTH_BAD_RE)

    def test_cram_md5(self):
        self.check(auth_cram, DAVE, DAVE_PW, AUTH_OK_RE)

    def test_cram_md5_wrong(self):
        self.check(auth_cram, DAVE, WRONG_PW, AUTH_BAD_RE)

    def test_cram_md5_needs_plain_secret(self):
        # alice has only a crypt hash: no way to check an HMAC, even with
        # her right password.
        self.check(auth_cram, ALICE, ALICE_PW, AUTH_BAD_RE)

    def test_cancel(self):
        c, _ = self.tls()
        for verb in ("AUTH LOGIN", "AUTH PLAIN", "AUTH CRAM-MD5"):
            with self.subTest(verb=verb):
                self.assertEqual(c.cmd(verb).code, 334)
                self.assertRegex(c.cmd("*").line, r"^501 5\.[0-9]\.[0-9] ")
        # LOGIN cancelled at the password prompt.
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        self.assertEqual(c.cmd(b64(ALICE)).code, 334)
        self.assertRegex(c.cmd("*").line, r"^501 ")
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)

    def test_bad_base64(self):
        c, _ = self.tls()
        self.assertRegex(c.cmd("AUTH PLAIN !!!notbase64").line, r"^501 ")
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)

    def test_unknown_mechanism(self):
        c, _ = self.tls()
        self.assertRegex(c.cmd("AUTH DIGEST-MD5").line, r"^504 5\.")
        self.assertRegex(c.cmd("AUTH").line, r"^501 ")

    def test_auth_twice(self):
        c = self.login()
        self.assertRegex(auth_plain(c, BOB, BOB_PW).line, r"^503 5\.5\.1 ")

    def test_auth_in_transaction(self):
        c, _ = self.tls()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line,
                         r"^503 5\.5\.1 ")

    def test_authenticated_message_queued(self):
        c = self.login()
        qid = queued_id(c.mail(ALICE, [BOB], MSG))
        c.cmd("QUIT")
        self.assertTrue(qid)


class Failures(AuthCase):

    def test_delay_doubles_then_disconnect(self):
        # Plaintext (auth_plaintext = yes): only the delays are measured.
        t = self.start_tern({"auth_plaintext": "yes",
                             "auth_failure_delay": "200ms",
                             "auth_max_failures": "3"})
        c = self.conn(t=t)
        c.ehlo()
        times = []
        for _ in range(2):
            start = time.monotonic()
            r = auth_plain(c, ALICE, WRONG_PW)
            times.append(time.monotonic() - start)
            self.assertRegex(r.line, AUTH_BAD_RE)
        # Lower bounds only: the delay is a minimum, and the password
        # check adds its own time (long on a loaded machine).  The second
        # failure waits at least twice auth_failure_delay.
        self.assertGreaterEqual(times[0], 0.18, times)
        self.assertGreaterEqual(times[1], 0.38, "the second failure is not "
                                "slower: %r" % times)
        # The third failure ends the session: 421 4.7.0 (after a 535 or
        # instead of it), then the connection closes.
        c.send("AUTH PLAIN %s\r\n" % mailtest.plain_response(ALICE,
                                                            WRONG_PW))
        out = c.rest(timeout=5.0)
        self.assertIn(len(out), (1, 2), out)
        if len(out) == 2:
            self.assertRegex(out[0].line, AUTH_BAD_RE)
        self.assertRegex(out[-1].line, LIMIT_RE)
        # The limit is the session's: a new one may log in.
        c = self.conn(t=t)
        c.ehlo()
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)

    def test_log_names_client_and_user_not_password(self):
        c, _ = self.tls()
        good = mailtest.plain_response(BOB, BOB_PW)
        self.assertRegex(c.cmd("AUTH PLAIN " + good).line, AUTH_OK_RE)
        c, _ = self.tls()
        bad = mailtest.plain_response(ALICE, WRONG_PW)
        self.assertRegex(c.cmd("AUTH PLAIN " + bad).line, AUTH_BAD_RE)
        self.assertRegex(auth_login(c, ALICE, WRONG_PW + "x").line,
                         AUTH_BAD_RE)
        # A line that is not a protocol trace, names the client, the user
        # and authentication.
        self.t.wait_log(r"(?i)^(?!.*(?:<<<|>>>))(?=.*\b127\.0\.0\.1\b)"
                        r"(?=.*auth)(?=.*alice@local\.test).*$")
        log = self.t.log()
        for secret in (WRONG_PW, WRONG_PW + "x", BOB_PW, b64(WRONG_PW),
                       b64(WRONG_PW + "x"), b64(BOB_PW), good, bad):
            self.assertNotIn(secret, log, "a password is in the log")


    def test_stray_sasl_lines_not_logged(self):
        # ternd logs every command at debug level: a SASL answer sent
        # after AUTH was refused, or a mangled AUTH, must not be.
        c, _ = self.tls(self.sub_port)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % ALICE).code, 530)
        ir = mailtest.plain_response(ALICE, ALICE_PW)
        c.cmd("AUTH LOGIN")
        c.cmd("*")
        c.cmd(b64(ALICE_PW))
        c.cmd("AUTH\tPLAIN " + ir)
        c.cmd("AUTH NOSUCH " + ir)
        self.assertEqual(c.cmd("NOOP").code, 250)
        log = self.t.log()
        self.assertIn("(not a command,", log)
        for secret in (ALICE_PW, b64(ALICE_PW), ir):
            self.assertNotIn(secret, log, "a credential is in the log")

    def test_identity_dropped_by_starttls(self):
        # RFC 3207 4.2: what was learnt in plaintext does not hold.
        t = self.start_tern({"auth_plaintext": "yes",
                             "relay_networks": NOT_US})
        c = self.conn(t=t)
        c.ehlo()
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        starttls(c)
        self.assertTrue(has_keyword(c.ehlo(), "AUTH"),
                        "AUTH not offered again under TLS")
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % ALICE).code, 250)
        self.assertRegex(c.cmd("RCPT TO:<x@remote.test>").line,
                         r"^554 5\.7\.1 ")
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Relay(AuthCase):

    def setUp(self):
        self.hop = NextHop(GW)
        self.addCleanup(self.hop.stop)
        self.delivery = {"gateway": "%s:%d" % (GW, self.hop.port),
                         "gateway_all": "yes", "queue_interval": "1s"}
        super().setUp()

    def test_refused_without_auth(self):
        c = self.conn()
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE),
                         relay_denied(REMOTE))
        c, _ = self.tls()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE),
                         relay_denied(REMOTE))
        self.assertEqual(self.t.queued(), [])

    def test_address_tricks_refused_without_auth(self):
        c, _ = self.tls()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        for rcpt in ("user%remote.test@local.test",
                     "remote.test!user@local.test",
                     "@a.example:user@remote.test",
                     "@local.test:user@remote.test",
                     "user@remote.test@local.test",
                     '"user@remote.test"@local.test',
                     '"user%remote.test"@local.test',
                     "user@[127.0.0.1]",
                     "user@remote.test.",
                     "user@local.test.remote.test"):
            with self.subTest(rcpt=rcpt):
                r = c.cmd("RCPT TO:<%s>" % rcpt)
                self.assertGreaterEqual(r.code, 500, r)
        self.assertRegex(c.cmd("DATA").line, r"^503 ")
        self.assertEqual(self.t.queued(), [])

    def test_relayed_after_auth(self):
        c = self.login()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE), RCPT_OK)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(MSG))
        qid = queued_id(c.reply())
        c.cmd("QUIT")
        msg = self.hop.wait_messages(1, mailtest.DELIVER_TIMEOUT)[0]
        self.assertEqual(msg.mail_from, ALICE)
        self.assertEqual(msg.rcpts, [REMOTE])
        self.assertTrue(msg.data.endswith(MSG), msg.data[-200:])
        self.assertIn("id %s" % qid,
                      mailtest.received_header(msg.data))

    def test_relayed_after_auth_on_submission(self):
        c = self.login(self.sub_port, DAVE, DAVE_PW)
        qid = queued_id(c.mail(DAVE, [REMOTE], MSG))
        c.cmd("QUIT")
        msg = self.hop.wait_messages(1, mailtest.DELIVER_TIMEOUT)[0]
        self.assertEqual((msg.mail_from, msg.rcpts), (DAVE, [REMOTE]))
        self.assertIn("id %s" % qid, mailtest.received_header(msg.data))


class Submission(AuthCase):

    def test_mail_before_auth_refused(self):
        c = self.conn(self.sub_port)
        c.ehlo()
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % ALICE).line,
                         NEED_AUTH_RE)
        starttls(c)
        c.ehlo()
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % ALICE).line,
                         NEED_AUTH_RE)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        qid = queued_id(c.mail(ALICE, [BOB], MSG))
        self.assertTrue(qid)

    def test_failed_auth_still_refused(self):
        c, _ = self.tls(self.sub_port)
        self.assertRegex(auth_plain(c, ALICE, WRONG_PW).line, AUTH_BAD_RE)
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % ALICE).line,
                         NEED_AUTH_RE)

    def test_smtps_mail_before_auth_refused(self):
        c = mailtest.implicit_tls_conn(self.smtps_port)
        self.t.conns.append(c)
        self.assertEqual(c.greeting.code, 220)
        r = c.ehlo()
        self.assertIn(AUTH_MECHS, mailtest.ehlo_keywords(r))
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % ALICE).line,
                         NEED_AUTH_RE)
        self.assertRegex(auth_cram(c, DAVE, DAVE_PW).line, AUTH_OK_RE)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % DAVE), MAIL_OK)

    def test_listen_port_needs_no_auth(self):
        # Mail to a local user on the MX port needs no AUTH.
        c = self.conn()
        c.ehlo()
        self.assertTrue(queued_id(c.mail("someone@origin.test", [BOB],
                                         MSG)))


class Sender(AuthCase):

    def test_own_address_and_alias(self):
        c = self.login()
        for sender in (ALICE, ALIAS, "Alice@Local.Test"):
            with self.subTest(sender=sender):
                self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), MAIL_OK)
                self.assertReply(c.cmd("RSET"), "250 2.0.0 Ok")

    def test_other_address_refused(self):
        c = self.login()
        for sender in (BOB, "nosuch@local.test", "alice@remote.test"):
            with self.subTest(sender=sender):
                self.assertRegex(c.cmd("MAIL FROM:<%s>" % sender).line,
                                 NOT_OWNER_RE)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)

    def test_submission_other_address_refused(self):
        c = self.login(self.sub_port)
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % BOB).line, NOT_OWNER_RE)

    def test_unauthenticated_not_checked(self):
        c = self.conn()
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % BOB), MAIL_OK)

    def test_sender_check_off(self):
        t = self.start_tern({"auth_sender_check": "no",
                             "auth_plaintext": "yes"})
        c = self.conn(t=t)
        c.ehlo()
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % BOB), MAIL_OK)


class Ternctl(AuthCase):

    def setUp(self):
        TernTestCase.setUp(self)

    def passwd(self, password):
        ctl = mailtest.ternctl_path()
        if not ctl or not os.access(ctl, os.X_OK):
            self.skipTest("ternctl not built (TERN_BUILDDIR=%r)"
                          % mailtest.BUILDDIR)
        try:
            p = subprocess.run([ctl, "passwd"],
                               input=password.encode() + b"\n",
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("ternctl passwd did not finish within 30s")
        out = p.stdout.decode("utf-8", "replace").strip()
        err = p.stderr.decode("utf-8", "replace")
        if p.returncode != 0 and not out and not err.strip():
            self.skipTest("ternctl passwd is not there yet (exit %d, "
                          "no output)" % p.returncode)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(len(out.splitlines()), 1, out)
        self.assertTrue(out.startswith("$"), out)
        self.assertNotIn(password, out + err)
        return out

    def test_passwd_hash_authenticates(self):
        pw = "Erin-pass-2718"
        h1 = self.passwd(pw)
        self.assertNotEqual(h1, self.passwd(pw), "the hash is not salted")
        erin = "erin@local.test"
        t = mailtest.mail_tern(self, users=[(erin, h1)],
                               smtp={"auth_plaintext": "yes",
                                     "auth_failure_delay": "0"})
        c = self.conn(t=t)
        c.ehlo()
        self.assertRegex(auth_plain(c, erin, pw).line, AUTH_OK_RE)
        c = self.conn(t=t)
        c.ehlo()
        self.assertRegex(auth_plain(c, erin, pw + "x").line, AUTH_BAD_RE)


if __name__ == "__main__":
    ternlib.main()
