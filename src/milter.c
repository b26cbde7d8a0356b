/*
 * milter.c: a chain of milter filters for one SMTP session or one local
 * submission.  Each filter has its own connection on the loop (a
 * bufferevent, a timer for the reply it waits for); the bytes go through
 * milter_proto.c and the changes asked at the end of a message are kept
 * in a milter_mods for milter_edit.c.  A step walks the filters in list
 * order, each filter answering before the next one is asked; its result
 * reaches the caller from a deferred event, never from inside a filter's
 * callback, so that the caller may free the chain in its callback.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "milter.h"
#include "milter_proto.h"
#include "util.h"

#define MILTER_LOG_ID_SIZE	64

/* The steps of a chain; each names the macros Postfix sends with it. */
enum milter_step {
	MILTER_STEP_NONE,
	MILTER_STEP_CONNECT,
	MILTER_STEP_HELO,
	MILTER_STEP_MAIL,
	MILTER_STEP_RCPT,
	MILTER_STEP_DATA,
	MILTER_STEP_MESSAGE,
};

static const struct {
	const char	*name;		/* for logs, as Postfix names it */
	uint32_t	 skip;		/* SMFIP_NO* of the step */
	uint32_t	 noreply;	/* SMFIP_NR_* of the step */
	int		 session;	/* accept ends the session */
} milter_steps[] = {
	[MILTER_STEP_NONE] = { "NONE", 0, 0, 0 },
	[MILTER_STEP_CONNECT] = { "CONNECT", SMFIP_NOCONNECT, SMFIP_NR_CONN,
	    1 },
	[MILTER_STEP_HELO] = { "HELO", SMFIP_NOHELO, SMFIP_NR_HELO, 1 },
	[MILTER_STEP_MAIL] = { "MAIL", SMFIP_NOMAIL, SMFIP_NR_MAIL, 0 },
	[MILTER_STEP_RCPT] = { "RCPT", SMFIP_NORCPT, SMFIP_NR_RCPT, 0 },
	[MILTER_STEP_DATA] = { "DATA", SMFIP_NODATA, SMFIP_NR_DATA, 0 },
	[MILTER_STEP_MESSAGE] = { "END-OF-MESSAGE", 0, 0, 0 },
};

/* The macros Postfix sends at each stage (its milter_*_macros). */
static const char *const milter_default_macros[MILTER_STAGE_COUNT] = {
	[MILTER_STAGE_CONNECT] = "j _ {daemon_name} {daemon_addr} "
	    "{client_addr} {client_name} {client_port} {client_ptr} "
	    "{if_addr} {if_name} v",
	[MILTER_STAGE_HELO] = "{tls_version} {cipher} {cipher_bits} "
	    "{cert_subject} {cert_issuer}",
	[MILTER_STAGE_MAIL] = "i {auth_type} {auth_authen} {auth_author} "
	    "{mail_addr} {mail_host} {mail_mailer}",
	[MILTER_STAGE_RCPT] = "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[MILTER_STAGE_DATA] = "i",
	[MILTER_STAGE_EOM] = "i",
	[MILTER_STAGE_EOH] = "i",
};

/* What we offer: every action and every protocol flag we handle. */
#define MILTER_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | \
	SMFIF_DELRCPT | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_CHGFROM | \
	SMFIF_ADDRCPT_PAR | SMFIF_SETSYMLIST)
#define MILTER_PROTOCOL	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
	SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | \
	SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | \
	SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
	SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY | \
	SMFIP_HDR_LEADSPC)

#define MILTER_ACTIONS_V2 (SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | \
	SMFIF_DELRCPT | SMFIF_CHGHDRS | SMFIF_QUARANTINE)
#define MILTER_PROTOCOL_V2 (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
	SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH)

enum milter_fstate {
	MILTER_F_NEW,		/* not connected yet */
	MILTER_F_CONNECTING,	/* connect() in progress */
	MILTER_F_NEGOTIATING,	/* SMFIC_OPTNEG sent */
	MILTER_F_READY,		/* negotiated */
	MILTER_F_FAILED,	/* gone: the default action stands for it */
	MILTER_F_DONE,		/* accepted or refused the session */
};

/* Where the message step is, for the filter being fed. */
enum milter_content {
	MILTER_C_HEADERS,
	MILTER_C_EOH,
	MILTER_C_BODY,
	MILTER_C_EOM,
	MILTER_C_WAIT_EOM,
};

/* One filter of a chain; owned by the chain. */
struct milter_filter {
	struct milter_chain	*chain;
	char			*socket;	/* as configured */
	struct bufferevent	*bev;
	struct event		*timer;
	enum milter_fstate	 state;
	uint32_t		 actions;	/* negotiated */
	uint32_t		 protocol;
	char			*macros[MILTER_STAGE_COUNT];	/* asked */
	int			 waiting;	/* for a reply */
	int			 skip_message;	/* accepted the message */
	int			 skip_body;	/* said SKIP */
	int			 in_message;	/* MAIL sent, no end yet */
};

/* One macro's current value; owned by the chain. */
struct milter_macro {
	char	*name;
	char	*value;
};

/* The chain; owned by its session or submission. */
struct milter_chain {
	struct event_base	*base;
	struct milter_filter	*filters;
	size_t			 nfilters;
	enum config_milter_action dflt;
	uint64_t		 connect_timeout;
	uint64_t		 command_timeout;
	uint64_t		 content_timeout;
	uint32_t		 version;
	uint64_t		 max_size;	/* of a new body; 0: none */
	char			 log_id[MILTER_LOG_ID_SIZE];
	struct milter_macro	*macros;
	size_t			 nmacros;

	/* The step in progress. */
	enum milter_step	 step;
	size_t			 cur;		/* the filter asked */
	milter_cb		 cb;
	void			*cb_arg;
	struct event		*done_ev;	/* calls cb */
	struct milter_reply	 reply;
	char			*client_name;
	char			*client_addr;
	uint16_t		 client_port;
	char			*arg;		/* HELO name, address */
	char			*params;	/* ESMTP parameters */
	const char		*msg;		/* the message, as changed */
	size_t			 msglen;
	char			*edited;	/* msg when changed; heap */
	struct milter_field	*fields;
	size_t			 nfields;
	size_t			 body;		/* offset of the body */
	enum milter_content	 content;
	size_t			 next_field;
	size_t			 next_body;
	struct milter_mods	 fmods;		/* of the filter at EOM */
	struct milter_mods	 mods;		/* of the filters done */
	int			 quarantine;	/* a failed filter's default */
	struct util_buf		 out;		/* packets being built */
};

static void	milter_next(struct milter_chain *);
static void	milter_read_cb(struct bufferevent *, void *);
static void	milter_event_cb(struct bufferevent *, short, void *);
static void	milter_timeout_cb(evutil_socket_t, short, void *);
static void	milter_done_cb(evutil_socket_t, short, void *);

const char *
milter_verdict_str(enum milter_verdict v)
{
	static const char *const names[] = {
		[MILTER_CONTINUE] = "continue",
		[MILTER_ACCEPT] = "accept",
		[MILTER_REJECT] = "reject",
		[MILTER_TEMPFAIL] = "tempfail",
		[MILTER_DISCARD] = "discard",
		[MILTER_QUARANTINE] = "quarantine",
	};

	return names[v];
}

struct milter_chain *
milter_chain_new(struct event_base *base, const struct config *conf,
    enum milter_list list, const char *log_id)
{
	struct milter_chain	*c;
	char *const		*sockets;
	size_t			 n, i;

	if (list == MILTER_LIST_SMTPD) {
		sockets = conf->smtpd_milters;
		n = conf->nsmtpd_milters;
	} else {
		sockets = conf->non_smtpd_milters;
		n = conf->nnon_smtpd_milters;
	}
	if (n == 0)
		return NULL;
	c = xcalloc(1, sizeof *c);
	c->base = base;
	c->dflt = conf->milter_default_action;
	c->connect_timeout = conf->milter_connect_timeout;
	c->command_timeout = conf->milter_command_timeout;
	c->content_timeout = conf->milter_content_timeout;
	c->version = (uint32_t)conf->milter_protocol;
	c->max_size = conf->max_message_size;
	util_strlcpy(c->log_id, log_id != NULL ? log_id : "",
	    sizeof c->log_id);
	c->filters = xcalloc(n, sizeof *c->filters);
	c->nfilters = n;
	for (i = 0; i < n; i++) {
		c->filters[i].chain = c;
		c->filters[i].socket = xstrdup(sockets[i]);
		c->filters[i].timer = evtimer_new(base, milter_timeout_cb,
		    &c->filters[i]);
		if (c->filters[i].timer == NULL)
			fatalx("milter: evtimer_new");
	}
	if ((c->done_ev = evtimer_new(base, milter_done_cb, c)) == NULL)
		fatalx("milter: evtimer_new");
	milter_mods_init(&c->mods);
	milter_mods_init(&c->fmods);
	return c;
}

/*
 * Close a filter's connection.  With quit, SMFIC_QUIT goes first when
 * nothing else waits to be sent: straight to the socket, five octets
 * that fit in any socket buffer, so that nothing outlives the chain.
 */
static void
milter_close(struct milter_filter *f, int quit)
{
	struct util_buf	*out = &f->chain->out;

	evtimer_del(f->timer);
	f->waiting = 0;
	if (f->bev == NULL)
		return;
	if (quit && f->state >= MILTER_F_READY &&
	    f->state != MILTER_F_FAILED &&
	    evbuffer_get_length(bufferevent_get_output(f->bev)) == 0) {
		out->len = 0;
		milter_proto_command(out, SMFIC_QUIT, NULL, 0);
		(void)send(bufferevent_getfd(f->bev), out->data, out->len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		out->len = 0;
	}
	bufferevent_free(f->bev);
	f->bev = NULL;
}

void
milter_chain_free(struct milter_chain *c)
{
	size_t	i, j;

	if (c == NULL)
		return;
	for (i = 0; i < c->nfilters; i++) {
		milter_close(&c->filters[i], 1);
		event_free(c->filters[i].timer);
		free(c->filters[i].socket);
		for (j = 0; j < MILTER_STAGE_COUNT; j++)
			free(c->filters[i].macros[j]);
	}
	free(c->filters);
	for (i = 0; i < c->nmacros; i++) {
		free(c->macros[i].name);
		free(c->macros[i].value);
	}
	free(c->macros);
	event_free(c->done_ev);
	free(c->client_name);
	free(c->client_addr);
	free(c->arg);
	free(c->params);
	free(c->fields);
	free(c->edited);
	milter_mods_clear(&c->fmods);
	milter_mods_clear(&c->mods);
	free(c->out.data);
	free(c);
}

void
milter_chain_macro(struct milter_chain *c, const char *name,
    const char *value)
{
	size_t	i;

	for (i = 0; i < c->nmacros; i++) {
		if (strcmp(c->macros[i].name, name) == 0)
			break;
	}
	if (i == c->nmacros) {
		if (value == NULL)
			return;
		c->macros = xreallocarray(c->macros, c->nmacros + 1,
		    sizeof *c->macros);
		c->macros[c->nmacros].name = xstrdup(name);
		c->macros[c->nmacros++].value = xstrdup(value);
		return;
	}
	free(c->macros[i].value);
	if (value != NULL) {
		c->macros[i].value = xstrdup(value);
		return;
	}
	free(c->macros[i].name);
	c->macros[i] = c->macros[--c->nmacros];
}

/* A macro's value by name, "{x}" and "x" being one. */
static const char *
milter_macro_value(const struct milter_chain *c, const char *name,
    size_t len)
{
	const char	*m;
	size_t		 i, mlen;

	if (len > 2 && name[0] == '{' && name[len - 1] == '}') {
		name++;
		len -= 2;
	}
	for (i = 0; i < c->nmacros; i++) {
		m = c->macros[i].name;
		mlen = strlen(m);
		if (mlen > 2 && m[0] == '{' && m[mlen - 1] == '}') {
			m++;
			mlen -= 2;
		}
		if (mlen == len && strncmp(m, name, len) == 0)
			return c->macros[i].value;
	}
	return NULL;
}

/* The macros of a stage, as the filter asked or as Postfix sends them. */
static void
milter_put_macros(struct milter_filter *f, enum milter_proto_stage stage)
{
	struct milter_chain	*c = f->chain;
	const char		*list, *p, *v, *nv[64];
	char			*names;
	size_t			 n = 0, len;

	list = f->macros[stage] != NULL ? f->macros[stage] :
	    milter_default_macros[stage];
	names = xstrdup(list);
	p = list;
	while (n < nitems(nv) / 2) {
		p += strspn(p, " ,");
		if (*p == '\0')
			break;
		len = strcspn(p, " ,");
		if ((v = milter_macro_value(c, p, len)) != NULL) {
			names[p - list + len] = '\0';
			nv[2 * n] = names + (p - list);
			nv[2 * n + 1] = v;
			n++;
		}
		p += len;
	}
	if (n > 0)
		milter_proto_macros(&c->out, milter_proto_stage_cmd(stage), nv,
		    n);
	free(names);
}

/* Send what has been built, and wait for a reply unless told not to. */
static void
milter_send(struct milter_filter *f, int wait, uint64_t ms)
{
	struct milter_chain	*c = f->chain;
	struct timeval		 tv;

	if (c->out.len > 0) {
		evbuffer_add(bufferevent_get_output(f->bev), c->out.data,
		    c->out.len);
		c->out.len = 0;
	}
	f->waiting = wait;
	if (wait) {
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		evtimer_add(f->timer, &tv);
	}
}

/* Hand the step's result to the caller, from the loop. */
static void
milter_finish(struct milter_chain *c, enum milter_verdict v)
{
	struct timeval	tv = { 0, 0 };

	c->reply.verdict = v;
	c->step = MILTER_STEP_NONE;
	evtimer_add(c->done_ev, &tv);
}

static void
milter_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_chain	*c = arg;
	struct milter_reply	 r = c->reply;

	/* The callback may free the chain. */
	c->cb(&r, c->cb_arg);
}

/* A refusal: the filter's own reply, or the default for the verdict. */
static void
milter_refuse(struct milter_chain *c, struct milter_filter *f,
    enum milter_verdict v, const struct milter_proto_reply *pr)
{
	struct milter_reply	*r = &c->reply;
	const char		*last, *p;

	if (pr != NULL && pr->code != 0) {
		util_strlcpy(r->smtp, pr->smtp, sizeof r->smtp);
		r->code = pr->code;
		util_strlcpy(r->esc, pr->esc, sizeof r->esc);
		v = pr->code >= 500 ? MILTER_REJECT : MILTER_TEMPFAIL;
	} else if (v == MILTER_REJECT) {
		util_strlcpy(r->smtp, "550 5.7.1 Command rejected\r\n",
		    sizeof r->smtp);
		r->code = 550;
		util_strlcpy(r->esc, "5.7.1", sizeof r->esc);
	} else {
		util_strlcpy(r->smtp, "451 4.7.1 Service unavailable - try "
		    "again later\r\n", sizeof r->smtp);
		r->code = 451;
		util_strlcpy(r->esc, "4.7.1", sizeof r->esc);
	}
	/* The text of the last line, for logs. */
	last = r->smtp;
	for (p = r->smtp; *p != '\0'; p++) {
		if (*p == '\n' && p[1] != '\0')
			last = p + 1;
	}
	p = last + 4;
	if (r->esc[0] != '\0' && strncmp(p, r->esc, strlen(r->esc)) == 0)
		p += strlen(r->esc) + 1;
	if (p > last + strlen(last))
		p = last + strlen(last);
	util_strlcpy(r->text, p, sizeof r->text);
	r->text[strcspn(r->text, "\r\n")] = '\0';
	util_strlcpy(r->filter, f != NULL ? f->socket : "", sizeof r->filter);
	milter_finish(c, v);
}

/*
 * A filter is gone (unreachable, timed out, closed, garbage): log it,
 * close it, and apply the default action; the step goes on unless that
 * refuses it.
 */
static void
milter_fail(struct milter_filter *f, const char *why)
{
	struct milter_chain	*c = f->chain;
	int			 was_current;

	/* Done with the session: it no longer needs the connection. */
	if (f->state == MILTER_F_DONE) {
		milter_close(f, 0);
		return;
	}
	log_warnx("milter %s: %s, %s, %s", f->socket, why,
	    c->dflt == CONFIG_MILTER_TEMPFAIL ? "tempfail" :
	    c->dflt == CONFIG_MILTER_REJECT ? "reject" :
	    c->dflt == CONFIG_MILTER_ACCEPT ? "accept" : "quarantine",
	    c->log_id);
	was_current = f->waiting || (c->step != MILTER_STEP_NONE &&
	    &c->filters[c->cur] == f);
	milter_close(f, 0);
	f->state = MILTER_F_FAILED;
	f->in_message = 0;
	if (c->step == MILTER_STEP_NONE || !was_current)
		return;
	milter_mods_clear(&c->fmods);
	if (c->dflt == CONFIG_MILTER_TEMPFAIL)
		milter_refuse(c, f, MILTER_TEMPFAIL, NULL);
	else if (c->dflt == CONFIG_MILTER_REJECT)
		milter_refuse(c, f, MILTER_REJECT, NULL);
	else {
		if (c->dflt == CONFIG_MILTER_QUARANTINE)
			c->quarantine = 1;
		c->cur++;
		milter_next(c);
	}
}

/* Split "inet:host:port", "inet6:host:port", "unix:/path". */
static int
milter_sockaddr(const char *spec, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)ss;
	const char		*host, *colon;
	char			 h[256];
	size_t			 hlen;
	long			 port;
	int			 v6;

	memset(ss, 0, sizeof *ss);
	if (strncmp(spec, "unix:", 5) == 0) {
		if (strlen(spec + 5) >= sizeof sun->sun_path)
			return -1;
		sun->sun_family = AF_UNIX;
		util_strlcpy(sun->sun_path, spec + 5, sizeof sun->sun_path);
		*len = sizeof *sun;
		return 0;
	}
	v6 = strncmp(spec, "inet6:", 6) == 0;
	if (!v6 && strncmp(spec, "inet:", 5) != 0)
		return -1;
	host = spec + (v6 ? 6 : 5);
	if ((colon = strrchr(host, ':')) == NULL)
		return -1;
	hlen = (size_t)(colon - host);
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		host++;
		hlen -= 2;
		v6 = 1;
	}
	if (hlen == 0 || hlen >= sizeof h)
		return -1;
	memcpy(h, host, hlen);
	h[hlen] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -1;
	if (strcmp(h, "localhost") == 0)
		util_strlcpy(h, v6 ? "::1" : "127.0.0.1", sizeof h);
	if (!v6 && inet_pton(AF_INET, h, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, h, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof *sin6;
		return 0;
	}
	return -1;
}

/* Open a filter's connection; the negotiation follows when it is up. */
static void
milter_connect(struct milter_filter *f)
{
	struct milter_chain	*c = f->chain;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	struct timeval		 tv;

	if (milter_sockaddr(f->socket, &ss, &len) == -1) {
		milter_fail(f, "not an address (inet:ADDRESS:PORT, "
		    "inet6:ADDRESS:PORT or unix:/PATH)");
		return;
	}
	f->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (f->bev == NULL)
		fatalx("milter: bufferevent_socket_new");
	bufferevent_setcb(f->bev, milter_read_cb, NULL, milter_event_cb, f);
	f->state = MILTER_F_CONNECTING;
	f->waiting = 1;
	tv.tv_sec = (time_t)(c->connect_timeout / 1000);
	tv.tv_usec = (suseconds_t)(c->connect_timeout % 1000) * 1000;
	evtimer_add(f->timer, &tv);
	if (bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss,
	    (int)len) == -1) {
		milter_fail(f, strerror(errno != 0 ? errno : ECONNREFUSED));
		return;
	}
}

/* Whether a filter takes part in the current step. */
static int
milter_takes_part(const struct milter_chain *c, const struct milter_filter *f)
{
	if (f->state == MILTER_F_DONE)
		return 0;
	if (c->step >= MILTER_STEP_MAIL && f->skip_message)
		return 0;
	return 1;
}

/* Feed the message to the current filter, as far as it goes unasked. */
static void
milter_content(struct milter_filter *f)
{
	struct milter_chain	*c = f->chain;
	const struct milter_field *fl;
	size_t			 n;

	for (;;) {
		switch (c->content) {
		case MILTER_C_HEADERS:
			if ((f->protocol & SMFIP_NOHDRS) ||
			    c->next_field == c->nfields) {
				c->content = MILTER_C_EOH;
				break;
			}
			fl = &c->fields[c->next_field++];
			milter_proto_header(&c->out, fl->name, fl->namelen,
			    fl->value, fl->valuelen,
			    (f->protocol & SMFIP_HDR_LEADSPC) != 0);
			if (!(f->protocol & SMFIP_NR_HDR)) {
				milter_send(f, 1, c->content_timeout);
				return;
			}
			break;
		case MILTER_C_EOH:
			c->content = MILTER_C_BODY;
			if (f->protocol & SMFIP_NOEOH)
				break;
			milter_put_macros(f, MILTER_STAGE_EOH);
			milter_proto_command(&c->out, SMFIC_EOH, NULL, 0);
			if (!(f->protocol & SMFIP_NR_EOH)) {
				milter_send(f, 1, c->content_timeout);
				return;
			}
			break;
		case MILTER_C_BODY:
			if ((f->protocol & SMFIP_NOBODY) || f->skip_body ||
			    c->next_body >= c->msglen) {
				c->content = MILTER_C_EOM;
				break;
			}
			n = c->msglen - c->next_body;
			if (n > MILTER_PROTO_CHUNK)
				n = MILTER_PROTO_CHUNK;
			milter_proto_command(&c->out, SMFIC_BODY,
			    c->msg + c->next_body, n);
			c->next_body += n;
			if (!(f->protocol & SMFIP_NR_BODY)) {
				milter_send(f, 1, c->content_timeout);
				return;
			}
			/* Do not build the whole body in one buffer. */
			milter_send(f, 0, 0);
			break;
		case MILTER_C_EOM:
			milter_put_macros(f, MILTER_STAGE_EOM);
			milter_proto_command(&c->out, SMFIC_BODYEOB, NULL, 0);
			c->content = MILTER_C_WAIT_EOM;
			milter_send(f, 1, c->content_timeout);
			return;
		case MILTER_C_WAIT_EOM:
			return;
		}
	}
}

/*
 * Ask the current filter about the current step, or go on to the next
 * filter; after the last, the step is done.
 */
static void
milter_next(struct milter_chain *c)
{
	struct milter_filter	*f;
	uint64_t		 ms = c->command_timeout;
	int			 wait;

	for (; c->cur < c->nfilters; c->cur++) {
		f = &c->filters[c->cur];
		if (!milter_takes_part(c, f))
			continue;
		if (f->state == MILTER_F_FAILED) {
			if (c->dflt == CONFIG_MILTER_TEMPFAIL) {
				milter_refuse(c, f, MILTER_TEMPFAIL, NULL);
				return;
			}
			if (c->dflt == CONFIG_MILTER_REJECT) {
				milter_refuse(c, f, MILTER_REJECT, NULL);
				return;
			}
			if (c->dflt == CONFIG_MILTER_QUARANTINE)
				c->quarantine = 1;
			continue;
		}
		if (f->state == MILTER_F_NEW) {
			milter_connect(f);
			return;
		}
		wait = 1;
		switch (c->step) {
		case MILTER_STEP_CONNECT:
			if (f->protocol & SMFIP_NOCONNECT)
				continue;
			milter_put_macros(f, MILTER_STAGE_CONNECT);
			milter_proto_connect(&c->out, c->client_name,
			    c->client_addr, c->client_port);
			break;
		case MILTER_STEP_HELO:
			if (f->protocol & SMFIP_NOHELO)
				continue;
			milter_put_macros(f, MILTER_STAGE_HELO);
			milter_proto_string(&c->out, SMFIC_HELO, c->arg);
			break;
		case MILTER_STEP_MAIL:
			f->in_message = 1;
			if (f->protocol & SMFIP_NOMAIL)
				continue;
			milter_put_macros(f, MILTER_STAGE_MAIL);
			milter_proto_args(&c->out, SMFIC_MAIL, c->arg,
			    c->params);
			break;
		case MILTER_STEP_RCPT:
			if (f->protocol & SMFIP_NORCPT)
				continue;
			milter_put_macros(f, MILTER_STAGE_RCPT);
			milter_proto_args(&c->out, SMFIC_RCPT, c->arg,
			    c->params);
			break;
		case MILTER_STEP_DATA:
			/* DATA came with version 4 (as Postfix sends it). */
			if ((f->protocol & SMFIP_NODATA) || c->version < 4)
				continue;
			milter_put_macros(f, MILTER_STAGE_DATA);
			milter_proto_command(&c->out, SMFIC_DATA, NULL, 0);
			break;
		case MILTER_STEP_MESSAGE:
			c->content = MILTER_C_HEADERS;
			c->next_field = 0;
			c->next_body = c->body;
			f->skip_body = 0;
			milter_mods_clear(&c->fmods);
			milter_content(f);
			return;
		case MILTER_STEP_NONE:
			panic("milter: no step");
		}
		if (f->protocol & milter_steps[c->step].noreply)
			wait = 0;
		milter_send(f, wait, ms);
		if (wait)
			return;
	}
	if (c->step == MILTER_STEP_MESSAGE && c->edited != NULL) {
		/* The caller gets the message as the filters left it. */
		c->mods.message = c->edited;
		c->mods.messagelen = c->msglen;
		c->edited = NULL;
	}
	if (c->step == MILTER_STEP_MESSAGE && (c->mods.quarantine != NULL ||
	    c->quarantine)) {
		util_strlcpy(c->reply.reason, c->mods.quarantine != NULL ?
		    c->mods.quarantine : "milter failure",
		    sizeof c->reply.reason);
		milter_finish(c, MILTER_QUARANTINE);
		return;
	}
	milter_finish(c, MILTER_CONTINUE);
}

/* The action a reply needs to be allowed (0: none). */
static uint32_t
milter_action_needed(int cmd)
{
	switch (cmd) {
	case SMFIR_ADDHEADER:
		return SMFIF_ADDHDRS;
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		return SMFIF_CHGHDRS;
	case SMFIR_REPLBODY:
		return SMFIF_CHGBODY;
	case SMFIR_ADDRCPT:
		return SMFIF_ADDRCPT;
	case SMFIR_ADDRCPT_PAR:
		return SMFIF_ADDRCPT_PAR;
	case SMFIR_DELRCPT:
		return SMFIF_DELRCPT;
	case SMFIR_CHGFROM:
		return SMFIF_CHGFROM;
	case SMFIR_QUARANTINE:
		return SMFIF_QUARANTINE;
	default:
		return 0;
	}
}

/* A change asked at the end of the message, kept with the filter's. */
static int
milter_modify(struct milter_filter *f, const struct milter_proto_reply *r)
{
	struct milter_mods	*m = &f->chain->fmods;
	uint32_t		 need = milter_action_needed(r->cmd);
	int			 lead = (f->protocol & SMFIP_HDR_LEADSPC) != 0;

	if (f->chain->content != MILTER_C_WAIT_EOM || (f->actions & need) !=
	    need)
		return -1;
	switch (r->cmd) {
	case SMFIR_ADDHEADER:
		milter_mods_add(m, MILTER_MOD_ADD_HEADER, 0, lead, r->name,
		    r->value);
		break;
	case SMFIR_INSHEADER:
		milter_mods_add(m, MILTER_MOD_INSERT_HEADER, r->index, lead,
		    r->name, r->value);
		break;
	case SMFIR_CHGHEADER:
		milter_mods_add(m, MILTER_MOD_CHANGE_HEADER, r->index, lead,
		    r->name, r->value);
		break;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		milter_mods_add(m, MILTER_MOD_ADD_RCPT, 0, 0, r->name,
		    r->value);
		break;
	case SMFIR_DELRCPT:
		milter_mods_add(m, MILTER_MOD_DELETE_RCPT, 0, 0, r->name,
		    NULL);
		break;
	case SMFIR_CHGFROM:
		milter_mods_add(m, MILTER_MOD_CHANGE_FROM, 0, 0, r->name,
		    r->value);
		break;
	case SMFIR_REPLBODY:
		/* A new body is held whole: no larger than a message. */
		if (f->chain->max_size > 0 && (uint64_t)m->bodylen +
		    r->bodylen > f->chain->max_size)
			return -1;
		milter_mods_body(m, r->body, r->bodylen);
		break;
	case SMFIR_QUARANTINE:
		if (m->quarantine == NULL)
			m->quarantine = xstrdup(r->name);
		break;
	}
	return 0;
}

static int
milter_out_buf(void *arg, const void *p, size_t len)
{
	util_buf_add(arg, p, len);
	return 0;
}

/*
 * The filter's changes are taken once its end of message passed: those
 * of the content at once, so that the next filter sees the message as
 * changed (as Postfix shows it), the envelope's for the caller.
 */
static void
milter_keep_mods(struct milter_chain *c)
{
	struct milter_mods	*from = &c->fmods, *to = &c->mods;
	struct util_buf		 b = { NULL, 0, 0 };
	size_t			 i;

	if (milter_mods_has_content(from)) {
		milter_edit_message(from, c->msg, c->msglen, milter_out_buf,
		    &b);
		free(c->edited);
		c->edited = b.data;
		c->msg = b.data;
		c->msglen = b.len;
		free(c->fields);
		milter_edit_split(c->msg, c->msglen, &c->fields, &c->nfields,
		    &c->body);
	}
	for (i = 0; i < from->nmods; i++) {
		if (from->mods[i].type == MILTER_MOD_ADD_RCPT ||
		    from->mods[i].type == MILTER_MOD_DELETE_RCPT ||
		    from->mods[i].type == MILTER_MOD_CHANGE_FROM)
			milter_mods_add(to, from->mods[i].type,
			    from->mods[i].index, from->mods[i].leadspc,
			    from->mods[i].name, from->mods[i].value);
	}
	if (to->quarantine == NULL && from->quarantine != NULL) {
		to->quarantine = from->quarantine;
		from->quarantine = NULL;
	}
	milter_mods_clear(from);
}

/* The option negotiation's answer: what the filter does and skips. */
static int
milter_negotiated(struct milter_filter *f, const struct milter_proto_reply *r)
{
	size_t	i;

	if (r->cmd != SMFIC_OPTNEG || r->version < 2)
		return -1;
	f->actions = r->actions & (f->chain->version >= 6 ? MILTER_ACTIONS :
	    MILTER_ACTIONS_V2);
	f->protocol = r->protocol & (f->chain->version >= 6 ?
	    MILTER_PROTOCOL : MILTER_PROTOCOL_V2);
	for (i = 0; i < MILTER_STAGE_COUNT; i++) {
		if (r->macros[i] != NULL && (f->actions & SMFIF_SETSYMLIST))
			f->macros[i] = xstrdup(r->macros[i]);
	}
	f->state = MILTER_F_READY;
	log_debug("milter %s: version %u, actions 0x%x, protocol 0x%x",
	    f->socket, r->version, f->actions, f->protocol);
	return 0;
}

/* One reply from the filter the step waits for. */
static void
milter_reply(struct milter_filter *f, const struct milter_proto_reply *r)
{
	struct milter_chain	*c = f->chain;
	int			 message = c->step >= MILTER_STEP_MAIL;

	if (f->state == MILTER_F_NEGOTIATING) {
		evtimer_del(f->timer);
		f->waiting = 0;
		if (milter_negotiated(f, r) == -1) {
			milter_fail(f, "bad option negotiation reply");
			return;
		}
		if (c->step != MILTER_STEP_NONE)
			milter_next(c);
		return;
	}
	if (r->cmd == SMFIR_PROGRESS) {
		milter_send(f, 1, c->step == MILTER_STEP_MESSAGE ?
		    c->content_timeout : c->command_timeout);
		return;
	}
	if (milter_action_needed(r->cmd) != 0) {
		if (milter_modify(f, r) == -1)
			milter_fail(f, r->cmd == SMFIR_REPLBODY &&
			    c->content == MILTER_C_WAIT_EOM ? "new body too big "
			    "or not allowed" : "change not allowed here");
		return;
	}
	evtimer_del(f->timer);
	f->waiting = 0;
	switch (r->cmd) {
	case SMFIR_CONTINUE:
		if (c->step == MILTER_STEP_MESSAGE &&
		    c->content != MILTER_C_WAIT_EOM) {
			milter_content(f);
			return;
		}
		break;
	case SMFIR_SKIP:
		if (c->step == MILTER_STEP_MESSAGE &&
		    c->content == MILTER_C_BODY) {
			f->skip_body = 1;
			milter_content(f);
			return;
		}
		if (c->step == MILTER_STEP_MESSAGE &&
		    c->content != MILTER_C_WAIT_EOM) {
			milter_content(f);
			return;
		}
		break;
	case SMFIR_ACCEPT:
		if (milter_steps[c->step].session)
			f->state = MILTER_F_DONE;
		else
			f->skip_message = 1;
		break;
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_REPLYCODE:
		/*
		 * A refused connect refuses the whole session; after a
		 * refused HELO the client may say HELO again, and the
		 * filter must be asked again, and about every message.
		 */
		if (c->step == MILTER_STEP_CONNECT)
			f->state = MILTER_F_DONE;
		if (c->step == MILTER_STEP_MESSAGE &&
		    c->content == MILTER_C_WAIT_EOM)
			f->in_message = 0;
		milter_mods_clear(&c->fmods);
		milter_refuse(c, f, r->cmd == SMFIR_TEMPFAIL ?
		    MILTER_TEMPFAIL : MILTER_REJECT, r->cmd == SMFIR_REPLYCODE ?
		    r : NULL);
		return;
	case SMFIR_DISCARD:
		if (!message) {
			milter_fail(f, "discard outside a message");
			return;
		}
		if (c->step == MILTER_STEP_MESSAGE &&
		    c->content == MILTER_C_WAIT_EOM)
			f->in_message = 0;
		/* The message is over for this filter. */
		f->skip_message = 1;
		milter_mods_clear(&c->fmods);
		util_strlcpy(c->reply.filter, f->socket,
		    sizeof c->reply.filter);
		milter_finish(c, MILTER_DISCARD);
		return;
	default:
		milter_fail(f, "unexpected reply");
		return;
	}
	if (c->step == MILTER_STEP_MESSAGE) {
		if (c->content == MILTER_C_WAIT_EOM)
			f->in_message = 0;
		milter_keep_mods(c);
	}
	c->cur++;
	milter_next(c);
}

static void
milter_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter_filter	*f = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct milter_packet	 pkt;
	struct milter_proto_reply *r;
	const char		*why;
	size_t			 len, used;
	int			 rc;

	r = xmalloc(sizeof *r);
	while (f->bev == bev && (len = evbuffer_get_length(in)) > 0) {
		rc = milter_proto_parse(evbuffer_pullup(in, -1), len, &pkt,
		    &used);
		if (rc == 0)
			break;
		if (rc == -1) {
			milter_fail(f, "packet length out of range");
			break;
		}
		if (!f->waiting) {
			milter_fail(f, "reply when none was asked");
			break;
		}
		if (milter_proto_decode(&pkt, r, &why) == -1) {
			milter_fail(f, why);
			break;
		}
		milter_reply(f, r);
		if (f->bev == bev)
			evbuffer_drain(in, used);
	}
	free(r);
}

static void
milter_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter_filter	*f = arg;
	struct milter_chain	*c = f->chain;
	char			 why[128];

	if (what & BEV_EVENT_CONNECTED) {
		/*
		 * Steps without replies (headers, body chunks) are small
		 * writes the filter does not answer: without TCP_NODELAY
		 * each could wait for a delayed acknowledgement.
		 */
		if (strncmp(f->socket, "unix:", 5) != 0)
			(void)setsockopt(bufferevent_getfd(f->bev),
			    IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
			    sizeof(int));
		f->state = MILTER_F_NEGOTIATING;
		/* Before version 6, no reply-less steps, no leading space. */
		milter_proto_optneg(&c->out, c->version, c->version >= 6 ?
		    MILTER_ACTIONS : MILTER_ACTIONS_V2, c->version >= 6 ?
		    MILTER_PROTOCOL : MILTER_PROTOCOL_V2);
		bufferevent_enable(f->bev, EV_READ);
		evtimer_del(f->timer);
		milter_send(f, 1, c->connect_timeout);
		return;
	}
	if (f->state == MILTER_F_CONNECTING)
		snprintf(why, sizeof why, "cannot connect: %s",
		    strerror(errno != 0 ? errno : ECONNREFUSED));
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof why, "connection closed");
	else
		snprintf(why, sizeof why, "connection error: %s",
		    strerror(errno != 0 ? errno : EIO));
	milter_fail(f, why);
}

static void
milter_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_filter	*f = arg;

	milter_fail(f, f->state == MILTER_F_CONNECTING ? "connect timeout" :
	    f->state == MILTER_F_NEGOTIATING ? "negotiation timeout" :
	    "reply timeout");
}

/* Begin a step: one at a time. */
static void
milter_begin(struct milter_chain *c, enum milter_step step, milter_cb cb,
    void *arg)
{
	if (c->step != MILTER_STEP_NONE || evtimer_pending(c->done_ev, NULL))
		panic("milter: step %s while one is running",
		    milter_steps[step].name);
	memset(&c->reply, 0, sizeof c->reply);
	c->step = step;
	c->cur = 0;
	c->cb = cb;
	c->cb_arg = arg;
	milter_next(c);
}

void
milter_chain_connect(struct milter_chain *c, const struct milter_client *cl,
    milter_cb cb, void *arg)
{
	char	port[8];

	free(c->client_name);
	free(c->client_addr);
	c->client_name = xstrdup(cl->name != NULL ? cl->name : "unknown");
	c->client_addr = cl->addr != NULL ? xstrdup(cl->addr) : NULL;
	c->client_port = cl->port;
	if (cl->addr != NULL && milter_macro_value(c, "client_addr", 11) ==
	    NULL)
		milter_chain_macro(c, "{client_addr}", cl->addr);
	if (milter_macro_value(c, "client_name", 11) == NULL)
		milter_chain_macro(c, "{client_name}", c->client_name);
	if (cl->addr != NULL && milter_macro_value(c, "client_port", 11) ==
	    NULL) {
		snprintf(port, sizeof port, "%u", cl->port);
		milter_chain_macro(c, "{client_port}", port);
	}
	milter_begin(c, MILTER_STEP_CONNECT, cb, arg);
}

void
milter_chain_helo(struct milter_chain *c, const char *helo, milter_cb cb,
    void *arg)
{
	free(c->arg);
	c->arg = xstrdup(helo);
	milter_begin(c, MILTER_STEP_HELO, cb, arg);
}

void
milter_chain_mail(struct milter_chain *c, const char *sender,
    const char *params, milter_cb cb, void *arg)
{
	size_t	i;

	free(c->arg);
	free(c->params);
	for (i = 0; i < c->nfilters; i++) {
		c->filters[i].skip_message = 0;
		c->filters[i].skip_body = 0;
	}
	c->arg = xstrdup(sender);
	c->params = xstrdup(params != NULL ? params : "");
	milter_chain_macro(c, "{mail_addr}", sender);
	milter_begin(c, MILTER_STEP_MAIL, cb, arg);
}

void
milter_chain_rcpt(struct milter_chain *c, const char *rcpt,
    const char *params, milter_cb cb, void *arg)
{
	free(c->arg);
	free(c->params);
	c->arg = xstrdup(rcpt);
	c->params = xstrdup(params != NULL ? params : "");
	milter_chain_macro(c, "{rcpt_addr}", rcpt);
	milter_begin(c, MILTER_STEP_RCPT, cb, arg);
}

void
milter_chain_data(struct milter_chain *c, milter_cb cb, void *arg)
{
	milter_begin(c, MILTER_STEP_DATA, cb, arg);
}

void
milter_chain_message(struct milter_chain *c, const char *msg, size_t len,
    milter_cb cb, void *arg)
{
	free(c->edited);
	c->edited = NULL;
	c->msg = msg;
	c->msglen = len;
	free(c->fields);
	milter_edit_split(msg, len, &c->fields, &c->nfields, &c->body);
	milter_mods_clear(&c->mods);
	milter_begin(c, MILTER_STEP_MESSAGE, cb, arg);
}

const struct milter_mods *
milter_chain_mods(const struct milter_chain *c)
{
	return &c->mods;
}

void
milter_chain_abort(struct milter_chain *c)
{
	struct milter_filter	*f;
	size_t			 i;

	evtimer_del(c->done_ev);
	for (i = 0; i < c->nfilters; i++) {
		f = &c->filters[i];
		/* A reply still due would answer the wrong command. */
		if (f->waiting) {
			milter_close(f, 0);
			f->state = MILTER_F_FAILED;
		}
		if (f->bev != NULL && f->in_message) {
			milter_proto_command(&c->out, SMFIC_ABORT, NULL, 0);
			milter_send(f, 0, 0);
		}
		f->in_message = 0;
		f->skip_message = 0;
		f->skip_body = 0;
	}
	c->step = MILTER_STEP_NONE;
	c->quarantine = 0;
	c->msg = NULL;
	c->msglen = 0;
	free(c->edited);
	c->edited = NULL;
	free(c->fields);
	c->fields = NULL;
	c->nfields = 0;
	milter_mods_clear(&c->fmods);
	milter_mods_clear(&c->mods);
	milter_chain_macro(c, "{mail_addr}", NULL);
	milter_chain_macro(c, "{rcpt_addr}", NULL);
	milter_chain_macro(c, "i", NULL);
}
