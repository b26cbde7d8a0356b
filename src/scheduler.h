/*
 * scheduler.h: when each queued message is attempted.  A min-heap of
 * next-attempt times driven by one timer; an attempt loads the envelope,
 * hands the remote recipients to the mta grouped by domain, records every
 * outcome in the envelope, removes what is done, bounces what failed and
 * sets the next attempt of the rest.
 */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include "envelope.h"

struct event_base;
struct config;

void	 scheduler_init(struct event_base *, const struct config *);
void	 scheduler_set_config(const struct config *);
void	 scheduler_add(const struct envelope *, int);
void	 scheduler_shutdown(void);
size_t	 scheduler_active(void);

#endif
