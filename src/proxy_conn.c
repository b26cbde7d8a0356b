/*
 * proxy_conn.c: wait on a new connection for its PROXY protocol header,
 * within a deadline, then hand the descriptor back with what the header
 * said (proxy.c parses).  It owns the descriptor only while it waits and
 * never closes it; it must never consume an octet past the header, so
 * that what the client sends next reaches the SMTP session intact: it
 * peeks at what has arrived and takes from the socket only octets that
 * belong to the header.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "proxy.h"
#include "proxy_conn.h"
#include "util.h"

/* Room for a version 1 line or a version 2 header with any address. */
#define PROXY_CONN_START	(PROXY_V2_FIXED + 216)

/* One connection waiting for its header; owns buf and the events. */
struct proxy_conn {
	int		 fd;
	struct event	*ev;		/* readable */
	struct event	*timer;		/* the deadline, for the whole header */
	unsigned char	*buf;		/* the header's octets taken so far */
	size_t		 size;
	size_t		 len;
	proxy_conn_cb	 cb;
	void		*arg;
};

void
proxy_conn_free(struct proxy_conn *pc)
{
	if (pc == NULL)
		return;
	event_free(pc->ev);
	event_free(pc->timer);
	free(pc->buf);
	free(pc);
}

/* Free the reader, then tell its owner. */
static void
proxy_conn_done(struct proxy_conn *pc, const struct proxy_hdr *h,
    const char *why)
{
	proxy_conn_cb	 cb = pc->cb;
	void		*arg = pc->arg;
	int		 fd = pc->fd;

	proxy_conn_free(pc);
	cb(fd, h, why, arg);
}

/* Take n octets that are known to be there and to be header. */
static int
proxy_conn_take(struct proxy_conn *pc, size_t n)
{
	ssize_t	r;

	while (n > 0) {
		r = recv(pc->fd, pc->buf + pc->len, n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		pc->len += (size_t)r;
		n -= (size_t)r;
	}
	return 0;
}

static void
proxy_conn_timeout_cb(evutil_socket_t fd, short events, void *arg)
{
	proxy_conn_done(arg, NULL, "timeout waiting for the header");
}

static void
proxy_conn_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct proxy_conn	*pc = arg;
	struct proxy_hdr	 h;
	enum proxy_result	 r;
	const char		*why;
	size_t			 want;
	ssize_t			 n;

	/* Peek after what was taken; all of it is still in the socket. */
	n = recv(fd, pc->buf + pc->len, pc->size - pc->len, MSG_PEEK);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n == -1) {
		proxy_conn_done(pc, NULL, strerror(errno));
		return;
	}
	if (n == 0) {
		proxy_conn_done(pc, NULL, pc->len == 0 ? "closed before "
		    "the header" : "closed in the middle of the header");
		return;
	}
	r = proxy_parse(pc->buf, pc->len + (size_t)n, &h, &want, &why);
	if (r == PROXY_ERROR) {
		proxy_conn_done(pc, NULL, why);
		return;
	}
	/* MORE: every octet peeked is header; DONE: take up to its end. */
	if (proxy_conn_take(pc, r == PROXY_DONE ? h.len - pc->len :
	    (size_t)n) == -1) {
		proxy_conn_done(pc, NULL, "cannot read the header");
		return;
	}
	if (r == PROXY_DONE) {
		proxy_conn_done(pc, &h, NULL);
		return;
	}
	if (want > pc->size) {
		pc->buf = xreallocarray(pc->buf, want, 1);
		pc->size = want;
	}
}

/*
 * Wait at most timeout milliseconds on fd for a whole header; cb is told
 * once, never from within this call.
 */
struct proxy_conn *
proxy_conn_new(struct event_base *base, int fd, uint64_t timeout,
    proxy_conn_cb cb, void *arg)
{
	struct proxy_conn	*pc;
	struct timeval		 tv;

	pc = xcalloc(1, sizeof *pc);
	pc->fd = fd;
	pc->cb = cb;
	pc->arg = arg;
	pc->size = PROXY_CONN_START;
	pc->buf = xmalloc(pc->size);
	pc->ev = event_new(base, fd, EV_READ | EV_PERSIST, proxy_conn_read_cb,
	    pc);
	pc->timer = evtimer_new(base, proxy_conn_timeout_cb, pc);
	if (pc->ev == NULL || pc->timer == NULL)
		fatalx("proxy: event_new");
	tv.tv_sec = (time_t)(timeout / 1000);
	tv.tv_usec = (suseconds_t)(timeout % 1000) * 1000;
	event_add(pc->ev, NULL);
	evtimer_add(pc->timer, &tv);
	return pc;
}
