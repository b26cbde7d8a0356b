"""
test_milter_real.py: tern with the real filters administrators run
behind Postfix, started by the tests on loopback (tests/e2e/rspamd.py,
tests/e2e/opendkim.py):

- rspamd's milter proxy as an smtpd_milters filter: the GTUBE message is
  refused with rspamd's reply; an ordinary one is relayed with the
  headers rspamd adds (its X-Rspamd-Queue-Id is tern's queue id); rspamd
  stopped gives the default action, 451 4.7.1 by default and the message
  accepted without rspamd's headers with default_action = accept.
- rspamd as a non_smtpd_milters filter: a GTUBE message submitted through
  sendmail is never queued, its sender gets a non-delivery report with
  rspamd's reply; with rspamd stopped, the file stays in maildrop/.
- OpenDKIM: mail relayed by tern from SMTP after AUTH and from the
  sendmail entry reaches the next hop with a DKIM-Signature that
  python3-dkim verifies against the test key, below tern's own Received
  header.

Each class skips, naming the Debian package, when its filter is not
installed.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
import opendkim  # noqa: E402
import rspamd  # noqa: E402
from nexthop import NextHop, common_port  # noqa: E402
from ternlib import HOSTNAME, QID_RE, TernTestCase  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl")

GW = "127.0.0.6"
DELIVER_TIMEOUT = 30.0
RUN_TIMEOUT = 15.0
# A filter's verdict may take a while on a busy machine.
SLOW = 30.0

SIGN_DOMAIN = "sign.test"
ALICE = "alice@sign.test"
ALICE_PW = "alice-secret"
FAR = "bob@far.test"

ORDINARY = ("From: Alice <alice@sign.test>\r\n"
            "To: Bob <bob@far.test>\r\n"
            "Subject: an ordinary message\r\n"
            "Date: Mon, 7 Dec 2026 04:00:00 +0000\r\n"
            "Message-ID: <ordinary-%s@sign.test>\r\n"
            "\r\n"
            "Hello Bob,\r\n"
            "\r\n"
            "the minutes of Monday's meeting are below.  Nothing urgent.\r\n"
            "\r\n"
            "Alice\r\n")

GTUBE_MSG = ("From: Alice <alice@sign.test>\r\n"
             "To: Bob <bob@far.test>\r\n"
             "Subject: test of the spam filter\r\n"
             "Date: Mon, 7 Dec 2026 04:00:00 +0000\r\n"
             "Message-ID: <gtube@sign.test>\r\n"
             "\r\n"
             "This is the GTUBE, the\r\n"
             "  Generic\r\n"
             "  Test for\r\n"
             "  Unsolicited\r\n"
             "  Bulk\r\n"
             "  Email\r\n"
             "\r\n"
             + rspamd.GTUBE + "\r\n")


def headers(data):
    """The header fields of a message (bytes) as (name, value) pairs, in
    order, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    out = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            out.append((name, value.strip()))
    return out


def header(data, name):
    return [v for n, v in headers(data) if n.lower() == name.lower()]


def transaction(conn, sender, rcpts, content):
    """MAIL, RCPT, DATA and the message; the first reply that is not a
    success (the refusal), or the final reply after the data."""
    r = conn.cmd("MAIL FROM:<%s>" % sender, timeout=SLOW)
    if r.code != 250:
        return r
    for rcpt in rcpts:
        r = conn.cmd("RCPT TO:<%s>" % rcpt, timeout=SLOW)
        if r.code != 250:
            return r
    r = conn.cmd("DATA", timeout=SLOW)
    if r.code != 354:
        return r
    conn.send(ternlib.dot_stuff(content.encode()))
    return conn.reply(timeout=SLOW)


def session(t):
    """An SMTP session to t whose greeting and EHLO may be the ones a
    filter refuses: returns (conn, None) or (conn, refusal)."""
    c = ternlib.Conn(t.port, timeout=SLOW)
    t.conns.append(c)
    if c.greeting.code != 220:
        return c, c.greeting
    r = c.cmd("EHLO " + ternlib.HELO, timeout=SLOW)
    if r.code != 250:
        return c, r
    return c, None


def send(t, sender, rcpts, content):
    """One message over SMTP; the reply that ended it."""
    c, refused = session(t)
    if refused is not None:
        return refused
    try:
        r = transaction(c, sender, rcpts, content)
        try:
            c.cmd("QUIT")
        except AssertionError:
            pass
    finally:
        c.close()
    return r


class GatewayCase(TernTestCase):
    """A NextHop gateway every message of the ternd goes to."""

    def setUp(self):
        super().setUp()
        self.port = common_port([GW])
        self.gw = NextHop(GW, port=self.port)
        self.addCleanup(self.gw.stop)

    def delivery(self):
        return {"gateway": "%s:%d" % (GW, self.port), "gateway_all": "yes",
                "queue_interval": "1s", "connect_timeout": "5s",
                "reply_timeout": "10s"}

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "gw", None) is not None:
            out.append(self.gw.summary())
        for f in ("filter", "spare"):
            x = getattr(self, f, None)
            if x is not None:
                out.append("--- %s log ---\n%s" % (type(x).__name__,
                                                     x.log()[-4000:]))
        return "\n".join(out)

    def relay_tern(self, milter):
        """A ternd relaying for 127.0.0.0/8 to the gateway."""
        return self.tern(sections={"delivery": self.delivery(),
                                   "milter": milter})

    # --- local submission ------------------------------------------------

    def sendmail(self, t, args, data):
        """ternctl as sendmail, with t's configuration; CompletedProcess."""
        if not os.access(TERNCTL, os.X_OK):
            self.fail("no ternctl at %s (TERN_BUILDDIR)" % TERNCTL)
        tmp = tempfile.mkdtemp(prefix="tern-e2e-mr-")
        os.chmod(tmp, 0o755)
        self.addCleanup(shutil.rmtree, tmp, True)
        link = os.path.join(tmp, "sendmail")
        os.symlink(TERNCTL, link)
        env = dict(os.environ)
        env["TERN_CONFIG"] = t.conf
        try:
            p = subprocess.run([link] + list(args), input=data.encode(),
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=tmp,
                               timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("sendmail did not exit within %.0fs"
                                 % RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, "sendmail failed: %r" % p.stderr)
        return p

    def maildrop(self, t):
        return sorted(n for n in os.listdir(t.path("maildrop"))
                      if not n.startswith("."))


# ---------------------------------------------------------------- rspamd


_rspamd = None


def shared_rspamd():
    """One rspamd for the module's tests that leave it running (it takes
    a while to start); stopped by tearDownModule."""
    global _rspamd
    if _rspamd is None:
        _rspamd = rspamd.Rspamd().start()
    return _rspamd


def tearDownModule():
    if _rspamd is not None:
        _rspamd.stop()


class RspamdCase(GatewayCase):

    @classmethod
    def setUpClass(cls):
        why = rspamd.skip_reason()
        if why:
            raise unittest.SkipTest(why)
        cls.rspamd = shared_rspamd()

    def setUp(self):
        super().setUp()
        self.filter = self.rspamd


class RspamdSmtp(RspamdCase):

    def test_gtube_refused_with_rspamds_reply(self):
        t = self.relay_tern({"smtpd_milters": self.rspamd.socket})
        r = send(t, "alice@sign.test", [FAR], GTUBE_MSG)
        # rspamd's own reply to the test pattern, as Postfix passes it.
        self.assertRegex(r.line, r"^554 5\.7\.1 Gtube pattern$")
        t.wait_log(r"milter-reject: END-OF-MESSAGE from "
                   r"\S*\[127\.0\.0\.1\]: 5\.7\.1 Gtube pattern")
        self.assertEqual(t.queue_files(), [])
        # An ordinary message after it still goes through.
        r = send(t, "alice@sign.test", [FAR], ORDINARY % "after-gtube")
        ternlib.queued_id(r)
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertNotIn(rspamd.GTUBE.encode(), m.data)

    def test_ordinary_message_carries_rspamds_headers(self):
        t = self.relay_tern({"smtpd_milters": self.rspamd.socket})
        r = send(t, "alice@sign.test", [FAR], ORDINARY % "plain")
        qid = ternlib.queued_id(r)
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(m.rcpts, [FAR])
        status = header(m.data, "X-Spam-Status")
        self.assertEqual(len(status), 1, m.data)
        self.assertRegex(status[0], r"^No, score=-?\d+\.\d+")
        self.assertEqual(len(header(m.data, "X-Rspamd-Server")), 1)
        # rspamd took the queue id from tern's "i" macro.
        self.assertEqual(header(m.data, "X-Rspamd-Queue-Id"), [qid])
        self.assertRegex(header(m.data, "X-Spamd-Result")[0],
                         r"^default: False \[")
        # Our Received header stays first; the body is untouched.
        self.assertEqual(headers(m.data)[0][0], "Received")
        self.assertTrue(m.data.endswith(b"\r\n\r\nHello Bob,\r\n\r\nthe "
                                        b"minutes of Monday's meeting "
                                        b"are below.  Nothing urgent."
                                        b"\r\n\r\nAlice\r\n"), m.data)


class RspamdStopped(GatewayCase):
    """An rspamd of the test's own, stopped while ternd still names it."""

    def setUp(self):
        super().setUp()
        why = rspamd.skip_reason()
        if why:
            self.skipTest(why)
        # rspamd starts slowly on a busy machine: not under the alarm.
        signal.alarm(0)
        self.filter = rspamd.Rspamd().start()
        self.addCleanup(self.filter.stop)
        signal.alarm(ternlib.TEST_TIMEOUT)

    def test_default_action(self):
        t = self.relay_tern({"smtpd_milters": self.filter.socket})
        ternlib.queued_id(send(t, "alice@sign.test", [FAR],
                               ORDINARY % "running"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(len(header(m.data, "X-Spam-Status")), 1)

        self.filter.halt()
        r = send(t, "alice@sign.test", [FAR], ORDINARY % "stopped")
        # milter_default_action = tempfail, as Postfix.
        self.assertEqual(r.line,
                         "451 4.7.1 Service unavailable - try again later")
        self.assertEqual(t.queue_files(), [])

        t.write_config(sections={"milter": {"default_action": "accept"}})
        t.reload()
        r = send(t, "alice@sign.test", [FAR], ORDINARY % "accepted")
        ternlib.queued_id(r)
        m = self.gw.wait_messages(2, DELIVER_TIMEOUT)[1]
        self.assertIn(b"ordinary-accepted@", m.data)
        self.assertEqual(header(m.data, "X-Spam-Status"), [])
        self.assertEqual(header(m.data, "X-Rspamd-Server"), [])


class RspamdLocal(RspamdCase):
    """rspamd as a filter of local submissions (non_smtpd_milters)."""

    def test_gtube_from_sendmail_returned_to_sender(self):
        t = self.relay_tern({"non_smtpd_milters": self.rspamd.socket})
        self.sendmail(t, ["-f", "alice@sign.test", FAR],
                      GTUBE_MSG.replace("\r\n", "\n"))
        # Never queued: the sender gets a report with rspamd's reply.
        t.wait_log(r"ternd/pickup\[\d+\]: (%s): milter-reject: "
                   r"END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: "
                   r"5\.7\.1 Gtube pattern; from=<alice@sign\.test> "
                   r"to=<bob@far\.test> proto=local" % QID_RE,
                   timeout=SLOW)
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(m.mail_from, "")
        self.assertEqual(m.rcpts, ["alice@sign.test"])
        self.assertIn(b"Content-Type: multipart/report", m.data)
        self.assertIn(b"Status: 5.7.1", m.data)
        self.assertIn(b"554 5.7.1 Gtube pattern", m.data)
        self.assertIn(b"Final-Recipient: rfc822; bob@far.test", m.data)
        # Nothing else left: the refused message never reached the
        # queue, and its file is gone from maildrop/.
        ternlib.wait_for(lambda: self.maildrop(t) == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")
        ternlib.wait_for(lambda: t.queue_files() == [], DELIVER_TIMEOUT,
                         "the queue to be empty")
        self.assertEqual(len(self.gw.messages()), 1)

    def test_ordinary_from_sendmail_filtered(self):
        t = self.relay_tern({"non_smtpd_milters": self.rspamd.socket})
        self.sendmail(t, ["-f", "alice@sign.test", FAR],
                      (ORDINARY % "local").replace("\r\n", "\n"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(m.mail_from, "alice@sign.test")
        qid = re.search(r"\tid (%s)" % QID_RE,
                        m.data.decode()).group(1)
        self.assertEqual(header(m.data, "X-Rspamd-Queue-Id"), [qid])
        self.assertRegex(header(m.data, "X-Spam-Status")[0], r"^No, ")
        self.assertEqual(headers(m.data)[0][0], "Received")


class RspamdLocalStopped(GatewayCase):
    """A local submission while the filter is down stays in maildrop/."""

    def test_tempfail_leaves_file(self):
        # Nothing listens there: the filter is down.
        port = ternlib.free_port()
        t = self.relay_tern({"non_smtpd_milters":
                             "inet:127.0.0.1:%d" % port})
        self.sendmail(t, ["-f", "alice@sign.test", FAR],
                      (ORDINARY % "later").replace("\r\n", "\n"))
        t.wait_log(r"ternd/pickup\[\d+\]: %s: milter-reject: CONNECT from "
                   r"localhost\[127\.0\.0\.1\]: 4\.7\.1 .*; "
                   r"from=<alice@sign\.test> to=<bob@far\.test> "
                   r"proto=local uid=\d+: left in maildrop, tried again "
                   r"later" % QID_RE, timeout=SLOW)
        self.assertEqual(len(self.maildrop(t)), 1)
        self.assertEqual(t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])
        # With the filter left out, the next start takes it at once.
        t.stop()
        t.write_config(sections={"milter": {"non_smtpd_milters": None}})
        t.start()
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertIn(b"ordinary-later@", m.data)
        ternlib.wait_for(lambda: self.maildrop(t) == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")


# -------------------------------------------------------------- OpenDKIM


class DkimCase(GatewayCase):

    @classmethod
    def setUpClass(cls):
        why = opendkim.skip_reason()
        if why:
            raise unittest.SkipTest(why)
        cls.dkim = opendkim.OpenDKIM(SIGN_DOMAIN).start()

    @classmethod
    def tearDownClass(cls):
        cls.dkim.stop()

    def setUp(self):
        super().setUp()
        self.filter = self.dkim

    def assert_signed(self, data):
        """A DKIM-Signature of the test domain that verifies, below our
        own Received header (added after the filter signed)."""
        sigs = header(data, "DKIM-Signature")
        self.assertEqual(len(sigs), 1, data)
        self.assertIn("d=%s" % SIGN_DOMAIN, sigs[0])
        self.assertIn("s=%s" % opendkim.SELECTOR, sigs[0])
        names = [n for n, _ in headers(data)]
        self.assertEqual(names[0], "Received")
        self.assertLess(0, names.index("DKIM-Signature"))
        self.assertTrue(self.dkim.verify(data), "the signature does not "
                        "verify:\n%s" % data.decode("utf-8", "replace"))
        # And a changed body no longer does: the check can fail.
        self.assertFalse(self.dkim.verify(data.replace(b"Nothing urgent",
                                                       b"Very urgent")))


class DkimSigning(DkimCase):

    def test_smtp_auth_relayed_signed(self):
        t = mailtest.mail_tern(
            self, users=[(ALICE, mailtest.crypt_hash(ALICE_PW))],
            smtp={"local_domains": "tern.test " + SIGN_DOMAIN,
                  "relay_networks": "192.0.2.0/24",
                  "auth_plaintext": "yes", "auth_failure_delay": "0"},
            delivery=self.delivery(), start=False)
        t.write_config(sections={"milter": {"smtpd_milters":
                                            self.dkim.socket}})
        t.start()
        c, refused = session(t)
        self.assertIsNone(refused)
        self.assertRegex(mailtest.auth_plain(c, ALICE, ALICE_PW).line,
                         mailtest.AUTH_OK_RE)
        r = transaction(c, ALICE, [FAR], ORDINARY % "auth")
        qid = ternlib.queued_id(r)
        c.cmd("QUIT")
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertIn(qid.encode(), m.data.split(b"\r\n\r\n")[0])
        self.assert_signed(m.data)

    def test_sendmail_relayed_signed(self):
        t = self.relay_tern({"non_smtpd_milters": self.dkim.socket})
        self.sendmail(t, ["-f", ALICE, FAR],
                      (ORDINARY % "sendmail").replace("\r\n", "\n"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertRegex(m.data, rb"^Received: by " +
                         re.escape(HOSTNAME.encode()) +
                         rb" \(tern, from userid ")
        self.assert_signed(m.data)

    def test_sendmail_unsigned_without_filter(self):
        """The premise: without the filter nothing signs."""
        t = self.relay_tern({"smtpd_milters": self.dkim.socket})
        self.sendmail(t, ["-f", ALICE, FAR],
                      (ORDINARY % "unsigned").replace("\r\n", "\n"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(header(m.data, "DKIM-Signature"), [])


if __name__ == "__main__":
    ternlib.main()
