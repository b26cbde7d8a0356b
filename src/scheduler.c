/*
 * scheduler.c: when each queued message is attempted.  Messages wait in
 * a min-heap ordered by their next attempt, driven by one timer; an index
 * by queue id finds a message, and one by destination domain finds the
 * messages waiting for it (ETRN, "ternctl flush DOMAIN"), neither with a
 * walk over the heap.  An attempt is the queue manager's (qmgr.c): the
 * scheduler starts it and, when it ends, puts the message back in the
 * heap or forgets it.  The administrator's actions (hold, release,
 * delete, return, flush) arrive here and are passed to the attempt when
 * one is under way.
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "envelope.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"
#include "scheduler.h"
#include "util.h"

#define SCHED_ACTIVE_MIN	100	/* messages loaded at once, at least */
#define SCHED_BUCKETS_MIN	64	/* of each index, a power of two */

struct sched_dest;

/* A message waiting for a destination: one per message and domain. */
struct sched_link {
	struct sched_msg	*m;
	struct sched_dest	*d;
	LIST_ENTRY(sched_link)	 entry;
};

/*
 * A destination domain, lowercase, with the messages that have a pending
 * recipient there; freed when none has.
 */
struct sched_dest {
	char			*name;
	LIST_HEAD(, sched_link)	 msgs;
	LIST_ENTRY(sched_dest)	 entry;
};

/*
 * A queued message the scheduler knows: in the heap, or in an attempt
 * (never both); owned by the scheduler.
 */
struct sched_msg {
	char			 id[QUEUE_ID_SIZE];
	time_t			 next;		/* next attempt, epoch s */
	size_t			 slot;		/* in the heap */
	time_t			 arrival;
	struct qmgr_attempt	*attempt;	/* under way, or NULL */
	struct sched_link	*links;		/* per pending domain */
	size_t			 nlinks;
	int			 pending;	/* some recipient is */
	unsigned		 mark;		/* of the last flush found */
	char			*handover;	/* "host:port": next attempt
						   there */
	LIST_ENTRY(sched_msg)	 entry;		/* in the id index */
};

LIST_HEAD(sched_msgs, sched_msg);
LIST_HEAD(sched_dests, sched_dest);

static struct {
	struct event_base	*base;
	const struct config	*conf;
	struct event		*timer;
	struct sched_msg	**heap;
	size_t			 nheap;
	size_t			 heap_alloc;
	size_t			 nactive;
	struct sched_msgs	*ids;		/* the id index */
	size_t			 nids, ids_size;
	struct sched_dests	*dests;		/* the destination index */
	size_t			 ndests, dests_size;
	unsigned		 mark;
	struct scheduler_stats	 stats;
	time_t			 started;
} sched;

static void	sched_timer_cb(evutil_socket_t, short, void *);
static void	sched_done_cb(void *, const struct envelope *,
		    enum qmgr_action, int);
static void	sched_queued_cb(const struct envelope *);

static const struct qmgr_cb sched_qmgr_cb = {
	.done = sched_done_cb,
	.queued = sched_queued_cb,
};

/* FNV-1a, lowercase with fold. */
static size_t
sched_hash(const char *s, int fold)
{
	uint64_t	h = 14695981039346656037ULL;
	unsigned char	c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (fold && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		h = (h ^ c) * 1099511628211ULL;
	}
	return (size_t)h;
}

/*
 * The id index.  It doubles when it holds as many messages as buckets,
 * so a lookup reads one or two entries.
 */
static void
sched_ids_grow(void)
{
	struct sched_msgs	*old = sched.ids;
	struct sched_msg	*m;
	size_t			 i, oldsize = sched.ids_size;

	sched.ids_size = oldsize ? oldsize * 2 : SCHED_BUCKETS_MIN;
	sched.ids = xcalloc(sched.ids_size, sizeof *sched.ids);
	for (i = 0; i < sched.ids_size; i++)
		LIST_INIT(&sched.ids[i]);
	for (i = 0; i < oldsize; i++) {
		while ((m = LIST_FIRST(&old[i])) != NULL) {
			LIST_REMOVE(m, entry);
			LIST_INSERT_HEAD(&sched.ids[sched_hash(m->id, 0) &
			    (sched.ids_size - 1)], m, entry);
		}
	}
	free(old);
}

static struct sched_msg *
sched_find(const char *id)
{
	struct sched_msg	*m;

	if (sched.ids_size == 0)
		return NULL;
	LIST_FOREACH(m, &sched.ids[sched_hash(id, 0) & (sched.ids_size - 1)],
	    entry) {
		if (strcmp(m->id, id) == 0)
			return m;
	}
	return NULL;
}

static void
sched_ids_add(struct sched_msg *m)
{
	if (sched.nids >= sched.ids_size)
		sched_ids_grow();
	LIST_INSERT_HEAD(&sched.ids[sched_hash(m->id, 0) &
	    (sched.ids_size - 1)], m, entry);
	sched.nids++;
}

/* The destination index, grown as the id index is. */
static void
sched_dests_grow(void)
{
	struct sched_dests	*old = sched.dests;
	struct sched_dest	*d;
	size_t			 i, oldsize = sched.dests_size;

	sched.dests_size = oldsize ? oldsize * 2 : SCHED_BUCKETS_MIN;
	sched.dests = xcalloc(sched.dests_size, sizeof *sched.dests);
	for (i = 0; i < sched.dests_size; i++)
		LIST_INIT(&sched.dests[i]);
	for (i = 0; i < oldsize; i++) {
		while ((d = LIST_FIRST(&old[i])) != NULL) {
			LIST_REMOVE(d, entry);
			LIST_INSERT_HEAD(&sched.dests[sched_hash(d->name, 1) &
			    (sched.dests_size - 1)], d, entry);
		}
	}
	free(old);
}

/* The destination of name (any case); made when create. */
static struct sched_dest *
sched_dest_get(const char *name, int create)
{
	struct sched_dest	*d;

	if (sched.dests_size > 0) {
		LIST_FOREACH(d, &sched.dests[sched_hash(name, 1) &
		    (sched.dests_size - 1)], entry) {
			if (strcasecmp(d->name, name) == 0)
				return d;
		}
	}
	if (!create)
		return NULL;
	if (sched.ndests >= sched.dests_size)
		sched_dests_grow();
	d = xcalloc(1, sizeof *d);
	d->name = xstrdup(name);
	util_lowercase(d->name);
	LIST_INIT(&d->msgs);
	LIST_INSERT_HEAD(&sched.dests[sched_hash(name, 1) &
	    (sched.dests_size - 1)], d, entry);
	sched.ndests++;
	return d;
}

static void
sched_msg_unlink(struct sched_msg *m)
{
	struct sched_dest	*d;
	size_t			 i;

	for (i = 0; i < m->nlinks; i++) {
		d = m->links[i].d;
		LIST_REMOVE(&m->links[i], entry);
		if (LIST_EMPTY(&d->msgs)) {
			LIST_REMOVE(d, entry);
			sched.ndests--;
			free(d->name);
			free(d);
		}
	}
	free(m->links);
	m->links = NULL;
	m->nlinks = 0;
}

static const char *
sched_domain(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/*
 * File the message under the domains of its pending recipients, each
 * once, so a flush by domain needs no envelope read.
 */
static void
sched_msg_domains(struct sched_msg *m, const struct envelope *env)
{
	struct sched_dest	*d;
	const char		*dom;
	size_t			 i, j;

	sched_msg_unlink(m);
	m->pending = 0;
	m->links = xcalloc(env->nrcpts > 0 ? env->nrcpts : 1,
	    sizeof *m->links);
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != ENVELOPE_RCPT_PENDING)
			continue;
		m->pending = 1;
		if (*(dom = sched_domain(env->rcpts[i].addr)) == '\0')
			continue;
		d = sched_dest_get(dom, 1);
		for (j = 0; j < m->nlinks; j++) {
			if (m->links[j].d == d)
				break;
		}
		if (j < m->nlinks)
			continue;
		m->links[m->nlinks].m = m;
		m->links[m->nlinks].d = d;
		LIST_INSERT_HEAD(&d->msgs, &m->links[m->nlinks], entry);
		m->nlinks++;
	}
}

/* What the scheduler keeps of a message: id, times, pending domains. */
static struct sched_msg *
sched_msg_new(const struct envelope *env, time_t next)
{
	struct sched_msg	*m;

	m = xcalloc(1, sizeof *m);
	util_strlcpy(m->id, env->id, sizeof m->id);
	m->next = next;
	m->arrival = env->arrival;
	sched_msg_domains(m, env);
	sched_ids_add(m);
	return m;
}

static void
sched_msg_free(struct sched_msg *m)
{
	if (m == NULL)
		return;
	sched_msg_unlink(m);
	LIST_REMOVE(m, entry);
	sched.nids--;
	free(m->handover);
	free(m);
}

/* Min-heap on next attempt time. */
static int
sched_before(size_t i, size_t j)
{
	return sched.heap[i]->next < sched.heap[j]->next;
}

static void
sched_swap(size_t i, size_t j)
{
	struct sched_msg	*t = sched.heap[i];

	sched.heap[i] = sched.heap[j];
	sched.heap[j] = t;
	sched.heap[i]->slot = i;
	sched.heap[j]->slot = j;
}

static void
sched_heap_up(size_t i)
{
	while (i > 0 && sched_before(i, (i - 1) / 2)) {
		sched_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
sched_heap_push(struct sched_msg *m)
{
	size_t	i;

	if (sched.nheap == sched.heap_alloc) {
		sched.heap_alloc = sched.heap_alloc ? sched.heap_alloc * 2 : 64;
		sched.heap = xreallocarray(sched.heap, sched.heap_alloc,
		    sizeof *sched.heap);
	}
	i = sched.nheap++;
	sched.heap[i] = m;
	m->slot = i;
	sched_heap_up(i);
}

/* Move the entry at i down to where it belongs. */
static void
sched_heap_down(size_t i)
{
	size_t	l, small;

	for (;;) {
		l = 2 * i + 1;
		small = i;
		if (l < sched.nheap && sched_before(l, small))
			small = l;
		if (l + 1 < sched.nheap && sched_before(l + 1, small))
			small = l + 1;
		if (small == i)
			break;
		sched_swap(i, small);
		i = small;
	}
}

static struct sched_msg *
sched_heap_pop(void)
{
	struct sched_msg	*top;

	if (sched.nheap == 0)
		return NULL;
	top = sched.heap[0];
	sched.heap[0] = sched.heap[--sched.nheap];
	sched.heap[0]->slot = 0;
	sched_heap_down(0);
	return top;
}

/* Take a message out of the heap, wherever it is. */
static void
sched_heap_remove(struct sched_msg *m)
{
	size_t	i = m->slot;

	if (i != --sched.nheap) {
		sched.heap[i] = sched.heap[sched.nheap];
		sched.heap[i]->slot = i;
		sched_heap_up(i);
		sched_heap_down(sched.heap[i]->slot);
	}
}

/* Due now; it keeps its place among those already due. */
static void
sched_make_due(struct sched_msg *m, time_t now)
{
	if (m->next > now) {
		m->next = now;
		sched_heap_up(m->slot);
	}
}

static size_t
sched_max_active(void)
{
	uint64_t	n = sched.conf->max_deliveries * 4;

	return n < SCHED_ACTIVE_MIN ? SCHED_ACTIVE_MIN : (size_t)n;
}

/* Set the one timer for the earliest message, if one may start. */
static void
sched_rearm(void)
{
	struct timeval	tv = { 0, 0 };
	time_t		now = time(NULL);

	event_del(sched.timer);
	if (sched.nheap == 0 || sched.nactive >= sched_max_active())
		return;
	if (sched.heap[0]->next > now)
		tv.tv_sec = sched.heap[0]->next - now;
	event_add(sched.timer, &tv);
}

void
scheduler_init(struct event_base *base, const struct config *conf)
{
	sched.base = base;
	sched.conf = conf;
	sched.started = time(NULL);
	if ((sched.timer = evtimer_new(base, sched_timer_cb, NULL)) == NULL)
		fatalx("scheduler: evtimer_new");
	qmgr_init(base, conf, &sched_qmgr_cb);
}

void
scheduler_set_config(const struct config *conf)
{
	sched.conf = conf;
	qmgr_set_config(conf);
	sched_rearm();
}

/* The users in force, for the mailboxes of local recipients. */
void
scheduler_set_users(const struct users *users)
{
	qmgr_set_users(users);
}

size_t
scheduler_active(void)
{
	return sched.nactive;
}

static int
sched_has_pending(const struct envelope *env)
{
	size_t	i;

	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state == ENVELOPE_RCPT_PENDING)
			return 1;
	}
	return 0;
}

/* A message now in the queue: at start-up, or just committed. */
void
scheduler_add(const struct envelope *env, int held)
{
	struct sched_msg	*m;

	/* Found at start-up, the spool's: arrived before we started. */
	if (env->arrival >= sched.started)
		sched.stats.accepted++;
	if (held || !sched_has_pending(env))
		return;
	m = sched_msg_new(env, env->next_attempt);
	sched_heap_push(m);
	sched_rearm();
}

/* A report an attempt owed is queued: it is a message like any other. */
static void
sched_queued_cb(const struct envelope *env)
{
	scheduler_add(env, 0);
}

/* The queue manager takes the message. */
static void
sched_start(struct sched_msg *m)
{
	char	*handover = m->handover;

	m->handover = NULL;
	sched.nactive++;
	m->attempt = qmgr_attempt(m->id, handover, m);
	free(handover);
}

/*
 * Return the message to its sender now; held when it came off hold for
 * this (it goes back should the report fail).
 */
static void
sched_start_bounce(struct sched_msg *m, int held)
{
	sched.nactive++;
	m->attempt = qmgr_return(m->id, held, m);
}

/* The attempt is over: back into the heap, or gone. */
static void
sched_done_cb(void *arg, const struct envelope *env, enum qmgr_action action,
    int flush)
{
	struct sched_msg	*m = arg;
	int			 keep = env != NULL;

	sched.nactive--;
	m->attempt = NULL;
	if (action == QMGR_ACTION_DELETE)
		keep = 0;		/* its files are gone already */
	if (keep && action == QMGR_ACTION_HOLD) {
		if (queue_hold(m->id) == 0) {
			log_info("%s: held", m->id);
			keep = 0;
		} else
			log_warn("%s: cannot hold", m->id);
	}
	if (!keep) {
		sched_msg_free(m);
		sched_rearm();
		return;
	}
	m->next = env->next_attempt;
	if (flush && m->next > time(NULL))
		m->next = time(NULL);
	sched_msg_domains(m, env);
	if (action == QMGR_ACTION_BOUNCE)
		sched_start_bounce(m, 0);
	else
		sched_heap_push(m);
	sched_rearm();
}

static void
sched_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	time_t			 now = time(NULL);
	struct sched_msg	*m;

	(void)fd;
	(void)events;
	(void)arg;
	while (sched.nheap > 0 && sched.heap[0]->next <= now &&
	    sched.nactive < sched_max_active()) {
		m = sched_heap_pop();
		sched_start(m);
	}
	sched_rearm();
}

/* A message the heap does not hold, for a release or a bounce. */
static struct sched_msg *
sched_msg_load(const char *id)
{
	struct sched_msg	*m;
	struct envelope		 env;
	char			*cause;

	envelope_init(&env);
	if (queue_env_load(id, &env, &cause) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warnx("%s: %s", id, cause);
		free(cause);
		return NULL;
	}
	m = sched_msg_new(&env, time(NULL));
	envelope_clear(&env);
	return m;
}

/* A waiting message leaves the scheduler. */
static void
sched_forget(struct sched_msg *m)
{
	sched_heap_remove(m);
	sched_msg_free(m);
	sched_rearm();
}

/*
 * While the spool is read at start-up, a message the scheduler has not
 * met may still be in a directory being read: moving or removing it
 * then could race the reading.  The verbs that do refuse for now.
 */
static int
sched_refuse_loading(void)
{
	if (!queue_scan_running())
		return 0;
	errno = EAGAIN;
	return 1;
}

int
scheduler_hold(const char *id)
{
	struct sched_msg	*m = sched_find(id);

	if (sched_refuse_loading())
		return -1;

	if (m != NULL && m->attempt != NULL) {
		qmgr_set_action(m->attempt, QMGR_ACTION_HOLD);
		return 0;
	}
	if (queue_hold(id) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warn("%s: cannot hold", id);
		return -1;
	}
	if (m != NULL)
		sched_forget(m);
	log_info("%s: held", id);
	return 0;
}

/* A held message is attempted at once; a waiting one is left alone. */
int
scheduler_release(const char *id)
{
	struct sched_msg	*m = sched_find(id);

	if (sched_refuse_loading())
		return -1;

	if (m != NULL) {
		if (m->attempt != NULL)
			qmgr_set_action(m->attempt, QMGR_ACTION_NONE);
		return 0;
	}
	if ((m = sched_msg_load(id)) == NULL)
		return -1;
	if (queue_release(id) == -1) {
		log_warn("%s: cannot release", id);
		sched_msg_free(m);
		return -1;
	}
	log_info("%s: released", id);
	if (!m->pending) {
		sched_msg_free(m);	/* nothing left to deliver */
		return 0;
	}
	sched_heap_push(m);
	sched_rearm();
	return 0;
}

/* Gone at once, queued or held; an attempt under way is forgotten. */
int
scheduler_delete(const char *id)
{
	struct sched_msg	*m = sched_find(id);

	if (sched_refuse_loading())
		return -1;

	if (m != NULL && m->attempt != NULL &&
	    qmgr_action(m->attempt) == QMGR_ACTION_DELETE)
		return -1;
	if (queue_remove(id) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warn("%s: cannot delete", id);
		return -1;
	}
	log_info("%s: deleted by the administrator", id);
	log_mail("qmgr", "%s: removed", id);
	if (m != NULL && m->attempt != NULL)
		qmgr_set_action(m->attempt, QMGR_ACTION_DELETE);
	else if (m != NULL)
		sched_forget(m);
	return 0;
}

/* Return to the sender now, queued or held. */
int
scheduler_bounce(const char *id)
{
	struct sched_msg	*m = sched_find(id);
	int			 held = 0;

	if (sched_refuse_loading())
		return -1;

	if (m != NULL && m->attempt != NULL) {
		if (qmgr_action(m->attempt) == QMGR_ACTION_DELETE)
			return -1;
		qmgr_set_action(m->attempt, QMGR_ACTION_BOUNCE);
		return 0;
	}
	if (m != NULL)
		sched_heap_remove(m);
	else if ((m = sched_msg_load(id)) == NULL)
		return -1;
	else if (queue_release(id) == -1) {
		log_warn("%s: cannot release to return it", id);
		sched_msg_free(m);
		return -1;
	} else
		held = 1;
	log_info("%s: returned to the sender by the administrator", id);
	sched_start_bounce(m, held);
	sched_rearm();
	return 0;
}

/*
 * One message a flush found, once however many of its domains match:
 * due now when waiting, or as soon as its attempt ends.  Returns 1 when
 * it counts.
 */
static int
sched_flush_msg(struct sched_msg *m, time_t now)
{
	if (m->mark == sched.mark)
		return 0;
	m->mark = sched.mark;
	if (m->attempt != NULL)
		return qmgr_flush(m->attempt);
	sched_make_due(m, now);
	return 1;
}

static size_t
sched_flush_dest(struct sched_dest *d, time_t now)
{
	struct sched_link	*l;
	size_t			 n = 0;

	LIST_FOREACH(l, &d->msgs, entry)
		n += sched_flush_msg(l->m, now);
	return n;
}

/*
 * Make every message with a pending recipient at domain (and its
 * subdomains with sub; every message when domain is NULL) due now: one
 * in an attempt, or still recording its outcome, as soon as that ends.
 * The domain is looked up in the destination index; subdomains are
 * found among the destinations, never among the messages.  Returns how
 * many.
 */
size_t
scheduler_flush(const char *domain, int sub)
{
	struct sched_dest	*d;
	struct sched_msg	*m;
	time_t			 now = time(NULL);
	size_t			 i, n = 0, len, dlen;

	sched.mark++;
	if (domain == NULL) {
		for (i = 0; i < sched.ids_size; i++) {
			LIST_FOREACH(m, &sched.ids[i], entry)
				n += sched_flush_msg(m, now);
		}
	} else if ((d = sched_dest_get(domain, 0)) != NULL)
		n += sched_flush_dest(d, now);
	if (domain != NULL && sub) {
		dlen = strlen(domain);
		for (i = 0; i < sched.dests_size; i++) {
			LIST_FOREACH(d, &sched.dests[i], entry) {
				len = strlen(d->name);
				if (len > dlen && d->name[len - dlen - 1] ==
				    '.' && strcasecmp(d->name + len - dlen,
				    domain) == 0)
					n += sched_flush_dest(d, now);
			}
		}
	}
	sched_rearm();
	return n;
}

size_t
scheduler_flush_id(const char *id)
{
	struct sched_msg	*m = sched_find(id);

	if (m == NULL)
		return 0;
	if (m->attempt != NULL)
		return qmgr_flush(m->attempt);
	sched_make_due(m, time(NULL));
	sched_rearm();
	return 1;
}

/*
 * Hand a message over to another MTA ("host:port"): its next attempt,
 * made now, sends every pending recipient there, the local ones too;
 * what the peer does not take with 250 stays, and is neither bounced
 * nor failed for it.  One attempt: the message then follows its route
 * again.  -1 for a message not waiting (unknown, or held).
 */
int
scheduler_handover(const char *id, const char *target)
{
	struct sched_msg	*m = sched_find(id);

	if (sched_refuse_loading())
		return -1;

	if (m == NULL)
		return -1;
	if (m->attempt != NULL) {
		if (qmgr_action(m->attempt) != QMGR_ACTION_NONE)
			return -1;
		qmgr_flush(m->attempt);
	}
	free(m->handover);
	m->handover = xstrdup(target);
	if (m->attempt == NULL) {
		sched_make_due(m, time(NULL));
		sched_rearm();
	}
	log_info("%s: to be handed over to %s", id, target);
	return 0;
}

void
scheduler_stats(struct scheduler_stats *st)
{
	struct qmgr_stats	 qs;
	struct sched_msg	*m;
	time_t			 now = time(NULL);
	size_t			 i;

	*st = sched.stats;
	qmgr_stats(&qs);
	st->delivered = qs.delivered;
	st->deferred = qs.deferred;
	st->bounced = qs.bounced;
	st->queue_size = queue_count();
	st->uptime = now - sched.started;
	st->oldest = 0;
	st->active = sched.nactive;
	st->waiting = 0;
	for (i = 0; i < sched.nheap; i++) {
		if (sched.heap[i]->next <= now)
			st->active++;
		else
			st->waiting++;
	}
	for (i = 0; i < sched.ids_size; i++) {
		LIST_FOREACH(m, &sched.ids[i], entry) {
			if (st->oldest == 0 || m->arrival < st->oldest)
				st->oldest = m->arrival;
		}
	}
}

/* Stop: nothing more is attempted; attempts in flight are dropped. */
void
scheduler_shutdown(void)
{
	struct sched_msg	*m;
	size_t			 i;

	qmgr_shutdown();
	for (i = 0; i < sched.ids_size; i++) {
		while ((m = LIST_FIRST(&sched.ids[i])) != NULL)
			sched_msg_free(m);
	}
	free(sched.ids);
	sched.ids = NULL;
	sched.ids_size = sched.nids = 0;
	free(sched.dests);
	sched.dests = NULL;
	sched.dests_size = sched.ndests = 0;
	sched.nactive = 0;
	free(sched.heap);
	sched.heap = NULL;
	sched.nheap = sched.heap_alloc = 0;
	if (sched.timer != NULL)
		event_free(sched.timer);
	sched.timer = NULL;
}
