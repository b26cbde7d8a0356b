/*
 * envelope.h: a queued message's envelope (sender, recipients and their
 * states, DSN parameters, tries) and its versioned text form, the ID.env
 * file documented in tern-envelope(5).  Pure logic: converts between the
 * struct and bytes, never touches files.
 */
#ifndef ENVELOPE_H
#define ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ENVELOPE_VERSION	1
/* A queue id: at most 15 letters and digits, and the one buffer size. */
#define ENVELOPE_ID_LEN		15
#define ENVELOPE_ID_SIZE	(ENVELOPE_ID_LEN + 1)
#define ENVELOPE_STATUS_SIZE	16	/* "4.4.1" */

enum envelope_rcpt_state {
	ENVELOPE_RCPT_PENDING,		/* not yet delivered */
	ENVELOPE_RCPT_SENT,		/* delivered or relayed */
	ENVELOPE_RCPT_FAILED,		/* failed for good; sender told */
};

/* RCPT NOTIFY= (RFC 3461); 0 when the client gave none. */
#define ENVELOPE_NOTIFY_NEVER	0x01
#define ENVELOPE_NOTIFY_SUCCESS	0x02
#define ENVELOPE_NOTIFY_FAILURE	0x04
#define ENVELOPE_NOTIFY_DELAY	0x08

enum envelope_body {
	ENVELOPE_BODY_7BIT,
	ENVELOPE_BODY_8BITMIME,
};

enum envelope_ret {
	ENVELOPE_RET_NONE,
	ENVELOPE_RET_FULL,
	ENVELOPE_RET_HDRS,
};

/* One recipient; owned by its envelope.  Strings are heap or NULL. */
struct envelope_rcpt {
	char				*addr;	/* "local@domain" */
	enum envelope_rcpt_state	 state;
	int				 notify;
	char				*orcpt;	/* "rfc822;a@b", decoded */
	char				 status[ENVELOPE_STATUS_SIZE];
	char				*error;	/* last reply or reason */
	char				*relay;	/* "host[ip]:port" */
	int				 delay_notified; /* DSN delay sent */
};

/*
 * One delivery attempt of one recipient, for a person asking why a
 * message waits; owned by its envelope.  tls: 1 sent under TLS, 0 in
 * plaintext, -1 no connection (or local delivery).  status may be "";
 * relay and text are heap or NULL.
 */
struct envelope_attempt {
	time_t		 when;
	size_t		 rcpt;			/* index into rcpts */
	int		 tls;
	char		 status[ENVELOPE_STATUS_SIZE];
	char		*relay;			/* "host[ip]:port" */
	char		*text;
};

/* The newest attempts kept in an envelope; older ones are dropped. */
#define ENVELOPE_ATTEMPTS_MAX	50

/*
 * Owned by whoever initialised it; envelope_clear() frees what it holds.
 * sender is "" for the null reverse path.
 */
struct envelope {
	char			 id[ENVELOPE_ID_SIZE];
	time_t			 arrival;
	char			*sender;
	uint64_t		 size;		/* octets of ID.msg */
	enum envelope_body	 body;
	int			 smtputf8;
	char			 client_addr[64];
	char			 helo[256];
	char			 protocol[16];	/* "ESMTP", "SMTP", ... */
	enum envelope_ret	 ret;
	char			*envid;		/* decoded ENVID or NULL */
	unsigned		 tries;
	time_t			 next_attempt;
	char			*last_error;

	struct envelope_rcpt	*rcpts;
	size_t			 nrcpts;
	size_t			 rcpts_alloc;

	struct envelope_attempt	*attempts;	/* oldest first */
	size_t			 nattempts;
	size_t			 attempts_alloc;
};

void	 envelope_init(struct envelope *);
void	 envelope_clear(struct envelope *);
void	 envelope_set_str(char **, const char *);
struct envelope_rcpt *envelope_add_rcpt(struct envelope *, const char *);
void	 envelope_add_attempt(struct envelope *, time_t, size_t, int,
	    const char *, const char *, const char *);
int	 envelope_write(const struct envelope *, char **, size_t *);
int	 envelope_parse(struct envelope *, const char *, size_t, char **);
const char *envelope_rcpt_state_str(enum envelope_rcpt_state);
int	 envelope_is_status(const char *);
void	 envelope_notify_format(int, int, char *, size_t);
int	 envelope_notify_parse(const char *, int *);

#endif
