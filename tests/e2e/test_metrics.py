"""
test_metrics.py: the metrics listener (metrics_listen) of the real
ternd.  A test run does known things (sessions, messages accepted and
refused for known reasons, local deliveries, remote deliveries deferred
by a next hop, a message put on hold, a connection over the per-address
limit) and a scrape must count exactly those; every scrape is checked by
Prometheus's own promtool.  Also: the HTTP side (404, 405, 400, HEAD, a
header too large, a client that never sends), the counters kept across a
reload, and no listener unless configured.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, free_port, wait_for  # noqa: E402

PROMTOOL = os.environ.get("PROMTOOL", "promtool")
BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl")
SENDER = "sender@sender.test"
STRANGER = "127.0.0.2"
TIMEOUT = 15.0
SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def msg(subject, body="Hello.\r\n"):
    return ("From: %s\r\nSubject: %s\r\n\r\n%s"
            % (SENDER, subject, body)).encode()


def http(port, request, timeout=TIMEOUT):
    """Send request bytes, read until the server closes; the raw reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


def parse(text):
    """{(name, labels): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise AssertionError("bad sample line %r" % line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


class Metrics(TernTestCase):

    def start(self, **smtp):
        self.hop = NextHop("127.0.0.1", rcpt="451 4.7.1 try later")
        self.addCleanup(self.hop.stop)
        self.mport = free_port()
        conf = {"relay_networks": "127.0.0.1/32",
                "max_connections_per_ip": "2",
                "max_message_size": "4K"}
        conf.update(smtp)
        t = self.tern(main={"metrics_listen": str(self.mport)}, smtp=conf,
                      local=["tern.test"], sections={"delivery": {
                          "gateway": "127.0.0.1:%d" % self.hop.port,
                          "gateway_all": "yes", "queue_interval": "1h"}})
        return t

    def scrape(self):
        """GET /metrics, checked by promtool; the parsed samples."""
        raw = http(self.mport, b"GET /metrics HTTP/1.1\r\n"
                   b"Host: localhost\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.assertEqual(lines[0], "HTTP/1.1 200 OK", head)
        fields = dict(line.split(": ", 1) for line in lines[1:])
        self.assertEqual(fields["Content-Type"],
                         "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(int(fields["Content-Length"]), len(body))
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool: %s %s"
                         % (p.stdout.decode(), p.stderr.decode()))
        return parse(body.decode())

    def test_counts_what_happened(self):
        t = self.start()
        sessions = 0

        # Accepted: two relayed (the next hop defers them), one local.
        r1 = t.send_message(SENDER, ["a@dest.test"], msg("one"))
        r2 = t.send_message(SENDER, ["b@dest.test"], msg("two"))
        t.send_message(SENDER, ["someone@tern.test"], msg("local"))
        sessions += 3
        t.wait_delivered(1)

        # Refused: relay from a stranger, a message too big, bare LF.
        c = t.raw(source=STRANGER)
        sessions += 1
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<x@dest.test>").code, 554)
        c.cmd("QUIT")
        c.close()
        c = t.session()
        sessions += 1
        reply = c.mail(SENDER, ["big@tern.test"], msg("big", ("x" * 70 + "\r\n") * 120))
        self.assertEqual(reply.code, 552)
        reply = c.mail(SENDER, ["bare@tern.test"],
                       msg("bare", "a\nb\r\n") + b".\r\n", stuff=False)
        self.assertEqual(reply.code, 554)
        c.cmd("QUIT")
        c.close()

        # Over the per-address limit: the third connection is refused.
        held = [t.raw(source=STRANGER) for _ in range(2)]
        sessions += 2
        c = t.raw(greet=False, source=STRANGER)
        self.assertTrue(c.reply().line.startswith("421 4.7.0 "))
        c.close()

        wait_for(lambda: len(re.findall(r"status=deferred", t.log())) >= 2,
                 TIMEOUT, "the two deferrals")
        # A deferral is logged before its envelope is rewritten; the
        # message waits in the queue again once that is done.
        deferred = ("tern_queue_messages", '{state="deferred"}')
        m = wait_for(lambda: (lambda m: m if m[deferred] == 2 else None)(
            self.scrape()), TIMEOUT, "two deferred messages in the gauge")
        self.assertEqual(m[("tern_messages_received_total", "")], 3)
        # Those of the test and the readiness probe of ternlib: each one
        # logged "connect from".
        self.assertGreaterEqual(m[("tern_sessions_accepted_total", "")],
                                sessions)
        self.assertEqual(m[("tern_sessions_accepted_total", "")],
                         len(re.findall(r"\bconnect from \[", t.log())))
        self.assertEqual(m[("tern_sessions", '{direction="inbound"}')], 2)
        refused = {k[1]: v for k, v in m.items()
                   if k[0] == "tern_sessions_refused_total"}
        self.assertEqual(refused['{reason="client_limit"}'], 1)
        self.assertEqual(sum(refused.values()), 1)
        rejected = {k[1]: v for k, v in m.items()
                    if k[0] == "tern_messages_rejected_total"}
        self.assertEqual(rejected['{reason="relay_denied"}'], 1)
        self.assertEqual(rejected['{reason="size"}'], 1)
        self.assertEqual(rejected['{reason="content"}'], 1)
        self.assertEqual(sum(rejected.values()), 3)

        def dl(status, dest):
            return m[("tern_deliveries_total", '{status="%s",destination='
                      '"%s"}' % (status, dest))]
        self.assertEqual(dl("sent", "local"), 1)
        self.assertEqual(dl("deferred", "gateway"), 2)
        self.assertEqual(sum(v for k, v in m.items()
                             if k[0] == "tern_deliveries_total"), 3)
        self.assertEqual(m[("tern_delivery_delay_seconds_count", "")], 1)
        self.assertGreaterEqual(m[("tern_commit_duration_seconds_count",
                                   "")], 3)
        self.assertEqual(m[("tern_queue_messages", '{state="deferred"}')],
                         2)
        self.assertEqual(m[("tern_queue_messages", '{state="hold"}')], 0)
        self.assertEqual(m[("tern_queue_messages", '{state="active"}')], 0)
        self.assertGreaterEqual(
            m[("tern_queue_oldest_message_age_seconds", "")], 0)

        # Admission control, as ternctl stats says it.
        out = subprocess.run([TERNCTL, "-c", t.conf, "stats", "--json"],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        stats = json.loads(out.stdout)
        self.assertEqual(m[("tern_session_budget", "")],
                         stats["session_budget"])
        self.assertEqual(m[("tern_stress", "")], stats["stress"])
        self.assertGreater(m[("tern_session_memory_bytes", "")], 0)
        self.assertLess(abs(m[("tern_start_time_seconds", "")] + stats[
            "uptime"] - time.time()), 5)

        # The loop-lag timer runs every second.
        time.sleep(1.5)
        m = self.scrape()
        self.assertGreaterEqual(m[("tern_loop_lag_seconds_count", "")], 1)
        self.assertIn(("tern_loop_lag_last_seconds", ""), m)

        # On hold: one deferred message less, one held more.
        out = subprocess.run([TERNCTL, "-c", t.conf, "hold", r1],
                             capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        m = self.scrape()
        self.assertEqual(m[("tern_queue_messages", '{state="deferred"}')],
                         1)
        self.assertEqual(m[("tern_queue_messages", '{state="hold"}')], 1)

        # A reload keeps every counter.
        for conn in held:
            conn.close()
        t.reload()
        after = self.scrape()
        for key in (("tern_messages_received_total", ""),
                    ("tern_deliveries_total",
                     '{status="deferred",destination="gateway"}'),
                    ("tern_messages_rejected_total",
                     '{reason="relay_denied"}'),
                    ("tern_sessions_refused_total",
                     '{reason="client_limit"}')):
            self.assertEqual(after[key], m[key], key)
        self.assertIn(r2, t.queued())

    def test_http(self):
        self.start()
        port = self.mport
        self.assertTrue(http(port, b"GET /other HTTP/1.1\r\n\r\n")
                        .startswith(b"HTTP/1.1 404 Not Found\r\n"))
        self.assertTrue(http(port, b"GET /metricsx HTTP/1.0\r\n\r\n")
                        .startswith(b"HTTP/1.1 404 "))
        self.assertTrue(http(port, b"POST /metrics HTTP/1.1\r\n\r\n")
                        .startswith(b"HTTP/1.1 405 "))
        self.assertTrue(http(port, b"GET /metrics\r\n\r\n")
                        .startswith(b"HTTP/1.1 400 "))
        self.assertTrue(http(port, b"GET /metrics HTTP/2\r\n\r\n")
                        .startswith(b"HTTP/1.1 400 "))
        ok = http(port, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n")
        self.assertTrue(ok.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertIn(b"\ntern_messages_received_total 0\n", ok)
        head = http(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertTrue(head.endswith(b"\r\n\r\n"), head[-200:])
        big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + \
            b"\r\n\r\n"
        self.assertTrue(http(port, big).startswith(b"HTTP/1.1 431 "))
        # A client that never sends is no obstacle to the next one.
        quiet = [socket.create_connection(("127.0.0.1", port), timeout=5)
                 for _ in range(3)]
        self.assertTrue(http(port, b"GET /metrics HTTP/1.1\r\n\r\n")
                        .startswith(b"HTTP/1.1 200 "))
        for s in quiet:
            s.close()
        # curl, as a scraper would ask.
        p = subprocess.run(["curl", "-sf", "--max-time", "10",
                            "http://127.0.0.1:%d/metrics" % port],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"# TYPE tern_deliveries_total counter\n", p.stdout)

    def test_off_by_default(self):
        port = free_port()
        t = self.tern()
        self.assertNotIn("metrics on", t.log())
        self.assertRaises(OSError, socket.create_connection,
                          ("127.0.0.1", port), 2)
        # Turned on by a reload, on loopback for a bare port.
        t.write_config(main={"metrics_listen": str(port)})
        t.reload()
        t.wait_log(r"metrics on 127\.0\.0\.1:%d" % port)
        self.assertTrue(http(port, b"GET /metrics HTTP/1.0\r\n\r\n")
                        .startswith(b"HTTP/1.1 200 "))


if __name__ == "__main__":
    ternlib.main()
