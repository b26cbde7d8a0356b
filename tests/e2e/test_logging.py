"""
test_logging.py: the log targets.  log = file writes the day's
sysMMDD.txt in the spool's log folder in the classic syslog layout;
log = remote sends RFC 5424 datagrams to log_server (a UDP receiver on
loopback here); a target that fails never stops mail; debug = yes adds
the protocol traces whatever the target; and pflogsumm counts what a
real run received, delivered, deferred and bounced.
"""

import calendar
import glob
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, wait_for  # noqa: E402
from nexthop import NextHop  # noqa: E402

PFLOGSUMM = os.environ.get("PFLOGSUMM", "/usr/sbin/pflogsumm")
GW = "127.0.0.5"
SENDER = "sender@origin.test"
MSG = b"Subject: logging test\r\n\r\nHello.\r\n"
WAIT = 10.0

# "Nov 29 03:14:22 host ternd/qmgr[123]: text"
CLASSIC_RE = (r"^[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] "
              r"%s (ternd(?:/[a-z]+)?)\[%d\]: (.*)$")
# "<22>1 2026-11-29T03:14:22.123456Z host ternd/qmgr 123 - - text"
RFC5424_RE = re.compile(
    r"^<([0-9]{1,3})>1 "
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})) "
    r"(\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (-|\[.*?\]) ?(.*)$",
    re.S)
TRACE_RE = r"smtp \[127\.0\.0\.1\]: (?:<<<|>>>) "
LOG_MAIL = 2		# syslog facility mail
LOG_INFO = 6


def day_file(spool, when=None):
    """The daily file ternd writes now (local time)."""
    return os.path.join(spool, "log",
                        time.strftime("sys%m%d.txt", time.localtime(when)))


def file_log(spool):
    """Everything in the spool's daily files, oldest first (a test that
    runs across midnight sees two)."""
    text = ""
    for path in sorted(glob.glob(os.path.join(spool, "log",
                                              "sys[0-9]*.txt"))):
        with open(path, "rb") as f:
            text += f.read().decode("utf-8", "surrogateescape")
    return text


def wait_file_line(spool, regex, timeout=WAIT):
    rx = re.compile(regex, re.M)
    return wait_for(lambda: rx.search(file_log(spool)), timeout,
                    "file log line /%s/" % regex)


class UDPReceiver:
    """A syslog collector on loopback: keeps every datagram."""

    def __init__(self, family=socket.AF_INET, addr="127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.got = []

    def drain(self):
        while True:
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, BlockingIOError):
                return
            self.got.append(data.decode("utf-8", "surrogateescape"))

    def wait(self, regex, timeout=WAIT):
        """The first parsed message whose text matches regex."""
        rx = re.compile(regex)

        def look():
            self.drain()
            for d in self.got:
                m = RFC5424_RE.match(d)
                if m and rx.search(m.group(8)):
                    return m
            return None
        return wait_for(look, timeout, "datagram /%s/" % regex)

    def close(self):
        self.sock.close()


def closed_udp_port():
    """A loopback UDP port nothing listens on (bound, then released)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FileTarget(TernTestCase):

    def test_daily_file(self):
        t = self.tern(main={"log": "file", "debug": "no"})
        pid = t.proc.pid
        qid = t.send_message(SENDER, ["user@local.test"], MSG)
        classic = CLASSIC_RE % (re.escape(HOSTNAME), pid)
        m = wait_file_line(t.spool, classic.replace(
            "(.*)$", r"(%s: from=<%s>, size=[0-9]+, nrcpt=1 "
            r"\(queue active\))$" % (qid, re.escape(SENDER))))
        self.assertEqual(m.group(1), "ternd/qmgr")
        m = wait_file_line(t.spool, classic.replace(
            "(.*)$", r"(%s: client=\[127\.0\.0\.1\], helo=.*)$" % qid))
        self.assertEqual(m.group(1), "ternd/smtpd")
        wait_file_line(t.spool, classic.replace("(.*)$", "(ready)$"))
        # The file is named for today, in the spool's log folder.
        self.assertTrue(os.path.exists(day_file(t.spool)) or
                        os.path.exists(day_file(t.spool, time.time() - 60)),
                        os.listdir(t.path("log")))
        # Every line has the layout; none goes to stderr.
        for line in file_log(t.spool).splitlines():
            self.assertRegex(line, classic)
        self.assertNotIn("from=<", t.log())
        self.assertIsNone(re.search(TRACE_RE, file_log(t.spool)),
                          "debug = no, yet protocol traces")

    def test_missing_folder_drops_then_reports(self):
        # spool/log is a link to a folder that is not there yet: the lines
        # are dropped, mail goes on, and once the folder exists the count
        # of dropped lines is written.
        t = self.tern(main={"log": "file", "debug": "no"}, start=False)
        target = os.path.join(t.dir, "later")
        os.symlink(target, t.path("log"))
        t.start()
        qid = t.send_message(SENDER, ["user@local.test"], MSG)
        self.assertIn(qid, t.queued())
        self.assertTrue(t.is_running())
        os.mkdir(target)
        if os.geteuid() == 0:
            import pwd
            os.chown(target, pwd.getpwnam("nobody").pw_uid, -1)
        qid2 = t.send_message(SENDER, ["user@local.test"], MSG)
        m = wait_file_line(t.spool, r"ternd\[%d\]: log target failed: "
                           r"([0-9]+) lines dropped$" % t.proc.pid)
        self.assertGreaterEqual(int(m.group(1)), 2)
        text = file_log(t.spool)
        self.assertNotIn(qid, text)
        wait_file_line(t.spool, r": %s: from=<" % qid2)
        self.assertLess(text.index("lines dropped"),
                        text.index("%s: client=" % qid2))


class RemoteTarget(TernTestCase):

    def receiver(self, **kw):
        r = UDPReceiver(**kw)
        self.addCleanup(r.close)
        return r

    def check_remote(self, r, server):
        t = self.tern(main={"log": "remote", "log_server": server,
                            "debug": "no"})
        pid = t.proc.pid
        m = r.wait(r"^ready$")
        qid = t.send_message(SENDER, ["user@local.test"], MSG)
        m = r.wait(r"^%s: from=<%s>, size=[0-9]+, nrcpt=1 "
                   r"\(queue active\)$" % (qid, re.escape(SENDER)))
        pri = int(m.group(1))
        self.assertEqual(pri >> 3, LOG_MAIL, "facility is not mail")
        self.assertEqual(pri & 7, LOG_INFO)
        self.assertEqual(m.group(3), HOSTNAME)
        self.assertEqual(m.group(4), "ternd/qmgr")
        self.assertEqual(m.group(5), str(pid))
        self.assertEqual(m.group(6), "-")
        self.assertEqual(m.group(7), "-")
        stamp = m.group(2)
        self.assertTrue(stamp.endswith("Z"), stamp)
        t0 = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        self.assertLess(abs(t0 - time.time()), 120, stamp)
        m = r.wait(r"^%s: client=\[127\.0\.0\.1\]" % qid)
        self.assertEqual(m.group(4), "ternd/smtpd")
        # Every datagram is a whole RFC 5424 message from this ternd.
        r.drain()
        for d in r.got:
            m = RFC5424_RE.match(d)
            self.assertIsNotNone(m, d)
            self.assertRegex(m.group(4), r"^ternd(/[a-z]+)?$")
            self.assertEqual(m.group(5), str(pid))
            self.assertNotRegex(m.group(8), TRACE_RE)
        self.assertNotIn("from=<", t.log())

    def test_ipv4(self):
        r = self.receiver()
        self.check_remote(r, "127.0.0.1:%d" % r.port)

    def test_ipv6(self):
        try:
            r = self.receiver(family=socket.AF_INET6, addr="::1")
        except OSError:
            self.skipTest("no IPv6 loopback")
        self.check_remote(r, "[::1]:%d" % r.port)

    def test_needs_server(self):
        t = self.tern(main={"log": "remote"}, start=False)
        rc, _, err = ternlib.run_ternd(["-n", "-c", t.conf])
        self.assertNotEqual(rc, 0)
        with open(t.conf) as f:
            lines = [n for n, line in enumerate(f, 1)
                     if line.startswith("log =")]
        self.assertIn("%s:%d: [main] log: " % (t.conf, lines[0]), err)
        self.assertIn("log_server", err)

    def test_closed_port_does_not_stop_mail(self):
        port = closed_udp_port()
        t = self.tern(main={"log": "remote",
                            "log_server": "127.0.0.1:%d" % port})
        qids = [t.send_message(SENDER, ["user@local.test"], MSG)
                for _ in range(3)]
        wait_for(lambda: set(qids) <= set(t.queued()), WAIT,
                 "the messages to be queued")
        self.assertTrue(t.is_running())


class Debug(TernTestCase):
    """debug = yes adds the SMTP traces on every target but syslog (not
    readable from a test)."""

    def test_stderr(self):
        t = self.tern(main={"log": "stderr", "debug": "yes"})
        t.send_message(SENDER, ["user@local.test"], MSG)
        t.wait_log(TRACE_RE + "EHLO")

    def test_file(self):
        t = self.tern(main={"log": "file", "debug": "yes"})
        t.send_message(SENDER, ["user@local.test"], MSG)
        wait_file_line(t.spool, TRACE_RE + "EHLO")
        self.assertIsNone(re.search(TRACE_RE, t.log()))

    def test_remote(self):
        r = UDPReceiver()
        self.addCleanup(r.close)
        t = self.tern(main={"log": "remote", "debug": "yes",
                            "log_server": "127.0.0.1:%d" % r.port})
        t.send_message(SENDER, ["user@local.test"], MSG)
        m = r.wait(TRACE_RE + "EHLO")
        self.assertEqual(int(m.group(1)) & 7, 7, "not at debug severity")


class Pflogsumm(TernTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(PFLOGSUMM, os.X_OK):
            self.fail("%s not found: install the pflogsumm package"
                      % PFLOGSUMM)

    def test_counts(self):
        hop = NextHop(GW, rcpt={"bad@remote.test": "550 5.1.1 no such user",
                                "later@remote.test": "451 4.3.0 try later",
                                "*": "250"})
        self.addCleanup(hop.stop)
        t = self.tern(main={"log": "file", "debug": "yes"},
                      sections={"delivery": {
                          "gateway": "%s:%d" % (GW, hop.port),
                          "gateway_all": "yes", "starttls": "no",
                          "queue_interval": "1h"}})
        sent = [
            t.send_message(SENDER, ["one@remote.test"], MSG),
            t.send_message(SENDER, ["two@remote.test", "bad@remote.test"],
                           MSG),
            t.send_message(SENDER, ["later@remote.test"], MSG),
            t.send_message(SENDER, ["three@remote.test",
                                    "four@remote.test"], MSG),
        ]
        # Until each delivery result is in the log: the original
        # messages and the notification for bad@ back to the sender.
        for rcpt, status in (("one@remote.test", "sent"),
                             ("two@remote.test", "sent"),
                             ("bad@remote.test", "bounced"),
                             ("later@remote.test", "deferred"),
                             ("three@remote.test", "sent"),
                             ("four@remote.test", "sent"),
                             (SENDER, "sent")):
            wait_file_line(t.spool, r": [0-9A-Z]+: to=<%s>, relay=[^,]+, "
                           r"delay=[0-9.]+, dsn=[0-9.]+, status=%s \("
                           % (re.escape(rcpt), status))
        # What the next hop saw is what happened (it records a message
        # just after its 250, which tern may log first).
        deadline = time.monotonic() + 5
        while True:
            delivered = sum(len(m.rcpts) for m in hop.messages()
                            if m.reply.startswith("250"))
            if delivered >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        rcpts = hop.rcpt_commands()
        bounced = len([r for r in rcpts if r[2].startswith("5")])
        deferred = len([r for r in rcpts if r[2].startswith("4")])
        self.assertEqual((delivered, bounced, deferred), (5, 1, 1),
                         hop.summary())

        log = os.path.join(t.dir, "all.log")
        with open(log, "w") as f:
            f.write(file_log(t.spool))
        p = subprocess.run([PFLOGSUMM, "--syslog-name=ternd", log],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())

        def total(what):
            m = re.search(r"^\s*([0-9]+)[km]?\s+%s\b" % what, out, re.M)
            self.assertIsNotNone(m, "no %r in:\n%s" % (what, out))
            return int(m.group(1))
        self.assertEqual(total("received"), len(sent), out)
        self.assertEqual(total("delivered"), delivered, out)
        self.assertEqual(total("deferred"), deferred, out)
        self.assertEqual(total("bounced"), bounced, out)
        self.assertEqual(total("rejected"), 0, out)
        self.assertEqual(total("senders"), 1, out)


if __name__ == "__main__":
    ternlib.main()
