/*
 * check_anvil.c: the per-client memory.  Each limit is reached at its
 * value and not before, refused events are not counted, windows slide
 * with the time passed in, unserved connections are given back, exempt
 * networks are never counted, IPv6 clients are grouped by prefix, the
 * AUTH penalty covers an address and an account and ends, and the table
 * stays within its size and forgets what is spent.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "anvil.h"
#include "config.h"
#include "util.h"

#define UNIT	60000ULL	/* client_rate_unit: 1m */

static struct config	*conf;

/* A configuration with every limit off, but for what a test sets. */
static void
setup(void)
{
	conf = xcalloc(1, sizeof *conf);
	conf->client_rate_unit = UNIT;
	conf->client_ipv6_prefix = 64;
	conf->client_table_size = 1000;
	conf->auth_penalty = 600000;
	anvil_init(conf);
}

static void
teardown(void)
{
	anvil_shutdown();
	free(conf->client_limit_exempt);
	free(conf);
}

static const struct sockaddr *
sa_of(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6->sin6_addr),
		    1);
		sin6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

START_TEST(test_connection_rate)
{
	struct sockaddr_storage	 ss, ss2;
	const struct sockaddr	*sa = sa_of("192.0.2.1", &ss);
	struct anvil_key	 k;
	uint64_t		 mid = 1000 + UNIT + UNIT / 2;
	int			 i;

	conf->max_connection_rate = 3;
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(anvil_connect(sa, 1000, &k), ANVIL_OK);
		anvil_disconnect(&k, 1, 1000);
	}
	ck_assert_int_eq(anvil_connect(sa, 1000, &k), ANVIL_CONN_RATE);
	ck_assert_int_eq(k.family, 0);
	/* Refused connections are not counted, others are not affected. */
	ck_assert_int_eq(anvil_connect(sa, 2000, &k), ANVIL_CONN_RATE);
	ck_assert_int_eq(anvil_connect(sa_of("192.0.2.2", &ss2), 2000, &k),
	    ANVIL_OK);
	/*
	 * Halfway through the next window half the last one still
	 * counts: 3 * 1/2 = 1, so two more are allowed, not three.
	 */
	ck_assert_int_eq(anvil_connect(sa, mid, &k), ANVIL_OK);
	ck_assert_int_eq(anvil_connect(sa, mid, &k), ANVIL_OK);
	ck_assert_int_eq(anvil_connect(sa, mid, &k), ANVIL_CONN_RATE);
	/* Two units later everything is forgotten. */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(anvil_connect(sa, 1000 + 4 * UNIT, &k),
		    ANVIL_OK);
	ck_assert_int_eq(anvil_connect(sa, 1000 + 4 * UNIT, &k),
	    ANVIL_CONN_RATE);
}
END_TEST

START_TEST(test_unserved_given_back)
{
	struct sockaddr_storage	ss;
	struct anvil_key	k;
	int			i;

	conf->max_connection_rate = 2;
	sa_of("198.51.100.7", &ss);
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 5000,
		    &k), ANVIL_OK);
		anvil_disconnect(&k, 0, 5000);
	}
	/* Open at once, they count until they end. */
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 5000, &k),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 5000, &k),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 5000, &k),
	    ANVIL_CONN_RATE);
}
END_TEST

START_TEST(test_connection_count)
{
	struct sockaddr_storage	ss;
	struct anvil_key	k[3];

	conf->max_connections_per_ip = 2;
	sa_of("203.0.113.9", &ss);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 0, &k[0]),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 0, &k[1]),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 0, &k[2]),
	    ANVIL_CONN_COUNT);
	anvil_disconnect(&k[0], 1, 10);
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 10, &k[2]),
	    ANVIL_OK);
	/* An entry with sessions open is never expired nor evicted. */
	ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 10 * UNIT,
	    &k[0]), ANVIL_CONN_COUNT);
}
END_TEST

START_TEST(test_exempt)
{
	struct sockaddr_storage	ss;
	struct anvil_key	k;
	int			i;

	conf->max_connection_rate = 1;
	conf->max_connections_per_ip = 1;
	conf->max_message_rate = 1;
	conf->max_auth_failure_rate = 1;
	conf->client_limit_exempt = xcalloc(1, sizeof(struct config_net));
	conf->client_limit_exempt[0].family = AF_INET;
	inet_pton(AF_INET, "127.0.0.0", conf->client_limit_exempt[0].addr);
	conf->client_limit_exempt[0].prefix = 8;
	conf->nclient_limit_exempt = 1;
	sa_of("127.0.0.2", &ss);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(anvil_connect((struct sockaddr *)&ss, 0, &k),
		    ANVIL_EXEMPT);
		ck_assert_int_eq(k.family, 0);
		ck_assert_int_eq(anvil_mail((struct sockaddr *)&ss, 0),
		    ANVIL_EXEMPT);
		ck_assert_int_eq(anvil_auth_failed((struct sockaddr *)&ss,
		    "bob", 0), ANVIL_EXEMPT);
		ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&ss,
		    "bob", 0), ANVIL_EXEMPT);
	}
	ck_assert_uint_eq(anvil_entries(), 0);
	/* An IPv4-mapped address is the IPv4 address. */
	ck_assert_int_eq(anvil_connect(sa_of("::ffff:127.0.0.3", &ss), 0, &k),
	    ANVIL_EXEMPT);
	ck_assert_int_eq(anvil_connect(sa_of("::ffff:192.0.2.3", &ss), 0, &k),
	    ANVIL_OK);
	ck_assert_int_eq(k.family, AF_INET);
}
END_TEST

START_TEST(test_ipv6_prefix)
{
	struct sockaddr_storage	ss;
	struct anvil_key	k;

	conf->max_connections_per_ip = 1;
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:2::1", &ss), 0, &k),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:2:ffff::9", &ss), 0,
	    &k), ANVIL_CONN_COUNT);
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:3::1", &ss), 0, &k),
	    ANVIL_OK);
	/* A prefix that is not a multiple of 8. */
	conf->client_ipv6_prefix = 60;
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:1f::1", &ss), 0, &k),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:10::1", &ss), 0, &k),
	    ANVIL_CONN_COUNT);
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:20::1", &ss), 0, &k),
	    ANVIL_OK);
	conf->client_ipv6_prefix = 128;
	ck_assert_int_eq(anvil_connect(sa_of("2001:db8:1:20::2", &ss), 0, &k),
	    ANVIL_OK);
}
END_TEST

START_TEST(test_message_and_recipient_rate)
{
	struct sockaddr_storage	ss;
	const struct sockaddr	*sa = sa_of("192.0.2.50", &ss);
	int			i;

	conf->max_message_rate = 2;
	conf->max_recipient_rate = 5;
	ck_assert_int_eq(anvil_mail(sa, 0), ANVIL_OK);
	ck_assert_int_eq(anvil_mail(sa, 0), ANVIL_OK);
	ck_assert_int_eq(anvil_mail(sa, 0), ANVIL_MSG_RATE);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(anvil_rcpt(sa, 0), ANVIL_OK);
	ck_assert_int_eq(anvil_rcpt(sa, 1), ANVIL_RCPT_RATE);
	ck_assert_int_eq(anvil_mail(sa, 2 * UNIT), ANVIL_OK);
	ck_assert_int_eq(anvil_rcpt(sa, 2 * UNIT), ANVIL_OK);
	/* No limit: always counted, never refused. */
	conf->max_message_rate = 0;
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(anvil_mail(sa, 2 * UNIT), ANVIL_OK);
}
END_TEST

START_TEST(test_auth_penalty_address)
{
	struct sockaddr_storage	ss, other;
	const struct sockaddr	*sa = sa_of("192.0.2.77", &ss);

	conf->max_auth_failure_rate = 3;
	sa_of("192.0.2.78", &other);
	ck_assert_int_eq(anvil_auth_allowed(sa, NULL, 0), ANVIL_OK);
	ck_assert_int_eq(anvil_auth_failed(sa, "a", 0), ANVIL_OK);
	ck_assert_int_eq(anvil_auth_failed(sa, "b", 0), ANVIL_OK);
	ck_assert_int_eq(anvil_auth_allowed(sa, "c", 0), ANVIL_OK);
	ck_assert_int_eq(anvil_auth_failed(sa, "c", 0), ANVIL_AUTH_PENALTY);
	ck_assert_int_eq(anvil_auth_allowed(sa, NULL, 1), ANVIL_AUTH_PENALTY);
	ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&other, "a",
	    1), ANVIL_OK);
	/* The penalty outlasts the rate window, then ends. */
	ck_assert_int_eq(anvil_auth_allowed(sa, NULL, 3 * UNIT),
	    ANVIL_AUTH_PENALTY);
	ck_assert_int_eq(anvil_auth_allowed(sa, NULL, 600000), ANVIL_OK);
}
END_TEST

START_TEST(test_auth_penalty_account)
{
	struct sockaddr_storage	ss;
	char			addr[32];
	int			i;

	conf->max_auth_failure_rate = 100;
	conf->max_auth_failure_rate_per_user = 4;
	/* Four addresses, one failure each, against one account. */
	for (i = 0; i < 4; i++) {
		snprintf(addr, sizeof addr, "192.0.2.%d", 100 + i);
		ck_assert_int_eq(anvil_auth_failed(sa_of(addr, &ss),
		    i % 2 ? "Alice@example.org" : "alice@example.org", 10),
		    i == 3 ? ANVIL_USER_PENALTY : ANVIL_OK);
	}
	sa_of("192.0.2.200", &ss);
	ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&ss, NULL, 20),
	    ANVIL_OK);
	ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&ss,
	    "ALICE@example.org", 20), ANVIL_USER_PENALTY);
	ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&ss,
	    "bob@example.org", 20), ANVIL_OK);
	ck_assert_int_eq(anvil_auth_allowed((struct sockaddr *)&ss,
	    "alice@example.org", 10 + 600000), ANVIL_OK);
}
END_TEST

START_TEST(test_table_bounded)
{
	struct sockaddr_storage	ss;
	struct anvil_key	k, busy;
	char			addr[32];
	int			i;

	conf->client_table_size = 100;
	conf->max_connections_per_ip = 1;
	ck_assert_int_eq(anvil_connect(sa_of("10.9.9.9", &ss), 0, &busy),
	    ANVIL_OK);
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof addr, "10.0.%d.%d", i / 256, i % 256);
		ck_assert_int_eq(anvil_connect(sa_of(addr, &ss), i, &k),
		    ANVIL_OK);
		anvil_disconnect(&k, 1, i);
		ck_assert_uint_le(anvil_entries(), 100);
	}
	/* The one with a session open was kept through it all. */
	ck_assert_int_eq(anvil_connect(sa_of("10.9.9.9", &ss), 1000, &k),
	    ANVIL_CONN_COUNT);
	/* Spent entries go as later calls pass by. */
	anvil_disconnect(&busy, 1, 1000);
	for (i = 0; i < 100; i++)
		(void)anvil_mail(sa_of("10.8.8.8", &ss), 1000 + 3 * UNIT);
	ck_assert_uint_eq(anvil_entries(), 1);
	/* The size the manual states per entry. */
	ck_assert_uint_le(anvil_entry_size(), 112);
}
END_TEST

static Suite *
anvil_suite(void)
{
	Suite	*s = suite_create("anvil");
	TCase	*tc = tcase_create("anvil");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_connection_rate);
	tcase_add_test(tc, test_unserved_given_back);
	tcase_add_test(tc, test_connection_count);
	tcase_add_test(tc, test_exempt);
	tcase_add_test(tc, test_ipv6_prefix);
	tcase_add_test(tc, test_message_and_recipient_rate);
	tcase_add_test(tc, test_auth_penalty_address);
	tcase_add_test(tc, test_auth_penalty_account);
	tcase_add_test(tc, test_table_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(anvil_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
