/*
 * milter_proto.c: the bytes of the Sendmail milter protocol, version 6.
 * Packets to a filter are appended to a util_buf; packets from a filter
 * are found in whatever has arrived (any split, any garbage) and decoded
 * into a milter_proto_reply, with a reason when they make no sense.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"
#include "util.h"

static void
milter_put_u32(struct util_buf *b, uint32_t v)
{
	unsigned char	o[4];

	o[0] = (unsigned char)(v >> 24);
	o[1] = (unsigned char)(v >> 16);
	o[2] = (unsigned char)(v >> 8);
	o[3] = (unsigned char)v;
	util_buf_add(b, o, 4);
}

static uint32_t
milter_get_u32(const char *p)
{
	const unsigned char	*o = (const unsigned char *)p;

	return (uint32_t)o[0] << 24 | (uint32_t)o[1] << 16 |
	    (uint32_t)o[2] << 8 | o[3];
}

static void
milter_put_str(struct util_buf *b, const char *s)
{
	util_buf_add(b, s, strlen(s) + 1);
}

/* Open a packet: its length is filled in by milter_packet_end(). */
static size_t
milter_packet_begin(struct util_buf *b, int cmd)
{
	size_t	start = b->len;
	char	c = (char)cmd;

	milter_put_u32(b, 0);
	util_buf_add(b, &c, 1);
	return start;
}

static void
milter_packet_end(struct util_buf *b, size_t start)
{
	uint32_t	len = (uint32_t)(b->len - start - 4);
	unsigned char	*o = (unsigned char *)b->data + start;

	o[0] = (unsigned char)(len >> 24);
	o[1] = (unsigned char)(len >> 16);
	o[2] = (unsigned char)(len >> 8);
	o[3] = (unsigned char)len;
}

/* A packet of the command and its data as given. */
void
milter_proto_command(struct util_buf *b, int cmd, const void *data,
    size_t len)
{
	size_t	start = milter_packet_begin(b, cmd);

	if (len > 0)
		util_buf_add(b, data, len);
	milter_packet_end(b, start);
}

void
milter_proto_optneg(struct util_buf *b, uint32_t version,
    uint32_t actions, uint32_t protocol)
{
	size_t	start = milter_packet_begin(b, SMFIC_OPTNEG);

	milter_put_u32(b, version);
	milter_put_u32(b, actions);
	milter_put_u32(b, protocol);
	milter_packet_end(b, start);
}

/* Macros for the command cmd: n pairs of name and value. */
void
milter_proto_macros(struct util_buf *b, int cmd, const char *const *nv,
    size_t n)
{
	size_t	start = milter_packet_begin(b, SMFIC_MACRO), i;
	char	c = (char)cmd;

	util_buf_add(b, &c, 1);
	for (i = 0; i < n; i++) {
		milter_put_str(b, nv[2 * i]);
		milter_put_str(b, nv[2 * i + 1]);
	}
	milter_packet_end(b, start);
}

/* The client: host name, then family, port and address; NULL: unknown. */
void
milter_proto_connect(struct util_buf *b, const char *name,
    const char *addr, uint16_t port)
{
	size_t		start = milter_packet_begin(b, SMFIC_CONNECT);
	char		family;
	unsigned char	o[2];

	milter_put_str(b, name);
	if (addr == NULL) {
		family = SMFIA_UNKNOWN;
		util_buf_add(b, &family, 1);
	} else {
		family = strchr(addr, ':') != NULL ? SMFIA_INET6 : SMFIA_INET;
		util_buf_add(b, &family, 1);
		o[0] = (unsigned char)(port >> 8);
		o[1] = (unsigned char)port;
		util_buf_add(b, o, 2);
		milter_put_str(b, addr);
	}
	milter_packet_end(b, start);
}

/* A command with one string: HELO. */
void
milter_proto_string(struct util_buf *b, int cmd, const char *s)
{
	size_t	start = milter_packet_begin(b, cmd);

	milter_put_str(b, s);
	milter_packet_end(b, start);
}

/* MAIL or RCPT: "<addr>" then each ESMTP parameter, NUL-ended. */
void
milter_proto_args(struct util_buf *b, int cmd, const char *addr,
    const char *params)
{
	size_t		 start = milter_packet_begin(b, cmd), n;
	const char	*p = params != NULL ? params : "";

	util_buf_add(b, "<", 1);
	util_buf_add(b, addr, strlen(addr));
	util_buf_add(b, ">", 2);
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		n = strcspn(p, " \t");
		util_buf_add(b, p, n);
		util_buf_add(b, "", 1);
		p += n;
	}
	milter_packet_end(b, start);
}

/*
 * A header field: its name, and its value with the folds as "\n"
 * (filters see lines without CR, as sendmail gives them) and, unless
 * leadspc, without the one blank after the colon.
 */
void
milter_proto_header(struct util_buf *b, const char *name, size_t namelen,
    const char *value, size_t valuelen, int leadspc)
{
	size_t	start = milter_packet_begin(b, SMFIC_HEADER), i;

	util_buf_add(b, name, namelen);
	util_buf_add(b, "", 1);
	if (!leadspc && valuelen > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		valuelen--;
	}
	for (i = 0; i < valuelen; i++) {
		if (value[i] == '\r' && i + 1 < valuelen &&
		    value[i + 1] == '\n')
			continue;
		util_buf_add(b, value + i, 1);
	}
	util_buf_add(b, "", 1);
	milter_packet_end(b, start);
}

/*
 * Find one packet at the start of what has arrived: 1 and the packet
 * with the octets it takes, 0 when more is needed, -1 for a length no
 * filter sends (zero, or over MILTER_PROTO_MAX).
 */
int
milter_proto_parse(const void *buf, size_t len, struct milter_packet *pkt,
    size_t *consumed)
{
	const char	*p = buf;
	uint32_t	 plen;

	if (len < 4)
		return 0;
	plen = milter_get_u32(p);
	if (plen == 0 || plen > MILTER_PROTO_MAX)
		return -1;
	if (len - 4 < plen)
		return 0;
	pkt->cmd = (unsigned char)p[4];
	pkt->data = p + 5;
	pkt->len = plen - 1;
	*consumed = 4 + (size_t)plen;
	return 1;
}

/* The next NUL-ended string of data at *off, or NULL. */
static const char *
milter_take_str(const struct milter_packet *pkt, size_t *off)
{
	const char	*s, *nul;

	if (*off >= pkt->len)
		return NULL;
	s = pkt->data + *off;
	if ((nul = memchr(s, '\0', pkt->len - *off)) == NULL)
		return NULL;
	*off += (size_t)(nul - s) + 1;
	return s;
}

/* "x.y.z" (RFC 3463) at p, of the class given; its length or 0. */
static size_t
milter_esc_len(const char *p, size_t len, char class)
{
	size_t	i = 0, part, digits;

	if (len < 5 || p[0] != class || p[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		digits = 0;
		while (i < len && isdigit((unsigned char)p[i]) && digits < 3) {
			i++;
			digits++;
		}
		if (digits == 0)
			return 0;
		if (part == 0) {
			if (i >= len || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && p[i] != ' ')
		return 0;
	return i;
}

/*
 * SMFIR_REPLYCODE: "550 5.7.1 text", or lines "550-5.7.1 a\r\n550 5.7.1
 * b" from smfi_setmlreply(); a 4xx or 5xx code, the same on every line.
 * Rendered for the client with CRLF ends, the last line with a space.
 */
static int
milter_decode_replycode(const struct milter_packet *pkt,
    struct milter_proto_reply *r, const char **why)
{
	const char	*p = pkt->data, *end, *eol, *next, *t;
	size_t		 n = 0, len, elen, i;
	char		 code[4];

	len = pkt->len;
	if ((end = memchr(p, '\0', len)) == NULL)
		end = p + len;
	if (end - p < 3) {
		*why = "reply code too short";
		return -1;
	}
	memcpy(code, p, 3);
	code[3] = '\0';
	if ((code[0] != '4' && code[0] != '5') ||
	    !isdigit((unsigned char)code[1]) ||
	    !isdigit((unsigned char)code[2])) {
		*why = "reply code not 4xx or 5xx";
		return -1;
	}
	r->code = atoi(code);
	r->esc[0] = '\0';
	r->text = NULL;
	while (p < end) {
		eol = p;
		while (eol < end && *eol != '\r' && *eol != '\n')
			eol++;
		next = eol;
		if (next < end && *next == '\r')
			next++;
		if (next < end && *next == '\n')
			next++;
		if (eol - p < 3 || memcmp(p, code, 3) != 0 ||
		    (eol - p > 3 && p[3] != ' ' && p[3] != '-')) {
			*why = "reply lines with different codes";
			return -1;
		}
		t = eol - p > 4 ? p + 4 : eol;
		elen = milter_esc_len(t, (size_t)(eol - t), code[0]);
		if (elen > 0 && elen < sizeof r->esc) {
			memcpy(r->esc, t, elen);
			r->esc[elen] = '\0';
		}
		if (r->text == NULL) {
			r->text = t + elen + (elen > 0 && t + elen < eol);
			r->textlen = (size_t)(eol - r->text);
		}
		if (n + (size_t)(eol - p) + 4 > sizeof r->smtp) {
			*why = "reply too long";
			return -1;
		}
		memcpy(r->smtp + n, p, (size_t)(eol - p));
		/* Only printable text goes back to a client. */
		for (i = n + 3; i < n + (size_t)(eol - p); i++) {
			if ((unsigned char)r->smtp[i] < 0x20 ||
			    r->smtp[i] == 0x7f)
				r->smtp[i] = '?';
		}
		r->smtp[n + 3] = next < end ? '-' : ' ';
		if (eol - p == 3)
			r->smtp[n + 3] = next < end ? '-' : ' ';
		n += (size_t)(eol - p);
		if (eol - p == 3)
			n++;
		memcpy(r->smtp + n, "\r\n", 2);
		n += 2;
		p = next;
	}
	r->smtp[n] = '\0';
	return 0;
}

/*
 * Decode a packet from a filter: 0, or -1 with the reason for a reply
 * no filter may send (unknown, or data that does not parse).
 */
int
milter_proto_decode(const struct milter_packet *pkt,
    struct milter_proto_reply *r, const char **why)
{
	size_t		 off = 0;
	uint32_t	 stage;
	const char	*s;

	memset(r, 0, sizeof *r);
	r->cmd = pkt->cmd;
	*why = "reply data malformed";
	switch (pkt->cmd) {
	case SMFIC_OPTNEG:
		if (pkt->len < 12)
			return -1;
		r->version = milter_get_u32(pkt->data);
		r->actions = milter_get_u32(pkt->data + 4);
		r->protocol = milter_get_u32(pkt->data + 8);
		off = 12;
		while (off + 4 < pkt->len) {
			stage = milter_get_u32(pkt->data + off);
			off += 4;
			if ((s = milter_take_str(pkt, &off)) == NULL)
				return -1;
			if (stage < MILTER_STAGE_COUNT)
				r->macros[stage] = s;
		}
		return 0;
	case SMFIR_REPLYCODE:
		return milter_decode_replycode(pkt, r, why);
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (pkt->len < 4)
			return -1;
		r->index = milter_get_u32(pkt->data);
		off = 4;
		/* FALLTHROUGH */
	case SMFIR_ADDHEADER:
		if ((r->name = milter_take_str(pkt, &off)) == NULL ||
		    (r->value = milter_take_str(pkt, &off)) == NULL ||
		    *r->name == '\0')
			return -1;
		for (s = r->name; *s != '\0'; s++) {
			if (*s <= ' ' || *s == ':' || *s == 0x7f) {
				*why = "header name malformed";
				return -1;
			}
		}
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_CHGFROM:
		if ((r->name = milter_take_str(pkt, &off)) == NULL ||
		    *r->name == '\0')
			return -1;
		if (pkt->cmd == SMFIR_ADDRCPT_PAR || pkt->cmd == SMFIR_CHGFROM)
			r->value = milter_take_str(pkt, &off);
		return 0;
	case SMFIR_QUARANTINE:
		if ((r->name = milter_take_str(pkt, &off)) == NULL)
			return -1;
		return 0;
	case SMFIR_REPLBODY:
		r->body = pkt->data;
		r->bodylen = pkt->len;
		return 0;
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_SKIP:
	case SMFIR_PROGRESS:
	case SMFIR_SHUTDOWN:
	case SMFIR_CONN_FAIL:
		return 0;
	default:
		*why = "unknown reply";
		return -1;
	}
}

/* The command a macro stage's macros go with. */
int
milter_proto_stage_cmd(enum milter_proto_stage stage)
{
	static const char cmds[MILTER_STAGE_COUNT] = {
		[MILTER_STAGE_CONNECT] = SMFIC_CONNECT,
		[MILTER_STAGE_HELO] = SMFIC_HELO,
		[MILTER_STAGE_MAIL] = SMFIC_MAIL,
		[MILTER_STAGE_RCPT] = SMFIC_RCPT,
		[MILTER_STAGE_DATA] = SMFIC_DATA,
		[MILTER_STAGE_EOM] = SMFIC_BODYEOB,
		[MILTER_STAGE_EOH] = SMFIC_EOH,
	};

	return cmds[stage];
}
