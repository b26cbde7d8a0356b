/*
 * direct.h: a plain socket bufferevent's output written from the loop,
 * once the callbacks of the loop's turn are done, rather than by the
 * bufferevent after the kernel reports the socket writable.
 */
#ifndef DIRECT_H
#define DIRECT_H

#include <sys/queue.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

/* Embedded in its owner; zeroed, or after direct_detach(), unattached. */
struct direct {
	TAILQ_ENTRY(direct)	 entry;
	struct bufferevent	*bev;
	unsigned		 pass;		/* direct_cb()'s, last written */
	unsigned char		 writes;	/* ...and writes in that one */
	unsigned char		 queued;
};

void	direct_attach(struct direct *, struct bufferevent *);
void	direct_detach(struct direct *);
void	direct_written(struct direct *);

#endif
