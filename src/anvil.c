/*
 * anvil.c: the per-client memory across sessions and the limits drawn
 * from it (Postfix's anvil(8) inside the daemon).  It owns one table of
 * entries, one per client address (an IPv6 address cut to
 * client_ipv6_prefix bits) and one per account that failed AUTH, each
 * counting events in sliding windows of client_rate_unit.  Memory is
 * bounded: at most client_table_size entries (one with sessions open is
 * never dropped, and there are at most max_connections of those), the
 * idle one used least recently giving way to a new one, and an idle
 * entry whose counts have run out is freed as later calls pass by.
 * Pure logic: it never reads the clock (time is passed in, in
 * milliseconds of a monotonic clock), never logs, never includes
 * libevent.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anvil.h"
#include "config.h"
#include "util.h"

#define ANVIL_BUCKETS		16384
/* Idle entries past their time freed per call, at most. */
#define ANVIL_EXPIRE_STEP	4
/* The family of an account's entry: its name hashed into addr. */
#define ANVIL_FAMILY_USER	255

/* What an entry counts per unit of time. */
enum anvil_event {
	ANVIL_EV_CONN,
	ANVIL_EV_MAIL,
	ANVIL_EV_RCPT,
	ANVIL_EV_AUTH_FAIL,
	ANVIL_NEVENTS
};

/*
 * One client address or account; owned by the table.  The counts of the
 * window that began at "window" are in cur, those of the one before in
 * prev; a rate is prev, scaled by the part of its window still inside
 * the last unit, plus cur.
 */
struct anvil_entry {
	LIST_ENTRY(anvil_entry)	 hash;
	TAILQ_ENTRY(anvil_entry) idle;		/* when sessions == 0 */
	struct anvil_key	 key;
	uint32_t		 sessions;	/* open now */
	uint64_t		 window;
	uint64_t		 last;		/* last event */
	uint64_t		 penalty;	/* AUTH refused until then */
	uint32_t		 cur[ANVIL_NEVENTS];
	uint32_t		 prev[ANVIL_NEVENTS];
};
LIST_HEAD(anvil_bucket, anvil_entry);
TAILQ_HEAD(anvil_idle, anvil_entry);

static struct {
	const struct config	*conf;
	struct anvil_bucket	*buckets;
	struct anvil_idle	 idle;		/* least recently used first */
	size_t			 nentries;
	uint64_t		 seed;
} anvil;

static const char *const anvil_result_names[] = {
	[ANVIL_OK] = "ok",
	[ANVIL_EXEMPT] = "exempt",
	[ANVIL_CONN_RATE] = "max_connection_rate",
	[ANVIL_CONN_COUNT] = "max_connections_per_ip",
	[ANVIL_MSG_RATE] = "max_message_rate",
	[ANVIL_RCPT_RATE] = "max_recipient_rate",
	[ANVIL_AUTH_PENALTY] = "max_auth_failure_rate",
	[ANVIL_USER_PENALTY] = "max_auth_failure_rate_per_user",
};

static void	anvil_clear(void);

void
anvil_init(const struct config *conf)
{
	size_t	i;

	anvil.conf = conf;
	anvil.buckets = xreallocarray(NULL, ANVIL_BUCKETS,
	    sizeof *anvil.buckets);
	for (i = 0; i < ANVIL_BUCKETS; i++)
		LIST_INIT(&anvil.buckets[i]);
	TAILQ_INIT(&anvil.idle);
	anvil.nentries = 0;
	/* A seeded hash: nobody can aim addresses at one bucket. */
	if (getrandom(&anvil.seed, sizeof anvil.seed, GRND_NONBLOCK) !=
	    sizeof anvil.seed)
		anvil.seed = (uint64_t)time(NULL);
}

/* A reload: new limits apply to the next event; the counts stay. */
void
anvil_set_config(const struct config *conf)
{
	anvil.conf = conf;
}

void
anvil_shutdown(void)
{
	if (anvil.buckets == NULL)
		return;
	anvil_clear();
	free(anvil.buckets);
	anvil.buckets = NULL;
}

/* Milliseconds of the monotonic clock, for the callers to pass in. */
uint64_t
anvil_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *
anvil_result_str(enum anvil_result r)
{
	return anvil_result_names[r];
}

size_t
anvil_entries(void)
{
	return anvil.nentries;
}

size_t
anvil_entry_size(void)
{
	return sizeof(struct anvil_entry);
}

static uint64_t
anvil_fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char	*s = p;
	size_t			 i;

	for (i = 0; i < len; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return h;
}

static size_t
anvil_bucket_of(const struct anvil_key *k)
{
	uint64_t	h;

	h = anvil_fnv(anvil.seed ^ 14695981039346656037ULL, k, sizeof *k);
	return (size_t)(h % ANVIL_BUCKETS);
}

/*
 * The key of a client address: IPv4 (an IPv4-mapped IPv6 address too)
 * whole, IPv6 cut to client_ipv6_prefix bits, since one host commonly
 * holds a whole /64.
 */
static void
anvil_key_of(const struct sockaddr *sa, struct anvil_key *k)
{
	const struct sockaddr_in6	*sin6;
	unsigned			 bits, i;

	memset(k, 0, sizeof *k);
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			k->family = AF_INET;
			memcpy(k->addr, &sin6->sin6_addr.s6_addr[12], 4);
			return;
		}
		k->family = AF_INET6;
		memcpy(k->addr, &sin6->sin6_addr, 16);
		bits = (unsigned)anvil.conf->client_ipv6_prefix;
		for (i = 0; i < 16; i++) {
			if (bits >= 8)
				bits -= 8;
			else {
				k->addr[i] &= (uint8_t)(0xff00 >> bits);
				bits = 0;
			}
		}
		return;
	}
	k->family = AF_INET;
	memcpy(k->addr, &((const struct sockaddr_in *)(const void *)sa)->
	    sin_addr, 4);
}

/* The key of an account: its name, without case, hashed to 128 bits. */
static void
anvil_key_user(const char *user, struct anvil_key *k)
{
	uint64_t	h1 = 14695981039346656037ULL, h2 = 0x9e3779b97f4a7c15ULL;
	unsigned char	c;
	size_t		i;

	for (i = 0; user[i] != '\0'; i++) {
		c = (unsigned char)tolower((unsigned char)user[i]);
		h1 = anvil_fnv(h1, &c, 1);
		h2 = anvil_fnv(h2 ^ c, &c, 1);
	}
	memset(k, 0, sizeof *k);
	k->family = ANVIL_FAMILY_USER;
	memcpy(k->addr, &h1, 8);
	memcpy(k->addr + 8, &h2, 8);
}

static void
anvil_free_entry(struct anvil_entry *e)
{
	LIST_REMOVE(e, hash);
	if (e->sessions == 0)
		TAILQ_REMOVE(&anvil.idle, e, idle);
	free(e);
	anvil.nentries--;
}

static void
anvil_clear(void)
{
	struct anvil_entry	*e;
	size_t			 i;

	for (i = 0; i < ANVIL_BUCKETS; i++) {
		while ((e = LIST_FIRST(&anvil.buckets[i])) != NULL)
			anvil_free_entry(e);
	}
}

/* Whether an idle entry has nothing left to say: counts and penalty. */
static int
anvil_is_spent(const struct anvil_entry *e, uint64_t now)
{
	return now >= e->last + 2 * anvil.conf->client_rate_unit &&
	    now >= e->penalty;
}

/* Free the idle entries at the head of the list that are spent. */
static void
anvil_expire(uint64_t now)
{
	struct anvil_entry	*e;
	int			 n;

	for (n = 0; n < ANVIL_EXPIRE_STEP; n++) {
		e = TAILQ_FIRST(&anvil.idle);
		if (e == NULL || !anvil_is_spent(e, now))
			return;
		anvil_free_entry(e);
	}
}

/* Move the windows on to now. */
static void
anvil_roll(struct anvil_entry *e, uint64_t now)
{
	uint64_t	unit = anvil.conf->client_rate_unit;

	if (now < e->window + unit)
		return;
	if (now < e->window + 2 * unit) {
		memcpy(e->prev, e->cur, sizeof e->prev);
		e->window += unit;
	} else {
		memset(e->prev, 0, sizeof e->prev);
		e->window = now;
	}
	memset(e->cur, 0, sizeof e->cur);
}

/* The events of one kind in the last unit of time, estimated. */
static uint64_t
anvil_rate(const struct anvil_entry *e, enum anvil_event ev, uint64_t now)
{
	uint64_t	unit = anvil.conf->client_rate_unit;
	uint64_t	left = e->window + unit - now;

	return e->cur[ev] + (e->prev[ev] * left) / unit;
}

/*
 * The entry of a key, made if needed (create) and marked used now.  When
 * the table is full the idle entry used least recently gives way.
 */
static struct anvil_entry *
anvil_get(const struct anvil_key *k, uint64_t now, int create)
{
	struct anvil_bucket	*b = &anvil.buckets[anvil_bucket_of(k)];
	struct anvil_entry	*e;

	anvil_expire(now);
	LIST_FOREACH(e, b, hash) {
		if (memcmp(&e->key, k, sizeof *k) == 0)
			break;
	}
	if (e == NULL) {
		if (!create)
			return NULL;
		if (anvil.nentries >= anvil.conf->client_table_size &&
		    (e = TAILQ_FIRST(&anvil.idle)) != NULL)
			anvil_free_entry(e);
		e = xcalloc(1, sizeof *e);
		e->key = *k;
		e->window = now;
		LIST_INSERT_HEAD(b, e, hash);
		TAILQ_INSERT_TAIL(&anvil.idle, e, idle);
		anvil.nentries++;
	} else if (e->sessions == 0) {
		TAILQ_REMOVE(&anvil.idle, e, idle);
		TAILQ_INSERT_TAIL(&anvil.idle, e, idle);
	}
	if (now > e->last)
		e->last = now;
	anvil_roll(e, now);
	return e;
}

static int
anvil_is_exempt(const struct sockaddr *sa)
{
	return config_is_limit_exempt(anvil.conf, sa);
}

/*
 * A new connection.  Within the limits it is counted (its key written
 * to *k for anvil_disconnect) and ANVIL_OK returned; over one it is not
 * counted at all.
 */
enum anvil_result
anvil_connect(const struct sockaddr *sa, uint64_t now, struct anvil_key *k)
{
	const struct config	*c = anvil.conf;
	struct anvil_entry	*e;
	struct anvil_key	 key;

	memset(k, 0, sizeof *k);
	if (anvil_is_exempt(sa))
		return ANVIL_EXEMPT;
	anvil_key_of(sa, &key);
	e = anvil_get(&key, now, 1);
	if (c->max_connections_per_ip != 0 &&
	    e->sessions >= c->max_connections_per_ip)
		return ANVIL_CONN_COUNT;
	if (c->max_connection_rate != 0 &&
	    anvil_rate(e, ANVIL_EV_CONN, now) >= c->max_connection_rate)
		return ANVIL_CONN_RATE;
	e->cur[ANVIL_EV_CONN]++;
	if (e->sessions++ == 0)
		TAILQ_REMOVE(&anvil.idle, e, idle);
	*k = key;
	return ANVIL_OK;
}

/*
 * A counted connection has ended.  One whose client sent no command is
 * given back to the connection rate: it was never served.
 */
void
anvil_disconnect(const struct anvil_key *k, int served, uint64_t now)
{
	struct anvil_entry	*e;

	if (k->family == 0 || (e = anvil_get(k, now, 0)) == NULL ||
	    e->sessions == 0)
		return;
	if (!served) {
		if (e->cur[ANVIL_EV_CONN] > 0)
			e->cur[ANVIL_EV_CONN]--;
		else if (e->prev[ANVIL_EV_CONN] > 0)
			e->prev[ANVIL_EV_CONN]--;
	}
	if (--e->sessions == 0)
		TAILQ_INSERT_TAIL(&anvil.idle, e, idle);
}

/* Count one event against a rate limit (0: none); refused, not counted. */
static enum anvil_result
anvil_event(const struct sockaddr *sa, enum anvil_event ev, uint64_t limit,
    enum anvil_result over, uint64_t now)
{
	struct anvil_entry	*e;
	struct anvil_key	 key;

	if (anvil_is_exempt(sa))
		return ANVIL_EXEMPT;
	anvil_key_of(sa, &key);
	e = anvil_get(&key, now, 1);
	if (limit != 0 && anvil_rate(e, ev, now) >= limit)
		return over;
	e->cur[ev]++;
	return ANVIL_OK;
}

/* A MAIL command. */
enum anvil_result
anvil_mail(const struct sockaddr *sa, uint64_t now)
{
	return anvil_event(sa, ANVIL_EV_MAIL, anvil.conf->max_message_rate,
	    ANVIL_MSG_RATE, now);
}

/* A RCPT command. */
enum anvil_result
anvil_rcpt(const struct sockaddr *sa, uint64_t now)
{
	return anvil_event(sa, ANVIL_EV_RCPT, anvil.conf->max_recipient_rate,
	    ANVIL_RCPT_RATE, now);
}

/*
 * May this client try AUTH (user NULL: before the account is known), or
 * is the address, or the account, in its penalty?
 */
enum anvil_result
anvil_auth_allowed(const struct sockaddr *sa, const char *user, uint64_t now)
{
	struct anvil_entry	*e;
	struct anvil_key	 key;

	if (anvil_is_exempt(sa))
		return ANVIL_EXEMPT;
	anvil_key_of(sa, &key);
	if ((e = anvil_get(&key, now, 0)) != NULL && now < e->penalty)
		return ANVIL_AUTH_PENALTY;
	if (user == NULL)
		return ANVIL_OK;
	anvil_key_user(user, &key);
	if ((e = anvil_get(&key, now, 0)) != NULL && now < e->penalty)
		return ANVIL_USER_PENALTY;
	return ANVIL_OK;
}

/* Count one failure; at the limit the penalty begins. */
static int
anvil_fail(const struct anvil_key *k, uint64_t limit, uint64_t now)
{
	struct anvil_entry	*e;

	e = anvil_get(k, now, 1);
	e->cur[ANVIL_EV_AUTH_FAIL]++;
	if (limit == 0 || anvil_rate(e, ANVIL_EV_AUTH_FAIL, now) < limit)
		return 0;
	e->penalty = now + anvil.conf->auth_penalty;
	return 1;
}

/*
 * AUTH failed for an address and an account.  Returns the penalty this
 * failure began (the address's first), or ANVIL_OK.
 */
enum anvil_result
anvil_auth_failed(const struct sockaddr *sa, const char *user, uint64_t now)
{
	struct anvil_key	 key;
	enum anvil_result	 r = ANVIL_OK;

	if (anvil_is_exempt(sa))
		return ANVIL_EXEMPT;
	if (user != NULL && *user != '\0') {
		anvil_key_user(user, &key);
		if (anvil_fail(&key,
		    anvil.conf->max_auth_failure_rate_per_user, now))
			r = ANVIL_USER_PENALTY;
	}
	anvil_key_of(sa, &key);
	if (anvil_fail(&key, anvil.conf->max_auth_failure_rate, now))
		r = ANVIL_AUTH_PENALTY;
	return r;
}
