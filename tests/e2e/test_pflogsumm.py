"""
test_pflogsumm.py: the log of a real ternd, written to its daily file,
read by the programs administrators point at a Postfix log.  Mail is
accepted, delivered, deferred and bounced through a NextHop gateway;
commands are refused (relay denied, unknown user, ETRN, DATA with a NUL
octet) and AUTH fails.  pflogsumm must count each kind exactly, and
fail2ban's own postfix filter (mode=normal, the program name told to
match ternd's) must match the refusals Postfix's would, and only those.
Each line of a session carries its id, so that two sessions from one
address can be told apart.
"""

import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
from mailtest import AUTH_BAD_RE, auth_login, auth_plain  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase  # noqa: E402
from test_logging import PFLOGSUMM, file_log, wait_file_line  # noqa: E402

GW = "127.0.0.5"
SENDER = "sender@origin.test"
MSG = b"Subject: pflogsumm test\r\n\r\nHello.\r\n"
ALICE, ALICE_PW = "alice@local.test", "Alice-pass-7"
WRONG_PW = "Wrong-guess-3141"
STRANGER = "127.0.0.2"
OTHER = "127.0.0.4"
GUESSER = "127.0.0.3"
SID = r"session=([0-9A-F]{8})"


class LogTools(TernTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(PFLOGSUMM, os.X_OK):
            self.fail("%s not found: install the pflogsumm package"
                      % PFLOGSUMM)
        self.hop = NextHop(GW, rcpt={
            "bad@remote.test": "550 5.1.1 no such user",
            "later@remote.test": "451 4.3.0 try later", "*": "250"})
        self.addCleanup(self.hop.stop)
        self.t = mailtest.mail_tern(
            self, main={"log": "file", "debug": "no"},
            smtp={"relay_networks": "127.0.0.1/32", "auth_plaintext": "yes",
                  "auth_failure_delay": "0", "auth_max_failures": "20",
                  "max_errors": "50"},
            delivery={"gateway": "%s:%d" % (GW, self.hop.port),
                      "gateway_all": "yes", "starttls": "no",
                      "queue_interval": "1h"},
            users=[(ALICE, mailtest.crypt_hash(ALICE_PW))])
        self.make_traffic()
        self.log = os.path.join(self.t.dir, "all.log")
        with open(self.log, "w") as f:
            f.write(file_log(self.t.spool))
        with open(self.log) as f:
            self.text = f.read()

    def conn(self, source):
        c = self.t.raw(source=source)
        c.ehlo()
        return c

    def make_traffic(self):
        t = self.t
        # Accepted: 3 messages, 4 recipients.
        t.send_message(SENDER, ["one@remote.test"], MSG)
        t.send_message(SENDER, ["two@remote.test", "bad@remote.test"], MSG)
        t.send_message(SENDER, ["later@remote.test"], MSG)
        # Refused: two sessions from one stranger and one from another.
        for source, rcpt in ((STRANGER, "x@remote.test"),
                             (STRANGER, "y@remote.test"),
                             (OTHER, "z@remote.test")):
            c = self.conn(source)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r.line, "554 5.7.1 <%s>: Relay access denied"
                             % rcpt)
            if source == OTHER:
                r = c.cmd("RCPT TO:<no-such-user-7@local.test>")
                self.assertEqual(r.code, 550, r)
                self.assertEqual(c.cmd("RSET").code, 250)
                r = c.cmd("ETRN remote.test")
                self.assertEqual(r.code, 459, r)
            self.assertEqual(c.cmd("QUIT").code, 221)
            c.close()
        c = self.conn("127.0.0.1")
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<one@remote.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: x\r\n\r\na\x00b\r\n.\r\n")
        self.assertEqual(c.reply().code, 554)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        # AUTH failures: 3 PLAIN, 1 LOGIN.
        c = self.conn(GUESSER)
        for _ in range(3):
            self.assertReply(auth_plain(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertReply(auth_login(c, ALICE, WRONG_PW), AUTH_BAD_RE)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        for rcpt, status in (("one@remote.test", "sent"),
                             ("two@remote.test", "sent"),
                             ("bad@remote.test", "bounced"),
                             ("later@remote.test", "deferred"),
                             (SENDER, "sent")):
            wait_file_line(t.spool, r": [0-9A-Z]+: to=<%s>, relay=[^,]+, "
                           r"delay=[0-9.]+, dsn=[0-9.]+, status=%s \("
                           % (re.escape(rcpt), status))
        wait_file_line(t.spool, r"disconnect from \[%s\] .* %s$"
                       % (re.escape(GUESSER), SID))
        # What the next hop saw is what happened (it records a message
        # just after its 250, which tern may log first).
        deadline = time.monotonic() + 5
        while True:
            self.delivered = sum(len(m.rcpts) for m in self.hop.messages()
                                 if m.reply.startswith("250"))
            if self.delivered >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(self.delivered, 3, self.hop.summary())

    def test_pflogsumm_counts(self):
        p = subprocess.run([PFLOGSUMM, "--syslog-name=ternd", self.log],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())

        def total(what):
            m = re.search(r"^\s*([0-9]+)[km]?\s+%s\b" % what, out, re.M)
            self.assertIsNotNone(m, "no %r in:\n%s" % (what, out))
            return int(m.group(1))
        self.assertEqual(total("received"), 3, out)
        self.assertEqual(total("delivered"), self.delivered, out)
        self.assertEqual(total("deferred"), 1, out)
        self.assertEqual(total("bounced"), 1, out)
        # 3 relay denied, 1 unknown user, 1 ETRN, 1 DATA.
        self.assertEqual(total("rejected"), 6, out)

        def section(title):
            m = re.search(r"^%s\n-+\n(.*?)(?:\n\n|\Z)" % re.escape(title),
                          out, re.M | re.S)
            self.assertIsNotNone(m, "no %r section in:\n%s" % (title, out))
            return m.group(1)
        rej = section("message reject detail")
        # pflogsumm cuts a RCPT reason at its "; ", not those of the other
        # commands (nor Postfix's): DATA keeps the rest of the line, ETRN
        # only what follows its last "; ".
        for what, n in (("Relay access denied", 3),
                        ("Recipient address rejected: User unknown in "
                         "local recipient table", 1),
                        ("proto=ESMTP helo=<client.example> session=", 1),
                        ("554 5.6.0 Message contains a NUL octet; ", 1)):
            m = re.search(r"^\s+%s.*\(total: ([0-9]+)\)$" % re.escape(what),
                          rej, re.M)
            self.assertIsNotNone(m, "no %r in:\n%s" % (what, rej))
            self.assertEqual(int(m.group(1)), n, rej)
        self.assertEqual(re.findall(r"^  ([A-Z]+)$", rej, re.M),
                         ["DATA", "ETRN", "RCPT"], rej)
        # The SASL failures, among the smtpd warnings.
        warn = section("Warnings")
        m = re.search(r"^  smtpd \(total: ([0-9]+)\)$", warn, re.M)
        self.assertIsNotNone(m, warn)
        self.assertEqual(int(m.group(1)), 4, warn)
        fails = re.findall(r"^\s+([0-9]+)\s+unknown\[127\.0\.0\.3\]: SASL "
                           r"(PLAIN|LOGIN) authentication failed", warn,
                           re.M)
        self.assertEqual(sorted((m, int(n)) for n, m in fails),
                         [("LOGIN", 1), ("PLAIN", 3)], warn)

    def test_fail2ban_rejects(self):
        regex = shutil.which("fail2ban-regex")
        self.assertIsNotNone(regex, "fail2ban-regex is not installed "
                             "(fail2ban is in test_pkgs)")
        out = subprocess.run(
            [regex, "--print-no-missed", "--print-all-matched", self.log,
             'postfix[mode=normal, _daemon="ternd(?:/\\w+)?"]'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
            cwd=self.t.dir).stdout.decode("utf-8", "replace")
        # Relay denied three times, the unknown user once; not the ETRN
        # or DATA refusals, not the AUTH failures (mode=auth's).
        self.assertRegex(out, r"Lines: \d+ lines, 0 ignored, 4 matched",
                         out)
        for source, n in ((STRANGER, 2), (OTHER, 2)):
            self.assertEqual(len(re.findall(
                r"^\|\s+.*NOQUEUE: reject: RCPT from unknown\[%s\]: 5[05]"
                % re.escape(source), out, re.M)), n, out)

    def test_session_ids(self):
        """Both sessions of STRANGER: each line of one carries one id,
        not the other's."""
        lines = [ln for ln in self.text.splitlines()
                 if "[%s]" % STRANGER in ln]
        ids = []
        for ln in lines:
            m = re.search(r"[ ,]%s$" % SID, ln)
            self.assertIsNotNone(m, "no session id: %r" % ln)
            if m.group(1) not in ids:
                ids.append(m.group(1))
        self.assertEqual(len(ids), 2, "\n".join(lines))
        for sid in ids:
            mine = [ln for ln in lines if ln.endswith("session=" + sid)]
            self.assertEqual(len(mine), 3, "\n".join(lines))
            self.assertRegex(mine[0], r"ternd\[\d+\]: connect from \[%s\] "
                             % re.escape(STRANGER))
            self.assertRegex(mine[1], r"ternd/smtpd\[\d+\]: NOQUEUE: "
                             r"reject: RCPT from unknown\[%s\]: 554 5\.7\.1 "
                             r"<[xy]@remote\.test>: Relay access denied; "
                             r"from=<a@example\.org> to=<[xy]@remote\.test> "
                             r"proto=ESMTP helo=<[^>]+> session="
                             % re.escape(STRANGER))
            self.assertRegex(mine[2], r"ternd\[\d+\]: disconnect from "
                             r"\[%s\] " % re.escape(STRANGER))
