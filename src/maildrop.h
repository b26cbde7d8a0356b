/*
 * maildrop.h: the maildrop file, the one format local submission writes
 * (sendmail) and the daemon reads (pickup).  Pure logic: the writer
 * builds the header block, the reader checks a file as the untrusted
 * input it is (any local user writes one) and turns it into an envelope
 * and the message.  The reader takes the file in pieces of any size and
 * stops at the first fault, in the file's order.
 *
 * A maildrop file, version 1: a header block of LF-terminated lines, an
 * empty line, then the message exactly as it is to be queued.
 *
 *	TERN-MAILDROP 1
 *	sender: alice@example.org	(empty: the null sender <>)
 *	rcpt: bob@example.org		(one per recipient, 1 or more)
 *	size: 1234			(octets of the message)
 *
 *	<the message: 1234 octets, CRLF lines>
 *
 * The first line names the format and its version; "sender" and "size"
 * appear once, "rcpt" at least once and at most MAILDROP_RCPTS_MAX
 * times, in any order; an unknown line refuses the file.  Addresses are
 * "local@domain" as in the envelope (no angle brackets), recipients
 * always with a domain.  The header block is at most MAILDROP_HDR_MAX
 * octets and holds no NUL.  The message is at most max_message_size
 * octets, every line ends in CRLF, has no other CR or LF and is at most
 * MAILDROP_LINE_MAX octets, and no octet is NUL; the file ends with it,
 * so a file cut short never passes.
 */
#ifndef MAILDROP_H
#define MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "util.h"

/* The first line of a maildrop file: its format and version. */
#define MAILDROP_MAGIC		"TERN-MAILDROP 1"
/* Octets of the header block, through its empty line, at most. */
#define MAILDROP_HDR_MAX	(1024 * 1024)
/* Recipients of one maildrop file, at most. */
#define MAILDROP_RCPTS_MAX	10000
/* Octets of one content line, CRLF included (RFC 5321 4.5.3.1.6). */
#define MAILDROP_LINE_MAX	1000
/* Enough for any reason the reader gives. */
#define MAILDROP_WHY_SIZE	128

/* What the reader allows; the local-domain test may be NULL. */
struct maildrop_limits {
	uint64_t	 max_message_size;
	uint64_t	 max_recipients;	/* cut to MAILDROP_RCPTS_MAX */
	int		(*is_local)(const char *, void *);
	void		*arg;
};

enum maildrop_state {
	MAILDROP_MAGIC_LINE,
	MAILDROP_HEADER,
	MAILDROP_CONTENT,
	MAILDROP_FAILED,
};

/* One file being read; owned by the caller, its fields the reader's. */
struct maildrop_reader {
	struct maildrop_limits	 limits;
	struct envelope		*env;
	enum maildrop_state	 state;
	struct util_buf		 line;		/* header line so far */
	uint64_t		 off;		/* octets read */
	uint64_t		 size;		/* the message's, announced */
	int			 seen;		/* 1 sender, 2 size */
	uint64_t		 got;		/* octets of the message */
	size_t			 linelen;	/* of its current line */
	int			 cr;		/* its last octet was CR */
	int			 eight;		/* an octet over 0x7f */
};

int	 maildrop_header(struct util_buf *, const char *, char *const *,
	    size_t, uint64_t);
void	 maildrop_reader_init(struct maildrop_reader *,
	    const struct maildrop_limits *, struct envelope *);
int	 maildrop_reader_feed(struct maildrop_reader *, const char *, size_t,
	    const char **, size_t *, char *, size_t);
int	 maildrop_reader_end(struct maildrop_reader *, char *, size_t);
void	 maildrop_reader_clear(struct maildrop_reader *);
int	 maildrop_parse(const char *, size_t, const struct maildrop_limits *,
	    struct envelope *, const char **, size_t *, char *, size_t);

#endif
