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
struct users;
struct ssl_ctx_st;

/* What a listener is for; decides what a session asks of its client. */
enum smtp_kind {
	SMTP_KIND_MX,		/* port 25: mail to us, relay for some */
	SMTP_KIND_SUBMISSION,	/* port 587: AUTH before MAIL */
	SMTP_KIND_SMTPS,	/* port 465: implicit TLS, AUTH before MAIL */
};

/* Told once when a session has closed, just before it is freed. */
typedef void	(*smtp_session_closed_cb)(struct smtp_session *, void *);

/* Told of every message committed to the queue, before its 250. */
typedef void	(*smtp_session_queued_cb)(const struct envelope *);

void	 smtp_session_init(struct event_base *, const struct config *,
	    smtp_session_queued_cb);
void	 smtp_session_shutdown(void);
/*
 * Asked by ETRN for a domain (and its subdomains when the int is 1):
 * how many messages were made due.
 */
typedef size_t	(*smtp_session_etrn_cb)(const char *, int);

void	 smtp_session_set_config(const struct config *);
void	 smtp_session_set_users(const struct users *);
void	 smtp_session_set_tls(struct ssl_ctx_st *);
void	 smtp_session_set_etrn(smtp_session_etrn_cb);
/*
 * Asked as a message begins (DATA, first BDAT): whether descriptors allow
 * one more to be received now; without it, always.
 */
typedef int	(*smtp_session_admit_cb)(void);
void	 smtp_session_set_admit(smtp_session_admit_cb);
struct smtp_session *smtp_session_new(int, const struct sockaddr *,
	    socklen_t, enum smtp_kind, smtp_session_closed_cb, void *);
void	 smtp_session_drain(struct smtp_session *);
void	 smtp_session_set_stress(int);
void	 smtp_session_stress(struct smtp_session *);
int	 smtp_session_is_silent(const struct smtp_session *);
size_t	 smtp_session_bytes(const struct smtp_session *);
int	 smtp_session_is_served(const struct smtp_session *);
struct sessinfo;
void	 smtp_session_info(const struct smtp_session *, struct sessinfo *);
void	 smtp_session_close(struct smtp_session *, const char *);

#endif
