/*
 * bounce.h: the reports a sender gets about a message (RFC 3464), built
 * and queued as messages of their own from the null sender: failures,
 * delays, deliveries and relays to hosts without DSN.  The queue
 * manager says which recipients a report names; this module writes it
 * (dsn.c builds the text), addresses it, commits it to the spool and
 * logs it, after Postfix's bounce(8).
 */
#ifndef BOUNCE_H
#define BOUNCE_H

#include <stddef.h>
#include <time.h>

#include "dsn.h"
#include "envelope.h"

struct config;
struct users;
struct bounce;

/*
 * Called once per report from the loop, unless cancelled: error 0 and
 * the report's envelope, now in the queue, or an errno and NULL.  The
 * report is freed after the callback returns.
 */
typedef void	(*bounce_cb)(void *, int, const struct envelope *);

/* What a report needs besides the message's envelope. */
struct bounce_params {
	const struct config	*conf;
	const struct users	*users;		/* NULL: none loaded */
	enum dsn_action		 action;
	const size_t		*idx;		/* the recipients it names */
	size_t			 n;
	time_t			 now;
	time_t			 retry_until;	/* delay: when we give up */
};

struct bounce	*bounce_start(const struct envelope *,
		    const struct bounce_params *, bounce_cb, void *);
void		 bounce_cancel(struct bounce *);
const char	*bounce_name(enum dsn_action);

#endif
