"""
test_drain.py: ternctl drain and undrain.  Drained, every new client is
answered 421 4.3.2 and closed (on a proxy: listener, after its PROXY
header), a session already open finishes its message, and the queue is
still delivered; stats and the service manager's STATUS line say so at
once; a reload keeps the state, a restart clears it; undrain takes
clients again.  Behind a real HAProxy with its SMTP health check, a
drained node is taken out of the rotation and put back after undrain.
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nexthop  # noqa: E402
import ternlib  # noqa: E402
from haproxy import HAProxy, Server  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id  # noqa: E402
from test_systemd import Notify  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""

SENDER = "sender@sender.test"
RCPT = "far@remote.test"
GW = "127.0.0.5"
DRAINED = "421 4.3.2 %s Error: service draining, try another server" \
    % ternlib.HOSTNAME
DELIVER_TIMEOUT = 15.0
MSG = b"Subject: drain\r\n\r\nbody\r\n"


class DrainCase(TernTestCase):

    def setUp(self):
        super().setUp()
        if not TERNCTL or not os.access(TERNCTL, os.X_OK):
            self.fail("TERN_BUILDDIR does not hold src/ternctl")

    def ctl(self, t, *args):
        p = subprocess.run([TERNCTL, "-c", t.conf] + list(args),
                           capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def stats(self, t):
        out = {}
        for line in self.ctl(t, "stats").splitlines():
            key, _, value = line.partition(": ")
            out[key] = value
        return out

    def refused(self, t, port=None):
        c = ternlib.Conn(port or t.port, greet=False)
        try:
            r = c.reply()
            self.assertEqual(r.line, DRAINED)
            c.expect_eof()
        finally:
            c.close()


class Drain(DrainCase):

    def test_drain_and_undrain(self):
        n = Notify()
        self.addCleanup(n.close)
        t = self.tern(env=n.env())
        n.wait(lambda m: m.get("READY") == "1", "READY=1")
        self.assertEqual(self.stats(t)["draining"], "0")
        # A session open before the drain, in the middle of a message.
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % RCPT).code, 250)
        mark = t.log_mark()
        self.assertEqual(self.ctl(t, "drain"), "")
        t.wait_log(r"draining: new clients are refused", since=mark)
        n.wait(lambda m: m.get("STATUS", "").startswith("draining; queue: "),
               "STATUS after drain")
        self.refused(t)
        self.refused(t)
        # The open session goes on, to its message's 250 and beyond.
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(MSG + b".\r\n")
        queued_id(c.reply())
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        st = self.stats(t)
        self.assertEqual(st["draining"], "1")
        self.assertEqual(st["drain_refused"], "2")
        self.assertEqual(st["accepted"], "1")
        t.wait_log(r"refused connection from \[127\.0\.0\.1\]: draining")
        # Drain again: still drained, said once.
        self.ctl(t, "drain")
        self.assertEqual(len(re.findall("draining: new clients", t.log())),
                         1)
        mark = t.log_mark()
        self.assertEqual(self.ctl(t, "undrain"), "")
        t.wait_log(r"undrained: accepting new clients again", since=mark)
        msg = n.wait(lambda m: "STATUS" in m and
                     not m["STATUS"].startswith("draining"),
                     "STATUS after undrain")
        self.assertTrue(msg["STATUS"].startswith("queue: "), msg)
        c = t.session()
        self.assertEqual(c.greeting.code, 220)
        self.assertEqual(self.stats(t)["draining"], "0")

    def test_reload_keeps_restart_clears(self):
        t = self.tern()
        self.ctl(t, "drain")
        self.refused(t)
        t.reload()
        self.refused(t)
        self.assertEqual(self.stats(t)["draining"], "1")
        t.restart()
        self.assertEqual(self.stats(t)["draining"], "0")
        self.assertEqual(t.raw().greeting.code, 220)

    def test_delivery_goes_on(self):
        port = nexthop.common_port([GW])
        hop = NextHop(GW, port=port, data="451")
        self.addCleanup(hop.stop)
        t = self.tern(sections={"delivery": {
            "gateway": "%s:%d" % (GW, port), "gateway_all": "yes",
            "queue_interval": "1h"}})
        qid = t.send_message(SENDER, [RCPT], MSG)
        hop.wait_attempts(1, DELIVER_TIMEOUT)
        self.ctl(t, "drain")
        hop.configure(data="250")
        self.ctl(t, "flush")
        hop.wait_messages(1, DELIVER_TIMEOUT)
        ternlib.wait_for(lambda: qid not in t.queued(), DELIVER_TIMEOUT,
                         "the message to leave the queue")
        self.refused(t)

    def test_proxy_listener_refuses_after_the_header(self):
        t = self.tern(start=False)
        pport = ternlib.free_port()
        t.write_config(smtp={
            "listen": "127.0.0.1:%d proxy:127.0.0.1:%d" % (t.port, pport),
            "proxy_networks": "127.0.0.1/32"})
        t.start()
        self.ctl(t, "drain")
        c = ternlib.Conn(pport, greet=False)
        c.no_reply(0.3)	# nothing before the header
        c.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 4000 25\r\n")
        self.assertEqual(c.reply().line, DRAINED)
        c.expect_eof()
        c.close()
        t.wait_log(r"refused connection from \[192\.0\.2\.7\]: draining")


class BehindHAProxy(DrainCase):
    """HAProxy's SMTP health check takes a drained node out."""

    def node(self):
        t = self.tern(start=False)
        t.pport = ternlib.free_port()
        t.write_config(smtp={
            "listen": "127.0.0.1:%d proxy:127.0.0.1:%d" % (t.port,
                                                          t.pport),
            "proxy_networks": "127.0.0.1/32"})
        t.start()
        return t

    def greetings(self, h, n):
        """The first reply line of n connections through HAProxy."""
        out = []
        for _ in range(n):
            c = ternlib.Conn(h.ports["mx"], greet=False, source="127.0.0.2")
            try:
                out.append(c.reply().line)
            except (ternlib.Closed, OSError):
                out.append("closed")
            finally:
                c.close()
        return out

    def test_health_check_takes_drained_node_out(self):
        a = self.node()
        b = self.node()
        h = HAProxy({"mx": [Server("a", a.pport), Server("b", b.pport)]},
                    smtpchk=True)
        self.addCleanup(h.stop)
        client = r"proxied connection from \[127\.0\.0\.2\]"

        def both():
            self.greetings(h, 2)
            return re.search(client, a.log()) and re.search(client, b.log())
        # Both in service: round robin reaches both.
        ternlib.wait_for(both, DELIVER_TIMEOUT, "clients on both nodes")
        self.ctl(a, "drain")
        # The check sees the 421: soon every client lands on b.
        ternlib.wait_for(lambda: all(g.startswith("220 ")
                                     for g in self.greetings(h, 4)),
                         DELIVER_TIMEOUT, "only b to greet")
        mark = a.log_mark()
        self.assertTrue(all(g.startswith("220 ")
                            for g in self.greetings(h, 6)))
        self.assertNotRegex(a.log_bytes()[mark:].decode(), client)
        self.ctl(a, "undrain")

        def back():
            self.greetings(h, 2)
            return re.search(client, a.log_bytes()[mark:].decode())
        ternlib.wait_for(back, DELIVER_TIMEOUT, "a back in service")


if __name__ == "__main__":
    ternlib.main()
