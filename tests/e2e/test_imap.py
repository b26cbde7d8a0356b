"""
test_imap.py: what tern delivers is readable by a real IMAP server.  A
Dovecot (Debian's dovecot-imapd) runs in the foreground with a throw-away
configuration (loopback, a free port, IMAP only, no TLS, a passwd-file
whose users' homes are the Maildirs tern writes); a message sent through
ternd is found with SEARCH and fetched whole, Subject and body, with
Python's imaplib.  Skipped without Dovecot or without root (Dovecot must
switch to the owner of tern's Maildirs).
"""

import email
import email.policy
import imaplib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
from dovecot import Dovecot, dovecot_version, skip_reason  # noqa: E402
import ternlib  # noqa: E402
from ternlib import TernTestCase  # noqa: E402

ALICE, ALICE_PW = "alice@local.test", "Alice-imap-7"
SENDER = "sender@origin.test"
SUBJECT = "IMAP check \u00e9t\u00e9"
BODY = "Hello through tern and Dovecot.\r\n.dot line\r\nLast line.\r\n"


@unittest.skipIf(skip_reason() is not None, skip_reason())
class Imap(TernTestCase):

    def setUp(self):
        super().setUp()
        t = mailtest.mail_tern(self, users=[
            (ALICE, mailtest.crypt_hash(ALICE_PW))])
        self.t = t
        self.box = mailtest.mailbox_dir(t, "local.test", "alice")
        self.dovecot = None

    def daemon_logs(self):
        out = [super().daemon_logs()]
        if getattr(self, "dovecot", None) is not None:
            out.append("--- dovecot ---\n" + self.dovecot.log()[-4000:])
        return "\n".join(out)

    def start_dovecot(self):
        st = os.stat(self.box)
        self.assertEqual(st.st_uid, mailtest.daemon_ids()[0])
        self.dovecot = Dovecot([(ALICE, ALICE_PW, st.st_uid, st.st_gid,
                                 self.box)], dovecot_version())
        self.addCleanup(self.dovecot.stop)
        self.dovecot.start()
        imap = imaplib.IMAP4("127.0.0.1", self.dovecot.port, timeout=10)
        self.addCleanup(self._logout, imap)
        return imap

    @staticmethod
    def _logout(imap):
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def test_delivered_message_read_over_imap(self):
        content = ("From: Sender <%s>\r\nTo: %s\r\nSubject: %s\r\n"
                   "Message-ID: <imap-test@origin.test>\r\n"
                   "MIME-Version: 1.0\r\n"
                   "Content-Type: text/plain; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: 8bit\r\n\r\n%s"
                   % (SENDER, ALICE, SUBJECT, BODY)).encode("utf-8")
        qid = self.t.send_message(SENDER, [ALICE], content,
                                  params=" BODY=8BITMIME")
        mailtest.wait_maildir(self.box, 1)
        imap = self.start_dovecot()
        typ, _ = imap.login(ALICE, ALICE_PW)
        self.assertEqual(typ, "OK")
        typ, data = imap.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(int(data[0]), 1, "INBOX does not hold one message")
        typ, data = imap.search(None, "ALL")
        self.assertEqual(typ, "OK")
        nums = data[0].split()
        self.assertEqual(len(nums), 1, data)
        typ, data = imap.search(None, "SUBJECT", '"IMAP check"')
        self.assertEqual((typ, data[0].split()), ("OK", nums))
        typ, data = imap.fetch(nums[0], "(RFC822)")
        self.assertEqual(typ, "OK")
        raw = data[0][1]
        # IMAP gives CRLF lines: what the client sent, behind the trace
        # header fields, with our Received naming the queue id.
        self.assertTrue(raw.endswith(content), raw[-300:])
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(msg["Subject"], SUBJECT)
        self.assertEqual(msg["Return-Path"], "<%s>" % SENDER)
        self.assertEqual(msg["Delivered-To"], ALICE)
        self.assertIn("id %s" % qid, str(msg["Received"]))
        self.assertEqual(msg.get_content(), BODY)
        typ, _ = imap.close()
        self.assertEqual(typ, "OK")


if __name__ == "__main__":
    ternlib.main()
