/*
 * pwcheck.c: password checks on the worker pool.  A worker sees only its
 * job's copies of the stored secret and the password, never a session or
 * the users table (which a reload may free meanwhile); the answer comes
 * back to the loop with the job's completion.  Passwords are wiped as
 * soon as they have been checked.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "pwcheck.h"
#include "users.h"
#include "util.h"
#include "workpool.h"

/* One check; owned by this module until its completion has run. */
struct pwcheck {
	struct workpool_job	*job;
	char			*stored;
	char			*password;
	int			 result;	/* the worker's */
	pwcheck_cb		 cb;
	void			*arg;
};

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

/* On a worker: the slow hash. */
static void
pwcheck_run(void *arg)
{
	struct pwcheck	*c = arg;

	c->result = users_check_hash(c->stored, c->password);
	explicit_bzero(c->password, strlen(c->password));
}

/* On the loop: the answer to its caller, unless it went away. */
static void
pwcheck_done(void *arg, int cancelled)
{
	struct pwcheck	*c = arg;

	if (!cancelled)
		c->cb(c->result, c->arg);
	pwcheck_free(c);
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
	c->job = workpool_submit(WORKPOOL_URGENT, pwcheck_run, pwcheck_done,
	    c);
	return c;
}

/*
 * The caller is going away: its callback will not be called, and a
 * check no worker has taken yet is not made at all.
 */
void
pwcheck_cancel(struct pwcheck *c)
{
	workpool_cancel(c->job);
}
