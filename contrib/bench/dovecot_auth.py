#!/usr/bin/env python3
"""SMTP AUTH checked by Dovecot: logins per second, tern against Postfix.

One private Dovecot (the tests' harness, tests/e2e/dovecot.py) with an
auth client socket in its temporary directory serves both servers: a
ternd with auth_backend = dovecot, and a private Postfix instance with
smtpd_sasl_type = dovecot, both on loopback, AUTH allowed without TLS
(auth_plaintext, smtpd_tls_auth_only = no) so that the figure is the
authentication path and not the TLS handshake.  BENCH_CLIENTS parallel
clients (default 20) each log in over and over (connect, EHLO, AUTH
PLAIN with an initial response, QUIT) until BENCH_LOGINS logins
(default 2000) are done; a warm-up of BENCH_CLIENTS logins is not
timed.  Every login must get 235.  Prints logins per second for each
server and the ratio tern/Postfix.  Needs root (Dovecot, Postfix) and
a built ternd (BENCH_TERND, default build/src/ternd).
"""

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
os.environ.setdefault("TERND", os.environ.get(
    "BENCH_TERND", os.path.join(TOP, "build", "src", "ternd")))

import ternlib  # noqa: E402
from dovecot import Dovecot  # noqa: E402

USER, PASSWORD = "bench@bench.test", "Bench-pass-1"
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "20"))
LOGINS = int(os.environ.get("BENCH_LOGINS", "2000"))
TIMEOUT = 30.0


def die(msg):
    print("dovecot_auth: %s" % msg, file=sys.stderr)
    sys.exit(1)


def read_reply(f):
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        if line[3:4] != b"-":
            return line


def login(port, ir):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        f = s.makefile("rb")
        read_reply(f)
        s.sendall(b"EHLO bench.test\r\n")
        read_reply(f)
        s.sendall(b"AUTH PLAIN " + ir + b"\r\n")
        r = read_reply(f)
        s.sendall(b"QUIT\r\n")
        read_reply(f)
        return r.startswith(b"235 ")
    finally:
        s.close()


def run(port, n):
    """n logins over CLIENTS threads: (seconds, failures)."""
    ir = base64.b64encode(b"\0%s\0%s" % (USER.encode(),
                                           PASSWORD.encode()))
    lock = threading.Lock()
    left = [n]
    bad = [0]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                ok = login(port, ir)
            except OSError:
                ok = False
            if not ok:
                with lock:
                    bad[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start, bad[0]


def start_postfix(tmp, sock):
    port = ternlib.free_port()
    etc = os.path.join(tmp, "etc")
    for d in ("etc", "queue", "data"):
        os.makedirs(os.path.join(tmp, d))
    shutil.chown(os.path.join(tmp, "data"), "postfix")
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write("""compatibility_level = 3.6
queue_directory = {t}/queue
data_directory = {t}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks =
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_peername_lookup = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {sock}
smtpd_tls_auth_only = no
smtpd_tls_security_level = none
maillog_file_prefixes = {t}
maillog_file = {t}/maillog
syslog_name = postfix-bench
biff = no
""".format(t=tmp, sock=sock))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write("""127.0.0.1:%d inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
""" % port)
    subprocess.run(["postfix", "-c", etc, "start"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ternlib.wait_for(lambda: not ternlib.port_is_free(port), 15.0,
                     "Postfix to listen")
    return etc, port


def main():
    if os.geteuid() != 0:
        die("needs root (Dovecot and Postfix)")
    if not os.access(os.environ["TERND"], os.X_OK):
        die("no ternd at %s (set BENCH_TERND)" % os.environ["TERND"])
    home = tempfile.mkdtemp(prefix="tern-bench-dvauth-")
    os.chmod(home, 0o755)
    d = Dovecot([(USER, PASSWORD, 65534, 65534, home)],
                extra=["auth_mechanisms = plain login",
                       "auth_failure_delay = 0",
                       "service auth {", "  unix_listener bench-auth {",
                       "    mode = 0666", "  }", "}"])
    t = pf_etc = None
    try:
        d.start()
        sock = os.path.join(d.dir, "run", "bench-auth")
        t = ternlib.Tern(main={"debug": "no"}, smtp={
            "relay_networks": "192.0.2.0/24", "auth_plaintext": "yes",
            "auth_backend": "dovecot", "dovecot_auth_socket": sock,
            "max_auth_failure_rate": "0",
            "max_auth_failure_rate_per_user": "0"})
        ternlib.wait_for(lambda: "mechanisms:" in t.log(), 15.0,
                         "ternd to reach Dovecot")
        pf_etc, pf_port = start_postfix(os.path.join(home, "pf"), sock)
        results = {}
        for name, port in (("tern", t.port), ("postfix", pf_port)):
            run(port, CLIENTS)
            secs, bad = run(port, LOGINS)
            if bad:
                die("%s: %d of %d logins failed" % (name, bad, LOGINS))
            results[name] = LOGINS / secs
            print("%-8s %6d logins in %7.3f s  %8.1f logins/s" %
                  (name, LOGINS, secs, results[name]))
        print("ratio tern/postfix: %.2f (%d clients)" %
              (results["tern"] / results["postfix"], CLIENTS))
    finally:
        if pf_etc is not None:
            subprocess.run(["postfix", "-c", pf_etc, "stop"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if t is not None:
            t.close()
        d.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
