/*
 * pickup.h: the daemon's side of local submission.  It takes the files
 * sendmail left in the spool's maildrop/ directory, checks them as the
 * untrusted input they are, and queues each as a message.  The file
 * format both sides share is maildrop.h's.
 */
#ifndef PICKUP_H
#define PICKUP_H

struct config;
struct envelope;
struct event_base;
struct users;

/* Told of every message queued from the maildrop, once committed. */
typedef void	(*pickup_queued_cb)(const struct envelope *);

int	 pickup_init(struct event_base *, const char *,
	    const struct config *, pickup_queued_cb, char **);
void	 pickup_set_config(const struct config *);
void	 pickup_set_users(const struct users *);
void	 pickup_shutdown(void);

#endif
