/*
 * check_envelope.c: the envelope and its text form.  The example of
 * tern-envelope(5) is read and written back octet for octet; envelopes
 * with every combination of fields go round trip; damaged texts are
 * refused naming the right line; every prefix of a valid text but the
 * whole is refused; every octet is corrupted in turn and whatever still
 * parses must write back to a text that parses the same; free text loses
 * its control octets, while ids and addresses holding one are refused;
 * the attempt history reads, writes back and keeps its newest lines.
 * Every text is handed over in a buffer of exactly its length, so the
 * sanitizers catch any read past the end.
 */
#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envelope.h"
#include "util.h"

/* 2026-11-28T11:17:04Z and an hour later. */
#define ARRIVAL		((time_t)1795864624)
#define NEXT		((time_t)1795868224)
/* 9999-12-31T23:59:59Z, the latest time the format holds. */
#define TIME_MAX	((time_t)253402300799LL)

/* The example of the manual, one line per element. */
static const char *const example[] = {
	"version: 1",
	"id: 0QH3M2B7K9XW4TZ",
	"arrival: 2026-11-28T11:17:04Z",
	"sender: <alice@example.org>",
	"size: 4096",
	"body: 8bitmime",
	"smtputf8: no",
	"client-address: 192.0.2.7",
	"helo: mail.example.org",
	"protocol: ESMTP",
	"ret: hdrs",
	"envid: QQ314159",
	"tries: 2",
	"next-attempt: 2026-11-28T12:17:04Z",
	"last-error: 451 4.7.1 Try again later",
	"rcpt: <bob@example.net>",			/* line 16 */
	"rcpt-state: pending",
	"rcpt-notify: failure,delay",
	"rcpt-orcpt: rfc822;bob@example.net",
	"rcpt-status: 4.7.1",
	"rcpt-error: 451 4.7.1 Try again later",
	"rcpt-relay: mx.example.net[198.51.100.3]:25",
	"rcpt: <carol@example.net>",			/* line 23 */
	"rcpt-state: sent",
	"end: 2",					/* line 25 */
};
#define NEXAMPLE	nitems(example)

/* A copy of exactly len octets, with nothing readable after it. */
static char *
exact(const char *text, size_t len)
{
	char	*p = xmalloc(len == 0 ? 1 : len);

	memcpy(p, text, len);
	return p;
}

/* Lines joined with LF after each. */
static char *
join(const char *const *lines, size_t n, size_t *lenp)
{
	char	*text;
	size_t	 len = 0, i, l;

	for (i = 0; i < n; i++)
		len += strlen(lines[i]) + 1;
	text = xmalloc(len + 1);
	len = 0;
	for (i = 0; i < n; i++) {
		l = strlen(lines[i]);
		memcpy(text + len, lines[i], l);
		text[len + l] = '\n';
		len += l + 1;
	}
	text[len] = '\0';
	*lenp = len;
	return text;
}

static char *
example_text(size_t *lenp)
{
	return join(example, NEXAMPLE, lenp);
}

/* Parse exactly len octets of text; the cause is returned or freed. */
static int
parse(struct envelope *env, const char *text, size_t len, char **causep)
{
	char	*copy = exact(text, len), *cause = (char *)1;
	int	 rc;

	envelope_init(env);
	rc = envelope_parse(env, copy, len, &cause);
	free(copy);
	if (rc == 0)
		ck_assert_msg(cause == NULL, "cause set on success");
	else {
		ck_assert_int_eq(rc, -1);
		ck_assert_ptr_nonnull(cause);
		ck_assert_msg(strncmp(cause, "line ", 5) == 0, "cause \"%s\"",
		    cause);
		/* Refused: nothing half-read is left behind. */
		ck_assert_ptr_null(env->sender);
		ck_assert_ptr_null(env->rcpts);
		ck_assert_uint_eq(env->nrcpts, 0);
		ck_assert_str_eq(env->id, "");
	}
	if (causep != NULL)
		*causep = cause;
	else
		free(cause);
	return rc;
}

static char *
write_env(const struct envelope *env, size_t *lenp)
{
	char	*text = NULL;

	ck_assert_msg(envelope_write(env, &text, lenp) == 0,
	    "envelope_write: %s", strerror(errno));
	ck_assert_ptr_nonnull(text);
	return text;
}

static void
str_eq(const char *a, const char *b, const char *what, size_t i)
{
	if (a == NULL || b == NULL)
		ck_assert_msg(a == b, "%s (rcpt %zu): \"%s\" vs \"%s\"", what,
		    i, a != NULL ? a : "(null)", b != NULL ? b : "(null)");
	else
		ck_assert_msg(strcmp(a, b) == 0, "%s (rcpt %zu): \"%s\" vs "
		    "\"%s\"", what, i, a, b);
}

/* Field by field. */
static void
env_eq(const struct envelope *a, const struct envelope *b)
{
	const struct envelope_rcpt	*ra, *rb;
	size_t				 i;

	str_eq(a->id, b->id, "id", 0);
	ck_assert(a->arrival == b->arrival);
	str_eq(a->sender, b->sender, "sender", 0);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_int_eq(a->body, b->body);
	ck_assert_int_eq(a->smtputf8 != 0, b->smtputf8 != 0);
	str_eq(a->client_addr, b->client_addr, "client-address", 0);
	str_eq(a->helo, b->helo, "helo", 0);
	str_eq(a->protocol, b->protocol, "protocol", 0);
	ck_assert_int_eq(a->ret, b->ret);
	str_eq(a->envid, b->envid, "envid", 0);
	ck_assert_uint_eq(a->tries, b->tries);
	ck_assert(a->next_attempt == b->next_attempt);
	str_eq(a->last_error, b->last_error, "last-error", 0);
	ck_assert_uint_eq(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++) {
		ra = &a->rcpts[i];
		rb = &b->rcpts[i];
		str_eq(ra->addr, rb->addr, "rcpt", i);
		ck_assert_int_eq(ra->state, rb->state);
		ck_assert_int_eq(ra->notify, rb->notify);
		str_eq(ra->orcpt, rb->orcpt, "rcpt-orcpt", i);
		str_eq(ra->status, rb->status, "rcpt-status", i);
		str_eq(ra->error, rb->error, "rcpt-error", i);
		str_eq(ra->relay, rb->relay, "rcpt-relay", i);
		ck_assert_int_eq(ra->delay_notified, rb->delay_notified);
	}
}

/* The envelope-level part of the example. */
static void
example_header(struct envelope *env)
{
	envelope_init(env);
	util_strlcpy(env->id, "0QH3M2B7K9XW4TZ", sizeof env->id);
	env->arrival = ARRIVAL;
	envelope_set_str(&env->sender, "alice@example.org");
	env->size = 4096;
	env->body = ENVELOPE_BODY_8BITMIME;
	util_strlcpy(env->client_addr, "192.0.2.7", sizeof env->client_addr);
	util_strlcpy(env->helo, "mail.example.org", sizeof env->helo);
	util_strlcpy(env->protocol, "ESMTP", sizeof env->protocol);
	env->ret = ENVELOPE_RET_HDRS;
	envelope_set_str(&env->envid, "QQ314159");
	env->tries = 2;
	env->next_attempt = NEXT;
	envelope_set_str(&env->last_error, "451 4.7.1 Try again later");
}

/* The example of the manual, built through the interface. */
static void
example_env(struct envelope *env)
{
	struct envelope_rcpt	*r;

	example_header(env);
	r = envelope_add_rcpt(env, "bob@example.net");
	r->notify = ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY;
	envelope_set_str(&r->orcpt, "rfc822;bob@example.net");
	util_strlcpy(r->status, "4.7.1", sizeof r->status);
	envelope_set_str(&r->error, "451 4.7.1 Try again later");
	envelope_set_str(&r->relay, "mx.example.net[198.51.100.3]:25");
	r = envelope_add_rcpt(env, "carol@example.net");
	r->state = ENVELOPE_RCPT_SENT;
}

/* Write, parse, compare, write again: the same octets. */
static void
round_trip(const struct envelope *env)
{
	struct envelope	 back;
	char		*text, *again, *cause;
	size_t		 len, alen;

	text = write_env(env, &len);
	ck_assert_msg(parse(&back, text, len, &cause) == 0, "%s\n%s", cause,
	    text);
	env_eq(env, &back);
	again = write_env(&back, &alen);
	ck_assert_uint_eq(len, alen);
	ck_assert_msg(memcmp(text, again, len) == 0, "second write differs");
	envelope_clear(&back);
	free(text);
	free(again);
}

START_TEST(test_example_read)
{
	struct envelope	 env, want;
	char		*text, *cause;
	size_t		 len;

	text = example_text(&len);
	ck_assert_msg(parse(&env, text, len, &cause) == 0, "%s", cause);
	example_env(&want);
	env_eq(&want, &env);
	ck_assert_str_eq(env.id, "0QH3M2B7K9XW4TZ");
	ck_assert_str_eq(env.sender, "alice@example.org");
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_str_eq(env.rcpts[1].addr, "carol@example.net");
	ck_assert_int_eq(env.rcpts[1].state, ENVELOPE_RCPT_SENT);
	ck_assert_ptr_null(env.rcpts[1].error);
	ck_assert_str_eq(env.rcpts[1].status, "");
	ck_assert_int_eq(env.rcpts[1].notify, 0);
	envelope_clear(&env);
	envelope_clear(&want);
	free(text);
}
END_TEST

START_TEST(test_example_written)
{
	struct envelope	 env;
	char		*want, *got;
	size_t		 wantlen, len;

	example_env(&env);
	want = example_text(&wantlen);
	got = write_env(&env, &len);
	ck_assert_msg(len == wantlen && memcmp(got, want, len) == 0,
	    "got:\n%.*s\nwant:\n%s", (int)len, got, want);
	envelope_clear(&env);
	free(want);
	free(got);
}
END_TEST

/* Notify values a recipient can carry, 0 (not given) first. */
static const int notifies[] = {
	0,
	ENVELOPE_NOTIFY_NEVER,
	ENVELOPE_NOTIFY_SUCCESS,
	ENVELOPE_NOTIFY_FAILURE,
	ENVELOPE_NOTIFY_DELAY,
	ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE,
	ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_DELAY,
	ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY,
	ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE |
	    ENVELOPE_NOTIFY_DELAY,
};
static const char *const notify_texts[] = {
	NULL, "never", "success", "failure", "delay", "success,failure",
	"success,delay", "failure,delay", "success,failure,delay",
};

/*
 * Recipient k of a combination: its state, notify, and which optional
 * fields it has.
 */
static void
fill_rcpt(struct envelope *env, size_t k)
{
	struct envelope_rcpt	*r;
	char			 addr[64];
	size_t			 bits = k / 3;

	util_snprintf(addr, sizeof addr, "user%zu@example%zu.net", k, k % 7);
	r = envelope_add_rcpt(env, addr);
	r->state = (enum envelope_rcpt_state)(k % 3);
	r->notify = notifies[bits % nitems(notifies)];
	bits /= nitems(notifies);
	if (bits & 1)
		envelope_set_str(&r->orcpt, "rfc822;orig@example.net");
	if (bits & 2)
		util_strlcpy(r->status, k % 2 ? "5.1.1" : "4.4.100",
		    sizeof r->status);
	if (bits & 4)
		envelope_set_str(&r->error,
		    "550 5.1.1 <x@example.net>: user unknown: \xc3\xbc");
	if (bits & 8)
		envelope_set_str(&r->relay, "mx2.example.net[2001:db8::1]:25");
}

/* Envelope-level combination i; number of them below. */
#define NCOMBOS		(3 * 2 * 2 * 2 * 2 * 2 * 2)

static void
fill_combo(struct envelope *env, size_t i)
{
	size_t	bits = i, n, k;

	envelope_init(env);
	util_snprintf(env->id, sizeof env->id, "%s",
	    i % 5 == 0 ? "x" : "0QH3M2B7K9XW4TZabcdefghij01234Z");
	env->ret = (enum envelope_ret)(bits % 3);
	bits /= 3;
	env->body = (bits & 1) ? ENVELOPE_BODY_8BITMIME : ENVELOPE_BODY_7BIT;
	env->smtputf8 = (bits & 2) != 0;
	if (bits & 4)
		envelope_set_str(&env->envid, "id+2Bwith+3Dxtext");
	if (bits & 8)
		envelope_set_str(&env->last_error,
		    "connect to mx.example.net[192.0.2.1]:25: timed out");
	envelope_set_str(&env->sender, (bits & 16) ? "" :
	    "\"odd <sender>\"@example.org");
	if ((bits & 32) == 0) {
		util_strlcpy(env->client_addr, "2001:db8::25",
		    sizeof env->client_addr);
		util_strlcpy(env->helo, "[192.0.2.7]", sizeof env->helo);
		util_strlcpy(env->protocol, "ESMTPSA", sizeof env->protocol);
	}
	env->arrival = i % 4 == 0 ? 0 : ARRIVAL + (time_t)i;
	env->next_attempt = i % 4 == 1 ? TIME_MAX : NEXT + (time_t)i * 61;
	env->size = i % 3 == 0 ? UINT64_MAX : (uint64_t)i * 1000;
	env->tries = i % 6 == 0 ? UINT_MAX : (unsigned)i;
	n = 1 + i % 5;
	for (k = 0; k < n; k++)
		fill_rcpt(env, i * 5 + k);
}

START_TEST(test_round_trip_combos)
{
	struct envelope	env;

	fill_combo(&env, (size_t)_i);
	round_trip(&env);
	envelope_clear(&env);
}
END_TEST

/* Every recipient combination, several per envelope. */
START_TEST(test_round_trip_rcpts)
{
	struct envelope	env;
	size_t		k;

	fill_combo(&env, 1);
	for (k = 0; k < 3 * nitems(notifies) * 16; k++)
		fill_rcpt(&env, k);
	round_trip(&env);
	envelope_clear(&env);
}
END_TEST

/* The notify keyword lists, written and read. */
START_TEST(test_notify_text)
{
	struct envelope	 env;
	char		*text, want[64];
	size_t		 len;

	example_env(&env);
	env.rcpts[0].notify = notifies[_i];
	text = write_env(&env, &len);
	if (notify_texts[_i] == NULL)
		ck_assert_ptr_null(strstr(text, "rcpt-notify"));
	else {
		util_snprintf(want, sizeof want, "\nrcpt-notify: %s\n",
		    notify_texts[_i]);
		ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	}
	free(text);
	round_trip(&env);
	envelope_clear(&env);
}
END_TEST

/*
 * rcpt-delay-notified: "yes" is written after the recipient's other
 * lines once the sender was told of a delay, and nothing otherwise; both
 * "yes" and "no" read back, anything else, a second one or one before
 * any rcpt is refused.
 */
static const struct {
	const char	*line;		/* inserted after line 22 (bob's) */
	int		 want;		/* bob's flag, or -1: refused */
	const char	*cause;
} delay_lines[] = {
	{ "rcpt-delay-notified: yes", 1, NULL },
	{ "rcpt-delay-notified: no", 0, NULL },
	{ "rcpt-delay-notified: maybe", -1,
	  "line 23: bad rcpt-delay-notified \"maybe\"" },
	{ "rcpt-delay-notified: ", -1, "line 23: bad rcpt-delay-notified "
	  "\"\"" },
	{ "rcpt-delay-notified: Yes", -1,
	  "line 23: bad rcpt-delay-notified \"Yes\"" },
	{ "rcpt-delay-notified: yes\nrcpt-delay-notified: yes", -1,
	  "line 24: duplicate rcpt-delay-notified" },
};

START_TEST(test_delay_notified)
{
	struct envelope	 env;
	char		*text, *cause;
	const char	*lines[NEXAMPLE + 1];
	size_t		 len, i, n = 0;

	example_env(&env);
	text = write_env(&env, &len);
	ck_assert_ptr_null(strstr(text, "delay-notified"));
	free(text);
	env.rcpts[0].delay_notified = 1;
	text = write_env(&env, &len);
	ck_assert_msg(strstr(text, "\nrcpt-relay: mx.example.net"
	    "[198.51.100.3]:25\nrcpt-delay-notified: yes\nrcpt: "
	    "<carol@example.net>\nrcpt-state: sent\nend: 2\n") != NULL, "%s",
	    text);
	free(text);
	round_trip(&env);
	envelope_clear(&env);

	for (i = 0; i < NEXAMPLE; i++) {
		lines[n++] = example[i];
		if (i == 21)
			lines[n++] = delay_lines[_i].line;
	}
	text = join(lines, n, &len);
	if (delay_lines[_i].want == -1) {
		ck_assert_int_eq(parse(&env, text, len, &cause), -1);
		ck_assert_str_eq(cause, delay_lines[_i].cause);
		free(cause);
	} else {
		ck_assert_int_eq(parse(&env, text, len, NULL), 0);
		ck_assert_int_eq(env.rcpts[0].delay_notified,
		    delay_lines[_i].want);
		ck_assert_int_eq(env.rcpts[1].delay_notified, 0);
		envelope_clear(&env);
	}
	free(text);
}
END_TEST

/* Before any rcpt it belongs to nobody. */
START_TEST(test_delay_notified_early)
{
	struct envelope	 env;
	char		*text, *cause;
	const char	*lines[NEXAMPLE + 1];
	size_t		 len, i, n = 0;

	for (i = 0; i < NEXAMPLE; i++) {
		if (i == 15)
			lines[n++] = "rcpt-delay-notified: yes";
		lines[n++] = example[i];
	}
	text = join(lines, n, &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	ck_assert_str_eq(cause, "line 16: rcpt-delay-notified before any "
	    "rcpt");
	free(cause);
	free(text);
}
END_TEST

START_TEST(test_thousand_rcpts)
{
	struct envelope	 env, back;
	char		*text, *again, *cause;
	size_t		 len, alen, k;

	fill_combo(&env, 7);
	for (k = 0; env.nrcpts < 1000; k++)
		fill_rcpt(&env, k);
	ck_assert_uint_eq(env.nrcpts, 1000);
	text = write_env(&env, &len);
	ck_assert_ptr_nonnull(strstr(text, "\nend: 1000\n"));
	ck_assert_msg(parse(&back, text, len, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(back.nrcpts, 1000);
	env_eq(&env, &back);
	again = write_env(&back, &alen);
	ck_assert_uint_eq(len, alen);
	ck_assert(memcmp(text, again, len) == 0);
	envelope_clear(&env);
	envelope_clear(&back);
	free(text);
	free(again);
}
END_TEST

/* An envelope with only what is required; the rest takes defaults. */
START_TEST(test_minimal)
{
	static const char *const lines[] = {
		"version: 1",
		"tries: 0",
		"id: A",
		"rcpt: <a@b>",
		"rcpt-state: failed",
		"sender: <>",
		"next-attempt: 1970-01-01T00:00:00Z",
		"size: 0",
		"arrival: 9999-12-31T23:59:59Z",
		"end: 1",
	};
	struct envelope	 env;
	char		*text, *cause;
	size_t		 len;

	text = join(lines, nitems(lines), &len);
	ck_assert_msg(parse(&env, text, len, &cause) == 0, "%s", cause);
	ck_assert_str_eq(env.id, "A");
	ck_assert_str_eq(env.sender, "");
	ck_assert(env.arrival == TIME_MAX);
	ck_assert(env.next_attempt == 0);
	ck_assert_int_eq(env.body, ENVELOPE_BODY_7BIT);
	ck_assert_int_eq(env.smtputf8, 0);
	ck_assert_int_eq(env.ret, ENVELOPE_RET_NONE);
	ck_assert_str_eq(env.helo, "");
	ck_assert_str_eq(env.client_addr, "");
	ck_assert_str_eq(env.protocol, "");
	ck_assert_ptr_null(env.envid);
	ck_assert_ptr_null(env.last_error);
	ck_assert_uint_eq(env.nrcpts, 1);
	ck_assert_int_eq(env.rcpts[0].state, ENVELOPE_RCPT_FAILED);
	round_trip(&env);
	envelope_clear(&env);
	free(text);
}
END_TEST

/* Header keys in any order and among the recipients read the same. */
START_TEST(test_any_order)
{
	static const size_t order[] = {
		1, 13, 4, 2, 15, 16, 17, 18, 19, 20, 21, 22, 14, 3, 5, 6,
		7, 8, 9, 10, 11, 12, 23, 24, 25
	};
	const char	*lines[NEXAMPLE];
	struct envelope	 env, want;
	char		*text, *cause;
	size_t		 len, i;

	ck_assert_uint_eq(nitems(order), NEXAMPLE);
	for (i = 0; i < NEXAMPLE; i++)
		lines[i] = example[order[i] - 1];
	text = join(lines, NEXAMPLE, &len);
	ck_assert_msg(parse(&env, text, len, &cause) == 0, "%s", cause);
	example_env(&want);
	env_eq(&want, &env);
	envelope_clear(&env);
	envelope_clear(&want);
	free(text);
}
END_TEST

enum edit {
	EDIT_REPLACE,		/* line at becomes text */
	EDIT_DELETE,		/* line at goes */
	EDIT_INSERT,		/* text comes before line at */
};

/* The example changed in one place, and the error it must give. */
static const struct {
	enum edit	 op;
	size_t		 at;
	const char	*text;
	size_t		 line;
	const char	*cause;
} damaged[] = {
	{ EDIT_REPLACE, 1, "version: 2", 1,
	    "unsupported envelope version 2" },
	{ EDIT_REPLACE, 1, "version: 0", 1,
	    "unsupported envelope version 0" },
	{ EDIT_REPLACE, 1, "version: 18446744073709551615", 1,
	    "unsupported envelope version 18446744073709551615" },
	{ EDIT_REPLACE, 1, "version: 18446744073709551616", 1,
	    "bad version" },
	{ EDIT_REPLACE, 1, "version: x", 1, "bad version \"x\"" },
	{ EDIT_REPLACE, 1, "version: 01", 1, "bad version \"01\"" },
	{ EDIT_REPLACE, 1, "version: ", 1, "bad version \"\"" },
	{ EDIT_REPLACE, 1, "version:1", 1, "no \": \"" },
	{ EDIT_REPLACE, 1, "Version: 1", 1, "unknown key \"Version\"" },
	{ EDIT_DELETE, 1, NULL, 1, "first line is not version" },
	{ EDIT_INSERT, 1, "", 1, "empty line" },
	{ EDIT_INSERT, 2, "version: 1", 2, "duplicate version" },
	{ EDIT_REPLACE, 2, "id: ", 2, "bad id \"\"" },
	{ EDIT_REPLACE, 2, "id: 0QH3M2B7K9XW4T-", 2, "bad id" },
	{ EDIT_REPLACE, 2, "id: 0QH3M2B7K9XW4TZ ", 2, "bad id" },
	{ EDIT_REPLACE, 2, "id: ../../etc/passwd", 2, "bad id" },
	{ EDIT_REPLACE, 2, "id: 0123456789012345678901234567890123", 2,
	    "bad id" },
	{ EDIT_REPLACE, 2, "id: \xc3\xbc", 2, "bad id \"\xc3\xbc\"" },
	{ EDIT_DELETE, 2, NULL, 24, "missing id" },
	{ EDIT_INSERT, 25, "id: B", 25, "duplicate id" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28 11:17:04Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-02-30T11:17:04Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T11:17:60Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T24:00:00Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-13-01T00:00:00Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-00-01T00:00:00Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T11:17:04+00:00", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T11:17:04z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T11:17:04ZZ", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 2026-11-28T11:17:0Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival:  2026-11-28T11:17:04Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 1969-12-31T23:59:59Z", 3,
	    "bad arrival" },
	{ EDIT_REPLACE, 3, "arrival: 1795864624", 3, "bad arrival" },
	{ EDIT_DELETE, 3, NULL, 24, "missing arrival" },
	{ EDIT_REPLACE, 4, "sender: alice@example.org", 4, "bad sender" },
	{ EDIT_REPLACE, 4, "sender: <alice@example.org", 4, "bad sender" },
	{ EDIT_REPLACE, 4, "sender: alice@example.org>", 4, "bad sender" },
	{ EDIT_REPLACE, 4, "sender: <", 4, "bad sender \"<\"" },
	{ EDIT_REPLACE, 4, "sender: >", 4, "bad sender" },
	{ EDIT_REPLACE, 4, "sender: ", 4, "bad sender \"\"" },
	{ EDIT_DELETE, 4, NULL, 24, "missing sender" },
	{ EDIT_REPLACE, 5, "size: x", 5, "bad size \"x\"" },
	{ EDIT_REPLACE, 5, "size: ", 5, "bad size \"\"" },
	{ EDIT_REPLACE, 5, "size: -1", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: +1", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 1 ", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size:  1", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 0x10", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 007", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 1.5", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 18446744073709551616", 5, "bad size" },
	{ EDIT_REPLACE, 5, "size: 99999999999999999999", 5, "bad size" },
	{ EDIT_INSERT, 16, "size: 5", 16, "duplicate size" },
	{ EDIT_DELETE, 5, NULL, 24, "missing size" },
	{ EDIT_REPLACE, 6, "body: 8BITMIME", 6, "bad body" },
	{ EDIT_REPLACE, 6, "body: binarymime", 6, "bad body" },
	{ EDIT_REPLACE, 6, "body: ", 6, "bad body" },
	{ EDIT_REPLACE, 7, "smtputf8: 1", 7, "bad smtputf8 \"1\"" },
	{ EDIT_REPLACE, 7, "smtputf8: yes ", 7, "bad smtputf8" },
	{ EDIT_REPLACE, 7, "smtputf8: ", 7, "bad smtputf8" },
	{ EDIT_REPLACE, 8, "client-address: "
	    "0123456789012345678901234567890123456789012345678901234567890123",
	    8, "client-address too long" },
	{ EDIT_REPLACE, 10, "protocol: ESMTPSAESMTPSAESMT", 10,
	    "protocol too long" },
	{ EDIT_REPLACE, 9, "helo:", 9, "no \": \"" },
	{ EDIT_REPLACE, 9, "helo: a\tb", 9, "control octet 0x09" },
	{ EDIT_REPLACE, 9, "helo: mail.example.org\r", 9,
	    "control octet 0x0d" },
	{ EDIT_REPLACE, 9, "helo: \x7f", 9, "control octet 0x7f" },
	{ EDIT_REPLACE, 9, "helo: \x1b[2J", 9, "control octet 0x1b" },
	{ EDIT_REPLACE, 11, "ret: ", 11, "bad ret" },
	{ EDIT_REPLACE, 11, "ret: none", 11, "bad ret" },
	{ EDIT_REPLACE, 11, "ret: FULL", 11, "bad ret" },
	{ EDIT_REPLACE, 12, "envid: ", 12, "empty envid" },
	{ EDIT_REPLACE, 13, "tries: 4294967296", 13, "bad tries" },
	{ EDIT_REPLACE, 13, "tries: -1", 13, "bad tries" },
	{ EDIT_REPLACE, 13, "tries: ", 13, "bad tries" },
	{ EDIT_DELETE, 13, NULL, 24, "missing tries" },
	{ EDIT_REPLACE, 14, "next-attempt: 2026-11-28T12:17:04", 14,
	    "bad next-attempt" },
	{ EDIT_REPLACE, 14, "next-attempt: 10000-01-01T00:00:00Z", 14,
	    "bad next-attempt" },
	{ EDIT_DELETE, 14, NULL, 24, "missing next-attempt" },
	{ EDIT_REPLACE, 15, "last-error: ", 15, "empty last-error" },
	{ EDIT_INSERT, 5, "foo: bar", 5, "unknown key \"foo\"" },
	{ EDIT_INSERT, 5, " size: 1", 5, "unknown key \" size\"" },
	{ EDIT_INSERT, 5, "size : 1", 5, "unknown key \"size \"" },
	{ EDIT_INSERT, 5, "size:1", 5, "no \": \" in \"size:1\"" },
	{ EDIT_INSERT, 5, "\xff\xfe: 1", 5, "unknown key" },
	{ EDIT_INSERT, 5, "", 5, "empty line" },
	{ EDIT_INSERT, 5, " ", 5, "no \": \"" },
	{ EDIT_REPLACE, 16, "rcpt: <>", 16, "bad rcpt \"<>\"" },
	{ EDIT_REPLACE, 16, "rcpt: bob@example.net", 16, "bad rcpt" },
	{ EDIT_REPLACE, 16, "rcpt: <bob@example.net", 16, "bad rcpt" },
	{ EDIT_REPLACE, 16, "rcpt: <", 16, "bad rcpt" },
	{ EDIT_REPLACE, 16, "rcpt: ", 16, "bad rcpt" },
	{ EDIT_DELETE, 17, NULL, 16, "rcpt without rcpt-state" },
	{ EDIT_DELETE, 24, NULL, 23, "rcpt without rcpt-state" },
	{ EDIT_REPLACE, 17, "rcpt-state: done", 17, "bad rcpt-state" },
	{ EDIT_REPLACE, 17, "rcpt-state: Pending", 17, "bad rcpt-state" },
	{ EDIT_INSERT, 16, "rcpt-state: sent", 16,
	    "rcpt-state before any rcpt" },
	{ EDIT_INSERT, 16, "rcpt-error: x", 16,
	    "rcpt-error before any rcpt" },
	{ EDIT_INSERT, 18, "rcpt-state: sent", 18, "duplicate rcpt-state" },
	{ EDIT_INSERT, 23, "rcpt-relay: x", 23, "duplicate rcpt-relay" },
	{ EDIT_REPLACE, 18, "rcpt-notify: delay,failure", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: never,success", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: success,never", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: success,success", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: success,", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: ,success", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: failure,,delay", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: failures", 18,
	    "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: NEVER", 18, "bad rcpt-notify" },
	{ EDIT_REPLACE, 18, "rcpt-notify: ", 18, "bad rcpt-notify" },
	{ EDIT_REPLACE, 19, "rcpt-orcpt: ", 19, "empty rcpt-orcpt" },
	{ EDIT_REPLACE, 20, "rcpt-status: 4.7", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: 3.0.0", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: 4.7.1000", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: 4.7.1 ", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: 4..1", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: 4.7.1.1", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 20, "rcpt-status: ", 20, "bad rcpt-status" },
	{ EDIT_REPLACE, 21, "rcpt-error: ", 21, "empty rcpt-error" },
	{ EDIT_REPLACE, 22, "rcpt-relay: ", 22, "empty rcpt-relay" },
	{ EDIT_REPLACE, 25, "end: 3", 25,
	    "end counts 3 recipients, 2 were read" },
	{ EDIT_REPLACE, 25, "end: 1", 25, "end counts 1" },
	{ EDIT_REPLACE, 25, "end: x", 25, "bad end" },
	{ EDIT_REPLACE, 25, "end: ", 25, "bad end" },
	{ EDIT_DELETE, 25, NULL, 25, "no end line" },
	{ EDIT_INSERT, 26, "end: 2", 26, "text after end" },
	{ EDIT_INSERT, 26, "", 26, "text after end" },
	{ EDIT_INSERT, 26, "rcpt: <dave@example.net>", 26,
	    "text after end" },
};

/* The example with one edit applied. */
static char *
edit_example(enum edit op, size_t at, const char *text, size_t *lenp)
{
	const char	*lines[NEXAMPLE + 1];
	size_t		 i, n = 0;

	for (i = 1; i <= NEXAMPLE + 1; i++) {
		if (i == at && op == EDIT_INSERT)
			lines[n++] = text;
		if (i > NEXAMPLE)
			break;
		if (i == at && op == EDIT_DELETE)
			continue;
		lines[n++] = i == at && op == EDIT_REPLACE ? text :
		    example[i - 1];
	}
	return join(lines, n, lenp);
}

static void
check_cause(const char *cause, size_t line, const char *want)
{
	char	prefix[32];

	util_snprintf(prefix, sizeof prefix, "line %zu: ", line);
	ck_assert_msg(strncmp(cause, prefix, strlen(prefix)) == 0,
	    "cause \"%s\", want \"%s%s\"", cause, prefix, want);
	ck_assert_msg(strstr(cause + strlen(prefix), want) != NULL,
	    "cause \"%s\", want \"%s%s\"", cause, prefix, want);
}

START_TEST(test_damaged)
{
	struct envelope	 env;
	char		*text, *cause;
	size_t		 len;

	text = edit_example(damaged[_i].op, damaged[_i].at, damaged[_i].text,
	    &len);
	ck_assert_msg(parse(&env, text, len, &cause) == -1, "parsed:\n%s",
	    text);
	check_cause(cause, damaged[_i].line, damaged[_i].cause);
	envelope_clear(&env);
	free(cause);
	free(text);
}
END_TEST

/* The edits are real: the unedited parts of the example still parse. */
START_TEST(test_edit_identity)
{
	struct envelope	 env;
	char		*text, *want, *cause;
	size_t		 len, wantlen;

	text = edit_example(EDIT_REPLACE, 5, "size: 4096", &len);
	want = example_text(&wantlen);
	ck_assert_uint_eq(len, wantlen);
	ck_assert(memcmp(text, want, len) == 0);
	ck_assert_msg(parse(&env, text, len, &cause) == 0, "%s", cause);
	envelope_clear(&env);
	free(text);
	free(want);
}
END_TEST

START_TEST(test_version_2)
{
	struct envelope	 env;
	char		*text, *cause;
	size_t		 len;

	text = edit_example(EDIT_REPLACE, 1, "version: 2", &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	ck_assert_str_eq(cause, "line 1: unsupported envelope version 2");
	free(cause);
	free(text);
}
END_TEST

START_TEST(test_empty_and_odd)
{
	struct envelope	 env;
	char		*text, *cause;
	size_t		 len;

	ck_assert_int_eq(parse(&env, "", 0, &cause), -1);
	check_cause(cause, 1, "empty file");
	free(cause);

	ck_assert_int_eq(parse(&env, "\n", 1, &cause), -1);
	check_cause(cause, 1, "empty line");
	free(cause);

	ck_assert_int_eq(parse(&env, "version: 1\n", 11, &cause), -1);
	check_cause(cause, 2, "no end line");
	free(cause);

	ck_assert_int_eq(parse(&env, "version: 1", 10, &cause), -1);
	check_cause(cause, 1, "no newline");
	free(cause);

	/* A file saved with CRLF line ends. */
	ck_assert_int_eq(parse(&env, "version: 1\r\n", 12, &cause), -1);
	check_cause(cause, 1, "control octet 0x0d");
	free(cause);

	/* Without its final newline. */
	text = example_text(&len);
	ck_assert_int_eq(parse(&env, text, len - 1, &cause), -1);
	check_cause(cause, NEXAMPLE, "no newline");
	free(cause);

	/* A NUL anywhere, even where a value ends. */
	text[strlen(example[0]) + strlen(example[1]) + 2 + 3] = '\0';
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	check_cause(cause, 3, "NUL octet");
	free(cause);
	free(text);

	text = edit_example(EDIT_REPLACE, 23, "end: 1", &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	check_cause(cause, 24, "text after end");
	free(cause);
	free(text);
}
END_TEST

/* No recipient at all. */
START_TEST(test_no_rcpt)
{
	const char	*lines[16];
	struct envelope	 env;
	char		*text, *cause;
	size_t		 len, i;

	for (i = 0; i < 15; i++)
		lines[i] = example[i];
	lines[15] = "end: 0";
	text = join(lines, 16, &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	check_cause(cause, 16, "no rcpt");
	free(cause);
	free(text);
}
END_TEST

/* Values of fixed size at their limit, and one past it. */
START_TEST(test_long_values)
{
	static const struct {
		const char	*key;
		size_t		 at;
		size_t		 max;
	} arrays[] = {
		{ "client-address", 8, 63 },
		{ "helo", 9, 255 },
		{ "protocol", 10, 15 },
	};
	struct envelope	 env;
	char		 line[512], *text, *cause, want[64];
	size_t		 i, n, len, klen;

	for (i = 0; i < nitems(arrays); i++) {
		for (n = arrays[i].max; n <= arrays[i].max + 1; n++) {
			klen = (size_t)util_snprintf(line, sizeof line, "%s: ",
			    arrays[i].key);
			memset(line + klen, 'a', n);
			line[klen + n] = '\0';
			text = edit_example(EDIT_REPLACE, arrays[i].at, line,
			    &len);
			if (n == arrays[i].max) {
				ck_assert_msg(parse(&env, text, len, &cause) ==
				    0, "%s", cause);
				round_trip(&env);
				envelope_clear(&env);
			} else {
				ck_assert_int_eq(parse(&env, text, len,
				    &cause), -1);
				util_snprintf(want, sizeof want, "%s too long",
				    arrays[i].key);
				check_cause(cause, arrays[i].at, want);
				free(cause);
			}
			free(text);
		}
	}
}
END_TEST

/* A long bad value is quoted in the cause, escaped and cut short. */
START_TEST(test_cause_quoting)
{
	struct envelope	 env;
	char		 line[4096], *text, *cause;
	size_t		 len;

	memcpy(line, "size: ", 6);
	memset(line + 6, '9', sizeof line - 7);
	line[sizeof line - 1] = '\0';
	text = edit_example(EDIT_REPLACE, 5, line, &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	check_cause(cause, 5, "bad size \"999");
	ck_assert_msg(strlen(cause) < 200, "cause of %zu octets",
	    strlen(cause));
	ck_assert_ptr_nonnull(strstr(cause, "...\""));
	free(cause);
	free(text);

	text = edit_example(EDIT_REPLACE, 5, "size: \\\xff", &len);
	ck_assert_int_eq(parse(&env, text, len, &cause), -1);
	ck_assert_str_eq(cause, "line 5: bad size \"\\\\\\xff\"");
	free(cause);
	free(text);
}
END_TEST

/* Envelopes whose every proper prefix must be refused. */
static void
fill_truncated(struct envelope *env, size_t i)
{
	if (i == 0)
		example_env(env);
	else
		fill_combo(env, i * 17);
}

START_TEST(test_truncation)
{
	struct envelope	 env, back;
	char		*text, *cause;
	size_t		 len, n;

	fill_truncated(&env, (size_t)_i);
	text = write_env(&env, &len);
	for (n = 0; n < len; n++) {
		ck_assert_msg(parse(&back, text, n, &cause) == -1,
		    "prefix of %zu of %zu octets parsed", n, len);
		free(cause);
	}
	ck_assert_msg(parse(&back, text, len, &cause) == 0, "%s", cause);
	env_eq(&env, &back);
	envelope_clear(&back);
	envelope_clear(&env);
	free(text);
}
END_TEST

/*
 * Each octet replaced by each of these in turn.  Whatever parses must
 * write back, and what it writes must parse to the same envelope.
 */
static const unsigned char corruptions[] = {
	0x00, 0x01, '\t', '\n', '\r', ' ', ',', '-', '.', '0', '1', '9',
	':', '<', '>', 'Z', 'a', 'z', 0x7f, 0x80, 0xc3, 0xff,
};

START_TEST(test_corruption)
{
	struct envelope	 env, back, again;
	char		*text, *copy, *out, *out2, *cause;
	size_t		 len, olen, olen2, pos, j;
	unsigned char	 c;
	int		 nparsed = 0;

	fill_truncated(&env, (size_t)_i);
	text = write_env(&env, &len);
	envelope_clear(&env);
	copy = xmalloc(len);
	for (pos = 0; pos < len; pos++) {
		for (j = 0; j <= nitems(corruptions); j++) {
			memcpy(copy, text, len);
			c = j < nitems(corruptions) ? corruptions[j] :
			    (unsigned char)copy[pos] ^ 0x20;
			if (c == (unsigned char)text[pos])
				continue;
			copy[pos] = (char)c;
			if (parse(&back, copy, len, &cause) == -1) {
				free(cause);
				continue;
			}
			nparsed++;
			out = write_env(&back, &olen);
			ck_assert_msg(parse(&again, out, olen, &cause) == 0,
			    "rewrite of corruption at %zu does not parse: %s",
			    pos, cause);
			env_eq(&back, &again);
			out2 = write_env(&again, &olen2);
			ck_assert(olen == olen2 &&
			    memcmp(out, out2, olen) == 0);
			envelope_clear(&back);
			envelope_clear(&again);
			free(out);
			free(out2);
		}
	}
	/* Some corruptions (a digit of the size) cannot be detected. */
	ck_assert_int_gt(nparsed, 0);
	free(copy);
	free(text);
}
END_TEST

/* Free text keeps its printable octets and loses its controls. */
START_TEST(test_sanitize)
{
	struct envelope	 env, back;
	char		*text, *cause;
	size_t		 len, i, nl;

	example_env(&env);
	envelope_set_str(&env.last_error,
	    "451 a\r\nsmtputf8: yes\tb\x7f\x01 \xc3\xbc");
	envelope_set_str(&env.envid, "E\nE");
	util_strlcpy(env.helo, "evil\r\nrcpt: <x@y>", sizeof env.helo);
	util_strlcpy(env.client_addr, "\x1b[1m", sizeof env.client_addr);
	util_strlcpy(env.protocol, "E\x08SMTP", sizeof env.protocol);
	envelope_set_str(&env.rcpts[0].error, "550\r\nend: 1");
	envelope_set_str(&env.rcpts[0].relay, "mx\n[::1]:25");
	envelope_set_str(&env.rcpts[0].orcpt, "rfc822;\x02@x");
	text = write_env(&env, &len);
	for (i = 0, nl = 0; i < len; i++) {
		if (text[i] == '\n') {
			nl++;
			continue;
		}
		ck_assert_msg((unsigned char)text[i] >= 0x20 &&
		    (unsigned char)text[i] != 0x7f,
		    "control octet at %zu:\n%s", i, text);
	}
	ck_assert_uint_eq(nl, NEXAMPLE);
	ck_assert_msg(parse(&back, text, len, &cause) == 0, "%s", cause);
	ck_assert_str_eq(back.last_error,
	    "451 a??smtputf8: yes?b?? \xc3\xbc");
	ck_assert_int_eq(back.smtputf8, 0);
	ck_assert_str_eq(back.envid, "E?E");
	ck_assert_str_eq(back.helo, "evil??rcpt: <x@y>");
	ck_assert_str_eq(back.client_addr, "?[1m");
	ck_assert_str_eq(back.protocol, "E?SMTP");
	ck_assert_uint_eq(back.nrcpts, 2);
	ck_assert_str_eq(back.rcpts[0].error, "550??end: 1");
	ck_assert_str_eq(back.rcpts[0].relay, "mx?[::1]:25");
	ck_assert_str_eq(back.rcpts[0].orcpt, "rfc822;?@x");
	envelope_clear(&back);
	envelope_clear(&env);
	free(text);
}
END_TEST

/* An envelope envelope_write() must refuse, made from the example. */
enum refuse {
	REFUSE_SENDER_NULL,
	REFUSE_SENDER_LF,
	REFUSE_SENDER_DEL,
	REFUSE_RCPT_CR,
	REFUSE_RCPT_EMPTY,
	REFUSE_RCPT_NULL,
	REFUSE_NO_RCPTS,
	REFUSE_ID_EMPTY,
	REFUSE_ID_DASH,
	REFUSE_ID_LF,
	REFUSE_ID_UNTERMINATED,
	REFUSE_HELO_UNTERMINATED,
	REFUSE_STATUS_BAD,
	REFUSE_STATUS_LF,
	REFUSE_STATUS_UNTERMINATED,
	REFUSE_STATE,
	REFUSE_BODY,
	REFUSE_RET,
	REFUSE_NOTIFY_NEVER_PLUS,
	REFUSE_NOTIFY_UNKNOWN,
	REFUSE_ARRIVAL_NEGATIVE,
	REFUSE_NEXT_TOO_LATE,
	REFUSE_LAST
};

static void
make_refused(struct envelope *env, enum refuse how)
{
	example_env(env);
	switch (how) {
	case REFUSE_SENDER_NULL:
		envelope_set_str(&env->sender, NULL);
		break;
	case REFUSE_SENDER_LF:
		envelope_set_str(&env->sender, "a\n@example.org");
		break;
	case REFUSE_SENDER_DEL:
		envelope_set_str(&env->sender, "a\x7f@example.org");
		break;
	case REFUSE_RCPT_CR:
		envelope_set_str(&env->rcpts[1].addr, "c\r@example.net");
		break;
	case REFUSE_RCPT_EMPTY:
		envelope_set_str(&env->rcpts[1].addr, "");
		break;
	case REFUSE_RCPT_NULL:
		envelope_set_str(&env->rcpts[1].addr, NULL);
		break;
	case REFUSE_NO_RCPTS:
		envelope_clear(env);
		example_header(env);
		break;
	case REFUSE_ID_EMPTY:
		env->id[0] = '\0';
		break;
	case REFUSE_ID_DASH:
		util_strlcpy(env->id, "0QH3-M2B7", sizeof env->id);
		break;
	case REFUSE_ID_LF:
		util_strlcpy(env->id, "0QH3\nM2B7", sizeof env->id);
		break;
	case REFUSE_ID_UNTERMINATED:
		memset(env->id, 'A', sizeof env->id);
		break;
	case REFUSE_HELO_UNTERMINATED:
		memset(env->helo, 'h', sizeof env->helo);
		break;
	case REFUSE_STATUS_BAD:
		util_strlcpy(env->rcpts[0].status, "4.7",
		    sizeof env->rcpts[0].status);
		break;
	case REFUSE_STATUS_LF:
		util_strlcpy(env->rcpts[0].status, "4.7.1\n",
		    sizeof env->rcpts[0].status);
		break;
	case REFUSE_STATUS_UNTERMINATED:
		memset(env->rcpts[0].status, '4',
		    sizeof env->rcpts[0].status);
		break;
	case REFUSE_STATE:
		env->rcpts[1].state = (enum envelope_rcpt_state)3;
		break;
	case REFUSE_BODY:
		env->body = (enum envelope_body)2;
		break;
	case REFUSE_RET:
		env->ret = (enum envelope_ret)3;
		break;
	case REFUSE_NOTIFY_NEVER_PLUS:
		env->rcpts[0].notify = ENVELOPE_NOTIFY_NEVER |
		    ENVELOPE_NOTIFY_DELAY;
		break;
	case REFUSE_NOTIFY_UNKNOWN:
		env->rcpts[0].notify = 0x10;
		break;
	case REFUSE_ARRIVAL_NEGATIVE:
		env->arrival = -1;
		break;
	case REFUSE_NEXT_TOO_LATE:
		env->next_attempt = TIME_MAX + 1;
		break;
	case REFUSE_LAST:
		break;
	}
}

START_TEST(test_write_refused)
{
	struct envelope	 env;
	char		*text = (char *)&env;
	size_t		 len = 12345;

	make_refused(&env, (enum refuse)_i);
	errno = 0;
	ck_assert_int_eq(envelope_write(&env, &text, &len), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_eq(text, (char *)&env);
	ck_assert_uint_eq(len, 12345);
	envelope_clear(&env);
}
END_TEST

/* The cases above differ from a writable envelope in that one way. */
START_TEST(test_write_refused_base)
{
	struct envelope	 env;
	char		*text;
	size_t		 len;

	make_refused(&env, REFUSE_LAST);
	text = write_env(&env, &len);
	free(text);
	envelope_clear(&env);
}
END_TEST

/* Times at the edges of what the format holds. */
static const struct {
	time_t		 t;
	const char	*text;
} times[] = {
	{ 0, "1970-01-01T00:00:00Z" },
	{ 951782400, "2000-02-29T00:00:00Z" },
	{ 1835481599, "2028-02-29T23:59:59Z" },
	{ 2147483647, "2038-01-19T03:14:07Z" },
	{ 2147483648LL, "2038-01-19T03:14:08Z" },
	{ TIME_MAX, "9999-12-31T23:59:59Z" },
};

START_TEST(test_times)
{
	struct envelope	 env, back;
	char		*text, *cause, want[64];
	size_t		 len;

	example_env(&env);
	env.arrival = times[_i].t;
	env.next_attempt = times[_i].t;
	text = write_env(&env, &len);
	util_snprintf(want, sizeof want, "\narrival: %s\n", times[_i].text);
	ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	util_snprintf(want, sizeof want, "\nnext-attempt: %s\n",
	    times[_i].text);
	ck_assert_msg(strstr(text, want) != NULL, "%s", text);
	ck_assert_msg(parse(&back, text, len, &cause) == 0, "%s", cause);
	ck_assert(back.arrival == times[_i].t);
	ck_assert(back.next_attempt == times[_i].t);
	envelope_clear(&back);
	envelope_clear(&env);
	free(text);
}
END_TEST

/* NOTIFY= as a client sends it: any order and case, none twice. */
static const struct {
	const char	*value;
	int		 rc;
	int		 notify;
	const char	*written;	/* its one spelling in the file */
} notify_cases[] = {
	{ "NEVER", 0, ENVELOPE_NOTIFY_NEVER, "never" },
	{ "never", 0, ENVELOPE_NOTIFY_NEVER, "never" },
	{ "SUCCESS", 0, ENVELOPE_NOTIFY_SUCCESS, "success" },
	{ "Delay,Success", 0, ENVELOPE_NOTIFY_DELAY | ENVELOPE_NOTIFY_SUCCESS,
	    "success,delay" },
	{ "FAILURE,DELAY,SUCCESS", 0, ENVELOPE_NOTIFY_FAILURE |
	    ENVELOPE_NOTIFY_DELAY | ENVELOPE_NOTIFY_SUCCESS,
	    "success,failure,delay" },
	{ "", -1, 0, NULL },
	{ ",", -1, 0, NULL },
	{ "SUCCESS,", -1, 0, NULL },
	{ ",SUCCESS", -1, 0, NULL },
	{ "SUCCESS,,DELAY", -1, 0, NULL },
	{ "SUCCESS,SUCCESS", -1, 0, NULL },
	{ "NEVER,SUCCESS", -1, 0, NULL },
	{ "DELAY,NEVER", -1, 0, NULL },
	{ "NEVER,NEVER", -1, 0, NULL },
	{ "SUCCES", -1, 0, NULL },
	{ "SUCCESSS", -1, 0, NULL },
	{ "SUCCESS DELAY", -1, 0, NULL },
};

START_TEST(test_notify_parse)
{
	char	buf[64];
	int	notify = -7;

	ck_assert_int_eq(envelope_notify_parse(notify_cases[_i].value,
	    &notify), notify_cases[_i].rc);
	if (notify_cases[_i].rc == -1) {
		ck_assert_int_eq(notify, -7);
		return;
	}
	ck_assert_int_eq(notify, notify_cases[_i].notify);
	envelope_notify_format(notify, 0, buf, sizeof buf);
	ck_assert_str_eq(buf, notify_cases[_i].written);
}
END_TEST

START_TEST(test_set_str)
{
	char	*s = NULL;

	envelope_set_str(&s, "one");
	ck_assert_str_eq(s, "one");
	envelope_set_str(&s, "two");
	ck_assert_str_eq(s, "two");
	envelope_set_str(&s, s);
	ck_assert_str_eq(s, "two");
	envelope_set_str(&s, s + 1);
	ck_assert_str_eq(s, "wo");
	envelope_set_str(&s, NULL);
	ck_assert_ptr_null(s);
	envelope_set_str(&s, NULL);
	ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_add_rcpt)
{
	struct envelope		 env;
	struct envelope_rcpt	*r;
	char			 addr[32];
	size_t			 i;

	envelope_init(&env);
	ck_assert_ptr_null(env.sender);
	ck_assert_uint_eq(env.nrcpts, 0);
	for (i = 0; i < 100; i++) {
		util_snprintf(addr, sizeof addr, "r%zu@example.net", i);
		r = envelope_add_rcpt(&env, addr);
		ck_assert_ptr_eq(r, &env.rcpts[i]);
		ck_assert_uint_eq(env.nrcpts, i + 1);
		ck_assert_uint_ge(env.rcpts_alloc, env.nrcpts);
		ck_assert_str_eq(r->addr, addr);
		ck_assert_int_eq(r->state, ENVELOPE_RCPT_PENDING);
		ck_assert_int_eq(r->notify, 0);
		ck_assert_ptr_null(r->orcpt);
		ck_assert_ptr_null(r->error);
		ck_assert_ptr_null(r->relay);
		ck_assert_str_eq(r->status, "");
		r->state = ENVELOPE_RCPT_SENT;
		envelope_set_str(&r->error, "250 ok");
	}
	for (i = 0; i < 100; i++) {
		util_snprintf(addr, sizeof addr, "r%zu@example.net", i);
		ck_assert_str_eq(env.rcpts[i].addr, addr);
	}
	envelope_clear(&env);
	ck_assert_uint_eq(env.nrcpts, 0);
	ck_assert_uint_eq(env.rcpts_alloc, 0);
	ck_assert_ptr_null(env.rcpts);
	envelope_clear(&env);
}
END_TEST

static const struct {
	int		 state;
	const char	*name;
} states[] = {
	{ ENVELOPE_RCPT_PENDING, "pending" },
	{ ENVELOPE_RCPT_SENT, "sent" },
	{ ENVELOPE_RCPT_FAILED, "failed" },
	{ 3, "unknown" },
	{ -1, "unknown" },
};

START_TEST(test_state_str)
{
	ck_assert_str_eq(envelope_rcpt_state_str(
	    (enum envelope_rcpt_state)states[_i].state), states[_i].name);
}
END_TEST

/*
 * The attempt history.
 */

/* A minimal envelope of two recipients, then the given attempt lines. */
static char *
attempt_text(const char *const *attempts, size_t n, size_t *lenp)
{
	static const char *const head[] = {
		"version: 1",
		"id: A",
		"arrival: 2026-11-28T11:17:04Z",
		"sender: <a@example.org>",
		"size: 10",
		"body: 7bit",
		"smtputf8: no",
		"client-address: ",
		"helo: ",
		"protocol: ",
		"tries: 1",
		"next-attempt: 2026-11-28T12:17:04Z",
		"rcpt: <b@example.net>",
		"rcpt-state: pending",
		"rcpt: <c@example.com>",
		"rcpt-state: sent",
	};
	const char	*lines[nitems(head) + 8];
	size_t		 i, k = 0;

	ck_assert_uint_le(n, 7);
	for (i = 0; i < nitems(head); i++)
		lines[k++] = head[i];
	for (i = 0; i < n; i++)
		lines[k++] = attempts[i];
	lines[k++] = "end: 2";
	return join(lines, k, lenp);
}

/* Read as written, fields as meant, and written back octet for octet. */
START_TEST(test_attempts_read)
{
	static const char *const attempts[] = {
		"attempt: 1795864624 0 plain 4.7.1 mx.example.net"
		    "[198.51.100.3]:25 mx.example.net said: 451 4.7.1 later",
		"attempt: 1795864625 1 tls 2.0.0 mx.example.com"
		    "[192.0.2.9]:25 250 2.0.0 Ok",
		"attempt: 1795864626 0 - 4.4.1 - connect to x: refused",
		"attempt: 1795864627 1 - - -",
	};
	struct envelope	 env;
	char		*text, *out, *cause;
	size_t		 len, outlen;

	text = attempt_text(attempts, nitems(attempts), &len);
	ck_assert_msg(parse(&env, text, len, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(env.nattempts, 4);
	ck_assert(env.attempts[0].when == ARRIVAL);
	ck_assert_uint_eq(env.attempts[0].rcpt, 0);
	ck_assert_int_eq(env.attempts[0].tls, 0);
	ck_assert_str_eq(env.attempts[0].status, "4.7.1");
	ck_assert_str_eq(env.attempts[0].relay,
	    "mx.example.net[198.51.100.3]:25");
	ck_assert_str_eq(env.attempts[0].text,
	    "mx.example.net said: 451 4.7.1 later");
	ck_assert_int_eq(env.attempts[1].tls, 1);
	ck_assert_uint_eq(env.attempts[1].rcpt, 1);
	ck_assert_str_eq(env.attempts[1].text, "250 2.0.0 Ok");
	ck_assert_int_eq(env.attempts[2].tls, -1);
	ck_assert_ptr_null(env.attempts[2].relay);
	ck_assert_str_eq(env.attempts[2].text, "connect to x: refused");
	ck_assert_str_eq(env.attempts[3].status, "");
	ck_assert_ptr_null(env.attempts[3].relay);
	ck_assert_ptr_null(env.attempts[3].text);
	ck_assert_int_eq(envelope_write(&env, &out, &outlen), 0);
	ck_assert_uint_eq(outlen, len);
	ck_assert(memcmp(out, text, len) == 0);
	free(out);
	envelope_clear(&env);
	ck_assert_ptr_null(env.attempts);
	ck_assert_uint_eq(env.nattempts, 0);
	free(text);
}
END_TEST

/* Attempt lines that are refused, naming their line (17) or end (18). */
static const struct {
	const char	*line;
	size_t		 at;
} bad_attempts[] = {
	{ "attempt: ", 17 },
	{ "attempt: 1795864624", 17 },
	{ "attempt: 1795864624 0 tls 2.0.0", 17 },
	{ "attempt: x 0 tls 2.0.0 - t", 17 },
	{ "attempt: -1 0 tls 2.0.0 - t", 17 },
	{ "attempt: 253402300800 0 tls 2.0.0 - t", 17 },
	{ "attempt: 1795864624 -1 tls 2.0.0 - t", 17 },
	{ "attempt: 1795864624 0 TLS 2.0.0 - t", 17 },
	{ "attempt: 1795864624 0 tls 2.0 - t", 17 },
	{ "attempt: 1795864624 0 tls 2.0.0.0.0.0.0.0.0 - t", 17 },
	{ "attempt: 1795864624  0 tls 2.0.0 - t", 17 },
	{ "attempt: 1795864624 2 tls 2.0.0 - t", 18 },
};

START_TEST(test_attempts_bad)
{
	struct envelope	 env;
	char		*text, *cause, want[16];
	size_t		 len;

	text = attempt_text(&bad_attempts[_i].line, 1, &len);
	ck_assert_msg(parse(&env, text, len, &cause) == -1, "%s accepted",
	    bad_attempts[_i].line);
	snprintf(want, sizeof want, "line %zu:", bad_attempts[_i].at);
	ck_assert_msg(strncmp(cause, want, strlen(want)) == 0,
	    "%s: cause \"%s\"", bad_attempts[_i].line, cause);
	ck_assert_ptr_null(env.attempts);
	free(cause);
	free(text);
}
END_TEST

/* The newest ENVELOPE_ATTEMPTS_MAX are kept, in order, through a file. */
START_TEST(test_attempts_kept)
{
	struct envelope	 env, back;
	char		 text[32], *out, *cause;
	size_t		 i, len, n = ENVELOPE_ATTEMPTS_MAX + 13;

	ck_assert_uint_eq(ENVELOPE_ATTEMPTS_MAX, 50);
	example_env(&env);
	for (i = 0; i < n; i++) {
		snprintf(text, sizeof text, "try %zu", i);
		envelope_add_attempt(&env, ARRIVAL + (time_t)i, i % 2,
		    (int)(i % 3) - 1, "4.0.0", "r[192.0.2.1]:25", text);
		ck_assert_uint_eq(env.nattempts,
		    i < ENVELOPE_ATTEMPTS_MAX ? i + 1 : ENVELOPE_ATTEMPTS_MAX);
	}
	ck_assert(env.attempts[0].when == ARRIVAL + 13);
	ck_assert_str_eq(env.attempts[0].text, "try 13");
	ck_assert_str_eq(env.attempts[ENVELOPE_ATTEMPTS_MAX - 1].text,
	    "try 62");
	ck_assert_int_eq(envelope_write(&env, &out, &len), 0);
	ck_assert_msg(parse(&back, out, len, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(back.nattempts, ENVELOPE_ATTEMPTS_MAX);
	for (i = 0; i < ENVELOPE_ATTEMPTS_MAX; i++) {
		ck_assert(back.attempts[i].when == env.attempts[i].when);
		ck_assert_uint_eq(back.attempts[i].rcpt, env.attempts[i].rcpt);
		ck_assert_int_eq(back.attempts[i].tls, env.attempts[i].tls);
		ck_assert_str_eq(back.attempts[i].text, env.attempts[i].text);
	}
	/* The history follows the recipients, just before end. */
	ck_assert_ptr_nonnull(strstr(out, "rcpt-state: sent\nattempt: "));
	ck_assert_ptr_nonnull(strstr(out, "try 62\nend: 2\n"));
	free(out);
	envelope_clear(&back);
	envelope_clear(&env);
}
END_TEST

/*
 * A relay with a space, text with control octets: made harmless, so the
 * line still reads back with the same fields.  An attempt naming no
 * recipient of the envelope is refused.
 */
START_TEST(test_attempts_sanitize)
{
	struct envelope	 env, back;
	char		*out, *cause;
	size_t		 len;

	example_env(&env);
	envelope_add_attempt(&env, ARRIVAL, 1, 7, NULL, "bad relay",
	    "a\r\nb\x01" "c");
	ck_assert_int_eq(env.attempts[0].tls, 1);
	ck_assert_int_eq(envelope_write(&env, &out, &len), 0);
	ck_assert_msg(parse(&back, out, len, &cause) == 0, "%s", cause);
	ck_assert_str_eq(back.attempts[0].relay, "bad?relay");
	ck_assert_str_eq(back.attempts[0].text, "a??b?c");
	ck_assert_str_eq(back.attempts[0].status, "");
	free(out);
	envelope_clear(&back);

	env.attempts[0].rcpt = env.nrcpts;
	errno = 0;
	ck_assert_int_eq(envelope_write(&env, &out, &len), -1);
	ck_assert_int_eq(errno, EINVAL);
	env.attempts[0].rcpt = 0;
	util_strlcpy(env.attempts[0].status, "x",
	    sizeof env.attempts[0].status);
	ck_assert_int_eq(envelope_write(&env, &out, &len), -1);
	envelope_clear(&env);
}
END_TEST

static Suite *
envelope_suite(void)
{
	Suite	*s = suite_create("envelope");
	TCase	*tc;

	tc = tcase_create("format");
	tcase_add_test(tc, test_example_read);
	tcase_add_test(tc, test_example_written);
	tcase_add_loop_test(tc, test_round_trip_combos, 0, NCOMBOS);
	tcase_add_test(tc, test_round_trip_rcpts);
	tcase_add_loop_test(tc, test_notify_text, 0, nitems(notifies));
	tcase_add_test(tc, test_thousand_rcpts);
	tcase_add_loop_test(tc, test_delay_notified, 0, nitems(delay_lines));
	tcase_add_test(tc, test_delay_notified_early);
	tcase_add_test(tc, test_minimal);
	tcase_add_test(tc, test_any_order);
	tcase_add_loop_test(tc, test_times, 0, nitems(times));
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_damaged, 0, nitems(damaged));
	tcase_add_test(tc, test_edit_identity);
	tcase_add_test(tc, test_version_2);
	tcase_add_test(tc, test_empty_and_odd);
	tcase_add_test(tc, test_no_rcpt);
	tcase_add_test(tc, test_long_values);
	tcase_add_test(tc, test_cause_quoting);
	tcase_add_loop_test(tc, test_truncation, 0, 4);
	tcase_add_loop_test(tc, test_corruption, 0, 3);
	suite_add_tcase(s, tc);

	tc = tcase_create("write");
	tcase_add_test(tc, test_sanitize);
	tcase_add_loop_test(tc, test_write_refused, 0, REFUSE_LAST);
	tcase_add_test(tc, test_write_refused_base);
	suite_add_tcase(s, tc);

	tc = tcase_create("attempts");
	tcase_add_test(tc, test_attempts_read);
	tcase_add_loop_test(tc, test_attempts_bad, 0, nitems(bad_attempts));
	tcase_add_test(tc, test_attempts_kept);
	tcase_add_test(tc, test_attempts_sanitize);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_set_str);
	tcase_add_test(tc, test_add_rcpt);
	tcase_add_loop_test(tc, test_state_str, 0, nitems(states));
	tcase_add_loop_test(tc, test_notify_parse, 0, nitems(notify_cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(envelope_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
