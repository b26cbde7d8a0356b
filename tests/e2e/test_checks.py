"""
test_checks.py: the checks tell the truth.  "ternd -n" and "ternctl
check" open every file the configuration names (certificate and key,
parsed and matching; users; aliases; gateway credentials) and say what
the daemon itself says when it meets the same file, "No such file or
directory" included; "ternctl reload" fails with the daemon's reason
when the new configuration is refused; and "ternctl queue" (and mailq)
works for an ordinary user through the control socket, unless
queue_list says admins only.
"""

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import QID_RE, SANITIZER_RE, TernTestCase  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""
RUN_TIMEOUT = 30.0
SENDER = "sender@sender.test"
ENOENT = "No such file or directory"


def run(cmd, user=None, argv0=None):
    """Run cmd to completion, as user (a pwd entry) when given; (rc,
    stdout, stderr) as text."""
    kw = {}
    if user is not None:
        def drop():
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        kw["preexec_fn"] = drop
    if argv0 is not None:
        kw["executable"] = cmd[0]
        cmd = [argv0] + cmd[1:]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=RUN_TIMEOUT, **kw)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not exit within %.0fs"
                             % (" ".join(cmd), RUN_TIMEOUT))
    err = p.stderr.decode("utf-8", "replace")
    m = SANITIZER_RE.search(err)
    if m:
        raise AssertionError("sanitizer report from %s: %s"
                             % (" ".join(cmd), err[m.start():]))
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


def children(pid):
    """The pids of pid's children, with their states."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append((int(name), fields[0]))
    return out


def ordinary_user():
    """A system user that is neither root nor the daemon's, or None."""
    daemon_uid = mailtest.daemon_ids()[0]
    for name in ("daemon", "bin", "sys", "games", "man"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        if pw.pw_uid not in (0, daemon_uid):
            return pw
    return None


class ChecksCase(TernTestCase):

    def setUp(self):
        super().setUp()
        if not TERNCTL or not os.access(TERNCTL, os.X_OK):
            self.fail("TERN_BUILDDIR does not hold src/ternctl")

    def ctl(self, t, *args, **kw):
        return run([TERNCTL, "-c", t.conf] + list(args), **kw)


class Files(ChecksCase):
    """Each file a configuration names, broken in turn."""

    def setUp(self):
        super().setUp()
        self.t = mailtest.mail_tern(
            self, users=[("alice@local.test", "-")],
            aliases=[("info@local.test", ["alice@local.test"])],
            tls=True, start=False)
        self.other_cert, self.other_key = mailtest.make_cert(
            os.path.join(self.t.dir, "other"), name="other.example")

    def checks(self):
        """(rc, stderr) of ternd -n and of ternctl check, which must
        agree."""
        rc1, _, err1 = ternlib.run_ternd(["-n", "-c", self.t.conf])
        rc2, out2, err2 = self.ctl(self.t, "check")
        self.assertEqual(rc1, rc2, (err1, err2))
        self.assertEqual(err1.replace("ternd: ", "X: "),
                         err2.replace("ternctl: ", "X: "))
        if rc2 == 0:
            self.assertIn("configuration ok: %s" % self.t.conf, out2)
        else:
            self.assertNotIn("ok", out2)
        return rc1, err1

    def daemon_says(self):
        """What ternd itself says starting on this configuration."""
        self.t.install_maildrop()
        rc, _, err = ternlib.run_ternd(["-c", self.t.conf])
        self.assertNotEqual(rc, 0, err)
        return err

    def assert_refused(self, message):
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        self.assertIn("ternd: %s\n" % message, err)
        self.assertIn(message, self.daemon_says())

    def test_good(self):
        rc, err = self.checks()
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")

    def test_missing_certificate(self):
        path = os.path.join(self.t.dir, "nosuch.pem")
        self.t.write_config(smtp={"tls_cert": path})
        self.assert_refused("tls_cert %s: %s" % (path, ENOENT))

    def test_missing_key(self):
        path = os.path.join(self.t.dir, "nosuch.key")
        self.t.write_config(smtp={"tls_key": path})
        self.assert_refused("tls_key %s: %s" % (path, ENOENT))

    def test_key_of_another_certificate(self):
        self.t.write_config(smtp={"tls_key": self.other_key})
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        # OpenSSL finds it loading the key, or tern checking the pair.
        m = re.search(r"ternd: (%s: .*(mismatch|does not match).*)\n"
                      % re.escape(self.other_key), err)
        self.assertIsNotNone(m, err)
        self.assertIn(m.group(1), self.daemon_says())

    def test_certificate_that_does_not_parse(self):
        with open(self.t.users_file) as f:
            text = f.read()
        self.t.write_config(smtp={"tls_cert": self.t.users_file})
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"ternd: %s: certificate"
                         % re.escape(self.t.users_file))
        self.assertNotIn(text.strip(), err)

    def test_missing_users(self):
        os.unlink(self.t.users_file)
        self.assert_refused("%s: %s" % (self.t.users_file, ENOENT))

    def test_missing_aliases(self):
        os.unlink(self.t.aliases_file)
        self.assert_refused("%s: %s" % (self.t.aliases_file, ENOENT))

    def append(self, path, text):
        """Append to a file; the number of its first new line."""
        with open(path) as f:
            n = len(f.read().splitlines())
        with open(path, "a") as f:
            f.write(text)
        return n + 1

    def test_bad_aliases_line(self):
        n = self.append(self.t.aliases_file, "# two\nsome one: alice\n")
        self.assert_refused("%s:%d: not \"name: target, ...\" (one name "
                            "before ':')" % (self.t.aliases_file, n + 1))

    def test_command_alias_is_a_warning(self):
        n = self.append(self.t.aliases_file,
                        "list: \"|/usr/bin/true\", alice\n")
        rc, err = self.checks()
        self.assertEqual(rc, 0, err)
        self.assertIn("ternd: warning: %s:%d: |/usr/bin/true: command "
                      "skipped" % (self.t.aliases_file, n), err)

    def test_missing_gateway_credentials(self):
        path = os.path.join(self.t.dir, "nosuch.auth")
        self.t.write_config(sections={"delivery": {
            "gateway": "127.0.0.9:2525", "gateway_auth_file": path}})
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        self.assertIn("ternd: gateway_auth_file %s: %s\n" % (path, ENOENT),
                      err)

    def test_bad_gateway_credentials(self):
        path = os.path.join(self.t.dir, "gw.auth")
        with open(path, "w") as f:
            f.write("no colon here\n")
        self.t.write_config(sections={"delivery": {
            "gateway": "127.0.0.9:2525", "gateway_auth_file": path}})
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        self.assertIn("gateway_auth_file %s: expected one line "
                      "\"user:password\"" % path, err)
        self.assertNotIn("no colon here", err)

    def test_every_error_at_once(self):
        os.unlink(self.t.users_file)
        path = os.path.join(self.t.dir, "nosuch.pem")
        self.t.write_config(smtp={"tls_cert": path})
        rc, err = self.checks()
        self.assertEqual(rc, 1, err)
        self.assertIn("tls_cert %s: %s" % (path, ENOENT), err)
        self.assertIn("%s: %s" % (self.t.users_file, ENOENT), err)


class Reload(ChecksCase):

    def test_refused_reload_says_why(self):
        t = self.tern()
        # ternctl reads a good copy; the daemon's own file is broken.
        good = os.path.join(t.dir, "good.ini")
        shutil.copy(t.conf, good)
        with open(t.conf, "a") as f:
            f.write("\n[smtp]\nno_such_key = 1\n")
        rc, out, err = run([TERNCTL, "-c", good, "reload"])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"^ternctl: ternd: %s:[0-9]+: .*no_such_key"
                         % re.escape(t.conf))
        self.assertTrue(t.is_running())
        t.wait_log(r"reload failed: .*keeping the old configuration")
        # ternctl on the broken file says so itself, non-zero too.
        rc, out, err = self.ctl(t, "reload")
        self.assertEqual(rc, 1, err)
        self.assertIn("no_such_key", err)
        # A good one again is taken, with no word.
        t.write_config()
        rc, out, err = self.ctl(t, "reload")
        self.assertEqual((rc, out, err), (0, "", ""))

    def test_refused_aliases_say_why(self):
        t = mailtest.mail_tern(self, users=[("alice@local.test", "-")],
                               aliases=[("info@local.test",
                                         ["alice@local.test"])])
        with open(t.aliases_file) as f:
            n = len(f.read().splitlines()) + 1
        with open(t.aliases_file, "a") as f:
            f.write("info@other.example: alice\n")
        rc, out, err = self.ctl(t, "reload")
        self.assertEqual(rc, 1, err)
        self.assertIn("ternctl: ternd: %s:%d: info@other.example: not a "
                      "local domain" % (t.aliases_file, n), err)
        c = t.session()
        c.cmd("MAIL FROM:<%s>" % SENDER)
        self.assertEqual(c.cmd("RCPT TO:<info@local.test>").code, 250)


class Listing(ChecksCase):
    """The queue as an ordinary user sees it: through the daemon."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root to run ternctl as another user")
        self.user = ordinary_user()
        if self.user is None:
            self.skipTest("no system user besides root and the daemon's")

    def queue_one(self, t):
        """A relayed message that stays queued (DNS never answers)."""
        qid = t.send_message(SENDER, ["rcpt@example.test"],
                             b"Subject: listed\r\n\r\nhi\r\n")
        ternlib.wait_for(lambda: qid in t.queued(), ternlib.REPLY_TIMEOUT,
                         "%s in the queue" % qid)
        return qid

    def test_ordinary_user_lists_through_the_daemon(self):
        t = self.tern()
        qid = self.queue_one(t)
        # The premise: this user cannot read the spool itself.
        rc, out, err = run(["ls", t.path("queue")], user=self.user)
        self.assertNotEqual(rc, 0, out)

        as_root = self.ctl(t, "queue")
        self.assertEqual(as_root[0], 0, as_root[2])
        rc, out, err = self.ctl(t, "queue", user=self.user)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, as_root[1])
        self.assertRegex(out, r"^%s  +[0-9]+  .*  %s\n    rcpt@example.test"
                         % (qid, re.escape(SENDER)))
        rc, out, err = self.ctl(t, "queue", "--json", user=self.user)
        self.assertEqual(rc, 0, err)
        listed = json.loads(out)
        self.assertEqual([m["id"] for m in listed], [qid])
        self.assertEqual(listed[0]["sender"], SENDER)
        self.assertEqual(listed[0]["recipients"][0]["address"],
                         "rcpt@example.test")
        t.wait_log(r"control: uid=%d queue" % self.user.pw_uid)
        # Nothing else is allowed to that user.
        for verb in (["stats"], ["flush"], ["release", qid], ["reload"]):
            rc, _, err = self.ctl(t, *verb, user=self.user)
            self.assertEqual(rc, 4, (verb, err))
            self.assertIn("permission denied", err)
        self.assertEqual(t.queued(), [qid])
        self.assertTrue(t.is_running())
        # Each listing's process is gone and reaped, no zombie left.
        ternlib.wait_for(lambda: children(t.proc.pid) == [],
                         ternlib.REPLY_TIMEOUT, "no child of ternd")

    def test_mailq_link(self):
        t = self.tern()
        qid = self.queue_one(t)
        tmp = tempfile.mkdtemp(prefix="tern-e2e-mailq-")
        self.addCleanup(shutil.rmtree, tmp, True)
        os.chmod(tmp, 0o755)
        link = os.path.join(tmp, "mailq")
        os.symlink(TERNCTL, link)
        env = dict(os.environ, TERN_CONFIG=t.conf)
        pw = self.user

        def drop():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
        p = subprocess.run([link], env=env, preexec_fn=drop,
                           capture_output=True, timeout=RUN_TIMEOUT,
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid, p.stdout.decode())

    def test_admins_only(self):
        t = self.tern(main={"queue_list": "admins"})
        qid = self.queue_one(t)
        rc, out, err = self.ctl(t, "queue", user=self.user)
        self.assertEqual(rc, 4, err)
        self.assertIn("permission denied", err)
        self.assertNotIn(qid, out)
        # Root still lists; a reload opens it to everyone.
        self.assertIn(qid, self.ctl(t, "queue")[1])
        t.write_config(main={"queue_list": "anyone"})
        self.assertEqual(self.ctl(t, "reload")[0], 0)
        rc, out, err = self.ctl(t, "queue", user=self.user)
        self.assertEqual(rc, 0, err)
        self.assertIn(qid, out)


if __name__ == "__main__":
    ternlib.main()
