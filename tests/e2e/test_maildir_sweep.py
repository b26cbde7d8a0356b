"""
test_maildir_sweep.py: a delivery to a Maildir removes the files a
crash left in its tmp/ once they are older than 36 hours (neither read
nor written since), keeps younger ones and what is in new/ and cur/, and
looks at a mailbox's tmp/ at most once a day.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import TernTestCase  # noqa: E402

RCPT = "rcpt@local.test"
HOUR = 3600


class Sweep(TernTestCase):

    def setUp(self):
        super().setUp()
        self.t = mailtest.mail_tern(
            self, users=[(RCPT, mailtest.crypt_hash("Unused-pass-1"))])
        # The Maildir made beforehand, as one that has lived through a
        # crash.
        domain = mailtest.make_owned_dir(os.path.join(self.t.mailboxes,
                                                      "local.test"))
        self.box = mailtest.make_owned_dir(os.path.join(domain, "rcpt"))
        for sub in ("tmp", "new", "cur"):
            mailtest.make_owned_dir(os.path.join(self.box, sub))
        self.planted = 0	# files put in new/ by the test itself

    def put(self, sub, name, age_hours):
        path = os.path.join(self.box, sub, name)
        with open(path, "w") as f:
            f.write("half a message\n")
        when = time.time() - age_hours * HOUR
        os.utime(path, (when, when))
        if sub == "new":
            self.planted += 1
        return path

    def send(self, n):
        c = self.t.session()
        r = c.mail("s@remote.test", [RCPT],
                   b"Subject: sweep %d\r\n\r\nHi.\r\n" % n)
        self.assertEqual(r.code, 250, r)
        # Delivered: new/ holds the n messages besides what was put there.
        mailtest.wait_maildir(self.box, n + self.planted)

    def test_old_removed_young_kept(self):
        old = self.put("tmp", "1.crashed.host", 37)
        young = self.put("tmp", "2.writing.host", 35)
        in_new = self.put("new", "3.old.host", 100)
        in_cur = self.put("cur", "4.old.host:2,S", 100)
        self.send(1)
        self.assertFalse(os.path.exists(old))
        for path in (young, in_new, in_cur):
            self.assertTrue(os.path.exists(path), path)
        # Once a day at most: a file made old now stays until tomorrow.
        later = self.put("tmp", "5.crashed.host", 40)
        self.send(2)
        self.assertTrue(os.path.exists(later))

    def test_recently_read_kept(self):
        # Written long ago but read an hour ago: still in use.
        path = self.put("tmp", "6.reading.host", 48)
        os.utime(path, (time.time() - HOUR, time.time() - 48 * HOUR))
        self.send(1)
        self.assertTrue(os.path.exists(path))


if __name__ == "__main__":
    ternlib.main()
