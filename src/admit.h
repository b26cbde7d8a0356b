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
/* Descriptors each session may hold: its socket and a spool file. */
#define ADMIT_SESSION_FDS	2
/* Descriptors kept for everything but sessions, outbound ones apart. */
#define ADMIT_RESERVE_BASE	64
/* Stress begins above this share of the sessions, ends below the next. */
#define ADMIT_STRESS_ON		80	/* percent */
#define ADMIT_STRESS_OFF	70	/* percent */

/* The session budget and how it was reached. */
struct admit_budget {
	uint64_t	nofile;		/* descriptor limit */
	uint64_t	reserve;	/* descriptors kept for the rest */
	uint64_t	by_fds;		/* sessions the descriptors allow */
	uint64_t	by_memory;	/* sessions session_memory allows */
	uint64_t	sessions;	/* the cap in force */
	int		clamped;	/* max_connections was cut to by_fds */
};

void	admit_budget(struct admit_budget *, uint64_t, uint64_t, uint64_t,
	    uint64_t);
int	admit_is_stressed(int, uint64_t, uint64_t);

#endif
