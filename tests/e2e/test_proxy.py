"""
test_proxy.py: the PROXY protocol on "proxy:" listeners, behind a real
HAProxy (send-proxy-v2 and send-proxy) and with headers written by hand.

The trap every test here is built around: HAProxy reaches ternd from
127.0.0.1, and relay_networks is 127.0.0.1/32, so a ternd that fell back
to the proxy's own address would relay for everyone.  A client at
127.0.0.2 must still be refused relaying, and be the address in the
log, the Received header, ETRN's check and the per-address limits; a
client at 127.0.0.1 behind a proxy at 127.0.0.3 (outside relay_networks)
must be allowed to relay, which only the header can tell.  Refused and
logged: a connection from outside proxy_networks, a missing, malformed,
cut short or late header, and a header that names no TCP client.  No
greeting goes out before the whole header; the octets after it reach
the session.  Two ternd nodes with separate spools behind one HAProxy:
one killed with SIGKILL, mail keeps flowing through the other, and once
it is back everything either acknowledged reaches the next hop.
"""

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nexthop  # noqa: E402
import ternlib  # noqa: E402
from haproxy import HAProxy, Server  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""

SENDER = "sender@sender.test"
LOCAL_RCPT = "someone@tern.test"
REMOTE_RCPT = "far@remote.test"
RELAY_DENIED = "554 5.7.1 <%s>: Relay access denied" % REMOTE_RCPT
GW = "127.0.0.5"	# the next hop every relayed message goes to
PROXY_FAR = "127.0.0.3"	# a proxy address outside relay_networks
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
DELIVER_TIMEOUT = 20.0


def v1(src, sport, dst="127.0.0.1", dport=25):
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src, dst, sport, dport)).encode()


def v2(src, sport, dst="127.0.0.1", dport=25, tlvs=b""):
    body = (socket.inet_aton(src) + socket.inet_aton(dst)
            + sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + tlvs)
    return SIG + b"\x21\x11" + len(body).to_bytes(2, "big") + body


def message(subject):
    return ("From: %s\r\nSubject: %s\r\n\r\nbody\r\n"
            % (SENDER, subject)).encode()


class ProxyCase(TernTestCase):
    """ternd with a plain listener (for the harness) and a proxy: one."""

    def start_tern(self, smtp=None, sections=None, local=True):
        t = self.tern(start=False, local=["tern.test"] if local else None)
        t.pport = ternlib.free_port()
        conf = {
            "listen": "127.0.0.1:%d proxy:127.0.0.1:%d" % (t.port,
                                                          t.pport),
            "proxy_networks": "127.0.0.1/32 %s/32" % PROXY_FAR,
            "proxy_timeout": "2s",
            # The proxy's own address is in it, on purpose (above).
            "relay_networks": "127.0.0.1/32",
        }
        conf.update(smtp or {})
        t.write_config(smtp=conf, sections=sections)
        t.start()
        return t

    def proxied(self, t, header, source="127.0.0.1", greet=True):
        """A raw connection to the proxy: listener that sends header
        first."""
        c = ternlib.Conn(t.pport, greet=False, source=source)
        t.conns.append(c)
        if header:
            c.send(header)
        if greet:
            c.greeting = c.reply()
        return c

    def expect_closed(self, c):
        """The connection ends without a greeting (EOF or reset)."""
        try:
            replies = c.rest()
        except ConnectionResetError:
            replies = []
        self.assertEqual([r for r in replies if r.code == 220], [])

    def haproxy(self, frontends, **kw):
        h = HAProxy(frontends, **kw)
        self.addCleanup(h.stop)
        self.proxies = getattr(self, "proxies", []) + [h]
        return h

    def daemon_logs(self):
        out = [super().daemon_logs()]
        for h in getattr(self, "proxies", []):
            out.append("--- haproxy ---\n" + h.log()[-3000:])
        for h in getattr(self, "hops", []):
            out.append(h.summary())
        return "\n".join(out)

    def via(self, h, frontend, source):
        """A client connection through HAProxy from a loopback source."""
        c = ternlib.Conn(h.ports[frontend], source=source,
                         timeout=ternlib.REPLY_TIMEOUT * 2)
        self.assertEqual(c.greeting.code, 220, c.greeting)
        return c


class BehindHAProxy(ProxyCase):

    def check_client(self, t, h, frontend, version):
        c = self.via(h, frontend, "127.0.0.2")
        sport = c.sock.getsockname()[1]
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        # Refused, though the proxy's 127.0.0.1 is in relay_networks.
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE_RCPT), RELAY_DENIED)
        self.assertEqual(c.cmd("RSET").code, 250)
        qid = queued_id(c.mail(SENDER, [LOCAL_RCPT], message(frontend)))
        c.cmd("QUIT")
        c.close()
        t.wait_log(r"proxied connection from \[127\.0\.0\.2\]:%d via proxy "
                   r"\[127\.0\.0\.1\] \(PROXY v%d\)" % (sport, version))
        t.wait_log(r"reject: RCPT from unknown\[127\.0\.0\.2\]: 554 ")
        t.wait_log(r"connect from \[127\.0\.0\.2\] session=")
        name = t.wait_delivered(1)[0]
        with open(os.path.join(t.sink_maildir(), "new", name), "rb") as f:
            head = f.read().split(b"\n\n")[0]	# Maildir: LF
        self.assertRegex(head, rb"\nReceived: from client\.example "
                         rb"\(\[127\.0\.0\.2\]\)\n\tby mx\.test\.example "
                         rb"\(tern\) with ESMTP id " + qid.encode())
        self.assertNotIn(b"[127.0.0.1]", head)

    def test_v2_real_client_refused_relaying(self):
        t = self.start_tern()
        h = self.haproxy({"v2": [Server("a", t.pport, "send-proxy-v2")]})
        self.check_client(t, h, "v2", 2)

    def test_v1_real_client_refused_relaying(self):
        t = self.start_tern()
        h = self.haproxy({"v1": [Server("a", t.pport, "send-proxy")]})
        self.check_client(t, h, "v1", 1)

    def test_real_client_allowed_relaying(self):
        """The client 127.0.0.1 relays through a proxy at 127.0.0.3,
        which is not in relay_networks: only the header says so."""
        t = self.start_tern()
        h = self.haproxy({"far": [Server("a", t.pport, "send-proxy-v2",
                                         source=PROXY_FAR)]})
        c = self.via(h, "far", "127.0.0.1")
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % REMOTE_RCPT).code, 250)
        c.cmd("QUIT")
        c.close()
        t.wait_log(r"proxied connection from \[127\.0\.0\.1\]:\d+ via proxy "
                   r"\[127\.0\.0\.3\] \(PROXY v2\)")
        # And the far proxy's client at 127.0.0.2 may not.
        c = self.via(h, "far", "127.0.0.2")
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE_RCPT), RELAY_DENIED)

    def test_not_through_the_proxy(self):
        """A client reaching the proxy: listener directly is refused,
        from outside proxy_networks with a 421."""
        t = self.start_tern()
        mark = t.log_mark()
        c = ternlib.Conn(t.pport, source="127.0.0.2")
        self.assertEqual(c.greeting.line, "421 4.7.0 %s Error: PROXY "
                         "protocol required, from a trusted proxy"
                         % ternlib.HOSTNAME)
        c.expect_eof()
        t.wait_log(r"refused connection from \[127\.0\.0\.2\] on "
                   r"proxy:127\.0\.0\.1:%d .*: not in proxy_networks"
                   % t.pport, since=mark)


class Headers(ProxyCase):

    def test_greeting_waits_for_the_whole_header(self):
        t = self.start_tern()
        header = v1("192.0.2.7", 40000)
        c = self.proxied(t, header[:20], greet=False)
        c.no_reply(0.5)
        c.send(header[20:-1])
        c.no_reply(0.5)
        # The last octet of the header and the client's first command in
        # one segment: the command must reach the session whole.
        c.send(header[-1:] + b"EHLO client.example\r\n")
        self.assertEqual(c.reply().code, 220)
        self.assertEqual(c.reply().code, 250)
        t.wait_log(r"proxied connection from \[192\.0\.2\.7\]:40000 via "
                   r"proxy \[127\.0\.0\.1\] \(PROXY v1\)")

    def test_v2_octet_by_octet_with_tlvs(self):
        t = self.start_tern()
        header = v2("198.51.100.9", 1234,
                    tlvs=b"\x04\x00\x03abc\x20\x00\x05\x01\x00\x00\x00\x00")
        c = self.proxied(t, b"", greet=False)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(header)):
            c.send(header[i:i + 1])
            time.sleep(0.01)
        self.assertEqual(c.reply().code, 220)
        c.ehlo()
        t.wait_log(r"proxied connection from \[198\.51\.100\.9\]:1234 via "
                   r"proxy \[127\.0\.0\.1\] \(PROXY v2\)")

    def test_refused_headers(self):
        t = self.start_tern()
        cases = [
            (b"EHLO client.example\r\n", "not a PROXY protocol header"),
            (b"PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n",
             "bare LF in a version 1 line"),
            (b"PROXY TCP4 192.0.2.01 127.0.0.1 1 2\r\n",
             "bad address in a version 1 line"),
            (b"PROXY TCP4 192.0.2.1 127.0.0.1 1 65536\r\n",
             "bad port in a version 1 line"),
            (SIG + b"\x22\x11\x00\x0c" + bytes(12),
             "unknown version 2 command"),
            (SIG + b"\x21\x11\x00\x08" + bytes(8),
             "version 2 length shorter than its addresses"),
            (b"PROXY UNKNOWN\r\n", "PROXY v1 header names no TCP client"),
            (SIG + b"\x21\x00\x00\x00", "PROXY v2 header names no TCP "
             "client"),
        ]
        for header, why in cases:
            with self.subTest(header=header):
                mark = t.log_mark()
                c = self.proxied(t, header, greet=False)
                self.expect_closed(c)
                t.wait_log(r"refused connection from proxy \[127\.0\.0\.1\]"
                           r": .*" + re.escape(why), since=mark)
                c.close()
        # None of them became a session.
        self.assertNotRegex(t.log(), r"proxied connection from")

    def test_truncated_and_late(self):
        t = self.start_tern()
        mark = t.log_mark()
        c = self.proxied(t, v2("192.0.2.1", 1)[:20], greet=False)
        c.sock.shutdown(socket.SHUT_WR)
        self.expect_closed(c)
        t.wait_log(r"refused connection from proxy \[127\.0\.0\.1\]: PROXY "
                   r"protocol: closed in the middle of the header",
                   since=mark)
        c.close()
        # proxy_timeout is 2s for the whole header, however it trickles:
        # an octet every 0.5s for 5s is cut off while it still comes.
        started = time.monotonic()
        c = self.proxied(t, b"PROXY TCP4 ", greet=False)
        cut = False
        for octet in b"192.0.2.1 ":
            time.sleep(0.5)
            if "timeout waiting for the header" in t.log_bytes()[mark:] \
                    .decode():
                cut = True
                break
            try:
                c.send(bytes([octet]))
            except OSError:
                pass
        self.assertTrue(cut, "the header's deadline was renewed by each "
                        "octet")
        self.expect_closed(c)
        c.close()
        c = self.proxied(t, b"", greet=False)
        self.expect_closed(c)
        self.assertGreaterEqual(time.monotonic() - started, 2)

    def test_local_is_the_proxy_itself(self):
        t = self.start_tern()
        c = self.proxied(t, SIG + b"\x20\x00\x00\x00")
        self.assertEqual(c.greeting.code, 220)
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        # LOCAL: the proxy's own address, 127.0.0.1, relays here.
        self.assertEqual(c.cmd("RCPT TO:<%s>" % REMOTE_RCPT).code, 250)
        t.wait_log(r"connection from proxy \[127\.0\.0\.1\] for itself "
                   r"\(PROXY v2 LOCAL\)")

    def test_per_address_limit_is_the_clients(self):
        t = self.start_tern(smtp={"max_connections_per_ip": "1",
                                  "client_limit_exempt": "none"})
        first = self.proxied(t, v1("192.0.2.7", 1000))
        self.assertEqual(first.greeting.code, 220)
        second = self.proxied(t, v1("192.0.2.7", 1001))
        self.assertEqual(second.greeting.line, "421 4.7.0 %s Error: too "
                         "many connections from your address"
                         % ternlib.HOSTNAME)
        # Another client behind the same proxy is not held back.
        other = self.proxied(t, v1("192.0.2.8", 1002))
        self.assertEqual(other.greeting.code, 220)
        t.wait_log(r"refused connection from \[192\.0\.2\.7\]: ")

    def test_etrn_is_the_clients(self):
        t = self.start_tern()
        c = self.proxied(t, v2("127.0.0.2", 5000))
        c.ehlo()
        self.assertEqual(c.cmd("ETRN remote.test").line,
                         "459 4.7.1 remote.test: node not allowed")
        c = self.proxied(t, v2("127.0.0.1", 5001, tlvs=b"\x01\x00\x00"))
        c.ehlo()
        self.assertNotEqual(c.cmd("ETRN remote.test").code, 459)


class TwoNodes(ProxyCase):
    """Two nodes, separate spools, one HAProxy, one next hop."""

    def setUp(self):
        super().setUp()
        if not TERNCTL or not os.access(TERNCTL, os.X_OK):
            self.fail("TERN_BUILDDIR does not hold src/ternctl")
        self.gw_port = nexthop.common_port([GW])
        self.hop = NextHop(GW, port=self.gw_port, data="451")
        self.hops = [self.hop]
        self.addCleanup(self.hop.stop)

    def node(self):
        return self.start_tern(local=False, sections={"delivery": {
            "gateway": "%s:%d" % (GW, self.gw_port),
            "gateway_all": "yes",
            "queue_interval": "1h",
            "connect_timeout": "3s",
            "reply_timeout": "5s",
        }})

    def send(self, h, subject, tries=4):
        """Send one message as a client would, again after a failure;
        the subject when a 250 acknowledged it."""
        for _ in range(tries):
            try:
                c = self.via(h, "v2", "127.0.0.1")
                try:
                    c.ehlo()
                    r = c.mail(SENDER, [REMOTE_RCPT], message(subject))
                    if r.code == 250:
                        return subject
                finally:
                    c.close()
            except (OSError, ternlib.Closed, AssertionError):
                pass
            time.sleep(0.2)
        return None

    def flush(self, t):
        p = subprocess.run([TERNCTL, "-c", t.conf, "flush"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_kill9_one_node(self):
        ternlib.signal.alarm(120)
        a = self.node()
        b = self.node()
        h = self.haproxy({"v2": [Server("a", a.pport), Server("b", b.pport)]})
        acked = []
        for i in range(8):
            s = self.send(h, "before-%d" % i)
            self.assertIsNotNone(s, "message %d not accepted" % i)
            acked.append(s)
        # Round robin: both nodes hold mail the next hop has refused.
        ternlib.wait_for(lambda: len(self.hop.attempts()) >= 8,
                         DELIVER_TIMEOUT, "8 deferred attempts")
        self.assertGreater(len(a.queued()), 0)
        self.assertGreater(len(b.queued()), 0)
        a.kill9()
        for i in range(8):
            s = self.send(h, "after-%d" % i)
            self.assertIsNotNone(s, "message %d not accepted with a "
                                 "node down" % i)
            acked.append(s)
        self.assertEqual(len(b.queued()) + len(a.queued()), 16)
        self.hop.configure(data="250")
        a.start()
        self.flush(a)
        self.flush(b)
        ternlib.wait_for(lambda: set(acked) <= self.subjects(),
                         DELIVER_TIMEOUT * 2, "every acknowledged message "
                         "at the next hop")
        self.assertEqual(set(acked), self.subjects())

    def subjects(self):
        out = set()
        for m in self.hop.messages():
            found = re.search(rb"\r\nSubject: ([^\r]+)\r\n", m.data)
            if found:
                out.add(found.group(1).decode())
        return out


if __name__ == "__main__":
    ternlib.main()
