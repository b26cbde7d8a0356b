/*
 * mta.h: delivery to other hosts.  Takes jobs (one message, the
 * recipients it has at one destination domain), finds where to send them
 * (DNS MX or the gateway), keeps the outbound connections within the
 * global and per-destination caps, reuses them, and reports every
 * recipient's outcome through the job's callback.
 */
#ifndef MTA_H
#define MTA_H

#include <sys/queue.h>

#include "dlv.h"
#include "envelope.h"

struct event_base;
struct config;
struct mta_dest;
struct sessinfo;

struct mta_job;
typedef void	(*mta_job_cb)(struct mta_job *, void *);

/* Owned by the submitter; must live until its callback has run. */
struct mta_job {
	char			 id[ENVELOPE_ID_SIZE];	/* queue id, for logs */
	char			 domain[256];	/* lowercase */
	unsigned		 tries;		/* failed attempts so far */
	const char		*handover;	/* "host:port" to send to
						   instead, or NULL */
	struct dlv_tx		 tx;
	mta_job_cb		 cb;
	void			*arg;

	/* The mta's own. */
	TAILQ_ENTRY(mta_job)	 entry;
	struct mta_dest		*dest;
};

void	 mta_init(struct event_base *, const struct config *);
void	 mta_set_config(const struct config *);
void	 mta_submit(struct mta_job *);
void	 mta_shutdown(void);
size_t	 mta_active(void);
void	 mta_sessions(void (*)(const struct sessinfo *, void *), void *);

#endif
