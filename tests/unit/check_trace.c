/*
 * check_trace.c: the Received header field, from a client (with and
 * without TLS, IPv4 and IPv6, one recipient or several) and from a
 * local user, octet for octet; a field larger than its buffer is cut,
 * never overrun.  The time zone is fixed to UTC so the date is known.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace.h"
#include "util.h"

#define WHEN	((time_t)1795864624)	/* 2026-11-28T11:17:04Z */
#define DATE	"Sat, 28 Nov 2026 11:17:04 +0000"

static const struct {
	struct trace_received	 t;
	const char		*want;
} cases[] = {
	{ { "client.example", "192.0.2.7", "mx.example.org", "ESMTP",
	    NULL, "0QH3M2B7K9XW4TZ", NULL, NULL, "bob@example.org", WHEN },
	    "Received: from client.example ([192.0.2.7])\r\n"
	    "\tby mx.example.org (tern) with ESMTP id 0QH3M2B7K9XW4TZ\r\n"
	    "\tfor <bob@example.org>; " DATE "\r\n" },
	{ { "[IPv6:2001:db8::1]", "2001:db8::1", "mx.example.org",
	    "ESMTPSA", NULL, "0QH3M2B7K9XW4TZ", "TLSv1.3",
	    "TLS_AES_256_GCM_SHA384", NULL, WHEN },
	    "Received: from [IPv6:2001:db8::1] ([IPv6:2001:db8::1])\r\n"
	    "\tby mx.example.org (tern) with ESMTPSA id 0QH3M2B7K9XW4TZ\r\n"
	    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384); "
	    DATE "\r\n" },
	{ { NULL, NULL, "mx.example.org", NULL,
	    "from userid 1000 (user alice)", "0QH3M2B7K9XW4TZ", NULL, NULL,
	    "bob@example.org", WHEN },
	    "Received: by mx.example.org (tern, from userid 1000 (user "
	    "alice))\r\n\tid 0QH3M2B7K9XW4TZ\r\n\tfor <bob@example.org>; "
	    DATE "\r\n" },
	{ { NULL, NULL, "mx.example.org", NULL, "from userid 4242",
	    "0QH3M2B7K9XW4TZ", NULL, NULL, NULL, WHEN },
	    "Received: by mx.example.org (tern, from userid 4242)\r\n"
	    "\tid 0QH3M2B7K9XW4TZ; " DATE "\r\n" },
};

START_TEST(test_received)
{
	char	buf[TRACE_RECEIVED_SIZE];
	size_t	n;

	n = trace_received(buf, sizeof buf, &cases[_i].t);
	ck_assert_str_eq(buf, cases[_i].want);
	ck_assert_uint_eq(n, strlen(cases[_i].want));
}
END_TEST

START_TEST(test_received_cut)
{
	char	buf[40];
	size_t	n;

	memset(buf, 'x', sizeof buf);
	n = trace_received(buf, sizeof buf, &cases[0].t);
	ck_assert_uint_eq(n, sizeof buf - 1);
	ck_assert_int_eq(buf[sizeof buf - 1], '\0');
	ck_assert(strncmp(buf, cases[0].want, n) == 0);
}
END_TEST

int
main(void)
{
	Suite	*s;
	TCase	*tc;
	SRunner	*sr;
	int	 failed;

	setenv("TZ", "UTC", 1);
	tzset();
	s = suite_create("trace");
	tc = tcase_create("received");
	tcase_add_loop_test(tc, test_received, 0, nitems(cases));
	tcase_add_test(tc, test_received_cut);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
