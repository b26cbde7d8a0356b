"""
test_spool.py: what ternd keeps on disk.  An accepted message is stored
as queue/XX/ID.msg (our Received header and the data, byte for byte) and
ID.env (the envelope); it survives kill -9; what was never acknowledged
never appears in the queue; start-up recovery cleans what a crash left;
one daemon per spool; queue ids are unique and time-ordered; the files
of a delivered message are reused for the next one, whole.
"""

import email.utils
import errno
import datetime
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import HOSTNAME, HELO, TernTestCase, qdir, queued_id  # noqa: E402
from test_control import ctl_raw  # noqa: E402

DATE_RE = (rb"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?[0-9]{1,2} "
           rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
           rb"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}")

SPOOL_ERROR = "451 4.3.0 Error: queue file write error"

# Content with dot-led lines (stuffed on the wire) and 8-bit octets.
CONTENT = (b"From: Sender <sender@example.org>\r\n"
           b"To: rcpt@local.test\r\n"
           b"Subject: spool test\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n"
           b"\r\n"
           b".one leading dot\r\n"
           b"..two leading dots\r\n"
           b".\r\n"
           b"caf\xc3\xa9 \xe2\x82\xac \xff\xfe\x80 raw octets\r\n"
           b"\ttab and trailing space \r\n"
           b"\r\n"
           b"last line\r\n")

ENV_KEYS = ["version", "id", "arrival", "sender", "size", "body",
            "smtputf8", "client-address", "helo", "protocol", "tries",
            "next-attempt"]


def split_received(test, msg, qid, proto=b"ESMTP", helo=HELO, rcpt=None):
    """Check msg starts with our Received header; return the rest."""
    rx = (rb"Received: from " + re.escape(helo.encode()) +
          rb" \(\[127\.0\.0\.1\]\)\r\n"
          rb"\tby " + re.escape(HOSTNAME.encode()) + rb" \(tern\) with " +
          proto + rb" id " + qid.encode())
    if rcpt is not None:
        rx += rb"\r\n\tfor <" + re.escape(rcpt.encode()) + rb">;"
    else:
        rx += rb";"
    rx += rb"(?: |\r\n\t)(" + DATE_RE + rb")\r\n"
    m = re.match(rx, msg)
    test.assertIsNotNone(m, "no matching Received header at the start of "
                         "%r" % msg[:300])
    when = email.utils.parsedate_to_datetime(m.group(1).decode())
    now = datetime.datetime.now(datetime.timezone.utc)
    test.assertLess(abs((now - when).total_seconds()), 300, m.group(1))
    return msg[m.end():]


class Stored(TernTestCase):

    def setUp(self):
        super().setUp()
        self.t = self.tern(smtp={"max_message_size": "10M"})

    def test_message_and_envelope(self):
        c = self.t.session()
        r = c.mail("sender@example.org", ["rcpt@local.test"], CONTENT,
                   params=" BODY=8BITMIME")
        qid = queued_id(r)
        self.assertRegex(qid, r"^[0-9A-Z]{15}$")
        d = self.t.path("queue", qdir(qid))
        self.assertEqual(sorted(os.listdir(d)), [qid + ".env", qid + ".msg"])
        self.assertEqual(self.t.queued(), [qid])
        msg = self.t.read_msg(qid)
        rest = split_received(self, msg, qid, rcpt="rcpt@local.test")
        self.assertEqual(rest, CONTENT)

        fields, rcpts = self.t.read_env(qid)
        for key in ENV_KEYS:
            self.assertIn(key, fields)
        self.assertEqual(fields["version"], "1")
        self.assertEqual(fields["id"], qid)
        self.assertEqual(fields["sender"], "<sender@example.org>")
        self.assertEqual(int(fields["size"]),
                         os.path.getsize(self.t.qpath(qid, "msg")))
        self.assertEqual(fields["tries"], "0")
        self.assertEqual(fields["helo"], HELO)
        self.assertEqual(fields["protocol"], "ESMTP")
        self.assertIn("127.0.0.1", fields["client-address"])
        self.assertEqual(rcpts, [{"rcpt": "<rcpt@local.test>",
                                  "rcpt-state": "pending"}])

    def test_several_recipients(self):
        c = self.t.session()
        to = ["a@local.test", "b@example.test", "c@remote.example"]
        qid = queued_id(c.mail("sender@example.org", to, CONTENT))
        rest = split_received(self, self.t.read_msg(qid), qid)
        self.assertEqual(rest, CONTENT)
        _, rcpts = self.t.read_env(qid)
        self.assertEqual([r["rcpt"] for r in rcpts],
                         ["<%s>" % a for a in to])
        for r in rcpts:
            self.assertEqual(r.get("rcpt-state"), "pending", r)

    def test_null_sender(self):
        c = self.t.session()
        qid = queued_id(c.mail("", ["rcpt@local.test"], CONTENT))
        fields, _ = self.t.read_env(qid)
        self.assertEqual(fields["sender"], "<>")

    def test_helo_protocol(self):
        c = self.t.raw()
        self.assertEqual(c.cmd("HELO old.example").code, 250)
        qid = queued_id(c.mail("s@example.org", ["rcpt@local.test"],
                               CONTENT))
        rest = split_received(self, self.t.read_msg(qid), qid, b"SMTP",
                              "old.example", "rcpt@local.test")
        self.assertEqual(rest, CONTENT)
        fields, _ = self.t.read_env(qid)
        self.assertEqual(fields["protocol"], "SMTP")
        self.assertEqual(fields["helo"], "old.example")

    def test_smtputf8_protocol(self):
        c = self.t.session()
        rcpt = "\u00fcser@local.test"
        qid = queued_id(c.mail("j\u00f6rg@example.org", [rcpt], CONTENT,
                               params=" SMTPUTF8"))
        rest = split_received(self, self.t.read_msg(qid), qid,
                              b"UTF8SMTP", HELO, rcpt)
        self.assertEqual(rest, CONTENT)
        fields, rcpts = self.t.read_env(qid)
        self.assertEqual(fields["sender"], "<j\u00f6rg@example.org>")
        self.assertEqual(rcpts[0]["rcpt"], "<%s>" % rcpt)

    def test_large_message_byte_identical(self):
        rnd = random.Random(5321)
        # Any octet but NUL, CR and LF.
        table = (bytes(range(256)).replace(b"\r", b"r").replace(b"\n", b"n")
                 .replace(b"\x00", b"0"))
        lines = [b"Subject: large\r\n", b"\r\n"]
        size = 0
        while size < 1500000:
            n = rnd.randrange(0, 990)
            line = rnd.randbytes(n).translate(table)
            if rnd.random() < 0.1:
                line = b"." * rnd.randrange(1, 4) + line
            lines.append(line + b"\r\n")
            size += n + 2
        content = b"".join(lines)
        c = self.t.session()
        qid = queued_id(c.mail("s@example.org", ["rcpt@local.test"],
                               content, params=" BODY=8BITMIME"))
        rest = split_received(self, self.t.read_msg(qid), qid,
                              rcpt="rcpt@local.test")
        self.assertTrue(rest == content, "stored content differs")

    def test_spool_layout(self):
        for sub in ("incoming", "queue", "corrupt", "hold", "maildrop",
                    "spare"):
            self.assertTrue(os.path.isdir(self.t.path(sub)), sub)
        self.assertTrue(os.path.exists(self.t.path("lock")))
        self.assertEqual(self.t.files("incoming"), [])


class Spares(TernTestCase):

    def test_delivered_files_reused(self):
        # A delivered message's files are kept in spare/ and the next
        # message is written over them: its queued files are those
        # inodes, holding exactly the new message and envelope, nothing
        # of the longer ones before.  spare/ is emptied at start.
        t = self.tern(local=["local.test"])
        big = (b"Subject: big\r\n\r\n" +
               b"OLD CONTENT, forty octets to a line.\r\n" * 1200)
        t.send_message("a-rather-longer-sender-address@example.org",
                       ["rcpt@local.test"], big)
        t.wait_delivered(1)
        ternlib.wait_for(lambda: len(t.files("spare")) == 2,
                         ternlib.REPLY_TIMEOUT, "two files in spare/")
        self.assertEqual(t.queued(), [])
        inodes = {os.stat(t.path("spare", n)).st_ino
                  for n in t.files("spare")}

        qid = t.send_message("s@example.org", ["x@example.test"], CONTENT)
        self.assertEqual(t.files("spare"), [])
        self.assertEqual({os.stat(t.qpath(qid, e)).st_ino
                          for e in ("env", "msg")}, inodes)
        msg = t.read_msg(qid)
        self.assertNotIn(b"OLD CONTENT", msg)
        self.assertEqual(split_received(self, msg, qid,
                                        rcpt="x@example.test"), CONTENT)
        fields, rcpts = t.read_env(qid)
        self.assertEqual(fields["sender"], "<s@example.org>")
        self.assertEqual(int(fields["size"]), len(msg))
        self.assertEqual(rcpts, [{"rcpt": "<x@example.test>",
                                  "rcpt-state": "pending"}])

        # A message given up mid-DATA leaves its files as spares: its
        # content, and its envelope, made at DATA since no spare envelope
        # was left.  A restart empties spare/ and keeps the queued
        # message as it was.
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<x@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: never ends\r\n\r\n" + b"y" * 3000)
        c.close()
        ternlib.wait_for(lambda: len(t.files("spare")) == 2,
                         ternlib.REPLY_TIMEOUT, "spares from the abort")
        self.assertEqual(t.files("incoming"), [])
        t.stop()
        t.start()
        self.assertEqual(t.files("spare"), [])
        self.assertEqual(t.queued(), [qid])
        self.assertEqual(t.read_msg(qid), msg)

    def check_files_made_ahead(self, begin, finish):
        """With no spare envelope left (here: nothing delivered yet),
        the content and the envelope are both made in incoming/ before
        begin(c), the start of a message, is answered, so that no file
        is created between its end and the 250.  With spares (the one
        message delivered kept its two files) nothing is made: the
        content is written over its spare where it is, in spare/, the
        envelope is taken from them at the commit, and both go straight
        to queue/.  finish(c) sends the rest and returns the reply."""
        t = self.tern(local=["local.test"])
        for fresh in (True, False):
            c = t.session()
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
            begin(c)
            names = t.files("incoming")
            if fresh:
                stems = {n.rsplit(".", 1)[0] for n in names}
                self.assertEqual(len(stems), 1, names)
                stem = stems.pop()
                self.assertEqual(sorted(names),
                                 [stem + ".env", stem + ".msg"])
            else:
                self.assertEqual(names, [])
                self.assertEqual(len(t.files("spare")), 2)
            r = finish(c)
            self.assertEqual(r.code, 250, r)
            if fresh:
                self.assertEqual(queued_id(r), stem)
            c.cmd("QUIT")
            c.close()
            self.assertEqual(t.files("incoming"), [])
            t.wait_delivered(1 if fresh else 2)
            ternlib.wait_for(lambda: len(t.files("spare")) >= 2,
                             ternlib.REPLY_TIMEOUT, "spares kept")

    def test_files_made_before_354(self):
        def begin(c):
            self.assertEqual(c.cmd("DATA").code, 354)

        def finish(c):
            c.send(ternlib.dot_stuff(CONTENT))
            return c.reply()

        self.check_files_made_ahead(begin, finish)

    def test_chunk_waits_for_its_files(self):
        # BDAT as DATA: the first chunk's octets wait unread until the
        # files are there, and its 250 comes after.
        first, rest = CONTENT[:40], CONTENT[40:]

        def begin(c):
            c.send(b"BDAT %d\r\n%s" % (len(first), first))
            self.assertEqual(c.reply().code, 250)

        def finish(c):
            c.send(b"BDAT %d LAST\r\n%s" % (len(rest), rest))
            return c.reply()

        self.check_files_made_ahead(begin, finish)

    def test_files_not_made(self):
        # The worker cannot make the message's files (incoming/ not
        # writable): DATA gets 451 4.3.0, and a first chunk is read all
        # the same, then refused, so that its octets are never taken for
        # commands; the session goes on.
        t = self.tern(local=["local.test"])
        incoming = t.path("incoming")
        os.chmod(incoming, 0o555)
        try:
            c = t.session()
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
            self.assertEqual(c.cmd("DATA").line, SPOOL_ERROR)
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
            c.send(b"BDAT 6 LAST\r\nQUIT\r\n")
            self.assertEqual(c.reply().line, SPOOL_ERROR)
            self.assertEqual(c.cmd("NOOP").code, 250)
            self.assertEqual(c.cmd("QUIT").code, 221)
        finally:
            os.chmod(incoming, 0o700)
        self.assertEqual(t.queued(), [])
        self.assertRegex(t.log(), r"queue: incoming/\w+: Permission denied")


class Durability(TernTestCase):

    def test_survives_kill9(self):
        t = self.tern()
        c = t.session()
        qid = queued_id(c.mail("s@example.org", ["rcpt@local.test"],
                               CONTENT))
        msg = t.read_msg(qid)
        env = t.read_env_bytes(qid)
        t.kill9()
        t.start()
        self.assertEqual(t.queued(), [qid])
        self.assertEqual(t.read_msg(qid), msg)
        self.assertEqual(t.read_env_bytes(qid), env)
        self.assertEqual(split_received(self, msg, qid,
                                        rcpt="rcpt@local.test"), CONTENT)
        # And the restarted daemon takes new mail.
        qid2 = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.queued(), sorted([qid, qid2]))

    def test_client_gone_before_the_reply(self):
        """A client that sends the final dot and leaves at once, before
        the 250 (the commit of a 1 MB message takes longer than ternd
        takes to see it gone): the commit goes on, and the message is
        logged and delivered by this daemon, with no restart; the log
        says the client was told nothing (it will likely send it
        again, RFC 1047)."""
        t = self.tern(local=["local.test"])
        body = CONTENT + (b"y" * 76 + b"\r\n") * 13000
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(body))
        c.close()
        m = t.wait_log(r"(\w+): queued after its client left, before the "
                       r"reply, session=")
        qid = m.group(1)
        self.assertRegex(t.log(), r"%s: client=\[127\.0\.0\.1\], "
                         r"helo=client\.example" % qid)
        names = t.wait_delivered(1)
        with open(os.path.join(t.sink_maildir(), "new", names[0]),
                  "rb") as f:
            self.assertTrue(f.read().endswith(body.replace(b"\r\n",
                                                           b"\n")))
        t.wait_log(r"%s: removed" % qid)

    def test_survives_kill9_filesystem_sync(self):
        # spool_sync = filesystem: messages committed together in one
        # batch, each acknowledged only once the batch is durable.
        t = self.tern(main={"spool_sync": "filesystem"})
        sessions = [t.session() for _ in range(4)]
        for c in sessions:
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
        # Every final dot sent before any reply is read: one batch.
        for c in sessions:
            c.send(ternlib.dot_stuff(CONTENT) + b".\r\n")
        qids = sorted(queued_id(c.reply()) for c in sessions)
        msgs = {q: t.read_msg(q) for q in qids}
        t.kill9()
        t.start()
        self.assertEqual(t.queued(), qids)
        for q in qids:
            self.assertEqual(t.read_msg(q), msgs[q])
            self.assertEqual(split_received(self, msgs[q], q,
                                            rcpt="rcpt@local.test"),
                             CONTENT)
        self.assertEqual(t.files("incoming"), [])

    def start_data(self, c):
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<rcpt@local.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        # Stuffed, and without the final dot.
        c.send(ternlib.dot_stuff(CONTENT)[:-3] + b"x" * 5000 + b"\r\nmore")

    def test_client_gone_mid_data(self):
        t = self.tern()
        c = t.session()
        self.start_data(c)
        c.close()
        t.kill9()
        t.start()
        self.assertEqual(t.files("incoming"), [])
        self.assertEqual(t.queue_files(), [])

    def test_daemon_killed_mid_data(self):
        t = self.tern()
        c = t.session()
        self.start_data(c)
        try:
            ternlib.wait_for(lambda: t.files("incoming"), 2,
                             "a file in incoming/")
        except AssertionError:
            pass	# the daemon may hold the start in memory; still valid
        t.kill9()
        c.close()
        t.start()
        self.assertEqual(t.files("incoming"), [])
        self.assertEqual(t.queue_files(), [])

    def test_client_gone_then_normal_mail(self):
        t = self.tern()
        c = t.session()
        self.start_data(c)
        c.close()
        qid = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.queued(), [qid])
        ternlib.wait_for(lambda: t.files("incoming") == [], 5,
                         "incoming/ to be emptied of the abandoned message")
        t.restart()
        self.assertEqual(t.queued(), [qid])


# An id of long ago, in hold/00/ (read last of all).
SLOW = "00000000001ABCD"


class Recovery(TernTestCase):

    def plant(self, t, rel, data):
        p = t.path(*rel.split("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def test_recovery_at_start(self):
        t = self.tern()
        keep = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        lost = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.stop(), 0)
        keep_msg = t.read_msg(keep)
        keep_env = t.read_env_bytes(keep)
        # A committed envelope whose content is gone.
        os.unlink(t.qpath(lost, "msg"))
        orphan = "0000000001AB000"
        garbage = "0000000001AB001"
        self.plant(t, "incoming/0000000001AB002.msg", b"partial")
        self.plant(t, "incoming/junk", b"junk")
        self.plant(t, "queue/%s/%s.msg" % (qdir(orphan), orphan), CONTENT)
        self.plant(t, "queue/%s/%s.msg" % (qdir(garbage), garbage), CONTENT)
        self.plant(t, "queue/%s/%s.env" % (qdir(garbage), garbage),
                   b"\x00\x01 this is not an envelope\n\xff\n")
        t.start()

        self.assertEqual(t.files("incoming"), [])
        self.assertEqual(t.queued(), [keep])
        self.assertFalse(os.path.exists(t.qpath(orphan, "msg")))
        self.assertFalse(os.path.exists(t.qpath(garbage, "env")))
        self.assertFalse(os.path.exists(t.qpath(lost, "env")))
        corrupt = t.files("corrupt")
        for qid in (garbage, lost):
            self.assertTrue(any(qid in name for name in corrupt),
                            "%s not in corrupt/: %r" % (qid, corrupt))
        self.assertFalse(any(orphan in name for name in corrupt), corrupt)
        self.assertEqual(t.read_msg(keep), keep_msg)
        self.assertEqual(t.read_env_bytes(keep), keep_env)
        # The garbage is kept as it was, for a person to look at.
        contents = []
        for name in corrupt:
            with open(t.path("corrupt", name), "rb") as f:
                contents.append(f.read())
        self.assertIn(b"\x00\x01 this is not an envelope\n\xff\n", contents)
        # And the daemon serves.
        qid = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.queued(), sorted([keep, qid]))

    def test_layout_migration(self):
        """A spool of an earlier version (queue/XX by characters 10 and
        11 of the id, no layout mark) is moved to the current layout at
        start, including a move a crash cut in half and a held message;
        nothing is lost or changed."""
        t = self.tern()
        qids = [t.send_message("s@example.org", ["rcpt@local.test"],
                               CONTENT) for _ in range(4)]
        self.assertEqual(t.stop(), 0)
        before = {q: (t.read_msg(q), t.read_env_bytes(q)) for q in qids}
        old = lambda q: q[9:11]  # noqa: E731
        # The layout of earlier versions: queue/ by characters 10-11.
        for q in qids[:3]:
            for ext in ("msg", "env"):
                dst = t.path("queue", old(q), "%s.%s" % (q, ext))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.rename(t.qpath(q, ext), dst)
        # Cut in half by a crash: content moved, envelope not yet.
        half = qids[2]
        os.rename(t.path("queue", old(half), half + ".msg"),
                  t.qpath(half, "msg"))
        # Held in the old layout.
        held = qids[3]
        os.makedirs(t.path("hold", old(held)), exist_ok=True)
        for ext in ("msg", "env"):
            os.rename(t.qpath(held, ext),
                      t.path("hold", old(held), "%s.%s" % (held, ext)))
        os.unlink(t.path("queue", ternlib.LAYOUT_MARK))
        mark = t.log_mark()
        t.start()

        # Content of the first two and the held one, every envelope.
        moved = sum(old(q) != qdir(q) for q in qids[:2] + [held]) + \
            sum(old(q) != qdir(q) for q in qids)
        t.wait_log(r"queue: %d files moved to the current directory layout"
                   % moved, since=mark)
        self.assertTrue(os.path.exists(t.path("queue", ternlib.LAYOUT_MARK)))
        self.assertEqual(t.queued(), sorted(qids[:3]))
        self.assertEqual(
            sorted(t.files("hold")),
            sorted("%s/%s.%s" % (qdir(held), held, e) for e in
                   ("env", "msg")))
        for q in qids[:3]:
            self.assertEqual((t.read_msg(q), t.read_env_bytes(q)), before[q])
            if old(q) != qdir(q):
                self.assertFalse(os.path.exists(
                    t.path("queue", old(q), q + ".env")))
        with open(t.path("hold", qdir(held), held + ".env"), "rb") as f:
            self.assertEqual(f.read(), before[held][1])
        self.assertEqual(t.files("corrupt"), [])
        # The held one is found by id and goes back to the queue.
        self.assertEqual(ctl_raw(t.path("control.sock"),
                                 ("TERNCTL1 release %s\n" % held).encode()),
                         ["data %s" % held, "ok"])
        self.assertEqual(t.queued(), sorted(qids))
        # A second start moves nothing.
        mark = t.log_mark()
        t.restart()
        self.assertEqual(t.queued(), sorted(qids))
        self.assertNotIn("moved to the current directory layout",
                         t.log()[mark:])

    @staticmethod
    def open_writer(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == errno.ENXIO:	# no reader yet
                return None
            raise
        os.set_blocking(fd, True)
        return fd

    def test_serves_while_reading_the_spool(self):
        """The queue is read after ternd serves: mail is accepted while
        it reads, the verbs that move messages answer "loading" until it
        is done, and what it reads is then known like the rest.  A held
        envelope that is a FIFO holds the reading still (hold/ is read
        last) until the test writes it."""
        t = self.tern()
        qa = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        qb = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.stop(), 0)
        env = t.read_env_bytes(qa).replace(qa.encode(), SLOW.encode())
        owner = os.stat(t.path("queue"))
        msg = self.plant(t, "hold/%s/%s.msg" % (qdir(SLOW), SLOW),
                         t.read_msg(qa))
        fifo = t.path("hold", qdir(SLOW), SLOW + ".env")
        os.mkfifo(fifo, 0o600)
        for p in (msg, fifo):
            os.chown(p, owner.st_uid, owner.st_gid)
        mark = t.log_mark()
        t.start(wait=False)
        t.wait_log(r"ternd\[%d\]: ready$" % t.proc.pid, since=mark)

        new = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        sock = t.path("control.sock")
        for verb in ("hold", "delete", "bounce"):
            self.assertEqual(
                ctl_raw(sock, ("TERNCTL1 %s %s\n" % (verb, qa)).encode()),
                ["data %s loading" % qa, "ok"])
        self.assertEqual(
            ctl_raw(sock, ("TERNCTL1 release %s\n" % SLOW).encode()),
            ["data %s loading" % SLOW, "ok"])
        self.assertNotIn("messages read", t.log()[mark:])

        # ternd is blocked opening the FIFO: a writer opens it at once.
        fd = ternlib.wait_for(lambda: self.open_writer(fifo),
                              ternlib.REPLY_TIMEOUT, "ternd to open the FIFO")
        with os.fdopen(fd, "wb") as f:
            f.write(env)
        t.wait_log(r"queue: 3 messages read in ", since=mark)
        self.assertIn("data queue_size=4",
                      ctl_raw(sock, b"TERNCTL1 stats\n"))
        self.assertEqual(t.queued(), sorted([qa, qb, new]))
        # The envelope becomes a file again; the held message is released
        # and attempted like any other.
        tmp = fifo + ".new"
        with open(tmp, "wb") as f:
            f.write(env)
        os.chown(tmp, owner.st_uid, owner.st_gid)
        os.rename(tmp, fifo)
        self.assertEqual(
            ctl_raw(sock, ("TERNCTL1 release %s\n" % SLOW).encode()),
            ["data %s" % SLOW, "ok"])
        self.assertEqual(t.queued(), sorted([qa, qb, new, SLOW]))
        self.assertEqual(
            ctl_raw(sock, ("TERNCTL1 hold %s\n" % qa).encode()),
            ["data %s" % qa, "ok"])

    def test_two_daemons_one_spool(self):
        t = self.tern()
        conf2 = os.path.join(t.dir, "second.ini")
        port2 = ternlib.free_port()
        with open(t.conf) as f:
            text = f.read()
        with open(conf2, "w") as f:
            f.write(text.replace("127.0.0.1:%d" % t.port,
                                 "127.0.0.1:%d" % port2))
        rc, out, err = ternlib.run_ternd(["-c", conf2])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"(?i)lock|in use")
        # The first one is undisturbed.
        self.assertTrue(t.is_running())
        qid = t.send_message("s@example.org", ["rcpt@local.test"], CONTENT)
        self.assertEqual(t.queued(), [qid])
        self.assertTrue(os.path.exists(t.path("lock")))


class QueueIds(TernTestCase):

    def test_ids_unique_and_increasing(self):
        t = self.tern()
        ids = []
        c = t.session()
        for i in range(6):
            ids.append(queued_id(c.mail("s@example.org", ["r@local.test"],
                                        b"Subject: %d\r\n\r\nx\r\n" % i)))
        c.close()
        for _ in range(2):
            ids.append(t.send_message("s@example.org", ["r@local.test"],
                                      CONTENT))
        for qid in ids:
            self.assertRegex(qid, r"^[0-9A-Z]{15}$")
            self.assertTrue(os.path.exists(t.qpath(qid, "msg")), qid)
        self.assertEqual(len(set(ids)), len(ids), ids)
        self.assertEqual(ids, sorted(ids), "ids not in order of acceptance")
        self.assertEqual(t.queued(), sorted(ids))

    def test_ids_increase_across_restart(self):
        t = self.tern()
        first = t.send_message("s@example.org", ["r@local.test"], CONTENT)
        t.kill9()
        t.start()
        second = t.send_message("s@example.org", ["r@local.test"], CONTENT)
        self.assertLess(first, second)


if __name__ == "__main__":
    ternlib.main()
