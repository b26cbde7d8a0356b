/*
 * metrics.h: the daemon's counters and histograms, in one place that
 * other modules bump, and the Prometheus text exposition of them with
 * the gauges of the moment.  Pure: no clock, no I/O; the listener that
 * serves the text is metrics_server.c.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

struct util_buf;

/* Why a connection was refused before any SMTP session was made. */
enum metrics_refusal {
	METRICS_REFUSED_BUDGET,		/* session budget full */
	METRICS_REFUSED_CLIENT_LIMIT,	/* connections from one address */
	METRICS_REFUSED_CLIENT_RATE,	/* ...per unit of time */
	METRICS_REFUSED_RESOURCES,	/* out of descriptors */
	METRICS_REFUSED_DRAINING,	/* not taking new sessions */
	METRICS_REFUSED_MAX
};

/* Why a command of a session was refused (its NOQUEUE: reject line). */
enum metrics_reject {
	METRICS_REJECT_OTHER,
	METRICS_REJECT_RELAY,		/* relay access denied */
	METRICS_REJECT_UNKNOWN_USER,	/* no such local recipient */
	METRICS_REJECT_ALIAS_LOOP,
	METRICS_REJECT_SENDER,		/* not owned by the logged-in user */
	METRICS_REJECT_RATE,		/* per-client message rates */
	METRICS_REJECT_SIZE,
	METRICS_REJECT_CONTENT,		/* bare CR/LF, NUL, long line */
	METRICS_REJECT_STORAGE,		/* no room, spool error, busy */
	METRICS_REJECT_ETRN,
	METRICS_REJECT_MAX
};

enum metrics_status {
	METRICS_SENT,
	METRICS_DEFERRED,
	METRICS_BOUNCED,
	METRICS_STATUS_MAX
};

enum metrics_dest {
	METRICS_LOCAL,			/* a Maildir of ours */
	METRICS_REMOTE,			/* the domain's exchangers */
	METRICS_GATEWAY,		/* the configured gateway */
	METRICS_DEST_MAX
};

#define METRICS_BUCKETS_MAX	16

/* A histogram: le bounds are its kind's; counts are per bucket. */
struct metrics_hist {
	uint64_t	counts[METRICS_BUCKETS_MAX];	/* not cumulative */
	uint64_t	count;
	double		sum;
};

enum metrics_hist_kind {
	METRICS_HIST_COMMIT,		/* message made durable */
	METRICS_HIST_DELIVERY,		/* arrival to a recipient's sending */
	METRICS_HIST_LOOP_LAG,		/* a timer's lateness */
	METRICS_HIST_MAX
};

/* Everything counted since the daemon started; reloads keep it. */
struct metrics_counters {
	uint64_t		sessions;	/* inbound sessions made */
	uint64_t		refused[METRICS_REFUSED_MAX];
	uint64_t		received;	/* messages committed */
	uint64_t		rejected[METRICS_REJECT_MAX];
	uint64_t		deliveries[METRICS_STATUS_MAX]
				    [METRICS_DEST_MAX];
	struct metrics_hist	hist[METRICS_HIST_MAX];
};

/* The state of the moment, read by the caller when it is scraped. */
struct metrics_gauges {
	uint64_t	inbound;	/* SMTP sessions open */
	uint64_t	outbound;	/* delivery connections open */
	uint64_t	queue_active;	/* messages being attempted or due */
	uint64_t	queue_deferred;	/* waiting for their next attempt */
	uint64_t	queue_hold;
	double		oldest_age;	/* seconds; 0 when the queue is empty */
	uint64_t	session_budget;
	uint64_t	bytes_held;
	int		stress;
	double		loop_lag;	/* the last measured, seconds */
	double		start_time;	/* epoch seconds */
};

extern struct metrics_counters metrics;

void	metrics_refused(enum metrics_refusal);
void	metrics_rejected(enum metrics_reject);
void	metrics_delivery(enum metrics_status, enum metrics_dest);
void	metrics_observe(enum metrics_hist_kind, double);
void	metrics_format(struct util_buf *, const struct metrics_counters *,
	    const struct metrics_gauges *);

#endif
