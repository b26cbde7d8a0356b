"""
dovecot.py: a real Dovecot (Debian's dovecot-core and friends) started by
a test in the foreground, with a throw-away configuration under a
temporary directory (loopback only, no TLS, a passwd-file of users whose
homes are Maildirs), stopped by PID.  IMAP is always on, so readiness is
seen by its greeting; a test adds the protocols and listeners it needs
(the auth client socket, LMTP) with extra configuration lines, which
may name paths under Dovecot.dir.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import wait_for  # noqa: E402

DOVECOT = os.environ.get("DOVECOT", "/usr/sbin/dovecot")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def dovecot_version():
    """(major, minor) of the installed Dovecot, or None."""
    if not os.access(DOVECOT, os.X_OK):
        return None
    try:
        p = subprocess.run([DOVECOT, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = p.stdout.decode("ascii", "replace").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


class Dovecot:
    """A Dovecot IMAP server on 127.0.0.1 with its own configuration,
    base and state directories and log in a temporary directory.

    users: (login, password, uid, gid, maildir) tuples; each user's home
    is the Maildir itself, so mail is read from exactly where tern wrote
    it.  protocols: more than imap ("lmtp"); extra: configuration lines
    appended as they are, with @DIR@ replaced by the temporary directory
    (for sockets: "@DIR@/run/auth-client").  Stopped by PID."""

    def __init__(self, users, version=None, protocols=("imap",),
                 extra=()):
        self.users = list(users)
        self.version = version or dovecot_version()
        self.protocols = list(protocols)
        if "imap" not in self.protocols:
            self.protocols.insert(0, "imap")
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="tern-dovecot-")
        # The login and auth processes run as unprivileged users and
        # must reach their sockets under base_dir.
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.passwd = os.path.join(self.dir, "passwd")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.port = None
        self.proc = None

    def config(self, port):
        base = os.path.join(self.dir, "run")
        state = os.path.join(self.dir, "state")
        for d in (base, state):
            os.makedirs(d, exist_ok=True)
        if self.version >= (2, 4):
            head = ["dovecot_config_version = %d.%d.0" % self.version,
                    "dovecot_storage_version = %d.%d.0" % self.version,
                    "auth_allow_cleartext = yes",
                    "mail_driver = maildir",
                    "mail_path = ~"]
            passdb = ["passdb passwd-file {",
                      "  passwd_file_path = %s" % self.passwd, "}"]
            userdb = ["userdb passwd-file {",
                      "  passwd_file_path = %s" % self.passwd, "}"]
        else:
            head = ["disable_plaintext_auth = no",
                    "mail_location = maildir:~"]
            passdb = ["passdb {", "  driver = passwd-file",
                      "  args = scheme=PLAIN username_format=%%u %s"
                      % self.passwd, "}"]
            userdb = ["userdb {", "  driver = passwd-file",
                      "  args = username_format=%%u %s" % self.passwd, "}"]
        login = "dovenull"
        internal = "dovecot"
        for name in (login, internal):
            try:
                pwd.getpwnam(name)
            except KeyError:
                raise unittest.SkipTest("user %s missing: Dovecot is not "
                                        "installed the Debian way" % name)
        lines = head + [
            "protocols = %s" % " ".join(self.protocols),
            "listen = 127.0.0.1",
            "base_dir = %s" % base,
            "state_dir = %s" % state,
            "log_path = %s" % self.logfile,
            "info_log_path = %s" % self.logfile,
            "ssl = no",
            "auth_mechanisms = plain login",
            "default_internal_user = %s" % internal,
            "default_internal_group = %s" % internal,
            "default_login_user = %s" % login,
            "first_valid_uid = 1",
            "first_valid_gid = 1",
            "mail_fsync = never",
            "service imap-login {",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            "    port = %d" % port,
            "  }",
            "  inet_listener imaps {",
            "    port = 0",
            "  }",
            "}",
        ] + passdb + userdb + [x.replace("@DIR@", self.dir)
                               for x in self.extra]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.passwd, "w") as f:
            for login_name, password, uid, gid, maildir in self.users:
                f.write("%s:{PLAIN}%s:%d:%d::%s::\n"
                        % (login_name, password, uid, gid, maildir))
        os.chmod(self.passwd, 0o644)

    def start(self):
        last = ""
        for _ in range(3):
            port = ternlib.free_port()
            self.config(port)
            log = open(os.path.join(self.dir, "dovecot.out"), "ab")
            try:
                self.proc = subprocess.Popen(
                    [DOVECOT, "-F", "-c", self.conf],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            finally:
                log.close()
            if self._ready(port):
                self.port = port
                return self
            last = self.log()
            self._kill()
        raise AssertionError("Dovecot did not answer on 127.0.0.1: %s"
                             % last[-3000:])

    def _ready(self, port):
        def greets():
            if self.proc.poll() is not None:
                return "exited"
            try:
                s = socket.create_connection(("127.0.0.1", port),
                                             timeout=1.0)
            except OSError:
                return None
            try:
                data = s.recv(512)
            except OSError:
                data = b""
            finally:
                s.close()
            return "ok" if data.startswith(b"* OK") else None
        try:
            return wait_for(greets, START_TIMEOUT,
                            "Dovecot to greet") == "ok"
        except AssertionError:
            return False

    def _kill(self):
        ternlib.stop_process(self.proc, STOP_TIMEOUT)
        self.proc = None

    def log(self):
        out = ""
        for name in ("dovecot.out", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def skip_reason():
    if os.geteuid() != 0:
        return ("needs root: Dovecot must run as the owner of tern's "
                "Maildirs")
    if dovecot_version() is None:
        return ("%s not found: install the Debian package dovecot-imapd"
                % DOVECOT)
    if not os.access("/usr/lib/dovecot/imap", os.X_OK):
        return "Dovecot's imap binary is missing: install dovecot-imapd"
    return None


