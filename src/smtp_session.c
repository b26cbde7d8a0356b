/*
 * smtp_session.c: one inbound SMTP session.  It owns its bufferevent, its
 * transaction (MAIL to the end of DATA) and the message being received,
 * and answers every command from one reply table.  The bytes it reads are
 * parsed by smtp_parse.c and addr.c; it never blocks the loop except for
 * spool writes, and it answers 250 to DATA (or to the last BDAT chunk)
 * only after the spool reports the message committed.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "anvil.h"
#include "config.h"
#include "envelope.h"
#include "hdrscan.h"
#include "log.h"
#include "metrics.h"
#include "sessinfo.h"
#include "direct.h"
#include "dvauth.h"
#include "milter.h"
#include "pwcheck.h"
#include "queue.h"
#include "sasl.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "tls.h"
#include "trace.h"
#include "users.h"
#include "util.h"

/* Stop reading while this much output waits for a client to take it. */
#define SMTP_OUTPUT_HIWAT	(64 * 1024)
/* Stop reading while this much input waits to be processed. */
#define SMTP_INPUT_HIWAT	(256 * 1024)
/* DATA is fed to the dot machine in chunks of at most this. */
#define SMTP_DATA_CHUNK		16384
/* A line of an AUTH exchange may be longer than a command (RFC 4954). */
#define SMTP_AUTH_LINE_MAX	2048

enum smtp_state {
	SMTP_STATE_CMD,		/* waiting for a command */
	SMTP_STATE_DATA,	/* receiving message data */
	SMTP_STATE_BDAT,	/* receiving the octets of a BDAT chunk */
	SMTP_STATE_COMMIT,	/* waiting for the spool to commit */
	SMTP_STATE_CLOSING,	/* flushing the last reply */
	SMTP_STATE_TLS,		/* STARTTLS said: flushing, then handshake */
	SMTP_STATE_AUTH,	/* waiting for the client's next SASL line */
	SMTP_STATE_AUTH_CHECK,	/* checking credentials, or slowing down */
	SMTP_STATE_MILTER,	/* waiting for the content filters */
	SMTP_STATE_SPOOL,	/* waiting for the message's spool files */
};

/* Session flags. */
#define SMTP_F_HELO		0x01	/* HELO or EHLO seen */
#define SMTP_F_EHLO		0x02	/* it was EHLO */
#define SMTP_F_QUIT		0x04	/* close once output is flushed */
#define SMTP_F_PAUSED		0x08	/* reading stopped for backpressure */
#define SMTP_F_DRAIN		0x10	/* daemon stopping: no new work */
#define SMTP_F_DISCARD		0x20	/* inside an overlong command line */
#define SMTP_F_TLS		0x40	/* the session is under TLS */
#define SMTP_F_STARTTLS		0x80	/* 220 to STARTTLS not flushed yet */
#define SMTP_F_LINE		0x100	/* a command line has begun */
#define SMTP_F_SERVED		0x200	/* a command other than QUIT seen */

/* Why a transaction's data will not be queued. */
enum smtp_tx_error {
	SMTP_TX_OK,
	SMTP_TX_TOO_BIG,
	SMTP_TX_WRITE,
	SMTP_TX_NO_ROOM,
};

/* The parameters of the RCPT command being run. */
struct smtp_rcpt_params {
	int	 notify;
	char	*orcpt;			/* "rfc822;a@b", decoded; heap */
};

/* One transaction, MAIL to the end of DATA; owned by its session. */
struct smtp_tx {
	struct smtp_rcpt_params	 rcpt;
	struct envelope		 env;
	struct queue_msg	*msg;
	struct queue_commit	*commit;
	struct smtp_data	 dot;
	uint64_t		 size;
	uint64_t		 declared;	/* MAIL's SIZE=, or 0 */
	enum smtp_tx_error	 error;
	char			 id[ENVELOPE_ID_SIZE];
	struct hdrscan		 hs;		/* Date, Message-ID seen */
	int			 add_hdrs;	/* add them when missing */
	struct evbuffer		*mcopy;		/* the message, for filters */
	int			 discard;	/* a filter said discard */
	int			 hold;		/* a filter said quarantine */
	size_t			 mrcpts;	/* recipients before RCPT */
	char			 mrcpt[ADDR_PATH_SIZE];	/* its address */
	int			 bdat;		/* a BDAT chunk was taken */
};

/* An AUTH exchange in progress; owned by its session. */
struct smtp_auth {
	struct sasl		 sasl;
	struct pwcheck		*check;		/* a password being checked */
	int			 doomed;	/* ...only to take the time */
	struct event		*delay;		/* slowing down a failure */
	/* auth_backend = dovecot: the exchange is Dovecot's. */
	int			 dovecot;
	struct dvauth_req	*dv;		/* NULL once answered */
	char			 mech[DVPROTO_MECH_SIZE];
};

/* One client connection; owned by the server through closed_cb. */
struct smtp_session {
	struct bufferevent	*bev;
	enum smtp_state		 state;
	enum smtp_kind		 kind;
	int			 flags;
	unsigned		 errors;
	unsigned		 commands;
	unsigned		 auth_failures;
	struct smtp_tx		*tx;
	struct smtp_auth	*auth;
	char			*user;		/* authenticated as, or NULL */
	char			 auth_mech[DVPROTO_MECH_SIZE]; /* its mechanism */
	struct milter_chain	*milter;	/* content filters, or NULL */
	char			*milter_refusal; /* the filters refused the
						    session: this reply */
	int			 milter_step;	/* SMTP_M_*, waited for */
	struct event		*timer;		/* the deadline of the state */
	uint64_t		 start;		/* ms: the deadline's origin */
	uint64_t		 deadline;	/* ms, monotonic; 0: none */
	uint64_t		 data_in;	/* octets read in DATA */
	uint64_t		 chunk_size;	/* the BDAT chunk being read */
	uint64_t		 chunk_left;	/* ...its octets yet to come */
	int			 chunk_last;	/* ...it is the last */
	int			 chunk_refuse;	/* ...its reply if refused */
	smtp_session_closed_cb	 closed_cb;
	void			*closed_arg;
	struct sockaddr_storage	 ss;
	char			 addr[64];
	char			*helo;		/* HELO/EHLO's name, or NULL */
	int			 fd;		/* the socket, while parked */
	char			 sid[12];	/* on each log line */
	uint64_t		 opened;	/* ms, monotonic */
	struct sessinfo_bytes	 bytes;		/* for ternctl sessions */
	struct direct		 direct;	/* replies on a plain socket */
};

/* The reply table: every answer tern gives a client, one place. */
enum smtp_reply {
	SMTP_R_GREETING,
	SMTP_R_OK,
	SMTP_R_HELO,
	SMTP_R_MAIL_OK,
	SMTP_R_RCPT_OK,
	SMTP_R_DATA,
	SMTP_R_QUEUED,
	SMTP_R_CHUNK_OK,
	SMTP_R_QUIT,
	SMTP_R_HELP,
	SMTP_R_VRFY,
	SMTP_R_SHUTDOWN,
	SMTP_R_TIMEOUT,
	SMTP_R_TOO_MANY_ERRORS,
	SMTP_R_TOO_MANY_RCPTS,
	SMTP_R_SPOOL_ERROR,
	SMTP_R_NO_ROOM,
	SMTP_R_TOO_BUSY,
	SMTP_R_UNKNOWN,
	SMTP_R_LINE_TOO_LONG,
	SMTP_R_BARE_NEWLINE,
	SMTP_R_NUL_CMD,
	SMTP_R_HELO_SYNTAX,
	SMTP_R_EHLO_SYNTAX,
	SMTP_R_MAIL_SYNTAX,
	SMTP_R_RCPT_SYNTAX,
	SMTP_R_DATA_SYNTAX,
	SMTP_R_BDAT_SYNTAX,
	SMTP_R_AFTER_BDAT,
	SMTP_R_BDAT_FILTERED,
	SMTP_R_RSET_SYNTAX,
	SMTP_R_QUIT_SYNTAX,
	SMTP_R_VRFY_SYNTAX,
	SMTP_R_NOT_IMPLEMENTED,
	SMTP_R_NEED_HELO,
	SMTP_R_NEED_MAIL,
	SMTP_R_NEED_RCPT,
	SMTP_R_NESTED_MAIL,
	SMTP_R_BAD_SENDER,
	SMTP_R_BAD_RCPT,
	SMTP_R_BAD_PARAM,
	SMTP_R_SIZE,
	SMTP_R_NEED_UTF8,
	SMTP_R_RELAY_DENIED,
	SMTP_R_DATA_BARE,
	SMTP_R_DATA_LONG_LINE,
	SMTP_R_DATA_NUL,
	SMTP_R_PARAM_SYNTAX,
	SMTP_R_IN_TX,
	SMTP_R_TLS_READY,
	SMTP_R_TLS_SYNTAX,
	SMTP_R_TLS_ACTIVE,
	SMTP_R_NEED_TLS,
	SMTP_R_NEED_AUTH,
	SMTP_R_AUTH_SYNTAX,
	SMTP_R_AUTH_MECH,
	SMTP_R_AUTH_DONE,
	SMTP_R_AUTH_OFF,
	SMTP_R_AUTH_CHALLENGE,
	SMTP_R_AUTH_OK,
	SMTP_R_AUTH_FAILED,
	SMTP_R_AUTH_CANCEL,
	SMTP_R_AUTH_BAD,
	SMTP_R_AUTH_TOO_MANY,
	SMTP_R_SENDER_NOT_OWNED,
	SMTP_R_UNKNOWN_USER,
	SMTP_R_ALIAS_LOOP,
	SMTP_R_ETRN_SYNTAX,
	SMTP_R_ETRN_NONE,
	SMTP_R_ETRN_STARTED,
	SMTP_R_ETRN_DENIED,
	SMTP_R_ETRN_UNABLE,
	SMTP_R_MSG_RATE,
	SMTP_R_RCPT_RATE,
	SMTP_R_AUTH_PENALTY,
	SMTP_R_AUTH_USER_PENALTY,
	SMTP_R_AUTH_TEMP,
};

static const struct smtp_reply_entry {
	int		 code;
	const char	*esc;		/* NULL: none (greeting, HELO) */
	const char	*text;		/* one "%s" at most */
} smtp_replies[] = {
	[SMTP_R_GREETING] = { 220, NULL, "%s ESMTP tern" },
	[SMTP_R_OK] = { 250, "2.0.0", "Ok" },
	[SMTP_R_HELO] = { 250, NULL, "%s" },
	[SMTP_R_MAIL_OK] = { 250, "2.1.0", "Ok" },
	[SMTP_R_RCPT_OK] = { 250, "2.1.5", "Ok" },
	[SMTP_R_DATA] = { 354, NULL, "End data with <CR><LF>.<CR><LF>" },
	[SMTP_R_QUEUED] = { 250, "2.0.0", "Ok: queued as %s" },
	[SMTP_R_CHUNK_OK] = { 250, "2.0.0", "Ok: %s octets" },
	[SMTP_R_QUIT] = { 221, "2.0.0", "Bye" },
	[SMTP_R_HELP] = { 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA "
	    "RSET NOOP QUIT VRFY HELP STARTTLS AUTH ETRN BDAT" },
	[SMTP_R_VRFY] = { 252, "2.0.0", "Cannot VRFY user, but will accept "
	    "message and attempt delivery" },
	[SMTP_R_SHUTDOWN] = { 421, "4.3.2", "%s Service shutting down" },
	[SMTP_R_TIMEOUT] = { 421, "4.4.2", "%s Error: timeout exceeded" },
	[SMTP_R_TOO_MANY_ERRORS] = { 421, "4.7.0",
	    "%s Error: too many errors" },
	[SMTP_R_TOO_MANY_RCPTS] = { 452, "4.5.3",
	    "Error: too many recipients" },
	[SMTP_R_SPOOL_ERROR] = { 451, "4.3.0",
	    "Error: queue file write error" },
	[SMTP_R_NO_ROOM] = { 452, "4.3.1", "Insufficient system storage" },
	[SMTP_R_TOO_BUSY] = { 451, "4.3.2",
	    "Error: too many messages arriving at once, try again later" },
	[SMTP_R_UNKNOWN] = { 500, "5.5.2", "Error: command not recognized" },
	[SMTP_R_LINE_TOO_LONG] = { 500, "5.5.2", "Error: line too long" },
	[SMTP_R_BARE_NEWLINE] = { 500, "5.5.2",
	    "Error: bare CR or LF in command" },
	[SMTP_R_NUL_CMD] = { 500, "5.5.2", "Error: NUL octet in command" },
	[SMTP_R_HELO_SYNTAX] = { 501, "5.5.4", "Syntax: HELO hostname" },
	[SMTP_R_EHLO_SYNTAX] = { 501, "5.5.4", "Syntax: EHLO hostname" },
	[SMTP_R_MAIL_SYNTAX] = { 501, "5.5.4", "Syntax: MAIL FROM:<address>" },
	[SMTP_R_RCPT_SYNTAX] = { 501, "5.5.4", "Syntax: RCPT TO:<address>" },
	[SMTP_R_DATA_SYNTAX] = { 501, "5.5.4", "Syntax: DATA" },
	[SMTP_R_BDAT_SYNTAX] = { 501, "5.5.4", "Syntax: BDAT size [LAST]" },
	[SMTP_R_AFTER_BDAT] = { 503, "5.5.1", "Error: %s after BDAT" },
	[SMTP_R_BDAT_FILTERED] = { 502, "5.5.1",
	    "Error: BDAT not offered here, use DATA" },
	[SMTP_R_RSET_SYNTAX] = { 501, "5.5.4", "Syntax: RSET" },
	[SMTP_R_QUIT_SYNTAX] = { 501, "5.5.4", "Syntax: QUIT" },
	[SMTP_R_VRFY_SYNTAX] = { 501, "5.5.4", "Syntax: VRFY address" },
	[SMTP_R_NOT_IMPLEMENTED] = { 502, "5.5.1",
	    "Error: command not implemented" },
	[SMTP_R_NEED_HELO] = { 503, "5.5.1", "Error: send HELO/EHLO first" },
	[SMTP_R_NEED_MAIL] = { 503, "5.5.1", "Error: need MAIL command" },
	[SMTP_R_NEED_RCPT] = { 503, "5.5.1", "Error: need RCPT command" },
	[SMTP_R_NESTED_MAIL] = { 503, "5.5.1", "Error: nested MAIL command" },
	[SMTP_R_BAD_SENDER] = { 501, "5.1.7", "Bad sender address syntax" },
	[SMTP_R_BAD_RCPT] = { 501, "5.1.3", "Bad recipient address syntax" },
	[SMTP_R_BAD_PARAM] = { 555, "5.5.4", "Unsupported parameter" },
	[SMTP_R_SIZE] = { 552, "5.3.4", "Message size exceeds fixed limit" },
	[SMTP_R_NEED_UTF8] = { 553, "5.6.7",
	    "Non-ASCII address requires SMTPUTF8" },
	[SMTP_R_RELAY_DENIED] = { 554, "5.7.1", "%s: Relay access denied" },
	[SMTP_R_DATA_BARE] = { 554, "5.6.0",
	    "Message contains bare CR or LF" },
	[SMTP_R_DATA_LONG_LINE] = { 554, "5.6.0",
	    "Message contains a line longer than 1000 octets" },
	[SMTP_R_DATA_NUL] = { 554, "5.6.0", "Message contains a NUL octet" },
	[SMTP_R_PARAM_SYNTAX] = { 501, "5.5.4",
	    "Syntax error in parameters" },
	[SMTP_R_IN_TX] = { 503, "5.5.1", "Error: MAIL transaction in progress" },
	[SMTP_R_TLS_READY] = { 220, "2.0.0", "Ready to start TLS" },
	[SMTP_R_TLS_SYNTAX] = { 501, "5.5.4", "Syntax: STARTTLS" },
	[SMTP_R_TLS_ACTIVE] = { 503, "5.5.1", "Error: TLS already active" },
	[SMTP_R_NEED_TLS] = { 530, "5.7.0",
	    "Must issue a STARTTLS command first" },
	[SMTP_R_NEED_AUTH] = { 530, "5.7.0", "Authentication required" },
	[SMTP_R_AUTH_SYNTAX] = { 501, "5.5.4",
	    "Syntax: AUTH mechanism [initial-response]" },
	[SMTP_R_AUTH_MECH] = { 504, "5.5.4",
	    "Unsupported authentication mechanism" },
	[SMTP_R_AUTH_DONE] = { 503, "5.5.1", "Error: already authenticated" },
	[SMTP_R_AUTH_OFF] = { 503, "5.5.1",
	    "Error: authentication not enabled" },
	[SMTP_R_AUTH_CHALLENGE] = { 334, NULL, "%s" },
	[SMTP_R_AUTH_OK] = { 235, "2.7.0", "Authentication successful" },
	[SMTP_R_AUTH_FAILED] = { 535, "5.7.8",
	    "Error: authentication failed" },
	[SMTP_R_AUTH_CANCEL] = { 501, "5.0.0", "Authentication aborted" },
	[SMTP_R_AUTH_BAD] = { 501, "5.5.2", "Cannot decode response" },
	[SMTP_R_AUTH_TOO_MANY] = { 421, "4.7.0",
	    "%s Error: too many authentication failures" },
	[SMTP_R_SENDER_NOT_OWNED] = { 553, "5.7.1",
	    "%s: Sender address rejected: not owned by the authenticated "
	    "user" },
	[SMTP_R_UNKNOWN_USER] = { 550, "5.1.1", "%s: Recipient address "
	    "rejected: User unknown in local recipient table" },
	[SMTP_R_ALIAS_LOOP] = { 550, "5.4.6",
	    "%s: Recipient address rejected: alias loop" },
	[SMTP_R_ETRN_SYNTAX] = { 501, "5.5.4", "Syntax: ETRN domain" },
	[SMTP_R_ETRN_NONE] = { 251, "2.0.0",
	    "OK, no messages waiting for node %s" },
	[SMTP_R_ETRN_STARTED] = { 253, "2.0.0", "OK, %s started" },
	[SMTP_R_ETRN_DENIED] = { 459, "4.7.1", "%s: node not allowed" },
	[SMTP_R_ETRN_UNABLE] = { 458, "4.3.0",
	    "Unable to queue messages for node %s" },
	[SMTP_R_MSG_RATE] = { 450, "4.7.1", "Error: too much mail from %s" },
	[SMTP_R_RCPT_RATE] = { 450, "4.7.1",
	    "Error: too many recipients from %s" },
	[SMTP_R_AUTH_PENALTY] = { 454, "4.7.0", "Error: too many "
	    "authentication failures from %s, try again later" },
	[SMTP_R_AUTH_USER_PENALTY] = { 454, "4.7.0", "Error: too many "
	    "authentication failures for this account, try again later" },
	[SMTP_R_AUTH_TEMP] = { 454, "4.7.0",
	    "Temporary authentication failure, try again later" },
};

/* The metrics reason of each refusal smtp_log_reject() logs. */
static const enum metrics_reject smtp_reject_reasons[] = {
	[SMTP_R_RELAY_DENIED] = METRICS_REJECT_RELAY,
	[SMTP_R_UNKNOWN_USER] = METRICS_REJECT_UNKNOWN_USER,
	[SMTP_R_ALIAS_LOOP] = METRICS_REJECT_ALIAS_LOOP,
	[SMTP_R_SENDER_NOT_OWNED] = METRICS_REJECT_SENDER,
	[SMTP_R_MSG_RATE] = METRICS_REJECT_RATE,
	[SMTP_R_RCPT_RATE] = METRICS_REJECT_RATE,
	[SMTP_R_SIZE] = METRICS_REJECT_SIZE,
	[SMTP_R_DATA_BARE] = METRICS_REJECT_CONTENT,
	[SMTP_R_DATA_LONG_LINE] = METRICS_REJECT_CONTENT,
	[SMTP_R_DATA_NUL] = METRICS_REJECT_CONTENT,
	[SMTP_R_NO_ROOM] = METRICS_REJECT_STORAGE,
	[SMTP_R_SPOOL_ERROR] = METRICS_REJECT_STORAGE,
	[SMTP_R_TOO_BUSY] = METRICS_REJECT_STORAGE,
	[SMTP_R_ETRN_DENIED] = METRICS_REJECT_ETRN,
};

/* Verb policy flags. */
#define SMTP_V_NEEDS_HELO	0x01
#define SMTP_V_NEEDS_MAIL	0x02
#define SMTP_V_NEEDS_RCPT	0x04

static void	smtp_cmd_helo(struct smtp_session *, const char *);
static void	smtp_cmd_ehlo(struct smtp_session *, const char *);
static void	smtp_cmd_mail(struct smtp_session *, const char *);
static void	smtp_cmd_rcpt(struct smtp_session *, const char *);
static void	smtp_cmd_data(struct smtp_session *, const char *);
static void	smtp_cmd_rset(struct smtp_session *, const char *);
static void	smtp_cmd_noop(struct smtp_session *, const char *);
static void	smtp_cmd_quit(struct smtp_session *, const char *);
static void	smtp_cmd_vrfy(struct smtp_session *, const char *);
static void	smtp_cmd_help(struct smtp_session *, const char *);
static void	smtp_cmd_starttls(struct smtp_session *, const char *);
static void	smtp_cmd_auth(struct smtp_session *, const char *);
static void	smtp_cmd_etrn(struct smtp_session *, const char *);
static void	smtp_cmd_bdat(struct smtp_session *, const char *);
static void	smtp_cmd_unimplemented(struct smtp_session *, const char *);

/* The verb table: what each command needs before it may run. */
static const struct smtp_verb_entry {
	enum smtp_verb	 verb;
	int		 flags;
	void		(*handler)(struct smtp_session *, const char *);
} smtp_verbs[] = {
	{ SMTP_VERB_HELO, 0, smtp_cmd_helo },
	{ SMTP_VERB_EHLO, 0, smtp_cmd_ehlo },
	{ SMTP_VERB_MAIL, SMTP_V_NEEDS_HELO, smtp_cmd_mail },
	{ SMTP_VERB_RCPT, SMTP_V_NEEDS_MAIL, smtp_cmd_rcpt },
	{ SMTP_VERB_DATA, SMTP_V_NEEDS_MAIL | SMTP_V_NEEDS_RCPT,
	    smtp_cmd_data },
	{ SMTP_VERB_RSET, 0, smtp_cmd_rset },
	{ SMTP_VERB_NOOP, 0, smtp_cmd_noop },
	{ SMTP_VERB_QUIT, 0, smtp_cmd_quit },
	{ SMTP_VERB_VRFY, 0, smtp_cmd_vrfy },
	{ SMTP_VERB_HELP, 0, smtp_cmd_help },
	{ SMTP_VERB_EXPN, 0, smtp_cmd_unimplemented },
	{ SMTP_VERB_STARTTLS, 0, smtp_cmd_starttls },
	{ SMTP_VERB_AUTH, SMTP_V_NEEDS_HELO, smtp_cmd_auth },
	{ SMTP_VERB_ETRN, SMTP_V_NEEDS_HELO, smtp_cmd_etrn },
	/* BDAT checks MAIL and RCPT itself: a refused chunk is still read. */
	{ SMTP_VERB_BDAT, 0, smtp_cmd_bdat },
};

/* EHLO keywords, in the order advertised, each when its test passes. */
static void	smtp_ehlo_size(struct smtp_session *, char *, size_t);
static void	smtp_ehlo_auth(struct smtp_session *, char *, size_t);
static int	smtp_offers_starttls(struct smtp_session *);
static int	smtp_offers_auth(struct smtp_session *);
static size_t	smtp_dovecot_mechs_count(void);
static int	smtp_offers_etrn(struct smtp_session *);
static int	smtp_offers_chunking(struct smtp_session *);

static const struct smtp_ehlo_entry {
	const char	*keyword;
	void		(*value)(struct smtp_session *, char *, size_t);
	int		(*offered)(struct smtp_session *);	/* NULL: always */
} smtp_ehlo_keywords[] = {
	{ "PIPELINING", NULL, NULL },
	{ "SIZE", smtp_ehlo_size, NULL },
	{ "ETRN", NULL, smtp_offers_etrn },
	{ "STARTTLS", NULL, smtp_offers_starttls },
	{ "AUTH", smtp_ehlo_auth, smtp_offers_auth },
	{ "ENHANCEDSTATUSCODES", NULL, NULL },
	{ "8BITMIME", NULL, NULL },
	{ "DSN", NULL, NULL },
	{ "SMTPUTF8", NULL, NULL },
	{ "CHUNKING", NULL, smtp_offers_chunking },
};

/* MAIL FROM parameters. */
static enum smtp_reply smtp_param_size(struct smtp_session *, const char *);
static enum smtp_reply smtp_param_body(struct smtp_session *, const char *);
static enum smtp_reply smtp_param_smtputf8(struct smtp_session *,
		    const char *);
static enum smtp_reply smtp_param_ret(struct smtp_session *, const char *);
static enum smtp_reply smtp_param_envid(struct smtp_session *,
		    const char *);

static enum smtp_reply smtp_param_notify(struct smtp_session *,
		    const char *);
static enum smtp_reply smtp_param_orcpt(struct smtp_session *,
		    const char *);

static const struct smtp_param_entry {
	const char	*keyword;
	int		 has_value;
	enum smtp_reply	(*handler)(struct smtp_session *, const char *);
} smtp_mail_params[] = {
	{ "SIZE", 1, smtp_param_size },
	{ "BODY", 1, smtp_param_body },
	{ "SMTPUTF8", 0, smtp_param_smtputf8 },
	{ "RET", 1, smtp_param_ret },
	{ "ENVID", 1, smtp_param_envid },
};

static const struct smtp_param_entry smtp_rcpt_params[] = {
	{ "NOTIFY", 1, smtp_param_notify },
	{ "ORCPT", 1, smtp_param_orcpt },
};

/*
 * The deadline that guards each state.  Each is counted from a fixed
 * point (the state's start, a line's first octet), never from the last
 * octet read, so a client cannot hold a session by dribbling.
 */
enum smtp_timeout {
	SMTP_TIMEOUT_NONE,	/* waiting on ourselves */
	SMTP_TIMEOUT_COMMAND,	/* command_timeout */
	SMTP_TIMEOUT_DATA,	/* data_timeout plus data_min_rate credit */
	SMTP_TIMEOUT_TLS,	/* tls_timeout for the whole handshake */
	SMTP_TIMEOUT_AUTH,	/* auth_timeout for the whole exchange */
};

static const struct smtp_state_entry {
	const char		*name;
	enum smtp_timeout	 timeout;
} smtp_states[] = {
	[SMTP_STATE_CMD] = { "command", SMTP_TIMEOUT_COMMAND },
	[SMTP_STATE_DATA] = { "data", SMTP_TIMEOUT_DATA },
	[SMTP_STATE_BDAT] = { "bdat", SMTP_TIMEOUT_DATA },
	[SMTP_STATE_COMMIT] = { "commit", SMTP_TIMEOUT_NONE },
	[SMTP_STATE_CLOSING] = { "closing", SMTP_TIMEOUT_COMMAND },
	[SMTP_STATE_TLS] = { "tls", SMTP_TIMEOUT_TLS },
	[SMTP_STATE_AUTH] = { "auth", SMTP_TIMEOUT_AUTH },
	[SMTP_STATE_AUTH_CHECK] = { "auth check", SMTP_TIMEOUT_NONE },
	[SMTP_STATE_MILTER] = { "milter", SMTP_TIMEOUT_NONE },
	[SMTP_STATE_SPOOL] = { "spool", SMTP_TIMEOUT_NONE },
};

static struct event_base	*smtp_base;
static const struct config	*smtp_conf;
static smtp_session_queued_cb	 smtp_queued;
static smtp_session_etrn_cb	 smtp_etrn;
static smtp_session_admit_cb	 smtp_admit;
static const struct users	*smtp_users;
static int			 smtp_cram_usable;	/* users_cram_usable() */
static SSL_CTX			*smtp_tls_ctx;
/* The server is under stress: every deadline is shortened. */
static int			 smtp_stress;
/* Checked against for a user without a password, to take as long. */
static char			 smtp_dummy_hash[256];

/* Scratch space for one command line and for unstuffed data. */
static char	smtp_line[SMTP_AUTH_LINE_MAX + 1];
static char	smtp_data_out[2 * SMTP_DATA_CHUNK];

static void	smtp_read_cb(struct bufferevent *, void *);
static void	smtp_write_cb(struct bufferevent *, void *);
static void	smtp_event_cb(struct bufferevent *, short, void *);
static void	smtp_process(struct smtp_session *);
static void	smtp_after(struct smtp_session *);
static void	smtp_commit_cb(void *, int);
static void	smtp_auth_free(struct smtp_session *);
static void	smtp_deadline_cb(evutil_socket_t, short, void *);
static struct bufferevent *smtp_bev(struct smtp_session *);

/* Content filters (milter.c): the steps a session waits on. */
enum smtp_milter_step {
	SMTP_M_CONNECT,
	SMTP_M_HELO,
	SMTP_M_EHLO,
	SMTP_M_MAIL,
	SMTP_M_RCPT,
	SMTP_M_DATA,
	SMTP_M_EOM,
};
static void	smtp_ehlo_reply(struct smtp_session *);
static int	smtp_milter_connect(struct smtp_session *);
static int	smtp_milter_refused(struct smtp_session *);
static int	smtp_milter_helo(struct smtp_session *, enum smtp_milter_step);
static int	smtp_milter_mail(struct smtp_session *, const struct addr *,
		    const char *);
static int	smtp_milter_rcpt(struct smtp_session *, const struct addr *,
		    const char *, const char *);
static int	smtp_milter_data(struct smtp_session *);
static int	smtp_milter_message(struct smtp_session *);

/*
 * Sessions are over (ternd stops): commits they left finish later, with
 * delivery gone; their messages wait in the queue for the next start.
 */
void
smtp_session_shutdown(void)
{
	smtp_queued = NULL;
}

void
smtp_session_init(struct event_base *base, const struct config *conf,
    smtp_session_queued_cb queued)
{
	char	*cause;

	smtp_base = base;
	smtp_conf = conf;
	smtp_queued = queued;
	if (users_hash("tern timing", smtp_dummy_hash, sizeof smtp_dummy_hash,
	    &cause) == -1) {
		log_warnx("AUTH: %s: failures of unknown users are faster",
		    cause);
		free(cause);
		smtp_dummy_hash[0] = '\0';
	}
}

/* A reload: new limits apply to the next command of every session. */
void
smtp_session_set_config(const struct config *conf)
{
	smtp_conf = conf;
}

/* The users and aliases in force; NULL before they are loaded. */
void
smtp_session_set_users(const struct users *users)
{
	smtp_users = users;
	smtp_cram_usable = users != NULL && users_cram_usable(users);
}

/*
 * The TLS context for new handshakes, or NULL for none.  Sessions already
 * under TLS keep the context they started with (OpenSSL counts them).
 */
void
smtp_session_set_tls(SSL_CTX *ctx)
{
	smtp_tls_ctx = ctx;
}

void
smtp_session_set_etrn(smtp_session_etrn_cb cb)
{
	smtp_etrn = cb;
}

void
smtp_session_set_admit(smtp_session_admit_cb cb)
{
	smtp_admit = cb;
}

/*
 * Stress mode (smtp_server.c decides): deadlines started from now on use
 * stress_timeout where it is shorter.
 */
void
smtp_session_set_stress(int on)
{
	smtp_stress = on;
}

static uint64_t	smtp_now_ms(void);

/* The name the client gave in HELO or EHLO, "" before it did. */
static const char *
smtp_helo(const struct smtp_session *s)
{
	return s->helo != NULL ? s->helo : "";
}

static void
smtp_helo_set(struct smtp_session *s, const char *name)
{
	free(s->helo);
	s->helo = name != NULL && *name != '\0' ? xstrdup(name) : NULL;
}

/* What ternctl sessions shows of a session; valid until it changes. */
void
smtp_session_info(const struct smtp_session *s, struct sessinfo *si)
{
	uint64_t	now = smtp_now_ms();

	si->id = s->sid;
	si->peer = s->addr;
	si->state = smtp_states[s->state].name;
	si->age = now > s->opened ? (now - s->opened) / 1000 : 0;
	si->bytes_in = s->bytes.in;
	si->bytes_out = s->bytes.out;
	si->tls = (s->flags & SMTP_F_TLS) && s->bev != NULL ?
	    tls_version(s->bev) : NULL;
}

/*
 * What a session holds in memory past an idle session's (ADMIT_SESSION_BYTES
 * in admit.h counts that): its transaction and buffered octets, roughly.
 */
size_t
smtp_session_bytes(const struct smtp_session *s)
{
	return (s->tx != NULL ? sizeof *s->tx : 0) +
	    (s->tx != NULL && s->tx->mcopy != NULL ?
	    evbuffer_get_length(s->tx->mcopy) : 0) +
	    (s->auth != NULL ? sizeof *s->auth : 0) + (s->bev != NULL ?
	    evbuffer_get_length(bufferevent_get_input(s->bev)) +
	    evbuffer_get_length(bufferevent_get_output(s->bev)) : 0);
}

static uint64_t
smtp_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A configured bound, cut to stress_timeout under stress. */
static uint64_t
smtp_bound(uint64_t ms)
{
	if (smtp_stress && smtp_conf->stress_timeout < ms)
		return smtp_conf->stress_timeout;
	return ms;
}

/* The time left to the session's deadline in tv; NULL if it has none. */
static struct timeval *
smtp_deadline_tv(const struct smtp_session *s, struct timeval *tv)
{
	uint64_t	now = smtp_now_ms(), ms;

	if (s->deadline == 0)
		return NULL;
	ms = s->deadline > now ? s->deadline - now : 0;
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

/*
 * Fire the session's timer at a point on the monotonic clock.  A parked
 * session's timer is also its reading event: adding it again only moves
 * its timeout.
 */
static void
smtp_deadline_at(struct smtp_session *s, uint64_t at)
{
	struct timeval	tv;

	s->deadline = at;
	event_add(s->timer, smtp_deadline_tv(s, &tv));
}

/* Each write that makes no progress is bounded by command_timeout. */
static void
smtp_write_timeout(struct bufferevent *bev)
{
	struct timeval	wtv;

	wtv.tv_sec = (time_t)(smtp_conf->command_timeout / 1000);
	wtv.tv_usec = (suseconds_t)(smtp_conf->command_timeout % 1000) * 1000;
	bufferevent_set_timeouts(bev, NULL, &wtv);
}

/*
 * Callbacks, watermark, byte counts and write timeout of a new bev;
 * replies on a plain socket are written by direct.c.
 */
static void
smtp_bev_setup(struct smtp_session *s)
{
	sessinfo_count(s->bev, &s->bytes);
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_HIWAT);
	smtp_write_timeout(s->bev);
	if (!tls_is_tls(s->bev))
		direct_attach(&s->direct, s->bev);
}

/*
 * Parking.  A plaintext session waiting for a command with nothing
 * buffered either way gives up its bufferevent (two evbuffers, two
 * events, their callbacks: about 1 KiB) and waits on its timer event,
 * which then watches the socket as well as the deadline.  The first
 * octet from the client, the deadline, or anything that would write to
 * it takes a new bufferevent (smtp_bev()).  The socket stays in the
 * kernel's epoll set throughout: the parked event is added before the
 * bufferevent's is deleted, and the other way round on waking, so
 * libevent's count for the descriptor never drops to zero.
 */
static void
smtp_parked_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;
	struct bufferevent	*bev = smtp_bev(s);
	struct evbuffer		*in = bufferevent_get_input(bev);
	int			 n;

	if (what & EV_TIMEOUT) {
		smtp_deadline_cb(-1, EV_TIMEOUT, s);
		return;
	}
	/*
	 * Readable: read it now, as the new bufferevent would on the loop's
	 * next turn (its input is frozen to all but itself for the while).
	 * Whatever is left, and an error that is no error, is its to read.
	 */
	evbuffer_unfreeze(in, 0);
	n = evbuffer_read(in, fd, SMTP_INPUT_HIWAT);
	evbuffer_freeze(in, 0);
	if (n > 0)
		smtp_read_cb(bev, s);
	else if (n == 0)
		smtp_event_cb(bev, BEV_EVENT_EOF | BEV_EVENT_READING, s);
	else if (errno != EAGAIN && errno != EINTR)
		smtp_event_cb(bev, BEV_EVENT_ERROR | BEV_EVENT_READING, s);
}

static void
smtp_park(struct smtp_session *s)
{
	struct timeval	tv;
	int		fd = bufferevent_getfd(s->bev);

	event_del(s->timer);
	event_assign(s->timer, smtp_base, fd, EV_READ | EV_PERSIST,
	    smtp_parked_cb, s);
	event_add(s->timer, smtp_deadline_tv(s, &tv));
	direct_detach(&s->direct);
	bufferevent_setfd(s->bev, -1);
	bufferevent_free(s->bev);
	s->bev = NULL;
	s->fd = fd;
}

/* The session's bufferevent, taken again if it was parked. */
static struct bufferevent *
smtp_bev(struct smtp_session *s)
{
	struct timeval	tv;

	if (s->bev != NULL)
		return s->bev;
	if ((s->bev = bufferevent_socket_new(smtp_base, s->fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		fatalx("smtp: bufferevent_socket_new");
	s->fd = -1;
	smtp_bev_setup(s);
	/* Parked only while reading commands: reading goes on. */
	bufferevent_enable(s->bev, EV_READ);
	event_del(s->timer);
	event_assign(s->timer, smtp_base, -1, 0, smtp_deadline_cb, s);
	if (s->deadline != 0)
		event_add(s->timer, smtp_deadline_tv(s, &tv));
	return s->bev;
}

/*
 * Whether the session may park: waiting for a command in plaintext,
 * nothing buffered in or out, nothing of its own pending.
 */
static int
smtp_parkable(struct smtp_session *s)
{
	return s->state == SMTP_STATE_CMD && s->kind != SMTP_KIND_SMTPS &&
	    !(s->flags & (SMTP_F_TLS | SMTP_F_QUIT | SMTP_F_PAUSED |
	    SMTP_F_STARTTLS | SMTP_F_DRAIN | SMTP_F_LINE | SMTP_F_DISCARD)) &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0;
}

/*
 * A state begins: its deadline is counted from now.  The write timeout
 * of the bufferevent bounds each write that makes no progress.
 */
static void
smtp_deadline_start(struct smtp_session *s)
{
	uint64_t	ms = 0;

	/* Again at each state: a reload may have changed the timeout. */
	smtp_write_timeout(smtp_bev(s));
	s->start = smtp_now_ms();
	s->flags &= ~SMTP_F_LINE;
	s->data_in = 0;
	switch (smtp_states[s->state].timeout) {
	case SMTP_TIMEOUT_NONE:
		s->deadline = 0;
		evtimer_del(s->timer);
		return;
	case SMTP_TIMEOUT_COMMAND:
		ms = smtp_conf->command_timeout;
		break;
	case SMTP_TIMEOUT_DATA:
		ms = smtp_conf->data_timeout;
		break;
	case SMTP_TIMEOUT_TLS:
		ms = smtp_conf->tls_timeout;
		break;
	case SMTP_TIMEOUT_AUTH:
		ms = smtp_conf->auth_timeout;
		break;
	}
	smtp_deadline_at(s, s->start + smtp_bound(ms));
}

/*
 * Whether a session has yet to complete its first command (or, on an
 * implicit TLS port, its handshake): what a client holding a slot by
 * dribbling looks like.
 */
int
smtp_session_is_silent(const struct smtp_session *s)
{
	return s->commands == 0 && !(s->flags & SMTP_F_QUIT) &&
	    (s->state == SMTP_STATE_CMD || s->state == SMTP_STATE_TLS);
}

/* Stress has begun: a deadline further off than stress_timeout is cut. */
void
smtp_session_stress(struct smtp_session *s)
{
	uint64_t	at = smtp_now_ms() + smtp_conf->stress_timeout;

	if (s->deadline != 0 && s->deadline > at)
		smtp_deadline_at(s, at);
}

/*
 * Input arrived in the command state: a line whose first octet this is
 * must end within command_timeout of it; a line just taken restarts the
 * count from its reply.
 */
static void
smtp_deadline_line(struct smtp_session *s, int begun)
{
	if (s->state != SMTP_STATE_CMD)
		return;
	if (!begun) {
		smtp_deadline_start(s);
		return;
	}
	if (s->flags & SMTP_F_LINE)
		return;
	s->flags |= SMTP_F_LINE;
	s->start = smtp_now_ms();
	smtp_deadline_at(s, s->start + smtp_bound(smtp_conf->command_timeout));
}

/*
 * DATA (or a BDAT chunk) has read more: data_timeout from its start plus
 * one second per data_min_rate octets, but never more than data_timeout
 * past now (as Postfix's smtpd_min_data_rate).  The whole of DATA is
 * thus bounded by data_timeout + max_message_size / data_min_rate.
 */
static void
smtp_deadline_data(struct smtp_session *s, size_t octets)
{
	uint64_t	t = smtp_bound(smtp_conf->data_timeout), at, gap;

	s->data_in += octets;
	gap = smtp_now_ms() + t;
	if (smtp_conf->data_min_rate == 0)
		at = gap;
	else {
		at = s->start + t + s->data_in * 1000 /
		    smtp_conf->data_min_rate;
		if (at > gap)
			at = gap;
	}
	smtp_deadline_at(s, at);
}

/* Every state change goes through here: trace it and re-arm the timer. */
static void
smtp_enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state != state) {
		log_debug("smtp [%s]: %s -> %s", s->addr,
		    smtp_states[s->state].name, smtp_states[state].name);
		s->state = state;
		smtp_deadline_start(s);
	}
	/*
	 * While a commit runs, reading goes on as it was (smtp_process()
	 * leaves what comes in for later): no two epoll changes a message,
	 * and a client that leaves is seen at once (smtp_orphan_cb()).
	 */
	if (state == SMTP_STATE_COMMIT)
		return;
	if (state == SMTP_STATE_CLOSING ||
	    state == SMTP_STATE_AUTH_CHECK || state == SMTP_STATE_MILTER ||
	    state == SMTP_STATE_SPOOL)
		bufferevent_disable(smtp_bev(s), EV_READ);
	else if (!(s->flags & (SMTP_F_PAUSED | SMTP_F_QUIT)))
		bufferevent_enable(smtp_bev(s), EV_READ);
}

/* Write one reply line; text and arg come from the table. */
static void
smtp_reply_line(struct smtp_session *s, int code, char sep, const char *esc,
    const char *text, const char *arg)
{
	struct evbuffer	*out = bufferevent_get_output(smtp_bev(s));
	char		 line[SMTP_LINE_MAX + 256];
	const char	*pct;
	size_t		 n;

	n = (size_t)snprintf(line, sizeof line, "%d%c", code, sep);
	if (esc != NULL)
		n += (size_t)snprintf(line + n, sizeof line - n, "%s ", esc);
	if ((pct = strstr(text, "%s")) != NULL) {
		n += (size_t)snprintf(line + n, sizeof line - n, "%.*s%s%s",
		    (int)(pct - text), text, arg != NULL ? arg : "", pct + 2);
	} else
		n += (size_t)snprintf(line + n, sizeof line - n, "%s", text);
	if (n > sizeof line - 3)
		n = sizeof line - 3;
	if (log_is_debug()) {
		char	esc_line[LOG_ESCAPE_SIZE];

		log_debug("smtp [%s]: >>> %s", s->addr,
		    log_escape(esc_line, sizeof esc_line, line, n));
	}
	memcpy(line + n, "\r\n", 2);
	evbuffer_add(out, line, n + 2);
}

/*
 * Answer with an entry of the reply table.  Errors are counted: the one
 * past the limit is answered with 421 instead, its one reply, and the
 * session closes once that has left.
 */
static void
smtp_reply(struct smtp_session *s, enum smtp_reply r, const char *arg)
{
	const struct smtp_reply_entry	*e = &smtp_replies[r];

	if (e->code >= 400 && e->code != 421 &&
	    ++s->errors > smtp_conf->max_errors) {
		log_info("too many errors from [%s] session=%s", s->addr,
		    s->sid);
		e = &smtp_replies[SMTP_R_TOO_MANY_ERRORS];
		arg = smtp_conf->hostname;
	}
	smtp_reply_line(s, e->code, ' ', e->esc, e->text, arg);
	if (e->code == 421)
		s->flags |= SMTP_F_QUIT;
}

/*
 * A refused command, in Postfix's layout so that pflogsumm and fail2ban's
 * postfix filter read it, with the session's id at the end:
 *   NOQUEUE: reject: RCPT from unknown[ADDR]: 554 5.7.1 <RCPT>: Relay
 *   access denied; from=<SENDER> to=<RCPT> proto=ESMTP helo=<HELO>
 *   session=ID
 * from is the sender (NULL: the transaction's, if any); to the recipient
 * path or NULL.
 */
static void
smtp_log_reject(struct smtp_session *s, const char *verb, enum smtp_reply r,
    const char *arg, const char *from, const char *to)
{
	const struct smtp_reply_entry	*e = &smtp_replies[r];
	const char	*pct;
	char		 text[LOG_ESCAPE_SIZE], esc[LOG_ESCAPE_SIZE];
	char		 sender[LOG_ESCAPE_SIZE], rcpt[LOG_ESCAPE_SIZE];
	char		 helo[LOG_ESCAPE_SIZE];
	int		 n;

	metrics_rejected((size_t)r < nitems(smtp_reject_reasons) ?
	    smtp_reject_reasons[r] : METRICS_REJECT_OTHER);
	if (from == NULL && s->tx != NULL)
		from = s->tx->env.sender;
	if ((pct = strstr(e->text, "%s")) != NULL)
		n = snprintf(text, sizeof text, "%.*s%s%s",
		    (int)(pct - e->text), e->text, arg != NULL ? arg : "",
		    pct + 2);
	else
		n = snprintf(text, sizeof text, "%s", e->text);
	if (n < 0 || (size_t)n >= sizeof text)
		n = (int)strlen(text);
	log_escape(esc, sizeof esc, text, (size_t)n);
	if (from != NULL)
		log_escape(sender, sizeof sender, from, strlen(from));
	if (to != NULL)
		log_escape(rcpt, sizeof rcpt, to, strlen(to));
	log_escape(helo, sizeof helo, smtp_helo(s), strlen(smtp_helo(s)));
	log_mail("smtpd", "NOQUEUE: reject: %s from unknown[%s]: %d %s %s;"
	    "%s%s%s%s%s proto=%s%s%s%s session=%s", verb, s->addr, e->code,
	    e->esc != NULL ? e->esc : "", esc,
	    from != NULL ? " from=<" : "", from != NULL ? sender : "",
	    from != NULL ? ">" : "", to != NULL ? " to=" : "",
	    to != NULL ? rcpt : "", s->flags & SMTP_F_EHLO ? "ESMTP" : "SMTP",
	    s->helo != NULL ? " helo=<" : "", s->helo != NULL ? helo : "",
	    s->helo != NULL ? ">" : "", s->sid);
}

static const struct sockaddr *
smtp_sa(const struct smtp_session *s)
{
	return (const struct sockaddr *)&s->ss;
}

/*
 * Answer a refusal of anvil.c (a per-client limit across sessions), if
 * it is one: returns 1 when the command is refused.
 */
static int
smtp_anvil(struct smtp_session *s, enum anvil_result r)
{
	static const enum smtp_reply replies[] = {
		[ANVIL_MSG_RATE] = SMTP_R_MSG_RATE,
		[ANVIL_RCPT_RATE] = SMTP_R_RCPT_RATE,
		[ANVIL_AUTH_PENALTY] = SMTP_R_AUTH_PENALTY,
		[ANVIL_USER_PENALTY] = SMTP_R_AUTH_USER_PENALTY,
	};

	if (r == ANVIL_OK || r == ANVIL_EXEMPT)
		return 0;
	smtp_log_reject(s, r == ANVIL_MSG_RATE ? "MAIL" :
	    r == ANVIL_RCPT_RATE ? "RCPT" : "AUTH", replies[r], s->addr, NULL,
	    NULL);
	smtp_reply(s, replies[r], s->addr);
	return 1;
}

/* Count a failed AUTH across sessions; say when a penalty begins. */
static void
smtp_anvil_auth_failed(struct smtp_session *s, const char *user)
{
	enum anvil_result	r;

	r = anvil_auth_failed(smtp_sa(s), user, anvil_now());
	if (r == ANVIL_AUTH_PENALTY || r == ANVIL_USER_PENALTY)
		log_info("AUTH from [%s]: %s reached: refused for %" PRIu64
		    "s, session=%s", s->addr, anvil_result_str(r),
		    smtp_conf->auth_penalty / 1000, s->sid);
}

/*
 * A message whose commit was under way when its session ended: the
 * commit goes on, and once it is done the message is logged and handed
 * to delivery all the same (its client, gone before the 250, will
 * likely send it again: RFC 1047).
 */
struct smtp_orphan {
	struct envelope	 env;
	int		 hold;
	char		 sid[12];
};

static void	smtp_committed(const struct envelope *, int, const char *);

static void
smtp_orphan_cb(void *arg, int error)
{
	struct smtp_orphan	*o = arg;

	if (error == 0) {
		smtp_committed(&o->env, o->hold, o->sid);
		log_info("%s: queued after its client left, before the reply, "
		    "session=%s", o->env.id, o->sid);
	}
	envelope_clear(&o->env);
	free(o);
}

static void
smtp_tx_free(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct smtp_orphan	*o;

	if (tx == NULL)
		return;
	if (tx->commit != NULL) {
		o = xcalloc(1, sizeof *o);
		o->env = tx->env;
		envelope_init(&tx->env);
		o->hold = tx->hold;
		util_strlcpy(o->sid, s->sid, sizeof o->sid);
		queue_commit_rebind(tx->commit, smtp_orphan_cb, o);
	}
	if (s->milter != NULL)
		milter_chain_abort(s->milter);
	if (tx->mcopy != NULL)
		evbuffer_free(tx->mcopy);
	queue_msg_abort(tx->msg);
	envelope_clear(&tx->env);
	free(tx->rcpt.orcpt);
	free(tx);
	s->tx = NULL;
}

/* Client-supplied text made safe for a header: printable ASCII only. */
static void
smtp_sanitize(char *dst, size_t size, const char *src)
{
	size_t	i;

	for (i = 0; src[i] != '\0' && i + 1 < size; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x21 || c > 0x7e) ? '?' : (char)c;
	}
	dst[i] = '\0';
}

static void
smtp_hello(struct smtp_session *s, const char *args, int ehlo)
{
	char	name[256];

	if (*args == '\0') {
		smtp_reply(s, ehlo ? SMTP_R_EHLO_SYNTAX : SMTP_R_HELO_SYNTAX,
		    NULL);
		return;
	}
	/* HELO and EHLO reset any transaction (RFC 5321 4.1.4). */
	smtp_tx_free(s);
	smtp_sanitize(name, sizeof name, args);
	smtp_helo_set(s, name);
	s->flags |= SMTP_F_HELO;
	if (ehlo)
		s->flags |= SMTP_F_EHLO;
	else
		s->flags &= ~SMTP_F_EHLO;
}

static void
smtp_cmd_helo(struct smtp_session *s, const char *args)
{
	if (smtp_milter_refused(s))
		return;
	smtp_hello(s, args, 0);
	if (s->flags & SMTP_F_HELO && *args != '\0' &&
	    !smtp_milter_helo(s, SMTP_M_HELO))
		smtp_reply(s, SMTP_R_HELO, smtp_conf->hostname);
}

static void
smtp_ehlo_size(struct smtp_session *s, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu64, smtp_conf->max_message_size);
}

static void
smtp_cmd_ehlo(struct smtp_session *s, const char *args)
{
	if (smtp_milter_refused(s))
		return;
	smtp_hello(s, args, 1);
	if (*args != '\0' && !smtp_milter_helo(s, SMTP_M_EHLO))
		smtp_ehlo_reply(s);
}

/* The EHLO reply: the keywords of the extensions offered. */
static void
smtp_ehlo_reply(struct smtp_session *s)
{
	const struct smtp_ehlo_entry	*e;
	/* Room for AUTH and every mechanism Dovecot may announce. */
	char				 value[DVPROTO_MECH_MAX *
					    DVPROTO_MECH_SIZE];
	char				 text[sizeof value + 16];
	size_t				 i, last = 0;

	/* The last keyword offered ends the reply ("250 "). */
	for (i = 0; i < nitems(smtp_ehlo_keywords); i++) {
		e = &smtp_ehlo_keywords[i];
		if (e->offered == NULL || e->offered(s))
			last = i;
	}
	smtp_reply_line(s, 250, '-', NULL, "%s", smtp_conf->hostname);
	for (i = 0; i <= last; i++) {
		e = &smtp_ehlo_keywords[i];
		if (e->offered != NULL && !e->offered(s))
			continue;
		if (e->value != NULL) {
			e->value(s, value, sizeof value);
			snprintf(text, sizeof text, "%s %s", e->keyword, value);
		} else
			util_strlcpy(text, e->keyword, sizeof text);
		smtp_reply_line(s, 250, i == last ? ' ' : '-', NULL, "%s",
		    text);
	}
}

/*
 * CHUNKING only where no content filter runs: a filter's DATA step
 * answers before the message comes, which BDAT has no place for, so a
 * filtered message always comes through DATA.
 */
static int
smtp_offers_chunking(struct smtp_session *s)
{
	return s->milter == NULL;
}

static int
smtp_offers_starttls(struct smtp_session *s)
{
	return smtp_tls_ctx != NULL && !(s->flags & SMTP_F_TLS);
}

static int
smtp_auth_dovecot(void)
{
	return smtp_conf->auth_backend == CONFIG_AUTH_DOVECOT;
}

/* Not yet authenticated, and under TLS unless the configuration waives it. */
static int
smtp_may_auth(struct smtp_session *s)
{
	return s->user == NULL &&
	    ((s->flags & SMTP_F_TLS) || smtp_conf->auth_plaintext);
}

/*
 * AUTH needs someone to check it: users in the users file, or Dovecot
 * connected with a mechanism tern may offer (while it is away, AUTH is
 * not announced: a client that needs it then fails at once rather than
 * with a 454 after trying).
 */
static int
smtp_offers_auth(struct smtp_session *s)
{
	if (smtp_auth_dovecot())
		return smtp_may_auth(s) && smtp_dovecot_mechs_count() > 0;
	return smtp_users != NULL && users_count(smtp_users) > 0 &&
	    smtp_may_auth(s);
}

/*
 * The mechanisms offered, 1 << SASL_MECH_*: auth_mechanisms, or by
 * default PLAIN and LOGIN, and CRAM-MD5 when it can serve every user.
 */
static int
smtp_auth_mechs(void)
{
	if (smtp_conf->auth_mechanisms != 0)
		return smtp_conf->auth_mechanisms;
	return 1 << SASL_MECH_PLAIN | 1 << SASL_MECH_LOGIN |
	    (smtp_cram_usable ? 1 << SASL_MECH_CRAM_MD5 : 0);
}

/*
 * A mechanism Dovecot announced that auth_mechanisms allows: every one
 * under "auto", or those of the list tern knows by name.
 */
static int
smtp_dovecot_allows(const char *mech)
{
	enum sasl_mech	m;

	if (smtp_conf->auth_mechanisms == 0)
		return 1;
	return sasl_mech_parse(mech, &m) == 0 &&
	    (smtp_conf->auth_mechanisms & 1 << m);
}

static size_t
smtp_dovecot_mechs_count(void)
{
	size_t	i, n = 0;

	for (i = 0; i < dvauth_mech_count(); i++)
		n += smtp_dovecot_allows(dvauth_mech(i));
	return n;
}

static void
smtp_ehlo_auth(struct smtp_session *s, char *buf, size_t size)
{
	static const enum sasl_mech	 order[] = { SASL_MECH_PLAIN,
	    SASL_MECH_LOGIN, SASL_MECH_CRAM_MD5 };
	int				 mechs = smtp_auth_mechs();
	size_t				 i;

	(void)s;
	*buf = '\0';
	if (smtp_auth_dovecot()) {
		for (i = 0; i < dvauth_mech_count(); i++) {
			if (!smtp_dovecot_allows(dvauth_mech(i)))
				continue;
			if (*buf != '\0')
				util_strlcat(buf, " ", size);
			util_strlcat(buf, dvauth_mech(i), size);
		}
		return;
	}
	for (i = 0; i < nitems(order); i++) {
		if (!(mechs & 1 << order[i]))
			continue;
		if (*buf != '\0')
			util_strlcat(buf, " ", size);
		util_strlcat(buf, sasl_mech_str(order[i]), size);
	}
}

static int
smtp_offers_etrn(struct smtp_session *s)
{
	return smtp_etrn != NULL && s->kind == SMTP_KIND_MX;
}

static enum smtp_reply
smtp_param_size(struct smtp_session *s, const char *value)
{
	uint64_t	 size;
	const char	*cause;

	if (util_parse_uint(value, 0, UINT64_MAX, &size, &cause) == -1)
		return SMTP_R_BAD_PARAM;
	if (size > smtp_conf->max_message_size)
		return SMTP_R_SIZE;
	s->tx->declared = size;
	return SMTP_R_OK;
}

static enum smtp_reply
smtp_param_body(struct smtp_session *s, const char *value)
{
	if (strcasecmp(value, "8BITMIME") == 0)
		s->tx->env.body = ENVELOPE_BODY_8BITMIME;
	else if (strcasecmp(value, "7BIT") == 0)
		s->tx->env.body = ENVELOPE_BODY_7BIT;
	else
		return SMTP_R_BAD_PARAM;
	return SMTP_R_OK;
}

static enum smtp_reply
smtp_param_smtputf8(struct smtp_session *s, const char *value)
{
	s->tx->env.smtputf8 = 1;
	return SMTP_R_OK;
}

/* RET=FULL|HDRS (RFC 3461 4.3), at most once. */
static enum smtp_reply
smtp_param_ret(struct smtp_session *s, const char *value)
{
	if (s->tx->env.ret != ENVELOPE_RET_NONE)
		return SMTP_R_PARAM_SYNTAX;
	if (strcasecmp(value, "FULL") == 0)
		s->tx->env.ret = ENVELOPE_RET_FULL;
	else if (strcasecmp(value, "HDRS") == 0)
		s->tx->env.ret = ENVELOPE_RET_HDRS;
	else
		return SMTP_R_PARAM_SYNTAX;
	return SMTP_R_OK;
}

/* ENVID=xtext (RFC 3461 4.4): at most 100 octets, printable ASCII. */
static enum smtp_reply
smtp_param_envid(struct smtp_session *s, const char *value)
{
	char	buf[101];
	size_t	i;

	if (s->tx->env.envid != NULL || strlen(value) > 100 ||
	    smtp_xtext_decode(value, buf, sizeof buf) == -1 || buf[0] == '\0')
		return SMTP_R_PARAM_SYNTAX;
	for (i = 0; buf[i] != '\0'; i++) {
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return SMTP_R_PARAM_SYNTAX;
	}
	envelope_set_str(&s->tx->env.envid, buf);
	return SMTP_R_OK;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static enum smtp_reply
smtp_param_notify(struct smtp_session *s, const char *value)
{
	struct smtp_rcpt_params	*rp = &s->tx->rcpt;

	if (rp->notify != 0 || envelope_notify_parse(value, &rp->notify) == -1)
		return SMTP_R_PARAM_SYNTAX;
	return SMTP_R_OK;
}

/* ORCPT=addr-type;xtext (RFC 3461 4.2), kept decoded. */
static enum smtp_reply
smtp_param_orcpt(struct smtp_session *s, const char *value)
{
	struct smtp_rcpt_params	*rp = &s->tx->rcpt;
	char		 buf[ADDR_PATH_SIZE + 32];
	const char	*semi;
	size_t		 i;

	if (rp->orcpt != NULL || strlen(value) > 500 ||
	    (semi = strchr(value, ';')) == NULL || semi == value ||
	    semi[1] == '\0' ||
	    smtp_xtext_decode(value, buf, sizeof buf) == -1)
		return SMTP_R_PARAM_SYNTAX;
	for (i = 0; buf[i] != '\0'; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			return SMTP_R_PARAM_SYNTAX;
	}
	rp->orcpt = xstrdup(buf);
	return SMTP_R_OK;
}

/*
 * Run each parameter of a MAIL or RCPT command through its handler in
 * table; the first failure wins.
 */
static enum smtp_reply
smtp_params_apply(struct smtp_session *s, const char *rest,
    const struct smtp_param_entry *table, size_t ntable)
{
	struct smtp_param	 params[SMTP_PARAMS_MAX];
	const struct smtp_param_entry *e;
	char			 buf[SMTP_LINE_MAX];
	size_t			 n, i, j;
	enum smtp_reply		 r;

	util_strlcpy(buf, rest, sizeof buf);
	if (smtp_parse_params(buf, params, nitems(params), &n) == -1)
		return SMTP_R_BAD_PARAM;
	for (i = 0; i < n; i++) {
		e = NULL;
		for (j = 0; j < ntable; j++) {
			if (strcasecmp(params[i].key, table[j].keyword) == 0)
				e = &table[j];
		}
		if (e == NULL || (e->has_value != (params[i].value != NULL)))
			return SMTP_R_BAD_PARAM;
		if ((r = e->handler(s, params[i].value)) != SMTP_R_OK)
			return r;
	}
	return SMTP_R_OK;
}

/*
 * A local or authenticated submitter may leave the domain out: its
 * addresses are qualified with the default domain.
 */
static int
smtp_is_trusted(struct smtp_session *s)
{
	return s->user != NULL || config_is_relay_client(smtp_conf,
	    (const struct sockaddr *)&s->ss);
}

static void
smtp_qualify(struct addr *a)
{
	if (a->domain[0] == '\0' && a->local[0] != '\0')
		util_strlcpy(a->domain, smtp_conf->default_domain,
		    sizeof a->domain);
}

/*
 * An authenticated user may only send as one of their own addresses.
 * A name from Dovecot is an address too, in default_domain when it has
 * no domain; its owner may also use what the users and aliases files
 * give it.
 */
static int
smtp_sender_is_allowed(struct smtp_session *s, const char *sender)
{
	char	login[ADDR_PATH_SIZE];

	if (s->user == NULL || !smtp_conf->auth_sender_check ||
	    *sender == '\0')
		return 1;
	if (smtp_users == NULL)
		return 0;
	if (!smtp_auth_dovecot())
		return users_owns(smtp_users, s->user, sender);
	if (util_snprintf(login, sizeof login, "%s%s%s", s->user,
	    strchr(s->user, '@') != NULL ? "" : "@",
	    strchr(s->user, '@') != NULL ? "" : smtp_conf->default_domain) ==
	    -1)
		return 0;
	return users_owns(smtp_users, login, sender) ||
	    users_is_same_addr(smtp_users, login, sender);
}

/*
 * A full spool is said before the client sends the message: room for
 * the SIZE it announced (if any) and min_free_space besides, or 452.
 */
static int
smtp_check_room(struct smtp_session *s, const char *verb)
{
	if (queue_has_room(-1, s->tx->declared, smtp_conf->min_free_space))
		return 1;
	log_warnx("%s from [%s]: insufficient spool space: size=%" PRIu64
	    ", min_free_space=%" PRIu64 " session=%s", verb, s->addr,
	    s->tx->declared, smtp_conf->min_free_space, s->sid);
	smtp_log_reject(s, verb, SMTP_R_NO_ROOM, NULL, NULL, NULL);
	return 0;
}

/* As smtp_check_room(), and a refusal ends the transaction. */
static int
smtp_has_room(struct smtp_session *s, const char *verb)
{
	if (smtp_check_room(s, verb))
		return 1;
	smtp_tx_free(s);
	smtp_reply(s, SMTP_R_NO_ROOM, NULL);
	return 0;
}

/* The reply for a spool that failed with errno e. */
static enum smtp_reply
smtp_spool_reply(int e)
{
	return e == ENOSPC || e == EDQUOT ? SMTP_R_NO_ROOM : SMTP_R_SPOOL_ERROR;
}

static void
smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	struct addr	 a;
	const char	*rest, *cause;
	char		 buf[ADDR_PATH_SIZE], esc[LOG_ESCAPE_SIZE];
	enum smtp_reply	 r;
	int		 rc, utf8, flags;

	if (s->tx != NULL) {
		if (s->tx->bdat)
			smtp_reply(s, SMTP_R_AFTER_BDAT, "MAIL");
		else
			smtp_reply(s, SMTP_R_NESTED_MAIL, NULL);
		return;
	}
	if (s->kind != SMTP_KIND_MX && s->user == NULL) {
		smtp_reply(s, SMTP_R_NEED_AUTH, NULL);
		return;
	}
	if (smtp_milter_refused(s))
		return;
	if (smtp_anvil(s, anvil_mail(smtp_sa(s), anvil_now())))
		return;
	s->tx = xcalloc(1, sizeof *s->tx);
	envelope_init(&s->tx->env);

	/* Parameters first: SMTPUTF8 decides which paths are valid. */
	flags = ADDR_ALLOW_NULL | ADDR_ALLOW_UTF8;
	if (smtp_is_trusted(s))
		flags |= ADDR_ALLOW_BARE;
	rc = addr_parse_path(args, flags, &a, &rest, &cause);
	if (rc != 0) {
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_BAD_SENDER, NULL);
		return;
	}
	if ((r = smtp_params_apply(s, rest, smtp_mail_params,
	    nitems(smtp_mail_params))) != SMTP_R_OK) {
		smtp_tx_free(s);
		smtp_reply(s, r, NULL);
		return;
	}
	if (!smtp_has_room(s, "MAIL"))
		return;
	utf8 = addr_is_utf8(&a);
	if (utf8 && !s->tx->env.smtputf8) {
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_NEED_UTF8, NULL);
		return;
	}
	smtp_qualify(&a);
	if (addr_format(&a, buf, sizeof buf) == -1) {
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_BAD_SENDER, NULL);
		return;
	}
	if (!smtp_sender_is_allowed(s, buf)) {
		util_snprintf(esc, sizeof esc, "<%s>", buf);
		smtp_log_reject(s, "MAIL", SMTP_R_SENDER_NOT_OWNED, esc, buf,
		    NULL);
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_SENDER_NOT_OWNED, esc);
		return;
	}
	envelope_set_str(&s->tx->env.sender, buf);
	if (!smtp_milter_mail(s, &a, rest))
		smtp_reply(s, SMTP_R_MAIL_OK, NULL);
}

static int
smtp_has_rcpt(const struct envelope *env, const char *addr)
{
	size_t	i;

	for (i = 0; i < env->nrcpts; i++) {
		if (strcmp(env->rcpts[i].addr, addr) == 0)
			return 1;
	}
	return 0;
}

/*
 * Add one final recipient unless it is there already; the original
 * address the client gave goes in ORCPT when it differs and the client
 * gave none.
 */
static void
smtp_add_rcpt(struct smtp_session *s, const char *addr, const char *given,
    const struct smtp_rcpt_params *rp)
{
	struct envelope_rcpt	*r;
	char			 orcpt[ADDR_PATH_SIZE + 8];

	if (smtp_has_rcpt(&s->tx->env, addr))
		return;
	r = envelope_add_rcpt(&s->tx->env, addr);
	r->notify = rp->notify;
	if (rp->orcpt != NULL)
		envelope_set_str(&r->orcpt, rp->orcpt);
	else if (strcasecmp(addr, given) != 0) {
		util_snprintf(orcpt, sizeof orcpt, "rfc822;%s", given);
		envelope_set_str(&r->orcpt, orcpt);
	}
}

/*
 * Local domains take their users, aliases and postmaster, resolved here
 * into the final recipients; everything else needs a relay client or an
 * authenticated one.  A local part that could route (@ % !) is never
 * taken, so no address form turns tern into an open relay.
 */
static enum smtp_reply
smtp_rcpt_resolve(struct smtp_session *s, const struct addr *a,
    const char *addr, const struct smtp_rcpt_params *rp)
{
	struct users_rcpt	*out = NULL;
	size_t			 n = 0, i, room;
	int			 rc;

	if (!config_is_local_domain(smtp_conf, a->domain)) {
		if (s->user == NULL && !config_is_relay_client(smtp_conf,
		    (const struct sockaddr *)&s->ss))
			return SMTP_R_RELAY_DENIED;
		if (s->tx->env.nrcpts >= smtp_conf->max_recipients)
			return SMTP_R_TOO_MANY_RCPTS;
		smtp_add_rcpt(s, addr, addr, rp);
		return SMTP_R_RCPT_OK;
	}
	if (addr_has_routing(a))
		return SMTP_R_RELAY_DENIED;
	if (smtp_users == NULL)
		return SMTP_R_UNKNOWN_USER;
	rc = users_resolve(smtp_users, addr, &out, &n);
	if (rc == USERS_UNKNOWN)
		return SMTP_R_UNKNOWN_USER;
	if (rc != 0)
		return SMTP_R_ALIAS_LOOP;
	room = smtp_conf->max_recipients - s->tx->env.nrcpts;
	if (smtp_conf->max_recipients < s->tx->env.nrcpts || n > room) {
		free(out);
		return SMTP_R_TOO_MANY_RCPTS;
	}
	for (i = 0; i < n; i++)
		smtp_add_rcpt(s, out[i].addr, addr, rp);
	free(out);
	return SMTP_R_RCPT_OK;
}

static void
smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct addr		 a;
	struct smtp_rcpt_params	*rp = &s->tx->rcpt;
	const char		*rest, *cause;
	char			 buf[ADDR_PATH_SIZE], path[ADDR_PATH_SIZE];
	enum smtp_reply		 r;
	size_t			 i;
	int			 rc, flags;

	/* The message has begun: its envelope is settled (RFC 3030 2). */
	if (s->tx->bdat) {
		smtp_reply(s, SMTP_R_AFTER_BDAT, "RCPT");
		return;
	}
	if (smtp_anvil(s, anvil_rcpt(smtp_sa(s), anvil_now())))
		return;
	flags = ADDR_ALLOW_POSTMASTER;
	if (s->tx->env.smtputf8)
		flags |= ADDR_ALLOW_UTF8;
	if (smtp_is_trusted(s))
		flags |= ADDR_ALLOW_BARE;
	rc = addr_parse_path(args, flags, &a, &rest, &cause);
	if (rc == ADDR_ERR_UTF8) {
		smtp_reply(s, SMTP_R_NEED_UTF8, NULL);
		return;
	}
	if (rc != 0) {
		smtp_reply(s, SMTP_R_BAD_RCPT, NULL);
		return;
	}
	free(rp->orcpt);
	memset(rp, 0, sizeof *rp);
	if ((r = smtp_params_apply(s, rest, smtp_rcpt_params,
	    nitems(smtp_rcpt_params))) != SMTP_R_OK) {
		smtp_reply(s, r, NULL);
		return;
	}
	/* A bare <Postmaster> is the postmaster of our own host. */
	smtp_qualify(&a);
	if (addr_format(&a, buf, sizeof buf) == -1 ||
	    addr_format_path(&a, path, sizeof path) == -1) {
		smtp_reply(s, SMTP_R_BAD_RCPT, NULL);
		return;
	}
	/* Local parts compare without case: one recipient, one delivery. */
	if (config_is_local_domain(smtp_conf, a.domain)) {
		for (i = 0; buf[i] != '\0'; i++)
			buf[i] = (char)tolower((unsigned char)buf[i]);
	}
	s->tx->mrcpts = s->tx->env.nrcpts;
	r = smtp_rcpt_resolve(s, &a, buf, rp);
	if (r == SMTP_R_RCPT_OK && smtp_milter_rcpt(s, &a, buf, rest))
		return;
	if (r == SMTP_R_RELAY_DENIED || r == SMTP_R_UNKNOWN_USER ||
	    r == SMTP_R_ALIAS_LOOP)
		smtp_log_reject(s, "RCPT", r, path, NULL, path);
	smtp_reply(s, r, r == SMTP_R_RCPT_OK || r == SMTP_R_TOO_MANY_RCPTS ?
	    NULL : path);
}

/* The "with" of the Received header (RFC 3848, RFC 6531). */
static const char *
smtp_protocol(struct smtp_session *s)
{
	static const char *const names[2][2][2] = {
		/* [utf8][tls][auth] */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!(s->flags & SMTP_F_EHLO))
		return "SMTP";
	return names[s->tx->env.smtputf8 != 0][(s->flags & SMTP_F_TLS) != 0]
	    [s->user != NULL];
}

/* Our trace header, the first bytes of every stored message. */
static int
smtp_write_received(struct smtp_session *s)
{
	struct smtp_tx		*tx = s->tx;
	struct trace_received	 t;
	char			 hdr[TRACE_RECEIVED_SIZE];
	size_t			 n;

	memset(&t, 0, sizeof t);
	t.helo = smtp_helo(s);
	t.addr = s->addr;
	t.by = smtp_conf->hostname;
	t.with = smtp_protocol(s);
	t.id = tx->id;
	if (s->flags & SMTP_F_TLS) {
		t.tls_version = tls_version(smtp_bev(s));
		t.tls_cipher = tls_cipher(smtp_bev(s));
	}
	if (tx->env.nrcpts == 1)
		t.rcpt = tx->env.rcpts[0].addr;
	t.when = time(NULL);
	n = trace_received(hdr, sizeof hdr, &t);
	return queue_msg_write(tx->msg, hdr, n);
}

static void	smtp_data_begin(struct smtp_session *);
static void	smtp_spool_ready_cb(void *, int);

/*
 * A message begins, at DATA or at the first BDAT chunk: room for it, its
 * spool file and our Received header, and the machine that reads it.
 * Returns the refusal, if any; the caller ends the transaction.  A
 * worker may have to make the spool files first (*waiting set): the
 * caller then waits in SMTP_STATE_SPOOL, reading nothing, for
 * smtp_spool_ready_cb().
 */
static enum smtp_reply
smtp_msg_begin(struct smtp_session *s, const char *verb, int chunked,
    int *waiting)
{
	struct smtp_tx	*tx = s->tx;
	int		 normalize;

	if (!smtp_check_room(s, verb))
		return SMTP_R_NO_ROOM;
	if (smtp_admit != NULL && !smtp_admit()) {
		smtp_log_reject(s, verb, SMTP_R_TOO_BUSY, NULL, NULL, NULL);
		return SMTP_R_TOO_BUSY;
	}
	tx->msg = queue_msg_start(tx->id, sizeof tx->id, smtp_spool_ready_cb,
	    s, waiting);
	if (tx->msg == NULL || smtp_write_received(s) == -1) {
		/* Ending the transaction gives up the worker's files too. */
		*waiting = 0;
		return smtp_spool_reply(errno);
	}
	tx->size = 0;
	hdrscan_init(&tx->hs);
	tx->add_hdrs = smtp_conf->add_missing_headers ==
	    CONFIG_ADD_HEADERS_ALL ||
	    (smtp_conf->add_missing_headers == CONFIG_ADD_HEADERS_SUBMISSION &&
	    (s->user != NULL || s->kind != SMTP_KIND_MX));
	normalize = smtp_conf->bare_newlines == CONFIG_BARE_NORMALIZE;
	if (chunked)
		smtp_data_init_chunked(&tx->dot, normalize);
	else
		smtp_data_init(&tx->dot, normalize);
	return SMTP_R_OK;
}

static void
smtp_cmd_data(struct smtp_session *s, const char *args)
{
	enum smtp_reply	 r;
	int		 waiting = 0;

	if (*args != '\0') {
		smtp_reply(s, SMTP_R_DATA_SYNTAX, NULL);
		return;
	}
	/* RFC 3030 2: one transaction, one of DATA or BDAT. */
	if (s->tx->bdat) {
		smtp_reply(s, SMTP_R_AFTER_BDAT, "DATA");
		return;
	}
	if ((r = smtp_msg_begin(s, "DATA", 0, &waiting)) != SMTP_R_OK) {
		smtp_tx_free(s);
		smtp_reply(s, r, NULL);
		return;
	}
	if (waiting)
		smtp_enter_state(s, SMTP_STATE_SPOOL);
	else if (!smtp_milter_data(s))
		smtp_data_begin(s);
}

static void	smtp_bdat_chunk_start(struct smtp_session *);

/*
 * The spool files a worker made for DATA or the first BDAT chunk are
 * there, or are not.  A chunk is read all the same, and refused when
 * they are not.
 */
static void
smtp_spool_ready_cb(void *arg, int error)
{
	struct smtp_session	*s = arg;

	smtp_enter_state(s, SMTP_STATE_CMD);
	if (s->tx->bdat) {
		if (error != 0) {
			s->chunk_refuse = smtp_spool_reply(error);
			smtp_tx_free(s);
		}
		smtp_bdat_chunk_start(s);
	} else if (error != 0) {
		smtp_tx_free(s);
		smtp_reply(s, smtp_spool_reply(error), NULL);
	} else if (!smtp_milter_data(s))
		smtp_data_begin(s);
	smtp_process(s);
	smtp_after(s);
}

/* DATA passed the filters: the 354, and the message may come. */
static void
smtp_data_begin(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (s->milter != NULL && !tx->discard &&
	    (tx->mcopy = evbuffer_new()) == NULL)
		fatalx("smtp: evbuffer_new");
	smtp_reply(s, SMTP_R_DATA, NULL);
	smtp_enter_state(s, SMTP_STATE_DATA);
}

static void	smtp_bdat_chunk_end(struct smtp_session *);

/*
 * BDAT size [LAST] (RFC 3030): the next size octets are a chunk of the
 * message, read as they come (SMTP_STATE_BDAT) and answered once all
 * are in.  A chunk that cannot be taken (no MAIL or RCPT, a failed
 * transaction, the size limit passed) is read all the same, so that the
 * octets are never taken for commands, and its refusal answers it.  A
 * malformed BDAT gives no size to skip: it is refused and ends the
 * transaction, and what follows is read as commands, as Postfix does.
 */
static void
smtp_cmd_bdat(struct smtp_session *s, const char *args)
{
	struct smtp_tx	*tx = s->tx;
	uint64_t	 size;
	int		 last, waiting = 0;
	enum smtp_reply	 r = SMTP_R_OK;

	if (smtp_parse_bdat(args, &size, &last) == -1) {
		log_warnx("BDAT from [%s]: malformed command, session=%s",
		    s->addr, s->sid);
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_BDAT_SYNTAX, NULL);
		return;
	}
	if (s->milter != NULL)
		r = SMTP_R_BDAT_FILTERED;	/* not offered: read, refused */
	else if (tx == NULL)
		r = SMTP_R_NEED_MAIL;
	else if (tx->env.nrcpts == 0)
		r = SMTP_R_NEED_RCPT;
	else if (!tx->bdat) {
		if ((r = smtp_msg_begin(s, "BDAT", 1, &waiting)) != SMTP_R_OK)
			smtp_tx_free(s);
		else
			tx->bdat = 1;
	}
	/* Over the limit already: the chunk is read, then refused. */
	if (r == SMTP_R_OK && tx->error == SMTP_TX_OK &&
	    (size > smtp_conf->max_message_size ||
	    tx->size > smtp_conf->max_message_size - size))
		tx->error = SMTP_TX_TOO_BIG;
	s->chunk_size = size;
	s->chunk_left = size;
	s->chunk_last = last;
	s->chunk_refuse = r;
	/* Its octets stay unread until the spool files are there. */
	if (waiting)
		smtp_enter_state(s, SMTP_STATE_SPOOL);
	else
		smtp_bdat_chunk_start(s);
}

/* A chunk's octets may come (its size and refusal are set). */
static void
smtp_bdat_chunk_start(struct smtp_session *s)
{
	if (s->chunk_size == 0)
		smtp_bdat_chunk_end(s);
	else
		smtp_enter_state(s, SMTP_STATE_BDAT);
}

/* RSET and QUIT take no parameters (RFC 5321 4.1.1.5, 4.1.1.10). */
static void
smtp_cmd_rset(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, SMTP_R_RSET_SYNTAX, NULL);
		return;
	}
	smtp_tx_free(s);
	smtp_reply(s, SMTP_R_OK, NULL);
}

static void
smtp_cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, SMTP_R_OK, NULL);
}

static void
smtp_cmd_quit(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_reply(s, SMTP_R_QUIT_SYNTAX, NULL);
		return;
	}
	smtp_reply(s, SMTP_R_QUIT, NULL);
	s->flags |= SMTP_F_QUIT;
}

static void
smtp_cmd_vrfy(struct smtp_session *s, const char *args)
{
	smtp_reply(s, *args == '\0' ? SMTP_R_VRFY_SYNTAX : SMTP_R_VRFY, NULL);
}

static void
smtp_cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, SMTP_R_HELP, NULL);
}

/*
 * STARTTLS (RFC 3207): answer 220, throw away whatever the client
 * pipelined after the command, and start the handshake once the 220 has
 * left (smtp_write_cb).  Nothing said in plaintext is ever read as if
 * said under TLS.
 */
static void
smtp_cmd_starttls(struct smtp_session *s, const char *args)
{
	struct evbuffer	*in = bufferevent_get_input(smtp_bev(s));

	if (*args != '\0') {
		smtp_reply(s, SMTP_R_TLS_SYNTAX, NULL);
		return;
	}
	if (s->flags & SMTP_F_TLS) {
		smtp_reply(s, SMTP_R_TLS_ACTIVE, NULL);
		return;
	}
	if (smtp_tls_ctx == NULL) {
		smtp_reply(s, SMTP_R_NOT_IMPLEMENTED, NULL);
		return;
	}
	if (s->tx != NULL) {
		smtp_reply(s, SMTP_R_IN_TX, NULL);
		return;
	}
	smtp_reply(s, SMTP_R_TLS_READY, NULL);
	evbuffer_drain(in, evbuffer_get_length(in));
	s->flags |= SMTP_F_STARTTLS;
	smtp_enter_state(s, SMTP_STATE_TLS);
}

/* The 220 has left: hand the socket to TLS. */
static void
smtp_tls_begin(struct smtp_session *s)
{
	struct bufferevent	*tbev;
	char			*cause;

	s->flags &= ~SMTP_F_STARTTLS;
	direct_detach(&s->direct);
	tbev = tls_server_start(smtp_base, smtp_bev(s), -1, smtp_tls_ctx,
	    &cause);
	if (tbev == NULL) {
		log_warnx("STARTTLS from [%s]: %s, session=%s", s->addr,
		    cause, s->sid);
		free(cause);
		smtp_session_close(s, "TLS setup failed");
		return;
	}
	s->bev = tbev;
	smtp_bev_setup(s);
	smtp_enter_state(s, SMTP_STATE_TLS);
	smtp_deadline_start(s);
}

/*
 * The handshake is done: the session starts over (RFC 3207 4.2), HELO
 * and all, now under TLS.
 */
static void
smtp_tls_done(struct smtp_session *s)
{
	log_info("TLS from [%s]: %s with cipher %s, session=%s", s->addr,
	    tls_version(smtp_bev(s)), tls_cipher(smtp_bev(s)), s->sid);
	s->flags |= SMTP_F_TLS;
	s->flags &= ~(SMTP_F_HELO | SMTP_F_EHLO);
	smtp_helo_set(s, NULL);
	smtp_tx_free(s);
	/* Nothing learnt in plaintext holds, an identity least of all. */
	smtp_auth_free(s);
	free(s->user);
	s->user = NULL;
	smtp_enter_state(s, SMTP_STATE_CMD);
	if (s->kind == SMTP_KIND_SMTPS && s->milter == NULL &&
	    !smtp_milter_connect(s))
		smtp_reply(s, SMTP_R_GREETING, smtp_conf->hostname);
}

static void
smtp_auth_free(struct smtp_session *s)
{
	struct smtp_auth	*au = s->auth;

	if (au == NULL)
		return;
	if (au->check != NULL)
		pwcheck_cancel(au->check);
	if (au->dv != NULL)
		dvauth_cancel(au->dv);
	if (au->delay != NULL)
		event_free(au->delay);
	sasl_clear(&au->sasl);
	free(au);
	s->auth = NULL;
}

/* The answer to an exchange is out: take commands again. */
static void
smtp_auth_end(struct smtp_session *s, enum smtp_reply r)
{
	smtp_auth_free(s);
	smtp_enter_state(s, SMTP_STATE_CMD);
	smtp_reply(s, r, NULL);
}

static void
smtp_auth_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->auth_failures >= smtp_conf->auth_max_failures) {
		log_info("too many authentication failures from [%s] "
		    "session=%s", s->addr, s->sid);
		smtp_auth_free(s);
		/* Not counted: this session's last words are the 421. */
		smtp_reply_line(s, smtp_replies[SMTP_R_AUTH_FAILED].code, ' ',
		    smtp_replies[SMTP_R_AUTH_FAILED].esc,
		    smtp_replies[SMTP_R_AUTH_FAILED].text, NULL);
		smtp_reply(s, SMTP_R_AUTH_TOO_MANY, smtp_conf->hostname);
	} else
		smtp_auth_end(s, SMTP_R_AUTH_FAILED);
	smtp_process(s);
	smtp_after(s);
}

/*
 * The credentials are checked.  A failure is answered late, later at
 * each failure of the session, to slow a password guesser down; the
 * password itself is never logged.
 */
static void
smtp_auth_outcome(struct smtp_session *s, int ok, const char *mech,
    const char *user)
{
	struct smtp_auth	*au = s->auth;
	struct timeval		 tv;
	char			 esc[LOG_ESCAPE_SIZE];
	uint64_t		 ms;
	unsigned		 shift;

	log_escape(esc, sizeof esc, user, strlen(user));
	if (ok) {
		log_info("[%s]: authenticated: sasl_method=%s, "
		    "sasl_username=%s, session=%s", s->addr, mech, esc,
		    s->sid);
		s->user = xstrdup(user);
		util_strlcpy(s->auth_mech, mech, sizeof s->auth_mech);
		smtp_auth_end(s, SMTP_R_AUTH_OK);
		return;
	}
	s->auth_failures++;
	log_mail("smtpd", "warning: unknown[%s]: SASL %s authentication "
	    "failed: authentication failure, sasl_username=%s, session=%s",
	    s->addr, mech, esc, s->sid);
	smtp_anvil_auth_failed(s, user);
	shift = s->auth_failures - 1 < 10 ? s->auth_failures - 1 : 10;
	ms = smtp_conf->auth_failure_delay << shift;
	if (ms > 60 * 1000)
		ms = 60 * 1000;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	au->delay = evtimer_new(smtp_base, smtp_auth_delay_cb, s);
	if (au->delay == NULL)
		fatalx("smtp: evtimer_new");
	smtp_enter_state(s, SMTP_STATE_AUTH_CHECK);
	evtimer_add(au->delay, &tv);
}

/* The users file's answer, for the identity the exchange gave. */
static void
smtp_auth_result(struct smtp_session *s, int ok)
{
	smtp_auth_outcome(s, ok, sasl_mech_str(s->auth->sasl.mech),
	    sasl_user(&s->auth->sasl));
}

static void
smtp_auth_check_cb(int ok, void *arg)
{
	struct smtp_session	*s = arg;

	s->auth->check = NULL;
	smtp_auth_result(s, ok && !s->auth->doomed);
	smtp_process(s);
	smtp_after(s);
}

/* The exchange has given a user and a secret: check them. */
static void
smtp_auth_verify(struct smtp_session *s)
{
	struct smtp_auth	*au = s->auth;
	const char		*user = sasl_user(&au->sasl);
	const char		*authzid = sasl_authzid(&au->sasl);
	char			 secret[512];
	int			 ok = 0;

	if (smtp_anvil(s, anvil_auth_allowed(smtp_sa(s), user,
	    anvil_now()))) {
		smtp_auth_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_AUTH_CHECK);
	if (authzid != NULL && *authzid != '\0' && strcmp(authzid, user) != 0) {
		smtp_auth_result(s, 0);
		return;
	}
	if (au->sasl.mech == SASL_MECH_CRAM_MD5) {
		if (users_cram_secret(smtp_users, user, secret,
		    sizeof secret) == 0)
			ok = sasl_cram_verify(&au->sasl, secret, strlen(secret));
		explicit_bzero(secret, sizeof secret);
		smtp_auth_result(s, ok);
		return;
	}
	/*
	 * An unknown user, or one who may not log in, is checked against
	 * a hash all the same, so that failing takes as long for all.
	 */
	if (users_stored_secret(smtp_users, user, secret, sizeof secret) == -1 ||
	    secret[0] == '\0') {
		if (smtp_dummy_hash[0] == '\0') {
			smtp_auth_result(s, 0);
			return;
		}
		au->doomed = 1;
		util_strlcpy(secret, smtp_dummy_hash, sizeof secret);
	}
	/* Blocking for tens of milliseconds by design: off the loop. */
	au->check = pwcheck_start(secret, sasl_password(&au->sasl),
	    smtp_auth_check_cb, s);
	explicit_bzero(secret, sizeof secret);
}

/* One step of the exchange, on the command's argument or a client line. */
static void
smtp_auth_step(struct smtp_session *s, const char *in)
{
	char		 out[SMTP_LINE_MAX];
	enum sasl_result r;

	r = sasl_step(&s->auth->sasl, in, out, sizeof out);
	switch (r) {
	case SASL_CONTINUE:
		smtp_enter_state(s, SMTP_STATE_AUTH);
		smtp_reply(s, SMTP_R_AUTH_CHALLENGE, out);
		break;
	case SASL_DONE:
		smtp_auth_verify(s);
		break;
	case SASL_CANCEL:
		smtp_auth_end(s, SMTP_R_AUTH_CANCEL);
		break;
	case SASL_BAD:
		smtp_auth_end(s, SMTP_R_AUTH_BAD);
		break;
	}
}

/*
 * Dovecot cannot answer: 454, not counted as a failure, and said in the
 * log so that the administrator learns why logins fail.
 */
static void
smtp_auth_dovecot_temp(struct smtp_session *s, const char *why)
{
	char	esc[LOG_ESCAPE_SIZE];

	log_escape(esc, sizeof esc, why, strlen(why));
	log_warnx("AUTH from [%s]: Dovecot authentication unavailable: %s, "
	    "session=%s", s->addr, esc, s->sid);
	smtp_auth_end(s, SMTP_R_AUTH_TEMP);
}

/* The 334 of a challenge from Dovecot, as long as Dovecot made it. */
static void
smtp_reply_challenge(struct smtp_session *s, const char *b64)
{
	struct evbuffer	*out = bufferevent_get_output(smtp_bev(s));

	if (log_is_debug())
		log_debug("smtp [%s]: >>> 334 (%zu octets)", s->addr,
		    strlen(b64));
	evbuffer_add_printf(out, "334 %s\r\n", b64);
}

/*
 * Dovecot's answer.  The per-account limit is applied to the name it
 * gives, whether the password was right or not, so that during a
 * penalty both get the same 454.
 */
static void
smtp_auth_dovecot_cb(enum dvauth_result r, const char *data,
    const char *reason, void *arg)
{
	struct smtp_session	*s = arg;
	struct smtp_auth	*au = s->auth;

	if (r != DVAUTH_CONTINUE)
		au->dv = NULL;
	switch (r) {
	case DVAUTH_CONTINUE:
		smtp_enter_state(s, SMTP_STATE_AUTH);
		smtp_reply_challenge(s, data);
		break;
	case DVAUTH_TEMP:
		/* A client owing a line gets the 454 once it has sent it. */
		if (s->state == SMTP_STATE_AUTH)
			break;
		smtp_auth_dovecot_temp(s, reason != NULL ? reason :
		    "temporary failure");
		break;
	case DVAUTH_OK:
	case DVAUTH_FAIL:
		if (data != NULL && smtp_anvil(s, anvil_auth_allowed(smtp_sa(s),
		    data, anvil_now()))) {
			smtp_auth_free(s);
			smtp_enter_state(s, SMTP_STATE_CMD);
			break;
		}
		smtp_auth_outcome(s, r == DVAUTH_OK, au->mech,
		    data != NULL ? data : "");
		break;
	}
	smtp_process(s);
	smtp_after(s);
}

/* A line of the client during a Dovecot exchange: "*" or base64. */
static void
smtp_auth_dovecot_line(struct smtp_session *s, const char *line)
{
	if (strcmp(line, "*") == 0) {
		smtp_auth_end(s, SMTP_R_AUTH_CANCEL);
		return;
	}
	if (s->auth->dv == NULL) {
		smtp_auth_dovecot_temp(s, "connection lost during the "
		    "exchange");
		return;
	}
	if (!dvproto_is_base64(line)) {
		smtp_auth_end(s, SMTP_R_AUTH_BAD);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_AUTH_CHECK);
	if (dvauth_continue(s->auth->dv, line) == -1)
		smtp_auth_end(s, SMTP_R_AUTH_BAD);
}

/* AUTH with Dovecot: mech is one it announced, ir as the client gave. */
static void
smtp_auth_dovecot_start(struct smtp_session *s, const char *mech,
    const char *ir)
{
	struct dvauth_params	p;
	struct sockaddr_storage	local;
	socklen_t		len = sizeof local;

	if (ir != NULL && strcmp(ir, "=") != 0 && !dvproto_is_base64(ir)) {
		smtp_reply(s, SMTP_R_AUTH_BAD, NULL);
		return;
	}
	s->auth = xcalloc(1, sizeof *s->auth);
	s->auth->dovecot = 1;
	util_strlcpy(s->auth->mech, mech, sizeof s->auth->mech);
	memset(&p, 0, sizeof p);
	p.mech = mech;
	p.resp = ir == NULL ? NULL : strcmp(ir, "=") == 0 ? "" : ir;
	if (getsockname(bufferevent_getfd(smtp_bev(s)),
	    (struct sockaddr *)&local, &len) == 0)
		p.local = (struct sockaddr *)&local;
	p.remote = smtp_sa(s);
	p.secured = (s->flags & SMTP_F_TLS) != 0;
	p.session = s->sid;
	smtp_enter_state(s, SMTP_STATE_AUTH_CHECK);
	if ((s->auth->dv = dvauth_start(&p, smtp_auth_dovecot_cb, s)) ==
	    NULL) {
		dvauth_kick();
		smtp_auth_dovecot_temp(s, "not connected");
	}
}

/* AUTH mechanism [initial-response] (RFC 4954). */
static void
smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	char		 mech[32];
	const char	*ir, *dmech;
	size_t		 len;
	enum sasl_mech	 m;

	if (s->user != NULL) {
		smtp_reply(s, SMTP_R_AUTH_DONE, NULL);
		return;
	}
	if (smtp_auth_dovecot() && smtp_may_auth(s) &&
	    !smtp_offers_auth(s)) {
		/* Dovecot away: its mechanisms are unknown until it is back. */
		dvauth_kick();
		log_warnx("AUTH from [%s]: Dovecot authentication "
		    "unavailable, session=%s", s->addr, s->sid);
		smtp_reply(s, SMTP_R_AUTH_TEMP, NULL);
		return;
	}
	if (!smtp_offers_auth(s)) {
		smtp_reply(s, (smtp_users != NULL || smtp_auth_dovecot()) &&
		    smtp_tls_ctx != NULL && !(s->flags & SMTP_F_TLS) ?
		    SMTP_R_NEED_TLS : SMTP_R_AUTH_OFF, NULL);
		return;
	}
	if (s->tx != NULL) {
		smtp_reply(s, SMTP_R_IN_TX, NULL);
		return;
	}
	if (smtp_anvil(s, anvil_auth_allowed(smtp_sa(s), NULL, anvil_now())))
		return;
	len = strcspn(args, " ");
	if (len == 0 || len >= sizeof mech) {
		smtp_reply(s, len == 0 ? SMTP_R_AUTH_SYNTAX : SMTP_R_AUTH_MECH,
		    NULL);
		return;
	}
	memcpy(mech, args, len);
	mech[len] = '\0';
	ir = args[len] == ' ' ? args + len + 1 : NULL;
	if (ir != NULL && (*ir == '\0' || strchr(ir, ' ') != NULL)) {
		smtp_reply(s, SMTP_R_AUTH_SYNTAX, NULL);
		return;
	}
	if (smtp_auth_dovecot()) {
		if ((dmech = dvauth_find_mech(mech)) == NULL ||
		    !smtp_dovecot_allows(dmech)) {
			smtp_reply(s, SMTP_R_AUTH_MECH, NULL);
			return;
		}
		smtp_auth_dovecot_start(s, dmech, ir);
		return;
	}
	if (sasl_mech_parse(mech, &m) == -1 ||
	    !(smtp_auth_mechs() & 1 << m)) {
		smtp_reply(s, SMTP_R_AUTH_MECH, NULL);
		return;
	}
	s->auth = xcalloc(1, sizeof *s->auth);
	sasl_start(&s->auth->sasl, m, smtp_conf->hostname);
	smtp_auth_step(s, ir);
}

/*
 * ETRN domain, or @domain for it and its subdomains (RFC 1985): deliver
 * what waits for it now.  Only for the clients of etrn_networks.
 */
static void
smtp_cmd_etrn(struct smtp_session *s, const char *args)
{
	const char	*node = args;
	char		 text[LOG_ESCAPE_SIZE + 64], esc[LOG_ESCAPE_SIZE];
	size_t		 n, i;
	int		 sub = 0;

	if (s->tx != NULL) {
		smtp_reply(s, SMTP_R_IN_TX, NULL);
		return;
	}
	if (*node == '@') {
		sub = 1;
		node++;
	}
	if (*node == '\0' || *node == '#' || strlen(node) >= ADDR_DOMAIN_SIZE) {
		smtp_reply(s, SMTP_R_ETRN_SYNTAX, NULL);
		return;
	}
	for (i = 0; node[i] != '\0'; i++) {
		if (!isalnum((unsigned char)node[i]) && node[i] != '.' &&
		    node[i] != '-') {
			smtp_reply(s, SMTP_R_ETRN_SYNTAX, NULL);
			return;
		}
	}
	log_escape(esc, sizeof esc, node, strlen(node));
	if (smtp_etrn == NULL || s->kind != SMTP_KIND_MX ||
	    !config_is_etrn_client(smtp_conf,
	    (const struct sockaddr *)&s->ss)) {
		smtp_log_reject(s, "ETRN", SMTP_R_ETRN_DENIED, esc, NULL,
		    NULL);
		smtp_reply(s, SMTP_R_ETRN_DENIED, esc);
		return;
	}
	if (s->flags & SMTP_F_DRAIN) {
		smtp_reply(s, SMTP_R_ETRN_UNABLE, esc);
		return;
	}
	n = smtp_etrn(node, sub);
	log_info("ETRN from [%s]: %s%s: %zu messages, session=%s", s->addr,
	    sub ? "@" : "", esc, n, s->sid);
	if (n == 0) {
		smtp_reply(s, SMTP_R_ETRN_NONE, esc);
		return;
	}
	snprintf(text, sizeof text, "%zu pending messages for node %s", n,
	    esc);
	smtp_reply(s, SMTP_R_ETRN_STARTED, text);
}

static void
smtp_cmd_unimplemented(struct smtp_session *s, const char *args)
{
	smtp_reply(s, SMTP_R_NOT_IMPLEMENTED, NULL);
}

/* Check a verb's policy flags, then run its handler. */
static void
smtp_dispatch(struct smtp_session *s, char *line)
{
	const struct smtp_verb_entry	*v = NULL;
	struct smtp_cmd			 cmd;
	char				 esc[LOG_ESCAPE_SIZE];
	size_t				 i, len;
	int				 rc;

	s->commands++;
	rc = smtp_parse_cmd(line, &cmd);
	if (cmd.verb != SMTP_VERB_QUIT)
		s->flags |= SMTP_F_SERVED;
	/*
	 * Credentials are never logged: an AUTH initial response, nor a
	 * line that is no command (a SASL answer sent after AUTH failed).
	 */
	len = strlen(line);
	if (cmd.verb == SMTP_VERB_AUTH && len > 5)
		len = 5 + strcspn(line + 5, " ");	/* "AUTH mech" */
	if (cmd.verb == SMTP_VERB_UNKNOWN)
		log_debug("smtp [%s]: <<< (not a command, %zu octets)",
		    s->addr, len);
	else
		log_debug("smtp [%s]: <<< %s", s->addr, log_escape(esc,
		    sizeof esc, line, len));
	for (i = 0; i < nitems(smtp_verbs); i++) {
		if (smtp_verbs[i].verb == cmd.verb)
			v = &smtp_verbs[i];
	}
	if (v == NULL) {
		smtp_reply(s, SMTP_R_UNKNOWN, NULL);
		return;
	}
	if ((v->flags & SMTP_V_NEEDS_HELO) && !(s->flags & SMTP_F_HELO)) {
		smtp_reply(s, SMTP_R_NEED_HELO, NULL);
		return;
	}
	if ((v->flags & SMTP_V_NEEDS_MAIL) && s->tx == NULL) {
		smtp_reply(s, SMTP_R_NEED_MAIL, NULL);
		return;
	}
	if ((v->flags & SMTP_V_NEEDS_RCPT) && s->tx->env.nrcpts == 0) {
		smtp_reply(s, SMTP_R_NEED_RCPT, NULL);
		return;
	}
	if (rc == -1) {
		smtp_reply(s, cmd.verb == SMTP_VERB_MAIL ?
		    SMTP_R_MAIL_SYNTAX : SMTP_R_RCPT_SYNTAX, NULL);
		return;
	}
	v->handler(s, cmd.args);
}

/*
 * Take one command line off the input.  Returns 0 when a line was
 * handled, -1 when more input is needed.
 */
static int
smtp_process_line(struct smtp_session *s)
{
	struct evbuffer		*in = bufferevent_get_input(smtp_bev(s));
	struct evbuffer_ptr	 eol;
	size_t			 eol_len, len, max;
	enum smtp_line		 rc;
	int			 auth = s->state == SMTP_STATE_AUTH;

	max = auth ? SMTP_AUTH_LINE_MAX : SMTP_LINE_MAX;
	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) > 0)
			smtp_deadline_line(s, 1);
		/* No end yet: an overlong line is dropped as it comes. */
		if (evbuffer_get_length(in) > max) {
			s->flags |= SMTP_F_DISCARD;
			evbuffer_drain(in, evbuffer_get_length(in));
		}
		return -1;
	}
	len = (size_t)eol.pos + 1;
	if ((s->flags & SMTP_F_DISCARD) || len > max) {
		s->flags &= ~SMTP_F_DISCARD;
		evbuffer_drain(in, len);
		if (auth)
			smtp_auth_end(s, SMTP_R_AUTH_BAD);
		else
			smtp_reply(s, SMTP_R_LINE_TOO_LONG, NULL);
		return 0;
	}
	evbuffer_remove(in, smtp_line, len);
	if ((rc = smtp_parse_line(smtp_line, len)) != SMTP_LINE_OK) {
		explicit_bzero(smtp_line, len);
		if (auth)
			smtp_auth_end(s, SMTP_R_AUTH_BAD);
		else
			smtp_reply(s, rc == SMTP_LINE_NUL ? SMTP_R_NUL_CMD :
			    SMTP_R_BARE_NEWLINE, NULL);
		return 0;
	}
	smtp_line[len - 2] = '\0';
	if (auth && s->auth->dovecot)
		smtp_auth_dovecot_line(s, smtp_line);
	else if (auth)
		smtp_auth_step(s, smtp_line);
	else
		smtp_dispatch(s, smtp_line);
	/* It may have held a secret. */
	explicit_bzero(smtp_line, len);
	smtp_deadline_line(s, 0);
	return 0;
}

static int	smtp_write_missing(struct smtp_session *);
static int	smtp_msg_write(struct smtp_session *, const void *, size_t);
static void	smtp_tx_commit(struct smtp_session *);

/* Why the message received so far cannot be queued, or SMTP_R_OK. */
static enum smtp_reply
smtp_tx_reply(const struct smtp_tx *tx)
{
	if (tx->dot.error == SMTP_DATA_LINE_TOO_LONG)
		return SMTP_R_DATA_LONG_LINE;
	if (tx->dot.error == SMTP_DATA_NUL)
		return SMTP_R_DATA_NUL;
	if (tx->dot.error != SMTP_DATA_OK)
		return SMTP_R_DATA_BARE;
	if (tx->error == SMTP_TX_TOO_BIG)
		return SMTP_R_SIZE;
	if (tx->error == SMTP_TX_WRITE)
		return SMTP_R_SPOOL_ERROR;
	if (tx->error == SMTP_TX_NO_ROOM)
		return SMTP_R_NO_ROOM;
	return SMTP_R_OK;
}

/*
 * The whole message has arrived (the final dot of DATA, or the last BDAT
 * chunk): refuse it, or ask for a commit.  Both ways of receiving a
 * message end here.
 */
static void
smtp_data_end(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	enum smtp_reply	 r;

	/* All header section, no body: the fields go at the end. */
	if (tx->add_hdrs && tx->error == SMTP_TX_OK &&
	    tx->dot.error == SMTP_DATA_OK && hdrscan_open(&tx->hs) &&
	    tx->hs.seen != HDRSCAN_ALL && smtp_write_missing(s) == -1)
		tx->error = smtp_spool_reply(errno) == SMTP_R_NO_ROOM ?
		    SMTP_TX_NO_ROOM : SMTP_TX_WRITE;
	if ((r = smtp_tx_reply(tx)) != SMTP_R_OK) {
		smtp_log_reject(s, tx->bdat ? "BDAT" : "DATA", r, NULL, NULL,
		    NULL);
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_reply(s, r, NULL);
		return;
	}
	if (!smtp_milter_message(s))
		smtp_tx_commit(s);
}

/* The message is as it will be queued: ask the spool for a commit. */
static void
smtp_tx_commit(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	util_strlcpy(tx->env.id, tx->id, sizeof tx->env.id);
	tx->env.arrival = time(NULL);
	tx->env.next_attempt = tx->env.arrival;
	tx->env.size = queue_msg_size(tx->msg);
	util_strlcpy(tx->env.client_addr, s->addr, sizeof tx->env.client_addr);
	util_strlcpy(tx->env.helo, smtp_helo(s), sizeof tx->env.helo);
	util_strlcpy(tx->env.protocol, smtp_protocol(s),
	    sizeof tx->env.protocol);
	smtp_enter_state(s, SMTP_STATE_COMMIT);
	tx->commit = queue_msg_commit(tx->msg, &tx->env, smtp_commit_cb, s);
	tx->msg = NULL;			/* the commit owns it now */
}

/*
 * RFC 6409 section 8: the Date and Message-ID a submitted message lacks,
 * at the end of its header section.
 */
static int
smtp_write_missing(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	char		 hdr[512], date[64], stamp[32];
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 n = 0;

	localtime_r(&now, &tm);
	if (!(tx->hs.seen & HDRSCAN_DATE)) {
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
		n = snprintf(hdr, sizeof hdr, "Date: %s\r\n", date);
	}
	if (!(tx->hs.seen & HDRSCAN_MSGID)) {
		strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
		n += snprintf(hdr + n, sizeof hdr - n, "Message-ID: <%s.%s@%s>"
		    "\r\n", tx->id, stamp, smtp_conf->hostname);
	}
	if ((size_t)n >= sizeof hdr)
		n = (int)strlen(hdr);
	tx->size += (size_t)n;
	return smtp_msg_write(s, hdr, (size_t)n);
}

/* Store a piece of the message, and keep a copy for the filters. */
static int
smtp_msg_write(struct smtp_session *s, const void *p, size_t len)
{
	if (s->tx->mcopy != NULL && evbuffer_add(s->tx->mcopy, p, len) == -1)
		fatalx("smtp: evbuffer_add");
	return queue_msg_write(s->tx->msg, p, len);
}

/* Store a piece of the message, adding missing fields where due. */
static int
smtp_data_write(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_tx	*tx = s->tx;
	ssize_t		 end;

	if (!tx->add_hdrs || (end = hdrscan_feed(&tx->hs, p, len)) == -1)
		return smtp_msg_write(s, p, len);
	tx->add_hdrs = 0;
	if (tx->hs.bad || tx->hs.seen == HDRSCAN_ALL)
		return smtp_msg_write(s, p, len);
	if (smtp_msg_write(s, p, (size_t)end) == -1 ||
	    smtp_write_missing(s) == -1)
		return -1;
	return smtp_msg_write(s, p + end, len - (size_t)end);
}

/*
 * Store what the machine made of the input, unless the message already
 * failed: its size is checked first, and nothing is written past it.
 */
static void
smtp_msg_store(struct smtp_session *s, const char *p, size_t len)
{
	struct smtp_tx	*tx = s->tx;

	if (tx->error != SMTP_TX_OK || tx->dot.error != SMTP_DATA_OK)
		return;
	tx->size += len;
	if (tx->size > smtp_conf->max_message_size)
		tx->error = SMTP_TX_TOO_BIG;
	else if (smtp_data_write(s, p, len) == -1) {
		log_warn("[%s] session=%s: queue file write", s->addr, s->sid);
		tx->error = smtp_spool_reply(errno) == SMTP_R_NO_ROOM ?
		    SMTP_TX_NO_ROOM : SMTP_TX_WRITE;
	}
}

/* Feed what has arrived of the message to the dot machine. */
static void
smtp_process_data(struct smtp_session *s)
{
	struct evbuffer		*in = bufferevent_get_input(smtp_bev(s));
	struct evbuffer_iovec	 v;
	struct smtp_tx		*tx = s->tx;
	size_t			 consumed, outlen, chunk;
	int			 rc;

	while (s->state == SMTP_STATE_DATA && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		chunk = v.iov_len > SMTP_DATA_CHUNK ? SMTP_DATA_CHUNK :
		    v.iov_len;
		rc = smtp_data_feed(&tx->dot, v.iov_base, chunk, &consumed,
		    smtp_data_out, &outlen);
		smtp_msg_store(s, smtp_data_out, outlen);
		evbuffer_drain(in, consumed);
		if (rc == SMTP_DATA_END)
			smtp_data_end(s);
		else
			smtp_deadline_data(s, consumed);
	}
}

/*
 * A BDAT chunk is all in.  A refused one gets its refusal; a failed
 * message its error, which ends the transaction (RFC 3030 2: the client
 * sends no more chunks for it); the last one ends the message.
 */
static void
smtp_bdat_chunk_end(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;
	enum smtp_reply	 r = (enum smtp_reply)s->chunk_refuse;
	char		 octets[32];
	size_t		 outlen;

	if (r != SMTP_R_OK) {
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_reply(s, r, NULL);
		return;
	}
	if (s->chunk_last) {
		smtp_data_finish(&tx->dot, smtp_data_out, &outlen);
		smtp_msg_store(s, smtp_data_out, outlen);
		smtp_data_end(s);
		return;
	}
	if ((r = smtp_tx_reply(tx)) != SMTP_R_OK) {
		smtp_log_reject(s, "BDAT", r, NULL, NULL, NULL);
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_reply(s, r, NULL);
		return;
	}
	snprintf(octets, sizeof octets, "%" PRIu64, s->chunk_size);
	smtp_enter_state(s, SMTP_STATE_CMD);
	smtp_reply(s, SMTP_R_CHUNK_OK, octets);
}

/*
 * Feed what has arrived of a BDAT chunk to the machine, never more than
 * the chunk; a refused chunk or a failed message's is only read.
 */
static void
smtp_process_bdat(struct smtp_session *s)
{
	struct evbuffer		*in = bufferevent_get_input(smtp_bev(s));
	struct evbuffer_iovec	 v;
	size_t			 consumed, outlen, n;

	while (s->state == SMTP_STATE_BDAT && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len > SMTP_DATA_CHUNK ? SMTP_DATA_CHUNK : v.iov_len;
		if (n > s->chunk_left)
			n = (size_t)s->chunk_left;
		if (s->chunk_refuse == SMTP_R_OK &&
		    s->tx->error == SMTP_TX_OK &&
		    s->tx->dot.error == SMTP_DATA_OK) {
			smtp_data_feed(&s->tx->dot, v.iov_base, n, &consumed,
			    smtp_data_out, &outlen);
			smtp_msg_store(s, smtp_data_out, outlen);
		}
		evbuffer_drain(in, n);
		s->chunk_left -= n;
		if (s->chunk_left == 0)
			smtp_bdat_chunk_end(s);
		else
			smtp_deadline_data(s, n);
	}
}

/* Work through buffered input until it runs out or we must wait. */
static void
smtp_process(struct smtp_session *s)
{
	struct evbuffer	*out = bufferevent_get_output(smtp_bev(s));

	while (!(s->flags & SMTP_F_QUIT)) {
		if (evbuffer_get_length(out) > SMTP_OUTPUT_HIWAT) {
			s->flags |= SMTP_F_PAUSED;
			bufferevent_disable(smtp_bev(s), EV_READ);
			return;
		}
		if (s->state == SMTP_STATE_DATA) {
			smtp_process_data(s);
			if (s->state == SMTP_STATE_DATA)
				return;
			continue;
		}
		if (s->state == SMTP_STATE_BDAT) {
			smtp_process_bdat(s);
			if (s->state == SMTP_STATE_BDAT)
				return;
			continue;
		}
		if (s->state != SMTP_STATE_CMD && s->state != SMTP_STATE_AUTH)
			return;
		if ((s->flags & SMTP_F_DRAIN) && s->state == SMTP_STATE_CMD) {
			smtp_tx_free(s);
			smtp_reply(s, SMTP_R_SHUTDOWN, smtp_conf->hostname);
			return;
		}
		if (smtp_process_line(s) == -1)
			return;
	}
}

/* Last step of every callback: close if the session is done. */
static void
smtp_after(struct smtp_session *s)
{
	if (!(s->flags & SMTP_F_QUIT))
		return;
	if (s->state != SMTP_STATE_CLOSING)
		smtp_enter_state(s, SMTP_STATE_CLOSING);
	if (evbuffer_get_length(bufferevent_get_output(smtp_bev(s))) == 0)
		smtp_session_close(s, "done");
}

static void
smtp_commit_cb(void *arg, int error)
{
	struct smtp_session	*s = arg;
	struct smtp_tx		*tx = s->tx;

	tx->commit = NULL;
	if (error != 0) {
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_reply(s, smtp_spool_reply(error), NULL);
	} else {
		smtp_committed(&tx->env, tx->hold, s->sid);
		smtp_reply(s, SMTP_R_QUEUED, tx->id);
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
	}
	smtp_process(s);
	smtp_after(s);
}

/*
 * A message is in the queue: logged, then held (a filter's quarantine)
 * or handed to delivery.  Its session may be gone (smtp_orphan_cb()).
 */
static void
smtp_committed(const struct envelope *env, int hold, const char *sid)
{
	char	esc[LOG_ESCAPE_SIZE];

	log_mail("smtpd", "%s: client=[%s], helo=%s, session=%s", env->id,
	    env->client_addr, log_escape(esc, sizeof esc, env->helo,
	    strlen(env->helo)), sid);
	log_mail("qmgr", "%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu "
	    "(queue active)", env->id, log_escape(esc, sizeof esc,
	    env->sender, strlen(env->sender)), env->size, env->nrcpts);
	if (hold) {
		/* Blocking: two renames and a directory sync, as ternctl. */
		if (queue_hold(env->id) == -1)
			log_warn("%s: cannot hold", env->id);
		else
			log_info("%s: held", env->id);
	} else if (smtp_queued != NULL)
		smtp_queued(env);
}

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	smtp_process(s);
	smtp_after(s);
}

/*
 * Output drained, by direct.c or the bufferevent: resume a paused
 * reader, or finish closing.
 */
static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	direct_written(&s->direct);
	if (s->flags & SMTP_F_QUIT) {
		smtp_after(s);
		return;
	}
	if (s->flags & SMTP_F_STARTTLS) {
		smtp_tls_begin(s);
		return;
	}
	if (s->flags & SMTP_F_PAUSED) {
		s->flags &= ~SMTP_F_PAUSED;
		if (s->state == SMTP_STATE_CMD ||
		    s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT)
			bufferevent_enable(smtp_bev(s), EV_READ);
		smtp_process(s);
		smtp_after(s);
		return;
	}
	if (smtp_parkable(s))
		smtp_park(s);
}

static void
smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;
	char			 err[TLS_ERROR_SIZE], reason[TLS_ERROR_SIZE + 32];

	if (what & BEV_EVENT_CONNECTED) {
		smtp_tls_done(s);
		smtp_process(s);
		smtp_after(s);
		return;
	}
	if (s->state == SMTP_STATE_TLS && (what & BEV_EVENT_ERROR)) {
		snprintf(reason, sizeof reason, "TLS handshake failed: %s",
		    tls_error(smtp_bev(s), err, sizeof err));
		smtp_session_close(s, reason);
		return;
	}
	/* Only writes have a bufferevent timeout; the rest is a deadline. */
	if (what & BEV_EVENT_TIMEOUT) {
		smtp_session_close(s, "write timeout");
		return;
	}
	if (what & BEV_EVENT_EOF)
		smtp_session_close(s, s->state == SMTP_STATE_DATA ?
		    "lost connection after DATA" :
		    s->state == SMTP_STATE_BDAT ? "lost connection after BDAT" :
		    "disconnect");
	else
		smtp_session_close(s, "connection error");
}

/*
 * A deadline has passed.  No reply can pass a handshake that never ends,
 * nor one to a client that does not read: those just close.
 */
static void
smtp_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state == SMTP_STATE_TLS) {
		smtp_session_close(s, "timeout during the TLS handshake");
		return;
	}
	if (s->state == SMTP_STATE_CLOSING) {
		smtp_session_close(s, "write timeout");
		return;
	}
	log_info("timeout after %s from [%s]%s session=%s",
	    smtp_states[s->state].name, s->addr,
	    smtp_stress ? " (stress)" : "", s->sid);
	smtp_reply(s, SMTP_R_TIMEOUT, smtp_conf->hostname);
	smtp_after(s);
}

/*
 * Content filters.  A session with filters opens its chain before the
 * greeting; then HELO/EHLO, MAIL, RCPT, DATA and the end of the message
 * each wait in SMTP_STATE_MILTER for the chain's verdict before their
 * reply.  The message is kept in memory as it is stored, so that filters
 * can read it and their changes can be written over the stored copy
 * before the commit: the 250 covers the message as filtered.
 */

/* A filters' refusal, in Postfix's layout ("milter-reject: ..."). */
static void
smtp_milter_log(struct smtp_session *s, const char *what, const char *verb,
    const char *text, const char *to)
{
	const char	*from = s->tx != NULL ? s->tx->env.sender : NULL;
	char		 esc[LOG_ESCAPE_SIZE], sender[LOG_ESCAPE_SIZE];
	char		 rcpt[LOG_ESCAPE_SIZE], helo[LOG_ESCAPE_SIZE];
	const char	*qid = "NOQUEUE";

	if (s->tx != NULL && s->tx->msg != NULL && s->tx->id[0] != '\0')
		qid = s->tx->id;
	if (to == NULL && s->tx != NULL && s->tx->env.nrcpts > 0)
		to = s->tx->env.rcpts[0].addr;
	log_escape(esc, sizeof esc, text, strlen(text));
	if (from != NULL)
		log_escape(sender, sizeof sender, from, strlen(from));
	if (to != NULL)
		log_escape(rcpt, sizeof rcpt, to, strlen(to));
	log_escape(helo, sizeof helo, smtp_helo(s), strlen(smtp_helo(s)));
	log_mail("smtpd", "%s: milter-%s: %s from unknown[%s]: %s;%s%s%s%s%s%s"
	    " proto=%s%s%s%s session=%s", qid, what, verb, s->addr, esc,
	    from != NULL ? " from=<" : "", from != NULL ? sender : "",
	    from != NULL ? ">" : "", to != NULL ? " to=<" : "",
	    to != NULL ? rcpt : "", to != NULL ? ">" : "",
	    s->flags & SMTP_F_EHLO ? "ESMTP" : "SMTP",
	    s->helo != NULL ? " helo=<" : "", s->helo != NULL ? helo : "",
	    s->helo != NULL ? ">" : "", s->sid);
}

/* The filters' reply, lines as they gave them; counted as an error. */
static void
smtp_milter_answer(struct smtp_session *s, const char *reply)
{
	struct evbuffer	*out = bufferevent_get_output(smtp_bev(s));
	char		 esc[LOG_ESCAPE_SIZE];

	s->errors++;
	if (log_is_debug())
		log_debug("smtp [%s]: >>> %s", s->addr,
		    log_escape(esc, sizeof esc, reply, strlen(reply)));
	evbuffer_add(out, reply, strlen(reply));
	if (strncmp(reply, "421", 3) == 0)
		s->flags |= SMTP_F_QUIT;
}

/* A refusal of a step: log it and answer with the filter's reply. */
static void
smtp_milter_refuse(struct smtp_session *s, const char *verb,
    const struct milter_reply *r, const char *to)
{
	char	text[MILTER_REPLY_SIZE + 32];

	snprintf(text, sizeof text, "%d %s%s%s", r->code, r->esc,
	    r->esc[0] != '\0' ? " " : "", r->text);
	smtp_milter_log(s, "reject", verb, text, to);
	smtp_milter_answer(s, r->smtp);
}

/* A local address of the session for {daemon_addr} and {if_addr}. */
static void
smtp_milter_local(struct smtp_session *s, char *buf, size_t size)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof ss;
	const void		*ip;

	buf[0] = '\0';
	if (getsockname(bufferevent_getfd(smtp_bev(s)), (struct sockaddr *)&ss,
	    &len) == -1)
		return;
	if (ss.ss_family == AF_INET6)
		ip = &((struct sockaddr_in6 *)&ss)->sin6_addr;
	else if (ss.ss_family == AF_INET)
		ip = &((struct sockaddr_in *)&ss)->sin_addr;
	else
		return;
	if (inet_ntop(ss.ss_family, ip, buf, size) == NULL)
		buf[0] = '\0';
	if (strncmp(buf, "::ffff:", 7) == 0 && strchr(buf, '.') != NULL)
		memmove(buf, buf + 7, strlen(buf + 7) + 1);
}

static void	smtp_milter_cb(const struct milter_reply *, void *);

/* Wait for the filters: 1 when a step was started. */
static int
smtp_milter_wait(struct smtp_session *s, enum smtp_milter_step step)
{
	s->milter_step = step;
	smtp_enter_state(s, SMTP_STATE_MILTER);
	return 1;
}

/* The session begins: open the chain and wait before the greeting. */
static int
smtp_milter_connect(struct smtp_session *s)
{
	struct milter_client	 cl;
	char			 sid[32], local[64], port[8], underscore[96];
	uint16_t		 p = 0;

	snprintf(sid, sizeof sid, "session=%s", s->sid);
	s->milter = milter_chain_new(smtp_base, smtp_conf, MILTER_LIST_SMTPD,
	    sid);
	if (s->milter == NULL)
		return 0;
	if (s->ss.ss_family == AF_INET6)
		p = ntohs(((struct sockaddr_in6 *)&s->ss)->sin6_port);
	else if (s->ss.ss_family == AF_INET)
		p = ntohs(((struct sockaddr_in *)&s->ss)->sin_port);
	smtp_milter_local(s, local, sizeof local);
	snprintf(port, sizeof port, "%u", p);
	snprintf(underscore, sizeof underscore, "unknown [%s]", s->addr);
	milter_chain_macro(s->milter, "j", smtp_conf->hostname);
	milter_chain_macro(s->milter, "_", underscore);
	milter_chain_macro(s->milter, "{daemon_name}", smtp_conf->hostname);
	milter_chain_macro(s->milter, "{daemon_addr}", local);
	milter_chain_macro(s->milter, "{if_addr}", local);
	milter_chain_macro(s->milter, "{if_name}", smtp_conf->hostname);
	milter_chain_macro(s->milter, "{client_addr}", s->addr);
	milter_chain_macro(s->milter, "{client_name}", "unknown");
	milter_chain_macro(s->milter, "{client_ptr}", "unknown");
	milter_chain_macro(s->milter, "{client_port}", port);
	milter_chain_macro(s->milter, "v", "tern " PACKAGE_VERSION);
	cl.name = "unknown";
	cl.addr = s->addr;
	cl.port = p;
	milter_chain_connect(s->milter, &cl, smtp_milter_cb, s);
	return smtp_milter_wait(s, SMTP_M_CONNECT);
}

/* The filters refused the session at connect: every command is told. */
static int
smtp_milter_refused(struct smtp_session *s)
{
	if (s->milter_refusal == NULL)
		return 0;
	smtp_milter_answer(s, s->milter_refusal);
	return 1;
}

static int
smtp_milter_helo(struct smtp_session *s, enum smtp_milter_step step)
{
	if (s->milter == NULL)
		return 0;
	if (s->flags & SMTP_F_TLS) {
		milter_chain_macro(s->milter, "{tls_version}",
		    tls_version(smtp_bev(s)));
		milter_chain_macro(s->milter, "{cipher}", tls_cipher(smtp_bev(s)));
	}
	milter_chain_helo(s->milter, smtp_helo(s), smtp_milter_cb, s);
	return smtp_milter_wait(s, step);
}

static int
smtp_milter_mail(struct smtp_session *s, const struct addr *a,
    const char *params)
{
	if (s->milter == NULL)
		return 0;
	milter_chain_macro(s->milter, "{auth_type}", s->user != NULL ?
	    s->auth_mech : NULL);
	milter_chain_macro(s->milter, "{auth_authen}", s->user);
	milter_chain_macro(s->milter, "{mail_host}", a->domain[0] != '\0' ?
	    a->domain : NULL);
	milter_chain_macro(s->milter, "{mail_mailer}",
	    a->domain[0] == '\0' ? NULL :
	    config_is_local_domain(smtp_conf, a->domain) ? "local" : "smtp");
	milter_chain_mail(s->milter, s->tx->env.sender, params, smtp_milter_cb,
	    s);
	return smtp_milter_wait(s, SMTP_M_MAIL);
}

static int
smtp_milter_rcpt(struct smtp_session *s, const struct addr *a,
    const char *addr, const char *params)
{
	/* Discarded: no filter hears of the message again (as Postfix). */
	if (s->milter == NULL || s->tx->discard)
		return 0;
	util_strlcpy(s->tx->mrcpt, addr, sizeof s->tx->mrcpt);
	milter_chain_macro(s->milter, "{rcpt_host}", a->domain);
	milter_chain_macro(s->milter, "{rcpt_mailer}",
	    config_is_local_domain(smtp_conf, a->domain) ? "local" : "smtp");
	milter_chain_rcpt(s->milter, addr, params, smtp_milter_cb, s);
	return smtp_milter_wait(s, SMTP_M_RCPT);
}

static int
smtp_milter_data(struct smtp_session *s)
{
	if (s->milter == NULL || s->tx->discard)
		return 0;
	milter_chain_macro(s->milter, "i", s->tx->id);
	milter_chain_data(s->milter, smtp_milter_cb, s);
	return smtp_milter_wait(s, SMTP_M_DATA);
}

/* The message was taken but is not queued: a filter discarded it. */
static void
smtp_milter_discard(struct smtp_session *s, const char *verb)
{
	char	id[ENVELOPE_ID_SIZE];

	smtp_milter_log(s, "discard", verb, "milter triggers DISCARD action",
	    NULL);
	util_strlcpy(id, s->tx->id, sizeof id);
	smtp_tx_free(s);
	smtp_enter_state(s, SMTP_STATE_CMD);
	smtp_reply(s, SMTP_R_QUEUED, id);
}

/* The end of the message: the filters read it before the commit. */
static int
smtp_milter_message(struct smtp_session *s)
{
	struct smtp_tx	*tx = s->tx;

	if (s->milter == NULL)
		return 0;
	if (tx->discard) {
		smtp_milter_discard(s, "END-OF-MESSAGE");
		return 1;
	}
	milter_chain_message(s->milter, (const char *)evbuffer_pullup(
	    tx->mcopy, -1), evbuffer_get_length(tx->mcopy), smtp_milter_cb, s);
	return smtp_milter_wait(s, SMTP_M_EOM);
}

static int
smtp_milter_out(void *arg, const void *p, size_t len)
{
	return queue_msg_write(arg, p, len);
}

/*
 * The filters' changes, applied to the envelope (all or nothing) and
 * then over the stored copy: -1 with a reason when they cannot be.
 */
static int
smtp_milter_apply(struct smtp_session *s, char **cause)
{
	const struct milter_mods	*m = milter_chain_mods(s->milter);
	struct smtp_tx			*tx = s->tx;
	const char			*msg;

	if (milter_edit_envelope(m, &tx->env, cause) == -1)
		return -1;
	if (!milter_mods_has_content(m))
		return 0;
	msg = (const char *)evbuffer_pullup(tx->mcopy, -1);
	if (queue_msg_rewind(tx->msg) == -1 || smtp_write_received(s) == -1 ||
	    milter_edit_message(m, msg, evbuffer_get_length(tx->mcopy),
	    smtp_milter_out, tx->msg) == -1) {
		xasprintf(cause, "queue file write error: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The verdict at the end of the message. */
static void
smtp_milter_eom(struct smtp_session *s, const struct milter_reply *r)
{
	struct smtp_tx	*tx = s->tx;
	char		*cause = NULL, reason[MILTER_REPLY_SIZE + 32];

	if (r->verdict == MILTER_REJECT || r->verdict == MILTER_TEMPFAIL) {
		snprintf(reason, sizeof reason, "%s%s%s", r->esc,
		    r->esc[0] != '\0' ? " " : "", r->text);
		smtp_milter_log(s, "reject", "END-OF-MESSAGE", reason, NULL);
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_milter_answer(s, r->smtp);
		return;
	}
	if (r->verdict == MILTER_DISCARD) {
		smtp_milter_discard(s, "END-OF-MESSAGE");
		return;
	}
	if (smtp_milter_apply(s, &cause) == -1) {
		log_warnx("%s: cannot apply the filters' changes: %s, "
		    "session=%s", tx->id, cause, s->sid);
		free(cause);
		smtp_tx_free(s);
		smtp_enter_state(s, SMTP_STATE_CMD);
		smtp_reply(s, SMTP_R_SPOOL_ERROR, NULL);
		return;
	}
	if (tx->env.nrcpts == 0) {
		smtp_milter_discard(s, "END-OF-MESSAGE");
		return;
	}
	if (r->verdict == MILTER_QUARANTINE) {
		tx->hold = 1;
		smtp_milter_log(s, "hold", "END-OF-MESSAGE", r->reason, NULL);
		snprintf(reason, sizeof reason, "quarantined: %s", r->reason);
		envelope_set_str(&tx->env.last_error, reason);
	}
	smtp_tx_commit(s);
}

/* A step's verdict: the reply the command waited for. */
static void
smtp_milter_cb(const struct milter_reply *r, void *arg)
{
	struct smtp_session	*s = arg;
	struct smtp_tx		*tx = s->tx;
	int			 refused = r->verdict == MILTER_REJECT ||
				    r->verdict == MILTER_TEMPFAIL;
	char			 text[MILTER_REPLY_SIZE + 32];

	smtp_enter_state(s, SMTP_STATE_CMD);
	switch (s->milter_step) {
	case SMTP_M_CONNECT:
		if (refused) {
			snprintf(text, sizeof text, "%d %s%s%s", r->code,
			    r->esc, r->esc[0] != '\0' ? " " : "", r->text);
			smtp_milter_log(s, "reject", "CONNECT", text, NULL);
			s->milter_refusal = xstrdup(r->smtp);
		}
		smtp_reply(s, SMTP_R_GREETING, smtp_conf->hostname);
		break;
	case SMTP_M_HELO:
	case SMTP_M_EHLO:
		if (refused) {
			smtp_milter_refuse(s, s->milter_step == SMTP_M_HELO ?
			    "HELO" : "EHLO", r, NULL);
			s->flags &= ~(SMTP_F_HELO | SMTP_F_EHLO);
			smtp_helo_set(s, NULL);
		} else if (s->milter_step == SMTP_M_HELO)
			smtp_reply(s, SMTP_R_HELO, smtp_conf->hostname);
		else
			smtp_ehlo_reply(s);
		break;
	case SMTP_M_MAIL:
		if (refused) {
			smtp_milter_refuse(s, "MAIL", r, NULL);
			smtp_tx_free(s);
			break;
		}
		if (r->verdict == MILTER_DISCARD)
			tx->discard = 1;
		smtp_reply(s, SMTP_R_MAIL_OK, NULL);
		break;
	case SMTP_M_RCPT:
		if (refused) {
			smtp_milter_refuse(s, "RCPT", r, tx->mrcpt);
			while (tx->env.nrcpts > tx->mrcpts) {
				struct envelope_rcpt *rc =
				    &tx->env.rcpts[--tx->env.nrcpts];
				free(rc->addr);
				free(rc->orcpt);
			}
			break;
		}
		if (r->verdict == MILTER_DISCARD)
			tx->discard = 1;
		smtp_reply(s, SMTP_R_RCPT_OK, NULL);
		break;
	case SMTP_M_DATA:
		if (refused) {
			smtp_milter_refuse(s, "DATA", r, NULL);
			smtp_tx_free(s);
			break;
		}
		if (r->verdict == MILTER_DISCARD)
			tx->discard = 1;
		smtp_data_begin(s);
		break;
	case SMTP_M_EOM:
		smtp_milter_eom(s, r);
		break;
	}
	smtp_process(s);
	smtp_after(s);
}

/*
 * A session's id, eight hex digits: a counter from a start that differs
 * from one run of ternd to the next, so that ids rarely repeat in a log.
 */
static void
smtp_sid(char *buf, size_t len)
{
	static uint32_t	next;

	if (next == 0)
		next = (uint32_t)time(NULL) * 2654435761u;
	snprintf(buf, len, "%08" PRIX32, next++);
}

/* A new client: greet it and start reading. */
struct smtp_session *
smtp_session_new(int fd, const struct sockaddr *sa, socklen_t salen,
    enum smtp_kind kind, smtp_session_closed_cb cb, void *arg)
{
	struct smtp_session	*s;
	const void		*ip;
	char			*cause = NULL;

	s = xcalloc(1, sizeof *s);
	s->kind = kind;
	smtp_sid(s->sid, sizeof s->sid);
	s->closed_cb = cb;
	s->closed_arg = arg;
	if (salen > sizeof s->ss)
		salen = sizeof s->ss;
	memcpy(&s->ss, sa, salen);
	if (sa->sa_family == AF_INET6)
		ip = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		ip = &((const struct sockaddr_in *)sa)->sin_addr;
	if (inet_ntop(sa->sa_family, ip, s->addr, sizeof s->addr) == NULL)
		util_strlcpy(s->addr, "unknown", sizeof s->addr);
	/* An IPv4 client on a dual-stack socket is shown as IPv4. */
	if (strncmp(s->addr, "::ffff:", 7) == 0 && strchr(s->addr, '.'))
		memmove(s->addr, s->addr + 7, strlen(s->addr + 7) + 1);

	if (kind == SMTP_KIND_SMTPS) {
		/* Implicit TLS: the greeting waits for the handshake. */
		s->bev = NULL;
		if (smtp_tls_ctx != NULL)
			s->bev = tls_server_start(smtp_base, NULL, fd,
			    smtp_tls_ctx, &cause);
		if (s->bev == NULL && smtp_tls_ctx != NULL) {
			log_warnx("TLS for [%s]: %s, session=%s", s->addr,
			    cause, s->sid);
			free(cause);
		}
	} else
		s->bev = bufferevent_socket_new(smtp_base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("cannot start a session for [%s] session=%s",
		    s->addr, s->sid);
		close(fd);
		free(s);
		return NULL;
	}
	s->opened = smtp_now_ms();
	s->fd = -1;
	smtp_bev_setup(s);
	if ((s->timer = evtimer_new(smtp_base, smtp_deadline_cb, s)) == NULL)
		fatalx("smtp: evtimer_new");
	log_info("connect from [%s]%s session=%s", s->addr,
	    kind == SMTP_KIND_SMTPS ? " (implicit TLS)" :
	    kind == SMTP_KIND_SUBMISSION ? " (submission)" : "", s->sid);
	if (kind == SMTP_KIND_SMTPS) {
		s->state = SMTP_STATE_TLS;
		smtp_deadline_start(s);
		bufferevent_enable(smtp_bev(s), EV_READ);
		return s;
	}
	s->state = SMTP_STATE_CMD;
	if (!smtp_milter_connect(s)) {
		smtp_reply(s, SMTP_R_GREETING, smtp_conf->hostname);
		smtp_deadline_start(s);
		bufferevent_enable(smtp_bev(s), EV_READ);
	}
	return s;
}

/* The daemon is stopping: finish the transaction in progress, then go. */
void
smtp_session_drain(struct smtp_session *s)
{
	s->flags |= SMTP_F_DRAIN;
	if (s->state == SMTP_STATE_CMD && !(s->flags & SMTP_F_QUIT)) {
		/* Only a message already in DATA may finish. */
		smtp_tx_free(s);
		smtp_reply(s, SMTP_R_SHUTDOWN, smtp_conf->hostname);
		smtp_after(s);
	}
}

/* The one teardown: cancel what is pending, log once, free. */
void
smtp_session_close(struct smtp_session *s, const char *reason)
{
	log_info("disconnect from [%s] commands=%u errors=%u (%s) session=%s",
	    s->addr, s->commands, s->errors, reason, s->sid);
	direct_detach(&s->direct);
	smtp_tx_free(s);
	smtp_auth_free(s);
	milter_chain_free(s->milter);
	free(s->milter_refusal);
	free(s->user);
	free(s->helo);
	if (s->bev != NULL)
		tls_close(s->bev);
	event_free(s->timer);
	if (s->fd != -1)
		close(s->fd);
	if (s->closed_cb != NULL)
		s->closed_cb(s, s->closed_arg);
	free(s);
}

/*
 * Whether the client sent a command other than QUIT: a connection that
 * was only greeted is given back to its client's connection rate.
 */
int
smtp_session_is_served(const struct smtp_session *s)
{
	return (s->flags & SMTP_F_SERVED) != 0;
}
