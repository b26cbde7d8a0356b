"""
test_submission.py: RFC 6409 section 8 through the real ternd: mail
from authenticated clients and the submission port that lacks a Date or
a Message-ID gets it, at the end of its header section and nowhere else;
mail that has both is left alone; port 25 without AUTH gets nothing
under the default add_missing_headers = submission, and gets them with
add_missing_headers = all; add_missing_headers = no adds nothing.
"""

import email
import email.utils
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from mailtest import AUTH_OK_RE, auth_plain, starttls  # noqa: E402
from ternlib import TernTestCase  # noqa: E402

ALICE, ALICE_PW = "alice@local.test", "Alice-pass-7"
RCPT = "rcpt@local.test"
HOSTNAME = "mx.test.example"

BODY = b"Date: not a header, the body.\r\nMessage-ID: neither\r\n"
MSGID_RE = re.compile(r"^<[0-9A-Za-z]+\.\d{14}@%s>$" % re.escape(HOSTNAME))
THEIR_DATE = "Mon, 7 Dec 2026 03:00:00 +0000"
THEIR_ID = "<their-id@client.test>"


class SubmissionCase(TernTestCase):

    smtp = {}

    def setUp(self):
        super().setUp()
        self.sub_port = ternlib.free_port()
        smtp = {"submission_listen": "127.0.0.1:%d" % self.sub_port}
        smtp.update(self.smtp)
        self.t = mailtest.mail_tern(
            self, tls=True, smtp=smtp,
            users=[(ALICE, mailtest.crypt_hash(ALICE_PW)),
                   (RCPT, mailtest.crypt_hash("x-Unused-1"))])
        self.box = mailtest.mailbox_dir(self.t, "local.test", "rcpt")
        self.n = 0

    def send(self, content, port=None, login=True, tls=True):
        c = ternlib.Conn(port or self.sub_port)
        self.t.conns.append(c)
        c.ehlo()
        if tls:
            starttls(c)
            c.ehlo()
        if login:
            self.assertRegex(auth_plain(c, ALICE, ALICE_PW).line,
                             AUTH_OK_RE)
        r = c.mail(ALICE, [RCPT], content)
        self.assertEqual(r.code, 250, r)
        self.n += 1
        got = mailtest.wait_maildir(self.box, self.n)
        new = [m for m in got if b"Subject: s%d\n" % self.n in m]
        self.assertEqual(len(new), 1, got)
        return new[0]

    def fields(self, date=False, msgid=False, subject=True):
        out = b""
        if subject:
            out += b"Subject: s%d\r\n" % (self.n + 1)
        out += b"From: <%s>\r\n" % ALICE.encode()
        if date:
            out += b"Date: %s\r\n" % THEIR_DATE.encode()
        if msgid:
            out += b"Message-ID: %s\r\n" % THEIR_ID.encode()
        return out

    def assertAdded(self, stored, date=True, msgid=True):
        """The stored message has exactly one Date and Message-ID, ours
        where asked, added at the end of the header section; the body is
        untouched."""
        m = email.message_from_bytes(stored)
        self.assertEqual(len(m.get_all("Date", [])), 1, stored)
        self.assertEqual(len(m.get_all("Message-ID", [])), 1, stored)
        if date:
            when = email.utils.parsedate_to_datetime(m["Date"])
            self.assertIsNotNone(when.tzinfo, m["Date"])
            self.assertNotEqual(m["Date"], THEIR_DATE)
        else:
            self.assertEqual(m["Date"], THEIR_DATE)
        if msgid:
            self.assertRegex(m["Message-ID"], MSGID_RE)
        else:
            self.assertEqual(m["Message-ID"], THEIR_ID)
        keys = [k.lower() for k in m.keys()]
        # Our fields follow the client's From.
        self.assertLess(keys.index("from"), keys.index("date"), keys)
        self.assertLess(keys.index("from"), keys.index("message-id"), keys)
        return m

    def assertNothingAdded(self, stored):
        m = email.message_from_bytes(stored)
        self.assertIsNone(m["Date"], stored)
        self.assertIsNone(m["Message-ID"], stored)
        return m


class Submission(SubmissionCase):

    def test_both_added(self):
        stored = self.send(self.fields() + b"\r\n" + BODY)
        m = self.assertAdded(stored)
        self.assertEqual(m.get_payload().encode(),
                         BODY.replace(b"\r\n", b"\n"))

    def test_message_id_added(self):
        stored = self.send(self.fields(date=True) + b"\r\n" + BODY)
        self.assertAdded(stored, date=False)

    def test_date_added(self):
        stored = self.send(self.fields(msgid=True) + b"\r\n" + BODY)
        self.assertAdded(stored, msgid=False)

    def test_both_present(self):
        stored = self.send(self.fields(date=True, msgid=True) + b"\r\n" +
                           BODY)
        self.assertAdded(stored, date=False, msgid=False)

    def test_names_any_case_and_folded(self):
        content = (self.fields() + b"message-id:\r\n %s\r\n"
                   b"DATE: %s\r\n\r\nbody\r\n" % (THEIR_ID.encode(),
                                                  THEIR_DATE.encode()))
        stored = self.send(content)
        m = email.message_from_bytes(stored)
        self.assertEqual(len(m.get_all("Date")), 1, stored)
        self.assertEqual(len(m.get_all("Message-ID")), 1, stored)

    def test_header_only_message(self):
        stored = self.send(self.fields())
        self.assertAdded(stored)

    def test_large_header_section(self):
        # Fields beyond the first chunks the daemon reads at once.
        filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 900)
                          for i in range(40))
        stored = self.send(self.fields() + filler + b"\r\n" + BODY)
        m = self.assertAdded(stored)
        self.assertEqual(m.get_payload().encode(),
                         BODY.replace(b"\r\n", b"\n"))

    def test_not_a_header_section(self):
        # A first line that is no field: nothing can be placed safely.
        stored = self.send(b"Subject: s%d\r\nno colon here\r\n\r\nbody\r\n"
                           % (self.n + 1))
        self.assertNothingAdded(stored)

    def test_port_25_without_auth(self):
        stored = self.send(self.fields() + b"\r\n" + BODY,
                           port=self.t.port, login=False, tls=False)
        self.assertNothingAdded(stored)

    def test_port_25_with_auth(self):
        stored = self.send(self.fields() + b"\r\n" + BODY,
                           port=self.t.port)
        self.assertAdded(stored)


class All(SubmissionCase):

    smtp = {"add_missing_headers": "all"}

    def test_port_25_without_auth(self):
        stored = self.send(self.fields() + b"\r\n" + BODY,
                           port=self.t.port, login=False, tls=False)
        self.assertAdded(stored)


class Never(SubmissionCase):

    smtp = {"add_missing_headers": "no"}

    def test_submission(self):
        stored = self.send(self.fields() + b"\r\n" + BODY)
        self.assertNothingAdded(stored)

    def test_config_check(self):
        t = self.tern(start=False, smtp={"add_missing_headers": "some"})
        rc, out, err = ternlib.run_ternd(["-n", "-c", t.conf])
        self.assertNotEqual(rc, 0)
        self.assertIn("add_missing_headers", err)


if __name__ == "__main__":
    ternlib.main()
