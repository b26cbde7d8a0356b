/*
 * proxy.c: parse a PROXY protocol header (HAProxy's doc/proxy-protocol.txt,
 * versions 1 and 2) from the octets received so far.  It owns nothing and
 * keeps no state between calls: the caller passes everything it has read
 * each time.  It must never accept a header it could only partly check:
 * every field the specification fixes is checked, and anything else is
 * an error.  Whether to trust the sender, and what to do with a header
 * that names no client, is the caller's policy.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <string.h>

#include "proxy.h"

static const unsigned char proxy_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char proxy_v1_sig[] = "PROXY ";

/* The v2 address families and the octets of addresses each needs. */
static const struct proxy_v2_family {
	unsigned	 code;		/* high nibble of the 14th octet */
	int		 family;
	size_t		 addrlen;	/* both addresses and ports */
} proxy_v2_families[] = {
	{ 0x0, AF_UNSPEC, 0 },
	{ 0x1, AF_INET, 4 + 4 + 2 + 2 },
	{ 0x2, AF_INET6, 16 + 16 + 2 + 2 },
	{ 0x3, AF_UNIX, 108 + 108 },
};

const char *
proxy_command_str(enum proxy_command c)
{
	return c == PROXY_CMD_LOCAL ? "LOCAL" : "PROXY";
}

static void
proxy_set_in(struct sockaddr_storage *ss, socklen_t *len, const void *a,
    uint16_t port)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)(void *)ss;

	memset(ss, 0, sizeof *ss);
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, a, 4);
	sin->sin_port = htons(port);
	*len = sizeof *sin;
}

static void
proxy_set_in6(struct sockaddr_storage *ss, socklen_t *len, const void *a,
    uint16_t port)
{
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof *ss);
	sin6->sin6_family = AF_INET6;
	memcpy(&sin6->sin6_addr, a, 16);
	sin6->sin6_port = htons(port);
	*len = sizeof *sin6;
}

/* A version 2 header, its signature already matched in full. */
static enum proxy_result
proxy_parse_v2(const unsigned char *p, size_t len, struct proxy_hdr *h,
    size_t *want, const char **cause)
{
	const struct proxy_v2_family	*f = NULL;
	size_t				 body, i;
	unsigned			 ver, cmd, fam, proto;

	if (len < PROXY_V2_FIXED) {
		*want = PROXY_V2_FIXED;
		return PROXY_MORE;
	}
	ver = p[12] >> 4;
	cmd = p[12] & 0x0f;
	fam = p[13] >> 4;
	proto = p[13] & 0x0f;
	body = ((size_t)p[14] << 8) | p[15];
	if (ver != 2) {
		*cause = "version 2 signature with another version";
		return PROXY_ERROR;
	}
	if (cmd > 1) {
		*cause = "unknown version 2 command";
		return PROXY_ERROR;
	}
	for (i = 0; i < sizeof proxy_v2_families /
	    sizeof proxy_v2_families[0]; i++)
		if (proxy_v2_families[i].code == fam)
			f = &proxy_v2_families[i];
	if (f == NULL) {
		*cause = "unknown version 2 address family";
		return PROXY_ERROR;
	}
	if (proto > 2) {
		*cause = "unknown version 2 transport";
		return PROXY_ERROR;
	}
	if ((fam == 0) != (proto == 0)) {
		*cause = "version 2 family and transport disagree";
		return PROXY_ERROR;
	}
	h->version = 2;
	h->command = cmd == 0 ? PROXY_CMD_LOCAL : PROXY_CMD_PROXY;
	h->len = PROXY_V2_FIXED + body;
	*want = h->len;
	/* LOCAL: whatever follows is skipped, whatever the family says. */
	if (h->command == PROXY_CMD_PROXY && body < f->addrlen) {
		*cause = "version 2 length shorter than its addresses";
		return PROXY_ERROR;
	}
	if (len < h->len)
		return PROXY_MORE;
	h->stream = proto == 1;
	if (h->command == PROXY_CMD_LOCAL) {
		h->family = AF_UNSPEC;
		return PROXY_DONE;
	}
	h->family = f->family;
	p += PROXY_V2_FIXED;
	if (f->family == AF_INET) {
		proxy_set_in(&h->src, &h->srclen, p, (uint16_t)(p[8] << 8 |
		    p[9]));
		proxy_set_in(&h->dst, &h->dstlen, p + 4, (uint16_t)(p[10] <<
		    8 | p[11]));
	} else if (f->family == AF_INET6) {
		proxy_set_in6(&h->src, &h->srclen, p, (uint16_t)(p[32] << 8 |
		    p[33]));
		proxy_set_in6(&h->dst, &h->dstlen, p + 16, (uint16_t)(p[34] <<
		    8 | p[35]));
	}
	/* Anything after the addresses is TLVs, skipped. */
	return PROXY_DONE;
}

/* A decimal port: no sign, no heading zero, at most 65535. */
static int
proxy_v1_port(const char *s, uint16_t *port)
{
	unsigned long	v = 0;
	size_t		n;

	n = strlen(s);
	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * A dotted quad with no heading zeroes; inet_pton() alone would take
 * some forms the specification refuses.
 */
static int
proxy_v1_inet(const char *s, void *a)
{
	const char	*p;
	int		 digits = 0;

	for (p = s; *p != '\0'; p++) {
		if (*p == '.')
			digits = 0;
		else if (digits++ == 1 && p[-1] == '0')
			return -1;
	}
	return inet_pton(AF_INET, s, a) == 1 ? 0 : -1;
}

/* Split a v1 line (CRLF removed) at single spaces into at most n words. */
static size_t
proxy_v1_split(char *line, char **w, size_t n)
{
	size_t	i = 0;
	char	*p = line;

	while (i < n) {
		w[i++] = p;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		*p++ = '\0';
	}
	return p == NULL ? i : n + 1;
}

/* A whole version 1 line, "PROXY ... \r\n", of len octets. */
static enum proxy_result
proxy_parse_v1_line(const unsigned char *p, size_t len, struct proxy_hdr *h,
    const char **cause)
{
	char		 line[PROXY_V1_MAX + 1], *w[6];
	unsigned char	 a[16], b[16];
	uint16_t	 sport, dport;
	size_t		 n;
	int		 af;

	memcpy(line, p, len - 2);
	line[len - 2] = '\0';
	if (memchr(line, '\0', len - 2) != NULL) {
		*cause = "NUL in a version 1 line";
		return PROXY_ERROR;
	}
	h->version = 1;
	h->command = PROXY_CMD_PROXY;
	h->stream = 1;
	h->len = len;
	/* UNKNOWN: the rest of the line is ignored. */
	if (strcmp(line + 6, "UNKNOWN") == 0 ||
	    strncmp(line + 6, "UNKNOWN ", 8) == 0) {
		h->family = AF_UNSPEC;
		return PROXY_DONE;
	}
	n = proxy_v1_split(line + 6, w, 5);
	if (n != 5) {
		*cause = "version 1 line without five fields";
		return PROXY_ERROR;
	}
	if (strcmp(w[0], "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(w[0], "TCP6") == 0)
		af = AF_INET6;
	else {
		*cause = "unknown version 1 protocol";
		return PROXY_ERROR;
	}
	if (af == AF_INET ? proxy_v1_inet(w[1], a) == -1 ||
	    proxy_v1_inet(w[2], b) == -1 : inet_pton(AF_INET6, w[1], a) != 1 ||
	    inet_pton(AF_INET6, w[2], b) != 1) {
		*cause = "bad address in a version 1 line";
		return PROXY_ERROR;
	}
	if (proxy_v1_port(w[3], &sport) == -1 ||
	    proxy_v1_port(w[4], &dport) == -1) {
		*cause = "bad port in a version 1 line";
		return PROXY_ERROR;
	}
	h->family = af;
	if (af == AF_INET) {
		proxy_set_in(&h->src, &h->srclen, a, sport);
		proxy_set_in(&h->dst, &h->dstlen, b, dport);
	} else {
		proxy_set_in6(&h->src, &h->srclen, a, sport);
		proxy_set_in6(&h->dst, &h->dstlen, b, dport);
	}
	return PROXY_DONE;
}

/* A version 1 header, "PROXY " already matched in what there is. */
static enum proxy_result
proxy_parse_v1(const unsigned char *p, size_t len, struct proxy_hdr *h,
    size_t *want, const char **cause)
{
	size_t	i;

	*want = PROXY_V1_MAX;
	for (i = 0; i < len && i < PROXY_V1_MAX; i++) {
		if (p[i] == '\n') {
			*cause = "bare LF in a version 1 line";
			return PROXY_ERROR;
		}
		if (p[i] != '\r')
			continue;
		if (i + 2 > PROXY_V1_MAX)
			break;
		if (i + 1 == len)
			return PROXY_MORE;
		if (p[i + 1] != '\n') {
			*cause = "bare CR in a version 1 line";
			return PROXY_ERROR;
		}
		return proxy_parse_v1_line(p, i + 2, h, cause);
	}
	if (len >= PROXY_V1_MAX) {
		*cause = "version 1 line too long";
		return PROXY_ERROR;
	}
	return PROXY_MORE;
}

/*
 * Parse the len octets at p, all that was received so far.  PROXY_DONE:
 * a whole header, hdr->len octets long (what follows is the client's).
 * PROXY_MORE: every octet given is a valid start of a header; *want is
 * how many octets the caller should be ready to hold in all (a version 1
 * line may end before that).  PROXY_ERROR: *cause says why.
 */
enum proxy_result
proxy_parse(const unsigned char *p, size_t len, struct proxy_hdr *h,
    size_t *want, const char **cause)
{
	size_t	n;

	memset(h, 0, sizeof *h);
	*want = PROXY_V1_MAX;
	*cause = NULL;
	if (len == 0)
		return PROXY_MORE;
	if (p[0] == proxy_v2_sig[0]) {
		n = len < sizeof proxy_v2_sig ? len : sizeof proxy_v2_sig;
		if (memcmp(p, proxy_v2_sig, n) != 0) {
			*cause = "not a PROXY protocol header";
			return PROXY_ERROR;
		}
		if (len < sizeof proxy_v2_sig) {
			*want = PROXY_V2_FIXED;
			return PROXY_MORE;
		}
		return proxy_parse_v2(p, len, h, want, cause);
	}
	n = len < sizeof proxy_v1_sig - 1 ? len : sizeof proxy_v1_sig - 1;
	if (memcmp(p, proxy_v1_sig, n) != 0) {
		*cause = "not a PROXY protocol header";
		return PROXY_ERROR;
	}
	if (len < sizeof proxy_v1_sig - 1)
		return PROXY_MORE;
	return proxy_parse_v1(p, len, h, want, cause);
}
