/*
 * trace.h: the Received header field tern puts first in every message
 * it queues (RFC 5321 4.4), one layout for mail from an SMTP client and
 * from a local user.  Pure logic: the callers pass the time.
 */
#ifndef TRACE_H
#define TRACE_H

#include <stddef.h>
#include <time.h>

/* Octets of a Received field, at most: longer ones are cut. */
#define TRACE_RECEIVED_SIZE	2048

/* What the field says; NULL members are left out. */
struct trace_received {
	const char	*helo;		/* the client's; NULL: local */
	const char	*addr;		/* its address; IPv6 with ':' */
	const char	*by;		/* our host name */
	const char	*with;		/* "ESMTPS", ...: SMTP only */
	const char	*local;		/* "from userid 1000 (user a)" */
	const char	*id;		/* queue id */
	const char	*tls_version;	/* with its cipher, or NULL */
	const char	*tls_cipher;
	const char	*rcpt;		/* the one recipient, or NULL */
	time_t		 when;
};

size_t	 trace_received(char *, size_t, const struct trace_received *);

#endif
