/*
 * check_util.c: the base module.  Sizes, durations, booleans and bounded
 * numbers as an administrator writes them, their printed forms (which
 * must read back to the same value), and the bounded string functions at
 * their edges.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define GUARD	0x5a

static const struct {
	const char	*text;
	uint64_t	 want;
	const char	*cause;		/* NULL: must parse */
} sizes[] = {
	{ "0", 0, NULL },
	{ "1", 1, NULL },
	{ "1023", 1023, NULL },
	{ "7B", 7, NULL },
	{ "7b", 7, NULL },
	{ "1K", 1024, NULL },
	{ "1k", 1024, NULL },
	{ "2KB", 2048, NULL },
	{ "2KiB", 2048, NULL },
	{ "25M", 26214400, NULL },
	{ "3MB", 3145728, NULL },
	{ "3MiB", 3145728, NULL },
	{ "1G", 1073741824ULL, NULL },
	{ "4gb", 4294967296ULL, NULL },
	{ "18446744073709551615", UINT64_MAX, NULL },
	{ "17179869183G", 17179869183ULL * 1073741824ULL, NULL },
	{ "17179869184G", 0, "too large" },
	{ "18446744073709551616", 0, "too large" },
	{ "", 0, "not a number" },
	{ "K", 0, "not a number" },
	{ "-1", 0, "not a number" },
	{ "+1", 0, "not a number" },
	{ " 1", 0, "not a number" },
	{ "1 ", 0, "unknown unit" },
	{ "1X", 0, "unknown unit" },
	{ "1.5M", 0, "unknown unit" },
	{ "1T", 0, "unknown unit" },
	{ "1KK", 0, "unknown unit" },
	{ "0x10", 0, "unknown unit" },
};

START_TEST(test_parse_size)
{
	const char	*cause = NULL;
	uint64_t	 v = 12345;
	int		 rc;

	rc = util_parse_size(sizes[_i].text, &v, &cause);
	if (sizes[_i].cause == NULL) {
		ck_assert_msg(rc == 0, "\"%s\": %s", sizes[_i].text, cause);
		ck_assert_msg(v == sizes[_i].want, "\"%s\": %llu",
		    sizes[_i].text, (unsigned long long)v);
	} else {
		ck_assert_msg(rc == -1, "\"%s\" parsed", sizes[_i].text);
		ck_assert_str_eq(cause, sizes[_i].cause);
		ck_assert_uint_eq(v, 12345);
	}
}
END_TEST

static const struct {
	const char	*text;
	uint64_t	 want;		/* milliseconds */
	const char	*cause;
} durations[] = {
	{ "0", 0, NULL },
	{ "90", 90000, NULL },
	{ "500ms", 500, NULL },
	{ "0ms", 0, NULL },
	{ "30s", 30000, NULL },
	{ "30S", 30000, NULL },
	{ "30m", 1800000, NULL },
	{ "2h", 7200000, NULL },
	{ "1d", 86400000, NULL },
	{ "1w", 604800000, NULL },
	{ "18446744073709551615ms", UINT64_MAX, NULL },
	{ "18446744073709551s", 18446744073709551000ULL, NULL },
	{ "18446744073709552s", 0, "too large" },
	{ "18446744073709551615", 0, "too large" },
	{ "99999999999999999999ms", 0, "too large" },
	{ "", 0, "not a number" },
	{ "s", 0, "not a number" },
	{ "-5s", 0, "not a number" },
	{ "5y", 0, "unknown unit" },
	{ "5 s", 0, "unknown unit" },
	{ "1.5h", 0, "unknown unit" },
	{ "5sec", 0, "unknown unit" },
	{ "5min", 0, "unknown unit" },
};

START_TEST(test_parse_duration)
{
	const char	*cause = NULL;
	uint64_t	 v = 12345;
	int		 rc;

	rc = util_parse_duration(durations[_i].text, &v, &cause);
	if (durations[_i].cause == NULL) {
		ck_assert_msg(rc == 0, "\"%s\": %s", durations[_i].text,
		    cause);
		ck_assert_msg(v == durations[_i].want, "\"%s\": %llu",
		    durations[_i].text, (unsigned long long)v);
	} else {
		ck_assert_msg(rc == -1, "\"%s\" parsed", durations[_i].text);
		ck_assert_str_eq(cause, durations[_i].cause);
		ck_assert_uint_eq(v, 12345);
	}
}
END_TEST

static const struct {
	const char	*text;
	uint64_t	 min, max;
	uint64_t	 want;
	const char	*cause;
} uints[] = {
	{ "0", 0, 10, 0, NULL },
	{ "10", 0, 10, 10, NULL },
	{ "5", 5, 5, 5, NULL },
	{ "007", 0, 10, 7, NULL },
	{ "18446744073709551615", 0, UINT64_MAX, UINT64_MAX, NULL },
	{ "11", 0, 10, 0, "too large" },
	{ "4", 5, 10, 0, "too small" },
	{ "0", 1, 10, 0, "too small" },
	{ "18446744073709551616", 0, UINT64_MAX, 0, "too large" },
	{ "", 0, 10, 0, "not a number" },
	{ "-1", 0, 10, 0, "not a number" },
	{ "+1", 0, 10, 0, "not a number" },
	{ " 1", 0, 10, 0, "not a number" },
	{ "1 ", 0, 10, 0, "not a number" },
	{ "1a", 0, 10, 0, "not a number" },
	{ "1K", 0, 10000, 0, "not a number" },
	{ "0x1", 0, 10, 0, "not a number" },
};

START_TEST(test_parse_uint)
{
	const char	*cause = NULL;
	uint64_t	 v = 12345;
	int		 rc;

	rc = util_parse_uint(uints[_i].text, uints[_i].min, uints[_i].max,
	    &v, &cause);
	if (uints[_i].cause == NULL) {
		ck_assert_msg(rc == 0, "\"%s\": %s", uints[_i].text, cause);
		ck_assert_msg(v == uints[_i].want, "\"%s\": %llu",
		    uints[_i].text, (unsigned long long)v);
	} else {
		ck_assert_msg(rc == -1, "\"%s\" parsed", uints[_i].text);
		ck_assert_str_eq(cause, uints[_i].cause);
		ck_assert_uint_eq(v, 12345);
	}
}
END_TEST

static const struct {
	const char	*text;
	int		 rc;
	int		 want;
} bools[] = {
	{ "yes", 0, 1 }, { "YES", 0, 1 }, { "true", 0, 1 }, { "True", 0, 1 },
	{ "on", 0, 1 }, { "1", 0, 1 },
	{ "no", 0, 0 }, { "No", 0, 0 }, { "false", 0, 0 }, { "OFF", 0, 0 },
	{ "off", 0, 0 }, { "0", 0, 0 },
	{ "", -1, 0 }, { "y", -1, 0 }, { "n", -1, 0 }, { "2", -1, 0 },
	{ "yes ", -1, 0 }, { " no", -1, 0 }, { "enabled", -1, 0 },
	{ "01", -1, 0 },
};

START_TEST(test_parse_bool)
{
	int	v = 7;

	ck_assert_msg(util_parse_bool(bools[_i].text, &v) == bools[_i].rc,
	    "\"%s\"", bools[_i].text);
	ck_assert_int_eq(v, bools[_i].rc == 0 ? bools[_i].want : 7);
}
END_TEST

static const struct {
	uint64_t	 v;
	const char	*want;
} size_forms[] = {
	{ 0, "0" },
	{ 1, "1" },
	{ 1023, "1023" },
	{ 1024, "1K" },
	{ 1536, "1536" },
	{ 1049600, "1025K" },
	{ 26214400, "25M" },
	{ 1073741824ULL, "1G" },
	{ 1099511627776ULL, "1024G" },
	{ 1099511627777ULL, "1099511627777" },
	{ UINT64_MAX, "18446744073709551615" },
};

/* The printed size, and that it reads back to the same value. */
START_TEST(test_format_size)
{
	char		 buf[32];
	const char	*cause;
	uint64_t	 back;

	util_format_size(buf, sizeof buf, size_forms[_i].v);
	ck_assert_str_eq(buf, size_forms[_i].want);
	ck_assert_int_eq(util_parse_size(buf, &back, &cause), 0);
	ck_assert_uint_eq(back, size_forms[_i].v);
}
END_TEST

static const struct {
	uint64_t	 ms;
	const char	*want;
} duration_forms[] = {
	{ 0, "0s" },
	{ 1, "1ms" },
	{ 999, "999ms" },
	{ 1000, "1s" },
	{ 1500, "1500ms" },
	{ 59000, "59s" },
	{ 60000, "1m" },
	{ 90000, "90s" },
	{ 1800000, "30m" },
	{ 3600000, "1h" },
	{ 5400000, "90m" },
	{ 86400000, "1d" },
	{ 604800000, "1w" },
	{ 1209600000, "2w" },
	{ 90061000, "90061s" },
	{ UINT64_MAX, "18446744073709551615ms" },
};

START_TEST(test_format_duration)
{
	char		 buf[32];
	const char	*cause;
	uint64_t	 back;

	util_format_duration(buf, sizeof buf, duration_forms[_i].ms);
	ck_assert_str_eq(buf, duration_forms[_i].want);
	ck_assert_int_eq(util_parse_duration(buf, &back, &cause), 0);
	ck_assert_uint_eq(back, duration_forms[_i].ms);
}
END_TEST

/* A buffer too small is cut and terminated, never overrun. */
START_TEST(test_format_short_buffer)
{
	char	buf[8];
	size_t	n;

	for (n = 1; n < sizeof buf; n++) {
		memset(buf, GUARD, sizeof buf);
		util_format_size(buf, n, 26214400);
		ck_assert_uint_eq(strlen(buf), n - 1 < 3 ? n - 1 : 3);
		ck_assert_int_eq(memcmp(buf, "25M", strlen(buf)), 0);
		ck_assert_int_eq((unsigned char)buf[n], GUARD);

		memset(buf, GUARD, sizeof buf);
		util_format_duration(buf, n, 1500);
		ck_assert_uint_eq(strlen(buf), n - 1 < 6 ? n - 1 : 6);
		ck_assert_int_eq(memcmp(buf, "1500ms", strlen(buf)), 0);
		ck_assert_int_eq((unsigned char)buf[n], GUARD);
	}
}
END_TEST

static const struct {
	const char	*src;
	size_t		 size;
	const char	*want;		/* NULL: dst untouched */
} lcpy[] = {
	{ "hello", 0, NULL },
	{ "hello", 1, "" },
	{ "hello", 2, "h" },
	{ "hello", 5, "hell" },
	{ "hello", 6, "hello" },
	{ "hello", 7, "hello" },
	{ "", 0, NULL },
	{ "", 1, "" },
	{ "", 4, "" },
};

START_TEST(test_strlcpy)
{
	char	buf[16];
	size_t	i;

	memset(buf, GUARD, sizeof buf);
	ck_assert_uint_eq(util_strlcpy(buf, lcpy[_i].src, lcpy[_i].size),
	    strlen(lcpy[_i].src));
	if (lcpy[_i].want != NULL)
		ck_assert_str_eq(buf, lcpy[_i].want);
	for (i = lcpy[_i].want != NULL ? strlen(lcpy[_i].want) + 1 : 0;
	    i < sizeof buf; i++)
		ck_assert_int_eq((unsigned char)buf[i], GUARD);
}
END_TEST

static const struct {
	const char	*dst;
	const char	*src;
	size_t		 size;
	size_t		 ret;
	const char	*want;
} lcat[] = {
	{ "ab", "cd", 8, 4, "abcd" },
	{ "ab", "cd", 5, 4, "abcd" },
	{ "ab", "cd", 4, 4, "abc" },
	{ "ab", "cd", 3, 4, "ab" },
	{ "", "cd", 1, 2, "" },
	{ "", "", 1, 0, "" },
	{ "ab", "", 3, 2, "ab" },
	/* No terminator within size: untouched, size + strlen(src). */
	{ "abcd", "xy", 3, 5, NULL },
	{ "abcd", "xy", 0, 2, NULL },
};

START_TEST(test_strlcat)
{
	char	buf[16];
	size_t	i, len = strlen(lcat[_i].dst);

	memset(buf, GUARD, sizeof buf);
	memcpy(buf, lcat[_i].dst, len + 1);
	ck_assert_uint_eq(util_strlcat(buf, lcat[_i].src, lcat[_i].size),
	    lcat[_i].ret);
	if (lcat[_i].want == NULL) {
		ck_assert_str_eq(buf, lcat[_i].dst);
		i = len + 1;
	} else {
		ck_assert_str_eq(buf, lcat[_i].want);
		i = strlen(lcat[_i].want) + 1;
		if (i < len + 1)
			i = len + 1;
	}
	for (; i < sizeof buf; i++)
		ck_assert_int_eq((unsigned char)buf[i], GUARD);
}
END_TEST

START_TEST(test_snprintf)
{
	char	buf[8];

	memset(buf, GUARD, sizeof buf);
	ck_assert_int_eq(util_snprintf(buf, 6, "%s", "hello"), 5);
	ck_assert_str_eq(buf, "hello");
	ck_assert_int_eq(util_snprintf(buf, 5, "%s", "hello"), -1);
	ck_assert_str_eq(buf, "hell");
	ck_assert_int_eq((unsigned char)buf[6], GUARD);
	ck_assert_int_eq(util_snprintf(buf, 1, "%d", 42), -1);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(util_snprintf(buf, sizeof buf, "%s", ""), 0);
	ck_assert_int_eq(util_snprintf(buf, sizeof buf, "%d-%d", 1, 22), 4);
	ck_assert_str_eq(buf, "1-22");
}
END_TEST

static const struct {
	const char	*in;
	size_t		 len;
	size_t		 want;
} utf8_cases[] = {
	{ "\xc3\xa9", 2, 2 },			/* U+00E9 */
	{ "\xc3\xa9", 1, 0 },			/* cut short */
	{ "\xc2\x80", 2, 2 },			/* U+0080, C1 but well formed */
	{ "\xe2\x82\xac", 3, 3 },		/* U+20AC */
	{ "\xf0\x9f\x98\x80", 4, 4 },		/* U+1F600 */
	{ "\xf0\x9f\x98\x80", 3, 0 },
	{ "\xc0\xaf", 2, 0 },			/* overlong */
	{ "\xe0\x80\xaf", 3, 0 },		/* overlong */
	{ "\xed\xa0\x80", 3, 0 },		/* surrogate */
	{ "\xf4\x90\x80\x80", 4, 0 },		/* above U+10FFFF */
	{ "\xf5\x80\x80\x80", 4, 0 },
	{ "\x80", 1, 0 },			/* lone continuation */
	{ "a", 1, 0 },				/* ASCII is not a sequence */
	{ "\xe2\x82", 4, 0 },			/* NUL stops it */
	{ "\xc3\xa9", 0, 0 },
};

START_TEST(test_utf8_len)
{
	size_t	i;

	for (i = 0; i < nitems(utf8_cases); i++)
		ck_assert_msg(util_utf8_len((const unsigned char *)
		    utf8_cases[i].in, utf8_cases[i].len) == utf8_cases[i].want,
		    "case %zu", i);
}
END_TEST

START_TEST(test_lowercase)
{
	char	buf[] = "MiXeD.Example-123.COM\xc3\x89";

	util_lowercase(buf);
	ck_assert_str_eq(buf, "mixed.example-123.com\xc3\x89");
}
END_TEST

START_TEST(test_alloc)
{
	char	*s, *t;
	int	*a;
	size_t	 i;

	s = xstrdup("abc");
	ck_assert_str_eq(s, "abc");
	free(s);
	s = xstrndup("abcdef", 3);
	ck_assert_str_eq(s, "abc");
	free(s);
	s = xstrndup("ab", 10);
	ck_assert_str_eq(s, "ab");
	free(s);
	ck_assert_int_eq(xasprintf(&t, "%s=%d", "x", 5), 3);
	ck_assert_str_eq(t, "x=5");
	free(t);
	a = xcalloc(4, sizeof *a);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(a[i], 0);
	a = xreallocarray(a, 1000, sizeof *a);
	a[999] = 1;
	free(a);
	free(xmalloc(0));
	free(xcalloc(0, 0));
}
END_TEST

/* An impossible array size is fatal, never a short allocation. */
START_TEST(test_reallocarray_overflow)
{
	(void)xreallocarray(NULL, SIZE_MAX / 2, 4);
}
END_TEST

/* Stops after the first "!" read, keeping it. */
static size_t
stop_at_bang(const char *buf, size_t len)
{
	const char	*p = memchr(buf, '!', len);

	return p != NULL ? (size_t)(p - buf) + 1 : 0;
}

/*
 * A file read whole, cut at max, or as far as stop says, through a
 * buffer grown past its first size; always NUL-terminated.
 */
START_TEST(test_read_fd)
{
	static const struct {
		size_t		 max;
		int		 stop;
		size_t		 want;
	} cases[] = {
		{ 100000, 0, 3 * UTIL_READ_CHUNK + 7 },
		{ 3 * UTIL_READ_CHUNK + 7, 0, 3 * UTIL_READ_CHUNK + 7 },
		{ 3 * UTIL_READ_CHUNK + 8, 0, 3 * UTIL_READ_CHUNK + 7 },
		{ UTIL_READ_CHUNK + 1, 0, UTIL_READ_CHUNK + 1 },
		{ 10, 0, 10 },
		{ 0, 0, 0 },
		{ 100000, 1, 2 * UTIL_READ_CHUNK + 1 },
		{ 20, 1, 20 },
	};
	FILE	*f;
	char	*data, *buf;
	size_t	 i, len, size = 3 * UTIL_READ_CHUNK + 7;

	data = xmalloc(size);
	for (i = 0; i < size; i++)
		data[i] = (char)('a' + i % 26);
	data[2 * UTIL_READ_CHUNK] = '!';
	ck_assert((f = tmpfile()) != NULL);
	ck_assert_uint_eq(fwrite(data, 1, size, f), size);
	fflush(f);
	for (i = 0; i < nitems(cases); i++) {
		ck_assert_int_eq(lseek(fileno(f), 0, SEEK_SET), 0);
		ck_assert_int_eq(util_read_fd(fileno(f), cases[i].max,
		    cases[i].stop ? stop_at_bang : NULL, &buf, &len), 0);
		ck_assert_uint_eq(len, cases[i].want);
		ck_assert(memcmp(buf, data, len) == 0);
		ck_assert_int_eq(buf[len], '\0');
		free(buf);
	}
	fclose(f);
	/* A descriptor that cannot be read: -1, nothing to free. */
	ck_assert_int_eq(util_read_fd(-1, 10, NULL, &buf, &len), -1);
	free(data);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse_size, 0, nitems(sizes));
	tcase_add_loop_test(tc, test_parse_duration, 0, nitems(durations));
	tcase_add_loop_test(tc, test_parse_uint, 0, nitems(uints));
	tcase_add_loop_test(tc, test_parse_bool, 0, nitems(bools));
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_loop_test(tc, test_format_size, 0, nitems(size_forms));
	tcase_add_loop_test(tc, test_format_duration, 0,
	    nitems(duration_forms));
	tcase_add_test(tc, test_format_short_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("strings");
	tcase_add_loop_test(tc, test_strlcpy, 0, nitems(lcpy));
	tcase_add_loop_test(tc, test_strlcat, 0, nitems(lcat));
	tcase_add_test(tc, test_snprintf);
	tcase_add_test(tc, test_lowercase);
	tcase_add_test(tc, test_utf8_len);
	suite_add_tcase(s, tc);

	tc = tcase_create("read");
	tcase_add_test(tc, test_read_fd);
	suite_add_tcase(s, tc);

	tc = tcase_create("alloc");
	tcase_add_test(tc, test_alloc);
	suite_add_tcase(s, tc);

	/* Needs a child process to survive the abort. */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no") != 0) {
		tc = tcase_create("alloc_fatal");
		tcase_add_test_raise_signal(tc, test_reallocarray_overflow,
		    SIGABRT);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(util_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
