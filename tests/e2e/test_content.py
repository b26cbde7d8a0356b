"""
test_content.py: what ternd takes in as message content and commands,
through the real daemon on loopback.  A NUL octet in message data is
refused with 554 5.6.0 (or dropped under bare_newlines = normalize) and
never reaches a next hop; a line that held a NUL never ends the data; a
NUL in a command is named as such; RSET and QUIT take no arguments; the
command that goes past max_errors gets the 421 as its only reply and the
connection closes; a quoted local part that needs no quotes is the same
address as the plain one for local users, aliases and the sender check;
pickup removes a maildrop file with a NUL in it.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import DELIVER_TIMEOUT, maildir_names  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, queued_id  # noqa: E402

OK = "250 2.0.0 Ok"
BYE = "221 2.0.0 Bye"
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
NUL_DATA = "554 5.6.0 Message contains a NUL octet"
NUL_CMD = "500 5.5.2 Error: NUL octet in command"
UNKNOWN = "500 5.5.2 Error: command not recognized"
RSET_SYNTAX = "501 5.5.4 Syntax: RSET"
QUIT_SYNTAX = "501 5.5.4 Syntax: QUIT"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
TOO_MANY_ERRORS = "421 4.7.0 %s Error: too many errors" % HOSTNAME
NOT_OWNED = ("553 5.7.1 <%s>: Sender address rejected: not owned by the "
             "authenticated user")
GW = "127.0.0.2"

# After a line with a NUL, a "." line and commands: a next hop that drops
# NULs before it looks for the end would take the "." as the end.
SMUGGLE = (b"Subject: nul\r\n\r\nbefore\r\n\x00.\r\n"
           b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\n"
           b"DATA\r\nsmuggled\r\n.\r\n")


class NulInData(TernTestCase):

    def start_data(self, c):
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)

    def check_refused(self, t, c):
        self.assertReply(c.reply(), NUL_DATA)
        c.send(b"NOOP\r\nQUIT\r\n")
        self.assertEqual([r.line for r in c.rest()], [OK, BYE])
        self.assertEqual(t.queued(), [])

    def test_refused_by_default(self):
        t = self.tern(smtp={"bare_newlines": None})
        for body in (b"Subject: x\r\n\r\na\x00b\r\n.\r\n",
                     b"Subject: x\r\n\r\n\x00\r\n.\r\n",
                     b"Subject: x\r\n\r\n.\x00\r\n.\r\n", SMUGGLE):
            with self.subTest(body=body):
                c = t.session()
                self.start_data(c)
                c.send(body)
                self.check_refused(t, c)
        self.assertRegex(t.log(), r"reject: DATA from \[127\.0\.0\.1\]: "
                         r"Message contains a NUL octet")

    def test_refused_split_at_every_octet(self):
        t = self.tern(smtp={"bare_newlines": "reject"})
        c = t.raw(nodelay=True)
        c.ehlo()
        self.start_data(c)
        for i, octet in enumerate(SMUGGLE):
            c.send(bytes([octet]))
            if i % 8 == 0:
                time.sleep(0.002)
        self.check_refused(t, c)

    def test_normalize_drops_nul(self):
        t = self.tern(smtp={"bare_newlines": "normalize"})
        c = t.session()
        self.start_data(c)
        c.send(SMUGGLE)
        qid = queued_id(c.reply())
        c.send(b"NOOP\r\nQUIT\r\n")
        self.assertEqual([r.line for r in c.rest()], [OK, BYE])
        self.assertEqual(t.queued(), [qid])
        msg = t.read_msg(qid)
        self.assertNotIn(b"\x00", msg)
        # The line that held the NUL was text: the data went on to the
        # real end, so the "commands" are in the message.
        self.assertTrue(msg.endswith(b"before\r\n.\r\nMAIL FROM:<evil@x>\r\n"
                                     b"RCPT TO:<victim@example.test>\r\n"
                                     b"DATA\r\nsmuggled\r\n"), msg[-120:])


class NulNeverRelayed(TernTestCase):
    """What a next hop gets of a message that had NULs: none, and the
    line that held one dot-stuffed where it needs to be."""

    def test_next_hop_sees_no_nul(self):
        hop = NextHop(GW)
        self.addCleanup(hop.stop)
        t = self.tern(smtp={"bare_newlines": "normalize"}, sections={
            "delivery": {"gateway": "%s:%d" % (GW, hop.port),
                         "gateway_all": "yes", "queue_interval": "1s"}})
        c = t.session()
        qid = queued_id(c.mail("a@example.org", ["b@remote.test"], SMUGGLE,
                               stuff=False))
        self.assertTrue(qid)
        m = hop.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertNotIn(b"\x00", m.data)
        self.assertIn(b"before\r\n.\r\nMAIL FROM:<evil@x>\r\n", m.data)
        self.assertEqual(m.rcpts, ["b@remote.test"])
        # Nothing was smuggled: one message, to one recipient.
        time.sleep(1.5)
        self.assertEqual(len(hop.messages()), 1)


class Commands(TernTestCase):

    def test_nul_in_command_named(self):
        t = self.tern(smtp={"max_errors": "100"})
        c = t.session()
        for line in (b"NO\x00OP", b"\x00", b"MAIL FROM:<a@example.org>\x00",
                     b"RCPT TO:<b@local.test>\x00\r"):
            with self.subTest(line=line):
                c.send(line + b"\r\n")
                self.assertReply(c.reply(), NUL_CMD)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)

    def test_rset_quit_with_arguments(self):
        t = self.tern(smtp={"max_errors": "100"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RSET now"), RSET_SYNTAX)
        # The transaction is still there: RSET with an argument did
        # nothing.
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("QUIT please"), QUIT_SYNTAX)
        self.assertReply(c.cmd("NOOP"), OK)
        # Trailing blanks are no argument.
        self.assertReply(c.cmd("RSET "), OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)
        self.assertReply(c.cmd("QUIT"), BYE)
        c.expect_eof()

    def test_max_errors_421_is_the_reply(self):
        t = self.tern(smtp={"max_errors": "2"})
        c = t.session()
        self.assertReply(c.cmd("FROB"), UNKNOWN)
        self.assertReply(c.cmd("FROB"), UNKNOWN)
        # The third error is answered with the 421 alone, and nothing
        # pipelined after it runs.
        c.send("FROB\r\nNOOP\r\n")
        self.assertEqual([r.line for r in c.rest()], [TOO_MANY_ERRORS])
        t.wait_log(r"too many errors from \[127\.0\.0\.1\]")

    def test_max_errors_at_data_refusal(self):
        t = self.tern(smtp={"max_errors": "1"})
        c = t.session()
        self.assertReply(c.cmd("FROB"), UNKNOWN)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"a\x00\r\n.\r\nNOOP\r\n")
        self.assertEqual([r.line for r in c.rest()], [TOO_MANY_ERRORS])
        self.assertEqual(t.queued(), [])


ALICE = "alice@local.test"
TEAM = "team@local.test"


class QuotedLocalParts(TernTestCase):

    def setUp(self):
        super().setUp()
        self.t = mailtest.mail_tern(
            self, smtp={"local_domains": "local.test",
                        "auth_plaintext": "yes", "max_errors": "100"},
            users=[(ALICE, mailtest.plain_secret("Alice-pass-7"))],
            aliases=[(TEAM, [ALICE])])
        self.box = mailtest.mailbox_dir(self.t, "local.test", "alice")

    def test_quoted_reaches_user_and_alias(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for rcpt in ('"alice"', '"ali\\ce"', '"Alice"', '"team"'):
            with self.subTest(rcpt=rcpt):
                self.assertReply(c.cmd("RCPT TO:<%s@local.test>" % rcpt),
                                 RCPT_OK)
        # Quotes that are needed keep the address apart: no such user.
        r = c.cmd('RCPT TO:<"ali ce"@local.test>')
        self.assertEqual(r.code, 550, r)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"Subject: quoted\r\n\r\nHello.\r\n.\r\n")
        self.assertTrue(queued_id(c.reply()))
        # One recipient however it was spelt: one delivery.
        data = mailtest.wait_maildir(self.box, 1)
        time.sleep(1.5)
        self.assertEqual(len(maildir_names(self.box)), 1)
        self.assertIn(b"Delivered-To: alice@local.test\n", data[0])
        self.assertIn(b"Subject: quoted\n", data[0])

    def test_sender_check(self):
        c = self.t.session()
        self.assertEqual(mailtest.auth_plain(c, ALICE, "Alice-pass-7").code,
                         235)
        self.assertReply(c.cmd('MAIL FROM:<"alice"@local.test>'), MAIL_OK)
        self.assertReply(c.cmd("RSET"), OK)
        self.assertReply(c.cmd('MAIL FROM:<"ali ce"@local.test>'),
                         NOT_OWNED % '"ali ce"@local.test')


class PickupNul(TernTestCase):
    """sendmail refuses a NUL; a maildrop file written by hand with one
    is removed by pickup, never queued."""

    def test_file_with_nul_removed(self):
        t = self.tern()
        drop = t.path("maildrop")
        ternlib.wait_for(lambda: os.path.isdir(drop), DELIVER_TIMEOUT,
                         "maildrop/")
        body = b"Subject: x\r\n\r\na\x00b\r\n"
        data = (b"TERN-MAILDROP 1\nsender: a@b.test\nrcpt: r@dest.test\n"
                b"size: %d\n\n" % len(body)) + body
        tmp = os.path.join(drop, ".tmp.nul")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(drop, "nul"))
        t.wait_log(r"pickup: maildrop/nul: uid=%d: removed: NUL in the "
                   r"message$" % os.getuid())
        self.assertEqual(os.listdir(drop), [])
        self.assertEqual(t.queued(), [])


if __name__ == "__main__":
    ternlib.main()
