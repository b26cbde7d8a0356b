"""
test_admission.py: admission control under a descriptor limit.  ternd is
started with a small RLIMIT_NOFILE (set in the child, lowering the hard
limit too, so ternd cannot raise it back): it derives its session budget
from it, clamps a larger max_connections with a warning, refuses the
client past the budget with a 421 while an open session still commits
its message, keeps descriptors for messages at the full budget and
refuses a message past them with a 451, a session that never completed a command is evicted to
make room for a new client, enters stress mode above 80 % of the budget and leaves it
below 70 %, both logged and shown by ternctl stats.  With no descriptor
to spare at all, a new client still gets a 421 from the spare descriptor
instead of hanging in the listen queue.
"""

import os
import re
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import HOSTNAME, TernTestCase, queued_id  # noqa: E402

MSG = b"Subject: admitted\r\n\r\nHello.\r\n"
BUSY = "421 4.7.0 %s Error: too many connections" % HOSTNAME
SHED = "421 4.3.2 %s Error: out of resources, try again later" % HOSTNAME
BUSY_MSG = ("451 4.3.2 Error: too many messages arriving at once, try "
            "again later")
# Reserve with max_deliveries = 1: 64 + 2 * 1; below 1024 descriptors a
# headroom of 8 messages at two descriptors each; then one descriptor a
# session (admit.h).
RESERVE = 66
HEADROOM = 8
KEPT = RESERVE + 2 * HEADROOM
BUDGET = 12


def nofile(n):
    """A preexec function: descriptor limit n, soft and hard."""
    def set_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return set_limit


class Admission(TernTestCase):

    def setUp(self):
        super().setUp()
        # Several daemons start in one test; starting is slow on a busy
        # machine.
        signal.alarm(180)

    def limited(self, n, smtp=None, probe=True):
        """A ternd with n descriptors; without probe, ready once it says
        so (a probe connection would be refused)."""
        t = self.tern(start=False, smtp=dict({
            "max_connections_per_ip": "0"}, **(smtp or {})),
            sections={"delivery": {"max_deliveries": "1"}})
        t.preexec = nofile(n)
        t.start(wait=probe)
        if not probe:
            t.wait_log(r"ternd\[%d\]: ready$" % t.proc.pid,
                       timeout=ternlib.START_TIMEOUT)
        return t

    def stats(self, t):
        out = subprocess.run([mailtest.ternctl_path(), "-c", t.conf,
                              "stats"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=20,
                             check=True).stdout.decode()
        return dict(line.split(": ", 1) for line in out.splitlines())

    def test_budget_from_descriptors(self):
        t = self.limited(KEPT + BUDGET, smtp={"max_connections": "1000"})
        t.wait_log(r"max_connections 1000 is more than %d descriptors "
                   r"allow; using %d" % (KEPT + BUDGET, BUDGET))
        t.wait_log(r"session budget: %d sessions \(descriptors %d, %d kept "
                   r"in reserve and %d for %d messages, 1 a session: %d "
                   r"sessions;" % (BUDGET, KEPT + BUDGET, RESERVE,
                                   2 * HEADROOM, HEADROOM, BUDGET))
        st = self.stats(t)
        self.assertEqual(st["session_budget"], str(BUDGET))
        self.assertEqual(st["stress"], "0")

        first = t.session()
        mark = t.log_mark()
        # Sessions that have sent a command are never evicted.
        others = [t.session() for _ in range(BUDGET - 1)]
        # 12 of 12 sessions: above 80 %, so under stress.
        t.wait_log(r"stress: \d+ of %d sessions in use; timeouts cut to "
                   r"10s" % BUDGET, since=mark)
        st = self.stats(t)
        self.assertEqual(st["sessions"], str(BUDGET))
        self.assertEqual(st["stress"], "1")
        self.assertGreaterEqual(int(st["bytes_held"]), BUDGET * 8192)

        # One more is refused cleanly, at once.
        late = t.raw(greet=False)
        self.assertEqual([r.line for r in late.rest()], [BUSY])

        # The session already open still commits its message.
        qid = queued_id(first.mail("a@example.org", ["b@local.test"], MSG))
        self.assertIn(qid, t.queued())
        self.assertReply(first.cmd("QUIT"), "221 2.0.0 Bye")
        first.expect_eof()

        # Below 70 % stress is over.
        mark = t.log_mark()
        for c in others[:4]:
            self.assertReply(c.cmd("QUIT"), "221 2.0.0 Bye")
            c.expect_eof()
        t.wait_log(r"stress over: \d+ of %d sessions in use; timeouts "
                   r"back to normal" % BUDGET, since=mark)
        self.assertEqual(self.stats(t)["stress"], "0")

    def test_silent_session_evicted_at_the_budget(self):
        # At the budget, a new client takes the place of the oldest
        # session that has not completed a command for 2 s: a client
        # dribbling a line that never ends.  Sessions that sent a command
        # are kept, and with none to evict the newcomer gets a 421.
        t = self.limited(KEPT + 4)
        t.wait_log(r"session budget: 4 sessions")
        busy = [t.session() for _ in range(2)]
        silent = [t.raw() for _ in range(2)]
        silent[0].send(b"EHLO dribbl")
        ternlib.time.sleep(2.5)
        c = t.raw()
        self.assertReply(c.cmd("EHLO c.example"),
                         re.compile(r"^250-mx"))
        silent[0].expect_eof()
        t.wait_log(r"disconnect from \[127\.0\.0\.1\] commands=0 "
                   r"errors=0 \(evicted: no command, session budget full\)")
        # Both silent ones evicted in turn, never the busy ones.
        d = t.raw()
        silent[1].expect_eof()
        self.assertReply(d.cmd("NOOP"), "250 2.0.0 Ok")
        late = t.raw(greet=False)
        self.assertEqual([r.line for r in late.rest()], [BUSY])
        for x in busy:
            self.assertReply(x.cmd("NOOP"), "250 2.0.0 Ok")

    def test_stress_shortens_idle_sessions(self):
        # command_timeout is long; under stress an idle session is cut
        # at stress_timeout.
        t = self.limited(KEPT + 5, smtp={
            "command_timeout": "60s", "stress_timeout": "2s"})
        t.wait_log(r"session budget: 5 sessions")
        conns = [t.session() for _ in range(5)]
        t.wait_log(r"stress: \d+ of 5 sessions in use; timeouts cut to 2s")
        for c in conns:
            self.assertReply(c.reply(timeout=20),
                             "421 4.4.2 %s Error: timeout exceeded"
                             % HOSTNAME)
            c.expect_eof()
        t.wait_log(r"timeout after command from \[127\.0\.0\.1\] "
                   r"\(stress\)")
        t.wait_log(r"stress over: [0-3] of 5 sessions in use")
        # Served normally again.
        qid = t.send_message("a@example.org", ["b@local.test"], MSG)
        self.assertIn(qid, t.queued())

    def test_messages_at_the_full_budget(self):
        # Every session slot taken, the headroom still lets 8 messages
        # be received at once; the ninth DATA (or BDAT) gets a 451 and
        # its session stays; once one message is committed, the ninth goes through.
        # ternd never runs out of descriptors meanwhile.
        t = self.limited(KEPT + BUDGET, smtp={"stress_timeout": "5m"})
        t.wait_log(r"session budget: %d sessions" % BUDGET)
        conns = [t.session() for _ in range(BUDGET)]
        mark = t.log_mark()
        for c in conns[:HEADROOM + 1]:
            self.assertReply(c.cmd("MAIL FROM:<a@example.org>"),
                             "250 2.1.0 Ok")
            self.assertReply(c.cmd("RCPT TO:<b@local.test>"),
                             "250 2.1.5 Ok")
        for c in conns[:HEADROOM]:
            self.assertReply(c.cmd("DATA"), re.compile(r"^354 "))
            c.send(b"Subject: held\r\n\r\n")
        last = conns[HEADROOM]
        self.assertReply(last.cmd("DATA"), BUSY_MSG)
        t.wait_log(r"NOQUEUE: reject: DATA from unknown\[127\.0\.0\.1\]: "
                   r"451 4\.3\.2 Error: too many messages arriving at "
                   r"once", since=mark)
        # The session stays; its transaction is over.
        self.assertReply(last.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertReply(last.cmd("DATA"), re.compile(r"^503 5\.5\.1 "))
        # So does a first BDAT, once its chunk is read.
        self.assertReply(last.cmd("MAIL FROM:<a@example.org>"),
                         "250 2.1.0 Ok")
        self.assertReply(last.cmd("RCPT TO:<b@local.test>"), "250 2.1.5 Ok")
        last.send(b"BDAT 8 LAST\r\n")
        self.assertReply(last.cmd("Hello."), BUSY_MSG)
        self.assertReply(last.cmd("NOOP"), "250 2.0.0 Ok")
        conns[0].send(b"Held.\r\n.\r\n")
        qids = [queued_id(conns[0].reply())]
        qids.append(queued_id(last.mail("a@example.org", ["b@local.test"],
                                        MSG)))
        for c in conns[1:HEADROOM]:
            c.send(b"Held.\r\n.\r\n")
            qids.append(queued_id(c.reply()))
        self.assertEqual(len(set(qids)), HEADROOM + 1)
        for qid in qids:
            self.assertIn(qid, t.queued())
        self.assertNotIn("Too many open files", t.log())

    def smallest(self):
        """A ternd under about the smallest descriptor limit it starts
        with, so it has only a few descriptors to spare: from what an
        idle ternd holds upward (starting takes a few more), plus two,
        so that one session and its spool file fit once the control
        clients are gone.  The one returned has read its (empty) queue,
        so no reading takes descriptors while the test counts them."""
        probe = self.limited(1024)
        idle = len(os.listdir("/proc/%d/fd" % probe.proc.pid))
        probe.stop()

        def start(n, read=False):
            t = self.tern(start=False, sections={
                "delivery": {"max_deliveries": "1"}})
            t.preexec = nofile(n)
            t.start(wait=False)
            ready = re.compile(r"ternd\[%d\]: ready$" % t.proc.pid, re.M)
            if read:
                ready = re.compile(r"ternd\[%d\]: queue: 0 messages "
                                   r"read in " % t.proc.pid, re.M)
            ternlib.wait_for(lambda: ready.search(t.log()) or
                             t.proc.poll() is not None,
                             ternlib.START_TIMEOUT, "start or exit")
            return t

        for n in range(idle + 1, idle + 12):
            t = start(n)
            if t.is_running():
                t.stop()
                t = start(n + 2, read=True)
                self.assertTrue(t.is_running(), "ternd did not start "
                                "with %d descriptors" % (n + 2))
                return t, n + 2
        self.fail("ternd did not start with up to %d descriptors" % n)

    def test_no_descriptor_left_gets_421(self):
        # Descriptors run out (control connections take the last few):
        # accept() fails with EMFILE, and the spare descriptor answers
        # each new client with a 421 at once instead of leaving it in the
        # listen queue.
        t, n = self.smallest()
        mark = t.log_mark()
        began = time.monotonic()
        ctl = []
        for _ in range(16):
            s = ternlib.socket.socket(ternlib.socket.AF_UNIX)
            s.connect(t.path("control.sock"))
            ctl.append(s)
        for _ in range(3):
            c = t.raw(greet=False)
            self.assertEqual([r.line for r in c.rest()], [SHED])
        t.wait_log(r"accept: Too many open files; \d+ clients refused "
                   r"with 421")
        t.wait_log(r"stress: 0 of 1 sessions in use, out of descriptors")
        # The control socket's accept() failing pauses it for a second
        # rather than spinning on the readable socket.
        spins = t.log()[mark:].count("control: accept: Too many open "
                                     "files")
        self.assertLessEqual(spins, time.monotonic() - began + 2)
        # Descriptors back: served again, and stress ends by itself.
        for s in ctl:
            s.close()
        ternlib.wait_for(lambda: len(os.listdir("/proc/%d/fd"
                                                % t.proc.pid)) < n - 2,
                         ternlib.REPLY_TIMEOUT, "control clients gone")
        qid = t.send_message("a@example.org", ["b@local.test"], MSG)
        self.assertIn(qid, t.queued())
        t.wait_log(r"stress over: 0 of 1 sessions in use", timeout=30)


if __name__ == "__main__":
    ternlib.main()
