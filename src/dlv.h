/*
 * dlv.h: deliveries, what every kind is handed and what it reports.  One
 * message to some recipients (a transaction), and the outcome of each
 * recipient: the same types for a next hop over SMTP or LMTP
 * (mta_session.c) and for a Maildir (local.c), so the queue manager
 * reads one outcome type whatever made it.  Pure logic: the rules that
 * turn an outcome into the recipient's state (sent, deferred, failed
 * after the last try), which reports the sender is owed and when the
 * gateway takes over, with the time passed in, so the unit tests check
 * them without a loop.
 */
#ifndef DLV_H
#define DLV_H

#include <stddef.h>
#include <stdint.h>

#include <time.h>

#include "envelope.h"

struct config;

enum dlv_result {
	DLV_NONE,		/* no outcome yet */
	DLV_OK,			/* delivered, or accepted by the peer */
	DLV_TEMP,		/* try again later */
	DLV_PERM,		/* failed for good */
};

#define DLV_STATUS_SIZE	16
#define DLV_TEXT_SIZE	600
#define DLV_RELAY_SIZE	(256 + 64)	/* host name, [address]:port */

#define DLV_RELAY_NONE	"none"		/* no connection was made */
#define DLV_RELAY_LOCAL	"local"		/* a Maildir here */

/*
 * An outcome: the enhanced status ("2.0.0", "4.4.1", "5.1.1") and a
 * one-line text for logs and bounces, either what the peer said
 * ("mx.example[192.0.2.1] said: 550 5.1.1 No such user (in reply to RCPT
 * TO command)") or our own reason ("connect to mx.example[192.0.2.1]:25:
 * Connection refused").  Text a peer sent is made printable ASCII.  reply
 * holds the peer's reply alone, for a bounce's Diagnostic-Code.
 */
struct dlv_status {
	enum dlv_result	 result;
	char		 status[DLV_STATUS_SIZE];
	char		 text[DLV_TEXT_SIZE];
	char		 reply[DLV_TEXT_SIZE];	/* "550 5.1.1 ...", or "" */
};

/*
 * One recipient of a transaction and its outcome; addr and orcpt are
 * owned by the caller.  notify and orcpt go to a peer that offers DSN
 * (RFC 3461); dsn says, once the transaction is done, whether they went,
 * so that the peer, not we, reports on the recipient from then on.
 * relay says where it went: "host[ip]:port", DLV_RELAY_NONE or
 * DLV_RELAY_LOCAL.
 */
struct dlv_rcpt {
	const char		*addr;
	int			 notify;	/* ENVELOPE_NOTIFY_*, 0: none */
	const char		*orcpt;		/* "rfc822;a@b", or NULL */
	struct dlv_status	 st;
	char			 relay[DLV_RELAY_SIZE];
	int			 dsn;		/* the peer took DSN */
	int			 tls;		/* sent over TLS */
	int			 final;		/* delivered to its mailbox
						   (LMTP), not relayed */
	int			 gateway;	/* to the gateway (mta.c) */
};

/* One message to some recipients; everything owned by the caller. */
struct dlv_tx {
	const char	*sender;	/* "" for the null reverse path */
	int		 msgfd;		/* the content, read from offset 0 */
	uint64_t	 size;		/* octets in msgfd */
	int		 body_8bit;	/* BODY=8BITMIME */
	int		 smtputf8;	/* needs SMTPUTF8 */
	enum envelope_ret ret;		/* RET=, for a peer with DSN */
	const char	*envid;		/* ENVID= decoded, or NULL */
	struct dlv_rcpt	*rcpts;
	size_t		 nrcpts;
};

/* What an outcome makes of a recipient at this attempt. */
enum dlv_verdict {
	DLV_SENT,		/* done */
	DLV_DEFERRED,		/* still pending, tried again later */
	DLV_BOUNCED,		/* to be returned to the sender */
};

void	 dlv_status_fill(struct dlv_status *, enum dlv_result, const char *,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
enum dlv_verdict dlv_apply(struct envelope_rcpt *, const struct dlv_rcpt *,
	    unsigned, uint64_t);
const char *dlv_verdict_str(enum dlv_verdict);
int	 dlv_history_tls(const struct dlv_rcpt *);
int	 dlv_success_notice(const struct dlv_rcpt *, int);
int	 dlv_delay_notice(const struct envelope_rcpt *, time_t, uint64_t,
	    time_t);
int	 dlv_failure_notice(const struct envelope_rcpt *);
time_t	 dlv_retry_until(unsigned, uint64_t, uint64_t, time_t);
int	 dlv_use_gateway(const struct config *, unsigned);

#endif
