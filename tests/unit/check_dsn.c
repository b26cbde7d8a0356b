/*
 * check_dsn.c: the bounce builder.  Every report is parsed back here:
 * CRLF only, no line over 998 octets, the multipart structure found from
 * its boundary, and each required field present exactly once with the
 * value it should have, for each action, recipient set and option.  Also
 * hostile text from remote servers, long texts, boundary collisions,
 * dsn_headers_len, bad arguments, success reports that never show our
 * own delivery text (a Maildir path), RFC 6533 global reports, and
 * Python's email package reading one report when /usr/bin/python3
 * exists.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dsn.h"
#include "envelope.h"
#include "util.h"

#define MTA		"mx.example.org"
#define REPORT_ID	"0123456789XYZAB"
#define QID		"0123456789ABCDE"
#define NOW		((time_t)1700000000)
#define NOW_DATE	"Tue, 14 Nov 2023 22:13:20 +0000"
#define ARRIVAL		((time_t)1699990000)
#define ARRIVAL_DATE	"Tue, 14 Nov 2023 19:26:40 +0000"
#define SENDER		"sender@example.com"
#define PYTHON		"/usr/bin/python3"

#define MAX_FIELDS	64
#define MAX_PARTS	8
#define MAX_BLOCKS	16

static const char original_hdrs[] =
    "Received: from client.example.com (client.example.com [192.0.2.9])\r\n"
    "\tby mx.example.org with ESMTP id " QID "\r\n"
    "From: Sender <sender@example.com>\r\n"
    "To: someone@example.net\r\n"
    "Subject: hello\r\n"
    "Message-ID: <m1@example.com>\r\n"
    "\r\n";
static const char original_body[] =
    "Hello there.\r\n"
    "\r\n"
    "Second paragraph.\r\n";

/*
 * One recipient in the test envelope, and what the report must say of
 * it.  shown is the address as the text part shows it; reason is the
 * error as shown there, NULL for the action's default.
 */
struct rspec {
	const char	*addr;
	const char	*orcpt;
	const char	*status;
	const char	*error;
	const char	*relay;

	const char	*want_orcpt;	/* NULL: no Original-Recipient */
	const char	*want_final;
	const char	*want_status;	/* NULL: the action's default */
	const char	*want_remote;	/* NULL: no Remote-MTA */
	const char	*want_diag;	/* NULL: no Diagnostic-Code */
	const char	*shown;
	const char	*reason;
};

static const struct rspec rspecs[] = {
	/* 0: nothing but the address */
	{ "alice@example.net", NULL, "", NULL, NULL,
	  NULL, "rfc822; alice@example.net", NULL, NULL, NULL,
	  "alice@example.net", NULL },
	/* 1: everything */
	{ "bob@example.org", "rfc822;Bob@Example.org", "5.1.1",
	  "550 5.1.1 <bob@example.org>: user unknown",
	  "mx.example.org[198.51.100.3]:25",
	  "rfc822; Bob@Example.org", "rfc822; bob@example.org", "5.1.1",
	  "dns; mx.example.org",
	  "smtp; 550 5.1.1 <bob@example.org>: user unknown",
	  "bob@example.org", "550 5.1.1 <bob@example.org>: user unknown" },
	/* 2: a relay with no name */
	{ "carol@example.com", NULL, "4.4.1",
	  "421 4.4.1 connection timed out", "[192.0.2.7]:25",
	  NULL, "rfc822; carol@example.com", "4.4.1", "dns; [192.0.2.7]",
	  "smtp; 421 4.4.1 connection timed out",
	  "carol@example.com", "421 4.4.1 connection timed out" },
	/* 3: UTF-8 addresses become RFC 6533 xtext in the report */
	{ "j\xc3\xb6ran@ex\xc3\xa4mple.net",
	  "utf-8;j\xc3\xb6ran+x@ex\xc3\xa4mple.net", "", NULL,
	  "mx.example.net",
	  "utf-8; j\\x{F6}ran\\x{2B}x@ex\\x{E4}mple.net",
	  "utf-8; j\\x{F6}ran@ex\\x{E4}mple.net", NULL,
	  "dns; mx.example.net", NULL,
	  "j\xc3\xb6ran@ex\xc3\xa4mple.net", NULL },
	/* 4: junk status, empty error, relay without brackets */
	{ "dave@example.com", "rfc822; dave+orig@example.com", "junk", "",
	  "relay.example.com:587",
	  "rfc822; dave+orig@example.com", "rfc822; dave@example.com", NULL,
	  "dns; relay.example.com", NULL,
	  "dave@example.com", NULL },
	/* 5: orcpt without a type, IPv6 relay, success status */
	{ "erin@example.com", "erin-orig@example.com", "2.1.5",
	  "250 2.1.5 Ok", "[2001:db8::25]:25",
	  "rfc822; erin-orig@example.com", "rfc822; erin@example.com",
	  "2.1.5", "dns; [2001:db8::25]", "smtp; 250 2.1.5 Ok",
	  "erin@example.com", "250 2.1.5 Ok" },
	/* 6: hostile text everywhere */
	{ "x@example.net\r\nBcc: victim@example.org",
	  "rfc822;o@example.net\nX-Orcpt-Evil: 1", "5.7.1",
	  "550 no\r\nSubject: pwned\r\n\r\nX-Evil: 1\x01\x1b[31m\x7f",
	  "evil.example\r\nX-Relay-Evil: 1[192.0.2.1]:25",
	  "rfc822; o@example.net X-Orcpt-Evil: 1",
	  "rfc822; x@example.net Bcc: victim@example.org", "5.7.1",
	  "dns; evil.example X-Relay-Evil: 1",
	  "smtp; 550 no Subject: pwned X-Evil: 1??[31m?",
	  "x@example.net Bcc: victim@example.org",
	  "550 no Subject: pwned X-Evil: 1??[31m?" },
};

/* What a report says for each action, written out independently. */
static const struct {
	enum dsn_action	 action;
	const char	*str;
	const char	*subject;
	const char	*status;
	int		 last_attempt;
	const char	*classes;	/* of a recipient's status kept */
} actions[] = {
	{ DSN_ACTION_FAILED, "failed", "Undelivered Mail Returned to Sender",
	  "5.0.0", 1, "45" },
	{ DSN_ACTION_DELAYED, "delayed", "Delayed Mail (still being retried)",
	  "4.0.0", 1, "4" },
	{ DSN_ACTION_DELIVERED, "delivered", "Successful Mail Delivery Report",
	  "2.0.0", 0, "2" },
	{ DSN_ACTION_RELAYED, "relayed", "Successful Mail Delivery Report",
	  "2.0.0", 0, "2" },
};

/* A report to build: which recipients, which action, which options. */
struct rcase {
	enum dsn_action	 action;
	int		 full;
	const char	*envid;
	size_t		 sel[nitems(rspecs)];
	size_t		 nsel;
};

static const struct rcase rcases[] = {
	{ DSN_ACTION_FAILED, 0, NULL, { 0 }, 1 },
	{ DSN_ACTION_FAILED, 1, "ENV-123", { 1, 2, 0 }, 3 },
	{ DSN_ACTION_FAILED, 0, "ENV-124", { 6 }, 1 },
	{ DSN_ACTION_FAILED, 1, NULL, { 3, 4, 5 }, 3 },
	{ DSN_ACTION_DELAYED, 0, "ENV-125", { 2 }, 1 },
	{ DSN_ACTION_DELAYED, 1, NULL, { 3, 4 }, 2 },
	{ DSN_ACTION_DELAYED, 0, NULL, { 0, 6 }, 2 },
	{ DSN_ACTION_DELIVERED, 0, NULL, { 1 }, 1 },
	{ DSN_ACTION_DELIVERED, 1, "ENV-126", { 5, 0 }, 2 },
	{ DSN_ACTION_RELAYED, 0, NULL, { 4 }, 1 },
	{ DSN_ACTION_RELAYED, 1, "ENV-127", { 0, 1, 2, 3, 4, 5, 6 }, 7 },
	{ DSN_ACTION_RELAYED, 0, "ENV-128", { 5, 3 }, 2 },
};

struct field {
	char	*name;
	char	*value;		/* unfolded: CRLFs removed */
};

struct fields {
	struct field	f[MAX_FIELDS];
	size_t		n;
};

struct part {
	const char	*hdr;
	size_t		 hdrlen;
	const char	*body;
	size_t		 bodylen;
	struct fields	 fields;
};

/* A report taken apart. */
struct report {
	const char	*data;
	size_t		 len;
	struct fields	 top;
	char		 boundary[128];
	const char	*preamble;
	size_t		 preamblelen;
	struct part	 parts[MAX_PARTS];
	size_t		 nparts;
};

static char *
xmemdup(const char *s, size_t len)
{
	char	*p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static size_t
count_text(const char *s, size_t len, const char *needle)
{
	const char	*p = s, *end = s + len, *hit;
	size_t		 n = 0, nlen = strlen(needle);

	while ((size_t)(end - p) >= nlen &&
	    (hit = memmem(p, end - p, needle, nlen)) != NULL) {
		n++;
		p = hit + 1;
	}
	return n;
}

/* CRLF line ends only, lines within max octets, no stray controls. */
static void
check_lines(const char *s, size_t len, size_t max)
{
	size_t	i, start = 0;

	for (i = 0; i < len; i++) {
		unsigned char	c = s[i];

		if (c == '\r') {
			ck_assert_msg(i + 1 < len && s[i + 1] == '\n',
			    "bare CR at %zu", i);
			continue;
		}
		if (c == '\n') {
			ck_assert_msg(i > 0 && s[i - 1] == '\r',
			    "bare LF at %zu", i);
			ck_assert_msg(i - 1 - start <= max,
			    "line at %zu is %zu octets", start, i - 1 - start);
			start = i + 1;
			continue;
		}
		ck_assert_msg(c >= 0x20 || c == '\t', "control %02x at %zu",
		    c, i);
		ck_assert_msg(c != 0x7f, "DEL at %zu", i);
	}
	ck_assert_msg(start == len, "last line not ended");
}

/* Parse a header block (CRLF lines, up to an empty line or the end). */
static void
fields_parse(struct fields *fs, const char *s, size_t len)
{
	const char	*line = s, *end = s + len, *eol, *colon, *v;
	struct field	*f;
	size_t		 n;
	char		*joined;

	fs->n = 0;
	while (line < end) {
		eol = memmem(line, end - line, "\r\n", 2);
		ck_assert_ptr_nonnull(eol);
		if (eol == line) {
			ck_assert_msg(eol + 2 == end, "text after blank line");
			break;
		}
		if (*line == ' ' || *line == '\t') {
			ck_assert_msg(fs->n > 0, "continuation first");
			f = &fs->f[fs->n - 1];
			n = strlen(f->value);
			joined = xmalloc(n + (eol - line) + 1);
			memcpy(joined, f->value, n);
			memcpy(joined + n, line, eol - line);
			joined[n + (eol - line)] = '\0';
			free(f->value);
			f->value = joined;
		} else {
			ck_assert_uint_lt(fs->n, MAX_FIELDS);
			colon = memchr(line, ':', eol - line);
			ck_assert_msg(colon != NULL && colon != line,
			    "not a field: %.*s", (int)(eol - line), line);
			for (v = line; v < colon; v++)
				ck_assert(*v > 32 && *v < 127);
			f = &fs->f[fs->n++];
			f->name = xmemdup(line, colon - line);
			v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			f->value = xmemdup(v, eol - v);
		}
		line = eol + 2;
	}
}

static void
fields_free(struct fields *fs)
{
	size_t	i;

	for (i = 0; i < fs->n; i++) {
		free(fs->f[i].name);
		free(fs->f[i].value);
	}
	fs->n = 0;
}

static size_t
fields_count(const struct fields *fs, const char *name)
{
	size_t	i, n = 0;

	for (i = 0; i < fs->n; i++) {
		if (strcasecmp(fs->f[i].name, name) == 0)
			n++;
	}
	return n;
}

/* The value of a field that must be there exactly once. */
static const char *
fields_one(const struct fields *fs, const char *name)
{
	size_t	i;

	ck_assert_msg(fields_count(fs, name) == 1, "%s: %zu times", name,
	    fields_count(fs, name));
	for (i = 0; i < fs->n; i++) {
		if (strcasecmp(fs->f[i].name, name) == 0)
			return fs->f[i].value;
	}
	return NULL;
}

static void
field_is(const struct fields *fs, const char *name, const char *want)
{
	const char	*got = fields_one(fs, name);

	ck_assert_msg(strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"",
	    name, got, want);
}

/* A field that is there once with that value, or absent if want is NULL. */
static void
field_maybe(const struct fields *fs, const char *name, const char *want)
{
	if (want == NULL)
		ck_assert_msg(fields_count(fs, name) == 0, "%s present", name);
	else
		field_is(fs, name, want);
}

/* Take a report apart, checking its form on the way. */
static void
report_parse(struct report *r, const char *data, size_t len)
{
	const char	*end = data + len, *hend, *ct, *q, *d, *start, *x;
	char		 delim[160];
	size_t		 dlen, i;
	struct part	*p;

	memset(r, 0, sizeof *r);
	r->data = data;
	r->len = len;
	ck_assert_uint_eq(strlen(data), len);
	check_lines(data, len, DSN_LINE_MAX);

	hend = memmem(data, len, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(hend);
	fields_parse(&r->top, data, hend + 4 - data);

	ct = fields_one(&r->top, "Content-Type");
	q = "multipart/report; report-type=delivery-status; boundary=\"";
	if (strncmp(ct, q, strlen(q)) != 0)
		q = "multipart/report; report-type=global-delivery-status; "
		    "boundary=\"";
	ck_assert_msg(strncmp(ct, q, strlen(q)) == 0, "Content-Type: %s", ct);
	ct += strlen(q);
	ck_assert_ptr_nonnull(q = strchr(ct, '"'));
	ck_assert_str_eq(q, "\"");
	ck_assert_uint_ge(q - ct, 1);
	ck_assert_uint_le(q - ct, 70);
	memcpy(r->boundary, ct, q - ct);
	r->boundary[q - ct] = '\0';
	for (i = 0; r->boundary[i] != '\0'; i++)
		ck_assert_msg(strchr("0123456789abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?",
		    r->boundary[i]) != NULL, "boundary %s", r->boundary);

	dlen = util_snprintf(delim, sizeof delim, "\r\n--%s", r->boundary);
	d = memmem(hend + 2, end - (hend + 2), delim, dlen);
	ck_assert_ptr_nonnull(d);
	r->preamble = hend + 4 < d ? hend + 4 : d;
	r->preamblelen = d - r->preamble;
	for (;;) {
		d += dlen;
		if (end - d >= 2 && memcmp(d, "--", 2) == 0) {
			ck_assert_uint_eq(end - d, 4);
			ck_assert(memcmp(d, "--\r\n", 4) == 0);
			break;
		}
		ck_assert(end - d >= 2 && memcmp(d, "\r\n", 2) == 0);
		start = d + 2;
		d = memmem(start, end - start, delim, dlen);
		ck_assert_msg(d != NULL, "no closing delimiter");
		ck_assert_uint_lt(r->nparts, MAX_PARTS);
		p = &r->parts[r->nparts++];
		x = memmem(start, d - start, "\r\n\r\n", 4);
		ck_assert_ptr_nonnull(x);
		p->hdr = start;
		p->hdrlen = x + 4 - start;
		p->body = x + 4;
		p->bodylen = d - (x + 4);
		fields_parse(&p->fields, p->hdr, p->hdrlen);
		ck_assert_msg(count_text(start, d - start, r->boundary) == 0,
		    "boundary inside part %zu", r->nparts);
	}
	ck_assert_uint_eq(count_text(r->preamble, r->preamblelen,
	    r->boundary), 0);
	ck_assert_uint_eq(count_text(data, len, r->boundary), r->nparts + 2);
}

static void
report_free(struct report *r)
{
	size_t	i;

	fields_free(&r->top);
	for (i = 0; i < r->nparts; i++)
		fields_free(&r->parts[i].fields);
}

/* The header blocks of a message/delivery-status body. */
static size_t
blocks_parse(struct fields *blocks, size_t max, const char *s, size_t len)
{
	const char	*end = s + len, *x;
	size_t		 n = 0;

	while (s < end) {
		ck_assert_uint_lt(n, max);
		x = memmem(s, end - s, "\r\n\r\n", 4);
		if (x == NULL) {
			ck_assert(end - s >= 2 && memcmp(end - 2, "\r\n", 2) ==
			    0);
			fields_parse(&blocks[n++], s, end - s);
			break;
		}
		fields_parse(&blocks[n++], s, x + 2 - s);
		s = x + 4;
	}
	return n;
}

/* Text with every run of white space, line ends included, as one space. */
static char *
squeeze(const char *s, size_t len)
{
	char	*out = xmalloc(len + 1), *o = out;
	size_t	 i;
	int	 space = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' ||
		    s[i] == '\n') {
			space = 1;
			continue;
		}
		if (space && o != out)
			*o++ = ' ';
		space = 0;
		*o++ = s[i];
	}
	*o = '\0';
	return out;
}

static int
has_8bit(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	}
	return 0;
}

/* Well-formed UTF-8: each lead octet followed by its continuations. */
static void
check_utf8(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, j, n;

	for (i = 0; i < len; i += n) {
		if (p[i] < 0x80)
			n = 1;
		else if (p[i] >= 0xc2 && p[i] <= 0xdf)
			n = 2;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			n = 3;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			n = 4;
		else
			ck_abort_msg("bad UTF-8 lead %02x at %zu", p[i], i);
		ck_assert_msg(i + n <= len, "UTF-8 cut at the end");
		for (j = 1; j < n; j++)
			ck_assert_msg((p[i + j] & 0xc0) == 0x80,
			    "UTF-8 broken at %zu", i + j);
	}
}

/* Every line of text no longer than max octets. */
static void
check_width(const char *s, size_t len, size_t max)
{
	const char	*end = s + len, *eol;

	while (s < end) {
		eol = memmem(s, end - s, "\r\n", 2);
		ck_assert_ptr_nonnull(eol);
		ck_assert_msg((size_t)(eol - s) <= max, "line of %zu: %.*s",
		    (size_t)(eol - s), (int)(eol - s), s);
		s = eol + 2;
	}
}

static void
env_fill(struct envelope *env, const char *sender, const char *envid)
{
	struct envelope_rcpt	*r;
	size_t			 i;

	envelope_init(env);
	util_strlcpy(env->id, QID, sizeof env->id);
	env->arrival = ARRIVAL;
	envelope_set_str(&env->sender, sender);
	if (envid != NULL)
		envelope_set_str(&env->envid, envid);
	for (i = 0; i < nitems(rspecs); i++) {
		ck_assert_ptr_nonnull(r = envelope_add_rcpt(env,
		    rspecs[i].addr));
		if (rspecs[i].orcpt != NULL)
			envelope_set_str(&r->orcpt, rspecs[i].orcpt);
		util_strlcpy(r->status, rspecs[i].status, sizeof r->status);
		if (rspecs[i].error != NULL)
			envelope_set_str(&r->error, rspecs[i].error);
		if (rspecs[i].relay != NULL)
			envelope_set_str(&r->relay, rspecs[i].relay);
	}
	ck_assert_uint_eq(env->nrcpts, nitems(rspecs));
}

static void
params_fill(struct dsn_params *p, enum dsn_action action, int full,
    const char *original, size_t original_len)
{
	memset(p, 0, sizeof *p);
	p->reporting_mta = MTA;
	p->id = REPORT_ID;
	p->now = NOW;
	p->action = action;
	p->original = original;
	p->original_len = original_len;
	p->full = full;
}

static char *
original_new(size_t *len)
{
	char	*s;

	*len = xasprintf(&s, "%s%s", original_hdrs, original_body);
	return s;
}

static size_t
action_index(enum dsn_action action)
{
	size_t	i;

	for (i = 0; i < nitems(actions); i++) {
		if (actions[i].action == action)
			return i;
	}
	ck_abort_msg("no action %d", (int)action);
	return 0;
}

/*
 * The Status a recipient gets: its own when the class suits the action
 * (2 for a success, 4 for a delay, 4 or 5 for a failure), else the
 * action's default.
 */
static const char *
status_for(const struct rspec *s, size_t a)
{
	if (s->want_status != NULL &&
	    strchr(actions[a].classes, s->want_status[0]) != NULL)
		return s->want_status;
	return actions[a].status;
}

/* The text part: one line per recipient naming it and the reason. */
static void
check_text_part(const struct part *p, const struct rcase *c)
{
	char	*text, *want;
	size_t	 i, j;
	int	 chosen;

	field_is(&p->fields, "Content-Type", "text/plain; charset=utf-8");
	check_utf8(p->body, p->bodylen);
	field_maybe(&p->fields, "Content-Transfer-Encoding",
	    has_8bit(p->body, p->bodylen) ? "8bit" : NULL);
	text = squeeze(p->body, p->bodylen);
	for (i = 0; i < nitems(rspecs); i++) {
		chosen = 0;
		for (j = 0; j < c->nsel; j++)
			chosen |= c->sel[j] == i;
		if (rspecs[i].reason != NULL)
			xasprintf(&want, "<%s>: %s", rspecs[i].shown,
			    rspecs[i].reason);
		else
			xasprintf(&want, "<%s>: ", rspecs[i].shown);
		if (chosen)
			ck_assert_msg(strstr(text, want) != NULL,
			    "text part lacks \"%s\":\n%s", want, text);
		else
			ck_assert_msg(strstr(text, rspecs[i].shown) == NULL,
			    "text part names %s", rspecs[i].shown);
		free(want);
	}
	ck_assert_msg(strstr(text, ARRIVAL_DATE) != NULL, "no arrival date");
	free(text);
}

/* The delivery-status part, field by field (RFC 3464 section 2). */
static void
check_status_part(const struct part *p, const struct rcase *c)
{
	struct fields		 blocks[MAX_BLOCKS];
	const struct rspec	*s;
	size_t			 nblocks, i, a = action_index(c->action);
	size_t			 want_n;

	field_is(&p->fields, "Content-Type", "message/delivery-status");
	ck_assert_uint_eq(fields_count(&p->fields,
	    "Content-Transfer-Encoding"), 0);
	ck_assert(!has_8bit(p->body, p->bodylen));
	nblocks = blocks_parse(blocks, MAX_BLOCKS, p->body, p->bodylen);
	ck_assert_uint_eq(nblocks, 1 + c->nsel);

	field_is(&blocks[0], "Reporting-MTA", "dns; " MTA);
	field_maybe(&blocks[0], "Original-Envelope-Id", c->envid);
	field_is(&blocks[0], "Arrival-Date", ARRIVAL_DATE);
	ck_assert_uint_eq(blocks[0].n, c->envid != NULL ? 3 : 2);

	for (i = 0; i < c->nsel; i++) {
		const struct fields	*b = &blocks[1 + i];

		s = &rspecs[c->sel[i]];
		field_maybe(b, "Original-Recipient", s->want_orcpt);
		field_is(b, "Final-Recipient", s->want_final);
		field_is(b, "Action", actions[a].str);
		field_is(b, "Status", status_for(s, a));
		field_maybe(b, "Remote-MTA", s->want_remote);
		field_maybe(b, "Diagnostic-Code", s->want_diag);
		field_maybe(b, "Last-Attempt-Date", actions[a].last_attempt ?
		    NOW_DATE : NULL);
		want_n = 3 + (s->want_orcpt != NULL) +
		    (s->want_remote != NULL) + (s->want_diag != NULL) +
		    actions[a].last_attempt;
		ck_assert_uint_eq(b->n, want_n);
	}
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
}

/* The returned original: headers or all, with CRLF line ends. */
static void
check_original_part(const struct part *p, int full, const char *want,
    size_t wantlen)
{
	field_is(&p->fields, "Content-Type", full ? "message/rfc822" :
	    "text/rfc822-headers");
	field_maybe(&p->fields, "Content-Transfer-Encoding",
	    has_8bit(want, wantlen) ? "8bit" : NULL);
	ck_assert_uint_eq(p->bodylen, wantlen);
	ck_assert(memcmp(p->body, want, wantlen) == 0);
}

/* The top-level header fields every report has. */
static void
check_top(const struct report *r, enum dsn_action action, const char *to)
{
	size_t	a = action_index(action), i;
	int	eight = 0;

	field_is(&r->top, "From", "Mail Delivery System <MAILER-DAEMON@" MTA
	    ">");
	field_is(&r->top, "To", to);
	field_is(&r->top, "Subject", actions[a].subject);
	field_is(&r->top, "Date", NOW_DATE);
	field_is(&r->top, "Message-ID", "<" REPORT_ID "@" MTA ">");
	field_is(&r->top, "Auto-Submitted", "auto-replied");
	field_is(&r->top, "MIME-Version", "1.0");
	for (i = 0; i < r->nparts; i++)
		eight |= has_8bit(r->parts[i].body, r->parts[i].bodylen);
	field_maybe(&r->top, "Content-Transfer-Encoding", eight ? "8bit" :
	    NULL);
	for (i = 0; i < r->top.n; i++)
		ck_assert_msg(strncasecmp(r->top.f[i].name, "X-", 2) != 0 &&
		    strcasecmp(r->top.f[i].name, "Bcc") != 0,
		    "field %s", r->top.f[i].name);
}

START_TEST(test_report)
{
	const struct rcase	*c = &rcases[_i];
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*orig, *out;
	size_t			 origlen, outlen, i;

	orig = original_new(&origlen);
	env_fill(&env, SENDER, c->envid);
	params_fill(&p, c->action, c->full, orig, origlen);
	ck_assert_int_eq(dsn_build(&env, c->sel, c->nsel, &p, &out,
	    &outlen), 0);
	report_parse(&r, out, outlen);

	check_top(&r, c->action, "<" SENDER ">");
	ck_assert_uint_eq(r.nparts, 3);
	check_text_part(&r.parts[0], c);
	check_status_part(&r.parts[1], c);
	if (c->full)
		check_original_part(&r.parts[2], 1, orig, origlen);
	else
		check_original_part(&r.parts[2], 0, original_hdrs,
		    strlen(original_hdrs));

	/* Short values fold and wrap to the usual width. */
	check_width(out, r.parts[2].hdr - out, 78);

	/* No line anywhere begins a field a hostile text tried to add. */
	for (i = 0; i + 2 < outlen; i++) {
		if (i != 0 && out[i - 1] != '\n')
			continue;
		ck_assert_msg(strncmp(out + i, "X-", 2) != 0 &&
		    strncmp(out + i, "Bcc", 3) != 0 &&
		    strncmp(out + i, "Subject: pwned", 14) != 0,
		    "injected line at %zu: %.40s", i, out + i);
	}

	report_free(&r);
	free(out);
	free(orig);
	envelope_clear(&env);
}
END_TEST

/* A report with no original has the first two parts only. */
START_TEST(test_no_original)
{
	static const size_t	 sel[] = { 1 };
	static const struct rcase c = { DSN_ACTION_FAILED, 0, NULL, { 1 }, 1 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out;
	size_t			 outlen;

	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	check_top(&r, DSN_ACTION_FAILED, "<" SENDER ">");
	ck_assert_uint_eq(r.nparts, 2);
	check_text_part(&r.parts[0], &c);
	check_status_part(&r.parts[1], &c);
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/*
 * Will-Retry-Until: in a delay report, once per recipient with the date
 * given, and said in words in the text part; never in another report,
 * nor when no date is given.
 */
START_TEST(test_retry_until)
{
	static const size_t	 sel[] = { 2, 0 };
	enum dsn_action		 action = actions[_i % nitems(actions)].action;
	struct fields		 blocks[MAX_BLOCKS];
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*orig, *out, *text;
	size_t			 origlen, outlen, nblocks, i;
	int			 given = _i < (int)nitems(actions);
	int			 shown = given && action == DSN_ACTION_DELAYED;

	orig = original_new(&origlen);
	env_fill(&env, SENDER, NULL);
	params_fill(&p, action, 0, orig, origlen);
	if (given)
		p.retry_until = NOW + 3600;
	ck_assert_int_eq(dsn_build(&env, sel, nitems(sel), &p, &out,
	    &outlen), 0);
	report_parse(&r, out, outlen);
	ck_assert_uint_eq(r.nparts, 3);
	nblocks = blocks_parse(blocks, MAX_BLOCKS, r.parts[1].body,
	    r.parts[1].bodylen);
	ck_assert_uint_eq(nblocks, 1 + nitems(sel));
	ck_assert_uint_eq(fields_count(&blocks[0], "Will-Retry-Until"), 0);
	for (i = 1; i < nblocks; i++)
		field_maybe(&blocks[i], "Will-Retry-Until", shown ?
		    "Tue, 14 Nov 2023 23:13:20 +0000" : NULL);
	text = squeeze(r.parts[0].body, r.parts[0].bodylen);
	ck_assert_int_eq(strstr(text, "keep trying until Tue, 14 Nov 2023 "
	    "23:13:20 +0000") != NULL, shown);
	free(text);
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	report_free(&r);
	free(out);
	free(orig);
	envelope_clear(&env);
}
END_TEST

/* Originals with bare LF or CR, and 8-bit ones, come back mended. */
static const struct {
	const char	*original;
	const char	*want_hdrs;
	const char	*want_full;
} originals[] = {
	{ "Subject: a\nFrom: b@example.com\n\nbody\nmore\n",
	  "Subject: a\r\nFrom: b@example.com\r\n\r\n",
	  "Subject: a\r\nFrom: b@example.com\r\n\r\nbody\r\nmore\r\n" },
	{ "Subject: a\rFrom: b@example.com\r\n\r\nbody\r\r\n",
	  "Subject: a\r\nFrom: b@example.com\r\n\r\n",
	  "Subject: a\r\nFrom: b@example.com\r\n\r\nbody\r\n\r\n" },
	{ "Subject: caf\xc3\xa9\r\n\r\nbody\r\n",
	  "Subject: caf\xc3\xa9\r\n\r\n",
	  "Subject: caf\xc3\xa9\r\n\r\nbody\r\n" },
	{ "Subject: plain\r\n\r\nbody caf\xc3\xa9\r\n",
	  "Subject: plain\r\n\r\n",
	  "Subject: plain\r\n\r\nbody caf\xc3\xa9\r\n" },
	{ "Subject: no body\r\nFrom: b@example.com\r\n",
	  "Subject: no body\r\nFrom: b@example.com\r\n",
	  "Subject: no body\r\nFrom: b@example.com\r\n" },
	{ "Subject: no end",
	  "Subject: no end",
	  "Subject: no end" },
};

START_TEST(test_original)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	const char		*o = originals[_i / 2].original;
	const char		*want;
	char			*out;
	size_t			 outlen;
	int			 full = _i % 2;

	want = full ? originals[_i / 2].want_full :
	    originals[_i / 2].want_hdrs;
	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_DELAYED, full, o, strlen(o));
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	check_top(&r, DSN_ACTION_DELAYED, "<" SENDER ">");
	ck_assert_uint_eq(r.nparts, 3);
	check_original_part(&r.parts[2], full, want, strlen(want));
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/*
 * An original holding the boundary a report would use gets another; so
 * does one holding that one too, and so on.
 */
START_TEST(test_boundary_collision)
{
	static const size_t	 sel[] = { 1 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*orig, *next, *out, seen[6][128];
	size_t			 origlen, outlen, i, j;

	env_fill(&env, SENDER, NULL);
	orig = original_new(&origlen);
	for (i = 0; i < nitems(seen); i++) {
		params_fill(&p, DSN_ACTION_FAILED, _i, orig, origlen);
		ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen),
		    0);
		report_parse(&r, out, outlen);
		ck_assert_uint_eq(r.nparts, 3);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(r.boundary, seen[j]);
		ck_assert_ptr_null(memmem(orig, origlen, r.boundary,
		    strlen(r.boundary)));
		util_strlcpy(seen[i], r.boundary, sizeof seen[i]);
		report_free(&r);
		free(out);

		/*
		 * The next original carries this boundary in its header
		 * block, or as a delimiter line in its body when it goes
		 * back whole.
		 */
		if (_i == 1 && i % 2 == 1)
			origlen = xasprintf(&next, "%s--%s\r\n", orig,
			    seen[i]);
		else
			origlen = xasprintf(&next, "Comment: %s\r\n%s",
			    seen[i], orig);
		free(orig);
		orig = next;
	}
	free(orig);
	envelope_clear(&env);
}
END_TEST

/* The boundary is also kept out of the text a remote server sent. */
START_TEST(test_boundary_in_error)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out, *err, first[128];
	size_t			 outlen;

	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	util_strlcpy(first, r.boundary, sizeof first);
	report_free(&r);
	free(out);

	xasprintf(&err, "550 see\r\n--%s\r\nContent-Type: text/html", first);
	envelope_set_str(&env.rcpts[0].error, err);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	ck_assert_str_ne(r.boundary, first);
	ck_assert_uint_eq(r.nparts, 2);
	report_free(&r);
	free(out);
	free(err);
	envelope_clear(&env);
}
END_TEST

/* A hostile sender cannot add header fields either. */
START_TEST(test_sender_injection)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out;
	size_t			 outlen;

	env_fill(&env, "s@example.com\r\nX-Sender-Evil: 1\r\n\r\nbody",
	    "E1\r\nX-Envid-Evil: 1");
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	check_top(&r, DSN_ACTION_FAILED,
	    "<s@example.com X-Sender-Evil: 1 body>");
	ck_assert_uint_eq(r.top.n, 8);
	ck_assert_ptr_nonnull(strstr(out,
	    "Original-Envelope-Id: E1 X-Envid-Evil: 1\r\n"));
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/* The longest id still gives a boundary within 70 characters. */
START_TEST(test_long_id)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			 id[65], *out, *msgid;
	size_t			 outlen;

	memset(id, 'Q', sizeof id - 1);
	id[sizeof id - 1] = '\0';
	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	p.id = id;
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	xasprintf(&msgid, "<%s@%s>", id, MTA);
	field_is(&r.top, "Message-ID", msgid);
	ck_assert_uint_le(strlen(r.boundary), 70);
	free(msgid);
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/* Long texts from remote servers: wrapped, cut, never over 998. */
static const struct {
	const char	*word;		/* repeated to make the text */
	size_t		 count;
	int		 spaced;	/* words separated by spaces */
} longs[] = {
	{ "word", 600, 1 },
	{ "x", 3000, 0 },
	{ "\xc3\xa9", 1500, 0 },
	{ "\xc3\xa9x", 700, 0 },	/* cuts fall inside characters */
	{ "abcdefghij", 120, 0 },
};

START_TEST(test_long_error)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	struct fields		 blocks[MAX_BLOCKS];
	const char		*diag;
	char			*err, *out, *e;
	size_t			 wlen = strlen(longs[_i].word), outlen, i, n;

	err = e = xmalloc(longs[_i].count * (wlen + 1) + 1);
	for (i = 0; i < longs[_i].count; i++) {
		memcpy(e, longs[_i].word, wlen);
		e += wlen;
		if (longs[_i].spaced)
			*e++ = ' ';
	}
	*e = '\0';

	env_fill(&env, SENDER, NULL);
	envelope_set_str(&env.rcpts[0].error, err);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	ck_assert_uint_eq(r.nparts, 2);
	check_utf8(r.parts[0].body, r.parts[0].bodylen);
	if (longs[_i].spaced)
		check_width(r.parts[1].body, r.parts[1].bodylen, 78);

	n = blocks_parse(blocks, MAX_BLOCKS, r.parts[1].body,
	    r.parts[1].bodylen);
	ck_assert_uint_eq(n, 2);
	diag = fields_one(&blocks[1], "Diagnostic-Code");
	/* Our own reason, not a reply: not of type smtp. */
	ck_assert_msg(strncmp(diag, "X-tern; ", 8) == 0, "%s", diag);
	ck_assert_uint_le(strlen(diag), 8 + DSN_ERROR_MAX + 3 +
	    DSN_ERROR_MAX / 900);
	ck_assert_uint_ge(strlen(diag), 8 + DSN_ERROR_MAX / 2);
	ck_assert_str_eq(diag + strlen(diag) - 3, "...");
	if (!longs[_i].spaced) {
		/* Only the cut at the line limit may add a space. */
		for (i = 8, n = 0; diag[i] != '\0'; i++)
			n += diag[i] == ' ';
		ck_assert_uint_le(n, 1);
	}
	if (longs[_i].spaced)
		ck_assert(strncmp(diag + 8, err, strlen(diag) - 11) == 0);
	for (i = 0; i < 2; i++)
		fields_free(&blocks[i]);
	report_free(&r);
	free(out);
	free(err);
	envelope_clear(&env);
}
END_TEST

/* A sender too long for one line is cut across lines. */
START_TEST(test_long_sender)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			 sender[1600], *out;
	size_t			 outlen;

	memset(sender, 'a', sizeof sender - 1);
	sender[sizeof sender - 1] = '\0';
	sender[800] = '@';
	env_fill(&env, sender, NULL);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	/* "<" sender ">" and the one space the cut adds on unfolding. */
	ck_assert_uint_eq(strlen(fields_one(&r.top, "To")),
	    sizeof sender - 1 + 2 + 1);
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/* Dates carry the local zone's offset. */
static const struct {
	const char	*tz;
	const char	*want;
} zones[] = {
	{ "UTC", "Tue, 14 Nov 2023 22:13:20 +0000" },
	{ "<+0530>-5:30", "Wed, 15 Nov 2023 03:43:20 +0530" },
	{ "EST5", "Tue, 14 Nov 2023 17:13:20 -0500" },
};

START_TEST(test_date_zone)
{
	static const size_t	 sel[] = { 0 };
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out;
	size_t			 outlen;

	ck_assert_int_eq(setenv("TZ", zones[_i].tz, 1), 0);
	tzset();
	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_DELAYED, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	report_parse(&r, out, outlen);
	field_is(&r.top, "Date", zones[_i].want);
	report_free(&r);
	free(out);
	envelope_clear(&env);
	ck_assert_int_eq(setenv("TZ", "UTC", 1), 0);
	tzset();
}
END_TEST

/* What dsn_build refuses, leaving *out alone. */
enum bad_kind {
	BAD_NO_RCPTS,
	BAD_INDEX,
	BAD_INDEX_LATER,
	BAD_NULL_ENV,
	BAD_NULL_PARAMS,
	BAD_NULL_RCPTS,
	BAD_NULL_OUT,
	BAD_ACTION,
	BAD_MTA_NULL,
	BAD_MTA_EMPTY,
	BAD_MTA_SPACE,
	BAD_ID_NULL,
	BAD_ID_EMPTY,
	BAD_ID_CHARS,
	BAD_ID_LONG,
	BAD_SENDER_EMPTY,
	BAD_SENDER_BLANK,
	BAD_ORIGINAL,
	BAD_NOW,
	BAD_ARRIVAL,
};

START_TEST(test_bad_args)
{
	size_t			 sel[2] = { 0, 1 }, nsel = 2, outlen = 0;
	struct envelope		 env;
	struct dsn_params	 p;
	char			*sentinel = (char *)"untouched";
	char			*out = sentinel, longid[66];
	const struct envelope	*e = &env;
	const struct dsn_params	*pp = &p;
	const size_t		*s = sel;
	char			**op = &out;

	env_fill(&env, SENDER, NULL);
	params_fill(&p, DSN_ACTION_FAILED, 0, NULL, 0);
	switch ((enum bad_kind)_i) {
	case BAD_NO_RCPTS:
		nsel = 0;
		break;
	case BAD_INDEX:
		sel[0] = nitems(rspecs);
		break;
	case BAD_INDEX_LATER:
		sel[1] = SIZE_MAX;
		break;
	case BAD_NULL_ENV:
		e = NULL;
		break;
	case BAD_NULL_PARAMS:
		pp = NULL;
		break;
	case BAD_NULL_RCPTS:
		s = NULL;
		break;
	case BAD_NULL_OUT:
		op = NULL;
		break;
	case BAD_ACTION:
		p.action = (enum dsn_action)99;
		break;
	case BAD_MTA_NULL:
		p.reporting_mta = NULL;
		break;
	case BAD_MTA_EMPTY:
		p.reporting_mta = "";
		break;
	case BAD_MTA_SPACE:
		p.reporting_mta = "mx.example.org\r\nX-Evil: 1";
		break;
	case BAD_ID_NULL:
		p.id = NULL;
		break;
	case BAD_ID_EMPTY:
		p.id = "";
		break;
	case BAD_ID_CHARS:
		p.id = "ABC\"DEF";
		break;
	case BAD_ID_LONG:
		memset(longid, 'Q', sizeof longid - 1);
		longid[sizeof longid - 1] = '\0';
		p.id = longid;
		break;
	case BAD_SENDER_EMPTY:
		envelope_set_str(&env.sender, "");
		break;
	case BAD_SENDER_BLANK:
		envelope_set_str(&env.sender, " \r\n\t");
		break;
	case BAD_ORIGINAL:
		p.original_len = 10;
		break;
	case BAD_NOW:
		p.now = (time_t)INT64_MAX;
		break;
	case BAD_ARRIVAL:
		env.arrival = (time_t)400000000000LL;
		break;
	}
	errno = 0;
	ck_assert_int_eq(dsn_build(e, s, nsel, pp, op, &outlen), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_eq(out, sentinel);
	ck_assert_uint_eq(outlen, 0);
	envelope_clear(&env);
}
END_TEST

static const struct {
	const char	*msg;
	size_t		 want;	/* SIZE_MAX: the whole length */
} headers_len[] = {
	{ "", SIZE_MAX },
	{ "Subject: x\r\n", SIZE_MAX },
	{ "Subject: x", SIZE_MAX },
	{ "Subject: x\r\n\r\n", SIZE_MAX },
	{ "Subject: x\r\n\r\nbody\r\n", 14 },
	{ "Subject: x\r\nFrom: y\r\n\r\n\r\nbody", 23 },
	{ "Subject: x\n\nbody\n", 12 },
	{ "Subject: x\n\n", SIZE_MAX },
	{ "Subject: x\r\n\nbody", 13 },
	{ "\r\nbody", 2 },
	{ "\nbody", 1 },
	{ "A: 1\r\n \r\n\r\nb", 11 },
	{ "A: 1\r\n\tfolded\r\n\r\nb", 17 },
	{ "A: 1\r\r\nb", SIZE_MAX },
};

START_TEST(test_headers_len)
{
	const char	*m = headers_len[_i].msg;
	size_t		 len = strlen(m), want = headers_len[_i].want;
	char		*copy;

	if (want == SIZE_MAX)
		want = len;
	/* An exact-size copy lets the sanitizer catch reads past the end. */
	copy = xmalloc(len == 0 ? 1 : len);
	memcpy(copy, m, len);
	ck_assert_uint_eq(dsn_headers_len(copy, len), want);
	free(copy);
}
END_TEST

START_TEST(test_action_str)
{
	ck_assert_str_eq(dsn_action_str(actions[_i].action),
	    actions[_i].str);
}
END_TEST

START_TEST(test_action_str_unknown)
{
	ck_assert_str_eq(dsn_action_str((enum dsn_action)42), "unknown");
}
END_TEST

/*
 * Python's email package must read the report as we mean it.  argv:
 * subject, date as epoch seconds, third part's type, action, then a
 * Final-Recipient and Status pair per recipient.
 */
static const char python_check[] =
    "import sys, email, email.utils\n"
    "a = sys.argv[1:]\n"
    "m = email.message_from_bytes(sys.stdin.buffer.read())\n"
    "assert not m.defects, m.defects\n"
    "assert m.get_content_type() == 'multipart/report'\n"
    "assert m.get_param('report-type') == 'delivery-status'\n"
    "assert m['Subject'] == a[0], m['Subject']\n"
    "d = email.utils.parsedate_to_datetime(m['Date'])\n"
    "assert int(d.timestamp()) == int(a[1]), m['Date']\n"
    "assert m['Auto-Submitted'] == 'auto-replied'\n"
    "assert email.utils.parseaddr(m['To'])[1] == 'sender@example.com'\n"
    "parts = m.get_payload()\n"
    "assert len(parts) == 3, len(parts)\n"
    "for p in parts:\n"
    "    assert not p.defects, p.defects\n"
    "assert parts[0].get_content_type() == 'text/plain'\n"
    "assert parts[0].get_content_charset() == 'utf-8'\n"
    "text = parts[0].get_payload(decode=True).decode('utf-8')\n"
    "ds = parts[1]\n"
    "assert ds.get_content_type() == 'message/delivery-status'\n"
    "blocks = ds.get_payload()\n"
    "rcpts = a[4:]\n"
    "assert len(blocks) == 1 + len(rcpts) // 2, len(blocks)\n"
    "assert blocks[0]['Reporting-MTA'] == 'dns; mx.example.org'\n"
    "for i in range(len(rcpts) // 2):\n"
    "    b = blocks[1 + i]\n"
    "    assert b['Final-Recipient'] == rcpts[2 * i], b['Final-Recipient']\n"
    "    assert b['Action'] == a[3], b['Action']\n"
    "    assert b['Status'] == rcpts[2 * i + 1], b['Status']\n"
    "    assert rcpts[2 * i].split('; ')[1] in text\n"
    "assert parts[2].get_content_type() == a[2]\n"
    "if a[2] == 'message/rfc822':\n"
    "    assert parts[2].get_payload()[0]['Subject'] == 'hello'\n"
    "else:\n"
    "    assert 'Subject: hello' in parts[2].get_payload()\n";

/* Run python_check on a report; returns its exit status. */
static int
python_run(const char *data, size_t len, char *const argv[], int quiet)
{
	void	(*old)(int);
	pid_t	 pid;
	int	 fd[2], status, null;
	ssize_t	 n;
	size_t	 off = 0;

	ck_assert_int_eq(pipe(fd), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		dup2(fd[0], STDIN_FILENO);
		close(fd[0]);
		close(fd[1]);
		if (quiet && (null = open("/dev/null", O_WRONLY)) != -1)
			dup2(null, STDERR_FILENO);
		execv(PYTHON, argv);
		_exit(127);
	}
	close(fd[0]);
	old = signal(SIGPIPE, SIG_IGN);
	while (off < len) {
		n = write(fd[1], data + off, len - off);
		if (n == -1)
			break;
		off += n;
	}
	close(fd[1]);
	signal(SIGPIPE, old);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_uint_eq(off, len);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_python)
{
	static const size_t	 sel[] = { 1, 2, 5 };
	struct envelope		 env;
	struct dsn_params	 p;
	char			*argv[16], *orig, *out, epoch[32];
	size_t			 origlen, outlen, i, n = 0;
	int			 full = _i % 2;

	if (access(PYTHON, X_OK) == -1)
		return;
	orig = original_new(&origlen);
	env_fill(&env, SENDER, "ENV-9");
	params_fill(&p, actions[_i / 2].action, full, orig, origlen);
	ck_assert_int_eq(dsn_build(&env, sel, nitems(sel), &p, &out, &outlen),
	    0);

	util_snprintf(epoch, sizeof epoch, "%lld", (long long)NOW);
	argv[n++] = (char *)"python3";
	argv[n++] = (char *)"-c";
	argv[n++] = (char *)python_check;
	argv[n++] = (char *)actions[_i / 2].subject;
	argv[n++] = epoch;
	argv[n++] = (char *)(full ? "message/rfc822" : "text/rfc822-headers");
	argv[n++] = (char *)actions[_i / 2].str;
	for (i = 0; i < nitems(sel); i++) {
		argv[n++] = (char *)rspecs[sel[i]].want_final;
		argv[n++] = (char *)status_for(&rspecs[sel[i]], _i / 2);
	}
	argv[n] = NULL;
	ck_assert_int_eq(python_run(out, outlen, argv, 0), 0);

	/* The check can fail: a report cut short is refused. */
	ck_assert_int_ne(python_run(out, outlen / 2, argv, 1), 0);

	free(out);
	free(orig);
	envelope_clear(&env);
}
END_TEST

/*
 * A success report says nothing of how we delivered but what a peer
 * replied: a Maildir delivery's own text names a path on this host and
 * must not leak, in words or in a Diagnostic-Code.  A failure report
 * keeps our reason.
 */
static const enum dsn_action leak_actions[] = {
	DSN_ACTION_DELIVERED, DSN_ACTION_RELAYED, DSN_ACTION_FAILED,
};

START_TEST(test_success_no_path)
{
	static const size_t	 sel[] = { 0 };
	enum dsn_action		 action = leak_actions[_i];
	struct fields		 blocks[MAX_BLOCKS];
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out;
	size_t			 outlen, nblocks, i;
	int			 failed = action == DSN_ACTION_FAILED;

	env_fill(&env, SENDER, NULL);
	envelope_set_str(&env.rcpts[0].error, "delivered to maildir "
	    "/srv/mail/secret/alice");
	envelope_set_str(&env.rcpts[0].relay, "local");
	util_strlcpy(env.rcpts[0].status, failed ? "5.2.0" : "2.0.0",
	    sizeof env.rcpts[0].status);
	params_fill(&p, action, 0, NULL, 0);
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	ck_assert_msg((memmem(out, outlen, "/srv/mail", 9) != NULL) == failed,
	    "the path %s", failed ? "is missing" : "leaked");
	ck_assert_ptr_null(memmem(out, outlen, "Remote server", 13));
	report_parse(&r, out, outlen);
	nblocks = blocks_parse(blocks, MAX_BLOCKS, r.parts[1].body,
	    r.parts[1].bodylen);
	ck_assert_uint_eq(nblocks, 2);
	field_maybe(&blocks[1], "Remote-MTA", NULL);
	field_maybe(&blocks[1], "Diagnostic-Code", failed ? "X-tern; "
	    "delivered to maildir /srv/mail/secret/alice" : NULL);
	if (action == DSN_ACTION_DELIVERED)
		ck_assert_ptr_nonnull(memmem(r.parts[0].body,
		    r.parts[0].bodylen, "<alice@example.net>: delivered to "
		    "mailbox", 40));
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	report_free(&r);
	free(out);
	envelope_clear(&env);
}
END_TEST

/*
 * RFC 6533: a report on an SMTPUTF8 message with a UTF-8 address or
 * UTF-8 header fields is a global one: message/global-delivery-status
 * with utf-8-addr-unitext addresses and the original returned as
 * message/global or message/global-headers; otherwise the ASCII types,
 * UTF-8 addresses as xtext.
 */
static const struct {
	int		 smtputf8;
	size_t		 rcpt;
	const char	*hdrs;
	int		 full;
	int		 global;
	const char	*final;
} globals[] = {
	{ 1, 3, "Subject: plain\r\n\r\n", 0, 1,
	  "utf-8; j\xc3\xb6ran@ex\xc3\xa4mple.net" },
	{ 1, 3, "Subject: plain\r\n\r\n", 1, 1,
	  "utf-8; j\xc3\xb6ran@ex\xc3\xa4mple.net" },
	{ 1, 0, "Subject: gr\xc3\xbc\xc3\x9f\r\n\r\n", 0, 1,
	  "rfc822; alice@example.net" },
	{ 1, 0, "Subject: plain\r\n\r\n", 0, 0, "rfc822; alice@example.net" },
	{ 0, 3, "Subject: plain\r\n\r\n", 0, 0,
	  "utf-8; j\\x{F6}ran@ex\\x{E4}mple.net" },
};

START_TEST(test_global)
{
	size_t			 sel[1] = { globals[_i].rcpt };
	struct fields		 blocks[MAX_BLOCKS];
	struct envelope		 env;
	struct dsn_params	 p;
	struct report		 r;
	char			*out, *orig;
	size_t			 outlen, nblocks, i;
	int			 g = globals[_i].global;
	int			 full = globals[_i].full;

	env_fill(&env, SENDER, NULL);
	env.smtputf8 = globals[_i].smtputf8;
	xasprintf(&orig, "%sbody\r\n", globals[_i].hdrs);
	params_fill(&p, DSN_ACTION_FAILED, full, orig, strlen(orig));
	ck_assert_int_eq(dsn_build(&env, sel, 1, &p, &out, &outlen), 0);
	check_utf8(out, outlen);
	report_parse(&r, out, outlen);
	ck_assert_uint_eq(r.nparts, 3);
	ck_assert_ptr_nonnull(strstr(fields_one(&r.top, "Content-Type"), g ?
	    "report-type=global-delivery-status;" :
	    "report-type=delivery-status;"));
	field_is(&r.parts[1].fields, "Content-Type", g ?
	    "message/global-delivery-status" : "message/delivery-status");
	field_is(&r.parts[2].fields, "Content-Type", g ? (full ?
	    "message/global" : "message/global-headers") :
	    "text/rfc822-headers");
	field_maybe(&r.parts[1].fields, "Content-Transfer-Encoding",
	    has_8bit(r.parts[1].body, r.parts[1].bodylen) ? "8bit" : NULL);
	if (!g)
		ck_assert(!has_8bit(r.parts[1].body, r.parts[1].bodylen));
	nblocks = blocks_parse(blocks, MAX_BLOCKS, r.parts[1].body,
	    r.parts[1].bodylen);
	ck_assert_uint_eq(nblocks, 2);
	field_is(&blocks[1], "Final-Recipient", globals[_i].final);
	if (globals[_i].rcpt == 3)
		field_is(&blocks[1], "Original-Recipient", g ?
		    "utf-8; j\xc3\xb6ran\\x{2B}x@ex\xc3\xa4mple.net" :
		    "utf-8; j\\x{F6}ran\\x{2B}x@ex\\x{E4}mple.net");
	for (i = 0; i < nblocks; i++)
		fields_free(&blocks[i]);
	report_free(&r);
	free(out);
	free(orig);
	envelope_clear(&env);
}
END_TEST

static Suite *
dsn_suite(void)
{
	Suite	*s = suite_create("dsn");
	TCase	*tc;

	tc = tcase_create("report");
	tcase_add_loop_test(tc, test_report, 0, nitems(rcases));
	tcase_add_test(tc, test_no_original);
	tcase_add_loop_test(tc, test_success_no_path, 0,
	    nitems(leak_actions));
	tcase_add_loop_test(tc, test_global, 0, nitems(globals));
	tcase_add_loop_test(tc, test_retry_until, 0, 2 * nitems(actions));
	tcase_add_loop_test(tc, test_original, 0, 2 * nitems(originals));
	tcase_add_loop_test(tc, test_date_zone, 0, nitems(zones));
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_loop_test(tc, test_boundary_collision, 0, 2);
	tcase_add_test(tc, test_boundary_in_error);
	tcase_add_test(tc, test_sender_injection);
	tcase_add_loop_test(tc, test_long_error, 0, nitems(longs));
	tcase_add_test(tc, test_long_sender);
	tcase_add_test(tc, test_long_id);
	tcase_add_loop_test(tc, test_bad_args, 0, BAD_ARRIVAL + 1);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookups");
	tcase_add_loop_test(tc, test_headers_len, 0, nitems(headers_len));
	tcase_add_loop_test(tc, test_action_str, 0, nitems(actions));
	tcase_add_test(tc, test_action_str_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("python");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_python, 0, 2 * nitems(actions));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	if (setenv("TZ", "UTC", 1) == -1)
		return EXIT_FAILURE;
	tzset();
	sr = srunner_create(dsn_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
