/*
 * pwcheck.h: password checks beside the loop.  A crypt(3) hash worth
 * storing (yescrypt, SHA-512 crypt) takes tens of milliseconds to check
 * on purpose; the loop hands each check to the worker pool (workpool.h)
 * and hears the answer from it, so no session waits for another's login.
 */
#ifndef PWCHECK_H
#define PWCHECK_H

struct pwcheck;

/* Called from the loop with 1 (match) or 0, unless cancelled first. */
typedef void	(*pwcheck_cb)(int, void *);

struct pwcheck	*pwcheck_start(const char *, const char *, pwcheck_cb,
		    void *);
void		 pwcheck_cancel(struct pwcheck *);

#endif
