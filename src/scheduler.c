/*
 * scheduler.c: when each queued message is attempted, and what becomes of
 * it after.  Messages wait in a min-heap ordered by their next attempt,
 * driven by one timer.  An attempt loads the envelope, hands the remote
 * recipients to the mta as one job per domain, writes every outcome into
 * the envelope as jobs finish, and at the end removes the message, bounces
 * what failed (once, from the null sender, never for a bounce) or sets
 * the next attempt.  Local recipients wait for local delivery.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/time.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dsn.h"
#include "envelope.h"
#include "log.h"
#include "mta.h"
#include "queue.h"
#include "scheduler.h"
#include "util.h"

#define SCHED_ACTIVE_MIN	100	/* messages loaded at once, at least */
#define SCHED_RETURN_MAX	(1024 * 1024)	/* octets of a returned body */

/* A queued message the scheduler knows; owned by the scheduler. */
struct sched_msg {
	char		id[QUEUE_ID_LEN + 1];
	time_t		next;		/* next attempt, epoch seconds */
	size_t		slot;		/* in the heap */
};

struct sched_attempt;

/* The recipients of one attempt at one domain. */
struct sched_job {
	struct mta_job		 job;
	struct sched_attempt	*a;
	size_t			*idx;		/* into a->env.rcpts */
};

/* One attempt at one message; owned by the scheduler until it ends. */
struct sched_attempt {
	TAILQ_ENTRY(sched_attempt) entry;
	struct sched_msg	*m;
	struct envelope		 env;
	int			 fd;		/* the content */
	struct sched_job	*jobs;
	size_t			 njobs;
	size_t			 running;
	unsigned char		*failed;	/* per rcpt: failed for good */
	int			 changed;	/* env differs from disk */
	struct queue_commit	*bounce;
	struct envelope		 benv;
};
TAILQ_HEAD(sched_attempts, sched_attempt);

static struct {
	struct event_base	*base;
	const struct config	*conf;
	struct event		*timer;
	struct sched_msg	**heap;
	size_t			 nheap;
	size_t			 heap_alloc;
	struct sched_attempts	 active;
	size_t			 nactive;
} sched;

static void	sched_timer_cb(evutil_socket_t, short, void *);
static void	sched_record(struct sched_attempt *);

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
	while (i > 0 && sched_before(i, (i - 1) / 2)) {
		sched_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct sched_msg *
sched_heap_pop(void)
{
	struct sched_msg	*top;
	size_t			 i = 0, l, small;

	if (sched.nheap == 0)
		return NULL;
	top = sched.heap[0];
	sched.heap[0] = sched.heap[--sched.nheap];
	sched.heap[0]->slot = 0;
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
	return top;
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
	TAILQ_INIT(&sched.active);
	if ((sched.timer = evtimer_new(base, sched_timer_cb, NULL)) == NULL)
		fatalx("scheduler: evtimer_new");
}

void
scheduler_set_config(const struct config *conf)
{
	sched.conf = conf;
	sched_rearm();
}

size_t
scheduler_active(void)
{
	return sched.nactive;
}

static const char *
sched_domain(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* Whether a recipient is still to be sent to another host. */
static int
sched_is_remote(const struct envelope_rcpt *r)
{
	return r->state == ENVELOPE_RCPT_PENDING &&
	    !config_is_local_domain(sched.conf, sched_domain(r->addr));
}

/* Local recipients wait for local delivery, not for the scheduler. */
static int
sched_has_remote(const struct envelope *env)
{
	size_t	i;

	for (i = 0; i < env->nrcpts; i++) {
		if (sched_is_remote(&env->rcpts[i]))
			return 1;
	}
	return 0;
}

/* A message now in the queue: at start-up, or just committed. */
void
scheduler_add(const struct envelope *env, int held)
{
	struct sched_msg	*m;

	if (held || !sched_has_remote(env))
		return;
	m = xcalloc(1, sizeof *m);
	util_strlcpy(m->id, env->id, sizeof m->id);
	m->next = env->next_attempt;
	sched_heap_push(m);
	sched_rearm();
}

static double
sched_delay(const struct envelope *env)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	return (double)(tv.tv_sec - env->arrival) + tv.tv_usec / 1e6;
}

/* The log line of one recipient and attempt, in Postfix's layout. */
static void
sched_log_rcpt(const struct sched_attempt *a, const struct envelope_rcpt *r,
    const char *relay, const char *status, const char *text)
{
	char	eaddr[LOG_ESCAPE_SIZE], etext[LOG_ESCAPE_SIZE];
	double	delay = sched_delay(&a->env);

	log_mail("smtp", "%s: to=<%s>, relay=%s, delay=%.1f, dsn=%s, "
	    "status=%s (%s)", a->env.id, log_escape(eaddr, sizeof eaddr,
	    r->addr, strlen(r->addr)), relay, delay < 0 ? 0.0 : delay,
	    r->status[0] != '\0' ? r->status : "4.0.0", status,
	    log_escape(etext, sizeof etext, text, strlen(text)));
}

static void
sched_attempt_free(struct sched_attempt *a)
{
	size_t	i;

	for (i = 0; i < a->njobs; i++) {
		free(a->jobs[i].idx);
		free(a->jobs[i].job.tx.rcpts);
	}
	free(a->jobs);
	free(a->failed);
	if (a->fd != -1)
		close(a->fd);
	envelope_clear(&a->env);
	envelope_clear(&a->benv);
	free(a);
}

/* The attempt is over: back into the heap, or gone. */
static void
sched_attempt_end(struct sched_attempt *a, int keep)
{
	struct sched_msg	*m = a->m;

	TAILQ_REMOVE(&sched.active, a, entry);
	sched.nactive--;
	if (keep) {
		m->next = a->env.next_attempt;
		sched_heap_push(m);
	} else
		free(m);
	sched_attempt_free(a);
	sched_rearm();
}

/* Record an outcome of one recipient in the envelope, and log it. */
static void
sched_outcome(struct sched_attempt *a, size_t i, const struct mta_rcpt *mr)
{
	struct envelope_rcpt	*r = &a->env.rcpts[i];
	const struct mta_status	*st = &mr->st;
	const char		*what;

	util_strlcpy(r->status, st->status[0] != '\0' ? st->status :
	    (st->result == MTA_OK ? "2.0.0" : st->result == MTA_PERM ?
	    "5.0.0" : "4.0.0"), sizeof r->status);
	envelope_set_str(&r->error, st->reply[0] != '\0' ? st->reply :
	    st->text);
	envelope_set_str(&r->relay, mr->relay);
	a->changed = 1;
	switch (st->result) {
	case MTA_OK:
		r->state = ENVELOPE_RCPT_SENT;
		what = "sent";
		break;
	case MTA_PERM:
		a->failed[i] = 1;
		what = "bounced";
		break;
	default:
		envelope_set_str(&a->env.last_error, st->text);
		if (a->env.tries + 1 >= sched.conf->max_tries) {
			/* The last try: returned to the sender now. */
			a->failed[i] = 1;
			if (r->status[0] != '4')
				util_strlcpy(r->status, "4.4.7",
				    sizeof r->status);
			what = "bounced";
		} else
			what = "deferred";
		break;
	}
	sched_log_rcpt(a, r, mr->relay, what, st->text);
}

static void
sched_job_cb(struct mta_job *job, void *arg)
{
	struct sched_job	*sj = arg;
	struct sched_attempt	*a = sj->a;
	size_t			 k;
	int			 sent = 0;

	for (k = 0; k < job->tx.nrcpts; k++) {
		sched_outcome(a, sj->idx[k], &job->tx.rcpts[k]);
		if (job->tx.rcpts[k].st.result == MTA_OK)
			sent = 1;
	}
	if (--a->running > 0) {
		/* Other domains still going: make the deliveries stick. */
		if (sent && queue_env_update(&a->env) == -1)
			log_warn("%s: cannot update envelope", a->env.id);
		else if (sent)
			a->changed = 0;
		return;
	}
	sched_record(a);
}

/* One job per remote domain among the pending recipients. */
static void
sched_make_jobs(struct sched_attempt *a)
{
	struct envelope		*env = &a->env;
	struct sched_job	*sj;
	const char		*domain;
	size_t			 i, j;

	a->jobs = xcalloc(env->nrcpts, sizeof *a->jobs);
	for (i = 0; i < env->nrcpts; i++) {
		if (!sched_is_remote(&env->rcpts[i]) || a->failed[i])
			continue;
		domain = sched_domain(env->rcpts[i].addr);
		for (j = 0; j < a->njobs; j++) {
			if (strcasecmp(a->jobs[j].job.domain, domain) == 0)
				break;
		}
		sj = &a->jobs[j];
		if (j == a->njobs) {
			a->njobs++;
			sj->a = a;
			sj->idx = xcalloc(env->nrcpts, sizeof *sj->idx);
			sj->job.tx.rcpts = xcalloc(env->nrcpts,
			    sizeof *sj->job.tx.rcpts);
			util_strlcpy(sj->job.id, env->id, sizeof sj->job.id);
			util_strlcpy(sj->job.domain, domain,
			    sizeof sj->job.domain);
			util_lowercase(sj->job.domain);
			sj->job.tries = env->tries;
			sj->job.tx.sender = env->sender;
			sj->job.tx.msgfd = a->fd;
			sj->job.tx.size = env->size;
			sj->job.tx.body_8bit = env->body ==
			    ENVELOPE_BODY_8BITMIME;
			sj->job.tx.smtputf8 = env->smtputf8;
			sj->job.cb = sched_job_cb;
			sj->job.arg = sj;
		}
		sj->idx[sj->job.tx.nrcpts] = i;
		sj->job.tx.rcpts[sj->job.tx.nrcpts++].addr = env->rcpts[i].addr;
	}
}

/* Count "Received:" header fields: too many is a mail loop. */
static size_t
sched_received(const char *id)
{
	char	*buf, *p;
	size_t	 len, n = 0;

	if (queue_msg_headers(id, &buf, &len) == -1)
		return 0;
	for (p = buf; p != NULL && p < buf + len; ) {
		if (strncasecmp(p, "Received:", 9) == 0)
			n++;
		if ((p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL)
			p++;
	}
	free(buf);
	return n;
}

static void
sched_fail_loop(struct sched_attempt *a, size_t received)
{
	struct mta_rcpt	mr;
	size_t		i;

	memset(&mr, 0, sizeof mr);
	mr.st.result = MTA_PERM;
	util_strlcpy(mr.st.status, "5.4.6", sizeof mr.st.status);
	snprintf(mr.st.text, sizeof mr.st.text, "mail forwarding loop: "
	    "%zu Received: header fields, more than %llu", received,
	    (unsigned long long)sched.conf->max_received_headers);
	util_strlcpy(mr.relay, "none", sizeof mr.relay);
	for (i = 0; i < a->env.nrcpts; i++) {
		if (a->env.rcpts[i].state == ENVELOPE_RCPT_PENDING)
			sched_outcome(a, i, &mr);
	}
}

static void
sched_start(struct sched_msg *m)
{
	struct sched_attempt	*a;
	char			*cause = NULL;
	size_t			 i, received;

	a = xcalloc(1, sizeof *a);
	a->m = m;
	a->fd = -1;
	envelope_init(&a->env);
	envelope_init(&a->benv);
	TAILQ_INSERT_TAIL(&sched.active, a, entry);
	sched.nactive++;
	if (queue_env_load(m->id, &a->env, &cause) == -1) {
		log_warnx("%s: not attempted: %s", m->id, cause);
		free(cause);
		sched_attempt_end(a, 0);
		return;
	}
	a->failed = xcalloc(a->env.nrcpts, 1);
	if ((a->fd = queue_msg_open(m->id)) == -1) {
		log_warn("%s: cannot open the content", m->id);
		a->env.next_attempt = time(NULL) +
		    (time_t)(sched.conf->queue_interval / 1000);
		sched_attempt_end(a, 1);
		return;
	}
	received = sched_received(m->id);
	if (received > sched.conf->max_received_headers)
		sched_fail_loop(a, received);
	else
		sched_make_jobs(a);
	a->running = a->njobs;
	if (a->njobs == 0) {
		sched_record(a);
		return;
	}
	for (i = 0; i < a->njobs; i++)
		mta_submit(&a->jobs[i].job);
}

static void
sched_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	time_t			 now = time(NULL);
	struct sched_msg	*m;

	while (sched.nheap > 0 && sched.heap[0]->next <= now &&
	    sched.nactive < sched_max_active()) {
		m = sched_heap_pop();
		sched_start(m);
	}
	sched_rearm();
}

/* Which recipients the sender hears about (RFC 3461 NOTIFY). */
static size_t
sched_bounce_rcpts(const struct sched_attempt *a, size_t *idx)
{
	const struct envelope_rcpt	*r;
	size_t				 i, n = 0;

	for (i = 0; i < a->env.nrcpts; i++) {
		r = &a->env.rcpts[i];
		if (!a->failed[i])
			continue;
		if (r->notify != 0 && (r->notify & ENVELOPE_NOTIFY_FAILURE) == 0)
			continue;
		idx[n++] = i;
	}
	return n;
}

static void
sched_bounce_cb(void *arg, int error)
{
	struct sched_attempt	*a = arg;
	size_t			 i;

	a->bounce = NULL;
	if (error != 0) {
		/* Nothing is failed until its sender can be told. */
		errno = error;
		log_warn("%s: cannot queue the non-delivery notification",
		    a->env.id);
		for (i = 0; i < a->env.nrcpts; i++)
			a->failed[i] = 0;
	} else {
		log_mail("bounce", "%s: sender non-delivery notification: "
		    "%s", a->env.id, a->benv.id);
		scheduler_add(&a->benv, 0);
	}
	sched_record(a);
}

/*
 * Queue the report for the sender: the failed recipients, the original
 * headers (or all of it with RET=FULL).  The failures are recorded only
 * once the report is committed, so a crash can repeat a bounce but never
 * lose one.
 */
static int
sched_bounce(struct sched_attempt *a)
{
	struct dsn_params	 p;
	struct queue_msg	*qm;
	size_t			*idx, n;
	char			*orig = NULL, *text = NULL;
	size_t			 olen = 0, tlen;
	int			 full = a->env.ret == ENVELOPE_RET_FULL;

	idx = xcalloc(a->env.nrcpts, sizeof *idx);
	if ((n = sched_bounce_rcpts(a, idx)) == 0) {
		free(idx);
		return 0;
	}
	if ((full ? queue_msg_read(a->env.id, SCHED_RETURN_MAX, &orig,
	    &olen) : queue_msg_headers(a->env.id, &orig, &olen)) == -1)
		log_warn("%s: cannot read the message to return", a->env.id);
	if ((qm = queue_msg_new(a->benv.id, sizeof a->benv.id)) == NULL)
		goto fail;
	memset(&p, 0, sizeof p);
	p.reporting_mta = sched.conf->hostname;
	p.id = a->benv.id;
	p.now = time(NULL);
	p.action = DSN_ACTION_FAILED;
	p.original = orig != NULL ? orig : "";
	p.original_len = olen;
	p.full = full && olen < SCHED_RETURN_MAX;
	if (dsn_build(&a->env, idx, n, &p, &text, &tlen) == -1 ||
	    queue_msg_write(qm, text, tlen) == -1) {
		queue_msg_abort(qm);
		goto fail;
	}
	a->benv.arrival = p.now;
	envelope_set_str(&a->benv.sender, "");
	envelope_add_rcpt(&a->benv, a->env.sender);
	a->benv.size = tlen;
	a->benv.body = a->env.body;
	a->benv.smtputf8 = a->env.smtputf8;
	util_strlcpy(a->benv.helo, sched.conf->hostname, sizeof a->benv.helo);
	util_strlcpy(a->benv.protocol, "local", sizeof a->benv.protocol);
	a->bounce = queue_msg_commit(qm, &a->benv, sched_bounce_cb, a);
	free(idx);
	free(orig);
	free(text);
	return 1;

fail:
	log_warnx("%s: cannot build the non-delivery notification",
	    a->env.id);
	memset(a->failed, 0, a->env.nrcpts);
	free(idx);
	free(orig);
	free(text);
	return 0;
}

/*
 * Every job is done: bounce the failures (unless the message is itself a
 * bounce), then write the outcome down and remove or reschedule.
 */
static void
sched_record(struct sched_attempt *a)
{
	struct envelope	*env = &a->env;
	size_t		 i, pending = 0, failed = 0;

	for (i = 0; i < env->nrcpts; i++)
		failed += a->failed[i];
	if (failed > 0 && a->bounce == NULL && a->benv.id[0] == '\0') {
		if (env->sender[0] == '\0')
			log_info("%s: from=<>, bounce not returned: a "
			    "non-delivery notification is never bounced",
			    env->id);
		else if (sched_bounce(a))
			return;		/* sched_bounce_cb() comes back here */
	}
	for (i = 0; i < env->nrcpts; i++) {
		if (a->failed[i]) {
			env->rcpts[i].state = ENVELOPE_RCPT_FAILED;
			a->changed = 1;
		}
		if (env->rcpts[i].state == ENVELOPE_RCPT_PENDING)
			pending++;
	}
	if (pending == 0) {
		if (queue_remove(env->id) == -1)
			log_warn("%s: cannot remove from the queue", env->id);
		else
			log_mail("qmgr", "%s: removed", env->id);
		sched_attempt_end(a, 0);
		return;
	}
	if (a->njobs > 0) {
		env->tries++;
		a->changed = 1;
	}
	env->next_attempt = time(NULL) +
	    (time_t)(sched.conf->queue_interval / 1000);
	if (a->changed && queue_env_update(env) == -1)
		log_warn("%s: cannot update envelope", env->id);
	sched_attempt_end(a, sched_has_remote(env));
}

/* Stop: nothing more is attempted; attempts in flight are dropped. */
void
scheduler_shutdown(void)
{
	struct sched_attempt	*a;
	size_t			 i;

	while ((a = TAILQ_FIRST(&sched.active)) != NULL) {
		TAILQ_REMOVE(&sched.active, a, entry);
		if (a->bounce != NULL)
			queue_commit_cancel(a->bounce);
		free(a->m);
		sched_attempt_free(a);
	}
	sched.nactive = 0;
	for (i = 0; i < sched.nheap; i++)
		free(sched.heap[i]);
	free(sched.heap);
	sched.heap = NULL;
	sched.nheap = sched.heap_alloc = 0;
	if (sched.timer != NULL)
		event_free(sched.timer);
	sched.timer = NULL;
}
