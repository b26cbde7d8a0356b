#!/usr/bin/env python3
"""
proxy.py: acceptance and relay throughput behind HAProxy with the PROXY
protocol, ternd against Postfix, on the same machine in the same run.
See contrib/bench/README.

    contrib/bench/proxy.py [--messages N] [--sessions N] [--size N]
                           [--no-direct] [--keep]

One HAProxy (TCP mode, send-proxy-v2 to every server) stands in front of
four servers: ternd and Postfix each in accept mode (the message is
committed and answered 250, then waits: ternd for a DNS answer that
never comes, Postfix in its hold queue) and in relay mode (every message
goes on to an smtp-sink of the server's own).  ternd listens with
"proxy:" and proxy_networks, Postfix with smtpd_upstream_proxy_protocol
= haproxy; each also has a plain listener, measured too (--no-direct
skips it) so that the cost of the proxy hop shows.  smtp-source sends
the messages through HAProxy; a run ends when every message is in the
spool (accept) or at the sink (relay).  Printed per run: messages per
second, the ratio tern/Postfix, and the load average at its end.

Everything runs on loopback, in a temporary directory under --tmp
(default /var/tmp, a real disk), and is stopped and removed at exit;
every process is started and stopped by its PID (ternd through
faultlib.py, from $TERND or build/src/ternd), Postfix by its own
"postfix -c DIR stop".  The system's mail service is never touched.
Needs root (Postfix's daemons run as the postfix user), and the Debian
packages postfix (smtp-source, smtp-sink) and haproxy.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultlib  # noqa: E402
from faultlib import free_port, say  # noqa: E402

SOURCE = "/usr/sbin/smtp-source"
SINK = "/usr/sbin/smtp-sink"
HAPROXY = "/usr/sbin/haproxy"
RUN_TIMEOUT = 600

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def wait_port(port, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("bench: nothing listens on 127.0.0.1:%d" % port)


def count_files(top, suffix=""):
    n = 0
    for _, _, files in os.walk(top):
        n += sum(1 for f in files if f.endswith(suffix))
    return n


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


class Bench:

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="tern-bench-proxy.",
                                    dir=args.tmp)
        os.chmod(self.dir, 0o755)
        self.procs = []		# (name, Popen) we started
        self.postfixes = []	# configuration directories
        self.terns = []		# faultlib.Ternd

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, name, argv, **kw):
        out = open(self.path(name + ".out"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, **kw)
        out.close()
        self.procs.append((name, p))
        return p

    def close(self, failed):
        for t in self.terns:
            t.stop()
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    say("%s did not stop on SIGTERM; killing it", name)
                    p.kill()
                    p.wait(10)
        for etc in self.postfixes:
            subprocess.run(["postfix", "-c", etc, "stop"],
                           capture_output=True)
            pidfile = os.path.join(os.path.dirname(etc), "queue", "pid",
                                   "master.pid")
            end = time.monotonic() + 10
            while os.path.exists(pidfile) and time.monotonic() < end:
                try:
                    with open(pidfile) as f:
                        os.kill(int(f.read().split()[0]), 0)
                except (OSError, ValueError):
                    break
                time.sleep(0.1)
        if self.args.keep or failed:
            say("kept %s", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- servers --------------------------------------------------------

    def sink(self, name):
        """An smtp-sink counting messages (-c) on its stdout."""
        port = free_port()
        d = self.path("sink-" + name)
        os.mkdir(d)
        shutil.chown(d, "nobody")
        out = open(os.path.join(d, "count.out"), "wb")
        p = subprocess.Popen([SINK, "-u", "nobody", "-c",
                              "127.0.0.1:%d" % port, "256"],
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.DEVNULL)
        out.close()
        self.procs.append(("smtp-sink " + name, p))
        wait_port(port)
        return port, os.path.join(d, "count.out")

    @staticmethod
    def sink_count(counter):
        with open(counter, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            found = re.findall(rb"mesg=(\d+)\r", f.read())
        return int(found[-1]) if found else 0

    def ternd(self, name, sink_port=None):
        """A ternd (faultlib.py) with a plain and a proxy: listener."""
        d = self.path(name)
        os.mkdir(d)
        direct, proxied = free_port(), free_port()
        t = faultlib.Ternd(d, smtp={
            "listen": "127.0.0.1:%d proxy:127.0.0.1:%d" % (direct,
                                                          proxied),
            "proxy_networks": "127.0.0.1/32",
            "max_connections": "2000"},
            delivery={"gateway": "127.0.0.1:%d" % sink_port,
                      "gateway_all": "yes"} if sink_port else None)
        if os.geteuid() == 0:
            maildrop = os.path.join(t.spool, "maildrop")
            os.makedirs(maildrop, exist_ok=True)
            os.chown(maildrop, 65534, 65534)
            os.chmod(maildrop, 0o3733)
        t.start()
        self.terns.append(t)
        return {"name": name, "kind": "tern", "direct": direct,
                "proxied": proxied, "pid": t.proc.pid,
                "queued": lambda: len(t.queued())}

    def postfix(self, name, sink_port=None):
        d = self.path(name)
        etc, queue, data = (os.path.join(d, x) for x in
                            ("etc", "queue", "data"))
        for x in (etc, queue, data):
            os.makedirs(x)
        shutil.chown(data, "postfix")
        os.chmod(data, 0o700)
        direct, proxied = free_port(), free_port()
        mode = ("relayhost = [127.0.0.1]:%d\n" % sink_port if sink_port
                else "in_flow_delay = 0\nsmtpd_data_restrictions = "
                "check_client_access static:HOLD\n")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("""compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
maillog_file_prefixes = %s
maillog_file = %s/maillog
syslog_name = postfix-bench
biff = no
%s""" % (queue, data, d, d, mode))
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd\n" % direct)
            f.write("127.0.0.1:%d inet n - n - - smtpd -o "
                    "smtpd_upstream_proxy_protocol=haproxy\n" % proxied)
            f.write(MASTER_CF)
        for verb in ("check", "start"):
            r = subprocess.run(["postfix", "-c", etc, verb],
                               capture_output=True, text=True)
            if verb == "start":
                self.postfixes.append(etc)
            if r.returncode != 0:
                raise SystemExit("bench: postfix %s: %s%s" % (
                    verb, r.stdout, r.stderr))
        wait_port(direct)
        with open(os.path.join(queue, "pid", "master.pid")) as f:
            pid = int(f.read().split()[0])
        qdir = os.path.join(queue, "hold" if not sink_port else "")

        def queued():
            if not sink_port:
                return count_files(qdir)
            return sum(count_files(os.path.join(queue, q)) for q in
                       ("maildrop", "incoming", "active", "deferred"))
        return {"name": name, "kind": "postfix", "direct": direct,
                "proxied": proxied, "pid": pid, "queued": queued}

    def haproxy(self, servers):
        """One frontend per server, send-proxy-v2, no checks."""
        lines = ["global", "    maxconn 4000", "    nbthread 1", "",
                 "defaults", "    mode tcp", "    timeout connect 5s",
                 "    timeout client 120s", "    timeout server 120s"]
        for s in servers:
            s["front"] = free_port()
            lines += ["", "listen %s" % s["name"],
                      "    bind 127.0.0.1:%d" % s["front"],
                      "    server s 127.0.0.1:%d send-proxy-v2"
                      % s["proxied"]]
        conf = self.path("haproxy.cfg")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.spawn("haproxy", [HAPROXY, "-f", conf, "-db"], cwd=self.dir)
        for s in servers:
            wait_port(s["front"])

    # --- runs -----------------------------------------------------------

    def run(self, server, port, done, what):
        """smtp-source through port; wait until done() says how many of
        the messages arrived; the rate."""
        a = self.args
        base = done()
        t0 = time.monotonic()
        src = self.spawn("source-%s-%s" % (server["name"], what),
                         [SOURCE, "-N", "-s", str(a.sessions), "-m",
                          str(a.messages), "-l", str(a.size), "-M",
                          "client.bench.test", "-f", "sender@bench.test",
                          "-t", "rcpt@relay.bench.test",
                          "127.0.0.1:%d" % port])
        while done() - base < a.messages:
            if time.monotonic() - t0 > RUN_TIMEOUT:
                raise SystemExit("bench: %s %s: %d of %d after %ds" % (
                    server["name"], what, done() - base, a.messages,
                    RUN_TIMEOUT))
            if src.poll() not in (None, 0):
                raise SystemExit("bench: smtp-source for %s failed"
                                 % server["name"])
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        src.wait(60)
        return a.messages / elapsed, elapsed, loadavg()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tmp", default=os.environ.get("BENCH_TMPDIR",
                                                    "/var/tmp"))
    ap.add_argument("--no-direct", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    for prog in (SOURCE, SINK, HAPROXY, faultlib.TERND):
        if not os.access(prog, os.X_OK):
            raise SystemExit("bench: %s is missing (Debian packages "
                             "postfix and haproxy; a built ternd)" % prog)
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (Postfix's daemons)")
    b = Bench(args)
    failed = True
    try:
        tsink, tcount = b.sink("tern")
        psink, pcount = b.sink("postfix")
        servers = [b.ternd("tern-accept"), b.postfix("postfix-accept"),
                   b.ternd("tern-relay", tsink),
                   b.postfix("postfix-relay", psink)]
        b.haproxy(servers)
        say("%d CPUs, %d messages of %d octets, %d sessions, a new "
            "connection per message; spools in %s" % (
                os.cpu_count(), args.messages, args.size, args.sessions,
                b.dir))
        results = {}
        paths = [("haproxy", "front")] + ([] if args.no_direct else
                                          [("direct", "direct")])
        for s in servers:
            mode = s["name"].split("-")[1]
            if mode == "accept":
                done = s["queued"]
            else:
                counter = tcount if s["kind"] == "tern" else pcount
                done = (lambda c=counter: Bench.sink_count(c))
            for path, key in paths:
                say("%s %s ...", s["name"], path)
                results[(s["kind"], mode, path)] = b.run(s, s[key], done,
                                                         path)
        print()
        for mode in ("accept", "relay"):
            for path, _ in paths:
                t = results[("tern", mode, path)]
                p = results[("postfix", mode, path)]
                print("== %s, %s: tern %.1f msg/s (%.1f s, load %s), "
                      "postfix %.1f msg/s (%.1f s, load %s), ratio "
                      "tern/postfix %.2f" % (
                          mode, "through HAProxy (PROXY v2)"
                          if path == "haproxy" else "direct",
                          t[0], t[1], t[2], p[0], p[1], p[2], t[0] / p[0]))
        failed = False
    finally:
        b.close(failed)


if __name__ == "__main__":
    main()
