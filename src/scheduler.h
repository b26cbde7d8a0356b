/*
 * scheduler.h: when each queued message is attempted.  A min-heap of
 * next-attempt times driven by one timer, with an index by queue id and
 * one by destination domain; the attempts themselves are the queue
 * manager's (qmgr.h), the reports to senders the bounce module's
 * (bounce.h).  The administrator's actions on the queue come in here.
 */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "envelope.h"

struct event_base;
struct config;

/* Counters since start, and the queue now, for "ternctl stats". */
struct scheduler_stats {
	uint64_t	accepted;	/* messages new to the queue */
	uint64_t	delivered;	/* recipient outcomes: sent */
	uint64_t	deferred;	/* ...deferred */
	uint64_t	bounced;	/* ...failed for good */
	size_t		queue_size;	/* messages in the spool */
	time_t		oldest;		/* arrival of the oldest waiting;
					   0 when none */
	time_t		uptime;		/* seconds since scheduler_init() */
	size_t		active;		/* being attempted, or due now */
	size_t		waiting;	/* for a later attempt */
};
struct users;

void	 scheduler_init(struct event_base *, const struct config *);
void	 scheduler_set_config(const struct config *);
void	 scheduler_set_users(const struct users *);
void	 scheduler_add(const struct envelope *, int);
void	 scheduler_shutdown(void);
size_t	 scheduler_active(void);

/*
 * The administrator's actions on one message, by id: 0, or -1 for an id
 * the queue does not hold (errno EAGAIN: not yet, the spool is still
 * being read at start-up).  A message in the middle of an attempt is
 * held or bounced when the attempt ends; a delete removes its files at
 * once and nothing the attempt does after brings them back.
 */
int	 scheduler_hold(const char *);
int	 scheduler_release(const char *);
int	 scheduler_delete(const char *);
int	 scheduler_bounce(const char *);
size_t	 scheduler_flush(const char *, int);
size_t	 scheduler_flush_id(const char *);
int	 scheduler_handover(const char *, const char *);
void	 scheduler_stats(struct scheduler_stats *);

#endif
