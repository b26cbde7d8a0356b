"""
test_delivery.py: outbound delivery.  ternd relays what it queued to the
next hop found through DNS (a dnsmasq this test starts) or to a gateway;
the next hops are NextHop servers on loopback addresses 127.0.0.2 and
up, all on one port (ternd's remote_port), which can be told to accept,
defer, refuse, drop the connection or stall.  Covered: the relayed octets
(the client's data behind our one Received header), MX preference and
fallback, no MX, null MX, NXDOMAIN, a DNS timeout, retries and tries
exhausted, RFC 3464 bounces and the rules that stop bounce loops, the
gateway (all mail, after N tries, AUTH over TLS), STARTTLS, the
concurrency caps, connection reuse, a restart in the middle of a retry
schedule, and the Received-header loop limit.
"""

import email
import email.utils
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nexthop  # noqa: E402
import ternlib  # noqa: E402
from nexthop import Dnsmasq, Gauge, NextHop  # noqa: E402
from ternlib import HOSTNAME, QID_RE, TernTestCase, queued_id  # noqa: E402

# The next hops' addresses; nothing ever listens on DEAD.
MX1 = "127.0.0.2"	# mx1.dest.test (preference 10), busy.fallback.test
MX2 = "127.0.0.3"	# mx2.dest.test (preference 20), ok.fallback.test
DEAD = "127.0.0.4"	# down.fallback.test
GW = "127.0.0.5"	# the gateway
SENDER_MX = "127.0.0.6"	# mx.sender.test: where bounces go
AHOST = "127.0.0.7"	# amx.test, which has an address and no MX
ONE = "127.0.0.8"	# mx.one.test
TWO = "127.0.0.9"	# mx.two.test
THREE = "127.0.0.10"	# mx.three.test
ADDRS = [MX1, MX2, DEAD, GW, SENDER_MX, AHOST, ONE, TWO, THREE]

SENDER = "sender@sender.test"

MX = {
    "dest.test": [("mx1.dest.test", 10), ("mx2.dest.test", 20)],
    "fallback.test": [("down.fallback.test", 10),
                      ("busy.fallback.test", 20),
                      ("ok.fallback.test", 30)],
    "sender.test": [("mx.sender.test", 10)],
    "one.test": [("mx.one.test", 10)],
    "two.test": [("mx.two.test", 10)],
    "three.test": [("mx.three.test", 10)],
    "v6.test": [("mx.v6.test", 10)],
}
HOSTS = {
    "mx1.dest.test": [MX1],
    "mx2.dest.test": [MX2],
    "down.fallback.test": [DEAD],
    "busy.fallback.test": [MX1],
    "ok.fallback.test": [MX2],
    "mx.sender.test": [SENDER_MX],
    "amx.test": [AHOST],
    "mx.one.test": [ONE],
    "mx.two.test": [TWO],
    "mx.three.test": [THREE],
    "mx.v6.test": ["::1"],
}
NULLMX = ["nullmx.test"]
SLOW = ["slow.test"]

# Test-sized settings; each test overrides what it is about.
DELIVERY = {
    "queue_interval": "1s",
    "max_tries": "5",
    "connect_timeout": "2s",
    "reply_timeout": "3s",
    "data_timeout": "3s",
    "idle_timeout": "2s",
}

DELIVER_TIMEOUT = 60.0	# one delivery, or one retry, arrives within this
SETTLE = 2.5		# more than two queue intervals: nothing more comes

# Dot-led lines (stuffed on the wire both ways), a lone dot, 8-bit octets.
CONTENT = (b"From: Sender <sender@sender.test>\r\n"
           b"To: r@dest.test\r\n"
           b"Subject: delivery test\r\n"
           b"Message-ID: <delivery-test@sender.test>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n"
           b"\r\n"
           b".one leading dot\r\n"
           b"..two leading dots\r\n"
           b".\r\n"
           b"caf\xc3\xa9 \xe2\x82\xac \xff\xfe raw octets\r\n"
           b"\ttab and trailing space \r\n"
           b"\r\n"
           b"last line\r\n")


def small(subject):
    return ("From: %s\r\nSubject: %s\r\n\r\nHello.\r\n"
            % (SENDER, subject)).encode()


def result_re(qid, rcpt, status, dsn=r"[245]\.[0-9]{1,3}\.[0-9]{1,3}",
              relay=r"[^,]+"):
    """A delivery log line of the Postfix layout; the reason in the
    parentheses is group 1."""
    return (r": %s: to=<%s>, relay=%s, delay=[0-9]+(?:\.[0-9]+)?, "
            r"(?:delays=[0-9./]+, )?dsn=%s, status=%s \((.*)\)$"
            % (qid, re.escape(rcpt), relay, dsn, status))


def relay_re(host, addr, port):
    return r"%s\[%s\]:%d" % (re.escape(host), re.escape(addr), port)


def notification_re(qid):
    return r": %s: sender non-delivery notification: (%s)$" % (qid, QID_RE)


def removed_re(qid):
    return r": %s: removed$" % qid


class DeliveryCase(TernTestCase):
    """A test with its own port for the next hops, its own dnsmasq and
    the daemon configured to use them."""

    def setUp(self):
        super().setUp()
        self.hops = []
        self.dns = None
        self.tmp = tempfile.mkdtemp(prefix="tern-e2e-hop-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.v6 = nexthop.has_ipv6()
        self.port = nexthop.common_port(ADDRS + (["::1"] if self.v6
                                                 else []))

    def hop(self, addrs, **kw):
        """A NextHop on this test's port, stopped at clean-up (after the
        daemon, which is made later)."""
        h = NextHop(addrs, port=self.port, **kw)
        self.hops.append(h)
        self.addCleanup(h.stop)
        return h

    def start_dns(self, **kw):
        args = {"mx": MX, "hosts": HOSTS, "nullmx": NULLMX, "slow": SLOW}
        args.update(kw)
        self.dns = Dnsmasq(**args)
        self.addCleanup(self.dns.stop)
        return self.dns

    def start_tern(self, delivery=None, **kw):
        if self.dns is None:
            self.start_dns()
        conf = dict(DELIVERY)
        conf["remote_port"] = str(self.port)
        conf["dns_servers"] = self.dns.dns_servers
        conf.update(delivery or {})
        self.t = self.tern(sections={"delivery": conf}, **kw)
        return self.t

    def daemon_logs(self):
        out = [super().daemon_logs()]
        for h in getattr(self, "hops", []):
            out.append(h.summary())
        if getattr(self, "dns", None) is not None:
            lines = self.dns.log().splitlines()
            out.append("--- dnsmasq (last 30 of %d lines) ---\n%s"
                       % (len(lines), "\n".join(lines[-30:])))
        return "\n".join(out)

    # --- checks ----------------------------------------------------------

    def wait_result(self, qid, rcpt, status, timeout=DELIVER_TIMEOUT,
                    since=0, **kw):
        return self.t.wait_log(result_re(qid, rcpt, status, **kw), timeout,
                               since=since)

    def count_log(self, regex):
        return len(re.findall(regex, self.t.log(), re.M))

    def wait_removed(self, qid, timeout=DELIVER_TIMEOUT):
        self.t.wait_log(removed_re(qid), timeout)
        ternlib.wait_for(lambda: qid not in self.t.queued(), timeout,
                         "%s to leave the queue" % qid)

    def assert_relayed(self, msg, qid, content):
        """msg carries content behind exactly one Received header, ours,
        naming qid."""
        data = msg.data
        self.assertTrue(data.endswith(content),
                        "the relayed message does not end with the "
                        "client's data: %r" % data[:400])
        head = data[:len(data) - len(content)]
        self.assertRegex(head, rb"^Received: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*"
                         rb"\r\n\Z",
                         "not exactly one header field before the client's "
                         "data")
        self.assertRegex(head, rb"\sby\s+" + re.escape(HOSTNAME.encode()) +
                         rb"\s")
        self.assertRegex(head, rb"\sid\s+" + qid.encode() + rb"\b")

    def report(self, msg):
        """Parse a bounce as an RFC 3464 report; returns (message,
        per-message fields, per-recipient blocks, original headers as
        text)."""
        self.assertEqual(msg.mail_from, "", "a bounce not from <>")
        m = email.message_from_bytes(msg.data)
        self.assertEqual(m.defects, [])
        self.assertEqual(m.get_content_type(), "multipart/report")
        self.assertEqual(m.get_param("report-type"), "delivery-status")
        self.assertIsNotNone(m["From"])
        self.assertIsNotNone(m["Date"])
        self.assertIsNotNone(email.utils.parsedate_to_datetime(m["Date"]))
        self.assertIn(SENDER, m["To"] or "")
        parts = m.get_payload()
        self.assertIsInstance(parts, list)
        self.assertGreaterEqual(len(parts), 3, [p.get_content_type()
                                                for p in parts])
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(),
                         "message/delivery-status")
        blocks = parts[1].get_payload()
        self.assertGreaterEqual(len(blocks), 2, blocks)
        per_msg, per_rcpt = blocks[0], blocks[1:]
        self.assertIn(HOSTNAME, per_msg["Reporting-MTA"] or "")
        self.assertRegex(per_msg["Reporting-MTA"], r"^dns;\s*")
        self.assertIsNotNone(per_msg["Arrival-Date"])
        self.assertIsNotNone(
            email.utils.parsedate_to_datetime(per_msg["Arrival-Date"]))
        orig = parts[2]
        if orig.get_content_type() == "message/rfc822":
            headers = orig.get_payload()[0].as_string()
        else:
            self.assertEqual(orig.get_content_type(), "text/rfc822-headers")
            headers = orig.get_payload(decode=True).decode("utf-8",
                                                           "replace")
        for part in parts:
            self.assertEqual(part.defects, [], part.get_content_type())
        return m, per_msg, per_rcpt, headers

    def settle(self):
        """Let more than two queue intervals pass, to show that nothing
        more happens."""
        time.sleep(SETTLE)


class Relay(DeliveryCase):

    def test_relayed_byte_identical(self):
        mx1 = self.hop(MX1)
        t = self.start_tern()
        c = t.session()
        qid = queued_id(c.mail(SENDER, ["a@dest.test", "b@dest.test"],
                               CONTENT, params=" BODY=8BITMIME"))
        c.cmd("QUIT")
        relay = relay_re("mx1.dest.test", MX1, self.port)
        for rcpt in ("a@dest.test", "b@dest.test"):
            self.wait_result(qid, rcpt, "sent", dsn=r"2\.[0-9.]+",
                             relay=relay)
        self.wait_removed(qid)
        msgs = mx1.messages()
        self.assertEqual(len(msgs), 1, "both recipients in one transaction")
        msg = msgs[0]
        self.assertEqual(msg.mail_from, SENDER)
        self.assertEqual(msg.rcpts, ["a@dest.test", "b@dest.test"])
        self.assert_relayed(msg, qid, CONTENT)
        self.assertEqual(msg.helo, HOSTNAME, "EHLO must name [main] "
                         "hostname")
        self.assertRegex(msg.params, r"(?i)\bBODY=8BITMIME\b")
        m = re.search(r"(?i)\bSIZE=([0-9]+)", msg.params)
        if m:
            self.assertGreaterEqual(int(m.group(1)), len(msg.data))
        self.assertEqual(t.queue_files(), [])

    def test_large_message(self):
        mx1 = self.hop(MX1)
        t = self.start_tern(smtp={"max_message_size": "10M"})
        rnd = random.Random(3464)
        table = (bytes(range(256)).replace(b"\r", b"r").replace(b"\n", b"n")
                 .replace(b"\x00", b"0"))
        lines = [b"Subject: large\r\n", b"\r\n"]
        size = 0
        while size < 600000:
            n = rnd.randrange(0, 990)
            line = rnd.randbytes(n).translate(table)
            if rnd.random() < 0.1:
                line = b"." * rnd.randrange(1, 4) + line
            lines.append(line + b"\r\n")
            size += n + 2
        content = b"".join(lines)
        qid = t.send_message(SENDER, ["big@dest.test"], content,
                             params=" BODY=8BITMIME")
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, content)
        self.wait_result(qid, "big@dest.test", "sent")

    def test_peer_size_limit(self):
        mx1 = self.hop(MX1, size=2000)
        t = self.start_tern()
        content = small("too big") + (b"x" * 70 + b"\r\n") * 80
        qid = t.send_message("", ["r@dest.test"], content)
        self.wait_result(qid, "r@dest.test", "bounced", dsn=r"5\.3\.4")
        self.wait_removed(qid)
        self.assertEqual(mx1.attempts(), [],
                         "the message was sent although the peer declared "
                         "SIZE 2000")


class Routing(DeliveryCase):

    def test_mx_preference(self):
        mx1 = self.hop(MX1)
        mx2 = self.hop(MX2)
        t = self.start_tern()
        qids = [t.send_message(SENDER, ["r%d@dest.test" % i], small(str(i)))
                for i in range(3)]
        relay = relay_re("mx1.dest.test", MX1, self.port)
        for i, qid in enumerate(qids):
            self.wait_result(qid, "r%d@dest.test" % i, "sent", relay=relay)
        self.assertEqual(len(mx1.messages()), 3)
        self.assertEqual(mx2.connections, 0,
                         "the preference 20 MX was used while the "
                         "preference 10 one answered")

    def test_fallback_to_next_mx(self):
        # down (refused) at 10, busy (421 greeting) at 20, ok at 30.
        busy = self.hop(MX1, greeting="421 4.3.2 busy")
        ok = self.hop(MX2)
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@fallback.test"], CONTENT)
        self.wait_result(qid, "r@fallback.test", "sent",
                         relay=relay_re("ok.fallback.test", MX2, self.port))
        msgs = ok.messages()
        self.assertEqual(len(msgs), 1)
        self.assert_relayed(msgs[0], qid, CONTENT)
        self.assertGreaterEqual(busy.connections, 1,
                                "the preference 20 MX was never tried")
        self.assertEqual(busy.attempts(), [])
        self.wait_removed(qid)
        self.assertEqual(self.count_log(result_re(qid, "r@fallback.test",
                                                  "sent")), 1)

    def test_all_mx_down_deferred(self):
        # Nothing listens on any of fallback.test's hosts.
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@fallback.test"], small("down"))
        self.wait_result(qid, "r@fallback.test", "deferred",
                         dsn=r"4\.[0-9.]+")
        self.assertEqual(t.queued(), [qid])
        # Once one answers, the retry delivers.
        ok = self.hop(MX2)
        self.wait_result(qid, "r@fallback.test", "sent",
                         relay=relay_re("ok.fallback.test", MX2, self.port))
        self.assertEqual(len(ok.messages()), 1)

    def test_no_mx_uses_address(self):
        h = self.hop(AHOST)
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@amx.test"], CONTENT)
        self.wait_result(qid, "r@amx.test", "sent",
                         relay=relay_re("amx.test", AHOST, self.port))
        self.assert_relayed(h.messages()[0], qid, CONTENT)

    def test_ipv6_mx(self):
        if not self.v6:
            self.skipTest("no IPv6 loopback")
        h = self.hop("::1")
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@v6.test"], CONTENT)
        self.wait_result(qid, "r@v6.test", "sent",
                         relay=relay_re("mx.v6.test", "::1", self.port))
        self.assert_relayed(h.messages()[0], qid, CONTENT)

    def test_null_mx(self):
        mx1 = self.hop(MX1)
        back = self.hop(SENDER_MX)
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@nullmx.test"], CONTENT)
        self.wait_result(qid, "r@nullmx.test", "bounced", dsn=r"5\.1\.10",
                         relay="none")
        bqid = t.wait_log(notification_re(qid)).group(1)
        bounce = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(bounce.rcpts, [SENDER])
        _, _, per_rcpt, _ = self.report(bounce)
        self.assertEqual(len(per_rcpt), 1)
        self.assertIn("r@nullmx.test", per_rcpt[0]["Final-Recipient"])
        self.assertEqual(per_rcpt[0]["Status"], "5.1.10")
        self.wait_removed(qid)
        self.wait_removed(bqid)
        self.assertEqual(mx1.connections, 0)

    def test_nxdomain(self):
        t = self.start_tern()
        qid = t.send_message("", ["r@nosuch.test"], small("nxdomain"))
        self.wait_result(qid, "r@nosuch.test", "bounced", dsn=r"5\.1\.2",
                         relay="none")
        self.wait_removed(qid)
        self.assertEqual(self.count_log(notification_re(qid)), 0)

    def test_dns_timeout_then_delivered(self):
        mx1 = self.hop(MX1)
        dns = self.start_dns()
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@slow.test"], CONTENT)
        # However long the resolver waits, it must give up and defer.
        self.wait_result(qid, "r@slow.test", "deferred", dsn=r"4\.[0-9.]+",
                         relay="none", timeout=30)
        self.assertEqual(t.queued(), [qid])
        self.assertEqual(mx1.connections, 0)
        # The name answers now: the next try delivers.
        mx = dict(MX)
        mx["slow.test"] = [("mx1.dest.test", 10)]
        dns.restart(mx=mx, slow=[])
        self.wait_result(qid, "r@slow.test", "sent",
                         relay=relay_re("mx1.dest.test", MX1, self.port),
                         timeout=30)
        self.assert_relayed(mx1.messages()[0], qid, CONTENT)
        self.wait_removed(qid)
        self.assertEqual(len(mx1.messages()), 1)


class Retry(DeliveryCase):

    def test_4xx_then_250_delivered_once(self):
        mx1 = self.hop(MX1, data=["451 4.3.0 try later", "250"])
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        m = self.wait_result(qid, "r@dest.test", "deferred",
                             dsn=r"4\.3\.0")
        self.assertIn("try later", m.group(1))
        self.wait_result(qid, "r@dest.test", "sent")
        self.wait_removed(qid)
        attempts = mx1.attempts()
        self.assertEqual(len(attempts), 2, attempts)
        self.assertGreaterEqual(attempts[1].when - attempts[0].when, 0.8,
                                "retried before queue_interval (1s)")
        self.settle()
        msgs = mx1.messages()
        self.assertEqual(len(msgs), 1, "delivered more than once")
        self.assert_relayed(msgs[0], qid, CONTENT)
        self.assertEqual(len(mx1.attempts()), 2)

    def test_per_recipient_results(self):
        mx1 = self.hop(MX1, rcpt={
            "a@dest.test": "250",
            "b@dest.test": ["450 4.2.0 mailbox busy", "250"],
            "c@dest.test": "550 5.1.1 no such user",
        })
        back = self.hop(SENDER_MX)
        t = self.start_tern()
        rcpts = ["a@dest.test", "b@dest.test", "c@dest.test"]
        qid = t.send_message(SENDER, rcpts, CONTENT)
        self.wait_result(qid, "a@dest.test", "sent")
        self.wait_result(qid, "b@dest.test", "deferred", dsn=r"4\.2\.0")
        self.wait_result(qid, "c@dest.test", "bounced", dsn=r"5\.1\.1")
        self.wait_result(qid, "b@dest.test", "sent")
        self.wait_removed(qid)
        self.settle()
        msgs = mx1.messages()
        self.assertEqual([m.rcpts for m in msgs],
                         [["a@dest.test"], ["b@dest.test"]])
        for m in msgs:
            self.assert_relayed(m, qid, CONTENT)
        self.assertEqual(len(mx1.rcpt_commands("a@dest.test")), 1,
                         "a recipient already delivered was tried again")
        self.assertEqual(len(mx1.rcpt_commands("c@dest.test")), 1,
                         "a refused recipient was tried again")
        # One bounce, for c only.
        bounces = back.messages()
        self.assertEqual(len(bounces), 1, bounces)
        _, _, per_rcpt, _ = self.report(bounces[0])
        self.assertEqual([b["Final-Recipient"] for b in per_rcpt],
                         ["rfc822; c@dest.test"])

    def test_5xx_bounce_report(self):
        mx1 = self.hop(MX1, rcpt={"bad@dest.test": "550 5.1.1 no such user"})
        back = self.hop(SENDER_MX)
        t = self.start_tern()
        qid = t.send_message(SENDER, ["good@dest.test", "bad@dest.test"],
                             CONTENT)
        self.wait_result(qid, "good@dest.test", "sent")
        m = self.wait_result(qid, "bad@dest.test", "bounced", dsn=r"5\.1\.1",
                             relay=relay_re("mx1.dest.test", MX1, self.port))
        self.assertIn("no such user", m.group(1))
        bqid = t.wait_log(notification_re(qid)).group(1)
        self.assertNotEqual(bqid, qid)
        self.wait_result(bqid, SENDER, "sent",
                         relay=relay_re("mx.sender.test", SENDER_MX,
                                        self.port))
        self.wait_removed(qid)
        self.wait_removed(bqid)
        self.settle()

        self.assertEqual(len(mx1.messages()), 1)
        self.assertEqual(mx1.messages()[0].rcpts, ["good@dest.test"])
        bounces = back.messages()
        self.assertEqual(len(bounces), 1, "not exactly one bounce")
        bounce = bounces[0]
        self.assertEqual(bounce.mail_from, "")
        self.assertEqual(bounce.rcpts, [SENDER])
        msg, per_msg, per_rcpt, headers = self.report(bounce)
        self.assertEqual(len(per_rcpt), 1, "only the failed recipient")
        r = per_rcpt[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; bad@dest.test")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertRegex(r["Remote-MTA"] or "", r"^dns;\s*mx1\.dest\.test")
        self.assertRegex(r["Diagnostic-Code"] or "",
                         r"^smtp;\s*550 5\.1\.1 no such user")
        self.assertIn("Subject: delivery test", headers)
        self.assertIn("Message-ID: <delivery-test@sender.test>", headers)
        self.assertNotIn("last line", headers, "the body came back")
        self.assertEqual(self.count_log(notification_re(qid)), 1)

    def test_tries_exhausted(self):
        mx1 = self.hop(MX1, rcpt="451 4.3.0 try later")
        back = self.hop(SENDER_MX)
        t = self.start_tern(delivery={"max_tries": "3"})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "bounced", timeout=15)
        self.assertGreaterEqual(self.count_log(result_re(qid, "r@dest.test",
                                                         "deferred")), 2)
        self.assertEqual(len(mx1.rcpt_commands("r@dest.test")), 3,
                         "max_tries = 3 is three tries")
        bounce = back.wait_messages(1, DELIVER_TIMEOUT)[0]
        _, _, per_rcpt, _ = self.report(bounce)
        self.assertEqual(per_rcpt[0]["Final-Recipient"],
                         "rfc822; r@dest.test")
        self.assertEqual(per_rcpt[0]["Action"], "failed")
        self.assertIn("try later", per_rcpt[0]["Diagnostic-Code"] or "")
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(len(mx1.rcpt_commands("r@dest.test")), 3)
        self.assertEqual(len(back.messages()), 1)
        self.assertEqual(mx1.messages(), [])

    def test_dropped_mid_data_retried(self):
        mx1 = self.hop(MX1, drop=["data", None])
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "deferred", dsn=r"4\.[0-9.]+")
        self.wait_result(qid, "r@dest.test", "sent")
        self.wait_removed(qid)
        self.assertEqual(mx1.connections, 2)
        self.assertEqual(len(mx1.messages()), 1)
        self.assert_relayed(mx1.messages()[0], qid, CONTENT)

    def test_stalled_peer_times_out(self):
        mx1 = self.hop(MX1, stall=["mail", None])
        t = self.start_tern(delivery={"reply_timeout": "2s"})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        started = time.monotonic()
        self.wait_result(qid, "r@dest.test", "deferred", dsn=r"4\.[0-9.]+")
        self.assertGreaterEqual(time.monotonic() - started, 1.5,
                                "deferred before reply_timeout")
        self.wait_result(qid, "r@dest.test", "sent")
        self.wait_removed(qid)
        self.assertEqual(len(mx1.messages()), 1)
        first = mx1.sessions()[0]
        self.assertIn("stalled at mail", first.end or "")

    def test_421_mid_session_deferred(self):
        mx1 = self.hop(MX1, mail=["421 4.3.2 shutting down", "250"])
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "deferred", dsn=r"4\.[0-9.]+")
        self.wait_result(qid, "r@dest.test", "sent")
        self.assertEqual(len(mx1.messages()), 1)

    def test_bounce_to_dead_sender(self):
        self.hop(MX1, rcpt="550 5.1.1 no such user")
        back = self.hop(SENDER_MX, rcpt="550 5.1.1 no such user")
        t = self.start_tern()
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "bounced", dsn=r"5\.1\.1")
        bqid = t.wait_log(notification_re(qid)).group(1)
        self.wait_result(bqid, SENDER, "bounced", dsn=r"5\.1\.1")
        self.wait_removed(qid)
        self.wait_removed(bqid)
        self.settle()
        self.assertEqual(self.count_log(r"sender non-delivery notification"),
                         1, "a bounce was bounced")
        self.assertEqual(self.count_log(notification_re(bqid)), 0)
        self.assertEqual(len(back.rcpt_commands(SENDER)), 1)
        for h in self.hops:
            self.assertEqual(h.messages(), [], h)
        self.assertEqual(t.queued(), [])

    def test_null_sender_never_bounced(self):
        self.hop(MX1, rcpt="550 5.1.1 no such user")
        back = self.hop(SENDER_MX)
        t = self.start_tern()
        qid = t.send_message("", ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "bounced", dsn=r"5\.1\.1")
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(self.count_log(r"sender non-delivery notification"),
                         0)
        self.assertEqual(back.connections, 0)
        self.assertEqual(t.queued(), [])


class Gateway(DeliveryCase):

    def test_gateway_all(self):
        mx1 = self.hop(MX1)
        gw = self.hop(GW)
        t = self.start_tern(delivery={
            "gateway": "%s:%d" % (GW, self.port), "gateway_all": "yes"})
        q1 = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        q2 = t.send_message(SENDER, ["s@nosuch.test"], CONTENT)
        self.wait_result(q1, "r@dest.test", "sent")
        self.wait_result(q2, "s@nosuch.test", "sent")
        msgs = gw.messages()
        self.assertEqual(sorted(r for m in msgs for r in m.rcpts),
                         ["r@dest.test", "s@nosuch.test"])
        for m in msgs:
            self.assert_relayed(m, q1 if m.rcpts == ["r@dest.test"] else q2,
                                CONTENT)
        self.assertEqual(mx1.connections, 0,
                         "gateway_all = yes, yet the MX was used")

    def test_gateway_after_tries(self):
        mx1 = self.hop(MX1, rcpt="451 4.3.0 try later")
        gw = self.hop(GW)
        t = self.start_tern(delivery={
            "gateway": "%s:%d" % (GW, self.port),
            "gateway_after_tries": "2"})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "sent",
                         relay=r"[^,]*\[%s\]:%d" % (re.escape(GW), self.port),
                         timeout=15)
        self.assertEqual(self.count_log(result_re(qid, "r@dest.test",
                                                  "deferred")), 2)
        self.assertEqual(len(mx1.rcpt_commands("r@dest.test")), 2,
                         "gateway_after_tries = 2: two direct tries first")
        msgs = gw.messages()
        self.assertEqual(len(msgs), 1)
        self.assert_relayed(msgs[0], qid, CONTENT)
        self.wait_removed(qid)
        self.settle()
        self.assertEqual(len(mx1.rcpt_commands("r@dest.test")), 2)
        self.assertEqual(len(gw.messages()), 1)

    def test_gateway_auth_over_tls(self):
        cert = nexthop.make_cert(self.tmp, "gw.test", [GW])
        gw = self.hop(GW, tls=cert, auth=("tern-user", "s3cret-word"),
                      auth_required=True)
        authfile = os.path.join(self.tmp, "gateway.auth")
        with open(authfile, "w") as f:
            f.write("tern-user:s3cret-word\n")
        os.chmod(authfile, 0o600)
        t = self.start_tern(delivery={
            "gateway": "%s:%d" % (GW, self.port), "gateway_all": "yes",
            "starttls": "yes", "gateway_tls_verify": "no",
            "gateway_auth_file": authfile})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "sent")
        msg = gw.messages()[0]
        self.assertTrue(msg.tls, "the gateway session was not TLS")
        self.assertEqual(msg.auth, "tern-user")
        self.assert_relayed(msg, qid, CONTENT)
        self.assertNotIn("s3cret-word", t.log(), "a password in the log")
        for s in gw.sessions():
            self.assertEqual(s.plaintext_after_starttls, b"")


class Tls(DeliveryCase):

    def test_starttls_used(self):
        cert = nexthop.make_cert(self.tmp, "mx1.dest.test", [MX1])
        mx1 = self.hop(MX1, tls=cert)
        t = self.start_tern(delivery={"starttls": "yes"})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "sent")
        msg = mx1.messages()[0]
        self.assertTrue(msg.tls, "STARTTLS was offered but not used")
        self.assert_relayed(msg, qid, CONTENT)
        s = mx1.sessions()[msg.session]
        self.assertEqual(s.plaintext_after_starttls, b"",
                         "commands pipelined after STARTTLS")
        verbs = [c.split(" ")[0].upper() for c in s.commands]
        self.assertEqual(verbs[:3], ["EHLO", "STARTTLS", "EHLO"])

    def test_starttls_off(self):
        cert = nexthop.make_cert(self.tmp, "mx1.dest.test", [MX1])
        mx1 = self.hop(MX1, tls=cert)
        t = self.start_tern(delivery={"starttls": "no"})
        qid = t.send_message(SENDER, ["r@dest.test"], CONTENT)
        self.wait_result(qid, "r@dest.test", "sent")
        msg = mx1.messages()[0]
        self.assertFalse(msg.tls)
        self.assertNotIn("STARTTLS", [c.upper() for c in
                                      mx1.sessions()[msg.session].commands])


class Caps(DeliveryCase):

    def burst(self, rcpts):
        """Queue one message per recipient over one session."""
        c = self.t.session()
        qids = [queued_id(c.mail(SENDER, [r], small("burst %d" % i)))
                for i, r in enumerate(rcpts)]
        c.cmd("QUIT")
        return qids

    def test_max_per_destination(self):
        # Both of dest.test's hosts count against its one cap.
        gauge = Gauge()
        mx1 = self.hop(MX1, data_delay=0.3, gauge=gauge)
        mx2 = self.hop(MX2, data_delay=0.3, gauge=gauge)
        self.start_tern(delivery={"max_per_destination": "3",
                                  "max_deliveries": "30"})
        rcpts = ["r%02d@dest.test" % i for i in range(20)]
        qids = self.burst(rcpts)
        for qid, r in zip(qids, rcpts):
            self.wait_result(qid, r, "sent", timeout=20)
        got = sorted(r for m in mx1.messages() + mx2.messages()
                     for r in m.rcpts)
        self.assertEqual(got, rcpts)
        self.assertLessEqual(gauge.max, 3, "over max_per_destination = 3")
        self.assertEqual(gauge.max, 3, "never used the 3 connections "
                         "allowed while 20 messages waited")

    def test_max_deliveries(self):
        gauge = Gauge()
        hops = [self.hop(a, data_delay=0.3, gauge=gauge)
                for a in (ONE, TWO, THREE)]
        self.start_tern(delivery={"max_deliveries": "2",
                                  "max_per_destination": "10"})
        rcpts = ["r%02d@%s.test" % (i, ("one", "two", "three")[i % 3])
                 for i in range(15)]
        qids = self.burst(rcpts)
        for qid, r in zip(qids, rcpts):
            self.wait_result(qid, r, "sent", timeout=20)
        got = sorted(r for h in hops for m in h.messages() for r in m.rcpts)
        self.assertEqual(got, sorted(rcpts))
        self.assertLessEqual(gauge.max, 2, "over max_deliveries = 2")
        self.assertEqual(gauge.max, 2, "never used the 2 deliveries "
                         "allowed while 15 messages waited")

    def test_connection_reuse_burst(self):
        mx1 = self.hop(MX1)
        self.start_tern(delivery={"max_per_destination": "1",
                                  "idle_timeout": "5s"})
        rcpts = ["r%d@dest.test" % i for i in range(6)]
        qids = self.burst(rcpts)
        for qid, r in zip(qids, rcpts):
            self.wait_result(qid, r, "sent")
        self.assertEqual(len(mx1.messages()), 6)
        self.assertLess(mx1.connections, 6,
                        "one connection per message: no reuse")
        self.assertLessEqual(mx1.max_concurrent, 1)

    def test_idle_connection_reused_then_closed(self):
        mx1 = self.hop(MX1)
        t = self.start_tern(delivery={"idle_timeout": "3s"})
        q1 = t.send_message(SENDER, ["a@dest.test"], small("first"))
        self.wait_result(q1, "a@dest.test", "sent")
        time.sleep(0.5)
        q2 = t.send_message(SENDER, ["b@dest.test"], small("second"))
        self.wait_result(q2, "b@dest.test", "sent")
        self.assertEqual(mx1.connections, 1,
                         "a new connection although one was idle")
        msgs = mx1.messages()
        self.assertEqual([m.session for m in msgs], [0, 0])
        mx1.wait_idle(8)
        s = mx1.sessions()[0]
        self.assertEqual(s.commands[-1].upper(), "QUIT",
                         "the idle connection was not closed with QUIT")


class Restart(DeliveryCase):

    def test_restart_mid_retry(self):
        one = self.hop(ONE)
        two = self.hop(TWO, rcpt="451 4.3.0 try later")
        t = self.start_tern()
        qid = t.send_message(SENDER, ["a@one.test", "b@two.test"], CONTENT)
        self.wait_result(qid, "a@one.test", "sent")
        self.wait_result(qid, "b@two.test", "deferred", dsn=r"4\.3\.0")
        self.assertEqual(t.stop(), 0)
        self.assertEqual(t.queued(), [qid], "lost at the restart")
        two.configure(rcpt="250")
        mark = t.log_mark()
        t.start()
        self.wait_result(qid, "b@two.test", "sent", since=mark)
        self.wait_removed(qid)
        self.settle()
        self.assertEqual([m.rcpts for m in one.messages()], [["a@one.test"]])
        self.assertEqual(len(one.rcpt_commands("a@one.test")), 1,
                         "a@one.test tried again after the restart")
        self.assertEqual([m.rcpts for m in two.messages()], [["b@two.test"]])
        for m in one.messages() + two.messages():
            self.assert_relayed(m, qid, CONTENT)
        self.assertEqual(self.count_log(result_re(qid, "a@one.test",
                                                  "sent")), 1)
        self.assertEqual(t.queued(), [])


class Loop(DeliveryCase):

    def received(self, n):
        return b"".join(b"Received: from hop%d.example by hop%d.example; "
                        b"Mon, 1 Jan 2024 00:00:%02d +0000\r\n"
                        % (i, i + 1, i) for i in range(n))

    def test_too_many_received_headers(self):
        mx1 = self.hop(MX1)
        t = self.start_tern(delivery={"max_received_headers": "5"})
        looped = t.send_message("", ["loop@dest.test"],
                                self.received(8) + CONTENT)
        fine = t.send_message(SENDER, ["fine@dest.test"],
                              self.received(2) + CONTENT)
        self.wait_result(looped, "loop@dest.test", "bounced",
                         dsn=r"5\.4\.6")
        self.wait_result(fine, "fine@dest.test", "sent")
        self.wait_removed(looped)
        msgs = mx1.messages()
        self.assertEqual([m.rcpts for m in msgs], [["fine@dest.test"]])
        self.assert_relayed(msgs[0], fine, self.received(2) + CONTENT)
        self.assertEqual(mx1.rcpt_commands("loop@dest.test"), [])


if __name__ == "__main__":
    ternlib.main()
