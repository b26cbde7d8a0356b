"""
test_notify.py: what the notifications tern sends say and how they are
logged, through the real ternd, a dnsmasq and NextHop servers.  A failure
returns the whole message by default, as Postfix does, up to
bounce_size_limit and not past it, nor when the sender asked RET=HDRS; a
success notice for a Maildir delivery never shows the mailbox path; a
report on an SMTPUTF8 message to a UTF-8 address is an RFC 6533 global
one that Python's email package reads; each notification gets a
"from=<>, size=N, nrcpt=M" line with its real size, so that pflogsumm
counts its size.
"""

import email
import email.policy
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import QID_RE, TernTestCase  # noqa: E402
from test_delivery import (CONTENT, DELIVER_TIMEOUT, MX1,  # noqa: E402
                           SENDER, SENDER_MX, DeliveryCase)
from test_logging import PFLOGSUMM, file_log, wait_file_line  # noqa: E402


def notice_re(qid):
    return r": %s: sender [a-z -]*notification: (%s)$" % (qid, QID_RE)


def from_re(qid):
    """The qmgr line of a notification, Postfix's layout; size is group
    1 and nrcpt group 2."""
    return (r"ternd/qmgr\[[0-9]+\]: %s: from=<>, size=([0-9]+), "
            r"nrcpt=([0-9]+) \(queue active\)$" % qid)


class Bounce(DeliveryCase):

    def send(self, content=CONTENT, params="", rcpt="bad@dest.test",
             sender=SENDER):
        c = self.t.session()
        try:
            r = c.cmd("MAIL FROM:<%s>%s" % (sender, params))
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r.code, 250, r)
            r = c.cmd("DATA")
            self.assertEqual(r.code, 354, r)
            c.send(ternlib.dot_stuff(content))
            qid = ternlib.queued_id(c.reply())
            c.cmd("QUIT")
        finally:
            c.close()
        return qid

    def bounce(self, content=CONTENT, params="", delivery=None, **kw):
        """One message refused for good by MX1; returns the notification
        as it arrived at the sender's MX, its queue id, and the log."""
        self.hop(MX1, rcpt="550 5.1.1 no such user", **kw)
        back = self.hop(SENDER_MX)
        self.start_tern(delivery=delivery)
        qid = self.send(content, params)
        nqid = self.t.wait_log(notice_re(qid), DELIVER_TIMEOUT).group(1)
        msg = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.wait_removed(nqid)
        return msg, nqid

    def test_whole_message_by_default(self):
        msg, nqid = self.bounce()
        _, _, per_rcpt, _ = self.report(msg)
        part = email.message_from_bytes(msg.data).get_payload()[2]
        self.assertEqual(part.get_content_type(), "message/rfc822")
        inner = part.get_payload()[0]
        self.assertEqual(inner["Message-ID"], "<delivery-test@sender.test>")
        self.assertIn(b"last line", inner.get_payload(decode=True))
        self.assertEqual(per_rcpt[0]["Status"], "5.1.1")

    def test_headers_only_past_the_limit(self):
        big = CONTENT + b"x" * 70 + b"\r\n"
        msg, _ = self.bounce(big, delivery={
            "bounce_size_limit": str(len(big) - 10)})
        _, _, _, headers = self.report(msg)
        part = email.message_from_bytes(msg.data).get_payload()[2]
        self.assertEqual(part.get_content_type(), "text/rfc822-headers")
        self.assertIn("Message-ID: <delivery-test@sender.test>", headers)
        self.assertNotIn(b"last line", msg.data)

    def test_headers_only_with_ret_hdrs(self):
        msg, _ = self.bounce(params=" RET=HDRS")
        part = email.message_from_bytes(msg.data).get_payload()[2]
        self.assertEqual(part.get_content_type(), "text/rfc822-headers")
        self.assertNotIn(b"last line", msg.data)

    def test_from_line(self):
        msg, nqid = self.bounce()
        m = self.t.wait_log(from_re(nqid), DELIVER_TIMEOUT)
        # The size is the report's as queued, which is what arrived.
        self.assertEqual(int(m.group(1)), len(msg.data))
        self.assertEqual(m.group(2), "1")

    def test_global_report(self):
        """An SMTPUTF8 message to a UTF-8 address that is refused: the
        report has the address as it is, in a
        message/global-delivery-status, and goes back to a sender's MX
        without SMTPUTF8, its envelope and header fields being ASCII."""
        rcpt = "j\u00f6rg@dest.test"
        self.hop(MX1, smtputf8=True, rcpt="550 5.1.1 no such user")
        back = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send(params=" SMTPUTF8", rcpt=rcpt)
        self.wait_result(qid, rcpt, "bounced", dsn=r"5\.1\.1")
        msg = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(msg.mail_from, "")
        self.assertNotRegex(msg.params, r"(?i)SMTPUTF8")
        m = email.message_from_bytes(msg.data, policy=email.policy.default)
        self.assertEqual(m.get_content_type(), "multipart/report")
        self.assertEqual(m.get_param("report-type"),
                         "global-delivery-status")
        parts = list(m.iter_parts())
        self.assertEqual(parts[1].get_content_type(),
                         "message/global-delivery-status")
        # Python reads message/* parts as messages: check the octets.
        self.assertIn(("\r\nFinal-Recipient: utf-8; " + rcpt +
                       "\r\n").encode(), msg.data)
        self.assertIn(b"\r\nStatus: 5.1.1\r\n", msg.data)
        self.assertIn(rcpt, parts[0].get_content())

    def test_pflogsumm_sizes(self):
        if not os.access(PFLOGSUMM, os.X_OK):
            self.fail("%s not found: install the pflogsumm package"
                      % PFLOGSUMM)
        self.hop(MX1, rcpt="550 5.1.1 no such user")
        self.hop(SENDER_MX)
        self.start_tern(main={"log": "file", "debug": "yes"})
        qid = self.send()
        wait_file_line(self.t.spool, notice_re(qid))
        wait_file_line(self.t.spool, r"to=<%s>, .*status=sent"
                       % re.escape(SENDER))
        log = os.path.join(self.t.dir, "all.log")
        with open(log, "w") as f:
            f.write(file_log(self.t.spool))
        p = subprocess.run([PFLOGSUMM, "--syslog-name=ternd", log],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertNotRegex(out, r"(?i)no size data", out)
        m = re.search(r"^\s*([0-9]+)\s+delivered\b", out, re.M)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), 1, out)
        m = re.search(r"^\s*([0-9]+)([km]?)\s+bytes delivered\b", out, re.M)
        self.assertIsNotNone(m, out)
        self.assertGreater(int(m.group(1)), 0, out)


class Success(TernTestCase):
    """A NOTIFY=SUCCESS recipient delivered to its Maildir: the report
    goes to the remote sender through a gateway NextHop."""

    def test_no_mailbox_path(self):
        hop = NextHop("127.0.0.2")
        self.addCleanup(hop.stop)
        alice = "alice@local.test"
        t = mailtest.mail_tern(
            self, start=False, smtp={"local_domains": "local.test"},
            delivery={"gateway": "127.0.0.2:%d" % hop.port,
                      "gateway_all": "yes", "queue_interval": "1s"},
            users=[(alice, mailtest.crypt_hash("Alice-pass-7"))])
        t.start()
        c = t.session()
        try:
            r = c.cmd("MAIL FROM:<sender@origin.test>")
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS" % alice)
            self.assertEqual(r.code, 250, r)
            r = c.cmd("DATA")
            self.assertEqual(r.code, 354, r)
            c.send(ternlib.dot_stuff(CONTENT))
            qid = ternlib.queued_id(c.reply())
            c.cmd("QUIT")
        finally:
            c.close()
        nqid = t.wait_log(notice_re(qid), DELIVER_TIMEOUT).group(1)
        t.wait_log(from_re(nqid), DELIVER_TIMEOUT)
        msg = hop.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(msg.mail_from, "")
        self.assertEqual(msg.rcpts, ["sender@origin.test"])
        # The log names the mailbox; the sender's report does not.
        self.assertIn(t.mailboxes, t.log())
        self.assertNotIn(t.dir.encode(), msg.data)
        self.assertNotIn(b"maildir", msg.data.lower())
        m = email.message_from_bytes(msg.data)
        self.assertEqual(m.defects, [])
        parts = m.get_payload()
        self.assertIn("<alice@local.test>: delivered to mailbox",
                      parts[0].get_payload(decode=True).decode())
        blocks = parts[1].get_payload()
        self.assertEqual(blocks[1]["Action"], "delivered")
        self.assertEqual(blocks[1]["Status"], "2.0.0")
        self.assertIsNone(blocks[1]["Diagnostic-Code"])
        self.assertIsNone(blocks[1]["Remote-MTA"])


if __name__ == "__main__":
    ternlib.main()
