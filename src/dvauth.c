/*
 * dvauth.c: the connection to Dovecot's auth client socket.  One per
 * daemon, opened from the loop (after privileges are dropped, so the
 * socket must be open to tern's user), handshaken, and kept; requests of
 * any number of sessions share it, each with its own id and deadline.
 * When it is lost every request in flight is answered DVAUTH_TEMP and a
 * new connection is tried after a delay that doubles up to a bound.
 * Nothing here blocks: connect, reads and writes are a bufferevent's.
 * Credentials pass through as base64 and are never logged.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

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

#include "dvauth.h"
#include "dvproto.h"
#include "log.h"
#include "util.h"

/* Connect and handshake, and each answer of Dovecot, must come by then. */
#define DVAUTH_HANDSHAKE_MS	10000
#define DVAUTH_REQUEST_MS	30000
/* Reconnection delays: the first, and the bound of their doubling. */
#define DVAUTH_RETRY_MIN_MS	1000
#define DVAUTH_RETRY_MAX_MS	30000
#define DVAUTH_SPEC_SIZE	1024
/* Room for one line tern sends: an SMTP AUTH line and its fields. */
#define DVAUTH_OUT_SIZE		(DVPROTO_LINE_MAX + 512)

enum dvauth_state {
	DVAUTH_OFF,		/* no socket configured */
	DVAUTH_DOWN,		/* waiting to try again */
	DVAUTH_CONNECTING,	/* connect or handshake under way */
	DVAUTH_READY,
};

/* One exchange; owned by this module until its final answer. */
struct dvauth_req {
	TAILQ_ENTRY(dvauth_req)	 entry;
	unsigned		 id;
	dvauth_cb		 cb;
	void			*arg;
	struct event		*timer;		/* Dovecot's answer is due */
};

static struct {
	struct event_base	*base;
	enum dvauth_state	 state;
	char			 spec[DVAUTH_SPEC_SIZE];
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct bufferevent	*bev;
	struct event		*timer;		/* retry, or handshake limit */
	uint64_t		 retry_ms;
	uint64_t		 attempt;	/* ms, monotonic: last connect */
	struct dvproto_in	 in;
	int			 version;	/* VERSION seen */
	int			 warned;	/* this outage is logged */
	/* Mechanisms being announced, then the ones in force. */
	char			 next[DVPROTO_MECH_MAX][DVPROTO_MECH_SIZE];
	size_t			 nnext;
	char			 mechs[DVPROTO_MECH_MAX][DVPROTO_MECH_SIZE];
	size_t			 nmechs;
	unsigned		 last_id;
	TAILQ_HEAD(, dvauth_req) reqs;
} dvauth;

static void	dvauth_connect(void);
static void	dvauth_lost(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

static uint64_t
dvauth_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
dvauth_timeval(struct timeval *tv, uint64_t ms)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
}

void
dvauth_init(struct event_base *base)
{
	dvauth.base = base;
	dvauth.state = DVAUTH_OFF;
	dvauth.retry_ms = DVAUTH_RETRY_MIN_MS;
	TAILQ_INIT(&dvauth.reqs);
}

static void
dvauth_req_free(struct dvauth_req *r)
{
	TAILQ_REMOVE(&dvauth.reqs, r, entry);
	if (r->timer != NULL)
		event_free(r->timer);
	free(r);
}

/* A final answer: the request is gone before its owner hears of it. */
static void
dvauth_req_end(struct dvauth_req *r, enum dvauth_result res,
    const char *data, const char *reason)
{
	dvauth_cb	 cb = r->cb;
	void		*arg = r->arg;

	dvauth_req_free(r);
	cb(res, data, reason, arg);
}

static void
dvauth_send(const char *line, size_t len)
{
	if (dvauth.bev != NULL)
		bufferevent_write(dvauth.bev, line, len);
}

static void
dvauth_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	if (dvauth.state == DVAUTH_DOWN)
		dvauth_connect();
	else if (dvauth.state == DVAUTH_CONNECTING)
		dvauth_lost("no handshake within %ds",
		    DVAUTH_HANDSHAKE_MS / 1000);
}

static void
dvauth_arm(uint64_t ms)
{
	struct timeval	tv;

	if (dvauth.timer == NULL &&
	    (dvauth.timer = evtimer_new(dvauth.base, dvauth_timer_cb,
	    NULL)) == NULL)
		fatalx("dvauth: evtimer_new");
	dvauth_timeval(&tv, ms);
	evtimer_add(dvauth.timer, &tv);
}

/* Close the connection, if any, and forget what it announced. */
static void
dvauth_close(void)
{
	if (dvauth.bev != NULL) {
		bufferevent_free(dvauth.bev);
		dvauth.bev = NULL;
	}
	if (dvauth.timer != NULL)
		evtimer_del(dvauth.timer);
	memset(&dvauth.in, 0, sizeof dvauth.in);
	dvauth.version = 0;
	dvauth.nnext = 0;
	dvauth.nmechs = 0;
}

/* Answer every request in flight: Dovecot cannot answer them now. */
static void
dvauth_fail_all(const char *why)
{
	struct dvauth_req	*r;

	while ((r = TAILQ_FIRST(&dvauth.reqs)) != NULL)
		dvauth_req_end(r, DVAUTH_TEMP, NULL, why);
}

/*
 * The connection failed or broke: say so once per outage, answer what
 * was in flight, and try again later.
 */
static void
dvauth_lost(const char *fmt, ...)
{
	va_list	 ap;
	char	 why[256];
	int	 was_ready = dvauth.state == DVAUTH_READY;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (!dvauth.warned)
		log_warnx("dovecot auth %s: %s; AUTH not offered until it "
		    "answers, retrying", dvauth.spec, why);
	else
		log_debug("dovecot auth %s: %s; retrying in %" PRIu64 "ms",
		    dvauth.spec, why, dvauth.retry_ms);
	dvauth.warned = 1;
	dvauth_close();
	dvauth.state = DVAUTH_DOWN;
	/* A working connection lost (Dovecot reloaded?): try again now. */
	if (was_ready)
		dvauth_arm(0);
	else {
		dvauth_arm(dvauth.retry_ms);
		dvauth.retry_ms *= 2;
		if (dvauth.retry_ms > DVAUTH_RETRY_MAX_MS)
			dvauth.retry_ms = DVAUTH_RETRY_MAX_MS;
	}
	dvauth_fail_all(why);
}

static struct dvauth_req *
dvauth_find(unsigned id)
{
	struct dvauth_req	*r;

	TAILQ_FOREACH(r, &dvauth.reqs, entry) {
		if (r->id == id)
			return r;
	}
	return NULL;
}

/* The handshake is over: what Dovecot announced is in force. */
static void
dvauth_ready(void)
{
	char	list[DVPROTO_MECH_MAX * DVPROTO_MECH_SIZE];
	size_t	i;

	memcpy(dvauth.mechs, dvauth.next, sizeof dvauth.mechs);
	dvauth.nmechs = dvauth.nnext;
	dvauth.state = DVAUTH_READY;
	dvauth.retry_ms = DVAUTH_RETRY_MIN_MS;
	dvauth.warned = 0;
	evtimer_del(dvauth.timer);
	list[0] = '\0';
	for (i = 0; i < dvauth.nmechs; i++) {
		if (i > 0)
			util_strlcat(list, " ", sizeof list);
		util_strlcat(list, dvauth.mechs[i], sizeof list);
	}
	log_info("dovecot auth %s: ready, mechanisms: %s", dvauth.spec,
	    dvauth.nmechs > 0 ? list : "none");
}

/* One line of the server; -1 when the connection is to be dropped. */
static int
dvauth_line(char *line)
{
	struct dvproto_reply	 rep;
	struct dvauth_req	*r;

	if (dvproto_parse(line, &rep) == -1) {
		dvauth_lost("malformed line from Dovecot");
		return -1;
	}
	switch (rep.kind) {
	case DVPROTO_VERSION:
		if (rep.major != DVPROTO_MAJOR) {
			dvauth_lost("protocol version %u, not %u", rep.major,
			    DVPROTO_MAJOR);
			return -1;
		}
		dvauth.version = 1;
		return 0;
	case DVPROTO_MECH:
		if (dvauth.state == DVAUTH_CONNECTING &&
		    dvproto_is_offered(rep.mech, rep.flags) &&
		    dvauth.nnext < DVPROTO_MECH_MAX)
			util_strlcpy(dvauth.next[dvauth.nnext++], rep.mech,
			    DVPROTO_MECH_SIZE);
		return 0;
	case DVPROTO_DONE:
		if (dvauth.state != DVAUTH_CONNECTING)
			return 0;
		if (!dvauth.version) {
			dvauth_lost("handshake without VERSION");
			return -1;
		}
		dvauth_ready();
		return 0;
	case DVPROTO_IGNORE:
		return 0;
	default:
		break;
	}
	/* An answer to a request tern forgot (cancelled) is dropped. */
	if ((r = dvauth_find(rep.id)) == NULL)
		return 0;
	if (rep.kind == DVPROTO_CONT) {
		evtimer_del(r->timer);
		r->cb(DVAUTH_CONTINUE, rep.data, NULL, r->arg);
	} else if (rep.kind == DVPROTO_OK) {
		if (rep.user == NULL)
			dvauth_req_end(r, DVAUTH_TEMP, NULL,
			    "Dovecot's OK named no user");
		else
			dvauth_req_end(r, DVAUTH_OK, rep.user, NULL);
	} else
		dvauth_req_end(r, rep.temp ? DVAUTH_TEMP : DVAUTH_FAIL,
		    rep.user, rep.reason);
	return 0;
}

static void
dvauth_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer	*in = bufferevent_get_input(bev);
	char		 buf[4096], *line;
	size_t		 used, off;
	int		 n, rc;

	/* A line may end the connection: then bev is freed, stop. */
	while (dvauth.bev == bev &&
	    (n = evbuffer_remove(in, buf, sizeof buf)) > 0) {
		for (off = 0; off < (size_t)n && dvauth.bev == bev;
		    off += used) {
			rc = dvproto_take(&dvauth.in, buf + off, (size_t)n - off,
			    &used, &line);
			if (rc == -1) {
				dvauth_lost("overlong or binary line from "
				    "Dovecot");
				return;
			}
			if (rc == 1 && dvauth_line(line) == -1)
				return;
		}
	}
}

static void
dvauth_event_cb(struct bufferevent *bev, short what, void *arg)
{
	char	handshake[128];
	int	e;

	if (what & BEV_EVENT_CONNECTED) {
		if (dvproto_handshake(handshake, sizeof handshake,
		    (unsigned)getpid()) == -1)
			panic("%s: handshake too long", __func__);
		dvauth_send(handshake, strlen(handshake));
		return;
	}
	e = EVUTIL_SOCKET_ERROR();
	if (what & BEV_EVENT_EOF)
		dvauth_lost("connection closed by Dovecot");
	else
		dvauth_lost("%s", e != 0 ? evutil_socket_error_to_string(e) :
		    "connection error");
}

/* Open a connection; what follows comes from the loop. */
static void
dvauth_connect(void)
{
	dvauth_close();
	dvauth.state = DVAUTH_CONNECTING;
	dvauth.attempt = dvauth_now();
	dvauth.bev = bufferevent_socket_new(dvauth.base, -1,
	    BEV_OPT_CLOSE_ON_FREE);
	if (dvauth.bev == NULL)
		fatalx("dvauth: bufferevent_socket_new");
	bufferevent_setcb(dvauth.bev, dvauth_read_cb, NULL, dvauth_event_cb,
	    NULL);
	bufferevent_enable(dvauth.bev, EV_READ | EV_WRITE);
	dvauth_arm(DVAUTH_HANDSHAKE_MS);
	if (bufferevent_socket_connect(dvauth.bev,
	    (struct sockaddr *)&dvauth.ss, (int)dvauth.sslen) == -1)
		dvauth_lost("%s", strerror(errno != 0 ? errno : ECONNREFUSED));
}

/*
 * The socket to use ("" for none: auth_backend is not dovecot).  A
 * change drops the connection and what is in flight; the first attempt
 * is made from the loop, never from here.  -1 with *cause when spec
 * does not parse.
 */
int
dvauth_set_socket(const char *spec, char **cause)
{
	struct sockaddr_storage	ss;
	socklen_t		sslen = 0;

	if (strcmp(spec, dvauth.spec) == 0 && dvauth.state != DVAUTH_OFF)
		return 0;
	if (*spec != '\0' &&
	    dvproto_parse_socket(spec, &ss, &sslen, cause) == -1)
		return -1;
	dvauth_close();
	dvauth.state = DVAUTH_DOWN;
	dvauth_fail_all("auth socket changed");
	if (util_strlcpy(dvauth.spec, spec, sizeof dvauth.spec) >=
	    sizeof dvauth.spec) {
		xasprintf(cause, "socket name too long");
		dvauth.spec[0] = '\0';
		dvauth.state = DVAUTH_OFF;
		return -1;
	}
	if (*spec == '\0') {
		dvauth.state = DVAUTH_OFF;
		return 0;
	}
	dvauth.ss = ss;
	dvauth.sslen = sslen;
	dvauth.state = DVAUTH_DOWN;
	dvauth.warned = 0;
	dvauth.retry_ms = DVAUTH_RETRY_MIN_MS;
	dvauth_arm(0);
	return 0;
}

void
dvauth_shutdown(void)
{
	dvauth_close();
	dvauth.state = DVAUTH_OFF;
	dvauth_fail_all("shutting down");
	if (dvauth.timer != NULL) {
		event_free(dvauth.timer);
		dvauth.timer = NULL;
	}
	dvauth.spec[0] = '\0';
}

/* The handshake is done: AUTH can be offered. */
int
dvauth_is_ready(void)
{
	return dvauth.state == DVAUTH_READY;
}

/*
 * A client wanted AUTH while Dovecot was away: try again now rather
 * than at the end of the back-off, at most once a DVAUTH_RETRY_MIN_MS,
 * so that many clients cannot make a storm of connects.
 */
void
dvauth_kick(void)
{
	if (dvauth.state == DVAUTH_DOWN &&
	    dvauth_now() - dvauth.attempt >= DVAUTH_RETRY_MIN_MS)
		dvauth_arm(0);
}

/* The mechanisms that may be offered, in Dovecot's order. */
size_t
dvauth_mech_count(void)
{
	return dvauth.state == DVAUTH_READY ? dvauth.nmechs : 0;
}

const char *
dvauth_mech(size_t i)
{
	if (i >= dvauth_mech_count())
		return NULL;
	return dvauth.mechs[i];
}

/* The mechanism named (any case) as Dovecot spells it, or NULL. */
const char *
dvauth_find_mech(const char *name)
{
	size_t	i;

	for (i = 0; i < dvauth_mech_count(); i++) {
		if (strcasecmp(name, dvauth.mechs[i]) == 0)
			return dvauth.mechs[i];
	}
	return NULL;
}

static void
dvauth_req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dvauth_req	*r = arg;
	char			 line[64];

	if (dvproto_cancel_line(line, sizeof line, r->id) != -1)
		dvauth_send(line, strlen(line));
	log_warnx("dovecot auth %s: no answer within %ds", dvauth.spec,
	    DVAUTH_REQUEST_MS / 1000);
	dvauth_req_end(r, DVAUTH_TEMP, NULL, "Dovecot did not answer");
}

static void
dvauth_req_wait(struct dvauth_req *r)
{
	struct timeval	tv;

	dvauth_timeval(&tv, DVAUTH_REQUEST_MS);
	evtimer_add(r->timer, &tv);
}

/* A numeric address and port for Dovecot's log and its policies. */
static void
dvauth_addr(const struct sockaddr *sa, char *buf, size_t size,
    unsigned *port)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	buf[0] = '\0';
	*port = 0;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		if (inet_ntop(AF_INET, &sin->sin_addr, buf, size) != NULL)
			*port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, size) != NULL)
			*port = ntohs(sin6->sin6_port);
	}
	if (*port == 0)
		buf[0] = '\0';
}

/*
 * Begin an exchange.  NULL when Dovecot is not there (the caller answers
 * 454), or the request cannot be written (bad mechanism or response:
 * the caller's bug or a client's, answered 501 by the caller first).
 */
struct dvauth_req *
dvauth_start(const struct dvauth_params *p, dvauth_cb cb, void *arg)
{
	struct dvauth_req	*r;
	struct dvproto_auth	 a;
	char			 lip[INET6_ADDRSTRLEN], rip[INET6_ADDRSTRLEN];
	char			*line;

	if (dvauth.state != DVAUTH_READY)
		return NULL;
	memset(&a, 0, sizeof a);
	if (++dvauth.last_id == 0)
		dvauth.last_id = 1;
	a.id = dvauth.last_id;
	a.mech = p->mech;
	a.service = "smtp";
	dvauth_addr(p->local, lip, sizeof lip, &a.lport);
	dvauth_addr(p->remote, rip, sizeof rip, &a.rport);
	a.lip = lip[0] != '\0' ? lip : NULL;
	a.rip = rip[0] != '\0' ? rip : NULL;
	a.secured = p->secured;
	a.session = p->session;
	a.resp = p->resp;
	line = xmalloc(DVAUTH_OUT_SIZE);
	if (dvproto_auth_line(line, DVAUTH_OUT_SIZE, &a) == -1) {
		free(line);
		return NULL;
	}
	r = xcalloc(1, sizeof *r);
	r->id = a.id;
	r->cb = cb;
	r->arg = arg;
	if ((r->timer = evtimer_new(dvauth.base, dvauth_req_timeout_cb,
	    r)) == NULL)
		fatalx("dvauth: evtimer_new");
	TAILQ_INSERT_TAIL(&dvauth.reqs, r, entry);
	dvauth_send(line, strlen(line));
	explicit_bzero(line, DVAUTH_OUT_SIZE);
	free(line);
	dvauth_req_wait(r);
	return r;
}

/* The client's answer to a challenge, base64; -1 if it is not base64. */
int
dvauth_continue(struct dvauth_req *r, const char *data)
{
	char	*line;

	line = xmalloc(DVAUTH_OUT_SIZE);
	if (dvproto_cont_line(line, DVAUTH_OUT_SIZE, r->id, data) == -1) {
		free(line);
		return -1;
	}
	dvauth_send(line, strlen(line));
	explicit_bzero(line, DVAUTH_OUT_SIZE);
	free(line);
	dvauth_req_wait(r);
	return 0;
}

/* The session gives up (client's "*", or it closes): no answer comes. */
void
dvauth_cancel(struct dvauth_req *r)
{
	char	line[64];

	if (dvauth.state == DVAUTH_READY &&
	    dvproto_cancel_line(line, sizeof line, r->id) != -1)
		dvauth_send(line, strlen(line));
	dvauth_req_free(r);
}
