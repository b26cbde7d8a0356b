/*
 * milter.h: a chain of content filters speaking the Sendmail milter
 * protocol, version 6 (libmilter, rspamd, Postfix), for one SMTP session
 * or one local submission.  Every filter of the list gets its own
 * connection, opened by milter_chain_connect() and closed by
 * milter_chain_free(); steps go through the filters in list order.
 *
 * Each step (connect, HELO, MAIL, RCPT, DATA, the message) completes
 * later, on the loop, through its callback with the chain's verdict;
 * never before the call returns, at most once, and never after
 * milter_chain_free().  One step at a time per chain.
 *
 * A caller runs, waiting for each callback: milter_chain_new(), macros,
 * milter_chain_connect(), milter_chain_helo() (optional), then per
 * message milter_chain_mail(), milter_chain_rcpt() for each recipient,
 * milter_chain_data(), milter_chain_message(); it applies the changes
 * (milter_edit_envelope(), then milter_edit_message() into the spool),
 * commits, and calls milter_chain_abort() once the message is over
 * however it ended; milter_chain_free() at the end.
 *
 * A filter that cannot be reached, times out, closes or answers garbage
 * gets the configured default action: tempfail or reject (the step's
 * verdict), accept (the filter is left out for the rest of the session),
 * or quarantine (as accept, and the message goes on hold).
 */
#ifndef MILTER_H
#define MILTER_H

#include <stddef.h>
#include <stdint.h>

#include "milter_edit.h"

struct config;
struct event_base;
struct milter_chain;

/* Which filter list of the configuration a chain runs. */
enum milter_list {
	MILTER_LIST_SMTPD,		/* smtpd_milters: SMTP sessions */
	MILTER_LIST_NON_SMTPD,		/* non_smtpd_milters: local mail */
};

enum milter_verdict {
	MILTER_CONTINUE,	/* the step passed every filter (a filter
				   that accepts leaves the rest of the
				   message, or of the session at connect
				   and HELO, to the others) */
	MILTER_ACCEPT,		/* reserved: a chain reports CONTINUE */
	MILTER_REJECT,		/* refused for good: reply has a 5xx */
	MILTER_TEMPFAIL,	/* refused for now: reply has a 4xx */
	MILTER_DISCARD,		/* accept the message and drop it */
	MILTER_QUARANTINE,	/* accept the message into the hold queue
				   (end of message only), reason set */
};

#define MILTER_REPLY_SIZE	4096
#define MILTER_REASON_SIZE	512
#define MILTER_NAME_SIZE	256

/*
 * The verdict of a step.  For MILTER_REJECT and MILTER_TEMPFAIL, smtp
 * is the whole reply for the client, each line ending in CRLF (the
 * filter's own, multi-line too, or a default one such as "550 5.7.1
 * Command rejected"), and code, esc and text repeat its last line for
 * logs.  filter names the filter that decided ("" when none did).
 */
struct milter_reply {
	enum milter_verdict	 verdict;
	int			 code;		/* 0 unless refused */
	char			 esc[16];	/* "5.7.1" or "" */
	char			 text[MILTER_REPLY_SIZE];
	char			 smtp[MILTER_REPLY_SIZE];
	char			 reason[MILTER_REASON_SIZE];
	char			 filter[MILTER_NAME_SIZE];
};

/* The end of a step; the reply lives only during the call. */
typedef void	(*milter_cb)(const struct milter_reply *, void *);

/*
 * The client as filters see it at connect.  addr NULL: a local
 * submission (sent as family unknown, or Postfix's "localhost"
 * 127.0.0.1 when the caller gives that).  name is the host name,
 * "unknown" when none, or "[addr]".
 */
struct milter_client {
	const char	*name;
	const char	*addr;		/* "192.0.2.1", "2001:db8::1", NULL */
	uint16_t	 port;
};

/*
 * A chain for the list, with the timeouts and default action of the
 * configuration (copied: a reload does not touch a running chain), or
 * NULL when the list is empty.  log_id is put on log lines ("session
 * ID" or a queue id); it is copied.
 */
struct milter_chain *milter_chain_new(struct event_base *,
	    const struct config *, enum milter_list, const char *);
void	 milter_chain_free(struct milter_chain *);

/*
 * Set (or with NULL, remove) a macro, by its name as filters spell it:
 * "j", "{client_addr}".
 * Before each step the chain sends the macros Postfix sends at that
 * step, with their current values:
 *   connect: j _ {daemon_name} {daemon_addr} {client_addr}
 *            {client_name} {client_port} {client_ptr} {if_addr}
 *            {if_name} v
 *   HELO:    {tls_version} {cipher} {cipher_bits} {cert_subject}
 *            {cert_issuer}
 *   MAIL:    i {auth_type} {auth_authen} {auth_author} {mail_addr}
 *            {mail_host} {mail_mailer}
 *   RCPT:    i {rcpt_addr} {rcpt_host} {rcpt_mailer}
 *   DATA, end of headers, end of message: i
 * The chain itself sets {mail_addr} and {rcpt_addr} from MAIL and RCPT.
 */
void	 milter_chain_macro(struct milter_chain *, const char *,
	    const char *);

/* The steps.  ESMTP parameters are one string ("SIZE=10 BODY=8BITMIME"). */
void	 milter_chain_connect(struct milter_chain *,
	    const struct milter_client *, milter_cb, void *);
void	 milter_chain_helo(struct milter_chain *, const char *, milter_cb,
	    void *);
void	 milter_chain_mail(struct milter_chain *, const char *,
	    const char *, milter_cb, void *);
void	 milter_chain_rcpt(struct milter_chain *, const char *,
	    const char *, milter_cb, void *);
void	 milter_chain_data(struct milter_chain *, milter_cb, void *);

/*
 * The message, header section and body with CRLF line ends, as the
 * client sent it (without the Received field of our own): each filter
 * in turn gets its header fields, end of headers, body in chunks and end
 * of message.  The buffer must stay unchanged until the callback.  At
 * MILTER_CONTINUE, MILTER_ACCEPT or MILTER_QUARANTINE, the changes the
 * filters asked for are in milter_chain_mods(), to be applied with
 * milter_edit_message() and milter_edit_envelope() before the message
 * is committed.
 */
void	 milter_chain_message(struct milter_chain *, const char *, size_t,
	    milter_cb, void *);
const struct milter_mods *milter_chain_mods(const struct milter_chain *);

/*
 * The message is over (RSET, refused, committed or dropped): filters
 * that took part are told, the changes are forgotten, and the next
 * step may be MAIL.  Cancels a step in progress.
 */
void	 milter_chain_abort(struct milter_chain *);

const char *milter_verdict_str(enum milter_verdict);

#endif
