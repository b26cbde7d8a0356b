#!/usr/bin/env python3
"""bigqueue.py: ternd starting on a spool that holds a huge queue.

BENCH_MESSAGES (1000000) committed messages are written straight into a
spool in ternd's layout (one real envelope and content, made by ternd
itself, copied under new ids spread over the last hour, all due now),
then ternd is started with a gateway to a counting SMTP sink.  From the
moment it is started, a client tries to send a message every 50 ms.
Reported: when ternd logged "ready", when the first client got its 250,
when the first queued message reached the sink, how long ternd took to
read the whole queue (its own "queue: N messages read" line), and its
resident memory before and after, per queued message.  The page cache is
warm (the files were just written): a cold start reads from the disk.

Settings (environment): TERND, BENCH_MESSAGES, BENCH_SIZE (content
octets, 1024), BENCH_TIMEOUT (900 s for ternd to read the queue),
BENCH_TMPDIR (/var/tmp), BENCH_KEEP (yes: keep the directory).
Everything is in the temporary directory and on loopback.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import Sink, Ternd, remove, say, send, tmpdir  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "1000000"))
SIZE = int(os.environ.get("BENCH_SIZE", "1024"))
LIMIT = float(os.environ.get("BENCH_TIMEOUT", "900"))
KEEP = os.environ.get("BENCH_KEEP", "no") == "yes"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TAG = "BNCH"


def qid(usec):
    out = []
    for _ in range(11):
        out.append(ALPHABET[usec & 31])
        usec >>= 5
    return "".join(reversed(out)) + TAG


def rss(pid):
    """VmRSS and VmHWM of a process, in KiB."""
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


def template(tmp, spool):
    """One message queued by ternd itself: its envelope and content."""
    os.makedirs(os.path.join(tmp, "first"))
    t = Ternd(os.path.join(tmp, "first"), spool=spool,
              delivery={"gateway": "127.0.0.1:1", "gateway_all": "yes",
                        "starttls": "no", "queue_interval": "1h"})
    try:
        t.start()
        code, text = send(t.port, 0, SIZE)
        if code != "250":
            raise RuntimeError("template message refused: %s" % text)
        base = rss(t.proc.pid)[0]
        m = re.search(r"queued as ([0-9A-Z]+)", text)
        q = m.group(1)
        d = os.path.join(spool, "queue", q[6:8])
        time.sleep(1)
    finally:
        t.stop()
    with open(os.path.join(d, q + ".env"), "rb") as f:
        env = f.read()
    with open(os.path.join(d, q + ".msg"), "rb") as f:
        msg = f.read()
    for ext in ("env", "msg"):
        os.unlink(os.path.join(d, "%s.%s" % (q, ext)))
    return q, env, msg, base


def plant(spool, q0, env, msg, n):
    """n messages in the current layout, due now."""
    owner = os.stat(spool)
    now = int(time.time() * 1e6)
    step = max(1, 3600 * 1000000 // max(n, 1))
    due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    env = re.sub(rb"(?m)^next-attempt: .*$",
                 b"next-attempt: " + due.encode(), env)
    qroot = os.path.join(spool, "queue")
    made = set()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(n):
        q = qid(now - 3600 * 1000000 + i * step)
        d = os.path.join(qroot, q[6:8])
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        for ext, data in (("msg", msg), ("env", env.replace(
                q0.encode(), q.encode()))):
            p = os.path.join(d, "%s.%s" % (q, ext))
            fd = os.open(p, flags, 0o600)
            os.write(fd, data)
            if os.geteuid() == 0:
                os.fchown(fd, owner.st_uid, owner.st_gid)
            os.close(fd)
        if i and i % 100000 == 0:
            say("  %d written", i)


def main():
    tmp = tmpdir("tern-bigqueue-")
    os.chmod(tmp, 0o711)
    spool = os.path.join(tmp, "spool")
    sink = None
    t = None
    ok = False
    try:
        say("big queue: %d messages of %d octets", MESSAGES, SIZE)
        q0, env, msg, base = template(tmp, spool)
        w0 = time.monotonic()
        plant(spool, q0, env, msg, MESSAGES)
        os.sync()
        say("written in %.1f s", time.monotonic() - w0)
        sink = Sink()
        os.makedirs(os.path.join(tmp, "run"))
        t = Ternd(os.path.join(tmp, "run"), spool=spool,
                  delivery={"gateway": "127.0.0.1:%d" % sink.port,
                            "gateway_all": "yes", "starttls": "no",
                            "queue_interval": "1h"})
        got = {}
        stop = threading.Event()

        def prober():
            seq = 1
            while not stop.is_set():
                code, _ = send(t.port, seq, 512, timeout=10)
                seq += 1
                if code == "250":
                    got.setdefault("accept", time.monotonic())
                    return
                time.sleep(0.05)

        t0 = time.monotonic()
        threading.Thread(target=prober, daemon=True).start()
        t.start(timeout=LIMIT)
        got["ready"] = time.monotonic()
        read_re = re.compile(r"queue: ([0-9]+) messages read in ([0-9.]+) s")
        end = t0 + LIMIT
        m = None
        while time.monotonic() < end:
            if "first" not in got and sink.snapshot()[1] > 0:
                got["first"] = time.monotonic()
            m = read_re.search(t.log())
            if m and "accept" in got and "first" in got:
                break
            time.sleep(0.01)
        stop.set()
        if m is None:
            raise RuntimeError("ternd did not finish reading in %.0f s"
                               % LIMIT)
        after, hwm = rss(t.proc.pid)
        n = int(m.group(1))
        say("ready after %.3f s; first client 250 after %.3f s; first "
            "queued message at the sink after %.3f s",
            got["ready"] - t0, got.get("accept", float("nan")) - t0,
            got.get("first", float("nan")) - t0)
        say("ternd read %d messages in %s s (its log); delivered "
            "meanwhile: %d", n, m.group(2), sink.snapshot()[1])
        say("resident memory: %d KiB with an empty queue, %d KiB after "
            "reading (peak %d KiB): %.0f bytes per queued message",
            base, after, hwm, (after - base) * 1024.0 / max(n, 1))
        ok = n == MESSAGES and "accept" in got and "first" in got
        if not ok:
            say("FAILED: read %d of %d, accepted %s, delivered %s", n,
                MESSAGES, "accept" in got, "first" in got)
    finally:
        if t is not None:
            t.stop()
        if sink is not None:
            sink.close()
        r0 = time.monotonic()
        remove(tmp, KEEP)
        say("removed in %.1f s", time.monotonic() - r0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
