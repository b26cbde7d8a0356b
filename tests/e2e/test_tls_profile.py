"""
test_tls_profile.py: what inbound TLS offers, seen by openssl s_client
through STARTTLS on the real daemon.  By default (Mozilla's
"intermediate" profile) TLS 1.2 and 1.3 only, and only forward-secret
key exchange with AEAD ciphers: ECDHE and DHE work, a cipher with RSA key
transport (AES128-SHA, AES128-GCM-SHA256) is refused, as are TLS 1.0 and
1.1, even when the client is willing.  tls_protocols, tls_ciphers and
tls_ciphersuites change what is offered; a value OpenSSL does not take
stops ternd at start with the key named.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mailtest  # noqa: E402
import ternlib  # noqa: E402
from ternlib import TernTestCase  # noqa: E402

OPENSSL = os.environ.get("OPENSSL", "openssl")
# The client side lets everything through, so a refusal is ternd's.
ANY = "ALL:@SECLEVEL=0"


def rsa_cert(directory):
    """A self-signed RSA 2048 certificate (DHE and ECDHE-RSA need one);
    returns (certfile, keyfile), readable by ternd."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    cert = os.path.join(directory, "rsa-cert.pem")
    key = os.path.join(directory, "rsa-key.pem")
    p = subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=mx.test.example", "-addext",
                        "subjectAltName=DNS:mx.test.example,IP:127.0.0.1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl req failed: %r" % p.stderr)
    mailtest.give_to_daemon(cert, 0o644)
    mailtest.give_to_daemon(key, 0o600)
    return cert, key


class Handshake:
    """What one s_client run negotiated: ok, protocol, cipher, the
    server's temporary key, and the whole output."""

    def __init__(self, proc):
        self.out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
        m = re.search(r"^Protocol version: (\S+)$", self.out, re.M)
        self.protocol = m.group(1) if m else None
        m = re.search(r"^Ciphersuite: (\S+)$", self.out, re.M)
        self.cipher = m.group(1) if m else None
        m = re.search(r"^(?:Server|Peer) Temp Key: (.+)$", self.out, re.M)
        self.temp_key = m.group(1) if m else None
        self.ok = (proc.returncode == 0 and self.cipher is not None
                   and "CONNECTION ESTABLISHED" in self.out)

    def __repr__(self):
        return "<Handshake %s %s %s: %r>" % (self.ok, self.protocol,
                                              self.cipher, self.out[-600:])


class TlsProfile(TernTestCase):

    def start(self, **smtp):
        t = self.tern(start=False)
        cert, key = rsa_cert(os.path.join(t.dir, "tls"))
        conf = {"tls_cert": cert, "tls_key": key}
        conf.update(smtp)
        t.write_config(smtp=conf)
        t.start()
        self.t = t
        return t

    def s_client(self, *args):
        try:
            p = subprocess.run(
                [OPENSSL, "s_client", "-brief", "-starttls", "smtp",
                 "-connect", "127.0.0.1:%d" % self.t.port] + list(args),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("openssl s_client %s hung" % " ".join(args))
        return Handshake(p)

    def assertNegotiates(self, args, protocol, cipher):
        h = self.s_client(*args)
        self.assertTrue(h.ok, h)
        self.assertEqual((h.protocol, h.cipher), (protocol, cipher), h)
        return h

    def assertRefused(self, args):
        h = self.s_client(*args)
        self.assertFalse(h.ok, h)
        self.assertIsNone(h.cipher, h)
        return h

    def test_default_profile(self):
        self.start()
        self.assertNegotiates([], "TLSv1.3", "TLS_AES_128_GCM_SHA256")
        h = self.assertNegotiates(
            ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
            "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertRegex(h.temp_key or "", r"X25519|ECDH")
        self.assertNegotiates(
            ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"],
            "TLSv1.2", "ECDHE-RSA-CHACHA20-POLY1305")
        h = self.assertNegotiates(
            ["-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384"],
            "TLSv1.2", "DHE-RSA-AES256-GCM-SHA384")
        # A DH group of at least 2048 bits.
        m = re.search(r"DH,? (\d+) bits", h.temp_key or "")
        self.assertTrue(m and int(m.group(1)) >= 2048, h)
        # No forward secrecy, or no AEAD: refused.
        for cipher in ("AES128-SHA", "AES128-GCM-SHA256", "AES256-SHA256",
                       "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384",
                       "DES-CBC3-SHA"):
            with self.subTest(cipher=cipher):
                self.assertRefused(["-tls1_2", "-cipher",
                                    cipher + ":@SECLEVEL=0"])
        # Old protocols: refused, whatever the client offers.
        for proto in ("-tls1", "-tls1_1"):
            with self.subTest(proto=proto):
                self.assertRefused([proto, "-cipher", ANY])
        # The session goes on in plaintext for nobody: the server still
        # serves a good client afterwards.
        self.assertNegotiates(["-tls1_3"], "TLSv1.3",
                              "TLS_AES_128_GCM_SHA256")

    def test_keys_change_the_offer(self):
        self.start(tls_protocols="TLSv1 TLSv1.1 TLSv1.2",
                   tls_ciphers="ECDHE-RSA-AES128-SHA:AES128-GCM-SHA256:"
                   "@SECLEVEL=0")
        # What the defaults refuse is now offered: the refusals above
        # were the server's, not the client's.
        self.assertNegotiates(["-tls1", "-cipher", ANY], "TLSv1",
                              "ECDHE-RSA-AES128-SHA")
        self.assertNegotiates(["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
                              "TLSv1.2", "AES128-GCM-SHA256")
        self.assertRefused(["-tls1_3"])
        self.assertRefused(["-tls1_2", "-cipher",
                            "ECDHE-RSA-AES256-GCM-SHA384"])

    def test_ciphersuites(self):
        self.start(tls_protocols="TLSv1.3",
                   tls_ciphersuites="TLS_CHACHA20_POLY1305_SHA256")
        self.assertNegotiates([], "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
        self.assertRefused(["-ciphersuites", "TLS_AES_128_GCM_SHA256"])
        self.assertRefused(["-tls1_2"])

    def test_bad_values_stop_the_daemon(self):
        for key, value, why in (
                ("tls_ciphers", "NOPE", "no cipher that OpenSSL knows"),
                ("tls_ciphersuites", "AES128-SHA",
                 "no TLS 1.3 cipher suite"),
                ("tls_protocols", "TLSv1 TLSv1.3", "left out of a range")):
            with self.subTest(key=key):
                t = self.tern(start=False)
                t.write_config(smtp={key: value})
                rc, _, err = ternlib.run_ternd(["-n", "-c", t.conf])
                self.assertNotEqual(rc, 0, err)
                self.assertRegex(err, r"%s:\d+: \[smtp\] %s: "
                                 % (re.escape(t.conf), key))
                self.assertIn(why, err)


if __name__ == "__main__":
    ternlib.main()
