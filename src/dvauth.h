/*
 * dvauth.h: SMTP AUTH checked by Dovecot (auth_backend = dovecot).  One
 * connection per daemon to Dovecot's auth client socket, on the loop,
 * made again when lost; the exchanges of every session travel on it side
 * by side, told apart by their ids.  The client's base64 goes to Dovecot
 * as it came and Dovecot's challenges come back the same way, so every
 * mechanism Dovecot offers works without tern knowing it.
 */
#ifndef DVAUTH_H
#define DVAUTH_H

#include <sys/socket.h>

#include <event2/event.h>

#include "dvproto.h"

enum dvauth_result {
	DVAUTH_CONTINUE,	/* a challenge (base64) for the client */
	DVAUTH_OK,		/* authenticated: the user name Dovecot gave */
	DVAUTH_FAIL,		/* refused: the user name, if Dovecot said */
	DVAUTH_TEMP,		/* Dovecot unreachable, lost or failing */
};

/*
 * Told each answer to a request: data is the challenge for
 * DVAUTH_CONTINUE, the user name (or NULL) for DVAUTH_OK and
 * DVAUTH_FAIL; reason is Dovecot's or tern's reason for a failure, for
 * the log, or NULL.  After any result but DVAUTH_CONTINUE the request is
 * gone: the callback must forget it.  Never called from inside
 * dvauth_start(), dvauth_continue() or dvauth_cancel().
 */
typedef void	(*dvauth_cb)(enum dvauth_result, const char *, const char *,
		    void *);

/* What a request tells Dovecot about the client. */
struct dvauth_params {
	const char		*mech;		/* as Dovecot announced it */
	const char		*resp;		/* base64, "" or NULL: none */
	const struct sockaddr	*local;		/* or NULL */
	const struct sockaddr	*remote;
	int			 secured;	/* under TLS */
	const char		*session;	/* for Dovecot's log */
};

struct dvauth_req;

void		 dvauth_init(struct event_base *);
int		 dvauth_set_socket(const char *, char **);
void		 dvauth_shutdown(void);
int		 dvauth_is_ready(void);
void		 dvauth_kick(void);
size_t		 dvauth_mech_count(void);
const char	*dvauth_mech(size_t);
const char	*dvauth_find_mech(const char *);

struct dvauth_req *dvauth_start(const struct dvauth_params *, dvauth_cb,
		    void *);
int		 dvauth_continue(struct dvauth_req *, const char *);
void		 dvauth_cancel(struct dvauth_req *);

#endif
