/*
 * ternd.c: the daemon.  Reads the configuration, opens the spool and the
 * listeners, and runs the one event loop until told to stop.  It wires the
 * modules together and owns the configuration in force; it holds no
 * protocol state of its own.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "confcheck.h"
#include "config.h"
#include "control.h"
#include "ctl_proto.h"
#include "envelope.h"
#include "dns.h"
#include "dvauth.h"
#include "log.h"
#include "metrics.h"
#include "metrics_server.h"
#include "mta.h"
#include "mta_session.h"
#include "notify.h"
#include "pickup.h"
#include "sessinfo.h"
#include "priv.h"
#include "queue.h"
#include "scheduler.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "tls.h"
#include "users.h"
#include "util.h"
#include "workpool.h"

/* A listing being written by the control socket's child. */
struct ternd_list {
	control_emit_fn	 emit;
	void		*arg;
};

/* Threads that sync accepted messages beside the loop. */
#define TERND_WORKERS		4

static struct {
	struct event_base	*base;
	struct config		*conf;
	const char		*conf_file;	/* NULL: built in */
	int			 debug_flag;	/* -d */
	struct event		*sigterm_ev;
	struct event		*sigint_ev;
	struct event		*sighup_ev;
	struct event		*stop_timer;
	struct event		*notify_timer;	/* STATUS updates */
	struct users		*users;
	SSL_CTX			*tls;		/* inbound; NULL: no TLS */
	int			 stopping;
	int			 dropped;	/* started as root */
} ternd;

/* Every message found in the spool at start-up goes to the scheduler. */
static void
ternd_scan_cb(const struct envelope *env, int held, void *arg)
{
	scheduler_add(env, held);
}

static void	ternd_status(char *, size_t);

/* The spool is read: the service manager is told the whole queue. */
static void
ternd_scan_done(void *arg)
{
	char	status[128];

	if (notify_is_enabled()) {
		ternd_status(status, sizeof status);
		notify_status(status);
	}
}

/* ETRN: what waits for a domain is attempted now. */
static size_t
ternd_etrn_cb(const char *domain, int subdomains)
{
	return scheduler_flush(domain, subdomains);
}

/* A message just accepted is attempted at once. */
static void
ternd_queued_cb(const struct envelope *env)
{
	metrics.received++;
	scheduler_add(env, 0);
}

/* What -n finds, on standard error. */
static void
ternd_check_error(const char *msg, void *arg)
{
	fprintf(stderr, "ternd: %s\n", msg);
}

static void
ternd_check_warning(const char *msg, void *arg)
{
	fprintf(stderr, "ternd: warning: %s\n", msg);
}

static void __attribute__((noreturn))
ternd_usage(void)
{
	fprintf(stderr, "usage: ternd [-dnV] [-c file]\n");
	exit(1);
}

/* Paths left to the spool: the control socket unless one is set. */
static struct config *
ternd_spool_paths(struct config *conf, char **cause)
{
	if (conf != NULL && queue_config_paths(conf, cause) == -1) {
		config_free(conf);
		return NULL;
	}
	return conf;
}

/* -c FILE, else the default file if it exists, else the built-in one. */
static struct config *
ternd_load_config(const char *file, char **cause)
{
	if (file != NULL)
		return ternd_spool_paths(config_load(file, cause), cause);
	if (access(CONFIG_DEFAULT_FILE, F_OK) == 0) {
		ternd.conf_file = CONFIG_DEFAULT_FILE;
		return ternd_spool_paths(config_load(CONFIG_DEFAULT_FILE,
		    cause), cause);
	}
	return ternd_spool_paths(config_default(), cause);
}

static void
ternd_apply_log(const struct config *conf)
{
	char	*cause, dir[CONFIG_PATH_SIZE + 8];

	if (queue_spool_path(dir, sizeof dir, conf->spool,
	    QUEUE_SPOOL_LOG) == 0)
		log_set_dir(dir);
	log_set_hostname(conf->hostname);
	if (conf->log == LOG_TARGET_REMOTE && log_set_server(conf->log_server,
	    (unsigned)conf->log_server_port, &cause) == -1) {
		/* Lines to a server that does not resolve are dropped. */
		log_warnx("log_server %s", cause);
		free(cause);
	}
	if (ternd.debug_flag) {
		log_set_target(LOG_TARGET_STDERR);
		log_set_debug(1);
	} else {
		log_set_target(conf->log);
		log_set_debug(conf->debug);
	}
}

/* The users and aliases files of a configuration, warnings logged. */
static struct users *
ternd_load_users(const struct config *conf, char **cause)
{
	return confcheck_load_users(conf, NULL, NULL, cause);
}

/* The inbound TLS context of a configuration; *ctx NULL without TLS. */
static int
ternd_load_tls(const struct config *conf, SSL_CTX **ctx, char **cause)
{
	return confcheck_load_tls(conf, ctx, cause);
}

/* Dovecot's auth socket when it checks AUTH, else "" (none). */
static const char *
ternd_auth_socket(const struct config *conf)
{
	return conf->auth_backend == CONFIG_AUTH_DOVECOT ?
	    conf->dovecot_auth_socket : "";
}

/* Give every module the users and TLS context now in force. */
static void
ternd_apply_users(void)
{
	smtp_session_set_users(ternd.users);
	smtp_session_set_tls(ternd.tls);
	scheduler_set_users(ternd.users);
	pickup_set_users(ternd.users);
}

/*
 * A reload's users and aliases (read already, with the configuration
 * they go with) and certificate: one that cannot be read is reported
 * and the old one kept, so a typo never stops mail.
 */
static void
ternd_reload_users(const struct config *conf, struct users *users)
{
	SSL_CTX		*ctx;
	char		*cause;

	users_free(ternd.users);
	ternd.users = users;
	log_info("users: %zu loaded", users_count(users));
	if (ternd_load_tls(conf, &ctx, &cause) == -1) {
		log_warnx("reload: %s; keeping the old certificate", cause);
		free(cause);
	} else {
		tls_ctx_free(ternd.tls);
		ternd.tls = ctx;
	}
	ternd_apply_users();
}

/* Seconds between STATUS updates to the service manager. */
#define TERND_STATUS_INTERVAL	10

/* The STATUS line the service manager shows: what ternd is doing now. */
static void
ternd_status(char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%squeue: %zu messages, sessions: %zu "
	    "inbound, %zu outbound", ternd.stopping ? "stopping; " : "",
	    smtp_server_is_draining() ? "draining; " : "",
	    queue_scan_running() ? "reading the queue; " : "", queue_count(),
	    smtp_server_session_count(), mta_active());
}

static void
ternd_notify_ready(void)
{
	char	status[128];

	ternd_status(status, sizeof status);
	notify_ready(status);
}

static void
ternd_notify_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	char	status[128];

	ternd_status(status, sizeof status);
	notify_status(status);
}

static int
ternd_listen_differs(const struct config_listen *a, size_t na,
    const struct config_listen *b, size_t nb)
{
	return na != nb || (na > 0 && memcmp(a, b, na * sizeof *a) != 0);
}

static int
ternd_listen_changed(const struct config *a, const struct config *b)
{
	return ternd_listen_differs(a->listen, a->nlisten, b->listen,
	    b->nlisten) || ternd_listen_differs(a->submission_listen,
	    a->nsubmission_listen, b->submission_listen,
	    b->nsubmission_listen) || ternd_listen_differs(a->smtps_listen,
	    a->nsmtps_listen, b->smtps_listen, b->nsmtps_listen);
}

static void
ternd_copy_listen(struct config_listen **dst, size_t *ndst,
    const struct config_listen *src, size_t nsrc)
{
	free(*dst);
	*dst = xcalloc(nsrc + 1, sizeof **dst);
	if (nsrc > 0)
		memcpy(*dst, src, nsrc * sizeof **dst);
	*ndst = nsrc;
}

/*
 * SIGHUP: a bad new file is reported and the old one kept.  -1 with
 * *cause set (for whoever asked) when the new configuration is refused.
 */
static int
ternd_reload(char **cause)
{
	struct config	*conf;
	struct users	*users;

	*cause = NULL;
	if (ternd.conf_file == NULL) {
		xasprintf(cause, "running on the built-in configuration, "
		    "nothing to reload");
		log_warnx("reload: %s", *cause);
		return -1;
	}
	if ((conf = ternd_spool_paths(config_load(ternd.conf_file, cause),
	    cause)) == NULL) {
		log_warnx("reload failed: %s; keeping the old configuration",
		    *cause);
		return -1;
	}
	/*
	 * The users and aliases belong with the local domains: a file
	 * that does not load keeps the whole old configuration.
	 */
	if ((users = ternd_load_users(conf, cause)) == NULL) {
		log_warnx("reload failed: %s; keeping the old configuration",
		    *cause);
		config_free(conf);
		return -1;
	}
	if (strcmp(conf->spool, ternd.conf->spool) != 0) {
		log_warnx("reload: spool cannot change while running; "
		    "keeping %s until restart", ternd.conf->spool);
		util_strlcpy(conf->spool, ternd.conf->spool,
		    sizeof conf->spool);
	}
	/*
	 * Root is gone: closing the listeners to bind new ones could lose
	 * the ports below 1024 for good.
	 */
	if (ternd.dropped && ternd_listen_changed(conf, ternd.conf)) {
		log_warnx("reload: listen cannot change after dropping root; "
		    "keeping the listeners until restart");
		ternd_copy_listen(&conf->listen, &conf->nlisten,
		    ternd.conf->listen, ternd.conf->nlisten);
		ternd_copy_listen(&conf->submission_listen,
		    &conf->nsubmission_listen, ternd.conf->submission_listen,
		    ternd.conf->nsubmission_listen);
		ternd_copy_listen(&conf->smtps_listen, &conf->nsmtps_listen,
		    ternd.conf->smtps_listen, ternd.conf->nsmtps_listen);
	}
	if (smtp_server_set_config(conf, cause) == -1) {
		log_warnx("reload failed: %s; keeping the old configuration",
		    *cause);
		users_free(users);
		config_free(conf);
		return -1;
	}
	if (strcmp(conf->dns_servers, ternd.conf->dns_servers) != 0 &&
	    dns_set_servers(conf->dns_servers, cause) == -1) {
		log_warnx("reload: dns_servers: %s; keeping the old servers",
		    *cause);
		free(*cause);
		*cause = NULL;
		util_strlcpy(conf->dns_servers, ternd.conf->dns_servers,
		    sizeof conf->dns_servers);
	}
	if (metrics_server_set_listen(conf->metrics_listen,
	    conf->nmetrics_listen, cause) == -1) {
		log_warnx("reload: %s; keeping the old metrics listener",
		    *cause);
		free(*cause);
		*cause = NULL;
	}
	smtp_session_set_config(conf);
	if (dvauth_set_socket(ternd_auth_socket(conf), cause) == -1) {
		log_warnx("reload: dovecot_auth_socket: %s", *cause);
		free(*cause);
		*cause = NULL;
	}
	mta_set_config(conf);
	scheduler_set_config(conf);
	pickup_set_config(conf);
	control_set_queue_list(conf->queue_list == CONFIG_QUEUE_LIST_ANYONE);
	queue_set_sync(conf->spool_sync == CONFIG_SPOOL_SYNC_FILESYSTEM);
	ternd_reload_users(conf, users);
	ternd_apply_log(conf);
	config_free(ternd.conf);
	ternd.conf = conf;
	log_info("configuration reloaded from %s", ternd.conf_file);
	return 0;
}

static void
ternd_stopped(void)
{
	event_base_loopexit(ternd.base, NULL);
}

static void
ternd_stop_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	log_info("shutdown_timeout reached: closing %zu sessions",
	    smtp_server_session_count());
	smtp_server_close_all();
	event_base_loopexit(ternd.base, NULL);
}

/* SIGTERM: stop accepting; let transactions finish within the bound. */
static void
ternd_stop(void)
{
	struct timeval	tv;
	uint64_t	ms = ternd.conf->shutdown_timeout;
	char		status[128];

	if (ternd.stopping)
		return;
	ternd.stopping = 1;
	log_info("stopping");
	ternd_status(status, sizeof status);
	notify_stopping(status);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	ternd.stop_timer = evtimer_new(ternd.base, ternd_stop_timer_cb, NULL);
	evtimer_add(ternd.stop_timer, &tv);
	smtp_server_shutdown(ternd_stopped);
}

/* SIGHUP or "ternctl reload": -1 with *cause when it is refused. */
static int
ternd_hup(char **cause)
{
	int	rc;

	/* The manager waits for READY=1 after RELOADING=1. */
	if (!ternd.stopping)
		notify_reloading();
	rc = ternd_reload(cause);
	if (!ternd.stopping)
		ternd_notify_ready();
	return rc;
}

static void
ternd_signal_cb(evutil_socket_t sig, short events, void *arg)
{
	char	*cause;

	switch (sig) {
	case SIGHUP:
		if (ternd_hup(&cause) == -1)
			free(cause);
		break;
	case SIGTERM:
	case SIGINT:
		ternd_stop();
		break;
	}
}

/*
 * The control socket's verbs.  flush-ids knows an id the scheduler does
 * not wait on (held, or being attempted) from one the queue lacks.
 */
static int
ternd_ctl_flush_ids(const char *id)
{
	int	fd;

	if (scheduler_flush_id(id) > 0)
		return 0;
	if (queue_scan_running()) {
		errno = EAGAIN;
		return -1;
	}
	if ((fd = queue_msg_open(id)) == -1)
		return -1;
	close(fd);
	return 0;
}

static void
ternd_ctl_stats(struct control_stats *st)
{
	struct scheduler_stats		ss;
	struct smtp_server_stats	as;

	scheduler_stats(&ss);
	smtp_server_stats(&as);
	st->sessions = as.sessions;
	st->session_budget = as.budget;
	st->bytes_held = as.bytes;
	st->stress = (uint64_t)as.stress;
	st->draining = (uint64_t)as.draining;
	st->drain_refused = as.drain_refused;
	st->accepted = ss.accepted;
	st->delivered = ss.delivered;
	st->deferred = ss.deferred;
	st->bounced = ss.bounced;
	st->queue_size = ss.queue_size;
	st->oldest = ss.oldest > 0 ? (uint64_t)ss.oldest : 0;
	st->uptime = ss.uptime > 0 ? (uint64_t)ss.uptime : 0;
}

/* The gauges of a metrics scrape. */
static void
ternd_metrics_gauges(struct metrics_gauges *g)
{
	struct scheduler_stats		ss;
	struct smtp_server_stats	as;
	time_t				now = time(NULL);

	scheduler_stats(&ss);
	smtp_server_stats(&as);
	g->inbound = as.sessions;
	g->outbound = mta_active();
	g->queue_active = ss.active;
	g->queue_deferred = ss.waiting;
	g->queue_hold = ss.queue_size > ss.active + ss.waiting ?
	    ss.queue_size - ss.active - ss.waiting : 0;
	g->oldest_age = ss.oldest > 0 && ss.oldest < now ?
	    (double)(now - ss.oldest) : 0;
	g->session_budget = as.budget;
	g->bytes_held = as.bytes;
	g->stress = as.stress;
	g->start_time = (double)(now - ss.uptime);
}

/* One message of "queue", with only what a listing shows. */
static void
ternd_list_cb(const struct envelope *env, int held, void *arg)
{
	struct ternd_list		*l = arg;
	const struct envelope_rcpt	*r;
	struct envelope_rcpt		*o;
	struct envelope			 out;
	char				*text, *line, *save = NULL;
	char				 head[64];
	size_t				 len, i;

	envelope_init(&out);
	util_strlcpy(out.id, env->id, sizeof out.id);
	out.arrival = env->arrival;
	envelope_set_str(&out.sender, env->sender != NULL ? env->sender : "");
	out.size = env->size;
	out.tries = env->tries;
	out.next_attempt = env->next_attempt;
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		o = envelope_add_rcpt(&out, r->addr);
		o->state = r->state;
		util_strlcpy(o->status, r->status, sizeof o->status);
		if (r->error != NULL)
			envelope_set_str(&o->error, r->error);
	}
	if (envelope_write(&out, &text, &len) == 0) {
		util_snprintf(head, sizeof head, "%s %s %d", CTL_LIST_ENVELOPE,
		    env->id, held);
		l->emit(head, l->arg);
		for (line = strtok_r(text, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			l->emit(line, l->arg);
		free(text);
	}
	envelope_clear(&out);
}

/*
 * "queue", in the control socket's child process: every envelope, read
 * from the spool as ternctl would read it.
 * Blocking: in a process of its own, never the loop's.
 */
static int
ternd_ctl_list(control_emit_fn emit, void *arg, char **cause)
{
	struct ternd_list	l;

	l.emit = emit;
	l.arg = arg;
	return queue_list(ternd_list_cb, &l, cause);
}

/* ternctl drain and undrain; the service manager's STATUS says so now. */
static void
ternd_ctl_drain(int on)
{
	char	status[128];

	smtp_server_drain(on);
	ternd_status(status, sizeof status);
	notify_status(status);
}

/* "sessions": one line per session, as ctl_proto.h describes it. */
struct ternd_sessions {
	control_emit_fn	 emit;
	void		*arg;
	const char	*dir;
};

static void
ternd_session_cb(const struct sessinfo *si, void *arg)
{
	struct ternd_sessions	*ts = arg;
	char			 line[512], state[64], *p;

	util_strlcpy(state, si->state != NULL ? si->state : "-",
	    sizeof state);
	for (p = state; *p != '\0'; p++) {
		if (*p == ' ')
			*p = '-';
	}
	util_snprintf(line, sizeof line, "dir=%s id=%s peer=%s state=%s "
	    "age=%ju in=%ju out=%ju tls=%s", ts->dir,
	    si->id != NULL ? si->id : "-", si->peer != NULL && *si->peer !=
	    '\0' ? si->peer : "-", state, (uintmax_t)si->age,
	    (uintmax_t)si->bytes_in, (uintmax_t)si->bytes_out,
	    si->tls != NULL ? si->tls : "-");
	ts->emit(line, ts->arg);
}

static void
ternd_ctl_sessions(control_emit_fn emit, void *arg)
{
	struct ternd_sessions	ts;

	ts.emit = emit;
	ts.arg = arg;
	ts.dir = "inbound";
	smtp_server_sessions(ternd_session_cb, &ts);
	ts.dir = "outbound";
	mta_sessions(ternd_session_cb, &ts);
}

static const struct control_ops ternd_ctl_ops = {
	.hold = scheduler_hold,
	.release = scheduler_release,
	.delete = scheduler_delete,
	.bounce = scheduler_bounce,
	.flush = scheduler_flush,
	.flush_ids = ternd_ctl_flush_ids,
	.stats = ternd_ctl_stats,
	.reload = ternd_hup,
	.stop = ternd_stop,
	.list = ternd_ctl_list,
	.drain = ternd_ctl_drain,
	.sessions = ternd_ctl_sessions,
	.handover = scheduler_handover,
};

/*
 * The group ternd runs as once privileges are dropped, as priv_drop()
 * will find it, for the control socket made before: after the drop the
 * spool may only be reachable through descriptors.  A name that does not
 * resolve is left for priv_drop() to report.
 */
static gid_t
ternd_run_gid(const struct config *conf)
{
	struct passwd	*pw;
	struct group	*gr;

	if (geteuid() != 0)
		return getegid();
	if (conf->group[0] != '\0')
		return (gr = getgrnam(conf->group)) != NULL ? gr->gr_gid :
		    getegid();
	if ((pw = getpwnam(conf->user)) == NULL && conf->path[0] == '\0')
		pw = getpwnam("nobody");	/* the built-in fallback */
	return pw != NULL ? pw->pw_gid : getegid();
}

/* As many descriptors as we may have: every session needs one. */
static void
ternd_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	const char	*file = NULL;
	char		*cause = NULL;
	size_t		 n;
	int		 ch, check_only = 0;

	while ((ch = getopt(argc, argv, "c:dnV")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			ternd.debug_flag = 1;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'V':
			printf("ternd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			ternd_usage();
		}
	}
	if (optind != argc)
		ternd_usage();

	ternd.conf_file = file;
	if ((ternd.conf = ternd_load_config(file, &cause)) == NULL) {
		fprintf(stderr, "ternd: %s\n", cause);
		free(cause);
		return 1;
	}
	if (check_only) {
		config_print(ternd.conf, stdout);
		fflush(stdout);
		/* Every file it names, as the start below would read it. */
		n = confcheck_files(ternd.conf, ternd_check_error,
		    ternd_check_warning, NULL);
		config_free(ternd.conf);
		return n > 0 ? 1 : 0;
	}

	log_init("ternd", LOG_TARGET_STDERR, 0);
	ternd_apply_log(ternd.conf);
	log_info("ternd %s starting (%s)", PACKAGE_VERSION,
	    ternd.conf_file != NULL ? ternd.conf_file :
	    "built-in configuration");
	signal(SIGPIPE, SIG_IGN);
	ternd_raise_nofile();
	notify_init();

	if ((ternd.base = event_base_new()) == NULL)
		fatalx("event_base_new");
	if (workpool_init(ternd.base, &cause) == -1)
		fatalx("%s", cause);
	scheduler_init(ternd.base, ternd.conf);
	queue_set_sync(ternd.conf->spool_sync == CONFIG_SPOOL_SYNC_FILESYSTEM);
	/* The messages already queued are read once ternd serves. */
	queue_defer_scan();
	if (queue_init(ternd.base, ternd.conf->spool, NULL, NULL,
	    &cause) == -1)
		fatalx("%s", cause);
	/* Owner and maildrop/ checked before pickup opens maildrop/. */
	if (priv_prepare(ternd.conf->user, ternd.conf->group, ternd.conf->spool,
	    ternd.conf->mailboxes, ternd.conf->path[0] == '\0', &cause) == -1)
		fatalx("%s", cause);
	if (dns_init(ternd.base, ternd.conf->dns_servers, &cause) == -1)
		fatalx("dns_servers: %s", cause);
	if (mta_session_init(&cause) == -1)
		fatalx("%s", cause);
	mta_init(ternd.base, ternd.conf);
	/* Read while root may still be needed to open them. */
	if ((ternd.users = ternd_load_users(ternd.conf, &cause)) == NULL ||
	    ternd_load_tls(ternd.conf, &ternd.tls, &cause) == -1)
		fatalx("%s", cause);
	log_info("users: %zu loaded", users_count(ternd.users));
	smtp_session_init(ternd.base, ternd.conf, ternd_queued_cb);
	/* Connected from the loop, as tern's user, once it runs. */
	dvauth_init(ternd.base);
	if (dvauth_set_socket(ternd_auth_socket(ternd.conf), &cause) == -1)
		fatalx("dovecot_auth_socket: %s", cause);
	{
		char	maildrop[CONFIG_PATH_SIZE + 16];

		queue_spool_path(maildrop, sizeof maildrop,
		    ternd.conf->spool, QUEUE_SPOOL_MAILDROP);
		if (pickup_init(ternd.base, maildrop, ternd.conf,
		    ternd_queued_cb, &cause) == -1)
			fatalx("%s", cause);
	}
	smtp_session_set_etrn(ternd_etrn_cb);
	ternd_apply_users();
	/*
	 * Signals are caught before the first listener opens: a client may
	 * connect, and a service manager stop us, from then on.  They are
	 * handled once the loop runs.
	 */
	ternd.sigterm_ev = evsignal_new(ternd.base, SIGTERM, ternd_signal_cb,
	    NULL);
	ternd.sigint_ev = evsignal_new(ternd.base, SIGINT, ternd_signal_cb,
	    NULL);
	ternd.sighup_ev = evsignal_new(ternd.base, SIGHUP, ternd_signal_cb,
	    NULL);
	evsignal_add(ternd.sigterm_ev, NULL);
	evsignal_add(ternd.sigint_ev, NULL);
	evsignal_add(ternd.sighup_ev, NULL);
	if (smtp_server_init(ternd.base, ternd.conf, &cause) == -1)
		fatalx("%s", cause);
	/* Its group may use it; made while the path is still reachable. */
	if (control_init(ternd.base, ternd.conf->control_socket,
	    ternd_run_gid(ternd.conf), &ternd_ctl_ops, &cause) == -1)
		fatalx("%s", cause);
	control_set_queue_list(ternd.conf->queue_list ==
	    CONFIG_QUEUE_LIST_ANYONE);
	if (metrics_server_init(ternd.base, ternd.conf->metrics_listen,
	    ternd.conf->nmetrics_listen, ternd_metrics_gauges, &cause) == -1)
		fatalx("%s", cause);
	/* Root was only needed for the ports below 1024 and the spool. */
	ternd.dropped = geteuid() == 0;
	if (priv_drop(ternd.conf->user, ternd.conf->group, ternd.conf->spool,
	    ternd.conf->mailboxes, ternd.conf->path[0] == '\0', &cause) == -1)
		fatalx("%s", cause);

	if (workpool_start(TERND_WORKERS, &cause) == -1)
		fatalx("%s", cause);

	log_info("ready");
	queue_scan_start(ternd_scan_cb, ternd_scan_done, NULL);
	if (notify_is_enabled()) {
		struct timeval	tv = { TERND_STATUS_INTERVAL, 0 };

		ternd_notify_ready();
		ternd.notify_timer = event_new(ternd.base, -1, EV_PERSIST,
		    ternd_notify_timer_cb, NULL);
		evtimer_add(ternd.notify_timer, &tv);
	}
	event_base_dispatch(ternd.base);

	queue_scan_stop();
	pickup_shutdown();
	control_shutdown();
	metrics_server_shutdown();
	smtp_server_free();
	dvauth_shutdown();
	mta_shutdown();
	scheduler_shutdown();
	mta_session_shutdown();
	dns_shutdown();
	workpool_shutdown();
	queue_shutdown();
	event_free(ternd.sigterm_ev);
	event_free(ternd.sigint_ev);
	event_free(ternd.sighup_ev);
	if (ternd.notify_timer != NULL)
		event_free(ternd.notify_timer);
	notify_shutdown();
	if (ternd.stop_timer != NULL)
		event_free(ternd.stop_timer);
	event_base_free(ternd.base);
	users_free(ternd.users);
	tls_ctx_free(ternd.tls);
	config_free(ternd.conf);
	log_info("stopped");
	return 0;
}
