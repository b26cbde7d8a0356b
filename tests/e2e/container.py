"""
container.py: a Debian system booted with systemd as PID 1 in a
container, for the tests that run tern the way an administrator does
(test_container.py: "make install"; test_package.py: the .deb).

The tree is made once with mmdebstrap (the host's release and mirror)
and cached in the build tree, under tests/container/; every boot lays a
tmpfs over it (systemd-nspawn --volatile=overlay), so a test starts
from the same clean system and leaves the cache as it was.  The
container has its own network namespace with only a loopback
interface, so ternd listens on port 25 there, as on a real server,
without taking a port of the host; the test speaks SMTP to it from
inside that namespace.  systemd-nspawn runs in a mount namespace of its
own with a private /run, so its runtime files never reach the host.

Only the process this module started is ever signalled, by its PID.
"""

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.environ.get("TERN_BUILDDIR", "")
SRCDIR = os.environ.get("TERN_SRCDIR", "")

# What the tree holds besides minbase: systemd, and every library ternd
# and ternctl are linked with.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "libevent-2.1-7",
            "libevent-openssl-2.1-7", "libc-ares2", "libinih1", "libssl3",
            "libcrypt1"]
TOOLS = ["mmdebstrap", "systemd-nspawn", "nsenter", "unshare"]

BOOTSTRAP_TIMEOUT = 900	# a cold cache downloads some 200 MB of packages
BOOT_TIMEOUT = 90
RUN_TIMEOUT = 60
STOP_TIMEOUT = 30


def _halt_with_parent():
    """In the child before exec: should the test itself die (killed by
    a timeout), systemd-nspawn gets SIGTERM and halts the container."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


def skip_reason():
    """Why the container tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to boot a container"
    if not BUILDDIR:
        return "TERN_BUILDDIR not set"
    return None


def host_release():
    """The host's Debian codename (the container runs what we built)."""
    with open("/etc/os-release") as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k == "VERSION_CODENAME" and v:
                return v.strip('"')
    raise AssertionError("no VERSION_CODENAME in /etc/os-release")


def host_mirror(release):
    """The Debian mirror the host's apt uses for release."""
    paths = []
    for d in ("/etc/apt/sources.list", "/etc/apt/sources.list.d"):
        if os.path.isdir(d):
            paths += [os.path.join(d, n) for n in sorted(os.listdir(d))]
        elif os.path.isfile(d):
            paths.append(d)
    for p in paths:
        try:
            with open(p) as f:
                text = f.read()
        except OSError:
            continue
        if p.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.split()
                if ("deb" in fields.get("types", []) and
                        release in fields.get("suites", []) and
                        "main" in fields.get("components", [])):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                w = line.split()
                if (len(w) >= 4 and w[0] == "deb" and release in w and
                        "main" in w):
                    return [x for x in w[1:] if not x.startswith("[")][0]
    return "http://deb.debian.org/debian"


def cached_tree():
    """The path of the cached tree, made when missing.  Concurrent
    tests wait for one another on a lock; a tree is only ever used once
    complete (made aside, then renamed)."""
    release = host_release()
    mirror = host_mirror(release)
    key = hashlib.sha256(("%s %s %s" % (release, mirror, " ".join(
        PACKAGES))).encode()).hexdigest()[:12]
    cache = os.path.join(BUILDDIR, "tests", "container")
    os.makedirs(cache, exist_ok=True)
    tree = os.path.join(cache, "%s-%s" % (release, key))
    with open(os.path.join(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(tree):
            return tree
        # Trees of other releases or package lists are stale.
        for name in os.listdir(cache):
            p = os.path.join(cache, name)
            if name.startswith(release + "-") or name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)
        tmp = tree + ".tmp"
        start = time.monotonic()
        p = subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                            "--include=" + ",".join(PACKAGES), release,
                            tmp, mirror], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=BOOTSTRAP_TIMEOUT)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AssertionError("mmdebstrap failed:\n%s%s"
                                 % (p.stdout, p.stderr[-3000:]))
        os.rename(tmp, tree)
        sys.stdout.write("container: made %s in %.0fs from %s\n"
                         % (tree, time.monotonic() - start, mirror))
        return tree


class Container:
    """One boot of the cached tree.  Use as a context manager, or call
    stop() in a finally: the container is always torn down."""

    def __init__(self, name):
        self.tree = cached_tree()
        self.dir = tempfile.mkdtemp(prefix="tern-container-")
        self.console = os.path.join(self.dir, "console.log")
        self.name = "%s-%d" % (name, os.getpid())
        self.proc = None
        self.pid = None		# the container's init, as the host sees it

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        script = ('mount -t tmpfs -o mode=0755 tmpfs /run && '
                  'exec systemd-nspawn --quiet --boot --register=no '
                  '--keep-unit --volatile=overlay --private-network '
                  '--console=pipe --machine="$1" -D "$2"')
        with open(self.console, "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh",
                 "-c", script, "sh", self.name, self.tree],
                stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_halt_with_parent)
        try:
            self._wait_booted()
        except BaseException:
            self.stop()
            raise

    def _init_pid(self):
        try:
            with open("/proc/%d/task/%d/children"
                      % (self.proc.pid, self.proc.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        for k in kids:
            try:
                with open("/proc/%s/comm" % k) as f:
                    if f.read().strip() == "systemd":
                        return int(k)
            except OSError:
                pass
        return None

    def _wait_booted(self):
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("systemd-nspawn exited with %d: %s"
                                     % (self.proc.returncode,
                                        self.console_text()))
            if self.pid is None:
                self.pid = self._init_pid()
            if self.pid is not None:
                p = self.run("systemctl", "is-system-running", check=False)
                state = p.stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.2)
        raise AssertionError("the container did not boot within %ds "
                             "(state %r): %s" % (BOOT_TIMEOUT, state,
                                                 self.console_text()))

    def console_text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        """Halt the container (SIGTERM to systemd-nspawn asks its init to
        power off), then SIGKILL it if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args, ns="-a"):
        return ["nsenter", "-t", str(self.pid), ns, "--"] + list(args)

    def run(self, *args, check=True, input=None, timeout=RUN_TIMEOUT,
            ns="-a"):
        """Run a program inside the container (every namespace, or the
        network one alone with ns="-n": then a host program)."""
        p = subprocess.run(self.cmd(*args, ns=ns), input=input,
                           capture_output=True, timeout=timeout,
                           text=input is None or isinstance(input, str))
        if check and p.returncode != 0:
            raise AssertionError("%s exited with %d:\n%s%s"
                                 % (" ".join(args), p.returncode, p.stdout,
                                    p.stderr))
        return p

    def path(self, path):
        """A path of the container's file system, as the host reaches
        it (through its init's root)."""
        return "/proc/%d/root/%s" % (self.pid, path.lstrip("/"))

    def copy_in(self, tree):
        """Copy a directory tree (a DESTDIR) onto the container's /."""
        tar = subprocess.Popen(["tar", "-C", tree, "-cf", "-", "."],
                               stdout=subprocess.PIPE)
        p = subprocess.run(self.cmd("tar", "-C", "/", "-xf", "-",
                                    "--no-same-owner", "--no-overwrite-dir",
                                    "--keep-directory-symlink"), stdin=tar.stdout,
                           capture_output=True, timeout=RUN_TIMEOUT)
        tar.stdout.close()
        tar.wait(RUN_TIMEOUT)
        if tar.returncode != 0 or p.returncode != 0:
            raise AssertionError("copying %s in failed: %s"
                                 % (tree, p.stderr))

    def write(self, path, text, mode=0o644):
        full = self.path(path)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def journal(self, unit):
        return self.run("journalctl", "--no-pager", "-o", "short",
                        "-u", unit).stdout

    def show(self, unit, *props):
        out = self.run("systemctl", "show", unit,
                       "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines()
                    if "=" in line)

    def smtp_send(self, sender, rcpt, subject, port=25):
        """Send one message to 127.0.0.1:port in the container's network
        namespace with Python's smtplib; return the reply to DATA."""
        script = (
            "import smtplib, sys\n"
            "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)\n"
            "s.ehlo('client.test')\n"
            "msg = ('From: <%s>\\r\\nTo: <%s>\\r\\nSubject: %s\\r\\n\\r\\n"
            "Hello from the host.\\r\\n' % tuple(sys.argv[2:5]))\n"
            "s.mail(sys.argv[2]); s.rcpt(sys.argv[3])\n"
            "code, text = s.data(msg.encode())\n"
            "print(code, text.decode())\n"
            "s.quit()\n")
        p = self.run(sys.executable, "-c", script, str(port), sender, rcpt,
                     subject, ns="-n")
        return p.stdout.strip()

    def wait_for(self, predicate, what, timeout=RUN_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %ds waiting for %s"
                                     % (timeout, what))
            time.sleep(0.2)

    def maildir_new(self, maildir):
        try:
            return sorted(os.listdir(self.path(os.path.join(maildir,
                                                            "new"))))
        except FileNotFoundError:
            return []
