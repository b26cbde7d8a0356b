/*
 * local.h: delivery of one queued message to one local mailbox, a Maildir
 * (tmp/ new/ cur/), made on first delivery.  The stored file is Unix text
 * that starts with Return-Path and Delivered-To; it appears in new/ whole
 * and synced, or not at all.
 */
#ifndef LOCAL_H
#define LOCAL_H

#include <stddef.h>

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
 * Blocking: writes, syncs and renames one file.  msgfd is the queued
 * message (CRLF line endings), read with pread from offset 0; its offset
 * never moves.  On failure err holds one line for logs and bounces
 * ("maildir /x/new: No space left on device"); on success it is empty.
 */
enum local_result local_deliver(const struct local_params *, int, char *,
		    size_t);

#endif
