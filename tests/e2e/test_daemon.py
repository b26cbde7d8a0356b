"""
test_daemon.py: ternd as a program: command-line flags, configuration
checking and its error messages, the built-in configuration, SIGHUP
reload, SIGTERM shutdown, and what goes into the log (the message lines
and the escaping of peer text).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ternlib  # noqa: E402
from ternlib import (HOSTNAME, HELO, CONFIG_KEYS, TernTestCase,  # noqa: E402
                     queued_id, run_ternd)

SHUTTING_DOWN = "421 4.3.2 %s Service shutting down" % HOSTNAME
MSG = b"Subject: daemon test\r\n\r\nHello.\r\n"
STAMP_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ternd\[%d\]: "


def parse_ini(test, text):
    """The sections and keys of ternd -n output; fails on anything that
    is not a section header, a key = value line or a comment."""
    sections = {}
    cur = None
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        m = re.match(r"^\[([a-z]+)\]$", s)
        if m:
            cur = sections.setdefault(m.group(1), {})
            continue
        m = re.match(r"^([a-z_0-9]+) = ?(.*)$", line)
        test.assertIsNotNone(m, "not a key = value line: %r" % line)
        test.assertIsNotNone(cur, "key outside a section: %r" % line)
        test.assertNotIn(m.group(1), cur, "key printed twice: %r" % line)
        cur[m.group(1)] = m.group(2)
    return sections


def default_config_files():
    """Where ternd looks for its default file: the contract's path and
    the one the build was configured with."""
    paths = {"/etc/tern/tern.ini", "/usr/local/etc/tern/tern.ini"}
    mk = os.path.join(os.path.dirname(os.path.dirname(ternlib.TERND)),
                      "Makefile")
    try:
        with open(mk) as f:
            text = f.read()
        var = dict(re.findall(r"^(prefix|sysconfdir) = (.*)$", text, re.M))
        etc = var.get("sysconfdir", "").replace("${prefix}",
                                                var.get("prefix", ""))
        if etc:
            paths.add(os.path.join(etc, "tern", "tern.ini"))
    except OSError:
        pass
    return sorted(paths)


def can_connect(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return False
    s.close()
    return True


class CommandLine(TernTestCase):

    def test_version(self):
        rc, out, err = run_ternd(["-V"])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "ternd %s\n" % ternlib.VERSION)

    def test_check_good_file(self):
        t = self.tern(start=False, smtp={"max_recipients": "7",
                                          "bare_newlines": "normalize"})
        rc, out, err = run_ternd(["-n", "-c", t.conf])
        self.assertEqual(rc, 0, err)
        ini = parse_ini(self, out)
        for section, keys in CONFIG_KEYS.items():
            self.assertIn(section, ini, out)
            for key in keys:
                self.assertIn(key, ini[section],
                              "[%s] %s missing from -n output" % (section,
                                                                  key))
        self.assertEqual(ini["main"]["hostname"], HOSTNAME)
        self.assertEqual(ini["main"]["spool"], t.spool)
        self.assertEqual(ini["main"]["log"], "stderr")
        self.assertEqual(ini["main"]["debug"], "yes")
        self.assertEqual(ini["smtp"]["listen"], "127.0.0.1:%d" % t.port)
        self.assertEqual(ini["smtp"]["max_recipients"], "7")
        self.assertEqual(ini["smtp"]["bare_newlines"], "normalize")
        self.assertEqual(ini["smtp"]["local_domains"], "tern.test")
        self.assertEqual(ini["smtp"]["relay_networks"], "127.0.0.0/8")
        # -n only checks: nothing listens.
        self.assertFalse(can_connect(t.port))
        # What -n prints is itself a configuration meaning the same.
        again = os.path.join(t.dir, "printed.ini")
        with open(again, "w") as f:
            f.write(out)
        rc, out2, err = run_ternd(["-n", "-c", again])
        self.assertEqual(rc, 0, err)
        self.assertEqual(parse_ini(self, out2), ini)

    def bad_file(self, t, section, key, value):
        """A file with one bad line; return (path, its line number)."""
        lines = ["[main]", "hostname = %s" % HOSTNAME, "spool = %s" % t.spool,
                 "log = stderr"]
        smtp = ["[smtp]", "listen = 127.0.0.1:%d" % t.port,
                "local_domains = local.test"]
        bad = "%s = %s" % (key, value)
        if section == "main":
            lines.append(bad)
            n = len(lines)
            lines += smtp
        else:
            lines += smtp
            lines.append(bad)
            n = len(lines)
        path = os.path.join(t.dir, "bad-%s.ini" % key)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path, n

    def error_re(self, path, line, section, key):
        return re.compile(re.escape(path) + r":%d: \[%s\] %s: \S"
                          % (line, section, re.escape(key)))

    def test_check_unknown_key(self):
        t = self.tern(start=False)
        path = os.path.join(t.dir, "bad.ini")
        with open(path, "w") as f:
            f.write("[main]\nhostname = %s\nbogus_key = 1\nspool = %s\n"
                    "[smtp]\nlisten = 127.0.0.1:%d\n"
                    % (HOSTNAME, t.spool, t.port))
        rc, out, err = run_ternd(["-n", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, self.error_re(path, 3, "main", "bogus_key"))

    def test_check_bad_values(self):
        t = self.tern(start=False)
        cases = [
            ("main", "log", "printer"),
            ("main", "debug", "perhaps"),
            ("main", "spool", "relative/spool"),
            ("main", "shutdown_timeout", "soon"),
            ("main", "hostnme", "typo.example"),
            ("smtp", "max_recipients", "abc"),
            ("smtp", "max_recipients", "-1"),
            ("smtp", "max_errors", "3x"),
            ("smtp", "max_message_size", "10Q"),
            ("smtp", "command_timeout", "5 parsecs"),
            ("smtp", "data_timeout", "-1s"),
            ("smtp", "bare_newlines", "sometimes"),
            ("smtp", "relay_networks", "10.0.0.0/33"),
            ("smtp", "relay_networks", "300.0.0.0/8"),
            ("smtp", "listen", "not-an-address"),
            ("smtp", "listen", "127.0.0.1:99999"),
            ("smtp", "max_connections_per_ip", "many"),
        ]
        for section, key, value in cases:
            with self.subTest(key=key, value=value):
                path, n = self.bad_file(t, section, key, value)
                rc, out, err = run_ternd(["-n", "-c", path])
                self.assertEqual(rc, 1, err)
                self.assertRegex(err, self.error_re(path, n, section, key))

    def test_check_unknown_section(self):
        t = self.tern(start=False)
        path = os.path.join(t.dir, "bad.ini")
        with open(path, "w") as f:
            f.write("[main]\nhostname = %s\nspool = %s\n[bogus]\nx = 1\n"
                    % (HOSTNAME, t.spool))
        rc, out, err = run_ternd(["-n", "-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn(path, err)

    def test_start_with_bad_file(self):
        t = self.tern(start=False)
        path = os.path.join(t.dir, "bad.ini")
        with open(path, "w") as f:
            f.write("[main]\nhostname = %s\nbogus_key = 1\nspool = %s\n"
                    "[smtp]\nlisten = 127.0.0.1:%d\n"
                    % (HOSTNAME, t.spool, t.port))
        rc, out, err = run_ternd(["-c", path])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, self.error_re(path, 3, "main", "bogus_key"))
        self.assertFalse(can_connect(t.port))

    def test_start_with_missing_file(self):
        t = self.tern(start=False)
        path = os.path.join(t.dir, "missing.ini")
        rc, out, err = run_ternd(["-c", path])
        self.assertEqual(rc, 1, err)
        self.assertIn(path, err)

    def test_unknown_flag(self):
        rc, out, err = run_ternd(["-Z"])
        self.assertNotEqual(rc, 0)
        self.assertNotEqual(err.strip(), "")


class BuiltIn(TernTestCase):
    """No -c and no default file: the built-in configuration."""

    def setUp(self):
        super().setUp()
        present = [p for p in default_config_files() if os.path.exists(p)]
        if present:
            self.skipTest("a default configuration file exists: %s"
                          % present[0])
        self.cwd = tempfile.mkdtemp(prefix="tern-e2e-builtin-")
        self.addCleanup(shutil.rmtree, self.cwd, True)
        # As root, ternd drops to nobody, who must reach tern-data/.
        os.chmod(self.cwd, 0o711)

    def test_builtin_check(self):
        rc, out, err = run_ternd(["-n"], cwd=self.cwd)
        self.assertEqual(rc, 0, err)
        ini = parse_ini(self, out)
        self.assertIn("127.0.0.1:2525", ini["smtp"]["listen"].split())
        for section, keys in CONFIG_KEYS.items():
            for key in keys:
                self.assertIn(key, ini[section])
        # Safe by default: no open relay.
        self.assertNotIn(ini["smtp"]["relay_networks"], ("0.0.0.0/0",
                                                         "::/0"))

    def test_builtin_runs(self):
        if not ternlib.port_is_free(2525):
            self.skipTest("127.0.0.1:2525 is in use")
        errfile = os.path.join(self.cwd, "stderr")
        err = open(errfile, "wb")
        try:
            p = subprocess.Popen([ternlib.TERND], cwd=self.cwd,
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err)
        finally:
            err.close()

        def cleanup():
            if p.poll() is None:
                p.kill()
                p.wait(10)
        self.addCleanup(cleanup)

        def greeted():
            if p.poll() is not None:
                with open(errfile, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                raise AssertionError("ternd exited with %d: %s"
                                     % (p.returncode, text))
            try:
                return ternlib.Conn(2525)
            except (OSError, ternlib.Closed):
                return None
        c = ternlib.wait_for(greeted, ternlib.START_TIMEOUT,
                             "a greeting on 127.0.0.1:2525")
        try:
            self.assertRegex(c.greeting.line, r"^220 \S+ ESMTP tern$")
            self.assertEqual(c.cmd("EHLO " + HELO).code, 250)
            # No users, but postmaster: delivered under the cwd.
            queued_id(c.mail("a@example.org", ["postmaster@localhost"],
                             MSG))
            self.assertEqual(c.cmd("QUIT").code, 221)
        finally:
            c.close()
        mail = os.path.join(self.cwd, "tern-data", "mail")

        def delivered():
            found = []
            for top, _, files in os.walk(mail):
                if os.path.basename(top) == "new":
                    found += [os.path.join(top, f) for f in files]
            return found
        box = ternlib.wait_for(delivered, ternlib.REPLY_TIMEOUT,
                               "a message in postmaster's Maildir")
        self.assertEqual(len(box), 1)
        self.assertRegex(box[0], r"/mail/[^/]+/postmaster/new/[^/]+$")
        # The built-in configuration keeps its data under the cwd.
        self.assertNotEqual(sorted(os.listdir(self.cwd)), ["stderr"])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(ternlib.STOP_TIMEOUT), 0)


class Logging(TernTestCase):

    def test_start_lines(self):
        t = self.tern()
        log = t.log()
        pid = t.proc.pid
        # Each may carry a detail in parentheses.
        for text in ("ternd %s starting" % ternlib.VERSION,
                     "listening on 127.0.0.1:%d" % t.port, "ready"):
            self.assertRegex(log, re.compile(
                "^" + STAMP_RE % pid + re.escape(text) + r"( \(.*\))?$",
                re.M))
        for line in log.splitlines():
            self.assertRegex(line, "^" + STAMP_RE % pid)

    def test_message_lines(self):
        t = self.tern()
        c = t.session()
        qid = queued_id(c.mail("sender@example.org",
                               ["a@local.test", "b@example.test"], MSG))
        size = os.path.getsize(t.qpath(qid, "msg"))
        t.wait_log(r": %s: client=\[127\.0\.0\.1\], helo=%s, "
                   r"session=[0-9A-F]{8}$"
                   % (qid, re.escape(HELO)))
        t.wait_log(r": %s: from=<sender@example\.org>, size=%d, nrcpt=2 "
                   r"\(queue active\)$" % (qid, size))
        c.close()
        qid = t.send_message("", ["a@local.test"], MSG)
        size = os.path.getsize(t.qpath(qid, "msg"))
        t.wait_log(r": %s: from=<>, size=%d, nrcpt=1 \(queue active\)$"
                   % (qid, size))

    def test_peer_text_escaped(self):
        t = self.tern(smtp={"max_errors": "100"})
        c = t.raw()
        r = c.cmd(b"EHLO ctl\x01host\x1b[31m")
        if r.code == 250:
            qid = queued_id(c.mail("s@example.org", ["a@local.test"], MSG))
            # Escaped, or replaced by "?" before it was ever stored.
            t.wait_log(r": %s: client=\[127\.0\.0\.1\], "
                       r"helo=ctl(\\x01|\?)host(\\x1b|\?)\[31m, "
                       r"session=[0-9A-F]{8}$" % qid)
        else:
            c.ehlo()
        c.cmd(b"FROB \x02\x7f\x1b[2J")
        c.cmd(b"MAIL FROM:<\"a\x03b\"@example.org>")
        c.cmd(b"RCPT TO:<a\x1b@local.test>")
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.expect_eof()
        self.assertEqual(t.stop(), 0)
        log = t.log_bytes()
        raw = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", log)
        self.assertIsNone(raw, "raw control octet in log: %r" %
                          (log[max(0, raw.start() - 60):raw.end() + 20]
                           if raw else b""))
        self.assertRegex(log, rb"\\x01|\\x02|\\x03|\\x1b",
                         "no escaped peer text in the log")

    def test_peer_8bit_text_escaped(self):
        # Octets that are not UTF-8, and C1 controls (U+0080..U+009F, such
        # as CSI) written as UTF-8, reach no log line as they came.
        t = self.tern(smtp={"max_errors": "100"})
        c = t.session()
        for line in (b"FROB \x9b31m\xff\xfe", b"FROB \xc2\x9b2J\xc2\x85",
                     b"VRFY \xe2\x82", b"EHLO bad\x9bhost"):
            c.cmd(line)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.expect_eof()
        self.assertEqual(t.stop(), 0)
        log = t.log_bytes()
        try:
            text = log.decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail("octets that are not UTF-8 in the log: %r"
                      % log[max(0, e.start - 60):e.end + 20])
        c1 = re.search("[\x80-\x9f]", text)
        self.assertIsNone(c1, "C1 control in the log: %r" %
                          (text[max(0, c1.start() - 60):c1.end() + 20]
                           if c1 else ""))

    def test_debug_flag_logs_to_stderr(self):
        t = self.tern(main={"log": "none", "debug": "no"}, args=["-d"])
        t.send_message("s@example.org", ["a@local.test"], MSG)
        log = t.log()
        self.assertIn("ready", log)
        self.assertRegex(log, r"from=<s@example\.org>")

    def test_log_none(self):
        t = self.tern(main={"log": "none", "debug": "no"})
        t.send_message("s@example.org", ["a@local.test"], MSG)
        self.assertEqual(t.stop(), 0)
        self.assertEqual(t.log(), "")


class Signals(TernTestCase):

    def test_sighup_reload(self):
        t = self.tern(smtp={"max_recipients": "5",
                            "max_message_size": "20000"})
        a = t.session()
        self.assertEqual(a.cmd("MAIL FROM:<s@example.org>").code, 250)
        for i in range(2):
            self.assertEqual(a.cmd("RCPT TO:<r%d@local.test>" % i).code, 250)
        t.write_config(smtp={"max_recipients": "2",
                             "max_message_size": "30000"})
        t.reload()
        # The open session lives on and can finish its message.
        self.assertReply(a.cmd("NOOP"), "250 2.0.0 Ok")
        self.assertEqual(a.cmd("DATA").code, 354)
        a.send(ternlib.dot_stuff(MSG))
        qid = queued_id(a.reply())
        _, rcpts = t.read_env(qid)
        self.assertEqual(len(rcpts), 2)
        # A new session sees the new limits.
        b = t.raw()
        self.assertIn("250-SIZE 30000", b.cmd("EHLO " + HELO).raw)
        self.assertEqual(b.cmd("MAIL FROM:<s@example.org>").code, 250)
        for i in range(2):
            self.assertEqual(b.cmd("RCPT TO:<r%d@local.test>" % i).code, 250)
        self.assertReply(b.cmd("RCPT TO:<r2@local.test>"),
                         "452 4.5.3 Error: too many recipients")

    def test_sighup_broken_file(self):
        t = self.tern(smtp={"max_recipients": "5"})
        a = t.session()
        with open(t.conf) as f:
            good = f.read()
        with open(t.conf, "w") as f:
            f.write("[main]\nhostname = %s\nbogus_key = 1\nspool = %s\n"
                    "log = stderr\n[smtp]\nlisten = 127.0.0.1:%d\n"
                    "max_recipients = 1\n" % (HOSTNAME, t.spool, t.port))
        mark = t.log_mark()
        t.signal(signal.SIGHUP)
        t.wait_log(r"bogus_key", since=mark)
        t.wait_log(r"(?i)\b(keep|keeping|kept)\b|old configuration",
                   since=mark)
        self.assertNotRegex(t.log()[mark:], r"configuration reloaded")
        self.assertTrue(t.is_running())
        self.assertReply(a.cmd("NOOP"), "250 2.0.0 Ok")
        # Still serving, and with the old limits.
        b = t.session()
        self.assertEqual(b.cmd("MAIL FROM:<s@example.org>").code, 250)
        for i in range(3):
            self.assertEqual(b.cmd("RCPT TO:<r%d@local.test>" % i).code, 250)
        # A good file again is taken.
        with open(t.conf, "w") as f:
            f.write(good)
        t.reload()
        self.assertReply(a.cmd("NOOP"), "250 2.0.0 Ok")

    def test_sigterm_idle_sessions(self):
        t = self.tern(main={"shutdown_timeout": "5s"})
        a = t.session()
        b = t.raw()
        start = time.monotonic()
        t.signal(signal.SIGTERM)
        for c in (a, b):
            self.assertReply(c.reply(), SHUTTING_DOWN)
            c.expect_eof()
        self.assertEqual(t.wait_exit(5 + 2), 0)
        self.assertLess(time.monotonic() - start, 5 + 2)
        self.assertFalse(can_connect(t.port))

    def test_sigterm_open_transaction_not_in_data(self):
        # Only a transaction in DATA may hold the daemon; a session that
        # waits for its next command is idle even after MAIL and RCPT.
        t = self.tern(main={"shutdown_timeout": "10s"})
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<a@local.test>").code, 250)
        start = time.monotonic()
        t.signal(signal.SIGTERM)
        self.assertReply(c.reply(timeout=5), SHUTTING_DOWN)
        c.expect_eof()
        self.assertEqual(t.wait_exit(5), 0)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(t.queued(), [])

    def test_sigterm_during_data(self):
        t = self.tern(main={"shutdown_timeout": "10s"})
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<a@local.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: shutdown\r\n\r\nfirst part\r\n")
        t.signal(signal.SIGTERM)
        try:
            ternlib.wait_for(lambda: not can_connect(t.port), 3,
                             "the listener to close")
            stopped_listening = True
        except AssertionError:
            stopped_listening = False
        self.assertTrue(t.is_running(), "ternd exited during DATA")
        c.send(b"second part\r\n.\r\n")
        qid = queued_id(c.reply())
        rest = [r.line for r in c.rest(timeout=5)]
        self.assertIn(rest, ([], [SHUTTING_DOWN]))
        self.assertEqual(t.wait_exit(5), 0)
        self.assertTrue(stopped_listening,
                        "still accepting connections after SIGTERM")
        self.assertEqual(t.queued(), [qid])
        msg = t.read_msg(qid)
        self.assertTrue(msg.endswith(b"first part\r\nsecond part\r\n"))

    def test_sigterm_data_past_shutdown_timeout(self):
        t = self.tern(main={"shutdown_timeout": "1s"})
        c = t.session()
        self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<a@local.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: slow\r\n\r\nnever finished\r\n")
        start = time.monotonic()
        t.signal(signal.SIGTERM)
        self.assertEqual(t.wait_exit(1 + 4), 0)
        self.assertLess(time.monotonic() - start, 1 + 4)
        for r in c.rest(timeout=2):
            self.assertEqual(r.code, 421, r)
        self.assertEqual(t.queued(), [])


if __name__ == "__main__":
    ternlib.main()
