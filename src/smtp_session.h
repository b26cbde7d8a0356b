/*
 * smtp_session.h: one inbound SMTP session, from greeting to close.
 */
#ifndef SMTP_SESSION_H
#define SMTP_SESSION_H

#include <sys/socket.h>

struct event_base;
struct config;
struct smtp_session;
struct envelope;

/* Told once when a session has closed, just before it is freed. */
typedef void	(*smtp_session_closed_cb)(struct smtp_session *, void *);

/* Told of every message committed to the queue, before its 250. */
typedef void	(*smtp_session_queued_cb)(const struct envelope *);

void	 smtp_session_init(struct event_base *, const struct config *,
	    smtp_session_queued_cb);
void	 smtp_session_set_config(const struct config *);
struct smtp_session *smtp_session_new(int, const struct sockaddr *,
	    socklen_t, smtp_session_closed_cb, void *);
void	 smtp_session_drain(struct smtp_session *);
void	 smtp_session_close(struct smtp_session *, const char *);

#endif
