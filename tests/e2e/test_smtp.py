"""
test_smtp.py: every SMTP reply of ternd's inbound contract, driven over
loopback with smtplib and raw sockets: greeting, EHLO, command order,
path syntax, parameters, limits, pipelining, the DATA boundary under
every smuggling sequence, relay refusal under every address trick,
connection limits and timeouts.  It never looks at more of the spool than
whether something was queued.
"""

import os
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import HOSTNAME, HELO, TernTestCase, queued_id  # noqa: E402

MSG = b"Subject: test\r\n\r\nHello.\r\n"

BYE = "221 2.0.0 Bye"
OK = "250 2.0.0 Ok"
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"
NESTED = "503 5.5.1 Error: nested MAIL command"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
UNKNOWN = "500 5.5.2 Error: command not recognized"
TOO_LONG = "500 5.5.2 Error: line too long"
BARE_CMD = "500 5.5.2 Error: bare CR or LF in command"
NUL_CMD = "500 5.5.2 Error: NUL octet in command"
NOT_IMPL = "502 5.5.1 Error: command not implemented"
MAIL_SYNTAX = "501 5.5.4 Syntax: MAIL FROM:<address>"
RCPT_SYNTAX = "501 5.5.4 Syntax: RCPT TO:<address>"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RCPT = "501 5.1.3 Bad recipient address syntax"
BAD_PARAM = "555 5.5.4 Unsupported parameter"
TOO_BIG = "552 5.3.4 Message size exceeds fixed limit"
NEED_UTF8 = "553 5.6.7 Non-ASCII address requires SMTPUTF8"
TOO_MANY_RCPTS = "452 4.5.3 Error: too many recipients"
BARE_DATA = "554 5.6.0 Message contains bare CR or LF"
LONG_DATA = "554 5.6.0 Message contains a line longer than 1000 octets"
TIMEOUT = "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME
TOO_MANY_ERRORS = "421 4.7.0 %s Error: too many errors" % HOSTNAME
TOO_MANY_CONNS = "421 4.7.0 %s Error: too many connections" % HOSTNAME
TOO_MANY_FROM_IP = ("421 4.7.0 %s Error: too many connections from your "
                    "address" % HOSTNAME)


def relay_denied(addr):
    return "554 5.7.1 <%s>: Relay access denied" % addr


SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@local.test>\r\n"
            b"DATA\r\nsmuggled\r\n")

# The sequences a peer may hope ends DATA early, and lone CR and LF.
SMUGGLE_SEQS = [b"\n.\r\n", b"\r.\n", b"\n.\n", b"\r.\r\n", b"\r", b"\n"]


class Greeting(TernTestCase):

    def setUp(self):
        super().setUp()
        self.t = self.tern(smtp={"max_message_size": "20000"})

    def test_greeting(self):
        c = self.t.raw()
        self.assertReply(c.greeting, "220 %s ESMTP tern" % HOSTNAME)

    def test_ehlo_keywords_exactly(self):
        c = self.t.raw()
        r = c.cmd("EHLO " + HELO)
        self.assertEqual(r.raw, [
            "250-" + HOSTNAME,
            "250-PIPELINING",
            "250-SIZE 20000",
            "250-ETRN",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250-SMTPUTF8",
            "250 CHUNKING",
        ])

    def test_ehlo_smtplib(self):
        s = smtplib.SMTP("127.0.0.1", self.t.port, local_hostname=HELO,
                         timeout=ternlib.REPLY_TIMEOUT)
        try:
            code, _ = s.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(sorted(s.esmtp_features), sorted([
                "pipelining", "size", "etrn", "8bitmime",
                "enhancedstatuscodes", "dsn", "smtputf8",
                "chunking"]))
            self.assertEqual(s.esmtp_features["size"], "20000")
            self.assertEqual(s.quit()[0], 221)
        finally:
            s.close()

    def test_helo(self):
        c = self.t.raw()
        self.assertReply(c.cmd("HELO " + HELO), "250 " + HOSTNAME)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)

    def test_helo_ehlo_without_argument(self):
        c = self.t.raw()
        self.assertReply(c.cmd("EHLO"), "501 5.5.4 Syntax: EHLO hostname")
        self.assertReply(c.cmd("HELO"), "501 5.5.4 Syntax: HELO hostname")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), NEED_HELO)

    def test_verbs_case_insensitive(self):
        c = self.t.raw()
        self.assertEqual(c.cmd("ehlo " + HELO).code, 250)
        self.assertReply(c.cmd("mail from:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("rcpt to:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("noop"), OK)
        self.assertReply(c.cmd("quit"), BYE)
        c.expect_eof()


class Order(TernTestCase):
    """Commands out of order and commands the daemon does not offer."""

    def setUp(self):
        super().setUp()
        self.t = self.tern(smtp={"max_errors": "100"})

    def test_mail_before_ehlo(self):
        c = self.t.raw()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), NEED_HELO)

    def test_nested_mail(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("MAIL FROM:<b@example.org>"), NESTED)

    def test_rcpt_before_mail(self):
        c = self.t.session()
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)

    def test_data_before_mail(self):
        c = self.t.session()
        self.assertReply(c.cmd("DATA"), NEED_MAIL)

    def test_data_before_rcpt(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("DATA"), NEED_RCPT)

    def test_data_after_only_refused_rcpts(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@@local.test>"), BAD_RCPT)
        self.assertReply(c.cmd("DATA"), NEED_RCPT)

    def test_data_with_argument(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA x"), "501 5.5.4 Syntax: DATA")
        self.assertEqual(self.t.queued(), [])

    def test_rset_ends_transaction(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RSET"), OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)

    def test_ehlo_resets_transaction(self):
        # RFC 5321 4.1.4: EHLO in a transaction acts as RSET.
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertEqual(c.cmd("EHLO " + HELO).code, 250)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)

    def test_unknown_command(self):
        c = self.t.session()
        self.assertReply(c.cmd("FROB"), UNKNOWN)
        self.assertReply(c.cmd("NOOP"), OK)

    def test_unknown_command_before_ehlo(self):
        c = self.t.raw()
        self.assertReply(c.cmd("FROB x"), UNKNOWN)

    def test_vrfy(self):
        c = self.t.session()
        self.assertReply(c.cmd("VRFY postmaster"),
                         "252 2.0.0 Cannot VRFY user, but will accept "
                         "message and attempt delivery")
        self.assertReply(c.cmd("VRFY"), "501 5.5.4 Syntax: VRFY address")

    def test_not_implemented(self):
        c = self.t.session()
        # STARTTLS without a certificate configured.
        for verb in ("EXPN staff", "STARTTLS"):
            with self.subTest(verb=verb):
                self.assertReply(c.cmd(verb), NOT_IMPL)
        self.assertReply(c.cmd("NOOP"), OK)

    def test_help(self):
        c = self.t.raw()
        r = c.cmd("HELP")
        self.assertEqual(r.code, 214)
        for text in r.texts:
            self.assertTrue(text.startswith("2.0.0"), r)

    def test_noop_rset_quit(self):
        c = self.t.raw()
        self.assertReply(c.cmd("NOOP"), OK)
        self.assertReply(c.cmd("RSET"), OK)
        self.assertReply(c.cmd("QUIT"), BYE)
        c.expect_eof()

    def test_quit_mid_transaction_queues_nothing(self):
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("QUIT"), BYE)
        c.expect_eof()
        self.assertEqual(self.t.queued(), [])

    def test_smtplib_transaction(self):
        s = smtplib.SMTP("127.0.0.1", self.t.port, local_hostname=HELO,
                         timeout=ternlib.REPLY_TIMEOUT)
        try:
            refused = s.sendmail("a@example.org",
                                 ["b@local.test", "c@example.test"], MSG)
            self.assertEqual(refused, {})
            self.assertEqual(s.quit()[0], 221)
        finally:
            s.close()
        self.assertEqual(len(self.t.queued()), 1)


class Paths(TernTestCase):
    """MAIL FROM and RCPT TO syntax, parameters and enhanced codes."""

    def setUp(self):
        super().setUp()
        self.t = self.tern(smtp={"max_message_size": "20000",
                                 "max_errors": "100"})
        self.c = self.t.session()

    def mail(self, arg):
        return self.c.cmd("MAIL " + arg)

    def test_mail_without_from(self):
        for arg in ("", "TO:<a@example.org>", "FROM <a@example.org>"):
            with self.subTest(arg=arg):
                r = self.c.cmd(("MAIL " + arg).rstrip())
                self.assertReply(r, MAIL_SYNTAX)

    def test_mail_bad_path(self):
        for path in ("<a@@example.org>", "<a@example.org", "<a@>",
                     "<\"unterminated@example.org>", "<a@example..org>"):
            with self.subTest(path=path):
                self.assertReply(self.mail("FROM:" + path), BAD_SENDER)

    def test_rcpt_without_to(self):
        self.assertReply(self.mail("FROM:<a@example.org>"), MAIL_OK)
        for arg in ("", "FROM:<b@local.test>", "TO <b@local.test>"):
            with self.subTest(arg=arg):
                r = self.c.cmd(("RCPT " + arg).rstrip())
                self.assertReply(r, RCPT_SYNTAX)

    def test_rcpt_bad_path(self):
        self.assertReply(self.mail("FROM:<a@example.org>"), MAIL_OK)
        for path in ("<b@@local.test>", "<b@local.test", "<>", "<b@>",
                     "<\"b@local.test>"):
            with self.subTest(path=path):
                self.assertReply(self.c.cmd("RCPT TO:" + path), BAD_RCPT)

    def test_null_sender(self):
        self.assertReply(self.mail("FROM:<>"), MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)

    def test_postmaster(self):
        self.assertReply(self.mail("FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<Postmaster>"), RCPT_OK)
        self.assertReply(self.c.cmd("RCPT TO:<postmaster>"), RCPT_OK)

    def test_quoted_local_parts(self):
        self.assertReply(self.mail("FROM:<\"john doe\"@example.org>"),
                         MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<\"jane doe\"@local.test>"),
                         RCPT_OK)
        self.assertReply(self.c.cmd("RCPT TO:<\"jane\\\"x\"@local.test>"),
                         RCPT_OK)

    def test_source_route_accepted(self):
        self.assertReply(self.mail("FROM:<@a.example:a@example.org>"),
                         MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<@a.example:user@local.test>"),
                         RCPT_OK)
        self.assertReply(self.c.cmd(
            "RCPT TO:<@a.example,@b.example:user2@local.test>"), RCPT_OK)

    def test_utf8_with_smtputf8(self):
        self.assertReply(self.mail("FROM:<j\u00f6rg@example.org> SMTPUTF8"),
                         MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<\u00fcser@local.test>"),
                         RCPT_OK)
        self.assertReply(self.c.cmd("DATA"), GO_AHEAD)
        self.c.send(ternlib.dot_stuff(MSG))
        queued_id(self.c.reply())

    def test_utf8_without_smtputf8(self):
        self.assertReply(self.mail("FROM:<j\u00f6rg@example.org>"), NEED_UTF8)
        self.assertReply(self.mail("FROM:<jorg@b\u00fccher.example>"),
                         NEED_UTF8)

    def test_utf8_rcpt_without_smtputf8(self):
        self.assertReply(self.mail("FROM:<a@example.org>"), MAIL_OK)
        r = self.c.cmd("RCPT TO:<\u00fcser@local.test>")
        self.assertEqual(r.code // 100, 5, r)

    def test_unknown_parameter(self):
        self.assertReply(self.mail("FROM:<a@example.org> FOO=BAR"),
                         BAD_PARAM)
        self.assertReply(self.mail("FROM:<a@example.org> SIZE=abc"),
                         BAD_PARAM)
        self.assertReply(self.mail("FROM:<a@example.org> BODY=BINARYMIME"),
                         BAD_PARAM)
        self.assertReply(self.mail("FROM:<a@example.org> BODY=8BITMIME"),
                         MAIL_OK)
        self.assertReply(self.c.cmd("RCPT TO:<b@local.test> FOO=1"),
                         BAD_PARAM)
        self.assertReply(self.c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)

    def test_size_at_mail(self):
        self.assertReply(self.mail("FROM:<a@example.org> SIZE=20001"),
                         TOO_BIG)
        self.assertReply(self.mail("FROM:<a@example.org> SIZE=999999999999"),
                         TOO_BIG)
        self.assertReply(self.mail("FROM:<a@example.org> SIZE=1000"), MAIL_OK)


class Limits(TernTestCase):

    def test_message_too_big_then_session_works(self):
        t = self.tern(smtp={"max_message_size": "20000"})
        c = t.session()
        big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 500
        r = c.mail("a@example.org", ["b@local.test"], big)
        self.assertReply(r, TOO_BIG)
        self.assertEqual(t.queued(), [])
        self.assertReply(c.cmd("RSET"), OK)
        self.assertReply(c.cmd("NOOP"), OK)
        qid = queued_id(c.mail("a@example.org", ["b@local.test"], MSG))
        self.assertEqual(t.queued(), [qid])

    def test_max_recipients(self):
        t = self.tern(smtp={"max_recipients": "3"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for i in range(3):
            self.assertReply(c.cmd("RCPT TO:<r%d@local.test>" % i), RCPT_OK)
        self.assertReply(c.cmd("RCPT TO:<r3@local.test>"), TOO_MANY_RCPTS)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(ternlib.dot_stuff(MSG))
        qid = queued_id(c.reply())
        _, rcpts = t.read_env(qid)
        self.assertEqual([r["rcpt"] for r in rcpts],
                         ["<r0@local.test>", "<r1@local.test>",
                          "<r2@local.test>"])

    def test_max_errors(self):
        t = self.tern(smtp={"max_errors": "3"})
        c = t.session()
        for _ in range(3):
            self.assertReply(c.cmd("FROB"), UNKNOWN)
        # Three errors are within the limit: the session goes on.
        self.assertReply(c.cmd("NOOP"), OK)
        c.send("FROB\r\n")
        rest = [r.line for r in c.rest()]
        # The fourth error either gets its own reply before the 421 or
        # only the 421.
        self.assertIn(rest, ([TOO_MANY_ERRORS], [UNKNOWN, TOO_MANY_ERRORS]))

    def test_errors_of_all_kinds_count(self):
        t = self.tern(smtp={"max_errors": "3"})
        c = t.raw()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), NEED_HELO)
        c.ehlo()
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)
        self.assertReply(c.cmd("MAIL FROM:<a@@example.org>"), BAD_SENDER)
        self.assertReply(c.cmd("NOOP"), OK)
        c.send("DATA\r\n")
        rest = [r.line for r in c.rest()]
        self.assertIn(rest, ([TOO_MANY_ERRORS], [NEED_MAIL, TOO_MANY_ERRORS]))

    def test_command_line_length(self):
        t = self.tern()
        c = t.session()
        # 512 octets with CRLF is the most a command line may hold.
        line = "NOOP " + "x" * (512 - 7)
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.cmd(line), OK)
        c.send("NOOP " + "x" * (513 - 7) + "\r\n")
        self.assertReply(c.reply(), TOO_LONG)
        self.assertReply(c.cmd("NOOP"), OK)

    def test_very_long_command_line(self):
        t = self.tern()
        c = t.session()
        c.send("MAIL FROM:<" + "a" * 5000 + "@example.org>\r\n")
        self.assertReply(c.reply(), TOO_LONG)
        # The rest of the long line was not taken as a command.
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)

    def test_data_line_length(self):
        t = self.tern()
        c = t.session()
        ok = b"Subject: x\r\n\r\n" + b"y" * 998 + b"\r\n"
        qid = queued_id(c.mail("a@example.org", ["b@local.test"], ok))
        long = b"Subject: x\r\n\r\n" + b"y" * 999 + b"\r\nend\r\n"
        r = c.mail("a@example.org", ["b@local.test"], long)
        self.assertReply(r, LONG_DATA)
        self.assertReply(c.cmd("NOOP"), OK)
        self.assertEqual(t.queued(), [qid])

    def test_bare_cr_lf_nul_in_command(self):
        t = self.tern(smtp={"max_errors": "100"})
        c = t.session()
        for line, reply in (
                (b"MAIL FROM:<a@example.org>\nRCPT TO:<b@local.test>",
                 BARE_CMD),
                (b"MAIL FROM:<a@example.org>\rRCPT TO:<b@local.test>",
                 BARE_CMD),
                (b"MAIL FROM:<a@example.org>\x00", NUL_CMD)):
            with self.subTest(line=line):
                c.send(line + b"\r\n")
                self.assertReply(c.reply(), reply)
                # Whatever else came of the line, MAIL never ran.
                c.send(b"NOOP\r\n")
                while True:
                    r = c.reply()
                    if r.line == OK:
                        break
                    self.assertNotEqual(r.code // 100, 2, r)
                self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)


class Pipelining(TernTestCase):

    def test_whole_transaction(self):
        t = self.tern()
        c = t.session()
        c.send(b"MAIL FROM:<a@example.org>\r\n"
               b"RCPT TO:<b@local.test>\r\n"
               b"RCPT TO:<c@local.test>\r\n"
               b"DATA\r\n")
        self.assertEqual([r.line for r in c.replies(4)],
                         [MAIL_OK, RCPT_OK, RCPT_OK, GO_AHEAD])
        c.send(ternlib.dot_stuff(MSG) + b"QUIT\r\n")
        r = c.reply()
        qid = queued_id(r)
        self.assertReply(c.reply(), BYE)
        c.expect_eof()
        self.assertEqual(t.queued(), [qid])

    def test_group_with_errors(self):
        t = self.tern(smtp={"relay_networks": "none"},
                      local=["local.test"])
        c = t.session()
        c.send(b"MAIL FROM:<a@example.org>\r\n"
               b"RCPT TO:<b@remote.example>\r\n"
               b"RCPT TO:<b@@local.test>\r\n"
               b"RCPT TO:<c@local.test>\r\n"
               b"NOOP\r\n"
               b"DATA\r\n")
        self.assertEqual([r.line for r in c.replies(6)],
                         [MAIL_OK, relay_denied("b@remote.example"),
                          BAD_RCPT, RCPT_OK, OK, GO_AHEAD])
        c.send(ternlib.dot_stuff(MSG) + b"RSET\r\nQUIT\r\n")
        queued_id(c.reply())
        self.assertEqual([r.line for r in c.rest()], [OK, BYE])
        t.wait_delivered(1)

    def test_many_messages_in_one_write(self):
        t = self.tern()
        c = t.session()
        one = (b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@local.test>\r\n"
               b"DATA\r\n")
        c.send(one)
        self.assertEqual([r.line for r in c.replies(3)],
                         [MAIL_OK, RCPT_OK, GO_AHEAD])
        # The data's end, the next transaction and QUIT in one write.
        c.send(ternlib.dot_stuff(MSG) + one)
        first = queued_id(c.reply())
        self.assertEqual([r.line for r in c.replies(3)],
                         [MAIL_OK, RCPT_OK, GO_AHEAD])
        c.send(ternlib.dot_stuff(MSG) + b"QUIT\r\n")
        second = queued_id(c.reply())
        self.assertReply(c.reply(), BYE)
        self.assertEqual(t.queued(), sorted([first, second]))


class Smuggling(TernTestCase):
    """Only CRLF.CRLF ends DATA; nothing after a false end is a command."""

    def start_data(self, c):
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)

    @staticmethod
    def body(seq):
        return (b"Subject: smuggle\r\n\r\nhello" + seq + SMUGGLED + b".\r\n")

    def check_rejected(self, t, c):
        self.assertReply(c.reply(), BARE_DATA)
        c.send(b"NOOP\r\nQUIT\r\n")
        self.assertEqual([r.line for r in c.rest()], [OK, BYE])
        self.assertEqual(t.queued(), [])

    def test_reject(self):
        t = self.tern(smtp={"bare_newlines": "reject"})
        for seq in SMUGGLE_SEQS:
            with self.subTest(seq=seq):
                c = t.session()
                self.start_data(c)
                c.send(self.body(seq))
                self.check_rejected(t, c)

    def test_default_is_reject(self):
        t = self.tern(smtp={"bare_newlines": None})
        c = t.session()
        self.start_data(c)
        c.send(self.body(b"\n.\r\n"))
        self.check_rejected(t, c)

    def test_reject_split_at_every_octet(self):
        t = self.tern(smtp={"bare_newlines": "reject"})
        for seq in (b"\n.\r\n", b"\r.\r\n"):
            with self.subTest(seq=seq):
                c = t.session()
                c.sock.setsockopt(ternlib.socket.IPPROTO_TCP,
                                  ternlib.socket.TCP_NODELAY, 1)
                self.start_data(c)
                for i, octet in enumerate(self.body(seq)):
                    c.send(bytes([octet]))
                    if i % 8 == 0:
                        time.sleep(0.002)
                self.check_rejected(t, c)

    def test_normalize(self):
        t = self.tern(smtp={"bare_newlines": "normalize"})
        for seq in SMUGGLE_SEQS:
            with self.subTest(seq=seq):
                before = set(t.queued())
                c = t.session()
                self.start_data(c)
                c.send(self.body(seq))
                qid = queued_id(c.reply())
                c.send(b"NOOP\r\nQUIT\r\n")
                self.assertEqual([r.line for r in c.rest()], [OK, BYE])
                new = sorted(set(t.queued()) - before)
                self.assertEqual(new, [qid])
                msg = t.read_msg(qid)
                self.assertIn(b"MAIL FROM:<evil@x>", msg)
                self.assertIn(b"smuggled", msg)
                # Every line of the stored message ends in CRLF.
                self.assertNotRegex(msg, rb"\r(?!\n)|(?<!\r)\n")
                self.assertTrue(msg.endswith(b"smuggled\r\n"), msg[-40:])


class Relay(TernTestCase):

    TRICKS = [
        ("user@remote.example", relay_denied("user@remote.example")),
        ("user%other@local.test", None),
        ("\"user@other\"@local.test", None),
        ("@local.test:user@other.example", None),
        ("user@other@local.test", BAD_RCPT),
        ("user!other@local.test", None),
        ("user@remote.example.", None),
        ("user@[192.0.2.1]", None),
        ("\"user%other\"@local.test", None),
        ("user%other.example@local.test", None),
    ]

    def test_tricks_refused(self):
        t = self.tern(smtp={"relay_networks": "none", "max_errors": "100"},
                      local=["local.test"])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for addr, expected in self.TRICKS:
            with self.subTest(addr=addr):
                r = c.cmd("RCPT TO:<%s>" % addr)
                if expected is not None:
                    self.assertReply(r, expected)
                else:
                    self.assertRegex(
                        r.line, r"^554 5\.7\.1 <.*>: Relay access denied$")
        self.assertReply(c.cmd("DATA"), NEED_RCPT)
        self.assertEqual(t.queued(), [])

    def test_other_network_refused(self):
        t = self.tern(smtp={"relay_networks": "10.0.0.0/8 192.0.2.0/24"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<user@remote.example>"),
                         relay_denied("user@remote.example"))

    def test_local_accepted_from_anyone(self):
        t = self.tern(smtp={"relay_networks": "none"},
                      local=["local.test", "example.test"])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@remote.example>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<user@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("RCPT TO:<user@Example.TEST>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(ternlib.dot_stuff(MSG))
        queued_id(c.reply())
        # Both reach the one catch-all user: one delivery.
        t.wait_delivered(1)
        ternlib.wait_for(lambda: t.queued() == [], ternlib.REPLY_TIMEOUT,
                         "queue empty")

    def test_relay_client_may_relay(self):
        t = self.tern(smtp={"relay_networks": "127.0.0.0/8"})
        c = t.session()
        qid = queued_id(c.mail("a@local.test", ["user@remote.example"], MSG))
        self.assertEqual(t.queued(), [qid])

    def test_local_part_tricks_refused_even_for_relay_client(self):
        t = self.tern(smtp={"relay_networks": "127.0.0.0/8"},
                      local=["local.test"])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        for addr in ("user%other@local.test", "user!other@local.test",
                     "\"user@other\"@local.test"):
            with self.subTest(addr=addr):
                r = c.cmd("RCPT TO:<%s>" % addr)
                self.assertRegex(
                    r.line, r"^554 5\.7\.1 <.*>: Relay access denied$")


class Parked(TernTestCase):
    """A session waiting for a command with nothing buffered gives up its
    buffers (it parks) and takes them again when the client speaks, the
    deadline comes or ternd must write to it: what it knew is kept."""

    PAUSE = 0.3	# long enough for the reply to drain and the session park

    def test_pauses_between_every_command(self):
        t = self.tern()
        conns = [t.session() for _ in range(20)]
        time.sleep(self.PAUSE)
        qids = []
        for i, c in enumerate(conns):
            self.assertEqual(c.cmd("MAIL FROM:<p%d@example.org>" % i).code,
                             250)
        time.sleep(self.PAUSE)
        for c in conns:
            self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
        time.sleep(self.PAUSE)
        for c in conns:
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(b"Subject: parked\r\n\r\nHello.\r\n.\r\n")
            qids.append(queued_id(c.reply()))
        time.sleep(self.PAUSE)
        # Pipelined after a pause: the first octets wake it, the rest is
        # read from the same buffers.
        for c in conns:
            c.send(b"RSET\r\nNOOP\r\nQUIT\r\n")
        for c in conns:
            self.assertEqual([r.code for r in c.rest()], [250, 250, 221])
        self.assertEqual(sorted(t.queued()), sorted(qids))
        for i, qid in enumerate(qids):
            env = t.read_env_bytes(qid).decode()
            self.assertIn("p%d@example.org" % i, env)
            self.assertIn(HELO, env)
        # The name given to EHLO before the pauses is the one logged.
        self.assertIn("helo=%s" % HELO, t.log())

    def test_client_closes_while_parked(self):
        t = self.tern()
        c = t.session()
        time.sleep(self.PAUSE)
        c.close()
        t.wait_log(r"disconnect from \[127\.0\.0\.1\] commands=1 "
                   r"errors=0 \(disconnect\)")
        self.assertTrue(t.is_running())

    def test_deadline_while_parked(self):
        t = self.tern(smtp={"command_timeout": "2s"})
        c = t.session()
        self.assertReply(c.reply(timeout=20),
                         "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME)
        c.expect_eof()

    def test_shutdown_while_parked(self):
        t = self.tern()
        conns = [t.session() for _ in range(5)]
        c = conns[0]
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>").code, 250)
        time.sleep(self.PAUSE)
        t.signal(ternlib.signal.SIGTERM)
        for c in conns:
            self.assertEqual(
                [r.line for r in c.rest()],
                ["421 4.3.2 %s Service shutting down" % HOSTNAME])
        self.assertEqual(t.wait_exit(ternlib.STOP_TIMEOUT), 0)

    def test_starttls_after_a_pause(self):
        t = mailtest.mail_tern(self, tls=True)
        c = t.session()
        time.sleep(self.PAUSE)
        mailtest.starttls(c)
        time.sleep(self.PAUSE)
        self.assertEqual(c.cmd("EHLO %s" % HELO).code, 250)
        time.sleep(self.PAUSE)
        # Relayed from 127.0.0.1, it stays queued.
        qid = queued_id(c.mail("a@example.org", ["r@remote.test"],
                               b"Subject: tls\r\n\r\nHi.\r\n"))
        self.assertIn(qid, t.queued())


class Connections(TernTestCase):

    def test_max_connections_per_ip(self):
        # Loopback is a relay network here, exempt unless told otherwise.
        t = self.tern(smtp={"max_connections_per_ip": "2",
                            "client_limit_exempt": ""})
        a = t.raw()
        t.raw()
        c = t.raw(greet=False)
        self.assertEqual([r.line for r in c.rest()], [TOO_MANY_FROM_IP])
        self.assertReply(a.cmd("QUIT"), BYE)
        a.expect_eof()
        d = t.raw()
        self.assertReply(d.cmd("NOOP"), OK)

    def test_max_connections(self):
        t = self.tern(smtp={"max_connections": "2",
                            "max_connections_per_ip": "0"})
        a = t.raw()
        t.raw()
        c = t.raw(greet=False)
        self.assertEqual([r.line for r in c.rest()], [TOO_MANY_CONNS])
        self.assertReply(a.cmd("QUIT"), BYE)
        a.expect_eof()
        d = t.raw()
        self.assertReply(d.cmd("NOOP"), OK)

    def test_command_timeout(self):
        t = self.tern(smtp={"command_timeout": "1s"})
        c = t.raw()
        start = time.monotonic()
        self.assertReply(c.reply(timeout=5), TIMEOUT)
        c.expect_eof()
        self.assertGreater(time.monotonic() - start, 0.5)

    def test_command_timeout_rearmed_by_commands(self):
        t = self.tern(smtp={"command_timeout": "1s"})
        c = t.session()
        start = time.monotonic()
        for _ in range(4):
            time.sleep(0.5)
            self.assertReply(c.cmd("NOOP"), OK)
        self.assertGreater(time.monotonic() - start, 1.5)
        self.assertReply(c.reply(timeout=5), TIMEOUT)
        c.expect_eof()

    def test_data_timeout(self):
        t = self.tern(smtp={"data_timeout": "1s", "command_timeout": "30s"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"Subject: x\r\n\r\npart\r\n")
        self.assertReply(c.reply(timeout=5), TIMEOUT)
        c.expect_eof()
        self.assertEqual(t.queued(), [])

    def test_slow_client_does_not_block_others(self):
        t = self.tern()
        slow = t.session()
        slow.sock.setsockopt(ternlib.socket.IPPROTO_TCP,
                             ternlib.socket.TCP_NODELAY, 1)
        line = b"NOOP slow\r\n"
        started = threading.Event()
        state = {"sent": 0}

        def trickle():
            try:
                for i in range(len(line)):
                    slow.send(line[i:i + 1])
                    state["sent"] = i + 1
                    if i == 1:
                        started.set()
                    time.sleep(0.2)
                state["reply"] = slow.reply()
                state["end"] = time.monotonic()
            except Exception as e:  # reported by the main thread
                state["error"] = e
            finally:
                started.set()

        th = threading.Thread(target=trickle, daemon=True)
        th.start()
        self.assertTrue(started.wait(5))
        fast = t.session()
        qid = queued_id(fast.mail("a@example.org", ["b@local.test"], MSG))
        self.assertReply(fast.cmd("QUIT"), BYE)
        fast_end = time.monotonic()
        sent_then = state["sent"]
        th.join(10)
        self.assertFalse(th.is_alive())
        self.assertNotIn("error", state)
        self.assertReply(state["reply"], OK)
        self.assertLess(fast_end, state["end"])
        self.assertLess(sent_then, len(line),
                        "the fast client finished only after the slow "
                        "client's whole line was sent")
        self.assertEqual(t.queued(), [qid])


if __name__ == "__main__":
    ternlib.main()
