"""
rspamd.py: a real rspamd (Debian's rspamd) started by a test in the
foreground, with a throw-away configuration under a temporary directory:
only the milter proxy worker, scanning itself (self_scan, no normal
worker, no controller, no Redis), listening on 127.0.0.1, with a DNS
server that never answers (no lookup leaves the machine; no rule that
needs one is loaded), the GTUBE test pattern rejected, and the
milter_headers module adding X-Spam-Status and friends to every message,
local and authenticated ones included.  Stopped by PID.

    r = Rspamd().start()
    r.socket        # "inet:127.0.0.1:PORT" for tern.ini
    r.stop()

Run as a script, it starts rspamd and prints the socket until SIGINT.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402

RSPAMD = os.environ.get("RSPAMD", "/usr/bin/rspamd")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0

# The GTUBE line, as rspamd (and SpamAssassin) recognise it.
GTUBE = ("XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL"
         "*C.34X")
# What rspamd's proxy answers to a message it rejects.
REJECT_TEXT = "Spam message rejected by the test rspamd"

CONFIG = """\
# Throw-away rspamd configuration written by tests/e2e/rspamd.py.
options {
    pidfile = "@DIR@/rspamd.pid";
    filters = "";
    cache_file = "@DIR@/db/symbols.cache";
    hs_cache_dir = "@DIR@/db/";
    dynamic_conf = "@DIR@/db/rspamd_dynamic";
    history_file = "@DIR@/db/rspamd.history";
    stats_file = "@DIR@/db/stats.ucl";
    tempdir = "@DIR@/tmp";
    url_tld = "@DIR@/tld.dat";
    local_addrs = [];
    task_timeout = 20s;
    gtube_patterns = "reject";
    dns {
        nameserver = ["@DNS@"];
        timeout = 1s;
        retransmits = 1;
    }
}
modules {
    path = "${PLUGINSDIR}";
}
logging {
    type = "file";
    filename = "@DIR@/rspamd.log";
    level = "info";
}
actions {
    reject = 15;
    add_header = 6;
    greylist = 4;
}
milter_headers {
    use = ["x-spam-status", "x-rspamd-server", "x-rspamd-queue-id",
           "x-spamd-result"];
    skip_local = false;
    skip_authenticated = false;
}
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:@PORT@";
    milter = yes;
    timeout = 60s;
    count = 1;
    max_retries = 1;
    discard_on_reject = false;
    quarantine_on_reject = false;
    reject_message = "@REJECT@";
    upstream "local" {
        default = yes;
        self_scan = yes;
    }
}
"""


def skip_reason():
    """Why rspamd cannot run here, naming the package, or None."""
    if not os.access(RSPAMD, os.X_OK):
        return "%s not found: install the Debian package rspamd" % RSPAMD
    if not os.path.isdir("/usr/share/rspamd/plugins"):
        return ("rspamd's plugins are missing: reinstall the Debian "
                "package rspamd")
    return None


class Rspamd:
    """rspamd's milter proxy on 127.0.0.1 with its own configuration,
    database, temporary and log directories in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-rspamd-")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "rspamd.conf")
        self.logfile = os.path.join(self.dir, "rspamd.log")
        self.port = None
        self.proc = None

    @property
    def socket(self):
        return "inet:127.0.0.1:%d" % self.port

    def config(self, port):
        for d in ("db", "tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        # A short public suffix list: the full one takes rspamd most of
        # a minute to compile on a busy machine, and none is needed here.
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("test\nexample\ncom\norg\nnet\n")
        text = (CONFIG.replace("@DIR@", self.dir)
                .replace("@PORT@", str(port))
                .replace("@DNS@", ternlib.silent_dns_server())
                .replace("@REJECT@", REJECT_TEXT))
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        last = ""
        for _ in range(3):
            port = ternlib.free_port()
            self.config(port)
            args = [RSPAMD, "-f", "-c", self.conf,
                    "--var=DBDIR=%s/db" % self.dir,
                    "--var=RUNDIR=%s" % self.dir,
                    "--var=LOGDIR=%s" % self.dir,
                    "--var=LOCAL_CONFDIR=%s" % self.dir]
            if os.geteuid() == 0:
                # Root: stay root (-i) rather than switch to _rspamd,
                # whose rights on the temporary directory we would
                # otherwise have to arrange.
                args.append("-i")
            out = open(os.path.join(self.dir, "rspamd.out"), "ab")
            try:
                self.proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=out, start_new_session=True)
            finally:
                out.close()
            if self._ready(port):
                self.port = port
                return self
            last = self.log()
            self._kill()
        # Nobody will call stop() on what did not start.
        shutil.rmtree(self.dir, ignore_errors=True)
        raise AssertionError("rspamd did not listen on 127.0.0.1: %s"
                             % last[-3000:])

    def _ready(self, port):
        return ternlib.wait_listening(self.proc, port, START_TIMEOUT,
                                      "rspamd to listen")

    def _kill(self):
        # The main process stops its workers on SIGTERM.
        ternlib.stop_process(self.proc, STOP_TIMEOUT)
        self.proc = None

    def halt(self):
        """Stop rspamd and keep its directory (for a later start or a
        look at its log)."""
        self._kill()

    def log(self):
        out = ""
        for name in ("rspamd.out", "rspamd.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    why = skip_reason()
    if why:
        sys.exit(why)
    r = Rspamd().start()
    print(r.socket, r.dir, flush=True)

    def interrupt(signo, frame):
        raise KeyboardInterrupt

    # rspamd runs in a session of its own: stop it on SIGTERM too.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        while r.proc.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        r.stop()
