"""
test_clients.py: real submission clients log in with their own default
choice of SASL mechanism and their message arrives: curl, git
send-email and msmtp, through STARTTLS on the submission port.  The
mechanisms offered (auth_mechanisms): by default PLAIN and LOGIN, and
CRAM-MD5 only when every user with a password has a {PLAIN} secret; an
explicit list; AUTH with a mechanism not offered gets 504 5.5.4 and
does not count as a failure.
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
from mailtest import (AUTH_OK_RE, auth_cram, auth_plain,  # noqa: E402
                      starttls)
from ternlib import TernTestCase  # noqa: E402

ALICE, ALICE_PW = "alice@local.test", "Alice-pass-7"	# crypt(3) hash
DAVE, DAVE_PW = "dave@local.test", "Dave-pass-9"	# {PLAIN}
CAROL = "carol@local.test"				# "-": no login
RCPT = "rcpt@local.test"

CLIENT_TIMEOUT = 60
NOT_OFFERED = "504 5.5.4"


def run(case, argv, **kw):
    """Run a client; fail the test with its output if it fails."""
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=CLIENT_TIMEOUT, **kw)
    case.assertEqual(p.returncode, 0, "%s failed:\n%s" %
                     (argv[0], p.stdout.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


class ClientCase(TernTestCase):
    """A ternd with TLS, a submission port, and users given by the
    class."""

    users = [(ALICE, None), (DAVE, "plain"), (CAROL, "-"), (RCPT, None)]
    smtp = {}

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="tern-clients-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sub_port = ternlib.free_port()
        smtp = {"submission_listen": "127.0.0.1:%d" % self.sub_port,
                "auth_failure_delay": "0", "auth_max_failures": "1"}
        smtp.update(self.smtp)
        users = []
        for addr, kind in self.users:
            pw = ALICE_PW if addr != DAVE else DAVE_PW
            if kind == "-":
                users.append((addr, "-"))
            elif kind == "plain":
                users.append((addr, mailtest.plain_secret(pw)))
            else:
                users.append((addr, mailtest.crypt_hash(pw)))
        self.t = mailtest.mail_tern(self, tls=True, smtp=smtp, users=users)
        self.rcpt_box = mailtest.mailbox_dir(self.t, "local.test", "rcpt")

    def ehlo_auth(self):
        c = ternlib.Conn(self.sub_port)
        self.t.conns.append(c)
        c.ehlo()
        starttls(c)
        r = c.ehlo()
        words = [k for k in mailtest.ehlo_keywords(r)
                 if k.split()[0] == "AUTH"]
        self.assertEqual(len(words), 1, r)
        return c, words[0].split()[1:]

    def message(self, subject):
        path = os.path.join(self.tmp, "msg-%s.eml" % subject)
        with open(path, "wb") as f:
            f.write(("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                     "Message-ID: <%s@clients.test>\r\n"
                     "Date: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\n"
                     "Sent by %s.\r\n" % (ALICE, RCPT, subject, subject,
                                          subject)).encode())
        return path

    def arrived(self, subject, n=1):
        got = mailtest.wait_maildir(self.rcpt_box, n)
        self.assertTrue(any(b"Subject: %s\n" % subject.encode() in m
                            for m in got), got)

    def authenticated(self, mech, user=ALICE):
        self.t.wait_log(r"authenticated: sasl_method=%s, "
                        r"sasl_username=%s" % (re.escape(mech),
                                               re.escape(user)))


class Default(ClientCase):
    """Users with crypt(3) hashes: CRAM-MD5 is not offered, and each
    client logs in with what it picks among the rest."""

    def test_offers_plain_login_only(self):
        c, mechs = self.ehlo_auth()
        self.assertEqual(mechs, ["PLAIN", "LOGIN"])
        self.assertEqual(c.cmd("AUTH CRAM-MD5").line[:9], NOT_OFFERED)
        # Not a failure: auth_max_failures = 1 would have closed it.
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)

    def test_curl(self):
        run(self, ["curl", "--silent", "--show-error",
                   "--url", "smtp://127.0.0.1:%d" % self.sub_port,
                   "--ssl-reqd", "--insecure",
                   "--user", "%s:%s" % (ALICE, ALICE_PW),
                   "--mail-from", ALICE, "--mail-rcpt", RCPT,
                   "--upload-file", self.message("curl")])
        self.arrived("curl")
        self.authenticated("PLAIN")

    def test_git_send_email(self):
        home = os.path.join(self.tmp, "home")
        repo = os.path.join(self.tmp, "repo")
        os.makedirs(home)
        env = dict(os.environ, HOME=home, GIT_CONFIG_NOSYSTEM="1",
                   GIT_AUTHOR_NAME="Alice", GIT_AUTHOR_EMAIL=ALICE,
                   GIT_COMMITTER_NAME="Alice", GIT_COMMITTER_EMAIL=ALICE)
        run(self, ["git", "init", "-q", repo], env=env)
        with open(os.path.join(repo, "f"), "w") as f:
            f.write("a file\n")
        run(self, ["git", "-C", repo, "add", "f"], env=env)
        run(self, ["git", "-C", repo, "commit", "-q", "-m", "git-email"],
            env=env)
        patch = run(self, ["git", "-C", repo, "format-patch", "-1",
                           "-o", self.tmp], env=env).strip()
        # An empty sendemail.smtpSSLCertPath: no certificate check.
        out = run(self, ["git", "-C", repo,
                         "-c", "sendemail.smtpSSLCertPath=", "send-email",
                         "--smtp-server=127.0.0.1",
                         "--smtp-server-port=%d" % self.sub_port,
                         "--smtp-encryption=tls",
                         "--smtp-user=%s" % ALICE,
                         "--smtp-pass=%s" % ALICE_PW,
                         "--from=%s" % ALICE, "--to=%s" % RCPT,
                         "--suppress-cc=all", "--confirm=never",
                         "--no-validate", patch], env=env,
                  stdin=subprocess.DEVNULL)
        self.assertIn("OK", out)
        self.arrived("[PATCH] git-email")
        self.authenticated("PLAIN")

    def test_msmtp(self):
        conf = os.path.join(self.tmp, "msmtprc")
        with open(conf, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\n"
                    "tls on\ntls_starttls on\ntls_certcheck off\n"
                    "auth on\nuser %s\npassword %s\nfrom %s\n"
                    % (self.sub_port, ALICE, ALICE_PW, ALICE))
        os.chmod(conf, 0o600)
        with open(self.message("msmtp"), "rb") as msg:
            run(self, ["msmtp", "-C", conf, RCPT], stdin=msg,
                env=dict(os.environ, HOME=self.tmp))
        self.arrived("msmtp")
        # msmtp prefers SCRAM and CRAM-MD5, then PLAIN.
        self.authenticated("PLAIN")


class AllPlain(ClientCase):
    """Every user with a password has a {PLAIN} secret: CRAM-MD5 is
    offered too, and curl, which prefers it, uses it."""

    users = [(DAVE, "plain"), (CAROL, "-")]

    def setUp(self):
        super().setUp()
        self.rcpt_box = mailtest.mailbox_dir(self.t, "local.test", "carol")

    def test_offers_cram(self):
        c, mechs = self.ehlo_auth()
        self.assertEqual(mechs, ["PLAIN", "LOGIN", "CRAM-MD5"])
        self.assertRegex(auth_cram(c, DAVE, DAVE_PW).line, AUTH_OK_RE)

    def test_curl_cram(self):
        path = os.path.join(self.tmp, "m.eml")
        with open(path, "wb") as f:
            f.write(b"Subject: curl-cram\r\n\r\nHi.\r\n")
        run(self, ["curl", "--silent", "--show-error",
                   "--url", "smtp://127.0.0.1:%d" % self.sub_port,
                   "--ssl-reqd", "--insecure",
                   "--user", "%s:%s" % (DAVE, DAVE_PW),
                   "--mail-from", DAVE, "--mail-rcpt", CAROL,
                   "--upload-file", path])
        self.arrived("curl-cram")
        self.authenticated("CRAM-MD5", DAVE)


class Explicit(ClientCase):
    """auth_mechanisms = LOGIN: only LOGIN is offered or accepted."""

    smtp = {"auth_mechanisms": "login"}

    def test_only_login(self):
        c, mechs = self.ehlo_auth()
        self.assertEqual(mechs, ["LOGIN"])
        self.assertEqual(c.cmd("AUTH PLAIN").line[:9], NOT_OFFERED)
        self.assertEqual(c.cmd("AUTH CRAM-MD5").line[:9], NOT_OFFERED)
        self.assertRegex(mailtest.auth_login(c, ALICE, ALICE_PW).line,
                         AUTH_OK_RE)

    def test_config_values(self):
        t = self.tern(start=False, smtp={"auth_mechanisms": "cram-md5 Plain"})
        rc, out, err = ternlib.run_ternd(["-n", "-c", t.conf])
        self.assertEqual(rc, 0, err)
        self.assertIn("auth_mechanisms = PLAIN CRAM-MD5\n", out)
        for bad in ("PLAIN DIGEST-MD5", "auto PLAIN", ""):
            t.write_config(smtp={"auth_mechanisms": bad})
            rc, out, err = ternlib.run_ternd(["-n", "-c", t.conf])
            self.assertNotEqual(rc, 0, bad)
            self.assertIn("auth_mechanisms", err, bad)

if __name__ == "__main__":
    ternlib.main()
