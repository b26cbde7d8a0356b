/*
 * notify.c: systemd's notify protocol, without libsystemd: one datagram
 * of "KEY=value" lines to the AF_UNIX socket named by $NOTIFY_SOCKET.
 * It owns that socket and nothing else.  It never blocks, never stops
 * mail when the manager cannot be told (it logs that once), and knows
 * nothing of what the status it is handed means.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

/* Big enough for a state, a STATUS line and MAINPID. */
#define NOTIFY_MSG_SIZE	512

static struct {
	int	 fd;		/* -1: no manager to tell */
	char	 name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int	 warned;	/* a failure was logged */
	char	 pending[NOTIFY_MSG_SIZE];	/* state change not yet sent */
	size_t	 pending_len;
} notify = { -1, "", 0, "", 0 };

/*
 * Read $NOTIFY_SOCKET (a path, or "@name" for an abstract socket) and
 * connect to it.  The variable is removed from the environment so that no
 * program ternd ever runs inherits it and speaks for ternd.  Connecting
 * now, before privileges are dropped, means later sends need no access to
 * the socket's path.
 */
void
notify_init(void)
{
	struct sockaddr_un	 sun;
	const char		*env;
	socklen_t		 len;
	size_t			 n;

	if ((env = getenv("NOTIFY_SOCKET")) == NULL)
		return;
	n = strlen(env);
	if (n >= sizeof notify.name) {
		unsetenv("NOTIFY_SOCKET");
		log_warnx("NOTIFY_SOCKET is too long; not notifying the "
		    "service manager");
		return;
	}
	memcpy(notify.name, env, n + 1);
	unsetenv("NOTIFY_SOCKET");
	if (notify.name[0] != '/' && notify.name[0] != '@') {
		log_warnx("NOTIFY_SOCKET %s is neither a path nor an abstract "
		    "socket; not notifying the service manager", notify.name);
		return;
	}

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, notify.name, n);
	len = offsetof(struct sockaddr_un, sun_path) + n;
	if (notify.name[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract: the length ends it */
	else
		len++;
	notify.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (notify.fd == -1) {
		log_warn("NOTIFY_SOCKET %s: socket", notify.name);
		return;
	}
	if (connect(notify.fd, (struct sockaddr *)&sun, len) == -1) {
		log_warn("NOTIFY_SOCKET %s; not notifying the service manager",
		    notify.name);
		close(notify.fd);
		notify.fd = -1;
	}
}

int
notify_is_enabled(void)
{
	return notify.fd != -1;
}

static int
notify_write(const char *msg, size_t len)
{
	if (send(notify.fd, msg, len, MSG_NOSIGNAL) != -1)
		return 0;
	if (!notify.warned) {
		log_warn("NOTIFY_SOCKET %s: cannot notify the service manager",
		    notify.name);
		notify.warned = 1;
	}
	return -1;
}

/*
 * Send one message.  A state change (state set) that finds the socket
 * full is kept and sent before the next message, so the manager never
 * misses READY or STOPPING or sees them out of order; a newer state
 * replaces an older one still waiting.  A bare status is simply dropped.
 */
static void __attribute__((format(printf, 2, 3)))
notify_send(int state, const char *fmt, ...)
{
	char	 msg[NOTIFY_MSG_SIZE];
	va_list	 ap;
	int	 n;

	if (notify.fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;	/* only a long STATUS is cut */

	if (notify.pending_len != 0 &&
	    notify_write(notify.pending, notify.pending_len) == 0)
		notify.pending_len = 0;
	if (notify.pending_len == 0 && notify_write(msg, n) == 0)
		return;
	if (state && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    notify.pending_len != 0)) {
		memcpy(notify.pending, msg, n);
		notify.pending_len = n;
	}
}

/* Up and serving: at start-up, and when a reload is done. */
void
notify_ready(const char *status)
{
	notify_send(1, "READY=1\nSTATUS=%s\nMAINPID=%ld", status,
	    (long)getpid());
}

/*
 * A reload starts.  The time stamp lets the manager (Type=notify-reload)
 * tell this reload from an earlier one.
 */
void
notify_reloading(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	notify_send(1, "RELOADING=1\nSTATUS=Reloading the configuration\n"
	    "MONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
}

void
notify_stopping(const char *status)
{
	notify_send(1, "STOPPING=1\nSTATUS=%s", status);
}

void
notify_status(const char *status)
{
	notify_send(0, "STATUS=%s", status);
}

void
notify_shutdown(void)
{
	if (notify.fd != -1)
		close(notify.fd);
	notify.fd = -1;
}
