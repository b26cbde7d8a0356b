/*
 * qmgr.c: one attempt at one message, from loading its envelope to the
 * record of every outcome.  Local recipients are delivered to their
 * Maildirs first, on a worker (local_job); the remote ones go to the mta
 * as one job per domain; each outcome is turned into the recipient's
 * state by the rules of dlv.c and written into the envelope as jobs
 * finish.  At the end the reports the sender is owed are queued
 * (bounce.c; never for a report), and the message is removed or its
 * next attempt dated.  Every envelope rewrite runs on a worker
 * (queue_env_rewrite), one at a time per message, and an attempt ends
 * only once its last rewrite is on disk.  It never decides when a
 * message is attempted: the scheduler starts attempts and hears of
 * their end.
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

#include "bounce.h"
#include "config.h"
#include "dlv.h"
#include "dsn.h"
#include "envelope.h"
#include "local.h"
#include "log.h"
#include "metrics.h"
#include "mta.h"
#include "qmgr.h"
#include "queue.h"
#include "users.h"
#include "util.h"

struct qmgr_attempt;

/* The recipients of one attempt at one domain. */
struct qmgr_job {
	struct mta_job		 job;
	struct qmgr_attempt	*a;
	size_t			*idx;		/* into a->env.rcpts */
};

/* One attempt at one message; owned by the queue manager until it ends. */
struct qmgr_attempt {
	TAILQ_ENTRY(qmgr_attempt) entry;
	char			 id[QUEUE_ID_SIZE];
	void			*arg;		/* the scheduler's */
	int			 returning;	/* qmgr_return()'s */
	struct event		*start;		/* starts it on the loop */
	struct envelope		 env;
	int			 fd;		/* the content */
	struct qmgr_job		*jobs;
	size_t			 njobs;
	size_t			 running;
	unsigned char		*failed;	/* per rcpt: failed for good */
	unsigned char		*delivering;	/* per rcpt: in local_job */
	int			 changed;	/* env differs from disk */
	size_t			 local;		/* local deliveries tried */
	struct local_job	*local_job;	/* ...being made */
	struct queue_rewrite	*saving;	/* the envelope being written */
	int			 save_again;	/* changed since it started */
	void			(*save_next)(struct qmgr_attempt *);
	struct bounce		*bounce;	/* a report being committed */
	unsigned char		*notice;	/* per rcpt: 1 + the dsn_action
						   of its report to come, 0 */
	unsigned		 notices_done;	/* bit per dsn_action */
	enum dsn_action		 notice_action;	/* of the one committing */
	enum qmgr_action	 action;	/* at the end of the attempt */
	int			 flush;		/* due at once when it ends */
	char			*handover;	/* every pending recipient goes
						   to this "host:port" */
};
TAILQ_HEAD(qmgr_attempts, qmgr_attempt);

static struct {
	struct event_base	*base;
	const struct config	*conf;
	const struct users	*users;
	struct qmgr_cb		 cb;
	struct qmgr_attempts	 active;
	struct qmgr_stats	 stats;
} qmgr;

static void	qmgr_record(struct qmgr_attempt *);
static void	qmgr_save(struct qmgr_attempt *,
		    void (*)(struct qmgr_attempt *));
static void	qmgr_run_remote(struct qmgr_attempt *);
static void	qmgr_recorded(struct qmgr_attempt *);
static void	qmgr_start_cb(evutil_socket_t, short, void *);

void
qmgr_init(struct event_base *base, const struct config *conf,
    const struct qmgr_cb *cb)
{
	qmgr.base = base;
	qmgr.conf = conf;
	qmgr.cb = *cb;
	TAILQ_INIT(&qmgr.active);
}

void
qmgr_set_config(const struct config *conf)
{
	qmgr.conf = conf;
}

/* The users in force, for the mailboxes of local recipients. */
void
qmgr_set_users(const struct users *users)
{
	qmgr.users = users;
}

void
qmgr_stats(struct qmgr_stats *st)
{
	*st = qmgr.stats;
}

static const char *
qmgr_domain(const char *addr)
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
qmgr_is_maildir(const struct envelope_rcpt *r)
{
	return qmgr.conf->transport == CONFIG_TRANSPORT_MAILDIR &&
	    config_is_local_domain(qmgr.conf, qmgr_domain(r->addr));
}

/* Whether a recipient is still to be sent to another host. */
static int
qmgr_is_remote(const struct envelope_rcpt *r)
{
	return r->state == ENVELOPE_RCPT_PENDING && !qmgr_is_maildir(r);
}

/* Whether a recipient is still to be delivered to a Maildir here. */
static int
qmgr_is_local(const struct envelope_rcpt *r)
{
	return r->state == ENVELOPE_RCPT_PENDING && qmgr_is_maildir(r);
}

static int
qmgr_has_pending(const struct envelope *env)
{
	size_t	i;

	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state == ENVELOPE_RCPT_PENDING)
			return 1;
	}
	return 0;
}

static double
qmgr_delay(const struct envelope *env)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	return (double)(tv.tv_sec - env->arrival) + tv.tv_usec / 1e6;
}

/* The log line of one recipient and attempt, in Postfix's layout. */
static void
qmgr_log_rcpt(const struct qmgr_attempt *a, const struct envelope_rcpt *r,
    const char *relay, const char *status, const char *text)
{
	char	eaddr[LOG_ESCAPE_SIZE], etext[LOG_ESCAPE_SIZE];
	double	delay = qmgr_delay(&a->env);

	/* Local deliveries are named as Postfix's virtual(8) names them. */
	log_mail(strcmp(relay, DLV_RELAY_LOCAL) == 0 ? "virtual" : "smtp",
	    "%s: to=<%s>, relay=%s, delay=%.1f, dsn=%s, "
	    "status=%s (%s)", a->env.id, log_escape(eaddr, sizeof eaddr,
	    r->addr, strlen(r->addr)), relay, delay < 0 ? 0.0 : delay,
	    r->status[0] != '\0' ? r->status : "4.0.0", status,
	    log_escape(etext, sizeof etext, text, strlen(text)));
}

static void
qmgr_attempt_free(struct qmgr_attempt *a)
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
	/* Only at shutdown, or a message removed: nothing waits for them. */
	if (a->local_job != NULL)
		local_job_cancel(a->local_job);
	if (a->saving != NULL)
		queue_rewrite_cancel(a->saving);
	if (a->bounce != NULL)
		bounce_cancel(a->bounce);
	if (a->start != NULL)
		event_free(a->start);
	if (a->fd != -1)
		close(a->fd);
	envelope_clear(&a->env);
	free(a->handover);
	free(a);
}

/* The attempt is over: the scheduler is told, keep or not. */
static void
qmgr_attempt_end(struct qmgr_attempt *a, int keep)
{
	TAILQ_REMOVE(&qmgr.active, a, entry);
	qmgr.cb.done(a->arg, keep ? &a->env : NULL, a->action, a->flush);
	qmgr_attempt_free(a);
}

/*
 * Count an outcome and keep it in the envelope's attempt history, for
 * "ternctl why".
 */
static void
qmgr_history(struct qmgr_attempt *a, size_t i, const struct dlv_rcpt *mr,
    enum dlv_verdict v)
{
	enum metrics_dest	dest;

	dest = config_is_local_domain(qmgr.conf,
	    qmgr_domain(a->env.rcpts[i].addr)) ? METRICS_LOCAL :
	    mr->gateway ? METRICS_GATEWAY : METRICS_REMOTE;
	if (v == DLV_SENT) {
		qmgr.stats.delivered++;
		metrics_delivery(METRICS_SENT, dest);
		metrics_observe(METRICS_HIST_DELIVERY, qmgr_delay(&a->env));
	} else if (v == DLV_DEFERRED) {
		qmgr.stats.deferred++;
		metrics_delivery(METRICS_DEFERRED, dest);
	} else {
		qmgr.stats.bounced++;
		metrics_delivery(METRICS_BOUNCED, dest);
	}
	envelope_add_attempt(&a->env, time(NULL), i, dlv_history_tls(mr),
	    a->env.rcpts[i].status, strcmp(mr->relay, DLV_RELAY_NONE) == 0 ?
	    NULL : mr->relay, mr->st.text);
}

/*
 * Record an outcome of one recipient in the envelope, note the reports
 * it owes the sender, and log it.
 */
static void
qmgr_outcome(struct qmgr_attempt *a, size_t i, const struct dlv_rcpt *mr)
{
	struct envelope_rcpt	*r = &a->env.rcpts[i];
	enum dlv_verdict	 v;
	int			 action;

	if (a->handover != NULL && mr->st.result != DLV_OK) {
		/*
		 * A peer taking over the queue: ours still, whatever it
		 * said.  Deferred, never the last try (which dlv_apply()
		 * would make a 4.4.7 failure), with no failure mark and no
		 * delay report; dlv_apply() only records the status here.
		 */
		(void)dlv_apply(r, mr, 0, UINT64_MAX);
		v = DLV_DEFERRED;
		envelope_set_str(&a->env.last_error, mr->st.text);
	} else
		v = dlv_apply(r, mr, a->env.tries, qmgr.conf->max_tries);
	a->changed = 1;
	switch (v) {
	case DLV_SENT:
		if ((action = dlv_success_notice(mr, r->notify)) != -1)
			a->notice[i] = 1 + action;
		break;
	case DLV_BOUNCED:
		a->failed[i] = 1;
		break;
	case DLV_DEFERRED:
		if (a->handover == NULL && dlv_delay_notice(r,
		    a->env.arrival, qmgr.conf->delay_notice_after,
		    time(NULL)))
			a->notice[i] = 1 + DSN_ACTION_DELAYED;
		break;
	}
	if (a->handover == NULL && mr->st.result != DLV_OK &&
	    mr->st.result != DLV_PERM)
		envelope_set_str(&a->env.last_error, mr->st.text);
	qmgr_history(a, i, mr, v);
	qmgr_log_rcpt(a, r, mr->relay, dlv_verdict_str(v), mr->st.text);
}

static void
qmgr_job_cb(struct mta_job *job, void *arg)
{
	struct qmgr_job		*qj = arg;
	struct qmgr_attempt	*a = qj->a;
	size_t			 k;
	int			 sent = 0;

	for (k = 0; k < job->tx.nrcpts; k++) {
		qmgr_outcome(a, qj->idx[k], &job->tx.rcpts[k]);
		if (job->tx.rcpts[k].st.result == DLV_OK)
			sent = 1;
	}
	if (--a->running > 0) {
		/* Other domains still going: make the deliveries stick. */
		if (sent)
			qmgr_save(a, NULL);
		return;
	}
	qmgr_record(a);
}

/* One job per remote domain among the pending recipients. */
static void
qmgr_make_jobs(struct qmgr_attempt *a)
{
	struct envelope		*env = &a->env;
	struct qmgr_job		*qj;
	struct dlv_rcpt		*mr;
	const char		*domain;
	size_t			 i, j;

	a->jobs = xcalloc(env->nrcpts, sizeof *a->jobs);
	for (i = 0; i < env->nrcpts; i++) {
		/* A hand-over takes the local recipients too. */
		if (a->handover != NULL ? env->rcpts[i].state !=
		    ENVELOPE_RCPT_PENDING : !qmgr_is_remote(&env->rcpts[i]))
			continue;
		if (a->failed[i])
			continue;
		domain = qmgr_domain(env->rcpts[i].addr);
		for (j = 0; j < a->njobs; j++) {
			if (strcasecmp(a->jobs[j].job.domain, domain) == 0)
				break;
		}
		qj = &a->jobs[j];
		if (j == a->njobs) {
			a->njobs++;
			qj->a = a;
			qj->idx = xcalloc(env->nrcpts, sizeof *qj->idx);
			qj->job.tx.rcpts = xcalloc(env->nrcpts,
			    sizeof *qj->job.tx.rcpts);
			util_strlcpy(qj->job.id, env->id, sizeof qj->job.id);
			util_strlcpy(qj->job.domain, domain,
			    sizeof qj->job.domain);
			util_lowercase(qj->job.domain);
			qj->job.tries = env->tries;
			qj->job.tx.sender = env->sender;
			qj->job.tx.msgfd = a->fd;
			qj->job.tx.size = env->size;
			qj->job.tx.body_8bit = env->body ==
			    ENVELOPE_BODY_8BITMIME;
			qj->job.tx.smtputf8 = env->smtputf8;
			qj->job.tx.ret = env->ret;
			qj->job.tx.envid = env->envid;
			qj->job.cb = qmgr_job_cb;
			qj->job.arg = qj;
			qj->job.handover = a->handover;
		}
		qj->idx[qj->job.tx.nrcpts] = i;
		mr = &qj->job.tx.rcpts[qj->job.tx.nrcpts++];
		mr->addr = env->rcpts[i].addr;
		mr->notify = env->rcpts[i].notify;
		mr->orcpt = env->rcpts[i].orcpt;
	}
}

/* Count "Received:" header fields: too many is a mail loop. */
static size_t
qmgr_received(int fd)
{
	char	*buf, *p;
	size_t	 len, n = 0;

	if (queue_fd_headers(fd, &buf, &len) == -1)
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
qmgr_fail_loop(struct qmgr_attempt *a, size_t received)
{
	struct dlv_rcpt	mr;
	size_t		i;

	memset(&mr, 0, sizeof mr);
	mr.st.result = DLV_PERM;
	util_strlcpy(mr.st.status, "5.4.6", sizeof mr.st.status);
	snprintf(mr.st.text, sizeof mr.st.text, "mail forwarding loop: "
	    "%zu Received: header fields, more than %llu", received,
	    (unsigned long long)qmgr.conf->max_received_headers);
	util_strlcpy(mr.relay, DLV_RELAY_NONE, sizeof mr.relay);
	for (i = 0; i < a->env.nrcpts; i++) {
		if (a->env.rcpts[i].state == ENVELOPE_RCPT_PENDING)
			qmgr_outcome(a, i, &mr);
	}
}

/*
 * The envelope rewrites of an attempt, one at a time: write it down on a
 * worker, then run next (NULL: nothing).  Asked again while one is under
 * way, the rewrite is made again after it, with what changed meanwhile.
 * A message deleted meanwhile is not written.
 */
static void	qmgr_saved_cb(void *, int);

static void
qmgr_save(struct qmgr_attempt *a, void (*next)(struct qmgr_attempt *))
{
	if (next != NULL)
		a->save_next = next;
	if (a->saving != NULL) {
		if (a->changed)
			a->save_again = 1;
		return;
	}
	if (!a->changed || a->action == QMGR_ACTION_DELETE) {
		a->save_next = NULL;
		if (next != NULL)
			next(a);
		return;
	}
	a->changed = 0;
	a->saving = queue_env_rewrite(&a->env, qmgr_saved_cb, a);
}

static void
qmgr_saved_cb(void *arg, int error)
{
	struct qmgr_attempt	*a = arg;
	void			(*next)(struct qmgr_attempt *);

	a->saving = NULL;
	if (error != 0 && a->action != QMGR_ACTION_DELETE) {
		errno = error;
		log_warn("%s: cannot update envelope", a->env.id);
		a->changed = 1;
	}
	if (a->save_again) {
		a->save_again = 0;
		next = a->save_next;
		a->save_next = NULL;
		qmgr_save(a, next);
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
qmgr_local_cb(struct local_job *lj, void *arg)
{
	struct qmgr_attempt	*a = arg;
	struct dlv_rcpt		 mr;
	size_t			 i, k = 0;

	a->local_job = NULL;
	for (i = 0; i < a->env.nrcpts && k < local_job_count(lj); i++) {
		if (!a->delivering[i])
			continue;
		a->delivering[i] = 0;
		memset(&mr, 0, sizeof mr);
		mr.addr = a->env.rcpts[i].addr;
		local_job_outcome(lj, k++, &mr);
		qmgr_outcome(a, i, &mr);
	}
	qmgr_save(a, qmgr_run_remote);
}

/*
 * Deliver the pending local recipients, each to its Maildir, on a worker;
 * qmgr_local_cb() follows.  An address no user answers to any more (a
 * users file changed since the message was accepted) fails for good at
 * once; a Maildir that cannot be written is tried again later.  Returns 1
 * when deliveries were started.
 */
static int
qmgr_deliver_local(struct qmgr_attempt *a)
{
	struct envelope_rcpt	*r;
	struct local_job	*lj = NULL;
	struct dlv_rcpt		 mr;
	char			 mailbox[USERS_PATH_SIZE];
	size_t			 i;

	if (a->handover != NULL)
		return 0;
	for (i = 0; i < a->env.nrcpts; i++) {
		r = &a->env.rcpts[i];
		if (!qmgr_is_local(r) || a->failed[i])
			continue;
		a->local++;
		if (qmgr.users == NULL || users_mailbox(qmgr.users, r->addr,
		    mailbox, sizeof mailbox) == -1) {
			memset(&mr, 0, sizeof mr);
			mr.addr = r->addr;
			util_strlcpy(mr.relay, DLV_RELAY_LOCAL,
			    sizeof mr.relay);
			dlv_status_fill(&mr.st, DLV_PERM, "5.1.1",
			    "user unknown: no mailbox for %s", r->addr);
			qmgr_outcome(a, i, &mr);
			continue;
		}
		if (lj == NULL) {
			lj = local_job_new(a->fd, a->env.sender,
			    qmgr.conf->hostname);
			a->delivering = xcalloc(a->env.nrcpts, 1);
		}
		a->delivering[i] = 1;
		local_job_add(lj, mailbox, r->addr);
	}
	if (lj == NULL)
		return 0;
	a->local_job = lj;
	local_job_start(lj, qmgr_local_cb, a);
	return 1;
}

/*
 * A new attempt at message id, for arg; it starts from the loop, so the
 * scheduler hears of its end only after this returns.
 */
static struct qmgr_attempt *
qmgr_attempt_new(const char *id, void *arg, int returning)
{
	struct qmgr_attempt	*a;
	struct timeval		 now = { 0, 0 };

	a = xcalloc(1, sizeof *a);
	util_strlcpy(a->id, id, sizeof a->id);
	a->arg = arg;
	a->returning = returning;
	a->fd = -1;
	envelope_init(&a->env);
	if ((a->start = evtimer_new(qmgr.base, qmgr_start_cb, a)) == NULL)
		fatalx("qmgr: evtimer_new");
	evtimer_add(a->start, &now);
	TAILQ_INSERT_TAIL(&qmgr.active, a, entry);
	return a;
}

/*
 * Attempt every pending recipient of message id; with handover
 * ("host:port"; NULL: none), every pending one goes to that MTA, the
 * local ones too, and what it does not take stays, deferred.
 */
struct qmgr_attempt *
qmgr_attempt(const char *id, const char *handover, void *arg)
{
	struct qmgr_attempt	*a;

	a = qmgr_attempt_new(id, arg, 0);
	if (handover != NULL)
		a->handover = xstrdup(handover);
	return a;
}

/*
 * Return message id to its sender now: every pending recipient fails
 * with 5.0.0, the sender gets one report, the message goes.  held: it
 * came off hold for this, and goes back should the report fail.
 */
struct qmgr_attempt *
qmgr_return(const char *id, int held, void *arg)
{
	struct qmgr_attempt	*a;

	a = qmgr_attempt_new(id, arg, 1);
	if (held)
		a->action = QMGR_ACTION_HOLD;
	return a;
}

enum qmgr_action
qmgr_action(const struct qmgr_attempt *a)
{
	return a->action;
}

/*
 * What the administrator asked, applied when the attempt ends: a delete
 * is final, a release (NONE) only undoes a hold.
 */
void
qmgr_set_action(struct qmgr_attempt *a, enum qmgr_action action)
{
	if (a->action == QMGR_ACTION_DELETE)
		return;
	if (action == QMGR_ACTION_NONE && a->action != QMGR_ACTION_HOLD)
		return;
	a->action = action;
}

/*
 * Make the message due as soon as the attempt ends (it is waiting as
 * much as those in the heap are); 0 when an action makes that moot.
 */
int
qmgr_flush(struct qmgr_attempt *a)
{
	if (a->action != QMGR_ACTION_NONE)
		return 0;
	a->flush = 1;
	return 1;
}

/* The pending recipients all fail: the administrator's return. */
static void
qmgr_start_return(struct qmgr_attempt *a)
{
	struct dlv_rcpt	mr;
	size_t		i;

	memset(&mr, 0, sizeof mr);
	dlv_status_fill(&mr.st, DLV_PERM, "5.0.0",
	    "returned to the sender by the administrator");
	util_strlcpy(mr.relay, DLV_RELAY_NONE, sizeof mr.relay);
	for (i = 0; i < a->env.nrcpts; i++) {
		if (a->env.rcpts[i].state == ENVELOPE_RCPT_PENDING) {
			mr.addr = a->env.rcpts[i].addr;
			qmgr_outcome(a, i, &mr);
		}
	}
	qmgr_record(a);
}

/*
 * The attempt starts: its envelope is loaded (a message that cannot be
 * read leaves the scheduler, with a log line saying it was not
 * attempted), Maildirs first.
 */
static void
qmgr_start_cb(evutil_socket_t fd, short events, void *arg)
{
	struct qmgr_attempt	*a = arg;
	char			*cause = NULL;
	size_t			 received;

	(void)fd;
	(void)events;
	/* Deleted before it began: nothing to do, nothing to say. */
	if (a->action == QMGR_ACTION_DELETE) {
		qmgr_attempt_end(a, 0);
		return;
	}
	if (queue_env_load(a->id, &a->env, &cause) == -1) {
		log_warnx("%s: not %s: %s", a->id, a->returning ? "returned" :
		    "attempted", cause);
		free(cause);
		qmgr_attempt_end(a, 0);
		return;
	}
	a->failed = xcalloc(a->env.nrcpts, 1);
	a->notice = xcalloc(a->env.nrcpts, 1);
	if (a->returning) {
		qmgr_start_return(a);
		return;
	}
	if ((a->fd = queue_msg_open(a->id)) == -1) {
		log_warn("%s: cannot open the content", a->id);
		a->env.next_attempt = time(NULL) +
		    (time_t)(qmgr.conf->queue_interval / 1000);
		qmgr_attempt_end(a, 1);
		return;
	}
	received = qmgr_received(a->fd);
	if (received > qmgr.conf->max_received_headers) {
		qmgr_fail_loop(a, received);
		qmgr_run_remote(a);
		return;
	}
	if (qmgr_deliver_local(a))
		return;		/* qmgr_local_cb() goes on */
	qmgr_save(a, qmgr_run_remote);
}

/* After the Maildirs: one mta job per remote domain, or the record. */
static void
qmgr_run_remote(struct qmgr_attempt *a)
{
	size_t	i;

	if (a->action != QMGR_ACTION_DELETE)
		qmgr_make_jobs(a);
	a->running = a->njobs;
	if (a->njobs == 0) {
		qmgr_record(a);
		return;
	}
	for (i = 0; i < a->njobs; i++)
		mta_submit(&a->jobs[i].job);
}

/* Which recipients a report of this action names (RFC 3461 NOTIFY). */
static size_t
qmgr_notice_rcpts(const struct qmgr_attempt *a, enum dsn_action action,
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
		if (!a->failed[i] || !dlv_failure_notice(r))
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
qmgr_notice_undo(struct qmgr_attempt *a, enum dsn_action action)
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
qmgr_notice_cb(void *arg, int error, const struct envelope *benv)
{
	struct qmgr_attempt	*a = arg;
	enum dsn_action		 action = a->notice_action;
	size_t			 i;

	a->bounce = NULL;
	if (error != 0)
		qmgr_notice_undo(a, action);
	else {
		qmgr.cb.queued(benv);
		for (i = 0; i < a->env.nrcpts; i++) {
			if (action == DSN_ACTION_DELAYED &&
			    a->notice[i] == 1 + action) {
				a->env.rcpts[i].delay_notified = 1;
				a->changed = 1;
			}
		}
	}
	qmgr_record(a);
}

/*
 * Have one report queued for the sender about the recipients it
 * concerns.  The failures are recorded only once the report is
 * committed, so a crash can repeat a bounce but never lose one.  Returns
 * 1 when a commit was started: qmgr_notice_cb() follows.
 */
static int
qmgr_notice(struct qmgr_attempt *a, enum dsn_action action)
{
	struct bounce_params	 bp;
	size_t			*idx, n;

	a->notices_done |= 1u << action;
	idx = xcalloc(a->env.nrcpts, sizeof *idx);
	if ((n = qmgr_notice_rcpts(a, action, idx)) == 0) {
		free(idx);
		return 0;
	}
	memset(&bp, 0, sizeof bp);
	bp.conf = qmgr.conf;
	bp.users = qmgr.users;
	bp.action = action;
	bp.idx = idx;
	bp.n = n;
	bp.now = time(NULL);
	if (action == DSN_ACTION_DELAYED)
		bp.retry_until = dlv_retry_until(a->env.tries,
		    qmgr.conf->max_tries, qmgr.conf->queue_interval, bp.now);
	a->notice_action = action;
	a->bounce = bounce_start(&a->env, &bp, qmgr_notice_cb, a);
	free(idx);
	if (a->bounce == NULL) {
		qmgr_notice_undo(a, action);
		return 0;
	}
	return 1;
}

/*
 * Start the next report the attempt owes the sender, in the order of
 * enum dsn_action; none for a message from the null sender.  Returns 1
 * when one is being committed.
 */
static int
qmgr_notices(struct qmgr_attempt *a)
{
	enum dsn_action	action;

	if (a->env.sender[0] == '\0' || a->bounce != NULL)
		return 0;
	for (action = DSN_ACTION_FAILED; action <= DSN_ACTION_RELAYED;
	    action++) {
		if (!(a->notices_done & (1u << action)) &&
		    qmgr_notice(a, action))
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
qmgr_record(struct qmgr_attempt *a)
{
	struct envelope	*env = &a->env;
	size_t		 i, pending = 0, failed = 0;

	/* Deleted meanwhile: nothing is written, nothing comes back. */
	if (a->action == QMGR_ACTION_DELETE) {
		qmgr_attempt_end(a, 0);
		return;
	}
	for (i = 0; i < env->nrcpts; i++)
		failed += a->failed[i];
	if (failed > 0 && env->sender[0] == '\0')
		log_info("%s: from=<>, bounce not returned: a "
		    "non-delivery notification is never bounced", env->id);
	if (qmgr_notices(a))
		return;		/* qmgr_notice_cb() comes back here */
	for (i = 0; i < env->nrcpts; i++) {
		if (a->failed[i]) {
			env->rcpts[i].state = ENVELOPE_RCPT_FAILED;
			a->changed = 1;
		}
		if (env->rcpts[i].state == ENVELOPE_RCPT_PENDING)
			pending++;
	}
	if (pending == 0) {
		/* Every job is over; the attempt's descriptor closes next. */
		if (queue_retire(env->id) == -1)
			log_warn("%s: cannot remove from the queue", env->id);
		else
			log_mail("qmgr", "%s: removed", env->id);
		qmgr_attempt_end(a, 0);
		return;
	}
	/* A hand-over is no try of the usual route: it spends none. */
	if ((a->njobs > 0 || a->local > 0) && a->handover == NULL) {
		env->tries++;
		a->changed = 1;
	}
	env->next_attempt = time(NULL) +
	    (time_t)(qmgr.conf->queue_interval / 1000);
	/* Ends once every rewrite is on disk: the message is busy till then. */
	qmgr_save(a, qmgr_recorded);
}

/*
 * The outcome of the attempt is on disk: reschedule, a whole
 * queue_interval from now, however long the rewrite took (the envelope
 * on disk may say a little earlier, which only matters after a restart).
 */
static void
qmgr_recorded(struct qmgr_attempt *a)
{
	time_t	next = time(NULL) +
		    (time_t)(qmgr.conf->queue_interval / 1000);

	if (a->env.next_attempt < next)
		a->env.next_attempt = next;
	qmgr_attempt_end(a, a->action != QMGR_ACTION_DELETE &&
	    qmgr_has_pending(&a->env));
}

/* Stop: attempts in flight are dropped, and nobody is told. */
void
qmgr_shutdown(void)
{
	struct qmgr_attempt	*a;

	while ((a = TAILQ_FIRST(&qmgr.active)) != NULL) {
		TAILQ_REMOVE(&qmgr.active, a, entry);
		qmgr_attempt_free(a);
	}
}
