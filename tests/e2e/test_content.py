"""
test_content.py: what ternd takes in as message content and commands,
through the real daemon on loopback.  A NUL octet in message data is
refused with 554 5.6.0 (or dropped under bare_newlines = normalize) and
never reaches a next hop; a line that held a NUL never ends the data; a
NUL in a command is named as such; RSET and QUIT take no arguments; the
command that goes past max_errors gets the 421 as its only reply and the
connection closes; a quoted local part that needs no quotes is the same
address as the plain one for local users, aliases and the sender check;
pickup removes a maildrop file with a NUL in it.  A spool short of
space (min_free_space) is said at MAIL with 452 4.3.1, before the client
sends anything, while EHLO still offers SIZE; sendmail then exits 75
without writing, and pickup leaves maildrop files until there is room.
The free-space tests use the real statvfs of the spool, with
min_free_space set around what is really free.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
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
        self.assertRegex(t.log(), r"NOQUEUE: reject: DATA from "
                         r"unknown\[127\.0\.0\.1\]: 554 5\.6\.0 "
                         r"Message contains a NUL octet; from=<")

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


NO_ROOM = "452 4.3.1 Insufficient system storage"
HUGE = "1048576G"		# more than any test machine has free
EX_TEMPFAIL = 75
BUILDDIR = os.environ.get("TERN_BUILDDIR", "")


def put_maildrop(t, name, body):
    """A maildrop file the way sendmail writes one (rename)."""
    drop = t.path("maildrop")
    ternlib.wait_for(lambda: os.path.isdir(drop), DELIVER_TIMEOUT,
                     "maildrop/")
    data = (b"TERN-MAILDROP 1\nsender: a@b.test\nrcpt: r@dest.test\n"
            b"size: %d\n\n" % len(body)) + body
    tmp = os.path.join(drop, ".tmp." + name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(drop, name))


class SpoolSpace(TernTestCase):

    def test_mail_refused_before_data(self):
        t = self.tern(main={"min_free_space": HUGE})
        c = t.session()
        # SIZE is still offered.
        r = c.cmd("EHLO client.test")
        self.assertIn("SIZE 26214400", r.texts)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), NO_ROOM)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org> SIZE=1000"),
                         NO_ROOM)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)
        self.assertReply(c.cmd("QUIT"), BYE)
        t.wait_log(r"NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: "
                   r"452 4\.3\.1 Insufficient system storage; ")
        t.wait_log(r"MAIL from \[127\.0\.0\.1\]: insufficient "
                   r"spool space: size=1000, min_free_space=%d"
                   % (1048576 << 30))
        self.assertEqual(t.queued(), [])
        # Room again (a reload): the same client is served.
        t.write_config(main={"min_free_space": "1M"})
        t.reload()
        qid = t.send_message("a@example.org", ["b@local.test"],
                             b"Subject: room\r\n\r\nHello.\r\n")
        self.assertEqual(t.queued(), [qid])

    def test_size_counts(self):
        t = self.tern(start=False)
        # What is free now, less 2 GiB: a small message fits, one of
        # 4 GiB does not, whatever else on the machine writes meanwhile.
        sv = os.statvfs(t.spool)
        free = sv.f_bavail * sv.f_frsize
        if free < (3 << 30):
            self.fail("the test needs 3 GiB free in %s, not %d octets"
                      % (t.spool, free))
        t.write_config(main={"min_free_space": str(free - (2 << 30))},
                       smtp={"max_message_size": "8G"})
        t.start()
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org> SIZE=%d"
                               % (4 << 30)), NO_ROOM)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org> SIZE=1000"),
                         MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"Subject: x\r\n\r\nHello.\r\n.\r\n")
        qid = queued_id(c.reply())
        self.assertEqual(t.queued(), [qid])

    def test_sendmail_refuses(self):
        t = self.tern(main={"min_free_space": HUGE})
        tmp = tempfile.mkdtemp(prefix="tern-e2e-content-")
        self.addCleanup(shutil.rmtree, tmp, True)
        link = os.path.join(tmp, "sendmail")
        os.symlink(os.path.join(BUILDDIR, "src", "ternctl"), link)
        env = dict(os.environ, TERN_CONFIG=t.conf)
        p = subprocess.run([link, "r@dest.test"],
                           input=b"Subject: x\n\nbody\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=30)
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.stderr)
        self.assertIn(b"insufficient system storage", p.stderr)
        self.assertIn(b"message not sent", p.stderr)
        self.assertEqual(os.listdir(t.path("maildrop")), [])
        # With room, the same submission goes through.
        t.write_config(main={"min_free_space": "1M"})
        p = subprocess.run([link, "r@dest.test"],
                           input=b"Subject: x\n\nbody\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_pickup_waits(self):
        t = self.tern(main={"min_free_space": HUGE})
        put_maildrop(t, "one", b"Subject: one\r\n\r\nHello.\r\n")
        t.wait_log(r"pickup: insufficient system storage .*maildrop files "
                   r"wait$")
        put_maildrop(t, "two", b"Subject: two\r\n\r\nHello.\r\n")
        # A file event makes a pass: it too waits, unsaid.
        time.sleep(1.5)
        self.assertEqual(sorted(os.listdir(t.path("maildrop"))),
                         ["one", "two"])
        self.assertEqual(t.queued(), [])
        self.assertEqual(len(re.findall(r"maildrop files wait", t.log())),
                         1, t.log())
        t.write_config(main={"min_free_space": "1M"})
        t.reload()
        t.wait_log(r"pickup: the spool has room again")
        ternlib.wait_for(lambda: os.listdir(t.path("maildrop")) == [],
                         DELIVER_TIMEOUT, "maildrop/ to be empty")
        self.assertEqual(len(t.queued()), 2)


if __name__ == "__main__":
    ternlib.main()
