"""
test_aliases.py: the system's aliases through the real daemon.  A
traditional /etc/aliases (bare names for every local domain,
continuation lines, comments, :include: files, |command and /file
targets skipped with one warning naming file and line while the rest
loads); mail to root, MAILER-DAEMON, abuse and other system names
arrives at the postmaster when nothing else takes it, over SMTP and
from "sendmail root"; a report to a local sender goes through its
aliases, or to the postmaster, never into a second undeliverable
report; "ternctl newaliases" (and the newaliases link, and sendmail
-bi) checks the file and has the daemon reload it.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import wait_maildir  # noqa: E402
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id, wait_for  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""
GW = "127.0.0.6"
RUN_TIMEOUT = 30.0
DELIVER_TIMEOUT = 60.0
SENDER = "sender@sender.test"

ALICE = "alice@local.test"
BOB = "bob@local.test"
CAROL = "carol@example.test"


def small(subject):
    return ("From: %s\r\nSubject: %s\r\n\r\nhi\r\n"
            % (SENDER, subject)).encode()


class AliasesCase(TernTestCase):

    def setUp(self):
        super().setUp()
        if not TERNCTL or not os.access(TERNCTL, os.X_OK):
            self.fail("TERN_BUILDDIR does not hold src/ternctl")
        self.tmp = tempfile.mkdtemp(prefix="tern-e2e-al-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.hop = NextHop(GW)
        self.addCleanup(self.hop.stop)

    def make(self, aliases_text=None, start=True, **kw):
        """A ternd with alice, bob and carol, local.test and example.test
        local, remote mail to the next hop, and aliases_text (when given)
        as its aliases file, written as is."""
        t = mailtest.mail_tern(
            self, start=False,
            users=[(ALICE, "-"), (BOB, "-"), (CAROL, "-")],
            delivery={"gateway": "%s:%d" % (GW, self.hop.port),
                      "gateway_all": "yes", "queue_interval": "1s"}, **kw)
        if aliases_text is not None:
            t.aliases_file = os.path.join(t.dir, "aliases")
            self.write(t.aliases_file, aliases_text)
            t.write_config(sections={"local": {
                "aliases": t.aliases_file}})
        if start:
            t.start()
        self.t = t
        return t

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        mailtest.give_to_daemon(path, 0o644)

    def box(self, local, domain="local.test"):
        return mailtest.mailbox_dir(self.t, domain, local)

    def ctl(self, *args, argv0=None, env=None, exe=TERNCTL):
        cmd = [exe] + list(args)
        kw = {}
        if argv0 is not None:
            kw["executable"] = exe
            cmd[0] = argv0
        try:
            p = subprocess.run(cmd, capture_output=True, env=env,
                               stdin=subprocess.DEVNULL,
                               timeout=RUN_TIMEOUT, **kw)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not exit" % " ".join(cmd))
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def rcpt_code(self, rcpt):
        c = self.t.session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        code = c.cmd("RCPT TO:<%s>" % rcpt).code
        c.close()
        return code

    def subjects(self, maildir, n):
        out = []
        for m in wait_maildir(maildir, n):
            s = re.search(rb"\nSubject: ([^\n]*)\n", m)
            out.append(s.group(1).decode() if s else None)
        return sorted(out)


class Traditional(AliasesCase):
    """A file written the way /etc/aliases is."""

    def aliases(self, inc):
        return ("# /etc/aliases\n"
                "mailer-daemon: postmaster\n"
                "postmaster: root\n"
                "nobody: root\n"
                "root: alice\n"
                "\n"
                "team: alice,\n"
                "   # a comment between continuation lines\n"
                "\tbob,\n"
                "   carol@example.test\n"
                "list: :include:%s\n"
                "majordomo: \"|/usr/lib/majordomo/wrapper majordomo\"\n"
                "archive: /var/mail/archive, bob\n"
                "info@example.test: carol@example.test\n" % inc)

    def test_traditional_file(self):
        inc = os.path.join(self.tmp, "list.inc")
        self.write(inc, "# members\nbob, remote@remote.test\n")
        t = self.make(self.aliases(inc))
        # One warning per skipped line, naming file and line; the rest
        # of the file is in force.
        t.wait_log(r"%s:12: \|/usr/lib/majordomo/wrapper majordomo: "
                   r"command skipped" % re.escape(t.aliases_file))
        t.wait_log(r"%s:13: /var/mail/archive: file skipped"
                   % re.escape(t.aliases_file))
        self.assertEqual(len(re.findall(r"skipped", t.log())), 2)
        # Bare names at every local domain.
        for rcpt in ("root@local.test", "ROOT@example.test",
                     "MAILER-DAEMON@local.test", "team@example.test",
                     "list@local.test", "archive@local.test",
                     "info@example.test"):
            with self.subTest(rcpt=rcpt):
                self.assertEqual(self.rcpt_code(rcpt), 250)
        # An alias left with no target is no alias: refused.
        self.assertEqual(self.rcpt_code("majordomo@local.test"), 550)

        t.send_message(SENDER, ["root@example.test"], small("to root"))
        t.send_message(SENDER, ["mailer-daemon@local.test"],
                       small("to mailer-daemon"))
        t.send_message(SENDER, ["team@local.test"], small("to team"))
        t.send_message(SENDER, ["list@local.test"], small("to list"))
        t.send_message(SENDER, ["archive@local.test"], small("to archive"))
        self.assertEqual(self.subjects(self.box("alice"), 3),
                         ["to mailer-daemon", "to root", "to team"])
        self.assertEqual(self.subjects(self.box("bob"), 3),
                         ["to archive", "to list", "to team"])
        self.assertEqual(self.subjects(self.box("carol", "example.test"),
                                       1), ["to team"])
        got = self.hop.wait_messages(1, DELIVER_TIMEOUT)
        self.assertEqual(got[0].rcpts, ["remote@remote.test"])


class SystemNames(AliasesCase):
    """No aliases at all: system names still reach someone."""

    def test_system_names_reach_the_postmaster(self):
        t = self.make()
        pm = self.box("postmaster")
        for rcpt in ("root@local.test", "MAILER-DAEMON@example.test",
                     "abuse@local.test", "hostmaster@local.test",
                     "webmaster@example.test", "www-data@local.test",
                     "nobody@local.test"):
            with self.subTest(rcpt=rcpt):
                self.assertEqual(self.rcpt_code(rcpt), 250)
        # Other names are still refused.
        self.assertEqual(self.rcpt_code("nosuch@local.test"), 550)
        t.send_message(SENDER, ["root@local.test"], small("root"))
        t.send_message(SENDER, ["abuse@example.test"], small("abuse"))
        self.assertEqual(self.subjects(pm, 2), ["abuse", "root"])

    def test_sendmail_root(self):
        """cron's way: "sendmail root" (bare), and -t with To: root."""
        t = self.make()
        pm = self.box("postmaster")
        env = dict(os.environ, TERN_CONFIG=t.conf)
        link = os.path.join(self.tmp, "sendmail")
        os.symlink(TERNCTL, link)
        for args, text in ((["root"], "Subject: cron one\n\nout\n"),
                           (["-t"], "To: root\nSubject: cron two\n\nout\n"),
                           (["MAILER-DAEMON"],
                            "Subject: cron three\n\nout\n")):
            p = subprocess.run([link] + args, input=text.encode(), env=env,
                               capture_output=True, timeout=RUN_TIMEOUT)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.subjects(pm, 3),
                         ["cron one", "cron three", "cron two"])
        self.assertNotRegex(t.log(), r"status=bounced")

    def test_root_alias_to_nobody_known_falls_back(self):
        """Debian's default: "postmaster: root" and no root line, or a
        root that names an account tern does not know."""
        t = self.make("postmaster: root\nroot: ghost\n")
        pm = self.box("postmaster")
        self.assertEqual(self.rcpt_code("root@local.test"), 250)
        t.send_message(SENDER, ["root@local.test"], small("ghostly"))
        self.assertEqual(self.subjects(pm, 1), ["ghostly"])


class Reports(AliasesCase):
    """Bounces to local senders."""

    def failing_message(self, sender, subject):
        self.hop.configure(rcpt="550 5.1.1 no such user")
        qid = self.t.send_message(sender, ["nobody@remote.test"],
                                  small(subject))
        self.t.wait_log(r"%s: to=<nobody@remote.test>, .*status=bounced"
                        % qid)
        return qid

    def test_report_to_an_alias_follows_it(self):
        t = self.make("owner-list: alice\n")
        qid = self.failing_message("owner-list@local.test", "via alias")
        msgs = wait_maildir(self.box("alice"), 1)
        self.assertIn(b"Subject: Undelivered Mail Returned", msgs[0])
        self.assertIn(qid.encode(), msgs[0])
        self.assertNotRegex(t.log(), r"bounce not returned")

    def test_report_to_an_unknown_local_sender_goes_to_postmaster(self):
        t = self.make()
        qid = self.failing_message("ghost@local.test", "no such sender")
        msgs = wait_maildir(self.box("postmaster"), 1)
        self.assertIn(qid.encode(), msgs[0])
        t.wait_log(r"%s: sender ghost@local.test is no address here: its "
                   r"report goes to the postmaster" % qid)
        self.assertNotRegex(t.log(), r"bounce not returned")
        wait_for(lambda: t.queued() == [], DELIVER_TIMEOUT,
                 "the queue to empty")


class Newaliases(AliasesCase):

    def test_newaliases_checks_and_reloads(self):
        t = self.make("info: alice\n")
        self.assertEqual(self.rcpt_code("sales@local.test"), 550)
        # A broken file: said with file and line, the daemon keeps the
        # old one.
        self.write(t.aliases_file, "info: alice\nsales bob\n")
        rc, out, err = self.ctl("-c", t.conf, "newaliases")
        self.assertEqual(rc, 1, err)
        self.assertIn("ternctl: %s:2: not \"name: target, ...\" (no ':')"
                      % t.aliases_file, err)
        self.assertEqual(self.rcpt_code("info@local.test"), 250)
        # Fixed: checked, warnings said, reloaded.
        self.write(t.aliases_file, "info: alice\nsales: bob\n"
                   "pipe: \"|/bin/cat\", bob\n")
        mark = t.log_mark()
        rc, out, err = self.ctl("-c", t.conf, "newaliases")
        self.assertEqual(rc, 0, err)
        self.assertIn("%s: ok; ternd has reloaded it" % t.aliases_file, out)
        self.assertIn("ternctl: warning: %s:3: |/bin/cat: command skipped"
                      % t.aliases_file, err)
        t.wait_log(r"configuration reloaded", since=mark)
        self.assertEqual(self.rcpt_code("sales@local.test"), 250)

    def test_newaliases_link_and_bi(self):
        t = self.make("info: alice\n")
        env = dict(os.environ, TERN_CONFIG=t.conf)
        self.write(t.aliases_file, "info: alice\nsales: bob\n")
        rc, out, err = self.ctl(argv0="newaliases", env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.rcpt_code("sales@local.test"), 250)
        self.write(t.aliases_file, "info: alice\nsales: bob\nhelp: carol"
                   "@example.test\n")
        rc, out, err = self.ctl("-bi", argv0="sendmail", env=env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.rcpt_code("help@local.test"), 250)
        self.write(t.aliases_file, "broken\n")
        rc, out, err = self.ctl(argv0="newaliases", env=env)
        self.assertEqual(rc, 1, err)
        self.assertIn("%s:1:" % t.aliases_file, err)

    def test_newaliases_without_a_daemon(self):
        t = self.make("info: alice\n", start=False)
        rc, out, err = self.ctl("-c", t.conf, "newaliases")
        self.assertEqual(rc, 0, err)
        self.assertIn("ternd is not running", out)


if __name__ == "__main__":
    ternlib.main()
