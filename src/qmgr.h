/*
 * qmgr.h: the queue manager, which runs one attempt at a message and
 * turns its outcomes into recipient states.  An attempt loads the
 * envelope, delivers the local recipients to their Maildirs, hands the
 * remote ones to the mta grouped by domain, records every outcome in the
 * envelope as it comes, has the reports the sender is owed queued
 * (bounce.c), and in the end removes the message or dates its next try.
 * When to attempt what is the scheduler's business, which hears of the
 * end through a callback.
 */
#ifndef QMGR_H
#define QMGR_H

#include <stdint.h>

#include "envelope.h"

struct event_base;
struct config;
struct users;
struct qmgr_attempt;

/* What the administrator asked of a message while it was attempted. */
enum qmgr_action {
	QMGR_ACTION_NONE,
	QMGR_ACTION_HOLD,
	QMGR_ACTION_BOUNCE,
	QMGR_ACTION_DELETE,		/* done already: files removed */
};

/*
 * done: an attempt is over.  The envelope is the message as recorded
 * (its next attempt and pending recipients), or NULL when it left the
 * queue (done, deleted, unreadable); the action asked meanwhile, and
 * flush when it was made due meanwhile.  The attempt is freed after the
 * callback returns.  queued: a report the attempt owed is in the queue.
 * Neither is ever called from inside the function that started the
 * attempt.
 */
struct qmgr_cb {
	void	(*done)(void *, const struct envelope *, enum qmgr_action,
		    int);
	void	(*queued)(const struct envelope *);
};

/* Recipient outcomes since start, for "ternctl stats". */
struct qmgr_stats {
	uint64_t	delivered;
	uint64_t	deferred;
	uint64_t	bounced;
};

void	 qmgr_init(struct event_base *, const struct config *,
	    const struct qmgr_cb *);
void	 qmgr_set_config(const struct config *);
void	 qmgr_set_users(const struct users *);
struct qmgr_attempt *qmgr_attempt(const char *, const char *, void *);
struct qmgr_attempt *qmgr_return(const char *, int, void *);
enum qmgr_action qmgr_action(const struct qmgr_attempt *);
void	 qmgr_set_action(struct qmgr_attempt *, enum qmgr_action);
int	 qmgr_flush(struct qmgr_attempt *);
void	 qmgr_stats(struct qmgr_stats *);
void	 qmgr_shutdown(void);

#endif
