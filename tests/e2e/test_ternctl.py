"""
test_ternctl.py: the ternctl tool against a real ternd.  Covered: queue,
show and why read the spool with the daemon running and stopped (and
--json parses), the filters of the acting verbs with --dry-run (nothing
touched) and for real, hold, flush, release, delete and bounce as a
next hop sees them, stats, reload and stop over the control socket,
check on a good and a broken configuration, passwd, the mailq entry
point, and the exit statuses 1 (unknown id), 2 (usage), 3 (no daemon)
and 4 (no permission on the socket).
"""

import base64
import ctypes
import ctypes.util
import json
import os
import pty
import pwd
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from nexthop import NextHop, make_cert  # noqa: E402
from ternlib import QID_RE, SANITIZER_RE, TernTestCase  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""

SENDER = "sender@sender.test"
RUN_TIMEOUT = 30.0
DELIVER_TIMEOUT = 60.0
SETTLE = 1.5	# what has not happened by then is not coming


def msg(subject, body="Hello.\r\n"):
    return ("From: %s\r\nSubject: %s\r\n\r\n%s"
            % (SENDER, subject, body)).encode()


def result_re(qid, rcpt, status):
    return r": %s: to=<%s>, .*status=%s " % (qid, re.escape(rcpt), status)


class TernctlCase(TernTestCase):

    def setUp(self):
        super().setUp()
        if not TERNCTL or not os.access(TERNCTL, os.X_OK):
            self.fail("TERN_BUILDDIR does not hold src/ternctl")

    def ctl(self, t, *args, stdin=None, conf=True, argv0=None, env=None,
            user=None):
        """Run ternctl -c <t's config> args; (rc, stdout, stderr)."""
        cmd = [TERNCTL] + (["-c", t.conf] if conf else []) + list(args)
        kw = {}
        if user is not None:
            def drop():
                os.setgroups([])
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            kw["preexec_fn"] = drop
        if argv0 is not None:
            kw["executable"] = TERNCTL
            cmd[0] = argv0
        try:
            p = subprocess.run(cmd, input=stdin, capture_output=True,
                               timeout=RUN_TIMEOUT, env=env,
                               stdin=None if stdin is not None
                               else subprocess.DEVNULL, **kw)
        except subprocess.TimeoutExpired:
            raise AssertionError("ternctl %s did not exit within %.0fs"
                                 % (" ".join(args), RUN_TIMEOUT))
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        m = SANITIZER_RE.search(err)
        if m:
            raise AssertionError("sanitizer report from ternctl %s: %s"
                                 % (" ".join(args), err[m.start():]))
        return p.returncode, out, err

    def ok(self, t, *args, **kw):
        """ternctl args must succeed; its standard output."""
        rc, out, err = self.ctl(t, *args, **kw)
        self.assertEqual(rc, 0, "ternctl %s: rc %d, stderr %r"
                         % (" ".join(args), rc, err))
        return out

    def json_queue(self, t):
        return json.loads(self.ok(t, "queue", "--json"))

    def held(self, t):
        """Ids of the messages under hold/."""
        out = []
        for f in t.files("hold"):
            if f.endswith(".env"):
                out.append(os.path.basename(f)[:-4])
        return sorted(out)

    def ids_out(self, out):
        """The ids printed one per line, checked to be nothing else."""
        lines = out.split()
        for line in lines:
            self.assertRegex(line, "^" + QID_RE + "$")
        return sorted(lines)


class Listing(TernctlCase):
    """queue, show and why read the spool itself."""

    def check_listing(self, t, q1, q2):
        out = self.ok(t, "queue")
        blocks = out.strip().split("\n\n")
        self.assertEqual(len(blocks), 3, out)
        self.assertRegex(blocks[2], r"^-- [0-9]+ KiB in 2 requests\.$")
        first = blocks[0].splitlines()
        self.assertRegex(first[0], r"^%s  +[0-9]+  +\d{4}-\d\d-\d\d "
                         r"\d\d:\d\d:\d\d  %s$" % (q1, re.escape(SENDER)))
        self.assertEqual([line.strip() for line in first[1:]],
                         ["a@one.test", "b@two.test"])
        for line in first[1:]:
            self.assertRegex(line, r"^\s+\S")
        self.assertRegex(blocks[1].splitlines()[0], r"^%s .*  <>$" % q2)

        q = self.json_queue(t)
        self.assertEqual([m["id"] for m in q], [q1, q2])
        fields, rcpts = None, None
        for m in q:
            fields, rcpts = t.read_env(m["id"])
            self.assertEqual(m["size"], int(fields["size"]))
            self.assertIs(m["held"], False)
            self.assertLess(abs(m["arrival"] - time.time()), 120)
            self.assertEqual([r["address"] for r in m["recipients"]],
                             [r["rcpt"].strip("<>") for r in rcpts])
            for r in m["recipients"]:
                self.assertEqual(r["state"], "pending")
                self.assertIn("status", r)
                self.assertIn("error", r)
        self.assertEqual(q[0]["sender"], SENDER)
        self.assertEqual(q[1]["sender"], "")

        out = self.ok(t, "show", q1)
        self.assertTrue(out.startswith("version: 1\n"), out[:200])
        self.assertIn("\nid: %s\n" % q1, out)
        self.assertIn("\nrcpt: <a@one.test>\n", out)
        self.assertIn("\nSubject: first\n", out)
        self.assertNotIn("first body line", out)
        self.assertNotIn("\r", out)
        out = self.ok(t, "show", q1, "--body")
        self.assertIn("\nSubject: first\n", out)
        self.assertIn("\nfirst body line\n", out)

        out = self.ok(t, "why", q1)
        self.assertRegex(out, r"(?m)^a@one\.test: pending")
        self.assertRegex(out, r"(?m)^b@two\.test: pending")
        self.assertRegex(out, r"(?m)^  (next attempt: |no attempt yet)")

        rc, out, err = self.ctl(t, "show", "0000000000AAAAA")
        self.assertEqual(rc, 1)
        self.assertIn("0000000000AAAAA: no such message", err)
        rc, out, err = self.ctl(t, "why", "not-an-id")
        self.assertEqual(rc, 1)
        self.assertIn("not-an-id", err)

    def test_queue_show_why(self):
        t = self.tern()
        self.assertEqual(self.ok(t, "queue").strip(), "Mail queue is empty")
        self.assertEqual(self.json_queue(t), [])
        q1 = t.send_message(SENDER, ["a@one.test", "b@two.test"],
                            msg("first", "first body line\r\n"))
        q2 = t.send_message("", ["c@three.test"], msg("second"))
        self.check_listing(t, q1, q2)
        self.assertEqual(t.stop(), 0)
        # The daemon is down: the spool is read all the same.
        self.check_listing(t, q1, q2)

    def test_mailq(self):
        t = self.tern()
        qid = t.send_message(SENDER, ["a@one.test"], msg("mailq"))
        listing = self.ok(t, "queue")
        self.assertIn(qid, listing)
        env = dict(os.environ, TERN_CONFIG=t.conf)
        self.assertEqual(self.ok(t, conf=False, argv0="mailq", env=env),
                         listing)
        self.assertEqual(self.ok(t, "sendmail", "-bp"), listing)


class Acting(TernctlCase):
    """The acting verbs, the filters and a next hop that sees the result."""

    def start(self, **hop):
        self.hop = NextHop("127.0.0.1", **hop)
        self.addCleanup(self.hop.stop)
        # No retry on its own within a test: only flush makes one.
        return self.tern(sections={"delivery": {
            "gateway": "127.0.0.1:%d" % self.hop.port,
            "gateway_all": "yes", "queue_interval": "1h",
            "connect_timeout": "2s", "reply_timeout": "3s"}})

    def deferred(self, t, qid, rcpt, n=1):
        """Wait for the n-th deferral of rcpt to be logged."""
        rx = re.compile(result_re(qid, rcpt, "deferred"), re.M)
        ternlib.wait_for(lambda: len(rx.findall(t.log())) >= n,
                         DELIVER_TIMEOUT, "deferral %d of %s" % (n, rcpt))

    def test_hold_flush_release(self):
        t = self.start(rcpt="451 4.7.1 try later")
        qa = t.send_message(SENDER, ["a@dest.test"], msg("a"))
        qb = t.send_message(SENDER, ["b@dest.test"], msg("b"))
        self.deferred(t, qa, "a@dest.test")
        self.deferred(t, qb, "b@dest.test")

        out = self.ok(t, "why", qa)
        self.assertRegex(out, r"(?m)^a@dest\.test: pending \(.*try later\)")
        self.assertRegex(out, r"(?m)^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
                         r"\S*\[127\.0\.0\.1\]:%d plain 4\.7\.1 .*try later"
                         % self.hop.port)
        self.assertRegex(out, r"(?m)^  next attempt: \d{4}-")

        # --error: a glob of the last error, case ignored.
        self.assertEqual(self.ids_out(self.ok(
            t, "hold", "--dry-run", "--error", "*TRY LATER*")), [qa, qb])
        self.assertEqual(self.ids_out(self.ok(
            t, "hold", "--dry-run", "--error", "4.7.*")), [qa, qb])
        self.assertEqual(self.ok(t, "hold", "--dry-run", "--error",
                                 "try later"), "")
        self.assertEqual(self.held(t), [])

        self.assertEqual(self.ids_out(self.ok(t, "hold", qa)), [qa])
        self.assertEqual(self.held(t), [qa])
        self.assertEqual(t.queued(), [qb])
        q = {m["id"]: m for m in self.json_queue(t)}
        self.assertIs(q[qa]["held"], True)
        self.assertIs(q[qb]["held"], False)
        self.assertRegex(self.ok(t, "queue"), r"(?m)^%s! " % qa)
        self.assertIn("held", self.ok(t, "why", qa))

        # flush: the queued one goes, the held one stays.
        self.hop.configure(rcpt="250")
        self.assertEqual(self.ok(t, "flush", "--dry-run", "--domain",
                                 "dest.test"), qb + "\n")
        self.assertEqual(self.ok(t, "flush", "--domain", "dest.test"),
                         qb + "\n")
        got = self.hop.wait_messages(1, DELIVER_TIMEOUT)
        self.assertEqual(got[0].rcpts, ["b@dest.test"])
        ternlib.wait_for(lambda: qb not in t.queued(), DELIVER_TIMEOUT,
                         "%s to leave the queue" % qb)
        self.assertEqual(self.ok(t, "flush", qa, "--dry-run"), qa + "\n")
        time.sleep(SETTLE)
        self.assertEqual(len(self.hop.messages()), 1,
                         "a held message was sent")
        self.assertEqual(self.held(t), [qa])

        # Released, it is attempted at once.
        self.assertEqual(self.ids_out(self.ok(t, "release", "--all")),
                         [qa])
        self.assertEqual(self.held(t), [])
        got = self.hop.wait_messages(2, DELIVER_TIMEOUT)
        self.assertEqual(got[1].rcpts, ["a@dest.test"])
        ternlib.wait_for(lambda: t.queued() == [], DELIVER_TIMEOUT,
                         "the queue to empty")

    def test_filters(self):
        t = self.tern()
        m1 = t.send_message("s1@sender.test", ["x@one.test"], msg("1"))
        m2 = t.send_message("s2@sender.test", ["y@two.test"], msg("2"))
        m3 = t.send_message("s1@sender.test", ["z@sub.two.test",
                                               "w@one.test"], msg("3"))
        every = sorted([m1, m2, m3])

        def dry(*args):
            return self.ids_out(self.ok(t, "delete", "--dry-run", *args))

        self.assertEqual(dry("--all"), every)
        self.assertEqual(dry("--domain", "two.test"), [m2])
        self.assertEqual(dry("--domain", "@two.test"), [m2, m3])
        self.assertEqual(dry("--domain", "ONE.test"), [m1, m3])
        self.assertEqual(dry("--from", "s1@sender.test"), [m1, m3])
        self.assertEqual(dry("--from", "<s1@sender.test>", "--domain",
                             "one.test"), [m1, m3])
        self.assertEqual(dry("--from", "s1@sender.test", "--to",
                             "x@one.test"), [m1])
        self.assertEqual(dry("--to", "y@two.test"), [m2])
        self.assertEqual(dry("--older-than", "1h"), [])
        self.assertEqual(dry("--older-than", "0s"), every)
        self.assertEqual(dry(m2, m1), [m1, m2])
        self.assertEqual(t.queued(), every, "a dry run touched the queue")

        out = self.ok(t, "delete", "--from", "s1@sender.test")
        self.assertEqual(self.ids_out(out), [m1, m3])
        ternlib.wait_for(lambda: t.queued() == [m2], DELIVER_TIMEOUT,
                         "the deleted messages to leave the spool")
        self.assertEqual(self.ids_out(self.ok(t, "delete", m2)), [m2])
        ternlib.wait_for(lambda: t.queued() == [], DELIVER_TIMEOUT,
                         "the spool to empty")
        self.assertEqual(self.ok(t, "delete", "--all"), "")

    def test_bounce(self):
        t = self.tern()
        qid = t.send_message(SENDER, ["r@dest.test"], msg("bounce me"))
        self.assertEqual(self.ids_out(self.ok(t, "bounce", qid)), [qid])
        ternlib.wait_for(lambda: qid not in t.queued(), DELIVER_TIMEOUT,
                         "%s to leave the queue" % qid)

        def notice():
            return [m for m in self.json_queue(t) if m["sender"] == ""]
        dsn = ternlib.wait_for(notice, DELIVER_TIMEOUT,
                               "a non-delivery notification")
        self.assertEqual([r["address"] for r in dsn[0]["recipients"]],
                         [SENDER])

    def test_flush_and_unknown_ids(self):
        t = self.start(rcpt="451 4.7.1 try later")
        qid = t.send_message(SENDER, ["r@dest.test"], msg("known"))
        self.deferred(t, qid, "r@dest.test")
        self.assertRegex(self.ok(t, "flush"), r"^[0-9]+ messages? "
                         r"flushed\n$")
        self.deferred(t, qid, "r@dest.test", 2)
        self.assertEqual(self.ok(t, "flush", qid), qid + "\n")
        self.deferred(t, qid, "r@dest.test", 3)
        self.assertEqual(len(self.hop.rcpt_commands()), 3)
        unknown = "0000000000AAAAA"
        rc, out, err = self.ctl(t, "hold", unknown, qid)
        self.assertEqual(rc, 1)
        self.assertEqual(out, qid + "\n", "the known id was not acted on")
        self.assertIn(unknown + ": no such message", err)
        self.assertEqual(self.held(t), [qid])
        rc, out, err = self.ctl(t, "release", "--dry-run", unknown)
        self.assertEqual((rc, out), (1, ""))
        self.assertIn(unknown, err)
        rc, out, err = self.ctl(t, "delete", "bogus")
        self.assertEqual(rc, 1)
        self.assertIn("bogus: not a queue id", err)
        self.assertEqual(self.held(t), [qid])


# What postqueue -j of Postfix 3.7.11 printed for a private instance with
# a deferred message and a held bounce (the null sender): tern's objects
# must have the same members with the same JSON types.
POSTQUEUE_SAMPLE = r"""
{"queue_name": "deferred", "queue_id": "B276513E1E7", "arrival_time": 1796619587, "message_size": 291, "forced_expire": false, "sender": "sender@pq.test", "recipients": [{"address": "a@dest.test", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"}, {"address": "b@dest.test", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"}]}
{"queue_name": "hold", "queue_id": "BBEF613E1E8", "arrival_time": 1796619587, "message_size": 309, "forced_expire": false, "sender": "MAILER-DAEMON", "recipients": [{"address": "c@other.test", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:9: Connection refused"}]}
"""  # noqa: E501
POSTQUEUE_OBJS = [json.loads(line) for line in POSTQUEUE_SAMPLE.split("\n")
                  if line]
POSTQUEUE_MEMBERS = {k: type(v) for k, v in POSTQUEUE_OBJS[0].items()}
POSTQUEUE_RCPT = {k: type(v) for k, v in
                  POSTQUEUE_OBJS[0]["recipients"][0].items()}
POSTQUEUE_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
SHAPE_HEAD = ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280",
              "1280+"]


class Shape(TernctlCase):
    """shape and queue --format postqueue over a queue with messages
    active (not yet attempted), deferred and held."""

    start = Acting.start
    deferred = Acting.deferred

    def tried(self, t, qid):
        """Wait for the first attempt to be recorded in the envelope."""
        ternlib.wait_for(lambda: t.read_env(qid)[0].get("tries") == "1",
                         DELIVER_TIMEOUT, "%s to record its attempt" % qid)

    def make_queue(self):
        t = self.start(rcpt="451 4.7.1 try later")
        d1 = t.send_message(SENDER, ["a@dest.test", "b@dest.test"],
                            msg("d1"))
        d2 = t.send_message("", ["c@Dest.TEST", "x@two.test"], msg("d2"))
        h = t.send_message(SENDER, ["h@dest.test"], msg("held"))
        for qid in (d1, d2, h):
            self.tried(t, qid)
        self.assertEqual(self.ids_out(self.ok(t, "hold", h)), [h])
        # Without the gateway, a new message waits on DNS that never
        # answers: its first attempt is not over.
        t.write_config(sections={"delivery": {"gateway": None,
                                              "gateway_all": None}})
        t.reload()
        a = t.send_message(SENDER, ["n@new.test"], msg("active"))
        return t, d1, d2, h, a

    def shape(self, t, *args):
        lines = self.ok(t, "shape", *args).splitlines()
        self.assertEqual(lines[0].split(), SHAPE_HEAD)
        rows = {}
        for line in lines[1:]:
            f = line.split()
            self.assertEqual(len(f), 1 + len(SHAPE_HEAD), line)
            counts = [int(x) for x in f[1:]]
            self.assertEqual(counts[0], sum(counts[1:]), line)
            rows[f[0]] = counts
        self.assertEqual(lines[1].split()[0], "TOTAL")
        return rows

    def test_shape_and_postqueue(self):
        t, d1, d2, h, a = self.make_queue()

        # Every message is young: all in the first bucket.
        rows = self.shape(t)
        self.assertEqual(rows["TOTAL"][:2], [3, 3])
        self.assertEqual(rows["dest.test"][:2], [2, 2])
        self.assertEqual(rows["two.test"][:2], [1, 1])
        self.assertEqual(rows["new.test"][:2], [1, 1])
        self.assertEqual(len(rows), 4)
        self.assertEqual(self.shape(t, "deferred"),
                         {"TOTAL": [2, 2] + [0] * 9,
                          "dest.test": [2, 2] + [0] * 9,
                          "two.test": [1, 1] + [0] * 9})
        self.assertEqual(self.shape(t, "active"),
                         {"TOTAL": [1, 1] + [0] * 9,
                          "new.test": [1, 1] + [0] * 9})
        self.assertEqual(self.shape(t, "hold"),
                         {"TOTAL": [1, 1] + [0] * 9,
                          "dest.test": [1, 1] + [0] * 9})
        js = json.loads(self.ok(t, "shape", "--json", "deferred", "hold"))
        self.assertEqual(js["queues"], ["deferred", "hold"])
        self.assertEqual(js["buckets"], SHAPE_HEAD[1:])
        self.assertEqual(js["total"]["total"], 3)
        self.assertEqual(js["domains"][0], {"domain": "dest.test",
                                            "total": 3,
                                            "buckets": [3] + [0] * 9})
        rc, out, err = self.ctl(t, "shape", "incoming")
        self.assertEqual(rc, 2)
        self.assertIn("incoming: not a queue", err)

        out = self.ok(t, "queue", "--format", "postqueue")
        self.assertTrue(out.endswith("\n"))
        objs = {}
        for line in out.splitlines():
            o = json.loads(line)
            self.assertEqual(set(o), set(POSTQUEUE_MEMBERS), line)
            for k, typ in POSTQUEUE_MEMBERS.items():
                self.assertIs(type(o[k]), typ, k)
            self.assertIn(o["queue_name"], POSTQUEUE_QUEUES)
            for r in o["recipients"]:
                self.assertLessEqual(set(r), set(POSTQUEUE_RCPT))
                self.assertIn("address", r)
                for k, v in r.items():
                    self.assertIs(type(v), POSTQUEUE_RCPT[k], k)
            objs[o["queue_id"]] = o
        self.assertEqual(sorted(objs), sorted([d1, d2, h, a]))
        self.assertEqual({i: o["queue_name"] for i, o in objs.items()},
                         {d1: "deferred", d2: "deferred", h: "hold",
                          a: "active"})
        fields, _ = t.read_env(d1)
        self.assertEqual(objs[d1]["message_size"], int(fields["size"]))
        self.assertLess(abs(objs[d1]["arrival_time"] - time.time()), 120)
        self.assertEqual(objs[d1]["sender"], SENDER)
        # The null sender, as Postfix's showq names it.
        self.assertEqual(objs[d2]["sender"], "MAILER-DAEMON")
        self.assertIs(objs[d1]["forced_expire"], False)
        self.assertEqual([r["address"] for r in objs[d1]["recipients"]],
                         ["a@dest.test", "b@dest.test"])
        for r in objs[d1]["recipients"]:
            self.assertIn("try later", r["delay_reason"])
        self.assertEqual(objs[a]["recipients"], [{"address": "n@new.test"}])

        # The same with the daemon down: the spool is read.
        self.assertEqual(t.stop(), 0)
        self.assertEqual(self.ok(t, "queue", "--format", "postqueue"), out)
        rc, _, err = self.ctl(t, "queue", "--format", "mailq")
        self.assertEqual(rc, 2)
        self.assertIn("unknown format", err)
        rc, _, err = self.ctl(t, "queue", "--json", "--format", "postqueue")
        self.assertEqual(rc, 2)


class Sessions(TernctlCase):
    """sessions: what is open now, inbound and outbound."""

    def test_sessions(self):
        certs = tempfile.mkdtemp(prefix="tern-e2e-cert-")
        self.addCleanup(shutil.rmtree, certs, True)
        # The next hop offers STARTTLS, which ternd takes.
        hop = NextHop("127.0.0.1", rcpt="stall", tls=make_cert(certs))
        self.addCleanup(hop.stop)
        t = self.tern(sections={"delivery": {
            "gateway": "127.0.0.1:%d" % hop.port, "gateway_all": "yes",
            "queue_interval": "1h", "reply_timeout": "60s"}})
        self.assertEqual(self.ok(t, "sessions"), "No sessions\n")
        self.assertEqual(json.loads(self.ok(t, "sessions", "--json")), [])

        t.send_message(SENDER, ["r@dest.test"], msg("stalled"))
        hop.wait_rcpts(1, DELIVER_TIMEOUT)
        c = t.raw()
        ehlo = "EHLO client.example\r\n"
        c.ehlo()
        out = json.loads(self.ok(t, "sessions", "--json"))
        inbound = [x for x in out if x["dir"] == "inbound"]
        outbound = [x for x in out if x["dir"] == "outbound"]
        self.assertEqual(len(inbound), 1, out)
        self.assertEqual(len(outbound), 1, out)
        i, o = inbound[0], outbound[0]
        self.assertEqual(i["peer"], "127.0.0.1")
        self.assertEqual(i["state"], "command")
        # A string even when every character is a digit (04569676).
        self.assertIsInstance(i["id"], str)
        self.assertRegex(i["id"], r"^[0-9A-F]+$")
        self.assertIn("session=%s" % i["id"], t.log())
        self.assertEqual(i["in"], len(ehlo))
        self.assertGreater(i["out"], len("220 x ESMTP tern\r\n"))
        self.assertIsNone(i["tls"])
        self.assertIsInstance(i["age"], int)
        self.assertLess(i["age"], 60)
        self.assertTrue(o["peer"].endswith("[127.0.0.1]:%d" % hop.port),
                        o)
        self.assertIn(o["state"], ("mail", "rcpt", "data"))
        self.assertGreater(o["in"], 0)
        self.assertGreater(o["out"], 0)
        self.assertIsNone(o["id"])
        self.assertRegex(o["tls"] or "", r"^TLSv1\.[23]$")

        table = self.ok(t, "sessions").splitlines()
        self.assertEqual(table[0].split(), ["DIR", "ID", "PEER", "STATE",
                                            "AGE", "IN", "OUT", "TLS"])
        self.assertEqual(len(table), 3)
        self.assertEqual(table[1].split()[:4],
                         ["inbound", i["id"], "127.0.0.1", "command"])
        self.assertEqual(table[2].split()[0], "outbound")
        c.cmd("QUIT")
        c.close()


class Handover(TernctlCase):
    """flush --to: the queue handed over to a peer MTA, each recipient
    removed only once the peer said 250."""

    start = Acting.start
    deferred = Acting.deferred

    def test_handover_spends_no_try(self):
        """A hand-over the peer does not take leaves the message the
        tries of its usual route: it is not the last one that bounces."""
        self.hop = NextHop("127.0.0.1", rcpt="451 4.7.1 try later")
        self.addCleanup(self.hop.stop)
        t = self.tern(sections={"delivery": {
            "gateway": "127.0.0.1:%d" % self.hop.port,
            "gateway_all": "yes", "queue_interval": "1h",
            "max_tries": "3",
            "connect_timeout": "2s", "reply_timeout": "3s"}})
        q = t.send_message(SENDER, ["a@one.test"], msg("a"))
        self.deferred(t, q, "a@one.test")
        dead = ternlib.free_port()
        self.assertEqual(self.ids_out(self.ok(
            t, "flush", "--to", "[127.0.0.1]:%d" % dead, q)), [q])
        self.deferred(t, q, "a@one.test", 2)
        time.sleep(SETTLE)
        self.assertEqual(t.read_env(q)[0].get("tries"), "1")
        self.ok(t, "flush", q)
        self.deferred(t, q, "a@one.test", 3)
        time.sleep(SETTLE)
        self.assertNotIn("status=bounced", t.log())
        self.assertIn(q, t.queued())

    def test_handover(self):
        t = self.start(rcpt="451 4.7.1 try later")
        qa = t.send_message(SENDER, ["a@one.test"], msg("a"))
        qb = t.send_message(SENDER, ["b@two.test", "c@two.test"], msg("b"))
        qc = t.send_message(SENDER, ["d@three.test"], msg("c"))
        self.deferred(t, qa, "a@one.test")
        self.deferred(t, qb, "c@two.test")
        self.deferred(t, qc, "d@three.test")
        every = sorted([qa, qb, qc])
        ternlib.wait_for(lambda: all(t.read_env(q)[0].get("tries") == "1"
                                     for q in every),
                         DELIVER_TIMEOUT, "the attempts to be recorded")
        old_attempts = len(self.hop.rcpt_commands())

        # Bad targets are refused before anything happens.
        for bad in ("nowhere", "host:0", "host:99999", "a b:25", ":25"):
            rc, out, err = self.ctl(t, "flush", "--to", bad)
            self.assertEqual(rc, 2, bad)
            self.assertIn("host:port", err)

        # A peer that refuses for good or for now: everything stays,
        # nothing is bounced.
        refuser = NextHop("127.0.0.1", rcpt={"d@three.test": "451",
                                             "*": "550 5.7.1 go away"})
        self.addCleanup(refuser.stop)
        target = "127.0.0.1:%d" % refuser.port
        self.assertEqual(self.ids_out(self.ok(t, "flush", "--dry-run",
                                              "--to", target)), every)
        self.assertEqual(self.ids_out(self.ok(t, "flush", "--to", target)),
                         every)
        refuser.wait_rcpts(4, DELIVER_TIMEOUT)
        for q, rcpt in ((qa, "a@one.test"), (qc, "d@three.test")):
            self.deferred(t, q, rcpt, 2)
        self.deferred(t, qb, "b@two.test", 2)
        time.sleep(SETTLE)
        self.assertEqual(t.queued(), every)
        self.assertEqual(refuser.messages(), [])
        self.assertNotIn("status=bounced", t.log())
        self.assertFalse([m for m in self.json_queue(t)
                          if m["sender"] == ""], "a bounce was made")
        self.assertIn("go away", self.ok(t, "why", qa))
        # The usual route was not tried meanwhile.
        self.assertEqual(len(self.hop.rcpt_commands()), old_attempts)

        # A peer that is not there: the same.
        dead = ternlib.free_port()
        self.assertEqual(self.ids_out(self.ok(
            t, "flush", "--to", "[127.0.0.1]:%d" % dead, qa)), [qa])
        self.deferred(t, qa, "a@one.test", 3)
        self.assertIn(qa, t.queued())

        # The peer being kept: it takes what it says 250 to; per
        # recipient, so c@two.test, still refused, stays with qb.
        keeper = NextHop("127.0.0.1", rcpt={"c@two.test": "452",
                                            "*": "250"})
        self.addCleanup(keeper.stop)
        target = "127.0.0.1:%d" % keeper.port
        self.assertEqual(self.ids_out(self.ok(
            t, "flush", "--to", target, "--domain", "two.test")), [qb])
        got = keeper.wait_messages(1, DELIVER_TIMEOUT)
        self.assertEqual(got[0].rcpts, ["b@two.test"])
        self.deferred(t, qb, "c@two.test", 3)

        def states():
            return {r["rcpt"].strip("<>"): r.get("rcpt-state")
                    for r in t.read_env(qb)[1]}
        ternlib.wait_for(lambda: states()["b@two.test"] == "sent",
                         DELIVER_TIMEOUT, "b@two.test recorded as sent")
        self.assertEqual(states()["c@two.test"], "pending")
        self.assertIn(qb, t.queued())
        self.assertRegex(t.log(), r"%s: to=<b@two\.test>, relay=\S*"
                         r"\[127\.0\.0\.1\]:%d, .*status=sent"
                         % (qb, keeper.port))

        keeper.configure(rcpt="250")
        self.assertEqual(self.ids_out(self.ok(t, "flush", "--to", target)),
                         every)
        keeper.wait_messages(4, DELIVER_TIMEOUT)
        ternlib.wait_for(lambda: t.queued() == [], DELIVER_TIMEOUT,
                         "the queue to be handed over")
        rcpts = sorted(r for m in keeper.messages() for r in m.rcpts)
        self.assertEqual(rcpts, ["a@one.test", "b@two.test", "c@two.test",
                                 "d@three.test"])
        self.assertEqual(len(self.hop.rcpt_commands()), old_attempts)
        # Nothing left: nothing to hand over.
        self.assertEqual(self.ok(t, "flush", "--to", target), "")


class Daemon(TernctlCase):
    """stats, reload, stop, and what ternctl says without a daemon."""

    def test_stats_reload_stop(self):
        t = self.tern()
        t.send_message(SENDER, ["r@dest.test"], msg("counted"))
        out = self.ok(t, "stats")
        stats = dict(line.split(": ", 1) for line in out.splitlines())
        for key in ("sessions", "accepted", "delivered", "deferred",
                    "bounced", "queue_size", "oldest", "uptime"):
            self.assertRegex(stats.get(key, ""), r"^[0-9]+$", key)
        self.assertEqual(stats["accepted"], "1")
        self.assertEqual(stats["queue_size"], "1")
        js = json.loads(self.ok(t, "stats", "--json"))
        self.assertEqual(js["accepted"], 1)
        self.assertIsInstance(js["uptime"], int)
        self.assertGreater(js["oldest"], 0)

        mark = t.log_mark()
        self.assertEqual(self.ok(t, "reload"), "")
        t.wait_log("configuration reloaded", since=mark)
        self.assertTrue(t.is_running())

        self.assertEqual(self.ok(t, "stop"), "")
        self.assertEqual(t.wait_exit(), 0)

    def test_exit_codes(self):
        t = self.tern()
        qid = t.send_message(SENDER, ["r@dest.test"], msg("codes"))
        for args in ([], ["nosuchverb"], ["delete"], ["hold", "--bogus"],
                     ["queue", "extra"], ["show"], ["delete", "--all",
                                                    qid],
                     ["flush", "--older-than", "soon"]):
            rc, out, err = self.ctl(t, *args)
            self.assertEqual(rc, 2, "ternctl %s: %r" % (args, err))
            self.assertIn("usage:", err)
        self.assertEqual(t.queued(), [qid])

        self.assertEqual(t.stop(), 0)
        sock = t.path("control.sock")
        for args in (["stats"], ["stats", "--json"], ["hold", qid],
                     ["reload"], ["flush"]):
            rc, out, err = self.ctl(t, *args)
            self.assertEqual(rc, 3, "ternctl %s: %r" % (args, err))
            self.assertEqual(out, "", "ternctl %s printed %r" % (args, out))
            self.assertIn("ternd is not running", err)
            self.assertIn(sock, err)
        # A dry run needs no daemon.
        self.assertEqual(self.ok(t, "hold", "--all", "--dry-run"),
                         qid + "\n")

    def test_permission_denied(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run ternctl as another user")
        t = self.tern()
        daemon_uid = pwd.getpwnam(t.main["user"]).pw_uid
        other = None
        for name in ("daemon", "bin", "sys"):
            try:
                u = pwd.getpwnam(name)
            except KeyError:
                continue
            if u.pw_uid not in (0, daemon_uid):
                other = u
                break
        if other is None:
            self.skipTest("no unprivileged user to run ternctl as")
        rc, out, err = self.ctl(t, "stats", user=other)
        self.assertEqual(rc, 4, err)
        self.assertIn(t.path("control.sock"), err)


class Offline(TernctlCase):
    """check and passwd need no daemon."""

    def test_check(self):
        t = self.tern(start=False)
        self.assertEqual(self.ok(t, "check"),
                         "configuration ok: %s\n" % t.conf)
        with open(t.conf) as f:
            lines = f.read().splitlines()
        lines.insert(2, "no_such_key = 1")
        with open(t.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        rc, out, err = self.ctl(t, "check")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("%s:3:" % t.conf, err)
        self.assertIn("no_such_key", err)

    def test_passwd(self):
        t = self.tern(start=False)
        h1 = self.ok(t, "passwd", stdin=b"correct horse\n").strip()
        h2 = self.ok(t, "passwd", stdin=b"correct horse\n").strip()
        for h in (h1, h2):
            self.assertRegex(h, r"^\$(y|6)\$[./0-9A-Za-z$=]+$")
        self.assertNotEqual(h1, h2, "the same salt twice")
        lib = ctypes.util.find_library("crypt")
        if lib:
            crypt = ctypes.CDLL(lib).crypt
            crypt.restype = ctypes.c_char_p
            crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
            self.assertEqual(crypt(b"correct horse", h1.encode()),
                             h1.encode())
            self.assertNotEqual(crypt(b"wrong horse", h1.encode()),
                                h1.encode())

        rc, out, err = self.ctl(t, "passwd", "--cram", stdin=b"s3cret\r\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "{PLAIN}%s\n"
                         % base64.b64encode(b"s3cret").decode())
        self.assertIn("warning", err)

        for bad in (b"", b"\n", b"x" * 300 + b"\n"):
            rc, out, err = self.ctl(t, "passwd", stdin=bad)
            self.assertEqual((rc, out), (1, ""), err)

    def tty_passwd(self, first, second):
        """passwd on a terminal: answer both prompts; (rc, hash, what the
        terminal showed)."""
        master, slave = pty.openpty()
        p = subprocess.Popen([TERNCTL, "passwd"], stdin=slave,
                             stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        shown = b""
        try:
            for prompt, answer in ((b"Password: ", first),
                                   (b"Again: ", second)):
                deadline = time.monotonic() + RUN_TIMEOUT
                while not shown.endswith(prompt):
                    left = deadline - time.monotonic()
                    self.assertGreater(left, 0, "no prompt %r: %r"
                                       % (prompt, shown))
                    if select.select([master], [], [], left)[0]:
                        shown += os.read(master, 1024)
                os.write(master, answer + b"\n")
            out, _ = p.communicate(timeout=RUN_TIMEOUT)
            try:
                while select.select([master], [], [], 0.2)[0]:
                    shown += os.read(master, 1024)
            except OSError:
                pass
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        return p.returncode, out.decode().strip(), shown

    def test_passwd_terminal(self):
        rc, h, shown = self.tty_passwd(b"tty secret", b"tty secret")
        self.assertEqual(rc, 0, shown)
        self.assertRegex(h, r"^\$(y|6)\$")
        self.assertNotIn(b"tty secret", shown, "the password was echoed")
        rc, h, shown = self.tty_passwd(b"one", b"two")
        self.assertEqual((rc, h), (1, ""))
        self.assertIn(b"differ", shown)


if __name__ == "__main__":
    sys.exit(ternlib.main(__name__))
