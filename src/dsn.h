/*
 * dsn.h: delivery status notifications (RFC 3464): the report a sender
 * gets about some of a message's recipients.  Pure logic: builds the
 * message text from the envelope and the original message; never touches
 * the spool or the network.
 */
#ifndef DSN_H
#define DSN_H

#include <stddef.h>
#include <time.h>

#include "envelope.h"

#define DSN_LINE_MAX	998	/* octets in a line, CRLF aside (RFC 5322) */
#define DSN_ERROR_MAX	1024	/* octets of an error kept in a report */

enum dsn_action {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,
};

/* What a report needs besides the envelope. */
struct dsn_params {
	const char	*reporting_mta;	/* our host name */
	const char	*id;		/* the report's own queue id */
	time_t		 now;
	enum dsn_action	 action;
	const char	*original;	/* the original message as queued */
	size_t		 original_len;
	int		 full;		/* return all of it, not headers */
	time_t		 retry_until;	/* delayed: when we give up; 0 */
};

/*
 * dsn_build: on success *out is a heap buffer (NUL-terminated for
 * convenience) of *outlen octets, owned by the caller; -1 with errno
 * EINVAL on bad arguments, *out untouched.
 */
int	 dsn_build(const struct envelope *, const size_t *, size_t,
	    const struct dsn_params *, char **, size_t *);
size_t	 dsn_headers_len(const char *, size_t);
const char *dsn_action_str(enum dsn_action);

#endif
