/*
 * check_metrics.c: the counters and their Prometheus text: every family
 * has its HELP and TYPE lines before its samples, histogram buckets are
 * cumulative and end with +Inf equal to the count, and the values are
 * those counted.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static char *
render(const struct metrics_gauges *g)
{
	struct util_buf	b;

	memset(&b, 0, sizeof b);
	metrics_format(&b, &metrics, g);
	ck_assert_ptr_nonnull(b.data);
	return b.data;
}

/* The value of the sample whose line starts with "name " exactly. */
static double
sample(const char *text, const char *name)
{
	const char	*p = text;
	size_t		 len = strlen(name);

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == ' ')
			return strtod(p + len + 1, NULL);
		p += len;
	}
	ck_abort_msg("no sample %s", name);
	return -1;
}

START_TEST(test_counters)
{
	struct metrics_gauges	 g;
	char			*t;

	memset(&metrics, 0, sizeof metrics);
	memset(&g, 0, sizeof g);
	metrics.sessions = 7;
	metrics.received = 3;
	metrics_refused(METRICS_REFUSED_BUDGET);
	metrics_refused(METRICS_REFUSED_BUDGET);
	metrics_refused(METRICS_REFUSED_MAX);	/* ignored */
	metrics_rejected(METRICS_REJECT_RELAY);
	metrics_rejected(METRICS_REJECT_MAX);	/* counted as other */
	metrics_delivery(METRICS_SENT, METRICS_GATEWAY);
	metrics_delivery(METRICS_DEFERRED, METRICS_REMOTE);
	metrics_delivery(METRICS_DEFERRED, METRICS_REMOTE);
	g.inbound = 2;
	g.outbound = 1;
	g.queue_active = 4;
	g.queue_deferred = 5;
	g.queue_hold = 6;
	g.oldest_age = 12.5;
	g.session_budget = 100;
	g.stress = 1;
	t = render(&g);
	ck_assert_double_eq(sample(t, "tern_sessions_accepted_total"), 7);
	ck_assert_double_eq(sample(t, "tern_messages_received_total"), 3);
	ck_assert_double_eq(sample(t,
	    "tern_sessions_refused_total{reason=\"session_budget\"}"), 2);
	ck_assert_double_eq(sample(t,
	    "tern_sessions_refused_total{reason=\"client_rate\"}"), 0);
	ck_assert_double_eq(sample(t,
	    "tern_messages_rejected_total{reason=\"relay_denied\"}"), 1);
	ck_assert_double_eq(sample(t,
	    "tern_messages_rejected_total{reason=\"other\"}"), 1);
	ck_assert_double_eq(sample(t, "tern_deliveries_total{status=\"sent\","
	    "destination=\"gateway\"}"), 1);
	ck_assert_double_eq(sample(t, "tern_deliveries_total{status="
	    "\"deferred\",destination=\"remote\"}"), 2);
	ck_assert_double_eq(sample(t, "tern_deliveries_total{status="
	    "\"bounced\",destination=\"local\"}"), 0);
	ck_assert_double_eq(sample(t,
	    "tern_sessions{direction=\"inbound\"}"), 2);
	ck_assert_double_eq(sample(t,
	    "tern_sessions{direction=\"outbound\"}"), 1);
	ck_assert_double_eq(sample(t,
	    "tern_queue_messages{state=\"hold\"}"), 6);
	ck_assert_double_eq(sample(t,
	    "tern_queue_oldest_message_age_seconds"), 12.5);
	ck_assert_double_eq(sample(t, "tern_session_budget"), 100);
	ck_assert_double_eq(sample(t, "tern_stress"), 1);
	free(t);
}
END_TEST

START_TEST(test_histogram)
{
	struct metrics_gauges	 g;
	char			*t;

	memset(&metrics, 0, sizeof metrics);
	memset(&g, 0, sizeof g);
	metrics_observe(METRICS_HIST_COMMIT, 0.0005);
	metrics_observe(METRICS_HIST_COMMIT, 0.001);	/* le is inclusive */
	metrics_observe(METRICS_HIST_COMMIT, 0.02);
	metrics_observe(METRICS_HIST_COMMIT, 60);	/* +Inf only */
	metrics_observe(METRICS_HIST_COMMIT, -1);	/* as 0 */
	metrics_observe(METRICS_HIST_MAX, 1);		/* ignored */
	t = render(&g);
	ck_assert_double_eq(sample(t,
	    "tern_commit_duration_seconds_bucket{le=\"0.001\"}"), 3);
	ck_assert_double_eq(sample(t,
	    "tern_commit_duration_seconds_bucket{le=\"0.01\"}"), 3);
	ck_assert_double_eq(sample(t,
	    "tern_commit_duration_seconds_bucket{le=\"0.025\"}"), 4);
	ck_assert_double_eq(sample(t,
	    "tern_commit_duration_seconds_bucket{le=\"10\"}"), 4);
	ck_assert_double_eq(sample(t,
	    "tern_commit_duration_seconds_bucket{le=\"+Inf\"}"), 5);
	ck_assert_double_eq(sample(t, "tern_commit_duration_seconds_count"),
	    5);
	ck_assert_double_eq_tol(sample(t, "tern_commit_duration_seconds_sum"),
	    60.0215, 1e-6);
	ck_assert_double_eq(sample(t,
	    "tern_loop_lag_seconds_bucket{le=\"+Inf\"}"), 0);
	free(t);
}
END_TEST

/* Every sample's family was declared just before, with HELP then TYPE. */
START_TEST(test_layout)
{
	struct metrics_gauges	 g;
	char			*t, *line, *save = NULL, family[128];
	char			 help[128] = "", type[128] = "", kind[32] = "";
	size_t			 len, samples = 0;

	memset(&metrics, 0, sizeof metrics);
	memset(&g, 0, sizeof g);
	t = render(&g);
	ck_assert_int_eq(t[strlen(t) - 1], '\n');
	for (line = strtok_r(t, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			ck_assert_int_eq(sscanf(line + 7, "%127s", help), 1);
			type[0] = '\0';
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			ck_assert_int_eq(sscanf(line + 7, "%127s %31s", type,
			    kind), 2);
			ck_assert_str_eq(type, help);
			ck_assert_int_eq(strncmp(type, "tern_", 5), 0);
			if (strcmp(kind, "counter") == 0)
				ck_assert_str_eq(type + strlen(type) - 6,
				    "_total");
			continue;
		}
		len = strcspn(line, "{ ");
		ck_assert_uint_lt(len, sizeof family);
		memcpy(family, line, len);
		family[len] = '\0';
		ck_assert_msg(type[0] != '\0', "sample before TYPE: %s", line);
		if (strcmp(kind, "histogram") == 0)
			ck_assert_msg(strncmp(family, type, strlen(type)) == 0,
			    "%s outside %s", family, type);
		else
			ck_assert_str_eq(family, type);
		samples++;
	}
	ck_assert_uint_gt(samples, 40);
	free(t);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("metrics");
	TCase	*tc = tcase_create("metrics");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, test_counters);
	tcase_add_test(tc, test_histogram);
	tcase_add_test(tc, test_layout);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
