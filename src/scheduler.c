/*
 * scheduler.c: when each queued message is attempted, and what becomes of
 * it after.  Messages wait in a min-heap ordered by their next attempt,
 * driven by one timer.  An attempt loads the envelope, hands the remote
 * recipients to the mta as one job per domain, writes every outcome into
 * the envelope as jobs finish, and at the end removes the message, bounces
 * what failed (once, from the null sender, never for a bounce) or sets
 * the next attempt.  Local recipients are delivered to their Maildirs
 * first, on a worker (local_job); every envelope rewrite runs on a worker
 * too (queue_env_rewrite), one at a time per message, and an attempt
 * ends only once its last rewrite is on disk.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/time.h>

#include <errno.h>
#include <inttypes.h>
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
#include "local.h"
#include "log.h"
#include "metrics.h"
#include "mta.h"
#include "queue.h"
#include "scheduler.h"
#include "users.h"
#include "util.h"

#define SCHED_ACTIVE_MIN	100	/* messages loaded at once, at least */
#define SCHED_RELAY_LOCAL	"local"		/* the relay of a Maildir */

/* A queued message the scheduler knows; owned by the scheduler. */
struct sched_msg {
	char		id[QUEUE_ID_SIZE];
	time_t		next;		/* next attempt, epoch seconds */
	size_t		slot;		/* in the heap */
	time_t		arrival;
	char		*domains;	/* of the pending recipients, for a
					   flush: lowercase, each ending in
					   a NUL, the list in an empty one */
	char		*handover;	/* "host:port": next attempt there */
};

/* What the administrator asked of a message while it was attempted. */
enum sched_action {
	SCHED_ACTION_NONE,
	SCHED_ACTION_HOLD,
	SCHED_ACTION_BOUNCE,
	SCHED_ACTION_DELETE,		/* done already: files removed */
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
	unsigned char		*delivering;	/* per rcpt: in local_job */
	char			**mailboxes;	/* per delivery of local_job */
	int			 changed;	/* env differs from disk */
	size_t			 local;		/* local deliveries tried */
	struct local_job	*local_job;	/* ...being made */
	struct queue_rewrite	*saving;	/* the envelope being written */
	int			 save_again;	/* changed since it started */
	void			(*save_next)(struct sched_attempt *);
	struct queue_commit	*bounce;	/* a report being committed */
	struct envelope		 benv;		/* ...and its envelope */
	unsigned char		*notice;	/* per rcpt: 1 + the dsn_action
						   of its report to come, 0 */
	unsigned		 notices_done;	/* bit per dsn_action */
	enum dsn_action		 notice_action;	/* of the one committing */
	enum sched_action	 action;	/* at the end of the attempt */
	int			 flush;		/* due at once when it ends */
	char			*handover;	/* every pending recipient goes
						   to this "host:port" */
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
	const struct users	*users;
	struct scheduler_stats	 stats;
	time_t			 started;
} sched;

static void	sched_timer_cb(evutil_socket_t, short, void *);
static void	sched_record(struct sched_attempt *);
static void	sched_msg_domains(struct sched_msg *,
		    const struct envelope *);
static void	sched_msg_free(struct sched_msg *);
static void	sched_start_bounce(struct sched_msg *, int);
static void	sched_notice_success(struct sched_attempt *, const size_t *,
		    size_t, enum dsn_action);
static void	sched_notice_delay(struct sched_attempt *, size_t);
static void	sched_save(struct sched_attempt *,
		    void (*)(struct sched_attempt *));
static void	sched_run_remote(struct sched_attempt *);
static void	sched_recorded(struct sched_attempt *);

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

/* The users in force, for the mailboxes of local recipients. */
void
scheduler_set_users(const struct users *users)
{
	sched.users = users;
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

/*
 * Whether a recipient goes to a Maildir here.  With [local] transport
 * set to LMTP, local recipients go to the mta like remote ones, under
 * their final address; the mta sends them to the LMTP server.
 */
static int
sched_is_maildir(const struct envelope_rcpt *r)
{
	return sched.conf->transport == CONFIG_TRANSPORT_MAILDIR &&
	    config_is_local_domain(sched.conf, sched_domain(r->addr));
}

/* Whether a recipient is still to be sent to another host. */
static int
sched_is_remote(const struct envelope_rcpt *r)
{
	return r->state == ENVELOPE_RCPT_PENDING && !sched_is_maildir(r);
}

/* Whether a recipient is still to be delivered to a Maildir here. */
static int
sched_is_local(const struct envelope_rcpt *r)
{
	return r->state == ENVELOPE_RCPT_PENDING && sched_is_maildir(r);
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
	return m;
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

	/* Local deliveries are named as Postfix's virtual(8) names them. */
	log_mail(strcmp(relay, SCHED_RELAY_LOCAL) == 0 ? "virtual" : "smtp",
	    "%s: to=<%s>, relay=%s, delay=%.1f, dsn=%s, "
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
	free(a->notice);
	free(a->delivering);
	if (a->mailboxes != NULL) {
		for (i = 0; i < a->env.nrcpts; i++)
			free(a->mailboxes[i]);
		free(a->mailboxes);
	}
	/* Only at shutdown, or a message removed: nothing waits for them. */
	if (a->local_job != NULL)
		local_job_cancel(a->local_job);
	if (a->saving != NULL)
		queue_rewrite_cancel(a->saving);
	if (a->fd != -1)
		close(a->fd);
	envelope_clear(&a->env);
	envelope_clear(&a->benv);
	free(a->handover);
	free(a);
}

/* The attempt is over: back into the heap, or gone. */
static void
sched_attempt_end(struct sched_attempt *a, int keep)
{
	struct sched_msg	*m = a->m;
	enum sched_action	 action = a->action;

	TAILQ_REMOVE(&sched.active, a, entry);
	sched.nactive--;
	if (action == SCHED_ACTION_DELETE)
		keep = 0;		/* its files are gone already */
	if (keep && action == SCHED_ACTION_HOLD) {
		if (queue_hold(m->id) == 0) {
			log_info("%s: held", m->id);
			keep = 0;
		} else
			log_warn("%s: cannot hold", m->id);
	}
	if (keep) {
		m->next = a->env.next_attempt;
		if (a->flush && m->next > time(NULL))
			m->next = time(NULL);
		sched_msg_domains(m, &a->env);
		if (action != SCHED_ACTION_BOUNCE)
			sched_heap_push(m);
	} else
		sched_msg_free(m);
	sched_attempt_free(a);
	if (keep && action == SCHED_ACTION_BOUNCE)
		sched_start_bounce(m, 0);
	sched_rearm();
}

/*
 * Count an outcome and keep it in the envelope's attempt history, for
 * "ternctl why".  Over TLS or not is known only when a connection was
 * made: the relay "none" had none, a Maildir needs none.
 */
static void
sched_history(struct sched_attempt *a, size_t i, const struct mta_rcpt *mr,
    const char *what)
{
	enum metrics_dest	dest;
	int			tls = mr->tls;

	dest = config_is_local_domain(sched.conf,
	    sched_domain(a->env.rcpts[i].addr)) ? METRICS_LOCAL :
	    mr->gateway ? METRICS_GATEWAY : METRICS_REMOTE;
	if (strcmp(what, "sent") == 0) {
		sched.stats.delivered++;
		metrics_delivery(METRICS_SENT, dest);
		metrics_observe(METRICS_HIST_DELIVERY, sched_delay(&a->env));
	} else if (strcmp(what, "deferred") == 0) {
		sched.stats.deferred++;
		metrics_delivery(METRICS_DEFERRED, dest);
	} else {
		sched.stats.bounced++;
		metrics_delivery(METRICS_BOUNCED, dest);
	}
	if (strcmp(mr->relay, "none") == 0 ||
	    strcmp(mr->relay, SCHED_RELAY_LOCAL) == 0)
		tls = -1;
	envelope_add_attempt(&a->env, time(NULL), i, tls,
	    a->env.rcpts[i].status, strcmp(mr->relay, "none") == 0 ? NULL :
	    mr->relay, mr->st.text);
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
		/*
		 * A peer with DSN reports from now on; without, we say so:
		 * "relayed", or "delivered" for a final delivery (LMTP).
		 */
		if (!mr->dsn)
			sched_notice_success(a, &i, 1, mr->final ?
			    DSN_ACTION_DELIVERED : DSN_ACTION_RELAYED);
		break;
	case MTA_PERM:
		if (a->handover != NULL) {
			/* A peer taking over the queue: ours still. */
			envelope_set_str(&a->env.last_error, st->text);
			what = "deferred";
			break;
		}
		a->failed[i] = 1;
		what = "bounced";
		break;
	default:
		envelope_set_str(&a->env.last_error, st->text);
		if (a->handover != NULL) {
			what = "deferred";
			break;
		}
		if (a->env.tries + 1 >= sched.conf->max_tries) {
			/* The last try: returned to the sender now. */
			a->failed[i] = 1;
			if (r->status[0] != '4')
				util_strlcpy(r->status, "4.4.7",
				    sizeof r->status);
			what = "bounced";
		} else {
			what = "deferred";
			sched_notice_delay(a, i);
		}
		break;
	}
	sched_history(a, i, mr, what);
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
		if (sent)
			sched_save(a, NULL);
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
	struct mta_rcpt		*mr;
	const char		*domain;
	size_t			 i, j;

	a->jobs = xcalloc(env->nrcpts, sizeof *a->jobs);
	for (i = 0; i < env->nrcpts; i++) {
		/* A hand-over takes the local recipients too. */
		if (a->handover != NULL ? env->rcpts[i].state !=
		    ENVELOPE_RCPT_PENDING : !sched_is_remote(&env->rcpts[i]))
			continue;
		if (a->failed[i])
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
			sj->job.tx.ret = env->ret;
			sj->job.tx.envid = env->envid;
			sj->job.cb = sched_job_cb;
			sj->job.arg = sj;
			sj->job.handover = a->handover;
		}
		sj->idx[sj->job.tx.nrcpts] = i;
		mr = &sj->job.tx.rcpts[sj->job.tx.nrcpts++];
		mr->addr = env->rcpts[i].addr;
		mr->notify = env->rcpts[i].notify;
		mr->orcpt = env->rcpts[i].orcpt;
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

/*
 * The envelope rewrites of an attempt, one at a time: write it down on a
 * worker, then run next (NULL: nothing).  Asked again while one is under
 * way, the rewrite is made again after it, with what changed meanwhile.
 * A message deleted meanwhile is not written.
 */
static void	sched_saved_cb(void *, int);

static void
sched_save(struct sched_attempt *a, void (*next)(struct sched_attempt *))
{
	if (next != NULL)
		a->save_next = next;
	if (a->saving != NULL) {
		if (a->changed)
			a->save_again = 1;
		return;
	}
	if (!a->changed || a->action == SCHED_ACTION_DELETE) {
		a->save_next = NULL;
		if (next != NULL)
			next(a);
		return;
	}
	a->changed = 0;
	a->saving = queue_env_rewrite(&a->env, sched_saved_cb, a);
}

static void
sched_saved_cb(void *arg, int error)
{
	struct sched_attempt	*a = arg;
	void			(*next)(struct sched_attempt *);

	a->saving = NULL;
	if (error != 0 && a->action != SCHED_ACTION_DELETE) {
		errno = error;
		log_warn("%s: cannot update envelope", a->env.id);
		a->changed = 1;
	}
	if (a->save_again) {
		a->save_again = 0;
		next = a->save_next;
		a->save_next = NULL;
		sched_save(a, next);
		return;
	}
	next = a->save_next;
	a->save_next = NULL;
	if (next != NULL)
		next(a);
}

/*
 * The Maildir deliveries are over: record each outcome, make them stick,
 * then go on to the remote recipients.
 */
static void
sched_local_cb(struct local_job *lj, void *arg)
{
	struct sched_attempt	*a = arg;
	struct envelope_rcpt	*r;
	struct mta_rcpt		 mr;
	enum local_result	 res;
	const char		*err;
	size_t			 i, k = 0;

	a->local_job = NULL;
	for (i = 0; i < a->env.nrcpts && k < local_job_count(lj); i++) {
		r = &a->env.rcpts[i];
		if (!a->delivering[i])
			continue;
		a->delivering[i] = 0;
		res = local_job_result(lj, k++, &err);
		memset(&mr, 0, sizeof mr);
		mr.addr = r->addr;
		/* A Maildir reports no DSN: the notice is sent below. */
		mr.dsn = 1;
		util_strlcpy(mr.relay, SCHED_RELAY_LOCAL, sizeof mr.relay);
		if (res == LOCAL_OK)
			mta_status_fill(&mr.st, MTA_OK, "2.0.0",
			    "delivered to maildir %s", a->mailboxes[k - 1]);
		else
			mta_status_fill(&mr.st, res == LOCAL_PERM ? MTA_PERM :
			    MTA_TEMP, res == LOCAL_PERM ? "5.2.0" : "4.2.0",
			    "%s", err);
		sched_outcome(a, i, &mr);
		if (res == LOCAL_OK)
			sched_notice_success(a, &i, 1, DSN_ACTION_DELIVERED);
	}
	sched_save(a, sched_run_remote);
}

/*
 * Deliver the pending local recipients, each to its Maildir, on a worker;
 * sched_local_cb() follows.  An address no user answers to any more (a
 * users file changed since the message was accepted) fails for good at
 * once; a Maildir that cannot be written is tried again later.  Returns 1
 * when deliveries were started.
 */
static int
sched_deliver_local(struct sched_attempt *a)
{
	struct envelope_rcpt	*r;
	struct local_job	*lj = NULL;
	struct mta_rcpt		 mr;
	char			 mailbox[USERS_PATH_SIZE];
	size_t			 i;

	if (a->handover != NULL)
		return 0;
	for (i = 0; i < a->env.nrcpts; i++) {
		r = &a->env.rcpts[i];
		if (!sched_is_local(r) || a->failed[i])
			continue;
		a->local++;
		if (sched.users == NULL || users_mailbox(sched.users, r->addr,
		    mailbox, sizeof mailbox) == -1) {
			memset(&mr, 0, sizeof mr);
			mr.addr = r->addr;
			mr.dsn = 1;
			util_strlcpy(mr.relay, SCHED_RELAY_LOCAL,
			    sizeof mr.relay);
			mta_status_fill(&mr.st, MTA_PERM, "5.1.1",
			    "user unknown: no mailbox for %s", r->addr);
			sched_outcome(a, i, &mr);
			continue;
		}
		if (lj == NULL) {
			lj = local_job_new(a->fd, a->env.sender,
			    sched.conf->hostname);
			a->delivering = xcalloc(a->env.nrcpts, 1);
			a->mailboxes = xcalloc(a->env.nrcpts,
			    sizeof *a->mailboxes);
		}
		a->delivering[i] = 1;
		a->mailboxes[local_job_count(lj)] = xstrdup(mailbox);
		local_job_add(lj, mailbox, r->addr);
	}
	if (lj == NULL)
		return 0;
	a->local_job = lj;
	local_job_start(lj, sched_local_cb, a);
	return 1;
}

/*
 * A new attempt at a message, its envelope loaded; NULL (the message
 * dropped from the scheduler, with a log line saying it was not what)
 * when the envelope cannot be read.
 */
static struct sched_attempt *
sched_attempt_new(struct sched_msg *m, const char *what)
{
	struct sched_attempt	*a;
	char			*cause = NULL;

	a = xcalloc(1, sizeof *a);
	a->m = m;
	a->fd = -1;
	envelope_init(&a->env);
	envelope_init(&a->benv);
	TAILQ_INSERT_TAIL(&sched.active, a, entry);
	sched.nactive++;
	if (queue_env_load(m->id, &a->env, &cause) == -1) {
		log_warnx("%s: not %s: %s", m->id, what, cause);
		free(cause);
		sched_attempt_end(a, 0);
		return NULL;
	}
	a->failed = xcalloc(a->env.nrcpts, 1);
	a->notice = xcalloc(a->env.nrcpts, 1);
	return a;
}

static void
sched_start(struct sched_msg *m)
{
	struct sched_attempt	*a;
	size_t			 received;

	if ((a = sched_attempt_new(m, "attempted")) == NULL)
		return;
	a->handover = m->handover;
	m->handover = NULL;
	if ((a->fd = queue_msg_open(m->id)) == -1) {
		log_warn("%s: cannot open the content", m->id);
		a->env.next_attempt = time(NULL) +
		    (time_t)(sched.conf->queue_interval / 1000);
		sched_attempt_end(a, 1);
		return;
	}
	received = sched_received(m->id);
	if (received > sched.conf->max_received_headers) {
		sched_fail_loop(a, received);
		sched_run_remote(a);
		return;
	}
	if (sched_deliver_local(a))
		return;		/* sched_local_cb() goes on */
	sched_save(a, sched_run_remote);
}

/* After the Maildirs: one mta job per remote domain, or the record. */
static void
sched_run_remote(struct sched_attempt *a)
{
	size_t	i;

	if (a->action != SCHED_ACTION_DELETE)
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

/* What each report is called in the log, after Postfix's bounce daemon. */
static const char *const sched_notice_names[] = {
	[DSN_ACTION_FAILED] = "non-delivery notification",
	[DSN_ACTION_DELAYED] = "delay notification",
	[DSN_ACTION_DELIVERED] = "delivery status notification",
	[DSN_ACTION_RELAYED] = "delivery status notification",
};

/*
 * Recipients delivered here (DSN_ACTION_DELIVERED) or relayed to a host
 * that does not speak DSN (DSN_ACTION_RELAYED): those of idx that asked
 * for NOTIFY=SUCCESS get a report once the attempt is recorded.  Call it
 * before sched_record().
 */
static void
sched_notice_success(struct sched_attempt *a, const size_t *idx, size_t n,
    enum dsn_action action)
{
	size_t	k;

	for (k = 0; k < n; k++) {
		if (a->env.rcpts[idx[k]].notify & ENVELOPE_NOTIFY_SUCCESS)
			a->notice[idx[k]] = 1 + action;
	}
}

/*
 * A recipient deferred again: one that asked for NOTIFY=DELAY gets one
 * report, once it has waited delay_notice_after since the arrival.
 */
static void
sched_notice_delay(struct sched_attempt *a, size_t i)
{
	const struct envelope_rcpt	*r = &a->env.rcpts[i];
	uint64_t			 after = sched.conf->delay_notice_after;
	time_t				 waited = time(NULL) - a->env.arrival;

	if ((r->notify & ENVELOPE_NOTIFY_DELAY) && !r->delay_notified &&
	    after > 0 && waited >= 0 && (uint64_t)waited * 1000 >= after)
		a->notice[i] = 1 + DSN_ACTION_DELAYED;
}

/* Which recipients a report of this action names (RFC 3461 NOTIFY). */
static size_t
sched_notice_rcpts(const struct sched_attempt *a, enum dsn_action action,
    size_t *idx)
{
	const struct envelope_rcpt	*r;
	size_t				 i, n = 0;

	for (i = 0; i < a->env.nrcpts; i++) {
		r = &a->env.rcpts[i];
		if (action != DSN_ACTION_FAILED) {
			if (a->notice[i] == 1 + action)
				idx[n++] = i;
			continue;
		}
		if (!a->failed[i] || (r->notify != 0 &&
		    (r->notify & ENVELOPE_NOTIFY_FAILURE) == 0))
			continue;
		idx[n++] = i;
	}
	return n;
}

/*
 * A report could not be queued.  Nothing is failed until its sender can
 * be told, and a delay is told at a later attempt; a success report is
 * lost, the delivery it tells of being done.
 */
static void
sched_notice_undo(struct sched_attempt *a, enum dsn_action action)
{
	size_t	i;

	for (i = 0; i < a->env.nrcpts; i++) {
		if (action == DSN_ACTION_FAILED)
			a->failed[i] = 0;
		else if (a->notice[i] == 1 + action)
			a->notice[i] = 0;
	}
}

static void
sched_notice_cb(void *arg, int error)
{
	struct sched_attempt	*a = arg;
	enum dsn_action		 action = a->notice_action;
	size_t			 i;

	a->bounce = NULL;
	if (error != 0) {
		errno = error;
		log_warn("%s: cannot queue the %s", a->env.id,
		    sched_notice_names[action]);
		sched_notice_undo(a, action);
	} else {
		log_mail("bounce", "%s: sender %s: %s", a->env.id,
		    sched_notice_names[action], a->benv.id);
		log_mail("qmgr", "%s: from=<>, size=%" PRIu64 ", nrcpt=%zu "
		    "(queue active)", a->benv.id, a->benv.size,
		    a->benv.nrcpts);
		scheduler_add(&a->benv, 0);
		for (i = 0; i < a->env.nrcpts; i++) {
			if (action == DSN_ACTION_DELAYED &&
			    a->notice[i] == 1 + action) {
				a->env.rcpts[i].delay_notified = 1;
				a->changed = 1;
			}
		}
	}
	envelope_clear(&a->benv);
	sched_record(a);
}

/* When the last try falls due, if every try fails: for a delay report. */
static time_t
sched_retry_until(const struct sched_attempt *a)
{
	uint64_t	tries = (uint64_t)a->env.tries + 1, left = 0;

	if (sched.conf->max_tries > tries)
		left = sched.conf->max_tries - tries;
	return time(NULL) + (time_t)(left * (sched.conf->queue_interval /
	    1000));
}

/*
 * The report's recipients: a local sender resolved through its aliases,
 * or the postmaster when nothing takes it, so that a report never turns
 * into one more that cannot be delivered.
 */
static void
sched_notice_to(struct sched_attempt *a)
{
	struct envelope_rcpt	*r;
	struct users_rcpt	*res;
	const char		*sender = a->env.sender;
	char			 orcpt[ADDR_PATH_SIZE + 8];
	size_t			 i, n;
	int			 rc;

	if (sched.users == NULL || strrchr(sender, '@') == NULL ||
	    !config_is_local_domain(sched.conf, sched_domain(sender)) ||
	    (rc = users_resolve_notice(sched.users, sender, &res, &n)) < 0) {
		envelope_add_rcpt(&a->benv, sender);
		return;
	}
	if (rc == 1)
		log_info("%s: sender %s is no address here: its report goes "
		    "to the postmaster", a->env.id, sender);
	util_snprintf(orcpt, sizeof orcpt, "rfc822;%s", sender);
	for (i = 0; i < n; i++) {
		r = envelope_add_rcpt(&a->benv, res[i].addr);
		if (strcmp(res[i].addr, sender) != 0)
			envelope_set_str(&r->orcpt, orcpt);
	}
	free(res);
}

/*
 * Queue one report for the sender about the recipients it concerns.  A
 * failure report returns the whole message up to bounce_size_limit,
 * unless the sender asked for RET=HDRS; the others, and a larger
 * message, return the headers alone (RFC 3461 4.3).  The
 * failures are recorded only once the report is committed, so a crash
 * can repeat a bounce but never lose one.  Returns 1 when a commit was
 * started: sched_notice_cb() follows.
 */
static int
sched_notice(struct sched_attempt *a, enum dsn_action action)
{
	struct dsn_params	 p;
	struct queue_msg	*qm;
	size_t			*idx, n;
	char			*orig = NULL, *text = NULL;
	size_t			 olen = 0, tlen;
	size_t			 limit = sched.conf->bounce_size_limit;
	int			 full = action == DSN_ACTION_FAILED &&
				    a->env.ret != ENVELOPE_RET_HDRS &&
				    limit > 0;

	a->notices_done |= 1u << action;
	idx = xcalloc(a->env.nrcpts, sizeof *idx);
	if ((n = sched_notice_rcpts(a, action, idx)) == 0) {
		free(idx);
		return 0;
	}
	/* As Postfix: a message over bounce_size_limit returns its header. */
	if (full && (queue_msg_read(a->env.id, limit + 1, &orig, &olen) ==
	    -1 || olen > limit)) {
		free(orig);
		orig = NULL;
		olen = 0;
		full = 0;
	}
	if (!full && queue_msg_headers(a->env.id, &orig, &olen) == -1)
		log_warn("%s: cannot read the message to return", a->env.id);
	envelope_init(&a->benv);
	if ((qm = queue_msg_new(a->benv.id, sizeof a->benv.id)) == NULL)
		goto fail;
	memset(&p, 0, sizeof p);
	p.reporting_mta = sched.conf->hostname;
	p.id = a->benv.id;
	p.now = time(NULL);
	p.action = action;
	p.original = orig != NULL ? orig : "";
	p.original_len = olen;
	p.full = full;
	if (action == DSN_ACTION_DELAYED)
		p.retry_until = sched_retry_until(a);
	if (dsn_build(&a->env, idx, n, &p, &text, &tlen) == -1 ||
	    queue_msg_write(qm, text, tlen) == -1) {
		queue_msg_abort(qm);
		goto fail;
	}
	a->benv.arrival = p.now;
	envelope_set_str(&a->benv.sender, "");
	sched_notice_to(a);
	a->benv.size = tlen;
	a->benv.body = a->env.body;
	a->benv.smtputf8 = a->env.smtputf8;
	util_strlcpy(a->benv.helo, sched.conf->hostname, sizeof a->benv.helo);
	util_strlcpy(a->benv.protocol, "local", sizeof a->benv.protocol);
	a->notice_action = action;
	a->bounce = queue_msg_commit(qm, &a->benv, sched_notice_cb, a);
	free(idx);
	free(orig);
	free(text);
	return 1;

fail:
	log_warnx("%s: cannot build the %s", a->env.id,
	    sched_notice_names[action]);
	sched_notice_undo(a, action);
	envelope_clear(&a->benv);
	free(idx);
	free(orig);
	free(text);
	return 0;
}

/*
 * Start the next report the attempt owes the sender, in the order of
 * enum dsn_action; none for a message from the null sender.  Returns 1
 * when one is being committed.
 */
static int
sched_notices(struct sched_attempt *a)
{
	enum dsn_action	action;

	if (a->env.sender[0] == '\0' || a->bounce != NULL)
		return 0;
	for (action = DSN_ACTION_FAILED; action <= DSN_ACTION_RELAYED;
	    action++) {
		if (!(a->notices_done & (1u << action)) &&
		    sched_notice(a, action))
			return 1;
	}
	return 0;
}

/*
 * Every job is done: send the reports the sender is owed, failures first
 * (unless the message is itself a report), then write the outcome down
 * and remove or reschedule.
 */
static void
sched_record(struct sched_attempt *a)
{
	struct envelope	*env = &a->env;
	size_t		 i, pending = 0, failed = 0;

	/* Deleted meanwhile: nothing is written, nothing comes back. */
	if (a->action == SCHED_ACTION_DELETE) {
		sched_attempt_end(a, 0);
		return;
	}
	for (i = 0; i < env->nrcpts; i++)
		failed += a->failed[i];
	if (failed > 0 && env->sender[0] == '\0')
		log_info("%s: from=<>, bounce not returned: a "
		    "non-delivery notification is never bounced", env->id);
	if (sched_notices(a))
		return;		/* sched_notice_cb() comes back here */
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
	/* A hand-over is no try of the usual route: it spends none. */
	if ((a->njobs > 0 || a->local > 0) && a->handover == NULL) {
		env->tries++;
		a->changed = 1;
	}
	env->next_attempt = time(NULL) +
	    (time_t)(sched.conf->queue_interval / 1000);
	/* Ends once every rewrite is on disk: the message is busy till then. */
	sched_save(a, sched_recorded);
}

/*
 * The outcome of the attempt is on disk: reschedule, a whole
 * queue_interval from now, however long the rewrite took (the envelope
 * on disk may say a little earlier, which only matters after a restart).
 */
static void
sched_recorded(struct sched_attempt *a)
{
	time_t	next = time(NULL) +
		    (time_t)(sched.conf->queue_interval / 1000);

	if (a->env.next_attempt < next)
		a->env.next_attempt = next;
	sched_attempt_end(a, a->action != SCHED_ACTION_DELETE &&
	    sched_has_pending(&a->env));
}

/*
 * The administrator's side: hold, release, delete and bounce a message,
 * make messages due now, and count.  Messages are found by id in the
 * heap and among the attempts: a walk, as these are rare and the heap
 * holds little per message.
 */

/*
 * The domains of the pending recipients, lowercase and each once, so a
 * flush by domain needs no envelope read.
 */
static void
sched_msg_domains(struct sched_msg *m, const struct envelope *env)
{
	struct util_buf	 b;
	const char	*d, *p;
	size_t		 i, len;

	memset(&b, 0, sizeof b);
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != ENVELOPE_RCPT_PENDING)
			continue;
		d = sched_domain(env->rcpts[i].addr);
		len = strlen(d);
		for (p = b.data; p != NULL && p < b.data + b.len;
		    p += strlen(p) + 1) {
			if (strcasecmp(p, d) == 0)
				break;
		}
		if (p != NULL && p < b.data + b.len)
			continue;
		util_buf_add(&b, d, len + 1);
		util_lowercase(b.data + b.len - len - 1);
	}
	util_buf_add(&b, "", 1);
	free(m->domains);
	m->domains = b.data;
}

static void
sched_msg_free(struct sched_msg *m)
{
	if (m == NULL)
		return;
	free(m->domains);
	free(m->handover);
	free(m);
}

/* Whether the message waits for domain (or, with sub, a subdomain). */
static int
sched_msg_has_domain(const struct sched_msg *m, const char *domain, int sub)
{
	const char	*p;
	size_t		 len, dlen = strlen(domain);

	if (m->domains == NULL)
		return 0;
	for (p = m->domains; *p != '\0'; p += len + 1) {
		len = strlen(p);
		if (strcasecmp(p, domain) == 0)
			return 1;
		if (sub && len > dlen && p[len - dlen - 1] == '.' &&
		    strcasecmp(p + len - dlen, domain) == 0)
			return 1;
	}
	return 0;
}

static void
sched_heap_up(size_t i)
{
	while (i > 0 && sched_before(i, (i - 1) / 2)) {
		sched_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
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

static struct sched_msg *
sched_find_waiting(const char *id)
{
	size_t	i;

	for (i = 0; i < sched.nheap; i++) {
		if (strcmp(sched.heap[i]->id, id) == 0)
			return sched.heap[i];
	}
	return NULL;
}

static struct sched_attempt *
sched_find_active(const char *id)
{
	struct sched_attempt	*a;

	TAILQ_FOREACH(a, &sched.active, entry) {
		if (strcmp(a->m->id, id) == 0)
			return a;
	}
	return NULL;
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
 * Return the message to its sender now: every pending recipient fails
 * with 5.0.0, the sender gets one report, the message goes.
 */
static void
sched_start_bounce(struct sched_msg *m, int held)
{
	struct sched_attempt	*a;
	struct mta_rcpt		 mr;
	size_t			 i;

	if ((a = sched_attempt_new(m, "returned")) == NULL)
		return;
	/* Should the report fail, a held message goes back on hold. */
	if (held)
		a->action = SCHED_ACTION_HOLD;
	memset(&mr, 0, sizeof mr);
	mta_status_fill(&mr.st, MTA_PERM, "5.0.0",
	    "returned to the sender by the administrator");
	util_strlcpy(mr.relay, "none", sizeof mr.relay);
	for (i = 0; i < a->env.nrcpts; i++) {
		if (a->env.rcpts[i].state == ENVELOPE_RCPT_PENDING) {
			mr.addr = a->env.rcpts[i].addr;
			sched_outcome(a, i, &mr);
		}
	}
	sched_record(a);
}

int
scheduler_hold(const char *id)
{
	struct sched_attempt	*a;
	struct sched_msg	*m;

	if ((a = sched_find_active(id)) != NULL) {
		if (a->action != SCHED_ACTION_DELETE)
			a->action = SCHED_ACTION_HOLD;
		return 0;
	}
	if (queue_hold(id) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warn("%s: cannot hold", id);
		return -1;
	}
	if ((m = sched_find_waiting(id)) != NULL)
		sched_forget(m);
	log_info("%s: held", id);
	return 0;
}

/* A held message is attempted at once; a waiting one is left alone. */
int
scheduler_release(const char *id)
{
	struct sched_attempt	*a;
	struct sched_msg	*m;

	if ((a = sched_find_active(id)) != NULL) {
		if (a->action == SCHED_ACTION_HOLD)
			a->action = SCHED_ACTION_NONE;
		return 0;
	}
	if (sched_find_waiting(id) != NULL)
		return 0;
	if ((m = sched_msg_load(id)) == NULL)
		return -1;
	if (queue_release(id) == -1) {
		log_warn("%s: cannot release", id);
		sched_msg_free(m);
		return -1;
	}
	log_info("%s: released", id);
	if (m->domains[0] == '\0') {
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
	struct sched_attempt	*a;
	struct sched_msg	*m;

	a = sched_find_active(id);
	if (a != NULL && a->action == SCHED_ACTION_DELETE)
		return -1;
	if (queue_remove(id) == -1) {
		if (errno != ENOENT && errno != EINVAL)
			log_warn("%s: cannot delete", id);
		return -1;
	}
	log_info("%s: deleted by the administrator", id);
	log_mail("qmgr", "%s: removed", id);
	if (a != NULL)
		a->action = SCHED_ACTION_DELETE;
	else if ((m = sched_find_waiting(id)) != NULL)
		sched_forget(m);
	return 0;
}

/* Return to the sender now, queued or held. */
int
scheduler_bounce(const char *id)
{
	struct sched_attempt	*a;
	struct sched_msg	*m;
	int			 held = 0;

	if ((a = sched_find_active(id)) != NULL) {
		if (a->action == SCHED_ACTION_DELETE)
			return -1;
		a->action = SCHED_ACTION_BOUNCE;
		return 0;
	}
	if ((m = sched_find_waiting(id)) != NULL)
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
 * Make every waiting message with a pending recipient at domain (and its
 * subdomains with sub; every message when domain is NULL) due now.
 * Returns how many.
 */
size_t
scheduler_flush(const char *domain, int sub)
{
	struct sched_attempt	*a;
	time_t			 now = time(NULL);
	size_t			 i, n = 0, nactive = 0;

	/*
	 * A message in an attempt, or still recording its outcome, is made
	 * due as soon as that ends: it is waiting as much as those in the
	 * heap are.
	 */
	TAILQ_FOREACH(a, &sched.active, entry) {
		if (a->action != SCHED_ACTION_NONE || (domain != NULL &&
		    !sched_msg_has_domain(a->m, domain, sub)))
			continue;
		a->flush = 1;
		nactive++;
	}
	for (i = 0; i < sched.nheap; i++) {
		if (domain != NULL &&
		    !sched_msg_has_domain(sched.heap[i], domain, sub))
			continue;
		n++;
	}
	if (n == 0)
		return nactive;
	/* Marked first, then moved: moving reorders the array. */
	for (i = 0; i < sched.nheap; i++) {
		if (domain == NULL ||
		    sched_msg_has_domain(sched.heap[i], domain, sub))
			sched.heap[i]->next = now;
	}
	for (i = sched.nheap / 2 + 1; i-- > 0; )
		sched_heap_down(i);
	sched_rearm();
	return n + nactive;
}

size_t
scheduler_flush_id(const char *id)
{
	struct sched_attempt	*a;
	struct sched_msg	*m;

	if ((a = sched_find_active(id)) != NULL &&
	    a->action == SCHED_ACTION_NONE) {
		a->flush = 1;
		return 1;
	}
	if ((m = sched_find_waiting(id)) == NULL)
		return 0;
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
	struct sched_attempt	*a;
	struct sched_msg	*m;

	if ((a = sched_find_active(id)) != NULL) {
		if (a->action != SCHED_ACTION_NONE)
			return -1;
		m = a->m;
		a->flush = 1;
	} else if ((m = sched_find_waiting(id)) == NULL)
		return -1;
	free(m->handover);
	m->handover = xstrdup(target);
	if (a == NULL) {
		sched_make_due(m, time(NULL));
		sched_rearm();
	}
	log_info("%s: to be handed over to %s", id, target);
	return 0;
}

void
scheduler_stats(struct scheduler_stats *st)
{
	struct sched_attempt	*a;
	time_t			 now = time(NULL);
	size_t			 i;

	*st = sched.stats;
	st->queue_size = queue_count();
	st->uptime = now - sched.started;
	st->oldest = 0;
	st->active = sched.nactive;
	st->waiting = 0;
	for (i = 0; i < sched.nheap; i++) {
		if (st->oldest == 0 || sched.heap[i]->arrival < st->oldest)
			st->oldest = sched.heap[i]->arrival;
		if (sched.heap[i]->next <= now)
			st->active++;
		else
			st->waiting++;
	}
	TAILQ_FOREACH(a, &sched.active, entry) {
		if (st->oldest == 0 || a->m->arrival < st->oldest)
			st->oldest = a->m->arrival;
	}
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
		sched_msg_free(a->m);
		sched_attempt_free(a);
	}
	sched.nactive = 0;
	for (i = 0; i < sched.nheap; i++)
		sched_msg_free(sched.heap[i]);
	free(sched.heap);
	sched.heap = NULL;
	sched.nheap = sched.heap_alloc = 0;
	if (sched.timer != NULL)
		event_free(sched.timer);
	sched.timer = NULL;
}
