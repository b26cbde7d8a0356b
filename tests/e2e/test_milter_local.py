"""
test_milter_local.py: local submissions (ternctl as sendmail, through
maildrop/) passing through non_smtpd_milters, with the scripted
python3-milter filter of milterfilter.py: what the filter is told
(client localhost [127.0.0.1], HELO localhost, the envelope, the message
without our Received header, the macros), and what each verdict does to
a message whose submitter has gone: rejected at RCPT or at the end of the
message, returned to the sender in a report and never queued; tempfail,
left in maildrop/; discard, removed; quarantine, queued on hold; header,
body, sender and recipient changes, applied before the commit.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from nexthop import NextHop, common_port  # noqa: E402
from ternlib import HOSTNAME, QID_RE, TernTestCase, qdir, wait_for  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl")
HERE = os.path.dirname(os.path.abspath(__file__))
FILTER = os.path.join(HERE, "milterfilter.py")
FILTER_START = 20.0	# a python3-milter filter, on a busy machine

GW = "127.0.0.7"
DELIVER_TIMEOUT = 30.0
RUN_TIMEOUT = 15.0
SLOW = 30.0

SENDER = "alice@sign.test"
FAR = "bob@far.test"


def message(action, extra=""):
    return ("From: Alice <alice@sign.test>\n"
            "To: Bob <bob@far.test>\n"
            "Subject: local test\n"
            "X-Test-Action: %s\n"
            "X-Remove-Me: yes\n"
            "%s"
            "\n"
            "The body of the local test.\n" % (action, extra))


def skip_reason():
    try:
        import Milter  # noqa: F401
    except ImportError:
        return ("no Python module Milter: install the Debian package "
                "python3-milter")
    return None


class Filter:
    """milterfilter.py in script mode on a loopback port; by PID."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-milter-local-")
        os.chmod(self.dir, 0o711)
        self.events_path = os.path.join(self.dir, "events")
        self.port = ternlib.free_port()
        self.spec = "inet:127.0.0.1:%d" % self.port
        with open(os.path.join(self.dir, "out"), "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, FILTER, self.spec, "script",
                 self.events_path], stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        wait_for(self._listening, FILTER_START, "filter on " + self.spec,
                 interval=0.1)

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("filter exited: %s" % self.log())
        try:
            socket.create_connection(("127.0.0.1", self.port), 1.0).close()
            return True
        except OSError:
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "out"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def events(self, name=None):
        evs = ternlib.read_json_lines(self.events_path)
        return [e for e in evs if name is None or e.get("ev") == name]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalFiltered(TernTestCase):
    """A ternd relaying everything to a gateway, with the scripted
    filter as its only non_smtpd_milters filter."""

    @classmethod
    def setUpClass(cls):
        why = skip_reason()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        super().setUp()
        if not os.access(TERNCTL, os.X_OK):
            self.fail("no ternctl at %s (TERN_BUILDDIR)" % TERNCTL)
        self.port = common_port([GW])
        self.gw = NextHop(GW, port=self.port)
        self.addCleanup(self.gw.stop)
        self.filter = Filter()
        self.addCleanup(self.filter.stop)
        self.t = self.tern(sections={
            "delivery": {"gateway": "%s:%d" % (GW, self.port),
                         "gateway_all": "yes", "queue_interval": "1s",
                         "connect_timeout": "5s", "reply_timeout": "10s"},
            "milter": {"non_smtpd_milters": self.filter.spec,
                       # Plenty: a python filter on a busy machine.
                       "command_timeout": "60s",
                       "content_timeout": "60s"}})
        self.tmp = tempfile.mkdtemp(prefix="tern-e2e-ml-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "gw", None) is not None:
            out.append(self.gw.summary())
        if getattr(self, "filter", None) is not None:
            out.append("--- filter ---\n%s\n%s" % (
                self.filter.log()[-3000:],
                "\n".join(json.dumps(e) for e in self.filter.events())))
        return "\n".join(out)

    def sendmail(self, args, data):
        link = os.path.join(self.tmp, "sendmail")
        if not os.path.lexists(link):
            os.symlink(TERNCTL, link)
        env = dict(os.environ)
        env["TERN_CONFIG"] = self.t.conf
        try:
            p = subprocess.run([link] + list(args), input=data.encode(),
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env,
                               cwd=self.tmp, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("sendmail did not exit within %.0fs"
                                 % RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, "sendmail failed: %r" % p.stderr)

    def maildrop(self):
        return sorted(n for n in os.listdir(self.t.path("maildrop"))
                      if not n.startswith("."))

    def wait_maildrop_empty(self):
        wait_for(lambda: self.maildrop() == [], DELIVER_TIMEOUT,
                 "maildrop/ to be empty")

    def verdict_log(self, what, step, reply):
        """Postfix's line for a filter's verdict on a local message."""
        return self.t.wait_log(
            r"ternd/pickup\[\d+\]: (%s): %s: %s from "
            r"localhost\[127\.0\.0\.1\]: %s; from=<%s> to=<[^>]*> "
            r"proto=local uid=%d" % (QID_RE, what, step, reply,
                                     re.escape(SENDER), os.getuid()),
            timeout=SLOW)

    def assert_report(self, m, reply, rcpt):
        """A non-delivery report to the sender about rcpt."""
        self.assertEqual(m.mail_from, "")
        self.assertEqual(m.rcpts, [SENDER])
        self.assertIn(b"Content-Type: multipart/report", m.data)
        self.assertIn(b"Final-Recipient: rfc822; " + rcpt.encode(), m.data)
        self.assertIn(b"Action: failed", m.data)
        self.assertIn(reply.encode(), m.data)

    # --- what the filter sees --------------------------------------------

    def test_steps_and_macros(self):
        self.sendmail(["-f", SENDER, FAR], message("none"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        qid = re.search(r"\tid (%s)" % QID_RE, m.data.decode()).group(1)
        connect = self.filter.events("connect")
        self.assertEqual(len(connect), 1)
        self.assertEqual(connect[0]["hostname"], "localhost")
        self.assertEqual(connect[0]["addr"][0], "127.0.0.1")
        cm = connect[0]["macros"]
        self.assertEqual(cm.get("j"), HOSTNAME)
        self.assertEqual(cm.get("{daemon_name}"), HOSTNAME)
        self.assertEqual(cm.get("{client_addr}"), "127.0.0.1")
        self.assertEqual(cm.get("{client_name}"), "localhost")
        self.assertEqual(self.filter.events("helo")[0]["name"], "localhost")
        mail = self.filter.events("mail")[0]
        self.assertEqual(mail["sender"], "<%s>" % SENDER)
        self.assertEqual(mail["macros"].get("{mail_addr}"), SENDER)
        self.assertEqual(mail["macros"].get("i"), qid)
        rcpt = self.filter.events("rcpt")[0]
        self.assertEqual(rcpt["rcpt"], "<%s>" % FAR)
        self.assertEqual(rcpt["macros"].get("{rcpt_addr}"), FAR)
        eom = self.filter.events("eom")[0]
        self.assertEqual(eom["macros"].get("i"), qid)
        # The message as submitted, without our Received header.
        names = [h[0] for h in eom["headers"]]
        self.assertNotIn("Received", names)
        self.assertIn("X-Test-Action", names)
        self.assertEqual(eom["body_len"],
                         len(b"The body of the local test.\r\n"))
        self.assertTrue(m.data.startswith(b"Received: by "), m.data)
        self.wait_maildrop_empty()

    # --- refusals ----------------------------------------------------------

    def test_reject_at_end_returned_to_sender(self):
        self.sendmail(["-f", SENDER, FAR], message("reject"))
        qid = self.verdict_log("milter-reject", "END-OF-MESSAGE",
                               r"5\.7\.1 Message refused by filter"
                               ).group(1)
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_report(m, "550 5.7.1 Message refused by filter", FAR)
        self.assertIn(b"The body of the local test.", m.data)
        self.wait_maildrop_empty()
        wait_for(lambda: self.t.queue_files() == [], DELIVER_TIMEOUT,
                 "the queue to be empty")
        # The refused message itself was never queued nor sent.
        self.assertNotIn("%s: from=<%s>" % (qid, SENDER), self.t.log())
        self.assertEqual(len(self.gw.messages()), 1)

    def test_reject_at_rcpt_is_a_configuration_error(self):
        """As Postfix: a filter may not refuse one recipient of a local
        submission; the message waits in maildrop/ for the filter to be
        mended, and is neither returned nor sent in part."""
        self.sendmail(["-f", SENDER, FAR, "nobody@far.test"],
                      message("none"))
        qid = self.verdict_log("milter-reject", "RCPT",
                               r"5\.1\.1 No such user here").group(1)
        self.t.wait_log(r"%s: milter configuration error: a filter may "
                        r"not reject a recipient of a local submission"
                        % qid, timeout=SLOW)
        self.assertEqual(len(self.maildrop()), 1)
        self.assertEqual(self.t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])

    def test_tempfail_left_in_maildrop(self):
        self.sendmail(["-f", "later@sign.test", FAR], message("none"))
        self.t.wait_log(r"milter-reject: MAIL from localhost\[127\.0\.0\.1"
                        r"\]: 4\.7\.1 .*; from=<later@sign\.test> .*: "
                        r"left in maildrop, tried again later",
                        timeout=SLOW)
        self.assertEqual(len(self.maildrop()), 1)
        self.assertEqual(self.t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])

    def test_discard_removes_file(self):
        self.sendmail(["-f", SENDER, FAR], message("discard"))
        self.verdict_log("milter-discard", "END-OF-MESSAGE", ".*")
        self.wait_maildrop_empty()
        self.assertEqual(self.t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])

    def test_quarantine_queued_on_hold(self):
        self.sendmail(["-f", SENDER, FAR], message("quarantine"))
        qid = self.t.wait_log(r"(%s): held: quarantined by a filter: "
                              r"looks suspicious to the filter" % QID_RE,
                              timeout=SLOW).group(1)
        self.wait_maildrop_empty()
        held = self.t.files("hold")
        self.assertIn("%s/%s.env" % (qdir(qid), qid), held)
        self.assertIn("%s/%s.msg" % (qdir(qid), qid), held)
        self.assertEqual(self.t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])

    # --- changes -----------------------------------------------------------

    def test_header_changes_applied(self):
        self.sendmail(["-f", SENDER, FAR],
                      message("headers", "X-Twice: one\nX-Twice: two\n"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        head = m.data.split(b"\r\n\r\n", 1)[0]
        names = [line.split(b":", 1)[0] for line in head.split(b"\r\n")
                 if line[:1] not in (b" ", b"\t")]
        # Our Received on top, the filter's first fields right below it.
        self.assertEqual(names[:3], [b"Received", b"X-Inserted",
                                     b"X-Second"], head)
        self.assertIn(b"\r\nX-Added: added by the filter\r\n", m.data)
        self.assertIn(b"\r\nSubject: changed by the filter\r\n", m.data)
        self.assertIn(b"\r\nX-Twice: second one changed\r\n", m.data)
        self.assertNotIn(b"X-Remove-Me", m.data)
        self.assertTrue(m.data.endswith(b"\r\n\r\nThe body of the local "
                                        b"test.\r\n"), m.data)

    def test_body_replaced(self):
        self.sendmail(["-f", SENDER, FAR], message("body"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertTrue(m.data.endswith(b"\r\n\r\nA new body\r\nin two "
                                        b"pieces\r\n"), m.data)
        self.assertNotIn(b"The body of the local test", m.data)

    def test_envelope_changes_applied(self):
        self.sendmail(["-f", SENDER, "keep@example.test",
                       "gone@example.test"], message("envelope"))
        m = self.gw.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(m.mail_from, "new-sender@example.org")
        self.assertEqual(sorted(m.rcpts), ["added-par@example.test",
                                           "added@example.test",
                                           "keep@example.test"])
        self.wait_maildrop_empty()

    def test_every_recipient_deleted(self):
        self.sendmail(["-f", SENDER, "only@example.test"],
                      message("delete-all"))
        self.t.wait_log(r"(%s): uid=\d+ from=<%s>: every recipient "
                        r"removed by a filter" % (QID_RE, re.escape(SENDER)),
                        timeout=SLOW)
        self.wait_maildrop_empty()
        self.assertEqual(self.t.queue_files(), [])
        self.assertEqual(self.gw.messages(), [])


if __name__ == "__main__":
    ternlib.main()
