/*
 * dns.c: the DNS that delivery needs, asynchronous on the loop.  It owns
 * the c-ares channel, the libevent events that watch the channel's sockets
 * and its one timer, and every query object until its answer has been
 * handed over or it has been cancelled; it turns MX and address answers
 * into the ordered list of addresses to try.  It never waits on the
 * network, never calls back before a request has returned, never calls
 * back a cancelled request, and never makes delivery policy (which
 * exchangers are this host, which port, when to retry): that is the
 * caller's.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <ares.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "util.h"

#define DNS_TIMEOUT_MS	2000	/* first try; c-ares doubles it per round */
#define DNS_TRIES	2	/* rounds over all servers */
#define DNS_PORT	53
#define DNS_NAME_MAX	253	/* RFC 1035 2.3.4, without the final dot */
#define DNS_LABEL_MAX	63

/* What a c-ares status means for delivery. */
enum dns_class {
	DNS_CLASS_OK,
	DNS_CLASS_NODATA,	/* the name exists, without such records */
	DNS_CLASS_NXDOMAIN,	/* the name does not (or cannot) exist */
	DNS_CLASS_TEMP,		/* ask again later */
};

/* c-ares statuses in the words logs and bounces use. */
static const struct {
	int		 code;
	const char	*word;
	enum dns_class	 class;
} dns_ares_table[] = {
	{ ARES_SUCCESS,		"success",		DNS_CLASS_OK },
	{ ARES_ENODATA,		"NODATA",		DNS_CLASS_NODATA },
	{ ARES_ENOTFOUND,	"NXDOMAIN",		DNS_CLASS_NXDOMAIN },
	{ ARES_EBADNAME,	"bad name",		DNS_CLASS_NXDOMAIN },
	{ ARES_ESERVFAIL,	"SERVFAIL",		DNS_CLASS_TEMP },
	{ ARES_EREFUSED,	"REFUSED",		DNS_CLASS_TEMP },
	{ ARES_ENOTIMP,		"NOTIMP",		DNS_CLASS_TEMP },
	{ ARES_EFORMERR,	"FORMERR",		DNS_CLASS_TEMP },
	{ ARES_ETIMEOUT,	"timeout",		DNS_CLASS_TEMP },
	{ ARES_ECONNREFUSED,	"connection refused",	DNS_CLASS_TEMP },
	{ ARES_EBADRESP,	"malformed answer",	DNS_CLASS_TEMP },
	{ ARES_EOF,		"connection closed",	DNS_CLASS_TEMP },
	{ ARES_ENOMEM,		"out of memory",	DNS_CLASS_TEMP },
	{ ARES_EDESTRUCTION,	"shut down",		DNS_CLASS_TEMP },
	{ ARES_ECANCELLED,	"cancelled",		DNS_CLASS_TEMP },
};

static const char *dns_status_names[] = {
	[DNS_OK] = "ok",
	[DNS_TEMPFAIL] = "tempfail",
	[DNS_NXDOMAIN] = "nxdomain",
	[DNS_NULLMX] = "nullmx",
	[DNS_NOHOST] = "nohost",
};

struct dns_chan;

/* A socket c-ares asked us to watch; owned by its channel. */
struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	struct dns_chan		*chan;
	ares_socket_t		 fd;
	short			 what;		/* EV_READ | EV_WRITE */
	struct event		*ev;
};

/*
 * A c-ares channel and its events.  The current channel takes new
 * queries; one replaced by dns_set_servers is kept until the last lookup
 * started on it has come back, because c-ares of this age refuses to
 * change the servers of a channel with queries in flight.
 */
struct dns_chan {
	TAILQ_ENTRY(dns_chan)	 entry;
	ares_channel		 channel;
	struct event		*timer;
	TAILQ_HEAD(, dns_sock)	 socks;
	int			 nlookups;	/* c-ares callbacks owed */
};

enum dns_kind {
	DNS_KIND_MX,
	DNS_KIND_HOST,
};

/* One A or AAAA lookup of a host; part of the host. */
struct dns_lookup {
	struct dns_query	*q;
	int			 type;		/* T_A or T_AAAA */
	int			 status;	/* c-ares status once back */
	int			 naddr;
	union {
		struct ares_addrttl	v4[DNS_MAX_TARGETS];
		struct ares_addr6ttl	v6[DNS_MAX_TARGETS];
	} u;
};

/* An exchanger (or the domain or host itself) and its two lookups. */
struct dns_host {
	char			 name[DNS_HOST_SIZE];
	unsigned		 pref;
	struct dns_lookup	 a;
	struct dns_lookup	 aaaa;
};

/*
 * A request.  Owned by this module until its callback has returned, or,
 * once cancelled, until every c-ares lookup it started has come back.
 */
struct dns_query {
	TAILQ_ENTRY(dns_query)	 entry;
	struct dns_chan		*chan;
	enum dns_kind		 kind;
	dns_cb			 cb;
	void			*arg;
	char			 name[DNS_HOST_SIZE];
	int			 mx_status;	/* of the MX query */
	int			 nullmx;
	int			 implicit;
	int			 cancelled;
	int			 delivering;	/* unlinked, in its callback */
	int			 pending;	/* c-ares lookups not back */
	struct dns_host		*hosts;
	size_t			 nhosts;
	struct event		*done;		/* hands the result over */
	struct dns_result	 res;
};

static struct event_base	*dns_base;
static struct dns_chan		*dns_current;
static TAILQ_HEAD(, dns_chan)	 dns_retired =
    TAILQ_HEAD_INITIALIZER(dns_retired);
static TAILQ_HEAD(, dns_query)	 dns_queries =
    TAILQ_HEAD_INITIALIZER(dns_queries);
static struct event		*dns_reaper;
static uint64_t			 dns_rand_state;

static void	dns_chan_rearm(struct dns_chan *);
static void	dns_query_step(struct dns_query *);

const char *
dns_status_str(enum dns_status status)
{
	if ((size_t)status >= nitems(dns_status_names))
		return "unknown";
	return dns_status_names[status];
}

/* The table index of a c-ares status, or the table's size. */
static size_t
dns_ares_find(int code)
{
	size_t	i;

	for (i = 0; i < nitems(dns_ares_table); i++) {
		if (dns_ares_table[i].code == code)
			break;
	}
	return i;
}

static const char *
dns_ares_word(int code)
{
	size_t	i = dns_ares_find(code);

	return i < nitems(dns_ares_table) ? dns_ares_table[i].word :
	    ares_strerror(code);
}

/* Anything unknown is temporary: a DNS problem must never lose mail. */
static enum dns_class
dns_ares_class(int code)
{
	size_t	i = dns_ares_find(code);

	return i < nitems(dns_ares_table) ? dns_ares_table[i].class :
	    DNS_CLASS_TEMP;
}

/* splitmix64, seeded from the kernel at dns_init. */
static unsigned
dns_random(void)
{
	uint64_t	z;

	z = (dns_rand_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (unsigned)((z ^ (z >> 31)) >> 32);
}

static void
dns_random_seed(void)
{
	uint64_t	seed;

	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
		seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	dns_rand_state = seed;
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx	*x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->host, y->host);
}

/*
 * Sort by preference, then shuffle each run of equal preference so that
 * load spreads over equal exchangers (RFC 5321 5.1).  The name breaks
 * ties before the shuffle, so the result depends on the records and the
 * random numbers only, never on the order the answer listed them in.
 */
void
dns_mx_order(struct dns_mx *mx, size_t n, unsigned (*rnd)(void))
{
	struct dns_mx	tmp;
	size_t		i, j, k, r;

	if (n < 2)
		return;
	qsort(mx, n, sizeof *mx, dns_mx_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
			;
		for (k = j - 1; k > i; k--) {
			r = i + rnd() % (k - i + 1);
			if (r != k) {
				tmp = mx[k];
				mx[k] = mx[r];
				mx[r] = tmp;
			}
		}
	}
}

/* One dns_servers entry in c-ares' form, or a reason in *why. */
static int
dns_parse_server(const char *entry, char *out, size_t size,
    const char **why)
{
	char		 host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
	const char	*port = NULL, *end, *perr;
	struct in6_addr	 a6;
	struct in_addr	 a4;
	uint64_t	 v = DNS_PORT;
	size_t		 len;
	int		 family;

	if (*entry == '[') {
		if ((end = strchr(entry, ']')) == NULL) {
			*why = "missing ]";
			return -1;
		}
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0') {
			*why = "junk after ]";
			return -1;
		}
		entry++;
		len = end - entry;
		family = AF_INET6;
	} else if (strchr(entry, ':') != strrchr(entry, ':')) {
		len = strlen(entry);
		family = AF_INET6;
	} else {
		if ((end = strchr(entry, ':')) != NULL)
			port = end + 1;
		else
			end = entry + strlen(entry);
		len = end - entry;
		family = AF_INET;
	}
	if (len >= sizeof host) {
		*why = "not an IP address";
		return -1;
	}
	memcpy(host, entry, len);
	host[len] = '\0';
	if (family == AF_INET6 ? inet_pton(AF_INET6, host, &a6) != 1 :
	    inet_pton(AF_INET, host, &a4) != 1) {
		*why = family == AF_INET6 ? "not an IPv6 address" :
		    "not an IP address";
		return -1;
	}
	if (port != NULL && util_parse_uint(port, 1, 65535, &v, &perr) == -1) {
		*why = "bad port";
		return -1;
	}
	if (family == AF_INET6) {
		inet_ntop(AF_INET6, &a6, text, sizeof text);
		util_snprintf(out, size, "[%s]:%u", text, (unsigned)v);
	} else {
		inet_ntop(AF_INET, &a4, text, sizeof text);
		util_snprintf(out, size, "%s:%u", text, (unsigned)v);
	}
	return 0;
}

/*
 * A dns_servers setting (entries "ip", "ip:port", "[ipv6]" or
 * "[ipv6]:port", separated by blanks) in c-ares' comma-separated form
 * with every port written out.  Empty or NULL gives "": the system's
 * resolvers.
 */
int
dns_parse_servers(const char *servers, char **csv, char **cause)
{
	char		*copy, *entry, *last, *out, *tmp;
	char		 one[INET6_ADDRSTRLEN + 16];
	const char	*why;

	out = xstrdup("");
	if (servers == NULL) {
		*csv = out;
		return 0;
	}
	copy = xstrdup(servers);
	for (entry = strtok_r(copy, " \t", &last); entry != NULL;
	    entry = strtok_r(NULL, " \t", &last)) {
		if (dns_parse_server(entry, one, sizeof one, &why) == -1) {
			xasprintf(cause, "bad DNS server \"%s\": %s", entry,
			    why);
			free(copy);
			free(out);
			return -1;
		}
		xasprintf(&tmp, "%s%s%s", out, *out == '\0' ? "" : ",", one);
		free(out);
		out = tmp;
	}
	free(copy);
	*csv = out;
	return 0;
}

/*
 * Whether a name can be asked for: ASCII letters, digits, '-' and '_',
 * labels of 1 to 63 octets, at most 253 in all.  A name from outside
 * (a domain, an exchanger) must pass before it goes to c-ares or into a
 * target.
 */
static int
dns_is_name(const char *name)
{
	size_t		 label = 0, len = 0;
	const char	*p;

	for (p = name; *p != '\0'; p++, len++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
		if (++label > DNS_LABEL_MAX)
			return 0;
	}
	return len > 0 && len <= DNS_NAME_MAX && label > 0;
}

/* A watched socket is ready: c-ares reads or writes it. */
static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock	*s = arg;
	struct dns_chan	*chan = s->chan;

	/* s may be freed by c-ares closing the socket in here. */
	ares_process_fd(chan->channel,
	    (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_chan_rearm(chan);
}

/* c-ares tells which sockets it wants watched, and for what. */
static void
dns_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_chan	*chan = data;
	struct dns_sock	*s;
	short		 what;

	TAILQ_FOREACH(s, &chan->socks, entry) {
		if (s->fd == fd)
			break;
	}
	what = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	if (what == 0) {
		if (s != NULL) {
			TAILQ_REMOVE(&chan->socks, s, entry);
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		s->chan = chan;
		s->fd = fd;
		TAILQ_INSERT_TAIL(&chan->socks, s, entry);
	} else if (s->what == what)
		return;
	else
		event_free(s->ev);
	s->what = what;
	s->ev = event_new(dns_base, fd, what | EV_PERSIST, dns_sock_cb, s);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1)
		fatalx("dns: cannot watch a resolver socket");
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_chan	*chan = arg;

	ares_process_fd(chan->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_chan_rearm(chan);
}

/* Sets the channel's timer to c-ares' next timeout; after any activity. */
static void
dns_chan_rearm(struct dns_chan *chan)
{
	struct timeval	 tv, *tvp;

	tvp = ares_timeout(chan->channel, NULL, &tv);
	if (tvp == NULL)
		evtimer_del(chan->timer);
	else if (evtimer_add(chan->timer, tvp) == -1)
		fatalx("dns: cannot arm the resolver timer");
}

/*
 * A new channel asking the servers in csv, or those of /etc/resolv.conf
 * if csv is empty.  Search domains and the hosts file are off: a mail
 * exchanger is a name in the DNS, never one completed by local rules.
 */
static struct dns_chan *
dns_chan_new(const char *csv, char **cause)
{
	static char		 lookups[] = "b";
	struct dns_chan		*chan;
	struct ares_options	 opts;
	int			 mask, rc;

	chan = xcalloc(1, sizeof *chan);
	TAILQ_INIT(&chan->socks);
	memset(&opts, 0, sizeof opts);
	opts.timeout = DNS_TIMEOUT_MS;
	opts.tries = DNS_TRIES;
	opts.ndomains = 0;
	opts.domains = NULL;
	opts.lookups = lookups;
	opts.sock_state_cb = dns_sock_state_cb;
	opts.sock_state_cb_data = chan;
	mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS |
	    ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
	/* Blocking: c-ares reads /etc/resolv.conf, a small local file. */
	if ((rc = ares_init_options(&chan->channel, &opts, mask)) !=
	    ARES_SUCCESS) {
		xasprintf(cause, "DNS resolver: %s", ares_strerror(rc));
		free(chan);
		return NULL;
	}
	if (*csv != '\0' &&
	    (rc = ares_set_servers_ports_csv(chan->channel, csv)) !=
	    ARES_SUCCESS) {
		xasprintf(cause, "DNS servers %s: %s", csv, ares_strerror(rc));
		ares_destroy(chan->channel);
		free(chan);
		return NULL;
	}
	if ((chan->timer = evtimer_new(dns_base, dns_timer_cb, chan)) == NULL)
		fatalx("dns: cannot make the resolver timer");
	return chan;
}

/* Ends a channel; lookups still in it come back with ARES_EDESTRUCTION. */
static void
dns_chan_free(struct dns_chan *chan)
{
	struct dns_sock	*s;

	ares_destroy(chan->channel);
	while ((s = TAILQ_FIRST(&chan->socks)) != NULL) {
		TAILQ_REMOVE(&chan->socks, s, entry);
		event_free(s->ev);
		free(s);
	}
	event_free(chan->timer);
	free(chan);
}

/* Ends replaced channels whose last lookup has come back. */
static void
dns_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_chan	*chan, *next;

	for (chan = TAILQ_FIRST(&dns_retired); chan != NULL; chan = next) {
		next = TAILQ_NEXT(chan, entry);
		if (chan->nlookups == 0) {
			TAILQ_REMOVE(&dns_retired, chan, entry);
			dns_chan_free(chan);
		}
	}
}

int
dns_init(struct event_base *base, const char *servers, char **cause)
{
	char	*csv;

	if (dns_base != NULL)
		panic("dns: initialised twice");
	if (dns_parse_servers(servers, &csv, cause) == -1)
		return -1;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		xasprintf(cause, "DNS resolver library cannot start");
		free(csv);
		return -1;
	}
	dns_base = base;
	if ((dns_current = dns_chan_new(csv, cause)) == NULL) {
		dns_base = NULL;
		ares_library_cleanup();
		free(csv);
		return -1;
	}
	free(csv);
	if ((dns_reaper = event_new(base, -1, 0, dns_reap_cb, NULL)) == NULL)
		fatalx("dns: cannot make an event");
	dns_random_seed();
	return 0;
}

/*
 * New servers for queries from now on (a reload).  Queries in flight
 * finish on the old servers.  A bad setting keeps the old servers.
 */
int
dns_set_servers(const char *servers, char **cause)
{
	struct dns_chan	*chan;
	char		*csv;

	if (dns_base == NULL)
		panic("dns: not initialised");
	if (dns_parse_servers(servers, &csv, cause) == -1)
		return -1;
	chan = dns_chan_new(csv, cause);
	free(csv);
	if (chan == NULL)
		return -1;
	TAILQ_INSERT_TAIL(&dns_retired, dns_current, entry);
	dns_current = chan;
	event_active(dns_reaper, EV_TIMEOUT, 1);
	return 0;
}

static void
dns_query_free(struct dns_query *q)
{
	if (!q->delivering)
		TAILQ_REMOVE(&dns_queries, q, entry);
	event_free(q->done);
	free(q->hosts);
	free(q);
}

/*
 * Ends the module.  Queries not yet answered are cancelled: their
 * callbacks are never called.
 */
void
dns_shutdown(void)
{
	struct dns_query	*q;
	struct dns_chan		*chan;

	if (dns_base == NULL)
		return;
	TAILQ_FOREACH(q, &dns_queries, entry) {
		q->cancelled = 1;
		event_del(q->done);
	}
	/* The last lookup of each cancelled query frees it. */
	while ((chan = TAILQ_FIRST(&dns_retired)) != NULL) {
		TAILQ_REMOVE(&dns_retired, chan, entry);
		dns_chan_free(chan);
	}
	dns_chan_free(dns_current);
	dns_current = NULL;
	while ((q = TAILQ_FIRST(&dns_queries)) != NULL)
		dns_query_free(q);
	event_free(dns_reaper);
	dns_reaper = NULL;
	ares_library_cleanup();
	dns_base = NULL;
}

/* Hands a finished query's result to its callback, then frees it. */
static void
dns_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query	*q = arg;

	TAILQ_REMOVE(&dns_queries, q, entry);
	q->delivering = 1;
	log_debug("dns: %s %s: %s, %zu address%s", q->kind == DNS_KIND_MX ?
	    "MX" : "host", q->name, dns_status_str(q->res.status),
	    q->res.ntargets, q->res.ntargets == 1 ? "" : "es");
	q->cb(&q->res, q->arg);
	dns_query_free(q);
}

/* The result is ready; it is handed over from the loop, never from here. */
static void
dns_query_answer(struct dns_query *q)
{
	event_active(q->done, EV_TIMEOUT, 1);
}

static struct dns_query *
dns_query_new(enum dns_kind kind, const char *name, dns_cb cb, void *arg)
{
	struct dns_query	*q;

	if (dns_base == NULL)
		panic("dns: not initialised");
	q = xcalloc(1, sizeof *q);
	q->kind = kind;
	q->chan = dns_current;
	q->cb = cb;
	q->arg = arg;
	util_strlcpy(q->name, name, sizeof q->name);
	if ((q->done = event_new(dns_base, -1, 0, dns_done_cb, q)) == NULL)
		fatalx("dns: cannot make an event");
	TAILQ_INSERT_TAIL(&dns_queries, q, entry);
	return q;
}

/* The name to ask for, without one final dot; -1 if it cannot be. */
static int
dns_name_copy(const char *in, char *out, size_t size)
{
	size_t	len = strlen(in);

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len >= size)
		return -1;
	memcpy(out, in, len);
	out[len] = '\0';
	return dns_is_name(out) ? 0 : -1;
}

static void
dns_fail(struct dns_query *q, enum dns_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a failure in the result. */
static void
dns_fail(struct dns_query *q, enum dns_status status, const char *fmt, ...)
{
	va_list	ap;

	q->res.status = status;
	q->res.ntargets = 0;
	va_start(ap, fmt);
	vsnprintf(q->res.error, sizeof q->res.error, fmt, ap);
	va_end(ap);
}

static void
dns_addr_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_lookup	*lk = arg;
	int			 n = DNS_MAX_TARGETS;

	if (!lk->q->cancelled && status == ARES_SUCCESS) {
		if (lk->type == T_A)
			status = ares_parse_a_reply(abuf, alen, NULL, lk->u.v4,
			    &n);
		else
			status = ares_parse_aaaa_reply(abuf, alen, NULL,
			    lk->u.v6, &n);
		if (status == ARES_SUCCESS)
			lk->naddr = n;
	}
	lk->status = status;
	dns_query_step(lk->q);
}

/* Starts one c-ares query for q; arg comes back to cb. */
static void
dns_ask(struct dns_query *q, const char *name, int type, ares_callback cb,
    void *arg)
{
	q->pending++;
	q->chan->nlookups++;
	ares_query(q->chan->channel, name, C_IN, type, cb, arg);
}

/* Asks for the A and AAAA records of every host of q, all at once. */
static void
dns_ask_hosts(struct dns_query *q)
{
	struct dns_host	*h;
	size_t		 i;

	for (i = 0; i < q->nhosts; i++) {
		h = &q->hosts[i];
		h->a.q = h->aaaa.q = q;
		h->a.type = T_A;
		h->aaaa.type = T_AAAA;
		dns_ask(q, h->name, T_A, dns_addr_cb, &h->a);
		dns_ask(q, h->name, T_AAAA, dns_addr_cb, &h->aaaa);
	}
}

/* The domain itself as its only exchanger (RFC 5321 5.1), or a host. */
static void
dns_set_self(struct dns_query *q)
{
	q->implicit = 1;
	q->nhosts = 1;
	q->hosts = xcalloc(1, sizeof *q->hosts);
	util_strlcpy(q->hosts[0].name, q->name, sizeof q->hosts[0].name);
}

/*
 * The exchangers of an MX answer, in the order to try them, each name
 * once.  A lone null MX (RFC 7505) marks the domain as taking no mail; a
 * null MX among real ones is dropped, as it names nothing to connect to.
 */
static void
dns_set_exchangers(struct dns_query *q, const struct ares_mx_reply *reply)
{
	const struct ares_mx_reply	*r;
	struct dns_mx			*mx;
	size_t				 n = 0, nnull = 0, i, j;

	for (r = reply; r != NULL; r = r->next)
		n++;
	mx = xreallocarray(NULL, n, sizeof *mx);
	n = 0;
	for (r = reply; r != NULL; r = r->next) {
		if (r->host[0] == '\0' || strcmp(r->host, ".") == 0) {
			nnull++;
			continue;
		}
		if (!dns_is_name(r->host))
			continue;
		util_strlcpy(mx[n].host, r->host, sizeof mx[n].host);
		mx[n].pref = r->priority;
		n++;
	}
	if (n == 0 && nnull > 0) {
		q->nullmx = 1;
		free(mx);
		return;
	}
	dns_mx_order(mx, n, dns_random);
	q->hosts = xcalloc(n < DNS_MAX_MX ? n : DNS_MAX_MX, sizeof *q->hosts);
	for (i = 0; i < n && q->nhosts < DNS_MAX_MX; i++) {
		for (j = 0; j < q->nhosts; j++) {
			if (strcasecmp(q->hosts[j].name, mx[i].host) == 0)
				break;
		}
		if (j < q->nhosts)
			continue;
		util_strlcpy(q->hosts[q->nhosts].name, mx[i].host,
		    sizeof q->hosts[q->nhosts].name);
		q->hosts[q->nhosts].pref = mx[i].pref;
		q->nhosts++;
	}
	free(mx);
}

static void
dns_mx_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_query	*q = arg;
	struct ares_mx_reply	*reply = NULL;

	if (!q->cancelled) {
		if (status == ARES_SUCCESS)
			status = ares_parse_mx_reply(abuf, alen, &reply);
		q->mx_status = status;
		switch (dns_ares_class(status)) {
		case DNS_CLASS_OK:
			dns_set_exchangers(q, reply);
			dns_ask_hosts(q);
			break;
		case DNS_CLASS_NODATA:
			dns_set_self(q);
			dns_ask_hosts(q);
			break;
		default:
			break;
		}
		if (reply != NULL)
			ares_free_data(reply);
	}
	dns_query_step(q);
}

/* Adds an address to the targets unless it is there already. */
static void
dns_add_target(struct dns_result *res, const struct dns_host *h,
    int family, const void *addr)
{
	struct dns_target	*t;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	size_t			 i;

	if (res->ntargets == DNS_MAX_TARGETS)
		return;
	t = &res->targets[res->ntargets];
	memset(t, 0, sizeof *t);
	util_strlcpy(t->host, h->name, sizeof t->host);
	t->pref = h->pref;
	if (family == AF_INET) {
		sin = (struct sockaddr_in *)&t->ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, sizeof sin->sin_addr);
		t->sslen = sizeof *sin;
	} else {
		sin6 = (struct sockaddr_in6 *)&t->ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, sizeof sin6->sin6_addr);
		t->sslen = sizeof *sin6;
	}
	for (i = 0; i < res->ntargets; i++) {
		if (res->targets[i].sslen == t->sslen &&
		    memcmp(&res->targets[i].ss, &t->ss, t->sslen) == 0)
			return;
	}
	res->ntargets++;
}

/* Whether a lookup came back with nothing usable. */
static int
dns_lookup_empty(const struct dns_lookup *lk)
{
	return lk->status != ARES_SUCCESS || lk->naddr == 0;
}

/* Why a host has no address, in words. */
static const char *
dns_host_why(const struct dns_host *h)
{
	const struct dns_lookup	*lk;

	lk = dns_ares_class(h->a.status) == DNS_CLASS_TEMP ? &h->a :
	    dns_ares_class(h->aaaa.status) == DNS_CLASS_TEMP ? &h->aaaa :
	    &h->a;
	return lk->status == ARES_SUCCESS ? "NODATA" :
	    dns_ares_word(lk->status);
}

/*
 * Builds the targets from the hosts' addresses: hosts in order, and within
 * one host its IPv4 addresses, then its IPv6 ones, each as the answer
 * listed them.  IPv4 first because a host whose IPv6 route is broken then
 * still delivers without first waiting on connects that time out.
 */
static void
dns_build_targets(struct dns_query *q)
{
	struct dns_result	*res = &q->res;
	const struct dns_host	*h, *temp = NULL, *perm = NULL;
	size_t			 i;
	int			 j;

	for (i = 0; i < q->nhosts; i++) {
		h = &q->hosts[i];
		for (j = 0; !dns_lookup_empty(&h->a) && j < h->a.naddr; j++)
			dns_add_target(res, h, AF_INET, &h->a.u.v4[j].ipaddr);
		for (j = 0; !dns_lookup_empty(&h->aaaa) && j < h->aaaa.naddr;
		    j++)
			dns_add_target(res, h, AF_INET6,
			    &h->aaaa.u.v6[j].ip6addr);
		if (dns_lookup_empty(&h->a) && dns_lookup_empty(&h->aaaa)) {
			if (temp == NULL &&
			    (dns_ares_class(h->a.status) == DNS_CLASS_TEMP ||
			    dns_ares_class(h->aaaa.status) == DNS_CLASS_TEMP))
				temp = h;
			if (perm == NULL)
				perm = h;
		}
	}
	if (res->ntargets > 0) {
		res->status = DNS_OK;
		return;
	}
	if (temp != NULL)
		dns_fail(q, DNS_TEMPFAIL, "address lookup for %s: %s",
		    temp->name, dns_host_why(temp));
	else if (perm == NULL)
		dns_fail(q, DNS_NOHOST, "no usable mail exchanger for %s",
		    q->name);
	else if (q->kind == DNS_KIND_HOST)
		dns_fail(q, DNS_NOHOST, "address lookup for %s: %s",
		    q->name, dns_host_why(perm));
	else if (q->implicit)
		dns_fail(q, DNS_NOHOST, "no MX and no address for %s (%s)",
		    q->name, dns_host_why(perm));
	else
		dns_fail(q, DNS_NOHOST, "no address for any mail exchanger "
		    "of %s (%s: %s)", q->name, perm->name, dns_host_why(perm));
}

/* All lookups of q are back: the outcome, in the result. */
static void
dns_query_finish(struct dns_query *q)
{
	q->res.implicit = q->implicit;
	if (q->kind == DNS_KIND_MX && q->nullmx)
		dns_fail(q, DNS_NULLMX, "%s accepts no mail (null MX)",
		    q->name);
	else if (q->kind == DNS_KIND_MX &&
	    dns_ares_class(q->mx_status) == DNS_CLASS_NXDOMAIN)
		dns_fail(q, DNS_NXDOMAIN, "MX lookup for %s: %s", q->name,
		    dns_ares_word(q->mx_status));
	else if (q->kind == DNS_KIND_MX &&
	    dns_ares_class(q->mx_status) == DNS_CLASS_TEMP)
		dns_fail(q, DNS_TEMPFAIL, "MX lookup for %s: %s", q->name,
		    dns_ares_word(q->mx_status));
	else
		dns_build_targets(q);
	dns_query_answer(q);
}

/* One c-ares lookup of q has come back. */
static void
dns_query_step(struct dns_query *q)
{
	struct dns_chan	*chan = q->chan;

	if (--chan->nlookups == 0 && chan != dns_current)
		event_active(dns_reaper, EV_TIMEOUT, 1);
	if (--q->pending > 0)
		return;
	if (q->cancelled)
		dns_query_free(q);
	else
		dns_query_finish(q);
}

/*
 * The mail exchangers of a domain with their addresses.  The callback
 * runs once, from the loop, after this has returned, unless dns_cancel
 * comes first; the handle is void once the callback has been called.
 */
struct dns_query *
dns_resolve_mx(const char *domain, dns_cb cb, void *arg)
{
	struct dns_query	*q;
	char			 name[DNS_HOST_SIZE];

	q = dns_query_new(DNS_KIND_MX, domain, cb, arg);
	if (dns_name_copy(domain, name, sizeof name) == -1) {
		log_escape(q->name, sizeof q->name, domain, strlen(domain));
		dns_fail(q, DNS_NXDOMAIN, "MX lookup for %s: bad domain name",
		    q->name);
		dns_query_answer(q);
		return q;
	}
	util_strlcpy(q->name, name, sizeof q->name);
	dns_ask(q, q->name, T_MX, dns_mx_cb, q);
	dns_chan_rearm(q->chan);
	return q;
}

/*
 * An address literal ("192.0.2.1", "2001:db8::1", "[::1]",
 * "[IPv6:2001:db8::1]") as the only target; 0 if host is a literal.
 */
static int
dns_literal(struct dns_query *q, const char *host)
{
	struct dns_target	*t = &q->res.targets[0];
	struct sockaddr_in	*sin = (struct sockaddr_in *)&t->ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&t->ss;
	char			 text[DNS_HOST_SIZE];
	size_t			 len;

	util_strlcpy(text, host, sizeof text);
	if (*host == '[') {
		len = strlen(host);
		if (len < 2 || host[len - 1] != ']' || len - 2 >= sizeof text)
			return -1;
		memcpy(text, host + 1, len - 2);
		text[len - 2] = '\0';
		if (strncasecmp(text, "IPv6:", 5) == 0)
			memmove(text, text + 5, strlen(text + 5) + 1);
	}
	memset(t, 0, sizeof *t);
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		t->sslen = sizeof *sin;
	} else if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		t->sslen = sizeof *sin6;
	} else
		return -1;
	util_strlcpy(t->host, text, sizeof t->host);
	q->res.status = DNS_OK;
	q->res.implicit = 1;
	q->res.ntargets = 1;
	return 0;
}

/*
 * The addresses of one host (a gateway), or an address literal answered
 * without asking.  Shaped like an MX result with one implicit exchanger;
 * called back as dns_resolve_mx is.
 */
struct dns_query *
dns_resolve_host(const char *host, dns_cb cb, void *arg)
{
	struct dns_query	*q;
	char			 name[DNS_HOST_SIZE];

	q = dns_query_new(DNS_KIND_HOST, host, cb, arg);
	if (dns_literal(q, host) == 0) {
		dns_query_answer(q);
		return q;
	}
	if (*host == '[' || dns_name_copy(host, name, sizeof name) == -1) {
		log_escape(q->name, sizeof q->name, host, strlen(host));
		dns_fail(q, DNS_NOHOST, "address lookup for %s: bad host name",
		    q->name);
		q->res.implicit = 1;
		dns_query_answer(q);
		return q;
	}
	util_strlcpy(q->name, name, sizeof q->name);
	dns_set_self(q);
	dns_ask_hosts(q);
	dns_chan_rearm(q->chan);
	return q;
}

/*
 * Forgets a request: its callback will not be called.  Lookups already
 * sent come back to this module later, which frees the query then.
 */
void
dns_cancel(struct dns_query *q)
{
	if (q == NULL || q->delivering || q->cancelled)
		return;
	q->cancelled = 1;
	event_del(q->done);
	if (q->pending == 0)
		dns_query_free(q);
}
