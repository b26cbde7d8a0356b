"""
test_container.py: tern installed with "make install" (prefix /usr,
sysconfdir /etc, localstatedir /var) into a Debian system that boots
systemd as PID 1 in a container (container.py), then run as its
administrator would: systemd-sysusers, systemd-tmpfiles --create,
"systemctl start tern" under the shipped unit and its hardening, mail
over SMTP on port 25 into a Maildir, local submission through
maildrop/ by an ordinary user, ternctl through the control socket,
"systemctl reload" with a good and a bad configuration, journalctl -u
tern, and "systemctl stop".

The build for /usr lives in the build tree (tests/container/build-usr)
and is only remade when the sources change.  Needs root; the first run
makes the cached tree with mmdebstrap (see container.py).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import container  # noqa: E402
import ternlib  # noqa: E402

MAKE_TIMEOUT = 900
DOMAIN = "container.test"
CONF = """\
[main]
hostname = mx.%s

[smtp]
listen = 127.0.0.1:25
local_domains = %s
""" % (DOMAIN, DOMAIN)


def make_env():
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
              "DESTDIR"):
        env.pop(k, None)
    return env


def build_for_usr():
    """A build configured as a distribution's, made (again) as needed."""
    d = os.path.join(container.BUILDDIR, "tests", "container", "build-usr")
    os.makedirs(d, exist_ok=True)
    configure = os.path.join(os.path.abspath(container.SRCDIR), "configure")
    makefile = os.path.join(d, "Makefile")
    if (not os.path.exists(makefile) or
            os.path.getmtime(configure) > os.path.getmtime(makefile)):
        p = subprocess.run([configure, "--prefix=/usr", "--sysconfdir=/etc",
                            "--localstatedir=/var"], cwd=d,
                           capture_output=True, text=True, env=make_env(),
                           timeout=MAKE_TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("configure failed:\n" + p.stdout[-3000:] +
                                 p.stderr[-3000:])
    p = subprocess.run(["make", "-j2"], cwd=d, capture_output=True,
                       text=True, env=make_env(), timeout=MAKE_TIMEOUT)
    if p.returncode != 0:
        raise AssertionError("make failed:\n" + p.stderr[-3000:])
    return d


@unittest.skipIf(container.skip_reason() is not None,
                 container.skip_reason())
class MakeInstall(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        missing = container.missing_tools()
        if missing:
            raise AssertionError("missing %s: contrib/quickstart.sh test "
                                 "installs them" % " ".join(missing))
        build = build_for_usr()
        cls.stage = tempfile.mkdtemp(prefix="tern-stage-")
        p = subprocess.run(["make", "install", "DESTDIR=" + cls.stage],
                           cwd=build, capture_output=True, text=True,
                           env=make_env(), timeout=MAKE_TIMEOUT)
        if p.returncode != 0:
            shutil.rmtree(cls.stage, ignore_errors=True)
            raise AssertionError("make install failed:\n" + p.stderr)
        cls.c = container.Container("tern-install")
        try:
            cls.c.start()
            cls.install()
        except BaseException:
            cls.c.stop()
            shutil.rmtree(cls.stage, ignore_errors=True)
            raise

    @classmethod
    def install(cls):
        c = cls.c
        c.copy_in(cls.stage)
        # What the README tells the administrator to do after the
        # install.
        c.run("systemd-sysusers")
        c.run("systemd-tmpfiles", "--create")
        c.run("systemctl", "daemon-reload")
        c.write("/etc/tern/tern.ini", CONF)
        c.run("ternd", "-n")
        p = c.run("systemctl", "start", "tern", check=False,
                  timeout=container.RUN_TIMEOUT)
        if p.returncode != 0:
            raise AssertionError("systemctl start tern failed:\n%s\n%s"
                                 % (p.stderr, c.journal("tern")))

    @classmethod
    def tearDownClass(cls):
        cls.c.stop()
        shutil.rmtree(cls.stage, ignore_errors=True)

    def journal(self):
        return self.c.journal("tern")

    def maildir(self, local):
        return "/var/lib/tern/mail/%s/%s" % (DOMAIN, local)

    def test_1_started_under_the_unit(self):
        s = self.c.show("tern", "ActiveState", "SubState", "Type",
                        "StatusText", "MainPID", "CapabilityBoundingSet",
                        "RestrictSUIDSGID")
        self.assertEqual((s["ActiveState"], s["SubState"]),
                         ("active", "running"), s)
        self.assertEqual(s["Type"], "notify")
        # READY comes while ternd still reads its queue; a STATUS without
        # "reading the queue; " follows once it is read.
        self.assertRegex(s["StatusText"],
                         r"^(reading the queue; )?queue: \d+ messages")
        ternlib.wait_for(
            lambda: re.match(r"queue: \d+ messages", self.c.show(
                "tern", "StatusText")["StatusText"]),
            ternlib.REPLY_TIMEOUT, "the STATUS once the queue is read")
        # The hardening of the unit as shipped is in force.
        self.assertEqual(s["RestrictSUIDSGID"], "yes")
        self.assertNotIn("cap_fowner", s["CapabilityBoundingSet"])
        self.assertNotIn("cap_fsetid", s["CapabilityBoundingSet"])
        st = os.stat(self.c.path("/var/spool/tern/maildrop"))
        self.assertEqual(st.st_mode & 0o7777, 0o3733)
        pid = s["MainPID"]
        status = self.c.run("cat", "/proc/%s/status" % pid).stdout
        uid = self.c.run("id", "-u", "tern").stdout.strip()
        self.assertRegex(status, r"(?m)^Uid:\s+%s\s+%s\s+%s\s+%s$"
                         % ((uid,) * 4))
        self.assertRegex(status, r"(?m)^CapEff:\s+0+$")
        self.assertIn("ready", self.journal())

    def test_2_mail_lands_in_a_maildir(self):
        reply = self.c.smtp_send("alice@example.org",
                                 "postmaster@" + DOMAIN, "over SMTP")
        self.assertRegex(reply, r"^250 2\.0\.0 Ok: queued as [0-9A-Z]{15}$")
        qid = reply.split()[-1]
        md = self.maildir("postmaster")
        names = self.c.wait_for(lambda: self.c.maildir_new(md),
                                "delivery to " + md)
        with open(self.c.path(os.path.join(md, "new", names[0])), "rb") as f:
            data = f.read()
        self.assertIn(b"Subject: over SMTP\n", data)
        self.assertIn(b"Delivered-To: postmaster@" + DOMAIN.encode(), data)
        st = os.stat(self.c.path(md))
        uid = int(self.c.run("id", "-u", "tern").stdout)
        self.assertEqual(st.st_uid, uid)
        self.c.wait_for(lambda: re.search(r"%s: to=<postmaster@%s>.*"
                                          r"status=sent" % (qid, DOMAIN),
                                          self.journal()),
                        "the delivery in the journal")
        # journald took the tag and the pid apart as syslog(3) sends
        # them: ternd names its pid itself, asking for it once.
        pid = self.c.show("tern", "MainPID")["MainPID"]
        out = self.c.run("journalctl", "--no-pager", "-o", "json", "-u",
                         "tern").stdout
        entries = [json.loads(line) for line in out.splitlines()
                   if line.startswith("{")]
        sent = [e for e in entries
                if "%s: to=<postmaster@" % qid in str(e.get("MESSAGE"))]
        self.assertTrue(sent, out[-2000:])
        self.assertEqual(sent[0].get("SYSLOG_IDENTIFIER"),
                         "ternd/virtual",
                         sent[0])
        self.assertEqual(sent[0].get("SYSLOG_PID"), pid, sent[0])

    def test_3_sendmail_by_an_ordinary_user(self):
        """maildrop/ as tmpfiles.d made it takes a file from anyone."""
        before = len(self.c.maildir_new(self.maildir("postmaster")))
        self.c.run("setpriv", "--reuid=nobody", "--regid=nogroup",
                   "--clear-groups", "ternctl", "sendmail", "-t",
                   input="To: postmaster@%s\nSubject: from nobody\n\n"
                   "Local submission.\n" % DOMAIN)
        self.c.wait_for(lambda: len(self.c.maildir_new(
            self.maildir("postmaster"))) > before, "the local submission")
        self.assertRegex(self.journal(), r"uid=65534")

    def test_4_ternctl_over_the_control_socket(self):
        p = self.c.run("ternctl", "stats")
        self.assertRegex(p.stdout, r"\S")
        p = self.c.run("ternctl", "queue")
        self.assertEqual(p.returncode, 0)
        # Through the socket as well: ask for a reload.
        self.c.run("ternctl", "reload")
        self.c.wait_for(lambda: self.journal().count(
            "configuration reloaded") >= 1, "the reload by ternctl")

    def test_5_reload_good_and_bad(self):
        pid = self.c.show("tern", "MainPID")["MainPID"]
        done = self.journal().count("configuration reloaded")
        self.c.write("/etc/tern/tern.ini",
                     CONF + "max_message_size = 10M\n")
        self.c.run("systemctl", "reload", "tern")
        self.c.wait_for(lambda: self.journal().count(
            "configuration reloaded") > done, "the good reload")

        # The bad file is refused, by "ternctl reload" (ExecReload) or by
        # ternd, with the reason in the journal; systemctl says so.
        self.c.write("/etc/tern/tern.ini", CONF + "no_such_key = 1\n")
        p = self.c.run("systemctl", "reload", "tern", check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertRegex(self.journal(), r"tern\.ini:7: \[smtp\] "
                         r"no_such_key: unknown key")
        s = self.c.show("tern", "ActiveState", "SubState", "MainPID")
        self.assertEqual((s["ActiveState"], s["SubState"], s["MainPID"]),
                         ("active", "running", pid), s)
        reply = self.c.smtp_send("bob@example.org", "postmaster@" + DOMAIN,
                                 "after the bad reload")
        self.assertTrue(reply.startswith("250 "), reply)
        self.c.write("/etc/tern/tern.ini", CONF)

    def test_6_journal_has_the_mail_lines(self):
        j = self.journal()
        self.assertRegex(j, r"ternd/smtpd\[\d+\]: [0-9A-Z]{15}: "
                            r"client=\S+")
        self.assertRegex(j, r"ternd/qmgr\[\d+\]: [0-9A-Z]{15}: "
                            r"from=<alice@example.org>")
        self.assertRegex(j, r"ternd/virtual\[\d+\]: [0-9A-Z]{15}: "
                            r"to=<postmaster@%s>, relay=local, .*"
                            r"status=sent" % DOMAIN)
        self.assertRegex(j, r"ternd/qmgr\[\d+\]: [0-9A-Z]{15}: removed")

    def test_7_stop_ends_cleanly(self):
        self.c.run("systemctl", "stop", "tern", timeout=90)
        s = self.c.show("tern", "ActiveState", "Result", "ExecMainStatus")
        self.assertEqual(s["ActiveState"], "inactive", s)
        self.assertEqual(s["Result"], "success", s)
        self.assertEqual(s["ExecMainStatus"], "0", s)
        self.assertIn("stopped", self.journal())


if __name__ == "__main__":
    ternlib.main()
