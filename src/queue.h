/*
 * queue.h: the spool, and the only code that knows its paths.  Messages
 * are received into incoming/, made durable and committed into queue/XX/
 * by one rename, recovered at start-up, then read, rewritten, held and
 * released, and removed by delivery; a tool reads it without the daemon.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct config;
struct event_base;

/* Every queue id has this length, and lives in a buffer of this size. */
#define QUEUE_ID_LEN	ENVELOPE_ID_LEN
#define QUEUE_ID_SIZE	ENVELOPE_ID_SIZE

/*
 * Local submission, below the spool: anyone may drop a file there (it
 * takes the directory's group, the daemon's), nobody else may list or
 * remove one.  Sticky and setgid, writable and searchable by all.
 */
#define QUEUE_MAILDROP		"maildrop"
#define QUEUE_MAILDROP_MODE	03733

/* What else lives at the spool's top, for queue_spool_path(). */
enum queue_spool_entry {
	QUEUE_SPOOL_LOCK,	/* held by the running ternd */
	QUEUE_SPOOL_MAILDROP,	/* local submission, QUEUE_MAILDROP */
	QUEUE_SPOOL_LOG,	/* the daily log files */
	QUEUE_SPOOL_CONTROL	/* the default control socket */
};

int	queue_spool_path(char *, size_t, const char *,
	    enum queue_spool_entry);
int	queue_config_paths(struct config *, char **);

struct queue_msg;
struct queue_commit;
struct queue_rewrite;

/* Called once per commit, from the loop, unless cancelled. */
typedef void	(*queue_commit_cb)(void *, int);
/* Called once per envelope rewrite, from the loop, unless cancelled. */
typedef void	(*queue_rewrite_cb)(void *, int);
/*
 * Called per committed envelope by queue_init() (or, after
 * queue_defer_scan(), queue_scan_start()) and queue_list(), held 1 for
 * one under hold/XX/ and 0 under queue/XX/; may be NULL for
 * queue_init().
 */
typedef void	(*queue_scan_cb)(const struct envelope *, int, void *);

void		 queue_set_sync(int);
void		 queue_defer_scan(void);
int		 queue_init(struct event_base *, const char *, queue_scan_cb,
		    void *, char **);
void		 queue_scan_start(queue_scan_cb, void (*)(void *), void *);
int		 queue_scan_running(void);
void		 queue_scan_stop(void);
void		 queue_shutdown(void);
size_t		 queue_count(void);

void		 queue_id_new(char *, size_t);
int		 queue_is_id(const char *);

/* A new message's files are there (0) or could not be made (errno). */
typedef void	(*queue_ready_cb)(void *, int);

struct queue_msg *queue_msg_new(char *, size_t);
struct queue_msg *queue_msg_start(char *, size_t, queue_ready_cb, void *,
		    int *);
int		 queue_msg_write(struct queue_msg *, const void *, size_t);
int		 queue_msg_rewind(struct queue_msg *);
uint64_t	 queue_msg_size(const struct queue_msg *);
void		 queue_msg_abort(struct queue_msg *);
size_t		 queue_msgs_open(void);
struct queue_commit *queue_msg_commit(struct queue_msg *,
		    const struct envelope *, queue_commit_cb, void *);
void		 queue_commit_cancel(struct queue_commit *);
void		 queue_commit_rebind(struct queue_commit *, queue_commit_cb,
		    void *);

/* For a tool: the read functions below, without lock or recovery. */
int		 queue_open_readonly(const char *, char **);
int		 queue_list(queue_scan_cb, void *, char **);

/* These find held messages too. */
int		 queue_env_load(const char *, struct envelope *, char **);
int		 queue_env_update(const struct envelope *);
struct queue_rewrite *queue_env_rewrite(const struct envelope *,
		    queue_rewrite_cb, void *);
void		 queue_rewrite_cancel(struct queue_rewrite *);
int		 queue_remove(const char *);
int		 queue_retire(const char *);
int		 queue_hold(const char *);
int		 queue_release(const char *);
int		 queue_msg_open(const char *);
int		 queue_msg_still(const char *, int);
int		 queue_msg_headers(const char *, char **, size_t *);
int		 queue_fd_headers(int, char **, size_t *);
int		 queue_msg_read(const char *, size_t, char **, size_t *);

int		 queue_has_room(int, uint64_t, uint64_t);

#endif
