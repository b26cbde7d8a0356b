/*
 * direct.c: writing a plain socket bufferevent's output from the loop.
 *
 * A bufferevent writes only once the kernel reports its socket writable:
 * each reply or command then costs two changes to the epoll set (add the
 * socket's writability, remove it once written) and waits a turn of the
 * loop.  An attached bufferevent has its writing disabled instead; what
 * its owner adds to the output is queued here, and once the callbacks of
 * the loop's turn are done direct_cb() writes each output queued, all
 * that was added in the turn together (pipelined replies in one write).
 * Only what the socket does not take at once is left to the bufferevent,
 * with its write timeout and its error reporting, until it has drained
 * (direct_written()); either way the bufferevent's write callback runs
 * once the output is empty, as its owner expects.  TLS bufferevents are
 * never attached: OpenSSL writes their socket.
 */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>

#include "direct.h"

static TAILQ_HEAD(, direct)	 direct_queue =
    TAILQ_HEAD_INITIALIZER(direct_queue);
/* Active exactly while the queue holds something, outside direct_cb(). */
static struct event		 direct_ev;
static int			 direct_running;
static unsigned			 direct_pass;

/*
 * Writes of one output in one pass: a drained callback may add more at
 * once (the next piece of a message body) and a peer that keeps up would
 * otherwise keep the loop to itself.  Past this the bufferevent writes,
 * a turn of the loop each.
 */
#define DIRECT_WRITES		2

/* Write an output queued; what the socket refuses goes the usual way. */
static void
direct_flush(struct direct *d)
{
	struct evbuffer		*out = bufferevent_get_output(d->bev);
	bufferevent_data_cb	 written;
	void			*arg;

	if ((bufferevent_get_enabled(d->bev) & EV_WRITE) ||
	    evbuffer_get_length(out) == 0)
		return;
	if (d->pass != direct_pass) {
		d->pass = direct_pass;
		d->writes = 0;
	}
	if (d->writes == DIRECT_WRITES) {
		bufferevent_enable(d->bev, EV_WRITE);
		return;
	}
	d->writes++;
	/*
	 * Nonblocking: a full socket takes what it can, a failed one
	 * nothing.  The bufferevent keeps its output's start frozen against
	 * others draining it, and writes it unfrozen for the while as here.
	 */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(d->bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0) {
		bufferevent_enable(d->bev, EV_WRITE);
		return;
	}
	/* As after the bufferevent's own write: its write callback. */
	bufferevent_getcb(d->bev, NULL, &written, NULL, &arg);
	if (written != NULL)
		written(d->bev, arg);
}

/* The end of the loop's turn: write every output queued. */
static void
direct_cb(evutil_socket_t fd, short what, void *arg)
{
	struct direct	*d;

	(void)fd;
	(void)what;
	(void)arg;
	/* A drained callback may queue more: it is written in this loop. */
	direct_running = 1;
	direct_pass++;
	while ((d = TAILQ_FIRST(&direct_queue)) != NULL) {
		TAILQ_REMOVE(&direct_queue, d, entry);
		d->queued = 0;
		direct_flush(d);
	}
	direct_running = 0;
}

/* Something was added to an attached output: write it this turn. */
static void
direct_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct direct	*d = arg;

	(void)buf;
	if (info->n_added == 0 || d->queued)
		return;
	if (TAILQ_EMPTY(&direct_queue) && !direct_running) {
		event_assign(&direct_ev, bufferevent_get_base(d->bev), -1, 0,
		    direct_cb, NULL);
		event_active(&direct_ev, 0, 0);
	}
	TAILQ_INSERT_TAIL(&direct_queue, d, entry);
	d->queued = 1;
}

/*
 * Take over writing a connected plain socket bufferevent.  Its write
 * callback still runs each time what was queued has all left, whoever
 * wrote it, and must call direct_written() first.
 */
void
direct_attach(struct direct *d, struct bufferevent *bev)
{
	direct_detach(d);
	d->bev = bev;
	bufferevent_disable(bev, EV_WRITE);
	evbuffer_add_cb(bufferevent_get_output(bev), direct_out_cb, d);
}

/* Before the bufferevent is freed or given to TLS: forget it. */
void
direct_detach(struct direct *d)
{
	struct evbuffer	*out;

	if (d->queued) {
		TAILQ_REMOVE(&direct_queue, d, entry);
		if (TAILQ_EMPTY(&direct_queue) && !direct_running)
			event_del(&direct_ev);
	}
	d->queued = 0;
	if (d->bev == NULL)
		return;
	out = bufferevent_get_output(d->bev);
	evbuffer_remove_cb(out, direct_out_cb, d);
	d->bev = NULL;
}

/*
 * From the bufferevent's write callback: once it has drained what the
 * socket did not take at once, writing returns here.
 */
void
direct_written(struct direct *d)
{
	if (d->bev != NULL &&
	    evbuffer_get_length(bufferevent_get_output(d->bev)) == 0)
		bufferevent_disable(d->bev, EV_WRITE);
}
