/*
 * trace.c: tern's Received header field, with its date in RFC 5322
 * form (util_date()).  Pure: a string built from what the caller says.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "trace.h"
#include "util.h"

/*
 * The field, CRLF-terminated, into buf; its length.  From a client:
 *   Received: from HELO ([ADDR])
 *   	by HOST (tern) with PROTO id ID
 *   	(using TLSv1.3 with cipher NAME)
 *   	for <RCPT>; DATE
 * From a local user:
 *   Received: by HOST (tern, from userid UID (user NAME))
 *   	id ID
 *   	for <RCPT>; DATE
 * A field too long for buf (a HELO near its limit) is cut.
 */
size_t
trace_received(char *buf, size_t size, const struct trace_received *t)
{
	char	date[64], tls[160], forclause[600];
	int	n;

	util_date(date, sizeof date, t->when);
	tls[0] = '\0';
	if (t->tls_version != NULL)
		snprintf(tls, sizeof tls, "\r\n\t(using %s with cipher %s)",
		    t->tls_version, t->tls_cipher);
	forclause[0] = '\0';
	if (t->rcpt != NULL)
		snprintf(forclause, sizeof forclause, "\r\n\tfor <%s>",
		    t->rcpt);
	if (t->helo != NULL)
		n = snprintf(buf, size, "Received: from %s ([%s%s])\r\n"
		    "\tby %s (tern) with %s id %s%s%s; %s\r\n", t->helo,
		    strchr(t->addr, ':') != NULL ? "IPv6:" : "", t->addr,
		    t->by, t->with, t->id, tls, forclause, date);
	else
		n = snprintf(buf, size, "Received: by %s (tern, %s)\r\n"
		    "\tid %s%s%s; %s\r\n", t->by, t->local, t->id, tls,
		    forclause, date);
	if (n < 0 || (size_t)n >= size)
		return strlen(buf);
	return (size_t)n;
}
