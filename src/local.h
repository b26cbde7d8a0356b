/*
 * local.h: delivery of one queued message to one local mailbox, a Maildir
 * (tmp/ new/ cur/), made on first delivery.  The stored file is Unix text
 * that starts with Return-Path and Delivered-To; it appears in new/ whole
 * and synced, or not at all.
 */
#ifndef LOCAL_H
#define LOCAL_H

#include <stddef.h>

#include "dlv.h"

enum local_result {
	LOCAL_OK = 0,
	LOCAL_TEMP = -1,	/* the environment: try again later */
	LOCAL_PERM = -2,	/* the maildir path is not a directory */
};

/* What one delivery needs; owned by the caller, only read. */
struct local_params {
	const char	*maildir;	/* absolute path of the Maildir */
	const char	*return_path;	/* sender, "" for the null sender */
	const char	*delivered_to;	/* the final recipient address */
	const char	*hostname;	/* for the unique name */
};

/* Enough for any reason local_deliver gives, paths included. */
#define LOCAL_ERR_SIZE	512

/*
 * Blocking, for a worker: writes, syncs and renames one file.  msgfd is
 * the queued message (CRLF line endings), read with pread from offset 0;
 * its offset never moves.  On failure err holds one line for logs and bounces
 * ("maildir /x/new: No space left on device"); on success it is empty.
 */
enum local_result local_deliver(const struct local_params *, int, char *,
		    size_t);

/*
 * The deliveries of one message to its local mailboxes, made one after
 * the other on a worker thread (workpool.h).  The job holds copies of
 * everything it needs and a descriptor of its own for the message, so
 * the caller may change or free its own state meanwhile.  Built with
 * local_job_new() and local_job_add(), handed over by local_job_start();
 * the callback then runs from the loop, never before local_job_start()
 * returns, reads the outcomes with local_job_outcome(), and the job is
 * freed after it returns.  local_job_cancel() drops the callback.
 */
struct local_job;
typedef void	(*local_job_cb)(struct local_job *, void *);

struct local_job *local_job_new(int, const char *, const char *);
void		 local_job_add(struct local_job *, const char *, const char *);
size_t		 local_job_count(const struct local_job *);
void		 local_job_start(struct local_job *, local_job_cb, void *);
void		 local_job_cancel(struct local_job *);
void		 local_job_outcome(const struct local_job *, size_t,
		    struct dlv_rcpt *);

#endif
