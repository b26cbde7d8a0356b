/*
 * mta_session.c: one outbound SMTP connection (RFC 5321, client side).
 * It owns its bufferevent, copies of its parameters, the reply being read
 * and the cursors of the transaction it runs; the transaction, its
 * recipients and the message file stay the caller's.  It tries its
 * addresses in order until one greets it, then runs one transaction at a
 * time, pipelined (RFC 2920) when the peer allows.
 *
 * A peer that offers CHUNKING gets the message as one BDAT chunk (RFC
 * 3030), its octets as they are in the file, once every RCPT has its
 * reply; otherwise it goes after DATA, dot-stuffed.
 *
 * It never sends 8-bit octets to a peer that did not offer 8BITMIME: such
 * a message is read once before MAIL to see whether its 8-bit parts can
 * be made quoted-printable (mime.c), and is either converted on the way
 * out or failed for good.
 *
 * LMTP (RFC 2033) is a mode of the same session: LHLO instead of EHLO
 * (refused, there is no HELO to fall back to), no STARTTLS, no AUTH, no
 * BDAT, a peer that may well share our host name, and after the final
 * dot one reply per recipient accepted at RCPT, in their order (section
 * 4.2), each deciding for its recipient alone.  A recipient so delivered
 * is marked final: it reached its mailbox, and the DSN it may be owed is
 * "delivered", ours to send (NOTIFY is not passed on).
 *
 * It never blocks the loop except to read the message file, never sends
 * credentials without TLS, never logs them, and never calls its owner
 * back from inside a call the owner made: every callback and the final
 * free go through one deferred event, run from the top of the loop.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "direct.h"
#include "dns.h"
#include "log.h"
#include "mime.h"
#include "mta_session.h"
#include "sessinfo.h"
#include "smtp_parse.h"
#include "tls.h"
#include "util.h"

/* Stop reading the message file while this much waits to be sent... */
#define MTA_BODY_HIWAT		(256 * 1024)
/* ...and read on once the output has drained below this. */
#define MTA_BODY_LOWAT		(64 * 1024)
/* One read of the message file. */
#define MTA_BODY_CHUNK		(64 * 1024)
/* Lines in one reply; an EHLO reply has a dozen. */
#define MTA_REPLY_LINES_MAX	128
/* How long a QUIT may take before we just close, in ms. */
#define MTA_QUIT_TIMEOUT	1000
/* Octets of an address we put into a command. */
#define MTA_ADDR_MAX		512
/* Octets of a user name or a password. */
#define MTA_AUTH_MAX		255
/* "host[ip]" */
#define MTA_PEER_SIZE		(DNS_HOST_SIZE + INET6_ADDRSTRLEN + 2)
/*
 * Octets of a command line: RFC 3461 section 4 lets ENVID and RET lengthen
 * MAIL, and NOTIFY and ORCPT lengthen RCPT, by some 600 octets.
 */
#define MTA_CMD_MAX		(SMTP_TEXT_LINE_MAX + 600)
/* Octets of the xtext of ENVID and of ORCPT (RFC 3461 4.4, 4.2). */
#define MTA_ENVID_MAX		100
#define MTA_ORCPT_MAX		500

/*
 * The state is what the session waits for: the connect, a reply to the
 * command it names, the TLS handshake, room to send the body, or nothing
 * (READY).  With pipelining, commands may be sent ahead of the state (the
 * send cursor); the state is always the reply cursor.
 */
enum mta_state {
	MTA_STATE_INIT,
	MTA_STATE_CONNECT,
	MTA_STATE_GREETING,
	MTA_STATE_EHLO,
	MTA_STATE_HELO,
	MTA_STATE_LHLO,
	MTA_STATE_STARTTLS,
	MTA_STATE_TLS,
	MTA_STATE_AUTH,		/* AUTH PLAIN with its response, AUTH LOGIN */
	MTA_STATE_AUTH_USER,	/* LOGIN: the user name was sent */
	MTA_STATE_AUTH_PASS,	/* LOGIN: the password was sent */
	MTA_STATE_READY,
	MTA_STATE_RSET,
	MTA_STATE_MAIL,
	MTA_STATE_RCPT,
	MTA_STATE_DATA,
	MTA_STATE_BODY,
	MTA_STATE_EOM,		/* the final dot was sent */
	MTA_STATE_BDAT,		/* the whole message was sent with BDAT */
	MTA_STATE_QUIT,
	MTA_STATE_CLOSED,
};

/* Session flags. */
#define MTA_F_TLS		0x01	/* TLS is up on this connection */
#define MTA_F_NO_TLS		0x02	/* TLS failed at this address */
#define MTA_F_READY		0x04	/* was ready: failures close */
#define MTA_F_QUIT		0x08	/* the owner quit: no callbacks */
#define MTA_F_AUTH_LOGIN	0x10	/* AUTH LOGIN, not PLAIN */
#define MTA_F_EOM_IGNORE	0x20	/* dot sent with no rcpt accepted */

/* What the peer's EHLO reply offered. */
#define MTA_EXT_PIPELINING	0x01
#define MTA_EXT_SIZE		0x02
#define MTA_EXT_8BITMIME	0x04
#define MTA_EXT_SMTPUTF8	0x08
#define MTA_EXT_STARTTLS	0x10
#define MTA_EXT_AUTH		0x20
#define MTA_EXT_AUTH_PLAIN	0x40
#define MTA_EXT_AUTH_LOGIN	0x80
#define MTA_EXT_DSN		0x100
#define MTA_EXT_CHUNKING	0x200

/* Work done from the top of the loop, most important last. */
enum mta_defer {
	MTA_DEFER_NONE,
	MTA_DEFER_NEXT,		/* this address failed: try the next */
	MTA_DEFER_READY,	/* call ready() */
	MTA_DEFER_DONE,		/* call done() */
	MTA_DEFER_CLOSED,	/* call done() if need be, closed(), free */
	MTA_DEFER_FREE,		/* free without a word */
};

/* What follows the reply to QUIT. */
enum mta_after {
	MTA_AFTER_NEXT,		/* try the next address */
	MTA_AFTER_CLOSE,	/* report closed() */
	MTA_AFTER_FREE,		/* the owner quit */
};

/* One outbound connection; owned by its creator until closed() returns
 * or mta_session_quit() is called, then by itself. */
struct mta_session {
	struct event_base	*base;
	struct direct		 direct;	/* writes on a plain socket */
	struct mta_session_cb	 cb;
	void			*arg;
	struct event		*ev;		/* deferred work */
	enum mta_defer		 defer;

	/* The parameters, copied. */
	char			*helo;
	char			*name;
	char			*auth_user;
	char			*auth_pass;
	struct dns_target	*targets;
	size_t			 ntargets;
	uint16_t		 port;
	int			 lmtp;
	int			 starttls;
	int			 tls_verify;
	uint64_t		 connect_timeout;
	uint64_t		 reply_timeout;
	uint64_t		 data_timeout;

	/* The connection to targets[cur]. */
	size_t			 cur;
	struct bufferevent	*bev;
	enum mta_state		 state;
	int			 flags;
	int			 ext;
	uint64_t		 ext_size;	/* 0: no limit */
	char			 peer[MTA_PEER_SIZE];	/* host[ip] */
	char			 relay[DLV_RELAY_SIZE];	/* host[ip]:port */

	/* The reply being read, made printable, lines joined by spaces. */
	int			 reply_code;
	size_t			 reply_lines;
	size_t			 reply_len;
	char			 reply[DLV_TEXT_SIZE];
	char			 reply_esc[DLV_STATUS_SIZE];
	char			 peer_name[DNS_HOST_SIZE];

	/* The transaction in flight (the caller's) and its cursors. */
	struct dlv_tx		*tx;
	unsigned		 ntx;		/* begun on this connection */
	enum mta_state		 snd;		/* next command to send */
	size_t			 snd_rcpt;
	size_t			 rcv_rcpt;	/* RCPT the next reply is for */
	size_t			 unanswered;
	size_t			 naccepted;
	size_t			 eom_rcpt;	/* LMTP: the next dot reply's
						   recipient, at the earliest */
	int			 mail_failed;
	uint64_t		 body_off;
	int			 body_bol;	/* at the start of a line */
	char			 body_tail[2];	/* last octets sent */
	struct mime_conv	*mime;		/* 8-bit parts made 7-bit */
	int			 bdat;		/* the body goes with BDAT */
	uint64_t		 bdat_size;	/* octets announced */

	/* For ternctl sessions. */
	time_t			 opened;	/* monotonic seconds */
	struct sessinfo_bytes	 bytes;

	/* Why it ends. */
	struct dlv_status	 last;		/* last address's failure */
	struct dlv_status	 st;		/* why the session closed */
	enum mta_after		 after_quit;
};

/* The timeout that guards each state (RFC 5321 4.5.3.2). */
enum mta_timeout {
	MTA_TIMEOUT_NONE,
	MTA_TIMEOUT_CONNECT,
	MTA_TIMEOUT_REPLY,
	MTA_TIMEOUT_DATA,
	MTA_TIMEOUT_QUIT,
};

static void	mta_reply_greeting(struct mta_session *);
static void	mta_reply_ehlo(struct mta_session *);
static void	mta_reply_starttls(struct mta_session *);
static void	mta_reply_auth(struct mta_session *);
static void	mta_reply_rset(struct mta_session *);
static void	mta_reply_mail(struct mta_session *);
static void	mta_reply_rcpt(struct mta_session *);
static void	mta_reply_data(struct mta_session *);
static void	mta_reply_eom(struct mta_session *);
static void	mta_reply_quit(struct mta_session *);
static void	mta_reply_idle(struct mta_session *);

/*
 * Per state: its name in traces, what a reply answers and what we were
 * doing when the peer went away (Postfix's wording), the read timeout,
 * whether we read, and the reply handler.
 */
static const struct mta_state_entry {
	const char		*name;
	const char		*reply_to;
	const char		*doing;
	enum mta_timeout	 timeout;
	int			 reads;
	void			(*reply)(struct mta_session *);
} mta_states[] = {
	[MTA_STATE_INIT] = { "init", NULL, NULL, MTA_TIMEOUT_NONE, 0, NULL },
	[MTA_STATE_CONNECT] = { "connect", NULL, "connecting",
	    MTA_TIMEOUT_CONNECT, 0, NULL },
	[MTA_STATE_GREETING] = { "greeting", "initial greeting",
	    "receiving the initial server greeting", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_greeting },
	[MTA_STATE_EHLO] = { "ehlo", "EHLO command",
	    "performing the EHLO handshake", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_ehlo },
	[MTA_STATE_HELO] = { "helo", "HELO command",
	    "performing the HELO handshake", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_ehlo },
	[MTA_STATE_LHLO] = { "lhlo", "LHLO command",
	    "performing the LHLO handshake", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_ehlo },
	[MTA_STATE_STARTTLS] = { "starttls", "STARTTLS command",
	    "sending STARTTLS", MTA_TIMEOUT_REPLY, 1, mta_reply_starttls },
	/* The handshake needs its read events: never disable them. */
	[MTA_STATE_TLS] = { "tls", NULL, "performing the TLS handshake",
	    MTA_TIMEOUT_REPLY, 1, NULL },
	[MTA_STATE_AUTH] = { "auth", "AUTH command", "performing SASL "
	    "authentication", MTA_TIMEOUT_REPLY, 1, mta_reply_auth },
	[MTA_STATE_AUTH_USER] = { "auth-user", "AUTH command",
	    "performing SASL authentication", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_auth },
	[MTA_STATE_AUTH_PASS] = { "auth-pass", "AUTH command",
	    "performing SASL authentication", MTA_TIMEOUT_REPLY, 1,
	    mta_reply_auth },
	/* Read while idle, so a peer that hangs up is noticed at once. */
	[MTA_STATE_READY] = { "ready", "no command", "idle", MTA_TIMEOUT_NONE,
	    1, mta_reply_idle },
	[MTA_STATE_RSET] = { "rset", "RSET command", "sending RSET",
	    MTA_TIMEOUT_REPLY, 1, mta_reply_rset },
	[MTA_STATE_MAIL] = { "mail", "MAIL FROM command", "sending MAIL FROM",
	    MTA_TIMEOUT_REPLY, 1, mta_reply_mail },
	[MTA_STATE_RCPT] = { "rcpt", "RCPT TO command", "sending RCPT TO",
	    MTA_TIMEOUT_REPLY, 1, mta_reply_rcpt },
	[MTA_STATE_DATA] = { "data", "DATA command", "sending DATA command",
	    MTA_TIMEOUT_REPLY, 1, mta_reply_data },
	[MTA_STATE_BODY] = { "body", NULL, "sending message body",
	    MTA_TIMEOUT_NONE, 0, NULL },
	[MTA_STATE_EOM] = { "eom", "end of DATA command", "sending end of "
	    "data -- message may be sent more than once", MTA_TIMEOUT_DATA, 1,
	    mta_reply_eom },
	[MTA_STATE_BDAT] = { "bdat", "BDAT command", "sending end of data -- "
	    "message may be sent more than once", MTA_TIMEOUT_DATA, 1,
	    mta_reply_eom },
	[MTA_STATE_QUIT] = { "quit", "QUIT command", "sending QUIT",
	    MTA_TIMEOUT_QUIT, 1, mta_reply_quit },
	[MTA_STATE_CLOSED] = { "closed", NULL, NULL, MTA_TIMEOUT_NONE, 0,
	    NULL },
};

/* EHLO keywords we use; the rest are ignored. */
static void	mta_ehlo_size(struct mta_session *, const char *);
static void	mta_ehlo_auth(struct mta_session *, const char *);

static const struct mta_ehlo_entry {
	const char	*keyword;
	int		 ext;
	void		(*param)(struct mta_session *, const char *);
} mta_ehlo_keywords[] = {
	{ "PIPELINING", MTA_EXT_PIPELINING, NULL },
	{ "SIZE", MTA_EXT_SIZE, mta_ehlo_size },
	{ "8BITMIME", MTA_EXT_8BITMIME, NULL },
	{ "SMTPUTF8", MTA_EXT_SMTPUTF8, NULL },
	{ "CHUNKING", MTA_EXT_CHUNKING, NULL },
	{ "STARTTLS", MTA_EXT_STARTTLS, NULL },
	{ "AUTH", MTA_EXT_AUTH, mta_ehlo_auth },
	{ "DSN", MTA_EXT_DSN, NULL },
};

static SSL_CTX	*mta_tls_ctx;

/* Scratch space for one reply line and one chunk of the message. */
static char	mta_line[SMTP_TEXT_LINE_MAX + 1];
static char	mta_body_buf[MTA_BODY_CHUNK];

static void	mta_read_cb(struct bufferevent *, void *);
static void	mta_write_cb(struct bufferevent *, void *);
static void	mta_event_cb(struct bufferevent *, short, void *);
static void	mta_defer_cb(evutil_socket_t, short, void *);
static void	mta_connect(struct mta_session *);
static void	mta_next(struct mta_session *);
static void	mta_close(struct mta_session *, const struct dlv_status *,
		    int);
static void	mta_process(struct mta_session *);
static void	mta_tx_send(struct mta_session *);
static void	mta_body_fill(struct mta_session *);
static void	mta_body_mime_cb(void *, const char *, size_t);
static void	mta_bdat_start(struct mta_session *);

/* The TLS client context, built once for every session. */
int
mta_session_init(char **cause)
{
	if (mta_tls_ctx != NULL)
		return 0;
	if ((mta_tls_ctx = tls_client_ctx(cause)) == NULL)
		return -1;
	return 0;
}

void
mta_session_shutdown(void)
{
	if (mta_tls_ctx != NULL)
		tls_ctx_free(mta_tls_ctx);
	mta_tls_ctx = NULL;
}

/*
 * The length of an enhanced status code (RFC 3463) at the start of text,
 * "5.1.1" followed by a space or the end, or 0 when there is none.
 */
static size_t
mta_esc_len(const char *p)
{
	size_t	i, n;
	int	part;

	if (p[0] != '2' && p[0] != '4' && p[0] != '5')
		return 0;
	i = 1;
	for (part = 0; part < 2; part++) {
		if (p[i++] != '.')
			return 0;
		for (n = 0; p[i] >= '0' && p[i] <= '9'; n++)
			i++;
		if (n == 0 || n > 3)
			return 0;
	}
	if (p[i] != '\0' && p[i] != ' ')
		return 0;
	return i;
}

/*
 * The outcome the reply just read gives: 2xx OK, 4xx TEMP, 5xx PERM, and
 * anything else (a 3xx where none belongs) TEMP.  The status is the
 * reply's enhanced code when its class agrees, else class.0.0.
 */
static void
mta_status_reply(struct mta_session *s, struct dlv_status *st)
{
	const char	*reply_to = mta_states[s->state].reply_to;
	char		 prefix[MTA_PEER_SIZE + 32], suffix[64];
	int		 class = s->reply_code / 100, avail;

	if (class == 2)
		st->result = DLV_OK;
	else if (class == 5)
		st->result = DLV_PERM;
	else
		st->result = DLV_TEMP;
	if (s->reply_esc[0] != '\0' && s->reply_esc[0] - '0' == class)
		util_strlcpy(st->status, s->reply_esc, sizeof st->status);
	else if (class == 2 || class == 4 || class == 5)
		snprintf(st->status, sizeof st->status, "%d.0.0", class);
	else
		util_strlcpy(st->status, "4.5.0", sizeof st->status);

	snprintf(prefix, sizeof prefix, "%s said: %d ", s->peer,
	    s->reply_code);
	snprintf(suffix, sizeof suffix, " (in reply to %s)",
	    reply_to != NULL ? reply_to : "unknown command");
	avail = (int)(sizeof st->text - 1 - strlen(prefix) - strlen(suffix));
	if (avail < 0)
		avail = 0;
	snprintf(st->text, sizeof st->text, "%s%.*s%s", prefix, avail,
	    s->reply, suffix);
	snprintf(st->reply, sizeof st->reply, "%d %.*s", s->reply_code,
	    (int)sizeof st->reply - 8, s->reply);
}

/* Set the outcome of every recipient that has none yet. */
static void
mta_tx_set_rest(struct dlv_tx *tx, const struct dlv_status *st)
{
	size_t	i;

	for (i = 0; i < tx->nrcpts; i++) {
		if (tx->rcpts[i].st.result == DLV_NONE)
			tx->rcpts[i].st = *st;
	}
}

static void
mta_set_timeouts(struct mta_session *s)
{
	struct timeval	rtv, wtv;
	uint64_t	rms = 0, wms = s->reply_timeout;

	switch (mta_states[s->state].timeout) {
	case MTA_TIMEOUT_NONE:
		rms = 0;
		break;
	case MTA_TIMEOUT_CONNECT:
		wms = s->connect_timeout;
		break;
	case MTA_TIMEOUT_REPLY:
		rms = s->reply_timeout;
		break;
	case MTA_TIMEOUT_DATA:
		rms = s->data_timeout;
		break;
	case MTA_TIMEOUT_QUIT:
		rms = wms = MTA_QUIT_TIMEOUT;
		break;
	}
	rtv.tv_sec = (time_t)(rms / 1000);
	rtv.tv_usec = (suseconds_t)(rms % 1000) * 1000;
	wtv.tv_sec = (time_t)(wms / 1000);
	wtv.tv_usec = (suseconds_t)(wms % 1000) * 1000;
	bufferevent_set_timeouts(s->bev, rms != 0 ? &rtv : NULL,
	    wms != 0 ? &wtv : NULL);
}

/*
 * Every state change goes through here: trace it, re-arm the timeouts,
 * and read only while a reply is awaited.  The body is the exception:
 * reading goes on as it was (a reply that comes early waits for the end
 * of data), so that a body written at once, as most are, costs no two
 * epoll changes; mta_body_fill() stops reading while it waits for the
 * peer to take more.
 */
static void
mta_enter_state(struct mta_session *s, enum mta_state state)
{
	if (s->state != state)
		log_debug("mta %s: %s -> %s", s->relay,
		    mta_states[s->state].name, mta_states[state].name);
	s->state = state;
	if (s->bev == NULL)
		return;
	mta_set_timeouts(s);
	if (state == MTA_STATE_BODY)
		return;
	if (mta_states[state].reads)
		bufferevent_enable(s->bev, EV_READ);
	else
		bufferevent_disable(s->bev, EV_READ);
}

/* Queue work for the top of the loop; the weightier kind wins. */
static void
mta_defer(struct mta_session *s, enum mta_defer what)
{
	static const struct timeval	now = { 0, 0 };

	if (what > s->defer)
		s->defer = what;
	evtimer_add(s->ev, &now);
}

/* Write one command line; hidden, when given, is traced instead. */
static void
mta_command(struct mta_session *s, const char *hidden, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
mta_command(struct mta_session *s, const char *hidden, const char *fmt, ...)
{
	char	line[MTA_CMD_MAX];
	char	esc[LOG_ESCAPE_SIZE];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof line - 2)
		panic("mta_command: command too long");
	if (log_is_debug())
		log_debug("mta %s: >>> %s", s->relay, hidden != NULL ? hidden :
		    log_escape(esc, sizeof esc, line, (size_t)n));
	memcpy(line + n, "\r\n", 2);
	evbuffer_add(bufferevent_get_output(s->bev), line, (size_t)n + 2);
	if (hidden != NULL)
		OPENSSL_cleanse(line, sizeof line);
}

/* Let go of the connection (not of the session); TLS is shut first. */
static void
mta_conn_drop(struct mta_session *s)
{
	if (s->bev != NULL) {
		direct_detach(&s->direct);
		tls_close(s->bev);
		s->bev = NULL;
	}
	s->flags &= ~(MTA_F_TLS | MTA_F_READY | MTA_F_AUTH_LOGIN |
	    MTA_F_EOM_IGNORE);
	s->ext = 0;
	s->ext_size = 0;
	s->ntx = 0;
	s->reply_lines = 0;
	s->reply_len = 0;
}

/* Say QUIT and wait a moment for the answer; then what says after. */
static void
mta_quit_start(struct mta_session *s, enum mta_after after)
{
	s->after_quit = after;
	mta_enter_state(s, MTA_STATE_QUIT);
	mta_command(s, NULL, "QUIT");
}

static void
mta_quit_done(struct mta_session *s)
{
	mta_conn_drop(s);
	switch (s->after_quit) {
	case MTA_AFTER_NEXT:
		mta_next(s);
		break;
	case MTA_AFTER_CLOSE:
		mta_enter_state(s, MTA_STATE_CLOSED);
		mta_defer(s, MTA_DEFER_CLOSED);
		break;
	case MTA_AFTER_FREE:
		mta_enter_state(s, MTA_STATE_CLOSED);
		mta_defer(s, MTA_DEFER_FREE);
		break;
	}
}

/*
 * This address failed before the session was ready: remember why, say
 * QUIT when the peer is still talking sense, and try the next one.
 */
static void
mta_address_failed(struct mta_session *s, const struct dlv_status *st,
    int quit)
{
	/* Another address, or a later try, may do better. */
	s->last = *st;
	s->last.result = DLV_TEMP;
	log_info("%s", st->text);
	if (quit && s->bev != NULL) {
		mta_quit_start(s, MTA_AFTER_NEXT);
		return;
	}
	mta_next(s);
}

/*
 * The end of the connection, for good: a transaction in flight gets its
 * done() first, then closed(), both from the top of the loop.
 */
static void
mta_close(struct mta_session *s, const struct dlv_status *st, int quit)
{
	if (st != &s->st)
		s->st = *st;
	log_debug("mta %s: closing: %s", s->relay, s->st.text);
	if (quit && s->bev != NULL) {
		mta_quit_start(s, MTA_AFTER_CLOSE);
		return;
	}
	mta_conn_drop(s);
	mta_enter_state(s, MTA_STATE_CLOSED);
	mta_defer(s, MTA_DEFER_CLOSED);
}

/* Before the session was first ready, a failure moves on to the next
 * address; afterwards it closes the session. */
static void
mta_fail(struct mta_session *s, const struct dlv_status *st, int quit)
{
	if (s->flags & MTA_F_READY)
		mta_close(s, st, quit);
	else
		mta_address_failed(s, st, quit);
}

/* The peer broke the protocol: no QUIT, just go (4.5.0). */
static void
mta_protocol_error(struct mta_session *s, const char *why)
{
	struct dlv_status	st;
	const char		*reply_to = mta_states[s->state].reply_to;

	if (s->state == MTA_STATE_QUIT) {
		mta_quit_done(s);
		return;
	}
	dlv_status_fill(&st, DLV_TEMP, "4.5.0", "protocol error from %s: %s "
	    "(in reply to %s)", s->peer, why,
	    reply_to != NULL ? reply_to : "unknown command");
	mta_fail(s, &st, 0);
}

/*
 * The address of targets[cur] with our port put in, and the names it
 * goes by in logs: "host[ip]" and "host[ip]:port", or for a unix socket
 * (LMTP) "host[/path]" alone.
 */
static void
mta_target_addr(struct mta_session *s, struct sockaddr_storage *ss)
{
	const struct dns_target	*t = &s->targets[s->cur];
	const void		*ip;
	char			 addr[INET6_ADDRSTRLEN];

	memcpy(ss, &t->ss, sizeof *ss);
	if (ss->ss_family == AF_UNIX) {
		util_strlcpy(s->peer, t->host, sizeof s->peer);
		util_strlcat(s->peer, "[", sizeof s->peer);
		util_strlcat(s->peer, ((struct sockaddr_un *)ss)->sun_path,
		    sizeof s->peer);
		util_strlcat(s->peer, "]", sizeof s->peer);
		util_strlcpy(s->relay, s->peer, sizeof s->relay);
		return;
	}
	if (ss->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)ss)->sin6_port = htons(s->port);
		ip = &((struct sockaddr_in6 *)ss)->sin6_addr;
	} else {
		((struct sockaddr_in *)ss)->sin_port = htons(s->port);
		ip = &((struct sockaddr_in *)ss)->sin_addr;
	}
	if (inet_ntop(ss->ss_family, ip, addr, sizeof addr) == NULL)
		util_strlcpy(addr, "unknown", sizeof addr);
	snprintf(s->peer, sizeof s->peer, "%s[%s]", t->host, addr);
	snprintf(s->relay, sizeof s->relay, "%s:%u", s->peer,
	    (unsigned)s->port);
}

/* Connect to targets[cur]; errors are deferred, never reported inline. */
static void
mta_connect(struct mta_session *s)
{
	const struct dns_target	*t = &s->targets[s->cur];
	struct sockaddr_storage	 ss;
	struct dlv_status	 st;
	evutil_socket_t		 fd;
	int			 error;

	mta_target_addr(s, &ss);
	s->state = MTA_STATE_INIT;

	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (fd == -1 || evutil_make_socket_nonblocking(fd) == -1 ||
	    evutil_make_socket_closeonexec(fd) == -1 ||
	    (connect(fd, (struct sockaddr *)&ss, t->sslen) == -1 &&
	    errno != EINPROGRESS)) {
		error = errno;
		if (fd != -1)
			close(fd);
		dlv_status_fill(&st, DLV_TEMP, "4.4.1", "connect to %s: %s",
		    s->relay, strerror(error));
		s->last = st;
		log_info("%s", st.text);
		mta_defer(s, MTA_DEFER_NEXT);
		return;
	}
	s->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	sessinfo_count(s->bev, &s->bytes);
	bufferevent_setcb(s->bev, mta_read_cb, mta_write_cb, mta_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, MTA_BODY_LOWAT, 0);
	log_debug("mta %s: connecting", s->relay);
	mta_enter_state(s, MTA_STATE_CONNECT);
	/* The socket is already connecting: this only waits for it. */
	if (bufferevent_socket_connect(s->bev, NULL, 0) == -1)
		fatalx("bufferevent_socket_connect failed");
}

/* On to the next address, or closed() with the last failure. */
static void
mta_next(struct mta_session *s)
{
	mta_conn_drop(s);
	s->flags &= ~MTA_F_NO_TLS;
	if (++s->cur < s->ntargets) {
		mta_connect(s);
		return;
	}
	mta_close(s, &s->last, 0);
}

static void
mta_connect_failed(struct mta_session *s, int error)
{
	struct dlv_status	st;

	dlv_status_fill(&st, DLV_TEMP, "4.4.1", "connect to %s: %s", s->relay,
	    strerror(error));
	mta_address_failed(s, &st, 0);
}

/* Send EHLO (or HELO) and forget what the last EHLO offered. */
static void
mta_hello(struct mta_session *s, enum mta_state state)
{
	if (s->lmtp)
		state = MTA_STATE_LHLO;
	s->ext = 0;
	s->ext_size = 0;
	s->peer_name[0] = '\0';
	mta_enter_state(s, state);
	mta_command(s, NULL, "%s %s", state == MTA_STATE_EHLO ? "EHLO" :
	    state == MTA_STATE_LHLO ? "LHLO" : "HELO", s->helo);
}

/* The session is ready for a transaction; tell the owner soon. */
static void
mta_ready(struct mta_session *s)
{
	s->flags |= MTA_F_READY;
	mta_enter_state(s, MTA_STATE_READY);
	mta_defer(s, MTA_DEFER_READY);
}

/* Base64 of len octets, NUL-terminated, into out of size octets. */
static void
mta_base64(char *out, size_t size, const void *in, size_t len)
{
	if (size < 4 * ((len + 2) / 3) + 1)
		panic("mta_base64: buffer too small");
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/*
 * Authenticate when told to (RFC 4954): only under TLS, PLAIN when
 * offered, else LOGIN.  A peer that offers no AUTH gets the mail without,
 * as Postfix does.
 */
static void
mta_auth(struct mta_session *s)
{
	struct dlv_status	st;
	char			raw[2 * MTA_AUTH_MAX + 2];
	char			b64[4 * sizeof raw / 3 + 4];
	size_t			ulen, plen;

	if (s->auth_user == NULL) {
		mta_ready(s);
		return;
	}
	if (!(s->ext & MTA_EXT_AUTH)) {
		log_info("%s offers no AUTH; sending without authentication",
		    s->peer);
		mta_ready(s);
		return;
	}
	if (!(s->flags & MTA_F_TLS)) {
		dlv_status_fill(&st, DLV_TEMP, "4.7.4", "refusing to send "
		    "credentials without TLS to %s", s->peer);
		mta_fail(s, &st, 1);
		return;
	}
	ulen = strlen(s->auth_user);
	plen = strlen(s->auth_pass);
	if (ulen > MTA_AUTH_MAX || plen > MTA_AUTH_MAX) {
		dlv_status_fill(&st, DLV_TEMP, "4.7.0", "SASL credentials for "
		    "%s are too long", s->peer);
		mta_close(s, &st, 1);
		return;
	}
	if (!(s->ext & (MTA_EXT_AUTH_PLAIN | MTA_EXT_AUTH_LOGIN))) {
		dlv_status_fill(&st, DLV_TEMP, "4.7.0", "SASL authentication "
		    "failed: %s offered no supported mechanism", s->peer);
		mta_fail(s, &st, 1);
		return;
	}
	mta_enter_state(s, MTA_STATE_AUTH);
	if (s->ext & MTA_EXT_AUTH_PLAIN) {
		/* authzid, authcid, password (RFC 4616). */
		raw[0] = '\0';
		memcpy(raw + 1, s->auth_user, ulen);
		raw[1 + ulen] = '\0';
		memcpy(raw + 2 + ulen, s->auth_pass, plen);
		mta_base64(b64, sizeof b64, raw, 2 + ulen + plen);
		mta_command(s, "AUTH PLAIN <credentials>", "AUTH PLAIN %s",
		    b64);
		OPENSSL_cleanse(raw, sizeof raw);
		OPENSSL_cleanse(b64, sizeof b64);
	} else {
		s->flags |= MTA_F_AUTH_LOGIN;
		mta_command(s, NULL, "AUTH LOGIN");
	}
}

/* EHLO or HELO went through: STARTTLS if wanted, AUTH, then ready. */
static void
mta_after_hello(struct mta_session *s)
{
	struct dlv_status	st;

	if (!(s->flags & (MTA_F_TLS | MTA_F_NO_TLS)) &&
	    (s->tls_verify || s->starttls)) {
		if (s->ext & MTA_EXT_STARTTLS) {
			mta_enter_state(s, MTA_STATE_STARTTLS);
			mta_command(s, NULL, "STARTTLS");
			return;
		}
		if (s->tls_verify) {
			dlv_status_fill(&st, DLV_TEMP, "4.7.4", "TLS is "
			    "required, but was not offered by host %s",
			    s->peer);
			mta_fail(s, &st, 1);
			return;
		}
	}
	mta_auth(s);
}

static void
mta_reply_greeting(struct mta_session *s)
{
	struct dlv_status	st;

	if (s->reply_code == 220) {
		mta_hello(s, MTA_STATE_EHLO);
		return;
	}
	mta_status_reply(s, &st);
	if (st.result == DLV_OK) {
		st.result = DLV_TEMP;
		util_strlcpy(st.status, "4.5.0", sizeof st.status);
	}
	mta_fail(s, &st, s->reply_code != 421);
}

/*
 * The answer to EHLO, HELO or LHLO.  A peer that greets with our own name
 * is ourselves: the mail would loop (Postfix "loops back to myself");
 * an LMTP server is meant to be on this host and is not asked.
 */
static void
mta_reply_ehlo(struct mta_session *s)
{
	struct dlv_status	st;

	if (s->reply_code / 100 == 2) {
		if (s->state != MTA_STATE_LHLO &&
		    strcasecmp(s->peer_name, s->helo) == 0) {
			dlv_status_fill(&st, DLV_PERM, "5.4.6", "mail for %s "
			    "loops back to myself", s->name);
			log_info("%s: %s", s->peer, st.text);
			mta_close(s, &st, 1);
			return;
		}
		mta_after_hello(s);
		return;
	}
	if (s->state == MTA_STATE_EHLO && s->reply_code / 100 == 5) {
		mta_hello(s, MTA_STATE_HELO);
		return;
	}
	mta_status_reply(s, &st);
	if (st.result == DLV_OK)
		st.result = DLV_TEMP;
	mta_fail(s, &st, s->reply_code != 421);
}

static void	mta_tls_failed(struct mta_session *, const char *);

/* Start the handshake on this connection. */
static void
mta_tls_start(struct mta_session *s)
{
	struct bufferevent	*bev;
	char			*cause = NULL;

	direct_detach(&s->direct);
	bev = tls_client_start(s->bev, mta_tls_ctx,
	    s->targets[s->cur].host, s->tls_verify ? s->name : NULL, &cause);
	if (bev == NULL) {
		/* Still the plain connection: written as before. */
		direct_attach(&s->direct, s->bev);
		mta_tls_failed(s, cause);
		free(cause);
		return;
	}
	s->bev = bev;
	sessinfo_count(s->bev, &s->bytes);
	bufferevent_setcb(s->bev, mta_read_cb, mta_write_cb, mta_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, MTA_BODY_LOWAT, 0);
	mta_enter_state(s, MTA_STATE_TLS);
}

static void
mta_reply_starttls(struct mta_session *s)
{
	struct dlv_status	st;

	if (s->reply_code == 220) {
		mta_tls_start(s);
		return;
	}
	mta_status_reply(s, &st);
	if (s->tls_verify || s->reply_code == 421) {
		if (st.result == DLV_OK)
			st.result = DLV_TEMP;
		mta_fail(s, &st, s->reply_code != 421);
		return;
	}
	log_info("%s; going on without TLS", st.text);
	mta_auth(s);
}

/* The handshake is done: say so, and greet again (RFC 3207 4.2). */
static void
mta_tls_done(struct mta_session *s)
{
	const char	*trust;

	s->flags |= MTA_F_TLS;
	if (s->tls_verify)
		trust = "Verified";
	else
		trust = tls_is_trusted(s->bev) ? "Trusted" : "Untrusted";
	log_info("%s TLS connection established to %s: %s with cipher %s",
	    trust, s->relay, tls_version(s->bev), tls_cipher(s->bev));
	mta_hello(s, MTA_STATE_EHLO);
}

/*
 * The handshake failed.  When TLS is demanded, so has this address;
 * otherwise connect to it again and go on in plaintext, once.
 */
static void
mta_tls_failed(struct mta_session *s, const char *why)
{
	struct dlv_status	st;

	dlv_status_fill(&st, DLV_TEMP, "4.7.5", "TLS handshake with %s "
	    "failed: %s", s->peer, why);
	if (s->tls_verify) {
		mta_fail(s, &st, 0);
		return;
	}
	log_warnx("%s; trying again without TLS", st.text);
	mta_conn_drop(s);
	s->flags |= MTA_F_NO_TLS;
	mta_connect(s);
}

static void
mta_reply_auth(struct mta_session *s)
{
	struct dlv_status	st;
	char			b64[4 * (MTA_AUTH_MAX + 2) / 3 + 4];

	if (s->reply_code == 235 && (s->state == MTA_STATE_AUTH_PASS ||
	    (s->state == MTA_STATE_AUTH && !(s->flags & MTA_F_AUTH_LOGIN)))) {
		log_debug("mta %s: authenticated", s->relay);
		mta_ready(s);
		return;
	}
	if (s->reply_code == 334 && (s->flags & MTA_F_AUTH_LOGIN) &&
	    s->state != MTA_STATE_AUTH_PASS) {
		if (s->state == MTA_STATE_AUTH) {
			mta_enter_state(s, MTA_STATE_AUTH_USER);
			mta_base64(b64, sizeof b64, s->auth_user,
			    strlen(s->auth_user));
			mta_command(s, "<user name>", "%s", b64);
		} else {
			mta_enter_state(s, MTA_STATE_AUTH_PASS);
			mta_base64(b64, sizeof b64, s->auth_pass,
			    strlen(s->auth_pass));
			mta_command(s, "<password>", "%s", b64);
		}
		OPENSSL_cleanse(b64, sizeof b64);
		return;
	}
	/* Refused credentials are ours to fix: no other address helps. */
	mta_status_reply(s, &st);
	st.result = DLV_TEMP;
	log_info("SASL authentication failed: %s", st.text);
	mta_close(s, &st, s->reply_code != 421 && s->reply_code / 100 != 3);
}

/* The reply to QUIT, whatever it is, ends the connection. */
/*
 * The peer closes after its 221: wait for that (bounded by the QUIT
 * timeout), so a connection counts against the caps until it is gone.
 */
static void
mta_reply_quit(struct mta_session *s)
{
	if (s->reply_code != 221)
		mta_quit_done(s);
}

/* A reply nobody asked for (a 421 before hanging up): the end. */
static void
mta_reply_idle(struct mta_session *s)
{
	struct dlv_status	st;

	mta_status_reply(s, &st);
	st.result = DLV_TEMP;
	mta_fail(s, &st, 0);
}

/* An address we may put into a command: printable, no line breaks. */
static int
mta_addr_is_sane(const char *addr)
{
	const unsigned char	*p;

	if (strlen(addr) > MTA_ADDR_MAX)
		return 0;
	for (p = (const unsigned char *)addr; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	}
	return 1;
}

/* Whether an address of the envelope is more than ASCII. */
static int
mta_tx_has_utf8_addr(const struct dlv_tx *tx)
{
	const unsigned char	*p;
	size_t			 i;

	for (p = (const unsigned char *)tx->sender; *p != '\0'; p++) {
		if (*p >= 0x80)
			return 1;
	}
	for (i = 0; i < tx->nrcpts; i++) {
		for (p = (const unsigned char *)tx->rcpts[i].addr; *p != '\0';
		    p++) {
			if (*p >= 0x80)
				return 1;
		}
	}
	return 0;
}

/*
 * A peer without 8BITMIME, or an SMTPUTF8 message (with ASCII addresses)
 * for a peer without SMTPUTF8: read the message once to see what it
 * holds.  No 8-bit body part: it goes as it is.  8-bit parts that can be
 * made quoted-printable: s->mime converts them as the body is sent.
 * Otherwise the message cannot go to this peer (RFC 6152 section 3, RFC
 * 3463 X.6.2 and X.6.3; RFC 6531 X.6.9 for UTF-8 header fields): returns
 * -1 with st set, as it does when the file cannot be read.
 */
static int
mta_tx_mime(struct mta_session *s, struct dlv_tx *tx, struct dlv_status *st)
{
	struct mime_conv	*c;
	enum mime_verdict	 v;
	char			 why[MIME_WHY_SIZE];
	uint64_t		 off = 0;
	ssize_t			 n;
	int			 header8;

	memset(st, 0, sizeof *st);
	if ((s->ext & MTA_EXT_8BITMIME) && (!tx->smtputf8 ||
	    (s->ext & MTA_EXT_SMTPUTF8)))
		return 0;
	c = mime_scan_new();
	for (;;) {
		/* Blocking: local file read */
		n = pread(tx->msgfd, mta_body_buf, sizeof mta_body_buf,
		    (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			log_warn("mta %s: message file read", s->relay);
			dlv_status_fill(st, DLV_TEMP, "4.3.0", "error reading "
			    "the message file: %s", strerror(errno));
			mime_conv_free(c);
			return -1;
		}
		if (n == 0)
			break;
		mime_feed(c, mta_body_buf, (size_t)n);
		off += (uint64_t)n;
	}
	v = mime_scan_end(c, &header8, why, sizeof why);
	if (tx->smtputf8 && !(s->ext & MTA_EXT_SMTPUTF8) && header8)
		dlv_status_fill(st, DLV_PERM, "5.6.9", "SMTPUTF8 is required "
		    "for UTF-8 header fields, but was not offered by host %s",
		    s->peer);
	else if (s->ext & MTA_EXT_8BITMIME)
		v = MIME_7BIT;
	else if (v == MIME_SIGNED)
		dlv_status_fill(st, DLV_PERM, "5.6.2", "MIME 7-bit conversion "
		    "not permitted: %s, and host %s does not offer 8BITMIME",
		    why, s->peer);
	else if (v == MIME_CANNOT)
		dlv_status_fill(st, DLV_PERM, "5.6.3", "MIME 7-bit conversion "
		    "failed: %s, and host %s does not offer 8BITMIME", why,
		    s->peer);
	if (st->result == DLV_PERM) {
		mime_conv_free(c);
		return -1;
	}
	if (v == MIME_CONVERT) {
		log_debug("mta %s: 8-bit parts converted to quoted-printable",
		    s->relay);
		s->mime = c;
	} else
		mime_conv_free(c);
	return 0;
}

/*
 * What keeps a transaction from being sent at all.  Returns 0, or -1 with
 * every recipient's outcome set.
 */
static int
mta_tx_check(struct mta_session *s, struct dlv_tx *tx)
{
	struct dlv_status	st;
	size_t			i;
	int			sane = mta_addr_is_sane(tx->sender);

	for (i = 0; i < tx->nrcpts; i++)
		sane = sane && mta_addr_is_sane(tx->rcpts[i].addr);
	if (!sane) {
		dlv_status_fill(&st, DLV_PERM, "5.1.3", "malformed address in "
		    "the envelope");
	} else if ((s->ext & MTA_EXT_SIZE) && s->ext_size != 0 &&
	    tx->size > s->ext_size) {
		dlv_status_fill(&st, DLV_PERM, "5.3.4", "message size %" PRIu64
		    " exceeds size limit %" PRIu64 " of %s", tx->size,
		    s->ext_size, s->relay);
	} else if (tx->smtputf8 && !(s->ext & MTA_EXT_SMTPUTF8) &&
	    mta_tx_has_utf8_addr(tx)) {
		dlv_status_fill(&st, DLV_PERM, "5.6.7", "SMTPUTF8 is required, "
		    "but was not offered by host %s", s->peer);
	} else if (mta_tx_mime(s, tx, &st) == -1) {
		/* st says why */
	} else
		return 0;
	mta_tx_set_rest(tx, &st);
	return -1;
}

/* Run one transaction; the session must be ready. */
void
mta_session_send(struct mta_session *s, struct dlv_tx *tx)
{
	size_t	i;

	for (i = 0; i < tx->nrcpts; i++) {
		memset(&tx->rcpts[i].st, 0, sizeof tx->rcpts[i].st);
		util_strlcpy(tx->rcpts[i].relay, s->relay,
		    sizeof tx->rcpts[i].relay);
		tx->rcpts[i].tls = mta_session_tls(s);
		tx->rcpts[i].dsn = 0;
		tx->rcpts[i].final = s->lmtp;
	}
	if (s->state == MTA_STATE_CLOSED && s->tx == NULL &&
	    !(s->flags & MTA_F_QUIT)) {
		/* Given from a done() before closed(): it fails the same. */
		s->tx = tx;
		return;
	}
	if (s->state != MTA_STATE_READY || s->tx != NULL ||
	    s->defer == MTA_DEFER_READY || (s->flags & MTA_F_QUIT))
		panic("mta_session_send: session %s is not ready", s->relay);
	s->tx = tx;
	mime_conv_free(s->mime);
	s->mime = NULL;
	s->bdat = 0;
	if (tx->nrcpts == 0 || mta_tx_check(s, tx) == -1) {
		mta_defer(s, MTA_DEFER_DONE);
		return;
	}
	s->snd = s->ntx > 0 ? MTA_STATE_RSET : MTA_STATE_MAIL;
	s->snd_rcpt = 0;
	s->rcv_rcpt = 0;
	s->unanswered = 0;
	s->naccepted = 0;
	s->mail_failed = 0;
	s->ntx++;
	mta_enter_state(s, s->snd);
	mta_tx_send(s);
}

/*
 * An ORCPT value (RFC 3461 4.2): the address type, ";", and the address
 * as xtext, or for the type "utf-8" as the utf-8-addr-xtext of RFC 6533
 * section 3, where "+", "=", the backslash and every character outside
 * printable ASCII are written "\x{HEX}".  Returns -1 when the value
 * cannot be written or would be longer than the 500 octets allowed; the
 * parameter is then left out rather than sent broken.
 */
static int
mta_orcpt_encode(const char *orcpt, char *out, size_t size)
{
	const unsigned char	*p;
	const char		*semi, *addr;
	struct util_buf		 b = { NULL, 0, 0 };
	unsigned long		 cp;
	size_t			 tlen, n, i;
	int			 rc = -1;

	if ((semi = strchr(orcpt, ';')) == NULL)
		return -1;
	tlen = (size_t)(semi - orcpt);
	if (tlen == 0 || tlen > 32)
		return -1;
	for (i = 0; i < tlen; i++) {
		if (!isalnum((unsigned char)orcpt[i]) && orcpt[i] != '-')
			return -1;
	}
	addr = semi + 1;
	while (*addr == ' ')
		addr++;
	if (*addr == '\0')
		return -1;
	if (tlen != 5 || strncasecmp(orcpt, "utf-8", 5) != 0) {
		if (tlen + 1 >= size || smtp_xtext_encode(addr, out + tlen + 1,
		    size - tlen - 1) == -1)
			return -1;
		memcpy(out, orcpt, tlen + 1);
		return strlen(out) <= MTA_ORCPT_MAX ? 0 : -1;
	}
	util_buf_add(&b, orcpt, tlen + 1);
	for (p = (const unsigned char *)addr; *p != '\0'; p += n) {
		if (*p > 0x20 && *p < 0x7f && *p != '+' && *p != '=' &&
		    *p != '\\') {
			util_buf_add(&b, p, 1);
			n = 1;
			continue;
		}
		if (*p < 0x80)
			n = 1;
		else if ((n = util_utf8_len(p, 4)) == 0)
			goto done;
		cp = n == 1 ? *p : *p & (0xff >> (n + 1));
		for (i = 1; i < n; i++)
			cp = (cp << 6) | (p[i] & 0x3f);
		util_buf_printf(&b, "\\x{%lX}", cp);
	}
	if (b.len <= MTA_ORCPT_MAX && b.len < size) {
		memcpy(out, b.data, b.len);
		out[b.len] = '\0';
		rc = 0;
	}
done:
	free(b.data);
	return rc;
}

/* MAIL FROM with the parameters the peer understands. */
static void
mta_send_mail(struct mta_session *s)
{
	struct dlv_tx	*tx = s->tx;
	char		 size[32] = "", ret[16] = "";
	char		 envid[sizeof " ENVID=" + MTA_ENVID_MAX] = "";

	if (s->ext & MTA_EXT_SIZE)
		snprintf(size, sizeof size, " SIZE=%" PRIu64, tx->size);
	if ((s->ext & MTA_EXT_DSN) && !s->lmtp &&
	    tx->ret != ENVELOPE_RET_NONE)
		snprintf(ret, sizeof ret, " RET=%s",
		    tx->ret == ENVELOPE_RET_FULL ? "FULL" : "HDRS");
	if ((s->ext & MTA_EXT_DSN) && !s->lmtp && tx->envid != NULL &&
	    *tx->envid != '\0') {
		memcpy(envid, " ENVID=", 7);
		if (smtp_xtext_encode(tx->envid, envid + 7,
		    sizeof envid - 7) == -1) {
			log_info("mta %s: ENVID too long to pass on", s->relay);
			envid[0] = '\0';
		}
	}
	mta_command(s, NULL, "MAIL FROM:<%s>%s%s%s%s%s", tx->sender, size,
	    tx->body_8bit && (s->ext & MTA_EXT_8BITMIME) ?
	    " BODY=8BITMIME" : "", tx->smtputf8 &&
	    (s->ext & MTA_EXT_SMTPUTF8) ? " SMTPUTF8" : "", ret,
	    envid);
}

/* RCPT TO, with NOTIFY and ORCPT for a peer that offers DSN. */
static void
mta_send_rcpt(struct mta_session *s, struct dlv_rcpt *r)
{
	char	list[sizeof "SUCCESS,FAILURE,DELAY"];
	char	notify[sizeof " NOTIFY=SUCCESS,FAILURE,DELAY"] = "";
	char	orcpt[sizeof " ORCPT=" + MTA_ORCPT_MAX] = "";

	if (!(s->ext & MTA_EXT_DSN)) {
		mta_command(s, NULL, "RCPT TO:<%s>", r->addr);
		return;
	}
	/*
	 * LMTP is the final delivery: we report on it ourselves, so no
	 * NOTIFY, only the ORCPT a mailbox server may show.
	 */
	r->dsn = !s->lmtp;
	envelope_notify_format(r->notify, 1, list, sizeof list);
	if (list[0] != '\0' && !s->lmtp)
		util_snprintf(notify, sizeof notify, " NOTIFY=%s", list);
	if (r->orcpt != NULL) {
		memcpy(orcpt, " ORCPT=", 7);
		if (mta_orcpt_encode(r->orcpt, orcpt + 7,
		    sizeof orcpt - 7) == -1) {
			log_info("mta %s: ORCPT of <%s> cannot be passed on",
			    s->relay, r->addr);
			orcpt[0] = '\0';
		}
	}
	mta_command(s, NULL, "RCPT TO:<%s>%s%s", r->addr, notify, orcpt);
}

/*
 * Whether the body goes with BDAT: the peer offers CHUNKING and the
 * octets go as they are in the file (not converted to 7-bit).
 */
static int
mta_use_bdat(const struct mta_session *s)
{
	return (s->ext & MTA_EXT_CHUNKING) && s->mime == NULL && !s->lmtp;
}

/*
 * Send what may be sent: everything up to DATA with PIPELINING (RFC 2920
 * 3.1), else the next command once the last one has its reply.
 */
static void
mta_tx_send(struct mta_session *s)
{
	struct dlv_tx	*tx = s->tx;

	while (s->snd != MTA_STATE_BODY) {
		if (!(s->ext & MTA_EXT_PIPELINING) && s->unanswered > 0)
			return;
		switch (s->snd) {
		case MTA_STATE_RSET:
			mta_command(s, NULL, "RSET");
			s->snd = MTA_STATE_MAIL;
			break;
		case MTA_STATE_MAIL:
			mta_send_mail(s);
			s->snd = MTA_STATE_RCPT;
			break;
		case MTA_STATE_RCPT:
			mta_send_rcpt(s, &tx->rcpts[s->snd_rcpt]);
			if (++s->snd_rcpt == tx->nrcpts)
				s->snd = MTA_STATE_DATA;
			break;
		case MTA_STATE_DATA:
			if (mta_use_bdat(s))
				return;		/* see mta_tx_next() */
			mta_command(s, NULL, "DATA");
			s->snd = MTA_STATE_BODY;
			break;
		default:
			panic("mta_tx_send: bad send state %d", s->snd);
		}
		s->unanswered++;
	}
}

/* The transaction is over: every recipient has an outcome. */
static void
mta_tx_finish(struct mta_session *s)
{
	s->flags &= ~MTA_F_EOM_IGNORE;
	s->bdat = 0;
	mime_conv_free(s->mime);
	s->mime = NULL;
	mta_enter_state(s, MTA_STATE_READY);
	mta_defer(s, MTA_DEFER_DONE);
}

/*
 * A reply to MAIL or RCPT has moved the reply cursor.  In lockstep, stop
 * when nothing more is worth sending, else send the next command; with
 * pipelining everything is sent already and the replies just come.
 */
static void
mta_tx_next(struct mta_session *s)
{
	/* BDAT carries the body at once: only once every RCPT is answered. */
	if (mta_use_bdat(s) && s->snd == MTA_STATE_DATA &&
	    s->unanswered == 0) {
		if (s->mail_failed || s->naccepted == 0)
			mta_tx_finish(s);
		else
			mta_bdat_start(s);
		return;
	}
	if (s->ext & MTA_EXT_PIPELINING)
		return;
	if (s->mail_failed || (s->snd == MTA_STATE_DATA &&
	    s->naccepted == 0)) {
		mta_tx_finish(s);
		return;
	}
	mta_tx_send(s);
}

/* A 421 anywhere ends the session; the reply says why. */
static int
mta_reply_is_421(struct mta_session *s)
{
	struct dlv_status	st;

	if (s->reply_code != 421)
		return 0;
	mta_status_reply(s, &st);
	mta_close(s, &st, 0);
	return 1;
}

/*
 * RSET before a second transaction.  A peer that refuses it is in a
 * state we cannot trust with the commands already pipelined after it.
 */
static void
mta_reply_rset(struct mta_session *s)
{
	struct dlv_status	st;

	if (mta_reply_is_421(s))
		return;
	if (s->reply_code / 100 != 2) {
		mta_status_reply(s, &st);
		st.result = DLV_TEMP;
		mta_close(s, &st, 0);
		return;
	}
	s->unanswered--;
	mta_enter_state(s, MTA_STATE_MAIL);
	mta_tx_send(s);
}

/* MAIL refused: every recipient gets that outcome. */
static void
mta_reply_mail(struct mta_session *s)
{
	struct dlv_status	st;

	if (mta_reply_is_421(s))
		return;
	if (s->reply_code / 100 != 2) {
		mta_status_reply(s, &st);
		mta_tx_set_rest(s->tx, &st);
		s->mail_failed = 1;
	}
	s->unanswered--;
	mta_enter_state(s, MTA_STATE_RCPT);
	mta_tx_next(s);
}

/* One recipient's fate; accepted ones wait for the end of DATA. */
static void
mta_reply_rcpt(struct mta_session *s)
{
	struct dlv_rcpt	*r = &s->tx->rcpts[s->rcv_rcpt];

	if (mta_reply_is_421(s))
		return;
	if (!s->mail_failed) {
		if (s->reply_code / 100 == 2)
			s->naccepted++;
		else
			mta_status_reply(s, &r->st);
	}
	s->unanswered--;
	if (++s->rcv_rcpt == s->tx->nrcpts)
		mta_enter_state(s, MTA_STATE_DATA);
	mta_tx_next(s);
}

/*
 * The reply to DATA.  With nobody accepted the body is not sent; a
 * pipelined DATA that got 354 anyway is ended at once with a lone dot.
 */
static void
mta_reply_data(struct mta_session *s)
{
	struct dlv_status	st;

	if (mta_reply_is_421(s))
		return;
	s->unanswered--;
	if (s->reply_code == 354) {
		if (s->naccepted > 0 && !s->mail_failed) {
			s->body_off = 0;
			s->eom_rcpt = 0;
			s->body_bol = 1;
			s->body_tail[0] = s->body_tail[1] = '\0';
			if (s->mime != NULL)
				mime_convert_start(s->mime, mta_body_mime_cb,
				    s);
			mta_enter_state(s, MTA_STATE_BODY);
			mta_body_fill(s);
			return;
		}
		if (s->lmtp) {
			/* How many replies would the dot get?  None can
			 * be trusted: leave. */
			mta_protocol_error(s, "354 with no recipient "
			    "accepted");
			return;
		}
		s->flags |= MTA_F_EOM_IGNORE;
		mta_enter_state(s, MTA_STATE_EOM);
		mta_command(s, NULL, ".");
		return;
	}
	if (s->naccepted > 0 && !s->mail_failed) {
		mta_status_reply(s, &st);
		if (st.result == DLV_OK)
			st.result = DLV_TEMP;
		mta_tx_set_rest(s->tx, &st);
	}
	mta_tx_finish(s);
}

/*
 * LMTP: which recipient the next reply after the dot is for, the first
 * from i on still without an outcome (those refused at RCPT have one);
 * tx->nrcpts when none is left.
 */
static size_t
mta_lmtp_rcpt(const struct dlv_tx *tx, size_t i)
{
	while (i < tx->nrcpts && tx->rcpts[i].st.result != DLV_NONE)
		i++;
	return i;
}

/*
 * LMTP's replies to the dot, one per accepted recipient (RFC 2033 4.2):
 * each is that recipient's outcome; each gets the data timeout afresh.
 * A 421 ends the session, and the recipients still waiting get it too.
 */
static void
mta_reply_eom_lmtp(struct mta_session *s)
{
	struct dlv_tx	*tx = s->tx;
	size_t		 i;

	if (mta_reply_is_421(s))
		return;
	if ((i = mta_lmtp_rcpt(tx, s->eom_rcpt)) == tx->nrcpts)
		panic("mta_reply_eom_lmtp: no recipient waits for a reply");
	mta_status_reply(s, &tx->rcpts[i].st);
	s->eom_rcpt = i + 1;
	if (mta_lmtp_rcpt(tx, s->eom_rcpt) == tx->nrcpts) {
		mta_tx_finish(s);
		return;
	}
	mta_enter_state(s, MTA_STATE_EOM);
}

/* The reply to the final dot decides for everyone accepted. */
static void
mta_reply_eom(struct mta_session *s)
{
	struct dlv_status	st;

	if (s->lmtp && !(s->flags & MTA_F_EOM_IGNORE)) {
		mta_reply_eom_lmtp(s);
		return;
	}

	if (s->flags & MTA_F_EOM_IGNORE) {
		if (s->reply_code == 421) {
			mta_status_reply(s, &st);
			mta_close(s, &st, 0);
			return;
		}
		mta_tx_finish(s);
		return;
	}
	if (mta_reply_is_421(s))
		return;
	mta_status_reply(s, &st);
	mta_tx_set_rest(s->tx, &st);
	mta_tx_finish(s);
}

/*
 * Queue one chunk of the message, dot-stuffed (RFC 5321 4.5.2): a line
 * that starts with "." gets another in front.  The file is CRLF text.
 */
static void
mta_body_stuff(struct mta_session *s, struct evbuffer *out, const char *buf,
    size_t len)
{
	const char	*p = buf, *end = buf + len, *seg = buf, *nl;

	while (p < end) {
		if (s->body_bol && *p == '.') {
			evbuffer_add(out, seg, (size_t)(p - seg));
			evbuffer_add(out, ".", 1);
			seg = p;
		}
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			s->body_bol = 0;
			break;
		}
		p = nl + 1;
		s->body_bol = 1;
	}
	evbuffer_add(out, seg, (size_t)(end - seg));
	if (len >= 2) {
		s->body_tail[0] = buf[len - 2];
		s->body_tail[1] = buf[len - 1];
	} else {
		s->body_tail[0] = s->body_tail[1];
		s->body_tail[1] = buf[0];
	}
}

/* Output of the 7-bit conversion, stuffed like the file's own octets. */
static void
mta_body_mime_cb(void *arg, const char *buf, size_t len)
{
	struct mta_session	*s = arg;

	mta_body_stuff(s, bufferevent_get_output(s->bev), buf, len);
}

/*
 * CHUNKING: the whole file in one last chunk, sized from the file itself
 * (written once, so it cannot change under us).
 */
static void
mta_bdat_start(struct mta_session *s)
{
	struct dlv_status	st;
	struct stat		sb;

	if (fstat(s->tx->msgfd, &sb) == -1) {
		log_warn("mta %s: message file", s->relay);
		dlv_status_fill(&st, DLV_TEMP, "4.3.0", "error reading the "
		    "message file: %s", strerror(errno));
		mta_close(s, &st, 0);
		return;
	}
	s->bdat = 1;
	s->bdat_size = (uint64_t)sb.st_size;
	s->body_off = 0;
	mta_enter_state(s, MTA_STATE_BODY);
	mta_command(s, NULL, "BDAT %" PRIu64 " LAST", s->bdat_size);
	mta_body_fill(s);
}

/* The whole file is queued: end its last line, then the final dot. */
static void
mta_body_end(struct mta_session *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);

	if (s->mime != NULL)
		mime_convert_end(s->mime);

	if (s->body_off > 0 && s->body_tail[1] != '\n') {
		if (s->body_tail[1] == '\r')
			evbuffer_add(out, "\n", 1);
		else
			evbuffer_add(out, "\r\n", 2);
	}
	log_debug("mta %s: >>> <%" PRIu64 " octets of message>", s->relay,
	    s->body_off);
	mta_enter_state(s, MTA_STATE_EOM);
	mta_command(s, NULL, ".");
}

/*
 * Read the message into the output while it is below its high-water
 * mark, so a big message never sits in memory whole; the write callback
 * calls again as the peer takes it.
 */
static void
mta_body_fill(struct mta_session *s)
{
	struct evbuffer		*out = bufferevent_get_output(s->bev);
	struct dlv_status	 st;
	size_t			 want;
	ssize_t			 n;

	while (s->state == MTA_STATE_BODY &&
	    evbuffer_get_length(out) < MTA_BODY_HIWAT) {
		want = sizeof mta_body_buf;
		if (s->bdat && s->bdat_size - s->body_off < want)
			want = (size_t)(s->bdat_size - s->body_off);
		if (s->bdat && want == 0) {
			log_debug("mta %s: >>> <%" PRIu64 " octets of "
			    "message>", s->relay, s->body_off);
			mta_enter_state(s, MTA_STATE_BDAT);
			return;
		}
		/* Blocking: local file read */
		n = pread(s->tx->msgfd, mta_body_buf, want,
		    (off_t)s->body_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			/* Never end a message we could not read whole. */
			log_warn("mta %s: message file read", s->relay);
			dlv_status_fill(&st, DLV_TEMP, "4.3.0", "error reading "
			    "the message file: %s", strerror(errno));
			mta_close(s, &st, 0);
			return;
		}
		if (n == 0 && s->bdat) {
			/* Fewer octets than announced: the peer cannot
			 * be told, only left. */
			log_warnx("mta %s: message file shorter than its "
			    "size", s->relay);
			dlv_status_fill(&st, DLV_TEMP, "4.3.0", "error reading "
			    "the message file: shorter than its size");
			mta_close(s, &st, 0);
			return;
		}
		if (n == 0) {
			mta_body_end(s);
			return;
		}
		if (s->bdat)
			evbuffer_add(out, mta_body_buf, (size_t)n);
		else if (s->mime != NULL)
			mime_feed(s->mime, mta_body_buf, (size_t)n);
		else
			mta_body_stuff(s, out, mta_body_buf, (size_t)n);
		s->body_off += (uint64_t)n;
	}
	/* Waiting for the peer to take more: nothing read meanwhile. */
	if (s->state == MTA_STATE_BODY)
		bufferevent_disable(s->bev, EV_READ);
}

/* Add one reply line to the reply being read. */
static void
mta_reply_add(struct mta_session *s, const struct smtp_reply_line *r)
{
	const char	*text = r->text;
	size_t		 n;

	if (s->reply_lines == 1) {
		n = mta_esc_len(text);
		if (n > 0 && n < sizeof s->reply_esc)
			memcpy(s->reply_esc, text, n);
		else
			n = 0;
		s->reply_esc[n] = '\0';
		if (s->state == MTA_STATE_EHLO || s->state == MTA_STATE_HELO) {
			n = strcspn(text, " ");
			if (n >= sizeof s->peer_name)
				n = sizeof s->peer_name - 1;
			memcpy(s->peer_name, text, n);
			s->peer_name[n] = '\0';
		}
	} else {
		/* The same enhanced code on every line is said once. */
		n = strlen(s->reply_esc);
		if (n > 0 && strncmp(text, s->reply_esc, n) == 0 &&
		    (text[n] == ' ' || text[n] == '\0'))
			text += text[n] == ' ' ? n + 1 : n;
		if (s->reply_len + 1 < sizeof s->reply)
			s->reply[s->reply_len++] = ' ';
	}
	for (; *text != '\0' && s->reply_len + 1 < sizeof s->reply; text++) {
		unsigned char c = (unsigned char)*text;
		s->reply[s->reply_len++] = (c < 0x20 || c > 0x7e) ? '?' :
		    (char)c;
	}
	s->reply[s->reply_len] = '\0';
}

/* One line of an EHLO reply past the first: a keyword we may use. */
static void
mta_ehlo_line(struct mta_session *s, const char *text)
{
	const struct mta_ehlo_entry	*e;
	char				 keyword[32];
	size_t				 n, i;

	n = strcspn(text, " =");
	if (n == 0 || n >= sizeof keyword)
		return;
	memcpy(keyword, text, n);
	keyword[n] = '\0';
	text += n;
	while (*text == ' ' || *text == '=')
		text++;
	for (i = 0; i < nitems(mta_ehlo_keywords); i++) {
		e = &mta_ehlo_keywords[i];
		if (strcasecmp(keyword, e->keyword) != 0)
			continue;
		s->ext |= e->ext;
		if (e->param != NULL)
			e->param(s, text);
	}
}

/* SIZE n (RFC 1870): 0, absent or nonsense means no limit we know. */
static void
mta_ehlo_size(struct mta_session *s, const char *param)
{
	const char	*cause;
	char		 buf[32];
	uint64_t	 n;

	util_strlcpy(buf, param, sizeof buf);
	buf[strcspn(buf, " ")] = '\0';
	if (util_parse_uint(buf, 0, UINT64_MAX, &n, &cause) == -1)
		n = 0;
	s->ext_size = n;
}

/* AUTH mechanism... (RFC 4954), or the old "AUTH=" form. */
static void
mta_ehlo_auth(struct mta_session *s, const char *param)
{
	char	buf[SMTP_TEXT_LINE_MAX], *p, *word;

	util_strlcpy(buf, param, sizeof buf);
	p = buf;
	while ((word = strsep(&p, " ")) != NULL) {
		if (strcasecmp(word, "PLAIN") == 0)
			s->ext |= MTA_EXT_AUTH_PLAIN;
		else if (strcasecmp(word, "LOGIN") == 0)
			s->ext |= MTA_EXT_AUTH_LOGIN;
	}
}

/*
 * Take one reply line off the input.  Returns 0 when a line was taken,
 * -1 when more input is needed or the session has moved on.
 */
static int
mta_read_line(struct mta_session *s)
{
	struct evbuffer		*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr	 eol;
	struct smtp_reply_line	 r;
	const struct mta_state_entry *e;
	char			 esc[LOG_ESCAPE_SIZE];
	size_t			 eol_len, len, i;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) > SMTP_TEXT_LINE_MAX) {
			mta_protocol_error(s, "reply line too long");
			return -1;
		}
		return -1;
	}
	len = (size_t)eol.pos + eol_len;
	if (len > SMTP_TEXT_LINE_MAX) {
		mta_protocol_error(s, "reply line too long");
		return -1;
	}
	evbuffer_remove(in, mta_line, len);
	len = (size_t)eol.pos;
	mta_line[len] = '\0';
	for (i = 0; i < len; i++) {
		if (mta_line[i] == '\0')
			mta_line[i] = '?';
	}
	if (log_is_debug())
		log_debug("mta %s: <<< %s", s->relay,
		    log_escape(esc, sizeof esc, mta_line, len));
	if (smtp_parse_reply(mta_line, &r) == -1) {
		mta_protocol_error(s, "malformed reply");
		return -1;
	}
	if (s->reply_lines > 0 && r.code != s->reply_code) {
		mta_protocol_error(s, "reply codes differ between lines");
		return -1;
	}
	if (s->reply_lines >= MTA_REPLY_LINES_MAX) {
		mta_protocol_error(s, "too many reply lines");
		return -1;
	}
	if (s->reply_lines++ == 0) {
		s->reply_code = r.code;
		s->reply_len = 0;
		s->reply[0] = '\0';
	}
	mta_reply_add(s, &r);
	if (s->reply_lines > 1 && (s->state == MTA_STATE_EHLO ||
	    s->state == MTA_STATE_LHLO) && r.code / 100 == 2)
		mta_ehlo_line(s, r.text);
	if (r.more)
		return 0;
	s->reply_lines = 0;
	e = &mta_states[s->state];
	if (e->reply == NULL)
		panic("mta_read_line: reply in state %s", e->name);
	e->reply(s);
	return 0;
}

/* Work through buffered replies while one is awaited. */
static void
mta_process(struct mta_session *s)
{
	struct bufferevent	*bev = s->bev;

	while (s->bev == bev && bev != NULL && mta_states[s->state].reads &&
	    mta_states[s->state].reply != NULL) {
		if (mta_read_line(s) == -1)
			return;
	}
}

static void
mta_read_cb(struct bufferevent *bev, void *arg)
{
	mta_process(arg);
}

/* Output drained below its low-water mark: more body, or a reply that
 * came while we were writing. */
static void
mta_write_cb(struct bufferevent *bev, void *arg)
{
	struct mta_session	*s = arg;

	direct_written(&s->direct);
	if (s->state != MTA_STATE_BODY)
		return;
	mta_body_fill(s);
	if ((s->state == MTA_STATE_EOM || s->state == MTA_STATE_BDAT) &&
	    s->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		mta_process(s);
}

/* Connected, handshaken, timed out, dropped: all come through here. */
static void
mta_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mta_session	*s = arg;
	struct dlv_status	 st;
	const char		*doing = mta_states[s->state].doing;
	char			 why[TLS_ERROR_SIZE];
	int			 error;

	switch (s->state) {
	case MTA_STATE_CONNECT:
		if (what & BEV_EVENT_CONNECTED) {
			log_debug("mta %s: connected", s->relay);
			direct_attach(&s->direct, s->bev);
			mta_enter_state(s, MTA_STATE_GREETING);
			return;
		}
		error = EVUTIL_SOCKET_ERROR();
		if ((what & BEV_EVENT_TIMEOUT) || error == 0)
			error = ETIMEDOUT;
		mta_connect_failed(s, error);
		return;
	case MTA_STATE_TLS:
		if (what & BEV_EVENT_CONNECTED) {
			mta_tls_done(s);
			return;
		}
		if (what & BEV_EVENT_TIMEOUT)
			util_strlcpy(why, "timed out", sizeof why);
		else
			tls_error(bev, why, sizeof why);
		mta_tls_failed(s, why);
		return;
	case MTA_STATE_QUIT:
		mta_quit_done(s);
		return;
	default:
		break;
	}
	if (what & BEV_EVENT_TIMEOUT)
		dlv_status_fill(&st, DLV_TEMP, "4.4.2", "conversation with %s "
		    "timed out while %s", s->peer, doing);
	else
		dlv_status_fill(&st, DLV_TEMP, "4.4.2", "lost connection with "
		    "%s while %s", s->peer, doing);
	mta_fail(s, &st, 0);
}

static void
mta_free(struct mta_session *s)
{
	mta_conn_drop(s);
	event_free(s->ev);
	mime_conv_free(s->mime);
	free(s->helo);
	free(s->name);
	free(s->auth_user);
	if (s->auth_pass != NULL) {
		OPENSSL_cleanse(s->auth_pass, strlen(s->auth_pass));
		free(s->auth_pass);
	}
	free(s->targets);
	free(s);
}

/*
 * The deferred work, run from the top of the loop so that the owner is
 * never called back from inside its own call.  Nothing here touches the
 * session after a callback except the closing loop, which the owner
 * cannot free from under it (mta_session_quit() only marks it then).
 */
static void
mta_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_session	*s = arg;
	struct dlv_tx		*tx;
	enum mta_defer		 todo = s->defer;

	s->defer = MTA_DEFER_NONE;
	switch (todo) {
	case MTA_DEFER_NONE:
		break;
	case MTA_DEFER_NEXT:
		mta_next(s);
		break;
	case MTA_DEFER_READY:
		s->cb.ready(s, s->arg);
		break;
	case MTA_DEFER_DONE:
		tx = s->tx;
		s->tx = NULL;
		s->cb.done(s, tx, s->arg);
		break;
	case MTA_DEFER_CLOSED:
		while ((tx = s->tx) != NULL && !(s->flags & MTA_F_QUIT)) {
			s->tx = NULL;
			mta_tx_set_rest(tx, &s->st);
			s->cb.done(s, tx, s->arg);
		}
		if (!(s->flags & MTA_F_QUIT))
			s->cb.closed(s, &s->st, s->arg);
		mta_free(s);
		break;
	case MTA_DEFER_FREE:
		mta_free(s);
		break;
	}
}

/* A new session: connect to the first address; callbacks come later. */
static time_t
mta_session_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* What ternctl sessions shows of a connection. */
void
mta_session_info(const struct mta_session *s, struct sessinfo *si)
{
	time_t	now = mta_session_now();

	si->id = NULL;
	si->peer = s->relay[0] != '\0' ? s->relay : s->name;
	si->state = mta_states[s->state].name;
	si->age = now > s->opened ? (uint64_t)(now - s->opened) : 0;
	si->bytes_in = s->bytes.in;
	si->bytes_out = s->bytes.out;
	si->tls = s->bev != NULL && tls_is_tls(s->bev) ?
	    tls_version(s->bev) : NULL;
}

struct mta_session *
mta_session_new(struct event_base *base,
    const struct mta_session_params *params, const struct mta_session_cb *cb,
    void *arg)
{
	struct mta_session	*s;

	if (mta_tls_ctx == NULL &&
	    (params->starttls || params->tls_verify))
		panic("mta_session_new: mta_session_init was not called");
	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->cb = *cb;
	s->arg = arg;
	s->opened = mta_session_now();
	if ((s->ev = evtimer_new(base, mta_defer_cb, s)) == NULL)
		fatalx("evtimer_new failed");
	s->helo = xstrdup(params->helo);
	s->name = xstrdup(params->name);
	if (params->auth_user != NULL) {
		s->auth_user = xstrdup(params->auth_user);
		s->auth_pass = xstrdup(params->auth_pass != NULL ?
		    params->auth_pass : "");
	}
	s->ntargets = params->ntargets;
	s->targets = xreallocarray(NULL, s->ntargets > 0 ? s->ntargets : 1,
	    sizeof *s->targets);
	if (s->ntargets > 0)
		memcpy(s->targets, params->targets,
		    s->ntargets * sizeof *s->targets);
	s->port = params->port;
	s->lmtp = params->lmtp;
	s->starttls = params->starttls && !params->lmtp;
	s->tls_verify = params->tls_verify;
	s->connect_timeout = params->connect_timeout;
	s->reply_timeout = params->reply_timeout;
	s->data_timeout = params->data_timeout;

	snprintf(s->relay, sizeof s->relay, "%s", s->name);
	util_strlcpy(s->peer, s->name, sizeof s->peer);
	if (s->ntargets == 0) {
		dlv_status_fill(&s->st, DLV_TEMP, "4.4.1", "no address to "
		    "connect to for %s", s->name);
		s->state = MTA_STATE_CLOSED;
		mta_defer(s, MTA_DEFER_CLOSED);
		return s;
	}
	mta_connect(s);
	return s;
}

/*
 * The owner is done with the session.  Idle, it says QUIT and waits a
 * moment for the answer; otherwise the connection is simply dropped.
 * Either way no callback comes any more and the session frees itself.
 */
void
mta_session_quit(struct mta_session *s)
{
	s->flags |= MTA_F_QUIT;
	if (s->state == MTA_STATE_CLOSED) {
		/* The closing callbacks see the flag and free. */
		return;
	}
	s->defer = MTA_DEFER_NONE;
	evtimer_del(s->ev);
	s->tx = NULL;
	if (s->state == MTA_STATE_READY && s->bev != NULL) {
		mta_quit_start(s, MTA_AFTER_FREE);
		return;
	}
	if (s->state == MTA_STATE_QUIT) {
		s->after_quit = MTA_AFTER_FREE;
		return;
	}
	mta_conn_drop(s);
	mta_enter_state(s, MTA_STATE_CLOSED);
	mta_defer(s, MTA_DEFER_FREE);
}

/* The loop has stopped: drop the connection and free, no callbacks. */
void
mta_session_free(struct mta_session *s)
{
	mta_free(s);
}

/*
 * Idle and no longer wanted: say QUIT and close; closed() comes once the
 * connection is really gone, so the owner can count it until then.
 */
void
mta_session_close(struct mta_session *s)
{
	if (s->state != MTA_STATE_READY || s->bev == NULL)
		panic("mta_session_close: session not idle");
	dlv_status_fill(&s->st, DLV_TEMP, "4.4.2", "connection with %s "
	    "closed after use", s->peer);
	evtimer_del(s->ev);
	mta_quit_start(s, MTA_AFTER_CLOSE);
}

/*
 * Is the connection gone, with closed() to come?  A done() can ask, to
 * know not to hand the session another transaction.
 */
int
mta_session_is_closing(const struct mta_session *s)
{
	return s->state == MTA_STATE_CLOSED;
}

/* "host[ip]:port" of the peer now or last talked to. */
const char *
mta_session_relay(const struct mta_session *s)
{
	return s->relay;
}

int
mta_session_tls(const struct mta_session *s)
{
	return (s->flags & MTA_F_TLS) != 0;
}
