/*
 * util.h: allocation that never fails, bounded strings, and the size and
 * duration syntax administrators write.  libc only; no tern state.
 */
#ifndef UTIL_H
#define UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))

/* Octets util_read_fd() reads first; the buffer doubles from there. */
#define UTIL_READ_CHUNK	16384

/* A growing text buffer, NUL-terminated; owned by whoever declares it. */
struct util_buf {
	char	*data;
	size_t	 len;
	size_t	 size;
};

void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

void		 util_buf_add(struct util_buf *, const void *, size_t);
void		 util_buf_adds(struct util_buf *, const char *);
void		 util_buf_vprintf(struct util_buf *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));
void		 util_buf_printf(struct util_buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

size_t		 util_strlcpy(char *, const char *, size_t);
size_t		 util_strlcat(char *, const char *, size_t);
int		 util_snprintf(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 util_lowercase(char *);
int		 util_write_all(int, const void *, size_t);
int		 util_read_fd(int, size_t, size_t (*)(const char *, size_t),
		    char **, size_t *);
size_t		 util_utf8_len(const unsigned char *, size_t);

int		 util_parse_size(const char *, uint64_t *, const char **);
int		 util_parse_duration(const char *, uint64_t *, const char **);
int		 util_parse_uint(const char *, uint64_t, uint64_t, uint64_t *,
		    const char **);
int		 util_parse_bool(const char *, int *);
void		 util_format_size(char *, size_t, uint64_t);
void		 util_date(char *, size_t, time_t);
void		 util_format_duration(char *, size_t, uint64_t);

#endif
