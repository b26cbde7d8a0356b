/*
 * pwcheck.h: password checks beside the loop.  A crypt(3) hash worth
 * storing (yescrypt, SHA-512 crypt) takes tens of milliseconds to check
 * on purpose; the loop hands each check to a small pool of threads and
 * hears the answer through a pipe, so no session waits for another's
 * login.
 */
#ifndef PWCHECK_H
#define PWCHECK_H

struct event_base;
struct pwcheck;

/* Called from the loop with 1 (match) or 0, unless cancelled first. */
typedef void	(*pwcheck_cb)(int, void *);

int		 pwcheck_init(struct event_base *, char **);
void		 pwcheck_shutdown(void);
struct pwcheck	*pwcheck_start(const char *, const char *, pwcheck_cb,
		    void *);
void		 pwcheck_cancel(struct pwcheck *);

#endif
