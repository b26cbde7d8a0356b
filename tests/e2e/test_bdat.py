"""
test_bdat.py: CHUNKING (RFC 3030) inbound, through the real ternd on
loopback with raw sockets, and with a second ternd as the client (tern's
own outbound BDAT).  EHLO offers CHUNKING and not BINARYMIME; chunks of
any size, split anywhere (inside a CRLF too), end in a zero-length LAST
or a LAST with octets; every chunk is answered in order when chunks and
commands are pipelined; the stored message is our Received header and
the octets as sent, and arrives byte-identical at the next hop and in
the Maildir.  DATA, RCPT and MAIL after a chunk get 503 5.5.1; a chunk
without MAIL or RCPT is read and refused with 503, never taken for
commands; a chunk that passes max_message_size is read and refused with
552 5.3.4 and ends the transaction; a malformed BDAT gets 501.  The
line rules of DATA hold for the octets: bare CR or LF and NUL are
refused with 554 5.6.0 (or normalised under bare_newlines = normalize),
and a last line without CRLF gets one.  A chunk that stalls meets
data_timeout; a client lost inside a chunk leaves nothing queued.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from mailtest import DELIVER_TIMEOUT  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, queued_id  # noqa: E402

MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
OK = "250 2.0.0 Ok"
BYE = "221 2.0.0 Bye"
SYNTAX = "501 5.5.4 Syntax: BDAT size [LAST]"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
TOO_BIG = "552 5.3.4 Message size exceeds fixed limit"
BARE = "554 5.6.0 Message contains bare CR or LF"
NUL = "554 5.6.0 Message contains a NUL octet"
LONG = "554 5.6.0 Message contains a line longer than 1000 octets"
TIMEOUT = "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME
GW = "127.0.0.2"

# Dot-led lines, a lone ".", the DATA terminator and commands: all plain
# octets inside a chunk.
BODY = (b"From: a@example.org\r\nTo: b@local.test\r\nSubject: chunks\r\n"
        b"\r\n.leading dot\r\n.\r\n..two dots\r\n\r\n.\r\n"
        b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\n"
        b"8-bit \xc3\xa9t\xc3\xa9\r\nlast line\r\n")


def pieces(data, sizes):
    """data cut into pieces of the given sizes, the rest last."""
    out, off = [], 0
    for n in sizes:
        out.append(data[off:off + n])
        off += n
    out.append(data[off:])
    return out


def bdat(piece, last=False):
    """A BDAT command and its chunk, as octets."""
    return b"BDAT %d%s\r\n%s" % (len(piece), b" LAST" if last else b"",
                                 piece)


def lf(data):
    """data as a Maildir holds it."""
    return data.replace(b"\r\n", b"\n")


def chunk_ok(n):
    return "%s: %d octets" % (OK, n)


class ChunkingCase(TernTestCase):

    def start(self, c, rcpt="b@local.test"):
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), RCPT_OK)

    def chunk(self, c, piece, last=False):
        c.send(bdat(piece, last))
        return c.reply()

    def send_chunks(self, c, parts):
        """Every part but the last as a chunk, each answered; the last
        as LAST; return its queue id."""
        for p in parts[:-1]:
            self.assertReply(self.chunk(c, p), chunk_ok(len(p)))
        return queued_id(self.chunk(c, parts[-1], last=True))

    def stored_body(self, t, qid):
        """The stored message without our Received header."""
        msg = t.read_msg(qid)
        self.assertTrue(msg.startswith(b"Received: from "), msg[:200])
        end = msg.index(b"\r\n", msg.index(b"; ")) + 2
        return msg[end:]

    def assertNothingQueued(self, t):
        self.assertEqual(t.queued(), [])


class Receive(ChunkingCase):

    def setUp(self):
        super().setUp()
        self.t = self.tern()

    def test_ehlo_offers_chunking_not_binarymime(self):
        r = self.t.raw().ehlo()
        self.assertEqual(r.raw[-1], "250 CHUNKING")
        self.assertNotIn("BINARYMIME", " ".join(r.raw))
        c = self.t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME"),
                         "555 5.5.4 Unsupported parameter")
        self.assertIn("BDAT", c.cmd("HELP").line)

    def test_chunks_stored_as_sent(self):
        # One chunk; cuts inside a CRLF and around "\r\n.\r\n"; one octet
        # at a time through the header.
        cuts = [(), (5, 1, 40, 1, 1, 30), (63, 1, 2, 3, 17),
                tuple([1] * 60)]
        for sizes in cuts:
            with self.subTest(sizes=sizes):
                c = self.t.session()
                self.start(c)
                qid = self.send_chunks(c, pieces(BODY, sizes))
                self.assertReply(c.cmd("QUIT"), BYE)
                self.assertEqual(self.stored_body(self.t, qid), BODY)
                fields, rcpts = self.t.read_env(qid)
                self.assertEqual(fields["sender"], "<a@example.org>")
        self.assertRegex(self.t.log(), r"from=<a@example\.org>, size=\d+, "
                         r"nrcpt=1")

    def test_zero_length_last_chunk(self):
        c = self.t.session()
        self.start(c)
        self.assertReply(self.chunk(c, BODY), chunk_ok(len(BODY)))
        qid = queued_id(c.cmd("BDAT 0 LAST"))
        self.assertEqual(self.stored_body(self.t, qid), BODY)
        # An empty message is still a message: our header alone.
        self.start(c)
        qid = queued_id(c.cmd("BDAT 0 LAST"))
        self.assertEqual(self.stored_body(self.t, qid), b"")
        # A zero-length chunk that is not the last is answered too; LAST
        # is not case-sensitive; a last line without CRLF gets one.
        self.start(c)
        self.assertReply(c.cmd("BDAT 0"), chunk_ok(0))
        c.send(b"BDAT 4 last\r\nx\r\ny")
        qid = queued_id(c.reply())
        self.assertEqual(self.stored_body(self.t, qid), b"x\r\ny\r\n")

    def test_pipelined_chunks_and_commands(self):
        c = self.t.session()
        a, b, d = pieces(BODY, (50, 70))
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@local.test>\r\n" +
               bdat(a) + bdat(b) + bdat(d, last=True) +
               b"MAIL FROM:<c@example.org>\r\nRCPT TO:<d@local.test>\r\n" +
               b"BDAT 0\r\n" + bdat(BODY, last=True) +
               b"NOOP\r\nQUIT\r\n")
        got = c.rest()
        lines = [r.line for r in got]
        self.assertEqual(lines[:5], [MAIL_OK, RCPT_OK, chunk_ok(len(a)),
                                     chunk_ok(len(b)), lines[4]])
        self.assertEqual(lines[5:8], [MAIL_OK, RCPT_OK, chunk_ok(0)])
        self.assertEqual(lines[9:], [OK, BYE])
        for qid in (queued_id(got[4]), queued_id(got[8])):
            self.assertEqual(self.stored_body(self.t, qid), BODY)
        self.assertEqual(len(self.t.queued()), 2)

    def test_data_rcpt_mail_after_bdat(self):
        c = self.t.session()
        self.start(c)
        self.assertReply(self.chunk(c, b"Subject: x\r\n"), chunk_ok(12))
        self.assertReply(c.cmd("DATA"), "503 5.5.1 Error: DATA after BDAT")
        self.assertReply(c.cmd("RCPT TO:<c@local.test>"),
                         "503 5.5.1 Error: RCPT after BDAT")
        self.assertReply(c.cmd("MAIL FROM:<c@example.org>"),
                         "503 5.5.1 Error: MAIL after BDAT")
        # The transaction is still there: its chunks go on.
        qid = queued_id(self.chunk(c, b"\r\nbody\r\n", last=True))
        self.assertEqual(self.stored_body(self.t, qid),
                         b"Subject: x\r\n\r\nbody\r\n")
        _, rcpts = self.t.read_env(qid)
        self.assertEqual(len(rcpts), 1)
        # RSET clears one; DATA then works.
        self.start(c)
        self.assertReply(self.chunk(c, b"Subject: y\r\n"), chunk_ok(12))
        self.assertReply(c.cmd("RSET"), OK)
        self.start(c)
        self.assertReply(c.cmd("DATA"), "354 End data with <CR><LF>.<CR><LF>")
        c.send(b"Subject: z\r\n\r\nz\r\n.\r\n")
        qid = queued_id(c.reply())
        self.assertEqual(self.stored_body(self.t, qid),
                         b"Subject: z\r\n\r\nz\r\n")
        self.assertEqual(len(self.t.queued()), 2)

    def test_chunk_without_mail_or_rcpt_is_read(self):
        # The chunk's octets are commands in form; they must be skipped.
        evil = b"RSET\r\nMAIL FROM:<e@x>\r\nRCPT TO:<v@local.test>\r\n"
        c = self.t.session()
        self.assertReply(self.chunk(c, evil), NEED_MAIL)
        self.assertReply(self.chunk(c, evil, last=True), NEED_MAIL)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(self.chunk(c, evil, last=True), NEED_RCPT)
        # MAIL stays: RCPT and a chunk then make a message.
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        qid = queued_id(self.chunk(c, BODY, last=True))
        self.assertEqual(self.stored_body(self.t, qid), BODY)
        self.assertReply(c.cmd("QUIT"), BYE)
        self.assertEqual(len(self.t.queued()), 1)

    def test_malformed_bdat(self):
        c = self.t.session()
        for arg in ("BDAT", "BDAT x", "BDAT -1", "BDAT 10 NOTLAST",
                    "BDAT 10 LAST x", "BDAT 1.5", "BDAT 0x10",
                    "BDAT 99999999999999999999999"):
            with self.subTest(arg=arg):
                self.assertReply(c.cmd(arg), SYNTAX)
        # It ends the transaction: the size of the chunk is unknown.
        self.start(c)
        self.assertReply(self.chunk(c, b"Subject: x\r\n"), chunk_ok(12))
        self.assertReply(c.cmd("BDAT ten LAST"), SYNTAX)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), NEED_MAIL)
        self.assertReply(c.cmd("QUIT"), BYE)
        self.assertNothingQueued(self.t)
        self.assertRegex(self.t.log(), r"BDAT from \[127\.0\.0\.1\]: "
                         r"malformed command")

    def test_stalled_chunk_meets_data_timeout(self):
        t = self.tern(smtp={"command_timeout": "30s", "data_timeout": "2s",
                            "data_min_rate": "1000"})
        c = t.session()
        self.start(c)
        c.send(b"BDAT 1000 LAST\r\nSubject: slow\r\n")
        self.assertReply(c.reply(timeout=20), TIMEOUT)
        c.expect_eof()
        self.assertNothingQueued(t)
        t.wait_log(r"timeout after bdat from \[127\.0\.0\.1\]")

    def test_lost_inside_a_chunk(self):
        c = self.t.session()
        self.start(c)
        c.send(b"BDAT 100 LAST\r\nSubject: lost\r\n")
        time.sleep(0.2)
        c.close()
        self.t.wait_log(r"lost connection after BDAT")
        self.assertNothingQueued(self.t)
        ternlib.wait_for(lambda: self.t.files("incoming") == [],
                         ternlib.REPLY_TIMEOUT, "incoming/ emptied")


class Limits(ChunkingCase):

    def test_size_passed_mid_way(self):
        t = self.tern(smtp={"max_message_size": "2000"})
        c = t.session()
        self.start(c)
        first = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10
        second = (b"y" * 98 + b"\r\n") * 15
        # Pipelined: the over-size chunk is read whole and refused; the
        # transaction ends, so the chunk after it is refused and read.
        c.send(bdat(first) + bdat(second) + bdat(b"tail\r\n", last=True) +
               b"NOOP\r\n")
        self.assertEqual([r.line for r in c.replies(4)],
                         [chunk_ok(len(first)), TOO_BIG, NEED_MAIL, OK])
        self.assertNothingQueued(t)
        self.assertRegex(t.log(), r"NOQUEUE: reject: BDAT from "
                         r"unknown\[127\.0\.0\.1\]: 552 5\.3\.4 ")
        # A chunk announced over the limit is refused once read.
        self.start(c)
        c.send(b"BDAT 2001 LAST\r\n" + (b"z" * 98 + b"\r\n") * 20 +
               b"zNOOP\r\n")
        self.assertEqual([r.line for r in c.replies(2)], [TOO_BIG, OK])
        # The limit itself is fine.
        self.start(c)
        body = (b"Subject: fits\r\n\r\n" + (b"z" * 98 + b"\r\n") * 19 +
                b"z" * 81 + b"\r\n")
        self.assertEqual(len(body), 2000)
        qid = self.send_chunks(c, pieces(body, (1000,)))
        self.assertEqual(self.stored_body(t, qid), body)

    def test_line_rules_strict(self):
        t = self.tern(smtp={"bare_newlines": None})
        cases = [
            (b"Subject: x\r\n\r\na\nb\r\n", BARE),
            (b"Subject: x\r\n\r\na\rb\r\n", BARE),
            (b"Subject: x\r\n\r\na\x00b\r\n", NUL),
            (b"Subject: x\r\n\r\n" + b"l" * 999 + b"\r\n", LONG),
        ]
        for body, reply in cases:
            with self.subTest(body=body[:40], reply=reply):
                c = t.session()
                self.start(c)
                # Refused at the end of the chunk where it was found; the
                # transaction is over.
                c.send(bdat(body) + bdat(b"more\r\n", last=True))
                self.assertEqual([r.line for r in c.replies(2)],
                                 [reply, NEED_MAIL])
        # A CR that ends the last chunk is a bare CR.
        c = t.session()
        self.start(c)
        self.assertReply(self.chunk(c, b"Subject: x\r\n\r\nend\r",
                                    last=True), BARE)
        # A CRLF cut by a chunk boundary is a CRLF.
        self.start(c)
        qid = self.send_chunks(c, [b"Subject: x\r", b"\n\r\nbody\r",
                                   b"\n"])
        self.assertEqual(self.stored_body(t, qid),
                         b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(len(t.queued()), 1)
        self.assertRegex(t.log(), r"NOQUEUE: reject: BDAT from "
                         r"unknown\[127\.0\.0\.1\]: 554 5\.6\.0 ")

    def test_line_rules_normalize(self):
        t = self.tern(smtp={"bare_newlines": "normalize"})
        c = t.session()
        self.start(c)
        qid = self.send_chunks(c, [b"Subject: x\n\na\rb\x00c\n", b"d\r"])
        self.assertEqual(self.stored_body(t, qid),
                         b"Subject: x\r\n\r\na\r\nbc\r\nd\r\n")


class Relay(ChunkingCase):
    """What was received with BDAT leaves as it came: to a next hop (by
    DATA and by BDAT) and into a Maildir."""

    def test_next_hop_gets_it_byte_identical(self):
        for chunking in (False, True):
            with self.subTest(chunking=chunking):
                hop = NextHop(GW, chunking=chunking)
                self.addCleanup(hop.stop)
                t = self.tern(sections={"delivery": {
                    "gateway": "%s:%d" % (GW, hop.port),
                    "gateway_all": "yes", "queue_interval": "1s"}})
                c = t.session()
                self.start(c, rcpt="b@remote.test")
                qid = self.send_chunks(c, pieces(BODY, (7, 90)))
                stored = t.read_msg(qid)
                m = hop.wait_messages(1, DELIVER_TIMEOUT)[0]
                self.assertEqual(m.data, stored)
                self.assertTrue(m.data.endswith(BODY))
                self.assertEqual(m.rcpts, ["b@remote.test"])

    def test_maildir_gets_it_byte_identical(self):
        t = self.tern(local=["local.test"])
        c = t.session()
        self.start(c)
        qid = self.send_chunks(c, pieces(BODY, (33,)))
        stored = t.read_msg(qid)
        name = t.wait_delivered(1, timeout=DELIVER_TIMEOUT)[0]
        with open(os.path.join(t.sink_maildir(), "new", name), "rb") as f:
            got = f.read()
        # A Maildir holds lines ending in LF, after the fields of local
        # delivery (Return-Path, Delivered-To).
        self.assertTrue(got.endswith(lf(stored)), got[:400])
        self.assertTrue(got.endswith(lf(BODY)))

    def test_tern_to_tern(self):
        """A real BDAT client: one ternd relays to another, which offers
        CHUNKING, and so gets the message as one BDAT LAST."""
        inner = self.tern(local=["local.test"],
                          main={"hostname": "inner.test.example"})
        outer = self.tern(sections={"delivery": {
            "gateway": "127.0.0.1:%d" % inner.port, "gateway_all": "yes",
            "queue_interval": "1s"}}, smtp={"local_domains": "outer.test"})
        content = BODY + b"".join(b".%05d line of a larger body\r\n" % i
                                  for i in range(3000))
        qid = outer.send_message("a@example.org", ["b@local.test"], content,
                                 params=" BODY=8BITMIME")
        stored = outer.read_msg(qid)
        name = inner.wait_delivered(1, timeout=DELIVER_TIMEOUT)[0]
        with open(os.path.join(inner.sink_maildir(), "new", name),
                  "rb") as f:
            got = f.read()
        self.assertTrue(got.endswith(lf(stored)), got[:400])
        self.assertTrue(got.endswith(lf(content)))
        inner.wait_log(r"<<< BDAT %d LAST" % len(stored))
        self.assertNotRegex(inner.log(), r"<<< DATA\b")


if __name__ == "__main__":
    ternlib.main()
