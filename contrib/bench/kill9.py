#!/usr/bin/env python3
"""kill -9 under load: no message answered 250 may be lost.

Clients send numbered messages (X-Bench-Seq) to ternd over loopback while
ternd is killed with SIGKILL every BENCH_KILL_EVERY seconds and started
again, BENCH_KILLS times.  ternd relays everything to a sink (gateway_all)
that counts each number it receives.  At the end ternd runs undisturbed
until every message answered 250 has reached the sink (or
BENCH_DRAIN_TIMEOUT passes).  The summary gives the messages answered
250, those refused or cut off by a kill, those delivered, the duplicates
(a delivery done but not recorded before a kill is done again: at least
once, never lost) and the lost ones, which must be 0: the exit status is
1 otherwise.

Settings (environment): TERND, BENCH_MESSAGES (2000), BENCH_CLIENTS (8),
BENCH_SIZE (2048), BENCH_KILLS (10), BENCH_KILL_EVERY (3 s),
BENCH_DRAIN_TIMEOUT (180 s), BENCH_TIMEOUT (600 s, the whole load),
BENCH_TMPDIR (/var/tmp), BENCH_KEEP (yes: keep the directory).
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import Sink, Ternd, remove, say, send, tmpdir  # noqa: E402

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
SIZE = int(os.environ.get("BENCH_SIZE", "2048"))
KILLS = int(os.environ.get("BENCH_KILLS", "10"))
EVERY = float(os.environ.get("BENCH_KILL_EVERY", "3"))
DRAIN = float(os.environ.get("BENCH_DRAIN_TIMEOUT", "180"))
LIMIT = float(os.environ.get("BENCH_TIMEOUT", "600"))
KEEP = os.environ.get("BENCH_KEEP", "no") == "yes"


def main():
    tmp = tmpdir("tern-kill9-")
    sink = Sink()
    t = Ternd(tmp, delivery={"gateway": "127.0.0.1:%d" % sink.port,
                             "gateway_all": "yes", "starttls": "no",
                             "queue_interval": "5s"})
    lock = threading.Lock()
    state = {"next": 0, "acked": set(), "refused": 0, "cut": 0}
    end = time.monotonic() + LIMIT
    ok = False
    try:
        t.start()
        say("kill -9: %d messages of %d octets over %d clients, ternd "
            "killed every %.1f s, %d times", MESSAGES, SIZE, CLIENTS,
            EVERY, KILLS)

        def worker():
            while time.monotonic() < end:
                with lock:
                    seq = state["next"]
                    if seq >= MESSAGES:
                        return
                    state["next"] += 1
                code, text = send(t.port, seq, SIZE)
                with lock:
                    if code == "250":
                        state["acked"].add(seq)
                    elif code == "---":
                        state["cut"] += 1
                        time.sleep(0.05)
                    else:
                        state["refused"] += 1

        threads = [threading.Thread(target=worker, daemon=True)
                   for _ in range(CLIENTS)]
        start = time.monotonic()
        for th in threads:
            th.start()
        kills = 0
        while kills < KILLS and any(th.is_alive() for th in threads):
            time.sleep(EVERY)
            t.kill9()
            kills += 1
            t.start()
        for th in threads:
            th.join(max(0.0, end - time.monotonic()))
        load_s = time.monotonic() - start
        acked = set(state["acked"])
        say("load done in %.1f s: %d kills, %d sent, %d answered 250, "
            "%d refused, %d cut off", load_s, kills, state["next"],
            len(acked), state["refused"], state["cut"])
        drain_end = time.monotonic() + DRAIN
        next_flush = 0
        while time.monotonic() < drain_end:
            seqs, _ = sink.snapshot()
            if acked <= set(seqs) and not t.queued():
                break
            if time.monotonic() >= next_flush:
                t.ctl("flush")
                next_flush = time.monotonic() + 5
            time.sleep(0.2)
        seqs, total = sink.snapshot()
        delivered = set(seqs)
        lost = sorted(acked - delivered)
        dups = sum(n - 1 for n in seqs.values())
        extra = len(delivered - acked)
        say("delivered %d distinct (%d deliveries): %d duplicates, %d "
            "delivered without a 250 (committed, answer cut by the kill), "
            "%d still queued", len(delivered), total, dups, extra,
            len(t.queued()))
        print("RESULT kills=%d sent=%d acked=%d refused=%d cut=%d "
              "delivered=%d duplicates=%d unacked_delivered=%d lost=%d"
              % (kills, state["next"], len(acked), state["refused"],
                 state["cut"], len(delivered), dups, extra, len(lost)))
        if lost:
            say("LOST: %d messages answered 250 never reached the sink: "
                "%s", len(lost), lost[:20])
        else:
            say("no message answered 250 was lost")
        ok = not lost and len(acked) > 0
    finally:
        t.stop()
        sink.close()
        remove(tmp, KEEP or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
