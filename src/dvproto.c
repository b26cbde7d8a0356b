/*
 * dvproto.c: Dovecot's authentication protocol, client side, without
 * sockets or the loop: lines cut from the server's bytes, each read into
 * a struct dvproto_reply, and the handshake, AUTH, CONT and CANCEL lines
 * written for the connection to send.  It never logs: a line may carry
 * a client's credentials.
 *
 * The protocol is line based, LF-ended, with TAB between parameters;
 * Dovecot escapes TAB, LF, CR, NUL and its escape octet inside values
 * with the octet 0x01 followed by a letter or digit.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvproto.h"
#include "util.h"

#define DVPROTO_ESCAPE		'\001'

/* The kinds of line tern acts on; every other one is ignored. */
static const struct {
	const char		*name;
	enum dvproto_kind	 kind;
} dvproto_kinds[] = {
	{ "VERSION", DVPROTO_VERSION },
	{ "MECH", DVPROTO_MECH },
	{ "DONE", DVPROTO_DONE },
	{ "OK", DVPROTO_OK },
	{ "CONT", DVPROTO_CONT },
	{ "FAIL", DVPROTO_FAIL },
};

/* The flags of a MECH line tern cares for; others are ignored. */
static const struct {
	const char	*name;
	int		 flag;
} dvproto_mech_flags[] = {
	{ "plaintext", DVPROTO_MECH_PLAINTEXT },
	{ "anonymous", DVPROTO_MECH_ANONYMOUS },
	{ "private", DVPROTO_MECH_PRIVATE },
};

/*
 * Take the server's bytes: at most len octets of data are consumed,
 * *used says how many.  Returns 1 when a whole line is ready in *line
 * (NUL-terminated, its LF and any CR before it removed; valid until the
 * next call), 0 when every octet was taken without ending a line, and -1
 * when the line is longer than DVPROTO_LINE_MAX or holds a NUL: the
 * stream can no longer be trusted.
 */
int
dvproto_take(struct dvproto_in *in, const char *data, size_t len,
    size_t *used, char **line)
{
	const char	*lf;
	size_t		 n;

	*used = 0;
	*line = NULL;
	if (in->overflow)
		return -1;
	lf = memchr(data, '\n', len);
	n = lf != NULL ? (size_t)(lf - data) : len;
	if (memchr(data, '\0', n) != NULL || in->len + n > DVPROTO_LINE_MAX) {
		in->overflow = 1;
		return -1;
	}
	memcpy(in->line + in->len, data, n);
	in->len += n;
	if (lf == NULL) {
		*used = len;
		return 0;
	}
	*used = n + 1;
	if (in->len > 0 && in->line[in->len - 1] == '\r')
		in->len--;
	in->line[in->len] = '\0';
	*line = in->line;
	in->len = 0;
	return 1;
}

/* A decimal number without sign or leading junk, fitting an unsigned. */
static int
dvproto_number(const char *s, unsigned *out)
{
	unsigned long	v = 0;

	if (*s == '\0' || strlen(s) > 10)
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > UINT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Base64 characters only (padding included); "" is base64 too. */
int
dvproto_is_base64(const char *s)
{
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '+' && *s != '/' &&
		    *s != '=')
			return 0;
	}
	return 1;
}

/*
 * A SASL mechanism name (RFC 4422 section 3.1): 1 to 20 upper-case
 * letters, digits, hyphens and underscores.
 */
int
dvproto_is_mech(const char *s)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= DVPROTO_MECH_SIZE - 1)
			return 0;
		if (!isupper((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_')
			return 0;
	}
	return i > 0;
}

/*
 * Whether an SMTP server may announce a mechanism Dovecot offers: not
 * the ones Dovecot keeps private, never ANONYMOUS ones (relaying would
 * need no identity), not EXTERNAL (tern asks for no client
 * certificate) and no channel-binding -PLUS variant (tern gives Dovecot
 * no TLS channel binding).
 */
int
dvproto_is_offered(const char *mech, int flags)
{
	size_t	len = strlen(mech);

	if (flags & (DVPROTO_MECH_PRIVATE | DVPROTO_MECH_ANONYMOUS))
		return 0;
	if (strcmp(mech, "EXTERNAL") == 0 || strcmp(mech, "ANONYMOUS") == 0)
		return 0;
	if (len > 5 && strcmp(mech + len - 5, "-PLUS") == 0)
		return 0;
	return 1;
}

/*
 * Undo Dovecot's tab-escaping in place.  -1 for an escape at the end or
 * an escaped NUL: no value tern uses may hold one.
 */
int
dvproto_unescape(char *s)
{
	char	*o = s;

	for (; *s != '\0'; s++) {
		if (*s != DVPROTO_ESCAPE) {
			*o++ = *s;
			continue;
		}
		switch (*++s) {
		case '\0':
		case '0':
			return -1;
		case '1':
			*o++ = DVPROTO_ESCAPE;
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 'n':
		case 'l':
			*o++ = '\n';
			break;
		default:
			*o++ = *s;
			break;
		}
	}
	*o = '\0';
	return 0;
}

/* Cut the next TAB-separated field off *p; NULL when there is none. */
static char *
dvproto_field(char **p)
{
	char	*f = *p, *tab;

	if (f == NULL)
		return NULL;
	if ((tab = strchr(f, '\t')) != NULL) {
		*tab = '\0';
		*p = tab + 1;
	} else
		*p = NULL;
	return f;
}

/* A user name as tern keeps it: not empty, no control characters. */
static int
dvproto_is_user(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

/* OK and FAIL: the optional parameters after the id. */
static int
dvproto_params(char *rest, struct dvproto_reply *r)
{
	char	*f;

	while ((f = dvproto_field(&rest)) != NULL) {
		if (strncmp(f, "user=", 5) == 0) {
			if (dvproto_unescape(f + 5) == -1 ||
			    !dvproto_is_user(f + 5))
				return -1;
			r->user = f + 5;
		} else if (strncmp(f, "reason=", 7) == 0) {
			if (dvproto_unescape(f + 7) == -1)
				return -1;
			r->reason = f + 7;
		} else if (strcmp(f, "temp") == 0 ||
		    strcmp(f, "code=temp_fail") == 0)
			r->temp = 1;
	}
	return 0;
}

/*
 * Read one line from the server (as dvproto_take() gave it; changed in
 * place).  0, or -1 when a line tern acts on is malformed.
 */
int
dvproto_parse(char *line, struct dvproto_reply *r)
{
	char	*rest = line, *cmd, *f, *g;
	size_t	 i;

	memset(r, 0, sizeof *r);
	cmd = dvproto_field(&rest);
	r->kind = DVPROTO_IGNORE;
	for (i = 0; i < nitems(dvproto_kinds); i++) {
		if (strcmp(cmd, dvproto_kinds[i].name) == 0)
			r->kind = dvproto_kinds[i].kind;
	}
	switch (r->kind) {
	case DVPROTO_IGNORE:
	case DVPROTO_DONE:
		return 0;
	case DVPROTO_VERSION:
		if ((f = dvproto_field(&rest)) == NULL ||
		    (g = dvproto_field(&rest)) == NULL ||
		    dvproto_number(f, &r->major) == -1 ||
		    dvproto_number(g, &r->minor) == -1)
			return -1;
		return 0;
	case DVPROTO_MECH:
		if ((f = dvproto_field(&rest)) == NULL || !dvproto_is_mech(f))
			return -1;
		util_strlcpy(r->mech, f, sizeof r->mech);
		while ((f = dvproto_field(&rest)) != NULL) {
			for (i = 0; i < nitems(dvproto_mech_flags); i++) {
				if (strcmp(f, dvproto_mech_flags[i].name) == 0)
					r->flags |= dvproto_mech_flags[i].flag;
			}
		}
		return 0;
	default:
		break;
	}
	/* OK, CONT and FAIL: the id of a request first. */
	if ((f = dvproto_field(&rest)) == NULL ||
	    dvproto_number(f, &r->id) == -1 || r->id == 0)
		return -1;
	if (r->kind == DVPROTO_CONT) {
		if ((f = dvproto_field(&rest)) == NULL)
			f = line + strlen(line);	/* "" */
		if (!dvproto_is_base64(f))
			return -1;
		r->data = f;
		return 0;
	}
	return dvproto_params(rest, r);
}

/* The client's half of the handshake. */
int
dvproto_handshake(char *buf, size_t size, unsigned pid)
{
	return util_snprintf(buf, size, "VERSION\t%u\t%u\nCPID\t%u\n",
	    DVPROTO_MAJOR, DVPROTO_MINOR, pid);
}

/* An optional field's text, only when it has no TAB, LF or escape. */
static int
dvproto_is_plain(const char *s)
{
	return s == NULL || strpbrk(s, "\t\r\n\001") == NULL;
}

/*
 * A request: "AUTH" id mech service= [session=] [lip=] [rip=] [lport=]
 * [rport=] [secured] [resp=].  -1 if a field could break the line or
 * the line does not fit.
 */
int
dvproto_auth_line(char *buf, size_t size, const struct dvproto_auth *a)
{
	char	lport[24] = "", rport[24] = "";

	if (a->id == 0 || !dvproto_is_mech(a->mech) ||
	    !dvproto_is_plain(a->service) || !dvproto_is_plain(a->session) ||
	    !dvproto_is_plain(a->lip) || !dvproto_is_plain(a->rip) ||
	    (a->resp != NULL && !dvproto_is_base64(a->resp)))
		return -1;
	if (a->lport != 0)
		snprintf(lport, sizeof lport, "\tlport=%u", a->lport);
	if (a->rport != 0)
		snprintf(rport, sizeof rport, "\trport=%u", a->rport);
	return util_snprintf(buf, size,
	    "AUTH\t%u\t%s\tservice=%s%s%s%s%s%s%s%s%s%s%s%s\n", a->id, a->mech,
	    a->service,
	    a->session != NULL ? "\tsession=" : "",
	    a->session != NULL ? a->session : "",
	    a->lip != NULL ? "\tlip=" : "", a->lip != NULL ? a->lip : "",
	    a->rip != NULL ? "\trip=" : "", a->rip != NULL ? a->rip : "",
	    lport, rport, a->secured ? "\tsecured" : "",
	    a->resp != NULL ? "\tresp=" : "", a->resp != NULL ? a->resp : "");
}

/* The client's next response, base64. */
int
dvproto_cont_line(char *buf, size_t size, unsigned id, const char *data)
{
	if (id == 0 || !dvproto_is_base64(data))
		return -1;
	return util_snprintf(buf, size, "CONT\t%u\t%s\n", id, data);
}

int
dvproto_cancel_line(char *buf, size_t size, unsigned id)
{
	return util_snprintf(buf, size, "CANCEL\t%u\n", id);
}

/* "inet:HOST:PORT", HOST an IPv4 address, [IPv6] or localhost. */
static int
dvproto_parse_inet(const char *spec, struct sockaddr_storage *ss,
    socklen_t *sslen, char **cause)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[64];
	const char		*colon, *p;
	unsigned		 port;
	size_t			 len;

	if ((colon = strrchr(spec, ':')) == NULL) {
		xasprintf(cause, "no port after inet:HOST");
		return -1;
	}
	len = (size_t)(colon - spec);
	p = spec;
	if (len >= 2 && spec[0] == '[' && spec[len - 1] == ']') {
		p++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof host) {
		xasprintf(cause, "bad host in inet:HOST:PORT");
		return -1;
	}
	memcpy(host, p, len);
	host[len] = '\0';
	if (dvproto_number(colon + 1, &port) == -1 || port == 0 ||
	    port > 65535) {
		xasprintf(cause, "bad port in inet:HOST:PORT");
		return -1;
	}
	memset(ss, 0, sizeof *ss);
	if (strcmp(host, "localhost") == 0)
		util_strlcpy(host, "127.0.0.1", sizeof host);
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*sslen = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof *sin6;
		return 0;
	}
	xasprintf(cause, "HOST of inet:HOST:PORT not a numeric address "
	    "(names are not looked up)");
	return -1;
}

/*
 * Where Dovecot's auth client socket is: "/path" or "unix:/path", or
 * "inet:HOST:PORT" with a numeric HOST.  0, or -1 with *cause.
 */
int
dvproto_parse_socket(const char *spec, struct sockaddr_storage *ss,
    socklen_t *sslen, char **cause)
{
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;

	if (strncmp(spec, "inet:", 5) == 0)
		return dvproto_parse_inet(spec + 5, ss, sslen, cause);
	if (strncmp(spec, "unix:", 5) == 0)
		spec += 5;
	if (spec[0] != '/') {
		xasprintf(cause, "neither an absolute path nor "
		    "inet:HOST:PORT");
		return -1;
	}
	if (strlen(spec) >= sizeof sun->sun_path) {
		xasprintf(cause, "socket path too long (%zu octets at most)",
		    sizeof sun->sun_path - 1);
		return -1;
	}
	memset(ss, 0, sizeof *ss);
	sun->sun_family = AF_UNIX;
	util_strlcpy(sun->sun_path, spec, sizeof sun->sun_path);
	*sslen = (socklen_t)sizeof *sun;
	return 0;
}
