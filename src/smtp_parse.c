/*
 * smtp_parse.c: SMTP as octets on the wire: command lines, ESMTP
 * parameters, xtext, reply lines and the DATA dot machine.  Pure: it owns
 * no sessions, sockets or buffers of its own, writes only where the caller
 * points it, and never reads past the length or NUL it was given.
 */
#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_parse.h"
#include "util.h"

/* RFC 5321 4.5.3.1.6: 1000 octets with the CRLF. */
#define SMTP_PARSE_TEXT_MAX	(SMTP_TEXT_LINE_MAX - 2)

/* Verbs; those that take a fixed word before their argument name it. */
static const struct smtp_parse_verb {
	enum smtp_verb	 verb;
	const char	*name;
	const char	*word;		/* "FROM:" after "MAIL ", or NULL */
} smtp_parse_verbs[] = {
	{ SMTP_VERB_HELO, "HELO", NULL },
	{ SMTP_VERB_EHLO, "EHLO", NULL },
	{ SMTP_VERB_MAIL, "MAIL", "FROM:" },
	{ SMTP_VERB_RCPT, "RCPT", "TO:" },
	{ SMTP_VERB_DATA, "DATA", NULL },
	{ SMTP_VERB_RSET, "RSET", NULL },
	{ SMTP_VERB_NOOP, "NOOP", NULL },
	{ SMTP_VERB_QUIT, "QUIT", NULL },
	{ SMTP_VERB_VRFY, "VRFY", NULL },
	{ SMTP_VERB_EXPN, "EXPN", NULL },
	{ SMTP_VERB_HELP, "HELP", NULL },
	{ SMTP_VERB_STARTTLS, "STARTTLS", NULL },
	{ SMTP_VERB_AUTH, "AUTH", NULL },
	{ SMTP_VERB_ETRN, "ETRN", NULL },
	{ SMTP_VERB_BDAT, "BDAT", NULL },
};

static const char *smtp_parse_data_errors[] = {
	[SMTP_DATA_OK] = "no error",
	[SMTP_DATA_BARE_CR] = "bare CR in message data",
	[SMTP_DATA_BARE_LF] = "bare LF in message data",
	[SMTP_DATA_LINE_TOO_LONG] = "message line longer than 998 octets",
	[SMTP_DATA_NUL] = "NUL octet in message data",
};

static const char smtp_parse_hex[] = "0123456789ABCDEF";

static int
smtp_parse_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
smtp_parse_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
smtp_parse_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Check one line as read, its final LF included: only CRLF may end it,
 * and no other CR, LF or NUL may appear in it.
 */
enum smtp_line
smtp_parse_line(const char *line, size_t len)
{
	size_t	i;

	if (memchr(line, '\0', len) != NULL)
		return SMTP_LINE_NUL;
	for (i = 0; i < len; i++) {
		if (line[i] == '\r' && (i + 2 != len || line[i + 1] != '\n'))
			return SMTP_LINE_BARE_CR;
	}
	if (len < 2 || line[len - 2] != '\r' || line[len - 1] != '\n')
		return SMTP_LINE_BARE_LF;
	if (memchr(line, '\n', len - 1) != NULL)
		return SMTP_LINE_BARE_LF;
	return SMTP_LINE_OK;
}

/*
 * Split a command line (its CRLF removed) into verb and arguments, in
 * place.  MAIL and RCPT must go on with " FROM:" and " TO:"; without them
 * the verb is still set and -1 returned.  An unknown verb is not an error
 * here: it comes back as SMTP_VERB_UNKNOWN.
 */
int
smtp_parse_cmd(char *line, struct smtp_cmd *cmd)
{
	const struct smtp_parse_verb	*v = NULL;
	char				*p, *end;
	size_t				 i, n = 0;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->args = "";
	for (i = 0; i < nitems(smtp_parse_verbs); i++) {
		n = strlen(smtp_parse_verbs[i].name);
		if (strncasecmp(line, smtp_parse_verbs[i].name, n) == 0 &&
		    (line[n] == '\0' || line[n] == ' ')) {
			v = &smtp_parse_verbs[i];
			break;
		}
	}
	if (v == NULL)
		return 0;
	cmd->verb = v->verb;
	p = line + n;
	if (v->word != NULL) {
		n = strlen(v->word);
		if (*p != ' ' || strncasecmp(p + 1, v->word, n) != 0)
			return -1;
		p += 1 + n;
	}
	while (*p == ' ')
		p++;
	end = p + strlen(p);
	while (end > p && end[-1] == ' ')
		end--;
	*end = '\0';
	cmd->args = p;
	return 0;
}

const char *
smtp_verb_str(enum smtp_verb verb)
{
	size_t	i;

	for (i = 0; i < nitems(smtp_parse_verbs); i++) {
		if (smtp_parse_verbs[i].verb == verb)
			return smtp_parse_verbs[i].name;
	}
	return "UNKNOWN";
}

/*
 * Split "KEY=value KEY ..." in place into at most max parameters:
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), esmtp-value =
 * 1*(%d33-60 / %d62-126 / UTF8-non-ascii), one or more spaces between.
 */
int
smtp_parse_params(char *s, struct smtp_param *params, size_t max, size_t *n)
{
	unsigned char	*p = (unsigned char *)s;
	char		*key, *value;
	size_t		 count = 0, len;

	*n = 0;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (count == max || !smtp_parse_is_alnum(*p))
			return -1;
		key = (char *)p;
		while (smtp_parse_is_alnum(*p) || *p == '-')
			p++;
		value = NULL;
		if (*p == '=') {
			*p++ = '\0';
			value = (char *)p;
			for (;;) {
				if (*p >= 33 && *p <= 126 && *p != '=')
					len = 1;
				else if (*p >= 0x80)
					len = util_utf8_len(p, 4);
				else
					len = 0;
				if (len == 0)
					break;
				p += len;
			}
			if ((char *)p == value)
				return -1;
		}
		if (*p != ' ' && *p != '\0')
			return -1;
		if (*p == ' ')
			*p++ = '\0';
		params[count].key = key;
		params[count].value = value;
		count++;
	}
	*n = count;
	return 0;
}

/*
 * RFC 3461 section 4: "+XX" stands for any octet, the rest for
 * themselves.  A NUL, a bad hex pair or a raw octet outside %d33-126
 * (or "=") is an error, as is a result that does not fit.
 */
int
smtp_xtext_decode(const char *src, char *dst, size_t size)
{
	const unsigned char	*p = (const unsigned char *)src;
	size_t			 len = 0;
	int			 hi, lo, c;

	if (size == 0)
		return -1;
	while (*p != '\0') {
		if (*p == '+') {
			if ((hi = smtp_parse_hexval(p[1])) == -1 ||
			    (lo = smtp_parse_hexval(p[2])) == -1)
				return -1;
			c = hi << 4 | lo;
			if (c == 0)
				return -1;
			p += 3;
		} else if (*p >= 33 && *p <= 126 && *p != '=')
			c = *p++;
		else
			return -1;
		if (len + 1 >= size)
			return -1;
		dst[len++] = (char)c;
	}
	dst[len] = '\0';
	return 0;
}

/* The reverse: "+XX" for "+", "=" and anything outside %d33-126. */
int
smtp_xtext_encode(const char *src, char *dst, size_t size)
{
	const unsigned char	*p = (const unsigned char *)src;
	size_t			 len = 0;

	if (size == 0)
		return -1;
	for (; *p != '\0'; p++) {
		if (*p >= 33 && *p <= 126 && *p != '+' && *p != '=') {
			if (len + 1 >= size)
				return -1;
			dst[len++] = (char)*p;
			continue;
		}
		if (len + 3 >= size)
			return -1;
		dst[len++] = '+';
		dst[len++] = smtp_parse_hex[*p >> 4];
		dst[len++] = smtp_parse_hex[*p & 0xf];
	}
	dst[len] = '\0';
	return 0;
}

/* "250-text", "250 text" or "250": a code 200..599 and its separator. */
int
smtp_parse_reply(const char *line, struct smtp_reply_line *r)
{
	const unsigned char	*p = (const unsigned char *)line;

	if (p[0] < '2' || p[0] > '5' || !smtp_parse_is_digit(p[1]) ||
	    !smtp_parse_is_digit(p[2]))
		return -1;
	if (p[3] != '\0' && p[3] != ' ' && p[3] != '-')
		return -1;
	r->code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	r->more = p[3] == '-';
	r->text = p[3] == '\0' ? line + 3 : line + 4;
	return 0;
}

/*
 * The dot machine's states.  Only a line that began after a real CRLF
 * (or at the very start) may end the message or be dot-stuffed; the line
 * after a bare CR or LF starts in SMTP_DATA_S_TEXT, where "." is text.
 */
enum smtp_data_state {
	SMTP_DATA_S_BOL,	/* start of a line that may be the end */
	SMTP_DATA_S_DOT,	/* its first octet was "." */
	SMTP_DATA_S_DOT_CR,	/* ".\r": the end if LF follows */
	SMTP_DATA_S_TEXT,	/* inside a line that cannot be the end */
	SMTP_DATA_S_CR,		/* after a CR inside a line (CR written) */
	SMTP_DATA_S_END,	/* CRLF.CRLF seen */
};

/* The caller's output buffer for one call. */
struct smtp_data_sink {
	char	*buf;
	size_t	 len;
	size_t	 size;
};

void
smtp_data_init(struct smtp_data *d, int normalize)
{
	memset(d, 0, sizeof *d);
	d->state = SMTP_DATA_S_BOL;
	d->normalize = normalize;
	d->error = SMTP_DATA_OK;
	d->pending = -1;
	d->last = '\n';
}

void
smtp_data_init_chunked(struct smtp_data *d, int normalize)
{
	smtp_data_init(d, normalize);
	d->chunked = 1;
}

const char *
smtp_data_error_str(enum smtp_data_error e)
{
	if ((size_t)e >= nitems(smtp_parse_data_errors))
		return "unknown error";
	return smtp_parse_data_errors[e];
}

static void
smtp_data_set_error(struct smtp_data *d, enum smtp_data_error e)
{
	if (d->error == SMTP_DATA_OK)
		d->error = e;
}

/*
 * Write one octet.  Every input octet writes at most two, except the
 * one that turns a held ".\r" into a bare CR, which writes three; when
 * ".\r" came at the end of the previous call that one octet is owed to
 * the next call (at most one is ever owed, and never at the end).
 */
static void
smtp_data_put(struct smtp_data *d, struct smtp_data_sink *o, char c)
{
	d->last = (unsigned char)c;
	if (o->len < o->size)
		o->buf[o->len++] = c;
	else if (d->pending == -1)
		d->pending = (unsigned char)c;
	else
		panic("%s: output overflow", __func__);
}

/* A bare CR or LF ended the line: written as CRLF before this is called. */
static void
smtp_data_bare(struct smtp_data *d, enum smtp_data_error e)
{
	if (!d->normalize)
		smtp_data_set_error(d, e);
	d->linelen = 0;
	d->state = SMTP_DATA_S_TEXT;
}

/* n more octets in the line: past the limit it is too long. */
static void
smtp_data_line_add(struct smtp_data *d, size_t n)
{
	if (d->linelen <= SMTP_PARSE_TEXT_MAX) {
		d->linelen += n;
		if (d->linelen > SMTP_PARSE_TEXT_MAX)
			d->linelen = SMTP_PARSE_TEXT_MAX + 1;
	}
	if (d->linelen > SMTP_PARSE_TEXT_MAX)
		smtp_data_set_error(d, SMTP_DATA_LINE_TOO_LONG);
}

/*
 * One octet inside a line, or at the start of one that cannot end.  A
 * NUL is never written (a next hop that drops NULs before it looks for
 * the end of data must see only what we saw), but it still makes the
 * line one that cannot end the message.
 */
static void
smtp_data_text(struct smtp_data *d, struct smtp_data_sink *o, char c)
{
	if (c == '\0') {
		if (!d->normalize)
			smtp_data_set_error(d, SMTP_DATA_NUL);
		d->state = SMTP_DATA_S_TEXT;
		return;
	}
	if (c == '\r') {
		smtp_data_put(d, o, '\r');
		d->state = SMTP_DATA_S_CR;
		return;
	}
	if (c == '\n') {
		smtp_data_put(d, o, '\r');
		smtp_data_put(d, o, '\n');
		smtp_data_bare(d, SMTP_DATA_BARE_LF);
		return;
	}
	smtp_data_line_add(d, 1);
	smtp_data_put(d, o, c);
	d->state = SMTP_DATA_S_TEXT;
}

/*
 * A run of octets none of which is NUL, CR or LF, inside a line (or at
 * the start of one, not a "." that may be stuffing): what
 * smtp_data_text() does for each, at once.  0 when the run does not fit
 * the output as it stands: the caller then takes it octet by octet.
 */
static int
smtp_data_run(struct smtp_data *d, struct smtp_data_sink *o, const char *p,
    size_t n)
{
	if (d->pending != -1 || n > o->size - o->len)
		return 0;
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	d->last = (unsigned char)p[n - 1];
	smtp_data_line_add(d, n);
	d->state = SMTP_DATA_S_TEXT;
	return 1;
}

/* Octets the machine looks at one by one, inside a line. */
static int
smtp_data_is_plain(char c)
{
	return c != '\0' && c != '\r' && c != '\n';
}

/* Run one octet through the machine; returns 1 when it ends the message. */
static int
smtp_data_octet(struct smtp_data *d, struct smtp_data_sink *o, char c)
{
	switch (d->state) {
	case SMTP_DATA_S_BOL:
		if (c == '.' && !d->chunked) {
			d->linelen = 1;
			d->state = SMTP_DATA_S_DOT;
		} else
			smtp_data_text(d, o, c);
		break;
	case SMTP_DATA_S_DOT:
		/* Unless this is the end, the "." was stuffing. */
		if (c == '\r')
			d->state = SMTP_DATA_S_DOT_CR;
		else
			smtp_data_text(d, o, c);
		break;
	case SMTP_DATA_S_DOT_CR:
		if (c == '\n') {
			d->state = SMTP_DATA_S_END;
			return 1;
		}
		smtp_data_put(d, o, '\r');
		smtp_data_put(d, o, '\n');
		smtp_data_bare(d, SMTP_DATA_BARE_CR);
		smtp_data_text(d, o, c);
		break;
	case SMTP_DATA_S_CR:
		smtp_data_put(d, o, '\n');
		if (c == '\n') {
			d->linelen = 0;
			d->state = SMTP_DATA_S_BOL;
			break;
		}
		smtp_data_bare(d, SMTP_DATA_BARE_CR);
		smtp_data_text(d, o, c);
		break;
	case SMTP_DATA_S_TEXT:
		smtp_data_text(d, o, c);
		break;
	default:
		panic("%s: bad state %d", __func__, d->state);
	}
	return 0;
}

/*
 * Feed inlen octets of DATA; out must have room for 2 * inlen.  Returns
 * SMTP_DATA_END with *consumed counting up to the final LF of CRLF.CRLF,
 * or SMTP_DATA_MORE having consumed everything.
 */
int
smtp_data_feed(struct smtp_data *d, const char *in, size_t inlen,
    size_t *consumed, char *out, size_t *outlen)
{
	struct smtp_data_sink	o;
	size_t			i, j;
	char			c;

	*consumed = 0;
	*outlen = 0;
	if (d->state == SMTP_DATA_S_END)
		return SMTP_DATA_END;
	o.buf = out;
	o.len = 0;
	o.size = 2 * inlen;
	if (d->pending != -1 && inlen > 0) {
		c = (char)d->pending;
		d->pending = -1;
		smtp_data_put(d, &o, c);
	}
	for (i = 0; i < inlen; i++) {
		/* Plain text goes through in runs, not octet by octet. */
		if ((d->state == SMTP_DATA_S_TEXT ||
		    (d->state == SMTP_DATA_S_BOL &&
		    (in[i] != '.' || d->chunked))) &&
		    smtp_data_is_plain(in[i])) {
			for (j = i + 1; j < inlen && smtp_data_is_plain(in[j]);
			    j++)
				;
			if (smtp_data_run(d, &o, in + i, j - i)) {
				i = j - 1;
				continue;
			}
		}
		if (smtp_data_octet(d, &o, in[i])) {
			if (d->pending != -1)
				panic("%s: output owed at end", __func__);
			*consumed = i + 1;
			*outlen = o.len;
			return SMTP_DATA_END;
		}
	}
	*consumed = inlen;
	*outlen = o.len;
	return SMTP_DATA_MORE;
}

/* The last chunk has been fed: end its last line. */
void
smtp_data_finish(struct smtp_data *d, char *out, size_t *outlen)
{
	struct smtp_data_sink	o;

	if (!d->chunked || d->pending != -1)
		panic("%s: not a chunked message", __func__);
	o.buf = out;
	o.len = 0;
	o.size = 2;
	if (d->state == SMTP_DATA_S_CR) {
		smtp_data_put(d, &o, '\n');
		smtp_data_bare(d, SMTP_DATA_BARE_CR);
	} else if (d->last != '\n') {
		smtp_data_put(d, &o, '\r');
		smtp_data_put(d, &o, '\n');
	}
	d->linelen = 0;
	d->state = SMTP_DATA_S_END;
	*outlen = o.len;
}

/*
 * The argument of BDAT (RFC 3030 2): a chunk size of digits, then
 * optionally LAST after a space.  Returns -1 on anything else.
 */
int
smtp_parse_bdat(const char *args, uint64_t *size, int *last)
{
	const char	*p = args;
	uint64_t	 n = 0;

	if (!smtp_parse_is_digit((unsigned char)*p))
		return -1;
	for (; smtp_parse_is_digit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*last = 0;
	if (*p == ' ') {
		while (*p == ' ')
			p++;
		if (strcasecmp(p, "LAST") != 0)
			return -1;
		*last = 1;
	} else if (*p != '\0')
		return -1;
	*size = n;
	return 0;
}
