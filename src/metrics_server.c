/*
 * metrics_server.c: the metrics listener.  A minimal HTTP/1.0 and 1.1
 * server on the loop: one request per connection, read within a deadline
 * and a size bound, answered from memory (metrics.c builds the text) and
 * closed; GET or HEAD /metrics is the one resource.  It never blocks: the
 * answer is a buffer handed to libevent, and a client that does not read
 * it is dropped at the deadline.  It also runs the loop-lag timer: a
 * periodic timer that measures how late it fires.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "metrics_server.h"
#include "util.h"

#define METRICS_CLIENTS_MAX	8
#define METRICS_REQUEST_MAX	8192	/* octets of request and header */
#define METRICS_TIMEOUT		10	/* seconds per exchange */
#define METRICS_BACKLOG		16
#define METRICS_LAG_INTERVAL	1	/* seconds between lag probes */
#define METRICS_PATH		"/metrics"
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

/* One client; owned by the module until closed. */
struct metrics_client {
	TAILQ_ENTRY(metrics_client) entry;
	struct bufferevent	*bev;
	struct event		*deadline;
	int			 answered;
	int			 shut;		/* answer sent, our side shut */
	int			 eof;		/* the client shut its side */
};
TAILQ_HEAD(metrics_clients, metrics_client);

static struct {
	struct event_base	*base;
	metrics_gauges_fn	 gauges;
	struct evconnlistener	**levs;
	size_t			 nlevs;
	struct config_listen	*addrs;		/* as bound */
	size_t			 naddrs;
	struct metrics_clients	 clients;
	size_t			 nclients;
	struct event		*lag_ev;
	struct timespec		 lag_due;
	double			 lag_last;
} msrv;

static double
metrics_server_elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* The timer fires each interval; how late it is, is the loop's lag. */
static void
metrics_server_lag_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	tv = { METRICS_LAG_INTERVAL, 0 };
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	msrv.lag_last = metrics_server_elapsed(&msrv.lag_due, &now);
	if (msrv.lag_last < 0)
		msrv.lag_last = 0;
	metrics_observe(METRICS_HIST_LOOP_LAG, msrv.lag_last);
	msrv.lag_due = now;
	msrv.lag_due.tv_sec += METRICS_LAG_INTERVAL;
	evtimer_add(msrv.lag_ev, &tv);
}

static void
metrics_server_client_free(struct metrics_client *c)
{
	TAILQ_REMOVE(&msrv.clients, c, entry);
	bufferevent_free(c->bev);
	event_free(c->deadline);
	free(c);
	if (msrv.nclients-- == METRICS_CLIENTS_MAX) {
		size_t	i;

		for (i = 0; i < msrv.nlevs; i++)
			evconnlistener_enable(msrv.levs[i]);
	}
}

/* The whole answer; the connection closes once it is written. */
static void
metrics_server_answer(struct metrics_client *c, int code, const char *reason,
    const struct util_buf *body, int head)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	const char	*text = body != NULL ? body->data : reason;
	size_t		 len = body != NULL ? body->len : strlen(reason);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", code, reason,
	    body != NULL ? METRICS_CONTENT_TYPE : "text/plain; charset=utf-8",
	    body != NULL ? len : len + 1);
	if (!head) {
		evbuffer_add(out, text, len);
		if (body == NULL)
			evbuffer_add(out, "\n", 1);
	}
	c->answered = 1;
	bufferevent_enable(c->bev, EV_WRITE);
}

/* "METHOD TARGET HTTP/1.x": the request line, its CRLF gone. */
static void
metrics_server_request(struct metrics_client *c, char *line)
{
	struct metrics_gauges	 g;
	struct util_buf		 body;
	char			*method, *target, *version, *save = NULL;
	size_t			 plen = strlen(METRICS_PATH);
	int			 head;

	method = strtok_r(line, " ", &save);
	target = strtok_r(NULL, " ", &save);
	version = strtok_r(NULL, " ", &save);
	if (method == NULL || target == NULL || version == NULL ||
	    strtok_r(NULL, " ", &save) != NULL ||
	    (strcmp(version, "HTTP/1.0") != 0 &&
	    strcmp(version, "HTTP/1.1") != 0)) {
		metrics_server_answer(c, 400, "Bad Request", NULL, 0);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (!head && strcmp(method, "GET") != 0) {
		metrics_server_answer(c, 405, "Method Not Allowed", NULL, 0);
		return;
	}
	/* A query string is allowed and ignored, as exporters do. */
	if (strncmp(target, METRICS_PATH, plen) != 0 ||
	    (target[plen] != '\0' && target[plen] != '?')) {
		metrics_server_answer(c, 404, "Not Found", NULL, head);
		return;
	}
	memset(&g, 0, sizeof g);
	g.loop_lag = msrv.lag_last;
	if (msrv.gauges != NULL)
		msrv.gauges(&g);
	memset(&body, 0, sizeof body);
	metrics_format(&body, &metrics, &g);
	metrics_server_answer(c, 200, "OK", &body, head);
	free(body.data);
}

/*
 * The request is answered once its header has all come (an empty line),
 * so that a client still writing is never reset by our close.
 */
static void
metrics_server_read_cb(struct bufferevent *bev, void *arg)
{
	struct metrics_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 end;
	char			*line;
	size_t			 len;

	if (c->answered) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1)
		end = evbuffer_search(in, "\n\n", 2, NULL);
	if (end.pos == -1) {
		if (evbuffer_get_length(in) > METRICS_REQUEST_MAX)
			metrics_server_answer(c, 431,
			    "Request Header Fields Too Large", NULL, 0);
		return;
	}
	if ((size_t)end.pos > METRICS_REQUEST_MAX) {
		metrics_server_answer(c, 431, "Request Header Fields Too Large",
		    NULL, 0);
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
	if (line == NULL || memchr(line, '\0', len) != NULL)
		metrics_server_answer(c, 400, "Bad Request", NULL, 0);
	else
		metrics_server_request(c, line);
	free(line);
}

/*
 * The answer is out: shut our side and wait for the client to close
 * (within the deadline), reading and dropping what it still sends;
 * closing first would reset a client whose request was not all read
 * before it reads the answer.
 */
static void
metrics_server_write_cb(struct bufferevent *bev, void *arg)
{
	struct metrics_client	*c = arg;

	if (!c->answered || c->shut ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	c->shut = 1;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	if (c->eof)
		metrics_server_client_free(c);
}

static void
metrics_server_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct metrics_client	*c = arg;

	/* Shut before its answer is out: the answer still goes. */
	if ((events & BEV_EVENT_EOF) && c->answered && !c->shut) {
		c->eof = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	metrics_server_client_free(c);
}

static void
metrics_server_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	metrics_server_client_free(arg);
}

static void
metrics_server_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct metrics_client	*c;
	struct timeval		 tv = { METRICS_TIMEOUT, 0 };
	size_t			 i;

	c = xcalloc(1, sizeof *c);
	c->bev = bufferevent_socket_new(msrv.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("metrics: bufferevent_socket_new");
	if ((c->deadline = evtimer_new(msrv.base, metrics_server_deadline_cb,
	    c)) == NULL)
		fatalx("metrics: evtimer_new");
	TAILQ_INSERT_TAIL(&msrv.clients, c, entry);
	if (++msrv.nclients == METRICS_CLIENTS_MAX) {
		for (i = 0; i < msrv.nlevs; i++)
			evconnlistener_disable(msrv.levs[i]);
	}
	bufferevent_setcb(c->bev, metrics_server_read_cb,
	    metrics_server_write_cb, metrics_server_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, METRICS_REQUEST_MAX + 1);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	evtimer_add(c->deadline, &tv);
	bufferevent_enable(c->bev, EV_READ);
}

static void
metrics_server_error_cb(struct evconnlistener *lev, void *arg)
{
	int	err = EVUTIL_SOCKET_ERROR();

	if (err != EAGAIN && err != ECONNABORTED && err != EINTR)
		log_warnx("metrics: accept: %s", strerror(err));
}

static void
metrics_server_close(void)
{
	size_t	i;

	for (i = 0; i < msrv.nlevs; i++)
		evconnlistener_free(msrv.levs[i]);
	free(msrv.levs);
	msrv.levs = NULL;
	msrv.nlevs = 0;
	free(msrv.addrs);
	msrv.addrs = NULL;
	msrv.naddrs = 0;
}

/* Bind every address; nothing is kept unless all of them bind. */
static int
metrics_server_open(const struct config_listen *addrs, size_t n,
    char **cause)
{
	struct evconnlistener	**levs;
	size_t			  i, j;
	int			  fd, one = 1;

	levs = xcalloc(n > 0 ? n : 1, sizeof *levs);
	for (i = 0; i < n; i++) {
		fd = socket(addrs[i].ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd != -1) {
			(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
			    sizeof one);
			if (addrs[i].ss.ss_family == AF_INET6)
				(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
				    &one, sizeof one);
		}
		if (fd == -1 || bind(fd, (const struct sockaddr *)&addrs[i].ss,
		    addrs[i].sslen) == -1 || listen(fd, METRICS_BACKLOG) ==
		    -1) {
			xasprintf(cause, "metrics_listen %s: %s", addrs[i].text,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			for (j = 0; j < i; j++)
				evconnlistener_free(levs[j]);
			free(levs);
			return -1;
		}
		levs[i] = evconnlistener_new(msrv.base,
		    metrics_server_accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE |
		    LEV_OPT_CLOSE_ON_EXEC, -1, fd);
		if (levs[i] == NULL)
			fatalx("metrics: evconnlistener_new");
		evconnlistener_set_error_cb(levs[i], metrics_server_error_cb);
		if (msrv.nclients >= METRICS_CLIENTS_MAX)
			evconnlistener_disable(levs[i]);
	}
	metrics_server_close();
	msrv.levs = levs;
	msrv.nlevs = n;
	if (n > 0) {
		msrv.addrs = xreallocarray(NULL, n, sizeof *msrv.addrs);
		memcpy(msrv.addrs, addrs, n * sizeof *addrs);
	}
	msrv.naddrs = n;
	for (i = 0; i < n; i++)
		log_info("metrics on %s", addrs[i].text);
	return 0;
}

/*
 * Start the loop-lag timer and, when metrics_listen names addresses,
 * the listener.  -1 with *cause when an address cannot be bound.
 */
int
metrics_server_init(struct event_base *base, const struct config_listen
    *addrs, size_t n, metrics_gauges_fn gauges, char **cause)
{
	struct timeval	tv = { METRICS_LAG_INTERVAL, 0 };

	memset(&msrv, 0, sizeof msrv);
	TAILQ_INIT(&msrv.clients);
	msrv.base = base;
	msrv.gauges = gauges;
	if (metrics_server_open(addrs, n, cause) == -1)
		return -1;
	if ((msrv.lag_ev = evtimer_new(base, metrics_server_lag_cb, NULL)) ==
	    NULL)
		fatalx("metrics: evtimer_new");
	clock_gettime(CLOCK_MONOTONIC, &msrv.lag_due);
	msrv.lag_due.tv_sec += METRICS_LAG_INTERVAL;
	evtimer_add(msrv.lag_ev, &tv);
	return 0;
}

/*
 * A reload: the listener follows metrics_listen when it changed; if the
 * new addresses cannot be bound, the old ones stay.  The counters are
 * not touched.
 */
int
metrics_server_set_listen(const struct config_listen *addrs, size_t n,
    char **cause)
{
	struct config_listen	*old;
	size_t			 i, nold;
	char			*why;
	int			 rc;

	if (n == msrv.naddrs) {
		for (i = 0; i < n; i++) {
			if (addrs[i].sslen != msrv.addrs[i].sslen ||
			    memcmp(&addrs[i].ss, &msrv.addrs[i].ss,
			    addrs[i].sslen) != 0)
				break;
		}
		if (i == n)
			return 0;
	}
	/*
	 * The old ports are let go first, as the new list may reuse them;
	 * should the new ones not bind, the old ones are taken back.
	 */
	old = msrv.addrs;
	nold = msrv.naddrs;
	msrv.addrs = NULL;
	metrics_server_close();
	rc = metrics_server_open(addrs, n, cause);
	if (rc == -1 && metrics_server_open(old, nold, &why) == -1) {
		log_warnx("%s", why);
		free(why);
	}
	free(old);
	return rc;
}

void
metrics_server_shutdown(void)
{
	struct metrics_client	*c;

	while ((c = TAILQ_FIRST(&msrv.clients)) != NULL) {
		TAILQ_REMOVE(&msrv.clients, c, entry);
		bufferevent_free(c->bev);
		event_free(c->deadline);
		free(c);
	}
	msrv.nclients = 0;
	metrics_server_close();
	if (msrv.lag_ev != NULL) {
		event_free(msrv.lag_ev);
		msrv.lag_ev = NULL;
	}
}
