/*
 * check_workpool.c: the worker pool.  Every job runs once and completes
 * once on the loop, never inside its submission; without threads the
 * jobs run on the loop; urgent jobs overtake background ones and
 * background jobs leave a thread free; a cancelled job that has not
 * started never runs and completes at once with cancelled set, one that
 * has started completes later with it; shutdown runs what is still
 * waiting and every completion, including jobs submitted by completions.
 */
#include "autoconf.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "workpool.h"

#define NJOBS		200
#define ROUNDS		20000

static struct event_base	*base;

/* One job's record: written by the worker, read on the loop. */
struct rec {
	int		 ran;
	int		 done;
	int		 cancelled;
	pthread_t	 thread;
	int		 order;		/* of its run among all runs */
	struct rec	*chain;		/* submitted by its completion */
};

static pthread_mutex_t	order_lock = PTHREAD_MUTEX_INITIALIZER;
static int		order_next;

/* A gate the blocking jobs wait at until the test opens it. */
static pthread_mutex_t	gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	gate_cond = PTHREAD_COND_INITIALIZER;
static int		gate_open;
static int		gate_waiting;

static void
run_cb(void *arg)
{
	struct rec	*r = arg;

	r->ran++;
	r->thread = pthread_self();
	pthread_mutex_lock(&order_lock);
	r->order = ++order_next;
	pthread_mutex_unlock(&order_lock);
}

/* As run_cb, and then it waits: its order is when it started. */
static void
gated_run_cb(void *arg)
{
	run_cb(arg);
	pthread_mutex_lock(&gate_lock);
	gate_waiting++;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void
done_cb(void *arg, int cancelled)
{
	struct rec	*r = arg;

	r->done++;
	r->cancelled = cancelled;
	if (r->chain != NULL)
		(void)workpool_submit(WORKPOOL_BACKGROUND, run_cb, done_cb,
		    r->chain);
}

static void
gate_set(int open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	if (!open)
		gate_waiting = 0;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

/* Wait (on the workers, not the loop) until n gated jobs are running. */
static void
gate_wait(int n)
{
	pthread_mutex_lock(&gate_lock);
	while (gate_waiting < n)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
}

static void
loop_until_done(struct rec *r, size_t n)
{
	size_t	i, done, rounds;

	for (rounds = 0; rounds < ROUNDS; rounds++) {
		for (done = 0, i = 0; i < n; i++)
			done += r[i].done != 0;
		if (done == n)
			return;
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	}
	ck_abort_msg("jobs not completed");
}

static void
setup(void)
{
	log_init("check_workpool", LOG_TARGET_NONE, 0);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(workpool_init(base, NULL), 0);
	order_next = 0;
	gate_set(0);
}

static void
teardown(void)
{
	workpool_shutdown();
	event_base_free(base);
}

/* 0, 1 and 4 threads: each job runs once, completes once, later. */
START_TEST(test_every_job)
{
	static const size_t	 threads[] = { 0, 1, 4 };
	struct rec		*r;
	pthread_t		 self = pthread_self();
	char			*cause = NULL;
	size_t			 i;

	r = xcalloc(NJOBS, sizeof *r);
	ck_assert_msg(workpool_start(threads[_i], &cause) == 0, "%s", cause);
	ck_assert_uint_eq(workpool_threads(), threads[_i]);
	for (i = 0; i < NJOBS; i++) {
		ck_assert_ptr_nonnull(workpool_submit(i % 2 ?
		    WORKPOOL_URGENT : WORKPOOL_BACKGROUND, run_cb, done_cb,
		    &r[i]));
		ck_assert_int_eq(r[i].done, 0);
	}
	loop_until_done(r, NJOBS);
	for (i = 0; i < NJOBS; i++) {
		ck_assert_int_eq(r[i].ran, 1);
		ck_assert_int_eq(r[i].done, 1);
		ck_assert_int_eq(r[i].cancelled, 0);
		if (threads[_i] == 0)
			ck_assert(pthread_equal(r[i].thread, self));
		else
			ck_assert(!pthread_equal(r[i].thread, self));
	}
	free(r);
}
END_TEST

/*
 * With every thread but one busy on background work, more background
 * work waits and an urgent job still runs at once; once the gate opens,
 * everything runs.
 */
START_TEST(test_urgent_first)
{
	struct rec	 bg[4], urgent;
	char		*cause = NULL;
	size_t		 i;

	memset(bg, 0, sizeof bg);
	memset(&urgent, 0, sizeof urgent);
	ck_assert_msg(workpool_start(3, &cause) == 0, "%s", cause);
	for (i = 0; i < 4; i++)
		(void)workpool_submit(WORKPOOL_BACKGROUND, gated_run_cb,
		    done_cb, &bg[i]);
	gate_wait(2);
	(void)workpool_submit(WORKPOOL_URGENT, run_cb, done_cb, &urgent);
	loop_until_done(&urgent, 1);
	ck_assert_int_eq(urgent.ran, 1);
	/* Two background jobs hold two threads; the others wait. */
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(bg[i].done, 0);
	pthread_mutex_lock(&gate_lock);
	ck_assert_int_eq(gate_waiting, 2);
	pthread_mutex_unlock(&gate_lock);
	gate_set(1);
	loop_until_done(bg, 4);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(bg[i].ran, 1);
	/* Of one class, in the order submitted. */
	ck_assert_int_lt(bg[0].order < bg[1].order ? bg[1].order :
	    bg[0].order, bg[2].order < bg[3].order ? bg[2].order :
	    bg[3].order);
}
END_TEST

/*
 * A job cancelled before any thread took it never runs and completes at
 * once; one cancelled while running completes later, cancelled.
 */
START_TEST(test_cancel)
{
	struct rec		 running, waiting, other;
	struct workpool_job	*jr, *jw;
	char			*cause = NULL;

	memset(&running, 0, sizeof running);
	memset(&waiting, 0, sizeof waiting);
	memset(&other, 0, sizeof other);
	ck_assert_msg(workpool_start(1, &cause) == 0, "%s", cause);
	jr = workpool_submit(WORKPOOL_URGENT, gated_run_cb, done_cb,
	    &running);
	gate_wait(1);
	jw = workpool_submit(WORKPOOL_URGENT, run_cb, done_cb, &waiting);
	(void)workpool_submit(WORKPOOL_URGENT, run_cb, done_cb, &other);
	workpool_cancel(jw);
	ck_assert_int_eq(waiting.done, 1);
	ck_assert_int_eq(waiting.cancelled, 1);
	ck_assert_int_eq(waiting.ran, 0);
	workpool_cancel(jr);
	ck_assert_int_eq(running.done, 0);
	gate_set(1);
	loop_until_done(&running, 1);
	loop_until_done(&other, 1);
	ck_assert_int_eq(running.ran, 1);
	ck_assert_int_eq(running.cancelled, 1);
	ck_assert_int_eq(waiting.ran, 0);
	ck_assert_int_eq(other.ran, 1);
	ck_assert_int_eq(other.cancelled, 0);
}
END_TEST

/* Without threads, a job cancelled before the loop runs never runs. */
START_TEST(test_cancel_inline)
{
	struct rec		 r;
	struct workpool_job	*j;

	memset(&r, 0, sizeof r);
	j = workpool_submit(WORKPOOL_BACKGROUND, run_cb, done_cb, &r);
	workpool_cancel(j);
	ck_assert_int_eq(r.done, 1);
	ck_assert_int_eq(r.cancelled, 1);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.ran, 0);
	ck_assert_int_eq(r.done, 1);
}
END_TEST

/*
 * Shutdown runs every waiting job and every completion, and the jobs
 * completions submit, without the loop.
 */
START_TEST(test_shutdown)
{
	struct rec	 r[NJOBS], chained[NJOBS];
	char		*cause = NULL;
	size_t		 i;

	memset(r, 0, sizeof r);
	memset(chained, 0, sizeof chained);
	ck_assert_msg(workpool_start(_i, &cause) == 0, "%s", cause);
	for (i = 0; i < NJOBS; i++) {
		r[i].chain = &chained[i];
		(void)workpool_submit(WORKPOOL_BACKGROUND, run_cb, done_cb,
		    &r[i]);
	}
	workpool_shutdown();
	for (i = 0; i < NJOBS; i++) {
		ck_assert_int_eq(r[i].ran, 1);
		ck_assert_int_eq(r[i].done, 1);
		ck_assert_int_eq(chained[i].ran, 1);
		ck_assert_int_eq(chained[i].done, 1);
	}
}
END_TEST

static Suite *
workpool_suite(void)
{
	Suite	*s = suite_create("workpool");
	TCase	*tc = tcase_create("jobs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_every_job, 0, 3);
	tcase_add_test(tc, test_urgent_first);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cancel_inline);
	tcase_add_loop_test(tc, test_shutdown, 0, 3);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(workpool_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
