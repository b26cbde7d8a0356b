"""
opendkim.py: a real OpenDKIM (Debian's opendkim, its key from
opendkim-genkey of opendkim-tools) started by a test in the foreground
(-f) with a throw-away configuration and a freshly generated key under a
temporary directory, signing mail of one test domain that comes from
127.0.0.1, listening on inet:PORT@127.0.0.1.  Signatures are checked
with python3-dkim against the test key's TXT record, without DNS.
Stopped by PID.

    k = OpenDKIM("sign.test").start()
    k.socket                # "inet:127.0.0.1:PORT" for tern.ini
    k.verify(message_bytes) # True when a DKIM-Signature verifies
    k.stop()
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402

OPENDKIM = os.environ.get("OPENDKIM", "/usr/sbin/opendkim")
GENKEY = os.environ.get("OPENDKIM_GENKEY", "/usr/sbin/opendkim-genkey")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SELECTOR = "tern"


def skip_reason():
    """Why OpenDKIM cannot run here, naming the package, or None."""
    if not os.access(OPENDKIM, os.X_OK):
        return "%s not found: install the Debian package opendkim" % OPENDKIM
    if not os.access(GENKEY, os.X_OK):
        return ("%s not found: install the Debian package opendkim-tools"
                % GENKEY)
    try:
        import dkim  # noqa: F401
    except ImportError:
        return "no Python module dkim: install the Debian package python3-dkim"
    return None


class OpenDKIM:
    """OpenDKIM in signing mode for one domain, on 127.0.0.1."""

    def __init__(self, domain, selector=SELECTOR, extra=()):
        self.domain = domain
        self.selector = selector
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="tern-opendkim-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "opendkim.conf")
        self.key = os.path.join(self.dir, selector + ".private")
        self.port = None
        self.proc = None
        self._genkey()

    def _genkey(self):
        p = subprocess.run([GENKEY, "-b", "1024", "-D", self.dir,
                            "-d", self.domain, "-s", self.selector],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("opendkim-genkey failed: %s"
                                 % p.stdout.decode("utf-8", "replace"))
        with open(os.path.join(self.dir, self.selector + ".txt")) as f:
            zone = f.read()
        # The record as opendkim-genkey writes it for a zone file: one or
        # more quoted strings inside parentheses, joined here.
        self.txt = "".join(re.findall(r'"([^"]*)"', zone)).encode("ascii")
        if b"p=" not in self.txt:
            raise AssertionError("no public key in %r" % zone)

    @property
    def socket(self):
        return "inet:127.0.0.1:%d" % self.port

    def config(self, port):
        lines = [
            "Syslog no",
            "Background no",
            "Mode s",
            "Domain %s" % self.domain,
            "Selector %s" % self.selector,
            "KeyFile %s" % self.key,
            "Socket inet:%d@127.0.0.1" % port,
            "PidFile %s" % os.path.join(self.dir, "opendkim.pid"),
            "Canonicalization relaxed/simple",
            "InternalHosts 127.0.0.1",
            "RequireSafeKeys false",
            "On-NoSignature accept",
            "On-InternalError tempfail",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines + self.extra) + "\n")

    def start(self):
        last = ""
        for _ in range(3):
            port = ternlib.free_port()
            self.config(port)
            out = open(os.path.join(self.dir, "opendkim.out"), "ab")
            try:
                self.proc = subprocess.Popen(
                    [OPENDKIM, "-f", "-x", self.conf],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            finally:
                out.close()
            if self._ready(port):
                self.port = port
                return self
            last = self.log()
            self._kill()
        # Nobody will call stop() on what did not start.
        shutil.rmtree(self.dir, ignore_errors=True)
        raise AssertionError("OpenDKIM did not listen on 127.0.0.1: %s"
                             % last[-3000:])

    def _ready(self, port):
        return ternlib.wait_listening(self.proc, port, START_TIMEOUT,
                                      "OpenDKIM to listen")

    def _kill(self):
        ternlib.stop_process(self.proc, STOP_TIMEOUT)
        self.proc = None

    def dnsfunc(self, name, timeout=5):
        """The TXT record of the test key, for dkim.verify."""
        if isinstance(name, bytes):
            name = name.decode("ascii")
        if name.rstrip(".") == "%s._domainkey.%s" % (self.selector,
                                                     self.domain):
            return self.txt
        return None

    def verify(self, message):
        """Whether the first DKIM-Signature of message (bytes, CRLF or LF
        line ends) verifies against the test key."""
        import dkim
        message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        return dkim.verify(message, dnsfunc=self.dnsfunc)

    def log(self):
        try:
            with open(os.path.join(self.dir, "opendkim.out"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)
