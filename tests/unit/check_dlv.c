/*
 * check_dlv.c: the rules from a delivery outcome to a recipient's state
 * and the reports it owes.  Every result on every try: sent, deferred,
 * and bounced after the last try with its status kept or made 4.4.7;
 * the envelope line records status, reply and relay; success reports
 * for a Maildir and for a peer without DSN; the one delay report after
 * its wait; the NOTIFY that leaves a failure out; the retry horizon of a
 * delay report; when the gateway takes over.  Times are passed in, so
 * nothing here sleeps or reads the clock.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dlv.h"
#include "dsn.h"
#include "envelope.h"
#include "util.h"

#define NOW	((time_t)1795864624)

/* One outcome on one try, and what it must make of the recipient. */
static const struct apply_case {
	enum dlv_result		 result;
	const char		*status;	/* of the outcome, "" none */
	const char		*reply;
	unsigned		 tries;		/* before this one */
	uint64_t		 max_tries;
	enum dlv_verdict	 verdict;
	const char		*recorded;	/* status in the envelope */
	enum envelope_rcpt_state state;
} apply_cases[] = {
	{ DLV_OK, "2.0.0", "250 2.0.0 Ok", 0, 20, DLV_SENT, "2.0.0",
	    ENVELOPE_RCPT_SENT },
	{ DLV_OK, "", "", 19, 20, DLV_SENT, "2.0.0", ENVELOPE_RCPT_SENT },
	{ DLV_PERM, "5.1.1", "550 5.1.1 No such user", 0, 20, DLV_BOUNCED,
	    "5.1.1", ENVELOPE_RCPT_PENDING },
	{ DLV_PERM, "", "", 3, 20, DLV_BOUNCED, "5.0.0",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "4.4.1", "", 0, 20, DLV_DEFERRED, "4.4.1",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "", "", 0, 20, DLV_DEFERRED, "4.0.0",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "4.2.2", "452 4.2.2 Full", 18, 20, DLV_DEFERRED, "4.2.2",
	    ENVELOPE_RCPT_PENDING },
	/* The try numbered max_tries: returned, a 4.x.x status kept. */
	{ DLV_TEMP, "4.2.2", "452 4.2.2 Full", 19, 20, DLV_BOUNCED, "4.2.2",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "", "", 19, 20, DLV_BOUNCED, "4.0.0",
	    ENVELOPE_RCPT_PENDING },
	/* A peer's odd 5.x.x on a 4xx reply is no temporary status. */
	{ DLV_TEMP, "5.7.1", "421 5.7.1 Go away", 19, 20, DLV_BOUNCED,
	    "4.4.7", ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "4.4.1", "", 30, 20, DLV_BOUNCED, "4.4.1",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_TEMP, "4.4.1", "", 0, 1, DLV_BOUNCED, "4.4.1",
	    ENVELOPE_RCPT_PENDING },
	{ DLV_NONE, "", "", 0, 20, DLV_DEFERRED, "4.0.0",
	    ENVELOPE_RCPT_PENDING },
};

START_TEST(test_apply)
{
	const struct apply_case	*c = &apply_cases[_i];
	struct envelope		 env;
	struct envelope_rcpt	*r;
	struct dlv_rcpt		 dr;

	envelope_init(&env);
	r = envelope_add_rcpt(&env, "bob@example.net");
	memset(&dr, 0, sizeof dr);
	dr.addr = r->addr;
	dlv_status_fill(&dr.st, c->result, c->status, "the text %d", _i);
	util_strlcpy(dr.st.reply, c->reply, sizeof dr.st.reply);
	util_strlcpy(dr.relay, "mx.example.net[192.0.2.1]:25",
	    sizeof dr.relay);
	ck_assert_int_eq(dlv_apply(r, &dr, c->tries, c->max_tries),
	    c->verdict);
	ck_assert_str_eq(r->status, c->recorded);
	ck_assert_int_eq(r->state, c->state);
	ck_assert_str_eq(r->relay, "mx.example.net[192.0.2.1]:25");
	/* The peer's reply alone when there is one, else our text. */
	if (c->reply[0] != '\0')
		ck_assert_str_eq(r->error, c->reply);
	else
		ck_assert_str_eq(r->error, dr.st.text);
	envelope_clear(&env);
}
END_TEST

START_TEST(test_verdict_str)
{
	ck_assert_str_eq(dlv_verdict_str(DLV_SENT), "sent");
	ck_assert_str_eq(dlv_verdict_str(DLV_DEFERRED), "deferred");
	ck_assert_str_eq(dlv_verdict_str(DLV_BOUNCED), "bounced");
}
END_TEST

START_TEST(test_status_fill)
{
	struct dlv_status	st;

	memset(&st, 'x', sizeof st);
	dlv_status_fill(&st, DLV_TEMP, "4.4.1", "connect to %s: %s\r\n\x80",
	    "mx[192.0.2.1]:25", "refused");
	ck_assert_int_eq(st.result, DLV_TEMP);
	ck_assert_str_eq(st.status, "4.4.1");
	ck_assert_str_eq(st.reply, "");
	ck_assert_str_eq(st.text, "connect to mx[192.0.2.1]:25: refused???");
}
END_TEST

/* Over TLS or not, as the history keeps it. */
static const struct tls_case {
	const char	*relay;
	int		 tls;
	int		 want;
} tls_cases[] = {
	{ "mx[192.0.2.1]:25", 1, 1 },
	{ "mx[192.0.2.1]:25", 0, 0 },
	{ DLV_RELAY_NONE, 1, -1 },
	{ DLV_RELAY_NONE, 0, -1 },
	{ DLV_RELAY_LOCAL, 0, -1 },
};

START_TEST(test_history_tls)
{
	struct dlv_rcpt	dr;

	memset(&dr, 0, sizeof dr);
	util_strlcpy(dr.relay, tls_cases[_i].relay, sizeof dr.relay);
	dr.tls = tls_cases[_i].tls;
	ck_assert_int_eq(dlv_history_tls(&dr), tls_cases[_i].want);
}
END_TEST

/* Which success report an outcome owes. */
static const struct success_case {
	enum dlv_result	 result;
	const char	*relay;
	int		 dsn;
	int		 notify;
	int		 want;
} success_cases[] = {
	{ DLV_OK, DLV_RELAY_LOCAL, 0, ENVELOPE_NOTIFY_SUCCESS,
	    DSN_ACTION_DELIVERED },
	{ DLV_OK, DLV_RELAY_LOCAL, 1, ENVELOPE_NOTIFY_SUCCESS |
	    ENVELOPE_NOTIFY_FAILURE, DSN_ACTION_DELIVERED },
	{ DLV_OK, DLV_RELAY_LOCAL, 0, ENVELOPE_NOTIFY_FAILURE, -1 },
	{ DLV_OK, DLV_RELAY_LOCAL, 0, 0, -1 },
	{ DLV_OK, "mx[192.0.2.1]:25", 0, ENVELOPE_NOTIFY_SUCCESS,
	    DSN_ACTION_RELAYED },
	/* A peer that took the request reports for itself. */
	{ DLV_OK, "mx[192.0.2.1]:25", 1, ENVELOPE_NOTIFY_SUCCESS, -1 },
	{ DLV_OK, "mx[192.0.2.1]:25", 0, ENVELOPE_NOTIFY_NEVER, -1 },
	{ DLV_TEMP, DLV_RELAY_LOCAL, 0, ENVELOPE_NOTIFY_SUCCESS, -1 },
	{ DLV_PERM, "mx[192.0.2.1]:25", 0, ENVELOPE_NOTIFY_SUCCESS, -1 },
};

START_TEST(test_success_notice)
{
	const struct success_case	*c = &success_cases[_i];
	struct dlv_rcpt			 dr;

	memset(&dr, 0, sizeof dr);
	dr.st.result = c->result;
	util_strlcpy(dr.relay, c->relay, sizeof dr.relay);
	dr.dsn = c->dsn;
	ck_assert_int_eq(dlv_success_notice(&dr, c->notify), c->want);
}
END_TEST

/* The one delay report: asked for, not yet sent, waited long enough. */
static const struct delay_case {
	int		 notify;
	int		 notified;
	time_t		 arrival;
	uint64_t	 after;		/* ms */
	int		 want;
} delay_cases[] = {
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW - 3600, 3600000, 1 },
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW - 3599, 3600000, 0 },
	{ ENVELOPE_NOTIFY_DELAY | ENVELOPE_NOTIFY_FAILURE, 0, NOW - 7200,
	    3600000, 1 },
	{ ENVELOPE_NOTIFY_DELAY, 1, NOW - 7200, 3600000, 0 },
	{ ENVELOPE_NOTIFY_FAILURE, 0, NOW - 7200, 3600000, 0 },
	{ 0, 0, NOW - 7200, 3600000, 0 },
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW - 7200, 0, 0 },
	/* An arrival in the future (a clock set back) waits. */
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW + 10, 1, 0 },
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW, 1, 0 },
	{ ENVELOPE_NOTIFY_DELAY, 0, NOW - 1, 1000, 1 },
};

START_TEST(test_delay_notice)
{
	const struct delay_case	*c = &delay_cases[_i];
	struct envelope_rcpt	 r;

	memset(&r, 0, sizeof r);
	r.notify = c->notify;
	r.delay_notified = c->notified;
	ck_assert_int_eq(dlv_delay_notice(&r, c->arrival, c->after, NOW),
	    c->want);
}
END_TEST

START_TEST(test_failure_notice)
{
	static const struct {
		int	notify;
		int	want;
	} cases[] = {
		{ 0, 1 },
		{ ENVELOPE_NOTIFY_FAILURE, 1 },
		{ ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY, 1 },
		{ ENVELOPE_NOTIFY_SUCCESS, 0 },
		{ ENVELOPE_NOTIFY_DELAY, 0 },
		{ ENVELOPE_NOTIFY_NEVER, 0 },
	};
	struct envelope_rcpt	r;
	size_t			i;

	for (i = 0; i < nitems(cases); i++) {
		memset(&r, 0, sizeof r);
		r.notify = cases[i].notify;
		ck_assert_int_eq(dlv_failure_notice(&r), cases[i].want);
	}
}
END_TEST

START_TEST(test_retry_until)
{
	/* 20 tries, 30 minutes apart: after the first, 18 more to go. */
	ck_assert_int_eq(dlv_retry_until(0, 20, 1800000, NOW),
	    NOW + 19 * 1800);
	ck_assert_int_eq(dlv_retry_until(1, 20, 1800000, NOW),
	    NOW + 18 * 1800);
	ck_assert_int_eq(dlv_retry_until(19, 20, 1800000, NOW), NOW);
	ck_assert_int_eq(dlv_retry_until(25, 20, 1800000, NOW), NOW);
	ck_assert_int_eq(dlv_retry_until(0, 1, 1800000, NOW), NOW);
	ck_assert_int_eq(dlv_retry_until(2, 5, 1500, NOW), NOW + 2);
}
END_TEST

/* The gateway: configured or not, always, after some tries. */
static const struct gateway_case {
	const char	*gateway;
	int		 all;
	uint64_t	 after;
	unsigned	 tries;
	int		 want;
} gateway_cases[] = {
	{ "", 0, 0, 0, 0 },
	{ "", 1, 3, 10, 0 },
	{ "relay.example", 0, 0, 0, 0 },
	{ "relay.example", 0, 0, 100, 0 },
	{ "relay.example", 1, 0, 0, 1 },
	{ "relay.example", 0, 3, 2, 0 },
	{ "relay.example", 0, 3, 3, 1 },
	{ "relay.example", 0, 3, 4, 1 },
	{ "relay.example", 0, 1, 0, 0 },
	{ "relay.example", 0, 1, 1, 1 },
};

START_TEST(test_use_gateway)
{
	const struct gateway_case	*c = &gateway_cases[_i];
	struct config			*conf;

	conf = xcalloc(1, sizeof *conf);
	util_strlcpy(conf->gateway, c->gateway, sizeof conf->gateway);
	conf->gateway_all = c->all;
	conf->gateway_after_tries = c->after;
	ck_assert_int_eq(dlv_use_gateway(conf, c->tries), c->want);
	free(conf);
}
END_TEST

static Suite *
dlv_suite(void)
{
	Suite	*s = suite_create("dlv");
	TCase	*tc;

	tc = tcase_create("outcome");
	tcase_add_loop_test(tc, test_apply, 0, nitems(apply_cases));
	tcase_add_test(tc, test_verdict_str);
	tcase_add_test(tc, test_status_fill);
	tcase_add_loop_test(tc, test_history_tls, 0, nitems(tls_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("reports");
	tcase_add_loop_test(tc, test_success_notice, 0,
	    nitems(success_cases));
	tcase_add_loop_test(tc, test_delay_notice, 0, nitems(delay_cases));
	tcase_add_test(tc, test_failure_notice);
	tcase_add_test(tc, test_retry_until);
	suite_add_tcase(s, tc);

	tc = tcase_create("gateway");
	tcase_add_loop_test(tc, test_use_gateway, 0, nitems(gateway_cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(dlv_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
