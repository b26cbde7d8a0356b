"""
test_local.py: local delivery to Maildirs.  Users of the users file get
what was sent to them in <mailboxes>/<domain>/<localpart> (or the mailbox
the file names), byte for byte behind Return-Path, Delivered-To and our
Received header, with LF line endings; an alias reaches every member,
local or remote (the remote one through a gateway NextHop), with
duplicates dropped; a catch-all takes a whole domain; an unknown user is
refused at RCPT with 550 5.1.1; postmaster@ every local domain reaches the
postmaster mailbox; an address without a domain is qualified with
default_domain; Maildirs are 0700 and files 0600, owned by ternd's user;
a mailbox that cannot be written defers the message, which is delivered
exactly once when it can.  Deliveries run beside the loop: a burst of
messages to several mailboxes lands each copy exactly once, and the
outcome of a local recipient is on disk before the message is tried
again for a recipient that was deferred.
"""

import os
import re
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import (DELIVER_TIMEOUT, maildir_names,  # noqa: E402
                      maildir_read, split_stored, stored_form, wait_maildir)
from nexthop import NextHop  # noqa: E402
from ternlib import TernTestCase, queued_id, wait_for  # noqa: E402

ALICE = "alice@local.test"
BOB = "bob@example.test"		# explicit mailbox <dir>/boxes/bob
TEAM = "team@local.test"		# alice, bob, someone@remote.test
REMOTE = "someone@remote.test"
SENDER = "sender@origin.test"
GW = "127.0.0.2"
SETTLE = 2.5	# more than two queue intervals: nothing more comes

# Dot-led lines, a lone dot, a "From " line (no mbox quoting in a
# Maildir), 8-bit octets, a tab and trailing space, an empty line.
CONTENT = (b"From: Sender <sender@origin.test>\r\n"
           b"To: alice@local.test\r\n"
           b"Subject: local delivery test\r\n"
           b"Message-ID: <local-test@origin.test>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n"
           b"\r\n"
           b"From the start of a line\r\n"
           b".one leading dot\r\n"
           b"..two leading dots\r\n"
           b".\r\n"
           b"caf\xc3\xa9 \xe2\x82\xac raw octets\r\n"
           b"\ttab and trailing space \r\n"
           b"\r\n"
           b"last line\r\n")


def small(subject):
    return ("From: %s\r\nSubject: %s\r\n\r\nHello.\r\n"
            % (SENDER, subject)).encode()


def local_result_re(qid, rcpt, status):
    """A delivery log line for one local recipient; the reason in the
    parentheses is group 1."""
    return (r": %s: to=<%s>, .*status=%s \((.*)\)$"
            % (qid, re.escape(rcpt), status))


class LocalCase(TernTestCase):

    def setUp(self):
        super().setUp()
        self.hop = NextHop(GW)
        self.addCleanup(self.hop.stop)
        t = mailtest.mail_tern(
            self, start=False,
            smtp={"local_domains": "local.test example.test catchall.test"},
            delivery={"gateway": "%s:%d" % (GW, self.hop.port),
                      "gateway_all": "yes", "queue_interval": "1s"},
            users=[(ALICE, mailtest.crypt_hash("Alice-pass-7")),
                   (BOB, mailtest.plain_secret("Bob-pass-8"),
                    "{dir}/boxes/bob")],
            aliases=[(TEAM, [ALICE, BOB, REMOTE]),
                     ("@catchall.test", [ALICE])])
        mailtest.make_owned_dir(os.path.join(t.dir, "boxes"))
        t.start()
        self.t = t
        self.alice_box = mailtest.mailbox_dir(t, "local.test", "alice")
        self.bob_box = os.path.join(t.dir, "boxes", "bob")
        self.pm_box = mailtest.mailbox_dir(t, "local.test", "postmaster")

    def send(self, rcpts, content=CONTENT, sender=SENDER):
        return self.t.send_message(sender, rcpts, content)

    def wait_gone(self, qid, timeout=DELIVER_TIMEOUT):
        wait_for(lambda: qid not in self.t.queued(), timeout,
                 "%s to leave the queue" % qid)

    def check_stored(self, data, qid, delivered_to, content=CONTENT,
                     sender=SENDER):
        """data is exactly Return-Path, Delivered-To, one Received
        naming qid, then content with LF endings; returns the Received
        header as stored."""
        self.assertNotIn(b"\r", data, "CR left in the stored message")
        trace, received, _ = split_stored(data)
        self.assertEqual(trace, ("Return-Path: <%s>\nDelivered-To: %s\n"
                                 % (sender, delivered_to)).encode())
        self.assertIn(("id %s" % qid).encode(), received)
        self.assertEqual(data, stored_form(sender, delivered_to, received,
                                           content))
        return received


class Delivery(LocalCase):

    def test_two_users_byte_identical(self):
        qid = self.send([ALICE, BOB])
        a = wait_maildir(self.alice_box, 1)
        b = wait_maildir(self.bob_box, 1)
        ra = self.check_stored(a[0], qid, ALICE)
        rb = self.check_stored(b[0], qid, BOB)
        self.assertEqual(ra, rb, "one message, two Received headers")
        self.wait_gone(qid)
        for box in (self.alice_box, self.bob_box):
            self.assertEqual(maildir_names(box, "tmp"), [],
                             "a file left in %s/tmp" % box)
            self.assertTrue(os.path.isdir(os.path.join(box, "cur")))
            self.assertEqual(len(maildir_names(box)), 1)
        self.assertFalse(os.path.exists(mailtest.mailbox_dir(
            self.t, "example.test", "bob")),
            "bob's mailbox is named in the users file, yet the default "
            "path was made")
        for rcpt in (ALICE, BOB):
            self.t.wait_log(local_result_re(qid, rcpt, "sent"))
        self.assertEqual(self.hop.messages(), [])

    def test_alias_expands_to_local_and_remote(self):
        qid = self.send([TEAM])
        a = wait_maildir(self.alice_box, 1)
        b = wait_maildir(self.bob_box, 1)
        msg = self.hop.wait_messages(1, DELIVER_TIMEOUT)[0]
        ra = self.check_stored(a[0], qid, ALICE)
        self.check_stored(b[0], qid, BOB)
        self.assertEqual(msg.rcpts, [REMOTE])
        self.assertEqual(msg.mail_from, SENDER)
        self.assertTrue(msg.data.endswith(CONTENT), msg.data[:300])
        # The remote copy carries the same Received header as the local
        # ones, and nothing else before the client's octets.
        self.assertEqual(msg.data.replace(b"\r\n", b"\n"),
                         ra + CONTENT.replace(b"\r\n", b"\n"))
        self.wait_gone(qid)

    def test_duplicates_dropped(self):
        qid = self.send([ALICE, TEAM, "Alice@Local.Test"])
        wait_maildir(self.alice_box, 1)
        wait_maildir(self.bob_box, 1)
        self.hop.wait_messages(1, DELIVER_TIMEOUT)
        self.wait_gone(qid)
        self.assertEqual(len(maildir_names(self.alice_box)), 1,
                         "alice got more than one copy")
        self.assertEqual(len(maildir_names(self.bob_box)), 1)
        self.assertEqual(len(self.hop.messages()), 1)

    def test_catch_all(self):
        qid = self.send(["anything@catchall.test"])
        a = wait_maildir(self.alice_box, 1)
        self.check_stored(a[0], qid, ALICE)
        self.wait_gone(qid)

    def test_unknown_user_refused(self):
        c = self.t.session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        for rcpt in ("nosuch@local.test", "nosuch@example.test",
                     "alice@example.test", "bob@local.test"):
            with self.subTest(rcpt=rcpt):
                r = c.cmd("RCPT TO:<%s>" % rcpt)
                self.assertRegex(r.line, r"^550 5\.1\.1 ")
                self.assertIn(rcpt, r.line)
        self.assertReply(c.cmd("RCPT TO:<%s>" % ALICE), "250 2.1.5 Ok")
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(ternlib.dot_stuff(CONTENT))
        qid = queued_id(c.reply())
        a = wait_maildir(self.alice_box, 1)
        self.check_stored(a[0], qid, ALICE)
        self.wait_gone(qid)
        self.assertFalse(os.path.exists(mailtest.mailbox_dir(
            self.t, "local.test", "nosuch")))

    def test_postmaster_of_each_domain(self):
        q1 = self.send(["postmaster@local.test"], small("pm one"))
        q2 = self.send(["postmaster@example.test"], small("pm two"), "")
        q3 = self.send(["PostMaster@Example.Test"], small("pm three"))
        msgs = wait_maildir(self.pm_box, 3)
        for q in (q1, q2, q3):
            self.wait_gone(q)
        self.assertEqual(len(msgs), 3)
        by_subject = {}
        for m in msgs:
            s = re.search(rb"\nSubject: (pm [a-z]+)\n", m)
            self.assertIsNotNone(s, m)
            by_subject[s.group(1)] = m
        self.check_stored(by_subject[b"pm one"], q1,
                          "postmaster@local.test", small("pm one"))
        self.check_stored(by_subject[b"pm two"], q2,
                          "postmaster@local.test", small("pm two"),
                          sender="")
        self.check_stored(by_subject[b"pm three"], q3,
                          "postmaster@local.test", small("pm three"))

    def test_unqualified_recipient(self):
        # 127.0.0.1 is in relay_networks: "alice" is alice@default_domain.
        qid = self.send(["alice"], small("bare name"))
        a = wait_maildir(self.alice_box, 1)
        self.check_stored(a[0], qid, ALICE, small("bare name"))
        self.wait_gone(qid)

    def test_bad_users_file_keeps_old_configuration(self):
        with open(self.t.users_file, "a") as f:
            f.write("this is not a user line\n")
        self.t.write_config(smtp={"local_domains": "local.test "
                                  "example.test catchall.test new.test"})
        self.t.reload(expect=r"reload failed: %s:\d+: .*keeping the old "
                      r"configuration" % re.escape(self.t.users_file))
        c = self.t.session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % ALICE).code, 250)
        # new.test did not become local (no user there would be 550):
        # to it, the relay client 127.0.0.1 relays.
        self.assertEqual(c.cmd("RCPT TO:<x@new.test>").code, 250)

    def test_users_file_readable_by_all_warned(self):
        self.assertNotIn("readable by everyone", self.t.log())
        os.chmod(self.t.users_file, 0o644)
        self.t.reload()
        self.assertIn("users %s is readable by everyone"
                      % self.t.users_file, self.t.log())

    def test_modes_and_owner(self):
        qid = self.send([ALICE])
        wait_maildir(self.alice_box, 1)
        self.wait_gone(qid)
        uid, _ = mailtest.daemon_ids()
        for d in ("", "tmp", "new", "cur"):
            with self.subTest(dir=d or "maildir"):
                st = os.lstat(os.path.join(self.alice_box, d))
                self.assertTrue(stat.S_ISDIR(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
                self.assertEqual(st.st_uid, uid)
        name = maildir_names(self.alice_box)[0]
        st = os.lstat(os.path.join(self.alice_box, "new", name))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, uid)
        self.assertEqual(st.st_nlink, 1, "the tmp/ link was left")


class Burst(LocalCase):

    def test_burst_each_copy_once(self):
        n = 30
        qids = [self.send([ALICE, BOB], small("burst %d" % i))
                for i in range(n)]
        wait_maildir(self.alice_box, n)
        wait_maildir(self.bob_box, n)
        for qid in qids:
            self.wait_gone(qid)
        time.sleep(SETTLE)	# only to show nothing more comes
        for box in (self.alice_box, self.bob_box):
            self.assertEqual(len(maildir_names(box)), n)
            self.assertEqual(maildir_names(box, "tmp"), [])
            subjects = sorted(re.search(rb"\nSubject: (burst \d+)\n",
                                        d).group(1)
                              for d in maildir_read(box))
            self.assertEqual(subjects, sorted(("burst %d" % i).encode()
                                              for i in range(n)))
        log = self.t.log()
        for qid in qids:
            for rcpt in (ALICE, BOB):
                self.assertEqual(len(re.findall(
                    local_result_re(qid, rcpt, "sent"), log, re.M)), 1,
                    "%s to %s" % (qid, rcpt))


class Deferral(LocalCase):

    def test_local_recorded_before_retry(self):
        # The remote member is deferred at every try; the local ones are
        # delivered at the first, and no later try delivers them again.
        self.hop.configure(rcpt={REMOTE: "451 4.3.0 try later"})
        mark = self.t.log_mark()
        qid = self.send([TEAM])
        wait_maildir(self.alice_box, 1)
        wait_maildir(self.bob_box, 1)
        for _ in range(3):
            self.t.wait_log(local_result_re(qid, REMOTE, "deferred"),
                            DELIVER_TIMEOUT, since=mark)
            mark = self.t.log_mark()
        self.assertIn(qid, self.t.queued())
        self.assertEqual(len(maildir_names(self.alice_box)), 1)
        self.assertEqual(len(maildir_names(self.bob_box)), 1)
        log = self.t.log()
        for rcpt in (ALICE, BOB):
            self.assertEqual(len(re.findall(local_result_re(qid, rcpt,
                                                            "sent"),
                                            log, re.M)), 1, rcpt)
        self.assertGreaterEqual(len(re.findall(
            local_result_re(qid, REMOTE, "deferred"), log, re.M)), 3)


    def test_unwritable_mailbox_deferred_then_delivered_once(self):
        q1 = self.send([ALICE], small("first"))
        wait_maildir(self.alice_box, 1)
        self.wait_gone(q1)
        # ternd's user may no longer enter the Maildir.
        os.chmod(self.alice_box, 0)
        self.addCleanup(os.chmod, self.alice_box, 0o700)
        mark = self.t.log_mark()
        q2 = self.send([ALICE], small("second"))
        m = self.t.wait_log(local_result_re(q2, ALICE, "deferred"),
                            DELIVER_TIMEOUT, since=mark)
        self.assertRegex(m.group(1), r"(?i)permission denied",
                         "the log does not say why")
        self.assertIn(q2, self.t.queued(), "the deferred message left "
                      "the spool")
        # Fixed: the next queue run delivers it, once.
        os.chmod(self.alice_box, 0o700)
        msgs = wait_maildir(self.alice_box, 2)
        self.wait_gone(q2)
        time.sleep(SETTLE)	# only to show nothing more comes
        self.assertEqual(len(maildir_names(self.alice_box)), 2)
        self.assertEqual(maildir_names(self.alice_box, "tmp"), [])
        second = [d for d in maildir_read(self.alice_box)
                  if b"Subject: second\n" in d]
        self.assertEqual(len(second), 1, msgs)
        self.check_stored(second[0], q2, ALICE, small("second"))
        self.assertEqual(len(re.findall(local_result_re(q2, ALICE, "sent"),
                                        self.t.log(), re.M)), 1)


if __name__ == "__main__":
    ternlib.main()
