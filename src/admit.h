/*
 * admit.h: how many SMTP sessions one loop may hold, and when it is under
 * stress.
 */
#ifndef ADMIT_H
#define ADMIT_H

#include <stdint.h>

/*
 * Memory budgeted per session.  An idle session measured 0.9 KiB of
 * resident memory (contrib/bench/idle_sessions.py; it is parked, see
 * smtp_session.c); the rest is room for the buffers of a session that
 * is talking.
 */
#define ADMIT_SESSION_BYTES	8192
/*
 * Descriptors each session holds for its life: its socket (and one per
 * content filter, counted apart).  A message being received holds more,
 * its content and, while it commits, its envelope: these come from what
 * the sessions leave, and at the full budget from a headroom kept for
 * messages, at least ADMIT_MESSAGES_MIN and one in ADMIT_MESSAGES_SHARE
 * of the descriptors.
 */
#define ADMIT_SESSION_FDS	1
#define ADMIT_MESSAGE_FDS	2
#define ADMIT_MESSAGES_MIN	8
#define ADMIT_MESSAGES_SHARE	128
/* Descriptors kept for everything but sessions, outbound ones apart. */
#define ADMIT_RESERVE_BASE	64
/* Stress begins above this share of the sessions, ends below the next. */
#define ADMIT_STRESS_ON		80	/* percent */
#define ADMIT_STRESS_OFF	70	/* percent */

/* The session budget and how it was reached. */
struct admit_budget {
	uint64_t	nofile;		/* descriptor limit */
	uint64_t	reserve;	/* descriptors kept for the rest */
	uint64_t	session_fds;	/* descriptors a session holds */
	uint64_t	messages;	/* headroom: messages at the budget */
	uint64_t	by_fds;		/* sessions the descriptors allow */
	uint64_t	by_memory;	/* sessions session_memory allows */
	uint64_t	sessions;	/* the cap in force */
	int		clamped;	/* max_connections was cut to by_fds */
};

void	admit_budget(struct admit_budget *, uint64_t, uint64_t, uint64_t,
	    uint64_t, uint64_t);
uint64_t admit_messages(const struct admit_budget *, uint64_t);
int	admit_is_stressed(int, uint64_t, uint64_t);

#endif
