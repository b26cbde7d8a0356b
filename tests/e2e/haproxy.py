"""
haproxy.py: a real HAProxy in front of ternd for the e2e tests.  HAProxy
(the Debian package) is started by PID in the foreground (-db) with a
configuration generated in a temporary directory: TCP mode, each
frontend on a loopback port of its own, each backend's servers sending
the PROXY protocol (send-proxy or send-proxy-v2).  No stats socket, no
pid file, no log file outside that directory; the object that started
HAProxy stops it.

Only the Python standard library is used.
"""

import os
import shutil
import subprocess
import tempfile
import time

import ternlib

HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def listening(port, host="0100007F"):
    """Whether something listens on 127.0.0.1:port, from /proc/net/tcp:
    no connection is made, so no backend sees one."""
    want = "%s:%04X" % (host, port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


class Server:
    """One backend server: where ternd listens, and how to reach it."""

    def __init__(self, name, port, proxy="send-proxy-v2", source=None,
                 check=True):
        self.name = name
        self.port = port
        self.proxy = proxy		# "send-proxy", "send-proxy-v2", ""
        self.source = source		# the proxy's address towards ternd
        self.check = check

    def line(self, inter):
        words = ["server", self.name, "127.0.0.1:%d" % self.port]
        if self.proxy:
            words.append(self.proxy)
        if self.source:
            words += ["source", self.source]
        if self.check:
            words += ["check", "inter", inter, "fall", "1", "rise", "1"]
        return "    " + " ".join(words)


class HAProxy:
    """frontends: {name: [Server, ...]}; each gets a loopback port of its
    own (ports[name]).  smtpchk: the health check reads the greeting and
    says HELO (option smtpchk), so a 421 marks a server down."""

    def __init__(self, frontends, smtpchk=False, inter="300ms"):
        if not os.access(HAPROXY, os.X_OK):
            raise AssertionError("%s is not installed (Debian package "
                                 "haproxy)" % HAPROXY)
        self.dir = tempfile.mkdtemp(prefix="tern-haproxy-")
        self.conf = os.path.join(self.dir, "haproxy.cfg")
        self.logfile = os.path.join(self.dir, "haproxy.log")
        self.ports = {name: ternlib.free_port() for name in frontends}
        lines = [
            "global",
            "    maxconn 512",
            "    nbthread 1",
            "",
            "defaults",
            "    mode tcp",
            "    timeout connect 3s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout check 2s",
            "    retries 3",
            "    option redispatch",
        ]
        for name, servers in frontends.items():
            lines += ["", "frontend fe_%s" % name,
                      "    bind 127.0.0.1:%d" % self.ports[name],
                      "    default_backend be_%s" % name,
                      "", "backend be_%s" % name,
                      "    balance roundrobin"]
            if smtpchk:
                lines.append("    option smtpchk HELO haproxy.test")
            lines += [s.line(inter) for s in servers]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self.start()

    def start(self):
        check = subprocess.run([HAPROXY, "-c", "-f", self.conf],
                               capture_output=True, timeout=START_TIMEOUT)
        if check.returncode != 0:
            raise AssertionError("haproxy -c: %s%s" % (check.stdout,
                                                       check.stderr))
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(
                [HAPROXY, "-f", self.conf, "-db"], cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while not all(listening(p) for p in self.ports.values()):
            if self.proc.poll() is not None:
                raise AssertionError("haproxy exited with %d: %s"
                                     % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError("haproxy did not listen within %.0fs"
                                     % START_TIMEOUT)
            time.sleep(0.05)

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        ternlib.stop_process(self.proc, STOP_TIMEOUT)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)
