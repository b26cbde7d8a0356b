/*
 * admit.c: the arithmetic of admission control.  From the descriptor
 * limit, the configured cap and the memory budget it derives how many
 * SMTP sessions the loop may hold, and it decides when the load counts
 * as stress.  Pure logic: it never reads limits or clocks itself.
 */
#include "autoconf.h"

#include <stdint.h>

#include "admit.h"

/*
 * The budget: nofile descriptors less a reserve for the spool, the
 * outbound connections (each with a spool file open: two apiece), the
 * control socket and DNS, and less the headroom for messages being
 * received; then one descriptor per session and one per content filter
 * (each session has its own connection to each).  A configured cap
 * (max_connections, 0 for none) replaces the memory budget but never
 * exceeds what the descriptors allow.
 */
void
admit_budget(struct admit_budget *b, uint64_t nofile, uint64_t configured,
    uint64_t memory, uint64_t outbound, uint64_t filters)
{
	uint64_t	kept;

	b->nofile = nofile;
	b->reserve = ADMIT_RESERVE_BASE + 2 * outbound;
	b->session_fds = ADMIT_SESSION_FDS + filters;
	b->messages = nofile / ADMIT_MESSAGES_SHARE;
	if (b->messages < ADMIT_MESSAGES_MIN)
		b->messages = ADMIT_MESSAGES_MIN;
	kept = b->reserve + ADMIT_MESSAGE_FDS * b->messages;
	if (nofile >= kept + b->session_fds)
		b->by_fds = (nofile - kept) / b->session_fds;
	else {
		/* Too few for the reserve: one session, one message. */
		b->by_fds = 1;
		b->messages = 1;
	}
	b->by_memory = memory / ADMIT_SESSION_BYTES;
	if (b->by_memory == 0)
		b->by_memory = 1;
	b->clamped = 0;
	if (configured != 0) {
		b->sessions = configured;
		if (configured > b->by_fds) {
			b->sessions = b->by_fds;
			b->clamped = 1;
		}
	} else
		b->sessions = b->by_memory < b->by_fds ? b->by_memory :
		    b->by_fds;
}

/*
 * How many messages may be received at once while this many sessions
 * are open: those the descriptors the sessions leave allow, and never
 * fewer than the headroom, which the budget kept for the full budget.
 */
uint64_t
admit_messages(const struct admit_budget *b, uint64_t sessions)
{
	uint64_t	used, n = 0;

	used = b->reserve + sessions * b->session_fds;
	if (b->nofile > used)
		n = (b->nofile - used) / ADMIT_MESSAGE_FDS;
	return n > b->messages ? n : b->messages;
}

/*
 * Whether the server is under stress with this many sessions of a
 * budget, given whether it was: in above ADMIT_STRESS_ON percent, out
 * below ADMIT_STRESS_OFF, so it does not flap at the threshold.
 */
int
admit_is_stressed(int was, uint64_t sessions, uint64_t budget)
{
	if (budget == 0)
		return 0;
	if (was)
		return sessions * 100 >= budget * ADMIT_STRESS_OFF;
	return sessions * 100 > budget * ADMIT_STRESS_ON;
}
