#!/usr/bin/env python3
"""A full spool: no false 250, and recovery when space returns.

The spool is put on a small tmpfs (BENCH_FS_SIZE, default 8m) that the
script mounts in its temporary directory (root is needed for the mount;
it is unmounted at exit).  Messages of BENCH_SIZE octets (256 KiB) go to
a relay domain whose DNS never answers, so each stays in the spool, until
BENCH_REFUSALS answers in a row are refusals (or BENCH_MAX messages were
tried).  Then every message answered 250 is checked in the spool: its
envelope committed and its content whole (the X-Bench-Seq header and the
last body line present).  The filesystem is then grown to four times its
size and BENCH_AFTER more messages must each get 250.

The refusals are counted by where they came (at MAIL, as ternd does with
min_free_space, or after the data) and by reply.  The exit status is 1 on
a false 250, on a message refused after space returned, or when ternd
died.

Settings (environment): TERND, BENCH_FS_SIZE (8m), BENCH_SIZE (262144),
BENCH_MAX (400), BENCH_REFUSALS (10), BENCH_AFTER (10), BENCH_TMPDIR
(/var/tmp), BENCH_KEEP (yes: keep the directory).
"""

import collections
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faultlib import (QUEUED_RE, Ternd, message, remove, say,  # noqa: E402
                      send, tmpdir)

FS_SIZE = os.environ.get("BENCH_FS_SIZE", "8m")
SIZE = int(os.environ.get("BENCH_SIZE", "262144"))
MAX = int(os.environ.get("BENCH_MAX", "400"))
REFUSALS = int(os.environ.get("BENCH_REFUSALS", "10"))
AFTER = int(os.environ.get("BENCH_AFTER", "10"))
KEEP = os.environ.get("BENCH_KEEP", "no") == "yes"


def grow(size):
    n = int(size[:-1]) * 4
    return "%d%s" % (n, size[-1])


def spool_files(spool):
    out = {}
    for d, _, names in os.walk(os.path.join(spool, "queue")):
        for n in names:
            out[n] = os.path.join(d, n)
    return out


def check_message(files, qid, seq):
    """'' when the committed message is whole, else what is wrong."""
    if qid + ".env" not in files:
        return "no envelope"
    if qid + ".msg" not in files:
        return "no content"
    with open(files[qid + ".msg"], "rb") as f:
        data = f.read()
    want = message(seq, SIZE)
    if b"X-Bench-Seq: %d\r\n" % seq not in data:
        return "header missing"
    if not data.endswith(want[-81:]):
        return "content cut short (%d octets)" % len(data)
    return ""


def main():
    if os.geteuid() != 0:
        say("must run as root (it mounts a tmpfs for the spool)")
        return 1
    tmp = tmpdir("tern-fullspool-")
    mnt = os.path.join(tmp, "fs")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755"
                    % FS_SIZE, "tmpfs", mnt], check=True)
    t = None
    ok = False
    try:
        t = Ternd(tmp, spool=os.path.join(mnt, "spool"),
                  smtp={"max_message_size": "64M"})
        t.start()
        say("full spool: tmpfs of %s, messages of %d octets", FS_SIZE,
            SIZE)
        acked = {}
        replies = collections.Counter()
        in_a_row = 0
        seq = 0
        start = time.monotonic()
        while seq < MAX and in_a_row < REFUSALS:
            code, text = send(t.port, seq, SIZE)
            m = QUEUED_RE.match(text)
            if code == "250" and m:
                acked[m.group(1)] = seq
                in_a_row = 0
            else:
                replies[text[:60]] += 1
                in_a_row += 1
            seq += 1
        fill_s = time.monotonic() - start
        files = spool_files(t.spool)
        bad = {}
        for qid, n in acked.items():
            why = check_message(files, qid, n)
            if why:
                bad[qid] = why
        alive = t.proc.poll() is None
        df = subprocess.run(["df", "-k", mnt], stdout=subprocess.PIPE
                            ).stdout.decode().splitlines()[-1]
        say("filled in %.1f s: %d tried, %d answered 250, %d refused; "
            "filesystem: %s", fill_s, seq, len(acked), sum(
                replies.values()), " ".join(df.split()[1:5]))
        for text, n in replies.most_common():
            say("  %4d x %s", n, text)
        say("every 250 checked in the spool: %d whole, %d not%s",
            len(acked) - len(bad), len(bad),
            "".join("\n    %s: %s" % kv for kv in list(bad.items())[:10]))

        subprocess.run(["mount", "-o", "remount,size=%s" % grow(FS_SIZE),
                        mnt], check=True)
        after = collections.Counter()
        for i in range(AFTER):
            code, text = send(t.port, MAX + i, SIZE)
            after["250" if code == "250" else text[:60]] += 1
        say("space back (%s): %d of %d answered 250 %s", grow(FS_SIZE),
            after["250"], AFTER, dict(after))
        alive = alive and t.proc.poll() is None
        print("RESULT tried=%d acked=%d refused=%d false_250=%d "
              "after_space_back=%d/%d ternd_alive=%s"
              % (seq, len(acked), sum(replies.values()), len(bad),
                 after["250"], AFTER, "yes" if alive else "no"))
        ok = not bad and after["250"] == AFTER and alive and \
            sum(replies.values()) > 0
        if sum(replies.values()) == 0:
            say("the spool never filled: raise BENCH_MAX or lower "
                "BENCH_FS_SIZE")
    finally:
        if t is not None:
            t.stop()
        subprocess.run(["umount", mnt])
        remove(tmp, KEEP or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
