"""
test_anvil.py: the per-client limits across sessions, through the real
ternd.  Clients connect from loopback addresses outside relay_networks
(127.0.0.1/32 here, so 127.0.0.2 and up are strangers and 127.0.0.1 is
exempt): the connection rate and count answered 421 4.7.0 at the
greeting, connections that never sent a command not counted, the message
and recipient rates answered 450 4.7.1 across sessions, the AUTH penalty
of an address and of an account (454 4.7.0, even with the right
password, and over when auth_penalty has passed), the exemption of
client_limit_exempt, and the failed-AUTH log line counted by fail2ban's
own postfix filter as the jail shipped in contrib/fail2ban sets it.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import AUTH_BAD_RE, AUTH_OK_RE, auth_login, auth_plain  # noqa
from ternlib import HOSTNAME, TernTestCase, wait_for  # noqa: E402

STRANGER = "127.0.0.2"
OTHER = "127.0.0.3"
EXEMPT = "127.0.0.1"
RELAY = "127.0.0.1/32"

ALICE, ALICE_PW = "alice@local.test", "Alice-pass-7"
BOB, BOB_PW = "bob@local.test", "Bob-pass-8"
WRONG_PW = "Wrong-guess-3141"

CONN_RATE = ("421 4.7.0 %s Error: too many connections from your address "
             "per unit of time" % HOSTNAME)
CONN_COUNT = ("421 4.7.0 %s Error: too many connections from your address"
              % HOSTNAME)
MSG_RATE = "450 4.7.1 Error: too much mail from %s"
RCPT_RATE = "450 4.7.1 Error: too many recipients from %s"
AUTH_PENALTY = re.compile(r"^454 4\.7\.0 Error: too many authentication "
                          r"failures from 127\.0\.0\.\d+, try again later$")
USER_PENALTY = ("454 4.7.0 Error: too many authentication failures for "
                "this account, try again later")
OK = "250 2.0.0 Ok"
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
BYE = "221 2.0.0 Bye"

JAIL = os.path.join(ternlib.SRCDIR, "contrib", "fail2ban", "jail.d",
                    "tern.conf")


class Limits(TernTestCase):

    def start(self, **smtp):
        conf = {"relay_networks": RELAY}
        conf.update(smtp)
        self.t = self.tern(smtp=conf, local=["local.test"])
        return self.t

    def served(self, source):
        """One whole session that says EHLO and QUIT."""
        c = self.t.raw(source=source)
        c.ehlo()
        self.assertReply(c.cmd("QUIT"), BYE)
        c.expect_eof()

    def refused(self, source, line):
        c = self.t.raw(greet=False, source=source)
        self.assertEqual([r.line for r in c.rest()], [line])

    def disconnects(self, source):
        return len(re.findall(r"disconnect from \[%s\]" % re.escape(source),
                              self.t.log()))

    def test_connection_rate(self):
        self.start(max_connection_rate=3)
        for _ in range(3):
            self.served(STRANGER)
        self.refused(STRANGER, CONN_RATE)
        self.refused(STRANGER, CONN_RATE)
        self.t.wait_log(r"refused connection from \[127\.0\.0\.2\]: "
                        r"max_connection_rate$")
        # Another address, and an exempt one, are not affected.
        self.served(OTHER)
        for _ in range(6):
            self.served(EXEMPT)

    def test_unserved_connections_not_counted(self):
        self.start(max_connection_rate=2)
        # Greeted and gone without a command, five times over.
        for i in range(5):
            c = self.t.raw(source=STRANGER)
            c.close()
            wait_for(lambda: self.disconnects(STRANGER) == i + 1,
                     ternlib.REPLY_TIMEOUT, "disconnect %d" % (i + 1))
        # Nor is one that only said QUIT.
        c = self.t.raw(source=STRANGER)
        self.assertReply(c.cmd("QUIT"), BYE)
        c.expect_eof()
        wait_for(lambda: self.disconnects(STRANGER) == 6,
                 ternlib.REPLY_TIMEOUT, "disconnect 6")
        self.served(STRANGER)
        self.served(STRANGER)
        self.refused(STRANGER, CONN_RATE)

    def test_connection_count(self):
        self.start(max_connections_per_ip=2)
        a = self.t.raw(source=STRANGER)
        self.t.raw(source=STRANGER)
        self.refused(STRANGER, CONN_COUNT)
        self.t.wait_log(r"refused connection from \[127\.0\.0\.2\]: "
                        r"max_connections_per_ip$")
        held = [self.t.raw(source=EXEMPT) for _ in range(4)]
        for c in held:
            self.assertReply(c.cmd("NOOP"), OK)
        self.assertReply(a.cmd("QUIT"), BYE)
        a.expect_eof()
        c = self.t.raw(source=STRANGER)
        self.assertReply(c.cmd("NOOP"), OK)

    def test_message_rate_across_sessions(self):
        self.start(max_message_rate=2)
        c = self.t.raw(source=STRANGER)
        c.ehlo()
        for _ in range(2):
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
            self.assertReply(c.cmd("RSET"), OK)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                         MSG_RATE % STRANGER)
        c = self.t.raw(source=STRANGER)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                         MSG_RATE % STRANGER)
        self.t.wait_log(r"ternd/smtpd\[\d+\]: NOQUEUE: reject: MAIL from "
                        r"unknown\[127\.0\.0\.2\]: 450 4\.7\.1 Error: too "
                        r"much mail from 127\.0\.0\.2; proto=ESMTP "
                        r"helo=<[^>]+> session=[0-9A-F]{8}$")
        for source, n in ((OTHER, 2), (EXEMPT, 5)):
            c = self.t.raw(source=source)
            c.ehlo()
            for _ in range(n):
                self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                                 MAIL_OK)
                self.assertReply(c.cmd("RSET"), OK)

    def test_recipient_rate_across_sessions(self):
        self.start(max_recipient_rate=3)
        c = self.t.raw(source=STRANGER)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for i in range(2):
            self.assertReply(c.cmd("RCPT TO:<u%d@local.test>" % i), RCPT_OK)
        c = self.t.raw(source=STRANGER)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<u3@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("RCPT TO:<u4@local.test>"),
                         RCPT_RATE % STRANGER)
        # The recipients accepted still make a message.
        self.assertEqual(c.cmd("DATA").code, 354)
        self.assertReply(c.cmd("Subject: x\r\n\r\nHello.\r\n."),
                         ternlib.QUEUED_RE)
        c = self.t.raw(source=EXEMPT)
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for i in range(5):
            self.assertReply(c.cmd("RCPT TO:<e%d@local.test>" % i), RCPT_OK)

    def test_explicit_exemption(self):
        # client_limit_exempt replaces the default (relay_networks).
        self.start(max_connection_rate=1,
                   client_limit_exempt="127.0.0.2/32")
        for _ in range(3):
            self.served(STRANGER)
        self.served(EXEMPT)
        self.refused(EXEMPT, CONN_RATE)


class AuthLimits(TernTestCase):

    def start(self, main=None, **smtp):
        conf = {"relay_networks": RELAY, "auth_plaintext": "yes",
                "auth_failure_delay": "0", "auth_max_failures": "20",
                "auth_mechanisms": "PLAIN LOGIN CRAM-MD5"}
        conf.update(smtp)
        self.t = mailtest.mail_tern(
            self, smtp=conf, main=main,
            users=[(ALICE, mailtest.crypt_hash(ALICE_PW)),
                   (BOB, mailtest.crypt_hash(BOB_PW))])
        return self.t

    def conn(self, source):
        c = self.t.raw(source=source)
        c.ehlo()
        return c

    def test_address_penalty(self):
        self.start(max_auth_failure_rate=3, auth_penalty="2s")
        c = self.conn(STRANGER)
        self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertReply(auth_login(c, BOB, WRONG_PW), AUTH_BAD_RE)
        c = self.conn(STRANGER)
        self.assertReply(auth_plain(c, ALICE, WRONG_PW + "x"), AUTH_BAD_RE)
        self.t.wait_log(r"AUTH from \[127\.0\.0\.2\]: max_auth_failure_rate"
                        r" reached: refused for 2s, session=[0-9A-F]{8}$")
        # Refused at once, the right password too, in this session and
        # the next; the session itself goes on.
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), AUTH_PENALTY)
        self.assertReply(c.cmd("NOOP"), OK)
        c = self.conn(STRANGER)
        self.assertReply(c.cmd("AUTH LOGIN"), AUTH_PENALTY)
        # Other addresses are not affected.
        c = self.conn(OTHER)
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), AUTH_OK_RE)
        # The penalty ends.
        def logs_in():
            c = self.conn(STRANGER)
            return auth_plain(c, ALICE, ALICE_PW).code == 235
        wait_for(logs_in, 10.0, "the end of the penalty", interval=0.5)

    def test_account_penalty(self):
        self.start(max_auth_failure_rate=100,
                   max_auth_failure_rate_per_user=3)
        for i, source in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4")):
            c = self.conn(source)
            self.assertReply(auth_plain(c, ALICE.upper() if i else ALICE,
                                        WRONG_PW), AUTH_BAD_RE)
        self.t.wait_log(r"AUTH from \[127\.0\.0\.4\]: "
                        r"max_auth_failure_rate_per_user reached")
        c = self.conn("127.0.0.5")
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), USER_PENALTY)
        self.assertReply(auth_login(c, ALICE, ALICE_PW), USER_PENALTY)
        self.assertReply(auth_plain(c, BOB, BOB_PW), AUTH_OK_RE)

    def test_exempt_never_penalised(self):
        self.start(max_auth_failure_rate=2,
                   max_auth_failure_rate_per_user=2)
        c = self.conn(EXEMPT)
        for _ in range(5):
            self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), AUTH_OK_RE)
        c = self.conn(STRANGER)
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), AUTH_OK_RE)

    def test_fail2ban_counts_failures(self):
        """The failed-AUTH lines of a real ternd, logging to its daily
        file in the classic syslog layout, are what fail2ban's stock
        postfix filter matches with the parameters the shipped jail
        gives it: one match per failure, none for a success, a cancelled
        exchange or a refusal during the penalty."""
        regex = shutil.which("fail2ban-regex")
        self.assertIsNotNone(regex, "fail2ban-regex is not installed "
                             "(fail2ban is in test_pkgs)")
        with open(JAIL) as f:
            m = re.search(r"^filter\s*=\s*(.+)$", f.read(), re.M)
        self.assertIsNotNone(m, "no filter line in %s" % JAIL)
        self.start(max_auth_failure_rate=4, auth_penalty="1m",
                   main={"log": "file"})
        for source in ("127.0.0.2", "127.0.0.3"):
            c = self.conn(source)
            self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
            self.assertReply(auth_login(c, BOB, WRONG_PW), AUTH_BAD_RE)
            self.assertEqual(c.cmd("AUTH CRAM-MD5").code, 334)
            self.assertEqual(c.cmd("*").code, 501)
        c = self.conn("127.0.0.2")
        self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_PENALTY)
        c = self.conn(EXEMPT)
        self.assertReply(auth_plain(c, ALICE, ALICE_PW), AUTH_OK_RE)
        logdir = self.t.path("log")

        def daily():
            names = [n for n in os.listdir(logdir)] if os.path.isdir(
                logdir) else []
            for n in names:
                with open(os.path.join(logdir, n)) as f:
                    text = f.read()
                if "ternd[%d]: " % self.t.proc.pid in text and \
                        "max_auth_failure_rate reached" in text:
                    return os.path.join(logdir, n), text
            return None
        path, text = wait_for(daily, ternlib.REPLY_TIMEOUT,
                              "the daily log file")
        failures = re.findall(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ "
                              r"ternd/smtpd\[\d+\]: warning: "
                              r"unknown\[127\.0\.0\.\d\]: SASL "
                              r"(?:PLAIN|LOGIN) authentication failed: ",
                              text, re.M)
        self.assertEqual(len(failures), 6, text)
        out = subprocess.run(
            [regex, "--print-no-missed", "--print-all-matched", path,
             m.group(1).strip()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
            cwd=self.t.dir).stdout.decode("utf-8", "replace")
        self.assertRegex(out, r"Lines: \d+ lines, 0 ignored, 6 matched",
                         out)
        for source, n in (("127.0.0.2", 4), ("127.0.0.3", 2)):
            self.assertEqual(len(re.findall(
                r"^\|\s+.*unknown\[%s\]: SASL" % re.escape(source), out,
                re.M)), n, out)


if __name__ == "__main__":
    ternlib.main()
