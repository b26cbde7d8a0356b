"""
test_privileges.py: ternd started as root binds, opens its spool, then
becomes the configured user and group for good (every uid and gid, the
supplementary groups); what it writes to the spool belongs to that user;
a spool owned by someone else or writable by others, and an unknown user,
stop it with a precise message; started as a normal user it stays that
user.  Needs root: skipped otherwise.
"""

import os
import re
import pwd
import grp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import TernTestCase, queued_id  # noqa: E402

MSG = b"Subject: privileges\r\n\r\nHello.\r\n"
IS_ROOT = os.geteuid() == 0
NOT_ROOT = "needs root: the privilege drop only happens when started as root"


def proc_ids(pid):
    """The Uid, Gid (real, effective, saved, fs) and Groups of a process."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = [int(v) for v in value.split()]
    return ids


@unittest.skipUnless(IS_ROOT, NOT_ROOT)
class PrivilegesTest(TernTestCase):

    def setUp(self):
        super().setUp()
        # A throw-away system user and group, so the test proves the
        # configured names are used and not some built-in id.
        self.user = "terntest%d" % os.getpid()
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--user-group", "--shell", "/usr/sbin/nologin",
                        self.user], check=True, stdout=subprocess.DEVNULL)
        self.addCleanup(self._remove_user)
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.assertEqual(grp.getgrgid(self.gid).gr_name, self.user)

    def _remove_user(self):
        subprocess.run(["userdel", self.user], stderr=subprocess.DEVNULL)
        subprocess.run(["groupdel", self.user], stderr=subprocess.DEVNULL)

    def assert_runs_as(self, pid):
        ids = proc_ids(pid)
        self.assertEqual(ids["Uid"], [self.uid] * 4, ids)
        self.assertEqual(ids["Gid"], [self.gid] * 4, ids)
        self.assertEqual(ids["Groups"], [self.gid], ids)

    def test_drop_and_spool_ownership(self):
        t = self.tern(main={"user": self.user})
        self.assert_runs_as(t.proc.pid)
        t.wait_log(r"running as %s \(uid %d, gid %d\)"
                   % (self.user, self.uid, self.gid))
        s = t.session()
        qid = queued_id(s.mail("a@example.test", ["b@local.test"], MSG))
        s.close()
        found = []
        for root, dirs, files in os.walk(t.path("queue")):
            for name in files:
                if name.startswith(qid + "."):
                    found.append(os.path.join(root, name))
        self.assertTrue(any(f.endswith(".msg") for f in found), found)
        self.assertTrue(any(f.endswith(".env") for f in found), found)
        for path in found + [t.spool, t.path("queue"),
                             os.path.dirname(found[0])]:
            st = os.stat(path)
            self.assertEqual((st.st_uid, st.st_gid), (self.uid, self.gid),
                             path)

    def test_root_leftovers_handed_over(self):
        """A queue directory and message that root left behind are the
        run-as user's after a start (the messages below a directory are
        walked only when something above them was root's)."""
        t = self.tern(main={"user": self.user})
        s = t.session()
        qid = queued_id(s.mail("a@example.test", ["b@local.test"], MSG))
        s.close()
        self.assertEqual(t.stop(), 0)
        d = t.path("queue", ternlib.qdir(qid))
        for p in [d] + [os.path.join(d, n) for n in os.listdir(d)]:
            os.chown(p, 0, 0)
        t.start()
        for p in [d] + [os.path.join(d, n) for n in os.listdir(d)]:
            st = os.stat(p)
            self.assertEqual((st.st_uid, st.st_gid), (self.uid, self.gid),
                             p)
        t.wait_log(r"queue: 1 messages read in ")
        self.assertNotIn("Permission denied", t.log())

    def test_reload_keeps_listeners(self):
        t = self.tern(main={"user": self.user})
        old = t.port
        t.write_config(smtp={"listen": "127.0.0.1:%d" % ternlib.free_port()})
        t.reload(expect=r"listen cannot change after dropping root")
        t.wait_log(r"configuration reloaded")
        s = t.session()
        qid = queued_id(s.mail("a@example.test", ["b@local.test"], MSG))
        s.close()
        self.assertEqual(t.port, old)
        self.assertIn(qid, t.queued())
        self.assert_runs_as(t.proc.pid)

    def test_group_key(self):
        gname = "nogroup" if self._has_group("nogroup") else "nobody"
        gid = grp.getgrnam(gname).gr_gid
        t = self.tern(main={"user": self.user, "group": gname})
        ids = proc_ids(t.proc.pid)
        self.assertEqual(ids["Uid"], [self.uid] * 4, ids)
        self.assertEqual(ids["Gid"], [gid] * 4, ids)
        self.assertEqual(ids["Groups"], [gid], ids)

    @staticmethod
    def _has_group(name):
        try:
            grp.getgrnam(name)
            return True
        except KeyError:
            return False

    def _fails(self, t, regex):
        t.start(wait=False)
        rc = t.wait_exit()
        self.assertNotEqual(rc, 0)
        t.wait_log(regex)

    def test_spool_owned_by_another_user(self):
        t = self.tern(main={"user": self.user}, start=False)
        os.chown(t.spool, 65534, 65534)
        self._fails(t, r"spool %s: owned by uid 65534, expected %s "
                       r"\(uid %d\)" % (t.spool, self.user, self.uid))

    def test_spool_world_writable(self):
        t = self.tern(main={"user": self.user}, start=False)
        os.chmod(t.spool, 0o777)
        self._fails(t, r"spool %s: mode 0777 is group/world writable"
                    % t.spool)

    def test_maildrop_missing(self):
        """Started as root, ternd never makes maildrop/ (the unit would
        not let it): it names the directory and the command."""
        t = self.tern(main={"user": self.user}, start=False)
        t.install_maildrop = lambda: None
        md = t.path("maildrop")
        self._fails(t, r"%s: No such file or directory; create it: "
                    r"install -d -o %s -g %s -m 3733 %s$"
                    % (md, self.user, self.user, md))
        self.assertFalse(os.path.exists(md))

    def test_maildrop_wrong_mode(self):
        t = self.tern(main={"user": self.user}, start=False)
        md = t.path("maildrop")
        os.mkdir(md, 0o700)
        os.chown(md, self.uid, self.gid)
        os.chmod(md, 0o700)
        self._fails(t, r"%s: mode 0700, expected 3733; run: chmod 3733 %s$"
                    % (md, md))
        self.assertEqual(os.stat(md).st_mode & 0o7777, 0o700)

    def test_maildrop_wrong_owner(self):
        t = self.tern(main={"user": self.user}, start=False)
        md = t.path("maildrop")
        os.mkdir(md)
        os.chmod(md, 0o3733)
        self._fails(t, r"%s: owned by uid 0 gid 0, expected %s:%s; run: "
                    r"chown %s:%s %s$" % (md, self.user, self.user,
                                          self.user, self.user, md))
        self.assertEqual(os.stat(md).st_uid, 0)

    def test_mailboxes_of_another_user_warned(self):
        t = self.tern(main={"user": self.user}, start=False)
        os.mkdir(t.mailboxes, 0o700)
        os.chown(t.mailboxes, 65534, 65534)
        t.start()
        t.wait_log(r"mailboxes %s: owned by \S+ \(uid 65534\), but ternd "
                   r"runs as %s \(uid %d\): local delivery will fail; run: "
                   r"chown %s %s" % (t.mailboxes, self.user, self.uid,
                                      self.user, t.mailboxes))
        self.assertEqual(os.stat(t.mailboxes).st_uid, 65534)

    def test_unreachable_mailboxes_warned(self):
        # Under a directory only root may pass, as a quick start run by
        # root from /root would have it.
        t = self.tern(main={"user": self.user}, start=False)
        locked = os.path.join(t.dir, "locked")
        os.mkdir(locked, 0o700)
        box = os.path.join(locked, "mail")
        os.mkdir(box, 0o700)
        os.chown(box, self.uid, self.gid)
        t.write_config(sections={"local": {"mailboxes": box}})
        t.start()
        t.wait_log(r"mailboxes %s: Permission denied for %s once root is "
                   r"dropped: let that user through every directory above "
                   r"it \(chmod o\+x\) or choose another path"
                   % (re.escape(box), self.user))
        self.assertNotIn("spool %s: Permission denied" % t.spool, t.log())

    def test_own_mailboxes_not_warned(self):
        t = self.tern(main={"user": self.user})
        self.assertEqual(os.stat(t.mailboxes).st_uid, self.uid)
        self.assertNotIn("local delivery will fail", t.log())
        self.assertNotIn("once root is dropped", t.log())

    def test_unknown_user(self):
        t = self.tern(main={"user": "nosuchuser-tern"}, start=False)
        self._fails(t, r'user: unknown user "nosuchuser-tern"')

    def test_unknown_group(self):
        t = self.tern(main={"user": self.user, "group": "nosuchgroup-tern"},
                      start=False)
        self._fails(t, r'group: unknown group "nosuchgroup-tern"')

    def test_root_user_refused(self):
        t = self.tern(main={"user": "root"}, start=False)
        self._fails(t, r'user: "root" is root')

    def test_started_as_normal_user(self):
        d = tempfile.mkdtemp(prefix="tern-e2e-priv-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o711)
        spool = os.path.join(d, "spool")
        os.mkdir(spool, 0o700)
        os.chown(spool, self.uid, self.gid)
        port = ternlib.free_port()
        conf = os.path.join(d, "tern.ini")
        with open(conf, "w") as f:
            # user names someone else: ignored when not started as root.
            f.write("[main]\nspool = %s\nlog = stderr\ndebug = yes\n"
                    "user = nosuchuser-tern\n[smtp]\n"
                    "listen = 127.0.0.1:%d\n" % (spool, port))
        os.chmod(conf, 0o644)
        log = open(os.path.join(d, "ternd.log"), "wb")
        p = subprocess.Popen(["setpriv", "--reuid=%d" % self.uid,
                              "--regid=%d" % self.gid, "--init-groups",
                              ternlib.TERND, "-c", conf],
                             stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT)
        log.close()
        try:
            deadline = time.monotonic() + ternlib.START_TIMEOUT
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if p.poll() is not None or time.monotonic() > deadline:
                        with open(os.path.join(d, "ternd.log")) as f:
                            self.fail("ternd did not start: %s" % f.read())
                    time.sleep(0.05)
            self.assert_runs_as(p.pid)
            # An ordinary user makes its own maildrop/, no privilege
            # involved.
            st = os.stat(os.path.join(spool, "maildrop"))
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                             (self.uid, self.gid, 0o3733))
        finally:
            p.terminate()
            p.wait(ternlib.STOP_TIMEOUT)
        with open(os.path.join(d, "ternd.log")) as f:
            text = f.read()
        self.assertIn("not started as root", text)
        self.assertEqual(p.returncode, 0, text)


if __name__ == "__main__":
    ternlib.main()
