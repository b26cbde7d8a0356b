/*
 * control.c: ternd's control socket.  It owns the Unix socket, its
 * clients and their buffers: it checks each client's credentials, reads
 * one request line, answers it through the callbacks ternd handed it and
 * closes; a queue listing is answered by a child process it forks and
 * reaps.  It never touches the queue or the scheduler itself (a lower
 * module reports upward through callbacks), and never trusts a byte of a
 * request: ids go to the callbacks as opaque words.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "ctl_proto.h"
#include "log.h"
#include "util.h"

#define CONTROL_CLIENTS_MAX	16
#define CONTROL_TIMEOUT		10	/* seconds per client */
#define CONTROL_BACKLOG		16
#define CONTROL_GROUPS_MAX	1024
/* Clients at once that are not admins, so they never crowd one out. */
#define CONTROL_PUBLIC_MAX	4
/* Listing processes at once, and how long one may take. */
#define CONTROL_LISTINGS_MAX	2
#define CONTROL_LIST_TIMEOUT	120	/* seconds */

/* One connected client; owned by the control module until closed. */
struct control_client {
	TAILQ_ENTRY(control_client) entry;
	struct bufferevent	*bev;
	uid_t			 uid;
	pid_t			 pid;
	int			 admin;		/* may use every verb */
	int			 public;	/* holds a CONTROL_PUBLIC_MAX
						   slot */
	int			 denied;	/* told so after its request */
	int			 closing;	/* final reply line written */
	int			 stop;		/* call ops->stop once sent */
	int			 shut;		/* reply sent, our side shut */
	int			 eof;		/* the client has shut its side */
	struct event		*deadline;	/* the whole exchange's */
};
TAILQ_HEAD(control_clients, control_client);

struct control_verb;
typedef void	(*control_verb_fn)(struct control_client *,
		    const struct control_verb *, char **, size_t);

/* One verb of the protocol: its argument counts and its handler. */
struct control_verb {
	const char	*name;
	size_t		 min_args;
	size_t		 max_args;	/* SIZE_MAX: no limit */
	int		 acting;	/* logged at info */
	int		 public;	/* others may, with queue_list */
	control_verb_fn	 fn;
};

static struct {
	struct event_base		*base;
	struct evconnlistener		*lev;
	const struct control_ops	*ops;
	char				 path[sizeof(((struct sockaddr_un *)0)
					    ->sun_path)];
	gid_t				 group;
	struct control_clients		 clients;
	size_t				 nclients;
	size_t				 npublic;
	int				 queue_anyone;
	pid_t				 listings[CONTROL_LISTINGS_MAX];
	struct event			*sigchld;
	struct event			*resume;	/* after EMFILE */
} control;

static void	control_read_cb(struct bufferevent *, void *);
static void	control_write_cb(struct bufferevent *, void *);
static void	control_event_cb(struct bufferevent *, short, void *);

static void __attribute__((format(printf, 2, 3)))
control_reply(struct control_client *c, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);
	va_list		 ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\n", 1);
}

/* The last line of a reply; the client is closed once it is sent. */
static void
control_finish(struct control_client *c, const char *error)
{
	char	*line, *p;

	/* One line, whatever a file named in it held. */
	if (error != NULL) {
		line = xstrdup(error);
		for (p = line; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		}
		control_reply(c, "%s%s", CTL_REPLY_ERROR, line);
		free(line);
	}
	else
		control_reply(c, "%s", CTL_REPLY_OK);
	c->closing = 1;
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
control_client_free(struct control_client *c)
{
	/* A stop asked for is done, whether its answer got out or not. */
	if (c->stop) {
		c->stop = 0;
		control.ops->stop();
	}
	TAILQ_REMOVE(&control.clients, c, entry);
	bufferevent_free(c->bev);
	event_free(c->deadline);
	if (c->public)
		control.npublic--;
	free(c);
	/* A slot is free again: take connections if we had paused. */
	if (control.nclients-- == CONTROL_CLIENTS_MAX && control.lev != NULL)
		evconnlistener_enable(control.lev);
}

/* hold, release, delete, bounce, flush-ids: one call per id. */
static void
control_verb_ids(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	const struct control_ops	*ops = control.ops;
	int				(*fn)(const char *) = NULL;
	size_t				 i;

	if (strcmp(v->name, CTL_VERB_HOLD) == 0)
		fn = ops->hold;
	else if (strcmp(v->name, CTL_VERB_RELEASE) == 0)
		fn = ops->release;
	else if (strcmp(v->name, CTL_VERB_DELETE) == 0)
		fn = ops->delete;
	else if (strcmp(v->name, CTL_VERB_BOUNCE) == 0)
		fn = ops->bounce;
	else if (strcmp(v->name, CTL_VERB_FLUSH_IDS) == 0)
		fn = ops->flush_ids;
	if (fn == NULL) {
		control_finish(c, "not supported");
		return;
	}
	for (i = 0; i < nargs; i++) {
		errno = 0;
		if (fn(args[i]) == 0)
			control_reply(c, "%s%s", CTL_REPLY_DATA, args[i]);
		else
			control_reply(c, "%s%s%s", CTL_REPLY_DATA, args[i],
			    errno == EAGAIN ? CTL_LOADING : CTL_UNKNOWN);
	}
	control_finish(c, NULL);
}

/* flush [DOMAIN]: "@domain" takes its subdomains too, as ETRN does. */
static void
control_verb_flush(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	const char	*domain = nargs > 0 ? args[0] : NULL;
	int		 sub = 0;
	size_t		 n;

	if (control.ops->flush == NULL) {
		control_finish(c, "not supported");
		return;
	}
	if (domain != NULL && domain[0] == '@') {
		domain++;
		sub = 1;
	}
	if (domain != NULL && *domain == '\0') {
		control_finish(c, "empty domain");
		return;
	}
	n = control.ops->flush(domain, sub);
	control_reply(c, "%sflushed=%zu", CTL_REPLY_DATA, n);
	control_finish(c, NULL);
}

/* The stats lines, in the order they are sent. */
static const struct {
	const char	*name;
	size_t		 offset;
} control_stat_names[] = {
	{ "sessions", offsetof(struct control_stats, sessions) },
	{ "session_budget", offsetof(struct control_stats, session_budget) },
	{ "bytes_held", offsetof(struct control_stats, bytes_held) },
	{ "stress", offsetof(struct control_stats, stress) },
	{ "accepted", offsetof(struct control_stats, accepted) },
	{ "delivered", offsetof(struct control_stats, delivered) },
	{ "deferred", offsetof(struct control_stats, deferred) },
	{ "bounced", offsetof(struct control_stats, bounced) },
	{ "queue_size", offsetof(struct control_stats, queue_size) },
	{ "oldest", offsetof(struct control_stats, oldest) },
	{ "uptime", offsetof(struct control_stats, uptime) },
	{ "draining", offsetof(struct control_stats, draining) },
	{ "drain_refused", offsetof(struct control_stats, drain_refused) },
};

static void
control_verb_stats(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	struct control_stats	st;
	size_t			i;

	if (control.ops->stats == NULL) {
		control_finish(c, "not supported");
		return;
	}
	memset(&st, 0, sizeof st);
	control.ops->stats(&st);
	for (i = 0; i < nitems(control_stat_names); i++)
		control_reply(c, "%s%s=%llu", CTL_REPLY_DATA,
		    control_stat_names[i].name, (unsigned long long)
		    *(const uint64_t *)(const void *)((const char *)&st +
		    control_stat_names[i].offset));
	control_finish(c, NULL);
}

static void
control_verb_reload(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	char	*cause = NULL;

	if (control.ops->reload == NULL) {
		control_finish(c, "not supported");
		return;
	}
	if (control.ops->reload(&cause) == -1) {
		control_finish(c, cause);
		free(cause);
		return;
	}
	control_finish(c, NULL);
}

/* The stop itself waits until the client has its "ok". */
static void
control_verb_stop(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	if (control.ops->stop == NULL) {
		control_finish(c, "not supported");
		return;
	}
	c->stop = 1;
	control_finish(c, NULL);
}

/* drain and undrain: the state asked for, then the state now. */
static void
control_verb_drain(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	int	on = strcmp(v->name, CTL_VERB_DRAIN) == 0;

	if (control.ops->drain == NULL) {
		control_finish(c, "not supported");
		return;
	}
	control.ops->drain(on);
	control_reply(c, "%sdraining=%d", CTL_REPLY_DATA, on);
	control_finish(c, NULL);
}

/* A line of the listing, from the child. */
static void
control_list_emit(const char *line, void *arg)
{
	FILE	*out = arg;

	fprintf(out, "%s%s\n", CTL_REPLY_DATA, line);
}

/*
 * The listing child's start: signals as a plain process has them (the
 * loop's handlers would only write to a pipe nobody reads); every
 * descriptor closed but its client and the directories (the spool's,
 * which the listing reads through), so that no connection the daemon
 * closes, and no lock it holds, lives on in here; a blocking client
 * with a deadline on the whole.
 */
static void
control_list_setup(int fd)
{
	static const int	 sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD,
				    SIGALRM };
	struct timeval		 tv = { CONTROL_TIMEOUT, 0 };
	struct dirent		*de;
	struct stat		 st;
	sigset_t		 set;
	DIR			*dp;
	size_t			 i;
	int			 n;

	for (i = 0; i < nitems(sigs); i++)
		signal(sigs[i], SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	alarm(CONTROL_LIST_TIMEOUT);
	if ((dp = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(dp)) != NULL) {
			n = atoi(de->d_name);
			if (n > STDERR_FILENO && n != fd && n != dirfd(dp) &&
			    fstat(n, &st) == 0 && !S_ISDIR(st.st_mode))
				close(n);
		}
		closedir(dp);
	}
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The child that lists: it writes the whole reply and exits. */
static void __attribute__((noreturn))
control_list_child(int fd)
{
	FILE	*out;
	char	*cause = NULL;

	control_list_setup(fd);
	if ((out = fdopen(fd, "w")) == NULL)
		_exit(1);
	if (control.ops->list(control_list_emit, out, &cause) == -1)
		fprintf(out, "%s%s\n", CTL_REPLY_ERROR, cause);
	else
		fprintf(out, "%s\n", CTL_REPLY_OK);
	if (fflush(out) == EOF)
		_exit(1);
	_exit(0);
}

/*
 * queue: the listing is made by a child process, as Postfix's showq is a
 * process of its own, so that reading every envelope of a large spool
 * never stalls the loop.  The child answers; the client is ours no more.
 */
static void
control_verb_queue(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	size_t	i;
	pid_t	pid;

	if (control.ops->list == NULL) {
		control_finish(c, "not supported");
		return;
	}
	for (i = 0; i < CONTROL_LISTINGS_MAX; i++) {
		if (control.listings[i] == 0)
			break;
	}
	if (i == CONTROL_LISTINGS_MAX) {
		control_finish(c, "busy listing the queue; try again");
		return;
	}
	if ((pid = fork()) == -1) {
		log_warn("control: fork");
		control_finish(c, "cannot list the queue now");
		return;
	}
	if (pid == 0)
		control_list_child(bufferevent_getfd(c->bev));
	control.listings[i] = pid;
	control_client_free(c);
}

/*
 * Whether a word names an MTA to hand messages over to: "host:port" or
 * "[address]:port", a port from 1 to 65535, a host of letters, digits,
 * dots, dashes (and colons inside brackets).
 */
int
control_is_target(const char *s)
{
	const char	*colon = strrchr(s, ':'), *p, *end;
	char		*e;
	unsigned long	 port;
	int		 bracket = s[0] == '[';

	if (colon == NULL || colon == s || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return 0;
	port = strtoul(colon + 1, &e, 10);
	if (port == 0 || port > 65535 || colon - s > 255)
		return 0;
	end = colon;
	if (bracket) {
		if (end - s < 3 || end[-1] != ']')
			return 0;
		s++;
		end--;
	}
	for (p = s; p < end; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    (bracket && *p == ':')))
			return 0;
	}
	return end > s;
}

/* handover TARGET ID ...: as the id verbs, to one target. */
static void
control_verb_handover(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	size_t	i;

	if (control.ops->handover == NULL) {
		control_finish(c, "not supported");
		return;
	}
	if (!control_is_target(args[0])) {
		control_finish(c, "not host:port");
		return;
	}
	for (i = 1; i < nargs; i++) {
		errno = 0;
		if (control.ops->handover(args[i], args[0]) == 0)
			control_reply(c, "%s%s", CTL_REPLY_DATA, args[i]);
		else
			control_reply(c, "%s%s%s", CTL_REPLY_DATA, args[i],
			    errno == EAGAIN ? CTL_LOADING : CTL_UNKNOWN);
	}
	control_finish(c, NULL);
}

/* A line of "sessions", from the daemon, on the loop. */
static void
control_sessions_emit(const char *line, void *arg)
{
	control_reply(arg, "%s%s", CTL_REPLY_DATA, line);
}

/* sessions: what is open now, from memory, answered on the loop. */
static void
control_verb_sessions(struct control_client *c, const struct control_verb *v,
    char **args, size_t nargs)
{
	if (control.ops->sessions == NULL) {
		control_finish(c, "not supported");
		return;
	}
	control.ops->sessions(control_sessions_emit, c);
	control_finish(c, NULL);
}

/* A listing child is done: reap it, its slot is free. */
static void
control_sigchld_cb(evutil_socket_t sig, short events, void *arg)
{
	size_t	i;
	int	status;

	for (i = 0; i < CONTROL_LISTINGS_MAX; i++) {
		if (control.listings[i] != 0 && waitpid(control.listings[i],
		    &status, WNOHANG) == control.listings[i])
			control.listings[i] = 0;
	}
}

static const struct control_verb control_verbs[] = {
	{ CTL_VERB_HOLD, 1, SIZE_MAX, 1, 0, control_verb_ids },
	{ CTL_VERB_RELEASE, 1, SIZE_MAX, 1, 0, control_verb_ids },
	{ CTL_VERB_DELETE, 1, SIZE_MAX, 1, 0, control_verb_ids },
	{ CTL_VERB_BOUNCE, 1, SIZE_MAX, 1, 0, control_verb_ids },
	{ CTL_VERB_FLUSH, 0, 1, 1, 0, control_verb_flush },
	{ CTL_VERB_FLUSH_IDS, 1, SIZE_MAX, 1, 0, control_verb_ids },
	{ CTL_VERB_STATS, 0, 0, 0, 0, control_verb_stats },
	{ CTL_VERB_RELOAD, 0, 0, 1, 0, control_verb_reload },
	{ CTL_VERB_STOP, 0, 0, 1, 0, control_verb_stop },
	{ CTL_VERB_QUEUE, 0, 0, 0, 1, control_verb_queue },
	{ CTL_VERB_DRAIN, 0, 0, 1, 0, control_verb_drain },
	{ CTL_VERB_UNDRAIN, 0, 0, 1, 0, control_verb_drain },
	{ CTL_VERB_SESSIONS, 0, 0, 0, 0, control_verb_sessions },
	{ CTL_VERB_HANDOVER, 2, SIZE_MAX, 1, 0, control_verb_handover },
};

/* "control: uid=N verb args", the arguments escaped and cut short. */
static void
control_log(const struct control_client *c, const char *verb, char **args,
    size_t nargs)
{
	struct util_buf	 b;
	char		 esc[LOG_ESCAPE_SIZE];
	size_t		 i;

	memset(&b, 0, sizeof b);
	for (i = 0; i < nargs; i++) {
		util_buf_add(&b, " ", 1);
		util_buf_adds(&b, args[i]);
	}
	log_info("control: uid=%lu %s%s", (unsigned long)c->uid, verb,
	    b.len > 0 ? log_escape(esc, sizeof esc, b.data, b.len) : "");
	free(b.data);
}

/*
 * One request line, its newline gone: split into words, check the
 * version and the verb's argument count, then run the verb.
 */
static void
control_dispatch(struct control_client *c, char *line, size_t len)
{
	const struct control_verb	*v = NULL;
	char				**words, *p, *save = NULL;
	size_t				 nwords = 0, i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)line[i] < 0x20 ||
		    (unsigned char)line[i] == 0x7f) {
			control_finish(c, "bad request");
			return;
		}
	}
	words = xcalloc(len / 2 + 2, sizeof *words);
	for (p = strtok_r(line, " ", &save); p != NULL;
	    p = strtok_r(NULL, " ", &save))
		words[nwords++] = p;
	if (nwords == 0 || strcmp(words[0], CTL_PROTO_VERSION) != 0) {
		control_finish(c, "unsupported protocol, expected "
		    CTL_PROTO_VERSION);
		goto done;
	}
	if (nwords < 2) {
		control_finish(c, "no command");
		goto done;
	}
	for (i = 0; i < nitems(control_verbs); i++) {
		if (strcmp(control_verbs[i].name, words[1]) == 0) {
			v = &control_verbs[i];
			break;
		}
	}
	if (v == NULL) {
		control_finish(c, "unknown command");
		goto done;
	}
	if (!c->admin && !(v->public && control.queue_anyone)) {
		log_warnx("control: uid=%lu pid=%ld: permission denied",
		    (unsigned long)c->uid, (long)c->pid);
		control_finish(c, "permission denied");
		goto done;
	}
	if (nwords - 2 < v->min_args || nwords - 2 > v->max_args) {
		control_finish(c, "wrong number of arguments");
		goto done;
	}
	if (v->acting)
		control_log(c, v->name, words + 2, nwords - 2);
	else
		log_debug("control: uid=%lu %s", (unsigned long)c->uid,
		    v->name);
	v->fn(c, v, words + 2, nwords - 2);
done:
	free(words);
}

static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct control_client	*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	char			*line;
	size_t			 len;

	/* Answered: what else comes is read and dropped until EOF. */
	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) >= CTL_LINE_MAX)
			control_finish(c, c->denied ? "permission denied" :
			    "request too long");
		return;
	}
	if (c->denied)
		control_finish(c, "permission denied");
	else if (len + 1 > CTL_LINE_MAX)
		control_finish(c, "request too long");
	else
		control_dispatch(c, line, len);
	free(line);
}

/*
 * The reply is out: shut our side, so the client sees the end, and wait
 * for it to close (within the timeout).  Closing first would reset a
 * client whose request was not all read, before it reads the answer.
 */
static void
control_write_cb(struct bufferevent *bev, void *arg)
{
	struct control_client	*c = arg;

	if (!c->closing || c->shut ||
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	c->shut = 1;
	shutdown(bufferevent_getfd(bev), SHUT_WR);
	if (c->stop) {
		c->stop = 0;
		control.ops->stop();
	}
	if (c->eof)
		control_client_free(c);
}

/* EOF, error or timeout: the client goes, and with it any reply. */
static void
control_event_cb(struct bufferevent *bev, short events, void *arg)
{
	struct control_client	*c = arg;

	/* Shut before its answer is out: the answer still goes. */
	if ((events & BEV_EVENT_EOF) && c->closing && !c->shut &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		c->eof = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if ((events & BEV_EVENT_TIMEOUT) && !c->shut)
		log_info("control: uid=%lu: timed out", (unsigned long)c->uid);
	control_client_free(c);
}

/* However it trickles, an exchange gets CONTROL_TIMEOUT in all. */
static void
control_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_client	*c = arg;

	if (!c->shut)
		log_info("control: uid=%lu: timed out", (unsigned long)c->uid);
	control_client_free(c);
}

/*
 * Whether a peer may use the socket: root, our own user, or a member of
 * the control group (as its primary group or a supplementary one).
 * Blocking: the passwd and group lookups, local files on a server.
 */
static int
control_is_allowed(uid_t uid, gid_t gid)
{
	struct passwd	*pw;
	gid_t		 groups[CONTROL_GROUPS_MAX];
	int		 n = CONTROL_GROUPS_MAX, i;

	if (uid == 0 || uid == geteuid() || gid == control.group)
		return 1;
	if ((pw = getpwuid(uid)) == NULL)
		return 0;
	if (pw->pw_gid == control.group)
		return 1;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) == -1)
		n = CONTROL_GROUPS_MAX;	/* the first ones were filled */
	for (i = 0; i < n; i++) {
		if (groups[i] == control.group)
			return 1;
	}
	return 0;
}

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control_client	*c;
	struct ucred		 cred;
	socklen_t		 len = sizeof cred;
	struct timeval		 tv = { CONTROL_TIMEOUT, 0 };
	int			 admin;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("control: SO_PEERCRED");
		evutil_closesocket(fd);
		return;
	}
	admin = control_is_allowed(cred.uid, cred.gid);
	if (!admin && control.queue_anyone &&
	    control.npublic >= CONTROL_PUBLIC_MAX) {
		log_info("control: uid=%lu pid=%ld: too many clients of "
		    "other users; closed", (unsigned long)cred.uid,
		    (long)cred.pid);
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->uid = cred.uid;
	c->pid = cred.pid;
	c->admin = admin;
	if (!admin && control.queue_anyone) {
		c->public = 1;
		control.npublic++;
	}
	c->bev = bufferevent_socket_new(control.base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL)
		fatalx("control: bufferevent_socket_new");
	TAILQ_INSERT_TAIL(&control.clients, c, entry);
	if (++control.nclients == CONTROL_CLIENTS_MAX)
		evconnlistener_disable(control.lev);
	bufferevent_setcb(c->bev, control_read_cb, control_write_cb,
	    control_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	if ((c->deadline = evtimer_new(control.base, control_deadline_cb,
	    c)) == NULL)
		fatalx("control: evtimer_new");
	evtimer_add(c->deadline, &tv);
	/*
	 * One denied is answered after its request has come, so that it
	 * reads the answer instead of a reset.  With queue_list = anyone,
	 * the verb it asks for decides (control_dispatch()).
	 */
	if (!admin && !control.queue_anyone) {
		log_warnx("control: uid=%lu pid=%ld: permission denied",
		    (unsigned long)cred.uid, (long)cred.pid);
		c->denied = 1;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/*
 * accept() failed.  Out of descriptors or memory the socket stays
 * readable, so listening pauses for a second instead of spinning.
 */
static void
control_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval	tv = { 1, 0 };
	int		err = EVUTIL_SOCKET_ERROR();

	if (err == EAGAIN || err == ECONNABORTED || err == EINTR)
		return;
	log_warnx("control: accept: %s", strerror(err));
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		evconnlistener_disable(control.lev);
		evtimer_add(control.resume, &tv);
	}
}

static void
control_resume_cb(evutil_socket_t fd, short events, void *arg)
{
	if (control.nclients < CONTROL_CLIENTS_MAX)
		evconnlistener_enable(control.lev);
}

/*
 * Whether a daemon answers on path: then its socket must not be taken.
 * Anything else there that is a socket is left by a daemon that died.
 */
static int
control_is_live(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	util_strlcpy(sun.sun_path, path, sizeof sun.sun_path);
	rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
	close(fd);
	return rc == 0;
}

/*
 * Make the socket at path, mode 0666, group group, and serve it on the
 * loop: root, our user and the group may use every verb, others only
 * the listing and only with queue_list = anyone.  A stale socket is
 * replaced; one a live daemon answers on, or anything that is not a
 * socket, is an error.
 */
int
control_init(struct event_base *base, const char *path, gid_t group,
    const struct control_ops *ops, char **cause)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd;

	memset(&control, 0, sizeof control);
	TAILQ_INIT(&control.clients);
	control.base = base;
	control.ops = ops;
	control.group = group;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, path, sizeof sun.sun_path) >=
	    sizeof sun.sun_path) {
		xasprintf(cause, "control socket %s: path too long", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			xasprintf(cause, "control socket %s: exists and is "
			    "not a socket", path);
			return -1;
		}
		if (control_is_live(path)) {
			xasprintf(cause, "control socket %s: another ternd "
			    "answers on it", path);
			return -1;
		}
		if (unlink(path) == -1) {
			xasprintf(cause, "control socket %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		xasprintf(cause, "control socket: %s", strerror(errno));
		return -1;
	}
	/*
	 * Anyone may connect: who may do what is decided per verb by the
	 * peer's credentials (SO_PEERCRED), which the kernel vouches for,
	 * as OpenSMTPD's control socket does.
	 */
	old = umask(0111);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		umask(old);
		xasprintf(cause, "control socket %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	util_strlcpy(control.path, path, sizeof control.path);
	if (chmod(path, 0666) == -1 ||
	    (geteuid() == 0 && chown(path, geteuid(), group) == -1) ||
	    (geteuid() != 0 && getegid() != group &&
	    chown(path, (uid_t)-1, group) == -1) ||
	    listen(fd, CONTROL_BACKLOG) == -1) {
		xasprintf(cause, "control socket %s: %s", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		control.path[0] = '\0';
		return -1;
	}
	/* 0: it listens already, with CONTROL_BACKLOG. */
	control.lev = evconnlistener_new(base, control_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (control.lev == NULL)
		fatalx("control: evconnlistener_new");
	evconnlistener_set_error_cb(control.lev, control_error_cb);
	if ((control.resume = evtimer_new(base, control_resume_cb,
	    NULL)) == NULL)
		fatalx("control: evtimer_new");
	if ((control.sigchld = evsignal_new(base, SIGCHLD, control_sigchld_cb,
	    NULL)) == NULL || evsignal_add(control.sigchld, NULL) == -1)
		fatalx("control: SIGCHLD event");
	log_info("control socket %s", path);
	return 0;
}

/* Whether users other than the admins may list the queue (queue_list). */
void
control_set_queue_list(int anyone)
{
	control.queue_anyone = anyone;
}

/*
 * Close the socket and forget clients still connected (their replies
 * are dropped; stop is not called again), and remove the socket file.
 */
void
control_shutdown(void)
{
	struct control_client	*c;

	while ((c = TAILQ_FIRST(&control.clients)) != NULL) {
		TAILQ_REMOVE(&control.clients, c, entry);
		bufferevent_free(c->bev);
		event_free(c->deadline);
		free(c);
	}
	control.nclients = 0;
	control.npublic = 0;
	if (control.sigchld != NULL) {
		event_free(control.sigchld);
		control.sigchld = NULL;
	}
	if (control.resume != NULL) {
		event_free(control.resume);
		control.resume = NULL;
	}
	if (control.lev != NULL) {
		evconnlistener_free(control.lev);
		control.lev = NULL;
	}
	if (control.path[0] != '\0') {
		unlink(control.path);
		control.path[0] = '\0';
	}
}
