"""
test_dsn.py: delivery status notifications beyond bounces (RFC 3461 to
3464), through the real ternd, a dnsmasq and NextHop servers: the sender's
domain, sender.test, has its own next hop that receives the reports.
Covered: a NOTIFY=SUCCESS recipient relayed to a peer without DSN gets a
"relayed" report; to a peer with DSN, RET, ENVID, NOTIFY and ORCPT are
passed on (as xtext) and tern reports nothing; a failure returns only the
headers with RET=HDRS and the whole message with RET=FULL; NOTIFY=NEVER
gets nothing; NOTIFY=DELAY gets one "delayed" report once the recipient
has waited delay_notice_after, and only one, across a restart too.
"""

import email
import email.utils
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import HOSTNAME, QID_RE, queued_id  # noqa: E402
from test_delivery import (CONTENT, DELIVER_TIMEOUT, MX1,  # noqa: E402
                           SENDER, SENDER_MX, DeliveryCase, relay_re,
                           removed_re)

ENVID = "QQ+1=2"		# as the client meant it
ENVID_XTEXT = "QQ+2B1+3D2"	# as it goes on the wire
ORCPT = "rfc822;Orig+x@dest.test"
ORCPT_XTEXT = "rfc822;Orig+2Bx@dest.test"


def notice_re(qid, what):
    return r": %s: sender %s: (%s)$" % (qid, re.escape(what), QID_RE)


class DsnCase(DeliveryCase):

    def send(self, rcpts, mail_params="", content=CONTENT):
        """One message from SENDER; rcpts are (address, RCPT parameters)
        pairs.  Returns the queue id."""
        c = self.t.session()
        try:
            r = c.cmd("MAIL FROM:<%s>%s" % (SENDER, mail_params))
            self.assertEqual(r.code, 250, r)
            for addr, params in rcpts:
                r = c.cmd("RCPT TO:<%s>%s" % (addr, params))
                self.assertEqual(r.code, 250, r)
            r = c.cmd("DATA")
            self.assertEqual(r.code, 354, r)
            c.send(ternlib.dot_stuff(content))
            qid = queued_id(c.reply())
            c.cmd("QUIT")
        finally:
            c.close()
        return qid

    def notice(self, msg, action, subject):
        """A report as DeliveryCase.report() reads it, checked to be of
        this action and subject, to SENDER from <>."""
        self.assertEqual(msg.rcpts, [SENDER])
        m, per_msg, per_rcpt, headers = self.report(msg)
        self.assertEqual(m["Subject"], subject)
        self.assertEqual(m["Auto-Submitted"], "auto-replied")
        for block in per_rcpt:
            self.assertEqual(block["Action"], action)
        return m, per_msg, per_rcpt, headers

    def rcpt_lines(self, hop):
        return [c for s in hop.sessions() for c in s.commands
                if c.upper().startswith("RCPT ")]


class Success(DsnCase):

    def test_relayed_to_peer_without_dsn(self):
        mx1 = self.hop(MX1)
        back = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send([("r@dest.test", " NOTIFY=SUCCESS ORCPT=" +
                          ORCPT_XTEXT),
                         ("quiet@dest.test", "")],
                        " RET=FULL ENVID=" + ENVID_XTEXT)
        relay = relay_re("mx1.dest.test", MX1, self.port)
        self.wait_result(qid, "r@dest.test", "sent", relay=relay)
        nqid = self.t.wait_log(notice_re(qid, "delivery status "
                                         "notification")).group(1)
        report = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.wait_removed(qid)
        self.wait_removed(nqid)
        self.settle()

        # The peer offered no DSN: nothing of it went on the wire.
        msg = mx1.messages()[0]
        self.assertEqual(msg.rcpts, ["r@dest.test", "quiet@dest.test"])
        self.assertNotRegex(msg.params, r"(?i)\b(RET|ENVID)=")
        for line in self.rcpt_lines(mx1):
            self.assertNotRegex(line, r"(?i)\b(NOTIFY|ORCPT)=")

        self.assertEqual(report.mail_from, "")
        m, per_msg, per_rcpt, headers = self.notice(
            report, "relayed", "Successful Mail Delivery Report")
        self.assertEqual(per_msg["Original-Envelope-Id"], ENVID)
        self.assertEqual(len(per_rcpt), 1, "only the recipient that "
                         "asked NOTIFY=SUCCESS")
        r = per_rcpt[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; r@dest.test")
        self.assertEqual(r["Original-Recipient"], "rfc822; Orig+x@dest.test")
        self.assertRegex(r["Status"], r"^2\.[0-9]{1,3}\.[0-9]{1,3}$")
        self.assertRegex(r["Remote-MTA"] or "", r"^dns;\s*mx1\.dest\.test")
        # Headers only, RET=FULL notwithstanding (RFC 3461 4.3).
        parts = m.get_payload()
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: delivery test", headers)
        self.assertNotIn("last line", headers)
        self.assertIn(HOSTNAME, m["From"])
        self.assertEqual(len(back.messages()), 1)

    def test_passed_on_to_peer_with_dsn(self):
        mx1 = self.hop(MX1, dsn=True)
        back = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send([("r@dest.test", " NOTIFY=SUCCESS,FAILURE ORCPT=" +
                          ORCPT_XTEXT),
                         ("n@dest.test", " NOTIFY=NEVER"),
                         ("d@dest.test", "")],
                        " RET=FULL ENVID=" + ENVID_XTEXT)
        self.wait_result(qid, "r@dest.test", "sent")
        self.wait_removed(qid)
        self.settle()

        msg = mx1.messages()[0]
        self.assertEqual(msg.rcpts, ["r@dest.test", "n@dest.test",
                                     "d@dest.test"])
        self.assertRegex(msg.params, r"(?:^| )RET=FULL(?: |$)")
        self.assertRegex(msg.params, r"(?:^| )ENVID=%s(?: |$)"
                         % re.escape(ENVID_XTEXT))
        self.assertEqual(self.rcpt_lines(mx1), [
            "RCPT TO:<r@dest.test> NOTIFY=SUCCESS,FAILURE ORCPT=" +
            ORCPT_XTEXT,
            "RCPT TO:<n@dest.test> NOTIFY=NEVER",
            "RCPT TO:<d@dest.test>",
        ])
        # The next hop reports from now on; tern says nothing.
        self.assertEqual(back.connections, 0)
        self.assertEqual(self.count_log(r"sender [a-z -]*notification"), 0)


class Failure(DsnCase):

    def bounce(self, ret):
        mx1 = self.hop(MX1, rcpt={"bad@dest.test": "550 5.1.1 no such user"})
        back = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send([("bad@dest.test", " NOTIFY=FAILURE ORCPT=" +
                          ORCPT_XTEXT),
                         ("good@dest.test", " NOTIFY=FAILURE")],
                        " RET=%s ENVID=%s" % (ret, ENVID_XTEXT))
        self.wait_result(qid, "bad@dest.test", "bounced", dsn=r"5\.1\.1")
        report = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(len(back.messages()), 1)
        self.assertEqual(mx1.messages()[0].rcpts, ["good@dest.test"])
        m, per_msg, per_rcpt, headers = self.notice(
            report, "failed", "Undelivered Mail Returned to Sender")
        self.assertEqual(per_msg["Original-Envelope-Id"], ENVID)
        self.assertEqual([r["Final-Recipient"] for r in per_rcpt],
                         ["rfc822; bad@dest.test"])
        self.assertEqual(per_rcpt[0]["Original-Recipient"],
                         "rfc822; Orig+x@dest.test")
        self.assertEqual(per_rcpt[0]["Status"], "5.1.1")
        return m.get_payload()[2], headers

    def test_ret_hdrs(self):
        part, headers = self.bounce("HDRS")
        self.assertEqual(part.get_content_type(), "text/rfc822-headers")
        self.assertIn("Message-ID: <delivery-test@sender.test>", headers)
        self.assertNotIn("last line", headers, "the body came back")

    def test_ret_full(self):
        part, headers = self.bounce("FULL")
        self.assertEqual(part.get_content_type(), "message/rfc822")
        inner = part.get_payload()[0]
        self.assertEqual(inner["Message-ID"], "<delivery-test@sender.test>")
        body = inner.get_payload(decode=True)
        self.assertIn(b"last line", body)
        self.assertIn(b"..two leading dots", body)

    def test_notify_never(self):
        self.hop(MX1, rcpt="550 5.1.1 no such user")
        back = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send([("bad@dest.test", " NOTIFY=NEVER")],
                        " RET=FULL")
        self.wait_result(qid, "bad@dest.test", "bounced", dsn=r"5\.1\.1")
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(back.connections, 0)
        self.assertEqual(self.count_log(r"sender [a-z -]*notification"), 0)


class Delay(DsnCase):

    def test_one_delay_report(self):
        mx1 = self.hop(MX1, rcpt={"slow@dest.test": "451 4.3.0 try later",
                                  "*": "250"})
        back = self.hop(SENDER_MX)
        t = self.start_tern(delivery={"delay_notice_after": "1s",
                                      "max_tries": "30"})
        qid = self.send([("slow@dest.test", " NOTIFY=DELAY,FAILURE ORCPT=" +
                          ORCPT_XTEXT),
                         ("never@dest.test", " NOTIFY=NEVER"),
                         ("quick@dest.test", " NOTIFY=DELAY")],
                        " ENVID=" + ENVID_XTEXT)
        nqid = t.wait_log(notice_re(qid, "delay notification"),
                          timeout=DELIVER_TIMEOUT).group(1)
        report = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.wait_removed(nqid)
        m, per_msg, per_rcpt, headers = self.notice(
            report, "delayed", "Delayed Mail (still being retried)")
        self.assertEqual(per_msg["Original-Envelope-Id"], ENVID)
        self.assertEqual([r["Final-Recipient"] for r in per_rcpt],
                         ["rfc822; slow@dest.test"])
        r = per_rcpt[0]
        self.assertEqual(r["Original-Recipient"], "rfc822; Orig+x@dest.test")
        self.assertEqual(r["Status"], "4.3.0")
        self.assertIn("try later", r["Diagnostic-Code"] or "")
        until = email.utils.parsedate_to_datetime(r["Will-Retry-Until"])
        arrival = email.utils.parsedate_to_datetime(
            per_msg["Arrival-Date"])
        self.assertGreater(until, arrival)
        self.assertEqual(m.get_payload()[2].get_content_type(),
                         "text/rfc822-headers")
        self.assertNotIn("last line", headers)
        self.assertIn("rcpt-delay-notified: yes",
                      t.read_env_bytes(qid).decode())

        # More deferrals, and a restart: still the one report.
        mark = t.log_mark()
        t.wait_log(r": %s: to=<slow@dest.test>, .*status=deferred"
                   % qid, since=mark, timeout=DELIVER_TIMEOUT)
        self.assertEqual(t.stop(), 0)
        mark = t.log_mark()
        t.start()
        deferred = re.compile(r": %s: to=<slow@dest.test>, .*status=deferred"
                              % qid, re.M)
        ternlib.wait_for(lambda: len(deferred.findall(
            t.log_bytes()[mark:].decode("utf-8", "replace"))) >= 2,
            DELIVER_TIMEOUT, "two deferrals after the restart")
        self.assertEqual(len(back.messages()), 1, "a second delay report")
        self.assertEqual(self.count_log(r"sender delay notification"), 1)

        # Delivered at last: NOTIFY=DELAY,FAILURE asks for no success.
        mx1.configure(rcpt="250")
        self.wait_result(qid, "slow@dest.test", "sent")
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(len(back.messages()), 1)
        self.assertEqual(sorted(r for msg in mx1.messages()
                                for r in msg.rcpts),
                         ["never@dest.test", "quick@dest.test",
                          "slow@dest.test"])


if __name__ == "__main__":
    ternlib.main()
