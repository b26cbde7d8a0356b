/*
 * sendmail.c: local submission for cron, scripts and mail user agents,
 * with the command line of sendmail(8).  It reads one message from
 * standard input, completes it (From, Date and Message-ID when missing,
 * Bcc removed, CRLF line ends), and writes it with its envelope into the
 * spool's maildrop/ directory, where ternd's pickup queues it: one path
 * whether the daemon runs or not.  It runs with the caller's privileges
 * only; pickup checks everything it writes again and takes the sender's
 * identity from the file's owner, never from anything written here.  It
 * never talks to the daemon and never touches the queue itself.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "maildrop.h"
#include "queue.h"
#include "sendmail.h"
#include "util.h"

/* Longest line of text we store; longer ones are broken (RFC 5322 2.1.1). */
#define SENDMAIL_LINE_MAX	(MAILDROP_LINE_MAX - 2)
/* Input past max_message_size by more than this is refused unread. */
#define SENDMAIL_INPUT_SLACK	(1024 * 1024)
/* An address as written in a header or on the command line. */
#define SENDMAIL_ADDR_MAX	1024

/* One header field of the message: its lines joined by CRLF, no end. */
struct sendmail_field {
	char	*text;
	size_t	 len;
};

/* Everything one run knows; owned by sendmail_main(). */
struct sendmail {
	const struct config	*conf;
	const char		*conf_file;
	const char		*sender_arg;	/* -f, or NULL */
	const char		*fullname;	/* -F, or NULL */
	int			 extract;	/* -t */
	int			 ignore_dots;	/* -i, -oi */
	int			 verbose;	/* -v */
	char			 login[256];
	char			 gecos[256];
	char			*sender;	/* "" for <> */
	char			**rcpts;
	size_t			 nrcpts;
	struct sendmail_field	*fields;
	size_t			 nfields;
	struct util_buf		 body;		/* CRLF lines */
	struct util_buf		 msg;		/* what is queued */
	char			 dropname[128];
};

static void __attribute__((format(printf, 1, 2)))
sendmail_warnx(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "sendmail: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

static int
sendmail_usage(void)
{
	fprintf(stderr, "usage: sendmail [-itv] [-bm | -bp] [-C file] "
	    "[-F fullname] [-f sender] [-o option] [recipient ...]\n");
	return EX_USAGE;
}

/* Whether an address (as written, quotes and all) has its own domain. */
static int
sendmail_has_domain(const char *s)
{
	int	quoted = 0;

	for (; *s != '\0'; s++) {
		if (quoted && *s == '\\' && s[1] != '\0')
			s++;
		else if (*s == '"')
			quoted = !quoted;
		else if (!quoted && *s == '@')
			return 1;
	}
	return 0;
}

/*
 * One address as written, without angle brackets: qualified with the
 * default domain when it has none, checked by addr.c and printed as the
 * envelope holds it.
 */
static int
sendmail_qualify(struct sendmail *sm, const char *in, int is_rcpt,
    char *out, size_t size)
{
	struct addr	 a;
	char		 path[SENDMAIL_ADDR_MAX + CONFIG_HOST_SIZE + 4];
	const char	*rest, *cause;

	if (util_snprintf(path, sizeof path, sendmail_has_domain(in) ?
	    "<%s>" : "<%s@%s>", in, sm->conf->default_domain) == -1 ||
	    addr_parse_path(path, ADDR_ALLOW_UTF8, &a, &rest, &cause) != 0 ||
	    *rest != '\0' || addr_format(&a, out, size) == -1) {
		sendmail_warnx("bad address: %s", in);
		return -1;
	}
	/* As over SMTP: tern never routes through a local domain. */
	if (is_rcpt && config_is_local_domain(sm->conf, a.domain) &&
	    addr_has_routing(&a)) {
		sendmail_warnx("%s: a local part with @, %% or ! is not "
		    "accepted for a local domain", in);
		return -1;
	}
	return 0;
}

static int
sendmail_add_rcpt(struct sendmail *sm, const char *in)
{
	char	buf[ADDR_PATH_SIZE];
	size_t	i;

	if (sendmail_qualify(sm, in, 1, buf, sizeof buf) == -1)
		return -1;
	for (i = 0; i < sm->nrcpts; i++) {
		if (strcmp(sm->rcpts[i], buf) == 0)
			return 0;
	}
	/* As over SMTP, and as pickup will count them. */
	if (sm->nrcpts >= MAILDROP_RCPTS_MAX ||
	    sm->nrcpts >= sm->conf->max_recipients) {
		sendmail_warnx("more than %llu recipients (max_recipients)",
		    (unsigned long long)(sm->conf->max_recipients <
		    MAILDROP_RCPTS_MAX ? sm->conf->max_recipients :
		    MAILDROP_RCPTS_MAX));
		return -1;
	}
	sm->rcpts = xreallocarray(sm->rcpts, sm->nrcpts + 1,
	    sizeof *sm->rcpts);
	sm->rcpts[sm->nrcpts++] = xstrdup(buf);
	return 0;
}

/* Append c to an address being collected; -1 when it grows too long. */
static int
sendmail_put(char *buf, size_t *len, char c)
{
	if (*len + 1 >= SENDMAIL_ADDR_MAX)
		return -1;
	buf[(*len)++] = c;
	buf[*len] = '\0';
	return 0;
}

/*
 * An RFC 5322 address list ("Name <a@b>, c, group: d@e;", comments
 * dropped): cb gets each address as written, or "" for a "<>".
 */
static int
sendmail_parse_list(struct sendmail *sm, const char *s,
    int (*cb)(struct sendmail *, const char *))
{
	char		 plain[SENDMAIL_ADDR_MAX], angle[SENDMAIL_ADDR_MAX];
	char		*cur;
	size_t		 nplain = 0, nangle = 0, *n;
	int		 in_angle = 0, had_angle = 0, depth;
	const char	*p;

	plain[0] = angle[0] = '\0';
	for (p = s;; p++) {
		cur = in_angle ? angle : plain;
		n = in_angle ? &nangle : &nplain;
		if (*p == '\0' || (!in_angle && (*p == ',' || *p == ';'))) {
			if (in_angle) {
				sendmail_warnx("missing > in: %s", s);
				return -1;
			}
			if (had_angle || nplain > 0) {
				if (cb(sm, had_angle ? angle : plain) == -1)
					return -1;
			}
			nplain = nangle = 0;
			plain[0] = angle[0] = '\0';
			had_angle = 0;
			if (*p == '\0')
				return 0;
		} else if (*p == '(') {
			for (depth = 1, p++; *p != '\0' && depth > 0; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
			}
			p--;
		} else if (*p == '"') {
			if (sendmail_put(cur, n, *p) == -1)
				goto toolong;
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0' &&
				    sendmail_put(cur, n, *p++) == -1)
					goto toolong;
				if (sendmail_put(cur, n, *p) == -1)
					goto toolong;
			}
			if (*p == '\0') {
				sendmail_warnx("unterminated quote in: %s", s);
				return -1;
			}
			if (sendmail_put(cur, n, *p) == -1)
				goto toolong;
		} else if (!in_angle && *p == '<') {
			in_angle = had_angle = 1;
			nangle = 0;
			angle[0] = '\0';
		} else if (in_angle && *p == '>')
			in_angle = 0;
		else if (!in_angle && *p == ':') {
			/* A group's display name. */
			nplain = 0;
			plain[0] = '\0';
		} else if (!isspace((unsigned char)*p)) {
			if (sendmail_put(cur, n, *p) == -1)
				goto toolong;
		}
	}

toolong:
	sendmail_warnx("address too long in: %s", s);
	return -1;
}

static int
sendmail_rcpt_cb(struct sendmail *sm, const char *addr)
{
	if (*addr == '\0') {
		sendmail_warnx("<> is not a recipient");
		return -1;
	}
	return sendmail_add_rcpt(sm, addr);
}

static int
sendmail_sender_cb(struct sendmail *sm, const char *addr)
{
	char	buf[ADDR_PATH_SIZE];

	if (sm->sender != NULL) {
		sendmail_warnx("more than one sender address");
		return -1;
	}
	if (*addr == '\0')
		buf[0] = '\0';
	else if (sendmail_qualify(sm, addr, 0, buf, sizeof buf) == -1)
		return -1;
	sm->sender = xstrdup(buf);
	return 0;
}

/* The user running us: the login, and the full name from the GECOS. */
static int
sendmail_whoami(struct sendmail *sm)
{
	struct passwd	*pw;
	size_t		 i, len = 0;
	const char	*p;

	if ((pw = getpwuid(getuid())) == NULL) {
		sendmail_warnx("uid %lu has no user name",
		    (unsigned long)getuid());
		return -1;
	}
	util_strlcpy(sm->login, pw->pw_name, sizeof sm->login);
	/* "Full Name,room,phone": '&' stands for the capitalised login. */
	for (p = pw->pw_gecos; p != NULL && *p != '\0' && *p != ','; p++) {
		if (*p == '&') {
			for (i = 0; sm->login[i] != '\0' &&
			    len + 1 < sizeof sm->gecos; i++)
				sm->gecos[len++] = (char)(i == 0 ?
				    toupper((unsigned char)sm->login[i]) :
				    sm->login[i]);
		} else if (len + 1 < sizeof sm->gecos)
			sm->gecos[len++] = *p;
	}
	sm->gecos[len] = '\0';
	return 0;
}

/* Read all of standard input, refusing what can never fit. */
static int
sendmail_read_input(struct sendmail *sm, struct util_buf *in)
{
	char	buf[65536];
	ssize_t	n;
	uint64_t max = sm->conf->max_message_size + SENDMAIL_INPUT_SLACK;

	for (;;) {
		if ((n = read(STDIN_FILENO, buf, sizeof buf)) == -1) {
			if (errno == EINTR)
				continue;
			sendmail_warnx("reading the message: %s",
			    strerror(errno));
			return EX_NOINPUT;
		}
		if (n == 0)
			return EX_OK;
		/* No NUL can cross SMTP, nor our line handling. */
		if (memchr(buf, '\0', (size_t)n) != NULL) {
			sendmail_warnx("the message contains a NUL octet");
			return EX_DATAERR;
		}
		util_buf_add(in, buf, (size_t)n);
		if (in->len > max) {
			sendmail_warnx("message larger than max_message_size "
			    "(%llu octets)",
			    (unsigned long long)sm->conf->max_message_size);
			return EX_DATAERR;
		}
	}
}

/*
 * One line into out with CRLF; past SENDMAIL_LINE_MAX it is broken, a
 * header line with a folding space so it stays one field.
 */
static void
sendmail_put_line(struct util_buf *out, const char *p, size_t len,
    int header)
{
	size_t	chunk, i, max = SENDMAIL_LINE_MAX;
	int	folded;

	for (;;) {
		chunk = len > max ? max : len;
		/* A header folds before its last blank that fits. */
		folded = 0;
		if (header && len > max) {
			for (i = chunk; i > 1; i--) {
				if (p[i - 1] == ' ' || p[i - 1] == '\t') {
					chunk = i - 1;
					folded = 1;
					break;
				}
			}
		}
		util_buf_add(out, p, chunk);
		util_buf_add(out, "\r\n", 2);
		p += chunk;
		len -= chunk;
		if (len == 0)
			return;
		/* No blank to fold at: one is added, inside a word. */
		max = SENDMAIL_LINE_MAX;
		if (header && !folded) {
			util_buf_add(out, " ", 1);
			max = SENDMAIL_LINE_MAX - 1;
		}
	}
}

/* "Name:" with a name of printable ASCII but ':' (RFC 5322 2.2). */
static int
sendmail_is_field(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len && p[i] != ':'; i++) {
		if (p[i] <= ' ' || p[i] > '~')
			return 0;
	}
	return i > 0 && i < len;
}

/* Whether a field is named name (case does not matter). */
static int
sendmail_field_is(const struct sendmail_field *f, const char *name)
{
	size_t	len = strlen(name);

	return f->len > len && f->text[len] == ':' &&
	    strncasecmp(f->text, name, len) == 0;
}

/*
 * Split the input into header fields and body.  Lines end in LF, CRLF
 * or a lone CR; without -i a line of a single dot ends the input; a
 * leading "From " line (mbox) is dropped; the header section ends at an
 * empty line or at the first line that is not part of a field.
 */
static void
sendmail_split(struct sendmail *sm, const char *in, size_t inlen)
{
	struct sendmail_field	*f;
	struct util_buf		 field = { NULL, 0, 0 };
	const char		*p = in, *end = in + inlen, *eol;
	size_t			 len;
	int			 headers = 1, first = 1;

	while (p < end) {
		for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++)
			;
		len = (size_t)(eol - p);
		if (!sm->ignore_dots && len == 1 && *p == '.')
			break;
		if (first && len >= 5 && strncmp(p, "From ", 5) == 0) {
			first = 0;
			goto next;
		}
		first = 0;
		if (headers && len > 0 && (*p == ' ' || *p == '\t') &&
		    field.len > 0) {
			util_buf_add(&field, "\r\n", 2);
			util_buf_add(&field, p, len);
			goto next;
		}
		if (headers && field.len > 0) {
			sm->fields = xreallocarray(sm->fields, sm->nfields + 1,
			    sizeof *sm->fields);
			f = &sm->fields[sm->nfields++];
			f->text = field.data;
			f->len = field.len;
			memset(&field, 0, sizeof field);
		}
		if (headers && sendmail_is_field(p, len)) {
			util_buf_add(&field, p, len);
			goto next;
		}
		if (headers) {
			headers = 0;
			if (len == 0)
				goto next;	/* the separator */
		}
		sendmail_put_line(&sm->body, p, len, 0);
next:
		if (eol < end && *eol == '\r' && eol + 1 < end &&
		    eol[1] == '\n')
			eol++;
		p = eol + 1;
	}
	if (field.len > 0) {
		sm->fields = xreallocarray(sm->fields, sm->nfields + 1,
		    sizeof *sm->fields);
		f = &sm->fields[sm->nfields++];
		f->text = field.data;
		f->len = field.len;
	}
}

/* -t: the recipients of To, Cc and Bcc. */
static int
sendmail_extract(struct sendmail *sm)
{
	static const char *const names[] = { "To", "Cc", "Bcc" };
	const struct sendmail_field	*f;
	char				*value, *q;
	const char			*p;
	size_t				 i, j;
	int				 rc;

	for (i = 0; i < sm->nfields; i++) {
		f = &sm->fields[i];
		for (j = 0; j < nitems(names); j++) {
			if (sendmail_field_is(f, names[j]))
				break;
		}
		if (j == nitems(names))
			continue;
		/* Unfold: the line breaks go, the spaces stay. */
		value = xmalloc(f->len + 1);
		for (p = f->text + strlen(names[j]) + 1, q = value;
		    p < f->text + f->len; p++) {
			if (*p != '\r' && *p != '\n')
				*q++ = *p;
		}
		*q = '\0';
		rc = sendmail_parse_list(sm, value, sendmail_rcpt_cb);
		free(value);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/*
 * A display name for From: plain when it can be, a quoted string when
 * it has specials, RFC 2047 encoded words when it is not ASCII.  Control
 * characters become spaces, so -F can never add a line.
 */
static void
sendmail_display_name(struct util_buf *out, const char *name)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char	*p;
	unsigned char		 c;
	char			 e[3];
	size_t			 wordlen = 0, seq, i;
	int			 ascii = 1, special = 0;

	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p >= 0x80)
			ascii = 0;
		else if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
			special = 1;
	}
	if (ascii) {
		if (special)
			util_buf_add(out, "\"", 1);
		for (p = (const unsigned char *)name; *p != '\0'; p++) {
			if (*p < ' ' || *p == 0x7f)
				util_buf_add(out, " ", 1);
			else {
				if (special && (*p == '"' || *p == '\\'))
					util_buf_add(out, "\\", 1);
				util_buf_add(out, p, 1);
			}
		}
		if (special)
			util_buf_add(out, "\"", 1);
		return;
	}
	/* Encoded words of at most 75 octets, never splitting a character. */
	for (p = (const unsigned char *)name; *p != '\0'; p += seq) {
		seq = 1;
		if (*p >= 0x80)
			while (seq < 4 && (p[seq] & 0xc0) == 0x80)
				seq++;
		if (wordlen > 0 && wordlen + 3 * seq > 75 - 12) {
			util_buf_adds(out, "?= ");
			wordlen = 0;
		}
		if (wordlen == 0)
			util_buf_adds(out, "=?UTF-8?Q?");
		for (i = 0; i < seq; i++) {
			c = p[i];
			if (c == ' ')
				util_buf_add(out, "_", 1);
			else if (isalnum(c) || (c != 0 && strchr("!*+-/", c)))
				util_buf_add(out, &c, 1);
			else {
				e[0] = '=';
				e[1] = hex[c >> 4];
				e[2] = hex[c & 15];
				util_buf_add(out, e, 3);
			}
			wordlen += 3;
		}
	}
	if (wordlen > 0)
		util_buf_adds(out, "?=");
}

/* The message to queue: fields but Bcc, what was missing, the body. */
static void
sendmail_compose(struct sendmail *sm)
{
	struct util_buf	 line = { NULL, 0, 0 };
	const char	*name;
	const char	*p, *eol;
	unsigned char	 r[6];
	char		 date[64], stamp[32];
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 from = 0, has_date = 0, msgid = 0;
	size_t		 i;

	for (i = 0; i < sm->nfields; i++) {
		const struct sendmail_field *f = &sm->fields[i];

		if (sendmail_field_is(f, "Bcc"))
			continue;
		from |= sendmail_field_is(f, "From");
		has_date |= sendmail_field_is(f, "Date");
		msgid |= sendmail_field_is(f, "Message-ID");
		/* Each physical line on its own, broken when too long. */
		for (p = f->text; p < f->text + f->len; p = eol + 2) {
			eol = strstr(p, "\r\n");
			if (eol == NULL)
				eol = f->text + f->len;
			sendmail_put_line(&sm->msg, p, (size_t)(eol - p), 1);
			if (eol == f->text + f->len)
				break;
		}
	}
	if (!from) {
		util_buf_adds(&line, "From: ");
		name = sm->fullname != NULL ? sm->fullname : sm->gecos;
		if (*name != '\0') {
			sendmail_display_name(&line, name);
			util_buf_adds(&line, " <");
		}
		if (*sm->sender != '\0')
			util_buf_adds(&line, sm->sender);
		else
			util_buf_printf(&line, "%s@%s", sm->login,
			    sm->conf->default_domain);
		if (*name != '\0')
			util_buf_adds(&line, ">");
		sendmail_put_line(&sm->msg, line.data, line.len, 1);
	}
	localtime_r(&now, &tm);
	if (!has_date) {
		util_date(date, sizeof date, now);
		line.len = 0;
		util_buf_printf(&line, "Date: %s", date);
		sendmail_put_line(&sm->msg, line.data, line.len, 1);
	}
	if (!msgid) {
		if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
			memset(r, 0, sizeof r);
		strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
		line.len = 0;
		util_buf_printf(&line, "Message-ID: <%s.%02X%02X%02X%02X%02X"
		    "%02X@%s>", stamp, r[0], r[1], r[2], r[3], r[4], r[5],
		    sm->conf->hostname);
		sendmail_put_line(&sm->msg, line.data, line.len, 1);
	}
	free(line.data);
	util_buf_add(&sm->msg, "\r\n", 2);
	if (sm->body.len > 0)
		util_buf_add(&sm->msg, sm->body.data, sm->body.len);
}

/* Whether a ternd holds the spool's lock: 1, 0, or -1 for unknown. */
static int
sendmail_daemon_running(struct sendmail *sm)
{
	char	path[CONFIG_PATH_SIZE + 8];
	int	fd, running;

	if (queue_spool_path(path, sizeof path, sm->conf->spool,
	    QUEUE_SPOOL_LOCK) == -1)
		return -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : -1;
	running = flock(fd, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK;
	close(fd);
	return running;
}

/*
 * Into maildrop/: a ".tmp." file of our own (O_EXCL, mode 0640 whatever
 * the umask, so the directory's group, tern's, may read it and nobody
 * else), synced, then renamed to its final name for pickup.
 */
static int
sendmail_drop(struct sendmail *sm)
{
	struct util_buf	 hdr = { NULL, 0, 0 };
	char		 dir[CONFIG_PATH_SIZE + 16], tmp[160];
	unsigned char	 r[8];
	int		 dirfd, fd, rc = EX_OK, saved;

	/* pickup would refuse it, long after we said it was sent. */
	if (maildrop_header(&hdr, sm->sender, sm->rcpts, sm->nrcpts,
	    sm->msg.len) == -1) {
		sendmail_warnx("too many recipients");
		free(hdr.data);
		return EX_DATAERR;
	}

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		sendmail_warnx("getrandom: %s", strerror(errno));
		free(hdr.data);
		return EX_OSERR;
	}
	queue_spool_path(dir, sizeof dir, sm->conf->spool,
	    QUEUE_SPOOL_MAILDROP);
	util_snprintf(sm->dropname, sizeof sm->dropname, "%lld.%ld."
	    "%02x%02x%02x%02x%02x%02x%02x%02x", (long long)time(NULL),
	    (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	util_snprintf(tmp, sizeof tmp, ".tmp.%s", sm->dropname);

	/* Others may not list maildrop/: a path descriptor is enough. */
	if ((dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1) {
		sendmail_warnx("%s: %s%s", dir, strerror(errno),
		    errno == ENOENT ? " (ternd makes it at its first start)" :
		    "");
		free(hdr.data);
		return EX_CANTCREAT;
	}
	/* As ternd would refuse it at MAIL: a full spool is no place. */
	if (!queue_has_room(dirfd, hdr.len + sm->msg.len,
	    sm->conf->min_free_space)) {
		util_format_size(tmp, sizeof tmp, sm->conf->min_free_space);
		sendmail_warnx("%s: insufficient system storage (less than "
		    "min_free_space %s would be left); message not sent, try "
		    "again later", dir, tmp);
		close(dirfd);
		free(hdr.data);
		return EX_TEMPFAIL;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0640);
	if (fd == -1 || fchmod(fd, 0640) == -1) {
		saved = errno;
		sendmail_warnx("%s/%s: %s", dir, tmp, strerror(saved));
		if (fd != -1) {
			close(fd);
			unlinkat(dirfd, tmp, 0);
		}
		close(dirfd);
		free(hdr.data);
		return saved == ENOSPC || saved == EDQUOT ? EX_TEMPFAIL :
		    EX_CANTCREAT;
	}
	if (util_write_all(fd, hdr.data, hdr.len) == -1 ||
	    util_write_all(fd, sm->msg.data, sm->msg.len) == -1 ||
	    fsync(fd) == -1) {
		saved = errno;
		sendmail_warnx("%s/%s: %s", dir, tmp, strerror(saved));
		close(fd);
		unlinkat(dirfd, tmp, 0);
		rc = saved == ENOSPC || saved == EDQUOT ? EX_TEMPFAIL :
		    EX_IOERR;
	} else if (renameat(dirfd, tmp, dirfd, sm->dropname) == -1) {
		sendmail_warnx("%s/%s: %s", dir, sm->dropname,
		    strerror(errno));
		close(fd);
		unlinkat(dirfd, tmp, 0);
		rc = EX_CANTCREAT;
	} else {
		/*
		 * Make the rename durable before saying "sent": the
		 * directory's owner syncs it; anyone else, who may not read
		 * it, syncs the file system it is on.
		 */
		if ((saved = open(dir, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) != -1) {
			(void)fsync(saved);
			close(saved);
		} else
			(void)syncfs(fd);
		close(fd);
	}
	close(dirfd);
	free(hdr.data);
	return rc;
}

/* -C FILE, else $TERN_CONFIG, else the default file or built-in one. */
static struct config *
sendmail_config(struct sendmail *sm)
{
	struct config	*conf;
	const char	*file = sm->conf_file;
	char		*cause;

	if (file == NULL)
		file = getenv("TERN_CONFIG");
	if (file != NULL && *file == '\0')
		file = NULL;
	/* A set-id sendmail must not read files for its caller. */
	if (file != NULL && (getuid() != geteuid() || getgid() != getegid())) {
		sendmail_warnx("-C and TERN_CONFIG are not honoured set-id");
		return NULL;
	}
	if (file == NULL && access(CONFIG_DEFAULT_FILE, F_OK) == 0)
		file = CONFIG_DEFAULT_FILE;
	if (file == NULL)
		return config_default();
	if ((conf = config_load(file, &cause)) == NULL) {
		sendmail_warnx("%s", cause);
		free(cause);
	}
	return conf;
}

static void
sendmail_free(struct sendmail *sm)
{
	size_t	i;

	for (i = 0; i < sm->nrcpts; i++)
		free(sm->rcpts[i]);
	free(sm->rcpts);
	for (i = 0; i < sm->nfields; i++)
		free(sm->fields[i].text);
	free(sm->fields);
	free(sm->body.data);
	free(sm->msg.data);
	free(sm->sender);
	if (sm->conf != NULL)
		config_free((struct config *)sm->conf);
}

/* Everything after the options: the message, completed and dropped. */
static int
sendmail_submit(struct sendmail *sm, int argc, char **argv)
{
	struct util_buf	 in = { NULL, 0, 0 };
	char		 dir[CONFIG_PATH_SIZE + 16];
	int		 i, rc, running;

	if (sendmail_whoami(sm) == -1)
		return EX_OSERR;
	if (sm->sender_arg != NULL) {
		if (sendmail_parse_list(sm, sm->sender_arg,
		    sendmail_sender_cb) == -1)
			return EX_DATAERR;
		if (sm->sender == NULL)
			sm->sender = xstrdup("");	/* -f "" */
	} else {
		char	buf[ADDR_PATH_SIZE];

		if (sendmail_qualify(sm, sm->login, 0, buf, sizeof buf) == -1)
			return EX_DATAERR;
		sm->sender = xstrdup(buf);
	}
	for (i = 0; i < argc; i++) {
		if (sendmail_parse_list(sm, argv[i], sendmail_rcpt_cb) == -1)
			return EX_DATAERR;
	}
	if (!sm->extract && sm->nrcpts == 0) {
		sendmail_warnx("no recipients given (and no -t)");
		return EX_USAGE;
	}

	if ((rc = sendmail_read_input(sm, &in)) != EX_OK) {
		free(in.data);
		return rc;
	}
	sendmail_split(sm, in.data != NULL ? in.data : "", in.len);
	free(in.data);
	if (sm->extract && sendmail_extract(sm) == -1)
		return EX_DATAERR;
	if (sm->nrcpts == 0) {
		sendmail_warnx("no recipient addresses found in the message "
		    "header");
		return EX_DATAERR;
	}
	sendmail_compose(sm);
	if (sm->msg.len > sm->conf->max_message_size) {
		sendmail_warnx("message larger than max_message_size (%llu "
		    "octets)", (unsigned long long)sm->conf->max_message_size);
		return EX_DATAERR;
	}
	if ((rc = sendmail_drop(sm)) != EX_OK)
		return rc;

	if (sm->verbose) {
		fprintf(stderr, "sendmail: from=<%s>\n", sm->sender);
		for (i = 0; (size_t)i < sm->nrcpts; i++)
			fprintf(stderr, "sendmail: to=<%s>\n", sm->rcpts[i]);
		queue_spool_path(dir, sizeof dir, sm->conf->spool,
		    QUEUE_SPOOL_MAILDROP);
		fprintf(stderr, "sendmail: %zu octets written to %s/%s\n",
		    sm->msg.len, dir, sm->dropname);
		running = sendmail_daemon_running(sm);
		fprintf(stderr, "sendmail: %s\n", running == 1 ?
		    "ternd is running and queues it now" : running == 0 ?
		    "ternd is not running: the message waits in the maildrop "
		    "until it starts" : "cannot tell whether ternd is "
		    "running; the message waits in the maildrop until it is");
	}
	return EX_OK;
}

/*
 * sendmail(8) as cron, scripts and mail user agents call it.  Options
 * must come before the recipients, so an address can never be taken for
 * one; -o, -B, -N, -R, -V, -X, -h, -L, -U and -n are accepted and
 * ignored, but for -oi.
 */
int
sendmail_main(int argc, char **argv)
{
	struct sendmail	 sm;
	const char	*prog;
	int		 ch, mode = 'm', rc;

	memset(&sm, 0, sizeof sm);
	prog = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(prog, "mailq") == 0)
		mode = 'p';
	else if (strcmp(prog, "newaliases") == 0)
		mode = 'i';

	/* glibc and musl: 0 starts getopt afresh, with our "+". */
	optind = 0;
	opterr = 0;
	while ((ch = getopt(argc, argv,
	    "+B:b:C:F:f:h:iL:N:no:O:q::R:r:tUV:vX:")) != -1) {
		switch (ch) {
		case 'b':
			if (strlen(optarg) != 1 || strchr("mpi", *optarg) ==
			    NULL) {
				sendmail_warnx("-b%s is not supported", optarg);
				return EX_USAGE;
			}
			mode = *optarg;
			break;
		case 'C':
			sm.conf_file = optarg;
			break;
		case 'F':
			sm.fullname = optarg;
			break;
		case 'f':
		case 'r':
			sm.sender_arg = optarg;
			break;
		case 'i':
			sm.ignore_dots = 1;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				sm.ignore_dots = 1;
			break;
		case 'q':
			sendmail_warnx("-q is not supported; use ternctl "
			    "flush");
			return EX_USAGE;
		case 't':
			sm.extract = 1;
			break;
		case 'v':
			sm.verbose = 1;
			break;
		case 'B':
		case 'h':
		case 'L':
		case 'N':
		case 'n':
		case 'O':
		case 'R':
		case 'U':
		case 'V':
		case 'X':
			break;
		default:
			sendmail_warnx("unknown option -%c", optopt);
			return sendmail_usage();
		}
	}
	argc -= optind;
	argv += optind;

	if (mode == 'p') {
		if (sm.conf_file != NULL && setenv("TERN_CONFIG", sm.conf_file,
		    1) == -1)
			return EX_OSERR;
		return SENDMAIL_MAILQ;
	}
	if (mode == 'i') {
		if (sm.conf_file != NULL && setenv("TERN_CONFIG", sm.conf_file,
		    1) == -1)
			return EX_OSERR;
		return SENDMAIL_NEWALIASES;
	}
	if ((sm.conf = sendmail_config(&sm)) == NULL)
		return EX_CONFIG;
	rc = sendmail_submit(&sm, argc, argv);
	sendmail_free(&sm);
	return rc;
}
