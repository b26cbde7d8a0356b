/*
 * log.c: the log targets (stderr, syslog, a daily file, a remote RFC 5424
 * server over UDP, none), the debug switch, and escaping of peer text.
 * Logging never fails in a way that stops mail or blocks for long: a
 * target that cannot take a line drops it, counts it, and the count is
 * reported with the next line that goes through.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_PANIC_SIZE	1024	/* of the reason a panic gives */

static enum log_target	log_target = LOG_TARGET_STDERR;
static int		log_debug_on;
static const char	*log_ident = "ternd";

/* The syslog(3) tag now in use: the ident, or "ident/sub" (log_mail). */
static char		log_tag[64];

/*
 * What openlog(3) is given: the tag and "[pid]", as LOG_PID would put
 * them, so that no line asks for the pid again (a system call each).
 */
static char		log_syslog_ident[sizeof log_tag + 24];

/* This process's id: asked at the first line and again after a fork. */
static pid_t		log_pid;

/* file: the spool's log directory and the day's file, opened lazily. */
static char		log_dir[PATH_MAX];
static int		log_file_fd = -1;
static int		log_file_mon = -1, log_file_mday = -1;

/* file and remote: the host name the lines carry. */
static char		log_host[256] = "localhost";

/* remote: where the datagrams go. */
static struct sockaddr_storage log_server;
static socklen_t	log_server_len;
static int		log_sock = -1;

/* Lines a failing target could not take since the last report. */
static unsigned long	log_dropped;

static const char *const log_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

static void
log_syslog_open(void)
{
	snprintf(log_syslog_ident, sizeof log_syslog_ident, "%s[%ld]",
	    log_tag, (long)log_pid);
	openlog(log_syslog_ident, LOG_NDELAY, LOG_MAIL);
}

/* In the child of a fork: its own pid from now on. */
static void
log_forked(void)
{
	log_pid = getpid();
	if (log_target == LOG_TARGET_SYSLOG)
		log_syslog_open();
}

static long
log_getpid(void)
{
	if (log_pid == 0) {
		log_pid = getpid();
		pthread_atfork(NULL, NULL, log_forked);
	}
	return (long)log_pid;
}

void
log_init(const char *ident, enum log_target target, int debug)
{
	log_ident = ident;
	log_debug_on = debug;
	log_set_target(target);
}

static void
log_file_close(void)
{
	if (log_file_fd != -1)
		close(log_file_fd);
	log_file_fd = -1;
	log_file_mon = log_file_mday = -1;
}

void
log_set_target(enum log_target target)
{
	if (log_target == LOG_TARGET_SYSLOG && target != LOG_TARGET_SYSLOG)
		closelog();
	if (target == LOG_TARGET_SYSLOG && log_target != LOG_TARGET_SYSLOG) {
		snprintf(log_tag, sizeof log_tag, "%s", log_ident);
		log_getpid();
		log_syslog_open();
	}
	if (target != LOG_TARGET_FILE)
		log_file_close();
	if (target != LOG_TARGET_REMOTE && log_sock != -1) {
		close(log_sock);
		log_sock = -1;
	}
	if (target == LOG_TARGET_REMOTE && log_sock == -1) {
		/* Non-blocking: a full socket buffer drops, never waits. */
		log_sock = socket(log_server.ss_family == AF_UNSPEC ? AF_INET :
		    log_server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
	}
	log_target = target;
}

/* The daily files go to DIR; the next line opens the file anew. */
void
log_set_dir(const char *dir)
{
	snprintf(log_dir, sizeof log_dir, "%s", dir);
	log_file_close();
}

void
log_set_hostname(const char *host)
{
	snprintf(log_host, sizeof log_host, "%s", host);
}

/*
 * Where remote lines go.  A host name is resolved here, once, with
 * getaddrinfo(): this runs at start and reload only, never while mail
 * moves, so its wait cannot hold up the event loop.  On failure the old
 * server is kept when there was one, and *cause says why.
 */
int
log_set_server(const char *host, unsigned port, char **cause)
{
	struct addrinfo	 hints, *res;
	char		 serv[8];
	int		 rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	snprintf(serv, sizeof serv, "%u", port);
	if ((rc = getaddrinfo(host, serv, &hints, &res)) != 0) {
		xasprintf(cause, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	if (res->ai_addrlen > sizeof log_server) {
		freeaddrinfo(res);
		xasprintf(cause, "%s: address too long", host);
		return -1;
	}
	if (log_sock != -1 && res->ai_family != log_server.ss_family) {
		close(log_sock);
		log_sock = -1;
	}
	memcpy(&log_server, res->ai_addr, res->ai_addrlen);
	log_server_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (log_target == LOG_TARGET_REMOTE && log_sock == -1)
		log_set_target(LOG_TARGET_REMOTE);
	return 0;
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

int
log_is_debug(void)
{
	return log_debug_on;
}

const char *
log_target_str(enum log_target target)
{
	switch (target) {
	case LOG_TARGET_STDERR:
		return "stderr";
	case LOG_TARGET_SYSLOG:
		return "syslog";
	case LOG_TARGET_NONE:
		return "none";
	case LOG_TARGET_FILE:
		return "file";
	case LOG_TARGET_REMOTE:
		return "remote";
	}
	return "unknown";
}

/* The day's file, reopened when the local date is not the open one's. */
static int
log_file_open(const struct tm *tm)
{
	char	path[PATH_MAX + 32];

	if (log_file_fd != -1 && tm->tm_mon == log_file_mon &&
	    tm->tm_mday == log_file_mday)
		return log_file_fd;
	log_file_close();
	if (log_dir[0] == '\0')
		return -1;
	snprintf(path, sizeof path, "%s/sys%02d%02d.txt", log_dir,
	    tm->tm_mon + 1, tm->tm_mday);
	log_file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NONBLOCK, 0640);
	if (log_file_fd == -1 && errno == ENOENT && mkdir(log_dir, 0750) == 0)
		log_file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT |
		    O_CLOEXEC | O_NONBLOCK, 0640);
	if (log_file_fd != -1) {
		log_file_mon = tm->tm_mon;
		log_file_mday = tm->tm_mday;
	}
	return log_file_fd;
}

/* One line in the classic syslog layout, so log tools read the file. */
static int
log_file_write(const char *tag, const char *msg)
{
	struct tm	tm;
	time_t		now = time(NULL);
	char		line[4096 + 512];
	int		fd, len;

	localtime_r(&now, &tm);
	if ((fd = log_file_open(&tm)) == -1)
		return -1;
	len = snprintf(line, sizeof line, "%s %2d %02d:%02d:%02d %s %s[%ld]: "
	    "%s\n", log_months[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, log_host, tag, log_getpid(), msg);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof line) {
		len = sizeof line - 1;
		line[len - 1] = '\n';
	}
	/* One write with O_APPEND: whole lines, even from two processes. */
	return write(fd, line, len) == len ? 0 : -1;
}

/*
 * One RFC 5424 message in one datagram (RFC 5426): facility mail, UTC
 * time stamp, APP-NAME the tag, PROCID the pid, no MSGID, no structured
 * data.  Sent without waiting; a refused or full socket drops it.
 */
static int
log_remote_write(int pri, const char *tag, const char *msg)
{
	struct timespec	ts;
	struct tm	tm;
	char		dgram[4096 + 512], stamp[32];
	int		len;

	if (log_sock == -1 || log_server_len == 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	len = snprintf(dgram, sizeof dgram, "<%d>1 %s.%06ldZ %s %s %ld - - %s",
	    LOG_MAIL | pri, stamp, ts.tv_nsec / 1000, log_host[0] != '\0' ?
	    log_host : "-", tag, log_getpid(), msg);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof dgram)
		len = sizeof dgram - 1;
	return sendto(log_sock, dgram, len, MSG_DONTWAIT,
	    (struct sockaddr *)&log_server, log_server_len) == len ? 0 : -1;
}

/* The line to one target: 0 if it took it. */
static int
log_write(int pri, const char *tag, const char *msg)
{
	struct tm	tm;
	time_t		now;
	char		stamp[32];

	switch (log_target) {
	case LOG_TARGET_NONE:
		return 0;
	case LOG_TARGET_SYSLOG:
		/* glibc keeps the connection; openlog() only swaps the tag. */
		if (strcmp(tag, log_tag) != 0) {
			snprintf(log_tag, sizeof log_tag, "%s", tag);
			log_syslog_open();
		}
		syslog(pri, "%s", msg);
		return 0;
	case LOG_TARGET_STDERR:
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s %s[%ld]: %s\n", stamp, tag,
		    log_getpid(), msg);
		return 0;
	case LOG_TARGET_FILE:
		return log_file_write(tag, msg);
	case LOG_TARGET_REMOTE:
		return log_remote_write(pri, tag, msg);
	}
	return -1;
}

/*
 * Send one finished line to the target, tagged "ident" or "ident/sub".
 * Lines dropped before are reported once, ahead of the first that the
 * target takes again.
 */
static void
log_emit(int pri, const char *sub, const char *msg)
{
	char	tag[64], note[80];

	if (sub != NULL)
		snprintf(tag, sizeof tag, "%s/%s", log_ident, sub);
	else
		snprintf(tag, sizeof tag, "%s", log_ident);
	if (log_dropped > 0) {
		snprintf(note, sizeof note, "log target failed: %lu lines "
		    "dropped", log_dropped);
		if (log_write(LOG_WARNING, log_ident, note) == -1) {
			log_dropped++;
			return;
		}
		log_dropped = 0;
	}
	if (log_write(pri, tag, msg) == -1)
		log_dropped++;
}

static void __attribute__((format(printf, 4, 0)))
log_vlog(int pri, const char *sub, int with_errno, const char *fmt,
    va_list ap)
{
	char	msg[4096];
	size_t	len;
	int	saved = errno;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (with_errno) {
		len = strlen(msg);
		snprintf(msg + len, sizeof msg - len, ": %s", strerror(saved));
	}
	log_emit(pri, sub, msg);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, NULL, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, NULL, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, NULL, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, NULL, 0, fmt, ap);
	va_end(ap);
}

/*
 * A line of the mail flow, tagged "ident/sub" the way Postfix tags its
 * programs ("smtpd", "qmgr", "smtp", "bounce") so that log tools such as
 * pflogsumm recognise what kind of line it is.
 */
void
log_mail(const char *sub, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, sub, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, NULL, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, NULL, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * A broken invariant: our bug, not the configuration's or the
 * environment's (those are fatal() and fatalx()).  Logged, then abort()
 * leaves a core dump to debug, as Postfix's msg_panic() does.
 */
static void __attribute__((format(printf, 1, 2)))
log_crit(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, NULL, 0, fmt, ap);
	va_end(ap);
}

void
panic(const char *fmt, ...)
{
	va_list	ap;
	char	buf[LOG_PANIC_SIZE];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	log_crit("panic: %s", buf);
	abort();
}

/*
 * Make peer text safe for a log line: printable ASCII and valid UTF-8
 * (C1 controls excluded) pass; backslash and any other octet become \\
 * and \xHH.  Always terminates dst and returns it; output that does not
 * fit is cut and ends in "...".
 */
const char *
log_escape(char *dst, size_t size, const char *src, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)src;
	size_t			 i = 0, o = 0, n;

	if (size == 0)
		return dst;
	while (i < len) {
		if (o + 8 >= size) {
			if (size >= 4) {
				o = o > size - 4 ? size - 4 : o;
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (s[i] == '\\') {
			dst[o++] = '\\';
			dst[o++] = '\\';
			i++;
		} else if (s[i] >= 0x20 && s[i] < 0x7f) {
			dst[o++] = (char)s[i++];
		} else if (s[i] >= 0x80 &&
		    (n = util_utf8_len(s + i, len - i)) != 0 &&
		    !(s[i] == 0xc2 && s[i + 1] < 0xa0)) {	/* C1 */
			memcpy(dst + o, s + i, n);
			o += n;
			i += n;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[s[i] >> 4];
			dst[o++] = hex[s[i] & 0xf];
			i++;
		}
	}
	dst[o] = '\0';
	return dst;
}
