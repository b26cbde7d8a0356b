"""
test_sendmail.py: local submission.  The ternctl binary, run as
"sendmail" through a symbolic link (TERN_CONFIG naming the test's
configuration), writes into the spool's maildrop/; ternd picks the file
up and relays it to a NextHop gateway on loopback.  Covered: -t with
To/Cc/Bcc and Bcc removed, a message waiting while the daemon is down,
-f, -F, -i, the From/Date/Message-ID added when missing, unqualified
addresses, the Received header naming the submitting user, bad files
in maildrop/ removed with a log line while the daemon goes on, the
permission model for ordinary users, and bsd-mailx's mail(1) running
/usr/sbin/sendmail inside a private mount namespace.  Local recipients
end in Maildirs: a user of the users file, with the daemon running or
started later; an alias, as the users it reaches; a bare name, in
[local] default_domain; an unknown user, bounced (5.1.1) to a local
sender.
"""

import email
import email.utils
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import maildir_names, split_stored, stored_form  # noqa: E402
from nexthop import NextHop, common_port  # noqa: E402
from ternlib import HOSTNAME, QID_RE, TernTestCase  # noqa: E402

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
TERNCTL = os.path.join(BUILDDIR, "src", "ternctl")

GW = "127.0.0.5"
DELIVER_TIMEOUT = 60.0
RUN_TIMEOUT = 10.0
EX_USAGE = 64
EX_DATAERR = 65


def header_values(data, name):
    """Every value of the header field name in a message (bytes)."""
    m = email.message_from_bytes(data)
    return m.get_all(name) or []


class SendmailCase(TernTestCase):
    """A test with a NextHop gateway on its own port, a "sendmail" link to
    ternctl, and a daemon that sends everything to the gateway."""

    def setUp(self):
        super().setUp()
        if not os.access(TERNCTL, os.X_OK):
            self.fail("no ternctl at %s (TERN_BUILDDIR)" % TERNCTL)
        self.tmp = tempfile.mkdtemp(prefix="tern-e2e-sm-")
        os.chmod(self.tmp, 0o755)	# other users run the link
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.link = os.path.join(self.tmp, "sendmail")
        os.symlink(TERNCTL, self.link)
        self.port = common_port([GW])
        self.gw = NextHop(GW, port=self.port)
        self.addCleanup(self.gw.stop)

    def start_tern(self, start=True):
        self.t = self.tern(start=start, sections={"delivery": {
            "gateway": "%s:%d" % (GW, self.port), "gateway_all": "yes",
            "queue_interval": "1s", "connect_timeout": "2s",
            "reply_timeout": "3s"}})
        return self.t

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "gw", None) is not None:
            out.append(self.gw.summary())
        return "\n".join(out)

    def domain(self):
        """Where unqualified addresses go: [local] default_domain, else
        the first local domain."""
        d = self.t.sections.get("local", {}).get("default_domain")
        return d or self.t.smtp["local_domains"].split()[0]

    def maildrop(self):
        return self.t.path("maildrop")

    def dropped(self):
        """The names in maildrop/ (read as the test runner)."""
        return sorted(os.listdir(self.maildrop()))

    def sendmail(self, args, data, user=None, env=None):
        """Run the link with args and data on stdin, as user when given
        (a child that drops to it); return the CompletedProcess."""
        e = dict(os.environ)
        e["TERN_CONFIG"] = self.t.conf
        e.update(env or {})
        pre = None
        if user is not None:
            pw = pwd.getpwnam(user)

            def pre():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        if isinstance(data, str):
            data = data.encode()
        try:
            return subprocess.run([self.link] + list(args), input=data,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=e,
                                  cwd=self.tmp, preexec_fn=pre,
                                  timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("sendmail %s did not exit within %.0fs"
                                 % (" ".join(args), RUN_TIMEOUT))

    def submit(self, args, data, **kw):
        p = self.sendmail(args, data, **kw)
        self.assertEqual(p.returncode, 0, "sendmail %s failed: %r"
                         % (" ".join(args), p.stderr))
        return p

    def drop_file(self):
        """The one file in maildrop/ and its parsed header block:
        (name, {"sender": ..., "size": ...}, [rcpts], message bytes)."""
        names = self.dropped()
        self.assertEqual(len(names), 1, names)
        with open(os.path.join(self.maildrop(), names[0]), "rb") as f:
            data = f.read()
        head, msg = data.split(b"\n\n", 1)
        lines = head.decode().split("\n")
        self.assertEqual(lines[0], "TERN-MAILDROP 1")
        fields, rcpts = {}, []
        for line in lines[1:]:
            key, _, value = line.partition(": ")
            if key == "rcpt":
                rcpts.append(value)
            else:
                fields[key] = value
        self.assertEqual(int(fields["size"]), len(msg))
        return names[0], fields, rcpts, msg

    def delivered(self, n=1):
        return self.gw.wait_messages(n, DELIVER_TIMEOUT)

    def assert_received(self, data, uid, user):
        """Our Received header comes first and names the submitter."""
        self.assertRegex(data, rb"^Received: by " +
                         re.escape(HOSTNAME.encode()) +
                         rb" \(tern, from userid " + str(uid).encode() +
                         rb" \(user " + re.escape(user.encode()) +
                         rb"\)\)\r\n\tid " + QID_RE.encode() + rb"[;\r]")


class Submit(SendmailCase):

    def test_t_relayed_with_bcc_removed(self):
        t = self.start_tern()
        msg = ("To: Rita <r@dest.test>, c2@dest.test\n"
               "Cc: \"Carl C.\" <c@dest.test> (a comment)\n"
               "Bcc: hidden@dest.test,\n"
               "  group: b2@dest.test;\n"
               "Subject: -t test\n"
               "\n"
               "Hello.\n")
        p = self.submit(["-t", "-i"], msg)
        self.assertEqual(p.stdout + p.stderr, b"")
        m = self.delivered()[0]
        self.assertEqual(sorted(m.rcpts), ["b2@dest.test", "c2@dest.test",
                                           "c@dest.test", "hidden@dest.test",
                                           "r@dest.test"])
        me = pwd.getpwuid(os.getuid()).pw_name
        self.assertEqual(m.mail_from, "%s@%s" % (me, self.domain()))
        self.assertNotIn(b"Bcc", m.data)
        self.assertNotIn(b"hidden@", m.data)
        self.assertNotRegex(m.data, rb"[^\r]\n|\r[^\n]")
        self.assert_received(m.data, os.getuid(), me)
        self.assertEqual(header_values(m.data, "Subject"), ["-t test"])
        self.assertTrue(m.data.endswith(b"\r\n\r\nHello.\r\n"), m.data)
        qid = re.search(rb"\tid (" + QID_RE.encode() + rb")",
                        m.data).group(1).decode()
        t.wait_log(r"ternd/pickup\[\d+\]: %s: uid=%d from=<%s@%s>$"
                   % (qid, os.getuid(), re.escape(me),
                      re.escape(self.domain())))
        ternlib.wait_for(lambda: self.dropped() == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")

    def test_waits_while_daemon_down(self):
        t = self.start_tern()
        self.assertEqual(t.stop(), 0)
        p = self.submit(["r@dest.test"], "Subject: waiting\n\nbody\n")
        self.assertEqual(p.stderr, b"", "said something with the daemon "
                         "down and no -v")
        self.assertEqual(len(self.dropped()), 1)
        p = self.submit(["-v", "r2@dest.test"], "Subject: told\n\nb\n")
        self.assertIn(b"not running", p.stderr)
        self.assertEqual(len(self.dropped()), 2)
        self.assertEqual(self.gw.messages(), [])
        t.start()
        msgs = self.delivered(2)
        self.assertEqual(sorted(r for m in msgs for r in m.rcpts),
                         ["r2@dest.test", "r@dest.test"])
        ternlib.wait_for(lambda: self.dropped() == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")

    def test_f_F_and_added_headers(self):
        self.start_tern()
        self.submit(["-f", "Env Sender <env@sender.test>", "-F",
                     "Ann O. Nymous", "r@dest.test"],
                    "Subject: no from\n\nbody\n")
        m = self.delivered()[0]
        self.assertEqual(m.mail_from, "env@sender.test")
        self.assertEqual(header_values(m.data, "From"),
                         ['"Ann O. Nymous" <env@sender.test>'])
        dates = header_values(m.data, "Date")
        self.assertEqual(len(dates), 1)
        self.assertIsNotNone(email.utils.parsedate_to_datetime(dates[0]))
        ids = header_values(m.data, "Message-ID")
        self.assertEqual(len(ids), 1)
        self.assertRegex(ids[0], r"^<[^<>@\s]+@%s>$" % re.escape(HOSTNAME))

    def test_existing_headers_kept(self):
        self.start_tern()
        msg = ("From: Someone <someone@else.test>\r\n"
               "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               "Message-ID: <mine@else.test>\r\n"
               "\r\n"
               "body\r\n")
        self.submit(["-F", "Ignored", "r@dest.test"], msg)
        m = self.delivered()[0]
        self.assertEqual(header_values(m.data, "From"),
                         ["Someone <someone@else.test>"])
        self.assertEqual(header_values(m.data, "Date"),
                         ["Mon, 1 Jan 2024 00:00:00 +0000"])
        self.assertEqual(header_values(m.data, "Message-ID"),
                         ["<mine@else.test>"])
        self.assertTrue(m.data.endswith(msg.encode()), m.data)

    def test_dot_ends_input_without_i(self):
        self.start_tern()
        self.submit(["r1@dest.test"], "Subject: a\n\nbefore\n.\nafter\n")
        self.submit(["-i", "r2@dest.test"],
                    "Subject: b\n\nbefore\n.\nafter\n")
        self.submit(["-oi", "r3@dest.test"], "Subject: c\n\n.\n..\n")
        msgs = {m.rcpts[0]: m for m in self.delivered(3)}
        self.assertTrue(msgs["r1@dest.test"].data.endswith(
            b"\r\n\r\nbefore\r\n"), msgs["r1@dest.test"].data)
        self.assertTrue(msgs["r2@dest.test"].data.endswith(
            b"\r\n\r\nbefore\r\n.\r\nafter\r\n"), msgs["r2@dest.test"].data)
        self.assertTrue(msgs["r3@dest.test"].data.endswith(
            b"\r\n\r\n.\r\n..\r\n"), msgs["r3@dest.test"].data)

    def test_maildrop_file(self):
        """The envelope sendmail writes: qualified addresses, duplicates
        once, an mbox "From " line dropped, long lines broken."""
        t = self.start_tern()
        self.assertEqual(t.stop(), 0)
        long_line = "x" * 2500
        d = self.domain()
        self.submit(["-f", "", "bob", "bob@" + d,
                     "carol@example.test, Dave <dave>"],
                    "From alice Mon Jan  1 00:00:00 2024\n"
                    "Subject: q\n\n%s\n" % long_line)
        _, fields, rcpts, msg = self.drop_file()
        self.assertEqual(fields["sender"], "")
        self.assertEqual(rcpts, ["bob@" + d, "carol@example.test",
                                 "dave@" + d])
        self.assertFalse(msg.startswith(b"From "), msg[:100])
        for line in msg.split(b"\r\n")[:-1]:
            self.assertLessEqual(len(line), 998)
        self.assertIn(b"x" * 998 + b"\r\n", msg)
        self.assertEqual(msg.split(b"\r\n\r\n", 1)[1].count(b"x"), 2500)

    def test_long_header_folded_at_blanks(self):
        t = self.start_tern()
        self.assertEqual(t.stop(), 0)
        subject = " ".join("word%03d" % i for i in range(150))
        self.submit(["-i", "bob"], "Subject: %s\n\nbody\n" % subject)
        _, _, _, msg = self.drop_file()
        head = msg.split(b"\r\n\r\n", 1)[0]
        lines = head.split(b"\r\n")
        for line in lines:
            self.assertLessEqual(len(line), 998)
        # Unfolded (RFC 5322 2.2.3), it is the Subject as written: no
        # blank was added inside a word.
        unfolded = re.sub(rb"\r\n(?=[ \t])", b"", head)
        self.assertIn(b"Subject: " + subject.encode() + b"\r\n",
                      unfolded + b"\r\n")
        self.assertGreater(len([x for x in lines if x.startswith(b" ")]),
                           0, "not folded")

    def test_refusals(self):
        self.start_tern()
        p = self.sendmail([], "Subject: x\n\nbody\n")
        self.assertEqual(p.returncode, EX_USAGE, p.stderr)
        p = self.sendmail(["-t"], "Subject: no rcpt\n\nbody\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        p = self.sendmail(["bad address@@x"], "Subject: x\n\nbody\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        p = self.sendmail(["-bs"], "")
        self.assertEqual(p.returncode, EX_USAGE, p.stderr)
        self.assertEqual(self.dropped(), [])

    def test_refused_before_anything_is_written(self):
        # What pickup would refuse is refused here, before "sent".
        t = self.start_tern(start=False)
        t.write_config(smtp={"max_recipients": "3"})
        t.start()
        p = self.sendmail(["a@dest.test"], b"Subject: x\n\nN\x00L\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertIn(b"NUL", p.stderr)
        p = self.sendmail(["a@dest.test", "b@dest.test", "c@dest.test",
                           "d@dest.test"], "Subject: x\n\nbody\n")
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertIn(b"max_recipients", p.stderr)
        self.assertEqual(self.dropped(), [])
        self.assertEqual(t.queued(), [])


class BadFiles(SendmailCase):

    def put(self, name, data):
        """A file in maildrop/ the way sendmail puts one (rename)."""
        tmp = os.path.join(self.maildrop(), ".tmp." + name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.maildrop(), name))

    def test_bad_files_removed(self):
        t = self.start_tern()
        good = (b"TERN-MAILDROP 1\nsender: a@b.test\nrcpt: r@dest.test\n"
                b"size: 12\n\nSubject: x\r\n")
        self.put("garbage", b"\x00\xffnot a maildrop file at all\n")
        self.put("short", good[:-4])
        self.put("badrcpt", good.replace(b"r@dest.test", b"r@@dest"))
        self.put("bare-lf", good.replace(b"size: 12", b"size: 11")
                 .replace(b"\r\n", b"\n"))
        self.put("unknown", good.replace(b"size:", b"color: red\nsize:"))
        tmp = os.path.join(self.maildrop(), ".tmp.link")
        os.symlink(t.conf, tmp)
        os.rename(tmp, os.path.join(self.maildrop(), "link"))
        # A second link to a file could pass it off as its owner's.
        outside = os.path.join(t.dir, "outside")
        with open(outside, "wb") as f:
            f.write(good)
        tmp = os.path.join(self.maildrop(), ".tmp.hardlink")
        os.link(outside, tmp)
        os.rename(tmp, os.path.join(self.maildrop(), "hardlink"))
        # Renamed in from elsewhere, a file keeps another group.
        if os.geteuid() == 0:
            alien = os.path.join(t.dir, "othergroup")
            with open(alien, "wb") as f:
                f.write(good)
            os.chown(alien, -1, os.getegid() + 4242)
            os.rename(alien, os.path.join(self.maildrop(), "othergroup"))
        # One ternd may not read: removed, never retried forever.
        unreadable = os.path.join(self.maildrop(), ".tmp.unreadable")
        with open(unreadable, "wb") as f:
            f.write(good)
        os.chmod(unreadable, 0)
        os.rename(unreadable, os.path.join(self.maildrop(), "unreadable"))
        unreadable = os.path.join(self.maildrop(), "unreadable")
        names = ["garbage", "short", "badrcpt", "bare-lf", "unknown",
                 "link", "hardlink"]
        if os.geteuid() == 0:
            # Root's files are readable to ternd as root only.
            names += ["othergroup", "unreadable"]
        else:
            os.unlink(unreadable)
        for name in names:
            t.wait_log(r"pickup: maildrop/%s: uid=%d: removed: .+$"
                       % (name, os.getuid()))
        ternlib.wait_for(lambda: self.dropped() == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")
        self.assertTrue(os.path.exists(t.conf), "the link's target went")
        self.assertTrue(os.path.exists(outside), "the linked file went")
        self.assertTrue(t.is_running())
        self.assertEqual(t.queued(), [])
        # The daemon goes on taking good files.
        self.put("good", good)
        m = self.delivered()[0]
        self.assertEqual(m.rcpts, ["r@dest.test"])
        self.assertTrue(m.data.endswith(b"\r\nSubject: x\r\n"), m.data)


# Local submission to local users: the first local domain is not the
# default one, so a bare name shows which of the two sendmail used.
L_DOMAINS = "example.test local.test"
L_DEFAULT = "local.test"
ALICE = "alice@local.test"
BOB = "bob@local.test"
TEAM = "team@local.test"		# alice and bob
NOSUCH = "nosuch@local.test"
SETTLE = 2.5	# more than two queue intervals: nothing more comes

# Every field sendmail would add is there, so the Maildir file is known
# octet for octet: dot-led lines, 8-bit octets, a tab and a trailing
# space, an empty line inside the body.
LOCAL_MSG = (b"From: Alice <alice@local.test>\n"
             b"To: Bob <bob@local.test>\n"
             b"Subject: to a local user\n"
             b"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
             b"Message-ID: <sendmail-local@local.test>\n"
             b"\n"
             b"first line\n"
             b".one leading dot\n"
             b"..two leading dots\n"
             b"caf\xc3\xa9 \xe2\x82\xac raw octets\n"
             b"\ttab and trailing space \n"
             b"\n"
             b"last line\n")


def local_result_re(qid, rcpt, status, dsn=r"[245]\.[0-9]{1,3}\.[0-9]{1,3}"):
    """The delivery log line of one local recipient."""
    return (r"ternd/virtual\[\d+\]: %s: to=<%s>, relay=[^,]+, "
            r"delay=[0-9.]+, dsn=%s, status=%s \(.*\)$"
            % (qid, re.escape(rcpt), dsn, status))


class LocalSubmit(SendmailCase):
    """sendmail to local users: pickup resolves them through the users
    and aliases files, local delivery writes the Maildirs.  The gateway
    stays configured, so mail that wrongly left would show there."""

    def start_tern(self, start=True):
        self.t = mailtest.mail_tern(
            self, start=start, smtp={"local_domains": L_DOMAINS},
            local={"default_domain": L_DEFAULT},
            delivery={"gateway": "%s:%d" % (GW, self.port),
                      "gateway_all": "yes", "queue_interval": "1s",
                      "connect_timeout": "2s", "reply_timeout": "3s"},
            users=[(ALICE, "-"), (BOB, "-")],
            aliases=[(TEAM, [ALICE, BOB])])
        self.alice_box = mailtest.mailbox_dir(self.t, "local.test", "alice")
        self.bob_box = mailtest.mailbox_dir(self.t, "local.test", "bob")
        return self.t

    def me(self):
        """The default envelope sender: login@default_domain."""
        return "%s@%s" % (pwd.getpwuid(os.getuid()).pw_name, L_DEFAULT)

    def wait_box(self, box, n):
        return mailtest.wait_maildir(box, n, DELIVER_TIMEOUT)

    def stored_qid(self, data, rcpt=None):
        """The queue id our Received header (LF endings in a Maildir)
        names; with rcpt, the header must name it in its for clause.  It
        must name us as the submitter, even when ternd was not running
        as we submitted."""
        uid = os.getuid()
        _, received, _ = split_stored(data)
        m = re.match(rb"^Received: by " + re.escape(HOSTNAME.encode()) +
                     rb" \(tern, from userid " +
                     str(uid).encode() +
                     rb" \(user [^()\s]+\)\)\n\tid (" + QID_RE.encode() +
                     rb")(\n\tfor <([^<>]+)>)?; [^\n]+\n\Z", received)
        self.assertIsNotNone(m, "not our Received header: %r" % received)
        if rcpt is not None:
            self.assertEqual(m.group(3), rcpt.encode(), received)
        return m.group(1).decode()

    def wait_clean(self):
        """maildrop/ and the queue empty: every file taken, every
        message done."""
        ternlib.wait_for(lambda: self.dropped() == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")
        ternlib.wait_for(lambda: self.t.queued() == [], DELIVER_TIMEOUT,
                         "the queue to be empty")

    def count_log(self, regex):
        return len(re.findall(regex, self.t.log(), re.M))

    def test_t_to_local_user(self):
        t = self.start_tern()
        p = self.submit(["-t"], LOCAL_MSG)
        self.assertEqual(p.stdout + p.stderr, b"")
        data = self.wait_box(self.bob_box, 1)[0]
        self.assertTrue(data.startswith(
            ("Return-Path: <%s>\nDelivered-To: %s\n" % (self.me(), BOB))
            .encode()), data[:300])
        qid = self.stored_qid(data, BOB)
        _, received, _ = split_stored(data)
        self.assertEqual(data, stored_form(self.me(), BOB, received,
                                           LOCAL_MSG))
        t.wait_log(local_result_re(qid, BOB, "sent", r"2\.0\.0"))
        self.wait_clean()
        self.assertEqual(len(maildir_names(self.bob_box)), 1)
        self.assertEqual(maildir_names(self.alice_box), [],
                         "alice is only named in From:")
        self.assertEqual(self.gw.messages(), [])

    def test_waits_then_delivered_once(self):
        t = self.start_tern()
        self.assertEqual(t.stop(), 0)
        self.submit(["-t"], LOCAL_MSG)
        _, fields, rcpts, _ = self.drop_file()
        self.assertEqual(rcpts, [BOB])
        self.assertEqual(fields["sender"], self.me())
        self.assertEqual(maildir_names(self.bob_box), [])
        self.assertEqual(t.queued(), [])
        t.start()
        data = self.wait_box(self.bob_box, 1)[0]
        qid = self.stored_qid(data, BOB)
        self.wait_clean()
        t.wait_log(local_result_re(qid, BOB, "sent", r"2\.0\.0"))
        time.sleep(SETTLE)	# only to show nothing more comes
        self.assertEqual(len(maildir_names(self.bob_box)), 1,
                         "delivered more than once")
        self.assertEqual(maildir_names(self.bob_box, "tmp"), [])
        self.assertEqual(self.dropped(), [])
        self.assertEqual(self.count_log(r"ternd/pickup\[\d+\]: " +
                                        QID_RE + r": uid="), 1,
                         "the maildrop file was queued more than once")
        self.assertEqual(self.count_log(local_result_re(qid, BOB, "sent")),
                         1)
        _, received, _ = split_stored(data)
        self.assertEqual(data, stored_form(self.me(), BOB, received,
                                           LOCAL_MSG))

    def test_alias_to_two_users(self):
        t = self.start_tern()
        self.submit(["-i", TEAM], "Subject: to the team\n\nHello team.\n")
        a = self.wait_box(self.alice_box, 1)[0]
        b = self.wait_box(self.bob_box, 1)[0]
        for data, rcpt in ((a, ALICE), (b, BOB)):
            with self.subTest(rcpt=rcpt):
                self.assertTrue(data.startswith(
                    ("Return-Path: <%s>\nDelivered-To: %s\n"
                     % (self.me(), rcpt)).encode()), data[:300])
                self.assertTrue(data.endswith(b"\n\nHello team.\n"), data)
                self.assertEqual(header_values(data, "Subject"),
                                 ["to the team"])
        qid = self.stored_qid(a)
        self.assertEqual(self.stored_qid(b), qid, "one message, two ids")
        for rcpt in (ALICE, BOB):
            t.wait_log(local_result_re(qid, rcpt, "sent", r"2\.0\.0"))
        self.wait_clean()
        self.assertEqual(self.count_log(r": %s: to=<%s>"
                                        % (qid, re.escape(TEAM))), 0,
                         "the alias itself was a recipient")
        self.assertFalse(os.path.exists(mailtest.mailbox_dir(
            t, "local.test", "team")), "a Maildir for the alias")
        self.assertEqual(len(maildir_names(self.alice_box)), 1)
        self.assertEqual(len(maildir_names(self.bob_box)), 1)
        self.assertEqual(self.gw.messages(), [])

    def test_unqualified_recipient(self):
        t = self.start_tern()
        self.submit(["-i", "alice"], "Subject: bare name\n\nbody a\n")
        self.submit(["-t", "-i"], "To: Bob <bob>\nSubject: bare To\n\n"
                    "body b\n")
        a = self.wait_box(self.alice_box, 1)[0]
        b = self.wait_box(self.bob_box, 1)[0]
        self.assertTrue(a.startswith(("Return-Path: <%s>\nDelivered-To: "
                                      "%s\n" % (self.me(), ALICE))
                                     .encode()), a[:300])
        self.assertTrue(b.startswith(("Return-Path: <%s>\nDelivered-To: "
                                      "%s\n" % (self.me(), BOB))
                                     .encode()), b[:300])
        self.assertTrue(a.endswith(b"\n\nbody a\n"), a)
        self.assertTrue(b.endswith(b"\n\nbody b\n"), b)
        # To: is left as written; only the envelope is qualified.
        self.assertEqual(header_values(b, "To"), ["Bob <bob>"])
        t.wait_log(local_result_re(self.stored_qid(a, ALICE), ALICE,
                                   "sent"))
        t.wait_log(local_result_re(self.stored_qid(b, BOB), BOB, "sent"))
        self.wait_clean()
        self.assertFalse(os.path.exists(os.path.join(t.mailboxes,
                                                     "example.test")),
                         "qualified with the first local domain, not "
                         "default_domain")
        self.assertEqual(self.gw.messages(), [])

    def test_unknown_user_bounced_to_local_sender(self):
        t = self.start_tern()
        self.submit(["-i", "-f", ALICE, NOSUCH, BOB],
                    "Subject: partly unknown\nMessage-ID: <unknown@x.test>"
                    "\n\nfor nobody\n")
        got = self.wait_box(self.bob_box, 1)[0]
        qid = self.stored_qid(got)
        self.assertTrue(got.startswith(("Return-Path: <%s>\nDelivered-To: "
                                        "%s\n" % (ALICE, BOB)).encode()))
        t.wait_log(local_result_re(qid, NOSUCH, "bounced", r"5\.1\.1"))
        data = self.wait_box(self.alice_box, 1)[0]
        self.assertTrue(data.startswith(b"Return-Path: <>\nDelivered-To: " +
                                        ALICE.encode() + b"\n"), data[:300])
        m = email.message_from_bytes(data)
        self.assertEqual(m.get_content_type(), "multipart/report")
        self.assertEqual(m.get_param("report-type"), "delivery-status")
        self.assertIn(ALICE, m["To"] or "")
        parts = m.get_payload()
        self.assertIsInstance(parts, list)
        self.assertGreaterEqual(len(parts), 3,
                                [p.get_content_type() for p in parts])
        self.assertEqual(parts[1].get_content_type(),
                         "message/delivery-status")
        blocks = parts[1].get_payload()
        self.assertEqual(len(blocks), 2, "not one recipient block")
        per_rcpt = blocks[1]
        self.assertEqual(per_rcpt["Final-Recipient"], "rfc822; " + NOSUCH)
        self.assertEqual(per_rcpt["Action"], "failed")
        self.assertEqual(per_rcpt["Status"], "5.1.1")
        # No remote host was involved, and the reason is not a reply.
        self.assertIsNone(per_rcpt["Remote-MTA"])
        self.assertTrue(per_rcpt["Diagnostic-Code"].startswith("X-tern; "),
                        per_rcpt["Diagnostic-Code"])
        orig = parts[2]
        if orig.get_content_type() == "message/rfc822":
            headers = orig.get_payload()[0].as_string()
        else:
            headers = orig.get_payload(decode=True).decode("utf-8",
                                                           "replace")
        self.assertIn("Message-ID: <unknown@x.test>", headers)
        self.wait_clean()
        self.assertEqual(len(maildir_names(self.alice_box)), 1)
        self.assertEqual(len(maildir_names(self.bob_box)), 1)
        self.assertFalse(os.path.exists(mailtest.mailbox_dir(
            t, "local.test", "nosuch")))
        self.assertEqual(self.gw.messages(), [])


class Users(SendmailCase):
    """Run as root: ternd runs as nobody; two other users submit."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root to run sendmail as other users")
        nobody = pwd.getpwnam("nobody").pw_uid
        users = [p for p in pwd.getpwall()
                 if p.pw_uid not in (0, nobody) and p.pw_uid < 1000]
        if len(users) < 2:
            self.skipTest("needs two system users besides root and nobody")
        self.alice, self.bob = users[0], users[1]

    def as_user(self, pw, fn):
        """Run fn() in a child with pw's ids; return what it returned
        (a small int)."""
        pid = os.fork()
        if pid == 0:
            code = 100
            try:
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
                code = fn()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def test_ordinary_user(self):
        t = self.start_tern()
        self.assertEqual(t.stop(), 0)
        st = os.stat(self.maildrop())
        tern = pwd.getpwnam("nobody")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o3733)
        self.assertEqual((st.st_uid, st.st_gid), (tern.pw_uid, tern.pw_gid))
        self.submit(["r@dest.test"], "Subject: from a user\n\nhi\n",
                    user=self.alice.pw_name)
        name, fields, _, _ = self.drop_file()
        path = os.path.join(self.maildrop(), name)
        st = os.stat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual((st.st_uid, st.st_gid),
                         (self.alice.pw_uid, tern.pw_gid))
        self.assertEqual(fields["sender"],
                         "%s@%s" % (self.alice.pw_name, self.domain()))

        def snoop():
            bad = 0
            for what in (lambda: os.listdir(self.maildrop()),
                         lambda: open(path, "rb").read(),
                         lambda: os.unlink(path),
                         lambda: os.rename(path, path + ".x")):
                try:
                    what()
                    bad += 1
                except PermissionError:
                    pass
            return bad
        self.assertEqual(self.as_user(self.bob, snoop), 0,
                         "another user could list, read, remove or rename "
                         "a maildrop file")
        t.start()
        m = self.delivered()[0]
        self.assertEqual(m.mail_from,
                         "%s@%s" % (self.alice.pw_name, self.domain()))
        self.assert_received(m.data, self.alice.pw_uid, self.alice.pw_name)
        ternlib.wait_for(lambda: self.dropped() == [], DELIVER_TIMEOUT,
                         "maildrop/ to be empty")


class Mailx(SendmailCase):
    """bsd-mailx's mail(1) runs /usr/sbin/sendmail: ternctl is bind
    mounted there in a private mount namespace."""

    def test_mail_command(self):
        mail = shutil.which("bsd-mailx") or shutil.which("mail")
        unshare = shutil.which("unshare")
        if os.geteuid() != 0:
            self.skipTest("needs root for a mount namespace")
        if mail is None or unshare is None:
            self.skipTest("needs mail (bsd-mailx) and unshare")
        if not os.path.isfile("/usr/sbin/sendmail"):
            self.skipTest("no /usr/sbin/sendmail to mount over")
        probe = subprocess.run([unshare, "--mount", "true"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=RUN_TIMEOUT)
        if probe.returncode != 0:
            self.skipTest("unshare --mount fails here: %r" % probe.stderr)
        self.start_tern()
        env = dict(os.environ, TERN_CONFIG=self.t.conf, HOME=self.tmp)
        script = ('mount --bind "$1" /usr/sbin/sendmail && '
                  'exec "$2" -s "$3" "$4"')
        p = subprocess.run([unshare, "--mount", "sh", "-c", script, "sh",
                            TERNCTL, mail, "hello from mailx",
                            "r@dest.test"],
                           input=b"Sent with mail(1).\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, cwd=self.tmp, timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        m = self.delivered()[0]
        self.assertEqual(m.rcpts, ["r@dest.test"])
        self.assertEqual(header_values(m.data, "Subject"),
                         ["hello from mailx"])
        self.assertIn(b"\r\n\r\nSent with mail(1).\r\n", m.data)
        self.assertEqual(len(header_values(m.data, "From")), 1)
        self.assertEqual(len(header_values(m.data, "Message-ID")), 1)


if __name__ == "__main__":
    ternlib.main()
