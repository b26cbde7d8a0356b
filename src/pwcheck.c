/*
 * pwcheck.c: password checks in a small pool of threads.  A thread sees
 * only its job's copies of the stored secret and the password, never a
 * session or the users table (which a reload may free meanwhile); the
 * answer goes back to the loop through a pipe.  Passwords are wiped as
 * soon as they have been checked.
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
#include "pwcheck.h"
#include "users.h"
#include "util.h"

#define PWCHECK_THREADS	2

/* One check; owned by the pool, the caller holds it until the answer. */
struct pwcheck {
	TAILQ_ENTRY(pwcheck)	 entry;
	char			*stored;
	char			*password;
	int			 result;
	int			 queued;	/* in todo, under lock */
	int			 cancelled;
	pwcheck_cb		 cb;
	void			*arg;
};
TAILQ_HEAD(pwcheck_list, pwcheck);

static struct {
	struct event_base	*base;
	struct event		*done_ev;
	int			 pipe[2];
	pthread_t		 threads[PWCHECK_THREADS];
	size_t			 nthreads;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct pwcheck_list	 todo;		/* under lock */
	struct pwcheck_list	 done;		/* under lock */
	int			 stopping;	/* under lock */
} pw = { .pipe = { -1, -1 }, .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER };

static void
pwcheck_free(struct pwcheck *c)
{
	if (c->password != NULL) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->stored);
	free(c);
}

static void *
pwcheck_thread(void *arg)
{
	struct pwcheck	*c;
	char		 byte = 0;

	pthread_mutex_lock(&pw.lock);
	for (;;) {
		while (!pw.stopping && TAILQ_EMPTY(&pw.todo))
			pthread_cond_wait(&pw.cond, &pw.lock);
		if (pw.stopping)
			break;
		c = TAILQ_FIRST(&pw.todo);
		TAILQ_REMOVE(&pw.todo, c, entry);
		c->queued = 0;
		pthread_mutex_unlock(&pw.lock);

		c->result = users_check_hash(c->stored, c->password);
		explicit_bzero(c->password, strlen(c->password));

		pthread_mutex_lock(&pw.lock);
		TAILQ_INSERT_TAIL(&pw.done, c, entry);
		while (write(pw.pipe[1], &byte, 1) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&pw.lock);
	return NULL;
}

/* The loop side: hand each finished check to its caller. */
static void
pwcheck_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pwcheck_list	 done;
	struct pwcheck		*c;
	char			 buf[64];

	while (read(fd, buf, sizeof buf) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&pw.lock);
	TAILQ_CONCAT(&done, &pw.done, entry);
	pthread_mutex_unlock(&pw.lock);
	while ((c = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, c, entry);
		if (!c->cancelled)
			c->cb(c->result, c->arg);
		pwcheck_free(c);
	}
}

int
pwcheck_init(struct event_base *base, char **cause)
{
	int	error;

	pw.base = base;
	TAILQ_INIT(&pw.todo);
	TAILQ_INIT(&pw.done);
	pw.stopping = 0;
	if (pipe2(pw.pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		xasprintf(cause, "password checks: pipe: %s", strerror(errno));
		return -1;
	}
	pw.done_ev = event_new(base, pw.pipe[0], EV_READ | EV_PERSIST,
	    pwcheck_done_cb, NULL);
	if (pw.done_ev == NULL || event_add(pw.done_ev, NULL) == -1)
		fatalx("pwcheck: event_new");
	for (pw.nthreads = 0; pw.nthreads < PWCHECK_THREADS; pw.nthreads++) {
		error = pthread_create(&pw.threads[pw.nthreads], NULL,
		    pwcheck_thread, NULL);
		if (error != 0) {
			xasprintf(cause, "password checks: pthread_create: %s",
			    strerror(error));
			pwcheck_shutdown();
			return -1;
		}
	}
	return 0;
}

/* Stop the threads; checks not answered yet are dropped. */
void
pwcheck_shutdown(void)
{
	struct pwcheck	*c;
	size_t		 i;

	pthread_mutex_lock(&pw.lock);
	pw.stopping = 1;
	pthread_cond_broadcast(&pw.cond);
	pthread_mutex_unlock(&pw.lock);
	for (i = 0; i < pw.nthreads; i++)
		pthread_join(pw.threads[i], NULL);
	pw.nthreads = 0;
	TAILQ_CONCAT(&pw.todo, &pw.done, entry);
	while ((c = TAILQ_FIRST(&pw.todo)) != NULL) {
		TAILQ_REMOVE(&pw.todo, c, entry);
		pwcheck_free(c);
	}
	if (pw.done_ev != NULL)
		event_free(pw.done_ev);
	pw.done_ev = NULL;
	for (i = 0; i < 2; i++) {
		if (pw.pipe[i] != -1)
			close(pw.pipe[i]);
		pw.pipe[i] = -1;
	}
}

/*
 * Check password against a stored secret (a crypt(3) hash or {PLAIN}).
 * The answer comes later from the loop, never from inside this call.
 */
struct pwcheck *
pwcheck_start(const char *stored, const char *password, pwcheck_cb cb,
    void *arg)
{
	struct pwcheck	*c;

	c = xcalloc(1, sizeof *c);
	c->stored = xstrdup(stored);
	c->password = xstrdup(password);
	c->cb = cb;
	c->arg = arg;
	pthread_mutex_lock(&pw.lock);
	TAILQ_INSERT_TAIL(&pw.todo, c, entry);
	c->queued = 1;
	pthread_cond_signal(&pw.cond);
	pthread_mutex_unlock(&pw.lock);
	return c;
}

/*
 * The caller is going away: its callback will not be called, and a
 * check no thread has taken yet is not made at all.
 */
void
pwcheck_cancel(struct pwcheck *c)
{
	int	queued;

	pthread_mutex_lock(&pw.lock);
	if ((queued = c->queued))
		TAILQ_REMOVE(&pw.todo, c, entry);
	else
		c->cancelled = 1;
	pthread_mutex_unlock(&pw.lock);
	if (queued)
		pwcheck_free(c);
}
