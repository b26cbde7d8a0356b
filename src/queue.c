/*
 * queue.c: the spool directory.  It alone knows the spool's paths; it
 * gives out queue ids, receives message content into incoming/, commits a
 * message (content and envelope durable, then one rename) and recovers the
 * spool at start-up; then it gives delivery the content and envelope of a
 * committed message, rewrites the envelope whole and removes the message
 * when asked.  It never deletes a committed message on its own, and never
 * acknowledges a commit before the data and the directory entry are on
 * disk.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "spare.h"
#include "util.h"
#include "workpool.h"

#define QUEUE_MSG_BUFSIZE	16384
#define QUEUE_NDIRS		1024	/* two characters of the id */
#define QUEUE_DIR_AT		6	/* which two: queue_dir_index() */
#define QUEUE_LAYOUT_MARK	".layout2"	/* in queue/ */
#define QUEUE_TIME_LEN		11	/* of the id: microseconds */
#define QUEUE_ENV_MAX		(64 * 1024 * 1024)
#define QUEUE_HDRS_MAX		(1024 * 1024)
#define QUEUE_SCAN_CHUNK	256	/* envelopes a scan job reads at least */
#define QUEUE_SCAN_AGAIN	1	/* seconds to wait, descriptors short */
#define QUEUE_PATH_SIZE		32	/* "XX/ID.env.tmp" below queue/ */

/* The id alphabet: digits and capitals without I, L, O and U. */
static const char queue_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

struct queue_open;

/* A message being received; owned by the transaction receiving it. */
struct queue_msg {
	char		 id[QUEUE_ID_SIZE];
	int		 fd;		/* the content, -1 while opening */
	int		 envfd;		/* incoming/ID.env made ahead, or -1 */
	struct queue_open *open;	/* a worker making the files, or NULL */
	int		 error;		/* first write errno, or 0 */
	/* The content's spare, overwritten in spare/; "" for incoming/ID.msg */
	char		 spare[SPARE_NAME_SIZE];
	uint64_t	 size;
	size_t		 buflen;
	char		 buf[QUEUE_MSG_BUFSIZE];
};

/* A commit request; owned by the queue until its callback has run. */
struct queue_commit {
	TAILQ_ENTRY(queue_commit) entry;
	TAILQ_ENTRY(queue_commit) live;	/* until its callback: loop only */
	struct queue_msg	*msg;
	char			*envtext;
	size_t			 envlen;
	queue_commit_cb		 cb;
	void			*arg;
	int			 cancelled;
	int			 error;
	int			 envfd;		/* the envelope, or -1 */
	/* The envelope's spare, overwritten in spare/; "" for incoming/ */
	char			 envspare[SPARE_NAME_SIZE];
	unsigned		 dir;
	struct timespec		 started;	/* for the commit metric */
};
TAILQ_HEAD(queue_commits, queue_commit);
TAILQ_HEAD(queue_live, queue_commit);
TAILQ_HEAD(queue_rewrites, queue_rewrite);

/*
 * An envelope just committed, kept as it was written so that the attempt
 * which follows at once need not read it back (an open, two reads and a
 * close on the loop).  At most QUEUE_FRESH_MAX, the oldest dropped
 * first, none longer than QUEUE_FRESH_TEXT (many recipients: read back
 * as before); one is used by the first load of its message, and dropped
 * whenever the envelope on disk may change (a rewrite, a move between
 * the trees, a removal), so it is always what the file holds.
 */
#define QUEUE_FRESH_MAX		64
#define QUEUE_FRESH_TEXT	8192
struct queue_fresh {
	TAILQ_ENTRY(queue_fresh) entry;
	char			 id[QUEUE_ID_SIZE];
	char			*text;
	size_t			 len;
};
TAILQ_HEAD(queue_freshes, queue_fresh);

static struct {
	struct event_base	*base;
	struct event		*commit_ev;
	struct queue_commits	 pending;
	struct queue_live	 live;		/* every commit not called back */
	size_t			 batches;	/* with the workers */
	struct queue_rewrites	 rewrites;	/* not called back */
	struct queue_freshes	 fresh;		/* oldest first */
	size_t			 nfresh;
	int			 spoolfd;
	int			 incomingfd;
	int			 queuefd;
	int			 holdfd;
	int			 corruptfd;
	int			 lockfd;
	size_t			 count;
	size_t			 msgs_open;	/* content files open */
	uint64_t		 last_usec;
	int			 sync_fs;	/* spool_sync = filesystem */
	int			 defer_scan;	/* queue_scan_start() reads */
	char			 tag[5];
	char			 floor[QUEUE_ID_SIZE];	/* first id of ours */
} queue = { .spoolfd = -1, .incomingfd = -1, .queuefd = -1,
    .holdfd = -1, .corruptfd = -1, .lockfd = -1 };

static void
queue_fresh_free(struct queue_fresh *f)
{
	TAILQ_REMOVE(&queue.fresh, f, entry);
	queue.nfresh--;
	free(f->text);
	free(f);
}

static struct queue_fresh *
queue_fresh_find(const char *id)
{
	struct queue_fresh	*f;

	if (queue.nfresh == 0)
		return NULL;	/* also a tool's queue, never initialised */
	/* Newest first: the attempt of a message just committed. */
	TAILQ_FOREACH_REVERSE(f, &queue.fresh, queue_freshes, entry) {
		if (strcmp(f->id, id) == 0)
			return f;
	}
	return NULL;
}

/* Keep the text of a committed envelope (taken over). */
static void
queue_fresh_add(const char *id, char *text, size_t len)
{
	struct queue_fresh	*f;

	if (len > QUEUE_FRESH_TEXT) {
		free(text);
		return;
	}
	if (queue.nfresh == QUEUE_FRESH_MAX)
		queue_fresh_free(TAILQ_FIRST(&queue.fresh));
	f = xmalloc(sizeof *f);
	util_strlcpy(f->id, id, sizeof f->id);
	f->text = text;
	f->len = len;
	TAILQ_INSERT_TAIL(&queue.fresh, f, entry);
	queue.nfresh++;
}

/* The envelope of id may change on disk: forget its committed text. */
static void
queue_fresh_drop(const char *id)
{
	struct queue_fresh	*f;

	if ((f = queue_fresh_find(id)) != NULL)
		queue_fresh_free(f);
}

/*
 * A batch of commits handed to a worker.  While a worker has it, the
 * worker alone touches its commits, except the cancelled flag; the loop
 * gets it back with the job's completion.
 */
struct queue_batch {
	struct queue_commits	 commits;
	int			 sync_fs;	/* the mode when it was sent */
};

/*
 * An envelope rewrite; owned by the queue until its callback has run.
 * Rewrites of one message run one at a time, in the order asked.
 */
struct queue_rewrite {
	TAILQ_ENTRY(queue_rewrite) entry;	/* loop only */
	char			 id[QUEUE_ID_SIZE];
	char			*text;
	size_t			 len;
	int			 dirfd;		/* the tree holding it */
	int			 started;	/* handed to a worker */
	int			 removed;	/* removed meanwhile */
	int			 cancelled;
	int			 error;		/* the worker's */
	queue_rewrite_cb	 cb;
	void			*arg;
};

static void	queue_commit_run_cb(evutil_socket_t, short, void *);

/* Names at the spool's top, by enum queue_spool_entry. */
static const char *const queue_spool_names[] = {
	"lock",
	QUEUE_MAILDROP,
	"log",
	"control.sock"
};

/*
 * SPOOL/NAME of an entry at the spool's top.  Pure string building, so
 * that sendmail and ternctl may call it without an open spool; -1 if it
 * does not fit.
 */
int
queue_spool_path(char *buf, size_t size, const char *spool,
    enum queue_spool_entry e)
{
	if ((size_t)e >= nitems(queue_spool_names))
		panic("queue: bad spool entry %d", (int)e);
	if (util_snprintf(buf, size, "%s/%s", spool,
	    queue_spool_names[e]) == -1)
		return -1;
	return 0;
}

/*
 * The paths a configuration leaves to the spool, filled in once it is
 * loaded: the control socket, unless one is set.
 */
int
queue_config_paths(struct config *conf, char **cause)
{
	if (conf->control_socket[0] != '\0')
		return 0;
	if (queue_spool_path(conf->control_socket,
	    sizeof conf->control_socket, conf->spool,
	    QUEUE_SPOOL_CONTROL) == -1) {
		xasprintf(cause, "spool %s: path too long for the control "
		    "socket", conf->spool);
		return -1;
	}
	return 0;
}

/*
 * The queue/XX directory of an id: its characters 7 and 8, the time in
 * units of 32.8 ms, wrapping every 34 s.  Messages committed together
 * land in one directory, so one directory sync serves the batch, while
 * a queue built over more than half a minute still spreads over all
 * 1024.  Spools of earlier versions used characters 10 and 11;
 * queue_migrate() moves them once.
 */
static unsigned
queue_dir_index(const char *id)
{
	const char	*a = strchr(queue_alphabet, id[QUEUE_DIR_AT]);
	const char	*b = strchr(queue_alphabet, id[QUEUE_DIR_AT + 1]);

	if (a == NULL || b == NULL || id[QUEUE_DIR_AT] == '\0' ||
	    id[QUEUE_DIR_AT + 1] == '\0')
		panic("queue: bad queue id \"%s\"", id);
	return (unsigned)(a - queue_alphabet) * 32 +
	    (unsigned)(b - queue_alphabet);
}

static void
queue_dir_name(unsigned dir, char *buf, size_t size)
{
	util_snprintf(buf, size, "%c%c", queue_alphabet[dir / 32],
	    queue_alphabet[dir % 32]);
}

/*
 * The name below queue/ of one of a message's files, "XX/ID.ext".  The id
 * may come from outside (a control socket): one that is not a queue id
 * fails with EINVAL, so it can never name another file.
 */
static int
queue_path(const char *id, const char *ext, char *buf, size_t size)
{
	char	dir[3];

	if (!queue_is_id(id)) {
		errno = EINVAL;
		return -1;
	}
	queue_dir_name(queue_dir_index(id), dir, sizeof dir);
	if (util_snprintf(buf, size, "%s/%s.%s", dir, id, ext) == -1)
		panic("queue: path of %s.%s too long", id, ext);
	return 0;
}

/* Time-ordered and never reused: microseconds, strictly increasing. */
void
queue_id_new(char *id, size_t size)
{
	struct timeval	tv;
	uint64_t	usec;
	int		i;

	if (size < QUEUE_ID_SIZE)
		panic("queue_id_new: buffer too small");
	gettimeofday(&tv, NULL);
	usec = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	if (usec <= queue.last_usec)
		usec = queue.last_usec + 1;
	queue.last_usec = usec;
	for (i = QUEUE_TIME_LEN - 1; i >= 0; i--) {
		id[i] = queue_alphabet[usec & 31];
		usec >>= 5;
	}
	memcpy(id + QUEUE_TIME_LEN, queue.tag, 4);
	id[QUEUE_ID_LEN] = '\0';
}

int
queue_is_id(const char *s)
{
	size_t	i;

	for (i = 0; i < QUEUE_ID_LEN; i++) {
		if (s[i] == '\0' || strchr(queue_alphabet, s[i]) == NULL)
			return 0;
	}
	return s[i] == '\0';
}

static int
queue_mkdirat(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static int
queue_opendir(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Whether name is "ID.ext" for a queue id; the id is copied to id. */
static int
queue_name_id(const char *name, const char *ext, char *id)
{
	if (strlen(name) != QUEUE_ID_LEN + 1 + strlen(ext) ||
	    name[QUEUE_ID_LEN] != '.' ||
	    strcmp(name + QUEUE_ID_LEN + 1, ext) != 0)
		return 0;
	memcpy(id, name, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	return queue_is_id(id);
}

/* A tree's XX directory to read; NULL, errno ENOENT, when it is absent. */
static DIR *
queue_dir_open(int topfd, unsigned dir)
{
	DIR	*dp;
	char	 name[3];
	int	 fd, saved;

	queue_dir_name(dir, name, sizeof name);
	if ((fd = queue_opendir(topfd, name)) == -1)
		return NULL;
	if ((dp = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return dp;
}

/*
 * mkdir -p: the spool, owner-only, and any missing parents, 0755: they
 * only lead to it, and every local user must pass them to reach
 * maildrop/ (and the run-as user to reach its mailboxes beside it).
 */
static int
queue_mkdir_parents(const char *path)
{
	char	buf[4096], *p;

	if (util_strlcpy(buf, path, sizeof buf) >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/*
 * maildrop/ is sticky, setgid and writable by everyone
 * (QUEUE_MAILDROP_MODE).  Giving a directory those bits is what the
 * unit forbids (RestrictSUIDSGID, no CAP_FOWNER or CAP_FSETID), so
 * whoever installs makes it (tmpfiles.d, the package) and ternd
 * started as root only checks it (priv_drop()).  Started as an
 * ordinary user, ternd makes a missing one itself: anyone may give a
 * directory of their own any mode, no privilege is involved.
 */
static int
queue_maildrop_make(const char *spool, char **cause)
{
	if (geteuid() == 0)
		return 0;
	if (mkdirat(queue.spoolfd, QUEUE_MAILDROP, 0700) == -1) {
		if (errno == EEXIST)
			return 0;
	} else if (fchmodat(queue.spoolfd, QUEUE_MAILDROP,
	    QUEUE_MAILDROP_MODE, 0) == 0)
		return 0;
	xasprintf(cause, "%s/%s: %s", spool, QUEUE_MAILDROP,
	    strerror(errno));
	return -1;
}

/*
 * Make every queue/XX directory at start-up, so no commit pays for a
 * directory creation and its sync.
 */
static int
queue_dirs_make(void)
{
	char		name[3];
	unsigned	dir;
	int		made = 0;

	for (dir = 0; dir < QUEUE_NDIRS; dir++) {
		queue_dir_name(dir, name, sizeof name);
		if (mkdirat(queue.queuefd, name, 0700) == 0)
			made = 1;
		else if (errno != EEXIST)
			return -1;
	}
	if (made && fsync(queue.queuefd) == -1)
		return -1;
	return 0;
}

/*
 * Every file "ID.ext" of a tree's XX directories, to fn with the open
 * directory, its index, the name and the id; absent directories are
 * skipped.  -1 (errno set) when a directory cannot be read or fn
 * returns -1, which stops the walk.
 */
static int
queue_tree_walk(int topfd, const char *ext,
    int (*fn)(DIR *, unsigned, const char *, const char *, void *),
    void *arg)
{
	DIR		*dp;
	struct dirent	*de;
	char		 id[QUEUE_ID_SIZE];
	unsigned	 dir;
	int		 rc = 0, saved;

	for (dir = 0; dir < QUEUE_NDIRS && rc == 0; dir++) {
		if ((dp = queue_dir_open(topfd, dir)) == NULL) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		while (rc == 0 && (de = readdir(dp)) != NULL) {
			if (queue_name_id(de->d_name, ext, id))
				rc = fn(dp, dir, de->d_name, id, arg);
		}
		saved = errno;
		closedir(dp);
		errno = saved;
	}
	return rc;
}

/* The layout migration's count of files moved, and the tree moved in. */
struct queue_migration {
	int	topfd;
	long	moved;
};

/* A file not in the directory of its id is renamed there. */
static int
queue_migrate_file(DIR *dp, unsigned dir, const char *name, const char *id,
    void *arg)
{
	struct queue_migration	*mg = arg;
	char			 to[QUEUE_PATH_SIZE];
	unsigned		 want = queue_dir_index(id);

	if (want == dir)
		return 0;
	queue_dir_name(want, to, sizeof to);
	if (queue_mkdirat(mg->topfd, to) == -1)
		return -1;
	util_snprintf(to + 2, sizeof to - 2, "/%s", name);
	if (renameat(dirfd(dp), name, mg->topfd, to) == -1)
		return -1;
	mg->moved++;
	return 0;
}

/*
 * Spools of earlier versions kept a message in the directory named by
 * characters 10 and 11 of its id.  Until queue/.layout2 exists, every
 * content is moved to its new directory, the filesystem synced, then
 * every envelope, synced again, then the mark is written: a crash at
 * any point leaves each envelope beside its content or with its
 * content already moved, and the next start goes on.  Runs once, before
 * anything reads the trees.
 */
static int
queue_migrate(const char *spool, char **cause)
{
	static const char *const exts[] = { "msg", "env" };
	int			 trees[2] = { queue.queuefd, queue.holdfd };
	struct queue_migration	 mg;
	long			 moved = 0;
	size_t			 i, t;
	int			 fd;

	if (faccessat(queue.queuefd, QUEUE_LAYOUT_MARK, F_OK, 0) == 0)
		return 0;
	for (i = 0; i < nitems(exts); i++) {
		mg.moved = 0;
		for (t = 0; t < nitems(trees); t++) {
			mg.topfd = trees[t];
			if (queue_tree_walk(trees[t], exts[i],
			    queue_migrate_file, &mg) == -1)
				goto fail;
		}
		if (mg.moved > 0 && syncfs(queue.spoolfd) == -1)
			goto fail;
		moved += mg.moved;
	}
	fd = openat(queue.queuefd, QUEUE_LAYOUT_MARK, O_WRONLY | O_CREAT |
	    O_CLOEXEC, 0600);
	if (fd == -1 || fsync(fd) == -1 || fsync(queue.queuefd) == -1) {
		if (fd != -1)
			close(fd);
		goto fail;
	}
	close(fd);
	if (moved > 0)
		log_info("queue: %ld files moved to the current directory "
		    "layout", moved);
	return 0;
fail:
	xasprintf(cause, "%s: moving the queue to the current directory "
	    "layout: %s", spool, strerror(errno));
	return -1;
}

/*
 * The length of the header section at the start of buf, through its
 * first empty line; 0 while no empty line is complete.
 */
static size_t
queue_hdrs_end(const char *buf, size_t len)
{
	const char	*p = buf, *end = buf + len, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl == p || (nl == p + 1 && *p == '\r'))
			return (size_t)(nl + 1 - buf);
		p = nl + 1;
	}
	return 0;
}

/*
 * A file named relative to a directory, from its start: at most max
 * octets and, with hdrs, only through the end of the header section.
 */
static int
queue_read_at(int dirfd, const char *name, size_t max, int hdrs,
    char **bufp, size_t *lenp)
{
	int	fd, rc, saved;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	rc = util_read_fd(fd, max, hdrs ? queue_hdrs_end : NULL, bufp, lenp);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* A whole envelope file; EFBIG past QUEUE_ENV_MAX. */
static int
queue_read_env(int dirfd, const char *name, char **bufp, size_t *lenp)
{
	if (queue_read_at(dirfd, name, QUEUE_ENV_MAX + 1, 0, bufp,
	    lenp) == -1)
		return -1;
	if (*lenp > QUEUE_ENV_MAX) {
		free(*bufp);
		errno = EFBIG;
		return -1;
	}
	return 0;
}

/*
 * Envelope text read from the file of id, which it must name.  On error
 * env is cleared again and *cause says why.
 */
static int
queue_env_parse(const char *id, const char *buf, size_t len,
    struct envelope *env, char **cause)
{
	if (envelope_parse(env, buf, len, cause) == -1)
		return -1;
	if (strcmp(env->id, id) != 0) {
		envelope_clear(env);
		xasprintf(cause, "envelope names another id");
		return -1;
	}
	return 0;
}

/* Create dirfd/name, a new spool file, for writing. */
static int
queue_create_new(int dirfd, const char *name)
{
	return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
}

/* A new file holding buf, its data synced; removed again on error. */
static int
queue_write_synced(int dirfd, const char *name, const char *buf, size_t len)
{
	int	fd, saved;

	if ((fd = queue_create_new(dirfd, name)) == -1)
		return -1;
	if (util_write_all(fd, buf, len) == -1 || fdatasync(fd) == -1) {
		saved = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * What recovering directories found: the envelopes to report and the
 * lines to log, both handed to the loop (a worker never logs).
 */
struct queue_found {
	struct envelope	*envs;
	size_t		 nenvs;
	size_t		 envs_alloc;
	char		**notes;	/* "i" or "w", then the line */
	size_t		 nnotes;
	int		 err;		/* reading cut short: errno */
};

/*
 * Errors that pass: descriptors or memory short for a while.  A
 * directory they cut short is read again later, never skipped.
 */
static int
queue_short(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOMEM;
}

static void
queue_note(struct queue_found *f, int warn, const char *fmt, ...)
{
	va_list	 ap;
	char	*text, *line;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) == -1)
		fatal("vasprintf");
	va_end(ap);
	xasprintf(&line, "%c%s", warn ? 'w' : 'i', text);
	free(text);
	f->notes = xreallocarray(f->notes, f->nnotes + 1, sizeof *f->notes);
	f->notes[f->nnotes++] = line;
}

/* Move a damaged message aside for a person to look at. */
static void
queue_to_corrupt(int dirfd, const char *id, const char *why,
    struct queue_found *f)
{
	char	name[QUEUE_ID_LEN + 8];
	int	i;

	for (i = 0; i < 2; i++) {
		util_snprintf(name, sizeof name, "%s.%s", id,
		    i == 0 ? "env" : "msg");
		if (renameat(dirfd, name, queue.corruptfd, name) == -1 &&
		    errno != ENOENT)
			queue_note(f, 1, "queue: %s: cannot move %s to "
			    "corrupt/: %s", id, name, strerror(errno));
	}
	queue_note(f, 1, "%s: moved to corrupt/: %s", id, why);
}

/*
 * Whether an id is one this process gave out: committed while the scan
 * runs, so the scan leaves its files alone (they may be half renamed
 * into place) and never reports it twice.  The tag and a time from this
 * start on, since ids of ours all come after queue.floor.
 */
static int
queue_is_ours(const char *id)
{
	return memcmp(id + QUEUE_TIME_LEN, queue.tag, 4) == 0 &&
	    memcmp(id, queue.floor, QUEUE_TIME_LEN) > 0;
}

/*
 * Recover one queue/XX (or hold/XX) directory: remove temporary files
 * and content without an envelope (never acknowledged), set aside
 * envelopes that do not parse or lack content, collect the others.
 * Touches only files and f: runs on a worker during a deferred scan.
 * Returns -1 with f->err set when descriptors or memory ran short: the
 * directory must be read again (what it found so far is the caller's
 * to drop).
 */
static int
queue_recover_dir(DIR *dp, const char *where, struct queue_found *f)
{
	struct dirent	*de;
	struct envelope	*env;
	struct stat	 st;
	char		 id[QUEUE_ID_SIZE], other[QUEUE_ID_LEN + 8];
	char		*buf, *cause;
	const char	*dot;
	size_t		 len;
	int		 dfd = dirfd(dp);

	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		dot = strchr(de->d_name, '.');
		if (dot == NULL || dot - de->d_name != QUEUE_ID_LEN) {
			queue_note(f, 1, "queue: %s/%s: unexpected file left "
			    "alone", where, de->d_name);
			continue;
		}
		memcpy(id, de->d_name, QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (queue_is_id(id) && queue_is_ours(id))
			continue;
		if (strcmp(dot, ".tmp") == 0 || strcmp(dot, ".env.tmp") == 0) {
			unlinkat(dfd, de->d_name, 0);
			continue;
		}
		if (strcmp(dot, ".msg") == 0) {
			util_snprintf(other, sizeof other, "%s.env", id);
			/* Gone already: set aside with its envelope. */
			if (fstatat(dfd, other, &st, 0) == -1 &&
			    errno == ENOENT &&
			    unlinkat(dfd, de->d_name, 0) == 0)
				queue_note(f, 0, "%s: removed content never "
				    "committed", id);
			continue;
		}
		if (strcmp(dot, ".env") != 0) {
			queue_note(f, 1, "queue: %s/%s: unexpected file left "
			    "alone", where, de->d_name);
			continue;
		}
		util_snprintf(other, sizeof other, "%s.msg", id);
		if (fstatat(dfd, other, &st, 0) == -1) {
			queue_to_corrupt(dfd, id, "envelope without content",
			    f);
			continue;
		}
		if (queue_read_env(dfd, de->d_name, &buf, &len) == -1) {
			if (queue_short(errno)) {
				f->err = errno;
				return -1;
			}
			queue_note(f, 1, "queue: %s: cannot read envelope: %s",
			    id, strerror(errno));
			continue;
		}
		if (f->nenvs == f->envs_alloc) {
			f->envs_alloc = f->envs_alloc ? f->envs_alloc * 2 : 64;
			f->envs = xreallocarray(f->envs, f->envs_alloc,
			    sizeof *f->envs);
		}
		env = &f->envs[f->nenvs];
		envelope_init(env);
		if (queue_env_parse(id, buf, len, env, &cause) == -1) {
			envelope_clear(env);
			queue_to_corrupt(dfd, id, cause, f);
			free(cause);
		} else
			f->nenvs++;
		free(buf);
	}
	return 0;
}

/*
 * On the loop: log what a recovery found, count and report its
 * envelopes (unless report is 0: the scan was stopped), free it.
 */
static void
queue_found_apply(struct queue_found *f, int held, queue_scan_cb cb,
    void *arg, int report)
{
	size_t	i;

	for (i = 0; i < f->nnotes; i++) {
		if (report && f->notes[i][0] == 'w')
			log_warnx("%s", f->notes[i] + 1);
		else if (report)
			log_info("%s", f->notes[i] + 1);
		free(f->notes[i]);
	}
	free(f->notes);
	for (i = 0; i < f->nenvs; i++) {
		if (report) {
			queue.count++;
			if (cb != NULL)
				cb(&f->envs[i], held, arg);
		}
		envelope_clear(&f->envs[i]);
	}
	free(f->envs);
	memset(f, 0, sizeof *f);
}

/*
 * Recover directories of one tree from *dirp on, until at least min
 * envelopes are found or the tree ends; *dirp is left at the next one.
 * Descriptors or memory short (f->err set), *dirp is left at the
 * directory to read again and what it gave so far is dropped.
 */
static void
queue_recover_dirs(int held, unsigned *dirp, size_t min,
    struct queue_found *f)
{
	DIR	*dp;
	char	 name[3], where[16];
	int	 topfd = held ? queue.holdfd : queue.queuefd, rc;
	size_t	 before;

	for (; *dirp < QUEUE_NDIRS && f->nenvs < min; (*dirp)++) {
		queue_dir_name(*dirp, name, sizeof name);
		util_snprintf(where, sizeof where, "%s/%s",
		    held ? "hold" : "queue", name);
		if ((dp = queue_dir_open(topfd, *dirp)) == NULL) {
			if (queue_short(errno)) {
				f->err = errno;
				return;
			}
			if (errno != ENOENT)
				queue_note(f, 1, "queue: cannot read %s: %s",
				    where, strerror(errno));
			continue;
		}
		before = f->nenvs;
		rc = queue_recover_dir(dp, where, f);
		closedir(dp);
		if (rc == -1) {
			while (f->nenvs > before)
				envelope_clear(&f->envs[--f->nenvs]);
			return;
		}
	}
}

/* Recover and report a whole tree, here; -1 if a directory could not be. */
static int
queue_recover_tree(const char *spool, int held, queue_scan_cb cb, void *arg,
    char **cause)
{
	struct queue_found	f;
	unsigned		dir = 0;
	char			name[3];

	memset(&f, 0, sizeof f);
	while (dir < QUEUE_NDIRS) {
		queue_recover_dirs(held, &dir, QUEUE_SCAN_CHUNK, &f);
		if (f.err) {
			queue_dir_name(dir, name, sizeof name);
			xasprintf(cause, "%s/%s/%s: %s", spool,
			    held ? "hold" : "queue", name, strerror(f.err));
		}
		queue_found_apply(&f, held, cb, arg, 1);
		if (*cause != NULL)
			return -1;
	}
	return 0;
}

/* Nothing in incoming/ was ever acknowledged. */
static void
queue_empty_incoming(void)
{
	DIR		*dp;
	struct dirent	*de;
	int		 fd;

	if ((fd = dup(queue.incomingfd)) == -1 ||
	    (dp = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(queue.incomingfd, de->d_name, 0) == -1)
			log_warn("queue: cannot remove incoming/%s",
			    de->d_name);
	}
	closedir(dp);
}

static int
queue_lock(const char *spool, char **cause)
{
	char	pid[32];
	int	n;

	queue.lockfd = openat(queue.spoolfd,
	    queue_spool_names[QUEUE_SPOOL_LOCK],
	    O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (queue.lockfd == -1) {
		xasprintf(cause, "%s/lock: %s", spool, strerror(errno));
		return -1;
	}
	if (flock(queue.lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			xasprintf(cause, "%s: spool is in use by another ternd",
			    spool);
		else
			xasprintf(cause, "%s/lock: %s", spool,
			    strerror(errno));
		close(queue.lockfd);
		queue.lockfd = -1;
		return -1;
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(queue.lockfd, 0) == 0)
		(void)pwrite(queue.lockfd, pid, (size_t)n, 0);
	return 0;
}

/*
 * Open (creating if needed) and lock the spool, recover it, and report
 * every committed envelope to cb.
 */
int
queue_init(struct event_base *base, const char *spool, queue_scan_cb cb,
    void *arg, char **cause)
{
	static const char *const dirs[] = {
		"incoming", "queue", "hold", "corrupt", "log"
	};
	struct stat	st;
	unsigned char	r[4];
	size_t		i;

	queue.base = base;
	queue.count = 0;
	queue.batches = 0;
	TAILQ_INIT(&queue.pending);
	TAILQ_INIT(&queue.live);
	TAILQ_INIT(&queue.rewrites);
	TAILQ_INIT(&queue.fresh);
	queue.nfresh = 0;
	if (queue_mkdir_parents(spool) == -1) {
		xasprintf(cause, "%s: %s", spool, strerror(errno));
		return -1;
	}
	if ((queue.spoolfd = open(spool, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		xasprintf(cause, "%s: %s", spool, strerror(errno));
		return -1;
	}
	if (queue_lock(spool, cause) == -1)
		return -1;
	/*
	 * Others may pass through the spool to maildrop/ but list nothing:
	 * every directory below stays owner-only.  Only the owner sets the
	 * mode (no capability needed); a spool installed for another user
	 * keeps the mode its installer gave it.  A spool others may write
	 * is left as it is, for priv_check_spool() to refuse.
	 */
	if (fstat(queue.spoolfd, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 07777) != 0711 &&
	    (st.st_mode & (S_IWGRP | S_IWOTH)) == 0 &&
	    fchmod(queue.spoolfd, 0711) == -1)
		log_warn("queue: %s: cannot set mode 0711", spool);
	for (i = 0; i < nitems(dirs); i++) {
		if (queue_mkdirat(queue.spoolfd, dirs[i]) == -1) {
			xasprintf(cause, "%s/%s: %s", spool, dirs[i],
			    strerror(errno));
			return -1;
		}
	}
	if (queue_maildrop_make(spool, cause) == -1)
		return -1;
	queue.incomingfd = queue_opendir(queue.spoolfd, "incoming");
	queue.queuefd = queue_opendir(queue.spoolfd, "queue");
	queue.holdfd = queue_opendir(queue.spoolfd, "hold");
	queue.corruptfd = queue_opendir(queue.spoolfd, "corrupt");
	if (queue.incomingfd == -1 || queue.queuefd == -1 ||
	    queue.holdfd == -1 || queue.corruptfd == -1) {
		xasprintf(cause, "%s: %s", spool, strerror(errno));
		return -1;
	}
	if (fsync(queue.spoolfd) == -1) {
		xasprintf(cause, "%s: %s", spool, strerror(errno));
		return -1;
	}

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		fatal("getrandom");
	for (i = 0; i < 4; i++)
		queue.tag[i] = queue_alphabet[r[i] & 31];
	/* Every id given out from now on comes after the floor. */
	queue.last_usec = 0;
	queue_id_new(queue.floor, sizeof queue.floor);

	queue_empty_incoming();
	if (spare_init(queue.spoolfd, cause) == -1)
		return -1;
	if (queue_migrate(spool, cause) == -1)
		return -1;
	*cause = NULL;
	if (!queue.defer_scan &&
	    (queue_recover_tree(spool, 0, cb, arg, cause) == -1 ||
	    queue_recover_tree(spool, 1, cb, arg, cause) == -1))
		return -1;
	if (queue_dirs_make() == -1) {
		xasprintf(cause, "%s/queue: %s", spool, strerror(errno));
		return -1;
	}

	if (base != NULL) {
		queue.commit_ev = event_new(base, -1, 0, queue_commit_run_cb,
		    NULL);
		if (queue.commit_ev == NULL)
			fatalx("queue: event_new");
	}
	return 0;
}

/*
 * The deferred scan: ternd reads the spool after it starts serving, one
 * worker job at a time, each reading directories until it has at least
 * QUEUE_SCAN_CHUNK envelopes; the loop reports them to the scheduler
 * as they come.  With a million messages queued, mail is accepted at
 * once and the first deliveries start after the first job.
 */
struct queue_scan_job {
	int			held;
	unsigned		dir;	/* next to read */
	struct queue_found	found;
};

static struct {
	queue_scan_cb		 cb;
	void			*arg;
	void			(*done)(void *);
	int			 running;
	size_t			 found;
	struct timespec		 started;
	struct event		*again;		/* a job waiting: short */
	struct queue_scan_job	*waiting;
} scan;

/* Before queue_init(): it then leaves reading to queue_scan_start(). */
void
queue_defer_scan(void)
{
	queue.defer_scan = 1;
}

static void
queue_scan_run(void *arg)
{
	struct queue_scan_job	*j = arg;

	queue_recover_dirs(j->held, &j->dir, QUEUE_SCAN_CHUNK, &j->found);
}

static void	queue_scan_submit(struct queue_scan_job *);

static void
queue_scan_again_cb(evutil_socket_t fd, short events, void *arg)
{
	struct queue_scan_job	*j = scan.waiting;

	scan.waiting = NULL;
	queue_scan_submit(j);
}

static void
queue_scan_done(void *arg, int cancelled)
{
	struct queue_scan_job	*j = arg;
	struct timeval		 tv = { QUEUE_SCAN_AGAIN, 0 };
	struct timespec		 now;
	size_t			 before = queue.count;
	int			 err = j->found.err;
	char			 name[3];

	queue_found_apply(&j->found, j->held, scan.cb, scan.arg,
	    scan.running && !cancelled);
	if (!scan.running || cancelled) {
		free(j);
		return;
	}
	scan.found += queue.count - before;
	if (err) {
		/* The directory it stopped at is read again, a bit later. */
		queue_dir_name(j->dir, name, sizeof name);
		log_warnx("queue: reading %s/%s: %s; again in %d s",
		    j->held ? "hold" : "queue", name, strerror(err),
		    QUEUE_SCAN_AGAIN);
		if (scan.again == NULL && (scan.again = evtimer_new(queue.base,
		    queue_scan_again_cb, NULL)) == NULL)
			fatalx("queue: evtimer_new");
		scan.waiting = j;
		evtimer_add(scan.again, &tv);
		return;
	}
	if (j->dir == QUEUE_NDIRS && !j->held) {
		j->held = 1;
		j->dir = 0;
	}
	if (j->dir < QUEUE_NDIRS) {
		queue_scan_submit(j);
		return;
	}
	free(j);
	scan.running = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info("queue: %zu messages read in %.1f s", scan.found,
	    (double)(now.tv_sec - scan.started.tv_sec) +
	    (double)(now.tv_nsec - scan.started.tv_nsec) / 1e9);
	if (scan.done != NULL)
		scan.done(scan.arg);
}

static void
queue_scan_submit(struct queue_scan_job *j)
{
	if (workpool_threads() == 0) {
		/* No workers: read it here, one job after the other. */
		queue_scan_run(j);
		queue_scan_done(j, 0);
		return;
	}
	(void)workpool_submit(WORKPOOL_BACKGROUND, queue_scan_run,
	    queue_scan_done, j);
}

/*
 * Read queue/ then hold/, reporting each envelope to cb (on the loop,
 * as queue_init() would have), then call done.  Messages committed
 * meanwhile are ours and never reported: the caller has them already.
 */
void
queue_scan_start(queue_scan_cb cb, void (*done)(void *), void *arg)
{
	scan.cb = cb;
	scan.done = done;
	scan.arg = arg;
	scan.running = 1;
	scan.found = 0;
	clock_gettime(CLOCK_MONOTONIC, &scan.started);
	queue_scan_submit(xcalloc(1, sizeof(struct queue_scan_job)));
}

/* Whether the deferred scan is still reading. */
int
queue_scan_running(void)
{
	return scan.running;
}

/* Stop reading: what a worker has at hand is dropped unreported. */
void
queue_scan_stop(void)
{
	scan.running = 0;
	if (scan.again != NULL) {
		event_free(scan.again);
		scan.again = NULL;
	}
	free(scan.waiting);
	scan.waiting = NULL;
}

void
queue_shutdown(void)
{
	struct queue_commit	*c;
	struct queue_rewrite	*r;

	/*
	 * Commits still waiting are run now: they were promised.  The
	 * worker pool is shut down first, finishing what it holds.
	 */
	if (!TAILQ_EMPTY(&queue.pending))
		queue_commit_run_cb(-1, 0, NULL);
	while ((c = TAILQ_FIRST(&queue.pending)) != NULL) {
		TAILQ_REMOVE(&queue.pending, c, entry);
		TAILQ_REMOVE(&queue.live, c, live);
		free(c);
	}
	/* Rewrites never handed to the pool (it was never started). */
	while ((r = TAILQ_FIRST(&queue.rewrites)) != NULL) {
		TAILQ_REMOVE(&queue.rewrites, r, entry);
		free(r->text);
		free(r);
	}
	while (queue.nfresh > 0)
		queue_fresh_free(TAILQ_FIRST(&queue.fresh));
	if (queue.commit_ev != NULL)
		event_free(queue.commit_ev);
	queue.commit_ev = NULL;
	spare_shutdown();
	if (queue.incomingfd != -1)
		close(queue.incomingfd);
	if (queue.queuefd != -1)
		close(queue.queuefd);
	if (queue.holdfd != -1)
		close(queue.holdfd);
	if (queue.corruptfd != -1)
		close(queue.corruptfd);
	if (queue.spoolfd != -1)
		close(queue.spoolfd);
	if (queue.lockfd != -1)
		close(queue.lockfd);
	queue.incomingfd = queue.queuefd = queue.holdfd = -1;
	queue.corruptfd = -1;
	queue.spoolfd = queue.lockfd = -1;
}

size_t
queue_count(void)
{
	return queue.count;
}

/*
 * Open for writing a spare of a kind, taken now (loop) or before (spare
 * already named, a worker may do it): -1 when there is none, or when it
 * cannot be opened, which forgets it (spare set to "").  A spare opened
 * is written in spare/, truncated to what was written before it is
 * synced, and renamed into queue/XX/ by the commit (queue_file_move()).
 */
static int
queue_open_spare(enum spare_kind kind, char *spare, size_t size, int take)
{
	int	fd;

	if (take && !spare_take(kind, spare, size))
		spare[0] = '\0';
	if (spare[0] == '\0')
		return -1;
	if ((fd = spare_open(spare)) == -1) {
		spare_drop(spare);
		spare[0] = '\0';
	}
	return fd;
}

/*
 * Where a file of a message not yet committed is: its spare in spare/,
 * or incoming/ID.ext.  Moved to queue/XX/ID.ext, or removed.
 */
static int
queue_file_move(const char *id, const char *ext, const char *spare)
{
	char	name[QUEUE_ID_LEN + 8], path[QUEUE_PATH_SIZE];

	if (queue_path(id, ext, path, sizeof path) == -1)
		return -1;
	if (spare[0] != '\0')
		return spare_place(spare, queue.queuefd, path);
	util_snprintf(name, sizeof name, "%s.%s", id, ext);
	return renameat(queue.incomingfd, name, queue.queuefd, path);
}

static void
queue_file_unlink(const char *id, const char *ext, const char *spare)
{
	char	name[QUEUE_ID_LEN + 8];

	if (spare[0] != '\0') {
		spare_drop(spare);
		return;
	}
	util_snprintf(name, sizeof name, "%s.%s", id, ext);
	unlinkat(queue.incomingfd, name, 0);
}

/*
 * Remove dirfd/path; with reuse keep it as a spare of the kind instead
 * if the pool takes it.  -1 (errno set) when it is still there.
 */
static int
queue_discard(int dirfd, const char *path, enum spare_kind kind, int reuse)
{
	struct stat	st;
	int		rc = 1;

	if (reuse && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode))
		rc = spare_keep(kind, dirfd, path, (uint64_t)st.st_size);
	if (rc == 1)
		rc = unlinkat(dirfd, path, 0);
	return rc;
}

static void	queue_open_run(void *);
static void	queue_open_done(void *, int);

/*
 * A message's files made by a worker: those no spare was left for.
 * Owned by the loop; the worker touches only the descriptors and error.
 */
struct queue_open {
	struct queue_msg	*m;	/* NULL once the message was given up */
	char			 id[QUEUE_ID_SIZE];
	int			 want_msg;
	int			 msgfd;
	int			 envfd;
	int			 error;
	queue_ready_cb		 cb;
	void			*arg;
};

/*
 * Start receiving a message: a new id and its content file, a spare when
 * there is one (written in spare/), else incoming/ID.msg.  With cb and
 * worker threads, what no spare is left for is made by a worker
 * instead, the content and the envelope both (so that no file is
 * created between the final dot and the 250, and no create, which can
 * take most of a millisecond, holds up the loop): *waiting is then set,
 * and cb(arg, error) runs from the loop once they are there, unless the
 * message is given up first.  Until then nothing but the first buffer
 * may be written.  Without cb the content is made here and the envelope
 * by the commit.
 */
struct queue_msg *
queue_msg_start(char *id, size_t size, queue_ready_cb cb, void *arg,
    int *waiting)
{
	struct queue_msg	*m;
	struct queue_open	*o;
	char			 name[QUEUE_ID_LEN + 8];
	char			 spare[SPARE_NAME_SIZE];
	int			 want_env;

	if (waiting != NULL)
		*waiting = 0;
	m = xmalloc(sizeof *m);
	queue_id_new(m->id, sizeof m->id);
	util_snprintf(name, sizeof name, "%s.msg", m->id);
	m->envfd = -1;
	m->open = NULL;
	m->fd = queue_open_spare(SPARE_MSG, spare, sizeof spare, 1);
	util_strlcpy(m->spare, spare, sizeof m->spare);
	want_env = cb != NULL && workpool_threads() > 0 &&
	    spare_count(SPARE_ENV) == 0;
	if (m->fd == -1 && !want_env)
		m->fd = queue_create_new(queue.incomingfd, name);
	if (m->fd == -1 && !want_env) {
		log_warn("queue: incoming/%s", name);
		free(m);
		return NULL;
	}
	if (want_env) {
		o = xcalloc(1, sizeof *o);
		o->m = m;
		memcpy(o->id, m->id, sizeof o->id);
		o->want_msg = m->fd == -1;
		o->msgfd = o->envfd = -1;
		o->cb = cb;
		o->arg = arg;
		m->open = o;
		*waiting = 1;
		workpool_submit(WORKPOOL_URGENT, queue_open_run, queue_open_done,
		    o);
	}
	queue.msgs_open++;
	m->error = 0;
	m->size = 0;
	m->buflen = 0;
	util_strlcpy(id, m->id, size);
	return m;
}

struct queue_msg *
queue_msg_new(char *id, size_t size)
{
	return queue_msg_start(id, size, NULL, NULL, NULL);
}

/* On a worker: create incoming/ID.msg (if wanted) and incoming/ID.env. */
static void
queue_open_run(void *arg)
{
	struct queue_open	*o = arg;
	char			 name[QUEUE_ID_LEN + 8];

	if (o->want_msg) {
		util_snprintf(name, sizeof name, "%s.msg", o->id);
		if ((o->msgfd = queue_create_new(queue.incomingfd,
		    name)) == -1) {
			o->error = errno;
			return;
		}
	}
	util_snprintf(name, sizeof name, "%s.env", o->id);
	if ((o->envfd = queue_create_new(queue.incomingfd, name)) == -1)
		o->error = errno;
}

/*
 * Back on the loop: the files go to the message, or, when it failed or
 * was given up, to the spares.
 */
static void
queue_open_done(void *arg, int cancelled)
{
	struct queue_open	*o = arg;
	struct queue_msg	*m = o->m;
	char			 name[QUEUE_ID_LEN + 8];

	(void)cancelled;
	if (m != NULL && o->error == 0) {
		m->open = NULL;
		if (o->want_msg)
			m->fd = o->msgfd;
		m->envfd = o->envfd;
		o->cb(o->arg, 0);
		free(o);
		return;
	}
	if (o->msgfd != -1) {
		close(o->msgfd);
		util_snprintf(name, sizeof name, "%s.msg", o->id);
		queue_discard(queue.incomingfd, name, SPARE_MSG, 1);
	}
	if (o->envfd != -1) {
		close(o->envfd);
		util_snprintf(name, sizeof name, "%s.env", o->id);
		queue_discard(queue.incomingfd, name, SPARE_ENV, 1);
	}
	if (m != NULL) {
		m->open = NULL;
		errno = o->error;
		log_warn("queue: incoming/%s", o->id);
		o->cb(o->arg, o->error);
	}
	free(o);
}

static int
queue_msg_flush(struct queue_msg *m)
{
	/* Blocking: a local file write of at most one buffer. */
	if (m->error == 0 && m->buflen > 0 &&
	    util_write_all(m->fd, m->buf, m->buflen) == -1)
		m->error = errno;
	m->buflen = 0;
	if (m->error != 0) {
		errno = m->error;
		return -1;
	}
	return 0;
}

int
queue_msg_write(struct queue_msg *m, const void *data, size_t len)
{
	const char	*p = data;
	size_t		 n;

	if (m->error != 0) {
		errno = m->error;
		return -1;
	}
	m->size += len;
	while (len > 0) {
		if (m->buflen == sizeof m->buf && queue_msg_flush(m) == -1)
			return -1;
		n = sizeof m->buf - m->buflen;
		if (n > len)
			n = len;
		memcpy(m->buf + m->buflen, p, n);
		m->buflen += n;
		p += n;
		len -= n;
	}
	return 0;
}

/*
 * Start the content over under the same id: what was written is
 * dropped, as when content filters rewrote the message.
 */
int
queue_msg_rewind(struct queue_msg *m)
{
	m->buflen = 0;
	m->size = 0;
	/* Blocking: truncating a local file. */
	if (ftruncate(m->fd, 0) == -1 || lseek(m->fd, 0, SEEK_SET) == -1) {
		m->error = errno;
		return -1;
	}
	m->error = 0;
	return 0;
}

uint64_t
queue_msg_size(const struct queue_msg *m)
{
	return m->size;
}

/* A commit's files that are not (or no longer) in queue/XX/: removed. */
static void
queue_commit_unlink(struct queue_commit *c)
{
	queue_file_unlink(c->msg->id, "msg", c->msg->spare);
	queue_file_unlink(c->msg->id, "env", c->envspare);
}

/*
 * Messages being received or committed: each holds its content file
 * open, and while it commits its envelope too.
 */
size_t
queue_msgs_open(void)
{
	return queue.msgs_open;
}

/* Throw away a message that will not be committed. */
void
queue_msg_abort(struct queue_msg *m)
{
	char	name[QUEUE_ID_LEN + 8];

	if (m == NULL)
		return;
	/* Files a worker is still making are its to put away. */
	if (m->open != NULL)
		m->open->m = NULL;
	if (m->envfd != -1) {
		close(m->envfd);
		util_snprintf(name, sizeof name, "%s.env", m->id);
		queue_discard(queue.incomingfd, name, SPARE_ENV, 1);
	}
	queue.msgs_open--;
	if (m->fd != -1) {
		close(m->fd);
		if (m->spare[0] != '\0')
			spare_return(SPARE_MSG, m->spare, m->size);
		else {
			util_snprintf(name, sizeof name, "%s.msg", m->id);
			queue_discard(queue.incomingfd, name, SPARE_MSG, 1);
		}
	}
	free(m);
}

/*
 * How commits are made durable (spool_sync): one sync per file and
 * directory, or two syncs of the spool's filesystem per batch.  Batches
 * already handed to a worker keep the mode they were sent with.
 */
void
queue_set_sync(int filesystem)
{
	queue.sync_fs = filesystem != 0;
}

/*
 * Ask for a commit.  The envelope is copied as text at once; the callback
 * runs later from the loop, never before this returns.
 */
struct queue_commit *
queue_msg_commit(struct queue_msg *m, const struct envelope *env,
    queue_commit_cb cb, void *arg)
{
	struct queue_commit	*c;

	c = xcalloc(1, sizeof *c);
	c->msg = m;
	c->cb = cb;
	c->arg = arg;
	c->dir = queue_dir_index(m->id);
	if (m->open != NULL)
		panic("queue: commit of %s before its files", m->id);
	/* An envelope made ahead is new and empty: no spare needed. */
	c->envfd = m->envfd;
	m->envfd = -1;
	if (c->envfd == -1 && !spare_take(SPARE_ENV, c->envspare,
	    sizeof c->envspare))
		c->envspare[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	if (strcmp(env->id, m->id) != 0)
		panic("queue: commit of %s with envelope of %s", m->id,
		    env->id);
	if (envelope_write(env, &c->envtext, &c->envlen) == -1) {
		log_warnx("%s: envelope cannot be written", m->id);
		c->error = EINVAL;
	}
	TAILQ_INSERT_TAIL(&queue.pending, c, entry);
	TAILQ_INSERT_TAIL(&queue.live, c, live);
	event_active(queue.commit_ev, 0, 0);
	return c;
}

/* The requester went away: the commit still happens, silently. */
void
queue_commit_cancel(struct queue_commit *c)
{
	c->cancelled = 1;
}

/* The requester went away: the commit calls back someone else. */
void
queue_commit_rebind(struct queue_commit *c, queue_commit_cb cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

/*
 * Start writing a file back to disk without waiting (sync_file_range(2));
 * without the system call, the sync that follows does it all.  Any other
 * failure fails the commit: an error of this writeback need not show in
 * that sync.
 */
static int
queue_commit_writeback(int fd)
{
	if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == -1 &&
	    errno != ENOSYS)
		return -1;
	return 0;
}

/*
 * First step of a commit: the content's last buffer and the envelope
 * written (over spares, or in incoming/).  With sync set, both are also
 * sent on their way to disk and the envelope stays open for
 * queue_commit_sync(); on failure, or without sync, it is closed here.
 */
static void
queue_commit_write(struct queue_commit *c, int sync)
{
	struct queue_msg	*m = c->msg;
	char			 name[QUEUE_ID_LEN + 8];

	/* A spare overwritten is cut to what was written, before any sync. */
	if (c->error == 0 && (queue_msg_flush(m) == -1 ||
	    (m->spare[0] != '\0' && ftruncate(m->fd, (off_t)m->size) == -1) ||
	    (sync && queue_commit_writeback(m->fd) == -1)))
		c->error = errno;
	/* The envelope: made when the message began, or now. */
	if (c->error == 0 && c->envfd == -1)
		c->envfd = queue_open_spare(SPARE_ENV, c->envspare,
		    sizeof c->envspare, 0);
	util_snprintf(name, sizeof name, "%s.env", m->id);
	if (c->error == 0 && c->envfd == -1)
		c->envfd = queue_create_new(queue.incomingfd, name);
	if (c->error == 0 && (c->envfd == -1 ||
	    util_write_all(c->envfd, c->envtext, c->envlen) == -1 ||
	    (c->envspare[0] != '\0' &&
	    ftruncate(c->envfd, (off_t)c->envlen) == -1) ||
	    (sync && queue_commit_writeback(c->envfd) == -1)))
		c->error = errno;
	if (c->envfd != -1 && (!sync || c->error != 0)) {
		close(c->envfd);
		c->envfd = -1;
	}
}

/*
 * Wait until a commit's content and envelope, written by
 * queue_commit_write(), are on disk; the envelope is closed either way.
 */
static void
queue_commit_sync(struct queue_commit *c)
{
	if (c->error == 0 &&
	    (fdatasync(c->msg->fd) == -1 || fdatasync(c->envfd) == -1))
		c->error = errno;
	if (c->envfd != -1) {
		close(c->envfd);
		c->envfd = -1;
	}
}

/*
 * Second step, once both files are durable: the content, then the
 * envelope (the commit point) renamed into queue/XX/.
 */
static void
queue_commit_move(struct queue_commit *c)
{
	struct queue_msg	*m = c->msg;
	char			 path[QUEUE_PATH_SIZE];

	if (c->error != 0)
		return;
	if (queue_file_move(m->id, "msg", m->spare) == -1) {
		c->error = errno;
		return;
	}
	if (queue_file_move(m->id, "env", c->envspare) == -1) {
		c->error = errno;
		if (queue_path(m->id, "msg", path, sizeof path) == 0)
			unlinkat(queue.queuefd, path, 0);
	}
}

/*
 * A commit that failed leaves nothing behind; one whose entries in
 * queue/XX/ are of unknown durability (the last sync failed) was never
 * acknowledged, so it is taken back too.
 */
static void
queue_commit_undo(struct queue_commit *c, int moved)
{
	char	path[QUEUE_PATH_SIZE];

	if (moved) {
		if (queue_path(c->msg->id, "env", path, sizeof path) == 0)
			unlinkat(queue.queuefd, path, 0);
		if (queue_path(c->msg->id, "msg", path, sizeof path) == 0)
			unlinkat(queue.queuefd, path, 0);
	}
	queue_commit_unlink(c);
}

/* A sync of the spool's filesystem failed: every commit still open fails. */
static void
queue_batch_fail(struct queue_commits *batch, int error, int moved)
{
	struct queue_commit	*c;

	TAILQ_FOREACH(c, batch, entry) {
		if (c->error != 0)
			continue;
		c->error = error;
		queue_commit_undo(c, moved);
	}
}

/* Sync a queue/XX directory after entries were renamed into it. */
static int
queue_dir_sync(unsigned dir)
{
	char	name[3];
	int	fd, rc;

	queue_dir_name(dir, name, sizeof name);
	if ((fd = queue_opendir(queue.queuefd, name)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * spool_sync = file: every content and envelope of the batch written and
 * its writeback started, then each synced on its own and renamed, then
 * each directory the batch touched synced once.  Starting all the
 * writeback before the first sync lets ext4 allocate every file's blocks
 * in one journal transaction, which the first sync commits for all; the
 * others find little left to do.  Each sync waits for its own files only.
 */
static void
queue_batch_run_files(struct queue_commits *batch)
{
	struct queue_commit	*c, *o;
	unsigned char		 synced[QUEUE_NDIRS / 8];
	int			 error;

	memset(synced, 0, sizeof synced);
	TAILQ_FOREACH(c, batch, entry)
		queue_commit_write(c, 1);
	TAILQ_FOREACH(c, batch, entry) {
		queue_commit_sync(c);
		queue_commit_move(c);
		if (c->error != 0)
			queue_commit_unlink(c);
	}
	TAILQ_FOREACH(c, batch, entry) {
		if (c->error != 0 || synced[c->dir / 8] & (1u << (c->dir % 8)))
			continue;
		if (queue_dir_sync(c->dir) == 0) {
			synced[c->dir / 8] |= 1u << (c->dir % 8);
			continue;
		}
		/* Its new entries are of unknown durability: take them back. */
		error = errno;
		TAILQ_FOREACH(o, batch, entry) {
			if (o->dir != c->dir || o->error != 0)
				continue;
			o->error = error;
			queue_commit_undo(o, 1);
		}
	}
}

/*
 * spool_sync = filesystem: two syncs of the spool's filesystem for the
 * whole batch, however many messages it holds: every content and
 * envelope written, synced; then every one renamed into queue/XX/,
 * synced again.  The first sync orders the content before the rename
 * that commits it (a crash never leaves a committed envelope whose
 * content is not on disk); the second makes the renames durable before
 * anything is acknowledged.  Each also waits for whatever else is
 * written to that filesystem.
 */
static void
queue_batch_run_fs(struct queue_commits *batch)
{
	struct queue_commit	*c;

	TAILQ_FOREACH(c, batch, entry)
		queue_commit_write(c, 0);
	if (syncfs(queue.spoolfd) == -1) {
		queue_batch_fail(batch, errno, 0);
		return;
	}
	TAILQ_FOREACH(c, batch, entry) {
		if (c->error != 0) {
			queue_commit_undo(c, 0);
			continue;
		}
		queue_commit_move(c);
		if (c->error != 0)
			queue_commit_unlink(c);
	}
	if (syncfs(queue.spoolfd) == -1)
		queue_batch_fail(batch, errno, 1);
}

/*
 * Make a batch durable.  Runs on a sync worker (or inline without
 * workers): touches only files and the batch, never logs.
 */
static void
queue_batch_run(struct queue_commits *batch, int sync_fs)
{
	if (sync_fs)
		queue_batch_run_fs(batch);
	else
		queue_batch_run_files(batch);
}

/* Back on the loop: report failures, count, call back, free. */
static void
queue_batch_finish(struct queue_commits *batch)
{
	struct queue_commit	*c;
	struct timespec		 now;

	while ((c = TAILQ_FIRST(batch)) != NULL) {
		TAILQ_REMOVE(batch, c, entry);
		TAILQ_REMOVE(&queue.live, c, live);
		close(c->msg->fd);
		queue.msgs_open--;
		if (c->error == 0) {
			queue.count++;
			queue_fresh_add(c->msg->id, c->envtext, c->envlen);
			c->envtext = NULL;
			clock_gettime(CLOCK_MONOTONIC, &now);
			metrics_observe(METRICS_HIST_COMMIT,
			    (double)(now.tv_sec - c->started.tv_sec) +
			    (double)(now.tv_nsec - c->started.tv_nsec) / 1e9);
		} else {
			errno = c->error;
			log_warn("%s: commit failed", c->msg->id);
		}
		if (!c->cancelled && c->cb != NULL)
			c->cb(c->arg, c->error);
		free(c->msg);
		free(c->envtext);
		free(c);
	}
}

/* On a worker: make one batch durable. */
static void
queue_batch_job(void *arg)
{
	struct queue_batch	*b = arg;

	queue_batch_run(&b->commits, b->sync_fs);
}

/* Back on the loop: call back, then send the commits that waited. */
static void
queue_batch_done(void *arg, int cancelled)
{
	struct queue_batch	*b = arg;

	queue.batches--;
	queue_batch_finish(&b->commits);
	free(b);
	/* Commits that waited for a free worker go now, as one batch. */
	if (!TAILQ_EMPTY(&queue.pending) && queue.commit_ev != NULL)
		event_active(queue.commit_ev, 0, 0);
}

/*
 * End of a loop iteration with commits pending: hand them to the worker
 * pool as one batch, or run them here when it has no threads.  No more
 * batches are out at once than the pool has threads: commits asked for
 * meanwhile wait and go together as the next batch.
 */
static void
queue_commit_run_cb(evutil_socket_t fd, short events, void *arg)
{
	struct queue_commits	 batch;
	struct queue_batch	*b;

	if (TAILQ_EMPTY(&queue.pending))
		return;
	if (workpool_threads() == 0) {
		TAILQ_INIT(&batch);
		TAILQ_CONCAT(&batch, &queue.pending, entry);
		/* Blocking: the syncs, when there are no workers. */
		queue_batch_run(&batch, queue.sync_fs);
		queue_batch_finish(&batch);
		return;
	}
	if (queue.batches >= workpool_threads())
		return;		/* queue_batch_done() comes back */
	b = xcalloc(1, sizeof *b);
	TAILQ_INIT(&b->commits);
	TAILQ_CONCAT(&b->commits, &queue.pending, entry);
	b->sync_fs = queue.sync_fs;
	queue.batches++;
	(void)workpool_submit(WORKPOOL_URGENT, queue_batch_job,
	    queue_batch_done, b);
}

/*
 * Delivery's side: committed messages in queue/XX/ (or held in hold/XX/)
 * are read, their envelopes rewritten after each attempt, moved between
 * the two trees, and removed when done.
 * Blocking: small local file operations, as for the commit.
 */

/*
 * Whether a message is being committed: its files may be in place, but
 * nothing above the queue knows it yet, so for ternd it is not there
 * until its callback (ternctl may see it in a scan): nothing may read,
 * move or remove it.
 */
static int
queue_is_committing(const char *id)
{
	struct queue_commit	*c;

	TAILQ_FOREACH(c, &queue.live, live) {
		if (strcmp(c->msg->id, id) == 0)
			return 1;
	}
	return 0;
}

/*
 * The tree (queue/ or hold/) holding the envelope of id: its descriptor,
 * and *held set to 0 or 1.  -1 with ENOENT when neither has it, or while
 * it is being committed; EINVAL for what is not a queue id.
 */
static int
queue_find(const char *id, int *held)
{
	struct stat	st;
	char		path[QUEUE_PATH_SIZE];

	if (queue_is_committing(id)) {
		errno = ENOENT;
		return -1;
	}
	if (queue_path(id, "env", path, sizeof path) == -1)
		return -1;
	if (fstatat(queue.queuefd, path, &st, 0) == 0) {
		*held = 0;
		return queue.queuefd;
	}
	if (errno != ENOENT)
		return -1;
	if (queue.holdfd != -1 && fstatat(queue.holdfd, path, &st, 0) == 0) {
		*held = 1;
		return queue.holdfd;
	}
	if (errno != ENOENT)
		return -1;
	errno = ENOENT;
	return -1;
}

/*
 * Open one of a message's files, looking in queue/ then hold/.  A message
 * moved between the two trees meanwhile is found in the other one.
 */
static int
queue_open_file(const char *id, const char *ext)
{
	char	path[QUEUE_PATH_SIZE];
	int	fd;

	if (queue_path(id, ext, path, sizeof path) == -1)
		return -1;
	fd = openat(queue.queuefd, path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT && queue.holdfd != -1)
		fd = openat(queue.holdfd, path, O_RDONLY | O_CLOEXEC);
	return fd;
}

/* Read and parse the envelope of id into env, made by envelope_init(). */
static int
queue_env_load_held(const char *id, struct envelope *env, int *held,
    char **cause)
{
	struct queue_fresh	*f;
	char			 path[QUEUE_PATH_SIZE], *buf;
	size_t			 len;
	int			 fd, rc, saved;

	if (queue_path(id, "env", path, sizeof path) == -1) {
		xasprintf(cause, "not a queue id");
		errno = EINVAL;
		return -1;
	}
	/* Committed a moment ago, in queue/: as written, not read back. */
	if ((f = queue_fresh_find(id)) != NULL) {
		if ((rc = queue_env_parse(id, f->text, f->len, env,
		    cause)) == -1)
			errno = EINVAL;
		else if (held != NULL)
			*held = 0;
		queue_fresh_free(f);
		return rc;
	}
	if ((fd = queue_open_file(id, "env")) == -1 ||
	    util_read_fd(fd, QUEUE_ENV_MAX + 1, NULL, &buf, &len) == -1) {
		saved = errno;
		if (fd != -1)
			close(fd);
		xasprintf(cause, "queue/%s: %s", path, strerror(saved));
		errno = saved;
		return -1;
	}
	close(fd);
	if (len > QUEUE_ENV_MAX) {
		free(buf);
		xasprintf(cause, "queue/%s: %s", path, strerror(EFBIG));
		errno = EFBIG;
		return -1;
	}
	if ((rc = queue_env_parse(id, buf, len, env, cause)) == -1)
		errno = EINVAL;
	free(buf);
	if (rc == 0 && held != NULL) {
		/* The tree it was read from: the one holding it now. */
		if (queue_find(id, held) == -1)
			*held = 0;
	}
	return rc;
}

/* Read and parse the envelope of id (queued or held). */
int
queue_env_load(const char *id, struct envelope *env, char **cause)
{
	return queue_env_load_held(id, env, NULL, cause);
}

/*
 * Replace ID.env whole in dirfd: a temporary file, its data synced, then
 * renamed over the envelope.  The directory is not synced: after a power
 * loss the older envelope may come back, which can only repeat a
 * delivery, never lose the message.  A message whose content is gone
 * (removed meanwhile) is not brought back: ENOENT.  On error nothing has
 * changed.  Runs on a worker: touches only the files of id.
 */
static int
queue_env_replace(int dirfd, const char *id, const char *text, size_t len)
{
	struct stat	 st;
	char		 path[QUEUE_PATH_SIZE], tmp[QUEUE_PATH_SIZE];
	char		 msg[QUEUE_PATH_SIZE];
	int		 rc, saved;

	if (queue_path(id, "env", path, sizeof path) == -1 ||
	    queue_path(id, "env.tmp", tmp, sizeof tmp) == -1 ||
	    queue_path(id, "msg", msg, sizeof msg) == -1)
		return -1;
	unlinkat(dirfd, tmp, 0);	/* left by a failed rewrite */
	if (queue_write_synced(dirfd, tmp, text, len) == -1)
		return -1;
	if ((rc = fstatat(dirfd, msg, &st, 0)) == 0)
		rc = renameat(dirfd, tmp, dirfd, path);
	if (rc == -1) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		errno = saved;
	}
	return rc;
}

/* Whether a rewrite of id is asked for and not called back yet. */
static struct queue_rewrite *
queue_rewrite_find(const char *id)
{
	struct queue_rewrite	*r;

	TAILQ_FOREACH(r, &queue.rewrites, entry) {
		if (strcmp(r->id, id) == 0)
			return r;
	}
	return NULL;
}

/*
 * Rewrite the envelope now, on the loop: for a tool and the tests.  The
 * daemon uses queue_env_rewrite().
 */
int
queue_env_update(const struct envelope *env)
{
	char	*text;
	size_t	 len;
	int	 dirfd, held, rc, saved;

	if (queue_rewrite_find(env->id) != NULL) {
		errno = EBUSY;
		return -1;
	}
	queue_fresh_drop(env->id);
	if ((dirfd = queue_find(env->id, &held)) == -1 ||
	    envelope_write(env, &text, &len) == -1)
		return -1;
	/* Blocking: the data sync that keeps the envelope whole. */
	rc = queue_env_replace(dirfd, env->id, text, len);
	saved = errno;
	free(text);
	errno = saved;
	return rc;
}

/* On a worker: one rewrite. */
static void
queue_rewrite_job(void *arg)
{
	struct queue_rewrite	*r = arg;

	if (r->error == 0 &&
	    queue_env_replace(r->dirfd, r->id, r->text, r->len) == -1)
		r->error = errno;
}

static void	queue_rewrite_done(void *, int);

/* Hand a rewrite to the workers, the tree holding it found now. */
static void
queue_rewrite_start(struct queue_rewrite *r)
{
	int	held;

	r->started = 1;
	if (r->error == 0 && (r->dirfd = queue_find(r->id, &held)) == -1)
		r->error = errno;
	(void)workpool_submit(WORKPOOL_BACKGROUND, queue_rewrite_job,
	    queue_rewrite_done, r);
}

/*
 * Back on the loop: an envelope renamed into place after its message was
 * removed is removed again; the next rewrite of the message starts; the
 * caller hears how it went.
 */
static void
queue_rewrite_done(void *arg, int cancelled)
{
	struct queue_rewrite	*r = arg, *next;
	char			 path[QUEUE_PATH_SIZE];

	TAILQ_REMOVE(&queue.rewrites, r, entry);
	if (r->removed && r->error == 0) {
		if (queue_path(r->id, "env", path, sizeof path) == 0)
			unlinkat(r->dirfd, path, 0);
		r->error = ENOENT;
	}
	TAILQ_FOREACH(next, &queue.rewrites, entry) {
		if (strcmp(next->id, r->id) == 0) {
			if (!next->started)
				queue_rewrite_start(next);
			break;
		}
	}
	if (!r->cancelled && r->cb != NULL)
		r->cb(r->arg, r->error);
	free(r->text);
	free(r);
}

/*
 * Replace the envelope whole on a worker, as queue_env_update() does; the
 * envelope is copied as text at once.  cb runs later from the loop, never
 * before this returns, with 0 or an errno (ENOENT: the message is gone).
 * Rewrites of one message happen one after the other, in the order
 * asked; while one is under way the message can be neither held nor
 * released (EBUSY).
 */
struct queue_rewrite *
queue_env_rewrite(const struct envelope *env, queue_rewrite_cb cb,
    void *arg)
{
	struct queue_rewrite	*r;
	int			 busy;

	r = xcalloc(1, sizeof *r);
	util_strlcpy(r->id, env->id, sizeof r->id);
	r->dirfd = -1;
	r->cb = cb;
	r->arg = arg;
	if (!queue_is_id(env->id))
		r->error = EINVAL;
	else if (envelope_write(env, &r->text, &r->len) == -1)
		r->error = EINVAL;
	busy = queue_rewrite_find(r->id) != NULL;
	queue_fresh_drop(r->id);
	TAILQ_INSERT_TAIL(&queue.rewrites, r, entry);
	if (!busy)
		queue_rewrite_start(r);
	return r;
}

/* The requester went away: the rewrite still happens, silently. */
void
queue_rewrite_cancel(struct queue_rewrite *r)
{
	r->cancelled = 1;
}

/*
 * Remove a message, queued or held.  Its envelope goes first: that is
 * the point of no return, and content left without one is removed by
 * recovery.  Nothing is synced: a message that comes back after a power
 * loss is delivered again, never lost.  With reuse its files may be kept
 * as spares, to be written over by the next message.
 */
static int
queue_remove_files(const char *id, int reuse)
{
	struct queue_rewrite	*r;
	char			 path[QUEUE_PATH_SIZE];
	int			 dirfd, held;

	if ((dirfd = queue_find(id, &held)) == -1)
		return -1;
	queue_fresh_drop(id);
	queue_path(id, "env", path, sizeof path);
	if (queue_discard(dirfd, path, SPARE_ENV, reuse) == -1)
		return -1;
	queue.count--;
	TAILQ_FOREACH(r, &queue.rewrites, entry) {
		if (strcmp(r->id, id) == 0)
			r->removed = 1;
	}
	queue_path(id, "msg", path, sizeof path);
	if (queue_discard(dirfd, path, SPARE_MSG, reuse) == -1)
		log_warn("%s: cannot remove content", id);
	return 0;
}

/*
 * Delete a message: it may still be open (an attempt under way, a tool
 * reading it), so its files are unlinked, which leaves what readers
 * have open as it was.
 */
int
queue_remove(const char *id)
{
	return queue_remove_files(id, 0);
}

/*
 * A message is done and no descriptor of its files is open anywhere
 * this process knows of: remove it, keeping its files for reuse.
 */
int
queue_retire(const char *id)
{
	return queue_remove_files(id, 1);
}

/* The hold/XX directory of an id, made when first needed. */
static int
queue_hold_dir(const char *id)
{
	char	name[3];

	queue_dir_name(queue_dir_index(id), name, sizeof name);
	if (mkdirat(queue.holdfd, name, 0700) == 0) {
		if (fsync(queue.holdfd) == -1)
			return -1;
	} else if (errno != EEXIST)
		return -1;
	return 0;
}

/*
 * Move a message from one tree to the other.  The content is linked into
 * the destination first (a crash here leaves content without an envelope
 * there, which recovery removes), then the envelope is renamed across
 * (the commit point: one atomic step), then the old content is unlinked
 * (a crash before leaves content without an envelope in the source, also
 * removed by recovery).  The destination directory is synced after the
 * rename, so an acknowledged move survives a power loss.
 */
static int
queue_move(const char *id, int fromfd, int tofd)
{
	char	env[QUEUE_PATH_SIZE], msg[QUEUE_PATH_SIZE], name[3];
	int	dirfd, saved;

	if (queue_path(id, "env", env, sizeof env) == -1 ||
	    queue_path(id, "msg", msg, sizeof msg) == -1)
		return -1;
	/* Content there without an envelope was never moved: stale. */
	if (unlinkat(tofd, msg, 0) == -1 && errno != ENOENT)
		return -1;
	if (linkat(fromfd, msg, tofd, msg, 0) == -1)
		return -1;
	if (renameat(fromfd, env, tofd, env) == -1) {
		saved = errno;
		unlinkat(tofd, msg, 0);
		errno = saved;
		return -1;
	}
	queue_dir_name(queue_dir_index(id), name, sizeof name);
	if ((dirfd = queue_opendir(tofd, name)) == -1 || fsync(dirfd) == -1)
		log_warn("%s: cannot sync the directory it moved to", id);
	if (dirfd != -1)
		close(dirfd);
	if (unlinkat(fromfd, msg, 0) == -1)
		log_warn("%s: cannot remove the old content link", id);
	return 0;
}

/* Move a message to hold/ (hold 1) or back to queue/ unless it is there. */
static int
queue_set_held(const char *id, int hold)
{
	int	held;

	if (queue_find(id, &held) == -1)
		return -1;
	if (held == hold)
		return 0;
	if (queue_rewrite_find(id) != NULL) {
		errno = EBUSY;
		return -1;
	}
	queue_fresh_drop(id);
	/* Blocking: a link, a rename and a directory sync. */
	if (hold)
		return queue_hold_dir(id) == -1 ? -1 :
		    queue_move(id, queue.queuefd, queue.holdfd);
	return queue_move(id, queue.holdfd, queue.queuefd);
}

/*
 * Put a queued message on hold: never attempted until released.  0 when
 * it is held now (or was already), -1 with ENOENT when there is no such
 * message.
 */
int
queue_hold(const char *id)
{
	return queue_set_held(id, 1);
}

/* Give a held message back to the queue; as queue_hold(). */
int
queue_release(const char *id)
{
	return queue_set_held(id, 0);
}

/* The content, queued or held, open for reading. */
int
queue_msg_open(const char *id)
{
	return queue_open_file(id, "msg");
}

/*
 * Whether fd, from queue_msg_open(id), is still the content of id.  A
 * finished message's files are reused for the next one (spare.c), only
 * once renamed away from their name: what a reader read before this
 * says yes was the message's.  A reader in another process, which ternd
 * cannot wait for, asks after each read.
 */
int
queue_msg_still(const char *id, int fd)
{
	struct stat	st, at;
	char		path[QUEUE_PATH_SIZE];

	if (fstat(fd, &st) == -1 ||
	    queue_path(id, "msg", path, sizeof path) == -1)
		return 0;
	if (fstatat(queue.queuefd, path, &at, AT_SYMLINK_NOFOLLOW) == -1 &&
	    (queue.holdfd == -1 ||
	    fstatat(queue.holdfd, path, &at, AT_SYMLINK_NOFOLLOW) == -1))
		return 0;
	return at.st_dev == st.st_dev && at.st_ino == st.st_ino;
}

/* At most max octets of the content, or of its header section. */
static int
queue_read_msg(const char *id, size_t max, int hdrs, char **bufp,
    size_t *lenp)
{
	int	fd, rc, saved;

	if ((fd = queue_open_file(id, "msg")) == -1)
		return -1;
	rc = util_read_fd(fd, max, hdrs ? queue_hdrs_end : NULL, bufp, lenp);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* The header section of the content, up to QUEUE_HDRS_MAX octets. */
int
queue_msg_headers(const char *id, char **bufp, size_t *lenp)
{
	return queue_read_msg(id, QUEUE_HDRS_MAX, 1, bufp, lenp);
}

/*
 * The same from a content already open (queue_msg_open()): read from its
 * start; the descriptor's offset is left anywhere (readers use pread).
 */
int
queue_fd_headers(int fd, char **bufp, size_t *lenp)
{
	if (lseek(fd, 0, SEEK_SET) == -1)
		return -1;
	return util_read_fd(fd, QUEUE_HDRS_MAX, queue_hdrs_end, bufp, lenp);
}

/* At most max octets of the content, from its start. */
int
queue_msg_read(const char *id, size_t max, char **bufp, size_t *lenp)
{
	return queue_read_msg(id, max, 0, bufp, lenp);
}

/*
 * The tool's side: reading the spool of a daemon that may be running,
 * without its lock, recovery or workers.  What a reader sees is always a
 * committed message (envelopes appear and move by rename); one that goes
 * away while it is read is left out.
 */

/* Read-only use of a spool: only the read functions may be called. */
int
queue_open_readonly(const char *spool, char **cause)
{
	queue.count = 0;
	if ((queue.spoolfd = open(spool, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		xasprintf(cause, "%s: %s", spool, strerror(errno));
		return -1;
	}
	if ((queue.queuefd = queue_opendir(queue.spoolfd, "queue")) == -1) {
		xasprintf(cause, "%s/queue: %s", spool, strerror(errno));
		queue_shutdown();
		return -1;
	}
	/* A spool never used for a hold may lack hold/. */
	if ((queue.holdfd = queue_opendir(queue.spoolfd, "hold")) == -1 &&
	    errno != ENOENT) {
		xasprintf(cause, "%s/hold: %s", spool, strerror(errno));
		queue_shutdown();
		return -1;
	}
	return 0;
}

/* One envelope found by queue_list(). */
struct queue_entry {
	char	id[QUEUE_ID_SIZE];
};

static int
queue_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct queue_entry *)a)->id,
	    ((const struct queue_entry *)b)->id);
}

/* The ids listed so far. */
struct queue_listing {
	struct queue_entry	*list;
	size_t			 n;
	size_t			 alloc;
};

/* Add the id of an ID.env to the listing. */
static int
queue_list_env(DIR *dp, unsigned dir, const char *name, const char *id,
    void *arg)
{
	struct queue_listing	*l = arg;

	if (l->n == l->alloc) {
		l->alloc = l->alloc == 0 ? 256 : l->alloc * 2;
		l->list = xreallocarray(l->list, l->alloc, sizeof *l->list);
	}
	memcpy(l->list[l->n++].id, id, QUEUE_ID_SIZE);
	return 0;
}

/*
 * Every committed envelope, queued and held, to cb in id order (which is
 * arrival order).  An envelope that cannot be read or parsed is logged
 * and left out; -1 only when a tree cannot be read.
 */
int
queue_list(queue_scan_cb cb, void *arg, char **cause)
{
	struct queue_listing	 l = { NULL, 0, 0 };
	struct queue_entry	*list;
	struct envelope		 env;
	size_t			 i;
	char			*why;
	int			 held;

	if (queue_tree_walk(queue.queuefd, "env", queue_list_env, &l) == -1 ||
	    (queue.holdfd != -1 &&
	    queue_tree_walk(queue.holdfd, "env", queue_list_env, &l) == -1)) {
		xasprintf(cause, "cannot read the spool: %s",
		    strerror(errno));
		free(l.list);
		return -1;
	}
	list = l.list;
	if (l.n > 1)
		qsort(list, l.n, sizeof *list, queue_entry_cmp);
	for (i = 0; i < l.n; i++) {
		/* Seen in both trees while it moved: once is enough. */
		if (i > 0 && strcmp(list[i].id, list[i - 1].id) == 0)
			continue;
		envelope_init(&env);
		if (queue_env_load_held(list[i].id, &env, &held, &why) == -1) {
			if (errno != ENOENT)
				log_warnx("%s: %s", list[i].id, why);
			free(why);
			continue;
		}
		cb(&env, held, arg);
		envelope_clear(&env);
	}
	free(list);
	return 0;
}

/*
 * Whether the spool's filesystem has room for a message of size octets
 * (0 when not announced) with min_free octets left over, and a few inodes:
 * 1 yes, 0 no (errno ENOSPC).  fd is a descriptor on the filesystem, or
 * -1 for the daemon's spool, whose answer is kept for QUEUE_ROOM_CACHE
 * (statvfs is quick, but it is a system call on the loop for each MAIL).
 * min_free 0 turns the check off; when the space cannot be read the answer
 * is yes: a write that fails still fails the message.
 */
#define QUEUE_ROOM_CACHE	1	/* seconds */
#define QUEUE_ROOM_INODES	64

int
queue_has_room(int fd, uint64_t size, uint64_t min_free)
{
	static struct {
		time_t		 at;		/* monotonic seconds; 0: none */
		uint64_t	 avail;
		int		 inodes;	/* enough of them */
	} cache;
	struct statvfs	 sv;
	struct timespec	 now;
	uint64_t	 avail;
	int		 inodes;

	if (min_free == 0)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (fd == -1 && cache.at != 0 &&
	    now.tv_sec - cache.at < QUEUE_ROOM_CACHE) {
		avail = cache.avail;
		inodes = cache.inodes;
	} else {
		if (fstatvfs(fd == -1 ? queue.spoolfd : fd, &sv) == -1) {
			log_warn("queue: free space of the spool");
			return 1;
		}
		avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		/* Some filesystems have no inode count: f_files is 0. */
		inodes = sv.f_files == 0 || sv.f_favail >= QUEUE_ROOM_INODES;
		if (fd == -1) {
			cache.at = now.tv_sec > 0 ? now.tv_sec : 1;
			cache.avail = avail;
			cache.inodes = inodes;
		}
	}
	if (!inodes || avail < min_free || avail - min_free < size) {
		errno = ENOSPC;
		return 0;
	}
	return 1;
}
