/*
 * mime.c: 8-bit MIME to 7-bit (RFC 6152 section 3, RFC 2045, RFC 2046)
 * for a next hop that does not offer 8BITMIME.  It owns the converter:
 * the plan made by the first pass, the line being put together, the
 * stack of open entities and the header block being read.  Pure logic:
 * no file, no socket, no log; output goes to the function it was given.
 *
 * The message is read line by line as a tree of entities: a multipart
 * body holds entities between its boundary lines, a message/rfc822 body
 * is one entity.  The first pass numbers the entities in the order they
 * begin and marks each leaf whose body holds an 8-bit octet; the second
 * walks the same tree, writes those bodies in quoted-printable with
 * "Content-Transfer-Encoding: quoted-printable", turns the encoding of
 * every multipart or message/rfc822 above them into 7bit, and copies
 * every other octet unchanged.  Header fields are never changed beyond
 * that: 8-bit octets in them pass as they are, as Postfix does.
 *
 * Conversion is refused where it would break the message: 8-bit under
 * multipart/signed or multipart/encrypted (the signature covers the
 * octets), and 8-bit where no encoding may be applied (message/partial,
 * message/external-body, a multipart without a boundary, a part already
 * labelled base64 or quoted-printable, nesting too deep to follow).
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime.h"
#include "util.h"

#define MIME_LINE_MAX		4096	/* octets of a line kept at once */
#define MIME_DEPTH_MAX		32	/* entities open at once */
#define MIME_BOUNDARY_MAX	70	/* RFC 2046 section 5.1.1 */
#define MIME_TYPE_MAX		128
#define MIME_QP_WIDTH		76	/* RFC 2045 section 6.7, rule 5 */
#define MIME_OUT_SIZE		8192	/* output gathered before a call */

/* What an entity is, once its header is read. */
enum mime_kind {
	MIME_K_LEAF,		/* a body that may be made quoted-printable */
	MIME_K_MULTI,		/* multipart with a boundary */
	MIME_K_MESSAGE,		/* message/rfc822: one entity inside */
	MIME_K_OPAQUE,		/* no encoding may be applied to its body */
	MIME_K_ENCODED,		/* already encoded: 8-bit is not ours to fix */
};

/* The plan: one octet of flags per entity, in the order they begin. */
#define MIME_P_8BIT	0x01	/* a leaf whose body has 8-bit octets */
#define MIME_P_SUB8	0x02	/* a composite with such a leaf inside */

/* One open entity. */
struct mime_frame {
	size_t		 idx;		/* in the plan */
	enum mime_kind	 kind;
	int		 protect;	/* under multipart/signed, encrypted */
	int		 digest;	/* multipart/digest: children default
					   to message/rfc822 */
	int		 epilogue;	/* multipart: past its last boundary */
	size_t		 blen;
	char		 boundary[MIME_BOUNDARY_MAX + 1];
	char		 type[MIME_TYPE_MAX];
};

/* A converter and its state; owned by whoever made it. */
struct mime_conv {
	int		 converting;	/* the second pass */
	mime_out_fn	*out;
	void		*arg;

	unsigned char	*plan;
	size_t		 nplan;		/* entities the scan found */
	size_t		 nent;		/* entities begun in this pass */

	enum mime_verdict verdict;
	int		 header8;	/* an 8-bit octet in some header */
	char		 why[MIME_WHY_SIZE];

	char		 line[MIME_LINE_MAX];	/* a line not yet whole */
	size_t		 linelen;
	int		 bol;		/* line[] starts a line */

	struct mime_frame frames[MIME_DEPTH_MAX];
	size_t		 depth;		/* frames[depth - 1] is current */
	int		 in_header;	/* reading the current header */
	struct util_buf	 hdr;

	size_t		 col;		/* quoted-printable output column */
	int		 pend;		/* white space held back, or -1 */

	char		 obuf[MIME_OUT_SIZE];	/* output not yet handed on */
	size_t		 olen;
};

static const char *const mime_verdict_names[] = {
	[MIME_7BIT] = "7bit",
	[MIME_CONVERT] = "convert",
	[MIME_SIGNED] = "signed",
	[MIME_CANNOT] = "cannot",
};

const char *
mime_verdict_str(enum mime_verdict v)
{
	if ((size_t)v >= nitems(mime_verdict_names))
		return "unknown";
	return mime_verdict_names[v];
}

/* Hand on what was gathered. */
static void
mime_flush(struct mime_conv *c)
{
	if (c->olen > 0)
		c->out(c->arg, c->obuf, c->olen);
	c->olen = 0;
}

/*
 * Output, in order; small pieces (quoted-printable comes an octet or
 * three at a time) are gathered so the caller sees few large ones.
 */
static void
mime_emit(struct mime_conv *c, const char *p, size_t len)
{
	if (!c->converting || len == 0)
		return;
	if (c->olen + len > sizeof c->obuf)
		mime_flush(c);
	if (len > sizeof c->obuf) {
		c->out(c->arg, p, len);
		return;
	}
	memcpy(c->obuf + c->olen, p, len);
	c->olen += len;
}

static int
mime_has_8bit(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	}
	return 0;
}

/* The first error the scan meets is the one it reports. */
static void
mime_refuse(struct mime_conv *c, enum mime_verdict v, const char *why)
{
	if (c->converting || c->verdict == MIME_SIGNED ||
	    c->verdict == MIME_CANNOT)
		return;
	c->verdict = v;
	util_strlcpy(c->why, why, sizeof c->why);
}

/* Start an entity: its header comes next. */
static void
mime_begin(struct mime_conv *c, int digest_child)
{
	struct mime_frame	*f, *parent;

	if (c->depth == MIME_DEPTH_MAX)
		return;		/* never: see mime_header_end */
	parent = c->depth > 0 ? &c->frames[c->depth - 1] : NULL;
	f = &c->frames[c->depth++];
	memset(f, 0, sizeof *f);
	f->idx = c->nent++;
	f->protect = parent != NULL && parent->protect;
	f->digest = digest_child;	/* until the header says otherwise */
	if (!c->converting) {
		c->plan = xreallocarray(c->plan, c->nent, 1);
		c->plan[f->idx] = 0;
		c->nplan = c->nent;
	}
	c->in_header = 1;
	c->hdr.len = 0;
}

/* Skip white space and RFC 5322 comments. */
static const char *
mime_skip_cfws(const char *p, const char *end)
{
	int	nest = 0;

	while (p < end) {
		if (*p == '(')
			nest++;
		else if (*p == ')' && nest > 0)
			nest--;
		else if (*p == '\\' && nest > 0 && p + 1 < end)
			p++;
		else if (nest == 0 && *p != ' ' && *p != '\t' &&
		    *p != '\r' && *p != '\n')
			break;
		p++;
	}
	return p;
}

/* A MIME token (RFC 2045 section 5.1), copied lowercased. */
static const char *
mime_token(const char *p, const char *end, char *buf, size_t size)
{
	size_t	n = 0;

	while (p < end && (unsigned char)*p > 0x20 &&
	    (unsigned char)*p < 0x7f &&
	    strchr("()<>@,;:\\\"/[]?=", *p) == NULL) {
		if (n + 1 < size)
			buf[n++] = (char)tolower((unsigned char)*p);
		p++;
	}
	buf[n] = '\0';
	return p;
}

/*
 * Content-Type: "type/subtype" into type, and the boundary parameter,
 * token or quoted string, into boundary ("" if absent or too long).
 */
static void
mime_parse_ct(const char *p, const char *end, char *type, size_t tsize,
    char *boundary, size_t bsize)
{
	char	name[32], sub[MIME_TYPE_MAX], val[MIME_BOUNDARY_MAX + 2];
	size_t	n;

	boundary[0] = '\0';
	p = mime_skip_cfws(p, end);
	p = mime_token(p, end, type, tsize);
	p = mime_skip_cfws(p, end);
	if (p < end && *p == '/') {
		p = mime_skip_cfws(p + 1, end);
		p = mime_token(p, end, sub, sizeof sub);
		util_strlcat(type, "/", tsize);
		util_strlcat(type, sub, tsize);
	}
	while (p < end) {
		if ((p = memchr(p, ';', (size_t)(end - p))) == NULL)
			return;
		p = mime_skip_cfws(p + 1, end);
		p = mime_token(p, end, name, sizeof name);
		p = mime_skip_cfws(p, end);
		if (p >= end || *p != '=')
			continue;
		p = mime_skip_cfws(p + 1, end);
		n = 0;
		if (p < end && *p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				if (*p == '\r' || *p == '\n')
					continue;
				if (n + 1 < sizeof val)
					val[n++] = *p;
				else
					n = sizeof val;
			}
			if (n >= sizeof val)
				n = 0;		/* too long: no boundary */
			val[n] = '\0';
		} else {
			while (p < end && *p != ';' && *p != ' ' &&
			    *p != '\t' && *p != '(' && *p != '\r' &&
			    *p != '\n') {
				if (n + 1 < sizeof val)
					val[n++] = *p;
				p++;
			}
			val[n] = '\0';
		}
		if (strcmp(name, "boundary") == 0 && n > 0 &&
		    n <= MIME_BOUNDARY_MAX)
			util_strlcpy(boundary, val, bsize);
	}
}

/*
 * The next field of a header block at *p: sets name to its name (up to
 * the colon, NUL-terminated and cut to size) and returns its length,
 * continuation lines included; 0 at the end.
 */
static size_t
mime_field(const char *p, const char *end, char *name, size_t size)
{
	const char	*q = p, *nl;
	size_t		 n;

	if (p >= end)
		return 0;
	for (;;) {
		if ((nl = memchr(q, '\n', (size_t)(end - q))) == NULL) {
			q = end;
			break;
		}
		q = nl + 1;
		if (q >= end || (*q != ' ' && *q != '\t'))
			break;
	}
	for (n = 0; p + n < q && p[n] != ':' && p[n] != '\r' &&
	    p[n] != '\n'; n++)
		;
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n >= size)
		n = size - 1;
	memcpy(name, p, n);
	name[n] = '\0';
	return (size_t)(q - p);
}

/* Write the header again, its encoding changed as the plan says. */
static void
mime_header_emit(struct mime_conv *c, unsigned char flags, int top)
{
	const char	*p = c->hdr.data, *end = p + c->hdr.len;
	char		 name[64];
	size_t		 n;
	int		 has_version = 0;

	if (!(flags & (MIME_P_8BIT | MIME_P_SUB8))) {
		mime_emit(c, p, c->hdr.len);
		return;
	}
	while ((n = mime_field(p, end, name, sizeof name)) > 0) {
		if (strcasecmp(name, "MIME-Version") == 0)
			has_version = 1;
		if (strcasecmp(name, "Content-Transfer-Encoding") != 0)
			mime_emit(c, p, n);
		else if (!(flags & MIME_P_8BIT))
			mime_emit(c, "Content-Transfer-Encoding: 7bit\r\n", 33);
		p += n;
	}
	if (flags & MIME_P_8BIT) {
		if (top && !has_version)
			mime_emit(c, "MIME-Version: 1.0\r\n", 19);
		mime_emit(c, "Content-Transfer-Encoding: quoted-printable\r\n",
		    45);
	}
}

/*
 * The header of the current entity is over (blank is the empty line
 * that ended it, or NULL): decide what the entity is, write the header
 * in the second pass, and open the entity a message/rfc822 holds.
 */
static void
mime_header_end(struct mime_conv *c, const char *blank, size_t blen)
{
	struct mime_frame	*f = &c->frames[c->depth - 1];
	const char		*p = c->hdr.data, *end = p + c->hdr.len, *v;
	char			 name[64], cte[32] = "", boundary[
				    MIME_BOUNDARY_MAX + 1] = "";
	size_t			 n;
	int			 identity, composite, digest = f->digest;
	unsigned char		 flags = 0;

	c->in_header = 0;
	util_strlcpy(f->type, digest ? "message/rfc822" : "text/plain",
	    sizeof f->type);
	f->digest = 0;
	while ((n = mime_field(p, end, name, sizeof name)) > 0) {
		v = memchr(p, ':', n);
		if (v != NULL && strcasecmp(name, "Content-Type") == 0)
			mime_parse_ct(v + 1, p + n, f->type, sizeof f->type,
			    boundary, sizeof boundary);
		else if (v != NULL &&
		    strcasecmp(name, "Content-Transfer-Encoding") == 0)
			mime_token(mime_skip_cfws(v + 1, p + n), p + n, cte,
			    sizeof cte);
		p += n;
	}
	if (!c->converting && mime_has_8bit(c->hdr.data, c->hdr.len))
		c->header8 = 1;

	identity = cte[0] == '\0' || strcmp(cte, "7bit") == 0 ||
	    strcmp(cte, "8bit") == 0 || strcmp(cte, "binary") == 0;
	composite = c->depth < MIME_DEPTH_MAX - 1;
	if (strncmp(f->type, "multipart/", 10) == 0) {
		if (strcmp(f->type, "multipart/signed") == 0 ||
		    strcmp(f->type, "multipart/encrypted") == 0)
			f->protect = 1;
		if (identity && boundary[0] != '\0' && composite) {
			f->kind = MIME_K_MULTI;
			f->digest = strcmp(f->type, "multipart/digest") == 0;
			f->blen = strlen(boundary);
			memcpy(f->boundary, boundary, f->blen + 1);
		} else
			f->kind = MIME_K_OPAQUE;
	} else if (strcmp(f->type, "message/rfc822") == 0) {
		f->kind = !identity ? MIME_K_ENCODED : composite ?
		    MIME_K_MESSAGE : MIME_K_OPAQUE;
	} else if (strcmp(f->type, "message/partial") == 0 ||
	    strcmp(f->type, "message/external-body") == 0)
		f->kind = MIME_K_OPAQUE;
	else
		f->kind = identity ? MIME_K_LEAF : MIME_K_ENCODED;

	if (c->converting) {
		if (f->idx < c->nplan)
			flags = c->plan[f->idx];
		mime_header_emit(c, flags, c->depth == 1);
		if (blank != NULL)
			mime_emit(c, blank, blen);
		else if (flags & MIME_P_8BIT)
			/* The body began without an empty line: now it has. */
			mime_emit(c, "\r\n", 2);
	}
	c->hdr.len = 0;
	if (f->kind == MIME_K_MESSAGE)
		mime_begin(c, 0);
}

/* Whether a header line may be read as part of a header block. */
static int
mime_is_header_line(const char *p, size_t len)
{
	size_t	i;

	if (len > 0 && (p[0] == ' ' || p[0] == '\t'))
		return 1;
	if (len >= 5 && memcmp(p, "From ", 5) == 0)
		return 1;
	for (i = 0; i < len; i++) {
		if (p[i] == ':')
			return i > 0;
		if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
			return 0;
	}
	return 0;
}

/*
 * Whether a line (n octets, its line end excluded) is a boundary line of
 * the multipart f: 1 for a delimiter, 2 for the close delimiter.
 */
static int
mime_is_boundary(const struct mime_frame *f, const char *p, size_t n)
{
	int	close = 0;

	if (n < 2 + f->blen || p[0] != '-' || p[1] != '-' ||
	    memcmp(p + 2, f->boundary, f->blen) != 0)
		return 0;
	p += 2 + f->blen;
	n -= 2 + f->blen;
	if (n >= 2 && p[0] == '-' && p[1] == '-') {
		close = 1;
		p += 2;
		n -= 2;
	}
	for (; n > 0; p++, n--) {
		if (*p != ' ' && *p != '\t')
			return 0;
	}
	return 1 + close;
}

/*
 * Quoted-printable: one encoded item, after a soft break if need be,
 * straight into the output buffer (this runs for every octet).
 */
static void
mime_qp_put(struct mime_conv *c, const char *item, size_t len)
{
	if (c->olen + len + 3 > sizeof c->obuf)
		mime_flush(c);
	if (c->col + len > MIME_QP_WIDTH - 1) {
		memcpy(c->obuf + c->olen, "=\r\n", 3);
		c->olen += 3;
		c->col = 0;
	}
	memcpy(c->obuf + c->olen, item, len);
	c->olen += len;
	c->col += len;
}

static void
mime_qp_octet(struct mime_conv *c, unsigned char ch, int literal)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			 item[3];

	if (literal) {
		item[0] = (char)ch;
		mime_qp_put(c, item, 1);
		return;
	}
	item[0] = '=';
	item[1] = hex[ch >> 4];
	item[2] = hex[ch & 0xf];
	mime_qp_put(c, item, 3);
}

/* White space held back is literal unless the line ends after it. */
static void
mime_qp_flush(struct mime_conv *c, int at_eol)
{
	if (c->pend == -1)
		return;
	mime_qp_octet(c, (unsigned char)c->pend, !at_eol);
	c->pend = -1;
}

/* Encode n octets of a line; eol: the line ends after them. */
static void
mime_qp(struct mime_conv *c, const char *p, size_t n, int eol)
{
	unsigned char	ch;
	size_t		i;

	for (i = 0; i < n; i++) {
		ch = (unsigned char)p[i];
		mime_qp_flush(c, 0);
		if (ch == ' ' || ch == '\t')
			c->pend = ch;
		else
			mime_qp_octet(c, ch, ch >= 0x21 && ch <= 0x7e &&
			    ch != '=');
	}
	if (eol) {
		mime_qp_flush(c, 1);
		mime_emit(c, "\r\n", 2);
		c->col = 0;
	}
}

/* A piece of the body of the current leaf. */
static void
mime_leaf_body(struct mime_conv *c, struct mime_frame *f, const char *p,
    size_t len, size_t n, int eol)
{
	char	why[MIME_WHY_SIZE];
	size_t	i;

	if (c->converting) {
		if (f->idx < c->nplan && (c->plan[f->idx] & MIME_P_8BIT))
			mime_qp(c, p, n, eol);
		else
			mime_emit(c, p, len);
		return;
	}
	if (!mime_has_8bit(p, len))
		return;
	if (f->protect) {
		mime_refuse(c, MIME_SIGNED, "8-bit data under a signed or "
		    "encrypted multipart");
		return;
	}
	if (f->kind != MIME_K_LEAF) {
		util_snprintf(why, sizeof why, "8-bit data in a %s part that "
		    "cannot be re-encoded", f->type);
		mime_refuse(c, MIME_CANNOT, why);
		return;
	}
	c->plan[f->idx] |= MIME_P_8BIT;
	for (i = 0; i + 1 < c->depth; i++)
		c->plan[c->frames[i].idx] |= MIME_P_SUB8;
	if (c->verdict == MIME_7BIT)
		c->verdict = MIME_CONVERT;
}

/*
 * One piece of input: a whole line with its line end (eol), or part of
 * a long one; bol says whether it starts a line.
 */
static void
mime_piece(struct mime_conv *c, const char *p, size_t len, int bol, int eol)
{
	struct mime_frame	*f;
	size_t			 n = len, i;
	int			 b;

	if (eol) {
		n--;
		if (n > 0 && p[n - 1] == '\r')
			n--;
	}
	if (c->depth == 0) {
		mime_emit(c, p, len);
		return;
	}
	/* A boundary line closes whatever is open inside its multipart. */
	if (bol && eol && n >= 2 && p[0] == '-' && p[1] == '-') {
		for (i = c->depth; i > 0; i--) {
			f = &c->frames[i - 1];
			if (f->kind != MIME_K_MULTI || f->epilogue)
				continue;
			if ((b = mime_is_boundary(f, p, n)) == 0)
				continue;
			if (c->in_header)
				mime_header_end(c, NULL, 0);
			mime_qp_flush(c, 1);
			c->depth = i;
			mime_emit(c, p, len);
			if (b == 2)
				f->epilogue = 1;
			else
				mime_begin(c, f->digest);
			return;
		}
	}
	if (c->in_header) {
		if (bol && eol && n == 0) {
			mime_header_end(c, p, len);
			return;
		}
		if (!bol || mime_is_header_line(p, n)) {
			util_buf_add(&c->hdr, p, len);
			return;
		}
		/* A line that is no header field begins the body. */
		mime_header_end(c, NULL, 0);
	}
	f = &c->frames[c->depth - 1];
	if (f->kind == MIME_K_MULTI)
		mime_emit(c, p, len);	/* preamble, epilogue */
	else
		mime_leaf_body(c, f, p, len, n, eol);
}

/* Feed any number of octets of the message. */
void
mime_feed(struct mime_conv *c, const char *p, size_t len)
{
	const char	*nl;
	size_t		 n, hold;

	while (len > 0) {
		nl = memchr(p, '\n', len);
		n = nl != NULL ? (size_t)(nl - p) + 1 : len;
		if (c->linelen == 0 && nl != NULL) {
			mime_piece(c, p, n, c->bol, 1);
			c->bol = 1;
		} else {
			if (n > sizeof c->line - c->linelen)
				n = sizeof c->line - c->linelen;
			memcpy(c->line + c->linelen, p, n);
			c->linelen += n;
			if (c->line[c->linelen - 1] == '\n') {
				mime_piece(c, c->line, c->linelen, c->bol, 1);
				c->linelen = 0;
				c->bol = 1;
			} else if (c->linelen == sizeof c->line) {
				/* Keep a CR with the LF that may follow. */
				hold = c->line[c->linelen - 1] == '\r';
				mime_piece(c, c->line, c->linelen - hold,
				    c->bol, 0);
				c->bol = 0;
				c->line[0] = '\r';
				c->linelen = hold;
			}
		}
		p += n;
		len -= n;
	}
	if (c->converting)
		mime_flush(c);
}

/* The end of the input: what is left, and every open entity. */
static void
mime_finish(struct mime_conv *c)
{
	if (c->linelen > 0)
		mime_piece(c, c->line, c->linelen, c->bol, 0);
	c->linelen = 0;
	if (c->depth > 0 && c->in_header)
		mime_header_end(c, NULL, 0);
	mime_qp_flush(c, 1);
	c->depth = 0;
	if (c->converting)
		mime_flush(c);
}

static void
mime_reset(struct mime_conv *c)
{
	c->nent = 0;
	c->linelen = 0;
	c->bol = 1;
	c->depth = 0;
	c->in_header = 0;
	c->hdr.len = 0;
	c->col = 0;
	c->pend = -1;
	c->olen = 0;
	mime_begin(c, 0);
}

/* A converter for the first pass. */
struct mime_conv *
mime_scan_new(void)
{
	struct mime_conv	*c;

	c = xcalloc(1, sizeof *c);
	c->verdict = MIME_7BIT;
	mime_reset(c);
	return c;
}

/*
 * The first pass is over: the verdict, whether any header holds 8-bit
 * octets (header8, may be NULL), and for a refusal why, in words.
 */
enum mime_verdict
mime_scan_end(struct mime_conv *c, int *header8, char *why, size_t size)
{
	mime_finish(c);
	if (header8 != NULL)
		*header8 = c->header8;
	if (why != NULL && size > 0)
		util_strlcpy(why, c->why, size);
	return c->verdict;
}

/* Begin the second pass: feed the same octets again. */
void
mime_convert_start(struct mime_conv *c, mime_out_fn *out, void *arg)
{
	c->converting = 1;
	c->out = out;
	c->arg = arg;
	mime_reset(c);
}

void
mime_convert_end(struct mime_conv *c)
{
	mime_finish(c);
}

void
mime_conv_free(struct mime_conv *c)
{
	if (c == NULL)
		return;
	free(c->plan);
	free(c->hdr.data);
	free(c);
}
