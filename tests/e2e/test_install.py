"""
test_install.py: "make install DESTDIR=..." lays out every file where the
build's directories say, the installed ternd runs, the unit starts the
installed ternd, the installed man pages are clean, and an install or an
uninstall never loses a configuration the administrator changed.

It needs the build directory (TERN_BUILDDIR, set by "make check") and GNU
make; without them it is skipped.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
SRCDIR = os.environ.get("TERN_SRCDIR",
                        os.path.join(os.path.dirname(__file__), "..", ".."))
MAKE = "make"
MAKE_TIMEOUT = 120


def make_env():
    """The environment for a make of our own: without the make flags of
    the "make check" that runs this test, whose jobserver we do not
    share."""
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
              "DESTDIR"):
        env.pop(k, None)
    return env


def make(*args):
    out = subprocess.run([MAKE, "-C", BUILDDIR, "--no-print-directory"] +
                         list(args), capture_output=True, text=True,
                         env=make_env(), timeout=MAKE_TIMEOUT)
    if out.returncode != 0:
        raise AssertionError("make %s failed:\n%s%s"
                             % (" ".join(args), out.stdout, out.stderr))
    return out.stdout


def make_vars(*names):
    """The values of the build's make variables, fully expanded."""
    rule = "tern-print-%: ; @echo '$*=$($*)'"
    out = make("-s", "--eval=" + rule,
               *["tern-print-" + n for n in names])
    values = {}
    for line in out.splitlines():
        k, sep, v = line.partition("=")
        if sep and k in names:
            values[k] = v
    missing = [n for n in names if n not in values]
    if missing:
        raise AssertionError("make printed no value for %s" % missing)
    return values


@unittest.skipUnless(BUILDDIR and os.path.isfile(
    os.path.join(BUILDDIR, "Makefile")), "TERN_BUILDDIR not set")
class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = make_vars("sbindir", "mandir", "sysconfdir", "docdir",
                          "systemdsystemunitdir", "sysusersdir",
                          "tmpfilesdir", "dist_man_MANS", "PACKAGE_VERSION")
        cls.tmp = tempfile.mkdtemp(prefix="tern-install-")
        cls.root = os.path.join(cls.tmp, "root")
        make("install", "DESTDIR=" + cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, var, *rest):
        """The installed path under DESTDIR of a file in a build
        directory."""
        return os.path.join(self.root, self.v[var].lstrip("/"), *rest)

    def assertSameFile(self, installed, source):
        self.assertTrue(os.path.isfile(installed), installed + " missing")
        with open(installed, "rb") as a, open(source, "rb") as b:
            self.assertEqual(a.read(), b.read(),
                             installed + " differs from " + source)

    def test_ternd_installed_and_prints_version(self):
        ternd = self.path("sbindir", "ternd")
        self.assertTrue(os.access(ternd, os.X_OK), ternd + " not executable")
        out = subprocess.run([ternd, "-V"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(out.stdout, "ternd %s\n" % self.v["PACKAGE_VERSION"])
        self.assertEqual(self.v["PACKAGE_VERSION"], ternlib.VERSION)

    def man_pages(self):
        pages = []
        for m in self.v["dist_man_MANS"].split():
            name = os.path.basename(m)
            pages.append(self.path("mandir", "man" + name.rsplit(".", 1)[1],
                                   name))
        return pages

    def test_man_pages_installed(self):
        names = [os.path.basename(p) for p in self.man_pages()]
        for want in ("ternd.8", "tern.ini.5", "tern-envelope.5"):
            self.assertIn(want, names)
        for page in self.man_pages():
            self.assertTrue(os.path.isfile(page), page + " missing")

    @unittest.skipUnless(shutil.which("mandoc"), "mandoc not installed")
    def test_installed_man_pages_lint_clean(self):
        for page in self.man_pages():
            out = subprocess.run(["mandoc", "-Tlint", "-W", "warning", page],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.stdout + out.stderr, "",
                             "mandoc -Tlint " + page)

    def test_configuration_installed(self):
        example = os.path.join(SRCDIR, "etc", "tern.ini")
        conf = self.path("sysconfdir", "tern", "tern.ini")
        self.assertSameFile(conf, example)
        self.assertSameFile(self.path("docdir", "examples", "tern.ini"),
                            example)
        # Not the old place, directly in sysconfdir.
        self.assertFalse(os.path.exists(self.path("sysconfdir", "tern.ini")))
        out = subprocess.run([self.path("sbindir", "ternd"), "-n", "-c",
                              conf], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("[smtp]", out.stdout)

    def test_unit_starts_installed_ternd(self):
        if not self.v["systemdsystemunitdir"]:
            self.skipTest("configured --without-systemdsystemunitdir")
        unit = self.path("systemdsystemunitdir", "tern.service")
        self.assertTrue(os.path.isfile(unit), unit + " missing")
        with open(unit) as f:
            text = f.read()
        starts = re.findall(r"^ExecStart=(\S+)", text, re.M)
        self.assertEqual(starts, [self.v["sbindir"] + "/ternd"])
        if self.v["sbindir"] != "/usr/sbin":
            self.assertNotIn("/usr/sbin/ternd", text)

    def test_snippets_installed(self):
        for var, src in (("sysusersdir", "sysusers.d"),
                         ("tmpfilesdir", "tmpfiles.d")):
            if not self.v[var]:
                continue
            self.assertSameFile(self.path(var, "tern.conf"),
                                os.path.join(SRCDIR, "contrib", src,
                                             "tern.conf"))

    def test_sendmail_links_never_replace_silently(self):
        """install-sendmail-links refuses to replace another sendmail and
        says how to force it; FORCE=yes replaces it; links that already
        lead to ternctl are simply renewed."""
        v = make_vars("SENDMAIL_DIR", "MAILQ_DIR")
        root = os.path.join(self.tmp, "links")
        sendmail = os.path.join(root, v["SENDMAIL_DIR"].lstrip("/"),
                                "sendmail")
        mailq = os.path.join(root, v["MAILQ_DIR"].lstrip("/"), "mailq")
        os.makedirs(os.path.dirname(sendmail))
        other = b"#!/bin/sh\n# another MTA's sendmail\n"
        with open(sendmail, "wb") as f:
            f.write(other)
        out = subprocess.run([MAKE, "-C", BUILDDIR, "--no-print-directory",
                              "install-sendmail-links", "DESTDIR=" + root],
                             capture_output=True, text=True, env=make_env(),
                             timeout=MAKE_TIMEOUT)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn(sendmail + " exists", out.stderr)
        self.assertIn("FORCE=yes", out.stderr)
        with open(sendmail, "rb") as f:
            self.assertEqual(f.read(), other)
        self.assertFalse(os.path.lexists(mailq))

        # A link to another program is refused the same way.
        os.unlink(sendmail)
        os.symlink("/usr/sbin/exim4", sendmail)
        out = subprocess.run([MAKE, "-C", BUILDDIR, "--no-print-directory",
                              "install-sendmail-links", "DESTDIR=" + root],
                             capture_output=True, text=True, env=make_env(),
                             timeout=MAKE_TIMEOUT)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("a link to /usr/sbin/exim4", out.stderr)
        self.assertEqual(os.readlink(sendmail), "/usr/sbin/exim4")

        make("install-sendmail-links", "DESTDIR=" + root, "FORCE=yes")
        ternctl = self.v["sbindir"] + "/ternctl"
        self.assertEqual(os.readlink(sendmail), ternctl)
        self.assertEqual(os.readlink(mailq), ternctl)
        # Ours already: no FORCE needed.
        make("install-sendmail-links", "DESTDIR=" + root)
        self.assertEqual(os.readlink(sendmail), ternctl)

    def test_changed_configuration_survives(self):
        """A second install keeps a changed configuration; uninstall
        removes everything else and keeps it, and removes it once it is
        the example again."""
        root = os.path.join(self.tmp, "again")
        make("install", "DESTDIR=" + root)
        conf = os.path.join(root, self.v["sysconfdir"].lstrip("/"), "tern",
                            "tern.ini")
        changed = "[main]\nhostname = mail.example.org\n"
        with open(conf, "w") as f:
            f.write(changed)
        make("install", "DESTDIR=" + root)
        with open(conf) as f:
            self.assertEqual(f.read(), changed)

        make("uninstall", "DESTDIR=" + root)
        left = [os.path.relpath(os.path.join(d, n), root)
                for d, _, files in os.walk(root) for n in files]
        self.assertEqual(left, [os.path.relpath(conf, root)])

        shutil.copyfile(os.path.join(SRCDIR, "etc", "tern.ini"), conf)
        make("uninstall", "DESTDIR=" + root)
        self.assertFalse(os.path.exists(conf))
        self.assertFalse(os.path.exists(os.path.dirname(conf)))


if __name__ == "__main__":
    sys.exit(ternlib.main(__name__))
