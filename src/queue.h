/*
 * queue.h: the spool, and the only code that knows its paths.  Messages
 * are received into incoming/, made durable and committed into queue/XX/
 * by one rename, recovered at start-up.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct event_base;

#define QUEUE_ID_LEN	15

struct queue_msg;
struct queue_commit;

/* Called once per commit, from the loop, unless cancelled. */
typedef void	(*queue_commit_cb)(void *, int);
/* Called per committed envelope by queue_init(); may be NULL. */
typedef void	(*queue_scan_cb)(const struct envelope *, void *);

int		 queue_init(struct event_base *, const char *, queue_scan_cb,
		    void *, char **);
void		 queue_shutdown(void);
size_t		 queue_count(void);

void		 queue_id_new(char *, size_t);
int		 queue_is_id(const char *);

struct queue_msg *queue_msg_new(char *, size_t);
int		 queue_msg_write(struct queue_msg *, const void *, size_t);
uint64_t	 queue_msg_size(const struct queue_msg *);
void		 queue_msg_abort(struct queue_msg *);
struct queue_commit *queue_msg_commit(struct queue_msg *,
		    const struct envelope *, queue_commit_cb, void *);
void		 queue_commit_cancel(struct queue_commit *);

#endif
