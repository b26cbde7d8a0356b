"""
test_lmtp.py: local delivery over LMTP (RFC 2033), [local] transport =
lmtp:unix:PATH, through the real ternd.

A scripted LMTP server (Python, on a unix socket in the test's directory)
answers each recipient as the test says, at RCPT or after the message,
and records every connection, command and message: one recipient refused
with 4xx after the message is deferred alone and delivered on the retry
(ternctl flush), one refused with 5xx is returned alone to the sender in
a DSN (itself delivered over LMTP, the sender being local), the good one
is delivered once; aliases reach the server as their final address; the
server down defers, and after it comes back a flush delivers;
NOTIFY=SUCCESS gets tern's own "delivered" report; a second
message reuses the connection (RSET); lmtp_max_connections is never
exceeded; a server that never answers after the message defers by the
data timeout; lmtp:inet:host:port works the same over TCP.

Then a real Dovecot (Debian's dovecot-lmtpd, started by the test with
protocols imap and lmtp) takes the mail over its LMTP socket: it is read
back over IMAP, once, with one Return-Path and one Delivered-To (Dovecot's
own: tern adds none on this path); a recipient tern knows but Dovecot
does not is refused by Dovecot with 5.1.1 and bounced; a recipient over
its Dovecot quota (quota_full_tempfail) gets a 4.2.2 after the message
and is deferred alone; Dovecot stopped at first, then started, gets the
mail on a flush.  The Dovecot part is
skipped without Dovecot or without root.
"""

import email
import email.policy
import imaplib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
from dovecot import Dovecot, dovecot_version, skip_reason  # noqa: E402
import ternlib  # noqa: E402
from ternlib import QID_RE, TernTestCase, wait_for  # noqa: E402

SENDER = "sender@local.test"
GOOD = "good@local.test"
SOFT = "soft@local.test"
HARD = "hard@local.test"
TEAM = "team@local.test"	# an alias of GOOD
REMOTE_SENDER = "someone@origin.test"
TIMEOUT = 20.0
QUIET = 1.0		# how long "nothing more happens" is watched


def content(subject, body="Hello over LMTP.\r\n.dot line\r\n"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@origin.test>\r\n\r\n%s"
            % (SENDER, GOOD, subject, subject.replace(" ", "."),
               body)).encode()


def outcome_re(qid, addr, status):
    return (r"ternd/smtp\[[0-9]+\]: %s: to=<%s>, relay=[^,]*, delay=[0-9.]+, "
            r"dsn=[0-9.]+, status=%s " % (qid, re.escape(addr), status))


class LmtpServer:
    """A scripted LMTP server on a unix socket, one thread per
    connection.  replies: address -> list of (RCPT reply, reply after
    the message); each delivery attempt of an address takes the next
    pair, the last one staying.  An address not listed gets 250s.  With
    stall, nothing is answered after the message."""

    def __init__(self, path, replies=None, delay=0.0, stall=False):
        self.path = path
        self.replies = {k: list(v) for k, v in (replies or {}).items()}
        self.delay = delay
        self.stall = stall
        self.lock = threading.Lock()
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.commands = []		# every command line, in order
        self.messages = []		# (sender, [rcpts], data) delivered
        self.sock = None
        self.threads = []
        self.stopping = False

    def start(self):
        self.stopping = False
        if isinstance(self.path, tuple):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(self.path)
        else:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.path)
            os.chmod(self.path, 0o666)	# ternd runs as nobody
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(10)
        self.threads = []
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if not isinstance(self.path, tuple) and os.path.exists(self.path):
            os.unlink(self.path)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            t.start()
            with self.lock:
                self.threads.append(t)

    def _reply_for(self, addr):
        with self.lock:
            script = self.replies.get(addr.lower())
            if not script:
                return ("250 2.1.5 OK", "250 2.0.0 <%s> Saved" % addr)
            return script.pop(0) if len(script) > 1 else script[0]

    def delivered(self, addr):
        """The messages delivered to addr."""
        with self.lock:
            return [m for m in self.messages if addr in m[1]]

    def _serve(self, conn):
        with self.lock:
            self.connections += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            self._session(conn, f)
        except (OSError, ValueError):
            pass
        finally:
            f.close()
            conn.close()
            with self.lock:
                self.active -= 1

    def _session(self, conn, f):
        def send(text):
            if self.delay:
                time.sleep(self.delay)
            conn.sendall(text.encode() + b"\r\n")
        send("220 lmtp.test LMTP ready")
        sender, rcpts, pending = None, [], []
        while not self.stopping:
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
            with self.lock:
                self.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "LHLO":
                send("250-lmtp.test\r\n250-PIPELINING\r\n"
                     "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
                     "250 SIZE")
            elif verb == "MAIL":
                sender = re.match(r"MAIL FROM:<([^>]*)>", cmd).group(1)
                rcpts, pending = [], []
                send("250 2.1.0 OK")
            elif verb == "RCPT":
                addr = re.match(r"RCPT TO:<([^>]*)>", cmd).group(1)
                rcpt_reply, data_reply = self._reply_for(addr)
                if rcpt_reply.startswith("2"):
                    pending.append((addr, data_reply))
                send(rcpt_reply)
            elif verb == "DATA":
                if not pending:
                    send("503 5.5.1 No valid recipients")
                    continue
                send("354 OK")
                data = b""
                while True:
                    dl = f.readline()
                    if not dl:
                        return
                    if dl == b".\r\n":
                        break
                    data += dl[1:] if dl.startswith(b".") else dl
                if self.stall:
                    while not self.stopping and conn.recv(1):
                        pass
                    return
                ok = [a for a, r in pending if r.startswith("2")]
                with self.lock:
                    if ok:
                        self.messages.append((sender, ok, data))
                # RFC 2033 4.2: one reply per accepted recipient.
                for _, r in pending:
                    send(r)
                pending = []
            elif verb == "RSET":
                sender, rcpts, pending = None, [], []
                send("250 2.0.0 OK")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("500 5.5.1 Unknown command")


class LmtpCase(TernTestCase):

    def setUp(self):
        super().setUp()
        self.server = None

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "server", None) is not None:
            out.append("--- lmtp server commands ---\n" +
                       "\n".join(self.server.commands[-200:]))
        return "\n".join(out)

    def start_tern(self, path, local=None, delivery=None):
        users = [(a, "-") for a in (SENDER, GOOD, SOFT, HARD)]
        if isinstance(path, tuple):
            conf_local = {"transport": "lmtp:inet:%s:%d" % path}
        else:
            conf_local = {"transport": "lmtp:unix:%s" % path}
        conf_local.update(local or {})
        conf_delivery = {"data_timeout": "2s", "idle_timeout": "30s"}
        conf_delivery.update(delivery or {})
        self.t = mailtest.mail_tern(self, users=users,
                                    aliases=[(TEAM, [GOOD])],
                                    local=conf_local,
                                    delivery=conf_delivery)
        return self.t

    def ctl(self, *args):
        ctl = mailtest.ternctl_path()
        if not ctl or not os.access(ctl, os.X_OK):
            self.fail("ternctl not built (TERN_BUILDDIR=%r)"
                      % mailtest.BUILDDIR)
        p = subprocess.run([ctl, "-c", self.t.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return p.stdout.decode()

    def wait_gone(self, qid):
        wait_for(lambda: qid not in self.t.queued(), TIMEOUT,
                 "%s to leave the queue" % qid)

    def wait_tries(self, qid, n=1):
        """The attempt's outcome is on disk (the message is no longer
        busy, so a flush reaches it)."""
        wait_for(lambda: re.search(rb"\ntries: %d\n" % n,
                                   self.t.read_env_bytes(qid)),
                 TIMEOUT, "try %d of %s on disk" % (n, qid))


class Scripted(LmtpCase):

    def sockdir(self):
        d = os.path.join(self.t_dir, "lmtp")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
        return os.path.join(d, "lmtp.sock")

    def setUp(self):
        super().setUp()
        import tempfile
        self.t_dir = tempfile.mkdtemp(prefix="tern-lmtp-")
        os.chmod(self.t_dir, 0o755)
        self.addCleanup(mailtest.rmtree, self.t_dir)
        self.path = self.sockdir()

    def serve(self, **kw):
        self.server = LmtpServer(self.path, **kw).start()
        self.addCleanup(self.server.stop)
        return self.server

    def test_per_recipient_replies(self):
        srv = self.serve(replies={
            SOFT: [("250 2.1.5 OK", "452 4.2.2 <%s> Quota exceeded" % SOFT),
                   ("250 2.1.5 OK", "250 2.0.0 <%s> Saved" % SOFT)],
            HARD: [("250 2.1.5 OK", "552 5.2.2 <%s> Mailbox full" % HARD)],
        })
        t = self.start_tern(self.path)
        qid = t.send_message(SENDER, [GOOD, SOFT, HARD],
                             content("per recipient"))
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, SOFT, "deferred") +
                   r"\(.*said: 452 4\.2\.2 <soft@local\.test> Quota "
                   r"exceeded \(in reply to end of DATA command\)\)",
                   timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, HARD, "bounced") +
                   r"\(.*said: 552 5\.2\.2 ", timeout=TIMEOUT)
        self.wait_tries(qid)
        _, rcpts = t.read_env(qid)
        states = {r["rcpt"]: r["rcpt-state"] for r in rcpts}
        self.assertEqual(states, {"<%s>" % GOOD: "sent",
                                  "<%s>" % SOFT: "pending",
                                  "<%s>" % HARD: "failed"}, rcpts)
        # The DSN for HARD went to the (local) sender over LMTP too.
        wait_for(lambda: srv.delivered(SENDER), TIMEOUT,
                 "the DSN to the sender")
        dsn = srv.delivered(SENDER)
        self.assertEqual(len(dsn), 1, dsn)
        self.assertEqual(dsn[0][0], "")
        text = dsn[0][2].decode("utf-8", "replace")
        self.assertIn("Final-Recipient: rfc822; %s" % HARD, text)
        self.assertIn("Status: 5.2.2", text)
        self.assertIn("552 5.2.2 <%s> Mailbox full" % HARD, text)
        self.assertNotIn("Final-Recipient: rfc822; %s" % SOFT, text)
        self.assertNotIn("Final-Recipient: rfc822; %s" % GOOD, text)

        # The retry: only SOFT is attempted, and now delivered.
        n = len(srv.messages)
        self.ctl("flush")
        t.wait_log(outcome_re(qid, SOFT, "sent"), timeout=TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 1)
        self.assertEqual(len(srv.delivered(SOFT)), 1)
        self.assertEqual(srv.delivered(HARD), [])
        self.assertEqual(srv.messages[n][1], [SOFT])
        # One transaction per attempt, with every recipient's RCPT.
        rcpt_cmds = [c for c in srv.commands if c.startswith("RCPT")]
        self.assertEqual(rcpt_cmds.count("RCPT TO:<%s>" % GOOD), 1)
        self.assertEqual(rcpt_cmds.count("RCPT TO:<%s>" % HARD), 1)
        self.assertEqual(rcpt_cmds.count("RCPT TO:<%s>" % SOFT), 2)
        # LMTP, not SMTP: LHLO, never EHLO, HELO or STARTTLS.
        verbs = {c.split(" ")[0] for c in srv.commands}
        self.assertIn("LHLO", verbs)
        self.assertFalse(verbs & {"EHLO", "HELO", "STARTTLS", "AUTH"},
                         verbs)
        # The message as queued, once, with no trace field of a Maildir
        # delivery: the LMTP server adds its own.
        data = srv.delivered(GOOD)[0][2]
        self.assertTrue(data.endswith(content("per recipient")), data)
        self.assertNotIn(b"Delivered-To:", data)
        self.assertNotIn(b"Return-Path:", data)
        self.assertEqual(data.count(b"Received:"), 1, data)

    def test_rcpt_refusals(self):
        srv = self.serve(replies={
            SOFT: [("450 4.2.1 <%s> Mailbox busy" % SOFT, None),
                   ("250 2.1.5 OK", "250 2.0.0 Saved")],
            HARD: [("550 5.1.1 <%s> User doesn't exist" % HARD, None)],
        })
        t = self.start_tern(self.path)
        qid = t.send_message(REMOTE_SENDER, [GOOD, SOFT, HARD],
                             content("at rcpt"))
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, SOFT, "deferred") +
                   r"\(.*in reply to RCPT TO command\)", timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, HARD, "bounced") +
                   r"\(.*said: 550 5\.1\.1 ", timeout=TIMEOUT)
        # The DSN to the remote sender is queued for it.
        m = t.wait_log(r": %s: sender non-delivery notification: (%s)$"
                       % (qid, QID_RE), timeout=TIMEOUT)
        bounce = m.group(1)
        self.assertIn(b"Final-Recipient: rfc822; " + HARD.encode(),
                      t.read_msg(bounce))
        self.wait_tries(qid)
        self.ctl("flush")
        t.wait_log(outcome_re(qid, SOFT, "sent"), timeout=TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 1)
        self.assertEqual(len(srv.delivered(SOFT)), 1)

    def test_success_notice(self):
        """NOTIFY=SUCCESS: LMTP is the final delivery, so tern reports
        "delivered" itself and passes no NOTIFY on."""
        srv = self.serve()
        t = self.start_tern(self.path)
        c = t.session()
        try:
            self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
            r = c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS" % GOOD)
            self.assertEqual(r.code, 250, r)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(ternlib.dot_stuff(content("notify")))
            qid = ternlib.queued_id(c.reply())
            c.cmd("QUIT")
        finally:
            c.close()
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        wait_for(lambda: srv.delivered(SENDER), TIMEOUT,
                 "the success report to the sender")
        report = srv.delivered(SENDER)[0][2].decode("utf-8", "replace")
        self.assertIn("Final-Recipient: rfc822; %s" % GOOD, report)
        self.assertIn("Action: delivered", report)
        self.assertIn("Status: 2.0.0", report)
        self.assertFalse([x for x in srv.commands if "NOTIFY" in x],
                         srv.commands)

    def test_alias_final_address(self):
        srv = self.serve()
        t = self.start_tern(self.path)
        qid = t.send_message(REMOTE_SENDER, [TEAM], content("alias"))
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 1)
        self.assertNotIn("RCPT TO:<%s>" % TEAM, srv.commands)

    def test_inet(self):
        """lmtp:inet:host:port: the same over TCP on loopback."""
        port = ternlib.free_port()
        self.path = ("127.0.0.1", port)
        srv = self.serve(replies={
            HARD: [("250 2.1.5 OK", "554 5.6.0 <%s> Rejected" % HARD)]})
        t = self.start_tern(self.path)
        qid = t.send_message(REMOTE_SENDER, [GOOD, HARD], content("inet"))
        t.wait_log(outcome_re(qid, GOOD, "sent").replace(
            "relay=[^,]*", r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d" % port),
            timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, HARD, "bounced"), timeout=TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 1)

    def test_server_down_then_flush(self):
        t = self.start_tern(self.path)
        qid = t.send_message(REMOTE_SENDER, [GOOD], content("down"))
        t.wait_log(outcome_re(qid, GOOD, "deferred") +
                   r"\(connect to .*\[%s\]: No such file or directory\)"
                   % re.escape(self.path), timeout=TIMEOUT)
        self.wait_tries(qid)
        srv = self.serve()
        self.ctl("flush")
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 1)

    def test_reuse_and_cap(self):
        srv = self.serve(delay=0.05)
        t = self.start_tern(self.path,
                            local={"lmtp_max_connections": "1"})
        qids = [t.send_message(REMOTE_SENDER, [GOOD], content("m%d" % i))
                for i in range(4)]
        for qid in qids:
            t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        for qid in qids:
            self.wait_gone(qid)
        self.assertEqual(len(srv.delivered(GOOD)), 4)
        self.assertEqual(srv.max_active, 1)
        # One connection served them all, RSET between transactions.
        self.assertEqual(srv.connections, 1)
        self.assertEqual(sum(c == "RSET" for c in srv.commands), 3)

    def test_no_answer_after_data(self):
        srv = self.serve(stall=True)
        t = self.start_tern(self.path)
        qid = t.send_message(REMOTE_SENDER, [GOOD], content("stall"))
        t.wait_log(outcome_re(qid, GOOD, "deferred") +
                   r"\(conversation with .* timed out while sending end "
                   r"of data", timeout=TIMEOUT)
        self.wait_tries(qid)
        _, rcpts = t.read_env(qid)
        self.assertEqual(rcpts[0]["rcpt-state"], "pending")


@unittest.skipIf(skip_reason() is not None, skip_reason())
@unittest.skipIf(not os.access("/usr/lib/dovecot/lmtp", os.X_OK),
                 "Dovecot's lmtp binary is missing: install dovecot-lmtpd")
class RealDovecot(LmtpCase):
    """Dovecot's own LMTP server, read back over IMAP."""

    PASSWORD = "Lmtp-pass-3"

    def setUp(self):
        super().setUp()
        uid, gid = mailtest.daemon_ids()
        self.dovecot = None
        import tempfile
        self.homes = tempfile.mkdtemp(prefix="tern-lmtp-homes-")
        os.chmod(self.homes, 0o755)
        self.addCleanup(mailtest.rmtree, self.homes)
        users = []
        # HARD is known to tern, not to Dovecot.
        for addr in (SENDER, GOOD, SOFT):
            home = os.path.join(self.homes, addr.split("@")[0])
            os.makedirs(home)
            os.chown(home, uid, gid)
            users.append((addr, self.PASSWORD, uid, gid, home))
        v = dovecot_version()
        extra = ["postmaster_address = postmaster@local.test"]
        if v >= (2, 4):
            extra = []
        self.dovecot = Dovecot(users, v, protocols=("imap", "lmtp"),
                               extra=extra)
        self.addCleanup(self.dovecot.stop)
        self.lmtp_path = os.path.join(self.dovecot.dir, "run", "lmtp")

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "dovecot", None) is not None:
            out.append("--- dovecot ---\n" + self.dovecot.log()[-4000:])
        return "\n".join(out)

    def imap(self, user):
        imap = imaplib.IMAP4("127.0.0.1", self.dovecot.port, timeout=10)
        self.addCleanup(self._logout, imap)
        typ, _ = imap.login(user, self.PASSWORD)
        self.assertEqual(typ, "OK")
        typ, _ = imap.select("INBOX")
        self.assertEqual(typ, "OK")
        return imap

    @staticmethod
    def _logout(imap):
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def fetch_all(self, user):
        imap = self.imap(user)
        typ, data = imap.search(None, "ALL")
        self.assertEqual(typ, "OK")
        out = []
        for num in data[0].split():
            typ, d = imap.fetch(num, "(RFC822)")
            self.assertEqual(typ, "OK")
            out.append(d[0][1])
        return out

    def test_delivered_into_dovecot(self):
        self.dovecot.start()
        t = self.start_tern(self.lmtp_path)
        msg = content("into dovecot")
        qid = t.send_message(SENDER, [GOOD, TEAM, HARD], msg)
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, HARD, "bounced") +
                   r"\(.*said: 550 5\.1\.1 ", timeout=TIMEOUT)
        self.wait_gone(qid)
        # GOOD and TEAM are one final address: one message.
        got = self.fetch_all(GOOD)
        self.assertEqual(len(got), 1, got)
        raw = got[0]
        self.assertTrue(raw.endswith(msg), raw[-300:])
        m = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(m.get_all("Delivered-To"), [GOOD])
        self.assertEqual(m.get_all("Return-Path"), ["<%s>" % SENDER])
        received = m.get_all("Received")
        # Dovecot's, on top of ours naming the queue id.
        self.assertEqual(len(received), 2, received)
        self.assertIn("id %s" % qid, str(received[1]))
        self.assertIn("LMTP", str(received[0]))
        # The bounce for HARD reached the sender, over LMTP too.
        wait_for(lambda: self.fetch_all(SENDER), TIMEOUT,
                 "the bounce in the sender's INBOX")
        bounces = self.fetch_all(SENDER)
        self.assertEqual(len(bounces), 1)
        self.assertIn(b"Final-Recipient: rfc822; " + HARD.encode(),
                      bounces[0])
        self.assertIn(b"Status: 5.1.1", bounces[0])

    def test_over_quota_deferred(self):
        """Dovecot's own 4xx after the message (quota_full_tempfail)
        defers that recipient alone; the others are delivered once."""
        if self.dovecot.version >= (2, 4):
            self.skipTest("the quota settings below are Dovecot 2.3's")
        self.dovecot.extra += [
            "protocol lmtp {", "  mail_plugins = $mail_plugins quota", "}",
            "plugin {", "  quota = maildir:User quota",
            "  quota_rule = *:storage=10K", "}",
            "quota_full_tempfail = yes"]
        # SOFT's Maildir already holds more than its quota.
        uid, gid = mailtest.daemon_ids()
        home = os.path.join(self.homes, SOFT.split("@")[0])
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(home, sub), exist_ok=True)
            os.chown(os.path.join(home, sub), uid, gid)
        filler = os.path.join(home, "cur", "1.M1P1.filler,S=20480:2,S")
        with open(filler, "wb") as f:
            f.write(b"Subject: filler\n\n" + b"x" * 20460 + b"\n")
        os.chown(filler, uid, gid)
        self.dovecot.start()
        t = self.start_tern(self.lmtp_path)
        msg = content("over quota")
        qid = t.send_message(REMOTE_SENDER, [GOOD, SOFT], msg)
        t.wait_log(outcome_re(qid, GOOD, "sent"), timeout=TIMEOUT)
        t.wait_log(outcome_re(qid, SOFT, "deferred") +
                   r"\(.*said: 4[0-9][0-9] 4\.2\.2 .*\(in reply to end of "
                   r"DATA command\)\)", timeout=TIMEOUT)
        self.wait_tries(qid)
        _, rcpts = t.read_env(qid)
        states = {r["rcpt"]: r["rcpt-state"] for r in rcpts}
        self.assertEqual(states, {"<%s>" % GOOD: "sent",
                                  "<%s>" % SOFT: "pending"}, rcpts)
        self.assertNotRegex(t.log(), r"%s: sender non-delivery" % qid)
        got = self.fetch_all(GOOD)
        self.assertEqual(len(got), 1, got)
        self.assertTrue(got[0].endswith(msg))

    def test_dovecot_down_then_flush(self):
        t = self.start_tern(self.lmtp_path)
        msg = content("dovecot later")
        qid = t.send_message(REMOTE_SENDER, [SOFT], msg)
        t.wait_log(outcome_re(qid, SOFT, "deferred"), timeout=TIMEOUT)
        self.wait_tries(qid)
        self.dovecot.start()
        wait_for(lambda: os.path.exists(self.lmtp_path), TIMEOUT,
                 "Dovecot's LMTP socket")
        self.ctl("flush")
        t.wait_log(outcome_re(qid, SOFT, "sent"), timeout=TIMEOUT)
        self.wait_gone(qid)
        got = self.fetch_all(SOFT)
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].endswith(msg))


if __name__ == "__main__":
    ternlib.main()
