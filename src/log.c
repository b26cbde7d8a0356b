/*
 * log.c: the log targets (stderr, syslog, none), the debug switch, and
 * escaping of peer text.  Logging never fails in a way that stops mail:
 * a target that cannot take a line drops it.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static enum log_target	log_target = LOG_TARGET_STDERR;
static int		log_debug_on;
static const char	*log_ident = "ternd";

void
log_init(const char *ident, enum log_target target, int debug)
{
	log_ident = ident;
	log_debug_on = debug;
	log_set_target(target);
}

void
log_set_target(enum log_target target)
{
	if (log_target == LOG_TARGET_SYSLOG && target != LOG_TARGET_SYSLOG)
		closelog();
	if (target == LOG_TARGET_SYSLOG && log_target != LOG_TARGET_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_target = target;
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
	}
	return "unknown";
}

/* Send one finished line to the target. */
static void
log_emit(int pri, const char *msg)
{
	struct tm	tm;
	time_t		now;
	char		stamp[32];

	switch (log_target) {
	case LOG_TARGET_NONE:
		return;
	case LOG_TARGET_SYSLOG:
		syslog(pri, "%s", msg);
		return;
	case LOG_TARGET_STDERR:
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s %s[%ld]: %s\n", stamp, log_ident,
		    (long)getpid(), msg);
		return;
	}
}

static void
log_vlog(int pri, int with_errno, const char *fmt, va_list ap)
{
	char	msg[4096];
	size_t	len;
	int	saved = errno;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (with_errno) {
		len = strlen(msg);
		snprintf(msg + len, sizeof msg - len, ": %s", strerror(saved));
	}
	log_emit(pri, msg);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
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
