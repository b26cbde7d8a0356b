"""
test_systemd.py: ternd under a service manager.  A datagram socket of
the test's own stands in for systemd's notify socket: READY=1 (with
MAINPID and a STATUS naming the queue) once the listeners answer,
RELOADING=1 with MONOTONIC_USEC and READY=1 around SIGHUP, STOPPING=1 on
SIGTERM, periodic STATUS updates, abstract socket names, and mail that
keeps flowing when nobody listens.  Then a static check of
contrib/tern.service, and systemd-analyze's opinion of it when that tool
is installed.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import Conn, TernTestCase, queued_id  # noqa: E402

MSG = b"Subject: systemd test\r\n\r\nHello.\r\n"
NOTIFY_TIMEOUT = 15.0
STATUS_INTERVAL = 10	# ternd's period between STATUS updates
STATUS_RE = re.compile(r"queue: (\d+) messages, sessions: (\d+) inbound, "
                       r"(\d+) outbound$")
# The worst exposure systemd-analyze may score the unit at.
MAX_EXPOSURE = 3.0


class Notify:
    """The service manager's end of the notify protocol: a bound
    AF_UNIX datagram socket, at a path in a temporary directory or, with
    abstract, at a name in the abstract namespace."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.dir = None
        if abstract:
            name = "tern-test-%d-%s" % (os.getpid(), os.urandom(6).hex())
            self.sock.bind("\0" + name)
            self.addr = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="tern-notify-")
            self.addr = os.path.join(self.dir, "notify")
            self.sock.bind(self.addr)
        self.received = []	# every message, in order, as dicts

    def env(self):
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.addr
        return env

    def recv(self, timeout):
        """One datagram as a dict of its KEY=value lines, or None."""
        self.sock.settimeout(max(0.01, timeout))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        msg = {}
        for line in data.decode("utf-8").split("\n"):
            if line == "":
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise AssertionError("not KEY=value: %r in %r"
                                     % (line, data))
            msg[key] = value
        self.received.append(msg)
        return msg

    def wait(self, pred, what, timeout=NOTIFY_TIMEOUT):
        """The first message from now on for which pred is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s; got %r"
                                     % (what, self.received))
            msg = self.recv(left)
            if msg is not None and pred(msg):
                return msg

    def close(self):
        self.sock.close()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def is_ready(m):
    return m.get("READY") == "1"


def is_read(m):
    """The STATUS update ternd sends once it has read its queue."""
    return ("STATUS" in m and not is_ready(m) and
            "reading the queue" not in m["STATUS"])


def status_counts(test, msg):
    """(queued, inbound, outbound) of a message's STATUS."""
    test.assertIn("STATUS", msg)
    m = STATUS_RE.search(msg["STATUS"])
    test.assertIsNotNone(m, "STATUS without the counts: %r" % msg)
    return tuple(int(x) for x in m.groups())


class NotifyProtocol(TernTestCase):

    def notify(self, abstract=False):
        n = Notify(abstract)
        self.addCleanup(n.close)
        return n

    def start(self, n, **kw):
        t = self.tern(start=False, env=n.env(), **kw)
        t.start(wait=False)
        return t

    def check_ready(self, n, t):
        msg = n.wait(is_ready, "READY=1")
        # Nothing comes before READY=1, and by then the port answers at
        # the first try.
        self.assertEqual(n.received, [msg])
        c = Conn(t.port)
        try:
            self.assertTrue(c.greeting.line.startswith("220 "),
                            c.greeting)
            self.assertEqual(c.cmd("QUIT").code, 221)
        finally:
            c.close()
        self.assertEqual(msg.get("MAINPID"), str(t.proc.pid))
        return msg

    def test_ready_after_listeners(self):
        n = self.notify()
        t = self.start(n)
        msg = self.check_ready(n, t)
        self.assertEqual(status_counts(self, msg), (0, 0, 0))
        self.assertNotIn("NOTIFY_SOCKET", t.log())

    def test_ready_counts_recovered_queue(self):
        """A message left in the spool counts in the STATUS sent once the
        queue is read (READY comes first: ternd serves while it reads)."""
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        qid = t.send_message("a@example.test", ["b@remote.example"], MSG)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(t.queued(), [qid])
        n.wait(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        n.received.clear()
        t.start(wait=False)
        self.assertIn("reading the queue; ",
                      self.check_ready(n, t)["STATUS"])
        msg = n.wait(is_read, "STATUS once the queue is read")
        self.assertEqual(status_counts(self, msg)[0], 1)

    def test_reload(self):
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        t.send_message("a@example.test", ["b@remote.example"], MSG)
        c = t.session()		# one inbound session stays open
        before = int(time.monotonic() * 1e6)
        mark = t.log_mark()
        t.signal(signal.SIGHUP)
        rel = n.wait(lambda m: "RELOADING" in m, "RELOADING=1")
        after = int(time.monotonic() * 1e6)
        self.assertEqual(rel["RELOADING"], "1")
        self.assertNotIn("READY", rel)
        usec = int(rel.get("MONOTONIC_USEC", "-1"))
        self.assertTrue(before - 1000 <= usec <= after + 1000,
                        "MONOTONIC_USEC=%d not in [%d, %d]"
                        % (usec, before, after))
        ready = n.wait(is_ready, "READY=1 after the reload")
        t.wait_log("configuration reloaded", since=mark)
        self.assertEqual(status_counts(self, ready)[:2], (1, 1))
        self.assertEqual(ready.get("MAINPID"), str(t.proc.pid))
        # The session survived the reload.
        self.assertEqual(c.cmd("NOOP").code, 250)

    def test_failed_reload_still_ready(self):
        """A bad new file keeps the old one, and the manager is still
        told the reload is over."""
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        with open(t.conf, "a") as f:
            f.write("\n[main]\nno_such_key = 1\n")
        t.signal(signal.SIGHUP)
        n.wait(lambda m: m.get("RELOADING") == "1", "RELOADING=1")
        n.wait(is_ready, "READY=1 after the failed reload")
        t.wait_log("reload failed")
        t.send_message("a@example.test", ["b@local.test"], MSG)

    def test_periodic_status(self):
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        n.wait(is_read, "STATUS once the queue is read")
        c = t.session()
        start = time.monotonic()
        msg = n.wait(lambda m: "STATUS" in m and not is_ready(m),
                     "a STATUS update", timeout=STATUS_INTERVAL + 5)
        self.assertGreater(time.monotonic() - start, 1.0,
                           "STATUS updates come every few seconds, not "
                           "on every change")
        self.assertEqual(set(msg), {"STATUS"})
        self.assertEqual(status_counts(self, msg)[1], 1)
        c.close()

    def test_stopping(self):
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        t.signal(signal.SIGTERM)
        msg = n.wait(lambda m: "STOPPING" in m, "STOPPING=1")
        self.assertEqual(msg["STOPPING"], "1")
        self.assertNotIn("READY", msg)
        self.assertEqual(t.wait_exit(), 0)
        # Nothing claims readiness after STOPPING=1.
        later = n.received[n.received.index(msg) + 1:]
        self.assertFalse([m for m in later if is_ready(m)], later)

    def test_abstract_socket(self):
        n = self.notify(abstract=True)
        t = self.start(n)
        self.check_ready(n, t)
        t.signal(signal.SIGTERM)
        n.wait(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        self.assertEqual(t.wait_exit(), 0)

    def test_missing_socket(self):
        """Nobody at NOTIFY_SOCKET: said once in the log, mail flows."""
        d = tempfile.mkdtemp(prefix="tern-notify-")
        self.addCleanup(shutil.rmtree, d, True)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = os.path.join(d, "missing")
        t = self.tern(env=env)
        qid = t.send_message("a@example.test", ["b@local.test"], MSG)
        self.assertIn(qid, t.queued())
        t.reload()
        self.assertEqual(t.stop(), 0)
        self.assertEqual(len(re.findall("NOTIFY_SOCKET", t.log())), 1,
                         t.log())

    def test_bad_socket_name(self):
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = "relative/path"
        t = self.tern(env=env)
        t.send_message("a@example.test", ["b@local.test"], MSG)
        t.wait_log("NOTIFY_SOCKET relative/path")

    def test_manager_gone(self):
        """The manager's socket goes away while ternd runs: the failure
        is logged once and mail is still accepted."""
        n = self.notify()
        t = self.start(n)
        n.wait(is_ready, "READY=1")
        n.close()
        for _ in range(2):
            t.reload()
            t.send_message("a@example.test", ["b@local.test"], MSG)
        t.wait_log("cannot notify the service manager")
        self.assertEqual(len(re.findall("cannot notify", t.log())), 1)
        self.assertEqual(t.stop(), 0)

    def test_not_set(self):
        """Without NOTIFY_SOCKET nothing is said about it."""
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        t = self.tern(env=env)
        t.reload()
        self.assertEqual(t.stop(), 0)
        self.assertNotIn("NOTIFY_SOCKET", t.log())


def read_unit(path):
    """{section: {key: [values]}} of a unit file."""
    units = {}
    cur = None
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            m = re.match(r"^\[(\w+)\]$", s)
            if m:
                cur = units.setdefault(m.group(1), {})
                continue
            key, sep, value = s.partition("=")
            if not sep or cur is None:
                raise AssertionError("bad unit line %r" % line)
            cur.setdefault(key, []).append(value)
    return units


class UnitFile(TernTestCase):

    def setUp(self):
        super().setUp()
        if not ternlib.SRCDIR:
            self.fail("TERN_SRCDIR is not set")
        self.path = os.path.join(ternlib.SRCDIR, "contrib", "tern.service")
        self.unit = read_unit(self.path)
        self.svc = self.unit["Service"]

    def one(self, key):
        values = self.svc.get(key, [])
        self.assertEqual(len(values), 1, "%s: %r" % (key, values))
        return values[0]

    def test_service(self):
        self.assertIn(self.one("Type"), ("notify", "notify-reload"))
        self.assertEqual(self.one("ExecStart").split()[0],
                         "/usr/sbin/ternd")
        if self.one("Type") == "notify":
            # Synchronous, through the control socket, and without
            # kill(1), which a minimal system lacks.
            self.assertEqual(self.one("ExecReload"),
                             "/usr/sbin/ternctl -c /etc/tern/tern.ini "
                             "reload")
        self.assertEqual(self.one("Restart"), "on-failure")
        self.assertEqual(self.one("RuntimeDirectory"), "tern")
        self.assertIn("multi-user.target",
                      self.unit["Install"]["WantedBy"])

    def test_hardening(self):
        want = {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
            "PrivateDevices": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectKernelLogs": "yes",
            "ProtectControlGroups": "yes",
            "ProtectClock": "yes",
            "ProtectHostname": "yes",
            "RestrictNamespaces": "yes",
            "LockPersonality": "yes",
            "MemoryDenyWriteExecute": "yes",
            "RestrictRealtime": "yes",
            "RestrictSUIDSGID": "yes",
            "SystemCallArchitectures": "native",
            "SystemCallFilter": "@system-service",
            "AmbientCapabilities": "",
        }
        for key, value in want.items():
            with self.subTest(key=key):
                self.assertEqual(self.one(key), value)
        self.assertEqual(set(self.one("RestrictAddressFamilies").split()),
                         {"AF_UNIX", "AF_INET", "AF_INET6"})
        caps = set(self.one("CapabilityBoundingSet").split())
        self.assertIn("CAP_NET_BIND_SERVICE", caps)
        self.assertTrue({"CAP_SETUID", "CAP_SETGID"} <= caps, caps)
        self.assertFalse(caps & {"CAP_SYS_ADMIN", "CAP_NET_ADMIN",
                                 "CAP_SYS_PTRACE", "CAP_NET_RAW"}, caps)
        rw = self.one("ReadWritePaths").split()
        self.assertIn("/var/spool/tern", rw)

    def analyze_copy(self):
        """The unit with ExecStart naming the ternd under test, so that
        systemd-analyze finds the program."""
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze is not installed")
        d = tempfile.mkdtemp(prefix="tern-unit-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(self.path) as f:
            text = f.read()
        copy = os.path.join(d, "tern.service")
        ternd = os.path.abspath(ternlib.TERND)
        ternctl = os.path.join(os.path.dirname(ternd), "ternctl")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/sbin/ternd", ternd)
                    .replace("/usr/sbin/ternctl", ternctl))
        return copy

    def test_systemd_analyze_verify(self):
        copy = self.analyze_copy()
        p = subprocess.run(["systemd-analyze", "verify", "--man=no", copy],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("Unknown key", p.stderr)

    def test_systemd_analyze_security(self):
        copy = self.analyze_copy()
        p = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            copy], capture_output=True, text=True,
                           timeout=30)
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)",
                      p.stdout)
        if m is None and "offline" in p.stderr:
            self.skipTest("systemd-analyze has no --offline")
        self.assertIsNotNone(m, p.stdout + p.stderr)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, p.stdout)


def read_tmpfiles(path):
    """{path: (type, mode, user, group)} of a tmpfiles.d file."""
    entries = {}
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            fields = s.split()
            if len(fields) < 2:
                raise AssertionError("bad tmpfiles line %r" % line)
            fields += ["-"] * (6 - len(fields))
            entries[fields[1]] = (fields[0], fields[2], fields[3],
                                  fields[4])
    return entries


def built_in_defaults():
    """{section: {key: value}} that ternd -n prints for a file setting
    nothing: the defaults of a configuration file."""
    d = tempfile.mkdtemp(prefix="tern-defaults-")
    try:
        conf = os.path.join(d, "tern.ini")
        with open(conf, "w") as f:
            f.write("[main]\n")
        rc, out, err = ternlib.run_ternd(["-n", "-c", conf])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    if rc != 0:
        raise AssertionError("ternd -n: %s" % err)
    ini, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"^\[(\w+)\]$", line)
        if m:
            cur = ini.setdefault(m.group(1), {})
        elif "=" in line and cur is not None:
            k, _, v = line.partition("=")
            cur[k.strip()] = v.strip()
    return ini


class PathsAgree(unittest.TestCase):
    """The unit, the tmpfiles.d and sysusers.d snippets, the example
    configuration, the man pages and ternd's own defaults name the same
    spool, maildrop/ and mailbox root, with the same owner: each read
    from the real file, the defaults from ternd -n."""

    @classmethod
    def setUpClass(cls):
        if not ternlib.SRCDIR:
            raise AssertionError("TERN_SRCDIR is not set")
        src = ternlib.SRCDIR
        cls.unit = read_unit(os.path.join(src, "contrib", "tern.service"))
        cls.tmpfiles = read_tmpfiles(os.path.join(src, "contrib",
                                                  "tmpfiles.d", "tern.conf"))
        with open(os.path.join(src, "contrib", "sysusers.d",
                               "tern.conf")) as f:
            cls.sysusers = [line.split() for line in f
                            if line.strip() and not line.startswith("#")]
        with open(os.path.join(src, "src", "queue.h")) as f:
            m = re.search(r"#define\s+QUEUE_MAILDROP_MODE\s+0?([0-7]+)",
                          f.read())
        cls.maildrop_mode = m.group(1)
        cls.defaults = built_in_defaults()
        cls.spool = cls.defaults["main"]["spool"]
        cls.mailboxes = cls.defaults["local"]["mailboxes"]
        cls.user = cls.defaults["main"]["user"]

    def test_defaults_are_absolute(self):
        for p in (self.spool, self.mailboxes):
            self.assertTrue(p.startswith("/var/"), p)

    def test_unit_may_write_spool_and_mailboxes(self):
        rw = []
        for value in self.unit["Service"].get("ReadWritePaths", []):
            rw += [p.lstrip("-") for p in value.split()]
        self.assertIn(self.spool, rw)
        self.assertIn(self.mailboxes, rw)
        # Nothing writable that no default names.
        for p in rw:
            self.assertIn(p, (self.spool, self.mailboxes))

    def test_tmpfiles_makes_them(self):
        t = self.tmpfiles
        self.assertEqual(t.get(self.spool), ("d", "0711", self.user,
                                             self.user))
        self.assertEqual(t.get(os.path.join(self.spool, "maildrop")),
                         ("d", self.maildrop_mode.rjust(4, "0"), self.user,
                          self.user))
        self.assertEqual(t.get(self.mailboxes), ("d", "0700", self.user,
                                                 self.user))
        # Every parent up to one that a Debian system has.
        for p in (self.spool, self.mailboxes):
            parent = os.path.dirname(p)
            while parent not in ("/var/spool", "/var/lib", "/var"):
                self.assertIn(parent, t, "no tmpfiles line makes " + parent)
                self.assertEqual(t[parent][0], "d")
                parent = os.path.dirname(parent)

    def test_sysusers_creates_the_user(self):
        users = [f[1] for f in self.sysusers if f[0] == "u"]
        groups = [f[1] for f in self.sysusers if f[0] == "g"]
        self.assertIn(self.user, users)
        self.assertIn(self.user, groups)
        for f in self.sysusers:
            if f[0] == "u" and f[1] == self.user:
                self.assertIn(self.spool, f, "home of the user")

    def test_example_configuration_names_the_defaults(self):
        with open(os.path.join(ternlib.SRCDIR, "etc", "tern.ini")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^# spool = %s$" % re.escape(self.spool))
        self.assertRegex(text, r"(?m)^# mailboxes = %s$"
                         % re.escape(self.mailboxes))

    def test_man_pages_name_the_same_paths(self):
        known = set(self.tmpfiles) | {self.spool, self.mailboxes}
        for page in ("ternd.8", "tern.ini.5"):
            with open(os.path.join(ternlib.SRCDIR, "man", page)) as f:
                text = f.read()
            with self.subTest(page=page):
                for p in (self.spool, self.mailboxes):
                    self.assertTrue(p in text, "%s does not name %s"
                                    % (page, p))
                # Every tern path under /var a page names is one of
                # these or below (the system's /var/log is not tern's).
                for p in re.findall(r"(/var/(?:mail\b|[\w.-]+/tern\b)"
                                    r"[\w./-]*)", text):
                    p = p.rstrip(".")
                    self.assertTrue(any(p == k or p.startswith(k + "/")
                                        for k in known), "%s names %s"
                                    % (page, p))


if __name__ == "__main__":
    ternlib.main()
