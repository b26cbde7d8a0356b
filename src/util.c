/*
 * util.c: x-allocators (allocation failure is fatal), bounded string
 * copies, and the parsers for sizes ("25M") and durations ("30m").
 * Owns no state and never logs except through fatal paths.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void __attribute__((noreturn))
util_oom(void)
{
	fputs("tern: out of memory\n", stderr);
	abort();
}

void *
xmalloc(size_t size)
{
	void	*p;

	if (size == 0)
		size = 1;
	if ((p = malloc(size)) == NULL)
		util_oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void	*p;

	if (n == 0 || size == 0)
		n = size = 1;
	if ((p = calloc(n, size)) == NULL)
		util_oom();
	return p;
}

void *
xreallocarray(void *old, size_t n, size_t size)
{
	void	*p;

	if (n == 0 || size == 0)
		n = size = 1;
	if (n > SIZE_MAX / size)
		util_oom();
	if ((p = realloc(old, n * size)) == NULL)
		util_oom();
	return p;
}

char *
xstrdup(const char *s)
{
	char	*p;

	if ((p = strdup(s)) == NULL)
		util_oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char	*p;

	if ((p = strndup(s, n)) == NULL)
		util_oom();
	return p;
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n == -1)
		util_oom();
	return n;
}

/* Make room for len more octets and the NUL. */
static void
util_buf_reserve(struct util_buf *b, size_t len)
{
	size_t	size;

	if (b->size - b->len > len)
		return;
	size = b->size == 0 ? 1024 : b->size;
	while (size - b->len <= len) {
		if (size > SIZE_MAX / 2)
			util_oom();
		size *= 2;
	}
	b->data = xreallocarray(b->data, size, 1);
	b->size = size;
}

void
util_buf_add(struct util_buf *b, const void *data, size_t len)
{
	util_buf_reserve(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
util_buf_adds(struct util_buf *b, const char *s)
{
	util_buf_add(b, s, strlen(s));
}

void
util_buf_vprintf(struct util_buf *b, const char *fmt, va_list ap)
{
	va_list	ap2;
	int	n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		util_oom();
	util_buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, b->size - b->len, fmt, ap);
	b->len += (size_t)n;
}

void
util_buf_printf(struct util_buf *b, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	util_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

/* Copy with truncation; returns strlen(src) so callers can detect it. */
size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t	len = strlen(src);

	if (size != 0) {
		size_t n = len >= size ? size - 1 : len;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

size_t
util_strlcat(char *dst, const char *src, size_t size)
{
	size_t	dlen = strnlen(dst, size);

	if (dlen == size)
		return size + strlen(src);
	return dlen + util_strlcpy(dst + dlen, src, size - dlen);
}

/* snprintf that reports truncation as -1. */
int
util_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return -1;
	return n;
}

/* Write all of buf, through short writes and signals; 0 or -1. */
int
util_write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read from fd into a NUL-terminated heap buffer: at most max octets,
 * and with stop, only as far as it says once it finds its end (it is
 * handed what was read so far and returns the length wanted, or 0 to
 * read on).  The buffer grows as it fills, so a short file costs a
 * small one.  0, or -1 with errno.
 */
int
util_read_fd(int fd, size_t max, size_t (*stop)(const char *, size_t),
    char **bufp, size_t *lenp)
{
	char	*buf;
	size_t	 size, off = 0, end = 0;
	ssize_t	 n;

	size = max < UTIL_READ_CHUNK ? max : UTIL_READ_CHUNK;
	buf = xmalloc(size + 1);
	while (off < max && end == 0) {
		if (off == size) {
			size = size > max / 2 ? max : size * 2;
			buf = xreallocarray(buf, size + 1, 1);
		}
		if ((n = read(fd, buf + off, size - off)) == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
		if (stop != NULL)
			end = stop(buf, off);
	}
	if (end != 0)
		off = end;
	buf[off] = '\0';
	*bufp = buf;
	*lenp = off;
	return 0;
}

void
util_lowercase(char *s)
{
	for (; *s != '\0'; s++)
		*s = tolower((unsigned char)*s);
}

/*
 * Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF) at p, looking at no more than len
 * octets, or 0.  It stops at the first octet that does not fit, so in a
 * NUL-terminated string it never passes the NUL.
 */
size_t
util_utf8_len(const unsigned char *p, size_t len)
{
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		n, i;

	if (len == 0)
		return 0;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n > len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return n;
}

/* A decimal number within [min, max]. */
int
util_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
    const char **cause)
{
	unsigned long long	 v;
	char			*end;

	if (!isdigit((unsigned char)*s)) {
		*cause = "not a number";
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0') {
		*cause = "not a number";
		return -1;
	}
	if (errno == ERANGE || v > max) {
		*cause = "too large";
		return -1;
	}
	if (v < min) {
		*cause = "too small";
		return -1;
	}
	*out = v;
	return 0;
}

/* A number with an optional unit; the unit's multiplier comes from table. */
struct util_unit {
	const char	*suffix;
	uint64_t	 mult;
};

static int
util_parse_units(const char *s, const struct util_unit *units, size_t nunits,
    uint64_t *out, const char **cause)
{
	unsigned long long	 v;
	char			*end;
	size_t			 i;

	if (!isdigit((unsigned char)*s)) {
		*cause = "not a number";
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE) {
		*cause = "too large";
		return -1;
	}
	for (i = 0; i < nunits; i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (units[i].mult != 0 && v > UINT64_MAX / units[i].mult) {
			*cause = "too large";
			return -1;
		}
		*out = v * units[i].mult;
		return 0;
	}
	*cause = "unknown unit";
	return -1;
}

/* "1024", "512K", "25M", "1G" (powers of 1024) into bytes. */
int
util_parse_size(const char *s, uint64_t *out, const char **cause)
{
	static const struct util_unit units[] = {
		{ "", 1 }, { "B", 1 },
		{ "K", 1024ULL }, { "KB", 1024ULL }, { "KiB", 1024ULL },
		{ "M", 1024ULL * 1024 }, { "MB", 1024ULL * 1024 },
		{ "MiB", 1024ULL * 1024 },
		{ "G", 1024ULL * 1024 * 1024 }, { "GB", 1024ULL * 1024 * 1024 },
		{ "GiB", 1024ULL * 1024 * 1024 },
	};

	return util_parse_units(s, units, nitems(units), out, cause);
}

/* "90" (seconds), "500ms", "30s", "30m", "2h", "1d", "1w" into ms. */
int
util_parse_duration(const char *s, uint64_t *out, const char **cause)
{
	static const struct util_unit units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }, { "w", 604800000 },
	};

	return util_parse_units(s, units, nitems(units), out, cause);
}

/* yes/no, true/false, on/off, 1/0. */
int
util_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t	i;

	for (i = 0; i < nitems(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* The shortest exact form: 26214400 -> "25M". */
void
util_format_size(char *buf, size_t size, uint64_t v)
{
	static const char	units[] = "KMG";
	int			i = -1;

	while (v != 0 && v % 1024 == 0 && i < 2) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, size, "%llu", (unsigned long long)v);
	else
		snprintf(buf, size, "%llu%c", (unsigned long long)v, units[i]);
}

/* The largest exact unit: 1800000 -> "30m". */
void
util_format_duration(char *buf, size_t size, uint64_t ms)
{
	static const struct util_unit units[] = {
		{ "w", 604800000 }, { "d", 86400000 }, { "h", 3600000 },
		{ "m", 60000 }, { "s", 1000 },
	};
	size_t	i;

	if (ms != 0) {
		for (i = 0; i < nitems(units); i++) {
			if (ms % units[i].mult == 0) {
				snprintf(buf, size, "%llu%s",
				    (unsigned long long)(ms / units[i].mult),
				    units[i].suffix);
				return;
			}
		}
		snprintf(buf, size, "%llums", (unsigned long long)ms);
		return;
	}
	snprintf(buf, size, "0s");
}

/* The RFC 5322 date-time of t in local time, as in Date: and Received:. */
void
util_date(char *buf, size_t size, time_t t)
{
	struct tm	tm;

	buf[0] = '\0';
	if (localtime_r(&t, &tm) != NULL)
		strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}
