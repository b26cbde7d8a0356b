/*
 * dsn.c: builds delivery status notifications (RFC 3464 inside an
 * RFC 6522 multipart/report) from an envelope, some of its recipients
 * and the original message.  Pure logic: returns a buffer; never
 * touches the spool, the network or the clock, and never logs (a broken
 * invariant aside).
 *
 * Everything taken from the envelope may hold text a remote server or a
 * client chose.  It is cleaned before use (controls and line breaks never
 * reach the output), and every header field and report line is folded or
 * cut so that no line exceeds the 998 octets of RFC 5322.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dsn.h"
#include "envelope.h"
#include "log.h"
#include "util.h"

#define DSN_FOLD	78	/* preferred line length in header fields */
#define DSN_WRAP	76	/* preferred line length in the text part */
#define DSN_DATE_SIZE	64
#define DSN_ID_MAX	64
#define DSN_HOST_MAX	255
#define DSN_BOUNDARY_MAX 70	/* RFC 2046 section 5.1.1 */

/* What differs between the four kinds of report. */
struct dsn_kind {
	const char	*action;	/* RFC 3464 Action: value */
	const char	*subject;
	const char	*status;	/* when the recipient has none */
	const char	*classes;	/* status classes the action allows */
	const char	*reason;	/* when the recipient has no error */
	const char	*intro;
	int		 last_attempt;	/* give Last-Attempt-Date */
	int		 success;	/* tell only what a peer replied */
};

static const struct dsn_kind dsn_kinds[] = {
	[DSN_ACTION_FAILED] = {
		"failed", "Undelivered Mail Returned to Sender", "5.0.0", "45",
		"delivery failed",
		"Your message could not be delivered to the recipients listed "
		"below, and the mail system has stopped trying.", 1, 0 },
	[DSN_ACTION_DELAYED] = {
		"delayed", "Delayed Mail (still being retried)", "4.0.0", "4",
		"delivery is delayed",
		"Your message has not yet been delivered to the recipients "
		"listed below. The mail system will keep trying; you do not "
		"need to send it again.", 1, 0 },
	[DSN_ACTION_DELIVERED] = {
		"delivered", "Successful Mail Delivery Report", "2.0.0", "2",
		"delivered to mailbox",
		"Your message was delivered to the recipients listed below.",
		0, 1 },
	[DSN_ACTION_RELAYED] = {
		"relayed", "Successful Mail Delivery Report", "2.0.0", "2",
		"relayed",
		"Your message was passed on to the next mail system for the "
		"recipients listed below. That system may not report on them "
		"any further.", 0, 1 },
};

static const char *const dsn_days[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
};
static const char *const dsn_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};


const char *
dsn_action_str(enum dsn_action action)
{
	if ((size_t)action >= nitems(dsn_kinds))
		return "unknown";
	return dsn_kinds[action].action;
}

/* The code point of a well-formed UTF-8 sequence of len octets. */
static unsigned long
dsn_utf8_decode(const unsigned char *p, size_t len)
{
	static const unsigned char	 mask[] = { 0, 0x7f, 0x1f, 0xf, 0x7 };
	unsigned long			 cp = p[0] & mask[len];
	size_t				 i;

	for (i = 1; i < len; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

/*
 * A copy of untrusted text fit for one line: runs of white space, CR and
 * LF become one space, the ends are trimmed, other controls become '?',
 * and so do octets above 127 unless utf8 is set and they form well-made
 * UTF-8.  Longer than max octets, it is cut there and ends in "...".
 */
static char *
dsn_clean(const char *s, int utf8, size_t max)
{
	const unsigned char	*p = (const unsigned char *)s;
	struct util_buf		 b = { NULL, 0, 0 };
	size_t			 n;
	int			 space = 0;

	util_buf_add(&b, "", 0);
	while (*p != '\0' && b.len <= max) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			space = 1;
			p++;
			continue;
		}
		if (space && b.len > 0)
			util_buf_add(&b, " ", 1);
		space = 0;
		if (*p < 0x20 || *p == 0x7f) {
			util_buf_add(&b, "?", 1);
			p++;
		} else if (*p < 0x80) {
			util_buf_add(&b, p, 1);
			p++;
		} else if (utf8 && (n = util_utf8_len(p, 4)) != 0) {
			util_buf_add(&b, p, n);
			p += n;
		} else {
			util_buf_add(&b, "?", 1);
			p++;
		}
	}
	if (b.len > max) {
		n = max;
		while (n > 0 && ((unsigned char)b.data[n] & 0xc0) == 0x80)
			n--;
		while (n > 0 && b.data[n - 1] == ' ')
			n--;
		b.len = n;
		util_buf_add(&b, "...", 3);
	}
	return b.data;
}

/* Whether s is 1 to max octets of the characters in allowed or alnum. */
static int
dsn_is_word(const char *s, const char *allowed, size_t max)
{
	size_t	len = strlen(s);

	if (len == 0 || len > max)
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr(allowed, *s) == NULL)
			return 0;
	}
	return 1;
}

/* The RFC 5322 date-time of t in local time, or -1 if it has none. */
static int
dsn_date(char *buf, size_t size, time_t t)
{
	struct tm	tm;
	long long	year;
	long		off;
	char		sign = '+';

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	year = (long long)tm.tm_year + 1900;
	if (year < 1900 || year > 9999)
		return -1;
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	if (util_snprintf(buf, size,
	    "%s, %d %s %lld %02d:%02d:%02d %c%02ld%02ld",
	    dsn_days[tm.tm_wday], tm.tm_mday, dsn_months[tm.tm_mon], year,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60) == -1)
		return -1;
	return 0;
}

/*
 * Append clean text (single spaces, no controls) starting at column col:
 * break at a space before width, begin each new line with indent, and cut
 * a word that cannot fit on any line at DSN_LINE_MAX, between characters.
 * The caller ends the last line.
 */
static void
dsn_wrap(struct util_buf *b, size_t col, const char *indent, const char *text,
    size_t width)
{
	const char	*w = text, *end;
	size_t		 ilen = strlen(indent), wlen, n;
	int		 first = 1;

	while (*w != '\0') {
		if ((end = strchr(w, ' ')) == NULL)
			end = w + strlen(w);
		wlen = end - w;
		if (!first) {
			if (col + 1 + wlen <= width) {
				util_buf_add(b, " ", 1);
				col++;
			} else {
				util_buf_add(b, "\r\n", 2);
				util_buf_add(b, indent, ilen);
				col = ilen;
			}
		}
		while (col + wlen > DSN_LINE_MAX) {
			n = DSN_LINE_MAX - col;
			while (n > 1 && ((unsigned char)w[n] & 0xc0) == 0x80)
				n--;
			util_buf_add(b, w, n);
			util_buf_add(b, "\r\n", 2);
			util_buf_add(b, indent, ilen);
			col = ilen;
			w += n;
			wlen -= n;
		}
		util_buf_add(b, w, wlen);
		col += wlen;
		first = 0;
		w = *end == ' ' ? end + 1 : end;
	}
}

/* Append a header field, its clean value folded (RFC 5322 section 2.2.3). */
static void
dsn_field(struct util_buf *b, const char *name, const char *value)
{
	util_buf_adds(b, name);
	util_buf_add(b, ": ", 2);
	dsn_wrap(b, strlen(name) + 2, " ", value, DSN_FOLD);
	util_buf_add(b, "\r\n", 2);
}

/* dsn_field with a printf value; the arguments must already be clean. */
static void __attribute__((format(printf, 3, 4)))
dsn_fieldf(struct util_buf *b, const char *name, const char *fmt, ...)
{
	struct util_buf	value = { NULL, 0, 0 };
	va_list		ap;

	va_start(ap, fmt);
	util_buf_vprintf(&value, fmt, ap);
	va_end(ap);
	dsn_field(b, name, value.data);
	free(value.data);
}

/*
 * "type; address" for Original-Recipient or Final-Recipient.  An address
 * that is not plain ASCII, or one of type utf-8, is of type utf-8 (RFC
 * 6533 section 3): in a message/delivery-status as utf-8-addr-xtext, so
 * that the part stays 7-bit; in a message/global-delivery-status (global)
 * as utf-8-addr-unitext, its characters as they are.  Either way "+",
 * "=", the backslash and controls are written "\x{HEX}".
 */
static char *
dsn_typed_addr(const char *type, size_t typelen, const char *addr, int global)
{
	struct util_buf		 b = { NULL, 0, 0 };
	char			*clean, *t;
	const unsigned char	*p;
	size_t			 n;
	int			 plain = 1;

	t = xstrndup(type, typelen);
	if (!dsn_is_word(t, "-", 32)) {
		free(t);
		t = xstrdup("rfc822");
	}
	clean = dsn_clean(addr, 1, SIZE_MAX);
	for (p = (const unsigned char *)clean; *p != '\0'; p++) {
		if (*p >= 0x80)
			plain = 0;
	}
	if (plain && strcasecmp(t, "utf-8") != 0) {
		util_buf_printf(&b, "%s; %s", t, clean);
		free(t);
		free(clean);
		return b.data;
	}
	util_buf_adds(&b, "utf-8; ");
	for (p = (const unsigned char *)clean; *p != '\0'; p += n) {
		n = *p < 0x80 ? 1 : util_utf8_len(p, 4);
		if (n == 0) {
			util_buf_add(&b, "?", 1);
			n = 1;
		} else if (*p > 0x20 && *p < 0x7f && *p != '+' &&
		    *p != '=' && *p != '\\')
			util_buf_add(&b, p, 1);
		else if (global && *p >= 0x80)
			util_buf_add(&b, p, n);
		else
			util_buf_printf(&b, "\\x{%lX}", dsn_utf8_decode(p, n));
	}
	free(t);
	free(clean);
	return b.data;
}

/* Whether a text starts with an SMTP reply code: "550 ...", "421-...". */
static int
dsn_is_reply(const char *s)
{
	return s[0] >= '2' && s[0] <= '5' && isdigit((unsigned char)s[1]) &&
	    isdigit((unsigned char)s[2]) && (s[3] == ' ' || s[3] == '-' ||
	    s[3] == '\0');
}

/*
 * The error a report shows for a recipient, or NULL.  A success report
 * shows only what a peer replied: our own words for a delivery name the
 * mailbox, a path on this host that is no business of the sender's.
 */
static const char *
dsn_rcpt_error(const struct envelope_rcpt *r, const struct dsn_kind *k)
{
	if (r->error == NULL || (k->success && !dsn_is_reply(r->error)))
		return NULL;
	return r->error;
}

/* Whether a relay names a peer: not a Maildir, not "no host reached". */
static int
dsn_is_remote(const char *relay)
{
	return relay != NULL && strcmp(relay, "local") != 0 &&
	    strcmp(relay, "none") != 0;
}

/* The host of a relay "name[address]:port": name, or "[address]". */
static char *
dsn_relay_host(const char *relay)
{
	char	*host = dsn_clean(relay, 0, DSN_HOST_MAX + 8);
	char	*open, *close, *colon;
	size_t	 i;

	if ((open = strchr(host, '[')) != NULL) {
		if (open != host)
			*open = '\0';
		else if ((close = strchr(open, ']')) != NULL)
			close[1] = '\0';
	} else if ((colon = strchr(host, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL && colon[1] != '\0') {
		for (i = 1; isdigit((unsigned char)colon[i]); i++)
			;
		if (colon[i] == '\0')
			*colon = '\0';
	}
	return host;
}

/* The text/plain part: what happened, in words, for a person. */
static void
dsn_text_part(struct util_buf *b, const struct envelope *env,
    const size_t *rcpts, size_t nrcpts, const struct dsn_kind *k,
    const char *mta, const char *arrival, const char *until)
{
	const struct envelope_rcpt	*r;
	const char			*error;
	char				*addr, *reason, *relay, *id, *line;
	size_t				 i;

	util_buf_printf(b, "This is the mail system at %s.\r\n\r\n", mta);
	dsn_wrap(b, 0, "", k->intro, DSN_WRAP);
	util_buf_add(b, "\r\n", 2);
	for (i = 0; i < nrcpts; i++) {
		r = &env->rcpts[rcpts[i]];
		addr = dsn_clean(r->addr, 1, SIZE_MAX);
		error = dsn_rcpt_error(r, k);
		reason = dsn_clean(error != NULL ? error : "", 1,
		    DSN_ERROR_MAX);
		xasprintf(&line, "<%s>: %s", addr,
		    *reason != '\0' ? reason : k->reason);
		util_buf_add(b, "\r\n", 2);
		dsn_wrap(b, 0, "    ", line, DSN_WRAP);
		util_buf_add(b, "\r\n", 2);
		free(line);
		if (dsn_is_remote(r->relay)) {
			relay = dsn_clean(r->relay, 0, DSN_HOST_MAX + 8);
			if (*relay != '\0') {
				util_buf_add(b, "    ", 4);
				xasprintf(&line, "Remote server: %s", relay);
				dsn_wrap(b, 4, "    ", line, DSN_WRAP);
				util_buf_add(b, "\r\n", 2);
				free(line);
			}
			free(relay);
		}
		free(reason);
		free(addr);
	}
	id = dsn_clean(env->id, 0, ENVELOPE_ID_SIZE);
	if (*id != '\0')
		xasprintf(&line, "Your message arrived at %s on %s with queue "
		    "id %s.", mta, arrival, id);
	else
		xasprintf(&line, "Your message arrived at %s on %s.", mta,
		    arrival);
	util_buf_add(b, "\r\n", 2);
	dsn_wrap(b, 0, "", line, DSN_WRAP);
	util_buf_add(b, "\r\n", 2);
	free(line);
	free(id);
	if (until != NULL) {
		xasprintf(&line, "The mail system will keep trying until %s; "
		    "if the message is still not delivered by then, it will "
		    "be returned to you.", until);
		util_buf_add(b, "\r\n", 2);
		dsn_wrap(b, 0, "", line, DSN_WRAP);
		util_buf_add(b, "\r\n", 2);
		free(line);
	}
}

/*
 * The message/delivery-status part (RFC 3464 section 2), or with global
 * the message/global-delivery-status of RFC 6533, where addresses and
 * texts keep their UTF-8.
 */
static void
dsn_status_part(struct util_buf *b, const struct envelope *env,
    const size_t *rcpts, size_t nrcpts, const struct dsn_kind *k,
    const char *mta, const char *arrival, const char *now, const char *until,
    int global)
{
	const struct envelope_rcpt	*r;
	const char			*semi, *error;
	char				*s;
	size_t				 i;

	dsn_fieldf(b, "Reporting-MTA", "dns; %s", mta);
	if (env->envid != NULL) {
		s = dsn_clean(env->envid, 0, DSN_ID_MAX * 2);
		if (*s != '\0')
			dsn_field(b, "Original-Envelope-Id", s);
		free(s);
	}
	dsn_field(b, "Arrival-Date", arrival);
	for (i = 0; i < nrcpts; i++) {
		r = &env->rcpts[rcpts[i]];
		util_buf_add(b, "\r\n", 2);
		if (r->orcpt != NULL) {
			if ((semi = strchr(r->orcpt, ';')) != NULL)
				s = dsn_typed_addr(r->orcpt,
				    semi - r->orcpt, semi + 1, global);
			else
				s = dsn_typed_addr("rfc822", 6, r->orcpt,
				    global);
			dsn_field(b, "Original-Recipient", s);
			free(s);
		}
		s = dsn_typed_addr("rfc822", 6, r->addr, global);
		dsn_field(b, "Final-Recipient", s);
		free(s);
		dsn_field(b, "Action", k->action);
		dsn_field(b, "Status", envelope_is_status(r->status) &&
		    strchr(k->classes, r->status[0]) != NULL ? r->status :
		    k->status);
		/* A Maildir, or no host reached, is no Remote-MTA. */
		if (dsn_is_remote(r->relay)) {
			s = dsn_relay_host(r->relay);
			if (*s != '\0')
				dsn_fieldf(b, "Remote-MTA", "dns; %s", s);
			free(s);
		}
		/* An SMTP reply is "smtp"; our own reasons are ours. */
		if ((error = dsn_rcpt_error(r, k)) != NULL) {
			s = dsn_clean(error, global, DSN_ERROR_MAX);
			if (*s != '\0')
				dsn_fieldf(b, "Diagnostic-Code", "%s; %s",
				    dsn_is_reply(s) ? "smtp" : "X-tern", s);
			free(s);
		}
		if (k->last_attempt)
			dsn_field(b, "Last-Attempt-Date", now);
		if (until != NULL)
			dsn_field(b, "Will-Retry-Until", until);
	}
}

/* Whether len octets at s hold any octet above 127. */
static int
dsn_has_8bit(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	}
	return 0;
}

/* Append a message with every line ended by CRLF, bare CR and LF alike. */
static void
dsn_add_crlf(struct util_buf *b, const char *s, size_t len)
{
	size_t	i, start = 0;

	for (i = 0; i < len; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			continue;
		util_buf_add(b, s + start, i - start);
		util_buf_add(b, "\r\n", 2);
		if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	util_buf_add(b, s + start, len - start);
}

/* Whether needle occurs in len octets at s. */
static int
dsn_has_text(const char *s, size_t len, const char *needle)
{
	return len != 0 && memmem(s, len, needle, strlen(needle)) != NULL;
}

/*
 * A multipart boundary made from the report's id that occurs in none of
 * the parts; the original is checked as it is, since making its line ends
 * CRLF cannot create the boundary (which holds no CR or LF).
 */
static void
dsn_boundary(char *buf, size_t size, const char *id,
    const struct util_buf *text, const struct util_buf *status,
    const char *original, size_t original_len)
{
	char		base[DSN_BOUNDARY_MAX - 22];	/* and "_%lu" */
	unsigned long	n;

	/* A long id is cut short: the boundary needs only to be unused. */
	util_snprintf(base, sizeof base, "=_tern_%s", id);
	util_strlcpy(buf, base, size);
	for (n = 1; dsn_has_text(text->data, text->len, buf) ||
	    dsn_has_text(status->data, status->len, buf) ||
	    dsn_has_text(original, original_len, buf); n++)
		util_snprintf(buf, size, "%s_%lu", base, n);
}

/*
 * Whether the report is an internationalized one (RFC 6533): about an
 * SMTPUTF8 message, with a UTF-8 address to report or UTF-8 in the
 * header it returns.  Its parts are then the message/global types.
 */
static int
dsn_is_global(const struct envelope *env, const size_t *rcpts,
    size_t nrcpts, const struct dsn_params *p)
{
	const struct envelope_rcpt	*r;
	size_t				 i;

	if (!env->smtputf8)
		return 0;
	for (i = 0; i < nrcpts; i++) {
		r = &env->rcpts[rcpts[i]];
		if (dsn_has_8bit(r->addr, strlen(r->addr)) ||
		    (r->orcpt != NULL && dsn_has_8bit(r->orcpt,
		    strlen(r->orcpt))))
			return 1;
	}
	return dsn_has_8bit(p->original, dsn_headers_len(p->original,
	    p->original_len));
}

/* Whether the arguments can make a report; sets errno if not. */
static int
dsn_check_args(const struct envelope *env, const size_t *rcpts,
    size_t nrcpts, const struct dsn_params *p, char **out, size_t *outlen)
{
	size_t	i;

	if (env == NULL || p == NULL || out == NULL || outlen == NULL ||
	    rcpts == NULL || nrcpts == 0)
		goto bad;
	if (env->sender == NULL)
		goto bad;
	if ((size_t)p->action >= nitems(dsn_kinds))
		goto bad;
	if (p->reporting_mta == NULL ||
	    !dsn_is_word(p->reporting_mta, ".-_[]:", DSN_HOST_MAX))
		goto bad;
	if (p->id == NULL || !dsn_is_word(p->id, "-_", DSN_ID_MAX))
		goto bad;
	if (p->original == NULL && p->original_len != 0)
		goto bad;
	for (i = 0; i < nrcpts; i++) {
		if (rcpts[i] >= env->nrcpts || env->rcpts[rcpts[i]].addr ==
		    NULL)
			goto bad;
	}
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int
dsn_build(const struct envelope *env, const size_t *rcpts, size_t nrcpts,
    const struct dsn_params *p, char **out, size_t *outlen)
{
	const struct dsn_kind	*k;
	struct util_buf		 b = { NULL, 0, 0 };
	struct util_buf		 text = { NULL, 0, 0 };
	struct util_buf		 status = { NULL, 0, 0 };
	char			 now[DSN_DATE_SIZE], arrival[DSN_DATE_SIZE];
	char			 until[DSN_DATE_SIZE];
	const char		*untilp = NULL;
	char			 boundary[DSN_BOUNDARY_MAX + 1];
	char			*sender;
	size_t			 hlen;
	int			 text8, orig8, status8, global;

	if (dsn_check_args(env, rcpts, nrcpts, p, out, outlen) == -1)
		return -1;
	if (dsn_date(now, sizeof now, p->now) == -1 ||
	    dsn_date(arrival, sizeof arrival, env->arrival) == -1) {
		errno = EINVAL;
		return -1;
	}

	/*
	 * The sender may be a UTF-8 address (RFC 6532), kept as such: a
	 * report on an SMTPUTF8 message goes back the same way.
	 */
	sender = dsn_clean(env->sender, 1, SIZE_MAX);
	if (*sender == '\0') {
		free(sender);
		errno = EINVAL;
		return -1;
	}
	k = &dsn_kinds[p->action];
	/* Will-Retry-Until belongs in a delay report alone (RFC 3464 2.3.9). */
	if (p->action == DSN_ACTION_DELAYED && p->retry_until > 0 &&
	    dsn_date(until, sizeof until, p->retry_until) == 0)
		untilp = until;

	hlen = p->full ? p->original_len :
	    dsn_headers_len(p->original, p->original_len);
	global = dsn_is_global(env, rcpts, nrcpts, p);
	dsn_text_part(&text, env, rcpts, nrcpts, k, p->reporting_mta,
	    arrival, untilp);
	dsn_status_part(&status, env, rcpts, nrcpts, k, p->reporting_mta,
	    arrival, now, untilp, global);
	dsn_boundary(boundary, sizeof boundary, p->id, &text, &status,
	    p->original, hlen);
	text8 = dsn_has_8bit(text.data, text.len);
	status8 = dsn_has_8bit(status.data, status.len);
	orig8 = dsn_has_8bit(p->original, hlen);

	dsn_fieldf(&b, "From", "Mail Delivery System <MAILER-DAEMON@%s>",
	    p->reporting_mta);
	dsn_fieldf(&b, "To", "<%s>", sender);
	dsn_field(&b, "Subject", k->subject);
	dsn_field(&b, "Date", now);
	dsn_fieldf(&b, "Message-ID", "<%s@%s>", p->id, p->reporting_mta);
	dsn_field(&b, "Auto-Submitted", "auto-replied");
	dsn_field(&b, "MIME-Version", "1.0");
	dsn_fieldf(&b, "Content-Type", "multipart/report; "
	    "report-type=%s; boundary=\"%s\"", global ?
	    "global-delivery-status" : "delivery-status", boundary);
	if (text8 || status8 || orig8)
		dsn_field(&b, "Content-Transfer-Encoding", "8bit");
	util_buf_add(&b, "\r\n", 2);
	util_buf_adds(&b, "This is a delivery status notification in MIME "
	    "format.\r\n");
	free(sender);

	util_buf_printf(&b, "\r\n--%s\r\n", boundary);
	dsn_field(&b, "Content-Type", "text/plain; charset=utf-8");
	dsn_field(&b, "Content-Description", "Notification");
	if (text8)
		dsn_field(&b, "Content-Transfer-Encoding", "8bit");
	util_buf_add(&b, "\r\n", 2);
	util_buf_add(&b, text.data, text.len);

	util_buf_printf(&b, "\r\n--%s\r\n", boundary);
	dsn_field(&b, "Content-Type", global ?
	    "message/global-delivery-status" : "message/delivery-status");
	dsn_field(&b, "Content-Description", "Delivery report");
	if (status8)
		dsn_field(&b, "Content-Transfer-Encoding", "8bit");
	util_buf_add(&b, "\r\n", 2);
	util_buf_add(&b, status.data, status.len);

	/*
	 * The original goes back as it came: an 8-bit original makes this
	 * part 8-bit, labelled so, and is not re-encoded.  Its lines were
	 * bounded when it was received; only bare CR and LF are mended.
	 */
	if (hlen != 0) {
		util_buf_printf(&b, "\r\n--%s\r\n", boundary);
		dsn_field(&b, "Content-Type", global ? (p->full ?
		    "message/global" : "message/global-headers") : p->full ?
		    "message/rfc822" : "text/rfc822-headers");
		dsn_field(&b, "Content-Description", p->full ?
		    "Your message" : "Headers of your message");
		if (orig8)
			dsn_field(&b, "Content-Transfer-Encoding", "8bit");
		util_buf_add(&b, "\r\n", 2);
		dsn_add_crlf(&b, p->original, hlen);
	}
	util_buf_printf(&b, "\r\n--%s--\r\n", boundary);

	free(text.data);
	free(status.data);
	*out = b.data;
	*outlen = b.len;
	return 0;
}

/*
 * Length of the header block of a message, up to and including the empty
 * line that ends it (CRLF or a bare LF), or len if there is none.
 */
size_t
dsn_headers_len(const char *msg, size_t len)
{
	const char	*nl;
	size_t		 start = 0, end;

	while (start < len &&
	    (nl = memchr(msg + start, '\n', len - start)) != NULL) {
		end = nl - msg;
		if (end == start || (end == start + 1 && msg[start] == '\r'))
			return end + 1;
		start = end + 1;
	}
	return len;
}
