/*
 * dlv.c: the transaction and outcome types every kind of delivery
 * shares.  Pure logic: no loop, no spool, no clock of its own.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dlv.h"
#include "util.h"

/* Fill in one of our own outcomes; the text is made printable. */
void
dlv_status_fill(struct dlv_status *st, enum dlv_result result,
    const char *status, const char *fmt, ...)
{
	va_list	ap;
	char	*p;

	st->result = result;
	util_strlcpy(st->status, status, sizeof st->status);
	st->reply[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(st->text, sizeof st->text, fmt, ap);
	va_end(ap);
	for (p = st->text; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	}
}
