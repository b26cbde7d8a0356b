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
#define ENVELOPE_ID_SIZE	32
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
};

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
};

void	 envelope_init(struct envelope *);
void	 envelope_clear(struct envelope *);
void	 envelope_set_str(char **, const char *);
struct envelope_rcpt *envelope_add_rcpt(struct envelope *, const char *);
int	 envelope_write(const struct envelope *, char **, size_t *);
int	 envelope_parse(struct envelope *, const char *, size_t, char **);
const char *envelope_rcpt_state_str(enum envelope_rcpt_state);

#endif
