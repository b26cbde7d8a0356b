"""
test_milter.py: content filters (the Sendmail milter protocol) on SMTP
sessions, through the real ternd on loopback.  The filters are separate
processes started here (milterfilter.py): a python3-milter filter
scripted by the message's X-Test-Action field, its quiet variant that
negotiates no-reply steps, skipped steps and leading spaces, and raw
filters that hang, close, answer garbage or send an oversized packet.

Checked: the steps and macros a filter sees, each reply (accept,
reject, tempfail, the filter's own code and text, multi-line, discard,
quarantine into the hold queue, skip, progress) with the client's reply
and the log line; each change (add, insert, change and delete header,
replace body, add recipient with arguments, delete recipient, change
sender) in what is queued or delivered; that nothing is applied from a
filter that then refuses; a filter that fails getting default_action
(tempfail, reject, accept, quarantine); inet, inet6 and unix sockets;
two filters in list order; and a hung filter not holding up another
session.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, qdir, queued_id, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILTER = os.path.join(HERE, "milterfilter.py")
FILTER_START = 20.0	# a python3-milter filter, on a busy machine

MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
TEMPFAIL = "451 4.7.1 Service unavailable - try again later"
REJECTED = "550 5.7.1 Command rejected"


class Filter:
    """One filter process, started by PID and killed by PID."""

    def __init__(self, mode, kind="inet"):
        self.dir = tempfile.mkdtemp(prefix="tern-milter-")
        os.chmod(self.dir, 0o711)
        self.events_path = os.path.join(self.dir, "events")
        if kind == "unix":
            self.path = os.path.join(self.dir, "filter.sock")
            self.spec = "unix:" + self.path
        elif kind == "inet6":
            self.spec = "inet6:[::1]:%d" % ternlib.free_port()
        else:
            self.spec = "inet:127.0.0.1:%d" % ternlib.free_port()
        self.out = open(os.path.join(self.dir, "out"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, FILTER, self.spec, mode, self.events_path],
            stdin=subprocess.DEVNULL, stdout=self.out,
            stderr=subprocess.STDOUT)
        wait_for(self._listening, FILTER_START, "filter on " + self.spec,
                 interval=0.1)
        if kind == "unix":
            # ternd may run as nobody.
            os.chmod(self.path, 0o666)
        self.mark = len(self.events())

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("filter exited: %s" % self.output())
        if self.spec.startswith("unix:"):
            family, addr = socket.AF_UNIX, self.path
            if not os.path.exists(self.path):
                return False
        else:
            host, port = self.spec.split(":", 1)[1].rsplit(":", 1)
            family = socket.AF_INET6 if "[" in host else socket.AF_INET
            addr = (host.strip("[]"), int(port))
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.settimeout(1.0)
            s.connect(addr)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def output(self):
        with open(os.path.join(self.dir, "out"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def events(self, name=None):
        evs = ternlib.read_json_lines(self.events_path)
        if name is not None:
            evs = [e for e in evs if e.get("ev") == name]
        return evs

    def wait_event(self, name, n=1, timeout=10.0):
        wait_for(lambda: len(self.events(name)) >= n, timeout,
                 "%d %s event(s) from the filter" % (n, name))
        return self.events(name)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.out.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def message(action, extra=b"", body=b"The body.\r\n"):
    return (b"From: a@example.org\r\nTo: b@example.test\r\n"
            b"Subject: a test\r\nX-Test-Action: " + action.encode() +
            b"\r\n" + extra + b"\r\n" + body)


def header_lines(msg):
    """The header section of a message (bytes) as unfolded-kept lines."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


class MilterCase(TernTestCase):

    def filter(self, mode="script", kind="inet"):
        f = Filter(mode, kind)
        self.addCleanup(f.close)
        return f

    def milter_tern(self, filters, local=None, **keys):
        conf = {"smtpd_milters": " ".join(f.spec if isinstance(f, Filter)
                                          else f for f in filters),
                "command_timeout": "3s", "content_timeout": "3s"}
        conf.update(keys)
        kw = {"sections": {"milter": conf}}
        if local:
            kw["local"] = local
        return self.tern(**kw)

    def send(self, t, action, sender="a@example.org",
             rcpts=("b@example.test",), **kw):
        c = t.session()
        try:
            r = c.mail(sender, list(rcpts), message(action, **kw))
            c.cmd("QUIT")
        finally:
            c.close()
        return r

    def assertNothingQueued(self, t):
        self.assertEqual(t.queued(), [])
        self.assertEqual(t.files("incoming"), [])


class Steps(MilterCase):

    def test_steps_and_macros(self):
        f = self.filter()
        t = self.milter_tern([f])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org> SIZE=200"),
                         MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@example.test> NOTIFY=NEVER"),
                         RCPT_OK)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(message("none")))
        qid = queued_id(c.reply())
        c.cmd("QUIT")
        f.wait_event("eom")
        conn = f.events("connect")[-1]
        self.assertEqual(conn["hostname"], "unknown")
        self.assertEqual(conn["addr"][0], "127.0.0.1")
        m = conn["macros"]
        self.assertEqual(m["j"], HOSTNAME)
        self.assertEqual(m["{client_addr}"], "127.0.0.1")
        self.assertEqual(m["{client_port}"], str(conn["addr"][1]))
        self.assertEqual(m["{client_name}"], "unknown")
        self.assertEqual(m["{daemon_addr}"], "127.0.0.1")
        self.assertEqual(m["_"], "unknown [127.0.0.1]")
        self.assertTrue(m["v"].startswith("tern "))
        self.assertEqual(f.events("helo")[-1]["name"], ternlib.HELO)
        mail = f.events("mail")[-1]
        self.assertEqual(mail["sender"], "<a@example.org>")
        self.assertEqual(mail["params"], ["SIZE=200"])
        self.assertEqual(mail["macros"]["{mail_addr}"], "a@example.org")
        rcpt = f.events("rcpt")[-1]
        self.assertEqual(rcpt["rcpt"], "<b@example.test>")
        self.assertEqual(rcpt["params"], ["NOTIFY=NEVER"])
        self.assertEqual(rcpt["macros"]["{rcpt_addr}"], "b@example.test")
        self.assertEqual(rcpt["macros"]["{rcpt_mailer}"], "smtp")
        self.assertEqual(f.events("data")[-1]["macros"]["i"], qid)
        eom = f.events("eom")[-1]
        self.assertEqual(eom["macros"]["i"], qid)
        self.assertIn(["Subject", "a test"], eom["headers"])
        self.assertEqual(eom["body_len"], len(b"The body.\r\n"))
        self.assertEqual(t.queued(), [qid])

    def test_auth_and_tls_macros_absent_in_plaintext(self):
        f = self.filter()
        t = self.milter_tern([f])
        self.assertEqual(self.send(t, "none").code, 250)
        m = f.wait_event("mail")[-1]["macros"]
        self.assertNotIn("{auth_authen}", m)
        self.assertNotIn("{tls_version}", m)

    def test_tls_and_auth_macros(self):
        f = self.filter()
        t = mailtest.mail_tern(
            self, users=[("user@local.test",
                          mailtest.plain_secret("secret"))],
            tls=True, start=False)
        t.write_config(sections={"milter": {"smtpd_milters": f.spec}})
        t.start()
        c = t.raw()
        c.ehlo()
        mailtest.starttls(c)
        c.ehlo()
        self.assertEqual(mailtest.auth_plain(c, "user@local.test",
                                             "secret").code, 235)
        self.assertReply(c.cmd("MAIL FROM:<user@local.test>"), MAIL_OK)
        helo = f.wait_event("helo", n=2)[-1]["macros"]
        self.assertTrue(helo["{tls_version}"].startswith("TLSv1"))
        self.assertNotEqual(helo["{cipher}"], "")
        mail = f.wait_event("mail")[-1]["macros"]
        self.assertEqual(mail["{auth_authen}"], "user@local.test")
        self.assertEqual(mail["{auth_type}"], "PLAIN")
        self.assertEqual(mail["{mail_mailer}"], "local")

    def test_connect_refused(self):
        f = self.filter()
        t = self.milter_tern([f])
        c = t.raw(source="127.0.0.3")
        self.assertEqual(c.greeting.code, 220)
        self.assertReply(c.cmd("EHLO " + ternlib.HELO),
                         "554 5.7.1 Connection refused by filter")
        self.assertReply(c.cmd("HELO " + ternlib.HELO),
                         "554 5.7.1 Connection refused by filter")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                         "503 5.5.1 Error: send HELO/EHLO first")
        t.wait_log(r"NOQUEUE: milter-reject: CONNECT from "
                   r"unknown\[127\.0\.0\.3\]: 554 5\.7\.1 Connection "
                   r"refused by filter;")

    def test_helo_refused(self):
        f = self.filter()
        t = self.milter_tern([f])
        c = t.raw()
        self.assertReply(c.cmd("EHLO reject.example"),
                         "550 5.7.1 HELO reject.example refused")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                         "503 5.5.1 Error: send HELO/EHLO first")
        self.assertEqual(c.cmd("EHLO fine.example").code, 250)
        # The filter that refused is still asked about the rest.
        self.assertEqual(f.events("helo")[-1]["name"], "fine.example")
        self.assertReply(c.cmd("MAIL FROM:<blocked@example.org>"),
                         "550 5.7.1 Sender blocked by filter")
        t.wait_log(r"milter-reject: EHLO from unknown\[127\.0\.0\.1\]: "
                   r"550 5\.7\.1 HELO reject\.example refused;")

    def test_mail_refused_and_tempfailed(self):
        f = self.filter()
        t = self.milter_tern([f])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<blocked@example.org>"),
                         "550 5.7.1 Sender blocked by filter")
        self.assertReply(c.cmd("MAIL FROM:<later@example.org>"), TEMPFAIL)
        # No transaction was left open by either.
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        t.wait_log(r"NOQUEUE: milter-reject: MAIL from "
                   r"unknown\[127\.0\.0\.1\]: 550 5\.7\.1 Sender blocked "
                   r"by filter; from=<blocked@example\.org> proto=ESMTP "
                   r"helo=<client\.example>")

    def test_rcpt_refused_only_that_one(self):
        f = self.filter()
        t = self.milter_tern([f])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<nobody@example.test>"),
                         "550 5.1.1 No such user here")
        self.assertReply(c.cmd("RCPT TO:<busy@example.test>"),
                         "452 4.2.2 Mailbox full, try later")
        self.assertReply(c.cmd("RCPT TO:<b@example.test>"), RCPT_OK)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(message("none")))
        qid = queued_id(c.reply())
        _, rcpts = t.read_env(qid)
        self.assertEqual([r["rcpt"] for r in rcpts], ["<b@example.test>"])
        t.wait_log(r"NOQUEUE: milter-reject: RCPT from "
                   r"unknown\[127\.0\.0\.1\]: 550 5\.1\.1 No such user "
                   r"here; from=<a@example\.org> to=<nobody@example\.test>")

    def test_discard_at_mail(self):
        f = self.filter()
        t = self.milter_tern([f])
        r = self.send(t, "none", sender="drop@example.org")
        self.assertEqual(r.code, 250)
        self.assertNothingQueued(t)
        t.wait_log(r"milter-discard: END-OF-MESSAGE from "
                   r"unknown\[127\.0\.0\.1\]: milter triggers DISCARD "
                   r"action; from=<drop@example\.org>")


class EndOfMessage(MilterCase):

    def setUp(self):
        super().setUp()
        self.f = self.filter()
        self.t = self.milter_tern([self.f])

    def test_accept(self):
        qid = queued_id(self.send(self.t, "accept"))
        self.assertEqual(self.t.queued(), [qid])

    def test_reject_with_own_reply(self):
        r = self.send(self.t, "reject")
        self.assertReply(r, "550 5.7.1 Message refused by filter")
        self.assertNothingQueued(self.t)
        self.t.wait_log(r"[0-9A-Z]{15}: milter-reject: END-OF-MESSAGE from "
                        r"unknown\[127\.0\.0\.1\]: 5\.7\.1 Message refused "
                        r"by filter; from=<a@example\.org> "
                        r"to=<b@example\.test> proto=ESMTP "
                        r"helo=<client\.example>")

    def test_reject_multiline(self):
        r = self.send(self.t, "multiline")
        self.assertEqual(r.raw, ["550-5.7.1 First line of the refusal",
                                 "550-5.7.1 Second line",
                                 "550 5.7.1 Last line"])
        self.assertNothingQueued(self.t)

    def test_reject_default_reply(self):
        self.assertReply(self.send(self.t, "reject-plain"), REJECTED)
        self.assertNothingQueued(self.t)

    def test_tempfail(self):
        self.assertReply(self.send(self.t, "tempfail"), TEMPFAIL)
        self.assertReply(self.send(self.t, "tempfail-code"),
                         "452 4.3.1 Filter out of space")
        self.assertNothingQueued(self.t)

    def test_discard(self):
        r = self.send(self.t, "discard")
        qid = queued_id(r)
        self.assertNothingQueued(self.t)
        self.t.wait_log(qid + r": milter-discard: END-OF-MESSAGE from "
                        r"unknown\[127\.0\.0\.1\]: milter triggers DISCARD "
                        r"action;")

    def test_quarantine(self):
        qid = queued_id(self.send(self.t, "quarantine"))
        self.assertEqual(self.t.queued(), [])
        held = self.t.files("hold")
        self.assertIn("%s/%s.env" % (qdir(qid), qid), held)
        with open(self.t.path("hold", qdir(qid), qid + ".env"), "rb") as f:
            self.assertIn(b"looks suspicious to the filter", f.read())
        self.t.wait_log(qid + r": milter-hold: END-OF-MESSAGE from "
                        r"unknown\[127\.0\.0\.1\]: looks suspicious to the "
                        r"filter;")
        # ternctl release gives it back to the queue.
        p = subprocess.run([mailtest.ternctl_path(), "-c", self.t.conf,
                            "release", qid], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        wait_for(lambda: self.t.queued() == [qid], 10.0,
                 "the released message in the queue")
        self.assertEqual(self.t.files("hold"), [])

    def test_skip_body(self):
        body = b"x" * 998 + b"\r\n"
        qid = queued_id(self.send(self.t, "skip", body=body * 300))
        eom = self.f.wait_event("eom")[-1]
        # The first chunk was answered SKIP: no more were sent.
        self.assertEqual(eom["chunks"], 1)
        self.assertLess(eom["body_len"], len(body) * 300)
        self.assertEqual(self.t.queued(), [qid])
        self.assertTrue(self.t.read_msg(qid).endswith(body * 300))

    def test_long_body_in_chunks(self):
        body = b"y" * 998 + b"\r\n"
        qid = queued_id(self.send(self.t, "none", body=body * 200))
        eom = self.f.wait_event("eom")[-1]
        self.assertEqual(eom["body_len"], len(body) * 200)
        self.assertGreaterEqual(eom["chunks"], 4)
        self.assertEqual(self.t.queued(), [qid])

    def test_progress(self):
        qid = queued_id(self.send(self.t, "progress"))
        self.assertIn(b"X-Progressed: yes\r\n", self.t.read_msg(qid))

    def test_header_changes(self):
        extra = (b"X-Remove-Me: gone\r\nX-Twice: one\r\n"
                 b"X-Twice: two\r\n")
        qid = queued_id(self.send(self.t, "headers", extra=extra))
        lines = header_lines(self.t.read_msg(qid))
        self.assertTrue(lines[0].startswith(b"Received: from "))
        # Our Received field stays first; index 0 is the message's first.
        fields = [ln for ln in lines if not ln.startswith((b" ", b"\t"))]
        fields = fields[1:]
        self.assertEqual(fields[0], b"X-Inserted: at the top")
        self.assertEqual(fields[1], b"X-Second: at index 1")
        self.assertEqual(fields[2], b"From: a@example.org")
        self.assertIn(b"Subject: changed by the filter", lines)
        self.assertNotIn(b"Subject: a test", lines)
        self.assertFalse([ln for ln in lines
                          if ln.startswith(b"X-Remove-Me")])
        self.assertIn(b"X-Twice: one", lines)
        self.assertIn(b"X-Twice: second one changed", lines)
        self.assertIn(b"X-Missing: added by a change", lines)
        i = lines.index(b"X-Folded: first line")
        self.assertEqual(lines[i + 1], b"\tsecond line")
        # Added ones at the end, in the order asked.
        self.assertEqual(lines[-1], b"X-Missing: added by a change")
        self.assertLess(lines.index(b"X-Added: added by the filter"),
                        lines.index(b"X-Folded: first line"))
        self.assertTrue(self.t.read_msg(qid).endswith(
            b"\r\n\r\nThe body.\r\n"))

    def test_replace_body(self):
        qid = queued_id(self.send(self.t, "body"))
        msg = self.t.read_msg(qid)
        self.assertTrue(msg.endswith(
            b"\r\n\r\nA new body\r\nin two pieces\r\n"), msg)
        self.assertNotIn(b"The body.", msg)

    def test_envelope_changes(self):
        qid = queued_id(self.send(
            self.t, "envelope",
            rcpts=("b@example.test", "gone@example.test")))
        fields, rcpts = self.t.read_env(qid)
        self.assertEqual(fields["sender"], "<new-sender@example.org>")
        self.assertEqual(fields.get("ret"), "hdrs")
        addrs = [r["rcpt"] for r in rcpts]
        self.assertEqual(addrs, ["<b@example.test>", "<added@example.test>",
                                 "<added-par@example.test>"])
        self.assertEqual(rcpts[2].get("rcpt-notify"), "success,failure")
        self.assertNotIn("rcpt-notify", rcpts[1])

    def test_nothing_half_applied(self):
        r = self.send(self.t, "modify-then-reject")
        self.assertReply(r, "550 5.7.1 Changed my mind")
        self.assertNothingQueued(self.t)
        # The next message from the same session carries nothing of it.
        qid = queued_id(self.send(self.t, "none"))
        msg = self.t.read_msg(qid)
        self.assertNotIn(b"X-Half", msg)
        _, rcpts = self.t.read_env(qid)
        self.assertEqual([r["rcpt"] for r in rcpts], ["<b@example.test>"])

    def test_all_recipients_deleted(self):
        r = self.send(self.t, "delete-all", rcpts=("only@example.test",))
        self.assertEqual(r.code, 250)
        self.assertNothingQueued(self.t)

    def test_bdat_not_offered(self):
        # A filter's DATA step has no place in BDAT: CHUNKING is not
        # offered, a BDAT chunk is read and refused, and DATA then works.
        c = self.t.session()
        r = c.cmd("EHLO client.test")
        self.assertEqual(r.code, 250)
        self.assertFalse(any("CHUNKING" in line for line in r.raw), r.raw)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@example.test>"), RCPT_OK)
        body = message("accept")
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertReply(c.reply(), "502 5.5.1 Error: BDAT not offered "
                                    "here, use DATA")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(body))
        qid = queued_id(c.reply())
        c.cmd("QUIT")
        self.f.wait_event("eom")
        self.assertEqual(self.t.queued(), [qid])

    def test_two_messages_one_session(self):
        c = self.t.session()
        q1 = queued_id(c.mail("a@example.org", ["b@example.test"],
                              message("headers")))
        q2 = queued_id(c.mail("a@example.org", ["b@example.test"],
                              message("none")))
        self.assertIn(b"X-Added", self.t.read_msg(q1))
        self.assertNotIn(b"X-Added", self.t.read_msg(q2))
        self.assertReply(c.cmd("RSET"), "250 2.0.0 Ok")
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RSET"), "250 2.0.0 Ok")
        self.f.wait_event("abort")


class Delivered(MilterCase):

    def test_modified_message_delivered(self):
        f = self.filter()
        t = self.milter_tern([f], local=["tern.test"])
        c = t.session()
        queued_id(c.mail("a@example.org", ["someone@tern.test"],
                         message("headers")))
        names = t.wait_delivered(1)
        with open(os.path.join(t.sink_maildir(), "new", names[0]),
                  "rb") as fh:
            msg = fh.read()
        lines = header_lines(msg.replace(b"\n", b"\r\n").replace(
            b"\r\r\n", b"\r\n"))
        self.assertIn(b"Subject: changed by the filter", lines)
        self.assertIn(b"X-Added: added by the filter", lines)


class Sockets(MilterCase):

    def check(self, kind):
        f = self.filter(kind=kind)
        t = self.milter_tern([f])
        qid = queued_id(self.send(t, "headers"))
        self.assertIn(b"X-Added: added by the filter", t.read_msg(qid))

    def test_unix(self):
        self.check("unix")

    def test_inet6(self):
        self.check("inet6")

    def test_protocol_2(self):
        f = self.filter()
        t = self.milter_tern([f], protocol="2")
        qid = queued_id(self.send(t, "headers"))
        self.assertIn(b"X-Added: added by the filter", t.read_msg(qid))
        # No DATA step before version 4.
        f.wait_event("eom")
        self.assertEqual(f.events("data"), [])
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: version \d+, actions "
                   r"0x3f, protocol 0x0")

    def test_two_filters_in_order(self):
        f1 = self.filter()
        f2 = self.filter("noreply", kind="unix")
        t = self.milter_tern([f1, f2])
        qid = queued_id(self.send(t, "headers"))
        msg = t.read_msg(qid)
        # Both added theirs, the first filter's first (the second keeps
        # leading spaces: it gives none).
        self.assertLess(msg.index(b"X-Added: added by the filter"),
                        msg.index(b"X-Added:added by the filter"))
        f1.wait_event("eom")
        # The second filter saw the message as the first left it.
        eom = f2.wait_event("eom")[-1]
        self.assertIn(["X-Added", " added by the filter"], eom["headers"])
        self.assertIn(["Subject", " changed by the filter"],
                      eom["headers"])

    def test_discard_at_mail_ends_the_filters_part(self):
        # As Postfix: once a filter discards the message at MAIL, no
        # filter hears of it again; the second one never got MAIL and
        # must not get RCPT or DATA either.
        f1 = self.filter()
        f2 = self.filter()
        t = self.milter_tern([f1, f2])
        c = t.session()
        r = c.mail("drop@example.org", ["b@example.test"],
                   message("none"))
        self.assertEqual(r.code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        self.assertNothingQueued(t)
        self.assertEqual(f1.wait_event("mail")[-1]["sender"],
                         "<drop@example.org>")
        self.assertEqual(f2.events("mail"), [])
        self.assertEqual(f2.events("rcpt"), [])
        self.assertEqual(f2.events("data"), [])

    def test_noreply_skipped_steps_leading_space(self):
        f = self.filter("noreply")
        t = self.milter_tern([f])
        qid = queued_id(self.send(t, "headers"))
        eom = f.wait_event("eom")[-1]
        # Leading spaces kept, as negotiated.
        self.assertIn(["Subject", " a test"], eom["headers"])
        self.assertEqual(f.events("eoh-called"), [])
        self.assertEqual(f.events("data"), [])
        # The macros it asked for at connect, and no others.
        self.assertEqual(sorted(f.events("connect")[-1]["macros"]),
                         ["j", "{client_addr}"])
        lines = header_lines(t.read_msg(qid))
        # A filter that keeps leading spaces gives its own.
        self.assertIn(b"X-Added:added by the filter", lines)


class Failures(MilterCase):

    def test_hang_times_out(self):
        f = self.filter("hang")
        t = self.milter_tern([f], content_timeout="1s")
        r = self.send(t, "none")
        self.assertReply(r, TEMPFAIL)
        self.assertNothingQueued(t)
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: reply timeout, tempfail")

    def test_negotiation_timeout(self):
        f = self.filter("mute")
        t = self.milter_tern([f], connect_timeout="1s")
        c = t.raw()
        self.assertReply(c.cmd("EHLO " + ternlib.HELO), TEMPFAIL)
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: negotiation timeout, "
                   r"tempfail")

    def test_close_at_eom(self):
        f = self.filter("close")
        t = self.milter_tern([f])
        self.assertReply(self.send(t, "none"), TEMPFAIL)
        self.assertNothingQueued(t)
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: connection closed")

    def test_garbage(self):
        f = self.filter("garbage")
        t = self.milter_tern([f])
        self.assertReply(self.send(t, "none"), TEMPFAIL)
        self.assertNothingQueued(t)
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: unknown reply")

    def test_oversized_packet(self):
        f = self.filter("oversize")
        t = self.milter_tern([f])
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), TEMPFAIL)
        t.wait_log(r"packet length out of range")

    def test_accepted_session_then_closed(self):
        # A filter done with the session may hang up: nothing is
        # refused for it.
        f = self.filter("acceptclose")
        t = self.milter_tern([f])
        c = t.session()
        f.wait_event("closed")
        # A round trip: ternd has seen the filter hang up by now.
        self.assertEqual(c.cmd("EHLO " + ternlib.HELO).code, 250)
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@example.test>"), RCPT_OK)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(message("none")))
        qid = queued_id(c.reply())
        c.cmd("QUIT")
        c.close()
        self.assertEqual(t.queued(), [qid])

    def test_new_body_over_the_size_limit(self):
        # A new body may not make the message larger than any client
        # may send: the filter has failed.
        f = self.filter("bigbody")
        t = self.tern(sections={
            "milter": {"smtpd_milters": f.spec, "command_timeout": "3s",
                       "content_timeout": "3s"},
            "smtp": {"max_message_size": "20000"}})
        self.assertReply(self.send(t, "none"), TEMPFAIL)
        self.assertNothingQueued(t)
        t.wait_log(r"milter inet:127\.0\.0\.1:\d+: new body too big")

    def test_unreachable(self):
        spec = "inet:127.0.0.1:%d" % ternlib.free_port()
        t = self.milter_tern([spec])
        c = t.raw()
        self.assertReply(c.cmd("EHLO " + ternlib.HELO), TEMPFAIL)
        t.wait_log(r"milter %s: cannot connect" % re.escape(spec))

    def test_default_reject(self):
        f = self.filter("close")
        t = self.milter_tern([f], default_action="reject")
        self.assertReply(self.send(t, "none"), REJECTED)
        self.assertNothingQueued(t)

    def test_default_accept(self):
        f = self.filter("garbage")
        t = self.milter_tern([f], default_action="accept")
        qid = queued_id(self.send(t, "none"))
        self.assertEqual(t.queued(), [qid])
        # The filter is left out for the rest of the session, and a new
        # session asks it again.
        qid2 = queued_id(self.send(t, "none"))
        self.assertEqual(t.queued(), sorted([qid, qid2]))

    def test_default_quarantine(self):
        spec = "unix:/nonexistent-tern-test/filter.sock"
        t = self.milter_tern([spec], default_action="quarantine")
        qid = queued_id(self.send(t, "none"))
        self.assertEqual(t.queued(), [])
        self.assertIn("%s/%s.env" % (qdir(qid), qid), t.files("hold"))

    def test_failed_filter_then_good_one(self):
        f = self.filter()
        spec = "inet:127.0.0.1:%d" % ternlib.free_port()
        t = self.milter_tern([spec, f], default_action="accept")
        qid = queued_id(self.send(t, "headers"))
        self.assertIn(b"X-Added: added by the filter", t.read_msg(qid))

    def test_hung_filter_holds_up_no_other_session(self):
        f = self.filter("hang")
        t = self.milter_tern([f], content_timeout="20s")
        a = t.session()
        self.assertReply(a.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(a.cmd("RCPT TO:<b@example.test>"), RCPT_OK)
        self.assertEqual(a.cmd("DATA").code, 354)
        a.send(ternlib.dot_stuff(message("none")))
        f.wait_event("cmd", n=1)
        wait_for(lambda: [e for e in f.events("cmd") if e["cmd"] == "E"],
                 10.0, "the end of the message at the filter")
        # While a waits for the filter, b goes through its commands.
        b = t.session()
        self.assertReply(b.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(b.cmd("RCPT TO:<b@example.test>"), RCPT_OK)
        self.assertReply(b.cmd("QUIT"), "221 2.0.0 Bye")
        # ... and a is still waiting.
        a.no_reply(0.2)
        self.assertNotIn("reply timeout", t.log())
        self.assertReply(a.reply(timeout=40), TEMPFAIL)


if __name__ == "__main__":
    ternlib.main()
