/*
 * spare.c: spool files kept for reuse.  A removed message's envelope and
 * content are renamed into spare/ rather than unlinked (at most
 * SPARE_MAX of each kind, none larger than SPARE_MAX_SIZE), and a new
 * message's files are overwritten rather than created.  A steady flow
 * of mail then allocates and frees no inode and, messages of like
 * sizes, no block: on ext4 without a journal every inode allocation
 * skips the inodes freed within the last minute one by one, and with
 * the discard mount option every freed block waits for the device.
 * Whoever overwrites a spare truncates it to what it wrote before the
 * sync that commits it, so nothing older survives in a queued file.
 *
 * A taken spare is written where it is, under its spare name, and
 * renamed once, into queue/XX/ as its message commits: a file in spare/
 * may be a message being received, never acknowledged.  spare/ is
 * emptied at start: nothing in it is mail.
 *
 * The pools and the names belong to the loop; spare_open(),
 * spare_place() and spare_drop() alone may run on a worker, for a name
 * the loop took.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spare.h"
#include "util.h"

static struct {
	int		fd;		/* spare/ */
	uint32_t	next;		/* the next name */
	uint32_t	names[SPARE_NKINDS][SPARE_MAX];
	size_t		n[SPARE_NKINDS];
} spare = { .fd = -1 };

static void
spare_name(enum spare_kind kind, uint32_t n, char *buf, size_t size)
{
	util_snprintf(buf, size, "%c%08" PRIx32, kind == SPARE_ENV ? 'e' :
	    'm', n);
}

/* Make or open SPOOL/spare/ and empty it. */
int
spare_init(int spoolfd, char **cause)
{
	DIR		*dp;
	struct dirent	*de;
	int		 fd;

	spare_shutdown();
	if (mkdirat(spoolfd, "spare", 0700) == -1 && errno != EEXIST) {
		xasprintf(cause, "spare: %s", strerror(errno));
		return -1;
	}
	spare.fd = openat(spoolfd, "spare", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (spare.fd == -1 || (fd = dup(spare.fd)) == -1) {
		xasprintf(cause, "spare: %s", strerror(errno));
		return -1;
	}
	if ((dp = fdopendir(fd)) == NULL) {
		close(fd);
		xasprintf(cause, "spare: %s", strerror(errno));
		return -1;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(spare.fd, de->d_name, 0) == -1)
			log_warn("spare/%s: cannot remove", de->d_name);
	}
	closedir(dp);
	return 0;
}

void
spare_shutdown(void)
{
	if (spare.fd != -1)
		close(spare.fd);
	spare.fd = -1;
	memset(spare.n, 0, sizeof spare.n);
}

/* Whether the pool of a kind takes one more file of size octets. */
static int
spare_room(enum spare_kind kind, uint64_t size)
{
	return spare.fd != -1 && spare.n[kind] < SPARE_MAX &&
	    size <= SPARE_MAX_SIZE;
}

/*
 * Take a spare of a kind: its name in buf, for spare_place().  0 when
 * the pool is empty: the caller creates a file.
 */
int
spare_take(enum spare_kind kind, char *buf, size_t size)
{
	if (spare.fd == -1 || spare.n[kind] == 0)
		return 0;
	spare_name(kind, spare.names[kind][--spare.n[kind]], buf, size);
	return 1;
}

/*
 * Open a spare taken by spare_take() for writing, where it is: it is
 * overwritten in spare/ and leaves it only when it becomes a queued
 * file (spare_place()).  -1 (errno set) if it cannot be opened: the
 * caller forgets it (spare_drop()) and creates a file instead.
 */
int
spare_open(const char *name)
{
	return openat(spare.fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
}

/* Move a spare taken by spare_take() to dirfd/to: -1 (errno set) if not. */
int
spare_place(const char *name, int dirfd, const char *to)
{
	return renameat(spare.fd, name, dirfd, to);
}

/* Remove a spare taken by spare_take() and not placed. */
void
spare_drop(const char *name)
{
	if (spare.fd != -1)
		unlinkat(spare.fd, name, 0);
}

/*
 * Give back a spare taken by spare_take() and never placed (its message
 * was given up), now size octets at most: kept for the next one if the
 * pool takes it, else removed.  The loop only, as spare_take().
 */
void
spare_return(enum spare_kind kind, const char *name, uint64_t size)
{
	if (!spare_room(kind, size)) {
		spare_drop(name);
		return;
	}
	spare.names[kind][spare.n[kind]++] =
	    (uint32_t)strtoul(name + 1, NULL, 16);
}

/*
 * Keep dirfd/path, of size octets, as a spare instead of removing it.
 * 0 when it was moved to spare/; 1 when it is not kept (the pool is
 * full or the file too large: the caller removes it); -1 (errno set)
 * when it could not be moved.
 */
int
spare_keep(enum spare_kind kind, int dirfd, const char *path,
    uint64_t size)
{
	char	name[SPARE_NAME_SIZE];

	if (!spare_room(kind, size))
		return 1;
	spare_name(kind, spare.next, name, sizeof name);
	if (renameat(dirfd, path, spare.fd, name) == -1)
		return -1;
	spare.names[kind][spare.n[kind]++] = spare.next++;
	return 0;
}

/* Spares of a kind on hand. */
size_t
spare_count(enum spare_kind kind)
{
	return spare.n[kind];
}
