"""
test_deadlines.py: ternd's timeouts are deadlines, not gaps between
octets.  Clients that dribble one octet at a time into a command line,
into DATA, into a TLS handshake, or that sit inside an AUTH exchange, are
cut off at the deadline while they are still sending; a client that sends
its message fast enough keeps going past data_timeout (data_min_rate).
Every dribble is bounded in time; the timeouts are small and configured
here, and every wait is far longer than the deadline it checks.
"""

import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, queued_id  # noqa: E402

TIMEOUT = "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
GO_AHEAD = "354 End data with <CR><LF>.<CR><LF>"
DRIBBLE_FOR = 25.0	# seconds a dribbler keeps going at most
STEP = 0.25		# seconds between its octets


def dribble(conn, data, step=STEP, limit=DRIBBLE_FOR):
    """Send data one octet per step until the server answers or closes;
    return what it said (b"" for a bare close), or None when the whole of
    data or the time limit ran out first."""
    end = time.monotonic() + limit
    i = 0
    while time.monotonic() < end:
        try:
            conn.sock.send(data[i % len(data):i % len(data) + 1])
        except OSError:
            return b""
        i += 1
        conn.sock.settimeout(step)
        try:
            got = conn.sock.recv(4096)
            return got
        except socket.timeout:
            continue
        except ConnectionResetError:
            return b""
    return None


class Deadlines(TernTestCase):

    def test_dribbled_command_line_is_cut(self):
        # One octet every STEP keeps no gap longer than command_timeout,
        # yet the line must end within it from its first octet.
        t = self.tern(smtp={"command_timeout": "2s"})
        c = t.session()
        start = time.monotonic()
        got = dribble(c, b"NOOP " + b"x" * 400)
        self.assertIsNotNone(got, "a dribbled line held the session for "
                             "%.0f s" % DRIBBLE_FOR)
        self.assertEqual(got.decode().rstrip("\r\n"), TIMEOUT)
        c.expect_eof()
        self.assertGreater(time.monotonic() - start, 1.5)
        t.wait_log(r"timeout after command from \[127\.0\.0\.1\]")

    def test_dribbled_overlong_line_is_cut(self):
        # A line past the length limit is dropped as it comes, but its
        # deadline still runs from its first octet.
        t = self.tern(smtp={"command_timeout": "2s"})
        c = t.session()
        c.send(b"NOOP " + b"y" * 2000)
        got = dribble(c, b"z")
        self.assertIsNotNone(got)
        self.assertEqual(got.decode().rstrip("\r\n"), TIMEOUT)
        c.expect_eof()

    def test_whole_lines_in_time_are_served(self):
        # Each line sent whole within command_timeout of the reply before
        # it: the session goes on past command_timeout in total.
        t = self.tern(smtp={"command_timeout": "2s"})
        c = t.session()
        start = time.monotonic()
        while time.monotonic() - start < 4:
            time.sleep(0.5)
            self.assertReply(c.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertReply(c.cmd("QUIT"), "221 2.0.0 Bye")

    def test_dribbled_data_is_cut(self):
        # 4 octets a second against a data_min_rate of 1000: the deadline
        # is data_timeout plus almost nothing.
        t = self.tern(smtp={"command_timeout": "30s", "data_timeout": "2s",
                            "data_min_rate": "1000"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        got = dribble(c, b"Subject: slow\r\n\r\nslow body line\r\n")
        self.assertIsNotNone(got, "a dribbled DATA held the session for "
                             "%.0f s" % DRIBBLE_FOR)
        self.assertEqual(got.decode().rstrip("\r\n"), TIMEOUT)
        c.expect_eof()
        self.assertEqual(t.queued(), [])
        t.wait_log(r"timeout after data from \[127\.0\.0\.1\]")

    def test_data_at_the_minimum_rate_goes_past_data_timeout(self):
        # 8 KiB every 0.25 s is far above data_min_rate: each octet earns
        # time, so the message may take longer than data_timeout.
        t = self.tern(smtp={"command_timeout": "30s", "data_timeout": "1s",
                            "data_min_rate": "1000"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"Subject: steady\r\n\r\n")
        start = time.monotonic()
        chunk = (b"z" * 78 + b"\r\n") * 100
        while time.monotonic() - start < 3:
            c.send(chunk)
            time.sleep(0.25)
        c.send(b".\r\n")
        queued_id(c.reply(timeout=10))
        self.assertEqual(len(t.queued()), 1)

    def test_data_gap_is_still_bounded(self):
        # Credit earned early does not allow a silence longer than
        # data_timeout.
        t = self.tern(smtp={"command_timeout": "30s", "data_timeout": "2s",
                            "data_min_rate": "1"})
        c = t.session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.org>"), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<b@local.test>"), RCPT_OK)
        self.assertReply(c.cmd("DATA"), GO_AHEAD)
        c.send(b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n")
        self.assertReply(c.reply(timeout=15), TIMEOUT)
        c.expect_eof()

    def test_auth_exchange_has_its_own_deadline(self):
        # command_timeout is long; the exchange must end within
        # auth_timeout of the AUTH command.
        t = mailtest.mail_tern(self, users=[
            ("alice@local.test", mailtest.crypt_hash("Alice-pass-7"))],
            smtp={"auth_plaintext": "yes", "command_timeout": "60s",
                  "auth_timeout": "2s"})
        c = t.session()
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        start = time.monotonic()
        self.assertEqual(c.cmd(mailtest.b64("alice@local.test")).code, 334)
        got = dribble(c, b"QWxpY2UtcGFzcy03")
        self.assertIsNotNone(got)
        self.assertEqual(got.decode().rstrip("\r\n"), TIMEOUT)
        c.expect_eof()
        self.assertLess(time.monotonic() - start, 30)
        t.wait_log(r"timeout after auth from \[127\.0\.0\.1\]")

    def test_dribbled_tls_handshake_is_cut(self):
        # A TLS record header that promises 512 octets, then one octet
        # at a time: the handshake is closed at tls_timeout.
        t = mailtest.mail_tern(self, tls=True, smtp={
            "command_timeout": "60s", "tls_timeout": "2s"})
        c = t.session()
        self.assertEqual(c.cmd("STARTTLS").code, 220)
        c.send(b"\x16\x03\x01\x02\x00")
        got = dribble(c, b"\x01")
        self.assertEqual(got, b"", "a dribbled handshake was not closed "
                         "within %.0f s" % DRIBBLE_FOR)
        t.wait_log(r"disconnect from \[127\.0\.0\.1\] .*\(timeout during "
                   r"the TLS handshake\)")


if __name__ == "__main__":
    ternlib.main()
