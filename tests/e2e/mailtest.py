"""
mailtest.py: helpers shared by the TLS, AUTH, local delivery and IMAP
end-to-end tests: certificates and their fingerprints, TLS client
contexts and STARTTLS on a ternlib.Conn, password hashes and the users
and aliases files, the SMTP AUTH exchanges (PLAIN, LOGIN, CRAM-MD5), a
ternd set up with mailboxes, and reading Maildirs back.

Like ternlib, it uses only the Python standard library (and the openssl
command for keys and hashes), and never waits without a deadline.
"""

import base64
import hashlib
import hmac
import os
import pwd
import re
import shutil
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nexthop  # noqa: E402
import ternlib  # noqa: E402
from ternlib import wait_for  # noqa: E402

OPENSSL = nexthop.OPENSSL
BUILDDIR = os.environ.get("TERN_BUILDDIR", "")

# The local domains of mail_tern() unless a test names others.
LOCAL_DOMAINS = "local.test example.test"

DELIVER_TIMEOUT = 60.0	# one local delivery, or one retry, within this

# The reply to STARTTLS (RFC 3207) and to a good AUTH (RFC 4954).
READY_RE = re.compile(r"^220 2\.0\.0 ")
AUTH_OK_RE = re.compile(r"^235 2\.7\.0 ")
AUTH_BAD_RE = re.compile(r"^535 5\.7\.8 ")


# --- who ternd runs as -----------------------------------------------------

def daemon_ids():
    """(uid, gid) ternd runs as under ternlib: "nobody" when the tests
    run as root (ternlib's [main] user), else our own."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    return os.getuid(), os.getgid()


def give_to_daemon(path, mode):
    """chmod path to mode and, as root, hand it to ternd's user, so the
    daemon can read (or write) it after dropping privileges."""
    os.chmod(path, mode)
    if os.geteuid() == 0:
        uid, gid = daemon_ids()
        os.chown(path, uid, gid)


# --- certificates and TLS ---------------------------------------------------

def make_cert(directory, name="mx.test.example"):
    """A fresh self-signed certificate for 127.0.0.1 and name, readable
    by ternd; returns (certfile, keyfile)."""
    os.makedirs(directory, exist_ok=True)
    cert, key = nexthop.make_cert(directory, name, ["127.0.0.1"])
    give_to_daemon(cert, 0o644)
    give_to_daemon(key, 0o600)
    return cert, key


def cert_der(certfile):
    with open(certfile) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def fingerprint(der):
    """SHA-256 of a DER certificate, in hex."""
    return hashlib.sha256(der).hexdigest()


def cert_fingerprint(certfile):
    return fingerprint(cert_der(certfile))


def peer_fingerprint(sock):
    """SHA-256 of the certificate an SSL socket's peer presented."""
    return fingerprint(sock.getpeercert(binary_form=True))


def client_context(minimum=None, maximum=None, seclevel0=False):
    """A client context that trusts any certificate (the tests make
    self-signed ones) and can be pinned to TLS versions."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if seclevel0:
        # Let the client offer what the system policy forbids, so a
        # refusal is the server's doing.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def starttls(conn, ctx=None):
    """STARTTLS on a ternlib.Conn: the 220 reply, nothing pipelined
    after it, then the handshake; conn.sock becomes the SSL socket.
    Returns the 220 reply."""
    r = conn.cmd("STARTTLS")
    if not READY_RE.match(r.line):
        raise AssertionError("STARTTLS refused: %r" % r)
    if conn.buf:
        raise AssertionError("octets after the 220 to STARTTLS, in "
                             "plaintext: %r" % conn.buf)
    tls_handshake(conn, ctx)
    return r


def tls_handshake(conn, ctx=None):
    """The client handshake on conn's socket (the 220 already read)."""
    if ctx is None:
        ctx = client_context()
    conn.sock.settimeout(conn.timeout)
    conn.sock = ctx.wrap_socket(conn.sock)
    return conn.sock


def implicit_tls_conn(port, ctx=None, greet=True):
    """A ternlib.Conn to an implicit TLS port (smtps_listen): the
    handshake first, then the greeting read inside TLS."""
    if ctx is None:
        ctx = client_context()
    c = ternlib.Conn.__new__(ternlib.Conn)
    c.timeout, c.buf, c.eof = ternlib.REPLY_TIMEOUT, b"", False
    sock = socket.create_connection(("127.0.0.1", port),
                                    timeout=ternlib.REPLY_TIMEOUT)
    try:
        c.sock = ctx.wrap_socket(sock)
    except BaseException:
        sock.close()
        raise
    c.greeting = c.reply() if greet else None
    return c


def ehlo_keywords(reply):
    """The EHLO keywords (upper case, with their parameters) after the
    first line: ["PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN ..."]."""
    return [t.upper() for t in reply.texts[1:]]


def has_keyword(reply, word):
    word = word.upper()
    return any(k == word or k.startswith(word + " ")
               for k in ehlo_keywords(reply))


def received_header(data):
    """The first header field of a stored or relayed message (our
    Received:), unfolded, whatever the line endings."""
    text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    lines = text.split("\n")
    if not lines or not lines[0].lower().startswith("received:"):
        raise AssertionError("the message does not start with Received: "
                             "%r" % text[:300])
    out = [lines[0]]
    for line in lines[1:]:
        if not line or line[0] not in " \t":
            break
        out.append(line)
    return " ".join(part.strip() for part in out)


# --- passwords, users and aliases -------------------------------------------

def crypt_hash(password):
    """A SHA-512 crypt(3) hash ("$6$...") made by openssl passwd -6."""
    try:
        p = subprocess.run([OPENSSL, "passwd", "-6", "-stdin"],
                           input=password.encode("utf-8") + b"\n",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
    except FileNotFoundError:
        raise AssertionError("openssl command not found (%s)" % OPENSSL)
    out = p.stdout.decode("ascii", "replace").strip()
    if p.returncode != 0 or not out.startswith("$6$"):
        raise AssertionError("openssl passwd -6 failed: %r %r"
                             % (out, p.stderr))
    return out


def plain_secret(password):
    """The users file's "{PLAIN}base64" form of a password."""
    return "{PLAIN}" + base64.b64encode(password.encode("utf-8")).decode()


def write_users(path, entries):
    """entries: (address, secret[, mailbox]) tuples; one line each."""
    lines = ["# users written by the test"]
    for e in entries:
        lines.append("  ".join(e))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    give_to_daemon(path, 0o640)


def write_aliases(path, aliases):
    """aliases: (name, [targets]) pairs; name "@domain" is a catch-all."""
    lines = ["# aliases written by the test"]
    for name, targets in aliases:
        lines.append("%s:  %s" % (name, ", ".join(targets)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    give_to_daemon(path, 0o640)


def ternctl_path():
    return os.path.join(BUILDDIR, "src", "ternctl") if BUILDDIR else ""


# --- SMTP AUTH ---------------------------------------------------------------

def b64(text):
    if isinstance(text, str):
        text = text.encode("utf-8")
    return base64.b64encode(text).decode("ascii")


def plain_response(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def auth_plain(conn, user, password, initial=True):
    """AUTH PLAIN with the initial response on the command line, or
    after an empty 334; returns the final reply."""
    if initial:
        return conn.cmd("AUTH PLAIN " + plain_response(user, password))
    r = conn.cmd("AUTH PLAIN")
    if r.code != 334:
        return r
    if r.texts[0].strip() != "":
        raise AssertionError("AUTH PLAIN: the 334 is not empty: %r" % r)
    return conn.cmd(plain_response(user, password))


def auth_login(conn, user, password):
    """AUTH LOGIN: 334 for the user name, 334 for the password."""
    r = conn.cmd("AUTH LOGIN")
    if r.code != 334:
        return r
    if base64.b64decode(r.texts[0]).lower() != b"username:":
        raise AssertionError("AUTH LOGIN: first prompt %r" % r)
    r = conn.cmd(b64(user))
    if r.code != 334:
        return r
    if base64.b64decode(r.texts[0]).lower() != b"password:":
        raise AssertionError("AUTH LOGIN: second prompt %r" % r)
    return conn.cmd(b64(password))


def cram_response(user, password, challenge):
    digest = hmac.new(password.encode("utf-8"), challenge,
                      hashlib.md5).hexdigest()
    return b64("%s %s" % (user, digest))


def auth_cram(conn, user, password):
    """AUTH CRAM-MD5 (RFC 2195): the challenge is checked for its form
    "<...@...>" and answered with the HMAC-MD5 of the password."""
    r = conn.cmd("AUTH CRAM-MD5")
    if r.code != 334:
        return r
    challenge = base64.b64decode(r.texts[0])
    if not re.match(rb"^<[^<>@]+@[^<>@]+>$", challenge):
        raise AssertionError("CRAM-MD5 challenge %r" % challenge)
    return conn.cmd(cram_response(user, password, challenge))


# --- a ternd with mailboxes ---------------------------------------------------

def mail_tern(case, users=None, aliases=None, tls=False, main=None,
              smtp=None, local=None, delivery=None, start=True):
    """A ternd (made through case.tern, so it is cleaned up) with a
    mailboxes directory it can write, the users and aliases files given
    ((address, secret[, mailbox]) tuples; (name, [targets]) pairs), and
    with tls a fresh certificate.  "{dir}" in a user's mailbox is
    replaced by the daemon's temporary directory.  Sets t.mailboxes,
    t.users_file, t.aliases_file, t.cert, t.key."""
    t = case.tern(start=False)
    t.mailboxes = os.path.join(t.dir, "mail")
    os.makedirs(t.mailboxes, exist_ok=True)
    give_to_daemon(t.mailboxes, 0o755)
    conf_local = {"mailboxes": t.mailboxes}
    t.users_file = t.aliases_file = None
    if users is not None:
        t.users_file = os.path.join(t.dir, "users")
        write_users(t.users_file, [tuple(f.replace("{dir}", t.dir)
                                         for f in e) for e in users])
        conf_local["users"] = t.users_file
    if aliases is not None:
        t.aliases_file = os.path.join(t.dir, "aliases")
        write_aliases(t.aliases_file, aliases)
        conf_local["aliases"] = t.aliases_file
    conf_local.update(local or {})
    conf_smtp = {"local_domains": LOCAL_DOMAINS}
    t.cert = t.key = None
    if tls:
        t.cert, t.key = make_cert(os.path.join(t.dir, "tls"))
        os.chmod(os.path.join(t.dir, "tls"), 0o755)
        conf_smtp.update({"tls_cert": t.cert, "tls_key": t.key})
    conf_smtp.update(smtp or {})
    sections = {"local": conf_local}
    if delivery:
        sections["delivery"] = delivery
    t.write_config(main=main, smtp=conf_smtp, sections=sections)
    if start:
        t.start()
    return t


def mailbox_dir(t, domain, local):
    """The default Maildir of local@domain: <mailboxes>/<domain>/<local>."""
    return os.path.join(t.mailboxes, domain, local)


def make_owned_dir(path):
    """A directory ternd's user may create Maildirs in."""
    os.makedirs(path, exist_ok=True)
    give_to_daemon(path, 0o755)
    return path


# --- reading Maildirs ----------------------------------------------------------

def maildir_names(maildir, sub="new"):
    """The message files in maildir/sub, sorted; [] when not there."""
    d = os.path.join(maildir, sub)
    try:
        return sorted(n for n in os.listdir(d) if not n.startswith("."))
    except FileNotFoundError:
        return []


def maildir_read(maildir, sub="new"):
    """The contents of every message file in maildir/sub, by name."""
    out = []
    for name in maildir_names(maildir, sub):
        with open(os.path.join(maildir, sub, name), "rb") as f:
            out.append(f.read())
    return out


def wait_maildir(maildir, n, timeout=DELIVER_TIMEOUT):
    """Wait until maildir/new holds at least n messages; return their
    contents."""
    wait_for(lambda: len(maildir_names(maildir)) >= n, timeout,
             "%d message(s) in %s/new" % (n, maildir))
    return maildir_read(maildir)


def stored_form(sender, delivered_to, received, content):
    """What a Maildir file must hold: our two trace lines, the Received
    header (unfolded lines as stored, LF endings) and the client's octets
    with CRLF turned into LF."""
    return (("Return-Path: <%s>\nDelivered-To: %s\n" % (sender,
                                                         delivered_to))
            .encode("utf-8") + received + content.replace(b"\r\n", b"\n"))


def split_stored(data):
    """(trace lines, Received header as stored, the rest) of a Maildir
    file: the first two lines, then the folded Received field."""
    lines = data.split(b"\n")
    if len(lines) < 3:
        raise AssertionError("stored message too short: %r" % data)
    trace = b"\n".join(lines[:2]) + b"\n"
    if not lines[2].lower().startswith(b"received:"):
        raise AssertionError("no Received: after the trace lines: %r"
                             % data[:400])
    n = 3
    while n < len(lines) and lines[n][:1] in (b" ", b"\t"):
        n += 1
    received = b"\n".join(lines[2:n]) + b"\n"
    rest = b"\n".join(lines[n:])
    return trace, received, rest


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)

