"""
test_dovecot_auth.py: auth_backend = dovecot.  A real Dovecot (Debian's
dovecot-core), started by the test with its auth client socket in its
temporary directory, checks SMTP AUTH for ternd: PLAIN (with and without
an initial response), LOGIN, CRAM-MD5 and SCRAM-SHA-256 (a mechanism
tern itself does not know, passed through as base64), each with a good
password, a bad one and an unknown user; the EHLO list is what Dovecot
announces (its auth_mechanisms), cut by tern's auth_mechanisms; "*"
cancels; failures count toward auth_max_failures; relaying is allowed
after AUTH; the sender check uses Dovecot's user name; Dovecot stopped
gives 454 4.7.0 and a log line and AUTH leaves EHLO, and both come back
when Dovecot does; curl and msmtp log in through tern to Dovecot.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from dovecot import Dovecot, skip_reason  # noqa: E402
from mailtest import (AUTH_BAD_RE, AUTH_OK_RE, auth_cram,  # noqa: E402
                      auth_login, auth_plain, b64, has_keyword, starttls)
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id, wait_for  # noqa: E402

ALICE, ALICE_PW = "alice@local.test", "Alice-dove-7"
BOB, BOB_PW = "bob@local.test", "Bob-dove-8"
NOBODY = "nobody-here@local.test"
WRONG_PW = "Wrong-guess-2718"

MSG = (b"Subject: dovecot auth\r\nDate: Mon, 7 Dec 2026 03:00:00 +0000\r\n"
       b"Message-ID: <dovecot-auth@client.example>\r\n\r\nHello.\r\n")
REMOTE = "r@remote.test"
GW = "127.0.0.2"
NOT_US = "192.0.2.0/24"		# relay_networks that 127.0.0.1 is not in

DOVECOT_MECHS = ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]
TEMP_RE = re.compile(r"^454 4\.7\.0 ")
CANCEL_RE = re.compile(r"^501 5\.0\.0 ")
NOT_OFFERED_RE = re.compile(r"^504 5\.5\.4 ")
NOT_OWNER_RE = re.compile(r"^553 5\.7\.1 ")
LIMIT_RE = re.compile(r"^421 4\.7\.0 ")
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
CLIENT_TIMEOUT = 60


def dovecot_extra(mechs):
    """An auth client socket of Dovecot's beside its own (under its
    base_dir), open to ternd's user as an administrator would make one
    for an MTA, and failures answered at once (tern has its own
    delay)."""
    return ["auth_mechanisms = %s" % " ".join(m.lower() for m in mechs),
            "auth_failure_delay = 0",
            "service auth {",
            "  unix_listener tern-auth {",
            "    mode = 0666",
            "  }",
            "}"]


def start_dovecot(case, mechs=DOVECOT_MECHS):
    uid, gid = mailtest.daemon_ids()
    home = tempfile.mkdtemp(prefix="tern-dvauth-home-")
    case.addCleanup(shutil.rmtree, home, True)
    d = Dovecot([(ALICE, ALICE_PW, uid, gid, home),
                 (BOB, BOB_PW, uid, gid, home)],
                extra=dovecot_extra(mechs))
    case.addCleanup(d.stop)
    d.start()
    d.socket = os.path.join(d.dir, "run", "tern-auth")
    return d


def children(pid):
    """The PIDs of the processes whose parent is pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parens.
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(name))
    return out


def stop_dovecot(d):
    """Stop a Dovecot entirely.  Its auth process outlives the master
    while a client (ternd) stays connected, so it is stopped too, by the
    PID the master gave it."""
    kids = children(d.proc.pid)
    d._kill()
    for pid in kids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def gone():
        return all(not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split(") ")[1][0]
                   == "Z" for pid in kids)
    wait_for(gone, 10.0, "Dovecot's processes to exit")


def scram_sha256(conn, user, password):
    """AUTH SCRAM-SHA-256 (RFC 7677) as a client, checking the server's
    signature; returns the final reply."""
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                          nonce)
    r = conn.cmd("AUTH SCRAM-SHA-256 " + b64("n,," + bare))
    if r.code != 334:
        return r
    first = base64.b64decode(r.texts[0]).decode()
    fields = dict(f.split("=", 1) for f in first.split(","))
    if not fields["r"].startswith(nonce):
        raise AssertionError("SCRAM: server nonce %r" % first)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    final_bare = "c=biws,r=%s" % fields["r"]
    auth_msg = ("%s,%s,%s" % (bare, first, final_bare)).encode()
    sig = hmac.new(stored, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    r = conn.cmd(b64("%s,p=%s" % (final_bare,
                                  base64.b64encode(proof).decode())))
    if r.code != 334:
        return r
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    want = base64.b64encode(hmac.new(server_key, auth_msg,
                                     hashlib.sha256).digest()).decode()
    got = base64.b64decode(r.texts[0]).decode()
    if got != "v=" + want:
        raise AssertionError("SCRAM: server signature %r" % got)
    return conn.cmd("")


@unittest.skipIf(skip_reason() is not None, skip_reason())
class DovecotCase(TernTestCase):
    """A Dovecot and a ternd with TLS, a submission port and
    auth_backend = dovecot, with no users file at all."""

    smtp = {}
    mechs = DOVECOT_MECHS
    delivery = None

    def setUp(self):
        super().setUp()
        self.dovecot = start_dovecot(self, self.mechs)
        self.sub_port = ternlib.free_port()
        smtp = {"submission_listen": "127.0.0.1:%d" % self.sub_port,
                "relay_networks": NOT_US,
                "auth_failure_delay": "0",
                "auth_backend": "dovecot",
                "dovecot_auth_socket": self.dovecot.socket}
        smtp.update(self.smtp)
        self.t = mailtest.mail_tern(self, tls=True, smtp=smtp,
                                    delivery=self.delivery)
        if smtp["auth_backend"] == "dovecot":
            self.wait_ready()

    def wait_ready(self, since=0):
        self.t.wait_log(r"dovecot auth \S+: ready, mechanisms: ",
                        since=since)

    def conn(self, port=None):
        c = ternlib.Conn(port or self.t.port)
        self.t.conns.append(c)
        return c

    def tls(self, port=None):
        c = self.conn(port)
        c.ehlo()
        starttls(c)
        return c, c.ehlo()

    def auth_words(self, reply):
        words = [k for k in mailtest.ehlo_keywords(reply)
                 if k.split()[0] == "AUTH"]
        return words[0].split()[1:] if words else None

    def login(self, port=None, user=ALICE, password=ALICE_PW):
        c, _ = self.tls(port)
        self.assertRegex(auth_plain(c, user, password).line, AUTH_OK_RE)
        return c

    def authenticated(self, mech, user=ALICE):
        self.t.wait_log(r"authenticated: sasl_method=%s, "
                        r"sasl_username=%s, session=" %
                        (re.escape(mech), re.escape(user)))

    def failed(self, mech, user):
        self.t.wait_log(r"warning: unknown\[127\.0\.0\.1\]: SASL %s "
                        r"authentication failed: authentication failure, "
                        r"sasl_username=%s, session=" %
                        (re.escape(mech), re.escape(user)))


class Mechanisms(DovecotCase):

    def test_ehlo_lists_what_dovecot_announces(self):
        c = self.conn()
        r = c.ehlo()
        self.assertFalse(has_keyword(r, "AUTH"),
                         "AUTH offered in plaintext: %r" % r)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line,
                         r"^530 5\.7\.0 ")
        _, r = self.tls()
        self.assertEqual(sorted(self.auth_words(r)), sorted(DOVECOT_MECHS))
        self.t.wait_log(r"dovecot auth %s: ready, mechanisms: "
                        % re.escape(self.dovecot.socket))
        rc, out, err = ternlib.run_ternd(["-n", "-c", self.t.conf])
        self.assertEqual(rc, 0, err)
        self.assertNotIn("dovecot_auth_socket", err)
        self.assertIn("dovecot_auth_socket = %s" % self.dovecot.socket, out)

    def test_plain(self):
        c, _ = self.tls()
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        self.authenticated("PLAIN")
        self.assertRegex(c.cmd("AUTH PLAIN " + b64("x")).line,
                         r"^503 5\.5\.1 ")
        c, _ = self.tls()
        self.assertRegex(auth_plain(c, BOB, BOB_PW, initial=False).line,
                         AUTH_OK_RE)
        self.authenticated("PLAIN", BOB)
        c, _ = self.tls()
        self.assertRegex(auth_plain(c, ALICE, WRONG_PW).line, AUTH_BAD_RE)
        self.failed("PLAIN", ALICE)
        c, _ = self.tls()
        self.assertRegex(auth_plain(c, NOBODY, ALICE_PW).line, AUTH_BAD_RE)
        self.assertNotIn(ALICE_PW, self.t.log())
        self.assertNotIn(WRONG_PW, self.t.log())

    def test_login(self):
        c, _ = self.tls()
        self.assertRegex(auth_login(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        self.authenticated("LOGIN")
        c, _ = self.tls()
        self.assertRegex(auth_login(c, ALICE, WRONG_PW).line, AUTH_BAD_RE)
        self.failed("LOGIN", ALICE)
        c, _ = self.tls()
        self.assertRegex(auth_login(c, NOBODY, WRONG_PW).line, AUTH_BAD_RE)

    def test_cram_md5(self):
        c, _ = self.tls()
        self.assertRegex(auth_cram(c, BOB, BOB_PW).line, AUTH_OK_RE)
        self.authenticated("CRAM-MD5", BOB)
        c, _ = self.tls()
        self.assertRegex(auth_cram(c, BOB, WRONG_PW).line, AUTH_BAD_RE)
        self.failed("CRAM-MD5", BOB)
        c, _ = self.tls()
        self.assertRegex(auth_cram(c, NOBODY, WRONG_PW).line, AUTH_BAD_RE)

    def test_scram_sha256_passed_through(self):
        c, _ = self.tls()
        self.assertRegex(scram_sha256(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        self.authenticated("SCRAM-SHA-256")
        c, _ = self.tls()
        r = scram_sha256(c, ALICE, WRONG_PW)
        self.assertRegex(r.line, AUTH_BAD_RE)
        c, _ = self.tls()
        self.assertRegex(scram_sha256(c, NOBODY, WRONG_PW).line,
                         AUTH_BAD_RE)

    def test_cancel_and_garbage(self):
        c, _ = self.tls()
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        self.assertRegex(c.cmd("*").line, CANCEL_RE)
        # Not base64: refused by tern before Dovecot sees it.
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        self.assertRegex(c.cmd("not\tbase64!").line, r"^501 5\.5\.2 ")
        self.assertRegex(c.cmd("AUTH PLAIN a\tb").line, r"^501 5\.5\.")
        self.assertRegex(c.cmd("AUTH PLAIN %%%%").line, r"^501 5\.5\.2 ")
        # Base64 that Dovecot finds malformed: a failure.
        self.assertRegex(c.cmd("AUTH PLAIN " + b64("no-nuls")).line,
                         AUTH_BAD_RE)
        self.assertRegex(c.cmd("AUTH GSSAPI").line, NOT_OFFERED_RE)
        # The session is intact after all that.
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Interleaved(DovecotCase):
    """Exchanges of many sessions at once share the one connection to
    Dovecot: each gets its own answer."""

    N = 12

    def test_sessions_side_by_side(self):
        conns = [self.tls()[0] for _ in range(self.N)]
        for c in conns:
            self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        for i, c in enumerate(conns):
            self.assertEqual(c.cmd(b64(ALICE if i % 2 else BOB)).code, 334)
        # Every password is sent before any answer is read.
        for i, c in enumerate(conns):
            pw = (ALICE_PW if i % 2 else BOB_PW) if i % 3 else WRONG_PW
            c.send((b64(pw) + "\r\n").encode())
        for i, c in enumerate(conns):
            want = AUTH_OK_RE if i % 3 else AUTH_BAD_RE
            self.assertRegex(c.reply().line, want, "session %d" % i)
        for i, c in enumerate(conns):
            if i % 3:
                self.assertReply(c.cmd("MAIL FROM:<%s>" %
                                       (ALICE if i % 2 else BOB)), MAIL_OK)


class Reload(DovecotCase):
    """SIGHUP moves between the users file and Dovecot."""

    smtp = {"auth_backend": "users"}

    def test_switch_backend(self):
        _, r = self.tls()
        self.assertFalse(has_keyword(r, "AUTH"), r)
        mark = self.t.log_mark()
        self.t.write_config(smtp={"auth_backend": "dovecot"})
        self.t.reload()
        self.wait_ready(since=mark)
        c, r = self.tls()
        self.assertTrue(has_keyword(r, "AUTH"), r)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Restricted(DovecotCase):
    """tern's auth_mechanisms cuts Dovecot's list."""

    smtp = {"auth_mechanisms": "PLAIN CRAM-MD5"}

    def test_only_the_intersection(self):
        c, r = self.tls()
        self.assertEqual(sorted(self.auth_words(r)), ["CRAM-MD5", "PLAIN"])
        self.assertRegex(c.cmd("AUTH LOGIN").line, NOT_OFFERED_RE)
        self.assertRegex(c.cmd("AUTH SCRAM-SHA-256").line, NOT_OFFERED_RE)
        self.assertRegex(auth_cram(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class FewMechanisms(DovecotCase):
    """Dovecot offering PLAIN only: so does tern."""

    mechs = ["PLAIN"]

    def test_plain_only(self):
        c, r = self.tls()
        self.assertEqual(self.auth_words(r), ["PLAIN"])
        self.assertRegex(c.cmd("AUTH LOGIN").line, NOT_OFFERED_RE)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Failures(DovecotCase):

    smtp = {"auth_max_failures": "2"}

    def test_max_failures(self):
        c, _ = self.tls()
        self.assertRegex(auth_plain(c, ALICE, WRONG_PW).line, AUTH_BAD_RE)
        self.assertRegex(auth_login(c, ALICE, WRONG_PW).line, AUTH_BAD_RE)
        self.assertRegex(c.reply().line, LIMIT_RE)
        c.expect_eof()


class Penalty(DovecotCase):
    """The per-account limit of anvil applies to Dovecot's user name:
    during the penalty a right password gets the same 454 as a wrong
    one."""

    smtp = {"max_auth_failure_rate_per_user": "2",
            "max_auth_failure_rate": "0", "auth_max_failures": "10"}

    def test_user_penalty(self):
        c, _ = self.tls()
        for _ in range(2):
            self.assertRegex(auth_plain(c, BOB, WRONG_PW).line, AUTH_BAD_RE)
        self.assertRegex(auth_plain(c, BOB, BOB_PW).line, TEMP_RE)
        self.assertRegex(auth_plain(c, BOB, WRONG_PW).line, TEMP_RE)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)


class Relay(DovecotCase):

    def setUp(self):
        self.hop = NextHop(GW)
        self.addCleanup(self.hop.stop)
        self.delivery = {"gateway": "%s:%d" % (GW, self.hop.port),
                         "gateway_all": "yes", "queue_interval": "1s"}
        super().setUp()

    def test_relayed_after_auth(self):
        c, _ = self.tls()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        self.assertReply(c.cmd("RCPT TO:<%s>" % REMOTE),
                         "554 5.7.1 <%s>: Relay access denied" % REMOTE)
        c.cmd("RSET")
        c = self.login(self.sub_port)
        self.assertRegex(c.cmd("MAIL FROM:<%s>" % BOB).line, NOT_OWNER_RE)
        qid = queued_id(c.mail(ALICE, [REMOTE], MSG))
        c.cmd("QUIT")
        msg = self.hop.wait_messages(1, mailtest.DELIVER_TIMEOUT)[0]
        self.assertEqual((msg.mail_from, msg.rcpts), (ALICE, [REMOTE]))
        self.assertTrue(msg.data.endswith(MSG), msg.data[-200:])
        self.assertIn("id %s" % qid, mailtest.received_header(msg.data))
        self.assertIn("ESMTPSA", mailtest.received_header(msg.data))


class MilterMacros(DovecotCase):
    """A milter is told the mechanism Dovecot checked, not another."""

    def setUp(self):
        super().setUp()
        from test_milter import Filter
        self.filter = Filter("script")
        self.addCleanup(self.filter.close)
        self.t.write_config(sections={"milter": {
            "smtpd_milters": self.filter.spec}})
        mark = self.t.log_mark()
        self.t.restart()
        self.wait_ready(since=mark)

    def test_auth_type_is_the_mechanism_used(self):
        c, _ = self.tls()
        self.assertRegex(auth_login(c, ALICE, ALICE_PW).line, AUTH_OK_RE)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ALICE), MAIL_OK)
        mail = self.filter.wait_event("mail")[-1]["macros"]
        self.assertEqual(mail["{auth_authen}"], ALICE)
        self.assertEqual(mail["{auth_type}"], "LOGIN")


class Outage(DovecotCase):
    """Dovecot stopped: AUTH is answered 454 4.7.0 and logged, EHLO stops
    offering it; once Dovecot is back, both return without a reload."""

    def test_stopped_and_back(self):
        c = self.login()
        mark = self.t.log_mark()
        stop_dovecot(self.dovecot)
        self.t.wait_log(r"dovecot auth \S+: connection closed by Dovecot; "
                        r"AUTH not offered until it answers", since=mark)
        c, r = self.tls()
        self.assertFalse(has_keyword(r, "AUTH"), r)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, TEMP_RE)
        self.t.wait_log(r"AUTH from \[127\.0\.0\.1\]: Dovecot "
                        r"authentication unavailable", since=mark)
        # Not a failure: the session may try again.
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, TEMP_RE)
        mark = self.t.log_mark()
        self.dovecot.start()
        self.wait_ready(since=mark)
        c, r = self.tls()
        self.assertTrue(has_keyword(r, "AUTH"), r)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, AUTH_OK_RE)

    def test_exchange_cut_by_dovecot(self):
        c, _ = self.tls()
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        self.assertEqual(c.cmd(b64(ALICE)).code, 334)
        stop_dovecot(self.dovecot)
        self.assertRegex(c.cmd(b64(ALICE_PW)).line, TEMP_RE)
        self.assertEqual(c.cmd("NOOP").code, 250)


@unittest.skipIf(skip_reason() is not None, skip_reason())
class Unreachable(TernTestCase):
    """A socket nobody listens on: ternd starts, logs it, and answers AUTH
    454 without offering it."""

    def test_no_dovecot(self):
        d = tempfile.mkdtemp(prefix="tern-dvauth-none-")
        self.addCleanup(shutil.rmtree, d, True)
        sock = os.path.join(d, "auth-client")
        t = mailtest.mail_tern(self, tls=True, smtp={
            "auth_backend": "dovecot", "dovecot_auth_socket": sock})
        t.wait_log(r"dovecot auth %s: .*AUTH not offered until it "
                   r"answers" % re.escape(sock))
        c = ternlib.Conn(t.port)
        t.conns.append(c)
        c.ehlo()
        starttls(c)
        r = c.ehlo()
        self.assertFalse(has_keyword(r, "AUTH"), r)
        self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line, TEMP_RE)
        # The check warns of the missing socket, and still passes.
        rc, out, err = ternlib.run_ternd(["-n", "-c", t.conf])
        self.assertEqual(rc, 0, err)
        self.assertIn("auth_backend = dovecot", out)
        self.assertIn("warning: dovecot_auth_socket %s: No such file or "
                      "directory" % sock, err)


class Clients(DovecotCase):
    """Real submission clients, with their own choice of mechanism, and
    their message relayed to the next hop."""

    def setUp(self):
        self.hop = NextHop(GW)
        self.addCleanup(self.hop.stop)
        self.delivery = {"gateway": "%s:%d" % (GW, self.hop.port),
                         "gateway_all": "yes", "queue_interval": "1s"}
        super().setUp()

    def message(self, subject):
        path = os.path.join(self.dovecot.dir, "%s.eml" % subject)
        with open(path, "wb") as f:
            f.write(("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                     "Message-ID: <%s@clients.test>\r\n"
                     "Date: Mon, 7 Dec 2026 03:00:00 +0000\r\n\r\n"
                     "Sent by %s.\r\n" % (ALICE, BOB, subject, subject,
                                          subject)).encode())
        return path

    def run_client(self, argv, **kw):
        p = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=CLIENT_TIMEOUT,
                           **kw)
        self.assertEqual(p.returncode, 0, "%s failed:\n%s" % (
            argv[0], p.stdout.decode("utf-8", "replace")))

    def relayed(self, subject):
        msg = self.hop.wait_messages(1, mailtest.DELIVER_TIMEOUT)[0]
        self.assertEqual((msg.mail_from, msg.rcpts), (ALICE, [REMOTE]))
        self.assertIn(b"Subject: %s\r\n" % subject.encode(), msg.data)

    @unittest.skipIf(shutil.which("curl") is None, "curl not installed")
    def test_curl(self):
        self.run_client(["curl", "--silent", "--show-error",
                         "--url", "smtp://127.0.0.1:%d" % self.sub_port,
                         "--ssl-reqd", "--insecure",
                         "--user", "%s:%s" % (ALICE, ALICE_PW),
                         "--mail-from", ALICE, "--mail-rcpt", REMOTE,
                         "--upload-file", self.message("curl")])
        self.relayed("curl")
        # curl prefers CRAM-MD5 to LOGIN and PLAIN: a challenge made by
        # Dovecot, answered by curl through tern.
        self.authenticated("CRAM-MD5")

    @unittest.skipIf(shutil.which("msmtp") is None, "msmtp not installed")
    def test_msmtp(self):
        conf = os.path.join(self.dovecot.dir, "msmtprc")
        with open(conf, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\n"
                    "tls on\ntls_starttls on\ntls_certcheck off\n"
                    "auth on\nuser %s\npassword %s\nfrom %s\n"
                    % (self.sub_port, ALICE, ALICE_PW, ALICE))
        os.chmod(conf, 0o600)
        with open(self.message("msmtp"), "rb") as msg:
            self.run_client(["msmtp", "-C", conf, REMOTE], stdin=msg,
                            env=dict(os.environ, HOME=self.dovecot.dir))
        self.relayed("msmtp")
        # Under TLS msmtp takes PLAIN among what Dovecot offers.
        self.authenticated("PLAIN")


if __name__ == "__main__":
    ternlib.main()
