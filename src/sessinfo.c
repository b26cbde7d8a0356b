/*
 * sessinfo.c: octet counters on a session's bufferevent, by evbuffer
 * callbacks: what its input gains was read, what its output loses was
 * written.  A session that changes bufferevents (STARTTLS) counts on
 * the new one too; the counters are the session's.
 */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "sessinfo.h"

static void
sessinfo_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct sessinfo_bytes	*b = arg;

	b->in += info->n_added;
}

static void
sessinfo_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct sessinfo_bytes	*b = arg;

	b->out += info->n_deleted;
}

void
sessinfo_count(struct bufferevent *bev, struct sessinfo_bytes *b)
{
	evbuffer_add_cb(bufferevent_get_input(bev), sessinfo_in_cb, b);
	evbuffer_add_cb(bufferevent_get_output(bev), sessinfo_out_cb, b);
}
