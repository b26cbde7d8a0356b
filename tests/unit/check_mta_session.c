/*
 * check_mta_session.c: one outbound SMTP connection against fake servers
 * running in the same loop on loopback.  A fake server answers a script
 * line by line, records every octet the client sent, undoes the
 * dot-stuffing of the message it receives, and counts the commands that
 * arrived before the reply to the one before them had gone out (so
 * pipelining shows, and lockstep can be proved).  It can speak TLS after
 * STARTTLS with a certificate made here, which the client trusts through
 * SSL_CERT_FILE.  Every test also checks that no callback comes from
 * inside mta_session_new() or mta_session_send(), none after
 * mta_session_quit(), and that the session leaves nothing on the loop.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mta_session.h"
#include "smtp_parse.h"
#include "util.h"

#define HELO		"client.test"
#define MX1		"mx1.test"
#define MX2		"mx2.test"
#define IP1		"127.0.0.1"
#define IP2		"127.0.0.2"
#define SENDER		"sender@client.test"
#define MAX_CONNS	4
#define MAX_FAKES	2
#define SAFETY_MS	5000

/* Script step flags. */
#define FS_CLOSE	0x01	/* close once the reply is out */
#define FS_TLS		0x02	/* start TLS once the reply is out */
#define FS_CLOSE_LATER	0x04	/* close 200 ms after the reply is out */
#define FS_THEN		0x08	/* 50 ms later, the next step's reply
				   (its cmd NULL) without a command */

/*
 * One step of a fake server's script: the line the client must send
 * (a prefix; NULL for the greeting at connect) and the raw reply, NULL
 * for none.  "." is the end of message data.
 */
struct step {
	const char	*cmd;
	const char	*reply;
	int		 flags;
};

struct fake {
	struct event_base	*base;
	evutil_socket_t		 lfd;
	struct event		*lev;
	struct event		*delay_ev;
	uint16_t		 port;
	const struct step	*script;
	size_t			 nsteps;
	size_t			 pos;
	int			 delay_ms;	/* before each reply */
	size_t			 drop_after;	/* close after this much data */

	struct bufferevent	*bev;
	const struct step	*pending;	/* reply waiting for delay */
	int			 data_mode;
	int			 bdat_mode;	/* reading a BDAT chunk */
	size_t			 bdat_left;
	char			 bdat_cmd[64];
	int			 close_pending;
	int			 close_later;
	int			 tls_pending;

	int			 connections;
	struct util_buf		 got[MAX_CONNS];	/* what came in */
	struct util_buf		 data;		/* the last message, raw */
	struct util_buf		 message;	/* ...and unstuffed */
	int			 overlaps;
	int			 quits;
	int			 errors;
	char			 error[512];
	char			 sni[256];
	int			 tls_done;
};

struct client {
	struct mta_session_params params;
	struct dns_target	 targets[3];
	struct mta_session	*s;
	struct dlv_tx		*txs[4];
	size_t			 ntxs;
	size_t			 next;
	int			 in_call;	/* inside new() or send() */
	int			 reentered;
	int			 finished;	/* closed() came, or we quit */
	int			 quit;
	int			 timed_out;
	int			 calls_after_end;
	char			 order[16];	/* R, D, C in order */
	struct dlv_status	 closed_st;
	int			 tls_at_ready;
	int			 stay_idle;	/* no quit when out of work */
	char			 relay[DLV_RELAY_SIZE];
};

/* A transaction with its recipients and content file. */
struct ttx {
	struct dlv_tx	 tx;
	struct dlv_rcpt	 rcpts[8];
};

static struct event_base	*base;
static struct fake		*fakes[MAX_FAKES];
static size_t			 nfakes;
static struct client		*current;
static SSL_CTX			*server_ctx;
static char			 cert_path[64];

static void	fake_process(struct fake *);
static void	fake_read_cb(struct bufferevent *, void *);
static void	fake_write_cb(struct bufferevent *, void *);
static void	fake_event_cb(struct bufferevent *, short, void *);

/* The run ends once the client is through and no fake has a peer. */
static void
check_finished(void)
{
	size_t	i;

	if (current == NULL || !current->finished)
		return;
	for (i = 0; i < nfakes; i++) {
		if (fakes[i]->bev != NULL)
			return;
	}
	event_base_loopbreak(base);
}

static void
fake_fail(struct fake *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fake_fail(struct fake *f, const char *fmt, ...)
{
	va_list	ap;

	if (f->errors++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(f->error, sizeof f->error, fmt, ap);
	va_end(ap);
}

static void
fake_conn_close(struct fake *f)
{
	if (f->bev == NULL)
		return;
	bufferevent_free(f->bev);
	f->bev = NULL;
	f->pending = NULL;
	f->data_mode = 0;
	f->close_pending = 0;
	f->close_later = 0;
	f->tls_pending = 0;
	evtimer_del(f->delay_ev);
	check_finished();
}

static struct util_buf *
fake_got(struct fake *f)
{
	return &f->got[f->connections - 1];
}

/* The reply is out: close or go TLS when asked to. */
static void
fake_after_reply(struct fake *f)
{
	SSL			*ssl;
	evutil_socket_t		 fd;

	if (f->close_pending) {
		fake_conn_close(f);
		return;
	}
	if (f->close_later) {
		struct timeval	tv = { 0, 200000 };

		f->close_later = 0;
		evtimer_add(f->delay_ev, &tv);	/* pending NULL: close */
		return;
	}
	if (!f->tls_pending)
		return;
	f->tls_pending = 0;
	if (evbuffer_get_length(bufferevent_get_input(f->bev)) > 0)
		fake_fail(f, "client sent data after STARTTLS");
	fd = bufferevent_getfd(f->bev);
	bufferevent_setfd(f->bev, -1);
	bufferevent_free(f->bev);
	ssl = SSL_new(server_ctx);
	f->bev = bufferevent_openssl_socket_new(f->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(f->bev);
	bufferevent_openssl_set_allow_dirty_shutdown(f->bev, 1);
	bufferevent_setcb(f->bev, fake_read_cb, fake_write_cb, fake_event_cb,
	    f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
}

static void
fake_send(struct fake *f, const struct step *st)
{
	struct evbuffer	*out = bufferevent_get_output(f->bev);

	if (evbuffer_get_length(bufferevent_get_input(f->bev)) > 0 &&
	    !f->data_mode)
		f->overlaps++;
	if (st->reply != NULL) {
		evbuffer_add(out, st->reply, strlen(st->reply));
		if (strncmp(st->reply, "354", 3) == 0) {
			f->data_mode = 1;
			f->data.len = 0;
		}
	}
	if (st->flags & FS_CLOSE)
		f->close_pending = 1;
	if (st->flags & FS_CLOSE_LATER)
		f->close_later = 1;
	if (st->flags & FS_TLS)
		f->tls_pending = 1;
	if ((st->flags & FS_THEN) && f->pos < f->nsteps &&
	    f->script[f->pos].cmd == NULL) {
		struct timeval	tv = { 0, 50000 };

		f->pending = &f->script[f->pos++];
		evtimer_add(f->delay_ev, &tv);
	}
	if (evbuffer_get_length(out) == 0)
		fake_after_reply(f);
}

static void
fake_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fake		*f = arg;
	const struct step	*st = f->pending;

	f->pending = NULL;
	if (st == NULL) {
		fake_conn_close(f);
		return;
	}
	fake_send(f, st);
	fake_process(f);
}

/* Answer per the script, now or after the configured delay. */
static void
fake_reply(struct fake *f, const struct step *st)
{
	struct timeval	tv;

	if (f->delay_ms == 0) {
		fake_send(f, st);
		return;
	}
	f->pending = st;
	tv.tv_sec = 0;
	tv.tv_usec = f->delay_ms * 1000;
	evtimer_add(f->delay_ev, &tv);
}

static const struct step fake_quit = { "QUIT", "221 2.0.0 Bye\r\n",
    FS_CLOSE };
static const struct step fake_unexpected = { NULL,
    "500 5.5.2 unexpected\r\n", 0 };

static void
fake_command(struct fake *f, const char *line)
{
	const struct step	*st = NULL;

	if (f->pos < f->nsteps && f->script[f->pos].cmd != NULL &&
	    strncmp(line, f->script[f->pos].cmd,
	    strlen(f->script[f->pos].cmd)) == 0)
		st = &f->script[f->pos++];
	else if (strcmp(line, "QUIT") == 0) {
		f->quits++;
		st = &fake_quit;
	} else {
		fake_fail(f, "step %zu: got \"%s\", want \"%s\"", f->pos,
		    line, f->pos < f->nsteps && f->script[f->pos].cmd != NULL ?
		    f->script[f->pos].cmd : "(nothing)");
		st = &fake_unexpected;
	}
	fake_reply(f, st);
}

/* Message data: collect to CRLF.CRLF, then answer the "." step. */
static int
fake_data(struct fake *f)
{
	struct evbuffer		*in = bufferevent_get_input(f->bev);
	struct smtp_data	 dot;
	size_t			 n = evbuffer_get_length(in), consumed, outlen;
	char			*out;
	int			 rc;

	if (n == 0)
		return -1;
	util_buf_add(&f->data, evbuffer_pullup(in, -1), n);
	util_buf_add(fake_got(f), evbuffer_pullup(in, -1), n);
	evbuffer_drain(in, n);
	if (f->drop_after > 0 && f->data.len >= f->drop_after) {
		fake_conn_close(f);
		return -1;
	}
	if (!(f->data.len == 3 && memcmp(f->data.data, ".\r\n", 3) == 0) &&
	    !(f->data.len >= 5 && memcmp(f->data.data + f->data.len - 5,
	    "\r\n.\r\n", 5) == 0))
		return -1;
	/* Undo the stuffing with the receiving side's own machine. */
	out = xmalloc(f->data.len + 1);
	smtp_data_init(&dot, 0);
	rc = smtp_data_feed(&dot, f->data.data, f->data.len, &consumed, out,
	    &outlen);
	if (rc != SMTP_DATA_END || consumed != f->data.len ||
	    dot.error != SMTP_DATA_OK)
		fake_fail(f, "bad message data (rc %d, error %d)", rc,
		    dot.error);
	f->message.len = 0;
	util_buf_add(&f->message, out, outlen);
	free(out);
	f->data_mode = 0;
	fake_command(f, ".");
	return 0;
}

static void
fake_process(struct fake *f)
{
	struct evbuffer	*in;
	char		*line;
	size_t		 len;

	while (f->bev != NULL && f->pending == NULL && !f->close_pending &&
	    !f->tls_pending) {
		if (f->data_mode) {
			if (fake_data(f) == -1)
				return;
			continue;
		}
		in = bufferevent_get_input(f->bev);
		if (f->bdat_mode) {
			/* A chunk: its octets as they come, then the reply. */
			len = evbuffer_get_length(in);
			if (len > f->bdat_left)
				len = f->bdat_left;
			if (len == 0 && f->bdat_left > 0)
				return;
			util_buf_add(&f->message, evbuffer_pullup(in, -1), len);
			util_buf_add(fake_got(f), evbuffer_pullup(in, -1), len);
			evbuffer_drain(in, len);
			if ((f->bdat_left -= len) == 0) {
				f->bdat_mode = 0;
				fake_command(f, f->bdat_cmd);
			}
			continue;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF_STRICT);
		if (line == NULL)
			return;
		util_buf_add(fake_got(f), line, len);
		util_buf_adds(fake_got(f), "\r\n");
		if (strncmp(line, "BDAT ", 5) == 0) {
			f->bdat_mode = 1;
			f->bdat_left = strtoul(line + 5, NULL, 10);
			f->message.len = 0;
			util_buf_add(&f->message, "", 0);
			snprintf(f->bdat_cmd, sizeof f->bdat_cmd, "%s", line);
			free(line);
			continue;
		}
		fake_command(f, line);
		free(line);
	}
}

static void
fake_read_cb(struct bufferevent *bev, void *arg)
{
	fake_process(arg);
}

static void
fake_write_cb(struct bufferevent *bev, void *arg)
{
	struct fake	*f = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
	    (f->close_pending || f->close_later || f->tls_pending))
		fake_after_reply(f);
}

static void
fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fake	*f = arg;
	SSL		*ssl;
	const char	*sni;

	if (what & BEV_EVENT_CONNECTED) {
		ssl = bufferevent_openssl_get_ssl(bev);
		if ((sni = SSL_get_servername(ssl,
		    TLSEXT_NAMETYPE_host_name)) != NULL)
			util_strlcpy(f->sni, sni, sizeof f->sni);
		f->tls_done = 1;
		return;
	}
	fake_conn_close(f);
}

static void
fake_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct fake	*f = arg;
	evutil_socket_t	 fd;

	if ((fd = accept(lfd, NULL, NULL)) == -1)
		return;
	if (f->bev != NULL || f->connections == MAX_CONNS) {
		fake_fail(f, "a second connection at once");
		close(fd);
		return;
	}
	evutil_make_socket_nonblocking(fd);
	f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(f->bev);
	bufferevent_setcb(f->bev, fake_read_cb, fake_write_cb, fake_event_cb,
	    f);
	bufferevent_enable(f->bev, EV_READ | EV_WRITE);
	f->connections++;
	if (f->pos < f->nsteps && f->script[f->pos].cmd == NULL)
		fake_send(f, &f->script[f->pos++]);
}

/* A fake server on ip, port 0 for any; its script must outlive it. */
static struct fake *
fake_new(const char *ip, uint16_t port, const struct step *script,
    size_t nsteps)
{
	struct fake		*f;
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof sin;
	int			 one = 1;

	ck_assert_int_lt(nfakes, MAX_FAKES);
	f = xcalloc(1, sizeof *f);
	f->base = base;
	f->script = script;
	f->nsteps = nsteps;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(f->lfd, 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	ck_assert_msg(bind(f->lfd, (struct sockaddr *)&sin, sizeof sin) == 0,
	    "bind %s:%u: %s", ip, port, strerror(errno));
	ck_assert_int_eq(listen(f->lfd, 8), 0);
	ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sin, &len),
	    0);
	f->port = ntohs(sin.sin_port);
	evutil_make_socket_nonblocking(f->lfd);
	f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST,
	    fake_accept_cb, f);
	event_add(f->lev, NULL);
	f->delay_ev = evtimer_new(base, fake_delay_cb, f);
	fakes[nfakes++] = f;
	return f;
}

static void
fake_stop(struct fake *f)
{
	fake_conn_close(f);
	if (f->lev != NULL) {
		event_free(f->lev);
		f->lev = NULL;
		close(f->lfd);
	}
}

static void
fake_free(struct fake *f)
{
	size_t	i;

	fake_stop(f);
	event_free(f->delay_ev);
	for (i = 0; i < MAX_CONNS; i++)
		free(f->got[i].data);
	free(f->data.data);
	free(f->message.data);
	free(f);
}

/* What the fake got on connection i (from 0), as a string. */
static const char *
fake_transcript(struct fake *f, int i)
{
	static const char	empty[] = "";

	if (i >= f->connections || f->got[i].data == NULL)
		return empty;
	return f->got[i].data;
}

static void
fake_assert_clean(struct fake *f)
{
	ck_assert_msg(f->errors == 0, "fake server: %s", f->error);
	ck_assert_msg(f->pos == f->nsteps, "fake server: script stopped at "
	    "step %zu of %zu", f->pos, f->nsteps);
}

/* The client side: the owner's callbacks. */
static void
client_next(struct client *c)
{
	if (c->next < c->ntxs) {
		c->in_call = 1;
		mta_session_send(c->s, c->txs[c->next++]);
		c->in_call = 0;
		return;
	}
	if (c->stay_idle)
		return;
	c->quit = 1;
	c->finished = 1;
	mta_session_quit(c->s);
	check_finished();
}

static void
client_note(struct client *c, char what)
{
	size_t	n = strlen(c->order);

	if (c->in_call)
		c->reentered++;
	if (c->quit)
		c->calls_after_end++;
	if (n + 1 < sizeof c->order) {
		c->order[n] = what;
		c->order[n + 1] = '\0';
	}
}

static void
client_ready(struct mta_session *s, void *arg)
{
	struct client	*c = arg;

	client_note(c, 'R');
	ck_assert_ptr_eq(s, c->s);
	c->tls_at_ready = mta_session_tls(s);
	util_strlcpy(c->relay, mta_session_relay(s), sizeof c->relay);
	client_next(c);
}

static void
client_done(struct mta_session *s, struct dlv_tx *tx, void *arg)
{
	struct client	*c = arg;
	size_t		 i;

	client_note(c, 'D');
	ck_assert_ptr_eq(tx, c->txs[c->next - 1]);
	for (i = 0; i < tx->nrcpts; i++)
		ck_assert_int_ne(tx->rcpts[i].st.result, DLV_NONE);
	if (!mta_session_is_closing(s))
		client_next(c);
}

static void
client_closed(struct mta_session *s, const struct dlv_status *st, void *arg)
{
	struct client	*c = arg;

	client_note(c, 'C');
	c->closed_st = *st;
	c->finished = 1;
	check_finished();
}

static const struct mta_session_cb client_cb = {
	client_ready, client_done, client_closed
};

/* A client for the destination mx1.test at the given addresses. */
static void
client_init(struct client *c, uint16_t port, const char *ip1,
    const char *ip2)
{
	const char	*ips[2] = { ip1, ip2 };
	const char	*hosts[2] = { MX1, MX2 };
	struct sockaddr_in *sin;
	size_t		 i;

	memset(c, 0, sizeof *c);
	for (i = 0; i < 2 && ips[i] != NULL; i++) {
		sin = (struct sockaddr_in *)&c->targets[i].ss;
		util_strlcpy(c->targets[i].host, hosts[i],
		    sizeof c->targets[i].host);
		sin->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ips[i], &sin->sin_addr),
		    1);
		c->targets[i].sslen = sizeof *sin;
	}
	c->params.helo = HELO;
	c->params.name = MX1;
	c->params.targets = c->targets;
	c->params.ntargets = i;
	c->params.port = port;
	c->params.connect_timeout = 2000;
	c->params.reply_timeout = 2000;
	c->params.data_timeout = 2000;
}

static void
safety_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client	*c = arg;

	c->timed_out = 1;
	event_base_loopbreak(base);
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/*
 * Run the loop until nothing but a guard timer is left on it; within
 * three seconds, a session that has quit or closed must be gone.
 */
static void
loop_dry(void)
{
	struct timeval	 tv = { 3, 0 };
	struct event	*guard;
	int		 fired = 0, left;

	guard = evtimer_new(base, guard_cb, &fired);
	evtimer_add(guard, &tv);
	while (!fired && event_base_get_num_events(base,
	    EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE) > 1)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	left = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED |
	    EVENT_BASE_COUNT_ACTIVE);
	ck_assert_msg(!fired && left == 0, "%d events left on the loop",
	    left);
}

/*
 * Start the session and run the loop until the client is through and
 * the fakes have no peer; then stop the fakes and let the session finish
 * on its own: the loop must run dry, leaving nothing behind.
 */
static void
client_run(struct client *c)
{
	struct timeval	 tv = { SAFETY_MS / 1000, 0 };
	struct event	*safety;
	size_t		 i;
	int		 calls;

	current = c;
	safety = evtimer_new(base, safety_cb, c);
	evtimer_add(safety, &tv);
	c->in_call = 1;
	c->s = mta_session_new(base, &c->params, &client_cb, c);
	c->in_call = 0;
	ck_assert_ptr_nonnull(c->s);
	event_base_dispatch(base);
	event_free(safety);
	ck_assert_msg(!c->timed_out, "timed out: order \"%s\"", c->order);
	ck_assert_int_eq(c->reentered, 0);

	for (i = 0; i < nfakes; i++)
		fake_stop(fakes[i]);
	calls = (int)strlen(c->order);
	loop_dry();
	ck_assert_int_eq((int)strlen(c->order), calls);
	ck_assert_int_eq(c->calls_after_end, 0);
	current = NULL;
}

/* A transaction: sender, recipients, content in an unlinked file. */
static void
ttx_init(struct ttx *t, const char *sender, const char *const *rcpts,
    const char *content, size_t len)
{
	char	path[] = "/tmp/check_mta_msgXXXXXX";
	size_t	i, off;
	ssize_t	n;

	memset(t, 0, sizeof *t);
	t->tx.sender = sender;
	for (i = 0; rcpts[i] != NULL; i++)
		t->rcpts[i].addr = rcpts[i];
	t->tx.rcpts = t->rcpts;
	t->tx.nrcpts = i;
	t->tx.msgfd = mkstemp(path);
	ck_assert_int_ge(t->tx.msgfd, 0);
	unlink(path);
	for (off = 0; off < len; off += (size_t)n) {
		n = write(t->tx.msgfd, content + off, len - off);
		ck_assert_int_gt(n, 0);
	}
	t->tx.size = len;
}

static void
ttx_free(struct ttx *t)
{
	close(t->tx.msgfd);
}

/* The reference stuffing: a "." at the start of a line doubles. */
static char *
stuff(const char *content, size_t len)
{
	struct util_buf	b = { NULL, 0, 0 };
	size_t		i;
	int		bol = 1;

	util_buf_adds(&b, "");
	for (i = 0; i < len; i++) {
		if (bol && content[i] == '.')
			util_buf_add(&b, ".", 1);
		util_buf_add(&b, &content[i], 1);
		bol = content[i] == '\n';
	}
	return b.data;
}

static void
assert_status(const struct dlv_status *st, enum dlv_result result,
    const char *status, const char *text)
{
	ck_assert_int_eq(st->result, result);
	ck_assert_str_eq(st->status, status);
	if (text != NULL)
		ck_assert_str_eq(st->text, text);
}

static const char *const two_rcpts[] = { "a@mx1.test", "b@mx1.test", NULL };
static const char *const one_rcpt[] = { "a@mx1.test", NULL };

#define NSTEPS(s)	(sizeof(s) / sizeof((s)[0]))

#define GREET		{ NULL, "220 mx1.test ESMTP fake\r\n", 0 }
#define EHLO_PIPE	{ "EHLO " HELO, "250-mx1.test hello\r\n" \
			    "250-PIPELINING\r\n250-SIZE 1000000\r\n" \
			    "250 8BITMIME\r\n", 0 }
#define EHLO_PLAIN	{ "EHLO " HELO, "250-mx1.test hello\r\n" \
			    "250 8BITMIME\r\n", 0 }

/* A message with "." lines, one of them exactly at the 64 KiB mark. */
static char *
big_content(size_t *lenp)
{
	struct util_buf	b = { NULL, 0, 0 };
	size_t		line;

	util_buf_adds(&b, "Subject: big\r\n\r\n.first\r\n");
	while (b.len < 65536 - 100)
		util_buf_adds(&b, "0123456789012345678901234567890123456789"
		    "012345678901234567890123456789012345678\r\n");
	while (b.len < 65536 - 2)
		util_buf_adds(&b, "x");
	util_buf_adds(&b, "\r\n");
	ck_assert_uint_eq(b.len, 65536);
	util_buf_adds(&b, ".at the chunk boundary\r\n..\r\n.\r\n");
	for (line = 0; b.len < 400 * 1024; line++)
		util_buf_printf(&b, "%s line %zu\r\n", line % 7 == 0 ? "." :
		    "text", line);
	util_buf_adds(&b, "last line\r\n");
	*lenp = b.len;
	return b.data;
}

START_TEST(test_pipelined)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:<" SENDER ">", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok: queued as ABC\r\n", 0 },
	};
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	struct util_buf	 want = { NULL, 0, 0 };
	char		*content, *stuffed, relay[DLV_RELAY_SIZE];
	size_t		 len, i;

	content = big_content(&len);
	f = fake_new(IP1, 0, script, NSTEPS(script));
	f->delay_ms = 10;
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, len);
	t.tx.body_8bit = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	stuffed = stuff(content, len);
	util_buf_printf(&want, "EHLO " HELO "\r\nMAIL FROM:<" SENDER "> "
	    "SIZE=%zu BODY=8BITMIME\r\nRCPT TO:<a@mx1.test>\r\n"
	    "RCPT TO:<b@mx1.test>\r\nDATA\r\n%s.\r\nQUIT\r\n", len, stuffed);
	ck_assert_str_eq(fake_transcript(f, 0), want.data);
	ck_assert_uint_eq(f->message.len, len);
	ck_assert(memcmp(f->message.data, content, len) == 0);
	/* MAIL, RCPT, RCPT and DATA came in one go. */
	ck_assert_int_ge(f->overlaps, 3);
	ck_assert_int_eq(f->quits, 1);

	snprintf(relay, sizeof relay, MX1 "[" IP1 "]:%u", f->port);
	ck_assert_str_eq(c.relay, relay);
	for (i = 0; i < 2; i++) {
		assert_status(&t.rcpts[i].st, DLV_OK, "2.0.0", MX1 "[" IP1
		    "] said: 250 2.0.0 Ok: queued as ABC (in reply to end of "
		    "DATA command)");
		ck_assert_str_eq(t.rcpts[i].relay, relay);
	}
	ttx_free(&t);
	free(want.data);
	free(stuffed);
	free(content);
}
END_TEST

/*
 * CHUNKING: one BDAT with the octets as they are (dot-led lines and all),
 * sent once every RCPT is answered; none when every RCPT was refused.
 */
START_TEST(test_bdat)
{
	static const char content[] = ".\r\n..\r\nbody\xe9\r\n.x\r\n";
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250-PIPELINING\r\n"
		    "250-8BITMIME\r\n250 CHUNKING\r\n", 0 },
		{ "MAIL FROM:<" SENDER "> BODY=8BITMIME", "250 2.1.0 Ok\r\n",
		    0 },
		{ "RCPT TO:<a@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@mx1.test>", "550 5.1.1 no\r\n", 0 },
		{ "BDAT", "250 2.0.0 Ok: chunked\r\n", 0 },
	};
	static const struct step refused[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250-PIPELINING\r\n"
		    "250-8BITMIME\r\n250 CHUNKING\r\n", 0 },
		{ "MAIL FROM:<" SENDER "> BODY=8BITMIME", "250 2.1.0 Ok\r\n",
		    0 },
		{ "RCPT TO:<a@mx1.test>", "550 5.1.1 no\r\n", 0 },
		{ "RCPT TO:<b@mx1.test>", "550 5.1.1 no\r\n", 0 },
	};
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	struct util_buf	 want = { NULL, 0, 0 };

	f = _i == 0 ? fake_new(IP1, 0, script, NSTEPS(script)) :
	    fake_new(IP1, 0, refused, NSTEPS(refused));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	t.tx.body_8bit = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	util_buf_adds(&want, "EHLO " HELO "\r\nMAIL FROM:<" SENDER "> "
	    "BODY=8BITMIME\r\nRCPT TO:<a@mx1.test>\r\nRCPT TO:<b@mx1.test>"
	    "\r\n");
	if (_i == 0) {
		util_buf_printf(&want, "BDAT %zu LAST\r\n%s", sizeof content -
		    1, content);
		ck_assert_str_eq(f->message.data, content);
		assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", MX1 "[" IP1
		    "] said: 250 2.0.0 Ok: chunked (in reply to BDAT command)");
	} else
		assert_status(&t.rcpts[0].st, DLV_PERM, "5.1.1", NULL);
	assert_status(&t.rcpts[1].st, DLV_PERM, "5.1.1", NULL);
	util_buf_adds(&want, "QUIT\r\n");
	ck_assert_str_eq(fake_transcript(f, 0), want.data);
	ttx_free(&t);
	free(want.data);
}
END_TEST

/* Without PIPELINING every command waits for the last reply. */
START_TEST(test_lockstep)
{
	static const char content[] = ".\r\n..\r\nbody\r\n.x";
	static const struct step script[] = {
		GREET, EHLO_PLAIN,
		{ "MAIL FROM:<" SENDER "> BODY=8BITMIME", "250 2.1.0 Ok\r\n",
		    0 },
		{ "RCPT TO:<a@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	f->delay_ms = 20;
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	t.tx.body_8bit = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_int_eq(f->overlaps, 0);
	/* No SIZE offered: no SIZE parameter; the last line is ended. */
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> BODY=8BITMIME\r\nRCPT TO:<a@mx1.test>\r\n"
	    "RCPT TO:<b@mx1.test>\r\nDATA\r\n..\r\n...\r\nbody\r\n..x\r\n"
	    ".\r\nQUIT\r\n");
	ck_assert_str_eq(f->message.data, ".\r\n..\r\nbody\r\n.x\r\n");
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	assert_status(&t.rcpts[1].st, DLV_OK, "2.0.0", NULL);
	ttx_free(&t);
}
END_TEST

/* A second transaction on the same connection starts with RSET. */
START_TEST(test_two_transactions)
{
	static const char c1[] = "Subject: one\r\n\r\none\r\n";
	static const char c2[] = "Subject: two\r\n\r\ntwo\r\n";
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:<" SENDER "> SIZE=21", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 first\r\n", 0 },
		{ "RSET", "250 2.0.0 Ok\r\n", 0 },
		{ "MAIL FROM:<> SIZE=21", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<b@mx1.test>", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 second\r\n", 0 },
	};
	static const char *const rb[] = { "b@mx1.test", NULL };
	struct client	 c;
	struct ttx	 t1, t2;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t1, SENDER, one_rcpt, c1, sizeof c1 - 1);
	ttx_init(&t2, "", rb, c2, sizeof c2 - 1);
	c.txs[c.ntxs++] = &t1.tx;
	c.txs[c.ntxs++] = &t2.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_int_eq(f->connections, 1);
	ck_assert_str_eq(c.order, "RDD");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=21\r\nRCPT TO:<a@mx1.test>\r\n"
	    "DATA\r\nSubject: one\r\n\r\none\r\n.\r\n"
	    "RSET\r\nMAIL FROM:<> SIZE=21\r\nRCPT TO:<b@mx1.test>\r\n"
	    "DATA\r\nSubject: two\r\n\r\ntwo\r\n.\r\nQUIT\r\n");
	assert_status(&t1.rcpts[0].st, DLV_OK, "2.0.0", MX1 "[" IP1 "] said: "
	    "250 2.0.0 first (in reply to end of DATA command)");
	assert_status(&t2.rcpts[0].st, DLV_OK, "2.0.0", MX1 "[" IP1 "] said: "
	    "250 2.0.0 second (in reply to end of DATA command)");
	ttx_free(&t1);
	ttx_free(&t2);
}
END_TEST

/* Each recipient gets its own RCPT reply; only accepted ones the dot's. */
static void
mixed_rcpts(int pipelining)
{
	static const char content[] = "hello\r\n";
	static const struct step pipe_script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "450 4.2.0 mailbox busy\r\n", 0 },
		{ "RCPT TO:<c@", "550 5.1.1 no such user\r\n", 0 },
		{ "RCPT TO:<d@", "450 try later\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const struct step plain_script[] = {
		GREET, EHLO_PLAIN,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "450 4.2.0 mailbox busy\r\n", 0 },
		{ "RCPT TO:<c@", "550 5.1.1 no such user\r\n", 0 },
		{ "RCPT TO:<d@", "450 try later\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char *const rcpts[] = { "a@mx1.test", "b@mx1.test",
	    "c@mx1.test", "d@mx1.test", NULL };
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	if (pipelining)
		f = fake_new(IP1, 0, pipe_script, NSTEPS(pipe_script));
	else
		f = fake_new(IP1, 0, plain_script, NSTEPS(plain_script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	assert_status(&t.rcpts[1].st, DLV_TEMP, "4.2.0", MX1 "[" IP1 "] said: "
	    "450 4.2.0 mailbox busy (in reply to RCPT TO command)");
	assert_status(&t.rcpts[2].st, DLV_PERM, "5.1.1", MX1 "[" IP1 "] said: "
	    "550 5.1.1 no such user (in reply to RCPT TO command)");
	assert_status(&t.rcpts[3].st, DLV_TEMP, "4.0.0", MX1 "[" IP1 "] said: "
	    "450 try later (in reply to RCPT TO command)");
	ttx_free(&t);
}

START_TEST(test_mixed_rcpts)
{
	mixed_rcpts(_i);
}
END_TEST

/* MAIL refused: everyone gets that reply, and no body is sent. */
START_TEST(test_mail_refused)
{
	static const struct step pipe_script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "553 5.7.1 sender rejected\r\n", 0 },
		{ "RCPT TO:<a@", "503 5.5.1 need MAIL\r\n", 0 },
		{ "RCPT TO:<b@", "503 5.5.1 need MAIL\r\n", 0 },
		{ "DATA", "503 5.5.1 need RCPT\r\n", 0 },
	};
	static const struct step plain_script[] = {
		GREET, EHLO_PLAIN,
		{ "MAIL FROM:", "553 5.7.1 sender rejected\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	size_t		 i;

	if (_i)
		f = fake_new(IP1, 0, pipe_script, NSTEPS(pipe_script));
	else
		f = fake_new(IP1, 0, plain_script, NSTEPS(plain_script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	for (i = 0; i < 2; i++)
		assert_status(&t.rcpts[i].st, DLV_PERM, "5.7.1", MX1 "[" IP1
		    "] said: 553 5.7.1 sender rejected (in reply to MAIL FROM "
		    "command)");
	ck_assert_ptr_null(strstr(fake_transcript(f, 0), "x\r\n"));
	ttx_free(&t);
}
END_TEST

/* Nobody accepted, yet a pipelined DATA got 354: just the dot. */
START_TEST(test_no_rcpt_354)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "550 5.1.1 unknown\r\n", 0 },
		{ "DATA", "354 go ahead anyway\r\n", 0 },
		{ ".", "554 5.5.1 no valid recipients\r\n", 0 },
	};
	static const char content[] = "secret body\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=13\r\nRCPT TO:<a@mx1.test>\r\n"
	    "DATA\r\n.\r\nQUIT\r\n");
	assert_status(&t.rcpts[0].st, DLV_PERM, "5.1.1", NULL);
	ttx_free(&t);
}
END_TEST

/* The reply to the final dot decides: 451 TEMP, 554 PERM. */
START_TEST(test_final_dot)
{
	static const struct step s451[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "550 5.1.1 unknown\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "451 4.3.0 local error\r\n", 0 },
	};
	static const struct step s554[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "550 5.1.1 unknown\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "554 5.7.1 spam\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	if (_i == 0)
		f = fake_new(IP1, 0, s451, NSTEPS(s451));
	else
		f = fake_new(IP1, 0, s554, NSTEPS(s554));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	if (_i == 0)
		assert_status(&t.rcpts[0].st, DLV_TEMP, "4.3.0", MX1 "[" IP1
		    "] said: 451 4.3.0 local error (in reply to end of DATA "
		    "command)");
	else
		assert_status(&t.rcpts[0].st, DLV_PERM, "5.7.1", MX1 "[" IP1
		    "] said: 554 5.7.1 spam (in reply to end of DATA "
		    "command)");
	assert_status(&t.rcpts[1].st, DLV_PERM, "5.1.1", NULL);
	ttx_free(&t);
}
END_TEST

static const struct step ok_script[] = {
	GREET, EHLO_PIPE,
	{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
	{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
	{ "DATA", "354 go ahead\r\n", 0 },
	{ ".", "250 2.0.0 Ok\r\n", 0 },
};

/* 421 at the greeting: on to the second address, which works. */
START_TEST(test_greeting_421_fallback)
{
	static const struct step busy[] = {
		{ NULL, "421 4.3.2 busy\r\n", FS_CLOSE },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f1, *f2;
	char		 relay[DLV_RELAY_SIZE];

	f1 = fake_new(IP1, 0, busy, NSTEPS(busy));
	f2 = fake_new(IP2, f1->port, ok_script, NSTEPS(ok_script));
	client_init(&c, f1->port, IP1, IP2);
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f1);
	fake_assert_clean(f2);
	ck_assert_int_eq(f1->connections, 1);
	ck_assert_str_eq(fake_transcript(f1, 0), "");
	ck_assert_str_eq(c.order, "RD");
	snprintf(relay, sizeof relay, MX2 "[" IP2 "]:%u", f1->port);
	ck_assert_str_eq(t.rcpts[0].relay, relay);
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", MX2 "[" IP2 "] said: "
	    "250 2.0.0 Ok (in reply to end of DATA command)");
	ttx_free(&t);
}
END_TEST

/* Every address gives up: closed() with the last failure, QUIT after a
 * refusing greeting. */
START_TEST(test_all_fail)
{
	static const struct step busy[] = {
		{ NULL, "421 4.3.2 busy\r\n", FS_CLOSE },
	};
	static const struct step refusing[] = {
		{ NULL, "554 5.7.1 go away\r\n", 0 },
	};
	struct client	 c;
	struct fake	*f1, *f2;

	f1 = fake_new(IP1, 0, busy, NSTEPS(busy));
	f2 = fake_new(IP2, f1->port, refusing, NSTEPS(refusing));
	client_init(&c, f1->port, IP1, IP2);
	client_run(&c);

	fake_assert_clean(f1);
	fake_assert_clean(f2);
	ck_assert_str_eq(fake_transcript(f2, 0), "QUIT\r\n");
	ck_assert_str_eq(c.order, "C");
	assert_status(&c.closed_st, DLV_TEMP, "5.7.1", MX2 "[" IP2 "] said: "
	    "554 5.7.1 go away (in reply to initial greeting)");
}
END_TEST

/* Nothing listens at the first address; the second answers. */
START_TEST(test_refused_fallback)
{
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP2, 0, ok_script, NSTEPS(ok_script));
	client_init(&c, f->port, IP1, IP2);
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	ttx_free(&t);
}
END_TEST

/* Nothing listens anywhere: 4.4.1 with Postfix's wording. */
START_TEST(test_refused_all)
{
	struct client	 c;
	struct fake	*f;
	char		 text[DLV_TEXT_SIZE];
	uint16_t	 port;

	/* Find a port, then stop listening on it. */
	f = fake_new(IP1, 0, ok_script, 0);
	port = f->port;
	fake_stop(f);
	client_init(&c, port, IP1, NULL);
	client_run(&c);

	ck_assert_str_eq(c.order, "C");
	snprintf(text, sizeof text, "connect to " MX1 "[" IP1 "]:%u: "
	    "Connection refused", port);
	assert_status(&c.closed_st, DLV_TEMP, "4.4.1", text);
}
END_TEST

static double
now_ms(void)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec * 1000.0 + tv.tv_usec / 1000.0;
}

/* A greeting that never comes times out after reply_timeout. */
START_TEST(test_greeting_timeout)
{
	static const struct step silent[] = {
		{ NULL, NULL, 0 },
	};
	struct client	 c;
	struct fake	*f;
	double		 start, took;

	f = fake_new(IP1, 0, silent, NSTEPS(silent));
	client_init(&c, f->port, IP1, NULL);
	c.params.reply_timeout = 300;
	start = now_ms();
	client_run(&c);
	took = now_ms() - start;

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "C");
	assert_status(&c.closed_st, DLV_TEMP, "4.4.2", "conversation with "
	    MX1 "[" IP1 "] timed out while receiving the initial server "
	    "greeting");
	ck_assert_msg(took >= 290 && took < 2000, "took %.0f ms", took);
}
END_TEST

/*
 * A connect that never completes: a listener whose accept queue is full
 * drops the SYN, so the connect hangs until connect_timeout.
 */
START_TEST(test_connect_timeout)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof sin;
	struct client		 c;
	char			 text[DLV_TEXT_SIZE];
	int			 lfd, fill[4];
	size_t			 i;
	double			 start, took;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, IP1, &sin.sin_addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	for (i = 0; i < nitems(fill); i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM, 0);
		evutil_make_socket_nonblocking(fill[i]);
		connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
	}
	usleep(50 * 1000);
	client_init(&c, ntohs(sin.sin_port), IP1, NULL);
	c.params.connect_timeout = 300;
	start = now_ms();
	client_run(&c);
	took = now_ms() - start;

	ck_assert_str_eq(c.order, "C");
	snprintf(text, sizeof text, "connect to " MX1 "[" IP1 "]:%u: "
	    "Connection timed out", ntohs(sin.sin_port));
	assert_status(&c.closed_st, DLV_TEMP, "4.4.1", text);
	ck_assert_msg(took >= 290 && took < 2000, "took %.0f ms", took);
	for (i = 0; i < nitems(fill); i++)
		close(fill[i]);
	close(lfd);
}
END_TEST

/* The reply to the final dot has data_timeout, not reply_timeout. */
START_TEST(test_data_timeout)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", NULL, 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	double		 start, took;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.reply_timeout = 3000;
	c.params.data_timeout = 300;
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	start = now_ms();
	client_run(&c);
	took = now_ms() - start;

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&t.rcpts[0].st, DLV_TEMP, "4.4.2", "conversation with "
	    MX1 "[" IP1 "] timed out while sending end of data -- message may "
	    "be sent more than once");
	ck_assert_msg(took < 2000, "took %.0f ms", took);
	ttx_free(&t);
}
END_TEST

/* A message file that cannot be read: never end that message. */
START_TEST(test_read_error)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	char		 path[] = "/tmp/check_mta_wronlyXXXXXX";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	int		 fd;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	/* Write-only: every read fails. */
	ck_assert_int_ge(fd = mkstemp(path), 0);
	close(fd);
	close(t.tx.msgfd);
	t.tx.msgfd = open(path, O_WRONLY);
	ck_assert_int_ge(t.tx.msgfd, 0);
	unlink(path);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&t.rcpts[0].st, DLV_TEMP, "4.3.0", "error reading the "
	    "message file: Bad file descriptor");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=3\r\nRCPT TO:<a@mx1.test>\r\n"
	    "DATA\r\n");
	ttx_free(&t);
}
END_TEST

/* A peer that stops answering in the middle of a transaction. */
START_TEST(test_rcpt_timeout)
{
	static const struct step script[] = {
		GREET, EHLO_PLAIN,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", NULL, 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.reply_timeout = 300;
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&c.closed_st, DLV_TEMP, "4.4.2", "conversation with "
	    MX1 "[" IP1 "] timed out while sending RCPT TO");
	assert_status(&t.rcpts[0].st, DLV_TEMP, "4.4.2", c.closed_st.text);
	assert_status(&t.rcpts[1].st, DLV_TEMP, "4.4.2", c.closed_st.text);
	ttx_free(&t);
}
END_TEST

/* The peer goes away while the body is being sent. */
START_TEST(test_drop_in_data)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "550 5.1.1 unknown\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
	};
	static struct step script_b[NSTEPS(script)];
	struct util_buf	 b = { NULL, 0, 0 };
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	/* More than socket buffers hold, so the client is still writing. */
	while (b.len < 24 * 1024 * 1024)
		util_buf_adds(&b, "a line of a big message, long enough to "
		    "fill the buffers of the loopback interface quickly\r\n");
	/* No SIZE limit for this one. */
	memcpy(script_b, script, sizeof script);
	script_b[1].reply = "250-mx1.test\r\n250 PIPELINING\r\n";
	f = fake_new(IP1, 0, script_b, NSTEPS(script_b));
	f->drop_after = 100 * 1024;
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, b.data, b.len);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&c.closed_st, DLV_TEMP, "4.4.2", "lost connection with "
	    MX1 "[" IP1 "] while sending message body");
	assert_status(&t.rcpts[0].st, DLV_TEMP, "4.4.2", c.closed_st.text);
	assert_status(&t.rcpts[1].st, DLV_PERM, "5.1.1", NULL);
	ttx_free(&t);
	free(b.data);
}
END_TEST

/* 421 in the middle: the transaction is TEMP with its text, then closed. */
START_TEST(test_421_rcpt)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "550 5.1.1 unknown\r\n", 0 },
		{ "RCPT TO:<b@", "421 4.7.0 too many errors\r\n", FS_CLOSE },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	const char	*text = MX1 "[" IP1 "] said: 421 4.7.0 too many errors "
	    "(in reply to RCPT TO command)";

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&c.closed_st, DLV_TEMP, "4.7.0", text);
	assert_status(&t.rcpts[0].st, DLV_PERM, "5.1.1", NULL);
	assert_status(&t.rcpts[1].st, DLV_TEMP, "4.7.0", text);
	ttx_free(&t);
}
END_TEST

/* 421 to the RSET of a reused connection ends it the same way. */
START_TEST(test_421_rset)
{
	static const struct step script[] = {
		GREET, EHLO_PLAIN,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
		{ "RSET", "421 4.4.2 idle too long\r\n", FS_CLOSE },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t1, t2;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t1, SENDER, one_rcpt, content, sizeof content - 1);
	ttx_init(&t2, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t1.tx;
	c.txs[c.ntxs++] = &t2.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDDC");
	assert_status(&t1.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	assert_status(&t2.rcpts[0].st, DLV_TEMP, "4.4.2", MX1 "[" IP1 "] "
	    "said: 421 4.4.2 idle too long (in reply to RSET command)");
	assert_status(&c.closed_st, DLV_TEMP, "4.4.2", t2.rcpts[0].st.text);
	ttx_free(&t1);
	ttx_free(&t2);
}
END_TEST

/* An idle connection the peer closes is noticed at once: closed(). */
START_TEST(test_idle_peer_closes)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 8BITMIME\r\n",
		    FS_CLOSE_LATER },
	};
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.stay_idle = 1;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RC");
	assert_status(&c.closed_st, DLV_TEMP, "4.4.2", "lost connection "
	    "with " MX1 "[" IP1 "] while idle");
}
END_TEST

/*
 * A 421 right behind the EHLO reply ends the session with its own text,
 * before it was ever reported ready.
 */
START_TEST(test_idle_421)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 8BITMIME\r\n"
		    "421 4.4.2 idle too long\r\n", FS_CLOSE },
	};
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.stay_idle = 1;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "C");
	ck_assert_int_eq(c.closed_st.result, DLV_TEMP);
	ck_assert_str_eq(c.closed_st.status, "4.4.2");
	ck_assert_ptr_nonnull(strstr(c.closed_st.text,
	    "said: 421 4.4.2 idle too long"));
}
END_TEST

/* Too big for the peer's SIZE: refused before a command is sent, and
 * the session stays ready for the next one. */
START_TEST(test_size_refused)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test\r\n250-PIPELINING\r\n"
		    "250 SIZE 10\r\n", 0 },
		{ "MAIL FROM:<" SENDER "> SIZE=3", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char big[] = "0123456789abcdef\r\n";
	static const char small[] = "x\r\n";
	struct client	 c;
	struct ttx	 t1, t2;
	struct fake	*f;
	char		 text[DLV_TEXT_SIZE];

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t1, SENDER, two_rcpts, big, sizeof big - 1);
	ttx_init(&t2, SENDER, one_rcpt, small, sizeof small - 1);
	c.txs[c.ntxs++] = &t1.tx;
	c.txs[c.ntxs++] = &t2.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDD");
	snprintf(text, sizeof text, "message size 18 exceeds size limit 10 of "
	    MX1 "[" IP1 "]:%u", f->port);
	assert_status(&t1.rcpts[0].st, DLV_PERM, "5.3.4", text);
	assert_status(&t1.rcpts[1].st, DLV_PERM, "5.3.4", text);
	assert_status(&t2.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	/* Nothing went out for the first, so no RSET before the second. */
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=3\r\nRCPT TO:<a@mx1.test>\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n");
	ttx_free(&t1);
	ttx_free(&t2);
}
END_TEST

/*
 * SMTPUTF8 asked for but not offered: a UTF-8 address is 5.6.7, UTF-8
 * header fields 5.6.9, both before anything is sent; a message that
 * needs neither goes without the parameter.
 */
static const struct {
	const char	*sender;
	const char	*content;
	const char	*status;
} utf8_cases[] = {
	{ "j\xc3\xb6rg@client.test", "x\r\n", "5.6.7" },
	{ SENDER, "Subject: gr\xc3\xbc\xc3\x9f\r\n\r\nx\r\n", "5.6.9" },
	{ SENDER, "Subject: plain\r\n\r\nx\r\n", NULL },
};

START_TEST(test_smtputf8_refused)
{
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	struct util_buf	 want = { NULL, 0, 0 };
	const char	*content = utf8_cases[_i].content;

	f = fake_new(IP1, 0, ok_script, utf8_cases[_i].status != NULL ? 2 :
	    NSTEPS(ok_script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, utf8_cases[_i].sender, one_rcpt, content,
	    strlen(content));
	t.tx.smtputf8 = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	if (utf8_cases[_i].status != NULL) {
		assert_status(&t.rcpts[0].st, DLV_PERM, utf8_cases[_i].status,
		    NULL);
		ck_assert_ptr_nonnull(strstr(t.rcpts[0].st.text, "SMTPUTF8 is "
		    "required"));
		ck_assert_ptr_nonnull(strstr(t.rcpts[0].st.text, "not offered "
		    "by host " MX1 "[" IP1 "]"));
		ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
		    "QUIT\r\n");
	} else {
		assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
		util_buf_printf(&want, "EHLO " HELO "\r\nMAIL FROM:<" SENDER
		    "> SIZE=%zu\r\nRCPT TO:<a@mx1.test>\r\nDATA\r\n%s.\r\n"
		    "QUIT\r\n", strlen(content), content);
		ck_assert_str_eq(fake_transcript(f, 0), want.data);
	}
	ttx_free(&t);
	free(want.data);
}
END_TEST

/*
 * A peer without 8BITMIME: 8-bit parts arrive quoted-printable, a 7-bit
 * message exactly as it is, and 8-bit under multipart/signed or in a
 * base64 part is failed for good before MAIL.
 */
static const struct {
	const char	*content;
	const char	*sent;		/* the body as sent, unstuffed */
	const char	*status;	/* a refusal, or NULL */
} conv_cases[] = {
	{ "Subject: a\r\n\r\n.caf\xc3\xa9\r\n",
	  "Subject: a\r\nMIME-Version: 1.0\r\n"
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  ".caf=C3=A9\r\n", NULL },
	{ "Subject: a\r\n\r\n.plain \r\n", "Subject: a\r\n\r\n.plain \r\n",
	  NULL },
	{ "Content-Type: multipart/signed; boundary=s\r\n\r\n--s\r\n\r\n"
	  "\xe9\r\n--s--\r\n", NULL, "5.6.2" },
	{ "Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n", NULL,
	  "5.6.3" },
};

START_TEST(test_8bit_to_7bit)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 PIPELINING\r\n",
		    0 },
		{ "MAIL FROM:<" SENDER ">", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	const char	*content = conv_cases[_i].content;
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, conv_cases[_i].status != NULL ? 2 :
	    NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, one_rcpt, content, strlen(content));
	t.tx.body_8bit = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	if (conv_cases[_i].status != NULL) {
		assert_status(&t.rcpts[0].st, DLV_PERM, conv_cases[_i].status,
		    NULL);
		ck_assert_ptr_nonnull(strstr(t.rcpts[0].st.text, "does not "
		    "offer 8BITMIME"));
		ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
		    "QUIT\r\n");
	} else {
		assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
		ck_assert_str_eq(f->message.data, conv_cases[_i].sent);
		/* No BODY= to a peer that did not offer 8BITMIME. */
		ck_assert_ptr_null(strstr(fake_transcript(f, 0), "BODY="));
	}
	ttx_free(&t);
}
END_TEST

/* EHLO refused with 5xx: HELO, and no extensions after it. */
START_TEST(test_helo_fallback)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "502 5.5.1 EHLO not implemented\r\n", 0 },
		{ "HELO " HELO, "250 mx1.test\r\n", 0 },
		{ "MAIL FROM:<" SENDER ">", "250 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	t.tx.body_8bit = 1;
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "HELO " HELO "\r\nMAIL FROM:<" SENDER ">\r\nRCPT TO:<a@mx1.test>"
	    "\r\nDATA\r\nx\r\n.\r\nQUIT\r\n");
	/* No enhanced code in the reply: class.0.0. */
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", MX1 "[" IP1 "] said: "
	    "250 Ok (in reply to end of DATA command)");
	ttx_free(&t);
}
END_TEST

/* A peer that calls itself by our name is ourselves: 5.4.6, no retry. */
START_TEST(test_loop)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-CLIENT.test greets you\r\n"
		    "250 PIPELINING\r\n", 0 },
	};
	struct client	 c;
	struct fake	*f, *f2;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	f2 = fake_new(IP2, f->port, ok_script, 0);
	client_init(&c, f->port, IP1, IP2);
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_int_eq(f2->connections, 0);
	ck_assert_str_eq(c.order, "C");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\nQUIT\r\n");
	assert_status(&c.closed_st, DLV_PERM, "5.4.6", "mail for " MX1
	    " loops back to myself");
}
END_TEST

/* Peer text is joined, made printable and cut to fit. */
START_TEST(test_sanitize)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "550-5.1.1 first\xff line\r\n"
		    "550-5.1.1 second\tline\x01\r\n"
		    "550 5.1.1 third\r\n", 0 },
		{ "RCPT TO:<b@", NULL, 0 },
		{ "DATA", "554 5.5.1 no valid recipients\r\n", 0 },
	};
	static char long_reply[1100];
	static struct step script_b[NSTEPS(script)];
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	const char	*suffix = " (in reply to RCPT TO command)";
	size_t		 n;

	/* The second RCPT gets a 990-octet line of text. */
	memcpy(script_b, script, sizeof script);
	memcpy(long_reply, "550 5.2.2 ", 10);
	memset(long_reply + 10, 'z', 980);
	memcpy(long_reply + 990, "\r\n", 3);
	script_b[4].reply = long_reply;

	f = fake_new(IP1, 0, script_b, NSTEPS(script_b));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	assert_status(&t.rcpts[0].st, DLV_PERM, "5.1.1", MX1 "[" IP1 "] said: "
	    "550 5.1.1 first? line second?line? third (in reply to RCPT TO "
	    "command)");
	n = strlen(t.rcpts[1].st.text);
	ck_assert_uint_eq(n, DLV_TEXT_SIZE - 1);
	ck_assert_str_eq(t.rcpts[1].st.text + n - strlen(suffix), suffix);
	ck_assert(strncmp(t.rcpts[1].st.text, MX1 "[" IP1 "] said: 550 5.2.2 "
	    "zzz", 31) == 0);
	assert_status(&t.rcpts[1].st, DLV_PERM, "5.2.2", NULL);
	ttx_free(&t);
}
END_TEST

/*
 * DSN parameters (RFC 3461) for a peer that offers DSN, as xtext: "+",
 * "=", controls, spaces and octets above 127 become "+XX"; an ORCPT of
 * type utf-8 is RFC 6533 utf-8-addr-xtext.  Without DSN in the EHLO
 * reply none is sent and no recipient is marked as passed on.
 */
static const char *const dsn_rcpts[] = { "a@mx1.test", "b@mx1.test",
    "c@mx1.test", "d@mx1.test", NULL };

static void
dsn_tx(struct ttx *t, const char *content, size_t len)
{
	ttx_init(t, SENDER, dsn_rcpts, content, len);
	t->tx.ret = ENVELOPE_RET_HDRS;
	t->tx.envid = "Q+1=2 \x01\xc3\xa9";
	t->rcpts[0].notify = ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_DELAY;
	t->rcpts[0].orcpt = "rfc822;A+b=c@Example.test";
	t->rcpts[1].notify = ENVELOPE_NOTIFY_NEVER;
	t->rcpts[2].notify = ENVELOPE_NOTIFY_SUCCESS |
	    ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY;
	t->rcpts[2].orcpt = "utf-8;j\xc3\xb6+x=\\@ex\xc3\xa4mple.test";
	t->rcpts[3].orcpt = "rfc822;tab\there@x.test";
}

START_TEST(test_dsn_offered)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250-PIPELINING\r\n"
		    "250-dsn\r\n250 8BITMIME\r\n", 0 },
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<c@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<d@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	size_t		 i;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	dsn_tx(&t, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> RET=HDRS ENVID=Q+2B1+3D2+20+01+C3+A9\r\n"
	    "RCPT TO:<a@mx1.test> NOTIFY=SUCCESS,DELAY "
	    "ORCPT=rfc822;A+2Bb+3Dc@Example.test\r\n"
	    "RCPT TO:<b@mx1.test> NOTIFY=NEVER\r\n"
	    "RCPT TO:<c@mx1.test> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=utf-8;j\\x{F6}\\x{2B}x\\x{3D}\\x{5C}@ex\\x{E4}mple.test\r\n"
	    "RCPT TO:<d@mx1.test> ORCPT=rfc822;tab+09here@x.test\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n");
	for (i = 0; i < 4; i++) {
		assert_status(&t.rcpts[i].st, DLV_OK, "2.0.0", NULL);
		ck_assert_int_eq(t.rcpts[i].dsn, 1);
	}
	ttx_free(&t);
}
END_TEST

START_TEST(test_dsn_not_offered)
{
	static const struct step script[] = {
		GREET, EHLO_PIPE,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<b@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<c@", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<d@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	size_t		 i;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	dsn_tx(&t, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=3\r\n"
	    "RCPT TO:<a@mx1.test>\r\nRCPT TO:<b@mx1.test>\r\n"
	    "RCPT TO:<c@mx1.test>\r\nRCPT TO:<d@mx1.test>\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n");
	for (i = 0; i < 4; i++) {
		assert_status(&t.rcpts[i].st, DLV_OK, "2.0.0", NULL);
		ck_assert_int_eq(t.rcpts[i].dsn, 0);
	}
	ttx_free(&t);
}
END_TEST

/*
 * What cannot be passed on whole is left out, never cut or sent broken:
 * an ENVID over 100 octets of xtext, an ORCPT over 500, one without a
 * type, with a bad type, or of type utf-8 that is not UTF-8.  The
 * longest lines still go out.
 */
START_TEST(test_dsn_too_long)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 DSN\r\n", 0 },
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<", "250 2.1.5 Ok\r\n", 0 },
		{ "RCPT TO:<", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	char		 envid[40], orcpt[600], fits[520], addr[520];
	char		 want[4096], mail[160];
	const char	*rcpts[6];
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	size_t		 i;

	/*
	 * _i 0: 34 "+" are 102 octets of xtext, too many; _i 1: 33 "+"
	 * and a letter are 100, just right.
	 */
	memset(envid, '+', 34);
	envid[33] = _i == 0 ? '+' : 'x';
	envid[34] = '\0';
	if (_i == 0)
		util_strlcpy(mail, "MAIL FROM:<" SENDER ">", sizeof mail);
	else {
		util_strlcpy(mail, "MAIL FROM:<" SENDER "> ENVID=",
		    sizeof mail);
		for (i = 0; i < 33; i++)
			util_strlcat(mail, "+2B", sizeof mail);
		util_strlcat(mail, "x", sizeof mail);
	}
	/* 500 octets of "rfc822;" and address, then one more. */
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'o', 494);
	orcpt[501] = '\0';
	util_strlcpy(fits, orcpt, sizeof fits);
	fits[500] = '\0';
	/* The longest address we send, with the longest ORCPT. */
	memset(addr, 'l', 500);
	memcpy(addr + 500, "@mx1.test", 10);
	rcpts[0] = addr;
	rcpts[1] = "b@mx1.test";
	rcpts[2] = "c@mx1.test";
	rcpts[3] = "d@mx1.test";
	rcpts[4] = "e@mx1.test";
	rcpts[5] = NULL;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	ttx_init(&t, SENDER, rcpts, content, sizeof content - 1);
	t.tx.envid = envid;
	t.rcpts[0].notify = ENVELOPE_NOTIFY_SUCCESS |
	    ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY;
	t.rcpts[0].orcpt = fits;
	t.rcpts[1].orcpt = orcpt;
	t.rcpts[2].orcpt = "no-type@x.test";
	t.rcpts[3].orcpt = "rfc 822;d@x.test";
	t.rcpts[4].orcpt = "utf-8;\xff@x.test";
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	snprintf(want, sizeof want, "EHLO " HELO "\r\n%s\r\n"
	    "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=%s\r\n"
	    "RCPT TO:<b@mx1.test>\r\nRCPT TO:<c@mx1.test>\r\n"
	    "RCPT TO:<d@mx1.test>\r\nRCPT TO:<e@mx1.test>\r\n"
	    "DATA\r\nx\r\n.\r\nQUIT\r\n", mail, addr, fits);
	ck_assert_str_eq(fake_transcript(f, 0), want);
	for (i = 0; i < 5; i++) {
		assert_status(&t.rcpts[i].st, DLV_OK, "2.0.0", NULL);
		ck_assert_int_eq(t.rcpts[i].dsn, 1);
	}
	ttx_free(&t);
}
END_TEST

/* Replies that are not replies: 4.5.0, and the next address. */
START_TEST(test_protocol_error)
{
	static char long_line[1200];
	static struct step garbage[] = {
		{ NULL, "hello there\r\n", 0 },
	};
	static struct step too_long[] = {
		{ NULL, long_line, 0 },
	};
	struct client	 c;
	struct fake	*f;

	memset(long_line, 'a', sizeof long_line - 1);
	memcpy(long_line, "220 ", 4);
	if (_i == 0)
		f = fake_new(IP1, 0, garbage, NSTEPS(garbage));
	else
		f = fake_new(IP1, 0, too_long, NSTEPS(too_long));
	client_init(&c, f->port, IP1, NULL);
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "C");
	assert_status(&c.closed_st, DLV_TEMP, "4.5.0", _i == 0 ?
	    "protocol error from " MX1 "[" IP1 "]: malformed reply (in reply "
	    "to initial greeting)" : "protocol error from " MX1 "[" IP1 "]: "
	    "reply line too long (in reply to initial greeting)");
}
END_TEST

/* Quit while still connecting: no callback at all, nothing left. */
START_TEST(test_quit_early)
{
	static const struct step script[] = { GREET };
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	current = &c;
	c.s = mta_session_new(base, &c.params, &client_cb, &c);
	c.quit = 1;
	mta_session_quit(c.s);
	fake_stop(f);
	loop_dry();
	ck_assert_str_eq(c.order, "");
	current = NULL;
}
END_TEST

/* A self-signed certificate for mx1.test, trusted via SSL_CERT_FILE. */
static void
make_cert(void)
{
	EVP_PKEY_CTX	*pctx;
	EVP_PKEY	*pkey = NULL;
	X509		*x;
	X509_NAME	*name;
	X509_EXTENSION	*ext;
	X509V3_CTX	 v3;
	FILE		*fp;
	int		 fd;

	pctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
	if (pctx == NULL || EVP_PKEY_keygen_init(pctx) != 1 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pctx,
	    NID_X9_62_prime256v1) != 1 || EVP_PKEY_keygen(pctx, &pkey) != 1)
		fatalx("key generation failed");
	EVP_PKEY_CTX_free(pctx);
	x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)MX1, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    "DNS:" MX1);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (X509_sign(x, pkey, EVP_sha256()) == 0)
		fatalx("X509_sign failed");

	util_strlcpy(cert_path, "/tmp/check_mta_certXXXXXX",
	    sizeof cert_path);
	if ((fd = mkstemp(cert_path)) == -1 || (fp = fdopen(fd, "w")) == NULL)
		fatal("mkstemp");
	PEM_write_X509(fp, x);
	fclose(fp);
	setenv("SSL_CERT_FILE", cert_path, 1);

	server_ctx = SSL_CTX_new(TLS_server_method());
	if (server_ctx == NULL || SSL_CTX_use_certificate(server_ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(server_ctx, pkey) != 1)
		fatalx("server context failed");
	X509_free(x);
	EVP_PKEY_free(pkey);
}

#define EHLO_TLS	{ "EHLO " HELO, "250-mx1.test hello\r\n" \
			    "250-PIPELINING\r\n250 STARTTLS\r\n", 0 }
#define EHLO_AFTER_TLS	{ "EHLO " HELO, "250-mx1.test hello\r\n" \
			    "250-PIPELINING\r\n250-AUTH LOGIN PLAIN\r\n" \
			    "250 SIZE\r\n", 0 }

/*
 * Opportunistic STARTTLS, then AUTH PLAIN under it.  The debug log shows
 * the conversation but never the password, in clear or base64.
 */
START_TEST(test_starttls_auth)
{
	static const struct step script[] = {
		GREET, EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 ready\r\n", FS_TLS },
		EHLO_AFTER_TLS,
		/* "\0user\0s3cret-pw" */
		{ "AUTH PLAIN AHVzZXIAczNjcmV0LXB3", "235 2.7.0 ok\r\n", 0 },
		{ "MAIL FROM:<" SENDER ">", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	char		 path[] = "/tmp/check_mta_logXXXXXX", logbuf[65536];
	ssize_t		 n;
	int		 fd, saved;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	log_init("check_mta_session", LOG_TARGET_STDERR, 1);

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.starttls = 1;
	c.params.auth_user = "user";
	c.params.auth_pass = "s3cret-pw";
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_init("check_mta_session", LOG_TARGET_NONE, 0);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_int_eq(c.tls_at_ready, 1);
	ck_assert_int_eq(f->tls_done, 1);
	ck_assert_str_eq(f->sni, MX1);
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);

	n = pread(fd, logbuf, sizeof logbuf - 1, 0);
	ck_assert_int_gt(n, 0);
	logbuf[n] = '\0';
	ck_assert_ptr_nonnull(strstr(logbuf, "TLS connection established "
	    "to " MX1));
	ck_assert_ptr_nonnull(strstr(logbuf, ">>> AUTH PLAIN <credentials>"));
	ck_assert_ptr_nonnull(strstr(logbuf, "<<< 235 2.7.0 ok"));
	ck_assert_ptr_null(strstr(logbuf, "s3cret"));
	ck_assert_ptr_null(strstr(logbuf, "AHVzZXIAczNjcmV0LXB3"));
	close(fd);
	ttx_free(&t);
}
END_TEST

/* AUTH LOGIN when PLAIN is not offered; 535 ends it with the reply. */
START_TEST(test_auth_login_refused)
{
	static const struct step script[] = {
		GREET, EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 ready\r\n", FS_TLS },
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 AUTH=LOGIN\r\n", 0 },
		{ "AUTH LOGIN", "334 VXNlcm5hbWU6\r\n", 0 },
		{ "dXNlcg==", "334 UGFzc3dvcmQ6\r\n", 0 },
		{ "czNjcmV0LXB3", "535 5.7.8 authentication failed\r\n", 0 },
	};
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.starttls = 1;
	c.params.auth_user = "user";
	c.params.auth_pass = "s3cret-pw";
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_int_eq(f->quits, 1);
	ck_assert_str_eq(c.order, "C");
	assert_status(&c.closed_st, DLV_TEMP, "5.7.8", MX1 "[" IP1 "] said: "
	    "535 5.7.8 authentication failed (in reply to AUTH command)");
}
END_TEST

/* Credentials never go out in plaintext. */
START_TEST(test_auth_needs_tls)
{
	static const struct step script[] = {
		GREET,
		{ "EHLO " HELO, "250-mx1.test hello\r\n250 AUTH PLAIN\r\n", 0 },
	};
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.starttls = 1;
	c.params.auth_user = "user";
	c.params.auth_pass = "s3cret-pw";
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "C");
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\nQUIT\r\n");
	assert_status(&c.closed_st, DLV_TEMP, "4.7.4", "refusing to send "
	    "credentials without TLS to " MX1 "[" IP1 "]");
}
END_TEST

/* TLS demanded: a certificate for the name passes, others fail (4.7.5),
 * and so does a peer without STARTTLS (4.7.4). */
START_TEST(test_tls_verify)
{
	static const struct step good[] = {
		GREET, EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 ready\r\n", FS_TLS },
		EHLO_AFTER_TLS,
	};
	static const struct step bad[] = {
		GREET, EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 ready\r\n", FS_TLS },
	};
	static const struct step none[] = {
		GREET, EHLO_PIPE,
	};
	struct client	 c;
	struct fake	*f;

	if (_i == 0)
		f = fake_new(IP1, 0, good, NSTEPS(good));
	else if (_i == 1)
		f = fake_new(IP1, 0, bad, NSTEPS(bad));
	else
		f = fake_new(IP1, 0, none, NSTEPS(none));
	client_init(&c, f->port, IP1, NULL);
	c.params.tls_verify = 1;
	if (_i == 1)
		c.params.name = "other.test";
	client_run(&c);

	fake_assert_clean(f);
	switch (_i) {
	case 0:
		ck_assert_str_eq(c.order, "R");
		ck_assert_int_eq(c.tls_at_ready, 1);
		break;
	case 1:
		ck_assert_str_eq(c.order, "C");
		assert_status(&c.closed_st, DLV_TEMP, "4.7.5", "TLS handshake "
		    "with " MX1 "[" IP1 "] failed: certificate verification "
		    "failed: hostname mismatch");
		break;
	case 2:
		ck_assert_str_eq(c.order, "C");
		ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
		    "QUIT\r\n");
		assert_status(&c.closed_st, DLV_TEMP, "4.7.4", "TLS is "
		    "required, but was not offered by host " MX1 "[" IP1 "]");
		break;
	}
}
END_TEST

/* Opportunistic TLS that fails: the same address again, in plaintext. */
START_TEST(test_tls_fallback)
{
	static const struct step script[] = {
		GREET, EHLO_TLS,
		{ "STARTTLS", "220 2.0.0 ready\r\n", FS_CLOSE },
		GREET, EHLO_TLS,
		{ "MAIL FROM:", "250 2.1.0 Ok\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 Ok\r\n", 0 },
		{ "DATA", "354 go ahead\r\n", 0 },
		{ ".", "250 2.0.0 Ok\r\n", 0 },
	};
	static const char content[] = "x\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.starttls = 1;
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_int_eq(f->connections, 2);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_int_eq(c.tls_at_ready, 0);
	ck_assert_str_eq(fake_transcript(f, 0), "EHLO " HELO "\r\n"
	    "STARTTLS\r\n");
	ck_assert_ptr_null(strstr(fake_transcript(f, 1), "STARTTLS"));
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	ttx_free(&t);
}
END_TEST

/*
 * LMTP (RFC 2033): LHLO, no STARTTLS, AUTH or BDAT even when offered, a
 * peer with our own name is no loop, no NOTIFY, and after the dot one
 * reply per accepted recipient, in order, each its own outcome.
 */
#define LHLO_ALL	{ "LHLO " HELO, "250-" HELO "\r\n" \
			    "250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n" \
			    "250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n" \
			    "250-STARTTLS\r\n250-AUTH PLAIN\r\n" \
			    "250 SIZE\r\n", 0 }

START_TEST(test_lmtp)
{
	static const char content[] = "Subject: l\r\n\r\n.dot\r\nbody\r\n";
	static const struct step script[] = {
		GREET, LHLO_ALL,
		{ "MAIL FROM:<" SENDER "> SIZE=26 BODY=8BITMIME",
		    "250 2.1.0 OK\r\n", 0 },
		{ "RCPT TO:<a@mx1.test> ORCPT=rfc822;A@orig.test",
		    "250 2.1.5 OK\r\n", 0 },
		{ "RCPT TO:<b@", "250 2.1.5 OK\r\n", 0 },
		{ "RCPT TO:<c@", "550 5.1.1 <c@mx1.test> User doesn't "
		    "exist\r\n", 0 },
		{ "RCPT TO:<d@", "250 2.1.5 OK\r\n", 0 },
		{ "DATA", "354 OK\r\n", 0 },
		{ ".", "250 2.0.0 <a@mx1.test> Saved\r\n"
		    "452 4.2.2 <b@mx1.test> Quota exceeded\r\n"
		    "552 5.2.2 <d@mx1.test> Mailbox full\r\n", 0 },
	};
	static const char *const rcpts[] = { "a@mx1.test", "b@mx1.test",
	    "c@mx1.test", "d@mx1.test", NULL };
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;
	size_t		 i;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	f->delay_ms = 5;
	client_init(&c, f->port, IP1, NULL);
	c.params.lmtp = 1;
	ttx_init(&t, SENDER, rcpts, content, sizeof content - 1);
	t.tx.body_8bit = 1;
	t.tx.ret = ENVELOPE_RET_HDRS;
	t.tx.envid = "env1";
	for (i = 0; i < 4; i++)
		t.rcpts[i].notify = ENVELOPE_NOTIFY_SUCCESS;
	t.rcpts[0].orcpt = "rfc822;A@orig.test";
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	ck_assert_int_eq(c.tls_at_ready, 0);
	ck_assert_str_eq(fake_transcript(f, 0), "LHLO " HELO "\r\n"
	    "MAIL FROM:<" SENDER "> SIZE=26 BODY=8BITMIME\r\n"
	    "RCPT TO:<a@mx1.test> ORCPT=rfc822;A@orig.test\r\n"
	    "RCPT TO:<b@mx1.test>\r\nRCPT TO:<c@mx1.test>\r\n"
	    "RCPT TO:<d@mx1.test>\r\nDATA\r\nSubject: l\r\n\r\n..dot\r\n"
	    "body\r\n.\r\nQUIT\r\n");
	ck_assert_str_eq(f->message.data, content);
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", MX1 "[" IP1 "] said: "
	    "250 2.0.0 <a@mx1.test> Saved (in reply to end of DATA command)");
	assert_status(&t.rcpts[1].st, DLV_TEMP, "4.2.2", MX1 "[" IP1 "] said: "
	    "452 4.2.2 <b@mx1.test> Quota exceeded (in reply to end of DATA "
	    "command)");
	ck_assert_str_eq(t.rcpts[1].st.reply, "452 4.2.2 <b@mx1.test> Quota "
	    "exceeded");
	assert_status(&t.rcpts[2].st, DLV_PERM, "5.1.1", MX1 "[" IP1 "] said: "
	    "550 5.1.1 <c@mx1.test> User doesn't exist (in reply to RCPT TO "
	    "command)");
	assert_status(&t.rcpts[3].st, DLV_PERM, "5.2.2", NULL);
	for (i = 0; i < 4; i++) {
		/* Ours to report on: delivered, not relayed. */
		ck_assert_int_eq(t.rcpts[i].dsn, 0);
		ck_assert_int_eq(t.rcpts[i].final, 1);
	}
	ttx_free(&t);
}
END_TEST

/* The replies after the dot split over reads, one every few ms. */
START_TEST(test_lmtp_split)
{
	static const char content[] = "x\r\n";
	static const struct step script[] = {
		GREET, LHLO_ALL,
		{ "MAIL FROM:", "250 2.1.0 OK\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 OK\r\n", 0 },
		{ "RCPT TO:<b@", "250 2.1.5 OK\r\n", 0 },
		{ "DATA", "354 OK\r\n", 0 },
		{ ".", "451 4.3.0 <a@mx1.test> Temporary internal "
		    "error\r\n250 2.0", FS_THEN },
		{ NULL, ".0 <b@mx1.test> Saved\r\n", 0 },
	};
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.lmtp = 1;
	ttx_init(&t, SENDER, two_rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RD");
	assert_status(&t.rcpts[0].st, DLV_TEMP, "4.3.0", NULL);
	assert_status(&t.rcpts[1].st, DLV_OK, "2.0.0", MX1 "[" IP1 "] said: "
	    "250 2.0.0 <b@mx1.test> Saved (in reply to end of DATA command)");
	ttx_free(&t);
}
END_TEST

/* A 421 among the replies after the dot: it and the rest defer. */
START_TEST(test_lmtp_421)
{
	static const char content[] = "x\r\n";
	static const struct step script[] = {
		GREET, LHLO_ALL,
		{ "MAIL FROM:", "250 2.1.0 OK\r\n", 0 },
		{ "RCPT TO:<a@", "250 2.1.5 OK\r\n", 0 },
		{ "RCPT TO:<b@", "250 2.1.5 OK\r\n", 0 },
		{ "RCPT TO:<c@", "250 2.1.5 OK\r\n", 0 },
		{ "DATA", "354 OK\r\n", 0 },
		{ ".", "250 2.0.0 <a@mx1.test> Saved\r\n"
		    "421 4.3.2 shutting down\r\n", FS_CLOSE },
	};
	static const char *const rcpts[] = { "a@mx1.test", "b@mx1.test",
	    "c@mx1.test", NULL };
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.lmtp = 1;
	ttx_init(&t, SENDER, rcpts, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	assert_status(&t.rcpts[0].st, DLV_OK, "2.0.0", NULL);
	assert_status(&t.rcpts[1].st, DLV_TEMP, "4.3.2", NULL);
	assert_status(&t.rcpts[2].st, DLV_TEMP, "4.3.2", NULL);
	ttx_free(&t);
}
END_TEST

/* LHLO refused: no HELO to fall back to, the address failed. */
START_TEST(test_lmtp_lhlo_refused)
{
	static const struct step script[] = {
		GREET,
		{ "LHLO " HELO, "500 5.5.1 Unknown command\r\n", 0 },
	};
	struct client	 c;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.lmtp = 1;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "C");
	ck_assert_str_eq(fake_transcript(f, 0), "LHLO " HELO "\r\nQUIT\r\n");
	assert_status(&c.closed_st, DLV_TEMP, "5.5.1", MX1 "[" IP1 "] said: "
	    "500 5.5.1 Unknown command (in reply to LHLO command)");
}
END_TEST

/*
 * Every RCPT refused, yet DATA got 354: how many replies the dot would
 * get is anyone's guess, so the connection is dropped, and the
 * recipients keep their RCPT replies.
 */
START_TEST(test_lmtp_no_rcpt_354)
{
	static const struct step script[] = {
		GREET, LHLO_ALL,
		{ "MAIL FROM:", "250 2.1.0 OK\r\n", 0 },
		{ "RCPT TO:<a@", "550 5.1.1 unknown\r\n", 0 },
		{ "DATA", "354 go ahead anyway\r\n", 0 },
	};
	static const char content[] = "secret body\r\n";
	struct client	 c;
	struct ttx	 t;
	struct fake	*f;

	f = fake_new(IP1, 0, script, NSTEPS(script));
	client_init(&c, f->port, IP1, NULL);
	c.params.lmtp = 1;
	ttx_init(&t, SENDER, one_rcpt, content, sizeof content - 1);
	c.txs[c.ntxs++] = &t.tx;
	client_run(&c);

	fake_assert_clean(f);
	ck_assert_str_eq(c.order, "RDC");
	ck_assert_ptr_null(strstr(fake_transcript(f, 0), "secret"));
	assert_status(&t.rcpts[0].st, DLV_PERM, "5.1.1", NULL);
	assert_status(&c.closed_st, DLV_TEMP, "4.5.0", NULL);
	ttx_free(&t);
}
END_TEST

static void
setup(void)
{
	char	*cause = NULL;

	log_init("check_mta_session", getenv("MTA_DEBUG") != NULL ?
	    LOG_TARGET_STDERR : LOG_TARGET_NONE, getenv("MTA_DEBUG") != NULL);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_msg(mta_session_init(&cause) == 0, "%s", cause);
	nfakes = 0;
}

static void
teardown(void)
{
	size_t	i;

	for (i = 0; i < nfakes; i++)
		fake_free(fakes[i]);
	nfakes = 0;
	mta_session_shutdown();
	event_base_free(base);
	base = NULL;
}

int
main(void)
{
	Suite	*s = suite_create("mta_session");
	TCase	*tc;
	SRunner	*sr;
	int	 failed;

	make_cert();

	tc = tcase_create("transactions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_lockstep);
	tcase_add_test(tc, test_two_transactions);
	tcase_add_loop_test(tc, test_mixed_rcpts, 0, 2);
	tcase_add_loop_test(tc, test_mail_refused, 0, 2);
	tcase_add_test(tc, test_no_rcpt_354);
	tcase_add_loop_test(tc, test_final_dot, 0, 2);
	tcase_add_test(tc, test_size_refused);
	tcase_add_loop_test(tc, test_smtputf8_refused, 0, nitems(utf8_cases));
	tcase_add_loop_test(tc, test_8bit_to_7bit, 0, nitems(conv_cases));
	tcase_add_loop_test(tc, test_bdat, 0, 2);
	tcase_add_test(tc, test_sanitize);
	tcase_add_test(tc, test_dsn_offered);
	tcase_add_test(tc, test_dsn_not_offered);
	tcase_add_loop_test(tc, test_dsn_too_long, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("connection");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_greeting_421_fallback);
	tcase_add_test(tc, test_all_fail);
	tcase_add_test(tc, test_refused_fallback);
	tcase_add_test(tc, test_refused_all);
	tcase_add_test(tc, test_greeting_timeout);
	tcase_add_test(tc, test_connect_timeout);
	tcase_add_test(tc, test_data_timeout);
	tcase_add_test(tc, test_read_error);
	tcase_add_test(tc, test_rcpt_timeout);
	tcase_add_test(tc, test_drop_in_data);
	tcase_add_test(tc, test_421_rcpt);
	tcase_add_test(tc, test_421_rset);
	tcase_add_test(tc, test_idle_peer_closes);
	tcase_add_test(tc, test_idle_421);
	tcase_add_test(tc, test_helo_fallback);
	tcase_add_test(tc, test_loop);
	tcase_add_loop_test(tc, test_protocol_error, 0, 2);
	tcase_add_test(tc, test_quit_early);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_starttls_auth);
	tcase_add_test(tc, test_auth_login_refused);
	tcase_add_test(tc, test_auth_needs_tls);
	tcase_add_loop_test(tc, test_tls_verify, 0, 3);
	tcase_add_test(tc, test_tls_fallback);
	suite_add_tcase(s, tc);

	tc = tcase_create("lmtp");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_lmtp);
	tcase_add_test(tc, test_lmtp_split);
	tcase_add_test(tc, test_lmtp_421);
	tcase_add_test(tc, test_lmtp_lhlo_refused);
	tcase_add_test(tc, test_lmtp_no_rcpt_354);
	suite_add_tcase(s, tc);

	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	SSL_CTX_free(server_ctx);
	unlink(cert_path);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
