/*
 * workpool.h: the one pool of worker threads that runs every blocking job
 * of ternd (spool syncs, envelope rewrites, Maildir deliveries, password
 * checks).  A job is a function run on a worker and a completion run on
 * the loop; the worker sees only what the job was handed.
 */
#ifndef WORKPOOL_H
#define WORKPOOL_H

#include <stddef.h>

struct event_base;
struct workpool_job;

/*
 * Who waits for a job.  Urgent jobs (a client waits: commits, password
 * checks) go before background ones (deliveries, envelope rewrites),
 * and background jobs never take the last free thread.
 */
enum workpool_class {
	WORKPOOL_URGENT,
	WORKPOOL_BACKGROUND,
};

/* Runs on a worker thread: touches only what arg holds, never logs. */
typedef void	(*workpool_run_cb)(void *);
/*
 * Runs on the loop once the job is over, cancelled 1 when its owner gave
 * it up (the job may then not have run): the place to free arg.
 */
typedef void	(*workpool_done_cb)(void *, int);

int		 workpool_init(struct event_base *, char **);
int		 workpool_start(size_t, char **);
void		 workpool_shutdown(void);
size_t		 workpool_threads(void);

struct workpool_job *workpool_submit(enum workpool_class, workpool_run_cb,
		    workpool_done_cb, void *);
void		 workpool_cancel(struct workpool_job *);

#endif
