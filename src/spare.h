/*
 * spare.h: spool files kept for reuse instead of being removed.
 */
#ifndef SPARE_H
#define SPARE_H

#include <stdint.h>

/* Which pool: envelopes are small, contents larger. */
enum spare_kind {
	SPARE_ENV,
	SPARE_MSG,
	SPARE_NKINDS
};

/* Files kept in each pool, and the largest kept. */
#define SPARE_MAX		256
#define SPARE_MAX_SIZE		(128 * 1024)
#define SPARE_NAME_SIZE		12	/* "e0123abcd" and a NUL */

int	spare_init(int, char **);
void	spare_shutdown(void);
int	spare_take(enum spare_kind, char *, size_t);
int	spare_open(const char *);
int	spare_place(const char *, int, const char *);
void	spare_drop(const char *);
void	spare_return(enum spare_kind, const char *, uint64_t);
int	spare_keep(enum spare_kind, int, const char *, uint64_t);
size_t	spare_count(enum spare_kind);

#endif
