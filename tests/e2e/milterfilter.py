"""
milterfilter.py: content filters for tern's milter tests, run as their
own processes on loopback or a unix socket in a test's directory.

  python3 milterfilter.py SOCKET MODE EVENTS

SOCKET is as tern's configuration names it ("inet:127.0.0.1:PORT",
"inet6:[::1]:PORT", "unix:/path").  MODE:

  script    a python3-milter (libmilter) filter that logs every callback
            with its arguments and macros to EVENTS (one JSON object a
            line) and acts as the message's X-Test-Action field says at
            the end of the message; connect, HELO, MAIL and RCPT are
            refused for addresses and names that say so (see below).
  noreply   the same filter, negotiating no replies to headers, no
            end-of-headers and no DATA step (SMFIP_NR_HDR, SMFIP_NOEOH,
            SMFIP_NODATA), leading spaces kept (SMFIP_HDR_LEADSPC), and
            only j and {client_addr} at connect (SMFIF_SETSYMLIST).
  hang      negotiates, then never answers the end of the message.
  mute      takes the connection and never answers the negotiation.
  close     negotiates, then closes the connection at end of message.
  garbage   negotiates, then answers the end of message with bytes that
            are not a milter reply.
  oversize  negotiates, then answers MAIL with a packet longer than any
            filter may send.
  bigbody   negotiates, then replaces the body with 32768 octets.
  acceptclose  negotiates, accepts the session at connect and closes
            the connection.

The raw modes speak the protocol by hand (only the standard library), so
that they can misbehave on purpose.
"""

import json
import os
import socket
import struct
import sys
import threading
import time


def split_socket(spec):
    if spec.startswith("unix:"):
        return socket.AF_UNIX, spec[5:]
    family = socket.AF_INET
    rest = spec.split(":", 1)[1]
    if spec.startswith("inet6:"):
        family = socket.AF_INET6
    host, port = rest.rsplit(":", 1)
    if host.startswith("["):
        host = host[1:-1]
        family = socket.AF_INET6
    return family, (host, int(port))


def libmilter_socket(spec):
    """libmilter spells sockets inet:PORT@HOST, inet6:PORT@HOST."""
    if spec.startswith("unix:"):
        return spec
    family, (host, port) = split_socket(spec)
    kind = "inet6" if family == socket.AF_INET6 else "inet"
    return "%s:%d@%s" % (kind, port, host)


class Events:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def write(self, **kw):
        with self.lock:
            with open(self.path, "a") as f:
                f.write(json.dumps(kw) + "\n")


MACROS = ["j", "_", "{daemon_name}", "{daemon_addr}", "{client_addr}",
          "{client_name}", "{client_port}", "{client_ptr}", "{if_addr}",
          "{if_name}", "v", "i", "{auth_type}", "{auth_authen}",
          "{mail_addr}", "{mail_host}", "{mail_mailer}", "{rcpt_addr}",
          "{rcpt_host}", "{rcpt_mailer}", "{tls_version}", "{cipher}"]


def run_script(spec, events, noreply):
    import Milter

    class Script(Milter.Base):
        def __init__(self):
            self.action = None
            self.headers = []
            self.body_len = 0
            self.chunks = 0

        def macros(self):
            out = {}
            for m in MACROS:
                v = self.getsymval(m)
                if v is not None:
                    out[m] = v
            return out

        def connect(self, hostname, family, hostaddr):
            events.write(ev="connect", hostname=hostname,
                         addr=list(hostaddr) if hostaddr else None,
                         macros=self.macros())
            if self.getsymval("{client_addr}") == "127.0.0.3":
                self.setreply("554", "5.7.1", "Connection refused by filter")
                return Milter.REJECT
            return Milter.CONTINUE

        def hello(self, name):
            events.write(ev="helo", name=name, macros=self.macros())
            if name.startswith("reject."):
                self.setreply("550", "5.7.1", "HELO %s refused" % name)
                return Milter.REJECT
            return Milter.CONTINUE

        def envfrom(self, sender, *params):
            events.write(ev="mail", sender=sender, params=list(params),
                         macros=self.macros())
            if sender.startswith("<blocked@"):
                self.setreply("550", "5.7.1", "Sender blocked by filter")
                return Milter.REJECT
            if sender.startswith("<later@"):
                return Milter.TEMPFAIL
            if sender.startswith("<drop@"):
                return Milter.DISCARD
            return Milter.CONTINUE

        def envrcpt(self, rcpt, *params):
            events.write(ev="rcpt", rcpt=rcpt, params=list(params),
                         macros=self.macros())
            if rcpt.startswith("<nobody@"):
                self.setreply("550", "5.1.1", "No such user here")
                return Milter.REJECT
            if rcpt.startswith("<busy@"):
                self.setreply("452", "4.2.2", "Mailbox full, try later")
                return Milter.TEMPFAIL
            return Milter.CONTINUE

        def data(self):
            events.write(ev="data", macros=self.macros())
            return Milter.CONTINUE

        def header(self, name, value):
            self.headers.append([name, value])
            if name.lower() == "x-test-action":
                self.action = value.strip()
            return Milter.CONTINUE

        def eoh(self):
            events.write(ev="eoh", headers=self.headers,
                         macros=self.macros())
            return Milter.CONTINUE

        def body(self, chunk):
            self.chunks += 1
            self.body_len += len(chunk)
            if self.action == "skip":
                return Milter.SKIP
            return Milter.CONTINUE

        def eom(self):
            a = self.action
            events.write(ev="eom", action=a, body_len=self.body_len,
                         chunks=self.chunks, headers=self.headers,
                         macros=self.macros())
            if a == "accept":
                return Milter.ACCEPT
            if a == "reject":
                self.setreply("550", "5.7.1", "Message refused by filter")
                return Milter.REJECT
            if a == "multiline":
                self.setreply("550", "5.7.1", "First line of the refusal",
                              "Second line", "Last line")
                return Milter.REJECT
            if a == "tempfail":
                return Milter.TEMPFAIL
            if a == "tempfail-code":
                self.setreply("452", "4.3.1", "Filter out of space")
                return Milter.TEMPFAIL
            if a == "reject-plain":
                return Milter.REJECT
            if a == "discard":
                return Milter.DISCARD
            if a == "quarantine":
                self.quarantine("looks suspicious to the filter")
                return Milter.CONTINUE
            if a == "progress":
                self.progress()
                time.sleep(0.5)
                self.progress()
                self.addheader("X-Progressed", "yes")
                return Milter.CONTINUE
            if a == "modify-then-reject":
                self.addheader("X-Half", "applied")
                self.addrcpt("<half@example.test>")
                self.setreply("550", "5.7.1", "Changed my mind")
                return Milter.REJECT
            if a == "headers":
                self.addheader("X-Added", "added by the filter")
                self.addheader("X-Folded", "first line\n\tsecond line")
                self.addheader("X-Inserted", "at the top", 0)
                self.addheader("X-Second", "at index 1", 1)
                self.chgheader("Subject", 1, "changed by the filter")
                self.chgheader("X-Remove-Me", 1, "")
                self.chgheader("X-Twice", 2, "second one changed")
                self.chgheader("X-Missing", 1, "added by a change")
                return Milter.CONTINUE
            if a == "body":
                self.replacebody(b"A new body\r\n")
                self.replacebody(b"in two pieces\n")
                return Milter.CONTINUE
            if a == "envelope":
                self.chgfrom("<new-sender@example.org>", "RET=HDRS")
                self.addrcpt("<added@example.test>")
                self.addrcpt("<added-par@example.test>",
                             "NOTIFY=SUCCESS,FAILURE")
                self.delrcpt("<gone@example.test>")
                return Milter.CONTINUE
            if a == "delete-all":
                self.delrcpt("<only@example.test>")
                return Milter.CONTINUE
            return Milter.CONTINUE

        def abort(self):
            events.write(ev="abort")
            return Milter.CONTINUE

        def close(self):
            events.write(ev="close")
            return Milter.CONTINUE

    if noreply:
        class Quiet(Script):
            # Leading spaces on; replies to headers off; no EOH, no DATA.
            _protocol_mask = (0x1fffff & ~(Milter.P_NR_HDR |
                                           Milter.P_NOEOH |
                                           Milter.P_NODATA |
                                           Milter.P_HDR_LEADSPC))

            def negotiate(self, opts):
                r = Script.negotiate(self, opts)
                # Only these macros at connect (SMFIF_SETSYMLIST);
                # called on the context, as Milter.symlist passes bytes.
                self._ctx.setsymlist(Milter.M_CONNECT, "j {client_addr}")
                return r

            def header(self, name, value):
                Script.header(self, name, value)
                return Milter.NOREPLY

            def eoh(self):
                events.write(ev="eoh-called")
                return Milter.CONTINUE
        Milter.factory = Quiet
    else:
        Milter.factory = Script
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY |
                     Milter.ADDRCPT | Milter.ADDRCPT_PAR |
                     Milter.DELRCPT | Milter.QUARANTINE | Milter.CHGFROM |
                     Milter.SETSYMLIST)
    events.write(ev="ready")
    Milter.runmilter("terntest", libmilter_socket(spec), 60)


def packet(cmd, data=b""):
    return struct.pack("!I", len(data) + 1) + cmd + data


def read_packet(conn):
    head = b""
    while len(head) < 4:
        more = conn.recv(4 - len(head))
        if not more:
            return None, None
        head += more
    n = struct.unpack("!I", head)[0]
    data = b""
    while len(data) < n:
        more = conn.recv(n - len(data))
        if not more:
            return None, None
        data += more
    return data[:1], data[1:]


def serve_raw(conn, mode, events):
    try:
        if mode == "mute":
            # Takes the connection, never answers the negotiation.
            read_packet(conn)
            time.sleep(3600)
        while True:
            cmd, data = read_packet(conn)
            if cmd is None:
                events.write(ev="eof")
                return
            events.write(ev="cmd", cmd=cmd.decode("latin-1"))
            if cmd == b"O":
                # Version 6, every action, every step, no-reply none.
                conn.sendall(packet(b"O", struct.pack("!III", 6, 0x1ff, 0)))
            elif cmd in (b"D", b"A"):
                continue
            elif cmd == b"Q":
                return
            elif cmd == b"C" and mode == "acceptclose":
                # Accepts the whole session, then hangs up.
                conn.sendall(packet(b"a"))
                conn.close()
                events.write(ev="closed")
                return
            elif cmd == b"M" and mode == "oversize":
                conn.sendall(struct.pack("!I", 0x7fffffff) + b"c")
            elif cmd == b"E":
                if mode == "hang":
                    time.sleep(3600)
                elif mode == "close":
                    conn.close()
                    return
                elif mode == "bigbody":
                    for _ in range(4):
                        conn.sendall(packet(b"b", b"x" * 8190 + b"\r\n"))
                    conn.sendall(packet(b"c"))
                elif mode == "garbage":
                    conn.sendall(b"\x00\x00\x00\x05zjunk")
                else:
                    conn.sendall(packet(b"c"))
            else:
                conn.sendall(packet(b"c"))
    except OSError:
        return


def run_raw(spec, mode, events):
    family, addr = split_socket(spec)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen(16)
    events.write(ev="ready")
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve_raw, args=(conn, mode, events),
                         daemon=True).start()


def main():
    spec, mode, path = sys.argv[1:4]
    events = Events(path)
    if mode in ("script", "noreply"):
        run_script(spec, events, mode == "noreply")
    else:
        run_raw(spec, mode, events)


if __name__ == "__main__":
    main()
