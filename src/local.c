/*
 * local.c: Maildir delivery.  It makes a Maildir and its missing parents
 * on first delivery, writes one message as a new file in tmp/ (our two
 * trace headers, then the queued content with CRLF turned into LF), syncs
 * it, links it into new/ under a name nobody else uses, and syncs new/.
 * It never leaves a partial file in new/, never follows a symbolic link
 * at the Maildir itself, never changes an existing directory's modes, and
 * never moves the offset of the message it is handed.  Once a day at
 * most per mailbox, a delivery first removes what a crash left in tmp/
 * for more than 36 hours (the Maildir convention).  The daemon makes
 * its deliveries on the worker pool, one job per message; the worker
 * touches only the job.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlv.h"
#include "local.h"
#include "log.h"
#include "util.h"
#include "workpool.h"

#define LOCAL_CHUNK		(64 * 1024)	/* read from the message */
#define LOCAL_HOST_MAX		128		/* of the escaped host name */
#define LOCAL_NAME_SIZE		256		/* a file name, NAME_MAX + 1 */
#define LOCAL_TRIES		100		/* names tried, then give up */
#define LOCAL_PATH_ESC_SIZE	300		/* a path, escaped and cut */

static const char *local_subdirs[] = { "tmp", "new", "cur" };

/*
 * Files in tmp/ untouched this long were left by a crash (the Maildir
 * convention); each mailbox's tmp/ is looked at once a day at most.
 */
#define LOCAL_TMP_AGE		(36 * 60 * 60)
#define LOCAL_SWEEP_EVERY	(24 * 60 * 60)
#define LOCAL_SWEEP_SLOTS	4096

/*
 * When each mailbox's tmp/ was last swept, by a hash of its path: two
 * mailboxes that share a slot only make a sweep come early or late.
 */
static struct {
	uint64_t	hash;
	time_t		when;
} local_sweeps[LOCAL_SWEEP_SLOTS];
static pthread_mutex_t	local_sweep_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Deliveries of this process: the Q<n> part of unique names; workers
 * share it.
 */
static uint64_t	local_counter;

/* One mailbox of a job, and how its delivery went. */
struct local_rcpt {
	char			*maildir;
	char			*delivered_to;
	enum local_result	 res;
	char			 err[LOCAL_ERR_SIZE];
};

/* The deliveries of one message; owned by this module once started. */
struct local_job {
	struct workpool_job	*job;
	int			 msgfd;		/* our own */
	char			*return_path;
	char			*hostname;
	struct local_rcpt	*rcpts;
	size_t			 n;
	local_job_cb		 cb;
	void			*arg;
};

/* "maildir PATH[/sub]: reason" into err, PATH made printable. */
static void __attribute__((format(printf, 5, 6)))
local_error(char *err, size_t errsize, const char *path, const char *sub,
    const char *fmt, ...)
{
	char	esc[LOCAL_PATH_ESC_SIZE], why[256];
	va_list	ap;

	if (err == NULL || errsize == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	log_escape(esc, sizeof esc, path, strlen(path));
	snprintf(err, errsize, "maildir %s%s%s: %s", esc, sub != NULL ? "/" :
	    "", sub != NULL ? sub : "", why);
}

/*
 * The host part of unique names: '/' and ':' may not appear in a Maildir
 * name, and ',' would be taken for the start of the ",S=" field.
 */
static void
local_host(const char *hostname, char *buf, size_t size)
{
	char		 sys[256];
	const char	*h = hostname;
	size_t		 o = 0;

	if (h == NULL || *h == '\0') {
		if (gethostname(sys, sizeof sys) == -1)
			util_strlcpy(sys, "localhost", sizeof sys);
		sys[sizeof sys - 1] = '\0';
		h = sys;
	}
	for (; *h != '\0' && o + 5 < size; h++) {
		if (*h == '/' || *h == ':' || *h == ',') {
			snprintf(buf + o, size - o, "\\%03o",
			    (unsigned)(unsigned char)*h);
			o += 4;
		} else
			buf[o++] = *h;
	}
	buf[o] = '\0';
}

/*
 * A name for one file: "<secs>.M<usecs>P<pid>Q<n>.<host>".  The counter
 * keeps names apart within one microsecond of one process, the pid
 * between processes, the host between machines sharing the Maildir.
 */
static void
local_name(const char *host, char *buf, size_t size)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	if (util_snprintf(buf, size, "%lld.M%ldP%ldQ%" PRIu64 ".%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	    __atomic_add_fetch(&local_counter, 1, __ATOMIC_RELAXED),
	    host) == -1)
		panic("local: file name too long");
}

/*
 * Sync a directory we made an entry in, through a descriptor that may
 * only be a path: it is reopened for reading, which needs the read
 * permission we have in any directory we created.  One we may not read
 * (we only made an entry in it) is left to the file system.
 */
static int
local_sync_dir(int dirfd)
{
	int	fd, rc;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		return errno == EACCES ? 0 : -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * Open one directory below dirfd, making it (0700) when it is missing.
 * *made says whether dirfd gained an entry that still needs a sync.
 */
static int
local_open_dir(int dirfd, const char *name, int last, int *made)
{
	int	flags = O_DIRECTORY | O_CLOEXEC, fd;

	/*
	 * A parent is only walked through: it may grant search but not
	 * read (a 0711 home), so it is opened for its path alone.
	 */
	if (last)
		flags |= O_RDONLY | O_NOFOLLOW;
	else
		flags |= O_PATH;
	if ((fd = openat(dirfd, name, flags)) != -1 || errno != ENOENT)
		return fd;
	if (mkdirat(dirfd, name, 0700) == 0)
		*made = 1;
	else if (errno != EEXIST)
		return -1;
	return openat(dirfd, name, flags);
}

/*
 * The Maildir's directory, made with its missing parents.  The parents
 * are resolved as the system resolves any path; the Maildir itself must
 * be a directory, not a symbolic link to one.  A path that names
 * something else than a directory is the one mistake retrying cannot
 * mend.
 */
static enum local_result
local_open_maildir(const char *path, int *fdp, char *err, size_t errsize)
{
	struct stat	 st;
	char		 buf[PATH_MAX], esc[LOCAL_PATH_ESC_SIZE], *p, *slash;
	size_t		 len;
	int		 dirfd, fd, last = 0, made, saved;

	*fdp = -1;
	if (*path == '\0') {
		local_error(err, errsize, path, NULL, "empty path");
		return LOCAL_PERM;
	}
	if ((len = util_strlcpy(buf, path, sizeof buf)) >= sizeof buf) {
		local_error(err, errsize, path, NULL, "%s",
		    strerror(ENAMETOOLONG));
		return LOCAL_TEMP;
	}
	/* A trailing slash would make the last symbolic link followed. */
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	fd = open(buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1) {
		*fdp = fd;
		return LOCAL_OK;
	}

	/* Missing, or something is wrong: walk it to make or to tell. */
	dirfd = open(*buf == '/' ? "/" : ".", O_PATH | O_DIRECTORY |
	    O_CLOEXEC);
	if (dirfd == -1) {
		local_error(err, errsize, path, NULL, "%s", strerror(errno));
		return LOCAL_TEMP;
	}
	for (p = buf; *p == '/'; p++)
		;
	while (*p != '\0') {
		if ((slash = strchr(p, '/')) != NULL)
			*slash = '\0';
		last = slash == NULL;
		made = 0;
		fd = local_open_dir(dirfd, p, last, &made);
		if (fd == -1)
			goto fail;
		/* A new directory entry is as fragile as a new file's. */
		if (made && local_sync_dir(dirfd) == -1) {
			saved = errno;
			close(fd);
			errno = saved;
			goto fail;
		}
		close(dirfd);
		dirfd = fd;
		if (slash == NULL)
			break;
		*slash = '/';
		for (p = slash + 1; *p == '/'; p++)
			;
	}
	*fdp = dirfd;
	return LOCAL_OK;

fail:
	saved = errno;
	if (last && fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode)) {
			close(dirfd);
			local_error(err, errsize, path, NULL,
			    "is a symbolic link, not followed");
			return LOCAL_TEMP;
		}
		if (!S_ISDIR(st.st_mode)) {
			close(dirfd);
			local_error(err, errsize, path, NULL,
			    "not a directory");
			return LOCAL_PERM;
		}
	}
	close(dirfd);
	if (last)
		local_error(err, errsize, path, NULL, "%s", strerror(saved));
	else {
		/* buf ends at the parent that failed. */
		log_escape(esc, sizeof esc, buf, strlen(buf));
		local_error(err, errsize, path, NULL, "%s: %s", esc,
		    strerror(saved));
	}
	return LOCAL_TEMP;
}

/*
 * tmp/ and new/ of an open Maildir, and cur/ made if missing, so that a
 * reader finds the Maildir complete.
 */
static enum local_result
local_open_subdirs(const char *path, int mdfd, int *tmpfd, int *newfd,
    char *err, size_t errsize)
{
	size_t	i;
	int	fds[nitems(local_subdirs)], made = 0;

	for (i = 0; i < nitems(local_subdirs); i++) {
		fds[i] = local_open_dir(mdfd, local_subdirs[i], 1, &made);
		if (fds[i] == -1) {
			local_error(err, errsize, path, local_subdirs[i], "%s",
			    strerror(errno));
			goto fail;
		}
	}
	if (made && fsync(mdfd) == -1) {
		local_error(err, errsize, path, NULL, "%s", strerror(errno));
		goto fail;
	}
	close(fds[2]);
	*tmpfd = fds[0];
	*newfd = fds[1];
	return LOCAL_OK;

fail:
	while (i-- > 0)
		close(fds[i]);
	return LOCAL_TEMP;
}

/*
 * The stored file: the trace headers, then the message with each CRLF
 * made LF, a chunk at a time.  A chunk is read one octet into buf so a
 * CR held back from the chunk before (its LF may come next) fits in
 * front; converting only ever shortens, so it is done in place.
 * Returns the size written, or -1 with errno set and *readerr telling a
 * failed read of the message from a failed write.
 */
static int64_t
local_copy(int fd, int msgfd, const struct local_params *lp, char *buf,
    int *readerr)
{
	struct util_buf	 hdr = { NULL, 0, 0 };
	off_t		 off = 0;
	ssize_t		 n;
	int64_t		 size;
	size_t		 i, o;
	char		*start, *end;
	int		 held = 0;

	util_buf_printf(&hdr, "Return-Path: <%s>\nDelivered-To: %s\n",
	    lp->return_path != NULL ? lp->return_path : "", lp->delivered_to);
	*readerr = 0;
	if (util_write_all(fd, hdr.data, hdr.len) == -1) {
		free(hdr.data);
		return -1;
	}
	size = (int64_t)hdr.len;
	free(hdr.data);

	for (;;) {
		n = pread(msgfd, buf + 1, LOCAL_CHUNK, off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			*readerr = 1;
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		start = held ? buf : buf + 1;
		buf[0] = '\r';
		end = buf + 1 + n;
		held = 0;
		for (i = 0, o = 0; start + i < end; i++) {
			if (start[i] == '\r') {
				if (start + i + 1 == end) {
					held = 1;
					break;
				}
				if (start[i + 1] == '\n')
					continue;
			}
			start[o++] = start[i];
		}
		if (util_write_all(fd, start, o) == -1)
			return -1;
		size += (int64_t)o;
	}
	/* A CR at the very end stays, alone. */
	if (held) {
		if (util_write_all(fd, "\r", 1) == -1)
			return -1;
		size++;
	}
	return size;
}

/* Whether the Maildir at path is due a sweep of its tmp/; marks it swept. */
static int
local_sweep_due(const char *path, time_t now)
{
	uint64_t	h = 14695981039346656037ULL;	/* FNV-1a */
	size_t		i;
	int		due;

	for (; *path != '\0'; path++)
		h = (h ^ (unsigned char)*path) * 1099511628211ULL;
	i = h % LOCAL_SWEEP_SLOTS;
	pthread_mutex_lock(&local_sweep_lock);
	due = local_sweeps[i].hash != h ||
	    now - local_sweeps[i].when >= LOCAL_SWEEP_EVERY ||
	    now < local_sweeps[i].when;
	if (due) {
		local_sweeps[i].hash = h;
		local_sweeps[i].when = now;
	}
	pthread_mutex_unlock(&local_sweep_lock);
	return due;
}

/*
 * Remove the files of tmp/ neither read nor written for 36 hours: what a
 * crash left half-written.  Errors only leave them for the next sweep.
 * Blocking: a directory read and unlinks; on a worker, with the delivery.
 */
static void
local_sweep_tmp(int tmpfd)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*dir;
	time_t		 now = time(NULL), last;
	int		 fd;

	if ((fd = dup(tmpfd)) == -1)
		return;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(tmpfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1 || !S_ISREG(st.st_mode))
			continue;
		last = st.st_mtime > st.st_atime ? st.st_mtime : st.st_atime;
		if (now - last > LOCAL_TMP_AGE)
			unlinkat(tmpfd, de->d_name, 0);
	}
	closedir(dir);
}

/*
 * Give the synced file in tmp/ its name in new/.  A hard link fails
 * rather than replace a file already there, so a name in use is noticed
 * and another tried; where links are not supported, a rename after a
 * look.  On success the file is no longer in tmp/.
 */
static int
local_move(int tmpfd, const char *tmpname, int newfd, const char *host,
    int64_t size, char *newname, size_t newsize)
{
	struct stat	st;
	char		base[LOCAL_NAME_SIZE];
	int		tries, linked;

	for (tries = 0; tries < LOCAL_TRIES; tries++) {
		if (tries == 0)
			util_strlcpy(base, tmpname, sizeof base);
		else
			local_name(host, base, sizeof base);
		if (util_snprintf(newname, newsize, "%s,S=%" PRId64, base,
		    size) == -1)
			panic("local: file name too long");
		linked = linkat(tmpfd, tmpname, newfd, newname, 0) == 0;
		if (!linked && (errno == EPERM || errno == EOPNOTSUPP ||
		    errno == ENOSYS)) {
			if (fstatat(newfd, newname, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			if (errno != ENOENT)
				return -1;
			return renameat(tmpfd, tmpname, newfd, newname);
		}
		if (linked) {
			/* Left behind, it is only clutter for tmp/ cleaners. */
			unlinkat(tmpfd, tmpname, 0);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/*
 * Blocking: one file written and synced, its directory synced; the
 * daemon calls it on a worker, through a local_job.
 */
enum local_result
local_deliver(const struct local_params *lp, int msgfd, char *err,
    size_t errsize)
{
	enum local_result	 res;
	char			 host[LOCAL_HOST_MAX], tmpname[LOCAL_NAME_SIZE];
	char			 newname[LOCAL_NAME_SIZE], *buf = NULL;
	int64_t			 size;
	int			 mdfd, tmpfd = -1, newfd = -1, fd = -1;
	int			 tries, readerr, saved, rc;

	if (err != NULL && errsize > 0)
		*err = '\0';
	if (lp->maildir == NULL || lp->delivered_to == NULL)
		panic("local_deliver: no maildir or no recipient");
	/* Checked on the way in; only a hand-edited envelope has one. */
	if (strpbrk(lp->delivered_to, "\r\n") != NULL ||
	    (lp->return_path != NULL &&
	    strpbrk(lp->return_path, "\r\n") != NULL)) {
		local_error(err, errsize, lp->maildir, NULL,
		    "line break in an address");
		return LOCAL_TEMP;
	}

	if ((res = local_open_maildir(lp->maildir, &mdfd, err, errsize)) !=
	    LOCAL_OK)
		return res;
	res = local_open_subdirs(lp->maildir, mdfd, &tmpfd, &newfd, err,
	    errsize);
	close(mdfd);
	if (res != LOCAL_OK)
		return res;
	res = LOCAL_TEMP;
	if (local_sweep_due(lp->maildir, time(NULL)))
		local_sweep_tmp(tmpfd);

	local_host(lp->hostname, host, sizeof host);
	for (tries = 0; tries < LOCAL_TRIES; tries++) {
		local_name(host, tmpname, sizeof tmpname);
		fd = openat(tmpfd, tmpname, O_CREAT | O_EXCL | O_WRONLY |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		local_error(err, errsize, lp->maildir, "tmp", "%s",
		    strerror(errno));
		goto out;
	}

	buf = xmalloc(LOCAL_CHUNK + 1);
	if ((size = local_copy(fd, msgfd, lp, buf, &readerr)) == -1) {
		saved = errno;
		if (readerr) {
			local_error(err, errsize, lp->maildir, NULL,
			    "reading the message: %s", strerror(saved));
		} else {
			local_error(err, errsize, lp->maildir, "tmp", "%s",
			    strerror(saved));
		}
		goto fail;
	}
	/* close() too can be the first to report a failed write (NFS). */
	if ((rc = fsync(fd)) == 0) {
		rc = close(fd);
		fd = -1;
	}
	if (rc == -1) {
		local_error(err, errsize, lp->maildir, "tmp", "%s",
		    strerror(errno));
		goto fail;
	}
	if (local_move(tmpfd, tmpname, newfd, host, size, newname,
	    sizeof newname) == -1) {
		local_error(err, errsize, lp->maildir, "new", "%s",
		    strerror(errno));
		goto fail;
	}
	/*
	 * Until new/ is synced the file may vanish with a power loss: take
	 * it back when that fails, so a retry cannot make a second copy.
	 */
	if (fsync(newfd) == -1) {
		local_error(err, errsize, lp->maildir, "new", "%s",
		    strerror(errno));
		unlinkat(newfd, newname, 0);
		goto out;
	}
	res = LOCAL_OK;
	goto out;

fail:
	if (fd != -1)
		close(fd);
	unlinkat(tmpfd, tmpname, 0);
out:
	free(buf);
	close(tmpfd);
	close(newfd);
	return res;
}

/*
 * A job delivering the message open on msgfd (duplicated: the caller
 * keeps its own) from return_path, naming files after hostname.
 */
struct local_job *
local_job_new(int msgfd, const char *return_path, const char *hostname)
{
	struct local_job	*j;

	j = xcalloc(1, sizeof *j);
	if ((j->msgfd = fcntl(msgfd, F_DUPFD_CLOEXEC, 0)) == -1)
		j->msgfd = -1;	/* each delivery then fails, EBADF */
	j->return_path = xstrdup(return_path != NULL ? return_path : "");
	j->hostname = xstrdup(hostname != NULL ? hostname : "");
	return j;
}

/* One more mailbox, delivered as delivered_to. */
void
local_job_add(struct local_job *j, const char *maildir,
    const char *delivered_to)
{
	struct local_rcpt	*r;

	j->rcpts = xreallocarray(j->rcpts, j->n + 1, sizeof *j->rcpts);
	r = &j->rcpts[j->n++];
	memset(r, 0, sizeof *r);
	r->maildir = xstrdup(maildir);
	r->delivered_to = xstrdup(delivered_to);
	r->res = LOCAL_TEMP;
}

size_t
local_job_count(const struct local_job *j)
{
	return j->n;
}

static void
local_job_free(struct local_job *j)
{
	size_t	i;

	for (i = 0; i < j->n; i++) {
		free(j->rcpts[i].maildir);
		free(j->rcpts[i].delivered_to);
	}
	free(j->rcpts);
	if (j->msgfd != -1)
		close(j->msgfd);
	free(j->return_path);
	free(j->hostname);
	free(j);
}

/* On a worker: every delivery of the job, in order. */
static void
local_job_run(void *arg)
{
	struct local_job	*j = arg;
	struct local_params	 lp;
	size_t			 i;

	for (i = 0; i < j->n; i++) {
		memset(&lp, 0, sizeof lp);
		lp.maildir = j->rcpts[i].maildir;
		lp.return_path = j->return_path;
		lp.delivered_to = j->rcpts[i].delivered_to;
		lp.hostname = j->hostname;
		j->rcpts[i].res = local_deliver(&lp, j->msgfd, j->rcpts[i].err,
		    sizeof j->rcpts[i].err);
	}
}

/* On the loop: the results to the caller, unless it went away. */
static void
local_job_done(void *arg, int cancelled)
{
	struct local_job	*j = arg;

	if (!cancelled)
		j->cb(j, j->arg);
	local_job_free(j);
}

void
local_job_start(struct local_job *j, local_job_cb cb, void *arg)
{
	j->cb = cb;
	j->arg = arg;
	j->job = workpool_submit(WORKPOOL_BACKGROUND, local_job_run,
	    local_job_done, j);
}

/*
 * The caller goes away: no callback.  Deliveries a worker has begun are
 * finished; the job is freed when it is over.
 */
void
local_job_cancel(struct local_job *j)
{
	workpool_cancel(j->job);
}

/*
 * How delivery i went, as every delivery reports it: relay
 * DLV_RELAY_LOCAL, the Maildir named on success, the reason otherwise.
 */
void
local_job_outcome(const struct local_job *j, size_t i, struct dlv_rcpt *dr)
{
	const struct local_rcpt	*r;

	if (i >= j->n)
		panic("local_job_outcome: no delivery %zu", i);
	r = &j->rcpts[i];
	util_strlcpy(dr->relay, DLV_RELAY_LOCAL, sizeof dr->relay);
	dr->dsn = 0;
	dr->tls = 0;
	if (r->res == LOCAL_OK)
		dlv_status_fill(&dr->st, DLV_OK, "2.0.0",
		    "delivered to maildir %s", r->maildir);
	else if (r->res == LOCAL_PERM)
		dlv_status_fill(&dr->st, DLV_PERM, "5.2.0", "%s", r->err);
	else
		dlv_status_fill(&dr->st, DLV_TEMP, "4.2.0", "%s", r->err);
}
