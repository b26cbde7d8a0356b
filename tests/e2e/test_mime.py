"""
test_mime.py: 8-bit mail to a next hop that does not offer 8BITMIME (RFC
6152 section 3) and SMTPUTF8 mail to one that does not offer SMTPUTF8
(RFC 6531), through the real ternd, a dnsmasq and NextHop servers.  An
8-bit message arrives 7-bit clean, without BODY=, and Python's email
package reads the same parts and the same decoded content from it as from
what the client sent; a 7-bit message arrives byte-identical; 8-bit under
multipart/signed is returned with 5.6.2 and 8-bit in a base64 part with
5.6.3; SMTPUTF8 mail is returned with 5.6.7 for a UTF-8 address and 5.6.9
for UTF-8 header fields, and goes without the parameter when it needs
neither.  A next hop that offers CHUNKING gets the message with one BDAT
(RFC 3030), byte-identical, dot-led lines unstuffed, after every RCPT
has its reply, and nothing when every RCPT was refused.
"""

import email
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import queued_id  # noqa: E402
from test_delivery import (DELIVER_TIMEOUT, MX1, SENDER,  # noqa: E402
                           SENDER_MX, DeliveryCase, relay_re)

# A multipart with an 8-bit text part, an 8-bit part with no
# Content-Transfer-Encoding, a base64 attachment and a nested message
# with an 8-bit body; dot-led lines, trailing white space and long lines.
MIXED = (b"From: Sender <sender@sender.test>\r\n"
         b"To: r@dest.test\r\n"
         b"Subject: eight bits\r\n"
         b"Message-ID: <mime-test@sender.test>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"=_outer\"\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n"
         b"This is a multi-part message in MIME format.\r\n"
         b"--=_outer\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n"
         b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x82\xac 5 = 5\r\n"
         b".leading dot, trailing space \r\n"
         b".\r\n"
         + b"long " * 60 + b"\xc3\xa9\r\n"
         b"\r\n"
         b"--=_outer\r\n"
         b"Content-Type: text/html; charset=iso-8859-1\r\n"
         b"\r\n"
         b"<p>caf\xe9</p>\r\n"
         b"--=_outer\r\n"
         b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"\r\n"
         b"AAECAwQFBgc=\r\n"
         b"--=_outer\r\n"
         b"Content-Type: message/rfc822\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n"
         b"From: inner@sender.test\r\n"
         b"Subject: inner\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n"
         b"\xc3\xa0 l'int\xc3\xa9rieur\r\n"
         b"--=_outer--\r\n")

SEVEN = (b"From: sender@sender.test\r\n"
         b"Subject: seven bits\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n"
         b"\r\n"
         b".dot\r\n"
         b"trailing space \r\n"
         b"x=y\r\n")

SIGNED = (b"From: sender@sender.test\r\n"
          b"Subject: signed\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: multipart/signed; boundary=s;\r\n"
          b" protocol=\"application/pgp-signature\"; micalg=pgp-sha256\r\n"
          b"\r\n"
          b"--s\r\n"
          b"Content-Type: text/plain; charset=utf-8\r\n"
          b"Content-Transfer-Encoding: 8bit\r\n"
          b"\r\n"
          b"sign\xc3\xa9\r\n"
          b"--s\r\n"
          b"Content-Type: application/pgp-signature\r\n"
          b"\r\n"
          b"-----BEGIN PGP SIGNATURE-----\r\n"
          b"-----END PGP SIGNATURE-----\r\n"
          b"--s--\r\n")

BASE64_8BIT = (b"From: sender@sender.test\r\n"
               b"Subject: broken\r\n"
               b"MIME-Version: 1.0\r\n"
               b"Content-Type: text/plain\r\n"
               b"Content-Transfer-Encoding: base64\r\n"
               b"\r\n"
               b"\xff\xfe\r\n")

UTF8_HEADER = ("From: sender@sender.test\r\n"
               "Subject: gr\u00fc\u00df\r\n"
               "\r\n"
               "Hello.\r\n").encode()

ASCII = b"From: sender@sender.test\r\nSubject: ascii\r\n\r\nHello.\r\n"


def leaves(msg):
    """(content type, decoded payload) of every leaf, in order; a nested
    message is followed."""
    out = []
    for part in msg.walk():
        if part.is_multipart():
            out.append((part.get_content_type(), None))
        elif part.get_content_type() == "message/rfc822":
            out.append((part.get_content_type(), None))
        else:
            out.append((part.get_content_type(),
                        part.get_payload(decode=True)))
    return out


class BodyCase(DeliveryCase):

    def assert_7bit_clean(self, data):
        for i, line in enumerate(data.split(b"\r\n")):
            self.assertTrue(all(b < 0x80 for b in line),
                            "line %d is not 7-bit: %r" % (i, line))
            self.assertLessEqual(len(line), 998)
            self.assertNotIn(b"\n", line, "bare LF")


class Mime(BodyCase):

    def send(self, content, params=" BODY=8BITMIME", rcpt="r@dest.test",
             sender=SENDER):
        c = self.t.session()
        try:
            r = c.cmd("MAIL FROM:<%s>%s" % (sender, params))
            self.assertEqual(r.code, 250, r)
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r.code, 250, r)
            r = c.cmd("DATA")
            self.assertEqual(r.code, 354, r)
            c.send(ternlib.dot_stuff(content))
            qid = queued_id(c.reply())
            c.cmd("QUIT")
        finally:
            c.close()
        return qid

    def test_converted(self):
        mx1 = self.hop(MX1, eightbitmime=False)
        self.start_tern()
        qid = self.send(MIXED)
        self.wait_result(qid, "r@dest.test", "sent", dsn=r"2\.[0-9.]+",
                         relay=relay_re("mx1.dest.test", MX1, self.port))
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertNotRegex(msg.params, r"(?i)\bBODY=")
        self.assert_7bit_clean(msg.data)
        got = email.message_from_bytes(msg.data, policy=email.policy.compat32)
        want = email.message_from_bytes(MIXED, policy=email.policy.compat32)
        self.assertEqual(leaves(got), leaves(want))
        self.assertEqual(len(leaves(got)), 6)
        # Text survives exactly, the euro sign and the long line included.
        text = [p for p in got.walk()
                if p.get_content_type() == "text/plain"]
        self.assertEqual(text[0]["Content-Transfer-Encoding"],
                         "quoted-printable")
        self.assertIn("Gr\u00fc\u00dfe aus K\u00f6ln \u20ac 5 = 5",
                      text[0].get_payload(decode=True).decode())
        # Composite parts say 7bit now; the attachment is untouched.
        self.assertEqual(got["Content-Transfer-Encoding"], "7bit")
        self.assertIn(b"\r\nAAECAwQFBgc=\r\n", msg.data)
        # Headers other than the encoding are as they were.
        for name in ("Subject", "Message-ID", "Content-Type"):
            self.assertEqual(got[name], want[name])

    def test_7bit_identical(self):
        mx1 = self.hop(MX1, eightbitmime=False)
        self.start_tern()
        qid = self.send(SEVEN)
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, SEVEN)
        self.assertNotRegex(msg.params, r"(?i)\bBODY=")

    def bounced(self, qid, status):
        """The message is returned with status, nothing reaches MX1, and
        the report says why."""
        line = self.wait_result(qid, "r@dest.test", "bounced",
                                dsn=re.escape(status)).group(0)
        report = self.sender_mx.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assertEqual(report.mail_from, "")
        self.assertIn(("\r\nStatus: %s\r\n" % status).encode(),
                      report.data)
        self.assertEqual(self.mx1.attempts(), [])
        return line

    def test_signed_returned(self):
        self.mx1 = self.hop(MX1, eightbitmime=False)
        self.sender_mx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send(SIGNED)
        line = self.bounced(qid, "5.6.2")
        self.assertIn("signed", line)
        self.assertIn("8BITMIME", line)

    def test_base64_8bit_returned(self):
        self.mx1 = self.hop(MX1, eightbitmime=False)
        self.sender_mx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send(BASE64_8BIT)
        self.bounced(qid, "5.6.3")

    def test_signed_to_8bitmime_peer(self):
        """The same signed message goes untouched where 8BITMIME is."""
        mx1 = self.hop(MX1)
        self.start_tern()
        qid = self.send(SIGNED)
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, SIGNED)

    def test_smtputf8_address_returned(self):
        self.mx1 = self.hop(MX1)
        self.sender_mx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send(ASCII, params=" SMTPUTF8",
                        rcpt="j\u00f6rg@dest.test")
        line = self.wait_result(qid, "j\u00f6rg@dest.test", "bounced",
                                dsn=r"5\.6\.7").group(0)
        self.assertIn("SMTPUTF8 is required", line)
        self.sender_mx.wait_messages(1, DELIVER_TIMEOUT)
        self.assertEqual(self.mx1.attempts(), [])

    def test_smtputf8_header_returned(self):
        self.mx1 = self.hop(MX1)
        self.sender_mx = self.hop(SENDER_MX)
        self.start_tern()
        qid = self.send(UTF8_HEADER, params=" SMTPUTF8")
        self.bounced(qid, "5.6.9")

    def test_smtputf8_not_needed(self):
        """SMTPUTF8 asked for, but nothing in the message needs it: it
        goes to a peer without SMTPUTF8, without the parameter."""
        mx1 = self.hop(MX1)
        self.start_tern()
        qid = self.send(ASCII, params=" SMTPUTF8")
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, ASCII)
        self.assertNotRegex(msg.params, r"(?i)SMTPUTF8")

    def test_smtputf8_to_smtputf8_peer(self):
        mx1 = self.hop(MX1, smtputf8=True)
        self.start_tern()
        qid = self.send(UTF8_HEADER, params=" SMTPUTF8",
                        rcpt="j\u00f6rg@dest.test")
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, UTF8_HEADER)
        self.assertRegex(msg.params, r"(?i)\bSMTPUTF8\b")



class Chunking(BodyCase):

    def test_bdat_byte_identical(self):
        mx1 = self.hop(MX1, chunking=True)
        self.start_tern()
        # Large enough to go in many writes; dot-led lines, 8-bit octets.
        content = MIXED + b"".join(b".%05d line of a large body\r\n" % i
                                   for i in range(6000))
        qid = self.t.send_message(SENDER, ["a@dest.test", "b@dest.test"],
                                  content, params=" BODY=8BITMIME")
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_relayed(msg, qid, content)
        self.assertEqual(msg.rcpts, ["a@dest.test", "b@dest.test"])
        sess = mx1.sessions()[0]
        self.assertEqual(sess.bdat, [len(msg.data)])
        cmds = [c.split(" ")[0].upper() for c in sess.commands]
        self.assertNotIn("DATA", cmds)
        self.assertIn("BDAT %d LAST" % len(msg.data), sess.commands)
        self.wait_result(qid, "a@dest.test", "sent", dsn=r"2\.[0-9.]+")

    def test_no_bdat_without_recipients(self):
        mx1 = self.hop(MX1, chunking=True, rcpt="550 5.1.1 no such user")
        self.hop(SENDER_MX)
        self.start_tern()
        qid = self.t.send_message(SENDER, ["a@dest.test"], SEVEN)
        self.wait_result(qid, "a@dest.test", "bounced", dsn=r"5\.1\.1")
        cmds = [c.split(" ")[0].upper() for c in mx1.sessions()[0].commands]
        self.assertNotIn("BDAT", cmds)
        self.assertNotIn("DATA", cmds)

    def test_data_when_converting(self):
        """A 7-bit conversion goes with DATA even to a CHUNKING peer."""
        mx1 = self.hop(MX1, chunking=True, eightbitmime=False)
        self.start_tern()
        self.t.send_message(SENDER, ["a@dest.test"], MIXED,
                            params=" BODY=8BITMIME")
        msg = mx1.wait_messages(1, DELIVER_TIMEOUT)[0]
        self.assert_7bit_clean(msg.data)
        self.assertEqual(mx1.sessions()[0].bdat, [])


if __name__ == "__main__":
    ternlib.main()
