/*
 * mta_session.h: one outbound SMTP connection (RFC 5321, client side).
 * It connects to the first of its addresses that answers, greets with EHLO
 * (HELO when EHLO is refused), upgrades with STARTTLS when offered,
 * authenticates when told to, then runs the transactions its owner hands
 * it one at a time, pipelined when the peer allows, and reports every
 * recipient's outcome.  In its LMTP mode (RFC 2033) it greets with LHLO,
 * never uses TLS or AUTH, and reads one reply per accepted recipient
 * after the final dot.
 */
#ifndef MTA_SESSION_H
#define MTA_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "dlv.h"
#include "dns.h"
#include "envelope.h"

struct event_base;
struct mta_session;

/* How to reach a destination; copied by mta_session_new(). */
struct mta_session_params {
	const char		*helo;		/* our host name */
	const char		*name;		/* destination, for logs */
	const struct dns_target	*targets;	/* in the order to try */
	size_t			 ntargets;
	uint16_t		 port;		/* not for AF_UNIX targets */
	int			 lmtp;		/* speak LMTP, not SMTP */
	int			 starttls;	/* use STARTTLS when offered */
	int			 tls_verify;	/* demand a valid certificate
						   for name; implies TLS */
	const char		*auth_user;	/* AUTH after TLS, or NULL */
	const char		*auth_pass;
	uint64_t		 connect_timeout;	/* ms, per address */
	uint64_t		 reply_timeout;		/* ms, per reply */
	uint64_t		 data_timeout;		/* ms, for the final dot */
};

/*
 * ready: connected and greeted (or done with a transaction); idle, may be
 * given a transaction or told to quit.  done: every recipient of the
 * transaction has an outcome.  closed: the connection is gone (failed to
 * connect, dropped, 421, timed out); the status says why (DLV_TEMP, or
 * DLV_PERM when the peer is ourselves); the session frees itself when the
 * callback returns.  A transaction in flight gets done() before closed();
 * in that done() mta_session_is_closing() is 1 and the session must not
 * be given another transaction.  No callback ever comes from inside
 * mta_session_new() or mta_session_send(), and none after
 * mta_session_quit(), which may be called from any callback: idle, the
 * session says QUIT (waiting at most a second for the reply), otherwise
 * it just drops the connection; either way it frees itself.
 */
struct mta_session_cb {
	void	(*ready)(struct mta_session *, void *);
	void	(*done)(struct mta_session *, struct dlv_tx *, void *);
	void	(*closed)(struct mta_session *, const struct dlv_status *,
		    void *);
};

int		 mta_session_init(char **);
void		 mta_session_shutdown(void);
struct mta_session *mta_session_new(struct event_base *,
		    const struct mta_session_params *,
		    const struct mta_session_cb *, void *);
void		 mta_session_send(struct mta_session *, struct dlv_tx *);
void		 mta_session_quit(struct mta_session *);
void		 mta_session_close(struct mta_session *);
void		 mta_session_free(struct mta_session *);
int		 mta_session_is_closing(const struct mta_session *);
const char	*mta_session_relay(const struct mta_session *);
int		 mta_session_tls(const struct mta_session *);
struct sessinfo;
void		 mta_session_info(const struct mta_session *,
		    struct sessinfo *);

#endif
