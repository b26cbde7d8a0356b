/*
 * check_admit.c: the session budget and the stress thresholds.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "admit.h"

#define M	(1024ULL * 1024)

static const struct {
	uint64_t	nofile, configured, memory, outbound, filters;
	uint64_t	sessions, by_fds, messages;
	int		clamped;
} budget_cases[] = {
	/*
	 * Memory bounds: 256M at 8 KiB is 32768 sessions.  The reserve is
	 * 64 + 2 * 30 = 124, the headroom 1048576 / 128 messages at two
	 * descriptors each.
	 */
	{ 1048576, 0, 256 * M, 30, 0, 32768, 1048576 - 124 - 2 * 8192,
	    8192, 0 },
	{ 100000, 0, 256 * M, 30, 0, 32768, 100000 - 124 - 2 * 781, 781, 0 },
	/* Descriptors bound: one a session. */
	{ 20000, 0, 256 * M, 30, 0, 19564, 20000 - 124 - 2 * 156, 156, 0 },
	/* ...and one per content filter besides. */
	{ 20000, 0, 256 * M, 30, 2, 6521, (20000 - 124 - 2 * 156) / 3,
	    156, 0 },
	/* A small limit: headroom of 8 messages at least. */
	{ 200, 0, 256 * M, 30, 0, 60, 200 - 124 - 2 * 8, 8, 0 },
	/* A configured cap below what descriptors allow is kept. */
	{ 20000, 1000, 256 * M, 30, 0, 1000, 19564, 156, 0 },
	/* ...above, it is cut to it. */
	{ 200, 1000, 256 * M, 30, 0, 60, 60, 8, 1 },
	/* Just room for the reserve, the headroom and one session. */
	{ 141, 0, 256 * M, 30, 0, 1, 1, 8, 0 },
	/* Fewer descriptors: one session and one message still. */
	{ 140, 0, 256 * M, 30, 0, 1, 1, 1, 0 },
	{ 50, 0, 256 * M, 30, 0, 1, 1, 1, 0 },
	{ 50, 10, 256 * M, 30, 0, 1, 1, 1, 1 },
	/* More outbound connections, a larger reserve. */
	{ 1000, 0, 256 * M, 100, 0, 720, 1000 - 264 - 2 * 8, 8, 0 },
	{ 1048576, 0, 1 * M, 30, 0, 128, 1048576 - 124 - 2 * 8192, 8192, 0 },
};

START_TEST(test_budget)
{
	struct admit_budget	b;
	size_t			i = (size_t)_i;

	admit_budget(&b, budget_cases[i].nofile, budget_cases[i].configured,
	    budget_cases[i].memory, budget_cases[i].outbound,
	    budget_cases[i].filters);
	ck_assert_uint_eq(b.sessions, budget_cases[i].sessions);
	ck_assert_uint_eq(b.by_fds, budget_cases[i].by_fds);
	ck_assert_uint_eq(b.messages, budget_cases[i].messages);
	ck_assert_int_eq(b.clamped, budget_cases[i].clamped);
	ck_assert_uint_eq(b.nofile, budget_cases[i].nofile);
	ck_assert_uint_le(b.sessions, b.by_fds);
	/* Every session open, the headroom is still there. */
	ck_assert_uint_ge(admit_messages(&b, b.by_fds), b.messages);
}
END_TEST

/* Messages allowed with this many sessions open. */
static const struct {
	uint64_t	nofile, filters, sessions, messages;
} message_cases[] = {
	/* 200 descriptors, reserve 124: what the sessions leave, halved. */
	{ 200, 0, 0, 38 },
	{ 200, 0, 50, 13 },
	{ 200, 0, 59, 8 },
	{ 200, 0, 60, 8 },
	/* Past the budget (max_connections is not clamped below it). */
	{ 200, 0, 70, 8 },
	/* A filter connection per session. */
	{ 200, 1, 10, 28 },
	{ 200, 1, 30, 8 },
	/* Too few descriptors: one. */
	{ 50, 0, 1, 1 },
};

START_TEST(test_messages)
{
	struct admit_budget	b;
	size_t			i = (size_t)_i;

	admit_budget(&b, message_cases[i].nofile, 0, 256 * M, 30,
	    message_cases[i].filters);
	ck_assert_uint_eq(admit_messages(&b, message_cases[i].sessions),
	    message_cases[i].messages);
}
END_TEST

static const struct {
	int		was;
	uint64_t	sessions, budget;
	int		is;
} stress_cases[] = {
	{ 0, 0, 100, 0 },
	{ 0, 80, 100, 0 },	/* 80 % is not above 80 % */
	{ 0, 81, 100, 1 },
	{ 1, 81, 100, 1 },
	{ 1, 70, 100, 1 },	/* stays in down to 70 % */
	{ 1, 69, 100, 0 },
	{ 0, 75, 100, 0 },	/* ...but does not enter there */
	{ 0, 1, 1, 1 },
	{ 1, 0, 1, 0 },
	{ 0, 5, 0, 0 },
	{ 0, 26214, 32768, 0 },
	{ 0, 26215, 32768, 1 },
};

START_TEST(test_stress)
{
	size_t	i = (size_t)_i;

	ck_assert_int_eq(admit_is_stressed(stress_cases[i].was,
	    stress_cases[i].sessions, stress_cases[i].budget),
	    stress_cases[i].is);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("admit");
	TCase	*tc = tcase_create("admit");
	SRunner	*sr;
	int	 failed;

	tcase_add_loop_test(tc, test_budget, 0,
	    (int)(sizeof budget_cases / sizeof budget_cases[0]));
	tcase_add_loop_test(tc, test_messages, 0,
	    (int)(sizeof message_cases / sizeof message_cases[0]));
	tcase_add_loop_test(tc, test_stress, 0,
	    (int)(sizeof stress_cases / sizeof stress_cases[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
