/*
 * bounce.c: a report to a message's sender, from building it to its
 * commit.  The report returns the whole message up to bounce_size_limit
 * for a failure unless the sender asked RET=HDRS, the header otherwise;
 * a local sender gets it through its aliases, or the postmaster when
 * nothing takes the address.  It never decides who is reported on nor
 * touches the message's own envelope: that is the queue manager's.
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "addr.h"
#include "bounce.h"
#include "config.h"
#include "dsn.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "users.h"
#include "util.h"

/* A report being committed; owned by this module. */
struct bounce {
	struct envelope		 env;		/* the report's own */
	struct queue_commit	*commit;
	enum dsn_action		 action;
	char			 orig_id[ENVELOPE_ID_SIZE];
	bounce_cb		 cb;
	void			*arg;
};

/* What each report is called in the log, after Postfix's bounce daemon. */
static const char *const bounce_names[] = {
	[DSN_ACTION_FAILED] = "non-delivery notification",
	[DSN_ACTION_DELAYED] = "delay notification",
	[DSN_ACTION_DELIVERED] = "delivery status notification",
	[DSN_ACTION_RELAYED] = "delivery status notification",
};

const char *
bounce_name(enum dsn_action action)
{
	return bounce_names[action];
}

static const char *
bounce_domain(const char *addr)
{
	const char	*at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/*
 * The report's recipients: a local sender resolved through its aliases,
 * or the postmaster when nothing takes it, so that a report never turns
 * into one more that cannot be delivered.
 */
static void
bounce_to(struct envelope *benv, const struct envelope *env,
    const struct bounce_params *bp)
{
	struct envelope_rcpt	*r;
	struct users_rcpt	*res;
	const char		*sender = env->sender;
	char			 orcpt[ADDR_PATH_SIZE + 8];
	size_t			 i, n;
	int			 rc;

	if (bp->users == NULL || strrchr(sender, '@') == NULL ||
	    !config_is_local_domain(bp->conf, bounce_domain(sender)) ||
	    (rc = users_resolve_notice(bp->users, sender, &res, &n)) < 0) {
		envelope_add_rcpt(benv, sender);
		return;
	}
	if (rc == 1)
		log_info("%s: sender %s is no address here: its report goes "
		    "to the postmaster", env->id, sender);
	util_snprintf(orcpt, sizeof orcpt, "rfc822;%s", sender);
	for (i = 0; i < n; i++) {
		r = envelope_add_rcpt(benv, res[i].addr);
		if (strcmp(res[i].addr, sender) != 0)
			envelope_set_str(&r->orcpt, orcpt);
	}
	free(res);
}

static void
bounce_free(struct bounce *b)
{
	envelope_clear(&b->env);
	free(b);
}

static void
bounce_committed_cb(void *arg, int error)
{
	struct bounce	*b = arg;

	b->commit = NULL;
	if (error != 0) {
		errno = error;
		log_warn("%s: cannot queue the %s", b->orig_id,
		    bounce_names[b->action]);
		b->cb(b->arg, error, NULL);
	} else {
		log_mail("bounce", "%s: sender %s: %s", b->orig_id,
		    bounce_names[b->action], b->env.id);
		log_mail("qmgr", "%s: from=<>, size=%" PRIu64 ", nrcpt=%zu "
		    "(queue active)", b->env.id, b->env.size, b->env.nrcpts);
		b->cb(b->arg, 0, &b->env);
	}
	bounce_free(b);
}

/*
 * Queue one report for the sender of env about the recipients bp names.
 * A failure report returns the whole message up to bounce_size_limit,
 * unless the sender asked for RET=HDRS; the others, and a larger
 * message, return the headers alone (RFC 3461 4.3).  NULL, logged, when
 * the report cannot be written; else cb follows, never before this
 * returns.
 */
struct bounce *
bounce_start(const struct envelope *env, const struct bounce_params *bp,
    bounce_cb cb, void *arg)
{
	struct bounce		*b;
	struct dsn_params	 p;
	struct queue_msg	*qm;
	char			*orig = NULL, *text = NULL;
	size_t			 olen = 0, tlen;
	size_t			 limit = bp->conf->bounce_size_limit;
	int			 full = bp->action == DSN_ACTION_FAILED &&
				    env->ret != ENVELOPE_RET_HDRS &&
				    limit > 0;

	/* As Postfix: a message over bounce_size_limit returns its header. */
	if (full && (queue_msg_read(env->id, limit + 1, &orig, &olen) ==
	    -1 || olen > limit)) {
		free(orig);
		orig = NULL;
		olen = 0;
		full = 0;
	}
	if (!full && queue_msg_headers(env->id, &orig, &olen) == -1)
		log_warn("%s: cannot read the message to return", env->id);
	b = xcalloc(1, sizeof *b);
	envelope_init(&b->env);
	b->action = bp->action;
	util_strlcpy(b->orig_id, env->id, sizeof b->orig_id);
	if ((qm = queue_msg_new(b->env.id, sizeof b->env.id)) == NULL)
		goto fail;
	memset(&p, 0, sizeof p);
	p.reporting_mta = bp->conf->hostname;
	p.id = b->env.id;
	p.now = bp->now;
	p.action = bp->action;
	p.original = orig != NULL ? orig : "";
	p.original_len = olen;
	p.full = full;
	p.retry_until = bp->retry_until;
	if (dsn_build(env, bp->idx, bp->n, &p, &text, &tlen) == -1 ||
	    queue_msg_write(qm, text, tlen) == -1) {
		queue_msg_abort(qm);
		goto fail;
	}
	b->env.arrival = p.now;
	envelope_set_str(&b->env.sender, "");
	bounce_to(&b->env, env, bp);
	b->env.size = tlen;
	b->env.body = env->body;
	b->env.smtputf8 = env->smtputf8;
	util_strlcpy(b->env.helo, bp->conf->hostname, sizeof b->env.helo);
	util_strlcpy(b->env.protocol, "local", sizeof b->env.protocol);
	b->cb = cb;
	b->arg = arg;
	b->commit = queue_msg_commit(qm, &b->env, bounce_committed_cb, b);
	free(orig);
	free(text);
	return b;

fail:
	log_warnx("%s: cannot build the %s", env->id,
	    bounce_names[bp->action]);
	bounce_free(b);
	free(orig);
	free(text);
	return NULL;
}

/* The caller goes away: the commit is dropped, no callback. */
void
bounce_cancel(struct bounce *b)
{
	if (b->commit != NULL)
		queue_commit_cancel(b->commit);
	bounce_free(b);
}
