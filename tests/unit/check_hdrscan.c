/*
 * check_hdrscan.c: the header section scanner, fed whole and one octet
 * at a time: which of Date and Message-ID it saw and where the section
 * ends.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hdrscan.h"
#include "util.h"

static const struct {
	const char	*msg;
	int		 seen;
	ssize_t		 end;	/* -1: none found */
	int		 bad;
	int		 open;	/* all header section at the end */
} cases[] = {
	{ "Subject: x\r\n\r\nbody\r\n", 0, 12, 0, 0 },
	{ "Date: d\r\nMessage-ID: <i>\r\n\r\nDate: b\r\n", HDRSCAN_ALL,
	  26, 0, 0 },
	{ "date: d\r\n\r\n", HDRSCAN_DATE, 9, 0, 0 },
	{ "MESSAGE-id:<i>\r\n\r\n", HDRSCAN_MSGID, 16, 0, 0 },
	{ "X: a\r\n Date: folded\r\n\r\n", 0, 21, 0, 0 },
	{ "Dates: d\r\nX-Message-ID: i\r\n\r\n", 0, 27, 0, 0 },
	{ "Date : d\r\n\r\n", 0, -1, 1, 0 },
	{ "no colon\r\nDate: d\r\n\r\n", 0, -1, 1, 0 },
	{ "Subject: only\r\nDate: d\r\n", HDRSCAN_DATE, -1, 0, 1 },
	{ "\r\nDate: d\r\n", 0, 0, 0, 0 },
	{ "A-Very-Long-Field-Name-Indeed: v\r\nMessage-ID: i\r\n\r\n",
	  HDRSCAN_MSGID, 49, 0, 0 },
};

START_TEST(test_whole)
{
	struct hdrscan	 h;
	const char	*m = cases[_i].msg;

	hdrscan_init(&h);
	ck_assert_int_eq(hdrscan_feed(&h, m, strlen(m)), cases[_i].end);
	ck_assert_int_eq(h.seen, cases[_i].seen);
	ck_assert_int_eq(h.bad, cases[_i].bad);
	ck_assert_int_eq(hdrscan_open(&h), cases[_i].open);
}
END_TEST

START_TEST(test_octets)
{
	struct hdrscan	 h;
	const char	*m = cases[_i].msg;
	size_t		 i;
	ssize_t		 end = -1, r;

	hdrscan_init(&h);
	for (i = 0; i < strlen(m); i++) {
		r = hdrscan_feed(&h, m + i, 1);
		if (r != -1) {
			ck_assert_int_eq(r, 0);
			ck_assert_int_eq(end, -1);
			end = (ssize_t)i;
		}
	}
	ck_assert_int_eq(end, cases[_i].end);
	ck_assert_int_eq(h.seen, cases[_i].seen);
	ck_assert_int_eq(h.bad, cases[_i].bad);
	ck_assert_int_eq(hdrscan_open(&h), cases[_i].open);
}
END_TEST

static Suite *
hdrscan_suite(void)
{
	Suite	*s = suite_create("hdrscan");
	TCase	*tc = tcase_create("scan");

	tcase_add_loop_test(tc, test_whole, 0, nitems(cases));
	tcase_add_loop_test(tc, test_octets, 0, nitems(cases));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(hdrscan_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
