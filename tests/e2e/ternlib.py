"""
ternlib.py: the harness shared by tern's end-to-end tests.

It owns starting the real ternd on loopback with its own port, spool and
configuration in a temporary directory, talking to it over raw sockets,
reading back the spool and the log, and the runner every test file calls.
It must never touch anything outside its temporary directories, never
signal a process it did not start, and never wait without a deadline.

Only the Python standard library is used.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

TERND = os.environ.get("TERND", "")
SRCDIR = os.environ.get("TERN_SRCDIR", "")

HOSTNAME = "mx.test.example"
HELO = "client.example"
VERSION = "0.1.0"
# queue/ also holds the spool's layout mark (DESIGN.md, Spool).
LAYOUT_MARK = ".layout2"

# Every key the contract names, per section.
CONFIG_KEYS = {
    "main": ["hostname", "spool", "log", "log_server", "debug",
             "shutdown_timeout", "user", "group"],
    "smtp": ["listen", "max_connections", "max_connections_per_ip",
             "max_message_size", "max_recipients", "max_errors",
             "command_timeout", "data_timeout", "bare_newlines",
             "local_domains", "relay_networks"],
    "delivery": ["queue_interval", "max_tries", "max_deliveries",
                 "max_per_destination", "remote_port", "dns_servers",
                 "gateway", "gateway_all", "gateway_after_tries",
                 "gateway_tls_verify", "gateway_auth_file", "starttls",
                 "connect_timeout", "reply_timeout", "data_timeout",
                 "idle_timeout", "max_received_headers"],
}

# Deadlines for what should happen: generous, since they cost nothing when
# it does, and a loaded machine (parallel suites, a disk sync that takes
# seconds) must not fail a test.  A sanitizer build starts slowly too.
START_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
TEST_TIMEOUT = 300	# seconds; SIGALRM ends a stuck test


def qdir(qid):
    """The XX directory of a queue id, below queue/ and hold/."""
    return qid[6:8]
CLOSE_TIMEOUT = 5.0	# SIGTERM at clean-up, then SIGKILL

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Undefined|Memory)Sanitizer|"
                          r"runtime error: |SUMMARY: \w+Sanitizer")

QID_RE = r"[0-9A-Z]{15}"
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as (" + QID_RE + r")$")


class TestTimeout(Exception):
    """A test ran past TEST_TIMEOUT."""


def read_json_lines(path):
    """The objects of a file another process appends JSON lines to; a
    last line still being written (no newline yet) is left out.  []
    when there is no file yet."""
    try:
        with open(path) as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split("\n")[:-1]
            if line.strip()]


def wait_for(predicate, timeout, what="condition", interval=0.02):
    """Poll predicate() until it returns a true value or the deadline
    passes; return the value or raise AssertionError naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def stop_process(proc, timeout):
    """End a process a test started: SIGTERM, then SIGKILL if it is
    still there after timeout seconds; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def wait_listening(proc, port, timeout, what):
    """Whether 127.0.0.1:port accepts a connection within timeout while
    proc runs; False when proc exits or time runs out."""
    def listens():
        if proc.poll() is not None:
            return "exited"
        try:
            socket.create_connection(("127.0.0.1", port),
                                     timeout=1.0).close()
        except OSError:
            return None
        return "ok"
    try:
        return wait_for(listens, timeout, what, interval=0.1) == "ok"
    except AssertionError:
        return False


_silent_dns = None


def silent_dns_server():
    """A "127.0.0.1:PORT" where a UDP socket is bound and never read:
    a DNS server that never answers, for the default configuration."""
    global _silent_dns
    if _silent_dns is None:
        _silent_dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _silent_dns.bind(("127.0.0.1", 0))
    return "127.0.0.1:%d" % _silent_dns.getsockname()[1]


# Ports handed out by free_port() come from below the kernel's ephemeral
# range, so no outgoing connection of another program takes one between
# the check and ternd's bind; and each is claimed machine-wide by an
# abstract Unix socket named after it, held until this process exits, so
# two suites running at once never pick the same one.
PORT_RANGE = (20000, 32000)
_port_claims = []


def free_port():
    """A loopback TCP port nobody listens on right now and no other test
    process of this machine has been given."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(*PORT_RANGE)
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind("\0tern-test-port-%d" % port)
        except OSError:
            claim.close()
            continue
        if port_is_free(port):
            _port_claims.append(claim)
            return port
        claim.close()
    raise AssertionError("no free port in %d-%d" % PORT_RANGE)


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def dot_stuff(content):
    """The DATA octets for content (bytes ending in CRLF): lines starting
    with "." get one more, then the terminating ".CRLF"."""
    if content and not content.endswith(b"\r\n"):
        raise ValueError("content must end in CRLF")
    out = []
    for line in content.split(b"\r\n")[:-1] if content else []:
        if line.startswith(b"."):
            line = b"." + line
        out.append(line + b"\r\n")
    return b"".join(out) + b".\r\n"


def parse_env(data):
    """Parse an ID.env (bytes) into (pairs, fields, rcpts): the ordered
    (key, value) pairs, a dict of the envelope-level keys (first value
    wins) and a list of dicts, one per "rcpt:" with the keys after it."""
    text = data.decode("utf-8")
    pairs = []
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        m = re.match(r"^([a-z0-9-]+):(?: (.*))?$", line)
        if not m:
            raise ValueError("line %d is not key: value: %r" % (n, line))
        pairs.append((m.group(1), m.group(2) or ""))
    fields = {}
    rcpts = []
    for key, value in pairs:
        if key == "rcpt":
            rcpts.append({"rcpt": value})
        elif key.startswith("rcpt-") or (rcpts and key in ("notify",
                                                          "orcpt")):
            if not rcpts:
                raise ValueError("%s before any rcpt" % key)
            rcpts[-1][key] = value
        else:
            fields.setdefault(key, value)
    return pairs, fields, rcpts


def run_ternd(args, timeout=15.0, cwd=None):
    """Run ternd with args to completion; return (rc, stdout, stderr) as
    text.  A ternd that does not exit in time is killed and fails."""
    try:
        p = subprocess.run([TERND] + list(args), cwd=cwd,
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("ternd %s did not exit within %.1fs; "
                             "stderr: %r" % (" ".join(args), timeout,
                                             e.stderr))
    err = p.stderr.decode("utf-8", "replace")
    m = SANITIZER_RE.search(err)
    if m:
        raise AssertionError("sanitizer report from ternd %s: %s"
                             % (" ".join(args), err[m.start():]))
    return (p.returncode, p.stdout.decode("utf-8", "replace"), err)


class Reply:
    """One SMTP reply: code, the raw lines ("250-PIPELINING") and the
    text of each line after the code and separator."""

    def __init__(self, raw):
        self.raw = raw
        self.code = int(raw[-1][:3])
        self.texts = [line[4:] for line in raw]

    @property
    def line(self):
        """The whole reply as one string, lines joined by newlines; for
        the usual one-line reply exactly what the server sent."""
        return "\n".join(self.raw)

    def __repr__(self):
        return "Reply(%r)" % self.line


class Closed(AssertionError):
    """The server closed the connection while a reply was expected."""


class Conn:
    """A raw SMTP client connection: send octets, read whole replies with
    a deadline.  Reply lines must end in CRLF."""

    def __init__(self, port, host="127.0.0.1", greet=True,
                 timeout=REPLY_TIMEOUT, nodelay=False, source=None):
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read more octets into buf; return False on EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _line(self, deadline):
        while b"\n" not in self.buf:
            if not self._fill(deadline):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        if not line.endswith(b"\r"):
            raise AssertionError("reply line without CRLF: %r" % line)
        return line[:-1].decode("utf-8", "surrogateescape")

    def reply(self, timeout=None):
        """Read one complete reply; fail on timeout, EOF or bad syntax."""
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        raw = []
        while True:
            try:
                line = self._line(deadline)
            except socket.timeout:
                raise AssertionError("timed out waiting for a reply; got "
                                     "%r, pending %r" % (raw, self.buf))
            if line is None:
                raise Closed("connection closed while reading a reply; "
                             "got %r, pending %r" % (raw, self.buf))
            if not re.match(r"^[2-5][0-9][0-9]([ -]|$)", line):
                raise AssertionError("bad reply line %r" % line)
            if raw and line[:3] != raw[0][:3]:
                raise AssertionError("reply code changed inside a "
                                     "multi-line reply: %r then %r"
                                     % (raw, line))
            raw.append(line)
            if len(line) == 3 or line[3] == " ":
                return Reply(raw)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def rest(self, timeout=None):
        """Read replies until the server closes; return them.  Fails when
        the connection stays open past the deadline."""
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        out = []
        while True:
            try:
                out.append(self.reply(deadline - time.monotonic()))
            except Closed:
                if self.buf:
                    raise AssertionError("partial reply before close: %r"
                                         % self.buf)
                return out

    def expect_eof(self, timeout=None):
        """Fail unless the server closes without sending anything more."""
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except socket.timeout:
            raise AssertionError("connection still open; pending %r"
                                 % self.buf)
        if self.buf:
            raise AssertionError("unexpected octets before close: %r"
                                 % self.buf)

    def no_reply(self, wait):
        """Fail if any octet arrives within wait seconds (used only to
        show silence, never to wait for a condition)."""
        deadline = time.monotonic() + wait
        try:
            if not self._fill(deadline):
                raise AssertionError("connection closed; pending %r"
                                     % self.buf)
        except socket.timeout:
            return
        raise AssertionError("unexpected octets: %r" % self.buf)

    def ehlo(self, name=HELO):
        r = self.cmd("EHLO " + name)
        if r.code != 250:
            raise AssertionError("EHLO refused: %r" % r)
        return r

    def mail(self, sender, rcpts, content, params="", stuff=True):
        """One whole transaction; return the final reply after DATA.
        Any refusal before the data fails."""
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, params))
        if r.code != 250:
            raise AssertionError("MAIL refused: %r" % r)
        for rcpt in rcpts:
            r = self.cmd("RCPT TO:<%s>" % rcpt)
            if r.code != 250:
                raise AssertionError("RCPT %s refused: %r" % (rcpt, r))
        r = self.cmd("DATA")
        if r.code != 354:
            raise AssertionError("DATA refused: %r" % r)
        self.send(dot_stuff(content) if stuff else content)
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def queued_id(reply):
    """The queue id of a 250 reply to DATA, or fail."""
    m = QUEUED_RE.match(reply.line)
    if not m:
        raise AssertionError("not a queued reply: %r" % reply)
    return m.group(1)


class Tern:
    """One ternd under test: temporary directory, spool, configuration
    and log; start, stop, signal, restart and look at what it did."""

    def __init__(self, main=None, smtp=None, args=(), start=True,
                 sections=None, env=None, local=None):
        self.dir = tempfile.mkdtemp(prefix="tern-e2e-")
        if os.geteuid() == 0:
            # Started as root, ternd drops to "nobody" (below): it must
            # still reach its spool and re-read its configuration.
            os.chmod(self.dir, 0o711)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self.conf = os.path.join(self.dir, "tern.ini")
        self.logfile = os.path.join(self.dir, "ternd.log")
        self.outfile = os.path.join(self.dir, "ternd.out")
        self.port = free_port()
        self.args = list(args)
        self.env = env  # ternd's environment; None: ours
        self.preexec = None  # run in the child before ternd (limits)
        self.main = {
            "hostname": HOSTNAME,
            "spool": self.spool,
            "log": "stderr",
            "debug": "yes",
            # Ignored unless ternd starts as root, as the tests do in CI.
            "user": "nobody",
        }
        # local.test and example.test are not local unless asked for
        # (local=...): mail to them from the relay client 127.0.0.1 is
        # relayed, and so stays queued (DNS never answers, below).
        self.smtp = {
            "listen": "127.0.0.1:%d" % self.port,
            "local_domains": "tern.test",
            "relay_networks": "127.0.0.0/8",
        }
        self.proc = None
        self.saved_log = None
        self.conns = []
        # Further sections: name -> {key: value}.  DNS goes to a loopback
        # socket that never answers, so no test ever asks a real resolver
        # and a relayed message stays queued unless a test says otherwise.
        self.sections = {"delivery": {"dns_servers": silent_dns_server()}}
        # Never the default mailbox root (/var/lib/tern/mail) of the host.
        self.mailboxes = os.path.join(self.dir, "mail")
        self.sections["local"] = {"mailboxes": self.mailboxes}
        if local:
            self._catchall(local)
        self.write_config(main, smtp, sections)
        if start:
            self.start()

    def write_config(self, main=None, smtp=None, sections=None):
        """Merge overrides (a value of None removes the key) and write the
        configuration file.  sections: overrides of further sections
        ({"delivery": {...}}), written after [smtp]."""
        pairs = [(self.main, main), (self.smtp, smtp)]
        for name, over in (sections or {}).items():
            pairs.append((self.sections.setdefault(name, {}), over))
        for section, over in pairs:
            for key, value in (over or {}).items():
                if value is None:
                    section.pop(key, None)
                else:
                    section[key] = str(value)
        lines = ["[main]"]
        lines += ["%s = %s" % kv for kv in self.main.items()]
        lines += ["", "[smtp]"]
        lines += ["%s = %s" % kv for kv in self.smtp.items()]
        for name, section in self.sections.items():
            lines += ["", "[%s]" % name]
            lines += ["%s = %s" % kv for kv in section.items()]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.conf, 0o644)

    def path(self, *parts):
        return os.path.join(self.spool, *parts)

    def _catchall(self, domains):
        """Make domains local, every address in them going to the one
        user sink@<first domain>, whose Maildir is sink_maildir()."""
        self.sink = "sink@%s" % domains[0]
        users = os.path.join(self.dir, "users")
        aliases = os.path.join(self.dir, "aliases")
        with open(users, "w") as f:
            f.write("%s -\n" % self.sink)
        with open(aliases, "w") as f:
            for d in domains:
                f.write("@%s: %s\n" % (d, self.sink))
        for name in (users, aliases):
            os.chmod(name, 0o644)
        self.smtp["local_domains"] = " ".join(domains)
        self.sections["local"] = {"users": users, "aliases": aliases,
                                  "mailboxes": self.mailboxes}

    def sink_maildir(self):
        local, domain = self.sink.split("@")
        return os.path.join(self.mailboxes, domain, local)

    def delivered(self, maildir=None):
        """The names of the messages in a Maildir's new/ (the sink's by
        default), sorted; [] while it does not exist."""
        new = os.path.join(maildir or self.sink_maildir(), "new")
        try:
            return sorted(os.listdir(new))
        except FileNotFoundError:
            return []

    def wait_delivered(self, n, maildir=None, timeout=None):
        """Wait until a Maildir holds n messages; return their names."""
        wait_for(lambda: len(self.delivered(maildir)) >= n,
                 timeout or REPLY_TIMEOUT, "%d messages delivered" % n)
        names = self.delivered(maildir)
        if len(names) != n:
            raise AssertionError("%d messages delivered, not %d"
                                 % (len(names), n))
        return names

    # --- process ---------------------------------------------------------

    def install_maildrop(self):
        """As root, make the spool's maildrop/ the way an installer does
        (ternd started as root only checks it): mode 3733, owned by the
        run-as user and group.  Left to ternd's checks when the user or
        group does not resolve."""
        path = os.path.join(self.spool, "maildrop")
        if os.geteuid() != 0 or os.path.lexists(path):
            return
        import grp
        import pwd
        try:
            pw = pwd.getpwnam(self.main.get("user", "tern"))
            gid = pw.pw_gid
            if self.main.get("group"):
                gid = grp.getgrnam(self.main["group"]).gr_gid
        except KeyError:
            return
        if pw.pw_uid == 0:
            return
        os.mkdir(path, 0o700)
        os.chown(path, pw.pw_uid, gid)
        os.chmod(path, 0o3733)

    def start(self, wait=True):
        if self.is_running():
            raise AssertionError("ternd already running")
        self.install_maildrop()
        out = open(self.outfile, "ab")
        err = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                [TERND, "-c", self.conf] + self.args, cwd=self.dir,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                env=self.env, preexec_fn=self.preexec)
        finally:
            out.close()
            err.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until the port accepts a connection and greets; the probe
        quits cleanly so it no longer counts against any limit.  When
        ternd logs here, its own "ready" comes first: a port another
        test's daemon took meanwhile would greet as well; and the end of
        its reading of the spool (until then it refuses the control
        verbs that move messages)."""
        deadline = time.monotonic() + timeout
        ready = re.compile(r"ternd\[%d\]: ready$(?s:.*)^.*ternd\[%d\]: "
                           r"queue: [0-9]+ messages read in " %
                           (self.proc.pid, self.proc.pid), re.M)
        while self.main.get("log") == "stderr":
            if self.proc.poll() is not None:
                raise AssertionError("ternd exited with %d during start"
                                     % self.proc.returncode)
            if ready.search(self.log()):
                break
            if time.monotonic() >= deadline:
                raise AssertionError("ternd did not log ready within "
                                     "%.0fs" % timeout)
            time.sleep(0.02)
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("ternd exited with %d during start"
                                     % self.proc.returncode)
            try:
                c = Conn(self.port, timeout=max(0.1, deadline -
                                                time.monotonic()))
            except (ConnectionRefusedError, socket.timeout, Closed):
                c = None
            if c is not None:
                try:
                    if not c.greeting.line.startswith("220 "):
                        raise AssertionError("bad greeting %r" % c.greeting)
                    r = c.cmd("QUIT")
                    if r.code != 221:
                        raise AssertionError("QUIT got %r" % r)
                    c.expect_eof()
                finally:
                    c.close()
                return
            if time.monotonic() >= deadline:
                raise AssertionError("ternd did not accept connections on "
                                     "port %d within %.0fs"
                                     % (self.port, timeout))
            time.sleep(0.02)

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if not self.is_running():
            raise AssertionError("ternd is not running")
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for ternd to exit; return its status."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("ternd did not exit within %.1fs"
                                 % timeout)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; return the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill9(self):
        self.signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)

    def restart(self):
        if self.is_running():
            rc = self.stop()
            if rc != 0:
                raise AssertionError("ternd exited %d on SIGTERM" % rc)
        self.start()

    def reload(self, timeout=REPLY_TIMEOUT, expect="configuration reloaded"):
        """SIGHUP and wait for expect (a regex) in the new log lines."""
        mark = self.log_mark()
        self.signal(signal.SIGHUP)
        return self.wait_log(expect, timeout, since=mark)

    def close(self):
        """Stop ternd if still running (SIGTERM, so a sanitizer build
        reports leaks; SIGKILL when that takes too long), keep the log,
        remove the files.  Fails if a sanitizer reported anything."""
        for c in self.conns:
            c.close()
        if self.is_running():
            self.proc.terminate()
            try:
                self.proc.wait(CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
        try:
            self.saved_log = self.log()
        except OSError:
            self.saved_log = ""
        shutil.rmtree(self.dir, ignore_errors=True)
        m = SANITIZER_RE.search(self.saved_log)
        if m:
            raise AssertionError("sanitizer report in the ternd log: %s"
                                 % self.saved_log[m.start():m.start() + 2000])

    # --- clients ---------------------------------------------------------

    def raw(self, greet=True, timeout=REPLY_TIMEOUT, nodelay=False,
            source=None):
        """A raw connection (from the loopback address source, if given);
        by default the 220 greeting is read and checked."""
        c = Conn(self.port, greet=greet, timeout=timeout, nodelay=nodelay,
                 source=source)
        self.conns.append(c)
        return c

    def session(self, ehlo=True):
        c = self.raw()
        if ehlo:
            c.ehlo()
        return c

    def send_message(self, sender, rcpts, content, params=""):
        """A whole session that sends one message; return its queue id."""
        c = self.session()
        try:
            qid = queued_id(c.mail(sender, rcpts, content, params))
            c.cmd("QUIT")
        finally:
            c.close()
        return qid

    # --- log -------------------------------------------------------------

    def log_bytes(self):
        if os.path.exists(self.logfile):
            with open(self.logfile, "rb") as f:
                return f.read()
        if self.saved_log is not None:
            return self.saved_log.encode("utf-8", "surrogateescape")
        return b""

    def log(self):
        return self.log_bytes().decode("utf-8", "surrogateescape")

    def log_mark(self):
        return len(self.log_bytes())

    def wait_log(self, regex, timeout=REPLY_TIMEOUT, since=0):
        """Wait for a log line matching regex (written after offset since);
        return the match."""
        rx = re.compile(regex, re.M)

        def look():
            text = self.log_bytes()[since:].decode("utf-8",
                                                    "surrogateescape")
            return rx.search(text)
        return wait_for(look, timeout, "log line /%s/" % regex)

    # --- spool -----------------------------------------------------------

    def queued(self):
        """Queue ids of the committed messages (those with an ID.env),
        sorted."""
        out = []
        qdir = self.path("queue")
        if not os.path.isdir(qdir):
            return out
        for sub in os.listdir(qdir):
            d = os.path.join(qdir, sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                if name.endswith(".env"):
                    out.append(name[:-4])
        return sorted(out)

    def queue_files(self):
        """Every file under queue/, as paths relative to it."""
        out = []
        qdir = self.path("queue")
        for root, _, files in os.walk(qdir):
            for name in files:
                if root == qdir and name == LAYOUT_MARK:
                    continue
                out.append(os.path.relpath(os.path.join(root, name), qdir))
        return sorted(out)

    def files(self, sub):
        """Every file under spool/sub, relative paths."""
        out = []
        top = self.path(sub)
        for root, _, files in os.walk(top):
            for name in files:
                if (sub == "queue" and root == top and
                        name == LAYOUT_MARK):
                    continue
                out.append(os.path.relpath(os.path.join(root, name), top))
        return sorted(out)

    def qpath(self, qid, ext):
        return self.path("queue", qdir(qid), "%s.%s" % (qid, ext))

    def read_msg(self, qid):
        with open(self.qpath(qid, "msg"), "rb") as f:
            return f.read()

    def read_env_bytes(self, qid):
        with open(self.qpath(qid, "env"), "rb") as f:
            return f.read()

    def read_env(self, qid):
        """(fields, rcpts) of a queued message's envelope."""
        _, fields, rcpts = parse_env(self.read_env_bytes(qid))
        return fields, rcpts


class TernTestCase(unittest.TestCase):
    """Base of every e2e test: a deadline per test, daemons and
    connections cleaned up even on failure, the daemon's log attached to
    a failure."""

    def setUp(self):
        if not TERND:
            self.fail("TERND is not set")
        self._terns = []
        signal.signal(signal.SIGALRM, self._alarm)
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)

    @staticmethod
    def _alarm(signum, frame):
        raise TestTimeout("test ran longer than %ds" % TEST_TIMEOUT)

    def tern(self, **kw):
        t = Tern(start=False, **{k: v for k, v in kw.items()
                                 if k != "start"})
        self._terns.append(t)
        self.addCleanup(t.close)
        if kw.get("start", True):
            t.start()
        return t

    def assertReply(self, reply, expected):
        """expected: the exact reply line, or a compiled regex."""
        if isinstance(expected, re.Pattern):
            self.assertRegex(reply.line, expected)
        else:
            self.assertEqual(reply.line, expected)

    def daemon_logs(self):
        out = []
        for t in getattr(self, "_terns", []):
            lines = t.log().splitlines()
            out.append("--- ternd log (%s, last %d of %d lines) ---\n%s"
                       % (t.dir, min(len(lines), 80), len(lines),
                          "\n".join(lines[-80:])))
        return "\n".join(out)


class TernResult(unittest.TextTestResult):
    """Attaches the daemon logs of a failed test to its report."""

    def _attach(self, entries, test):
        case = getattr(test, "test_case", test)
        if entries and isinstance(case, TernTestCase):
            t, text = entries[-1]
            logs = case.daemon_logs()
            if logs:
                entries[-1] = (t, text + "\n" + logs)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._attach(self.failures, test)

    def addError(self, test, err):
        super().addError(test, err)
        self._attach(self.errors, test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            if issubclass(err[0], test.failureException):
                self._attach(self.failures, subtest)
            else:
                self._attach(self.errors, subtest)


def main(module_name="__main__"):
    """Run a module's tests (or those named on the command line), print
    "N passed, N failed[, N skipped]" and exit: 0 when all passed, 1
    otherwise.  It never returns."""
    module = sys.modules[module_name]
    loader = unittest.TestLoader()
    if len(sys.argv) > 1:
        suite = loader.loadTestsFromNames(sys.argv[1:], module)
    else:
        suite = loader.loadTestsFromModule(module)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=TernResult)
    result = runner.run(suite)
    bad = set()
    for test, _ in result.failures + result.errors:
        bad.add(getattr(test, "test_case", test).id())
    for test in result.unexpectedSuccesses:
        bad.add(test.id())
    skipped = len(result.skipped)
    failed = len(bad)
    passed = max(0, result.testsRun - failed - skipped -
                 len(result.expectedFailures))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stdout.flush()
    print(line)
    sys.stdout.flush()
    sys.exit(1 if failed or result.testsRun == 0 else 0)
