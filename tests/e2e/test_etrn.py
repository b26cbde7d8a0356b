"""
test_etrn.py: ETRN (RFC 1985).  Every relayed message goes to one
NextHop, the gateway (gateway_all), which first defers it; with a queue
interval of an hour nothing would try it again during the test, so a
delivery that follows is the work of ETRN.  Covered: "ETRN domain" makes
what waits for that domain due now (253 with the count) and the next hop
gets it at once, whether it first answered 4xx or was down; "ETRN
@domain" takes the subdomains too and "ETRN domain" does not; only
pending recipients count; nothing waiting is 251; a client outside
etrn_networks (which follows relay_networks by default) gets 459 and the
message stays where it was; the syntax and sequence errors; ETRN is
advertised on listen and not on submission_listen.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nexthop  # noqa: E402
import ternlib  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase  # noqa: E402
from test_delivery import SENDER, removed_re, result_re, small  # noqa: E402

GW = "127.0.0.5"	# the gateway every relayed message goes to
NOT_US = "192.0.2.0/24"	# TEST-NET-1: no loopback client is in it

DELIVERY = {
    # Far longer than the test: only ETRN brings a deferred message back.
    "queue_interval": "1h",
    "max_tries": "5",
    "gateway_all": "yes",
    "connect_timeout": "2s",
    "reply_timeout": "3s",
    "data_timeout": "3s",
    "idle_timeout": "2s",
}

DELIVER_TIMEOUT = 60.0	# one attempt ends within this
QUIET = 1.5		# long enough for an attempt that should not happen

SYNTAX = "501 5.5.4 Syntax: ETRN domain"
IN_TX = "503 5.5.1 Error: MAIL transaction in progress"
NEED_HELO = "503 5.5.1 Error: send HELO/EHLO first"


def started(n, node):
    return ("253 2.0.0 OK, %d pending messages for node %s started"
            % (n, node))


def none_waiting(node):
    return "251 2.0.0 OK, no messages waiting for node %s" % node


def denied(node):
    return "459 4.7.1 %s: node not allowed" % node


def keywords(reply):
    """The EHLO keywords, upper case, after the greeting line."""
    return [t.split(" ")[0].upper() for t in reply.texts[1:]]


class EtrnCase(TernTestCase):
    """A ternd relaying everything to the gateway GW, a NextHop on a
    port of this test's own."""

    def setUp(self):
        super().setUp()
        self.gw_port = nexthop.common_port([GW])
        self.hops = []

    def hop(self, **kw):
        h = NextHop(GW, port=self.gw_port, **kw)
        self.hops.append(h)
        self.addCleanup(h.stop)
        return h

    def start_tern(self, smtp=None, delivery=None):
        conf = dict(DELIVERY)
        conf["gateway"] = "%s:%d" % (GW, self.gw_port)
        conf.update(delivery or {})
        self.t = self.tern(smtp=smtp, sections={"delivery": conf})
        return self.t

    def daemon_logs(self):
        out = [super().daemon_logs()]
        for h in getattr(self, "hops", []):
            out.append(h.summary())
        return "\n".join(out)

    def etrn(self, arg, conn=None):
        """One ETRN in a session of its own (after EHLO), or in conn."""
        c = conn or self.t.session()
        try:
            return c.cmd("ETRN %s" % arg)
        finally:
            if conn is None:
                c.cmd("QUIT")
                c.close()

    def deferred(self, rcpt, subject="etrn", since=0):
        """Send a message to rcpt and wait until its first attempt
        deferred it; return its queue id."""
        qid = self.t.send_message(SENDER, [rcpt], small(subject))
        self.t.wait_log(result_re(qid, rcpt, "deferred"), DELIVER_TIMEOUT,
                        since=since)
        self.wait_recorded(qid)
        return qid

    def wait_recorded(self, qid):
        """Wait until the attempt's outcome is on disk: the envelope is
        rewritten beside the loop, and the message waits again only
        then."""
        ternlib.wait_for(lambda: re.search(rb"\ntries: [1-9]",
                                           self.t.read_env_bytes(qid)),
                         DELIVER_TIMEOUT, "the attempt of %s on disk" % qid)

    def wait_removed(self, qid):
        self.t.wait_log(removed_re(qid), DELIVER_TIMEOUT)
        ternlib.wait_for(lambda: qid not in self.t.queued(), DELIVER_TIMEOUT,
                         "%s to leave the queue" % qid)

    def rcpts_to(self, hop):
        return sorted(r for m in hop.messages() for r in m.rcpts)


class Flush(EtrnCase):

    def test_etrn_after_4xx(self):
        gw = self.hop(data="451 4.3.0 try later")
        t = self.start_tern()
        qid = self.deferred("r@example.test")
        self.assertEqual(len(gw.attempts()), 1)
        gw.configure(data="250")
        # Accepting now changes nothing by itself: the retry is 1h away.
        time.sleep(QUIET)
        self.assertEqual(gw.messages(), [])
        self.assertIn(qid, t.queued())
        asked = time.monotonic()
        self.assertReply(self.etrn("example.test"),
                         started(1, "example.test"))
        msgs = gw.wait_messages(1, DELIVER_TIMEOUT)
        self.assertLess(msgs[0].when - asked, DELIVER_TIMEOUT)
        self.assertEqual(msgs[0].rcpts, ["r@example.test"])
        self.assertIn(b"Subject: etrn\r\n", msgs[0].data)
        self.wait_removed(qid)
        t.wait_log(r"ETRN from \[127\.0\.0\.1\]: example\.test: "
                   r"1 messages, session=[0-9A-F]{8}$")
        self.assertEqual(len(gw.attempts()), 2)
        # Nothing left for it.
        self.assertReply(self.etrn("example.test"),
                         none_waiting("example.test"))

    def test_etrn_after_next_hop_down(self):
        # Nobody listens on the gateway's port yet: connection refused.
        t = self.start_tern()
        qid = self.deferred("r@example.test")
        gw = self.hop()
        time.sleep(QUIET)
        self.assertEqual(gw.connections, 0, "retried before ETRN")
        self.assertReply(self.etrn("example.test"),
                         started(1, "example.test"))
        msgs = gw.wait_messages(1, DELIVER_TIMEOUT)
        self.assertEqual(msgs[0].rcpts, ["r@example.test"])
        self.wait_removed(qid)

    def test_count_and_other_domains_untouched(self):
        gw = self.hop(data="451")
        t = self.start_tern()
        q1 = self.deferred("a@example.test", "one")
        q2 = self.deferred("b@example.test", "two")
        q3 = self.deferred("c@other.test", "three")
        gw.configure(data="250")
        self.assertReply(self.etrn("example.test"),
                         started(2, "example.test"))
        gw.wait_messages(2, DELIVER_TIMEOUT)
        self.wait_removed(q1)
        self.wait_removed(q2)
        time.sleep(QUIET)
        self.assertEqual(self.rcpts_to(gw), ["a@example.test",
                                             "b@example.test"])
        self.assertEqual(t.queued(), [q3])
        self.assertEqual(len(gw.rcpt_commands("c@other.test")), 1)

    def test_domain_and_subdomains(self):
        gw = self.hop(data="451")
        t = self.start_tern()
        qsub = self.deferred("r@sub.example.test", "sub")
        qbad = self.deferred("r@badexample.test", "bad")
        # Only the subdomain has mail: the bare domain does not match it,
        # and "@domain" ends on a label boundary.
        self.assertReply(self.etrn("example.test"),
                         none_waiting("example.test"))
        self.assertReply(self.etrn("@ample.test"), none_waiting("ample.test"))
        self.assertReply(self.etrn("@sub.example.test.x"),
                         none_waiting("sub.example.test.x"))
        time.sleep(QUIET)
        self.assertEqual(len(gw.attempts()), 2, "ETRN without a match "
                         "started an attempt")
        qdom = self.deferred("r@example.test", "dom")
        gw.configure(data="250")
        # The domain itself: only its own message.
        self.assertReply(self.etrn("example.test"),
                         started(1, "example.test"))
        gw.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(qdom)
        time.sleep(QUIET)
        self.assertEqual(self.rcpts_to(gw), ["r@example.test"])
        # "@domain", in another case: the subdomain, not badexample.test.
        r = self.etrn("@Example.TEST")
        self.assertRegex(r.line, r"^253 2\.0\.0 OK, 1 pending messages "
                         r"for node (?i:example\.test) started$")
        gw.wait_messages(2, DELIVER_TIMEOUT)
        self.wait_removed(qsub)
        time.sleep(QUIET)
        self.assertEqual(self.rcpts_to(gw), ["r@example.test",
                                             "r@sub.example.test"])
        self.assertEqual(t.queued(), [qbad])
        self.assertReply(self.etrn("@example.test"),
                         none_waiting("example.test"))
        t.wait_log(r"ETRN from \[127\.0\.0\.1\]: @Example\.TEST: "
                   r"1 messages, session=[0-9A-F]{8}$")


class Nothing(EtrnCase):

    def test_nothing_queued(self):
        self.hop()
        self.start_tern()
        self.assertReply(self.etrn("example.test"),
                         none_waiting("example.test"))
        self.assertReply(self.etrn("@example.test"),
                         none_waiting("example.test"))

    def test_only_pending_recipients_count(self):
        gw = self.hop(rcpt={"b@example.test": "450 4.2.0 busy", "*": "250"})
        t = self.start_tern()
        qid = t.send_message(SENDER, ["a@done.test", "b@example.test"],
                             small("split"))
        t.wait_log(result_re(qid, "a@done.test", "sent"), DELIVER_TIMEOUT)
        t.wait_log(result_re(qid, "b@example.test", "deferred"),
                   DELIVER_TIMEOUT)
        self.wait_recorded(qid)
        self.assertEqual(self.rcpts_to(gw), ["a@done.test"])
        # done.test got its copy: the message waits for example.test only.
        self.assertReply(self.etrn("done.test"), none_waiting("done.test"))
        gw.configure(rcpt="250")
        self.assertReply(self.etrn("example.test"),
                         started(1, "example.test"))
        gw.wait_messages(2, DELIVER_TIMEOUT)
        self.wait_removed(qid)
        self.assertEqual(self.rcpts_to(gw), ["a@done.test",
                                             "b@example.test"])


class Denied(EtrnCase):

    def test_outside_etrn_networks(self):
        gw = self.hop(data="451")
        t = self.start_tern(smtp={"etrn_networks": NOT_US})
        qid = self.deferred("r@example.test")
        gw.configure(data="250")
        self.assertReply(self.etrn("example.test"), denied("example.test"))
        r = self.etrn("@example.test")
        self.assertRegex(r.line, r"^459 4\.7\.1 @?example\.test: node not "
                         r"allowed$")
        t.wait_log(r"NOQUEUE: reject: ETRN from unknown\[127\.0\.0\.1\]: "
                   r"459 4\.7\.1 example\.test: node not allowed; "
                   r"proto=ESMTP helo=<[^>]+> session=[0-9A-F]{8}$")
        time.sleep(QUIET)
        self.assertEqual(gw.messages(), [], "refused ETRN flushed anyway")
        self.assertEqual(len(gw.attempts()), 1)
        self.assertEqual(t.queued(), [qid])
        # Allowed after a reload: the same message goes at once.
        t.write_config(smtp={"etrn_networks": "127.0.0.1/32"})
        t.reload()
        self.assertReply(self.etrn("example.test"),
                         started(1, "example.test"))
        gw.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(qid)

    def test_default_follows_relay_networks(self):
        self.hop()
        t = self.start_tern(smtp={"relay_networks": NOT_US})
        self.assertReply(self.etrn("example.test"), denied("example.test"))
        # Given on its own, etrn_networks wins over relay_networks.
        t.write_config(smtp={"etrn_networks": "127.0.0.0/8"})
        t.reload()
        self.assertReply(self.etrn("example.test"),
                         none_waiting("example.test"))


class Syntax(EtrnCase):

    def test_syntax_and_sequence(self):
        self.hop()
        t = self.start_tern()
        c = t.raw()
        self.assertReply(c.cmd("ETRN example.test"), NEED_HELO)
        c.ehlo()
        self.assertReply(c.cmd("ETRN"), SYNTAX)
        self.assertReply(c.cmd("ETRN "), SYNTAX)
        self.assertReply(c.cmd("ETRN #queue"), SYNTAX)
        self.assertReply(c.cmd("ETRN @"), SYNTAX)
        self.assertReply(c.cmd("ETRN exa mple.test"), SYNTAX)
        self.assertReply(c.cmd("ETRN " + "a" * 300 + ".test"), SYNTAX)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), "250 2.1.0 Ok")
        self.assertReply(c.cmd("ETRN example.test"), IN_TX)
        # The transaction is still there, and ETRN works once it is gone.
        self.assertReply(c.cmd("RCPT TO:<r@example.test>"), "250 2.1.5 Ok")
        self.assertReply(c.cmd("RSET"), "250 2.0.0 Ok")
        self.assertReply(c.cmd("ETRN example.test"),
                         none_waiting("example.test"))
        self.assertReply(c.cmd("QUIT"), re.compile(r"^221 "))
        c.close()
        # HELO is enough.
        c = t.raw()
        self.assertEqual(c.cmd("HELO client.example").code, 250)
        self.assertReply(c.cmd("etrn example.test"),
                         none_waiting("example.test"))
        c.close()
        self.assertTrue(t.is_running())


class Advertise(EtrnCase):

    def test_ehlo_listen_not_submission(self):
        sub_port = ternlib.free_port()
        t = self.start_tern(smtp={"submission_listen": "127.0.0.1:%d"
                                  % sub_port})
        c = t.raw()
        self.assertIn("ETRN", keywords(c.ehlo()))
        c.close()
        s = ternlib.Conn(sub_port)
        t.conns.append(s)
        r = s.ehlo()
        self.assertNotIn("ETRN", keywords(r))
        self.assertGreater(len(r.raw), 1, "no EHLO keywords at all: %r" % r)
        # Nor does it work there.
        r = s.cmd("ETRN example.test")
        self.assertGreaterEqual(r.code, 400, r)


if __name__ == "__main__":
    ternlib.main()
