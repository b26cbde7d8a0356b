/*
 * mta.c: delivery to other hosts.  Jobs wait per destination (a domain,
 * or the gateway); a destination is resolved once (MX, or the gateway's
 * addresses), then served by up to max_per_destination connections, all
 * destinations together by at most max_deliveries.  A connection that
 * finishes a job takes the next one of its destination (RSET between);
 * an idle one is closed after idle_timeout, or at once when another
 * destination is waiting for a slot.
 *
 * Mail for the local domains goes here too when [local] transport names
 * an LMTP server: one more destination, fixed like the gateway (a unix
 * socket, or a host and port), whose connections speak LMTP (RFC 2033)
 * and are capped by lmtp_max_connections alone, apart from
 * max_deliveries, as Maildir deliveries are.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "log.h"
#include "mta.h"
#include "mta_session.h"
#include "sessinfo.h"
#include "util.h"

#define MTA_NBUCKETS		1024
#define MTA_DNS_TTL		300	/* seconds a resolution is reused */
#define MTA_GATEWAY_KEY		"[gateway]"
#define MTA_LMTP_KEY		"[lmtp]"
#define MTA_HANDOVER_KEY	"[handover]"

TAILQ_HEAD(mta_jobs, mta_job);

/* One outbound connection; owned by its destination. */
struct mta_conn {
	TAILQ_ENTRY(mta_conn)	 entry;		/* in dest->conns */
	TAILQ_ENTRY(mta_conn)	 idle_entry;	/* in mta.idle */
	struct mta_dest		*dest;
	struct mta_session	*s;
	struct mta_job		*job;		/* in flight */
	struct event		*idle_ev;
	int			 ready;		/* greeted at least once */
	int			 idle;
	int			 closing;	/* QUIT sent, closed() to come */
};
TAILQ_HEAD(mta_conns, mta_conn);

/* A place mail goes to; lives while it has jobs or connections. */
struct mta_dest {
	TAILQ_ENTRY(mta_dest)	 entry;		/* in its hash bucket */
	TAILQ_ENTRY(mta_dest)	 wait_entry;	/* in mta.waiting */
	char			 name[DNS_HOST_SIZE + 16];
	int			 gateway;
	int			 lmtp;		/* the LMTP server */
	int			 handover;	/* to host:port, for ternctl */
	char			 host[DNS_HOST_SIZE];	/* ...its host */
	unsigned		 port;
	struct mta_jobs		 jobs;		/* waiting for a connection */
	size_t			 njobs;
	struct mta_conns	 conns;
	size_t			 nconns;
	size_t			 nconnecting;	/* not yet ready */
	struct dns_query	*query;
	struct dns_target	*targets;
	size_t			 ntargets;
	time_t			 resolved;	/* 0: not resolved */
	int			 waiting;	/* on mta.waiting */
};
TAILQ_HEAD(mta_dests, mta_dest);

static struct {
	struct event_base	*base;
	const struct config	*conf;
	struct mta_dests	 buckets[MTA_NBUCKETS];
	struct mta_dests	 waiting;	/* blocked by max_deliveries */
	struct mta_conns	 idle;
	size_t			 nconns;
	size_t			 nlmtp;		/* of nconns, to LMTP */
	char			*auth_user;
	char			*auth_pass;
} mta;

static void	mta_pump(struct mta_dest *);
static unsigned	mta_hash(const char *);
static void	mta_session_ready_cb(struct mta_session *, void *);
static void	mta_session_done_cb(struct mta_session *, struct dlv_tx *,
		    void *);
static void	mta_session_closed_cb(struct mta_session *,
		    const struct dlv_status *, void *);

static const struct mta_session_cb mta_cbs = {
	mta_session_ready_cb, mta_session_done_cb, mta_session_closed_cb
};

/* Credentials for the gateway: one line "user:password". */
static void
mta_read_auth(const char *path)
{
	FILE	*fp;
	char	 line[1024], *colon;

	free(mta.auth_user);
	free(mta.auth_pass);
	mta.auth_user = mta.auth_pass = NULL;
	if (*path == '\0')
		return;
	if ((fp = fopen(path, "r")) == NULL) {
		log_warn("gateway_auth_file %s", path);
		return;
	}
	if (fgets(line, sizeof line, fp) == NULL ||
	    (colon = strchr(line, ':')) == NULL) {
		log_warnx("gateway_auth_file %s: expected one line "
		    "\"user:password\"", path);
		fclose(fp);
		return;
	}
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	*colon = '\0';
	mta.auth_user = xstrdup(line);
	mta.auth_pass = xstrdup(colon + 1);
	explicit_bzero(line, sizeof line);
}

void
mta_init(struct event_base *base, const struct config *conf)
{
	size_t	i;

	mta.base = base;
	for (i = 0; i < MTA_NBUCKETS; i++)
		TAILQ_INIT(&mta.buckets[i]);
	TAILQ_INIT(&mta.waiting);
	TAILQ_INIT(&mta.idle);
	mta_set_config(conf);
}

void
mta_set_config(const struct config *conf)
{
	struct mta_dest	*d;

	mta.conf = conf;
	mta_read_auth(conf->gateway_auth_file);
	/* The LMTP server may have moved: look it up again. */
	TAILQ_FOREACH(d, &mta.buckets[mta_hash(MTA_LMTP_KEY)], entry) {
		if (d->lmtp)
			d->resolved = 0;
	}
}

size_t
mta_active(void)
{
	return mta.nconns;
}

/* Each outbound connection, for ternctl sessions. */
void
mta_sessions(sessinfo_fn fn, void *arg)
{
	struct mta_dest	*d;
	struct mta_conn	*c;
	struct sessinfo	 si;
	size_t		 i;

	for (i = 0; i < MTA_NBUCKETS; i++) {
		TAILQ_FOREACH(d, &mta.buckets[i], entry) {
			TAILQ_FOREACH(c, &d->conns, entry) {
				memset(&si, 0, sizeof si);
				mta_session_info(c->s, &si);
				fn(&si, arg);
			}
		}
	}
}

static unsigned
mta_hash(const char *s)
{
	unsigned	h = 5381;

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h % MTA_NBUCKETS;
}

static struct mta_dest *
mta_dest_get(const char *name, int gateway, int lmtp)
{
	struct mta_dests	*b = &mta.buckets[mta_hash(name)];
	struct mta_dest		*d;

	TAILQ_FOREACH(d, b, entry) {
		if (strcmp(d->name, name) == 0)
			return d;
	}
	d = xcalloc(1, sizeof *d);
	util_strlcpy(d->name, name, sizeof d->name);
	d->gateway = gateway;
	d->lmtp = lmtp;
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->conns);
	TAILQ_INSERT_HEAD(b, d, entry);
	return d;
}

/*
 * The destination of a hand-over (ternctl flush --to): "host:port" or
 * "[address]:port", checked by the control socket's caller; one per
 * target, whatever the recipients' domains.
 */
static struct mta_dest *
mta_dest_handover(const char *target)
{
	struct mta_dest	*d;
	char		 key[sizeof d->name], host[DNS_HOST_SIZE];
	const char	*colon = strrchr(target, ':'), *h = target;
	size_t		 len;

	util_snprintf(key, sizeof key, "%s%s", MTA_HANDOVER_KEY, target);
	d = mta_dest_get(key, 0, 0);
	if (d->handover)
		return d;
	len = colon != NULL ? (size_t)(colon - target) : strlen(target);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len >= sizeof host)
		len = sizeof host - 1;
	memcpy(host, h, len);
	host[len] = '\0';
	d->handover = 1;
	util_strlcpy(d->host, host, sizeof d->host);
	d->port = colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 25;
	return d;
}

/* Free a destination nobody needs any more. */
static void
mta_dest_gc(struct mta_dest *d)
{
	if (d->njobs > 0 || d->nconns > 0 || d->query != NULL)
		return;
	if (d->waiting)
		TAILQ_REMOVE(&mta.waiting, d, wait_entry);
	TAILQ_REMOVE(&mta.buckets[mta_hash(d->name)], d, entry);
	free(d->targets);
	free(d);
}

/* Every recipient of a job gets the same outcome; the job is done. */
static void
mta_job_fail(struct mta_job *job, const struct dlv_status *st)
{
	size_t	i;

	for (i = 0; i < job->tx.nrcpts; i++) {
		job->tx.rcpts[i].st = *st;
		util_strlcpy(job->tx.rcpts[i].relay, DLV_RELAY_NONE,
		    sizeof job->tx.rcpts[i].relay);
	}
	job->dest = NULL;
	job->cb(job, job->arg);
}

/* Fail every waiting job of a destination. */
static void
mta_dest_fail(struct mta_dest *d, const struct dlv_status *st)
{
	struct mta_job	*job;

	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, job, entry);
		d->njobs--;
		mta_job_fail(job, st);
	}
}

/* Whether an address is one of ours on the port mail would go to. */
static int
mta_is_self(const struct sockaddr_storage *ss, unsigned port)
{
	const struct config	*conf = mta.conf;
	const struct sockaddr	*l;
	size_t			 i;

	for (i = 0; i < conf->nlisten; i++) {
		l = (const struct sockaddr *)&conf->listen[i].ss;
		if (l->sa_family != ss->ss_family)
			continue;
		if (l->sa_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)l;
			const struct sockaddr_in *b = (const void *)ss;

			if (ntohs(a->sin_port) == port &&
			    a->sin_addr.s_addr == b->sin_addr.s_addr)
				return 1;
		} else if (l->sa_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)l;
			const struct sockaddr_in6 *b = (const void *)ss;

			if (ntohs(a->sin6_port) == port &&
			    memcmp(&a->sin6_addr, &b->sin6_addr,
			    sizeof a->sin6_addr) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Keep the targets worth trying.  An exchanger that is this host (by
 * name, or by an address we listen on) and every one of no better
 * preference are dropped (RFC 5321 section 5.1); if none is left, the
 * mail would loop.
 */
static size_t
mta_drop_self(struct dns_target *t, size_t n, unsigned port)
{
	unsigned	limit = ~0u;
	size_t		i, kept = 0;

	for (i = 0; i < n; i++) {
		if (strcasecmp(t[i].host, mta.conf->hostname) == 0 ||
		    mta_is_self(&t[i].ss, port)) {
			if (t[i].pref < limit)
				limit = t[i].pref;
		}
	}
	for (i = 0; i < n; i++) {
		if (t[i].pref < limit)
			t[kept++] = t[i];
	}
	return kept;
}

static unsigned
mta_dest_port(const struct mta_dest *d)
{
	if (d->handover)
		return d->port;
	if (d->lmtp)
		return (unsigned)mta.conf->lmtp_port;
	return d->gateway ? (unsigned)mta.conf->gateway_port :
	    (unsigned)mta.conf->remote_port;
}

static void
mta_dns_cb(const struct dns_result *res, void *arg)
{
	struct mta_dest		*d = arg;
	struct dlv_status	 st;

	d->query = NULL;
	switch (res->status) {
	case DNS_OK:
		break;
	case DNS_TEMPFAIL:
		dlv_status_fill(&st, DLV_TEMP, "4.4.3", "%s", res->error);
		goto fail;
	case DNS_NXDOMAIN:
		dlv_status_fill(&st, d->gateway || d->lmtp || d->handover ?
		    DLV_TEMP : DLV_PERM, d->gateway || d->lmtp ||
		    d->handover ? "4.4.3" : "5.1.2", "%s", res->error);
		goto fail;
	case DNS_NULLMX:
		dlv_status_fill(&st, DLV_PERM, "5.1.10", "%s", res->error);
		goto fail;
	case DNS_NOHOST:
		dlv_status_fill(&st, d->gateway || d->lmtp || d->handover ?
		    DLV_TEMP : DLV_PERM, d->gateway || d->lmtp ||
		    d->handover ? "4.4.3" : "5.4.4", "%s", res->error);
		goto fail;
	}
	free(d->targets);
	d->targets = xreallocarray(NULL, res->ntargets ? res->ntargets : 1,
	    sizeof *d->targets);
	memcpy(d->targets, res->targets, res->ntargets * sizeof *d->targets);
	/* The LMTP server is meant to be here. */
	d->ntargets = d->lmtp ? res->ntargets : mta_drop_self(d->targets,
	    res->ntargets, mta_dest_port(d));
	if (d->ntargets == 0) {
		dlv_status_fill(&st, DLV_PERM, "5.4.6",
		    "mail for %s loops back to myself", d->name);
		goto fail;
	}
	d->resolved = time(NULL);
	mta_pump(d);
	return;

fail:
	d->resolved = 0;
	mta_dest_fail(d, &st);
	mta_dest_gc(d);
}

/*
 * The LMTP server on a unix socket needs no lookup: one target, named
 * as Postfix names it in logs, "hostname[/path]".
 */
static void
mta_lmtp_unix(struct mta_dest *d)
{
	struct sockaddr_un	*sun;
	struct dns_target	*t;

	free(d->targets);
	d->targets = xcalloc(1, sizeof *d->targets);
	t = &d->targets[0];
	util_strlcpy(t->host, mta.conf->hostname, sizeof t->host);
	sun = (struct sockaddr_un *)&t->ss;
	sun->sun_family = AF_UNIX;
	if (util_strlcpy(sun->sun_path, mta.conf->lmtp_host,
	    sizeof sun->sun_path) >= sizeof sun->sun_path)
		panic("mta_lmtp_unix: socket path too long");
	t->sslen = sizeof *sun;
	d->ntargets = 1;
	d->resolved = time(NULL);
}

static void
mta_resolve(struct mta_dest *d)
{
	if (d->query != NULL)
		return;
	if (d->lmtp && mta.conf->transport == CONFIG_TRANSPORT_LMTP_UNIX) {
		mta_lmtp_unix(d);
		return;
	}
	if (d->handover)
		d->query = dns_resolve_host(d->host, mta_dns_cb, d);
	else if (d->lmtp)
		d->query = dns_resolve_host(mta.conf->lmtp_host, mta_dns_cb,
		    d);
	else if (d->gateway)
		d->query = dns_resolve_host(mta.conf->gateway, mta_dns_cb, d);
	else
		d->query = dns_resolve_mx(d->name, mta_dns_cb, d);
}

static void
mta_conn_unidle(struct mta_conn *c)
{
	if (!c->idle)
		return;
	c->idle = 0;
	TAILQ_REMOVE(&mta.idle, c, idle_entry);
	event_del(c->idle_ev);
}

/* Forget a connection whose session is gone or is being told to quit. */
static void
mta_conn_free(struct mta_conn *c)
{
	struct mta_dest	*d = c->dest;

	mta_conn_unidle(c);
	if (!c->ready)
		d->nconnecting--;
	TAILQ_REMOVE(&d->conns, c, entry);
	d->nconns--;
	mta.nconns--;
	if (d->lmtp)
		mta.nlmtp--;
	event_free(c->idle_ev);
	free(c);
}

/* A slot came free: the first destination waiting for one goes on. */
static void
mta_pump_waiting(void)
{
	struct mta_dest	*d;

	while (mta.nconns - mta.nlmtp < mta.conf->max_deliveries &&
	    (d = TAILQ_FIRST(&mta.waiting)) != NULL) {
		TAILQ_REMOVE(&mta.waiting, d, wait_entry);
		d->waiting = 0;
		mta_pump(d);
		if (d->waiting)
			break;
	}
}

/*
 * Close an idle connection politely; it keeps its slot until closed()
 * says the peer is really gone, so the caps hold as the peer sees them.
 */
static void
mta_conn_close(struct mta_conn *c)
{
	mta_conn_unidle(c);
	c->closing = 1;
	mta_session_close(c->s);
}

static void
mta_idle_cb(evutil_socket_t fd, short events, void *arg)
{
	mta_conn_close(arg);
}

static void
mta_conn_new(struct mta_dest *d)
{
	const struct config		*conf = mta.conf;
	struct mta_session_params	 p;
	struct mta_conn			*c;

	memset(&p, 0, sizeof p);
	p.helo = conf->hostname;
	p.name = d->handover ? d->host : d->gateway ? conf->gateway :
	    d->lmtp ? conf->lmtp_host : d->name;
	p.targets = d->targets;
	p.ntargets = d->ntargets;
	p.port = (uint16_t)mta_dest_port(d);
	/* LMTP: no TLS, no AUTH, per-recipient replies after the dot. */
	p.lmtp = d->lmtp;
	p.starttls = !d->lmtp && conf->starttls;
	p.tls_verify = d->gateway && !d->handover &&
	    conf->gateway_tls_verify;
	if (d->gateway && !d->handover && mta.auth_user != NULL) {
		p.auth_user = mta.auth_user;
		p.auth_pass = mta.auth_pass;
	}
	p.connect_timeout = conf->connect_timeout;
	p.reply_timeout = conf->reply_timeout;
	p.data_timeout = conf->delivery_data_timeout;

	c = xcalloc(1, sizeof *c);
	c->dest = d;
	c->idle_ev = evtimer_new(mta.base, mta_idle_cb, c);
	if (c->idle_ev == NULL)
		fatalx("mta: evtimer_new");
	TAILQ_INSERT_TAIL(&d->conns, c, entry);
	d->nconns++;
	d->nconnecting++;
	mta.nconns++;
	if (d->lmtp)
		mta.nlmtp++;
	c->s = mta_session_new(mta.base, &p, &mta_cbs, c);
}

/*
 * Make room under max_deliveries: close an idle connection, if any, but
 * never one to the LMTP server, which does not count there.
 */
static void
mta_free_slot(void)
{
	struct mta_conn	*c;

	TAILQ_FOREACH(c, &mta.idle, idle_entry) {
		if (!c->dest->lmtp) {
			mta_conn_close(c);
			return;
		}
	}
}

/* How many connections a destination may have. */
static uint64_t
mta_dest_cap(const struct mta_dest *d)
{
	return d->lmtp ? mta.conf->lmtp_max_connections :
	    mta.conf->max_per_destination;
}

/* Give waiting jobs to idle connections, open more within the caps. */
static void
mta_pump(struct mta_dest *d)
{
	struct mta_conn	*c;
	struct mta_job	*job;
	time_t		 now = time(NULL);

	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_FOREACH(c, &d->conns, entry) {
			if (c->idle)
				break;
		}
		if (c != NULL) {
			TAILQ_REMOVE(&d->jobs, job, entry);
			d->njobs--;
			mta_conn_unidle(c);
			c->job = job;
			mta_session_send(c->s, &job->tx);
			continue;
		}
		if (d->njobs <= d->nconnecting || d->nconns >= mta_dest_cap(d))
			return;
		if (d->resolved == 0 || now - d->resolved > MTA_DNS_TTL) {
			d->resolved = 0;
			mta_resolve(d);
			if (d->resolved == 0)
				return;	/* mta_dns_cb() goes on */
		}
		if (!d->lmtp &&
		    mta.nconns - mta.nlmtp >= mta.conf->max_deliveries) {
			mta_free_slot();
			if (!d->waiting) {
				TAILQ_INSERT_TAIL(&mta.waiting, d, wait_entry);
				d->waiting = 1;
			}
			return;
		}
		mta_conn_new(d);
	}
}

void
mta_submit(struct mta_job *job)
{
	struct mta_dest	*d;
	size_t		 i;
	/* The queue manager hands local recipients here only for LMTP. */
	int		 lmtp = job->handover == NULL &&
			    mta.conf->transport != CONFIG_TRANSPORT_MAILDIR &&
			    config_is_local_domain(mta.conf, job->domain);
	int		 gateway = job->handover == NULL && !lmtp &&
			    dlv_use_gateway(mta.conf, job->tries);

	for (i = 0; i < job->tx.nrcpts; i++) {
		job->tx.rcpts[i].st.result = DLV_NONE;
		job->tx.rcpts[i].dsn = 0;
		job->tx.rcpts[i].gateway = gateway;
		util_strlcpy(job->tx.rcpts[i].relay, DLV_RELAY_NONE,
		    sizeof job->tx.rcpts[i].relay);
	}
	if (job->handover != NULL)
		d = mta_dest_handover(job->handover);
	else if (lmtp)
		d = mta_dest_get(MTA_LMTP_KEY, 0, 1);
	else if (gateway)
		d = mta_dest_get(MTA_GATEWAY_KEY, 1, 0);
	else
		d = mta_dest_get(job->domain, 0, 0);
	job->dest = d;
	TAILQ_INSERT_TAIL(&d->jobs, job, entry);
	d->njobs++;
	mta_pump(d);
}

static void
mta_session_ready_cb(struct mta_session *s, void *arg)
{
	struct mta_conn	*c = arg;
	struct mta_dest	*d = c->dest;
	struct timeval	 tv;

	if (!c->ready) {
		c->ready = 1;
		d->nconnecting--;
	}
	if (!TAILQ_EMPTY(&d->jobs)) {
		c->idle = 1;
		TAILQ_INSERT_TAIL(&mta.idle, c, idle_entry);
		mta_pump(d);
		return;
	}
	if (!TAILQ_EMPTY(&mta.waiting) && !d->lmtp) {
		/* Another destination waits for this slot. */
		c->closing = 1;
		mta_session_close(c->s);
		return;
	}
	c->idle = 1;
	TAILQ_INSERT_TAIL(&mta.idle, c, idle_entry);
	tv.tv_sec = (time_t)(mta.conf->idle_timeout / 1000);
	tv.tv_usec = (suseconds_t)(mta.conf->idle_timeout % 1000) * 1000;
	event_add(c->idle_ev, &tv);
}

static void
mta_session_done_cb(struct mta_session *s, struct dlv_tx *tx, void *arg)
{
	struct mta_conn	*c = arg;
	struct mta_job	*job = c->job;

	c->job = NULL;
	if (job != NULL) {
		job->dest = NULL;
		job->cb(job, job->arg);
	}
	/* Still up: ready for the next job, as after the greeting. */
	if (!mta_session_is_closing(s))
		mta_session_ready_cb(s, c);
}

static void
mta_session_closed_cb(struct mta_session *s, const struct dlv_status *st,
    void *arg)
{
	struct mta_conn	*c = arg;
	struct mta_dest	*d = c->dest;
	struct mta_conn	*other;
	int		 alive = 0;

	if (c->closing) {
		mta_conn_free(c);
		mta_pump(d);
		mta_dest_gc(d);
		mta_pump_waiting();
		return;
	}
	if (c->job != NULL) {
		/* The session promised done() first; be safe anyway. */
		mta_job_fail(c->job, st);
		c->job = NULL;
	}
	if (!c->ready) {
		/*
		 * Nothing answered.  Unless another connection to the same
		 * place works, the jobs waiting would meet the same fate:
		 * give them this outcome now, and resolve afresh next time.
		 */
		TAILQ_FOREACH(other, &d->conns, entry) {
			if (other != c && other->ready)
				alive = 1;
		}
		if (!alive) {
			d->resolved = 0;
			mta_conn_free(c);
			mta_dest_fail(d, st);
			mta_dest_gc(d);
			mta_pump_waiting();
			return;
		}
	}
	mta_conn_free(c);
	mta_pump(d);
	mta_dest_gc(d);
	mta_pump_waiting();
}

/*
 * Stop, once the loop has: every connection is dropped at once, no job is
 * called back.
 */
void
mta_shutdown(void)
{
	struct mta_dest	*d;
	struct mta_conn	*c;
	size_t		 i;

	for (i = 0; i < MTA_NBUCKETS; i++) {
		while ((d = TAILQ_FIRST(&mta.buckets[i])) != NULL) {
			while ((c = TAILQ_FIRST(&d->conns)) != NULL) {
				mta_session_free(c->s);
				mta_conn_free(c);
			}
			if (d->query != NULL)
				dns_cancel(d->query);
			TAILQ_REMOVE(&mta.buckets[i], d, entry);
			free(d->targets);
			free(d);
		}
	}
	TAILQ_INIT(&mta.waiting);
	free(mta.auth_user);
	free(mta.auth_pass);
	mta.auth_user = mta.auth_pass = NULL;
}
