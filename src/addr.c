/*
 * addr.c: RFC 5321 paths ("<local@domain>", with source routes, quoted
 * local parts, address literals and the RFC 6531 UTF-8 extensions) and
 * their printed forms.  Pure: it never resolves, looks up or logs, and it
 * never reads a path past its terminating NUL, whatever the input.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>
#include <strings.h>

#include "addr.h"
#include "util.h"

/* RFC 5321 4.5.3.1.2 and 4.5.3.1.3. */
#define ADDR_LABEL_MAX		63
#define ADDR_DOMAIN_MAX		(ADDR_DOMAIN_SIZE - 1)
#define ADDR_LOCAL_MAX		(ADDR_LOCAL_SIZE - 1)
/* Longest address literal content we look at: "IPv6:" and a full IPv6. */
#define ADDR_LITERAL_MAX	64

/* Where the parser stands and what it has seen so far. */
struct addr_parser {
	const char	*p;		/* next octet; never past the NUL */
	int		 utf8;		/* an octet >= 0x80 was accepted */
	const char	*cause;		/* why it failed */
};

/* A bounded output string being built. */
struct addr_buf {
	char	*s;
	size_t	 len;
	size_t	 max;			/* octets, the NUL not counted */
};

static const char addr_atext_specials[] = "!#$%&'*+-/=?^_`{|}~";

static int
addr_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
addr_is_atext(unsigned char c)
{
	if (addr_is_alnum(c))
		return 1;
	return c != '\0' && strchr(addr_atext_specials, c) != NULL;
}

/* ASCII only: a UTF-8 domain keeps its other octets as sent. */
static char
addr_tolower(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return (char)c;
}

/* qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static int
addr_is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

static int
addr_fail(struct addr_parser *ps, const char *cause)
{
	ps->cause = cause;
	return -1;
}

/* Append n octets; too_long is the reason given when they do not fit. */
static int
addr_put(struct addr_parser *ps, struct addr_buf *b, const char *s, size_t n,
    const char *too_long)
{
	if (n > b->max - b->len)
		return addr_fail(ps, too_long);
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
	return 0;
}

/*
 * One octet or one UTF-8 character of text that allows UTF-8 (RFC 6531
 * UTF8-non-ascii); returns its length, or 0 with a cause when it is not
 * valid UTF-8.
 */
static size_t
addr_take_utf8(struct addr_parser *ps)
{
	size_t	n;

	if ((n = util_utf8_len((const unsigned char *)ps->p, 4)) == 0) {
		addr_fail(ps, "invalid UTF-8");
		return 0;
	}
	ps->utf8 = 1;
	return n;
}

/* Why an atom of a local part came out empty. */
static const char *
addr_atom_error(int first, unsigned char c)
{
	if (c == '\0')
		return "missing >";
	if (c == '.')
		return first ? "local part starts with a dot" :
		    "two dots in local part";
	if (c == '@' || c == '>')
		return first ? "empty local part" :
		    "local part ends with a dot";
	return "bad character in local part";
}

/* Dot-string = Atom *("." Atom), copied as sent. */
static int
addr_parse_dot_string(struct addr_parser *ps, struct addr_buf *b)
{
	const char	*what = "local part too long";
	unsigned char	 c;
	size_t		 n, atom;

	for (;;) {
		atom = 0;
		for (;;) {
			c = (unsigned char)*ps->p;
			if (addr_is_atext(c))
				n = 1;
			else if (c >= 0x80) {
				if ((n = addr_take_utf8(ps)) == 0)
					return -1;
			} else
				break;
			if (addr_put(ps, b, ps->p, n, what) == -1)
				return -1;
			ps->p += n;
			atom++;
		}
		if (atom == 0)
			return addr_fail(ps, addr_atom_error(b->len == 0, c));
		if (*ps->p != '.')
			return 0;
		if (addr_put(ps, b, ".", 1, what) == -1)
			return -1;
		ps->p++;
	}
}

/* Quoted-string, quotes and backslashes kept as sent. */
static int
addr_parse_quoted(struct addr_parser *ps, struct addr_buf *b)
{
	const char	*what = "local part too long";
	unsigned char	 c;
	size_t		 n, content = 0;

	if (addr_put(ps, b, ps->p++, 1, what) == -1)
		return -1;
	for (;;) {
		c = (unsigned char)*ps->p;
		if (c == '"')
			break;
		if (c == '\\') {
			c = (unsigned char)ps->p[1];
			if (c < 32 || c > 126)
				return addr_fail(ps,
				    "bad quoted pair in local part");
			n = 2;
		} else if (addr_is_qtext(c))
			n = 1;
		else if (c >= 0x80) {
			if ((n = addr_take_utf8(ps)) == 0)
				return -1;
		} else if (c == '\0')
			return addr_fail(ps, "unterminated quoted string");
		else
			return addr_fail(ps, "bad character in quoted string");
		if (addr_put(ps, b, ps->p, n, what) == -1)
			return -1;
		ps->p += n;
		content++;
	}
	if (content == 0)
		return addr_fail(ps, "empty local part");
	return addr_put(ps, b, ps->p++, 1, what);
}

/*
 * A quoted local part that needs no quotes names the same mailbox as its
 * plain form (RFC 5321 4.1.2): "alice" and "al\ice" are alice.  When the
 * content, its quoted pairs undone, is a Dot-string, it replaces the
 * quoted form, so that lookups, aliases, the sender check and the next
 * hop all see one spelling; otherwise the local part stays as sent.
 */
static void
addr_unquote(char *local)
{
	char		buf[ADDR_LOCAL_SIZE];
	unsigned char	c;
	size_t		i, o = 0;
	int		dot = 1;	/* at the start or after a dot */

	for (i = 1; local[i] != '"' && local[i] != '\0'; i++) {
		c = (unsigned char)local[i];
		if (c == '\\')
			c = (unsigned char)local[++i];
		if (c == '.') {
			if (dot)
				return;
			dot = 1;
		} else if (addr_is_atext(c) || c >= 0x80)
			dot = 0;
		else
			return;
		buf[o++] = (char)c;
	}
	if (dot)
		return;
	buf[o] = '\0';
	memcpy(local, buf, o + 1);
}

/*
 * Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str],
 * with U-labels when UTF-8 is seen.  Copied lowercased (ASCII letters
 * only); one trailing dot is accepted and left out.  Label length counts
 * characters, so a U-label is held to the same 63 as an ASCII one.
 */
static int
addr_parse_domain(struct addr_parser *ps, struct addr_buf *b)
{
	const char	*what = "domain too long";
	unsigned char	 c;
	char		 lc;
	size_t		 n, label;
	int		 hyphen;

	c = (unsigned char)*ps->p;
	if (c == '.')
		return addr_fail(ps, "empty domain label");
	for (;;) {
		c = (unsigned char)*ps->p;
		if (c == '-')
			return addr_fail(ps, "domain label starts with hyphen");
		if (c == '\0' || c == '>')
			return addr_fail(ps, "missing domain");
		if (!addr_is_alnum(c) && c < 0x80)
			return addr_fail(ps, "bad character in domain");
		label = 0;
		hyphen = 0;
		for (;;) {
			c = (unsigned char)*ps->p;
			if (addr_is_alnum(c) || c == '-') {
				n = 1;
				lc = addr_tolower(c);
				if (addr_put(ps, b, &lc, 1, what) == -1)
					return -1;
			} else if (c >= 0x80) {
				if ((n = addr_take_utf8(ps)) == 0)
					return -1;
				if (addr_put(ps, b, ps->p, n, what) == -1)
					return -1;
			} else
				break;
			hyphen = c == '-';
			ps->p += n;
			if (++label > ADDR_LABEL_MAX)
				return addr_fail(ps, "domain label too long");
		}
		if (hyphen)
			return addr_fail(ps, "domain label ends with hyphen");
		if (*ps->p != '.')
			return 0;
		c = (unsigned char)ps->p[1];
		if (c == '.')
			return addr_fail(ps, "empty domain label");
		if (!addr_is_alnum(c) && c != '-' && c < 0x80) {
			ps->p++;	/* the one trailing dot */
			return 0;
		}
		if (addr_put(ps, b, ".", 1, what) == -1)
			return -1;
		ps->p++;
	}
}

/*
 * address-literal: "[" IPv4 "]" or "[IPv6:" IPv6 "]", each checked with
 * inet_pton(3).  General literals ("[tag:content]") are refused: tern
 * could not deliver to them.  Written as "[192.0.2.1]" and
 * "[IPv6:2001:db8::1]" with the hex digits lowercased.
 */
static int
addr_parse_literal(struct addr_parser *ps, struct addr_buf *b)
{
	char		 text[ADDR_LITERAL_MAX + 1], lit[ADDR_LITERAL_MAX + 8];
	unsigned char	 bin[sizeof(struct in6_addr)];
	unsigned char	 c;
	size_t		 len = 0;
	const char	*ip;
	int		 af;

	ps->p++;
	for (;;) {
		c = (unsigned char)*ps->p;
		if (c == ']')
			break;
		/* dcontent: %d33-90 / %d94-126 */
		if (c < 33 || c > 126 || c == '[' || c == '\\')
			return addr_fail(ps, "bad address literal");
		if (len == ADDR_LITERAL_MAX)
			return addr_fail(ps, "bad address literal");
		text[len++] = addr_tolower(c);
		ps->p++;
	}
	ps->p++;
	text[len] = '\0';
	if (strncmp(text, "ipv6:", 5) == 0) {
		af = AF_INET6;
		ip = text + 5;
	} else if (strchr(text, ':') != NULL)
		return addr_fail(ps, "general address literal not supported");
	else {
		af = AF_INET;
		ip = text;
	}
	if (inet_pton(af, ip, bin) != 1)
		return addr_fail(ps, "bad address literal");
	if (util_snprintf(lit, sizeof lit, "[%s%s]",
	    af == AF_INET6 ? "IPv6:" : "", ip) == -1)
		return addr_fail(ps, "bad address literal");
	return addr_put(ps, b, lit, strlen(lit), "domain too long");
}

/*
 * A-d-l = At-domain *( "," At-domain ) ":", At-domain = "@" Domain.  The
 * route is checked and dropped (RFC 5321 4.1.2 and appendix C).
 */
static int
addr_parse_route(struct addr_parser *ps)
{
	char		route[ADDR_DOMAIN_SIZE];
	struct addr_buf	b;

	for (;;) {
		if (*ps->p != '@')
			return addr_fail(ps, "bad source route");
		ps->p++;
		b.s = route;
		b.len = 0;
		b.max = sizeof route - 1;
		if (addr_parse_domain(ps, &b) == -1)
			return -1;
		if (*ps->p == ':') {
			ps->p++;
			return 0;
		}
		if (*ps->p != ',')
			return addr_fail(ps, "bad source route");
		ps->p++;
	}
}

/* Mailbox = Local-part "@" ( Domain / address-literal ). */
static int
addr_parse_mailbox(struct addr_parser *ps, struct addr *a, int flags)
{
	struct addr_buf	b;
	int		rc;

	b.s = a->local;
	b.len = 0;
	b.max = ADDR_LOCAL_MAX;
	if (*ps->p == '"') {
		if ((rc = addr_parse_quoted(ps, &b)) == 0)
			addr_unquote(a->local);
	} else
		rc = addr_parse_dot_string(ps, &b);
	if (rc == -1)
		return -1;
	/* A bare local part, for the caller to qualify. */
	if (*ps->p == '>' && (flags & ADDR_ALLOW_BARE))
		return 0;
	if (*ps->p != '@') {
		if (*ps->p == '\\')
			return addr_fail(ps, "backslash outside quotes");
		if (*ps->p == '>')
			return addr_fail(ps, "missing @ and domain");
		if (*ps->p == '\0')
			return addr_fail(ps, "missing >");
		return addr_fail(ps, "bad character in local part");
	}
	ps->p++;
	b.s = a->domain;
	b.len = 0;
	b.max = ADDR_DOMAIN_MAX;
	if (*ps->p == '[')
		return addr_parse_literal(ps, &b);
	return addr_parse_domain(ps, &b);
}

/*
 * Parse the path at the start of s (the text after "MAIL FROM:" or "RCPT
 * TO:", leading spaces allowed).  On success *rest points just after the
 * ">", where the parameters follow after a space.  ADDR_ERR_UTF8 fills
 * *a and *rest like success, so the caller can name what it refuses; on
 * ADDR_ERR_SYNTAX *a is left empty and *cause says why.
 */
int
addr_parse_path(const char *s, int flags, struct addr *a, const char **rest,
    const char **cause)
{
	struct addr_parser	ps;
	int			rc = 0;

	memset(a, 0, sizeof *a);
	memset(&ps, 0, sizeof ps);
	ps.p = s;
	while (*ps.p == ' ')
		ps.p++;
	if (*ps.p != '<') {
		*cause = "path does not start with <";
		return ADDR_ERR_SYNTAX;
	}
	ps.p++;
	if (*ps.p == '>') {
		if (!(flags & ADDR_ALLOW_NULL))
			rc = addr_fail(&ps, "null path not allowed here");
	} else if ((flags & ADDR_ALLOW_POSTMASTER) &&
	    strncasecmp(ps.p, "postmaster>", 11) == 0) {
		memcpy(a->local, ps.p, 10);
		a->local[10] = '\0';
		ps.p += 10;
	} else {
		/* A source route must end in a whole mailbox. */
		if (*ps.p == '@') {
			rc = addr_parse_route(&ps);
			flags &= ~ADDR_ALLOW_BARE;
		}
		if (rc == 0)
			rc = addr_parse_mailbox(&ps, a, flags);
		if (rc == 0 && *ps.p != '>') {
			if (*ps.p == '\0')
				rc = addr_fail(&ps, "missing >");
			else if (*ps.p == '@')
				rc = addr_fail(&ps, "more than one @");
			else
				rc = addr_fail(&ps, "bad character in domain");
		}
	}
	if (rc == 0) {
		ps.p++;
		if (*ps.p != '\0' && *ps.p != ' ')
			rc = addr_fail(&ps, "garbage after path");
	}
	if (rc == -1) {
		memset(a, 0, sizeof *a);
		*cause = ps.cause;
		return ADDR_ERR_SYNTAX;
	}
	*rest = ps.p;
	if (ps.utf8 && !(flags & ADDR_ALLOW_UTF8)) {
		*cause = "UTF-8 address without SMTPUTF8";
		return ADDR_ERR_UTF8;
	}
	return 0;
}

int
addr_is_null(const struct addr *a)
{
	return a->local[0] == '\0' && a->domain[0] == '\0';
}

/*
 * A local part that another host could read as a route: "@" (quoted or
 * source-routed), "%" (the percent hack) or "!" (bang paths).  The local
 * part is kept as sent, so quoted and escaped octets are seen too.
 */
int
addr_has_routing(const struct addr *a)
{
	return strpbrk(a->local, "@%!") != NULL;
}

int
addr_is_utf8(const struct addr *a)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)a->local; *p != '\0'; p++) {
		if (*p >= 0x80)
			return 1;
	}
	for (p = (const unsigned char *)a->domain; *p != '\0'; p++) {
		if (*p >= 0x80)
			return 1;
	}
	return 0;
}

/* "local@domain", "local" without a domain, "" for the null path. */
int
addr_format(const struct addr *a, char *buf, size_t size)
{
	if (a->domain[0] == '\0')
		return util_snprintf(buf, size, "%s", a->local) == -1 ? -1 : 0;
	return util_snprintf(buf, size, "%s@%s", a->local, a->domain) == -1 ?
	    -1 : 0;
}

/* The same inside "<" ">". */
int
addr_format_path(const struct addr *a, char *buf, size_t size)
{
	if (a->domain[0] == '\0')
		return util_snprintf(buf, size, "<%s>", a->local) == -1 ?
		    -1 : 0;
	return util_snprintf(buf, size, "<%s@%s>", a->local, a->domain) ==
	    -1 ? -1 : 0;
}
