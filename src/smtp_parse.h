/*
 * smtp_parse.h: the SMTP wire syntax, free of sessions and sockets.
 * Command lines are split into a verb and its arguments, ESMTP parameters
 * into keyword/value pairs, replies into code and text, and message data
 * goes through the dot machine that finds the one true end of DATA.
 */
#ifndef SMTP_PARSE_H
#define SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4 and .6, CRLF included. */
#define SMTP_LINE_MAX		512
#define SMTP_TEXT_LINE_MAX	1000

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_ETRN,
	SMTP_VERB_BDAT,
};

/* A command line split into verb and argument text (pointing into it). */
struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*args;		/* after "MAIL FROM:" etc.; "" if none */
};

/* Results of smtp_parse_line(). */
enum smtp_line {
	SMTP_LINE_OK,
	SMTP_LINE_BARE_CR,
	SMTP_LINE_BARE_LF,
	SMTP_LINE_NUL,
};

enum smtp_line	 smtp_parse_line(const char *, size_t);
int		 smtp_parse_cmd(char *, struct smtp_cmd *);
const char	*smtp_verb_str(enum smtp_verb);

/* One ESMTP parameter of MAIL or RCPT: "SIZE=1000", "SMTPUTF8". */
struct smtp_param {
	char	*key;			/* into the caller's buffer */
	char	*value;			/* NULL when there is no "=" */
};
#define SMTP_PARAMS_MAX		16

int	 smtp_parse_params(char *, struct smtp_param *, size_t, size_t *);
int	 smtp_xtext_decode(const char *, char *, size_t);
int	 smtp_xtext_encode(const char *, char *, size_t);

/* A reply line from a peer: "250-PIPELINING", "550 5.1.1 No such user". */
struct smtp_reply_line {
	int		 code;		/* 200..599 */
	int		 more;		/* 1 for "250-", 0 for "250 " */
	const char	*text;		/* after the separator */
};

int	 smtp_parse_reply(const char *, struct smtp_reply_line *);

/*
 * The DATA dot machine.  Fed the raw octets after "354" in chunks of any
 * size, it writes the message with dot-stuffing undone and every line
 * ending in CRLF, and stops at the first CRLF "." CRLF.  Only that sequence
 * ends the message: in strict mode a bare CR or LF is an error; in
 * normalizing mode it becomes CRLF, and the line after it can never end
 * the message.  A NUL octet is never written: in strict mode it is an
 * error, in normalizing mode it is dropped.  Either way it is a text octet
 * for finding the end, so a line that held one never ends the message.
 * Errors are recorded and the machine drains to the end.
 */
enum smtp_data_error {
	SMTP_DATA_OK,
	SMTP_DATA_BARE_CR,
	SMTP_DATA_BARE_LF,
	SMTP_DATA_LINE_TOO_LONG,
	SMTP_DATA_NUL,
};

struct smtp_data {
	int			state;
	int			normalize;
	int			chunked;	/* BDAT: no dots, no end */
	int			last;		/* last octet written */
	size_t			linelen;	/* octets of the current line */
	enum smtp_data_error	error;		/* first error seen */
	int			pending;	/* owed to next out, or -1 */
};

#define SMTP_DATA_MORE	0
#define SMTP_DATA_END	1

void	 smtp_data_init(struct smtp_data *, int);
int	 smtp_data_feed(struct smtp_data *, const char *, size_t, size_t *,
	    char *, size_t *);

/*
 * The same machine for BDAT chunks (RFC 3030): the octets are the
 * message itself, neither dot-stuffed nor ended by CRLF.CRLF, so "." is
 * text and smtp_data_feed() never returns SMTP_DATA_END; line endings,
 * NULs and line lengths follow the DATA rules.  smtp_data_finish() ends
 * the last chunk: a CR left at the end is a bare CR, and a last line
 * without its CRLF gets one; out must have room for 2 octets.
 */
void	 smtp_data_init_chunked(struct smtp_data *, int);
void	 smtp_data_finish(struct smtp_data *, char *, size_t *);

/* "BDAT size [LAST]": the chunk's size and whether it is the last. */
int	 smtp_parse_bdat(const char *, uint64_t *, int *);
const char *smtp_data_error_str(enum smtp_data_error);

#endif
