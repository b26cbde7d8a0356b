"""
faultlib.py: what the fault benchmarks (kill9.py, fullspool.py,
slowloris.py) share: a ternd started on loopback in a temporary directory
with a generated configuration, a silent DNS socket, an SMTP sink that
counts the messages it receives by their X-Bench-Seq header, and a small
SMTP client.  Only the Python standard library; nothing outside the
temporary directory and loopback is touched, and every process started
is stopped by its pid.
"""

import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TERND = os.environ.get("TERND", os.path.join(TOP, "build", "src", "ternd"))
TERNCTL = os.environ.get("TERNCTL", os.path.join(os.path.dirname(TERND),
                                                 "ternctl"))
HOSTNAME = "mx.bench.test"
SEQ_RE = re.compile(rb"^X-Bench-Seq: ([0-9]+)\r?$", re.M)
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-Z]+)")


def say(fmt, *args):
    sys.stdout.write("bench: " + (fmt % args if args else fmt) + "\n")
    sys.stdout.flush()


def free_port():
    """A port the kernel says is free now (loopback only)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def silent_dns():
    """A UDP socket on loopback that is never read: lookups never end."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


class Sink:
    """An SMTP server on loopback that accepts everything and counts the
    X-Bench-Seq of each message (duplicates too)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seqs = {}
        self.messages = 0
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                self.connection.settimeout(120)
                w = self.wfile
                w.write(b"220 sink.bench.test ESMTP\r\n")
                try:
                    while True:
                        line = self.rfile.readline(4096)
                        if not line:
                            return
                        verb = line[:4].upper()
                        if verb in (b"EHLO", b"HELO"):
                            w.write(b"250-sink.bench.test\r\n"
                                    b"250-PIPELINING\r\n250 8BITMIME\r\n")
                        elif verb == b"DATA":
                            w.write(b"354 go\r\n")
                            data = []
                            while True:
                                d = self.rfile.readline(1 << 20)
                                if not d or d == b".\r\n":
                                    break
                                data.append(d)
                            if not d:
                                return
                            sink.got(b"".join(data))
                            w.write(b"250 2.0.0 Ok\r\n")
                        elif verb == b"QUIT":
                            w.write(b"221 2.0.0 Bye\r\n")
                            return
                        else:
                            w.write(b"250 2.0.0 Ok\r\n")
                except OSError:
                    return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def got(self, data):
        m = SEQ_RE.search(data)
        with self.lock:
            self.messages += 1
            if m:
                n = int(m.group(1))
                self.seqs[n] = self.seqs.get(n, 0) + 1

    def snapshot(self):
        with self.lock:
            return dict(self.seqs), self.messages

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Ternd:
    """One ternd in a temporary directory (spool may be given)."""

    def __init__(self, tmp, smtp=None, delivery=None, spool=None,
                 nofile=None):
        self.tmp = tmp
        self.spool = spool or os.path.join(tmp, "spool")
        os.makedirs(self.spool, exist_ok=True)
        os.chmod(self.spool, 0o700)
        self.port = free_port()
        self.conf = os.path.join(tmp, "tern.ini")
        self.logfile = os.path.join(tmp, "ternd.log")
        self.proc = None
        self.nofile = nofile
        self.dns = silent_dns()
        main = {"hostname": HOSTNAME, "spool": self.spool, "log": "stderr"}
        if os.geteuid() == 0:
            main["user"] = "nobody"
            os.chmod(tmp, 0o711)
        s = {"listen": "127.0.0.1:%d" % self.port,
             "local_domains": "local.bench.test",
             "relay_networks": "127.0.0.0/8",
             "max_connections_per_ip": "0"}
        s.update(smtp or {})
        d = {"dns_servers": "127.0.0.1:%d" % self.dns.getsockname()[1]}
        d.update(delivery or {})
        # Never the host's default mailbox root.
        lo = {"mailboxes": os.path.join(tmp, "mail")}
        with open(self.conf, "w") as f:
            for name, sec in (("main", main), ("smtp", s), ("delivery", d),
                              ("local", lo)):
                f.write("[%s]\n" % name)
                for k, v in sec.items():
                    f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf, 0o644)
        if os.geteuid() == 0:
            os.chown(self.spool, 65534, 65534)
            # As an installer leaves it: ternd started as root only
            # checks maildrop/.
            maildrop = os.path.join(self.spool, "maildrop")
            if not os.path.isdir(maildrop):
                os.mkdir(maildrop)
            os.chown(maildrop, 65534, 65534)
            os.chmod(maildrop, 0o3733)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self, timeout=60):
        mark = len(self.log())
        err = open(self.logfile, "ab")

        def limits():
            if self.nofile:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   (self.nofile, self.nofile))
        self.proc = subprocess.Popen([TERND, "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err,
                                     preexec_fn=limits)
        err.close()
        ready = re.compile(r"ternd\[%d\]: ready$" % self.proc.pid, re.M)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if ready.search(self.log()[mark:]):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("ternd exited with %d; see %s"
                                   % (self.proc.returncode, self.logfile))
            time.sleep(0.05)
        raise RuntimeError("ternd not ready in %ds" % timeout)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(30)
        self.dns.close()

    def ctl(self, *args):
        r = subprocess.run([TERNCTL, "-c", self.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def stats(self):
        rc, out, _ = self.ctl("stats")
        if rc != 0:
            return {}
        return dict(line.split(": ", 1) for line in out.splitlines()
                    if ": " in line)

    def queued(self):
        """Queue ids with an envelope in queue/ (committed)."""
        out = []
        q = os.path.join(self.spool, "queue")
        for sub in os.listdir(q) if os.path.isdir(q) else []:
            if not os.path.isdir(os.path.join(q, sub)):
                continue	# the layout mark
            for name in os.listdir(os.path.join(q, sub)):
                if name.endswith(".env"):
                    out.append(name[:-4])
        return out


class Client:
    """A blocking SMTP client with a timeout on every read."""

    def __init__(self, port, timeout=30, source=None):
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\n" not in self.buf:
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("closed; got %r" % lines)
                self.buf += d
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return line[:3], lines[-1]

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        self.sock.close()


def message(seq, size):
    body = b"".join(b"%077d\r\n" % i for i in range(max(1, size // 79)))
    return (b"From: <bench@client.bench.test>\r\nTo: <r@relay.bench.test>\r\n"
            b"Subject: bench %d\r\nX-Bench-Seq: %d\r\n\r\n" % (seq, seq) +
            body)


def send(port, seq, size=2048, rcpt="r@relay.bench.test", timeout=30):
    """One whole session sending one message: (code, text) of the reply
    to the end of data, or of the first command refused; ("---", why) when
    the connection failed."""
    c = None
    try:
        c = Client(port, timeout)
        code, text = c.reply()
        if code != "220":
            return code, text
        for line in ("EHLO client.bench.test",
                     "MAIL FROM:<bench@client.bench.test>",
                     "RCPT TO:<%s>" % rcpt):
            code, text = c.cmd(line)
            if code[0] != "2":
                return code, text
        code, text = c.cmd("DATA")
        if code != "354":
            return code, text
        c.sock.sendall(message(seq, size) + b".\r\n")
        code, text = c.reply()
        try:
            c.cmd("QUIT")
        except OSError:
            pass
        return code, text
    except (OSError, ConnectionError) as e:
        return "---", str(e)
    finally:
        if c is not None:
            c.close()


def tmpdir(prefix):
    base = os.environ.get("BENCH_TMPDIR", "/var/tmp")
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def remove(tmp, keep):
    if keep:
        say("kept %s", tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
