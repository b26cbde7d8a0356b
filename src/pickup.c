/*
 * pickup.c: local submission, the daemon's side.  sendmail writes each
 * message as one file into the spool's maildrop/ directory, whether or
 * not ternd runs; pickup finds the files (inotify on the directory, a
 * scan at start and every minute as a safety net), checks each as the
 * untrusted input it is, queues it as a normal message with a Received
 * header naming the submitting user, and removes it once the commit is
 * durable.  It never trusts what a file says about who wrote it (that is
 * the file's owner), never follows a link, and never keeps the loop busy
 * for more than a few files per turn.
 *
 * The file format, and its reader, are maildrop.c's.
 * sendmail has already added what the message lacked (From, Date,
 * Message-ID) and removed Bcc; pickup adds only its Received header.
 *
 * Files are written as ".tmp.<anything>" and renamed to a name that does
 * not start with "."; names starting with "." are never read, and a
 * ".tmp." file left for a day by a sendmail that died is removed.
 *
 * With non_smtpd_milters, each message first goes through the filters,
 * on the loop, as Postfix's cleanup does for local mail: a connection
 * from "localhost" [127.0.0.1], HELO localhost, MAIL, RCPT per
 * recipient, DATA and the message without our Received header.  The
 * submitter has gone by then, so nobody can be answered: a message a
 * filter refuses for good is returned to its sender in a non-delivery
 * report and never queued; one it refuses for now, or whose recipient
 * it refuses (Postfix calls that a configuration error), stays in
 * maildrop/ and is tried again after a minute; a discarded one is
 * removed; a quarantined one is queued on hold.  The changes the
 * filters ask for are applied before the commit.
 */
#include "autoconf.h"

#include <sys/inotify.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr.h"
#include "config.h"
#include "dsn.h"
#include "envelope.h"
#include "log.h"
#include "maildrop.h"
#include "milter.h"
#include "pickup.h"
#include "queue.h"
#include "trace.h"
#include "users.h"
#include "util.h"

#define PICKUP_RESCAN		60	/* seconds between full scans */
#define PICKUP_FILES_TURN	8	/* files taken per loop turn */
#define PICKUP_BYTES_TURN	(4 * 1024 * 1024)	/* octets per turn */
#define PICKUP_JOBS_MAX		64	/* commits in flight */
#define PICKUP_STALE		86400	/* seconds: a dead ".tmp." */
#define PICKUP_CLIENT_NAME	"localhost"	/* as Postfix, to filters */
#define PICKUP_CLIENT_ADDR	"127.0.0.1"

/* Where a message stands in its filters (non_smtpd_milters). */
enum pickup_step {
	PICKUP_STEP_CONNECT,
	PICKUP_STEP_HELO,
	PICKUP_STEP_MAIL,
	PICKUP_STEP_RCPT,
	PICKUP_STEP_DATA,
	PICKUP_STEP_MESSAGE,
};

static const char *const pickup_step_names[] = {
	[PICKUP_STEP_CONNECT] = "CONNECT",
	[PICKUP_STEP_HELO] = "HELO",
	[PICKUP_STEP_MAIL] = "MAIL",
	[PICKUP_STEP_RCPT] = "RCPT",
	[PICKUP_STEP_DATA] = "DATA",
	[PICKUP_STEP_MESSAGE] = "END-OF-MESSAGE",
};

/* What the commit of a job is for. */
enum pickup_kind {
	PICKUP_KIND_QUEUE,	/* the message, to be delivered */
	PICKUP_KIND_HOLD,	/* the message, quarantined by a filter */
	PICKUP_KIND_REPORT,	/* the report on a message refused */
};

/*
 * One file being filtered or committed; owned by the module until its
 * callback.  While filtered, buf holds the file and content the message
 * inside it, and msg is the spool file the message goes to.
 */
struct pickup_job {
	TAILQ_ENTRY(pickup_job)	 entry;
	struct envelope		 env;
	struct queue_commit	*commit;
	struct queue_msg	*msg;
	struct milter_chain	*chain;
	enum pickup_step	 step;
	size_t			 rcpt;		/* next RCPT to filter */
	enum pickup_kind	 kind;
	char			*buf;
	const char		*content;
	size_t			 clen;
	char			*reason;	/* why held or refused */
	unsigned long		 uid;
	dev_t			 dev;
	ino_t			 ino;
	char			 name[NAME_MAX + 1];
};

/*
 * A file queued already that could not be removed: never taken again;
 * or (until set) one a filter refused for now: not before until.
 */
struct pickup_done {
	dev_t	dev;
	ino_t	ino;
	time_t	until;
};
TAILQ_HEAD(pickup_jobs, pickup_job);

static struct {
	struct event_base	*base;
	const struct config	*conf;
	const struct users	*users;
	pickup_queued_cb	 queued;
	int			 dirfd;		/* maildrop/ */
	int			 inotifyfd;	/* -1: rescans only */
	struct event		*inotify_ev;
	struct event		*timer_ev;	/* the full rescan */
	struct event		*work_ev;	/* a pass's next turn */
	DIR			*scan;		/* a pass under way */
	int			 rescan;	/* a file came meanwhile */
	struct pickup_jobs	 jobs;
	size_t			 njobs;
	struct pickup_done	*done;
	size_t			 ndone;
	struct pickup_done	*later;		/* refused for now */
	size_t			 nlater;
	int			 stopped;
	int			 no_room;	/* files wait for spool space */
} pickup = { .dirfd = -1, .inotifyfd = -1 };

static void	pickup_slot_freed(void);
static void	pickup_job_done(struct pickup_job *);

/* Run the next turn of a pass after the loop has looked at its I/O. */
static void
pickup_kick(void)
{
	struct timeval	tv = { 0, 0 };

	if (!pickup.stopped)
		evtimer_add(pickup.work_ev, &tv);
}

/* Something may have arrived: scan now, or again after this pass. */
static void
pickup_wake(void)
{
	if (pickup.scan != NULL)
		pickup.rescan = 1;
	else
		pickup_kick();
}

static int
pickup_is_busy(const char *name)
{
	struct pickup_job	*job;

	TAILQ_FOREACH(job, &pickup.jobs, entry) {
		if (strcmp(job->name, name) == 0)
			return 1;
	}
	return 0;
}

static void
pickup_job_free(struct pickup_job *job)
{
	TAILQ_REMOVE(&pickup.jobs, job, entry);
	pickup.njobs--;
	if (job->chain != NULL)
		milter_chain_free(job->chain);
	if (job->msg != NULL)
		queue_msg_abort(job->msg);
	envelope_clear(&job->env);
	free(job->buf);
	free(job->reason);
	free(job);
}

/* A file that can never become a message: say so, and remove it. */
static void
pickup_remove(const char *name, unsigned long uid, const char *why)
{
	char	esc[LOG_ESCAPE_SIZE];

	log_warnx("pickup: maildrop/%s: uid=%lu: removed: %s",
	    log_escape(esc, sizeof esc, name, strlen(name)), uid, why);
	if (unlinkat(pickup.dirfd, name, 0) == -1 && errno != ENOENT)
		log_warn("pickup: cannot remove maildrop/%s", esc);
}

static int
pickup_is_local(const char *domain, void *arg)
{
	(void)arg;
	return config_is_local_domain(pickup.conf, domain);
}

/*
 * A whole maildrop file into env, as maildrop.c reads it with the
 * configuration's limits; *content and *clen point at the message
 * inside buf.
 */
static int
pickup_parse(char *buf, size_t len, struct envelope *env,
    const char **content, size_t *clen, char *why, size_t whysize)
{
	struct maildrop_limits	limits;

	memset(&limits, 0, sizeof limits);
	limits.max_message_size = pickup.conf->max_message_size;
	limits.max_recipients = pickup.conf->max_recipients;
	limits.is_local = pickup_is_local;
	return maildrop_parse(buf, len, &limits, env, content, clen, why,
	    whysize);
}

/* Read a whole file of at most max octets; EFBIG past that. */
static int
pickup_read(int fd, size_t max, char **bufp, size_t *lenp)
{
	if (util_read_fd(fd, max + 1, NULL, bufp, lenp) == -1)
		return -1;
	if (*lenp > max) {
		free(*bufp);
		errno = EFBIG;
		return -1;
	}
	return 0;
}

/*
 * Our trace header, first in the stored message.  The submitter is the
 * file's owner, the one thing about a maildrop file nobody can forge.
 */
static int
pickup_write_received(struct queue_msg *m, const struct pickup_job *job)
{
	struct trace_received	 t;
	struct passwd		*pw;
	char			 hdr[TRACE_RECEIVED_SIZE], user[64];
	char			 local[128];
	size_t			 i, n;

	/* Blocking: a passwd lookup, local files on a mail server. */
	user[0] = '\0';
	if ((pw = getpwuid((uid_t)job->uid)) != NULL &&
	    strlen(pw->pw_name) < sizeof user - 8) {
		for (i = 0; pw->pw_name[i] != '\0'; i++) {
			if (pw->pw_name[i] <= ' ' || pw->pw_name[i] > '~' ||
			    strchr("()\\", pw->pw_name[i]) != NULL)
				break;
		}
		if (pw->pw_name[i] == '\0' && i > 0)
			util_snprintf(user, sizeof user, " (user %s)",
			    pw->pw_name);
	}
	util_snprintf(local, sizeof local, "from userid %lu%s", job->uid,
	    user);
	memset(&t, 0, sizeof t);
	t.by = pickup.conf->hostname;
	t.local = local;
	t.id = job->env.id;
	if (job->env.nrcpts == 1)
		t.rcpt = job->env.rcpts[0].addr;
	t.when = time(NULL);
	n = trace_received(hdr, sizeof hdr, &t);
	return queue_msg_write(m, hdr, n);
}

static int
pickup_is_done(const struct stat *st)
{
	time_t	now;
	size_t	i;

	for (i = 0; i < pickup.ndone; i++) {
		if (pickup.done[i].dev == st->st_dev &&
		    pickup.done[i].ino == st->st_ino)
			return 1;
	}
	now = time(NULL);
	for (i = 0; i < pickup.nlater; i++) {
		if (pickup.later[i].dev != st->st_dev ||
		    pickup.later[i].ino != st->st_ino)
			continue;
		if (now < pickup.later[i].until)
			return 1;
		pickup.later[i] = pickup.later[--pickup.nlater];
		break;
	}
	return 0;
}

/* A file a filter refused for now: left alone until the next rescan. */
static void
pickup_later(const struct pickup_job *job)
{
	time_t	now = time(NULL);
	size_t	i = 0;

	/* Entries of files gone meanwhile go when they expire. */
	while (i < pickup.nlater) {
		if (pickup.later[i].until <= now)
			pickup.later[i] = pickup.later[--pickup.nlater];
		else
			i++;
	}
	pickup.later = xreallocarray(pickup.later, pickup.nlater + 1,
	    sizeof *pickup.later);
	pickup.later[pickup.nlater].dev = job->dev;
	pickup.later[pickup.nlater].ino = job->ino;
	pickup.later[pickup.nlater++].until = now + PICKUP_RESCAN;
}

static void
pickup_commit_cb(void *arg, int error)
{
	struct pickup_job	*job = arg;
	char			 esc[LOG_ESCAPE_SIZE];

	job->commit = NULL;
	if (error != 0)
		log_warnx("pickup: maildrop/%s: not queued; tried again "
		    "later", log_escape(esc, sizeof esc, job->name,
		    strlen(job->name)));
	else {
		if (job->kind == PICKUP_KIND_REPORT)
			log_mail("pickup", "%s: to=<%s>: sender non-delivery "
			    "notification for a message refused by a filter",
			    job->env.id, log_escape(esc, sizeof esc,
			    job->env.nrcpts > 0 ? job->env.rcpts[0].addr : "",
			    job->env.nrcpts > 0 ?
			    strlen(job->env.rcpts[0].addr) : 0));
		else
			log_mail("pickup", "%s: uid=%lu from=<%s>",
			    job->env.id, job->uid, log_escape(esc, sizeof esc,
			    job->env.sender, strlen(job->env.sender)));
		log_mail("qmgr", "%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu "
		    "(queue active)", job->env.id, log_escape(esc, sizeof esc,
		    job->env.sender, strlen(job->env.sender)), job->env.size,
		    job->env.nrcpts);
		if (job->kind == PICKUP_KIND_HOLD) {
			/*
			 * Blocking: two renames and a directory sync, as
			 * for "ternctl hold"; quarantine is rare.
			 */
			if (queue_hold(job->env.id) == -1)
				log_warn("%s: cannot put on hold: %s; it "
				    "waits in the queue until the next start",
				    job->env.id, job->reason);
			else
				log_info("%s: held: quarantined by a filter: "
				    "%s", job->env.id, job->reason);
		} else if (!pickup.stopped && pickup.queued != NULL)
			pickup.queued(&job->env);
		/*
		 * Not synced: should the removal be lost, the file is
		 * queued again, a repeat and never a loss.
		 */
		if (unlinkat(pickup.dirfd, job->name, 0) == -1 &&
		    errno != ENOENT && !pickup.stopped) {
			log_warn("%s: cannot remove maildrop/%s; it is "
			    "not taken again", job->env.id, log_escape(esc,
			    sizeof esc, job->name, strlen(job->name)));
			pickup.done = xreallocarray(pickup.done,
			    pickup.ndone + 1, sizeof *pickup.done);
			pickup.done[pickup.ndone].dev = job->dev;
			pickup.done[pickup.ndone++].ino = job->ino;
		}
	}
	pickup_job_free(job);
	if (pickup.stopped) {
		if (pickup.njobs == 0 && pickup.dirfd != -1) {
			close(pickup.dirfd);
			pickup.dirfd = -1;
		}
	} else
		pickup_slot_freed();	/* the pass waited for a slot */
}

/*
 * Local recipients are resolved as over SMTP, into the users their
 * aliases reach, each keeping the address given as its ORCPT.  One that
 * nothing answers to stays as given: local delivery fails it with 5.1.1
 * and the submitter gets the bounce, the only way to tell them.
 */
static void
pickup_expand(struct envelope *env)
{
	struct envelope		 out;
	struct envelope_rcpt	*r;
	struct users_rcpt	*res;
	const char		*addr, *at;
	char			 orcpt[ADDR_PATH_SIZE + 8];
	size_t			 i, j, k, n;

	envelope_init(&out);
	for (i = 0; i < env->nrcpts; i++) {
		addr = env->rcpts[i].addr;
		at = strrchr(addr, '@');
		res = NULL;
		n = 0;
		if (pickup.users == NULL || at == NULL ||
		    !config_is_local_domain(pickup.conf, at + 1) ||
		    users_resolve(pickup.users, addr, &res, &n) != 0)
			n = 0;
		for (j = 0; j < (n > 0 ? n : 1); j++) {
			const char *final = n > 0 ? res[j].addr : addr;

			for (k = 0; k < out.nrcpts; k++) {
				if (strcmp(out.rcpts[k].addr, final) == 0)
					break;
			}
			if (k < out.nrcpts)
				continue;
			r = envelope_add_rcpt(&out, final);
			if (strcmp(final, addr) != 0) {
				util_snprintf(orcpt, sizeof orcpt, "rfc822;%s",
				    addr);
				envelope_set_str(&r->orcpt, orcpt);
			}
		}
		free(res);
	}
	/* Take the new list; the old one goes with out. */
	r = env->rcpts;
	n = env->nrcpts;
	i = env->rcpts_alloc;
	env->rcpts = out.rcpts;
	env->nrcpts = out.nrcpts;
	env->rcpts_alloc = out.rcpts_alloc;
	out.rcpts = r;
	out.nrcpts = n;
	out.rcpts_alloc = i;
	envelope_clear(&out);
}

/* The file stays in maildrop/ for the next pass; the job goes. */
static void
pickup_not_queued(struct pickup_job *job)
{
	char	esc[LOG_ESCAPE_SIZE];

	log_warnx("pickup: maildrop/%s: not queued; tried again later",
	    log_escape(esc, sizeof esc, job->name, strlen(job->name)));
	pickup_job_done(job);
}

/* A pass that waited for a free slot goes on. */
static void
pickup_slot_freed(void)
{
	if (!pickup.stopped && pickup.scan != NULL &&
	    pickup.njobs == PICKUP_JOBS_MAX - 1)
		pickup_kick();
}

static void
pickup_chain_free_cb(evutil_socket_t unused, short events, void *arg)
{
	milter_chain_free(arg);
}

/*
 * The filters are done with a job: its chain goes (its connections
 * closed) once the filter's callback under way has returned.  What the
 * chain holds, its changes, stays valid until then.
 */
static void
pickup_chain_drop(struct pickup_job *job)
{
	struct timeval	tv = { 0, 0 };

	if (event_base_once(pickup.base, -1, EV_TIMEOUT, pickup_chain_free_cb,
	    job->chain, &tv) == -1)
		fatalx("pickup: event_base_once");
	job->chain = NULL;
}

/* A job that ends without a commit. */
static void
pickup_job_done(struct pickup_job *job)
{
	pickup_job_free(job);
	pickup_slot_freed();
}

/* Each piece of a message the filters changed, into the spool file. */
static int
pickup_write_out(void *arg, const void *data, size_t len)
{
	struct pickup_job	*job = arg;
	const unsigned char	*p = data;
	size_t			 i;

	for (i = 0; i < len && job->env.body == ENVELOPE_BODY_7BIT; i++) {
		if (p[i] >= 0x80)
			job->env.body = ENVELOPE_BODY_8BITMIME;
	}
	return queue_msg_write(job->msg, data, len);
}

/*
 * Write the message (with the filters' changes, when mods is not NULL)
 * after our Received header into the spool file and commit it.
 */
static void
pickup_queue(struct pickup_job *job, const char *content, size_t clen,
    const struct milter_mods *mods)
{
	struct queue_msg	*m;
	char			 esc[LOG_ESCAPE_SIZE];
	char			*cause = NULL;
	int			 rc;

	if (mods != NULL && milter_edit_envelope(mods, &job->env,
	    &cause) == -1) {
		log_warnx("%s: maildrop/%s: %s; tried again later",
		    job->env.id, log_escape(esc, sizeof esc, job->name,
		    strlen(job->name)), cause);
		free(cause);
		pickup_later(job);
		pickup_job_done(job);
		return;
	}
	if (job->env.nrcpts == 0) {
		log_mail("pickup", "%s: uid=%lu from=<%s>: every recipient "
		    "removed by a filter; the message is dropped",
		    job->env.id, job->uid, log_escape(esc, sizeof esc,
		    job->env.sender, strlen(job->env.sender)));
		if (unlinkat(pickup.dirfd, job->name, 0) == -1 &&
		    errno != ENOENT)
			log_warn("%s: cannot remove maildrop file", job->env.id);
		pickup_job_done(job);
		return;
	}
	pickup_expand(&job->env);
	if (mods != NULL && milter_mods_has_content(mods))
		job->env.body = ENVELOPE_BODY_7BIT;
	if (pickup_write_received(job->msg, job) == -1)
		rc = -1;
	else if (mods != NULL && milter_mods_has_content(mods))
		rc = milter_edit_message(mods, content, clen,
		    pickup_write_out, job);
	else
		rc = queue_msg_write(job->msg, content, clen);
	if (rc == -1) {
		log_warn("%s: queue file write", job->env.id);
		pickup_not_queued(job);
		return;
	}
	job->env.next_attempt = job->env.arrival;
	job->env.size = queue_msg_size(job->msg);
	util_strlcpy(job->env.protocol, "local", sizeof job->env.protocol);
	m = job->msg;
	job->msg = NULL;
	job->commit = queue_msg_commit(m, &job->env, pickup_commit_cb, job);
}

/* Postfix's "from=<...> to=<...> proto=..." tail of a filter's verdict. */
static void
pickup_log_verdict(const struct pickup_job *job, const char *what,
    const struct milter_reply *r, const char *outcome)
{
	char	from[LOG_ESCAPE_SIZE], to[LOG_ESCAPE_SIZE];
	char	text[LOG_ESCAPE_SIZE], raw[MILTER_REPLY_SIZE + 32];
	size_t	i;

	i = job->step == PICKUP_STEP_RCPT ? job->rcpt : 0;
	log_escape(from, sizeof from, job->env.sender,
	    strlen(job->env.sender));
	log_escape(to, sizeof to, job->env.rcpts[i].addr,
	    strlen(job->env.rcpts[i].addr));
	/* As Postfix: the reply without its code. */
	if (r->code != 0)
		snprintf(raw, sizeof raw, "%s%s%s", r->esc,
		    r->esc[0] != '\0' ? " " : "", r->text);
	else
		util_strlcpy(raw, r->reason, sizeof raw);
	log_escape(text, sizeof text, raw, strlen(raw));
	log_mail("pickup", "%s: %s: %s from %s[%s]: %s; from=<%s> to=<%s> "
	    "proto=local uid=%lu%s%s", job->env.id, what,
	    pickup_step_names[job->step], PICKUP_CLIENT_NAME,
	    PICKUP_CLIENT_ADDR, text, from, to, job->uid,
	    outcome != NULL ? ": " : "", outcome != NULL ? outcome : "");
}

/*
 * A filter refused the message for good.  Its submitter has gone: the
 * sender gets a non-delivery report with the filter's reply (none for
 * the null sender), and the message itself is never queued.  The file
 * goes once the report is committed.
 */
static void
pickup_refused(struct pickup_job *job, const struct milter_reply *r)
{
	struct envelope		 rep;
	struct dsn_params	 p;
	struct envelope_rcpt	*rr;
	size_t			*idx, i;
	char			 error[MILTER_REPLY_SIZE + 32];
	char			*text = NULL;
	size_t			 tlen;
	uint64_t		 limit = pickup.conf->bounce_size_limit;

	pickup_chain_drop(job);
	if (job->env.sender[0] == '\0') {
		pickup_log_verdict(job, "milter-reject", r, "from=<>, no "
		    "report returned; the message is dropped");
		if (unlinkat(pickup.dirfd, job->name, 0) == -1 &&
		    errno != ENOENT)
			log_warn("%s: cannot remove maildrop file", job->env.id);
		pickup_job_done(job);
		return;
	}
	pickup_log_verdict(job, "milter-reject", r, "returned to the sender");
	snprintf(error, sizeof error, "%d %s %s", r->code >= 500 &&
	    r->code < 600 ? r->code : 550, r->esc[0] == '5' ? r->esc :
	    "5.7.1", r->text[0] != '\0' ? r->text : "Message rejected by a "
	    "content filter");
	for (i = 0; i < job->env.nrcpts; i++) {
		rr = &job->env.rcpts[i];
		util_strlcpy(rr->status, r->esc[0] == '5' ? r->esc : "5.7.1",
		    sizeof rr->status);
		envelope_set_str(&rr->error, error);
	}
	/* The message's own spool file is never committed. */
	queue_msg_abort(job->msg);
	envelope_init(&rep);
	if ((job->msg = queue_msg_new(rep.id, sizeof rep.id)) == NULL) {
		envelope_clear(&rep);
		pickup_later(job);
		pickup_not_queued(job);
		return;
	}
	idx = xcalloc(job->env.nrcpts, sizeof *idx);
	for (i = 0; i < job->env.nrcpts; i++)
		idx[i] = i;
	memset(&p, 0, sizeof p);
	p.reporting_mta = pickup.conf->hostname;
	p.id = rep.id;
	p.now = time(NULL);
	p.action = DSN_ACTION_FAILED;
	p.original = job->content;
	p.original_len = job->clen;
	/* As for any bounce: the whole message up to bounce_size_limit. */
	p.full = limit > 0 && job->clen <= limit;
	if (dsn_build(&job->env, idx, job->env.nrcpts, &p, &text,
	    &tlen) == -1 || queue_msg_write(job->msg, text, tlen) == -1) {
		log_warn("%s: cannot build the non-delivery report",
		    job->env.id);
		free(idx);
		free(text);
		envelope_clear(&rep);
		pickup_later(job);
		pickup_not_queued(job);
		return;
	}
	free(idx);
	free(text);
	rep.arrival = p.now;
	rep.next_attempt = p.now;
	envelope_set_str(&rep.sender, "");
	envelope_add_rcpt(&rep, job->env.sender);
	rep.size = tlen;
	rep.body = job->env.body;
	rep.smtputf8 = job->env.smtputf8;
	util_strlcpy(rep.helo, pickup.conf->hostname, sizeof rep.helo);
	util_strlcpy(rep.protocol, "local", sizeof rep.protocol);
	envelope_clear(&job->env);
	job->env = rep;
	/* A local sender's report goes where its aliases say. */
	pickup_expand(&job->env);
	job->kind = PICKUP_KIND_REPORT;
	job->commit = queue_msg_commit(job->msg, &job->env, pickup_commit_cb,
	    job);
	job->msg = NULL;
}

/* The filters are done: queue the message with their changes. */
static void
pickup_filtered(struct pickup_job *job, const struct milter_reply *r)
{
	const struct milter_mods	*mods = NULL;

	if (job->step == PICKUP_STEP_MESSAGE)
		mods = milter_chain_mods(job->chain);
	pickup_chain_drop(job);
	if (r->verdict == MILTER_QUARANTINE) {
		job->kind = PICKUP_KIND_HOLD;
		job->reason = xstrdup(r->reason[0] != '\0' ? r->reason :
		    mods != NULL && mods->quarantine != NULL ?
		    mods->quarantine : "quarantined");
		pickup_log_verdict(job, "milter-hold", r, NULL);
	}
	pickup_queue(job, job->content, job->clen, mods);
}

static void	pickup_filter_step(struct pickup_job *);

/* The verdict of one step of the filters on a local submission. */
static void
pickup_filter_cb(const struct milter_reply *r, void *arg)
{
	struct pickup_job	*job = arg;

	switch (r->verdict) {
	case MILTER_CONTINUE:
		if (job->step == PICKUP_STEP_RCPT &&
		    ++job->rcpt < job->env.nrcpts) {
			pickup_filter_step(job);
			return;
		}
		if (job->step == PICKUP_STEP_MESSAGE) {
			pickup_filtered(job, r);
			return;
		}
		job->step++;
		pickup_filter_step(job);
		return;
	case MILTER_ACCEPT:
	case MILTER_QUARANTINE:
		pickup_filtered(job, r);
		return;
	case MILTER_REJECT:
		if (job->step != PICKUP_STEP_RCPT) {
			pickup_refused(job, r);
			return;
		}
		/*
		 * As Postfix: a filter may not refuse one recipient of a
		 * local submission, which has nobody to tell; that is a
		 * configuration error, and the message waits for it to be
		 * mended.
		 */
		pickup_log_verdict(job, "milter-reject", r, "left in maildrop, "
		    "tried again later");
		log_warnx("%s: milter configuration error: a filter may not "
		    "reject a recipient of a local submission", job->env.id);
		pickup_chain_drop(job);
		pickup_later(job);
		pickup_job_done(job);
		return;
	case MILTER_TEMPFAIL:
		pickup_log_verdict(job, "milter-reject", r, "left in maildrop, "
		    "tried again later");
		pickup_chain_drop(job);
		pickup_later(job);
		pickup_job_done(job);
		return;
	case MILTER_DISCARD:
		pickup_log_verdict(job, "milter-discard", r, NULL);
		pickup_chain_drop(job);
		if (unlinkat(pickup.dirfd, job->name, 0) == -1 &&
		    errno != ENOENT)
			log_warn("%s: cannot remove maildrop file", job->env.id);
		pickup_job_done(job);
		return;
	}
}

/*
 * The next step of the filters, as Postfix sends local mail to its
 * non_smtpd_milters: a client "localhost" [127.0.0.1] that says HELO
 * localhost, then the envelope and the message.
 */
static void
pickup_filter_step(struct pickup_job *job)
{
	struct milter_client	 c;
	char			 v[64];

	switch (job->step) {
	case PICKUP_STEP_CONNECT:
		snprintf(v, sizeof v, "%s %s", PACKAGE_NAME, PACKAGE_VERSION);
		milter_chain_macro(job->chain, "j", pickup.conf->hostname);
		milter_chain_macro(job->chain, "{daemon_name}",
		    pickup.conf->hostname);
		milter_chain_macro(job->chain, "v", v);
		milter_chain_macro(job->chain, "_", PICKUP_CLIENT_NAME
		    " [" PICKUP_CLIENT_ADDR "]");
		milter_chain_macro(job->chain, "{client_addr}",
		    PICKUP_CLIENT_ADDR);
		milter_chain_macro(job->chain, "{client_name}",
		    PICKUP_CLIENT_NAME);
		milter_chain_macro(job->chain, "{client_ptr}",
		    PICKUP_CLIENT_NAME);
		milter_chain_macro(job->chain, "i", job->env.id);
		memset(&c, 0, sizeof c);
		c.name = PICKUP_CLIENT_NAME;
		c.addr = PICKUP_CLIENT_ADDR;
		milter_chain_connect(job->chain, &c, pickup_filter_cb, job);
		break;
	case PICKUP_STEP_HELO:
		milter_chain_helo(job->chain, PICKUP_CLIENT_NAME,
		    pickup_filter_cb, job);
		break;
	case PICKUP_STEP_MAIL:
		milter_chain_mail(job->chain, job->env.sender, "",
		    pickup_filter_cb, job);
		break;
	case PICKUP_STEP_RCPT:
		milter_chain_rcpt(job->chain, job->env.rcpts[job->rcpt].addr,
		    "", pickup_filter_cb, job);
		break;
	case PICKUP_STEP_DATA:
		milter_chain_data(job->chain, pickup_filter_cb, job);
		break;
	case PICKUP_STEP_MESSAGE:
		milter_chain_message(job->chain, job->content, job->clen,
		    pickup_filter_cb, job);
		break;
	}
}

/*
 * Take one maildrop file: check it and ask for its commit, or remove it
 * when it can never be a message.  Returns the octets read, to bound a
 * turn.  A file that cannot be opened for now (no descriptors left)
 * stays for the next scan; one ternd may never read is removed.
 * Blocking: reading a local file and writing it to the spool, as the
 * queue does for a message received over SMTP.
 */
static size_t
pickup_file(const char *name)
{
	struct pickup_job	*job;
	struct stat		 st;
	const char		*content;
	char			 esc[LOG_ESCAPE_SIZE], why[MAILDROP_WHY_SIZE];
	char			*buf;
	size_t			 len, clen, max;
	unsigned long		 uid;
	int			 fd;

	fd = openat(pickup.dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP && fstatat(pickup.dirfd, name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
			pickup_remove(name, (unsigned long)st.st_uid,
			    "a symbolic link");
			return 0;
		}
		/* What we may not read, or is no file, we never will. */
		if ((errno == EACCES || errno == EPERM || errno == ENXIO ||
		    errno == ENODEV || errno == ELOOP) && fstatat(pickup.dirfd,
		    name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			pickup_remove(name, (unsigned long)st.st_uid,
			    strerror(errno));
			return 0;
		}
		log_warn("pickup: cannot open maildrop/%s; left for the next "
		    "scan", log_escape(esc, sizeof esc, name, strlen(name)));
		return 0;
	}
	if (fstat(fd, &st) == -1) {
		log_warn("pickup: maildrop/%s", log_escape(esc, sizeof esc,
		    name, strlen(name)));
		close(fd);
		return 0;
	}
	if (pickup_is_done(&st)) {
		close(fd);
		return 0;
	}
	uid = (unsigned long)st.st_uid;
	max = (size_t)pickup.conf->max_message_size + MAILDROP_HDR_MAX;
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		if (S_ISDIR(st.st_mode)) {
			if (unlinkat(pickup.dirfd, name, AT_REMOVEDIR) == 0)
				log_warnx("pickup: maildrop/%s: uid=%lu: "
				    "removed: a directory", log_escape(esc,
				    sizeof esc, name, strlen(name)), uid);
			return 0;
		}
		pickup_remove(name, uid, "not a regular file");
		return 0;
	}
	/*
	 * Made in maildrop/, a file has its group (the directory is
	 * setgid); one renamed in from elsewhere could be anyone's.
	 */
	if (st.st_gid != getegid()) {
		close(fd);
		pickup_remove(name, uid, "not written in maildrop/");
		return 0;
	}
	/* A second link could carry a file its owner never submitted. */
	if (st.st_nlink != 1) {
		close(fd);
		pickup_remove(name, uid, "more than one link");
		return 0;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		pickup_remove(name, uid, "larger than max_message_size");
		return 0;
	}
	/*
	 * As ternd refuses MAIL on a full spool: the file stays where it is
	 * until the next pass finds room.  Said once, not once a file.
	 */
	if (!queue_has_room(-1, (uint64_t)st.st_size,
	    pickup.conf->min_free_space)) {
		close(fd);
		if (!pickup.no_room)
			log_warnx("pickup: insufficient system storage (less "
			    "than min_free_space would be left); maildrop "
			    "files wait");
		pickup.no_room = 1;
		return 0;
	}
	if (pickup.no_room)
		log_info("pickup: the spool has room again; maildrop files "
		    "are taken");
	pickup.no_room = 0;
	if (pickup_read(fd, max, &buf, &len) == -1) {
		if (errno == EFBIG) {
			close(fd);
			pickup_remove(name, uid, "larger than "
			    "max_message_size");
			return 0;
		}
		log_warn("pickup: cannot read maildrop/%s; left for the next "
		    "scan", log_escape(esc, sizeof esc, name, strlen(name)));
		close(fd);
		return 0;
	}
	close(fd);

	job = xcalloc(1, sizeof *job);
	envelope_init(&job->env);
	job->uid = uid;
	job->dev = st.st_dev;
	job->ino = st.st_ino;
	util_strlcpy(job->name, name, sizeof job->name);
	TAILQ_INSERT_TAIL(&pickup.jobs, job, entry);
	pickup.njobs++;
	if (pickup_parse(buf, len, &job->env, &content, &clen, why,
	    sizeof why) == -1) {
		pickup_remove(name, uid, why);
		pickup_job_free(job);
		free(buf);
		return len;
	}
	if ((job->msg = queue_msg_new(job->env.id,
	    sizeof job->env.id)) == NULL) {
		pickup_not_queued(job);
		free(buf);
		return len;
	}
	job->env.arrival = time(NULL);
	if (pickup.conf->nnon_smtpd_milters > 0 &&
	    (job->chain = milter_chain_new(pickup.base, pickup.conf,
	    MILTER_LIST_NON_SMTPD, job->env.id)) != NULL) {
		/* The file stays in memory until the filters are done. */
		job->buf = buf;
		job->content = content;
		job->clen = clen;
		pickup_filter_step(job);
		return len;
	}
	pickup_queue(job, content, clen, NULL);
	free(buf);
	return len;
}

/* A ".tmp." file a sendmail that died left behind for long: remove it. */
static void
pickup_stale(const char *name)
{
	struct stat	st;
	char		esc[LOG_ESCAPE_SIZE];

	if (strncmp(name, ".tmp.", 5) != 0 ||
	    fstatat(pickup.dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(st.st_mode) || st.st_mtime > time(NULL) - PICKUP_STALE)
		return;
	if (unlinkat(pickup.dirfd, name, 0) == 0)
		log_info("pickup: maildrop/%s: uid=%lu: removed an unfinished "
		    "file a day old", log_escape(esc, sizeof esc, name,
		    strlen(name)), (unsigned long)st.st_uid);
}

/*
 * One turn of a pass over maildrop/: a few files, then back to the loop.
 * A pass remembers where it stands in the directory between turns; a
 * file that came during a pass is found by the next one.
 */
static void
pickup_work_cb(evutil_socket_t unused, short events, void *arg)
{
	struct dirent	*de;
	size_t		 files = 0, bytes = 0;
	int		 fd;

	if (pickup.stopped)
		return;
	if (pickup.scan == NULL) {
		fd = openat(pickup.dirfd, ".", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
		if (fd == -1 || (pickup.scan = fdopendir(fd)) == NULL) {
			log_warn("pickup: cannot read maildrop");
			if (fd != -1)
				close(fd);
			return;
		}
		pickup.rescan = 0;
	}
	while (files < PICKUP_FILES_TURN && bytes < PICKUP_BYTES_TURN) {
		/* pickup_commit_cb() resumes the pass. */
		if (pickup.njobs >= PICKUP_JOBS_MAX)
			return;
		if ((de = readdir(pickup.scan)) == NULL) {
			closedir(pickup.scan);
			pickup.scan = NULL;
			if (pickup.rescan)
				pickup_kick();
			return;
		}
		if (de->d_name[0] == '.') {
			pickup_stale(de->d_name);
			continue;
		}
		if (pickup_is_busy(de->d_name))
			continue;
		bytes += pickup_file(de->d_name);
		files++;
	}
	pickup_kick();
}

/* A file was renamed into maildrop/ (or the event queue overflowed). */
static void
pickup_inotify_cb(evutil_socket_t fd, short events, void *arg)
{
	char	buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));

	while (read(fd, buf, sizeof buf) > 0)
		;
	pickup_wake();
}

static void
pickup_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	pickup_wake();
}

/*
 * Watch dir (spool/maildrop) and take what is there once the loop runs.
 * Called before privileges are dropped: the watch and the directory
 * stay usable after.
 */
int
pickup_init(struct event_base *base, const char *dir,
    const struct config *conf, pickup_queued_cb queued, char **cause)
{
	struct timeval	tv = { PICKUP_RESCAN, 0 };

	pickup.base = base;
	pickup.conf = conf;
	pickup.queued = queued;
	pickup.stopped = 0;
	pickup.rescan = 0;
	pickup.njobs = 0;
	TAILQ_INIT(&pickup.jobs);
	pickup.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (pickup.dirfd == -1) {
		xasprintf(cause, "%s: %s", dir, strerror(errno));
		return -1;
	}
	pickup.inotifyfd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (pickup.inotifyfd == -1 || inotify_add_watch(pickup.inotifyfd, dir,
	    IN_MOVED_TO | IN_ONLYDIR) == -1) {
		/* The rescans still find every file, only later. */
		log_warn("pickup: cannot watch %s; looking every %d seconds",
		    dir, PICKUP_RESCAN);
		if (pickup.inotifyfd != -1)
			close(pickup.inotifyfd);
		pickup.inotifyfd = -1;
	} else {
		pickup.inotify_ev = event_new(base, pickup.inotifyfd,
		    EV_READ | EV_PERSIST, pickup_inotify_cb, NULL);
		if (pickup.inotify_ev == NULL ||
		    event_add(pickup.inotify_ev, NULL) == -1)
			fatalx("pickup: event_new");
	}
	pickup.timer_ev = event_new(base, -1, EV_PERSIST, pickup_timer_cb,
	    NULL);
	pickup.work_ev = evtimer_new(base, pickup_work_cb, NULL);
	if (pickup.timer_ev == NULL || pickup.work_ev == NULL ||
	    evtimer_add(pickup.timer_ev, &tv) == -1)
		fatalx("pickup: event_new");
	pickup_kick();
	return 0;
}

/* The users and aliases in force, for resolving local recipients. */
void
pickup_set_users(const struct users *users)
{
	pickup.users = users;
}

/* A reload: limits and local domains for the next file. */
void
pickup_set_config(const struct config *conf)
{
	pickup.conf = conf;
	/* A new min_free_space may let waiting files go now. */
	if (pickup.no_room)
		pickup_wake();
}

/*
 * Stop looking.  Commits in flight still finish (queue_shutdown() runs
 * them) and their files are removed then, so none is queued twice.
 */
void
pickup_shutdown(void)
{
	struct pickup_job	*job, *next;

	pickup.stopped = 1;
	if (pickup.inotify_ev != NULL)
		event_free(pickup.inotify_ev);
	if (pickup.timer_ev != NULL)
		event_free(pickup.timer_ev);
	if (pickup.work_ev != NULL)
		event_free(pickup.work_ev);
	pickup.inotify_ev = pickup.timer_ev = pickup.work_ev = NULL;
	if (pickup.scan != NULL)
		closedir(pickup.scan);
	pickup.scan = NULL;
	if (pickup.inotifyfd != -1)
		close(pickup.inotifyfd);
	pickup.inotifyfd = -1;
	free(pickup.done);
	pickup.done = NULL;
	pickup.ndone = 0;
	free(pickup.later);
	pickup.later = NULL;
	pickup.nlater = 0;
	/* Messages still in their filters stay in maildrop/ for next time. */
	for (job = TAILQ_FIRST(&pickup.jobs); job != NULL; job = next) {
		next = TAILQ_NEXT(job, entry);
		if (job->chain != NULL)
			pickup_job_free(job);
	}
	if (pickup.njobs == 0 && pickup.dirfd != -1) {
		close(pickup.dirfd);
		pickup.dirfd = -1;
	}
}
