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
	uint64_t	nofile, configured, memory, outbound;
	uint64_t	sessions, by_fds;
	int		clamped;
} budget_cases[] = {
	/* Memory bounds: 256M at 8 KiB is 32768 sessions. */
	{ 1048576, 0, 256 * M, 30, 32768, (1048576 - 124) / 2, 0 },
	{ 100000, 0, 256 * M, 30, 32768, 49938, 0 },
	/* Descriptors bound: (65536 - 124) / 2. */
	{ 65536, 0, 256 * M, 30, 32706, 32706, 0 },
	/* A small limit: (200 - 124) / 2 = 38. */
	{ 200, 0, 256 * M, 30, 38, 38, 0 },
	/* A configured cap below what descriptors allow is kept. */
	{ 65536, 1000, 256 * M, 30, 1000, 32706, 0 },
	/* ...above, it is cut to it. */
	{ 200, 1000, 256 * M, 30, 38, 38, 1 },
	/* Fewer descriptors than the reserve: one session still. */
	{ 50, 0, 256 * M, 30, 1, 1, 0 },
	{ 50, 10, 256 * M, 30, 1, 1, 1 },
	/* More outbound connections, a larger reserve. */
	{ 1000, 0, 256 * M, 100, 368, 368, 0 },
	{ 1048576, 0, 1 * M, 30, 128, (1048576 - 124) / 2, 0 },
};

START_TEST(test_budget)
{
	struct admit_budget	b;
	size_t			i = (size_t)_i;

	admit_budget(&b, budget_cases[i].nofile, budget_cases[i].configured,
	    budget_cases[i].memory, budget_cases[i].outbound);
	ck_assert_uint_eq(b.sessions, budget_cases[i].sessions);
	ck_assert_uint_eq(b.by_fds, budget_cases[i].by_fds);
	ck_assert_int_eq(b.clamped, budget_cases[i].clamped);
	ck_assert_uint_eq(b.nofile, budget_cases[i].nofile);
	ck_assert_uint_le(b.sessions, b.by_fds);
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
	tcase_add_loop_test(tc, test_stress, 0,
	    (int)(sizeof stress_cases / sizeof stress_cases[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
