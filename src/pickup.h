/*
 * pickup.h: the daemon's side of local submission.  It takes the files
 * sendmail left in the spool's maildrop/ directory, checks them as the
 * untrusted input they are, and queues each as a message.  The file
 * format both sides share is described in pickup.c.
 */
#ifndef PICKUP_H
#define PICKUP_H

struct config;
struct envelope;
struct event_base;
struct users;

/* The first line of a maildrop file: its format and version. */
#define PICKUP_MAGIC		"TERN-MAILDROP 1"
/* Octets of the header block, through its empty line, at most. */
#define PICKUP_HDR_MAX		(1024 * 1024)
/* Recipients of one maildrop file, at most. */
#define PICKUP_RCPTS_MAX	10000
/* Octets of one content line, CRLF included (RFC 5321 4.5.3.1.6). */
#define PICKUP_LINE_MAX		1000

/* Told of every message queued from the maildrop, once committed. */
typedef void	(*pickup_queued_cb)(const struct envelope *);

int	 pickup_init(struct event_base *, const char *,
	    const struct config *, pickup_queued_cb, char **);
void	 pickup_set_config(const struct config *);
void	 pickup_set_users(const struct users *);
void	 pickup_shutdown(void);

#endif
