"""
test_control.py: the control socket, spoken raw (ctl_proto.h): each
verb; hold, then flush (nothing is sent), then release (sent); delete in
the middle of a delivery attempt (no crash, the files go at once and
nothing brings them back when the attempt ends); bounce now; flush by
domain and by "@domain"; stats that move; an unknown id; requests that
are refused; permission denied to a user outside the daemon's group.
"""

import os
import re
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from test_delivery import (DELIVER_TIMEOUT, MX1, ONE, SENDER,  # noqa: E402
                           SENDER_MX, DeliveryCase, small)

CTL_TIMEOUT = 5.0
QUIET = 1.5		# long enough for an attempt that should not happen
UNKNOWN_ID = "000000000000000"


def ctl_raw(path, request, timeout=CTL_TIMEOUT):
    """Send one request (bytes) and read the reply until the daemon
    closes; returns the reply's lines."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        else:
            raise AssertionError("no EOF after %r" % request)
    finally:
        s.close()
    text = data.decode()
    assert text.endswith("\n"), repr(text)
    return text[:-1].split("\n")


class ControlCase(DeliveryCase):

    def start_tern(self, delivery=None, **kw):
        conf = {"queue_interval": "1h"}
        conf.update(delivery or {})
        t = super().start_tern(delivery=conf, **kw)
        self.sock = t.path("control.sock")
        ternlib.wait_for(lambda: os.path.exists(self.sock), CTL_TIMEOUT,
                         "the control socket")
        return t

    def ctl(self, *words):
        return ctl_raw(self.sock, ("TERNCTL1 %s\n" % " ".join(words))
                       .encode())

    def assertOk(self, lines, data=()):
        self.assertEqual(lines, ["data %s" % d for d in data] + ["ok"])

    def stats(self):
        lines = self.ctl("stats")
        self.assertEqual(lines[-1], "ok")
        out = {}
        for line in lines[:-1]:
            m = re.match(r"^data ([a-z_]+)=([0-9]+)$", line)
            self.assertIsNotNone(m, line)
            out[m.group(1)] = int(m.group(2))
        self.assertEqual(sorted(out), sorted([
            "sessions", "session_budget", "bytes_held", "stress",
            "accepted", "delivered", "deferred", "bounced",
            "queue_size", "oldest", "uptime",
            "draining", "drain_refused"]))
        return out

    def held(self):
        out = []
        for name in self.t.files("hold"):
            if name.endswith(".env"):
                out.append(os.path.basename(name)[:-4])
        return sorted(out)

    def gone(self, qid):
        return not any(qid in f for f in self.t.files("queue") +
                       self.t.files("hold"))

    def deferred_message(self, rcpt="r@dest.test", subject="control"):
        qid = self.t.send_message(SENDER, [rcpt], small(subject))
        self.wait_result(qid, rcpt, "deferred")
        # The attempt ends once its outcome is on disk (the envelope is
        # rewritten beside the loop): until then the message is busy.
        ternlib.wait_for(lambda: re.search(
            rb"\ntries: [1-9]", self.t.read_env_bytes(qid)), CTL_TIMEOUT,
            "the deferral of %s on disk" % qid)
        return qid


class Verbs(ControlCase):

    def test_socket_mode(self):
        self.start_tern()
        st = os.lstat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        # Anyone may connect; the peer's credentials decide per verb.
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
        self.assertEqual(stat.S_IMODE(os.stat(self.t.spool).st_mode),
                         0o711)

    def test_hold_flush_release(self):
        mx1 = self.hop(MX1, data=["451", "250"])
        self.start_tern()
        qid = self.deferred_message()
        self.assertOk(self.ctl("hold", qid), [qid])
        self.assertEqual(self.held(), [qid])
        self.assertNotIn(qid, self.t.queued())
        self.t.wait_log(r"control: uid=[0-9]+ hold %s$" % qid)
        self.assertOk(self.ctl("flush"), ["flushed=0"])
        self.assertOk(self.ctl("flush-ids", qid), [qid])
        time.sleep(QUIET)
        self.assertEqual(len(mx1.attempts()), 1, "a held message was sent")
        self.assertOk(self.ctl("release", qid), [qid])
        self.assertEqual(self.held(), [])
        mx1.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(qid)
        self.assertTrue(self.gone(qid))

    def test_delete_during_attempt(self):
        mx1 = self.hop(MX1, stall="data")
        self.start_tern(delivery={"data_timeout": "3s"})
        qid = self.t.send_message(SENDER, ["r@dest.test"], small("stall"))
        self.t.wait_log(r"<[0-9]+ octets of message>", DELIVER_TIMEOUT)
        self.assertTrue(os.path.exists(self.t.qpath(qid, "env")))
        self.assertOk(self.ctl("delete", qid), [qid])
        self.assertTrue(self.gone(qid), "files left after delete")
        # The attempt ends when the stall times out: nothing comes back.
        self.wait_result(qid, "r@dest.test", "deferred")
        time.sleep(QUIET)
        self.assertTrue(self.t.is_running())
        self.assertTrue(self.gone(qid), "the attempt brought it back")
        self.assertEqual(self.t.files("queue"), [])
        self.assertEqual(mx1.messages(), [])
        self.assertOk(self.ctl("delete", qid), [qid + " unknown"])
        self.assertNotRegex(self.t.log(), r"%s: cannot update" % qid)

    def test_bounce_now(self):
        self.hop(MX1, data="451")
        smx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.deferred_message()
        self.assertOk(self.ctl("bounce", qid), [qid])
        msgs = smx.wait_messages(1, DELIVER_TIMEOUT)
        _, _, per_rcpt, _ = self.report(msgs[0])
        self.assertEqual(per_rcpt[0]["Status"], "5.0.0")
        self.wait_removed(qid)
        self.assertTrue(self.gone(qid))

    def test_bounce_held(self):
        self.hop(MX1, data="451")
        smx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.deferred_message()
        self.assertOk(self.ctl("hold", qid), [qid])
        self.assertOk(self.ctl("bounce", qid), [qid])
        smx.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(qid)
        self.assertEqual(self.held(), [])

    def test_flush_domain(self):
        mx1 = self.hop(MX1, data=["451", "250"])
        one = self.hop(ONE, data=["451", "250"])
        self.start_tern()
        q1 = self.deferred_message("r@dest.test", "one")
        q2 = self.deferred_message("r@one.test", "two")
        self.assertOk(self.ctl("flush", "other.test"), ["flushed=0"])
        self.assertOk(self.ctl("flush", "@st"), ["flushed=0"])
        time.sleep(QUIET)
        self.assertEqual(mx1.messages() + one.messages(), [])
        self.assertOk(self.ctl("flush", "DEST.test"), ["flushed=1"])
        mx1.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(q1)
        self.assertEqual(one.messages(), [])
        # "@test": the subdomains of test, such as one.test.
        self.assertOk(self.ctl("flush", "@test"), ["flushed=1"])
        one.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(q2)

    def test_stats_move(self):
        mx1 = self.hop(MX1, data=["451", "250"])
        self.start_tern()
        before = self.stats()
        self.assertEqual(before["accepted"], 0)
        self.assertEqual(before["queue_size"], 0)
        self.assertEqual(before["oldest"], 0)
        qid = self.deferred_message()
        mid = self.stats()
        self.assertEqual(mid["accepted"], 1)
        self.assertEqual(mid["deferred"], 1)
        self.assertEqual(mid["queue_size"], 1)
        self.assertLessEqual(abs(mid["oldest"] - time.time()), 60)
        self.assertOk(self.ctl("flush-ids", qid), [qid])
        mx1.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_removed(qid)
        after = self.stats()
        self.assertEqual(after["delivered"], 1)
        self.assertEqual(after["queue_size"], 0)
        self.assertEqual(after["oldest"], 0)
        self.assertGreaterEqual(after["uptime"], before["uptime"])

    def test_why_history(self):
        self.hop(MX1, data="451")
        self.start_tern()
        qid = self.deferred_message()
        # The log line can come before the envelope is rewritten.
        want = re.compile(r"\nattempt: [0-9]+ 0 plain 4\.3\.0 "
                          r"mx1\.dest\.test\[127\.0\.0\.2\]:[0-9]+ .*451")
        ternlib.wait_for(lambda: want.search(
            self.t.read_env_bytes(qid).decode()), DELIVER_TIMEOUT,
            "the attempt recorded in %s.env" % qid)

    def test_unknown_and_refused(self):
        self.start_tern()
        for verb in ("hold", "release", "delete", "bounce", "flush-ids"):
            self.assertOk(self.ctl(verb, UNKNOWN_ID, "../queue/x"),
                          [UNKNOWN_ID + " unknown", "../queue/x unknown"])
        for request, error in (
                (b"TERNCTL9 stats\n", "error unsupported protocol"),
                (b"TERNCTL1 frobnicate\n", "error unknown command"),
                (b"TERNCTL1 hold\n", "error wrong number of arguments"),
                (b"TERNCTL1 stats x\n", "error wrong number of arguments"),
                (b"TERNCTL1 flush a b\n",
                 "error wrong number of arguments"),
                (b"TERNCTL1 stats\r\n", "error bad request"),
                (b"TERNCTL1\n", "error no command")):
            lines = ctl_raw(self.sock, request)
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith(error), (request, lines))
        lines = ctl_raw(self.sock, b"TERNCTL1 hold " + b"x" * 70000)
        self.assertEqual(lines, ["error request too long"])
        self.assertTrue(self.t.is_running())

    def test_reload_and_stop(self):
        self.start_tern()
        self.assertOk(self.ctl("reload"))
        self.t.wait_log(r"configuration reloaded")
        self.assertOk(self.ctl("stop"))
        self.t.wait_exit()
        self.assertFalse(os.path.exists(self.sock))

    def test_answer_and_stop_survive_a_half_close(self):
        # A client that shuts its side at once still gets all of a long
        # answer, and a stop it asked for is done.
        self.start_tern()
        # More answer than a socket buffer holds: one line per id.
        ids = " ".join(["x"] * 30000)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(CTL_TIMEOUT)
        s.connect(self.sock)
        s.sendall(("TERNCTL1 hold %s\n" % ids).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().split("\n")
        self.assertEqual(lines[-2:], ["ok", ""], lines[-3:])
        self.assertEqual(len(lines), 30000 + 2)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        s.sendall(b"TERNCTL1 stop\n")
        s.close()
        self.t.wait_exit()

    def test_stale_socket(self):
        t = self.start_tern()
        t.kill9()
        self.assertTrue(os.path.exists(self.sock))
        t.start()
        self.assertOk(self.ctl("flush"), ["flushed=0"])

    def test_permission_denied(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run a client as another user")
        self.start_tern()
        group = os.stat(self.sock).st_gid
        outsider = 54321
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                # May open the socket file, but is not of the group.
                os.setgroups([group])
                os.setgid(outsider)
                os.setuid(outsider)
                lines = ctl_raw(self.sock, b"TERNCTL1 hold %s\n"
                                % UNKNOWN_ID.encode())
                os.write(w, "\n".join(lines).encode())
                code = 0
            except BaseException as e:
                os.write(w, ("child: %r" % e).encode())
            finally:
                os._exit(code)
        os.close(w)
        out = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            out += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.WEXITSTATUS(status), 0, out)
        self.assertEqual(out.decode(), "error permission denied")
        self.t.wait_log(r"control: uid=%d pid=[0-9]+: permission denied"
                        % outsider)
        self.assertNotRegex(self.t.log(), r"control: uid=%d hold" % outsider)


if __name__ == "__main__":
    ternlib.main()
