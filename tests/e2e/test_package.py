"""
test_package.py: tern's Debian package.  contrib/build-deb.sh builds
it with dpkg-buildpackage from a copy of the source tree (contrib/debian
as debian/); lintian finds no error in it; installed with dpkg -i into
a Debian system booting systemd in a container (container.py), it
creates the user, the spool and the mailbox root, enables and starts
tern, takes mail over SMTP and through /usr/sbin/sendmail, keeps
/etc/tern/tern.ini as a conffile and the spool on remove, and purges
them on purge.  Needs root, dpkg-dev, debhelper and lintian.

The package and lintian's report are kept in the build tree
(tests/container/deb-KEY), KEY a digest of the sources: they are made
again exactly when a source file changes (some two minutes on two
cores), and a run on unchanged sources only boots and installs.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import container  # noqa: E402
import ternlib  # noqa: E402

BUILD_TIMEOUT = 1200
LINTIAN_TIMEOUT = 300
TOOLS = ["dpkg-buildpackage", "dh", "lintian", "fakeroot"]


def source_key():
    """A digest of the sources contrib/build-deb.sh packages (names and
    contents), so that a package is built again exactly when they
    change."""
    src = os.path.abspath(container.SRCDIR)
    names = None
    if os.path.exists(os.path.join(src, ".git")) and shutil.which("git"):
        p = subprocess.run(["git", "-C", src, "ls-files", "-z", "--cached",
                            "--others", "--exclude-standard"],
                           capture_output=True, timeout=60)
        if p.returncode == 0:
            names = [n.decode() for n in p.stdout.split(b"\0") if n]
    if names is None:
        names = []
        for d, dirs, files in os.walk(src):
            dirs[:] = [x for x in dirs if not x.startswith((".git", "build",
                                                            "autom4te"))]
            names += [os.path.relpath(os.path.join(d, f), src)
                      for f in files]
    h = hashlib.sha256()
    for n in sorted(names):
        path = os.path.join(src, n)
        if not os.path.isfile(path):
            continue
        h.update(n.encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def cached_package():
    """The package of these sources and lintian's report on it, from the
    cache in the build tree, built (and checked) when the sources
    changed: (deb, changes, lintian output)."""
    cache = os.path.join(container.BUILDDIR, "tests", "container")
    os.makedirs(cache, exist_ok=True)
    d = os.path.join(cache, "deb-" + source_key())
    if not os.path.isfile(os.path.join(d, "lintian.txt")):
        for name in os.listdir(cache):
            if name.startswith("deb-"):
                shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
        tmp = d + ".tmp"
        os.makedirs(tmp)
        build_package(tmp)
        changes = glob.glob(os.path.join(tmp, "tern_*.changes"))[0]
        p = subprocess.run(["lintian", "--tag-display-limit", "0",
                            changes], capture_output=True, text=True,
                           timeout=LINTIAN_TIMEOUT)
        if p.returncode not in (0, 1, 2):
            raise AssertionError("lintian failed: " + p.stderr)
        with open(os.path.join(tmp, "lintian.txt"), "w") as f:
            f.write(p.stdout)
        os.rename(tmp, d)
    debs = glob.glob(os.path.join(d, "tern_*.deb"))
    changes = glob.glob(os.path.join(d, "tern_*.changes"))
    with open(os.path.join(d, "lintian.txt")) as f:
        report = f.read()
    return debs[0], changes[0], report


def build_package(out):
    """The .deb built by contrib/build-deb.sh into out, and its log."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
              "DESTDIR"):
        env.pop(k, None)
    # The unit tests run in the suite already; two jobs as the suite.
    env["DEB_BUILD_OPTIONS"] = "nocheck parallel=2"
    env["TMPDIR"] = out
    script = os.path.join(container.SRCDIR, "contrib", "build-deb.sh")
    p = subprocess.run([script, out], capture_output=True, text=True,
                       env=env, timeout=BUILD_TIMEOUT)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        raise AssertionError("contrib/build-deb.sh failed:\n" + log[-5000:])
    debs = [d for d in glob.glob(os.path.join(out, "tern_*.deb"))]
    if len(debs) != 1:
        raise AssertionError("expected one tern_*.deb, found %r" % debs)
    return debs[0], log


@unittest.skipIf(container.skip_reason() is not None,
                 container.skip_reason())
class DebianPackage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if shutil.which(t) is None]
        missing += container.missing_tools()
        if missing:
            raise AssertionError("missing %s: contrib/quickstart.sh test "
                                 "installs them" % " ".join(missing))
        cls.tmp = tempfile.mkdtemp(prefix="tern-package-")
        try:
            cls.deb, cls.changes, cls.lintian = cached_package()
            cls.c = container.Container("tern-package")
            cls.c.start()
        except BaseException:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        try:
            shutil.copy(cls.deb, cls.c.path("/tmp/tern.deb"))
            cls.install = cls.c.run("dpkg", "-i", "/tmp/tern.deb",
                                    check=False, timeout=120)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def installed(self):
        self.assertEqual(self.install.returncode, 0,
                         self.install.stdout + self.install.stderr)

    def test_0_lintian_finds_no_error(self):
        tags = [line for line in self.lintian.splitlines()
                if line[:2] in ("E:", "W:", "I:")]
        # The warnings go to the log, for a person to read.
        sys.stdout.write("lintian: %d tags\n%s\n"
                         % (len(tags), "\n".join(tags)))
        errors = [t for t in tags if t.startswith("E:")]
        self.assertEqual(errors, [], self.lintian)
        self.assertTrue(os.path.isfile(self.changes))

    def test_1_contents(self):
        p = subprocess.run(["dpkg-deb", "-I", self.deb], capture_output=True,
                           text=True, timeout=60)
        for field in ("Provides", "Conflicts", "Replaces"):
            self.assertRegex(p.stdout, r"(?m)^ %s: .*mail-transport-agent"
                             % field)
        p = subprocess.run(["dpkg-deb", "-c", self.deb], capture_output=True,
                           text=True, timeout=60)
        listing = p.stdout
        for path in ("./usr/sbin/ternd", "./usr/sbin/ternctl",
                     "./etc/tern/tern.ini", "./lib/systemd/system/"
                     "tern.service", "./usr/lib/sysusers.d/tern.conf",
                     "./usr/lib/tmpfiles.d/tern.conf",
                     "./usr/share/man/man8/ternd.8.gz",
                     "./usr/share/man/man5/tern.ini.5.gz"):
            self.assertIn(" " + path, listing)
        self.assertIn("./usr/sbin/sendmail -> ternctl", listing)
        self.assertRegex(listing, r"\./usr/bin/mailq -> \S*ternctl")
        self.assertRegex(listing, r"\./usr/bin/newaliases -> \S*ternctl")

    def test_2_installed_and_running(self):
        self.installed()
        c = self.c
        self.assertEqual(c.run("systemctl", "is-enabled", "tern",
                               check=False).stdout.strip(), "enabled")
        c.wait_for(lambda: c.show("tern", "SubState")["SubState"] ==
                   "running", "tern running after dpkg -i")
        c.run("id", "tern")
        st = os.stat(c.path("/var/spool/tern/maildrop"))
        self.assertEqual(st.st_mode & 0o7777, 0o3733)
        conffiles = c.run("dpkg-query", "-W", "-f", "${Conffiles}",
                          "tern").stdout
        self.assertIn("/etc/tern/tern.ini", conffiles)
        self.assertEqual(os.readlink(c.path("/usr/sbin/sendmail")),
                         "ternctl")

    def postmaster_mail(self):
        return glob.glob(self.c.path("/var/lib/tern/mail/*/postmaster/new/"
                                     "*"))

    def test_3_mail_over_smtp_and_sendmail(self):
        self.installed()
        c = self.c
        reply = c.smtp_send("alice@example.org", "postmaster@localhost",
                            "through the package")
        self.assertRegex(reply, r"^250 2\.0\.0 Ok: queued as ")
        c.wait_for(lambda: len(self.postmaster_mail()) >= 1,
                   "delivery over SMTP")
        # /usr/sbin/sendmail, as cron would run it, by an ordinary user.
        c.run("setpriv", "--reuid=nobody", "--regid=nogroup",
              "--clear-groups", "/usr/sbin/sendmail", "-t",
              input="To: postmaster@localhost\nSubject: cron\n\nHi.\n")
        c.wait_for(lambda: len(self.postmaster_mail()) >= 2,
                   "delivery through /usr/sbin/sendmail")
        self.assertRegex(c.journal("tern"), r"status=sent")

    def test_4_remove_keeps_spool_purge_removes_it(self):
        self.installed()
        c = self.c
        c.run("dpkg", "-r", "tern", timeout=120)
        self.assertEqual(c.show("tern", "ActiveState")["ActiveState"],
                         "inactive")
        self.assertTrue(os.path.isdir(c.path("/var/spool/tern/queue")))
        self.assertTrue(os.path.isfile(c.path("/etc/tern/tern.ini")))
        self.assertFalse(os.path.exists(c.path("/usr/sbin/ternd")))
        self.assertFalse(os.path.lexists(c.path("/usr/sbin/sendmail")))
        c.run("dpkg", "-P", "tern", timeout=120)
        self.assertFalse(os.path.exists(c.path("/var/spool/tern")))
        self.assertFalse(os.path.exists(c.path("/etc/tern")))
        # Delivered mail is the users': never removed by the package.
        self.assertTrue(self.postmaster_mail())


if __name__ == "__main__":
    ternlib.main()
