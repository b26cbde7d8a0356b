/*
 * maildrop.c: the maildrop file format (described in maildrop.h), its
 * writer and its reader.  Pure logic: no files, no loop; the reader is
 * a state machine fed pieces of any size, which holds at most one header
 * line and never the message.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "envelope.h"
#include "maildrop.h"
#include "util.h"

/*
 * The header block of a file for sender (without brackets, "" for the
 * null sender) and its recipients, a message of size octets to follow,
 * appended to buf; -1 when it is larger than the reader takes.
 */
int
maildrop_header(struct util_buf *buf, const char *sender, char *const *rcpts,
    size_t nrcpts, uint64_t size)
{
	size_t	start = buf->len, i;

	util_buf_printf(buf, "%s\nsender: %s\n", MAILDROP_MAGIC, sender);
	for (i = 0; i < nrcpts; i++)
		util_buf_printf(buf, "rcpt: %s\n", rcpts[i]);
	util_buf_printf(buf, "size: %" PRIu64 "\n\n", size);
	return buf->len - start > MAILDROP_HDR_MAX ? -1 : 0;
}

void
maildrop_reader_init(struct maildrop_reader *r,
    const struct maildrop_limits *limits, struct envelope *env)
{
	memset(r, 0, sizeof *r);
	r->limits = *limits;
	if (r->limits.max_recipients > MAILDROP_RCPTS_MAX)
		r->limits.max_recipients = MAILDROP_RCPTS_MAX;
	r->env = env;
	r->state = MAILDROP_MAGIC_LINE;
}

void
maildrop_reader_clear(struct maildrop_reader *r)
{
	free(r->line.data);
	memset(&r->line, 0, sizeof r->line);
}

static int __attribute__((format(printf, 4, 5)))
maildrop_fail(struct maildrop_reader *r, char *why, size_t whysize,
    const char *fmt, ...)
{
	va_list	ap;

	r->state = MAILDROP_FAILED;
	if (why != NULL && whysize > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whysize, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "<value>" through addr.c, then printed back as "local@domain". */
static int
maildrop_addr(const char *value, int flags, struct addr *a, char *buf,
    size_t size)
{
	char		 path[ADDR_PATH_SIZE + 2];
	const char	*rest, *cause;

	if (util_snprintf(path, sizeof path, "<%s>", value) == -1 ||
	    addr_parse_path(path, flags | ADDR_ALLOW_UTF8, a, &rest,
	    &cause) != 0 || *rest != '\0')
		return -1;
	return addr_format(a, buf, size);
}

/* One line of the header block, after the first, into the envelope. */
static int
maildrop_field(struct maildrop_reader *r, const char *line, char *why,
    size_t whysize)
{
	struct envelope	*env = r->env;
	struct addr	 a;
	char		 buf[ADDR_PATH_SIZE];
	const char	*value, *cause;

	if (strncmp(line, "sender: ", 8) == 0 ||
	    strcmp(line, "sender:") == 0) {
		value = line[7] == '\0' ? "" : line + 8;
		if ((r->seen & 1) || maildrop_addr(value, ADDR_ALLOW_NULL, &a,
		    buf, sizeof buf) == -1)
			return maildrop_fail(r, why, whysize,
			    "bad or second sender");
		envelope_set_str(&env->sender, buf);
		if (addr_is_utf8(&a))
			env->smtputf8 = 1;
		r->seen |= 1;
	} else if (strncmp(line, "rcpt: ", 6) == 0) {
		if (env->nrcpts >= r->limits.max_recipients)
			return maildrop_fail(r, why, whysize, "more "
			    "recipients than max_recipients");
		if (maildrop_addr(line + 6, 0, &a, buf, sizeof buf) == -1)
			return maildrop_fail(r, why, whysize,
			    "bad recipient address");
		/* As over SMTP: no routing through a local domain. */
		if (r->limits.is_local != NULL &&
		    r->limits.is_local(a.domain, r->limits.arg) &&
		    addr_has_routing(&a))
			return maildrop_fail(r, why, whysize, "recipient "
			    "local part with @, %% or !");
		if (addr_is_utf8(&a))
			env->smtputf8 = 1;
		/* Duplicates are sendmail's to drop; here they only cost. */
		envelope_add_rcpt(env, buf);
	} else if (strncmp(line, "size: ", 6) == 0) {
		if ((r->seen & 2) || util_parse_uint(line + 6, 0, UINT64_MAX,
		    &r->size, &cause) == -1)
			return maildrop_fail(r, why, whysize,
			    "bad or second size");
		r->seen |= 2;
	} else
		return maildrop_fail(r, why, whysize, "unknown header line");
	return 0;
}

/* A whole header line (its LF dropped) is in r->line. */
static int
maildrop_line(struct maildrop_reader *r, char *why, size_t whysize)
{
	size_t	len = r->line.len;

	util_buf_add(&r->line, "", 1);
	if (memchr(r->line.data, '\0', len) != NULL)
		return maildrop_fail(r, why, whysize,
		    "NUL in the header block");
	if (r->state == MAILDROP_MAGIC_LINE) {
		if (strcmp(r->line.data, MAILDROP_MAGIC) != 0)
			return maildrop_fail(r, why, whysize,
			    "not a version 1 maildrop file");
		r->state = MAILDROP_HEADER;
	} else if (len == 0) {
		if (r->seen != 3 || r->env->nrcpts == 0)
			return maildrop_fail(r, why, whysize,
			    "sender, recipient or size missing");
		if (r->size > r->limits.max_message_size)
			return maildrop_fail(r, why, whysize,
			    "message larger than max_message_size");
		r->state = MAILDROP_CONTENT;
	} else if (maildrop_field(r, r->line.data, why, whysize) == -1)
		return -1;
	r->line.len = 0;
	return 0;
}

/*
 * The message's octets: CRLF lines only, none longer than
 * MAILDROP_LINE_MAX, no NUL (which no next hop may be sent).  Octets
 * past the announced size are only counted, for the end to refuse.
 */
static int
maildrop_content(struct maildrop_reader *r, const char *p, size_t len,
    char *why, size_t whysize)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len && r->got < r->size; i++, r->got++) {
		c = (unsigned char)p[i];
		if (c >= 0x80)
			r->eight = 1;
		if (r->cr) {
			if (c != '\n')
				goto bare;
			r->cr = 0;
			if (++r->linelen > MAILDROP_LINE_MAX)
				return maildrop_fail(r, why, whysize, "line "
				    "longer than %d octets",
				    MAILDROP_LINE_MAX);
			r->linelen = 0;
			continue;
		}
		/* sendmail refuses them: a file that has one was not its. */
		if (c == '\0')
			return maildrop_fail(r, why, whysize,
			    "NUL in the message");
		if (c == '\n')
			goto bare;
		if (c == '\r')
			r->cr = 1;
		r->linelen++;
	}
	r->got += len - i;
	return 0;

bare:
	return maildrop_fail(r, why, whysize, "bare CR or LF in the message");
}

/*
 * The next len octets of a file.  The message's among them, which are
 * to be queued as they are, are *content and *clen: the tail of data
 * from where the message begins (*clen 0 when none of it is here, and
 * *content then the end of data).  -1 with the reason in why at the
 * first fault; nothing more may be fed then.
 */
int
maildrop_reader_feed(struct maildrop_reader *r, const char *data, size_t len,
    const char **content, size_t *clen, char *why, size_t whysize)
{
	const char	*nl;
	size_t		 i = 0, n, room;

	*content = data + len;
	*clen = 0;
	if (r->state == MAILDROP_FAILED)
		return maildrop_fail(r, why, whysize, "read after a fault");
	while (i < len && r->state != MAILDROP_CONTENT) {
		room = MAILDROP_HDR_MAX - (size_t)r->off;
		n = len - i < room ? len - i : room;
		if ((nl = memchr(data + i, '\n', n)) == NULL) {
			util_buf_add(&r->line, data + i, n);
			r->off += n;
			i += n;
			if (r->off >= MAILDROP_HDR_MAX)
				return maildrop_fail(r, why, whysize,
				    "header block not ended");
			continue;
		}
		n = (size_t)(nl - (data + i));
		util_buf_add(&r->line, data + i, n);
		r->off += n + 1;
		i += n + 1;
		if (maildrop_line(r, why, whysize) == -1)
			return -1;
	}
	if (i == len)
		return 0;
	*content = data + i;
	*clen = len - i;
	r->off += len - i;
	return maildrop_content(r, data + i, len - i, why, whysize);
}

/*
 * The file is over: whether it was whole.  Sets the envelope's body type
 * from what the message holds.
 */
int
maildrop_reader_end(struct maildrop_reader *r, char *why, size_t whysize)
{
	if (r->state == MAILDROP_FAILED)
		return maildrop_fail(r, why, whysize, "read after a fault");
	if (r->state != MAILDROP_CONTENT)
		return maildrop_fail(r, why, whysize,
		    "header block not ended");
	if (r->got != r->size)
		return maildrop_fail(r, why, whysize, "message is %" PRIu64
		    " octets, not %" PRIu64, r->got, r->size);
	if (r->cr)
		return maildrop_fail(r, why, whysize,
		    "bare CR or LF in the message");
	if (r->linelen != 0)
		return maildrop_fail(r, why, whysize,
		    "message does not end in CRLF");
	r->env->body = r->eight ? ENVELOPE_BODY_8BITMIME : ENVELOPE_BODY_7BIT;
	return 0;
}

/*
 * A whole file of len octets into env; *content and *clen are the
 * message inside buf.
 */
int
maildrop_parse(const char *buf, size_t len,
    const struct maildrop_limits *limits, struct envelope *env,
    const char **content, size_t *clen, char *why, size_t whysize)
{
	struct maildrop_reader	r;
	int			rc;

	maildrop_reader_init(&r, limits, env);
	rc = maildrop_reader_feed(&r, buf, len, content, clen, why, whysize);
	if (rc == 0)
		rc = maildrop_reader_end(&r, why, whysize);
	maildrop_reader_clear(&r);
	return rc;
}
