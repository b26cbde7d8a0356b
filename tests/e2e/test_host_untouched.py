"""
test_host_untouched.py: the last test of "make check".  The host's
/etc/tern, /var/spool/tern, /var/lib/tern and /var/mail are as they were
before the first test (existence, type, owner, mode and the names they
hold, two levels deep): no test wrote outside its temporary directories.
Makefile.am runs it after every other test and saves the snapshot it
compares with (tests/host-before.txt) before the first.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostcheck  # noqa: E402
import ternlib  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
BEFORE = os.path.join(BUILDDIR, "tests", "host-before.txt")


class HostUntouched(unittest.TestCase):

    def test_host_directories_unchanged(self):
        self.assertTrue(BUILDDIR, "TERN_BUILDDIR is not set")
        self.assertTrue(os.path.isfile(BEFORE), "no snapshot %s: run this "
                        "test through make check" % BEFORE)
        with open(BEFORE) as f:
            before = f.read().splitlines()
        after = hostcheck.snapshot()
        gone = [x for x in before if x not in after]
        new = [x for x in after if x not in before]
        self.assertEqual((gone, new), ([], []),
                         "the host changed during the tests: before %r, "
                         "after %r" % (gone, new))

    def test_snapshot_sees_a_change(self):
        """The comparison can fail: a directory made under a watched
        path shows up in a snapshot."""
        import tempfile
        d = tempfile.mkdtemp(prefix="tern-hostcheck-")
        try:
            out = []
            hostcheck.walk(d, hostcheck.DEPTH, out)
            os.mkdir(os.path.join(d, "mail"), 0o700)
            again = []
            hostcheck.walk(d, hostcheck.DEPTH, again)
            self.assertNotEqual(out, again)
            self.assertTrue(any(x.startswith(os.path.join(d, "mail") +
                                             " dir ") for x in again))
        finally:
            import shutil
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    ternlib.main()
