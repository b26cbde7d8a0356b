#!/usr/bin/env python3
"""Slowloris: thousands of dribbling connections against one legitimate
client.

BENCH_DRIBBLERS connections (default 4000) from BENCH_SOURCES loopback
addresses (127.0.0.2 and up, default 200) each send a command line that
never ends, one octet every 1 to 3 seconds, and connect again as soon as
ternd closes them.  Meanwhile a legitimate client on 127.0.0.1 opens a
session every BENCH_INTERVAL seconds (0.5), sends one message and quits;
the time to its greeting and to the 250 of its message are recorded, and
so is every session it did not get through.  The run lasts
BENCH_DURATION seconds (60) after the dribblers are all connected.  ternd
runs with its default limits unless BENCH_MAX_CONNECTIONS,
BENCH_COMMAND_TIMEOUT or BENCH_STRESS_TIMEOUT say otherwise.

The summary: the legitimate client's sessions served and not, its
latencies (median, 95th percentile, max), the dribblers' connections and
how long ternd let one hold a session, and what ternctl stats said
(sessions against the budget, stress).  The exit status is 1 when the
legitimate client was not served in at least 90 % of its sessions.

Settings (environment): TERND, BENCH_DRIBBLERS, BENCH_SOURCES,
BENCH_DURATION, BENCH_INTERVAL, BENCH_MAX_CONNECTIONS,
BENCH_COMMAND_TIMEOUT, BENCH_STRESS_TIMEOUT, BENCH_TMPDIR (/var/tmp),
BENCH_KEEP (yes: keep the directory).
"""

import errno
import os
import random
import resource
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import (Ternd, percentile, remove, say, send,  # noqa: E402
                      tmpdir)

DRIBBLERS = int(os.environ.get("BENCH_DRIBBLERS", "4000"))
SOURCES = int(os.environ.get("BENCH_SOURCES", "200"))
DURATION = float(os.environ.get("BENCH_DURATION", "60"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "0.5"))
KEEP = os.environ.get("BENCH_KEEP", "no") == "yes"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


class Dribblers:
    """Every dribbling connection, driven from one selector."""

    def __init__(self, port, n):
        self.port = port
        self.n = n
        self.sel = selectors.DefaultSelector()
        self.conns = {}		# sock -> [next send time, connected at]
        self.opened = 0
        self.cut = 0
        self.failed = 0
        self.held = []		# seconds a session was held before its end
        self.stop = False
        self.src = 0

    def open_one(self):
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        self.src = self.src % SOURCES + 1
        try:
            s.bind(("127.0.0.%d" % (1 + self.src), 0))
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            self.failed += 1
            return
        self.opened += 1
        now = time.monotonic()
        self.conns[s] = [now + random.uniform(1, 3), now]
        self.sel.register(s, selectors.EVENT_READ)

    def drop(self, s):
        self.sel.unregister(s)
        self.held.append(time.monotonic() - self.conns.pop(s)[1])
        s.close()
        self.cut += 1

    def run(self):
        while not self.stop:
            while len(self.conns) < self.n and not self.stop:
                self.open_one()
                if self.opened % 200 == 0:
                    break
            for key, _ in self.sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.drop(s)
            now = time.monotonic()
            for s, st in list(self.conns.items()):
                if st[0] <= now:
                    try:
                        s.send(b"a")
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        if e.errno not in (errno.ENOTCONN,):
                            self.drop(s)
                            continue
                    st[0] = now + random.uniform(1, 3)
        for s in list(self.conns):
            self.sel.unregister(s)
            s.close()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < DRIBBLERS + 200:
        say("the open files limit (%d) is too low for %d dribblers",
            hard, DRIBBLERS)
        return 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    smtp = {}
    for env, key in (("BENCH_MAX_CONNECTIONS", "max_connections"),
                     ("BENCH_COMMAND_TIMEOUT", "command_timeout"),
                     ("BENCH_STRESS_TIMEOUT", "stress_timeout")):
        if os.environ.get(env):
            smtp[key] = os.environ[env]
    tmp = tmpdir("tern-slowloris-")
    t = Ternd(tmp, smtp=smtp)
    d = Dribblers(t.port, DRIBBLERS)
    ok = False
    try:
        t.start()
        budget = [l for l in t.log().splitlines() if "session budget" in l]
        say("slowloris: %d dribblers from %d addresses, %s",
            DRIBBLERS, SOURCES, ", ".join("%s=%s" % kv for kv in
                                          smtp.items()) or "defaults")
        if budget:
            say("%s", budget[-1].split(": ", 1)[1])
        th = threading.Thread(target=d.run, daemon=True)
        th.start()
        ramp = time.monotonic()
        while d.opened < DRIBBLERS and time.monotonic() - ramp < 120:
            time.sleep(0.2)
        say("%d dribblers opened in %.1f s", d.opened,
            time.monotonic() - ramp)
        greet, tx, failures, stats = [], [], {}, []
        end = time.monotonic() + DURATION
        next_stats = 0
        seq = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            s = socket.socket()
            s.settimeout(30)
            try:
                s.connect(("127.0.0.1", t.port))
                g = s.recv(512)
                t1 = time.monotonic()
            except OSError as e:
                g, t1 = b"", None
                failures[str(e)] = failures.get(str(e), 0) + 1
            s.close()
            if t1 is not None and g.startswith(b"220"):
                greet.append(t1 - t0)
                t2 = time.monotonic()
                code, text = send(t.port, seq)
                if code == "250":
                    tx.append(time.monotonic() - t2)
                else:
                    failures[text[:50]] = failures.get(text[:50], 0) + 1
            elif t1 is not None:
                k = g.decode(errors="replace").strip()[:50] or "closed"
                failures[k] = failures.get(k, 0) + 1
            seq += 1
            if time.monotonic() >= next_stats:
                st = t.stats()
                if st:
                    stats.append((st.get("sessions"),
                                  st.get("session_budget"),
                                  st.get("stress"), st.get("bytes_held")))
                next_stats = time.monotonic() + 5
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - t0)))
        d.stop = True
        th.join(30)
        served = len(tx)
        say("legitimate client: %d sessions, %d served (message 250), "
            "not served: %s", seq, served, failures or "none")
        say("  greeting  median %.1f ms, p95 %.1f ms, max %.1f ms",
            1000 * percentile(greet, 50), 1000 * percentile(greet, 95),
            1000 * max(greet or [float("nan")]))
        say("  message   median %.1f ms, p95 %.1f ms, max %.1f ms",
            1000 * percentile(tx, 50), 1000 * percentile(tx, 95),
            1000 * max(tx or [float("nan")]))
        say("dribblers: %d connections made, %d closed by ternd, %d "
            "failed; a closed one had held its session median %.1f s, "
            "max %.1f s", d.opened, d.cut, d.failed,
            percentile(d.held, 50), max(d.held or [0]))
        say("ternctl stats (sessions/budget, stress, bytes held): %s",
            " ".join("%s/%s,%s,%s" % s for s in stats))
        log = t.log()
        say("log: %d stress entries, %d stress exits, %d deadline "
            "timeouts, %d refused at the budget",
            log.count("]: stress: "), log.count("]: stress over: "),
            log.count("timeout after "), log.count("refused connection"))
        print("RESULT legit_sessions=%d served=%d greet_p50_ms=%.1f "
              "greet_p95_ms=%.1f greet_max_ms=%.1f tx_p50_ms=%.1f "
              "tx_p95_ms=%.1f tx_max_ms=%.1f dribbler_conns=%d "
              "dribblers_cut=%d"
              % (seq, served, 1000 * percentile(greet, 50),
                 1000 * percentile(greet, 95),
                 1000 * max(greet or [float("nan")]),
                 1000 * percentile(tx, 50), 1000 * percentile(tx, 95),
                 1000 * max(tx or [float("nan")]), d.opened, d.cut))
        ok = t.proc.poll() is None and seq > 0 and served >= 0.9 * seq
    finally:
        d.stop = True
        t.stop()
        remove(tmp, KEEP or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
