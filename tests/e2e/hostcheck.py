"""
hostcheck.py: what the host's own tern directories look like, so that a
test run can prove it left them alone.  "make check" saves a snapshot
before the first test (hostcheck.py save FILE) and the last test,
test_host_untouched.py, compares the host with it.

For each directory, and what lies below it two levels deep: whether it
exists, its type, owner, group and mode, and the names it holds.
Contents and times are left out: a real tern running on the host may
deliver meanwhile without that being the tests' doing.
"""

import os
import stat
import sys

PATHS = ["/etc/tern", "/var/spool/tern", "/var/lib/tern", "/var/mail"]
DEPTH = 2


def describe(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "%s absent" % path
    kind = ("dir" if stat.S_ISDIR(st.st_mode) else
            "link" if stat.S_ISLNK(st.st_mode) else
            "file" if stat.S_ISREG(st.st_mode) else "other")
    return "%s %s uid=%d gid=%d mode=%04o" % (path, kind, st.st_uid,
                                             st.st_gid,
                                             stat.S_IMODE(st.st_mode))


def walk(path, depth, out):
    out.append(describe(path))
    if depth == 0 or not os.path.isdir(path) or os.path.islink(path):
        return
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        out.append("%s unreadable: %s" % (path, e.strerror))
        return
    for name in names:
        walk(os.path.join(path, name), depth - 1, out)


def snapshot():
    out = []
    for p in PATHS:
        walk(p, DEPTH, out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "save":
        sys.exit("usage: hostcheck.py save FILE")
    with open(sys.argv[2] + ".tmp", "w") as f:
        f.write("\n".join(snapshot()) + "\n")
    os.rename(sys.argv[2] + ".tmp", sys.argv[2])
