/*
 * dlv.c: the outcomes every kind of delivery reports, and the rules
 * that turn them into recipient states and reports.  Pure logic: no
 * loop, no spool, no clock of its own (callers pass the time).
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "dlv.h"
#include "dsn.h"
#include "envelope.h"
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

static const char *const dlv_verdict_names[] = {
	[DLV_SENT] = "sent",
	[DLV_DEFERRED] = "deferred",
	[DLV_BOUNCED] = "bounced",
};

/* The word of a verdict in a log line's status=, as Postfix's. */
const char *
dlv_verdict_str(enum dlv_verdict v)
{
	return dlv_verdict_names[v];
}

/*
 * Record the outcome of one recipient in its envelope line and say what
 * it makes of it; tries is the count of earlier tries of the message.
 * A temporary failure on the try numbered max_tries is final: returned
 * to the sender, its status kept when it is 4.x.x, else 4.4.7.  A
 * recipient sent is marked so here; one bounced stays pending until its
 * report is committed, which is the caller's to do.
 */
enum dlv_verdict
dlv_apply(struct envelope_rcpt *r, const struct dlv_rcpt *dr, unsigned tries,
    uint64_t max_tries)
{
	const struct dlv_status	*st = &dr->st;

	util_strlcpy(r->status, st->status[0] != '\0' ? st->status :
	    (st->result == DLV_OK ? "2.0.0" : st->result == DLV_PERM ?
	    "5.0.0" : "4.0.0"), sizeof r->status);
	envelope_set_str(&r->error, st->reply[0] != '\0' ? st->reply :
	    st->text);
	envelope_set_str(&r->relay, dr->relay);
	switch (st->result) {
	case DLV_OK:
		r->state = ENVELOPE_RCPT_SENT;
		return DLV_SENT;
	case DLV_PERM:
		return DLV_BOUNCED;
	default:
		if ((uint64_t)tries + 1 < max_tries)
			return DLV_DEFERRED;
		if (r->status[0] != '4')
			util_strlcpy(r->status, "4.4.7", sizeof r->status);
		return DLV_BOUNCED;
	}
}

/*
 * Over TLS or not, for the attempt history: known only when a connection
 * was made, so -1 for DLV_RELAY_NONE and for a Maildir.
 */
int
dlv_history_tls(const struct dlv_rcpt *dr)
{
	if (strcmp(dr->relay, DLV_RELAY_NONE) == 0 ||
	    strcmp(dr->relay, DLV_RELAY_LOCAL) == 0)
		return -1;
	return dr->tls;
}

/*
 * The success report a recipient that asked NOTIFY=SUCCESS is owed
 * after an outcome: DSN_ACTION_DELIVERED for a Maildir, and for a final
 * delivery (LMTP) or DSN_ACTION_RELAYED for a peer that did not take the
 * DSN request (one that did reports for itself); -1 for none.
 */
int
dlv_success_notice(const struct dlv_rcpt *dr, int notify)
{
	if (dr->st.result != DLV_OK || !(notify & ENVELOPE_NOTIFY_SUCCESS))
		return -1;
	if (strcmp(dr->relay, DLV_RELAY_LOCAL) == 0)
		return DSN_ACTION_DELIVERED;
	if (dr->dsn)
		return -1;
	return dr->final ? DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED;
}

/*
 * Whether a recipient deferred again is owed its one delay report: it
 * asked for NOTIFY=DELAY, has not had one, and the message has waited
 * after (milliseconds; 0: never) since its arrival.
 */
int
dlv_delay_notice(const struct envelope_rcpt *r, time_t arrival,
    uint64_t after, time_t now)
{
	time_t	waited = now - arrival;

	return (r->notify & ENVELOPE_NOTIFY_DELAY) && !r->delay_notified &&
	    after > 0 && waited >= 0 && (uint64_t)waited * 1000 >= after;
}

/* Whether a failure report names this recipient (RFC 3461 NOTIFY). */
int
dlv_failure_notice(const struct envelope_rcpt *r)
{
	return r->notify == 0 || (r->notify & ENVELOPE_NOTIFY_FAILURE) != 0;
}

/*
 * When the last try falls due if every try fails, for a delay report:
 * tries made before this one, one every interval milliseconds.
 */
time_t
dlv_retry_until(unsigned tries, uint64_t max_tries, uint64_t interval,
    time_t now)
{
	uint64_t	done = (uint64_t)tries + 1, left = 0;

	if (max_tries > done)
		left = max_tries - done;
	return now + (time_t)(left * (interval / 1000));
}

/*
 * Direct, or through the gateway: always with gateway_all, or once a
 * message has failed gateway_after_tries times; never without one.
 */
int
dlv_use_gateway(const struct config *conf, unsigned tries)
{
	if (conf->gateway[0] == '\0')
		return 0;
	if (conf->gateway_all)
		return 1;
	return conf->gateway_after_tries > 0 &&
	    tries >= conf->gateway_after_tries;
}
