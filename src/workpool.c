/*
 * workpool.c: a fixed pool of threads for the blocking work of ternd.
 * Jobs wait in two todo lists, urgent and background; a worker takes the
 * oldest urgent job, else the oldest background one while another thread
 * stays free for urgent work, runs it, puts it on the done list and
 * writes a byte to a pipe the loop watches; the loop then runs each job's
 * completion.  The lists are the only state shared with the workers,
 * under one lock.  A worker never touches loop state,
 * never logs and never calls back; a job's completion never runs before
 * its submission has returned.  Without threads (unit tests, a tool) the
 * jobs run on the loop, one iteration after their submission.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "workpool.h"

#define WORKPOOL_THREADS_MAX	32

enum workpool_state {
	WORKPOOL_QUEUED,		/* in todo */
	WORKPOOL_RUNNING,		/* a worker has it */
	WORKPOOL_DONE,			/* in done, or being completed */
};

/* One job; owned by the pool from submission to completion. */
struct workpool_job {
	TAILQ_ENTRY(workpool_job) entry;
	enum workpool_class	 class;
	workpool_run_cb		 run;
	workpool_done_cb	 done;
	void			*arg;
	enum workpool_state	 state;		/* under lock */
	int			 cancelled;	/* loop only */
};
TAILQ_HEAD(workpool_jobs, workpool_job);

static struct {
	struct event_base	*base;
	struct event		*done_ev;	/* the pipe is readable */
	struct event		*inline_ev;	/* no threads: run on the loop */
	int			 pipe[2];	/* a byte per job done */
	pthread_t		 threads[WORKPOOL_THREADS_MAX];
	size_t			 n;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct workpool_jobs	 todo[2];	/* by class, under lock */
	struct workpool_jobs	 done;		/* under lock */
	size_t			 background;	/* running, under lock */
	int			 stop;		/* under lock */
} pool = { .pipe = { -1, -1 }, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER };

/*
 * The next job a worker may take, under lock: urgent first; background
 * only while it leaves a thread for urgent work, or when stopping.
 */
static struct workpool_job *
workpool_next(void)
{
	struct workpool_job	*j;
	size_t			 max = pool.n > 1 ? pool.n - 1 : 1;

	if ((j = TAILQ_FIRST(&pool.todo[WORKPOOL_URGENT])) != NULL)
		return j;
	if (pool.background < max || pool.stop)
		return TAILQ_FIRST(&pool.todo[WORKPOOL_BACKGROUND]);
	return NULL;
}

static void *
workpool_main(void *arg)
{
	struct workpool_job	*j;
	char			 byte = 0;

	pthread_mutex_lock(&pool.lock);
	for (;;) {
		while ((j = workpool_next()) == NULL && !pool.stop)
			pthread_cond_wait(&pool.cond, &pool.lock);
		/* Stopping: what was submitted still runs, then we go. */
		if (j == NULL)
			break;
		TAILQ_REMOVE(&pool.todo[j->class], j, entry);
		j->state = WORKPOOL_RUNNING;
		if (j->class == WORKPOOL_BACKGROUND)
			pool.background++;
		pthread_mutex_unlock(&pool.lock);

		j->run(j->arg);

		pthread_mutex_lock(&pool.lock);
		j->state = WORKPOOL_DONE;
		if (j->class == WORKPOOL_BACKGROUND) {
			pool.background--;
			pthread_cond_signal(&pool.cond);
		}
		/*
		 * One byte wakes the loop for every job on the list: it
		 * takes the whole list after reading the pipe, so a list
		 * that was not empty has its byte on the way already.
		 */
		if (TAILQ_EMPTY(&pool.done))
			while (write(pool.pipe[1], &byte, 1) == -1 &&
			    errno == EINTR)
				;
		TAILQ_INSERT_TAIL(&pool.done, j, entry);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* The loop side: complete every job the workers finished. */
static void
workpool_complete(void)
{
	struct workpool_jobs	 done;
	struct workpool_job	*j;

	TAILQ_INIT(&done);
	pthread_mutex_lock(&pool.lock);
	TAILQ_CONCAT(&done, &pool.done, entry);
	pthread_mutex_unlock(&pool.lock);
	while ((j = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, j, entry);
		j->done(j->arg, j->cancelled);
		free(j);
	}
}

static void
workpool_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	char	buf[256];

	/* A short read found the pipe empty: no second read to be told. */
	while (read(fd, buf, sizeof buf) == (ssize_t)sizeof buf)
		;
	workpool_complete();
}

/* Without threads: run what is waiting, here, then complete it. */
static void
workpool_inline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct workpool_jobs	 todo;
	struct workpool_job	*j;

	if (pool.n > 0)
		return;			/* the threads took them */
	TAILQ_INIT(&todo);
	pthread_mutex_lock(&pool.lock);
	TAILQ_CONCAT(&todo, &pool.todo[WORKPOOL_URGENT], entry);
	TAILQ_CONCAT(&todo, &pool.todo[WORKPOOL_BACKGROUND], entry);
	TAILQ_FOREACH(j, &todo, entry)
		j->state = WORKPOOL_RUNNING;
	pthread_mutex_unlock(&pool.lock);
	while ((j = TAILQ_FIRST(&todo)) != NULL) {
		TAILQ_REMOVE(&todo, j, entry);
		/* Blocking: no worker threads, so the job runs here. */
		j->run(j->arg);
		j->done(j->arg, j->cancelled);
		free(j);
	}
}

/* Ready to take jobs on base; they run on the loop until started. */
int
workpool_init(struct event_base *base, char **cause)
{
	pool.base = base;
	pool.n = 0;
	pool.stop = 0;
	pool.background = 0;
	TAILQ_INIT(&pool.todo[WORKPOOL_URGENT]);
	TAILQ_INIT(&pool.todo[WORKPOOL_BACKGROUND]);
	TAILQ_INIT(&pool.done);
	if (pipe2(pool.pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		xasprintf(cause, "workers: pipe: %s", strerror(errno));
		return -1;
	}
	pool.done_ev = event_new(base, pool.pipe[0], EV_READ | EV_PERSIST,
	    workpool_pipe_cb, NULL);
	pool.inline_ev = event_new(base, -1, 0, workpool_inline_cb, NULL);
	if (pool.done_ev == NULL || pool.inline_ev == NULL ||
	    event_add(pool.done_ev, NULL) == -1)
		fatalx("workpool: event_new");
	return 0;
}

/*
 * Start n worker threads (at most WORKPOOL_THREADS_MAX).  Jobs submitted
 * before are taken by them.
 */
int
workpool_start(size_t n, char **cause)
{
	int	error;

	if (n > WORKPOOL_THREADS_MAX)
		n = WORKPOOL_THREADS_MAX;
	for (; pool.n < n; pool.n++) {
		error = pthread_create(&pool.threads[pool.n], NULL,
		    workpool_main, NULL);
		if (error != 0) {
			xasprintf(cause, "workers: pthread_create: %s",
			    strerror(error));
			return -1;
		}
	}
	return 0;
}

size_t
workpool_threads(void)
{
	return pool.n;
}

/*
 * Stop: every job submitted and not cancelled still runs (a commit was
 * promised), then every completion runs, here.
 */
void
workpool_shutdown(void)
{
	size_t	i;

	if (pool.base == NULL)
		return;
	pthread_mutex_lock(&pool.lock);
	pool.stop = 1;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	for (i = 0; i < pool.n; i++)
		pthread_join(pool.threads[i], NULL);
	pool.n = 0;
	/* A completion may submit another job: it runs here too. */
	while (!TAILQ_EMPTY(&pool.todo[WORKPOOL_URGENT]) ||
	    !TAILQ_EMPTY(&pool.todo[WORKPOOL_BACKGROUND]) ||
	    !TAILQ_EMPTY(&pool.done)) {
		workpool_inline_cb(-1, 0, NULL);
		workpool_complete();
	}
	event_free(pool.done_ev);
	event_free(pool.inline_ev);
	pool.done_ev = pool.inline_ev = NULL;
	for (i = 0; i < 2; i++) {
		close(pool.pipe[i]);
		pool.pipe[i] = -1;
	}
	pool.base = NULL;
}

/*
 * Run run(arg) on a worker, then done(arg, 0) on the loop, never before
 * this returns.  The handle is good until done has been called.  Jobs of
 * one class start in the order submitted.
 */
struct workpool_job *
workpool_submit(enum workpool_class class, workpool_run_cb run,
    workpool_done_cb done, void *arg)
{
	struct workpool_job	*j;

	if (pool.base == NULL)
		panic("workpool: job submitted without a pool");
	j = xcalloc(1, sizeof *j);
	j->class = class;
	j->run = run;
	j->done = done;
	j->arg = arg;
	j->state = WORKPOOL_QUEUED;
	pthread_mutex_lock(&pool.lock);
	TAILQ_INSERT_TAIL(&pool.todo[class], j, entry);
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	if (pool.n == 0)
		event_active(pool.inline_ev, 0, 0);
	return j;
}

/*
 * The owner gives a job up.  One no worker has taken yet never runs: its
 * done(arg, 1) is called before this returns.  One running or finished
 * completes as usual but with done(arg, 1), so arg stays whole until
 * then.
 */
void
workpool_cancel(struct workpool_job *j)
{
	int	queued;

	pthread_mutex_lock(&pool.lock);
	if ((queued = j->state == WORKPOOL_QUEUED))
		TAILQ_REMOVE(&pool.todo[j->class], j, entry);
	pthread_mutex_unlock(&pool.lock);
	j->cancelled = 1;
	if (queued) {
		j->done(j->arg, 1);
		free(j);
	}
}
