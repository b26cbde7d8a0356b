"""
nexthop.py: what stands beyond ternd in the delivery tests.  NextHop is
a small threaded ESMTP server on loopback that records everything it
was sent and can be told, while it runs, how to answer (250, 4xx, 5xx,
replies taken in turn, dropping the connection or never answering at a
given point).  Dnsmasq runs dnsmasq on loopback with the test's MX, A,
AAAA and null MX records, and can make names under a domain time out.

Nothing here waits without a deadline, and every thread or process it
starts is stopped by the object that started it.  Only the Python
standard library is used.
"""

import base64
import errno
import functools
import grp
import os
import pwd
import random
import re
import selectors
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time

DNSMASQ = os.environ.get("DNSMASQ", "/usr/sbin/dnsmasq")
OPENSSL = os.environ.get("OPENSSL", "openssl")

POLL = 0.05		# seconds between checks of the stop flag
SESSION_IDLE = 30.0	# a session silent this long is closed by the server
HANDSHAKE_TIMEOUT = 5.0
LINE_MAX = 4096		# octets in a command line

# Where a connection can be dropped or stalled (see NextHop).
POINTS = ("connect", "greeting", "ehlo", "mail", "rcpt", "data", "dot")

# Default replies; a spec of a bare code ("250", "451") takes its text
# from here when the code matches, else a generic one.
DEFAULT_TEXT = {
    "greeting": "220 %(name)s ESMTP nexthop",
    "mail": "250 2.1.0 Ok",
    "rcpt": "250 2.1.5 Ok",
    "data_cmd": "354 End data with <CR><LF>.<CR><LF>",
    "data": "250 2.0.0 Ok: queued",
}
CODE_TEXT = {
    "221": "221 2.0.0 Bye",
    "250": "250 2.0.0 Ok",
    "421": "421 4.3.2 Service not available",
    "450": "450 4.2.0 Mailbox unavailable",
    "451": "451 4.3.0 Try again later",
    "452": "452 4.3.1 Insufficient system storage",
    "550": "550 5.1.1 No such user",
    "552": "552 5.3.4 Message too big",
    "554": "554 5.7.1 Rejected",
}


class Gauge:
    """Counts simultaneous connections, and the most ever seen; one may be
    shared between several NextHops to see a global cap."""

    def __init__(self):
        self.lock = threading.Lock()
        self.current = 0
        self.max = 0
        self.total = 0

    def enter(self):
        with self.lock:
            self.current += 1
            self.total += 1
            self.max = max(self.max, self.current)

    def leave(self):
        with self.lock:
            self.current -= 1


class Session:
    """One connection as the server saw it."""

    def __init__(self, index, peer, local):
        self.index = index
        self.peer = peer		# (host, port) of the client
        self.local = local		# (host, port) it connected to
        self.started = time.monotonic()
        self.ended = None
        self.commands = []		# command lines, in order (no data)
        self.helo = None		# the name in the last EHLO/HELO
        self.esmtp = False
        self.tls = False		# STARTTLS completed
        self.tls_version = None
        self.auth = None		# the user that authenticated
        self.plaintext_after_starttls = b""
        self.end = None			# why it ended: quit, peer, drop, ...
        self.messages = 0		# accepted on this connection
        self.bdat = []			# octets of each BDAT chunk

    def __repr__(self):
        return ("Session(#%d %s -> %s, tls=%s, auth=%r, end=%r, "
                "commands=%r)" % (self.index, self.peer, self.local,
                                  self.tls, self.auth, self.end,
                                  self.commands))


class Message:
    """One transaction that reached the end of DATA."""

    def __init__(self, session, mail_from, params, rcpts, data, reply):
        self.session = session.index
        self.local = session.local
        self.helo = session.helo
        self.tls = session.tls
        self.auth = session.auth
        self.mail_from = mail_from	# without the brackets
        self.params = params		# MAIL parameters, as sent
        self.rcpts = list(rcpts)	# the accepted ones, in order
        self.data = data		# octets after un-stuffing, ends CRLF
        self.reply = reply		# what the server answered
        self.when = time.monotonic()

    def __repr__(self):
        return ("Message(from=<%s>, rcpts=%r, %d octets, session #%d, "
                "reply=%r)" % (self.mail_from, self.rcpts, len(self.data),
                               self.session, self.reply))


class _Gone(Exception):
    """The connection is over: the peer left, or the server stops."""


class _Wire:
    """A connection's octets: lines out of a buffer, with deadlines."""

    def __init__(self, sock, stopping):
        self.sock = sock
        self.stopping = stopping
        self.buf = b""
        self.sock.settimeout(POLL)

    def _fill(self, idle):
        deadline = time.monotonic() + idle
        while True:
            if self.stopping.is_set():
                raise _Gone("server stopping")
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                if time.monotonic() >= deadline:
                    raise _Gone("idle timeout")
                continue
            except (ConnectionError, ssl.SSLError, OSError) as e:
                raise _Gone("read error: %s" % e)
            if not data:
                raise _Gone("peer closed")
            self.buf += data
            return

    def line(self, idle=SESSION_IDLE, limit=LINE_MAX):
        """The next line without its CRLF (bytes)."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > limit and limit:
                raise _Gone("line too long")
            self._fill(idle)

    def exactly(self, n, idle=SESSION_IDLE):
        """The next n octets, whatever they are."""
        while len(self.buf) < n:
            self._fill(idle)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def some(self, idle=SESSION_IDLE):
        """Wait until at least one octet is buffered."""
        while not self.buf:
            self._fill(idle)

    def send(self, text):
        if isinstance(text, str):
            text = text.encode("utf-8")
        self.sock.settimeout(SESSION_IDLE)
        try:
            self.sock.sendall(text)
        except (OSError, ssl.SSLError) as e:
            raise _Gone("write error: %s" % e)
        finally:
            self.sock.settimeout(POLL)

    def drain(self, idle=SESSION_IDLE):
        """Read and discard until the peer leaves (used to stall)."""
        self.buf = b""
        while True:
            self._fill(idle)
            self.buf = b""


def _addr_of(arg):
    """The address inside <...> of a MAIL FROM:/RCPT TO: argument and the
    parameters after it; None when there are no brackets."""
    m = re.match(r"^\s*<([^>]*)>\s*(.*)$", arg)
    if not m:
        return None, ""
    return m.group(1), m.group(2)


# The reply when a spec gives none (a dict without "*", an empty list).
STAGE_DEFAULT = {"greeting": "220", "ehlo": "250", "mail": "250",
                 "rcpt": "250", "data_cmd": "354", "data": "250"}


def _expand(spec, stage, name):
    """A reply spec (a string) made into a whole reply line."""
    if spec is None:
        spec = STAGE_DEFAULT[stage]
    if spec in ("drop", "stall"):
        return spec
    spec = str(spec)
    if re.match(r"^[2-5][0-9][0-9]$", spec):
        default = DEFAULT_TEXT.get(stage)
        if default and default.startswith(spec):
            return default % {"name": name}
        return CODE_TEXT.get(spec, spec + " Reply")
    return spec


def _copy_spec(spec):
    if isinstance(spec, list):
        return list(spec)
    if isinstance(spec, dict):
        return {k: _copy_spec(v) for k, v in spec.items()}
    return spec


def _take(spec, key=None):
    """Resolve a spec: a dict is looked up by key ("*" is the default),
    a callable is called with key, a list gives its first entry and
    loses it while more than one is left (so the last one stays)."""
    if isinstance(spec, dict):
        if key in spec:
            return _take(spec[key], key)
        return _take(spec.get("*"), key)
    if callable(spec):
        return spec(key)
    if isinstance(spec, list):
        if not spec:
            return None
        return spec.pop(0) if len(spec) > 1 else spec[0]
    return spec


def make_cert(directory, name="nexthop.test", addresses=("127.0.0.1",)):
    """A self-signed certificate and key made with the openssl command;
    returns (certfile, keyfile)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    san = ",".join(["DNS:" + name] + ["IP:" + a for a in addresses])
    cmd = [OPENSSL, "req", "-x509", "-newkey", "ec",
           "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", key, "-out", cert, "-days", "2",
           "-subj", "/CN=" + name, "-addext", "subjectAltName=" + san]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
    except FileNotFoundError:
        raise AssertionError("openssl command not found (%s)" % OPENSSL)
    except subprocess.TimeoutExpired:
        raise AssertionError("openssl req did not finish in 30s")
    if p.returncode != 0:
        raise AssertionError("openssl req failed: %s"
                             % p.stderr.decode("utf-8", "replace"))
    return cert, key


def _bind(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
    except OSError:
        s.close()
        raise
    return s


def common_port(addrs, tries=50):
    """A TCP port free on every one of addrs just now (loopback
    addresses such as 127.0.0.2 and ::1), so next hops on different
    addresses can share it as ternd's single remote_port."""
    last = None
    for _ in range(tries):
        socks = []
        try:
            first = _bind(addrs[0], 0)
            socks.append(first)
            port = first.getsockname()[1]
            for a in addrs[1:]:
                socks.append(_bind(a, port))
            return port
        except OSError as e:
            last = e
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no TCP port free on all of %s: %s"
                         % (", ".join(addrs), last))


def has_ipv6():
    try:
        _bind("::1", 0).close()
        return True
    except OSError:
        return False


class NextHop:
    """A threaded ESMTP server on loopback.

    addrs: one address or a list ("127.0.0.2", "::1"); port: the port
    (0 picks one free on all of them).  name: the host name it greets
    with.  size: the SIZE it advertises and enforces.  tls: (certfile,
    keyfile) to offer STARTTLS.  auth: (user, password) to offer AUTH
    PLAIN LOGIN (only after TLS when tls is given, unless auth_plain is
    true); auth_required refuses MAIL before AUTH.  dsn: advertise DSN
    (RFC 3461); the parameters are taken as sent, and the MAIL and RCPT
    commands in Session.commands show them.  eightbitmime: advertise
    8BITMIME (the default; False plays a 7-bit next hop).  smtputf8:
    advertise SMTPUTF8.  chunking: advertise CHUNKING and take BDAT (RFC
    3030); Session.bdat lists the sizes of the chunks it got.

    Behaviour, changeable at any time with configure() (or by assigning
    the attribute):
      greeting, ehlo, mail, data_cmd, data: reply specs.  A spec is a
        reply line ("451 4.3.0 try later"), a bare code ("250"), "drop"
        (close without answering), "stall" (never answer), a list used
        in turn (the last entry stays: ["451", "250"] is "first 451,
        then 250 for ever"), or a function of the argument.
      rcpt: like those, or a dict address -> spec ("*" for the others).
      drop, stall: a point from POINTS, None, or a list used in turn
        per connection: "connect" (before the greeting), "greeting"
        (just after it), "ehlo", "mail", "rcpt" (when the command
        comes), "data" (after 354, once some of the body came), "dot"
        (after the final dot, before the reply).
      data_delay: seconds to wait before answering the final dot.
    """

    BEHAVIOUR = ("greeting", "ehlo", "mail", "rcpt", "data_cmd", "data",
                 "drop", "stall", "data_delay")

    def __init__(self, addrs="127.0.0.2", port=0, name="nexthop.test",
                 size=10485760, tls=None, auth=None, auth_required=False,
                 auth_plain=False, gauge=None, start=True, dsn=False,
                 eightbitmime=True, smtputf8=False, chunking=False,
                 **behaviour):
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.port = port
        self.name = name
        self.size = size
        self.tls = tls
        self.auth_cred = auth
        self.auth_required = auth_required
        self.auth_plain = auth_plain
        self.dsn = dsn
        self.eightbitmime = eightbitmime
        self.smtputf8 = smtputf8
        self.chunking = chunking
        self.lock = threading.Lock()
        self.gauge = Gauge()
        self.shared = gauge
        self.stopping = threading.Event()
        self.listeners = []
        self.threads = []
        self.sessions_ = []
        self.messages_ = []
        self.attempts_ = []	# every end of DATA: Message, any reply
        self.rcpts_ = []	# every RCPT: (session, address, reply)
        self.errors_ = []	# what went wrong inside the server
        self.ssl_ctx = None
        self.greeting = "220"
        self.ehlo = "250"
        self.mail = "250"
        self.rcpt = "250"
        self.data_cmd = "354"
        self.data = "250"
        self.drop = None
        self.stall = None
        self.data_delay = 0
        self.configure(**behaviour)
        if tls:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(tls[0], tls[1])
        if start:
            self.start()

    def configure(self, **kw):
        """Change the behaviour (see the class comment); lists and dicts
        are copied, so each NextHop consumes its own."""
        with self.lock:
            for key, value in kw.items():
                if key not in self.BEHAVIOUR:
                    raise TypeError("unknown NextHop behaviour %r" % key)
                if key in ("drop", "stall"):
                    for p in value if isinstance(value, list) else [value]:
                        if p is not None and p not in POINTS:
                            raise ValueError("unknown point %r" % p)
                setattr(self, key, _copy_spec(value))

    # --- life ------------------------------------------------------------

    def start(self):
        for _ in range(20):
            port = self.port or common_port(self.addrs)
            socks = []
            try:
                for a in self.addrs:
                    socks.append(_bind(a, port))
            except OSError as e:
                for s in socks:
                    s.close()
                if self.port or e.errno != errno.EADDRINUSE:
                    raise AssertionError("NextHop cannot bind %s port %d: "
                                         "%s" % (self.addrs, port, e))
                continue	# taken since common_port looked: again
            break
        else:
            raise AssertionError("NextHop found no free port on %s"
                                 % self.addrs)
        for s in socks:
            s.listen(64)
            s.setblocking(False)
        self.port = port
        self.listeners = socks
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="nexthop-accept-%d" % port)
        t.start()
        self.threads.append(t)
        return self

    def stop(self, timeout=5.0):
        """Close the listeners and every connection; wait for the threads
        (they all poll the stop flag)."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for t in list(self.threads):
            t.join(max(0.0, deadline - time.monotonic()))
        for s in self.listeners:
            s.close()
        self.listeners = []
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise AssertionError("NextHop threads still running: %s"
                                 % alive)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        sel = selectors.DefaultSelector()
        for s in self.listeners:
            sel.register(s, selectors.EVENT_READ)
        try:
            while not self.stopping.is_set():
                for key, _ in sel.select(POLL):
                    try:
                        conn, peer = key.fileobj.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        self._error("accept: %s" % e)
                        continue
                    local = conn.getsockname()[:2]
                    conn.setblocking(True)
                    with self.lock:
                        sess = Session(len(self.sessions_), peer[:2],
                                       local)
                        self.sessions_.append(sess)
                    self.gauge.enter()
                    if self.shared is not None:
                        self.shared.enter()
                    t = threading.Thread(target=self._serve,
                                         args=(conn, sess), daemon=True,
                                         name="nexthop-%d-%d"
                                         % (self.port, sess.index))
                    with self.lock:
                        self.threads.append(t)
                    t.start()
        finally:
            sel.close()

    def _error(self, text):
        with self.lock:
            self.errors_.append(text)

    # --- the SMTP server -------------------------------------------------

    def _spec(self, attr, key=None):
        with self.lock:
            return _take(getattr(self, attr), key)

    def _serve(self, conn, sess):
        w = _Wire(conn, self.stopping)
        try:
            with self.lock:
                drop = _take(self.drop)
                stall = _take(self.stall)
            sess.end = self._session(w, sess, drop, stall) or "closed"
        except _Gone as e:
            sess.end = str(e)
        except Exception as e:	# a bug here must show, not hang
            sess.end = "server error: %r" % e
            self._error("session #%d: %r" % (sess.index, e))
        finally:
            sess.ended = time.monotonic()
            # Leave before closing: the client may open its next
            # connection as soon as it sees this one close, and closing
            # lets another thread run before this one could leave.
            self.gauge.leave()
            if self.shared is not None:
                self.shared.leave()
            try:
                w.sock.close()
            except OSError:
                pass

    def _point(self, w, sess, point, drop, stall):
        """Drop or stall here if told to; returns the end reason or None."""
        if drop == point:
            return "dropped at %s" % point
        if stall == point:
            try:
                w.drain()
            except _Gone as e:
                return "stalled at %s, then %s" % (point, e)
        return None

    def _answer(self, w, sess, spec, stage, before=None):
        """Send a reply for spec; returns the reply line, or raises _Gone
        for drop and stall.  before(line), when given, runs just before
        the reply is sent."""
        line = _expand(spec, stage, self.name)
        if line == "drop":
            raise _Gone("dropped at %s" % stage)
        if line == "stall":
            try:
                w.drain()
            except _Gone as e:
                raise _Gone("stalled at %s, then %s" % (stage, e))
        if before is not None:
            before(line)
        w.send(line + "\r\n")
        if line.startswith("421"):
            raise _Gone("closed after %s" % line)
        return line

    def _ehlo_lines(self, sess):
        lines = [self.name, "PIPELINING", "SIZE %d" % self.size]
        if self.eightbitmime:
            lines.append("8BITMIME")
        if self.smtputf8:
            lines.append("SMTPUTF8")
        if self.chunking:
            lines.append("CHUNKING")
        if self.tls and not sess.tls:
            lines.append("STARTTLS")
        if self.auth_cred and (sess.tls or not self.tls or self.auth_plain):
            lines.append("AUTH PLAIN LOGIN")
        if self.dsn:
            lines.append("DSN")
        lines.append("ENHANCEDSTATUSCODES")
        return "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ",
                                         text)
                       for i, text in enumerate(lines))

    def _session(self, w, sess, drop, stall):
        end = self._point(w, sess, "connect", drop, stall)
        if end:
            return end
        line = self._answer(w, sess, self._spec("greeting"), "greeting")
        if not line.startswith("2"):
            # A refusing server answers QUIT only (RFC 5321 3.1).
            while True:
                cmd = w.line().decode("utf-8", "surrogateescape")
                sess.commands.append(cmd)
                if cmd.upper() == "QUIT":
                    w.send("221 2.0.0 Bye\r\n")
                    return "quit"
                w.send("503 5.5.1 Error: no service\r\n")
        end = self._point(w, sess, "greeting", drop, stall)
        if end:
            return end
        helo = False
        txn = None		# (from, params, rcpts) once MAIL was accepted
        bdat = b""		# the chunks of the message so far
        first_rcpt = True
        while True:
            raw = w.line()
            cmd = raw.decode("utf-8", "surrogateescape")
            sess.commands.append(cmd)
            verb, _, arg = cmd.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                end = self._point(w, sess, "ehlo", drop, stall)
                if end:
                    return end
                spec = self._spec("ehlo") if verb == "EHLO" else "250"
                line = _expand(spec, "ehlo", self.name)
                if line in ("drop", "stall") or not line.startswith("250"):
                    self._answer(w, sess, line, "ehlo")
                    continue
                sess.helo = arg.strip()
                sess.esmtp = verb == "EHLO"
                helo = True
                txn = None
                if verb == "EHLO":
                    w.send(self._ehlo_lines(sess))
                else:
                    w.send("250 %s\r\n" % self.name)
            elif verb == "STARTTLS":
                if not self.tls or sess.tls:
                    w.send("502 5.5.1 Error: command not implemented\r\n")
                    continue
                w.send("220 2.0.0 Ready to start TLS\r\n")
                if w.buf:
                    sess.plaintext_after_starttls += w.buf
                    w.buf = b""
                w.sock.settimeout(HANDSHAKE_TIMEOUT)
                try:
                    w.sock = self.ssl_ctx.wrap_socket(w.sock,
                                                      server_side=True)
                except (ssl.SSLError, OSError) as e:
                    return "TLS handshake failed: %s" % e
                w.sock.settimeout(POLL)
                sess.tls = True
                sess.tls_version = w.sock.version()
                helo = False
                txn = None
            elif verb == "AUTH":
                self._auth(w, sess, arg, helo, txn)
            elif verb == "MAIL":
                end = self._point(w, sess, "mail", drop, stall)
                if end:
                    return end
                if not helo:
                    w.send("503 5.5.1 Error: send HELO/EHLO first\r\n")
                    continue
                if txn is not None:
                    w.send("503 5.5.1 Error: nested MAIL command\r\n")
                    continue
                if not arg.upper().startswith("FROM:"):
                    w.send("501 5.5.4 Syntax: MAIL FROM:<address>\r\n")
                    continue
                addr, params = _addr_of(arg[5:])
                if addr is None:
                    w.send("501 5.5.4 Syntax: MAIL FROM:<address>\r\n")
                    continue
                if self.auth_required and sess.auth is None:
                    w.send("530 5.7.0 Authentication required\r\n")
                    continue
                m = re.search(r"(?i)\bSIZE=([0-9]+)", params)
                if m and int(m.group(1)) > self.size:
                    w.send("552 5.3.4 Message size exceeds fixed limit\r\n")
                    continue
                line = self._answer(w, sess, self._spec("mail", addr),
                                    "mail")
                if line.startswith("2"):
                    txn = (addr, params, [])
            elif verb == "RCPT":
                if first_rcpt:
                    first_rcpt = False
                    end = self._point(w, sess, "rcpt", drop, stall)
                    if end:
                        return end
                if txn is None:
                    w.send("503 5.5.1 Error: need MAIL command\r\n")
                    continue
                if not arg.upper().startswith("TO:"):
                    w.send("501 5.5.4 Syntax: RCPT TO:<address>\r\n")
                    continue
                addr, _ = _addr_of(arg[3:])
                if addr is None:
                    w.send("501 5.5.4 Syntax: RCPT TO:<address>\r\n")
                    continue
                spec = self._spec("rcpt", addr)
                line = _expand(spec, "rcpt", self.name)
                with self.lock:
                    self.rcpts_.append((sess.index, addr, line))
                line = self._answer(w, sess, line, "rcpt")
                if line.startswith("2"):
                    txn[2].append(addr)
            elif verb == "DATA":
                if txn is None:
                    w.send("503 5.5.1 Error: need MAIL command\r\n")
                    continue
                if not txn[2]:
                    w.send("554 5.5.1 Error: no valid recipients\r\n")
                    continue
                line = self._answer(w, sess, self._spec("data_cmd"),
                                    "data_cmd")
                if not line.startswith("354"):
                    txn = None
                    continue
                if drop == "data" or stall == "data":
                    w.some()
                    end = self._point(w, sess, "data", drop, stall)
                    if end:
                        return end
                data = self._read_data(w)
                end = self._point(w, sess, "dot", drop, stall)
                if end:
                    return end
                with self.lock:
                    delay = self.data_delay
                self._sleep(delay)
                # Recorded before the reply goes out, so a client that
                # has its 250 finds the message already counted.
                record = functools.partial(self._record, sess, txn, data)
                if len(data) > self.size:
                    line = "552 5.3.4 Message size exceeds fixed limit"
                    record(line)
                    w.send(line + "\r\n")
                else:
                    self._answer(w, sess, self._spec("data"), "data",
                                 before=record)
                txn = None
            elif verb == "BDAT" and self.chunking:
                m = re.fullmatch(r"([0-9]+)( +LAST)?", arg.strip(), re.I)
                if m is None:
                    w.send("501 5.5.4 Syntax: BDAT size [LAST]\r\n")
                    continue
                chunk = w.exactly(int(m.group(1)))
                sess.bdat.append(len(chunk))
                if txn is None or not txn[2]:
                    w.send("554 5.5.1 Error: no valid recipients\r\n")
                    bdat = b""
                    txn = None
                    continue
                bdat += chunk
                if not m.group(2):
                    w.send("250 2.0.0 %d octets received\r\n"
                           % len(chunk))
                    continue
                end = self._point(w, sess, "dot", drop, stall)
                if end:
                    return end
                # Recorded before the reply goes out, so a client that
                # has its 250 finds the message already counted.
                record = functools.partial(self._record, sess, txn, bdat)
                if len(bdat) > self.size:
                    line = "552 5.3.4 Message size exceeds fixed limit"
                    record(line)
                    w.send(line + "\r\n")
                else:
                    self._answer(w, sess, self._spec("data"), "data",
                                 before=record)
                txn = None
                bdat = b""
            elif verb == "RSET":
                txn = None
                bdat = b""
                w.send("250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                w.send("250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                w.send("221 2.0.0 Bye\r\n")
                return "quit"
            elif verb == "VRFY":
                w.send("252 2.0.0 Cannot VRFY user\r\n")
            else:
                w.send("502 5.5.2 Error: command not recognized\r\n")

    def _record(self, sess, txn, data, line):
        msg = Message(sess, txn[0], txn[1], txn[2], data, line)
        with self.lock:
            self.attempts_.append(msg)
            if line.startswith("2"):
                self.messages_.append(msg)
                sess.messages += 1

    def _sleep(self, delay):
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise _Gone("server stopping")
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))

    def _read_data(self, w):
        """The message up to the final dot, un-stuffed."""
        out = []
        while True:
            line = w.line(limit=0)
            if line == b".":
                return b"".join(out)
            if line.startswith(b"."):
                line = line[1:]
            out.append(line + b"\r\n")

    def _auth(self, w, sess, arg, helo, txn):
        mech, _, initial = arg.strip().partition(" ")
        mech = mech.upper()
        offered = self.auth_cred and (sess.tls or not self.tls or
                                      self.auth_plain)
        if not offered:
            w.send("502 5.5.1 Error: authentication not enabled\r\n")
            return
        if not helo or sess.auth is not None or txn is not None:
            w.send("503 5.5.1 Error: bad sequence of commands\r\n")
            return

        def ask(prompt):
            w.send("334 %s\r\n" % prompt)
            line = w.line()
            sess.commands.append(line.decode("utf-8", "surrogateescape"))
            if line == b"*":
                raise ValueError("cancelled")
            return base64.b64decode(line, validate=True)

        try:
            if mech == "PLAIN":
                blob = (base64.b64decode(initial, validate=True)
                        if initial and initial != "=" else
                        (b"" if initial == "=" else ask("")))
                parts = blob.split(b"\0")
                if len(parts) != 3:
                    raise ValueError("bad PLAIN response")
                user, password = parts[1], parts[2]
            elif mech == "LOGIN":
                user = (base64.b64decode(initial, validate=True) if initial
                        else ask("VXNlcm5hbWU6"))
                password = ask("UGFzc3dvcmQ6")
            else:
                w.send("504 5.5.4 Unrecognized authentication type\r\n")
                return
        except ValueError as e:
            w.send("501 5.5.2 Error: %s\r\n" % str(e).replace("\r", " ")
                   .replace("\n", " ")[:100])
            return
        want_user, want_password = self.auth_cred
        if (user.decode("utf-8", "replace") == want_user and
                password.decode("utf-8", "replace") == want_password):
            sess.auth = want_user
            w.send("235 2.7.0 Authentication successful\r\n")
        else:
            w.send("535 5.7.8 Error: authentication failed\r\n")

    # --- what it saw -----------------------------------------------------

    def messages(self):
        """The accepted messages, in order."""
        with self.lock:
            return list(self.messages_)

    def attempts(self):
        """Every transaction that reached the final dot, whatever the
        reply."""
        with self.lock:
            return list(self.attempts_)

    def rcpt_commands(self, addr=None):
        """(session, address, reply) of every RCPT, or those for addr."""
        with self.lock:
            return [r for r in self.rcpts_ if addr is None or r[1] == addr]

    def sessions(self):
        with self.lock:
            return list(self.sessions_)

    def errors(self):
        with self.lock:
            return list(self.errors_)

    @property
    def connections(self):
        """How many connections were accepted."""
        with self.lock:
            return len(self.sessions_)

    @property
    def max_concurrent(self):
        with self.gauge.lock:
            return self.gauge.max

    @property
    def current(self):
        with self.gauge.lock:
            return self.gauge.current

    def _wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s "
                                     "at %s" % (timeout, what, self))
            time.sleep(0.02)

    def wait_messages(self, n, timeout):
        """Wait until at least n messages were accepted; return them."""
        self._wait(lambda: len(self.messages()) >= n, timeout,
                   "%d accepted message(s)" % n)
        return self.messages()

    def wait_attempts(self, n, timeout):
        self._wait(lambda: len(self.attempts()) >= n, timeout,
                   "%d transaction(s) to reach the final dot" % n)
        return self.attempts()

    def wait_connections(self, n, timeout):
        self._wait(lambda: self.connections >= n, timeout,
                   "%d connection(s)" % n)
        return self.sessions()

    def wait_rcpts(self, n, timeout, addr=None):
        self._wait(lambda: len(self.rcpt_commands(addr)) >= n, timeout,
                   "%d RCPT command(s)%s" % (n, " for " + addr
                                             if addr else ""))
        return self.rcpt_commands(addr)

    def wait_idle(self, timeout):
        """Wait until no connection is open."""
        self._wait(lambda: self.current == 0, timeout,
                   "every connection to close")

    def summary(self):
        """A few lines about what it saw, for a failure report."""
        lines = ["%r: %d connection(s), max %d at once, %d message(s), "
                 "%d transaction(s)" % (self, self.connections,
                                        self.max_concurrent,
                                        len(self.messages()),
                                        len(self.attempts()))]
        for s in self.sessions()[:20]:
            lines.append("  %r" % s)
        for e in self.errors():
            lines.append("  error: %s" % e)
        return "\n".join(lines)

    def __repr__(self):
        return "NextHop(%s port %s)" % ("/".join(self.addrs), self.port)


# --- DNS -----------------------------------------------------------------

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16,
         "AAAA": 28}


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _decode_name(msg, off):
    """(name, offset after it) with compression pointers followed."""
    labels = []
    end = None
    for _ in range(128):
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            continue
        off += 1
        if n == 0:
            return ".".join(labels), (end if end is not None else off)
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    raise ValueError("name compression loop")


def dns_query(server, name, qtype="MX", timeout=2.0):
    """Ask server ((host, port)) one question over UDP; returns (rcode,
    answers), each answer (name, type, value): an MX as (pref, host), an
    A or AAAA as text, anything else as raw octets.  Raises
    socket.timeout when nothing comes."""
    qid = random.randrange(1, 65536)
    query = (struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) +
             _encode_name(name) + struct.pack("!HH", TYPES[qtype], 1))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + timeout
        s.sendto(query, server)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no DNS answer from %s:%d"
                                     % server)
            s.settimeout(left)
            msg = s.recv(4096)
            if len(msg) >= 12 and struct.unpack("!H", msg[:2])[0] == qid:
                break
    finally:
        s.close()
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        rname, off = _decode_name(msg, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == 15:
            pref = struct.unpack("!H", rdata[:2])[0]
            value = (pref, _decode_name(msg, off + 2)[0])
        elif rtype == 1:
            value = socket.inet_ntop(socket.AF_INET, rdata)
        elif rtype == 28:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        else:
            value = rdata
        answers.append((rname, rtype, value))
        off += rdlen
    return flags & 0x0F, answers


class Dnsmasq:
    """dnsmasq on 127.0.0.1 serving the test's records and nothing else:
    no /etc/hosts, no resolv.conf, every other name under .test is
    NXDOMAIN.

    mx: {domain: [(host, pref), ...]}; hosts: {name: [address, ...]}
    (A and AAAA); nullmx: domains with "MX 0 ."; slow: domains whose
    names are sent to a server that never answers, so they time out;
    extra: more dnsmasq arguments.  dns_servers is the value for ternd's
    configuration.  restart() changes records and keeps the port.
    """

    def __init__(self, mx=None, hosts=None, nullmx=(), slow=(), extra=(),
                 log_queries=True, start=True):
        self.mx = dict(mx or {})
        self.hosts = dict(hosts or {})
        self.nullmx = list(nullmx)
        self.slow = list(slow)
        self.extra = list(extra)
        self.log_queries = log_queries
        self.dir = tempfile.mkdtemp(prefix="tern-dns-")
        self.logfile = os.path.join(self.dir, "dnsmasq.log")
        self.proc = None
        self.port = None
        # Where slow names go: a socket that is never read.
        self.blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.blackhole.bind(("127.0.0.1", 0))
        if start:
            self.start()

    @property
    def dns_servers(self):
        return "127.0.0.1:%d" % self.port

    def args(self, port):
        a = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
             "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
             "--listen-address=127.0.0.1", "--pid-file=",
             "--log-facility=-", "--port=%d" % port, "--local=/test/"]
        if self.log_queries:
            a.append("--log-queries")
        if os.geteuid() == 0:
            # Root: dnsmasq drops to a user; name one that exists.
            try:
                pw = pwd.getpwnam("nobody")
                a.append("--user=nobody")
                a.append("--group=%s" % grp.getgrgid(pw.pw_gid).gr_name)
            except KeyError:
                a.append("--user=root")
        bh = self.blackhole.getsockname()[1]
        for d in self.slow:
            a.append("--server=/%s/127.0.0.1#%d" % (d, bh))
        for domain, hosts in self.mx.items():
            for host, pref in hosts:
                a.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        for name, addrs in self.hosts.items():
            for addr in addrs:
                a.append("--host-record=%s,%s" % (name, addr))
        for d in self.nullmx:
            # RDATA of "MX 0 .": preference 0, then the root name.
            a.append("--dns-rr=%s,15,000000" % d)
        return a + self.extra

    def start(self, timeout=5.0):
        if not os.access(DNSMASQ, os.X_OK):
            raise AssertionError("dnsmasq not found at %s: install the "
                                 "Debian package dnsmasq-base" % DNSMASQ)
        fixed = self.port is not None
        last = ""
        for attempt in range(5):
            port = self.port if fixed else _free_udp_port()
            log = open(self.logfile, "ab")
            try:
                self.proc = subprocess.Popen(
                    self.args(port), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log)
            finally:
                log.close()
            if self._ready(port, timeout):
                self.port = port
                return self
            last = self.log()[-2000:]
            self._kill()
            if fixed:
                time.sleep(0.2)	# the old one's port may linger
        raise AssertionError("dnsmasq did not answer on 127.0.0.1; its "
                             "messages: %s" % last)

    def _ready(self, port, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                dns_query(("127.0.0.1", port), "ready.test", "MX", 0.2)
                return True
            except (socket.timeout, OSError):
                pass
        return False

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, mx=None, hosts=None, nullmx=None, slow=None,
                extra=None):
        """Stop, change what is given, start again on the same port."""
        self._kill()
        if mx is not None:
            self.mx = dict(mx)
        if hosts is not None:
            self.hosts = dict(hosts)
        if nullmx is not None:
            self.nullmx = list(nullmx)
        if slow is not None:
            self.slow = list(slow)
        if extra is not None:
            self.extra = list(extra)
        return self.start()

    def query(self, name, qtype="MX", timeout=2.0):
        return dns_query(("127.0.0.1", self.port), name, qtype, timeout)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        self._kill()
        self.blackhole.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _free_udp_port():
    """A port free for UDP and TCP on 127.0.0.1 just now."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                t.close()
        finally:
            u.close()
    raise AssertionError("no free UDP/TCP port on 127.0.0.1")


def _selftest():
    """python3 nexthop.py: check the helpers themselves (no ternd), so a
    failing delivery test can be told apart from a broken helper."""
    import smtplib
    body = b"Subject: t\r\n\r\n.dot\r\n..two\r\n.\r\ncaf\xc3\xa9\r\n"
    port = common_port(["127.0.0.2", "127.0.0.3"])
    with NextHop("127.0.0.2", port=port,
                 rcpt={"bad@x.test": "550 5.1.1 no such user"},
                 data=["451 4.3.0 try later", "250"]) as h:
        c = smtplib.SMTP("127.0.0.2", port, timeout=5)
        c.ehlo("client.test")
        assert c.has_extn("pipelining") and c.has_extn("8bitmime")
        try:
            c.sendmail("s@a.test", ["ok@x.test", "bad@x.test"], body)
            raise AssertionError("the first DATA was not refused")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 451, e
        refused = c.sendmail("s@a.test", ["ok@x.test", "bad@x.test"], body)
        assert list(refused) == ["bad@x.test"], refused
        c.quit()
        m = h.wait_messages(1, 5)[0]
        assert m.data == body and m.rcpts == ["ok@x.test"], m
        assert len(h.attempts()) == 2
        h.configure(drop=["data", None], data="250")
        c = smtplib.SMTP("127.0.0.2", port, timeout=5)
        try:
            c.sendmail("s@a.test", ["ok@x.test"], body)
            raise AssertionError("not dropped mid-body")
        except smtplib.SMTPServerDisconnected:
            pass
        c = smtplib.SMTP("127.0.0.2", port, timeout=5)
        c.sendmail("s@a.test", ["ok@x.test"], body)
        c.quit()
        h.configure(stall="mail")
        c = smtplib.SMTP("127.0.0.2", port, timeout=0.5)
        try:
            c.sendmail("s@a.test", ["ok@x.test"], body)
            raise AssertionError("not stalled")
        except (socket.timeout, smtplib.SMTPServerDisconnected):
            c.close()
        assert len(h.messages()) == 2 and h.connections == 4, h.summary()
        assert not h.errors(), h.errors()
    tmp = tempfile.mkdtemp(prefix="nexthop-")
    try:
        cert = make_cert(tmp, "gw.test", ["127.0.0.3"])
        with NextHop("127.0.0.3", port=port, tls=cert, auth=("u", "pw"),
                     auth_required=True) as g:
            c = smtplib.SMTP("127.0.0.3", port, timeout=5)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c.starttls(context=ctx)
            c.login("u", "pw")
            c.sendmail("s@a.test", ["r@b.test"], body)
            c.quit()
            m = g.wait_messages(1, 5)[0]
            assert m.tls and m.auth == "u", m
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with Dnsmasq(mx={"d.test": [("mx1.d.test", 10), ("mx2.d.test", 20)]},
                 hosts={"mx1.d.test": ["127.0.0.2", "::1"]},
                 nullmx=["null.test"], slow=["slow.test"]) as dns:
        rc, ans = dns.query("d.test")
        assert rc == 0 and sorted(a[2] for a in ans) == [
            (10, "mx1.d.test"), (20, "mx2.d.test")], ans
        assert [a[2] for a in dns.query("mx1.d.test", "A")[1]] == [
            "127.0.0.2"]
        assert [a[2] for a in dns.query("mx1.d.test", "AAAA")[1]] == ["::1"]
        assert dns.query("null.test")[1][0][2] == (0, "")
        assert dns.query("nosuch.test")[0] == 3		# NXDOMAIN
        try:
            dns.query("slow.test", timeout=1)
            raise AssertionError("slow.test answered")
        except socket.timeout:
            pass
        dns.restart(slow=[], mx={"slow.test": [("mx1.d.test", 5)]})
        assert dns.query("slow.test")[1][0][2] == (5, "mx1.d.test")
    print("nexthop self-test passed")


if __name__ == "__main__":
    _selftest()
