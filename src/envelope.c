/*
 * envelope.c: a queued message's envelope and its versioned text form,
 * the ID.env file of tern-envelope(5).  It converts between the struct
 * and bytes and nothing else: it never touches files, never logs, and
 * never reads past the length it was given, whatever the bytes hold.  A
 * text it accepts is whole: a file cut short anywhere does not parse.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "envelope.h"
#include "log.h"
#include "util.h"

/* "2026-11-28T11:17:04Z" and its NUL. */
#define ENVELOPE_TIME_SIZE	21
/* Longest quoted value in an error message, escaped. */
#define ENVELOPE_QUOTE_SIZE	80
/* Latest time the format can hold: 9999-12-31T23:59:59Z. */
#define ENVELOPE_TIME_MAX	253402300799LL

/* Where the parser stands and what it has seen. */
struct envelope_parser {
	struct envelope	*env;
	size_t		 line;		/* number of this line */
	size_t		 rcpt_line;	/* line of the latest rcpt: */
	uint32_t	 seen;		/* keys seen, by table index */
	uint32_t	 rseen;		/* the latest recipient's */
	int		 ended;		/* the end: line was read */
	char		*cause;
};

/* A key of the format, in the order it is written. */
struct envelope_key {
	const char	*name;
	int		 flags;
#define ENVELOPE_K_REQUIRED	0x1	/* in every envelope or rcpt */
#define ENVELOPE_K_RCPT		0x2	/* of the latest rcpt: */
#define ENVELOPE_K_END		0x4	/* the last line */
#define ENVELOPE_K_LIST		0x8	/* repeated, after the recipients */
	int		(*parse)(struct envelope_parser *, const char *);
	int		(*write)(struct util_buf *, const char *,
			    const struct envelope *,
			    const struct envelope_rcpt *);
};

/* Names of enumerated values, indexed by value. */
static const char *const envelope_state_names[] = {
	"pending", "sent", "failed"
};
static const char *const envelope_body_names[] = { "7bit", "8bitmime" };
static const char *const envelope_ret_names[] = { NULL, "full", "hdrs" };
static const char *const envelope_bool_names[] = { "no", "yes" };

/* NOTIFY= keywords, never alone, the others in the order written. */
static const struct {
	const char	*name;
	int		 flag;
} envelope_notify_names[] = {
	{ "never", ENVELOPE_NOTIFY_NEVER },
	{ "success", ENVELOPE_NOTIFY_SUCCESS },
	{ "failure", ENVELOPE_NOTIFY_FAILURE },
	{ "delay", ENVELOPE_NOTIFY_DELAY },
};
#define ENVELOPE_NOTIFY_ALL	(ENVELOPE_NOTIFY_NEVER | \
	ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE | \
	ENVELOPE_NOTIFY_DELAY)

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof *env);
	env->body = ENVELOPE_BODY_7BIT;
	env->ret = ENVELOPE_RET_NONE;
}

void
envelope_clear(struct envelope *env)
{
	struct envelope_rcpt	*r;
	size_t			 i;

	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		free(r->addr);
		free(r->orcpt);
		free(r->error);
		free(r->relay);
	}
	free(env->rcpts);
	for (i = 0; i < env->nattempts; i++) {
		free(env->attempts[i].relay);
		free(env->attempts[i].text);
	}
	free(env->attempts);
	free(env->sender);
	free(env->envid);
	free(env->last_error);
	envelope_init(env);
}

/* Replace a heap string with a copy of value (which may be *field). */
void
envelope_set_str(char **field, const char *value)
{
	char	*old = *field;

	*field = value != NULL ? xstrdup(value) : NULL;
	free(old);
}

/*
 * Append a pending recipient and return it.  The pointer is good until
 * the next recipient is added.
 */
struct envelope_rcpt *
envelope_add_rcpt(struct envelope *env, const char *addr)
{
	struct envelope_rcpt	*r;
	size_t			 n;

	if (env->nrcpts == env->rcpts_alloc) {
		n = env->rcpts_alloc == 0 ? 4 : env->rcpts_alloc * 2;
		env->rcpts = xreallocarray(env->rcpts, n, sizeof *env->rcpts);
		env->rcpts_alloc = n;
	}
	r = &env->rcpts[env->nrcpts++];
	memset(r, 0, sizeof *r);
	r->state = ENVELOPE_RCPT_PENDING;
	envelope_set_str(&r->addr, addr);
	return r;
}

/*
 * Append an attempt of recipient rcpt (see struct envelope_attempt),
 * dropping the oldest when ENVELOPE_ATTEMPTS_MAX are kept already.
 */
void
envelope_add_attempt(struct envelope *env, time_t when, size_t rcpt,
    int tls, const char *status, const char *relay, const char *text)
{
	struct envelope_attempt	*at;

	if (env->nattempts == ENVELOPE_ATTEMPTS_MAX) {
		free(env->attempts[0].relay);
		free(env->attempts[0].text);
		memmove(&env->attempts[0], &env->attempts[1],
		    (env->nattempts - 1) * sizeof *env->attempts);
		env->nattempts--;
	}
	if (env->nattempts == env->attempts_alloc) {
		env->attempts_alloc = env->attempts_alloc == 0 ? 4 :
		    env->attempts_alloc * 2;
		if (env->attempts_alloc > ENVELOPE_ATTEMPTS_MAX)
			env->attempts_alloc = ENVELOPE_ATTEMPTS_MAX;
		env->attempts = xreallocarray(env->attempts,
		    env->attempts_alloc, sizeof *env->attempts);
	}
	at = &env->attempts[env->nattempts++];
	memset(at, 0, sizeof *at);
	at->when = when;
	at->rcpt = rcpt;
	at->tls = tls < 0 ? -1 : tls != 0;
	util_strlcpy(at->status, status != NULL ? status : "",
	    sizeof at->status);
	if (relay != NULL && *relay != '\0')
		at->relay = xstrdup(relay);
	if (text != NULL && *text != '\0')
		at->text = xstrdup(text);
}

const char *
envelope_rcpt_state_str(enum envelope_rcpt_state state)
{
	if ((size_t)state >= nitems(envelope_state_names))
		return "unknown";
	return envelope_state_names[state];
}

static int
envelope_is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
envelope_has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if (envelope_is_control((unsigned char)*s))
			return 1;
	}
	return 0;
}

static int
envelope_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
envelope_is_alnum(char c)
{
	return envelope_is_digit(c) || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

/* A queue id: 1 to ENVELOPE_ID_LEN letters and digits. */
static int
envelope_is_id(const char *s, size_t size)
{
	size_t	i;

	for (i = 0; i < size && s[i] != '\0'; i++) {
		if (!envelope_is_alnum(s[i]))
			return 0;
	}
	return i > 0 && i < size;
}

/*
 * A NOTIFY= list (RFC 3461 4.1): "never" alone, or some of success,
 * failure,delay in that order; in capitals for the wire, in small
 * letters for the envelope file.  Empty for no flags.
 */
void
envelope_notify_format(int notify, int upper, char *buf, size_t size)
{
	size_t	i;
	char	*p;

	buf[0] = '\0';
	if (notify & ENVELOPE_NOTIFY_NEVER)
		util_strlcpy(buf, "never", size);
	else {
		for (i = 1; i < nitems(envelope_notify_names); i++) {
			if ((notify & envelope_notify_names[i].flag) == 0)
				continue;
			if (buf[0] != '\0')
				util_strlcat(buf, ",", size);
			util_strlcat(buf, envelope_notify_names[i].name, size);
		}
	}
	for (p = buf; upper && *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
}

/*
 * A NOTIFY= value as a client may send it (RFC 3461 4.1): "never"
 * alone, or a list of success, failure and delay in any order and any
 * case, none twice.  0 with the flags in *notify, or -1.
 */
int
envelope_notify_parse(const char *value, int *notify)
{
	const char	*p = value, *end;
	size_t		 i, len;
	int		 flag, flags = 0;

	do {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		flag = 0;
		for (i = 0; i < nitems(envelope_notify_names); i++) {
			if (strlen(envelope_notify_names[i].name) == len &&
			    strncasecmp(envelope_notify_names[i].name, p,
			    len) == 0)
				flag = envelope_notify_names[i].flag;
		}
		if (flag == 0 || (flags & flag))
			return -1;
		flags |= flag;
		p = end != NULL ? end + 1 : NULL;
	} while (p != NULL);
	if ((flags & ENVELOPE_NOTIFY_NEVER) && flags != ENVELOPE_NOTIFY_NEVER)
		return -1;
	*notify = flags;
	return 0;
}

/* An RFC 3463 status code: class "." subject "." detail. */
int
envelope_is_status(const char *s)
{
	size_t	i, n;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	s++;
	for (i = 0; i < 2; i++) {
		if (*s++ != '.')
			return 0;
		for (n = 0; envelope_is_digit(*s) && n < 4; n++)
			s++;
		if (n == 0 || n > 3)
			return 0;
	}
	return *s == '\0';
}

/*
 * An unsigned decimal number up to max, without sign, space or leading
 * zero, so that each number has one spelling.
 */
static int
envelope_parse_num(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t	v = 0;
	unsigned	d;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (!envelope_is_digit(*s))
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* UTC in RFC 3339 form; the year must have four digits. */
static int
envelope_format_time(time_t t, char *buf, size_t size)
{
	struct tm	tm;

	if (t < 0 || (long long)t > ENVELOPE_TIME_MAX ||
	    gmtime_r(&t, &tm) == NULL)
		return -1;
	if (util_snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec) == -1)
		return -1;
	return 0;
}

/*
 * Read what envelope_format_time() writes, and only that: the shape is
 * checked octet by octet and the time printed back must match, which
 * turns away dates such as February 30 and leap seconds.
 */
static int
envelope_parse_time(const char *s, time_t *out)
{
	static const char	 shape[] = "dddd-dd-ddTdd:dd:ddZ";
	struct tm		 tm;
	char			 back[ENVELOPE_TIME_SIZE];
	const char		*end;
	time_t			 t;
	size_t			 i;

	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? !envelope_is_digit(s[i]) :
		    s[i] != shape[i])
			return -1;
	}
	if (s[i] != '\0')
		return -1;
	memset(&tm, 0, sizeof tm);
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	t = timegm(&tm);
	if (envelope_format_time(t, back, sizeof back) == -1 ||
	    strcmp(back, s) != 0)
		return -1;
	*out = t;
	return 0;
}

/* Index of value in a table of names, or -1. */
static int
envelope_lookup(const char *const *names, size_t n, const char *value)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (names[i] != NULL && strcmp(names[i], value) == 0)
			return (int)i;
	}
	return -1;
}

/* A whole line: key, ": ", value as it is, newline. */
static void
envelope_out_line(struct util_buf *o, const char *key, const char *value)
{
	util_buf_adds(o, key);
	util_buf_add(o, ": ", 2);
	util_buf_adds(o, value);
	util_buf_add(o, "\n", 1);
}

/* A line of free text: control octets become '?'. */
static void
envelope_out_text(struct util_buf *o, const char *key, const char *value)
{
	size_t	start, i;

	util_buf_adds(o, key);
	util_buf_add(o, ": ", 2);
	start = o->len;
	util_buf_adds(o, value);
	for (i = start; i < o->len; i++) {
		if (envelope_is_control((unsigned char)o->data[i]))
			o->data[i] = '?';
	}
	util_buf_add(o, "\n", 1);
}

/* Free text held in a fixed array, which must be terminated. */
static int
envelope_out_array(struct util_buf *o, const char *key, const char *value,
    size_t size)
{
	if (strnlen(value, size) == size)
		return -1;
	envelope_out_text(o, key, value);
	return 0;
}

/* "<addr>"; an address with a control octet is refused, not altered. */
static int
envelope_out_path(struct util_buf *o, const char *key, const char *addr)
{
	if (addr == NULL || envelope_has_control(addr))
		return -1;
	util_buf_adds(o, key);
	util_buf_add(o, ": <", 3);
	util_buf_adds(o, addr);
	util_buf_add(o, ">\n", 2);
	return 0;
}

/* Optional free text: written only when set and not empty. */
static void
envelope_out_opt(struct util_buf *o, const char *key, const char *value)
{
	if (value != NULL && *value != '\0')
		envelope_out_text(o, key, value);
}

static int
envelope_out_time(struct util_buf *o, const char *key, time_t t)
{
	char	buf[ENVELOPE_TIME_SIZE];

	if (envelope_format_time(t, buf, sizeof buf) == -1)
		return -1;
	envelope_out_line(o, key, buf);
	return 0;
}

static void
envelope_out_num(struct util_buf *o, const char *key, uint64_t v)
{
	char	buf[32];

	util_snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	envelope_out_line(o, key, buf);
}

static int
envelope_w_version(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_num(o, key, ENVELOPE_VERSION);
	return 0;
}

static int
envelope_w_id(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if (!envelope_is_id(env->id, sizeof env->id))
		return -1;
	envelope_out_line(o, key, env->id);
	return 0;
}

static int
envelope_w_arrival(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_time(o, key, env->arrival);
}

static int
envelope_w_sender(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_path(o, key, env->sender);
}

static int
envelope_w_size(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_num(o, key, env->size);
	return 0;
}

static int
envelope_w_body(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if ((size_t)env->body >= nitems(envelope_body_names))
		return -1;
	envelope_out_line(o, key, envelope_body_names[env->body]);
	return 0;
}

static int
envelope_w_smtputf8(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_line(o, key, envelope_bool_names[env->smtputf8 != 0]);
	return 0;
}

static int
envelope_w_client_addr(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_array(o, key, env->client_addr,
	    sizeof env->client_addr);
}

static int
envelope_w_helo(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_array(o, key, env->helo, sizeof env->helo);
}

static int
envelope_w_protocol(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_array(o, key, env->protocol,
	    sizeof env->protocol);
}

static int
envelope_w_ret(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if ((size_t)env->ret >= nitems(envelope_ret_names))
		return -1;
	if (env->ret != ENVELOPE_RET_NONE)
		envelope_out_line(o, key, envelope_ret_names[env->ret]);
	return 0;
}

static int
envelope_w_envid(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_opt(o, key, env->envid);
	return 0;
}

static int
envelope_w_tries(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_num(o, key, env->tries);
	return 0;
}

static int
envelope_w_next_attempt(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	return envelope_out_time(o, key, env->next_attempt);
}

static int
envelope_w_last_error(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_opt(o, key, env->last_error);
	return 0;
}

static int
envelope_w_rcpt(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if (r->addr == NULL || *r->addr == '\0')
		return -1;
	return envelope_out_path(o, key, r->addr);
}

static int
envelope_w_state(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if ((size_t)r->state >= nitems(envelope_state_names))
		return -1;
	envelope_out_line(o, key, envelope_state_names[r->state]);
	return 0;
}

/* NEVER stands alone (RFC 3461 4.1); the others in table order. */
static int
envelope_w_notify(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	char	buf[64];

	if (r->notify == 0)
		return 0;
	if ((r->notify & ~ENVELOPE_NOTIFY_ALL) != 0)
		return -1;
	if ((r->notify & ENVELOPE_NOTIFY_NEVER) &&
	    r->notify != ENVELOPE_NOTIFY_NEVER)
		return -1;
	envelope_notify_format(r->notify, 0, buf, sizeof buf);
	envelope_out_line(o, key, buf);
	return 0;
}

static int
envelope_w_orcpt(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_opt(o, key, r->orcpt);
	return 0;
}

/* A status is written only when it is a well-formed RFC 3463 code. */
static int
envelope_w_status(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if (strnlen(r->status, sizeof r->status) == sizeof r->status)
		return -1;
	if (r->status[0] == '\0')
		return 0;
	if (!envelope_is_status(r->status))
		return -1;
	envelope_out_line(o, key, r->status);
	return 0;
}

static int
envelope_w_error(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_opt(o, key, r->error);
	return 0;
}

static int
envelope_w_relay(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_opt(o, key, r->relay);
	return 0;
}

/* Written only once the sender was told of a delay (RFC 3464). */
static int
envelope_w_delay_notified(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	if (r->delay_notified)
		envelope_out_line(o, key, envelope_bool_names[1]);
	return 0;
}

/* Names of an attempt's tls field, indexed by tls + 1. */
static const char *const envelope_tls_names[] = { "-", "plain", "tls" };

/*
 * "attempt: <epoch> <rcpt> <tls|plain|-> <status|-> <relay|-> <text>",
 * one line per attempt kept, oldest first.  A relay is one word: a space
 * in it is written as '?', like a control octet.
 */
static int
envelope_w_attempt(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	const struct envelope_attempt	*at;
	struct util_buf			 v;
	char				 head[128];
	size_t				 i, j, start;

	for (i = 0; i < env->nattempts; i++) {
		at = &env->attempts[i];
		if (at->when < 0 || at->when > ENVELOPE_TIME_MAX ||
		    at->rcpt >= env->nrcpts || at->tls < -1 || at->tls > 1)
			return -1;
		if (strnlen(at->status, sizeof at->status) ==
		    sizeof at->status || (at->status[0] != '\0' &&
		    !envelope_is_status(at->status)))
			return -1;
		memset(&v, 0, sizeof v);
		util_snprintf(head, sizeof head, "%lld %zu %s %s ",
		    (long long)at->when, at->rcpt,
		    envelope_tls_names[at->tls + 1],
		    at->status[0] != '\0' ? at->status : "-");
		util_buf_adds(&v, head);
		start = v.len;
		util_buf_adds(&v, at->relay != NULL && *at->relay != '\0' ?
		    at->relay : "-");
		for (j = start; j < v.len; j++) {
			if (v.data[j] == ' ')
				v.data[j] = '?';
		}
		if (at->text != NULL && *at->text != '\0') {
			util_buf_add(&v, " ", 1);
			util_buf_adds(&v, at->text);
		}
		util_buf_add(&v, "", 1);
		envelope_out_text(o, key, v.data);
		free(v.data);
	}
	return 0;
}

/* The last line counts the recipients: a file cut short has none. */
static int
envelope_w_end(struct util_buf *o, const char *key,
    const struct envelope *env, const struct envelope_rcpt *r)
{
	envelope_out_num(o, key, env->nrcpts);
	return 0;
}

/* Record the first error of a parse, naming the given line. */
static int __attribute__((format(printf, 3, 4)))
envelope_fail_at(struct envelope_parser *p, size_t line, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	if (p->cause != NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("envelope: out of memory");
	va_end(ap);
	xasprintf(&p->cause, "line %zu: %s", line, msg);
	free(msg);
	return -1;
}

/* "bad size \"x\"", the value escaped and cut to a readable length. */
static int
envelope_fail_value(struct envelope_parser *p, const char *what,
    const char *value)
{
	char	q[ENVELOPE_QUOTE_SIZE];

	log_escape(q, sizeof q, value, strlen(value));
	return envelope_fail_at(p, p->line, "%s \"%s\"", what, q);
}

static struct envelope_rcpt *
envelope_cur_rcpt(struct envelope_parser *p)
{
	return &p->env->rcpts[p->env->nrcpts - 1];
}

/* "<...>" into its inside; "<>" only where empty is allowed. */
static int
envelope_parse_path(struct envelope_parser *p, const char *key,
    const char *value, int empty_ok, char **out)
{
	size_t	len = strlen(value);
	char	what[32];

	if (len < 2 || value[0] != '<' || value[len - 1] != '>' ||
	    (len == 2 && !empty_ok)) {
		util_snprintf(what, sizeof what, "bad %s", key);
		return envelope_fail_value(p, what, value);
	}
	free(*out);
	*out = xstrndup(value + 1, len - 2);
	return 0;
}

static int
envelope_parse_timeval(struct envelope_parser *p, const char *key,
    const char *value, time_t *out)
{
	char	what[32];

	if (envelope_parse_time(value, out) == -1) {
		util_snprintf(what, sizeof what, "bad %s", key);
		return envelope_fail_value(p, what, value);
	}
	return 0;
}

/* Text into a fixed array that must hold all of it. */
static int
envelope_parse_array(struct envelope_parser *p, const char *key,
    const char *value, char *out, size_t size)
{
	if (util_strlcpy(out, value, size) >= size) {
		out[0] = '\0';
		return envelope_fail_at(p, p->line, "%s too long", key);
	}
	return 0;
}

/* Optional text: present means not empty. */
static int
envelope_parse_opt(struct envelope_parser *p, const char *key,
    const char *value, char **out)
{
	if (*value == '\0')
		return envelope_fail_at(p, p->line, "empty %s", key);
	envelope_set_str(out, value);
	return 0;
}

static int
envelope_p_version(struct envelope_parser *p, const char *value)
{
	uint64_t	v;

	if (envelope_parse_num(value, UINT64_MAX, &v) == -1)
		return envelope_fail_value(p, "bad version", value);
	if (v != ENVELOPE_VERSION)
		return envelope_fail_at(p, p->line,
		    "unsupported envelope version %llu", (unsigned long long)v);
	return 0;
}

static int
envelope_p_id(struct envelope_parser *p, const char *value)
{
	if (!envelope_is_id(value, sizeof p->env->id))
		return envelope_fail_value(p, "bad id", value);
	util_strlcpy(p->env->id, value, sizeof p->env->id);
	return 0;
}

static int
envelope_p_arrival(struct envelope_parser *p, const char *value)
{
	return envelope_parse_timeval(p, "arrival", value, &p->env->arrival);
}

static int
envelope_p_sender(struct envelope_parser *p, const char *value)
{
	return envelope_parse_path(p, "sender", value, 1, &p->env->sender);
}

static int
envelope_p_size(struct envelope_parser *p, const char *value)
{
	uint64_t	v;

	if (envelope_parse_num(value, UINT64_MAX, &v) == -1)
		return envelope_fail_value(p, "bad size", value);
	p->env->size = v;
	return 0;
}

static int
envelope_p_body(struct envelope_parser *p, const char *value)
{
	int	i;

	i = envelope_lookup(envelope_body_names,
	    nitems(envelope_body_names), value);
	if (i == -1)
		return envelope_fail_value(p, "bad body", value);
	p->env->body = (enum envelope_body)i;
	return 0;
}

static int
envelope_p_smtputf8(struct envelope_parser *p, const char *value)
{
	int	i;

	i = envelope_lookup(envelope_bool_names,
	    nitems(envelope_bool_names), value);
	if (i == -1)
		return envelope_fail_value(p, "bad smtputf8", value);
	p->env->smtputf8 = i;
	return 0;
}

static int
envelope_p_client_addr(struct envelope_parser *p, const char *value)
{
	return envelope_parse_array(p, "client-address", value,
	    p->env->client_addr, sizeof p->env->client_addr);
}

static int
envelope_p_helo(struct envelope_parser *p, const char *value)
{
	return envelope_parse_array(p, "helo", value, p->env->helo,
	    sizeof p->env->helo);
}

static int
envelope_p_protocol(struct envelope_parser *p, const char *value)
{
	return envelope_parse_array(p, "protocol", value, p->env->protocol,
	    sizeof p->env->protocol);
}

static int
envelope_p_ret(struct envelope_parser *p, const char *value)
{
	int	i;

	i = envelope_lookup(envelope_ret_names,
	    nitems(envelope_ret_names), value);
	if (i == -1)
		return envelope_fail_value(p, "bad ret", value);
	p->env->ret = (enum envelope_ret)i;
	return 0;
}

static int
envelope_p_envid(struct envelope_parser *p, const char *value)
{
	return envelope_parse_opt(p, "envid", value, &p->env->envid);
}

static int
envelope_p_tries(struct envelope_parser *p, const char *value)
{
	uint64_t	v;

	if (envelope_parse_num(value, UINT_MAX, &v) == -1)
		return envelope_fail_value(p, "bad tries", value);
	p->env->tries = (unsigned)v;
	return 0;
}

static int
envelope_p_next_attempt(struct envelope_parser *p, const char *value)
{
	return envelope_parse_timeval(p, "next-attempt", value,
	    &p->env->next_attempt);
}

static int
envelope_p_last_error(struct envelope_parser *p, const char *value)
{
	return envelope_parse_opt(p, "last-error", value,
	    &p->env->last_error);
}

static int
envelope_p_rcpt(struct envelope_parser *p, const char *value)
{
	struct envelope_rcpt	*r;

	r = envelope_add_rcpt(p->env, NULL);
	return envelope_parse_path(p, "rcpt", value, 0, &r->addr);
}

static int
envelope_p_state(struct envelope_parser *p, const char *value)
{
	int	i;

	i = envelope_lookup(envelope_state_names,
	    nitems(envelope_state_names), value);
	if (i == -1)
		return envelope_fail_value(p, "bad rcpt-state", value);
	envelope_cur_rcpt(p)->state = (enum envelope_rcpt_state)i;
	return 0;
}

/*
 * "never", or some of success,failure,delay in that order: what a
 * client may send, in the one spelling the envelope is written in.
 */
static int
envelope_p_notify(struct envelope_parser *p, const char *value)
{
	char	buf[sizeof "success,failure,delay"];
	int	notify;

	if (envelope_notify_parse(value, &notify) == -1)
		return envelope_fail_value(p, "bad rcpt-notify", value);
	envelope_notify_format(notify, 0, buf, sizeof buf);
	if (strcmp(buf, value) != 0)
		return envelope_fail_value(p, "bad rcpt-notify", value);
	envelope_cur_rcpt(p)->notify = notify;
	return 0;
}

static int
envelope_p_orcpt(struct envelope_parser *p, const char *value)
{
	return envelope_parse_opt(p, "rcpt-orcpt", value,
	    &envelope_cur_rcpt(p)->orcpt);
}

static int
envelope_p_status(struct envelope_parser *p, const char *value)
{
	struct envelope_rcpt	*r = envelope_cur_rcpt(p);

	if (strlen(value) >= sizeof r->status || !envelope_is_status(value))
		return envelope_fail_value(p, "bad rcpt-status", value);
	util_strlcpy(r->status, value, sizeof r->status);
	return 0;
}

static int
envelope_p_error(struct envelope_parser *p, const char *value)
{
	return envelope_parse_opt(p, "rcpt-error", value,
	    &envelope_cur_rcpt(p)->error);
}

static int
envelope_p_relay(struct envelope_parser *p, const char *value)
{
	return envelope_parse_opt(p, "rcpt-relay", value,
	    &envelope_cur_rcpt(p)->relay);
}

static int
envelope_p_delay_notified(struct envelope_parser *p, const char *value)
{
	int	i;

	i = envelope_lookup(envelope_bool_names,
	    nitems(envelope_bool_names), value);
	if (i == -1)
		return envelope_fail_value(p, "bad rcpt-delay-notified", value);
	envelope_cur_rcpt(p)->delay_notified = i;
	return 0;
}

/* The next space-separated word of *s, cut off in place; NULL if none. */
static char *
envelope_word(char **s)
{
	char	*w = *s, *sp;

	if (w == NULL || *w == '\0' || *w == ' ')
		return NULL;
	if ((sp = strchr(w, ' ')) != NULL) {
		*sp = '\0';
		*s = sp + 1;
	} else
		*s = NULL;
	return w;
}

/* One attempt line; its rcpt index is checked against the count at end. */
static int
envelope_p_attempt(struct envelope_parser *p, const char *value)
{
	char		*copy, *s, *when, *rcpt, *tls, *status, *relay;
	uint64_t	 t, n;
	int		 i, rc = 0;

	copy = s = xstrdup(value);
	when = envelope_word(&s);
	rcpt = envelope_word(&s);
	tls = envelope_word(&s);
	status = envelope_word(&s);
	relay = envelope_word(&s);
	if (relay == NULL ||
	    envelope_parse_num(when, ENVELOPE_TIME_MAX, &t) == -1 ||
	    envelope_parse_num(rcpt, SIZE_MAX, &n) == -1 ||
	    (i = envelope_lookup(envelope_tls_names,
	    nitems(envelope_tls_names), tls)) == -1 ||
	    (strcmp(status, "-") != 0 &&
	    (strlen(status) >= ENVELOPE_STATUS_SIZE ||
	    !envelope_is_status(status))))
		rc = envelope_fail_value(p, "bad attempt", value);
	else
		envelope_add_attempt(p->env, (time_t)t, (size_t)n, i - 1,
		    strcmp(status, "-") == 0 ? "" : status,
		    strcmp(relay, "-") == 0 ? NULL : relay, s);
	free(copy);
	return rc;
}

static int	envelope_p_end(struct envelope_parser *, const char *);

static const struct envelope_key envelope_keys[] = {
	{ "version", ENVELOPE_K_REQUIRED,
	    envelope_p_version, envelope_w_version },
	{ "id", ENVELOPE_K_REQUIRED, envelope_p_id, envelope_w_id },
	{ "arrival", ENVELOPE_K_REQUIRED,
	    envelope_p_arrival, envelope_w_arrival },
	{ "sender", ENVELOPE_K_REQUIRED,
	    envelope_p_sender, envelope_w_sender },
	{ "size", ENVELOPE_K_REQUIRED, envelope_p_size, envelope_w_size },
	{ "body", 0, envelope_p_body, envelope_w_body },
	{ "smtputf8", 0, envelope_p_smtputf8, envelope_w_smtputf8 },
	{ "client-address", 0,
	    envelope_p_client_addr, envelope_w_client_addr },
	{ "helo", 0, envelope_p_helo, envelope_w_helo },
	{ "protocol", 0, envelope_p_protocol, envelope_w_protocol },
	{ "ret", 0, envelope_p_ret, envelope_w_ret },
	{ "envid", 0, envelope_p_envid, envelope_w_envid },
	{ "tries", ENVELOPE_K_REQUIRED, envelope_p_tries, envelope_w_tries },
	{ "next-attempt", ENVELOPE_K_REQUIRED,
	    envelope_p_next_attempt, envelope_w_next_attempt },
	{ "last-error", 0, envelope_p_last_error, envelope_w_last_error },

	/* A recipient's keys; rcpt starts one. */
	{ "rcpt", ENVELOPE_K_RCPT | ENVELOPE_K_REQUIRED,
	    envelope_p_rcpt, envelope_w_rcpt },
	{ "rcpt-state", ENVELOPE_K_RCPT | ENVELOPE_K_REQUIRED,
	    envelope_p_state, envelope_w_state },
	{ "rcpt-notify", ENVELOPE_K_RCPT, envelope_p_notify,
	    envelope_w_notify },
	{ "rcpt-orcpt", ENVELOPE_K_RCPT, envelope_p_orcpt, envelope_w_orcpt },
	{ "rcpt-status", ENVELOPE_K_RCPT,
	    envelope_p_status, envelope_w_status },
	{ "rcpt-error", ENVELOPE_K_RCPT, envelope_p_error, envelope_w_error },
	{ "rcpt-relay", ENVELOPE_K_RCPT, envelope_p_relay, envelope_w_relay },
	{ "rcpt-delay-notified", ENVELOPE_K_RCPT,
	    envelope_p_delay_notified, envelope_w_delay_notified },

	/* After the recipients: the attempt history, one line each. */
	{ "attempt", ENVELOPE_K_LIST, envelope_p_attempt, envelope_w_attempt },

	{ "end", ENVELOPE_K_END | ENVELOPE_K_REQUIRED,
	    envelope_p_end, envelope_w_end },
};
_Static_assert(nitems(envelope_keys) <= 32, "one bit per key in seen");

/* The recipient being closed has every key it needs. */
static int
envelope_check_rcpt(struct envelope_parser *p)
{
	size_t	i;

	if (p->env->nrcpts == 0)
		return 0;
	for (i = 0; i < nitems(envelope_keys); i++) {
		if ((envelope_keys[i].flags & ENVELOPE_K_RCPT) &&
		    (envelope_keys[i].flags & ENVELOPE_K_REQUIRED) &&
		    (p->rseen & (1u << i)) == 0)
			return envelope_fail_at(p, p->rcpt_line,
			    "rcpt without %s", envelope_keys[i].name);
	}
	return 0;
}

/* Everything required was seen, and the count matches. */
static int
envelope_p_end(struct envelope_parser *p, const char *value)
{
	const struct envelope_key	*k;
	uint64_t			 n;
	size_t				 i;

	if (envelope_parse_num(value, SIZE_MAX, &n) == -1)
		return envelope_fail_value(p, "bad end", value);
	if (envelope_check_rcpt(p) == -1)
		return -1;
	for (i = 0; i < nitems(envelope_keys); i++) {
		k = &envelope_keys[i];
		if ((k->flags & (ENVELOPE_K_RCPT | ENVELOPE_K_END)) == 0 &&
		    (k->flags & ENVELOPE_K_REQUIRED) &&
		    (p->seen & (1u << i)) == 0)
			return envelope_fail_at(p, p->line, "missing %s",
			    k->name);
	}
	if (p->env->nrcpts == 0)
		return envelope_fail_at(p, p->line, "no rcpt");
	if (n != p->env->nrcpts)
		return envelope_fail_at(p, p->line,
		    "end counts %llu recipients, %zu were read",
		    (unsigned long long)n, p->env->nrcpts);
	for (i = 0; i < p->env->nattempts; i++) {
		if (p->env->attempts[i].rcpt >= p->env->nrcpts)
			return envelope_fail_at(p, p->line,
			    "an attempt names recipient %zu of %zu",
			    p->env->attempts[i].rcpt, p->env->nrcpts);
	}
	p->ended = 1;
	return 0;
}

static const struct envelope_key *
envelope_find_key(const char *name, size_t *idx)
{
	size_t	i;

	for (i = 0; i < nitems(envelope_keys); i++) {
		if (strcmp(envelope_keys[i].name, name) == 0) {
			*idx = i;
			return &envelope_keys[i];
		}
	}
	return NULL;
}

/* One line, its newline replaced by a NUL and known to hold no other. */
static int
envelope_parse_line(struct envelope_parser *p, char *line)
{
	const struct envelope_key	*k;
	char				*sep, *value;
	char				 q[ENVELOPE_QUOTE_SIZE];
	size_t				 idx;
	uint32_t			 bit;

	if (p->ended)
		return envelope_fail_at(p, p->line, "text after end");
	if (*line == '\0')
		return envelope_fail_at(p, p->line, "empty line");
	if ((sep = strstr(line, ": ")) == NULL) {
		log_escape(q, sizeof q, line, strlen(line));
		return envelope_fail_at(p, p->line, "no \": \" in \"%s\"", q);
	}
	*sep = '\0';
	value = sep + 2;
	if ((k = envelope_find_key(line, &idx)) == NULL) {
		log_escape(q, sizeof q, line, strlen(line));
		return envelope_fail_at(p, p->line, "unknown key \"%s\"", q);
	}
	if (p->line == 1 && strcmp(k->name, "version") != 0)
		return envelope_fail_at(p, p->line,
		    "not an envelope: the first line is not version");

	bit = 1u << idx;
	if (k->flags & ENVELOPE_K_RCPT) {
		if (k->parse == envelope_p_rcpt) {
			if (envelope_check_rcpt(p) == -1)
				return -1;
			p->rseen = 0;
			p->rcpt_line = p->line;
		} else if (p->env->nrcpts == 0)
			return envelope_fail_at(p, p->line,
			    "%s before any rcpt", k->name);
		if (p->rseen & bit)
			return envelope_fail_at(p, p->line, "duplicate %s",
			    k->name);
		p->rseen |= bit;
	} else if ((k->flags & ENVELOPE_K_LIST) == 0) {
		if (p->seen & bit)
			return envelope_fail_at(p, p->line, "duplicate %s",
			    k->name);
		p->seen |= bit;
	}
	return k->parse(p, value);
}

/*
 * Text into a freshly initialised envelope.  On error, *cause names the
 * line and the problem and env is cleared again.
 */
int
envelope_parse(struct envelope *env, const char *buf, size_t len,
    char **cause)
{
	struct envelope_parser	 p;
	char			*copy, *line, *nl;
	size_t			 pos = 0, i, n;
	unsigned char		 c;

	*cause = NULL;
	memset(&p, 0, sizeof p);
	p.env = env;
	copy = xmalloc(len + 1);
	if (len > 0)
		memcpy(copy, buf, len);
	copy[len] = '\0';

	if (len == 0)
		envelope_fail_at(&p, 1, "empty file");
	while (pos < len && p.cause == NULL) {
		p.line++;
		line = copy + pos;
		nl = memchr(line, '\n', len - pos);
		n = nl != NULL ? (size_t)(nl - line) : len - pos;
		for (i = 0; i < n; i++) {
			c = (unsigned char)line[i];
			if (c == '\0') {
				envelope_fail_at(&p, p.line, "NUL octet");
				break;
			}
			if (envelope_is_control(c)) {
				envelope_fail_at(&p, p.line,
				    "control octet 0x%02x", c);
				break;
			}
		}
		if (p.cause != NULL)
			break;
		if (nl == NULL) {
			envelope_fail_at(&p, p.line,
			    "no newline at end of file: cut short");
			break;
		}
		*nl = '\0';
		envelope_parse_line(&p, line);
		pos += n + 1;
	}
	if (p.cause == NULL && !p.ended)
		envelope_fail_at(&p, p.line + 1, "no end line: cut short");
	free(copy);
	if (p.cause != NULL) {
		envelope_clear(env);
		*cause = p.cause;
		return -1;
	}
	return 0;
}

/*
 * The text of an envelope, allocated for the caller.  Free text has its
 * control octets replaced; an id, address, state or status that cannot be
 * written as it is makes it fail with EINVAL instead.
 */
int
envelope_write(const struct envelope *env, char **bufp, size_t *lenp)
{
	struct util_buf		 o;
	const struct envelope_key	*k;
	size_t				 i, j;

	memset(&o, 0, sizeof o);
	if (env->nrcpts == 0)
		goto fail;
	for (i = 0; i < nitems(envelope_keys); i++) {
		k = &envelope_keys[i];
		if ((k->flags & (ENVELOPE_K_RCPT | ENVELOPE_K_END |
		    ENVELOPE_K_LIST)) != 0)
			continue;
		if (k->write(&o, k->name, env, NULL) == -1)
			goto fail;
	}
	for (j = 0; j < env->nrcpts; j++) {
		for (i = 0; i < nitems(envelope_keys); i++) {
			k = &envelope_keys[i];
			if ((k->flags & ENVELOPE_K_RCPT) == 0)
				continue;
			if (k->write(&o, k->name, env, &env->rcpts[j]) == -1)
				goto fail;
		}
	}
	for (i = 0; i < nitems(envelope_keys); i++) {
		k = &envelope_keys[i];
		if ((k->flags & ENVELOPE_K_LIST) != 0 &&
		    k->write(&o, k->name, env, NULL) == -1)
			goto fail;
	}
	for (i = 0; i < nitems(envelope_keys); i++) {
		k = &envelope_keys[i];
		if ((k->flags & ENVELOPE_K_END) != 0 &&
		    k->write(&o, k->name, env, NULL) == -1)
			goto fail;
	}
	*bufp = o.data;
	*lenp = o.len;
	return 0;

fail:
	free(o.data);
	errno = EINVAL;
	return -1;
}
