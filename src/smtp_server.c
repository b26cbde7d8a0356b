/*
 * smtp_server.c: the SMTP listeners, the session cap and the list of live
 * sessions, which it drains when the daemon stops; what one client
 * address may have (sessions, connection rate) is asked of anvil.c.  It
 * owns a small record per connection; the session itself belongs to
 * smtp_session.c and reports its end through a callback.
 * Admission control lives here too: the session budget (admit.c), stress
 * mode, and a spare descriptor so that a client arriving when descriptors
 * have run out still gets a 421 instead of hanging in the listen queue.
 * On a "proxy:" listener a connection from proxy_networks first waits
 * for its PROXY header (proxy_conn.c), and the client it names, never
 * the proxy, is the session's client.  While drained (ternctl drain) new
 * clients get a 421.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "admit.h"
#include "anvil.h"
#include "config.h"
#include "log.h"
#include "proxy.h"
#include "queue.h"
#include "proxy_conn.h"
#include "metrics.h"
#include "sessinfo.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "util.h"

#define SMTP_SERVER_BACKLOG	1024
/* Clients refused at most per accept error, out of descriptors. */
#define SMTP_SERVER_SHED_MAX	64
/* Stress lasts this long (seconds) after descriptors last ran out. */
#define SMTP_SERVER_FD_STRESS	10
/* At the budget, a session silent this long (seconds) may be evicted... */
#define SMTP_SERVER_EVICT_AGE	2
/* ...looking for one among at most this many of the oldest. */
#define SMTP_SERVER_EVICT_SCAN	256

/*
 * One live connection; owned by the server, freed when its session ends.
 * On a "proxy:" listener it first waits for its PROXY header (pc set,
 * session NULL, not yet counted by anvil).
 */
struct smtp_server_client {
	TAILQ_ENTRY(smtp_server_client) entry;
	struct smtp_session	*session;
	struct proxy_conn	*pc;		/* reading the PROXY header */
	int			 fd;
	enum smtp_kind		 kind;
	struct sockaddr_storage	 peer;		/* the proxy, when proxied */
	socklen_t		 peerlen;
	time_t			 since;		/* monotonic seconds */
	struct anvil_key	 key;		/* as anvil counted it */
};
TAILQ_HEAD(smtp_server_clients, smtp_server_client);

/* One listening socket. */
struct smtp_server_listener {
	struct evconnlistener	*lev;
	enum smtp_kind		 kind;
	int			 proxy;		/* PROXY header first */
	char			 text[80];
};

/* The listen lists of a configuration, each with its kind of session. */
static const struct smtp_server_list {
	enum smtp_kind	 kind;
	const char	*name;
	size_t		 offset;	/* of the list in struct config */
	size_t		 count;		/* of its length */
} smtp_server_lists[] = {
	{ SMTP_KIND_MX, "", offsetof(struct config, listen),
	  offsetof(struct config, nlisten) },
	{ SMTP_KIND_SUBMISSION, " (submission)",
	  offsetof(struct config, submission_listen),
	  offsetof(struct config, nsubmission_listen) },
	{ SMTP_KIND_SMTPS, " (implicit TLS)",
	  offsetof(struct config, smtps_listen),
	  offsetof(struct config, nsmtps_listen) },
};

#define SMTP_SERVER_LIST(c, l)	(*(struct config_listen *const *)(const void *) \
	((const char *)(c) + (l)->offset))
#define SMTP_SERVER_COUNT(c, l)	(*(const size_t *)(const void *) \
	((const char *)(c) + (l)->count))

static struct {
	struct event_base		*base;
	const struct config		*conf;
	struct smtp_server_listener	*listeners;
	size_t				 nlisteners;
	struct smtp_server_clients	 clients;
	size_t				 nclients;
	struct event			*resume_ev;
	struct admit_budget		 budget;
	struct event			*stress_ev;
	int				 stress;
	int				 fd_short;	/* EMFILE lately */
	int				 spare;		/* given up for a 421 */
	uint64_t			 shed;		/* 421s, no fds */
	uint64_t			 evicted;	/* silent, at budget */
	time_t				 shed_logged;
	int				 paused;
	int				 stopping;
	int				 draining;	/* ternctl drain */
	uint64_t			 drain_refused;
	void				(*stopped)(void);
} server;

static void	smtp_server_accept_cb(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);
static void	smtp_server_error_cb(struct evconnlistener *, void *);

/*
 * Enter or leave stress mode as the load says: above ADMIT_STRESS_ON
 * percent of the session budget, or while descriptors run short.  Every
 * session's deadline is cut to stress_timeout from now on entering.
 */
static void
smtp_server_check_stress(void)
{
	struct smtp_server_client	*c;
	char				 t[32];
	int				 on;

	on = admit_is_stressed(server.stress, server.nclients,
	    server.budget.sessions) || server.fd_short;
	if (on == server.stress || server.stopping)
		return;
	server.stress = on;
	smtp_session_set_stress(on);
	if (!on) {
		log_info("stress over: %zu of %" PRIu64 " sessions in use; "
		    "timeouts back to normal", server.nclients,
		    server.budget.sessions);
		return;
	}
	util_format_duration(t, sizeof t, server.conf->stress_timeout);
	log_warnx("stress: %zu of %" PRIu64 " sessions in use%s; timeouts "
	    "cut to %s", server.nclients, server.budget.sessions,
	    server.fd_short ? ", out of descriptors" : "", t);
	TAILQ_FOREACH(c, &server.clients, entry)
		smtp_session_stress(c->session);
}

/*
 * The spare descriptor, taken again if it was lost: another thread may
 * take the slot it frees before accept() does, and descriptors may still
 * be short when it is opened again.
 */
static void
smtp_server_spare(void)
{
	if (server.spare == -1)
		server.spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void
smtp_server_stress_cb(evutil_socket_t fd, short events, void *arg)
{
	server.fd_short = 0;
	smtp_server_spare();
	smtp_server_check_stress();
}

/*
 * Whether one more message may be received now: each holds descriptors
 * (admit.h), and those the open sessions leave must not run short.
 */
static int
smtp_server_may_receive(void)
{
	return queue_msgs_open() < admit_messages(&server.budget,
	    server.nclients);
}

/* Work out the session budget for a configuration and log it. */
static void
smtp_server_budget(const struct config *conf)
{
	struct rlimit	rl;
	uint64_t	nofile = 1024;
	char		mem[32];

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		nofile = (uint64_t)rl.rlim_cur;
	else if (rl.rlim_cur == RLIM_INFINITY)
		nofile = UINT32_MAX;
	admit_budget(&server.budget, nofile, conf->max_connections,
	    conf->session_memory, conf->max_deliveries, conf->nsmtpd_milters);
	if (server.budget.clamped)
		log_warnx("max_connections %" PRIu64 " is more than %" PRIu64
		    " descriptors allow; using %" PRIu64,
		    conf->max_connections, nofile, server.budget.sessions);
	util_format_size(mem, sizeof mem, conf->session_memory);
	log_info("session budget: %" PRIu64 " sessions (descriptors %"
	    PRIu64 ", %" PRIu64 " kept in reserve and %" PRIu64 " for %"
	    PRIu64 " messages, %" PRIu64 " a session: %" PRIu64 " sessions; "
	    "session_memory %s at %u bytes each: %" PRIu64 " sessions%s)",
	    server.budget.sessions, nofile, server.budget.reserve,
	    ADMIT_MESSAGE_FDS * server.budget.messages,
	    server.budget.messages, server.budget.session_fds,
	    server.budget.by_fds, mem, ADMIT_SESSION_BYTES,
	    server.budget.by_memory, conf->max_connections != 0 ?
	    "; max_connections set" : "");
}

static void
smtp_server_pause(void)
{
	size_t	i;

	for (i = 0; i < server.nlisteners; i++)
		evconnlistener_disable(server.listeners[i].lev);
	server.paused = 1;
}

static void
smtp_server_resume(void)
{
	size_t	i;

	if (!server.paused || server.stopping)
		return;
	for (i = 0; i < server.nlisteners; i++)
		evconnlistener_enable(server.listeners[i].lev);
	server.paused = 0;
}

static void
smtp_server_resume_cb(evutil_socket_t fd, short events, void *arg)
{
	smtp_server_spare();
	smtp_server_resume();
}

/* A connection gone: forget it, and see whether listening may resume. */
static void
smtp_server_drop(struct smtp_server_client *c)
{
	TAILQ_REMOVE(&server.clients, c, entry);
	server.nclients--;
	free(c);
	smtp_server_spare();
	smtp_server_check_stress();
	smtp_server_resume();
	if (server.stopping && server.nclients == 0 && server.stopped != NULL)
		server.stopped();
}

static void
smtp_server_closed_cb(struct smtp_session *s, void *arg)
{
	struct smtp_server_client	*c = arg;

	anvil_disconnect(&c->key, smtp_session_is_served(s), anvil_now());
	smtp_server_drop(c);
}

/* A connection still waiting for its PROXY header: close it. */
static void
smtp_server_cancel(struct smtp_server_client *c)
{
	proxy_conn_free(c->pc);
	c->pc = NULL;
	close(c->fd);
	smtp_server_drop(c);
}

/* An address for logs, an IPv4 client of a dual-stack socket as IPv4. */
static void
smtp_server_addr_str(const struct sockaddr *sa, char *addr, size_t size)
{
	const struct sockaddr_in6	*sin6;
	const void			*ip;
	int				 af = sa->sa_family;

	sin6 = (const struct sockaddr_in6 *)(const void *)sa;
	if (af == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		af = AF_INET;
		ip = &sin6->sin6_addr.s6_addr[12];
	} else if (af == AF_INET6)
		ip = &sin6->sin6_addr;
	else
		ip = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if ((af != AF_INET && af != AF_INET6) ||
	    inet_ntop(af, ip, addr, (socklen_t)size) == NULL)
		util_strlcpy(addr, "unknown", size);
}

static unsigned
smtp_server_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)
		    ->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

/* Each inbound session, for ternctl sessions. */
void
smtp_server_sessions(void (*fn)(const struct sessinfo *, void *), void *arg)
{
	struct smtp_server_client	*c;
	struct sessinfo			 si;

	TAILQ_FOREACH(c, &server.clients, entry) {
		if (c->session == NULL)
			continue;
		memset(&si, 0, sizeof si);
		smtp_session_info(c->session, &si);
		fn(&si, arg);
	}
}

/*
 * Refuse a connection before any session exists for it; one that expects
 * TLS first is just closed.
 */
static void
smtp_server_refuse_esc(evutil_socket_t fd, enum smtp_kind kind,
    const char *esc, const char *why)
{
	char	line[512];
	int	n;

	if (kind == SMTP_KIND_SMTPS) {
		close(fd);
		return;
	}
	n = snprintf(line, sizeof line, "421 %s %s Error: %s\r\n", esc,
	    server.conf->hostname, why);
	if (n > 0)
		(void)write(fd, line, (size_t)n);
	close(fd);
}

static void
smtp_server_refuse(evutil_socket_t fd, enum smtp_kind kind, const char *why)
{
	smtp_server_refuse_esc(fd, kind, "4.7.0", why);
}

/* A client over one of its own limits (anvil.c). */
static void
smtp_server_refuse_client(evutil_socket_t fd, enum smtp_kind kind,
    const struct sockaddr *sa, enum anvil_result r)
{
	char	addr[INET6_ADDRSTRLEN];

	smtp_server_addr_str(sa, addr, sizeof addr);
	log_info("refused connection from [%s]: %s", addr,
	    anvil_result_str(r));
	metrics_refused(r == ANVIL_CONN_RATE ? METRICS_REFUSED_CLIENT_RATE :
	    METRICS_REFUSED_CLIENT_LIMIT);
	smtp_server_refuse(fd, kind, r == ANVIL_CONN_RATE ?
	    "too many connections from your address per unit of time" :
	    "too many connections from your address");
}

static time_t
smtp_server_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/*
 * The budget is full: make room by closing the oldest session that has
 * not completed a single command in SMTP_SERVER_EVICT_AGE seconds, the
 * mark of a client that dribbles or just holds a slot.  A session that
 * has sent a command is never evicted.  Returns 0 when one was closed.
 */
static int
smtp_server_evict(void)
{
	struct smtp_server_client	*c;
	time_t				 old = smtp_server_now() -
					    SMTP_SERVER_EVICT_AGE;
	unsigned			 n = 0;

	TAILQ_FOREACH(c, &server.clients, entry) {
		if (c->since > old || ++n > SMTP_SERVER_EVICT_SCAN)
			break;
		if (c->session != NULL &&
		    smtp_session_is_silent(c->session)) {
			server.evicted++;
			smtp_session_close(c->session, "evicted: no command, "
			    "session budget full");
			return 0;
		}
	}
	return -1;
}

/*
 * Start the session of an admitted connection, sa being its client's
 * address (the one its PROXY header named, when proxied); refused with a
 * 421 while draining, or when that client is over a limit of its own.
 */
static void
smtp_server_start(struct smtp_server_client *c, int fd,
    const struct sockaddr *sa, socklen_t salen)
{
	struct anvil_key	key;
	enum anvil_result	r;
	char			addr[INET6_ADDRSTRLEN];

	if (server.draining) {
		server.drain_refused++;
		metrics_refused(METRICS_REFUSED_DRAINING);
		smtp_server_addr_str(sa, addr, sizeof addr);
		log_info("refused connection from [%s]: draining", addr);
		smtp_server_refuse_esc(fd, c->kind, "4.3.2",
		    "service draining, try another server");
		smtp_server_drop(c);
		return;
	}
	if ((r = anvil_connect(sa, anvil_now(), &key)) != ANVIL_OK &&
	    r != ANVIL_EXEMPT) {
		smtp_server_refuse_client(fd, c->kind, sa, r);
		smtp_server_drop(c);
		return;
	}
	c->key = key;
	c->session = smtp_session_new(fd, sa, salen, c->kind,
	    smtp_server_closed_cb, c);
	if (c->session == NULL) {
		anvil_disconnect(&key, 0, anvil_now());
		smtp_server_drop(c);
	} else
		metrics.sessions++;
}

/*
 * The PROXY header of a connection from a trusted proxy was read, or
 * could not be.  The client it names is the session's client; LOCAL (the
 * proxy's own health check) is the proxy itself, as the specification
 * says.  A header that names no TCP client (v1 UNKNOWN, v2 UNSPEC or
 * UNIX) is refused: the proxy's own address must never stand in for a
 * client it relays.
 */
static void
smtp_server_proxy_cb(int fd, const struct proxy_hdr *h, const char *why,
    void *arg)
{
	struct smtp_server_client	*c = arg;
	const struct sockaddr		*sa;
	socklen_t			 salen;
	char				 peer[INET6_ADDRSTRLEN];
	char				 addr[INET6_ADDRSTRLEN];

	c->pc = NULL;
	smtp_server_addr_str((struct sockaddr *)&c->peer, peer, sizeof peer);
	if (h == NULL) {
		log_warnx("refused connection from proxy [%s]: PROXY "
		    "protocol: %s", peer, why);
		close(fd);
		smtp_server_drop(c);
		return;
	}
	if (h->command == PROXY_CMD_LOCAL) {
		sa = (struct sockaddr *)&c->peer;
		salen = c->peerlen;
		log_info("connection from proxy [%s] for itself (PROXY v%d "
		    "LOCAL)", peer, h->version);
	} else if ((h->family == AF_INET || h->family == AF_INET6) &&
	    h->stream) {
		sa = (const struct sockaddr *)&h->src;
		salen = h->srclen;
		smtp_server_addr_str(sa, addr, sizeof addr);
		log_info("proxied connection from [%s]:%u via proxy [%s] "
		    "(PROXY v%d)", addr, smtp_server_port(sa), peer,
		    h->version);
	} else {
		log_warnx("refused connection from proxy [%s]: PROXY v%d "
		    "header names no TCP client", peer, h->version);
		close(fd);
		smtp_server_drop(c);
		return;
	}
	smtp_server_start(c, fd, sa, salen);
}

static void
smtp_server_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtp_server_listener	*l = arg;
	struct smtp_server_client	*c;
	char				 addr[INET6_ADDRSTRLEN];

	if (server.stopping) {
		close(fd);
		return;
	}
	if (server.nclients >= server.budget.sessions &&
	    smtp_server_evict() == -1) {
		log_info("refused connection: %zu sessions (session budget)",
		    server.nclients);
		metrics_refused(METRICS_REFUSED_BUDGET);
		smtp_server_refuse(fd, l->kind, "too many connections");
		return;
	}
	/* Only a trusted proxy may speak for someone else. */
	if (l->proxy && !config_is_proxy_client(server.conf, sa)) {
		smtp_server_addr_str(sa, addr, sizeof addr);
		log_warnx("refused connection from [%s] on %s: not in "
		    "proxy_networks", addr, l->text);
		smtp_server_refuse(fd, l->kind, "PROXY protocol required, "
		    "from a trusted proxy");
		return;
	}
#ifndef __linux__
	/* Linux copies the listener's TCP_NODELAY to the accepted socket. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 },
	    sizeof(int));
#endif
	c = xcalloc(1, sizeof *c);
	c->kind = l->kind;
	c->fd = fd;
	c->since = smtp_server_now();
	if ((size_t)salen > sizeof c->peer)
		salen = (int)sizeof c->peer;
	memcpy(&c->peer, sa, (size_t)salen);
	c->peerlen = (socklen_t)salen;
	TAILQ_INSERT_TAIL(&server.clients, c, entry);
	server.nclients++;
	if (l->proxy)
		c->pc = proxy_conn_new(server.base, fd,
		    server.conf->proxy_timeout, smtp_server_proxy_cb, c);
	else
		smtp_server_start(c, fd, sa, (socklen_t)salen);
	smtp_server_check_stress();
}

/*
 * Descriptors ran out at accept(): give up the spare one to take each
 * waiting client off the listen queue with a 421, so none hangs there,
 * then take it back.  Stress mode holds while this goes on.  Returns -1
 * when there is no spare to give.
 */
static int
smtp_server_shed(struct smtp_server_listener *l, int err)
{
	struct timeval	tv = { SMTP_SERVER_FD_STRESS, 0 };
	int		fd = -1, lfd = evconnlistener_get_fd(l->lev);
	unsigned	n = 0;

	server.fd_short = 1;
	evtimer_add(server.stress_ev, &tv);
	smtp_server_check_stress();
	smtp_server_spare();
	while (server.spare != -1 && n < SMTP_SERVER_SHED_MAX) {
		close(server.spare);
		server.spare = -1;
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			smtp_server_refuse_esc(fd, l->kind, "4.3.2",
			    "out of resources, try again later");
			metrics_refused(METRICS_REFUSED_RESOURCES);
			n++;
		}
		smtp_server_spare();
		if (fd == -1)
			break;
	}
	server.shed += n;
	if (time(NULL) != server.shed_logged) {
		server.shed_logged = time(NULL);
		log_warnx("accept: %s; %" PRIu64 " clients refused with 421 "
		    "so far (descriptor limit %" PRIu64 ")", strerror(err),
		    server.shed, server.budget.nofile);
	}
	return server.spare == -1 ? -1 : 0;
}


/*
 * accept() failed.  Out of descriptors, waiting clients are refused with
 * the spare one; without it, or out of memory, listening pauses for a
 * second.
 */
static void
smtp_server_error_cb(struct evconnlistener *lev, void *arg)
{
	struct timeval	tv = { 1, 0 };
	int		err = EVUTIL_SOCKET_ERROR();

	if ((err == EMFILE || err == ENFILE) &&
	    smtp_server_shed(arg, err) == 0)
		return;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		log_warnx("accept: %s; pausing listeners", strerror(err));
		smtp_server_pause();
		evtimer_add(server.resume_ev, &tv);
		return;
	}
	if (err != EAGAIN && err != ECONNABORTED && err != EINTR)
		log_warnx("accept: %s", strerror(err));
}

static int
smtp_server_bind(const struct config_listen *l, int *skippable, char **cause)
{
	int	fd, one = 1;

	*skippable = 0;
	fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		*skippable = errno == EAFNOSUPPORT;
		xasprintf(cause, "listen %s: %s", l->text, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* Replies go out at once; an accepted socket inherits it. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (l->ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
		    sizeof one);
	if (bind(fd, (const struct sockaddr *)&l->ss, l->sslen) == -1 ||
	    listen(fd, SMTP_SERVER_BACKLOG) == -1) {
		*skippable = errno == EADDRNOTAVAIL;
		xasprintf(cause, "listen %s: %s", l->text, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
smtp_server_listeners_free(struct smtp_server_listener *ls, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		evconnlistener_free(ls[i].lev);
	free(ls);
}

/*
 * Open every listen address of a configuration.  An address family the
 * host lacks is skipped with a warning as long as one address works.
 */
static int
smtp_server_listen(const struct config *conf,
    struct smtp_server_listener **lsp, size_t *np, char **cause)
{
	const struct smtp_server_list	*l;
	const struct config_listen	*addrs;
	struct smtp_server_listener	*ls;
	size_t				 i, j, n = 0, total = 0;
	int				 fd, skippable;
	char				*why;

	for (j = 0; j < nitems(smtp_server_lists); j++)
		total += SMTP_SERVER_COUNT(conf, &smtp_server_lists[j]);
	ls = xcalloc(total, sizeof *ls);
	for (j = 0; j < nitems(smtp_server_lists); j++) {
		l = &smtp_server_lists[j];
		addrs = SMTP_SERVER_LIST(conf, l);
		for (i = 0; i < SMTP_SERVER_COUNT(conf, l); i++) {
			if ((fd = smtp_server_bind(&addrs[i], &skippable,
			    &why)) == -1) {
				if (skippable) {
					log_warnx("%s; skipped", why);
					free(why);
					continue;
				}
				*cause = why;
				smtp_server_listeners_free(ls, n);
				return -1;
			}
			ls[n].kind = l->kind;
			ls[n].proxy = addrs[i].proxy;
			ls[n].lev = evconnlistener_new(server.base,
			    smtp_server_accept_cb, &ls[n],
			    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
			    fd);
			if (ls[n].lev == NULL)
				fatalx("evconnlistener_new");
			evconnlistener_set_error_cb(ls[n].lev,
			    smtp_server_error_cb);
			util_snprintf(ls[n].text, sizeof ls[n].text, "%s%s%s",
			    addrs[i].text, l->name, addrs[i].proxy ?
			    " (PROXY protocol)" : "");
			n++;
		}
	}
	if (n == 0) {
		xasprintf(cause, "no address to listen on");
		free(ls);
		return -1;
	}
	*lsp = ls;
	*np = n;
	return 0;
}

int
smtp_server_init(struct event_base *base, const struct config *conf,
    char **cause)
{
	size_t	i;

	server.base = base;
	server.conf = conf;
	TAILQ_INIT(&server.clients);
	anvil_init(conf);
	if ((server.resume_ev = evtimer_new(base, smtp_server_resume_cb,
	    NULL)) == NULL ||
	    (server.stress_ev = evtimer_new(base, smtp_server_stress_cb,
	    NULL)) == NULL)
		fatalx("evtimer_new");
	if ((server.spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		log_warn("/dev/null: no spare descriptor");
	smtp_server_budget(conf);
	smtp_session_set_admit(smtp_server_may_receive);
	if (smtp_server_listen(conf, &server.listeners, &server.nlisteners,
	    cause) == -1)
		return -1;
	for (i = 0; i < server.nlisteners; i++)
		log_info("listening on %s", server.listeners[i].text);
	return 0;
}

static int
smtp_server_same_listen(const struct config *a, const struct config *b)
{
	const struct smtp_server_list	*l;
	const struct config_listen	*la, *lb;
	size_t				 i, j;

	for (j = 0; j < nitems(smtp_server_lists); j++) {
		l = &smtp_server_lists[j];
		if (SMTP_SERVER_COUNT(a, l) != SMTP_SERVER_COUNT(b, l))
			return 0;
		la = SMTP_SERVER_LIST(a, l);
		lb = SMTP_SERVER_LIST(b, l);
		for (i = 0; i < SMTP_SERVER_COUNT(a, l); i++) {
			if (la[i].sslen != lb[i].sslen ||
			    la[i].proxy != lb[i].proxy ||
			    memcmp(&la[i].ss, &lb[i].ss, la[i].sslen) != 0)
				return 0;
		}
	}
	return 1;
}

/*
 * A reload.  Listeners are reopened only when the addresses changed, and
 * the old ones stay if the new ones cannot be opened.
 */
int
smtp_server_set_config(const struct config *conf, char **cause)
{
	struct smtp_server_listener	*ls;
	size_t				 n, i;

	if (!smtp_server_same_listen(server.conf, conf)) {
		smtp_server_listeners_free(server.listeners,
		    server.nlisteners);
		server.listeners = NULL;
		server.nlisteners = 0;
		if (smtp_server_listen(conf, &ls, &n, cause) == -1) {
			/* Put the old addresses back. */
			char *why = NULL;
			if (smtp_server_listen(server.conf, &server.listeners,
			    &server.nlisteners, &why) == -1) {
				log_warnx("cannot reopen listeners: %s", why);
				free(why);
			}
			return -1;
		}
		server.listeners = ls;
		server.nlisteners = n;
		for (i = 0; i < n; i++)
			log_info("listening on %s", ls[i].text);
		if (server.paused)
			smtp_server_pause();
	}
	server.conf = conf;
	smtp_server_budget(conf);
	smtp_server_check_stress();
	anvil_set_config(conf);
	return 0;
}

/* Stop accepting and drain every session; call done when none is left. */
void
smtp_server_shutdown(void (*done)(void))
{
	struct smtp_server_client	*c, *next;

	server.stopping = 1;
	server.stopped = done;
	smtp_server_listeners_free(server.listeners, server.nlisteners);
	server.listeners = NULL;
	server.nlisteners = 0;
	if (server.nclients == 0) {
		done();
		return;
	}
	for (c = TAILQ_FIRST(&server.clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->session != NULL)
			smtp_session_drain(c->session);
		else
			smtp_server_cancel(c);
	}
}

/* The bound on draining has passed: close whatever is left. */
void
smtp_server_close_all(void)
{
	struct smtp_server_client	*c;

	while ((c = TAILQ_FIRST(&server.clients)) != NULL) {
		if (c->session != NULL)
			smtp_session_close(c->session, "daemon stopping");
		else
			smtp_server_cancel(c);
	}
}

/*
 * ternctl drain (on 1) and undrain (on 0): while draining, every new
 * client is answered 421 4.3.2 and closed (after its PROXY header, so
 * that a load balancer's health check sees the 421), sessions already
 * open go on, and delivery goes on.  Returns the state before.
 */
int
smtp_server_drain(int on)
{
	int	was = server.draining;

	server.draining = on;
	if (on != was)
		log_info("%s", on ? "draining: new clients are refused with "
		    "421, sessions open go on" : "undrained: accepting new "
		    "clients again");
	return was;
}

int
smtp_server_is_draining(void)
{
	return server.draining;
}

size_t
smtp_server_session_count(void)
{
	return server.nclients;
}

/* Sessions against the budget, what they hold, and whether stressed. */
void
smtp_server_stats(struct smtp_server_stats *st)
{
	struct smtp_server_client	*c;

	st->sessions = server.nclients;
	st->budget = server.budget.sessions;
	st->bytes = 0;
	TAILQ_FOREACH(c, &server.clients, entry)
		st->bytes += ADMIT_SESSION_BYTES + (c->session == NULL ? 0 :
		    smtp_session_bytes(c->session));
	st->stress = server.stress;
	st->draining = server.draining;
	st->drain_refused = server.drain_refused;
}

void
smtp_server_free(void)
{
	server.stopped = NULL;
	smtp_server_close_all();
	smtp_session_shutdown();
	smtp_server_listeners_free(server.listeners, server.nlisteners);
	server.listeners = NULL;
	server.nlisteners = 0;
	if (server.resume_ev != NULL)
		event_free(server.resume_ev);
	server.resume_ev = NULL;
	if (server.stress_ev != NULL)
		event_free(server.stress_ev);
	server.stress_ev = NULL;
	if (server.spare != -1)
		close(server.spare);
	server.spare = -1;
	anvil_shutdown();
}
