#!/usr/bin/env python3
"""Memory per idle SMTP session.

Opens N SMTP sessions to a server, each one reading the greeting, sending
EHLO and reading the reply, then holding the connection open without a
word more.  The server's memory is read before the first connection and
once every session is idle; the difference divided by the number of idle
sessions is the figure reported.  It never sends mail and never touches
anything but loopback sockets and /proc.

Memory is read one of two ways:
  --pid PID    VmRSS of one process (a single-process server)
  --tree PID   the sum of Pss over PID and all its descendants (a server
               that forks a process per session; Pss shares each shared
               page out among the processes mapping it, so libraries
               are not counted once per process)

With --probe N --rcpt ADDR, N new clients come one after the other
while the idle sessions are held, each from a source address the idle
ones do not use: the time from connect() to the greeting, and to the
250 after a whole transaction (EHLO, MAIL, RCPT to ADDR, DATA of 1 KiB,
the final dot) are reported, median and maximum.

The last line of output is machine readable:
  RESULT sessions=N failed=N dropped=N before_kib=N after_kib=N
         per_session_kib=X setup_s=X
         [probes=N greet_ms_p50=X greet_ms_max=X tx_ms_p50=X tx_ms_max=X]
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

CONNECTING, GREETING, EHLO, IDLE = range(4)


def status_kib(pid, key):
    """The value in kB of KEY in /proc/PID/status, or 0 when gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    """Pss of one process in kB (0 when it is gone or unreadable)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root):
    """ROOT and every process below it."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces; the fields after it do not.
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kib(args):
    if args.pid:
        return status_kib(args.pid, "VmRSS")
    return sum(pss_kib(p) for p in descendants(args.tree))


class Session:
    __slots__ = ("sock", "state", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.buf = b""


def reply_done(buf):
    """(code, text) once BUF holds a whole reply, else None."""
    lines = buf.split(b"\r\n")
    for line in lines[:-1]:
        if len(line) < 3 or line[3:4] != b"-":
            return line[:3], line.decode("ascii", "replace")
    return None


def probe(args, src):
    """One new client: milliseconds to the greeting and to the 250 of a
    whole transaction."""
    t0 = time.monotonic()
    sock = socket.create_connection((args.host, args.port), timeout=30,
                                    source_address=(src, 0))
    f = sock.makefile("rb")

    def expect(code):
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("probe: connection closed")
            if line[3:4] != b"-":
                break
        if not line.startswith(code):
            raise RuntimeError("probe: %r" % line)

    try:
        expect(b"220")
        greet = time.monotonic() - t0
        for cmd, code in ((b"EHLO probe.bench.test", b"250"),
                          (b"MAIL FROM:<probe@bench.test>", b"250"),
                          (b"RCPT TO:<%s>" % args.rcpt.encode(), b"250"),
                          (b"DATA", b"354")):
            sock.sendall(cmd + b"\r\n")
            expect(code)
        sock.sendall(b"Subject: probe\r\n\r\n" +
                     (b"x" * 76 + b"\r\n") * 13 + b".\r\n")
        expect(b"250")
        tx = time.monotonic() - t0
        sock.sendall(b"QUIT\r\n")
    finally:
        f.close()
        sock.close()
    return greet * 1000, tx * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--sessions", type=int, default=10000)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--sources", type=int, default=200,
                    help="bind to 127.0.0.1 .. 127.0.0.SOURCES in turn")
    ap.add_argument("--concurrency", type=int, default=256,
                    help="sessions being set up at one time")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds allowed to open every session")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="seconds to wait before reading memory again")
    ap.add_argument("--helo", default="client.bench.test")
    ap.add_argument("--probe", type=int, default=0,
                    help="new clients to time while the sessions are held")
    ap.add_argument("--rcpt", default="probe@example.org",
                    help="the probes' recipient")
    who = ap.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", type=int)
    who.add_argument("--tree", type=int)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.sessions + 64
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            sys.exit("idle_sessions: %d sessions need %d descriptors; "
                     "the hard limit is %d" % (args.sessions, need, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    before = memory_kib(args)
    sel = selectors.DefaultSelector()
    ehlo = ("EHLO %s\r\n" % args.helo).encode("ascii")
    started = opened = idle = failed = dropped = 0
    busy = 0
    errors = {}
    start = time.monotonic()
    deadline = start + args.timeout

    def fail(s, why):
        nonlocal failed, busy
        failed += 1
        busy -= 1
        errors[why] = errors.get(why, 0) + 1
        sel.unregister(s.sock)
        s.sock.close()

    while idle + failed < args.sessions:
        while busy < args.concurrency and started < args.sessions:
            src = "127.0.0.%d" % (1 + started % args.sources)
            started += 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_IP,
                                IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src, 0))
            except OSError as e:
                sock.close()
                failed += 1
                errors["bind: " + e.strerror] = \
                    errors.get("bind: " + e.strerror, 0) + 1
                continue
            err = sock.connect_ex((args.host, args.port))
            s = Session(sock)
            busy += 1
            if err not in (0, errno.EINPROGRESS):
                sel.register(sock, selectors.EVENT_READ, s)
                fail(s, "connect: " + os.strerror(err))
                continue
            sel.register(sock, selectors.EVENT_WRITE, s)
        if time.monotonic() > deadline:
            break
        for key, _ in sel.select(timeout=1.0):
            s = key.data
            if s.state == IDLE:
                # A session that was idle spoke or closed: it was dropped.
                dropped += 1
                idle -= 1
                busy += 1
                fail(s, "dropped while idle")
                continue
            if s.state == CONNECTING:
                err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(s, "connect: " + os.strerror(err))
                    continue
                opened += 1
                s.state = GREETING
                sel.modify(s.sock, selectors.EVENT_READ, s)
                continue
            try:
                data = s.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                fail(s, "recv: " + e.strerror)
                continue
            if not data:
                fail(s, "closed by server")
                continue
            s.buf += data
            r = reply_done(s.buf)
            if r is None:
                continue
            code, text = r
            s.buf = b""
            if s.state == GREETING:
                if code != b"220":
                    fail(s, text[:60])
                    continue
                s.sock.send(ehlo)
                s.state = EHLO
            elif s.state == EHLO:
                if code != b"250":
                    fail(s, text[:60])
                    continue
                s.state = IDLE
                s.buf = None
                busy -= 1
                idle += 1
    setup = time.monotonic() - start
    if idle + failed < args.sessions:
        print("idle_sessions: timed out after %.0fs with %d sessions "
              "still being set up" % (setup, args.sessions - idle - failed))

    end = time.monotonic() + args.settle
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(timeout=left):
            s = key.data
            if s.state == IDLE:
                dropped += 1
                idle -= 1
                busy += 1
            fail(s, "dropped while idle")
    after = memory_kib(args)

    greets, txs = [], []
    for i in range(args.probe):
        # Sources past those of the idle sessions: no per-address limit
        # of theirs applies.
        g, t = probe(args, "127.0.1.%d" % (1 + i % 250))
        greets.append(g)
        txs.append(t)

    for why, n in sorted(errors.items(), key=lambda kv: -kv[1]):
        print("idle_sessions: %d x %s" % (n, why))
    per = (after - before) / idle if idle else 0.0
    print("idle_sessions: %d idle sessions (of %d), set up in %.1fs; "
          "memory %d KiB -> %d KiB" % (idle, args.sessions, setup,
                                       before, after))
    extra = ""
    if greets:
        greets.sort()
        txs.sort()
        print("idle_sessions: %d new clients while they were held: "
              "greeted in %.1f ms (median; max %.1f), a transaction's 250 "
              "in %.1f ms (max %.1f)" % (
                  len(greets), greets[len(greets) // 2], greets[-1],
                  txs[len(txs) // 2], txs[-1]))
        extra = (" probes=%d greet_ms_p50=%.1f greet_ms_max=%.1f "
                 "tx_ms_p50=%.1f tx_ms_max=%.1f" % (
                     len(greets), greets[len(greets) // 2], greets[-1],
                     txs[len(txs) // 2], txs[-1]))
    print("RESULT sessions=%d failed=%d dropped=%d before_kib=%d "
          "after_kib=%d per_session_kib=%.2f setup_s=%.1f%s" %
          (idle, failed - dropped, dropped, before, after, per, setup,
           extra))
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return 0 if idle == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
