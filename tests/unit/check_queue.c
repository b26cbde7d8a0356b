/*
 * check_queue.c: the spool.  Queue ids (form, order, uniqueness),
 * receiving and committing a message (the bytes on disk, an envelope that
 * reads back, a callback that runs from the loop and only once), abort
 * and cancel, recovery of a spool in each state a crash or a person can
 * leave it, the one-daemon lock, a disk that refuses writes, and what
 * delivery does with a committed message (load and rewrite its envelope,
 * read its content, hold and release it with a crash at each step,
 * remove it), and a tool's read-only listing.  Every test runs in its
 * own process on its own spool under /tmp.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "spare.h"
#include "workpool.h"
#include "util.h"

/* The id alphabet queue.c documents: digits, capitals but I, L, O, U. */
#define ID_ALPHABET	"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define ID_TIME_LEN	11
#define MSG_BUFSIZE	16384		/* queue.c's write buffer */
#define NIDS		10000
#define NMANY		8
#define NREWRITES	5
#define PATH_SIZE	512

static char			 top[64];	/* every spool of this run */
static char			 spool[128];	/* this test's spool */
static struct event_base	*base;

/*
 * The syncs queue.c makes, counted through the linker (--wrap, see
 * Makefile.am).  A fail_* set to N (from 1) makes the Nth such call fail
 * with EIO, or fail_errno when that is set; fail_sfr set to -1 makes
 * every sync_file_range() fail so.
 */
static int	nsyncfs, nfdatasync, nfsync, nsfr;
static int	fail_syncfs, fail_fdatasync, fail_fsync, fail_sfr, fail_errno;

int	__real_syncfs(int);
int	__real_fdatasync(int);
int	__real_fsync(int);
int	__real_sync_file_range(int, off_t, off_t, unsigned int);
int	__wrap_syncfs(int);
int	__wrap_fdatasync(int);
int	__wrap_fsync(int);
int	__wrap_sync_file_range(int, off_t, off_t, unsigned int);

static int
sync_fails(int n, int fail)
{
	if (fail == -1 || (fail > 0 && n == fail)) {
		errno = fail_errno != 0 ? fail_errno : EIO;
		return 1;
	}
	return 0;
}

int
__wrap_syncfs(int fd)
{
	if (sync_fails(++nsyncfs, fail_syncfs))
		return -1;
	return __real_syncfs(fd);
}

int
__wrap_fdatasync(int fd)
{
	if (sync_fails(++nfdatasync, fail_fdatasync))
		return -1;
	return __real_fdatasync(fd);
}

int
__wrap_fsync(int fd)
{
	if (sync_fails(++nfsync, fail_fsync))
		return -1;
	return __real_fsync(fd);
}

int
__wrap_sync_file_range(int fd, off_t off, off_t len, unsigned int flags)
{
	if (sync_fails(++nsfr, fail_sfr))
		return -1;
	return __real_sync_file_range(fd, off, len, flags);
}

/* What a commit callback saw. */
struct result {
	int	calls;
	int	error;
};

/* What the recovery scan reported. */
struct scan {
	size_t	n;
	struct {
		char	id[QUEUE_ID_SIZE];
		char	sender[64];
		size_t	nrcpts;
		char	rcpt0[64];
		int	held;
	} seen[8];
};

static void
commit_cb(void *arg, int error)
{
	struct result	*r = arg;

	r->calls++;
	r->error = error;
}

static void
scan_cb(const struct envelope *env, int held, void *arg)
{
	struct scan	*sc = arg;

	ck_assert_uint_lt(sc->n, nitems(sc->seen));
	util_strlcpy(sc->seen[sc->n].id, env->id, sizeof sc->seen[sc->n].id);
	util_strlcpy(sc->seen[sc->n].sender, env->sender != NULL ?
	    env->sender : "(null)", sizeof sc->seen[sc->n].sender);
	sc->seen[sc->n].nrcpts = env->nrcpts;
	util_strlcpy(sc->seen[sc->n].rcpt0, env->nrcpts > 0 ?
	    env->rcpts[0].addr : "", sizeof sc->seen[sc->n].rcpt0);
	sc->seen[sc->n].held = held;
	sc->n++;
}

/* A path below this test's spool. */
static void __attribute__((format(printf, 3, 4)))
spath(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(buf, size, "%s/", spool);
	ck_assert(n > 0 && (size_t)n < size);
	va_start(ap, fmt);
	n = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0);
}

/* Which characters of an id name its queue/XX directory. */
#define QDIR_AT		6
#define LAYOUT_MARK	".layout2"

/* Where a committed message of id lives: queue/XX/ID.ext. */
static void
qpath(char *buf, size_t size, const char *top_dir, const char *id,
    const char *ext)
{
	spath(buf, size, "%s/%c%c/%s.%s", top_dir, id[QDIR_AT],
	    id[QDIR_AT + 1], id, ext);
}

static int
exists(const char *path)
{
	struct stat	st;

	return lstat(path, &st) == 0;
}

/* Files (not directories) below path, recursively; -1 if unreadable. */
static int
count_files(const char *path)
{
	DIR		*dp;
	struct dirent	*de;
	struct stat	 st;
	char		 sub[PATH_SIZE];
	int		 n = 0, k;

	if ((dp = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(dp)) != NULL) {
		/* The layout mark in queue/ is the spool's, not a file. */
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, LAYOUT_MARK) == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
			if ((k = count_files(sub)) > 0)
				n += k;
		} else
			n++;
	}
	closedir(dp);
	return n;
}

static int
count_spool(const char *sub)
{
	char	path[PATH_SIZE];

	spath(path, sizeof path, "%s", sub);
	return count_files(path);
}

/* rm -r of a tree this test made. */
static void
remove_tree(int at, const char *name)
{
	DIR		*dp;
	struct dirent	*de;
	int		 fd;

	if (unlinkat(at, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
		return;
	if ((fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)) == -1)
		return;
	if ((dp = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			remove_tree(dirfd(dp), de->d_name);
	}
	closedir(dp);
	unlinkat(at, name, AT_REMOVEDIR);
}

/* A whole file, NUL-terminated, or NULL. */
static char *
read_all(const char *path, size_t *lenp)
{
	struct stat	 st;
	char		*buf;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size &&
	    (n = read(fd, buf + off, (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	buf[off] = '\0';
	*lenp = off;
	return buf;
}

static void
write_all(const char *path, const char *data, size_t len)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_msg(fd != -1, "%s: %s", path, strerror(errno));
	ck_assert_msg(write(fd, data, len) == (ssize_t)len, "%s", path);
	close(fd);
}

/* Same file, same size, not written since before was taken. */
static void
check_untouched(const char *path, const struct stat *before)
{
	struct stat	st;

	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_msg(st.st_ino == before->st_ino &&
	    st.st_size == before->st_size &&
	    st.st_mtim.tv_sec == before->st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == before->st_mtim.tv_nsec,
	    "%s was replaced or changed", path);
}

static void
make_dir(const char *path)
{
	ck_assert_msg(mkdir(path, 0700) == 0 || errno == EEXIST, "%s: %s",
	    path, strerror(errno));
}

/* Message bytes that exercise every octet value, by position and seed. */
static void
fill(char *buf, size_t len, unsigned seed)
{
	uint32_t	x;
	size_t		i;

	for (i = 0; i < len; i++) {
		x = (uint32_t)i * 2654435761u + seed * 40503u;
		x ^= x >> 15;
		buf[i] = (char)(x & 0xff);
	}
}

static void
make_env(struct envelope *env, const char *id, const char *sender,
    const char *const *rcpts, size_t nrcpts, uint64_t size)
{
	size_t	i;

	envelope_init(env);
	util_strlcpy(env->id, id, sizeof env->id);
	env->arrival = env->next_attempt = time(NULL);
	envelope_set_str(&env->sender, sender);
	env->size = size;
	util_strlcpy(env->client_addr, "192.0.2.1", sizeof env->client_addr);
	util_strlcpy(env->helo, "client.example.net", sizeof env->helo);
	util_strlcpy(env->protocol, "ESMTP", sizeof env->protocol);
	for (i = 0; i < nrcpts; i++)
		envelope_add_rcpt(env, rcpts[i]);
}

/* The envelope as envelope_write() puts it, for files made by hand. */
static char *
env_text(const char *id, const char *sender, const char *rcpt, size_t *lenp)
{
	struct envelope	 env;
	char		*text;

	make_env(&env, id, sender, &rcpt, 1, 0);
	ck_assert_int_eq(envelope_write(&env, &text, lenp), 0);
	envelope_clear(&env);
	return text;
}

static void
init_spool(queue_scan_cb cb, void *arg)
{
	char	*cause = NULL;

	ck_assert_msg(queue_init(base, spool, cb, arg, &cause) == 0,
	    "queue_init: %s", cause);
}

/* queue/XX/ID.msg holds exactly want. */
static void
check_msg_file(const char *top_dir, const char *id, const char *want,
    size_t wantlen)
{
	char	 path[PATH_SIZE], *got;
	size_t	 len, i;

	qpath(path, sizeof path, top_dir, id, "msg");
	got = read_all(path, &len);
	ck_assert_msg(got != NULL, "%s: %s", path, strerror(errno));
	ck_assert_msg(len == wantlen, "%s: %zu octets, want %zu", path, len,
	    wantlen);
	for (i = 0; i < len && got[i] == want[i]; i++)
		;
	ck_assert_msg(i == len, "%s: differs at octet %zu", path, i);
	free(got);
}

/* queue/XX/ID.env parses back to this id, sender and recipients. */
static void
check_env_file(const char *top_dir, const char *id, const char *sender,
    const char *const *rcpts, size_t nrcpts)
{
	struct envelope	 env;
	char		 path[PATH_SIZE], *text, *cause = NULL;
	size_t		 len, i;

	qpath(path, sizeof path, top_dir, id, "env");
	text = read_all(path, &len);
	ck_assert_msg(text != NULL, "%s: %s", path, strerror(errno));
	envelope_init(&env);
	ck_assert_msg(envelope_parse(&env, text, len, &cause) == 0,
	    "%s: %s", path, cause);
	ck_assert_str_eq(env.id, id);
	ck_assert_str_eq(env.sender, sender);
	ck_assert_uint_eq(env.nrcpts, nrcpts);
	for (i = 0; i < nrcpts; i++) {
		ck_assert_str_eq(env.rcpts[i].addr, rcpts[i]);
		ck_assert_int_eq(env.rcpts[i].state, ENVELOPE_RCPT_PENDING);
	}
	envelope_clear(&env);
	free(text);
}

/* queue_env_load() of id fails with errno err, and says why. */
static void
check_no_load(const char *id, int err)
{
	struct envelope	 env;
	char		*cause = NULL;

	envelope_init(&env);
	errno = 0;
	ck_assert_int_eq(queue_env_load(id, &env, &cause), -1);
	ck_assert_int_eq(errno, err);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	envelope_clear(&env);
}

/* queue_env_load() of id gives this sender and these recipients. */
static void
check_load(const char *id, const char *sender, const char *const *rcpts,
    size_t nrcpts)
{
	struct envelope	 env;
	char		*cause = NULL;
	size_t		 i;

	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0,
	    "queue_env_load %s: %s", id, cause);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(env.id, id);
	ck_assert_str_eq(env.sender, sender);
	ck_assert_uint_eq(env.nrcpts, nrcpts);
	for (i = 0; i < nrcpts; i++)
		ck_assert_str_eq(env.rcpts[i].addr, rcpts[i]);
	envelope_clear(&env);
}

/* Receive data in one write and ask for its commit. */
static struct queue_commit *
start_commit(char *id, size_t idsize, const char *data, size_t len,
    const char *sender, const char *rcpt, struct result *r)
{
	struct queue_msg	*m;
	struct queue_commit	*c;
	struct envelope		 env;

	m = queue_msg_new(id, idsize);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, data, len), 0);
	make_env(&env, id, sender, &rcpt, 1, len);
	c = queue_msg_commit(m, &env, commit_cb, r);
	envelope_clear(&env);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(r->calls, 0);
	return c;
}

static void
setup(void)
{
	log_init("check_queue", LOG_TARGET_NONE, 0);
	ck_assert(util_snprintf(spool, sizeof spool, "%s/spool.XXXXXX",
	    top) != -1);
	ck_assert_ptr_nonnull(mkdtemp(spool));
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(workpool_init(base, NULL), 0);
}

static void
teardown(void)
{
	workpool_shutdown();
	queue_shutdown();
	event_base_free(base);
	remove_tree(AT_FDCWD, spool);
}

/*
 * Queue ids.
 */

START_TEST(test_id_form)
{
	struct timeval	 before, after;
	char		 id[QUEUE_ID_SIZE];
	uint64_t	 usec = 0, lo, hi;
	size_t		 i;

	init_spool(NULL, NULL);
	gettimeofday(&before, NULL);
	queue_id_new(id, sizeof id);
	gettimeofday(&after, NULL);

	ck_assert_uint_eq(strlen(id), QUEUE_ID_LEN);
	for (i = 0; i < QUEUE_ID_LEN; i++)
		ck_assert_msg(id[i] != '\0' && strchr(ID_ALPHABET, id[i]) !=
		    NULL, "\"%s\": bad character at %zu", id, i);
	ck_assert_int_eq(queue_is_id(id), 1);

	/* The head is microseconds since the epoch, most significant first. */
	for (i = 0; i < ID_TIME_LEN; i++)
		usec = usec * 32 + (uint64_t)(strchr(ID_ALPHABET, id[i]) -
		    ID_ALPHABET);
	lo = (uint64_t)before.tv_sec * 1000000 + (uint64_t)before.tv_usec;
	hi = (uint64_t)after.tv_sec * 1000000 + (uint64_t)after.tv_usec;
	ck_assert_msg(usec >= lo && usec <= hi, "\"%s\": time %llu not in "
	    "[%llu, %llu]", id, (unsigned long long)usec,
	    (unsigned long long)lo, (unsigned long long)hi);
	queue_shutdown();
}
END_TEST

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_id_order)
{
	char	(*ids)[QUEUE_ID_SIZE];
	size_t	 i;

	init_spool(NULL, NULL);
	ids = xcalloc(NIDS, sizeof *ids);
	/* A tight loop: many ids fall in the same microsecond. */
	for (i = 0; i < NIDS; i++)
		queue_id_new(ids[i], sizeof ids[i]);
	for (i = 0; i < NIDS; i++) {
		ck_assert_msg(queue_is_id(ids[i]), "\"%s\"", ids[i]);
		if (i > 0)
			ck_assert_msg(strcmp(ids[i - 1], ids[i]) < 0,
			    "id %zu \"%s\" not after \"%s\"", i, ids[i],
			    ids[i - 1]);
	}
	qsort(ids, NIDS, sizeof *ids, id_cmp);
	for (i = 1; i < NIDS; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0,
		    "\"%s\" given twice", ids[i]);
	free(ids);
	queue_shutdown();
}
END_TEST

START_TEST(test_id_small_buffer)
{
	char	id[QUEUE_ID_LEN];

	init_spool(NULL, NULL);
	queue_id_new(id, sizeof id);
}
END_TEST

static const struct {
	const char	*text;
	int		 want;
} is_ids[] = {
	{ "000000000000000", 1 },
	{ "ZZZZZZZZZZZZZZZ", 1 },
	{ "0123456789ABCDE", 1 },
	{ "1FGHJKMNPQRSTVW", 1 },
	{ "XYZ0123456789AB", 1 },
	{ "", 0 },
	{ "0", 0 },
	{ "0123456789ABCD", 0 },		/* 14 */
	{ "0123456789ABCDEF", 0 },		/* 16 */
	{ "0123456789ABCDE0123456789ABCDE", 0 },
	{ "0123456789abcde", 0 },
	{ "0123456789ABCDe", 0 },
	{ "z23456789ABCDEF", 0 },
	{ "0123456789ABCDI", 0 },		/* I, L, O, U are not used */
	{ "0123456789ABCDL", 0 },
	{ "0123456789ABCDO", 0 },
	{ "0123456789ABCDU", 0 },
	{ "0123456789ABCD-", 0 },
	{ "0123456789ABCD.", 0 },
	{ "0123456789ABCD/", 0 },
	{ "0123456789ABCD ", 0 },
	{ " 123456789ABCDE", 0 },
	{ "0123456789ABCD\n", 0 },
	{ "0123456789ABC\xc3\x89", 0 },
	{ "../../etc/passw", 0 },
	{ "0123456789ABCDE.msg", 0 },
};

START_TEST(test_is_id)
{
	ck_assert_msg(queue_is_id(is_ids[_i].text) == is_ids[_i].want,
	    "\"%s\": want %d", is_ids[_i].text, is_ids[_i].want);
}
END_TEST

/*
 * Receiving and committing.
 */

/* Write sizes around the 16 KiB buffer; a message is their sum. */
static const struct {
	size_t	n;
	size_t	size[8];
} writes[] = {
	{ 1, { 0 } },
	{ 1, { 1 } },
	{ 3, { 5, 0, 7 } },
	{ 1, { MSG_BUFSIZE - 1 } },
	{ 1, { MSG_BUFSIZE } },
	{ 1, { MSG_BUFSIZE + 1 } },
	{ 3, { MSG_BUFSIZE - 1, 1, 1 } },
	{ 2, { MSG_BUFSIZE, MSG_BUFSIZE } },
	{ 7, { 73, 2, 40000, 0, 511, MSG_BUFSIZE, 3 } },
	{ 1, { 5 * MSG_BUFSIZE + 17 } },
	{ 2, { 1, 1000000 } },
};

START_TEST(test_commit)
{
	static const char *const rcpts[] = {
		"bob@example.net", "carol@example.com", "dave@example.org"
	};
	struct queue_msg	*m;
	struct queue_commit	*c;
	struct envelope		 env;
	struct result		 r = { 0, 0 };
	char			 id[QUEUE_ID_SIZE], path[PATH_SIZE];
	char			*data;
	size_t			 i, off, total = 0, nrcpts = 1 + _i % 3;

	for (i = 0; i < writes[_i].n; i++)
		total += writes[_i].size[i];
	data = xmalloc(total + 1);
	fill(data, total, (unsigned)_i);

	init_spool(NULL, NULL);
	ck_assert_uint_eq(queue_count(), 0);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	ck_assert_msg(queue_is_id(id), "\"%s\"", id);
	spath(path, sizeof path, "incoming/%s.msg", id);
	ck_assert_msg(exists(path), "%s missing while receiving", path);

	for (off = 0, i = 0; i < writes[_i].n; i++) {
		ck_assert_int_eq(queue_msg_write(m, data + off,
		    writes[_i].size[i]), 0);
		off += writes[_i].size[i];
		ck_assert_uint_eq(queue_msg_size(m), off);
	}

	make_env(&env, id, "alice@example.org", rcpts, nrcpts, total);
	c = queue_msg_commit(m, &env, commit_cb, &r);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(r.calls, 0);
	/* The envelope was taken at once: the caller may reuse its own. */
	envelope_clear(&env);

	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_msg(r.error == 0, "commit: %s", strerror(r.error));
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);

	check_msg_file("queue", id, data, total);
	check_env_file("queue", id, "alice@example.org", rcpts, nrcpts);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 2);
	ck_assert_uint_eq(queue_count(), 1);
	free(data);
	queue_shutdown();
}
END_TEST

/*
 * With sync workers, commits come back through the loop later, in any
 * number of batches; every one exactly once, all durable and counted.
 */
START_TEST(test_commit_workers)
{
	struct result	 r[NMANY];
	char		 id[NMANY][QUEUE_ID_SIZE], data[NMANY][64];
	char		*cause = NULL;
	size_t		 i, done, rounds;

	init_spool(NULL, NULL);
	ck_assert_msg(workpool_start(3, &cause) == 0, "%s", cause);
	for (i = 0; i < NMANY; i++) {
		r[i].calls = r[i].error = 0;
		snprintf(data[i], sizeof data[i], "Subject: %zu\r\n\r\nbody "
		    "%zu\r\n", i, i);
		start_commit(id[i], sizeof id[i], data[i], strlen(data[i]),
		    "a@example.org", "b@example.net", &r[i]);
		/* Half of them while earlier batches are out. */
		if (i % 2 == 1)
			ck_assert_int_ne(event_base_loop(base,
			    EVLOOP_NONBLOCK), -1);
	}
	for (rounds = 0; rounds < 5000; rounds++) {
		for (done = 0, i = 0; i < NMANY; i++)
			done += r[i].calls;
		if (done == NMANY)
			break;
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	}
	for (i = 0; i < NMANY; i++) {
		ck_assert_msg(r[i].calls == 1, "commit %zu: %d calls", i,
		    r[i].calls);
		ck_assert_int_eq(r[i].error, 0);
		check_msg_file("queue", id[i], data[i], strlen(data[i]));
	}
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_uint_eq(queue_count(), NMANY);
	queue_shutdown();
}
END_TEST

/*
 * spool_sync: commits asked for in one loop iteration are one batch,
 * made durable with one sync per file (and the directories) or with two
 * syncs of the file system in all.  _i: 0 file, 1 filesystem.
 */
START_TEST(test_sync_modes)
{
	struct result	 r[NMANY];
	char		 id[NMANY][QUEUE_ID_SIZE], data[NMANY][64];
	size_t		 i;

	init_spool(NULL, NULL);
	queue_set_sync(_i);
	nsyncfs = nfdatasync = nsfr = fail_syncfs = 0;
	for (i = 0; i < NMANY; i++) {
		r[i].calls = r[i].error = 0;
		snprintf(data[i], sizeof data[i], "Subject: %zu\r\n\r\n", i);
		start_commit(id[i], sizeof id[i], data[i], strlen(data[i]),
		    "a@example.org", "b@example.net", &r[i]);
	}
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	for (i = 0; i < NMANY; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_int_eq(r[i].error, 0);
		check_msg_file("queue", id[i], data[i], strlen(data[i]));
	}
	if (_i) {
		ck_assert_int_eq(nsyncfs, 2);
		ck_assert_int_eq(nfdatasync, 0);
		ck_assert_int_eq(nsfr, 0);
	} else {
		ck_assert_int_eq(nsyncfs, 0);
		ck_assert_int_eq(nfdatasync, 2 * NMANY);
		ck_assert_int_eq(nsfr, 2 * NMANY);
	}
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 2 * NMANY);
	ck_assert_uint_eq(queue_count(), NMANY);
	queue_set_sync(0);
	queue_shutdown();
}
END_TEST

/*
 * A failed sync of the file system fails the whole batch and leaves
 * nothing behind: _i 1, before the renames; _i 2, after them (the
 * entries already in queue/XX/ are taken back).
 */
START_TEST(test_sync_filesystem_fails)
{
	struct result	 r[NMANY];
	char		 id[NMANY][QUEUE_ID_SIZE];
	size_t		 i;

	init_spool(NULL, NULL);
	queue_set_sync(1);
	nsyncfs = nfdatasync = 0;
	fail_syncfs = _i;
	for (i = 0; i < NMANY; i++) {
		r[i].calls = r[i].error = 0;
		start_commit(id[i], sizeof id[i], "x\r\n", 3,
		    "a@example.org", "b@example.net", &r[i]);
	}
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	for (i = 0; i < NMANY; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_int_eq(r[i].error, EIO);
	}
	ck_assert_int_eq(nsyncfs, _i);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_uint_eq(queue_count(), 0);
	fail_syncfs = 0;
	queue_set_sync(0);
	queue_shutdown();
}
END_TEST

/* How many descriptors this process has open. */
static int
count_fds(void)
{
	return count_files("/proc/self/fd");
}

/*
 * spool_sync = file, a call failing in a batch of NMANY commits: which
 * call, which commits fail (a bit each; -1 for those in the first
 * commit's queue/XX directory), and with what.
 */
enum sync_call { SYNC_SFR, SYNC_FDATASYNC, SYNC_FSYNC };
static const struct {
	enum sync_call	call;
	int		n;		/* which call fails, -1 every one */
	int		error;
	int		fails;		/* bit i: commit i fails */
} file_fails[] = {
	{ SYNC_SFR, 1, EIO, 0x01 },		/* content's writeback */
	{ SYNC_SFR, 2, EIO, 0x01 },		/* envelope's */
	{ SYNC_SFR, 5, EINVAL, 0x04 },
	{ SYNC_SFR, 2 * NMANY, EIO, 1 << (NMANY - 1) },
	{ SYNC_SFR, -1, ENOSYS, 0 },		/* no such call: syncs do */
	{ SYNC_FDATASYNC, 1, EIO, 0x01 },	/* content's sync */
	{ SYNC_FDATASYNC, 2, EIO, 0x01 },	/* envelope's */
	{ SYNC_FDATASYNC, 4, EIO, 0x02 },
	{ SYNC_FSYNC, 1, EIO, -1 },		/* directory: all in it */
};

START_TEST(test_sync_file_fails)
{
	struct result	 r[NMANY];
	char		 id[NMANY][QUEUE_ID_SIZE];
	size_t		 i, ok;
	int		 fails, fds;

	init_spool(NULL, NULL);
	queue_set_sync(0);
	nfdatasync = nsfr = nfsync = 0;
	fail_errno = file_fails[_i].error;
	switch (file_fails[_i].call) {
	case SYNC_SFR:
		fail_sfr = file_fails[_i].n;
		break;
	case SYNC_FDATASYNC:
		fail_fdatasync = file_fails[_i].n;
		break;
	case SYNC_FSYNC:
		fail_fsync = file_fails[_i].n;
		break;
	}
	fds = count_fds();
	for (i = 0; i < NMANY; i++) {
		r[i].calls = r[i].error = 0;
		start_commit(id[i], sizeof id[i], "x\r\n", 3,
		    "a@example.org", "b@example.net", &r[i]);
	}
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	fail_sfr = fail_fdatasync = fail_fsync = fail_errno = 0;

	fails = file_fails[_i].fails;
	if (fails == -1) {
		for (fails = 0, i = 0; i < NMANY; i++) {
			if (memcmp(id[i] + 6, id[0] + 6, 2) == 0)
				fails |= 1 << i;
		}
	}
	for (ok = 0, i = 0; i < NMANY; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		if (fails & (1 << i)) {
			ck_assert_msg(r[i].error == file_fails[_i].error,
			    "commit %zu: error %d", i, r[i].error);
			continue;
		}
		ck_assert_msg(r[i].error == 0, "commit %zu: error %d", i,
		    r[i].error);
		check_msg_file("queue", id[i], "x\r\n", 3);
		ok++;
	}
	/* Every envelope was closed, every failed commit removed. */
	if (fails == 0)
		ck_assert_int_eq(nfdatasync, 2 * NMANY);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 2 * ok);
	ck_assert_uint_eq(queue_count(), ok);
	queue_shutdown();
}
END_TEST

/* Commits still out when the queue shuts down are finished, called back. */
START_TEST(test_commit_workers_shutdown)
{
	struct result	 r[NMANY];
	char		 id[NMANY][QUEUE_ID_SIZE];
	char		*cause = NULL;
	size_t		 i;

	init_spool(NULL, NULL);
	ck_assert_msg(workpool_start(2, &cause) == 0, "%s", cause);
	for (i = 0; i < NMANY; i++) {
		r[i].calls = r[i].error = 0;
		start_commit(id[i], sizeof id[i], "x\r\n", 3,
		    "a@example.org", "b@example.net", &r[i]);
		ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	}
	workpool_shutdown();
	queue_shutdown();
	for (i = 0; i < NMANY; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_int_eq(r[i].error, 0);
		check_msg_file("queue", id[i], "x\r\n", 3);
	}
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 2 * NMANY);
}
END_TEST

/* Commits asked for before the loop runs complete in one pass. */
START_TEST(test_commit_many)
{
	struct queue_msg	*m[NMANY];
	struct result		 r[NMANY];
	struct envelope		 env;
	char			 id[NMANY][QUEUE_ID_SIZE], sender[64];
	char			 rcpt[64], *data[NMANY];
	const char		*rp = rcpt;
	size_t			 len[NMANY], off[NMANY], i, j, n;

	init_spool(NULL, NULL);
	for (i = 0; i < NMANY; i++) {
		m[i] = queue_msg_new(id[i], sizeof id[i]);
		ck_assert_ptr_nonnull(m[i]);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(id[j], id[i]);
		len[i] = 1000 + i * 7919;
		data[i] = xmalloc(len[i]);
		fill(data[i], len[i], 100 + (unsigned)i);
		off[i] = 0;
		r[i].calls = r[i].error = 0;
	}
	/* Interleaved writes of several sizes, as concurrent sessions do. */
	for (j = 0; j < 64; j++) {
		for (i = 0; i < NMANY; i++) {
			n = 1 + (i * 31 + j * 977) % 3000;
			if (n > len[i] - off[i])
				n = len[i] - off[i];
			ck_assert_int_eq(queue_msg_write(m[i], data[i] + off[i],
			    n), 0);
			off[i] += n;
		}
	}
	for (i = 0; i < NMANY; i++)
		ck_assert_uint_eq(off[i], len[i]);

	/* Asked for in reverse order of reception. */
	for (i = NMANY; i-- > 0; ) {
		snprintf(sender, sizeof sender, "s%zu@example.org", i);
		snprintf(rcpt, sizeof rcpt, "r%zu@example.net", i);
		make_env(&env, id[i], sender, &rp, 1, len[i]);
		ck_assert_ptr_nonnull(queue_msg_commit(m[i], &env, commit_cb,
		    &r[i]));
		envelope_clear(&env);
	}
	for (i = 0; i < NMANY; i++)
		ck_assert_int_eq(r[i].calls, 0);

	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	for (i = 0; i < NMANY; i++) {
		ck_assert_msg(r[i].calls == 1, "commit %zu: %d calls", i,
		    r[i].calls);
		ck_assert_msg(r[i].error == 0, "commit %zu: %s", i,
		    strerror(r[i].error));
	}
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	for (i = 0; i < NMANY; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		snprintf(sender, sizeof sender, "s%zu@example.org", i);
		snprintf(rcpt, sizeof rcpt, "r%zu@example.net", i);
		check_msg_file("queue", id[i], data[i], len[i]);
		check_env_file("queue", id[i], sender, &rp, 1);
		free(data[i]);
	}
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 2 * NMANY);
	ck_assert_uint_eq(queue_count(), NMANY);
	queue_shutdown();
}
END_TEST

START_TEST(test_abort)
{
	struct queue_msg	*m;
	struct result		 r = { 0, 0 };
	char			 id[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char			 path[PATH_SIZE], data[3 * MSG_BUFSIZE];

	fill(data, sizeof data, 7);
	init_spool(NULL, NULL);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, data, sizeof data), 0);
	spath(path, sizeof path, "incoming/%s.msg", id);
	ck_assert(exists(path));
	queue_msg_abort(m);
	queue_msg_abort(NULL);

	ck_assert_msg(!exists(path), "%s left behind", path);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_uint_eq(queue_count(), 0);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(count_spool("queue"), 0);

	/* The spool still takes mail afterwards. */
	start_commit(id2, sizeof id2, data, 100, "a@example.org",
	    "b@example.net", &r);
	ck_assert_str_ne(id, id2);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.error, 0);
	check_msg_file("queue", id2, data, 100);
	ck_assert_uint_eq(queue_count(), 1);
	queue_shutdown();
}
END_TEST

/* A cancelled commit stays silent but still happens. */
START_TEST(test_cancel)
{
	static const char *const rcpt = "b@example.net";
	struct queue_commit	*c;
	struct result		 r1 = { 0, 0 }, r2 = { 0, 0 };
	char			 id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char			 data[1000];

	fill(data, sizeof data, 3);
	init_spool(NULL, NULL);
	c = start_commit(id1, sizeof id1, data, sizeof data, "a@example.org",
	    rcpt, &r1);
	start_commit(id2, sizeof id2, data, 500, "c@example.org", rcpt, &r2);
	queue_commit_cancel(c);

	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r1.calls, 0);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(r2.error, 0);
	check_msg_file("queue", id1, data, sizeof data);
	check_env_file("queue", id1, "a@example.org", &rcpt, 1);
	check_msg_file("queue", id2, data, 500);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_uint_eq(queue_count(), 2);
	queue_shutdown();
}
END_TEST

/* Commits still waiting at shutdown were promised: they complete. */
START_TEST(test_shutdown_completes)
{
	static const char *const rcpt = "b@example.net";
	struct result	r = { 0, 0 };
	char		id[QUEUE_ID_SIZE], data[300];

	fill(data, sizeof data, 11);
	init_spool(NULL, NULL);
	start_commit(id, sizeof id, data, sizeof data, "a@example.org", rcpt,
	    &r);
	queue_shutdown();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.error, 0);
	check_msg_file("queue", id, data, sizeof data);
	check_env_file("queue", id, "a@example.org", &rcpt, 1);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
}
END_TEST

/*
 * An envelope that cannot be written (envelope_write() refuses one
 * without recipients) fails the commit, and leaves nothing behind.
 */
START_TEST(test_commit_bad_envelope)
{
	struct queue_msg	*m;
	struct envelope		 env;
	struct result		 r = { 0, 0 };
	char			 id[QUEUE_ID_SIZE], data[100];

	fill(data, sizeof data, 19);
	init_spool(NULL, NULL);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, data, sizeof data), 0);
	make_env(&env, id, "a@example.org", NULL, 0, sizeof data);
	ck_assert_ptr_nonnull(queue_msg_commit(m, &env, commit_cb, &r));
	envelope_clear(&env);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ne(r.error, 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_msg(count_spool("incoming") == 0, "incoming/ keeps %d "
	    "files after a failed commit", count_spool("incoming"));
	ck_assert_uint_eq(queue_count(), 0);
	queue_shutdown();
}
END_TEST

START_TEST(test_commit_wrong_envelope)
{
	static const char *const rcpt = "b@example.net";
	struct queue_msg	*m;
	struct envelope		 env;
	struct result		 r = { 0, 0 };
	char			 id[QUEUE_ID_SIZE];

	init_spool(NULL, NULL);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	make_env(&env, "000000000000000", "a@example.org", &rcpt, 1, 0);
	queue_msg_commit(m, &env, commit_cb, &r);
}
END_TEST

/*
 * Recovery.
 */

#define NPREP	2

static const char *const prep_rcpt = "rcpt@example.net";

static void
prep_body(char *buf, size_t size, size_t i)
{
	snprintf(buf, size, "Subject: message %zu\r\n\r\nbody %zu\r\n", i, i);
}

/* Child side of prepare(): 0 on success. */
static int
prepare_child(int fd)
{
	struct event_base	*b;
	struct queue_msg	*m;
	struct envelope		 env;
	struct result		 r[NPREP];
	char			 ids[NPREP][QUEUE_ID_SIZE], body[128];
	char			 sender[64], *cause = NULL;
	size_t			 i;

	if ((b = event_base_new()) == NULL)
		return 2;
	if (queue_init(b, spool, NULL, NULL, &cause) == -1)
		return 3;
	for (i = 0; i < NPREP; i++) {
		r[i].calls = r[i].error = 0;
		if ((m = queue_msg_new(ids[i], sizeof ids[i])) == NULL)
			return 4;
		prep_body(body, sizeof body, i);
		if (queue_msg_write(m, body, strlen(body)) == -1)
			return 5;
		snprintf(sender, sizeof sender, "sender%zu@example.org", i);
		make_env(&env, ids[i], sender, &prep_rcpt, 1, strlen(body));
		queue_msg_commit(m, &env, commit_cb, &r[i]);
		envelope_clear(&env);
	}
	event_base_loop(b, EVLOOP_NONBLOCK);
	for (i = 0; i < NPREP; i++) {
		if (r[i].calls != 1 || r[i].error != 0)
			return 6;
	}
	queue_shutdown();
	event_base_free(b);
	if (write(fd, ids, sizeof ids) != (ssize_t)sizeof ids)
		return 7;
	return 0;
}

/*
 * Commit NPREP messages with a queue_init/commit/shutdown cycle of its
 * own, in a child process so that this one starts recovery afresh.
 */
static void
prepare(char ids[NPREP][QUEUE_ID_SIZE])
{
	pid_t	pid;
	int	p[2], status;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(p[0]);
		_exit(prepare_child(p[1]));
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], ids, NPREP * (QUEUE_ID_LEN + 1)),
	    NPREP * (QUEUE_ID_LEN + 1));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "preparing child failed: status %d", status);
}

/* Hand-made ids; XX is characters 7 and 8. */
#define ID_ORPHAN	"000000AB0000001"	/* .msg, no .env */
#define ID_GARBAGE	"000000AB0000002"	/* .env does not parse */
#define ID_NOMSG	"000000CD0000003"	/* .env, no .msg */
#define ID_OTHER	"000000CD0000004"	/* .env names another id */
#define ID_NAMED	"000000CD0000009"
#define ID_EMPTY	"000000EF0000005"	/* .env is empty */
#define ID_TMP		"000000EF0000006"	/* .env.tmp */
#define ID_TMP2		"000000EF0000007"	/* .tmp */
#define ID_INCOMING	"000000GH0000008"	/* whole pair in incoming/ */
#define ID_HOLDBAD	"000000JK000000A"	/* garbage in hold/ */

static const struct {
	const char	*id;
	const char	*ext;
} gone_to_corrupt[] = {
	{ ID_GARBAGE, "env" }, { ID_GARBAGE, "msg" },
	{ ID_NOMSG, "env" },
	{ ID_OTHER, "env" }, { ID_OTHER, "msg" },
	{ ID_EMPTY, "env" }, { ID_EMPTY, "msg" },
};

static const char garbage[] = "this is not an envelope\n\x01\x02\n";

START_TEST(test_recovery)
{
	struct stat	 before[2 * NPREP];
	struct scan	 sc;
	char		 ids[NPREP][QUEUE_ID_SIZE], path[PATH_SIZE];
	char		 body[128], *text, *got;
	size_t		 i, j, len, found;

	prepare(ids);
	for (i = 0; i < NPREP; i++)
		ck_assert_msg(queue_is_id(ids[i]), "\"%.15s\"", ids[i]);

	/* The second one is held: a person moved it to hold/XX/. */
	spath(path, sizeof path, "hold/%c%c", ids[1][QDIR_AT],
	    ids[1][QDIR_AT + 1]);
	make_dir(path);
	for (j = 0; j < 2; j++) {
		char	from[PATH_SIZE], to[PATH_SIZE];

		qpath(from, sizeof from, "queue", ids[1], j ? "msg" : "env");
		qpath(to, sizeof to, "hold", ids[1], j ? "msg" : "env");
		ck_assert_int_eq(rename(from, to), 0);
	}
	for (i = 0; i < NPREP; i++) {
		qpath(path, sizeof path, i ? "hold" : "queue", ids[i], "env");
		ck_assert_int_eq(stat(path, &before[2 * i]), 0);
		qpath(path, sizeof path, i ? "hold" : "queue", ids[i], "msg");
		ck_assert_int_eq(stat(path, &before[2 * i + 1]), 0);
	}

	/* incoming/: never acknowledged, whatever it holds. */
	spath(path, sizeof path, "incoming/junk");
	write_all(path, "junk", 4);
	spath(path, sizeof path, "incoming/%s.msg", ID_INCOMING);
	write_all(path, "x", 1);
	text = env_text(ID_INCOMING, "a@example.org", "b@example.net", &len);
	spath(path, sizeof path, "incoming/%s.env", ID_INCOMING);
	write_all(path, text, len);
	free(text);

	spath(path, sizeof path, "queue/AB");
	make_dir(path);
	spath(path, sizeof path, "queue/CD");
	make_dir(path);
	spath(path, sizeof path, "queue/EF");
	make_dir(path);
	spath(path, sizeof path, "hold/JK");
	make_dir(path);

	qpath(path, sizeof path, "queue", ID_ORPHAN, "msg");
	write_all(path, "orphan", 6);
	qpath(path, sizeof path, "queue", ID_GARBAGE, "env");
	write_all(path, garbage, sizeof garbage - 1);
	qpath(path, sizeof path, "queue", ID_GARBAGE, "msg");
	write_all(path, "garbage's content", 17);
	text = env_text(ID_NOMSG, "a@example.org", "b@example.net", &len);
	qpath(path, sizeof path, "queue", ID_NOMSG, "env");
	write_all(path, text, len);
	free(text);
	text = env_text(ID_NAMED, "a@example.org", "b@example.net", &len);
	qpath(path, sizeof path, "queue", ID_OTHER, "env");
	write_all(path, text, len);
	free(text);
	qpath(path, sizeof path, "queue", ID_OTHER, "msg");
	write_all(path, "other", 5);
	qpath(path, sizeof path, "queue", ID_EMPTY, "env");
	write_all(path, "", 0);
	qpath(path, sizeof path, "queue", ID_EMPTY, "msg");
	write_all(path, "empty", 5);
	qpath(path, sizeof path, "queue", ID_TMP, "env.tmp");
	write_all(path, "half", 4);
	qpath(path, sizeof path, "queue", ID_TMP2, "tmp");
	write_all(path, "half", 4);
	spath(path, sizeof path, "queue/EF/README");
	write_all(path, "a person's note", 15);
	qpath(path, sizeof path, "hold", ID_HOLDBAD, "env");
	write_all(path, garbage, sizeof garbage - 1);
	qpath(path, sizeof path, "hold", ID_HOLDBAD, "msg");
	write_all(path, "held garbage", 12);

	memset(&sc, 0, sizeof sc);
	init_spool(scan_cb, &sc);

	ck_assert_int_eq(count_spool("incoming"), 0);
	qpath(path, sizeof path, "queue", ID_ORPHAN, "msg");
	ck_assert_msg(!exists(path), "%s kept", path);
	qpath(path, sizeof path, "queue", ID_TMP, "env.tmp");
	ck_assert_msg(!exists(path), "%s kept", path);
	qpath(path, sizeof path, "queue", ID_TMP2, "tmp");
	ck_assert_msg(!exists(path), "%s kept", path);
	spath(path, sizeof path, "queue/EF/README");
	ck_assert_msg(exists(path), "%s removed", path);

	for (i = 0; i < nitems(gone_to_corrupt); i++) {
		qpath(path, sizeof path, "queue", gone_to_corrupt[i].id,
		    gone_to_corrupt[i].ext);
		ck_assert_msg(!exists(path), "%s still in queue/", path);
		spath(path, sizeof path, "corrupt/%s.%s",
		    gone_to_corrupt[i].id, gone_to_corrupt[i].ext);
		ck_assert_msg(exists(path), "%s missing", path);
	}
	spath(path, sizeof path, "corrupt/%s.env", ID_HOLDBAD);
	ck_assert_msg(exists(path), "%s missing", path);
	spath(path, sizeof path, "corrupt/%s.msg", ID_HOLDBAD);
	ck_assert_msg(exists(path), "%s missing", path);
	ck_assert_int_eq(count_spool("corrupt"), 9);
	ck_assert_int_eq(count_spool("hold"), 2);
	ck_assert_int_eq(count_spool("queue"), 3);

	/* Set aside as they were, for a person to read. */
	spath(path, sizeof path, "corrupt/%s.env", ID_GARBAGE);
	got = read_all(path, &len);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(len, sizeof garbage - 1);
	ck_assert(memcmp(got, garbage, len) == 0);
	free(got);

	/* Committed messages: untouched, each reported once. */
	for (i = 0; i < NPREP; i++) {
		const char	*where = i ? "hold" : "queue";
		char		 sender[64];

		qpath(path, sizeof path, where, ids[i], "env");
		check_untouched(path, &before[2 * i]);
		qpath(path, sizeof path, where, ids[i], "msg");
		check_untouched(path, &before[2 * i + 1]);
		prep_body(body, sizeof body, i);
		check_msg_file(where, ids[i], body, strlen(body));
		snprintf(sender, sizeof sender, "sender%zu@example.org", i);
		check_env_file(where, ids[i], sender, &prep_rcpt, 1);

		found = 0;
		for (j = 0; j < sc.n; j++) {
			if (strcmp(sc.seen[j].id, ids[i]) != 0)
				continue;
			found++;
			ck_assert_str_eq(sc.seen[j].sender, sender);
			ck_assert_uint_eq(sc.seen[j].nrcpts, 1);
			ck_assert_str_eq(sc.seen[j].rcpt0, prep_rcpt);
			ck_assert_msg(sc.seen[j].held == (i != 0),
			    "%s in %s/ reported with held %d", ids[i], where,
			    sc.seen[j].held);
		}
		ck_assert_msg(found == 1, "%s reported %zu times", ids[i],
		    found);
	}
	ck_assert_uint_eq(sc.n, NPREP);
	ck_assert_uint_eq(queue_count(), NPREP);

	/* The read functions find a held message too. */
	check_load(ids[0], "sender0@example.org", &prep_rcpt, 1);
	check_load(ids[1], "sender1@example.org", &prep_rcpt, 1);
	check_no_load(ID_ORPHAN, ENOENT);
	queue_shutdown();
}
END_TEST

/* A recovered queue/XX takes new commits, and a scan may have no cb. */
START_TEST(test_recovery_then_commit)
{
	char		ids[NPREP][QUEUE_ID_SIZE], id[QUEUE_ID_SIZE];
	char		data[200];
	struct result	r = { 0, 0 };

	prepare(ids);
	init_spool(NULL, NULL);
	ck_assert_uint_eq(queue_count(), NPREP);
	fill(data, sizeof data, 5);
	start_commit(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net", &r);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.error, 0);
	check_msg_file("queue", id, data, sizeof data);
	ck_assert_uint_eq(queue_count(), NPREP + 1);
	ck_assert_int_eq(count_spool("queue"), 2 * (NPREP + 1));
	queue_shutdown();
}
END_TEST

static int	scan_finished;

static void
scan_done(void *arg)
{
	scan_finished = 1;
	event_base_loopbreak(base);
}

/*
 * Descriptors run out while the deferred scan reads, with _i to spare:
 * none (queue/XX cannot be opened) or one (an envelope in it cannot
 * be).  The scan waits and reads that directory again once they are
 * back: every message reported, none twice.
 */
START_TEST(test_scan_short_of_descriptors)
{
	char		ids[NPREP][QUEUE_ID_SIZE];
	struct scan	sc;
	struct rlimit	rl;
	struct timeval	tv = { 0, 300000 }, limit = { 20, 0 };
	int		fds[64];
	size_t		nfds = 0, i;

	prepare(ids);
	queue_defer_scan();
	init_spool(NULL, NULL);
	ck_assert_uint_eq(queue_count(), 0);

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = (rlim_t)fcntl(0, F_DUPFD, 0) + 32;
	close((int)rl.rlim_cur - 32);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (nfds < nitems(fds) &&
	    (fds[nfds] = open("/dev/null", O_RDONLY)) != -1)
		nfds++;
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_uint_ge(nfds, (size_t)_i);
	for (i = 0; i < (size_t)_i; i++)
		close(fds[--nfds]);

	memset(&sc, 0, sizeof sc);
	scan_finished = 0;
	queue_scan_start(scan_cb, scan_done, &sc);
	ck_assert_int_eq(event_base_loopexit(base, &tv), 0);
	ck_assert_int_ne(event_base_dispatch(base), -1);
	ck_assert_msg(!scan_finished && queue_scan_running(),
	    "the scan ended with %d descriptors to spare", _i);
	ck_assert_uint_eq(sc.n, 0);

	while (nfds > 0)
		close(fds[--nfds]);
	ck_assert_int_eq(event_base_loopexit(base, &limit), 0);
	ck_assert_int_ne(event_base_dispatch(base), -1);
	ck_assert_msg(scan_finished, "the scan did not end");
	ck_assert_uint_eq(sc.n, NPREP);
	ck_assert_uint_eq(queue_count(), NPREP);
	for (i = 0; i < NPREP; i++)
		ck_assert_msg(strcmp(sc.seen[0].id, ids[i]) == 0 ||
		    strcmp(sc.seen[1].id, ids[i]) == 0, "%s not reported",
		    ids[i]);
	queue_scan_stop();
	queue_shutdown();
}
END_TEST

/*
 * One module, opened again in the same process: nothing of the first
 * spool may carry over.
 */
START_TEST(test_reinit_count)
{
	struct result	 r = { 0, 0 };
	struct scan	 sc;
	char		 id[QUEUE_ID_SIZE], data[100];

	fill(data, sizeof data, 9);
	init_spool(NULL, NULL);
	start_commit(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net", &r);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.error, 0);
	ck_assert_uint_eq(queue_count(), 1);
	queue_shutdown();

	memset(&sc, 0, sizeof sc);
	init_spool(scan_cb, &sc);
	ck_assert_uint_eq(sc.n, 1);
	ck_assert_str_eq(sc.seen[0].id, id);
	ck_assert_msg(queue_count() == 1, "queue_count() %zu after re-open, "
	    "spool holds 1", queue_count());
	queue_shutdown();
}
END_TEST

START_TEST(test_reinit_other_spool)
{
	struct result	 r = { 0, 0 };
	char		 path[PATH_SIZE], name[3], id[QUEUE_ID_SIZE];
	char		 first[sizeof spool], data[100];
	size_t		 a, b;

	/* A first spool whose queue/ has every XX directory. */
	for (a = 0; a < 32; a++) {
		for (b = 0; b < 32; b++) {
			if (a == 0 && b == 0) {
				spath(path, sizeof path, "queue");
				make_dir(path);
			}
			name[0] = ID_ALPHABET[a];
			name[1] = ID_ALPHABET[b];
			name[2] = '\0';
			spath(path, sizeof path, "queue/%s", name);
			make_dir(path);
		}
	}
	init_spool(NULL, NULL);
	queue_shutdown();

	/* A second, empty one in the same process. */
	util_strlcpy(first, spool, sizeof first);
	ck_assert(util_snprintf(spool, sizeof spool, "%s/spool.XXXXXX",
	    top) != -1);
	ck_assert_ptr_nonnull(mkdtemp(spool));
	init_spool(NULL, NULL);
	fill(data, sizeof data, 13);
	start_commit(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net", &r);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_msg(r.error == 0, "commit in a second spool: %s",
	    strerror(r.error));
	check_msg_file("queue", id, data, sizeof data);
	queue_shutdown();
	remove_tree(AT_FDCWD, first);
}
END_TEST

/*
 * The lock: one daemon per spool.
 */

/* queue_init() in a child: its exit status, and its cause in buf. */
static int
init_in_child(char *buf, size_t size)
{
	pid_t	 pid;
	ssize_t	 n;
	char	*cause = NULL;
	int	 p[2], status, rc;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(p[0]);
		rc = queue_init(NULL, spool, NULL, NULL, &cause);
		if (rc == -1 && cause != NULL &&
		    write(p[1], cause, strlen(cause)) == -1)
			_exit(2);
		if (rc == 0)
			queue_shutdown();
		_exit(rc == 0 ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(test_lock)
{
	char	cause[1024];

	init_spool(NULL, NULL);
	ck_assert_msg(init_in_child(cause, sizeof cause) == 1,
	    "second queue_init on a spool in use succeeded");
	ck_assert_msg(strstr(cause, "in use") != NULL, "cause \"%s\"", cause);
	ck_assert_msg(strstr(cause, spool) != NULL, "cause \"%s\"", cause);
	queue_shutdown();

	ck_assert_msg(init_in_child(cause, sizeof cause) == 0,
	    "queue_init after the first stopped: %s", cause);
	init_spool(NULL, NULL);
	queue_shutdown();
}
END_TEST

/*
 * A disk that refuses writes: files may not grow past FSIZE_LIMIT
 * octets (RLIMIT_FSIZE, SIGXFSZ ignored, so write(2) says EFBIG).
 */
#define FSIZE_LIMIT	(MSG_BUFSIZE + 3616)

static const struct {
	size_t	len;
	int	write_fails;	/* queue_msg_write() itself fails */
	int	abort;		/* then queue_msg_abort(), not commit */
} full[] = {
	{ 3 * MSG_BUFSIZE, 1, 0 },	/* fails while receiving */
	{ 3 * MSG_BUFSIZE, 1, 1 },
	{ MSG_BUFSIZE + 8000, 0, 0 },	/* fails on the commit's flush */
	{ 10 * MSG_BUFSIZE, 1, 0 },
};

START_TEST(test_write_error)
{
	struct queue_msg	*m;
	struct envelope		 env;
	struct rlimit		 old, rl;
	struct result		 r = { 0, 0 };
	const char		*rcpt = "b@example.net";
	char			 id[QUEUE_ID_SIZE], *data;
	size_t			 off, n;
	int			 rc = 0, saved = 0;

	data = xmalloc(full[_i].len);
	fill(data, full[_i].len, 17);
	init_spool(NULL, NULL);
	ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = FSIZE_LIMIT;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	for (off = 0; off < full[_i].len && rc == 0; off += n) {
		n = full[_i].len - off < 5000 ? full[_i].len - off : 5000;
		if ((rc = queue_msg_write(m, data + off, n)) == -1)
			saved = errno;
	}
	if (full[_i].abort)
		queue_msg_abort(m);
	else {
		make_env(&env, id, "a@example.org", &rcpt, 1, full[_i].len);
		ck_assert_ptr_nonnull(queue_msg_commit(m, &env, commit_cb,
		    &r));
		envelope_clear(&env);
		ck_assert_int_eq(r.calls, 0);
		ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	}
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

	if (full[_i].write_fails) {
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(saved == EFBIG, "write: %s", strerror(saved));
	} else
		ck_assert_int_eq(rc, 0);
	if (!full[_i].abort) {
		ck_assert_int_eq(r.calls, 1);
		ck_assert_msg(r.error == EFBIG, "commit callback error %d (%s)",
		    r.error, strerror(r.error));
	}
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_uint_eq(queue_count(), 0);

	/* With room again, the next message commits. */
	memset(&r, 0, sizeof r);
	start_commit(id, sizeof id, data, full[_i].len, "a@example.org",
	    rcpt, &r);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.error, 0);
	check_msg_file("queue", id, data, full[_i].len);
	ck_assert_uint_eq(queue_count(), 1);
	free(data);
	queue_shutdown();
}
END_TEST

/*
 * Delivery: loading and rewriting an envelope, reading the content,
 * removing a message.
 */

/* Commit data at once, as start_commit() and one loop pass. */
static void
commit_now(char *id, size_t idsize, const char *data, size_t len,
    const char *sender, const char *rcpt)
{
	struct result	r = { 0, 0 };

	start_commit(id, idsize, data, len, sender, rcpt, &r);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_msg(r.error == 0, "commit: %s", strerror(r.error));
}

START_TEST(test_env_load)
{
	static const char *const rcpts[] = {
		"bob@example.net", "carol@example.com"
	};
	struct queue_msg	*m;
	struct envelope		 env, got;
	struct result		 r = { 0, 0 };
	char			 id[QUEUE_ID_SIZE], *cause = NULL;
	char			 data[500];

	fill(data, sizeof data, 23);
	init_spool(NULL, NULL);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, data, sizeof data), 0);
	make_env(&env, id, "alice@example.org", rcpts, 2, sizeof data);
	env.rcpts[1].notify = ENVELOPE_NOTIFY_FAILURE;
	ck_assert_ptr_nonnull(queue_msg_commit(m, &env, commit_cb, &r));
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.error, 0);

	envelope_init(&got);
	ck_assert_msg(queue_env_load(id, &got, &cause) == 0, "%s", cause);
	ck_assert_str_eq(got.id, id);
	ck_assert_str_eq(got.sender, "alice@example.org");
	ck_assert_int_eq(got.arrival, env.arrival);
	ck_assert_uint_eq(got.size, sizeof data);
	ck_assert_str_eq(got.client_addr, "192.0.2.1");
	ck_assert_str_eq(got.helo, "client.example.net");
	ck_assert_uint_eq(got.nrcpts, 2);
	ck_assert_str_eq(got.rcpts[0].addr, rcpts[0]);
	ck_assert_str_eq(got.rcpts[1].addr, rcpts[1]);
	ck_assert_int_eq(got.rcpts[1].notify, ENVELOPE_NOTIFY_FAILURE);
	ck_assert_int_eq(got.rcpts[0].state, ENVELOPE_RCPT_PENDING);
	envelope_clear(&got);
	envelope_clear(&env);
	queue_shutdown();
}
END_TEST

/* What cannot be loaded: each fails with a cause and a clear envelope. */
static const struct {
	const char	*id;
	const char	*env;		/* file made by hand, or NULL */
	int		 error;
	const char	*cause;		/* part of the cause */
} bad_loads[] = {
	{ "000000000AB0001", NULL, ENOENT, "No such file" },
	{ "000000000AB0002", "this is not an envelope\n", EINVAL, "line 1" },
	{ "000000000AB0003", "", EINVAL, "empty" },
	{ "000000000AB0004", "(other id)", EINVAL, "another id" },
	{ "000000000AB000", NULL, EINVAL, "not a queue id" },
	{ "../queue/AB/000000000AB0005", NULL, EINVAL, "not a queue id" },
};

START_TEST(test_env_load_fails)
{
	struct envelope	 env;
	char		 path[PATH_SIZE], *text, *cause = NULL;
	const char	*id = bad_loads[_i].id;
	size_t		 len;

	init_spool(NULL, NULL);
	if (bad_loads[_i].env != NULL) {
		qpath(path, sizeof path, "queue", id, "msg");
		write_all(path, "content", 7);
		qpath(path, sizeof path, "queue", id, "env");
		if (strcmp(bad_loads[_i].env, "(other id)") == 0) {
			text = env_text("000000000AB0009", "a@example.org",
			    "b@example.net", &len);
			write_all(path, text, len);
			free(text);
		} else
			write_all(path, bad_loads[_i].env,
			    strlen(bad_loads[_i].env));
	}
	envelope_init(&env);
	errno = 0;
	ck_assert_int_eq(queue_env_load(id, &env, &cause), -1);
	ck_assert_msg(errno == bad_loads[_i].error, "%s: errno %d (%s)", id,
	    errno, strerror(errno));
	ck_assert_ptr_nonnull(cause);
	ck_assert_msg(strstr(cause, bad_loads[_i].cause) != NULL,
	    "%s: cause \"%s\"", id, cause);
	ck_assert_ptr_null(env.sender);
	ck_assert_uint_eq(env.nrcpts, 0);
	envelope_clear(&env);
	free(cause);
	queue_shutdown();
}
END_TEST

/* The delivery results of a first attempt, as delivery records them. */
static void
attempt_results(struct envelope *env, time_t next)
{
	env->tries = 1;
	env->next_attempt = next;
	envelope_set_str(&env->last_error, "451 4.7.1 Try again later");
	env->rcpts[0].state = ENVELOPE_RCPT_SENT;
	util_strlcpy(env->rcpts[0].status, "2.0.0",
	    sizeof env->rcpts[0].status);
	envelope_set_str(&env->rcpts[0].relay,
	    "mx.example.net[198.51.100.3]:25");
	util_strlcpy(env->rcpts[1].status, "4.7.1",
	    sizeof env->rcpts[1].status);
	envelope_set_str(&env->rcpts[1].error, "451 4.7.1 Try again later");
}

START_TEST(test_env_update)
{
	static const char *const rcpts[] = {
		"bob@example.net", "carol@example.com"
	};
	struct envelope	 env;
	struct stat	 envst, msgst, st;
	char		 id[QUEUE_ID_SIZE], path[PATH_SIZE], tmp[PATH_SIZE];
	char		 data[300], *cause = NULL;
	time_t		 next = time(NULL) + 3600;

	fill(data, sizeof data, 29);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, sizeof data, "alice@example.org",
	    rcpts[0]);
	/* A second recipient, written by hand, so both states show. */
	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	envelope_add_rcpt(&env, rcpts[1]);
	ck_assert_int_eq(queue_env_update(&env), 0);
	check_load(id, "alice@example.org", rcpts, 2);

	qpath(path, sizeof path, "queue", id, "env");
	qpath(tmp, sizeof tmp, "queue", id, "env.tmp");
	ck_assert_int_eq(stat(path, &envst), 0);
	qpath(path, sizeof path, "queue", id, "msg");
	ck_assert_int_eq(stat(path, &msgst), 0);
	/* A temporary file left by a rewrite that did not finish. */
	write_all(tmp, "half", 4);

	attempt_results(&env, next);
	ck_assert_int_eq(queue_env_update(&env), 0);
	envelope_clear(&env);
	ck_assert_msg(!exists(tmp), "%s left behind", tmp);
	qpath(path, sizeof path, "queue", id, "env");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(st.st_ino != envst.st_ino, "envelope written in place");
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	qpath(path, sizeof path, "queue", id, "msg");
	check_untouched(path, &msgst);
	check_msg_file("queue", id, data, sizeof data);
	ck_assert_int_eq(count_spool("queue"), 2);
	ck_assert_uint_eq(queue_count(), 1);

	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(env.tries, 1);
	ck_assert_int_eq(env.next_attempt, next);
	ck_assert_str_eq(env.last_error, "451 4.7.1 Try again later");
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_int_eq(env.rcpts[0].state, ENVELOPE_RCPT_SENT);
	ck_assert_str_eq(env.rcpts[0].status, "2.0.0");
	ck_assert_str_eq(env.rcpts[0].relay, "mx.example.net[198.51.100.3]:25");
	ck_assert_int_eq(env.rcpts[1].state, ENVELOPE_RCPT_PENDING);
	ck_assert_str_eq(env.rcpts[1].status, "4.7.1");
	ck_assert_str_eq(env.rcpts[1].error, "451 4.7.1 Try again later");
	envelope_clear(&env);
	queue_shutdown();
}
END_TEST

/*
 * A rewrite that fails leaves the old envelope as it was and no
 * temporary file: a disk that refuses to grow a file past FSIZE_LIMIT
 * (the tests run as root, so permissions would not stop them), an
 * envelope envelope_write() refuses, a message already removed, and a
 * rename refused.
 */
#define ENV_FSIZE_LIMIT	512

/* What an envelope rewrite called back with. */
struct rewrite_result {
	int	calls;
	int	error;
	int	order;		/* of the call among all calls */
};
static int	rewrite_calls;

static void
rewrite_cb(void *arg, int error)
{
	struct rewrite_result	*r = arg;

	r->calls++;
	r->error = error;
	r->order = ++rewrite_calls;
}

/* Run the loop until every result has been called back. */
static void
rewrite_wait(struct rewrite_result *r, size_t n)
{
	size_t	i, done, rounds;

	for (rounds = 0; rounds < 5000; rounds++) {
		for (done = 0, i = 0; i < n; i++)
			done += r[i].calls;
		if (done == n)
			return;
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	}
	ck_abort_msg("rewrites not called back");
}

/*
 * Rewrites on the workers (or inline without threads): called back
 * later, never at once, in the order asked; the last one asked is what
 * stays, so results recorded later are never overwritten by older ones.
 */
START_TEST(test_env_rewrite)
{
	struct rewrite_result	 r[NREWRITES];
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], *cause = NULL;
	size_t			 i;

	init_spool(NULL, NULL);
	commit_now(id, sizeof id, "x\r\n", 3, "alice@example.org",
	    "bob@example.net");
	if (_i == 1)
		ck_assert_msg(workpool_start(3, &cause) == 0, "%s", cause);
	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	memset(r, 0, sizeof r);
	rewrite_calls = 0;
	for (i = 0; i < NREWRITES; i++) {
		env.tries = (unsigned)i + 1;
		ck_assert_ptr_nonnull(queue_env_rewrite(&env, rewrite_cb,
		    &r[i]));
		ck_assert_int_eq(r[i].calls, 0);
	}
	/* One is under way: the message cannot move meanwhile. */
	ck_assert_int_eq(queue_hold(id), -1);
	ck_assert_int_eq(errno, EBUSY);
	envelope_clear(&env);
	rewrite_wait(r, NREWRITES);
	for (i = 0; i < NREWRITES; i++) {
		ck_assert_int_eq(r[i].calls, 1);
		ck_assert_int_eq(r[i].error, 0);
		ck_assert_int_eq(r[i].order, (int)i + 1);
	}
	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(env.tries, NREWRITES);
	envelope_clear(&env);
	ck_assert_int_eq(count_spool("queue"), 2);
	ck_assert_int_eq(queue_hold(id), 0);
	workpool_shutdown();
	queue_shutdown();
}
END_TEST

/*
 * A message removed while its rewrites are out never comes back; a
 * cancelled rewrite still happens, silently; a rewrite of a message the
 * queue does not hold fails with ENOENT, later.
 */
START_TEST(test_env_rewrite_removed)
{
	struct rewrite_result	 r[3], quiet;
	struct envelope		 env;
	char			 id[QUEUE_ID_SIZE], *cause = NULL;

	init_spool(NULL, NULL);
	commit_now(id, sizeof id, "x\r\n", 3, "alice@example.org",
	    "bob@example.net");
	if (_i == 1)
		ck_assert_msg(workpool_start(2, &cause) == 0, "%s", cause);
	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	memset(r, 0, sizeof r);
	memset(&quiet, 0, sizeof quiet);
	queue_rewrite_cancel(queue_env_rewrite(&env, rewrite_cb, &quiet));
	ck_assert_ptr_nonnull(queue_env_rewrite(&env, rewrite_cb, &r[0]));
	ck_assert_ptr_nonnull(queue_env_rewrite(&env, rewrite_cb, &r[1]));
	ck_assert_int_eq(queue_remove(id), 0);
	rewrite_wait(r, 2);
	ck_assert_int_eq(quiet.calls, 0);
	ck_assert_int_eq(r[0].error, ENOENT);
	ck_assert_int_eq(r[1].error, ENOENT);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_uint_eq(queue_count(), 0);

	util_strlcpy(env.id, "0000000000000000", sizeof env.id);
	env.id[QUEUE_ID_LEN] = '\0';
	ck_assert_ptr_nonnull(queue_env_rewrite(&env, rewrite_cb, &r[2]));
	ck_assert_int_eq(r[2].calls, 0);
	rewrite_wait(&r[2], 1);
	ck_assert_int_eq(r[2].error, ENOENT);
	ck_assert_int_eq(count_spool("queue"), 0);
	envelope_clear(&env);
	workpool_shutdown();
	queue_shutdown();
}
END_TEST

START_TEST(test_env_update_fails)
{
	static const char *const rcpt = "b@example.net";
	struct envelope	 env;
	struct rlimit	 old, rl;
	struct stat	 before;
	char		 id[QUEUE_ID_SIZE], path[PATH_SIZE], tmp[PATH_SIZE];
	char		 msg[PATH_SIZE];
	char		 data[100], big[4000], *was, *now, *cause = NULL;
	size_t		 wlen, nlen;
	int		 rc, saved;

	fill(data, sizeof data, 31);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net");
	qpath(path, sizeof path, "queue", id, "env");
	qpath(tmp, sizeof tmp, "queue", id, "env.tmp");
	ck_assert_int_eq(stat(path, &before), 0);
	was = read_all(path, &wlen);
	ck_assert_ptr_nonnull(was);
	ck_assert_uint_lt(wlen, ENV_FSIZE_LIMIT);

	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	env.tries = 7;
	envelope_set_str(&env.last_error, big);
	ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = ENV_FSIZE_LIMIT;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	errno = 0;
	rc = queue_env_update(&env);
	saved = errno;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	ck_assert_int_eq(rc, -1);
	ck_assert_msg(saved == EFBIG, "errno %d (%s)", saved, strerror(saved));
	check_untouched(path, &before);
	now = read_all(path, &nlen);
	ck_assert_ptr_nonnull(now);
	ck_assert(nlen == wlen && memcmp(now, was, wlen) == 0);
	free(now);
	ck_assert_msg(!exists(tmp), "%s left behind", tmp);

	/* No recipients: envelope_write() refuses it. */
	envelope_clear(&env);
	make_env(&env, id, "a@example.org", NULL, 0, sizeof data);
	errno = 0;
	ck_assert_int_eq(queue_env_update(&env), -1);
	ck_assert_int_eq(errno, EINVAL);
	check_untouched(path, &before);
	ck_assert_msg(!exists(tmp), "%s left behind", tmp);
	envelope_clear(&env);
	check_load(id, "a@example.org", &rcpt, 1);

	/* Removed: a late rewrite must not bring its envelope back. */
	ck_assert_int_eq(queue_remove(id), 0);
	make_env(&env, id, "a@example.org", &rcpt, 1, sizeof data);
	errno = 0;
	ck_assert_int_eq(queue_env_update(&env), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_msg(!exists(path), "%s brought back", path);
	ck_assert_msg(!exists(tmp), "%s left behind", tmp);
	ck_assert_int_eq(count_spool("queue"), 0);

	/*
	 * A rename that fails: a directory where the envelope should be,
	 * the content in place.
	 */
	make_dir(path);
	qpath(msg, sizeof msg, "queue", id, "msg");
	write_all(msg, "x", 1);
	errno = 0;
	ck_assert_int_eq(queue_env_update(&env), -1);
	ck_assert_int_eq(errno, EISDIR);
	ck_assert_msg(!exists(tmp), "%s left behind", tmp);
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(unlink(msg), 0);
	envelope_clear(&env);
	free(was);
	queue_shutdown();
}
END_TEST

START_TEST(test_remove)
{
	struct stat	 before[2];
	char		 id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char		 path[PATH_SIZE], data[2000], *cause = NULL;
	struct envelope	 env;

	fill(data, sizeof data, 37);
	init_spool(NULL, NULL);
	commit_now(id1, sizeof id1, data, sizeof data, "a@example.org",
	    "b@example.net");
	commit_now(id2, sizeof id2, data, 1000, "c@example.org",
	    "d@example.net");
	ck_assert_uint_eq(queue_count(), 2);
	qpath(path, sizeof path, "queue", id2, "env");
	ck_assert_int_eq(stat(path, &before[0]), 0);
	qpath(path, sizeof path, "queue", id2, "msg");
	ck_assert_int_eq(stat(path, &before[1]), 0);

	ck_assert_int_eq(queue_remove(id1), 0);
	qpath(path, sizeof path, "queue", id1, "env");
	ck_assert_msg(!exists(path), "%s kept", path);
	qpath(path, sizeof path, "queue", id1, "msg");
	ck_assert_msg(!exists(path), "%s kept", path);
	ck_assert_uint_eq(queue_count(), 1);
	ck_assert_int_eq(count_spool("queue"), 2);
	qpath(path, sizeof path, "queue", id2, "env");
	check_untouched(path, &before[0]);
	qpath(path, sizeof path, "queue", id2, "msg");
	check_untouched(path, &before[1]);

	errno = 0;
	ck_assert_int_eq(queue_remove(id1), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_uint_eq(queue_count(), 1);
	errno = 0;
	ck_assert_int_eq(queue_msg_open(id1), -1);
	ck_assert_int_eq(errno, ENOENT);
	envelope_init(&env);
	ck_assert_int_eq(queue_env_load(id1, &env, &cause), -1);
	envelope_clear(&env);
	free(cause);

	ck_assert_int_eq(queue_remove(id2), 0);
	ck_assert_uint_eq(queue_count(), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	/* A delete (files perhaps still open) keeps no spare. */
	ck_assert_int_eq(count_spool("spare"), 0);
	queue_shutdown();
}
END_TEST

/*
 * The first load of a message just committed takes its envelope as it
 * was written, without reading the file (removed here behind the
 * queue's back): once only, and not after anything that may change the
 * file (a rewrite, a hold, a removal), when the file is what counts; an
 * envelope over 8 KiB is not kept.
 */
START_TEST(test_env_fresh)
{
	static const char *const rcpt = "b@example.net";
	static const char data[] = "Subject: s\r\n\r\nbody\r\n";
	static char	 many[200][64];
	const char	*rcpts[200];
	struct queue_msg *m;
	struct envelope	 env;
	struct result	 r = { 0, 0 };
	struct stat	 st;
	char		 id[QUEUE_ID_SIZE], path[PATH_SIZE], *cause = NULL;
	size_t		 i;

	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, strlen(data), "a@example.org", rcpt);
	qpath(path, sizeof path, "queue", id, "env");
	ck_assert_int_eq(unlink(path), 0);
	check_load(id, "a@example.org", &rcpt, 1);
	check_no_load(id, ENOENT);

	/* Rewritten: the next load reads the file. */
	commit_now(id, sizeof id, data, strlen(data), "a@example.org", rcpt);
	make_env(&env, id, "a@example.org", &rcpt, 1, strlen(data));
	env.rcpts[0].state = ENVELOPE_RCPT_SENT;
	ck_assert_int_eq(queue_env_update(&env), 0);
	envelope_clear(&env);
	envelope_init(&env);
	ck_assert_msg(queue_env_load(id, &env, &cause) == 0, "%s", cause);
	ck_assert_int_eq(env.rcpts[0].state, ENVELOPE_RCPT_SENT);
	envelope_clear(&env);

	/* Held: the envelope is read from hold/ (gone here). */
	commit_now(id, sizeof id, data, strlen(data), "a@example.org", rcpt);
	ck_assert_int_eq(queue_hold(id), 0);
	qpath(path, sizeof path, "hold", id, "env");
	ck_assert_int_eq(unlink(path), 0);
	check_no_load(id, ENOENT);

	/* Removed: nothing to load. */
	commit_now(id, sizeof id, data, strlen(data), "a@example.org", rcpt);
	ck_assert_int_eq(queue_remove(id), 0);
	check_no_load(id, ENOENT);

	/* Too long to keep (200 recipients): read back from the file. */
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, data, strlen(data)), 0);
	for (i = 0; i < 200; i++) {
		snprintf(many[i], sizeof many[i],
		    "recipient-number-%03zu@example.net", i);
		rcpts[i] = many[i];
	}
	make_env(&env, id, "a@example.org", rcpts, 200, strlen(data));
	ck_assert_ptr_nonnull(queue_msg_commit(m, &env, commit_cb, &r));
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.error, 0);
	envelope_clear(&env);
	qpath(path, sizeof path, "queue", id, "env");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_size, 8192);
	ck_assert_int_eq(unlink(path), 0);
	check_no_load(id, ENOENT);
	queue_shutdown();
}
END_TEST

/*
 * A removed message's files are kept in spare/, and the next message is
 * written over them: the same inodes, holding exactly the new message
 * and envelope (nothing left of the longer ones before).  A content
 * larger than SPARE_MAX_SIZE is removed, an aborted message's content is
 * kept unless it grew larger, and spare/ is emptied at start.
 */
START_TEST(test_spare_reused)
{
	static const char *const rcpt = "b@example.net";
	static const char small[] = "Subject: s\r\n\r\nshort\r\n";
	struct queue_msg	*m;
	struct stat		 old[2], st;
	char			 id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char			 id3[QUEUE_ID_SIZE], path[PATH_SIZE];
	char			 big[3000], got[64], *large;
	int			 fd;

	fill(big, sizeof big, 5);
	init_spool(NULL, NULL);
	commit_now(id1, sizeof id1, big, sizeof big,
	    "a-rather-longer-sender-address@example.org", rcpt);
	qpath(path, sizeof path, "queue", id1, "env");
	ck_assert_int_eq(stat(path, &old[0]), 0);
	qpath(path, sizeof path, "queue", id1, "msg");
	ck_assert_int_eq(stat(path, &old[1]), 0);
	/* A reader of id1 in another process can tell once it is reused. */
	fd = queue_msg_open(id1);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(queue_msg_still(id1, fd), 1);
	ck_assert_int_eq(queue_retire(id1), 0);
	ck_assert_int_eq(queue_msg_still(id1, fd), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_int_eq(count_spool("spare"), 2);
	ck_assert_uint_eq(spare_count(SPARE_ENV), 1);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 1);

	commit_now(id2, sizeof id2, small, strlen(small), "c@example.org",
	    rcpt);
	check_msg_file("queue", id2, small, strlen(small));
	check_env_file("queue", id2, "c@example.org", &rcpt, 1);
	check_load(id2, "c@example.org", &rcpt, 1);
	qpath(path, sizeof path, "queue", id2, "env");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_ino, old[0].st_ino);
	ck_assert_int_lt(st.st_size, old[0].st_size);
	qpath(path, sizeof path, "queue", id2, "msg");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_ino, old[1].st_ino);
	ck_assert_int_eq(count_spool("spare"), 0);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_int_eq(queue_msg_still(id1, fd), 0);
	ck_assert_int_eq(pread(fd, got, sizeof got, 0), (ssize_t)strlen(small));
	ck_assert_int_eq(memcmp(got, small, strlen(small)), 0);
	close(fd);
	fd = queue_msg_open(id2);
	ck_assert_int_eq(queue_msg_still(id2, fd), 1);
	ck_assert_int_eq(queue_hold(id2), 0);
	ck_assert_int_eq(queue_msg_still(id2, fd), 1);
	ck_assert_int_eq(queue_release(id2), 0);
	close(fd);

	/* Too large to keep: removed; its envelope is kept. */
	large = xmalloc(SPARE_MAX_SIZE + 1);
	fill(large, SPARE_MAX_SIZE + 1, 9);
	commit_now(id3, sizeof id3, large, SPARE_MAX_SIZE + 1,
	    "a@example.org", rcpt);
	free(large);
	ck_assert_int_eq(queue_retire(id3), 0);
	ck_assert_uint_eq(spare_count(SPARE_ENV), 1);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 0);
	ck_assert_int_eq(count_spool("spare"), 1);

	/* An aborted message leaves its content as a spare. */
	m = queue_msg_new(id3, sizeof id3);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(queue_msg_write(m, big, sizeof big), 0);
	queue_msg_abort(m);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 1);
	ck_assert_int_eq(count_spool("spare"), 2);

	/*
	 * A message received over a spare is written where the spare is:
	 * nothing in incoming/.  Given up once larger than a spare may be,
	 * the file is removed rather than kept.
	 */
	m = queue_msg_new(id3, sizeof id3);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 0);
	ck_assert_int_eq(count_spool("spare"), 2);
	ck_assert_int_eq(count_spool("incoming"), 0);
	large = xmalloc(SPARE_MAX_SIZE + 1);
	fill(large, SPARE_MAX_SIZE + 1, 3);
	ck_assert_int_eq(queue_msg_write(m, large, SPARE_MAX_SIZE + 1), 0);
	free(large);
	queue_msg_abort(m);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 0);
	ck_assert_int_eq(count_spool("spare"), 1);
	ck_assert_int_eq(count_spool("incoming"), 0);

	/* Nothing in spare/ is mail: gone at the next start. */
	queue_shutdown();
	init_spool(NULL, NULL);
	ck_assert_int_eq(count_spool("spare"), 0);
	ck_assert_uint_eq(spare_count(SPARE_ENV), 0);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 0);
	ck_assert_int_eq(count_spool("queue"), 2);
	queue_shutdown();
}
END_TEST

/*
 * Each pool keeps at most SPARE_MAX files; past that a removed message's
 * files are unlinked.
 */
START_TEST(test_spare_pool_full)
{
	static const char *const rcpt = "b@example.net";
	char	ids[SPARE_MAX + 2][QUEUE_ID_SIZE];
	size_t	i;

	init_spool(NULL, NULL);
	for (i = 0; i < SPARE_MAX + 2; i++)
		commit_now(ids[i], sizeof ids[i], "x\r\n", 3,
		    "a@example.org", rcpt);
	for (i = 0; i < SPARE_MAX + 2; i++)
		ck_assert_int_eq(queue_retire(ids[i]), 0);
	ck_assert_uint_eq(spare_count(SPARE_ENV), SPARE_MAX);
	ck_assert_uint_eq(spare_count(SPARE_MSG), SPARE_MAX);
	ck_assert_int_eq(count_spool("spare"), 2 * SPARE_MAX);
	ck_assert_int_eq(count_spool("queue"), 0);
	queue_shutdown();
}
END_TEST

/* Run the loop until r has been called back, or fail. */
static void
wait_result(struct result *r)
{
	int	rounds;

	for (rounds = 0; rounds < 5000 && r->calls == 0; rounds++)
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
	ck_assert_int_eq(r->calls, 1);
}

/*
 * With worker threads and no spare envelope, queue_msg_start() has a
 * worker make the content and the envelope and calls back once they
 * are in incoming/; the commit writes the envelope made ahead.  A
 * message given up while they are made leaves them as spares and is
 * never called back.  With spares of both kinds, or without a callback,
 * nothing waits.
 */
START_TEST(test_start_files_ahead)
{
	static const char *const rcpt = "b@example.net";
	static const char data[] = "Subject: ahead\r\n\r\nbody\r\n";
	struct queue_msg	*m;
	struct envelope		 env;
	struct result		 ready = { 0, 0 }, r = { 0, 0 };
	struct result		 never = { 0, 0 };
	char			 id[QUEUE_ID_SIZE], path[PATH_SIZE];
	char			*cause = NULL;
	int			 waiting = -1;

	init_spool(NULL, NULL);
	ck_assert_msg(workpool_start(2, &cause) == 0, "%s", cause);
	m = queue_msg_start(id, sizeof id, commit_cb, &ready, &waiting);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(waiting, 1);
	ck_assert_int_eq(ready.calls, 0);
	/* The first buffer may be written meanwhile. */
	ck_assert_int_eq(queue_msg_write(m, data, 10), 0);
	wait_result(&ready);
	ck_assert_int_eq(ready.error, 0);
	ck_assert_int_eq(count_spool("incoming"), 2);
	spath(path, sizeof path, "incoming/%s.env", id);
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(queue_msg_write(m, data + 10, strlen(data) - 10), 0);
	make_env(&env, id, "a@example.org", &rcpt, 1, strlen(data));
	ck_assert_ptr_nonnull(queue_msg_commit(m, &env, commit_cb, &r));
	envelope_clear(&env);
	wait_result(&r);
	ck_assert_int_eq(r.error, 0);
	check_msg_file("queue", id, data, strlen(data));
	check_env_file("queue", id, "a@example.org", &rcpt, 1);
	check_load(id, "a@example.org", &rcpt, 1);
	ck_assert_int_eq(count_spool("incoming"), 0);

	/* Given up at once: its files become spares, no callback. */
	waiting = -1;
	m = queue_msg_start(id, sizeof id, commit_cb, &never, &waiting);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(waiting, 1);
	queue_msg_abort(m);
	workpool_shutdown();
	ck_assert_int_eq(never.calls, 0);
	ck_assert_int_eq(count_spool("incoming"), 0);
	ck_assert_uint_eq(spare_count(SPARE_ENV), 1);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 1);
	ck_assert_int_eq(count_spool("spare"), 2);

	/* A spare of each kind: nothing to wait for. */
	ck_assert_int_eq(workpool_init(base, NULL), 0);
	ck_assert_msg(workpool_start(2, &cause) == 0, "%s", cause);
	waiting = -1;
	m = queue_msg_start(id, sizeof id, commit_cb, &never, &waiting);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(waiting, 0);
	ck_assert_uint_eq(spare_count(SPARE_MSG), 0);
	queue_msg_abort(m);

	/* No callback: the content is made here, even with no spare. */
	while (spare_count(SPARE_ENV) > 0)
		ck_assert_int_eq(spare_take(SPARE_ENV, path, SPARE_NAME_SIZE),
		    1);
	while (spare_count(SPARE_MSG) > 0)
		ck_assert_int_eq(spare_take(SPARE_MSG, path, SPARE_NAME_SIZE),
		    1);
	m = queue_msg_new(id, sizeof id);
	ck_assert_ptr_nonnull(m);
	spath(path, sizeof path, "incoming/%s.msg", id);
	ck_assert_int_eq(access(path, F_OK), 0);
	spath(path, sizeof path, "incoming/%s.env", id);
	ck_assert_int_eq(access(path, F_OK), -1);
	queue_msg_abort(m);
	ck_assert_int_eq(never.calls, 0);
	queue_shutdown();
}
END_TEST

/* Content whose envelope went first is gone at the next start. */
START_TEST(test_remove_then_recover)
{
	char	id[QUEUE_ID_SIZE], path[PATH_SIZE], data[100];

	fill(data, sizeof data, 41);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net");
	/* As if the process died between the two unlinks. */
	qpath(path, sizeof path, "queue", id, "env");
	ck_assert_int_eq(unlink(path), 0);
	queue_shutdown();
	init_spool(NULL, NULL);
	ck_assert_uint_eq(queue_count(), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
	ck_assert_int_eq(count_spool("corrupt"), 0);
	queue_shutdown();
}
END_TEST

START_TEST(test_msg_open)
{
	char	 id[QUEUE_ID_SIZE], *data, *got;
	size_t	 len = 3 * MSG_BUFSIZE + 17, off = 0;
	ssize_t	 n;
	int	 fd, flags;

	data = xmalloc(len);
	got = xmalloc(len + 1);
	fill(data, len, 43);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, len, "a@example.org",
	    "b@example.net");
	fd = queue_msg_open(id);
	ck_assert_msg(fd != -1, "queue_msg_open: %s", strerror(errno));
	ck_assert((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	flags = fcntl(fd, F_GETFL);
	ck_assert_int_eq(flags & O_ACCMODE, O_RDONLY);
	while ((n = read(fd, got + off, len + 1 - off)) > 0)
		off += (size_t)n;
	ck_assert_int_eq(n, 0);
	close(fd);
	ck_assert_uint_eq(off, len);
	ck_assert(memcmp(got, data, len) == 0);

	errno = 0;
	ck_assert_int_eq(queue_msg_open("000000000AB0001"), -1);
	ck_assert_int_eq(errno, ENOENT);
	free(got);
	free(data);
	queue_shutdown();
}
END_TEST

/* Content and the length of its header section. */
static const struct {
	const char	*content;
	size_t		 hdrlen;
} hdrs[] = {
	{ "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore\r\n", 14 },
	{ "\r\nbody\r\n", 2 },
	{ "A: 1\r\nB: 2\r\n", 12 },
	{ "A: 1\r\nB: 2", 10 },
	{ "", 0 },
	{ "A: 1\n\nbody\n", 6 },
	{ "\nbody\n", 1 },
	{ "A: 1\r\n \r\n\t\r\nB: 2\r\n\r\nbody", 20 },
	{ "A: x\rB\r\n\r\nbody", 10 },
	{ "A: 1\r\n\r\r\n\r\nbody", 11 },
	{ "A: 1\n \nB: 2\n\nbody", 13 },
	{ "Received: from a\r\n\tby b\r\nReceived: from c\r\n\r\n"
	  "Received: in the body\r\n", 45 },
};

START_TEST(test_msg_headers)
{
	const char	*content = hdrs[_i].content;
	char		 id[QUEUE_ID_SIZE], *buf;
	size_t		 len;

	init_spool(NULL, NULL);
	commit_now(id, sizeof id, content, strlen(content), "a@example.org",
	    "b@example.net");
	buf = NULL;
	ck_assert_int_eq(queue_msg_headers(id, &buf, &len), 0);
	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(len == hdrs[_i].hdrlen, "case %d: %zu octets, want %zu",
	    _i, len, hdrs[_i].hdrlen);
	ck_assert(memcmp(buf, content, len) == 0);
	ck_assert_int_eq(buf[len], '\0');
	free(buf);
	queue_shutdown();
}
END_TEST

#define HDRS_MAX	(1024 * 1024)	/* queue.c's cap */
#define READ_CHUNK	16384		/* and its first read */

/*
 * Header sections around the sizes queue.c reads in: the empty line cut
 * by a read, and header sections past the cap.
 */
static const struct {
	size_t	hdrlen;		/* where the empty line ends, or 0 */
	size_t	total;
	size_t	want;
} big_hdrs[] = {
	{ READ_CHUNK + 1, READ_CHUNK + 100, READ_CHUNK + 1 },
	{ READ_CHUNK + 2, READ_CHUNK + 100, READ_CHUNK + 2 },
	{ READ_CHUNK, 3 * READ_CHUNK, READ_CHUNK },
	{ 4 * READ_CHUNK + 3, 5 * HDRS_MAX, 4 * READ_CHUNK + 3 },
	{ HDRS_MAX, HDRS_MAX + 10, HDRS_MAX },
	{ HDRS_MAX + 2, HDRS_MAX + 10, HDRS_MAX },
	{ 0, HDRS_MAX - 1, HDRS_MAX - 1 },
	{ 0, HDRS_MAX, HDRS_MAX },
	{ 0, 2 * HDRS_MAX + 7, HDRS_MAX },
};

/* Header lines "X: xxx...\r\n" filling len octets, then body octets. */
static char *
make_headers(size_t hdrlen, size_t total)
{
	char	*data;
	size_t	 i;

	data = xmalloc(total);
	for (i = 0; i < total; i++)
		data[i] = i % 70 == 0 ? 'X' : i % 70 == 1 ? ':' : 'x';
	for (i = 68; i < total; i += 70) {
		data[i] = '\r';
		if (i + 1 < total)
			data[i + 1] = '\n';
	}
	if (hdrlen != 0) {
		/* A line ends just before the empty line, and is not empty. */
		memcpy(data + hdrlen - 4, "\r\n\r\n", 4);
		memset(data + hdrlen - 6, 'x', 2);
	}
	return data;
}

/* Where the first empty line of data ends, by a plain scan; 0 if none. */
static size_t
first_empty_line(const char *data, size_t len)
{
	size_t	i, start = 0;

	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		if (i == start || (i == start + 1 && data[start] == '\r'))
			return i + 1;
		start = i + 1;
	}
	return 0;
}

START_TEST(test_msg_headers_big)
{
	char	id[QUEUE_ID_SIZE], *data, *buf;
	size_t	len;

	data = make_headers(big_hdrs[_i].hdrlen, big_hdrs[_i].total);
	ck_assert_uint_eq(first_empty_line(data, big_hdrs[_i].total),
	    big_hdrs[_i].hdrlen);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, big_hdrs[_i].total, "a@example.org",
	    "b@example.net");
	ck_assert_int_eq(queue_msg_headers(id, &buf, &len), 0);
	ck_assert_msg(len == big_hdrs[_i].want, "case %d: %zu octets, want "
	    "%zu", _i, len, big_hdrs[_i].want);
	ck_assert(memcmp(buf, data, len) == 0);
	ck_assert_int_eq(buf[len], '\0');
	free(buf);
	free(data);
	queue_shutdown();
}
END_TEST

#define READ_TOTAL	(5 * READ_CHUNK + 123)

static const struct {
	size_t	max;
	size_t	want;
} reads[] = {
	{ 0, 0 },
	{ 1, 1 },
	{ 100, 100 },
	{ READ_CHUNK - 1, READ_CHUNK - 1 },
	{ READ_CHUNK, READ_CHUNK },
	{ READ_CHUNK + 1, READ_CHUNK + 1 },
	{ 3 * READ_CHUNK + 5, 3 * READ_CHUNK + 5 },
	{ READ_TOTAL - 1, READ_TOTAL - 1 },
	{ READ_TOTAL, READ_TOTAL },
	{ READ_TOTAL + 1, READ_TOTAL },
	{ 100 * READ_TOTAL, READ_TOTAL },
	{ SIZE_MAX, READ_TOTAL },
};

START_TEST(test_msg_read)
{
	char	id[QUEUE_ID_SIZE], *data, *buf = NULL;
	size_t	len = 12345;

	data = xmalloc(READ_TOTAL);
	fill(data, READ_TOTAL, 47);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, READ_TOTAL, "a@example.org",
	    "b@example.net");
	ck_assert_int_eq(queue_msg_read(id, reads[_i].max, &buf, &len), 0);
	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(len == reads[_i].want, "max %zu: %zu octets, want %zu",
	    reads[_i].max, len, reads[_i].want);
	ck_assert(memcmp(buf, data, len) == 0);
	ck_assert_int_eq(buf[len], '\0');
	free(buf);

	errno = 0;
	ck_assert_int_eq(queue_msg_read("000000000AB0001", reads[_i].max,
	    &buf, &len), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(queue_msg_headers("000000000AB0001", &buf, &len),
	    -1);
	ck_assert_int_eq(errno, ENOENT);
	free(data);
	queue_shutdown();
}
END_TEST

/*
 * An id that is not a queue id (from a control socket, say) is refused
 * by every function, and no file anywhere in the spool changes.
 */
START_TEST(test_bad_ids)
{
	static const char *const rcpt = "b@example.net";
	const char	*id = is_ids[_i].text;
	struct envelope	 env;
	char		 keep[QUEUE_ID_SIZE], *buf = NULL;
	char		 data[50];
	size_t		 len;

	if (is_ids[_i].want)
		return;
	fill(data, sizeof data, 53);
	init_spool(NULL, NULL);
	commit_now(keep, sizeof keep, data, sizeof data, "a@example.org",
	    "b@example.net");

	check_no_load(id, EINVAL);
	/* An envelope holds no id longer than a queue id. */
	make_env(&env, "", "a@example.org", &rcpt, 1, 0);
	if (strlen(id) < sizeof env.id) {
		util_strlcpy(env.id, id, sizeof env.id);
		errno = 0;
		ck_assert_int_eq(queue_env_update(&env), -1);
		ck_assert_int_eq(errno, EINVAL);
	}
	envelope_clear(&env);
	errno = 0;
	ck_assert_int_eq(queue_remove(id), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(queue_msg_open(id), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(queue_msg_headers(id, &buf, &len), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(queue_msg_read(id, 100, &buf, &len), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(buf);

	ck_assert_uint_eq(queue_count(), 1);
	ck_assert_int_eq(count_spool("queue"), 2);
	ck_assert_int_eq(count_files(spool), 3);	/* and the lock */
	check_msg_file("queue", keep, data, sizeof data);
	queue_shutdown();
}
END_TEST

/*
 * Hold and release: the message moves between queue/ and hold/ whole,
 * keeps its count, and every read function still finds it.
 */
/*
 * A message whose commit has not called back is ternd's to know first:
 * hold, release and remove leave it alone, as an unknown id.
 */
START_TEST(test_hold_while_committing)
{
	struct result	 r = { 0, 0 };
	char		 id[QUEUE_ID_SIZE], data[100];

	fill(data, sizeof data, 61);
	init_spool(NULL, NULL);
	start_commit(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net", &r);
	errno = 0;
	ck_assert_int_eq(queue_hold(id), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(queue_release(id), -1);
	ck_assert_int_eq(queue_remove(id), -1);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.error, 0);
	/* Once called back, it is anyone's. */
	ck_assert_int_eq(queue_hold(id), 0);
	ck_assert_int_eq(count_spool("hold"), 2);
	ck_assert_int_eq(queue_release(id), 0);
	ck_assert_int_eq(queue_remove(id), 0);
	ck_assert_int_eq(count_spool("queue"), 0);
}
END_TEST

START_TEST(test_hold_release)
{
	struct envelope	 env;
	struct stat	 st;
	char		 id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE];
	char		 path[PATH_SIZE], data[300], *buf, *cause = NULL;
	size_t		 len;
	int		 fd;

	fill(data, sizeof data, 59);
	memcpy(data, "A: 1\r\n\r\n", 8);
	init_spool(NULL, NULL);
	commit_now(id1, sizeof id1, data, sizeof data, "a@example.org",
	    "b@example.net");
	commit_now(id2, sizeof id2, data, 100, "c@example.org",
	    "d@example.net");
	qpath(path, sizeof path, "queue", id1, "msg");
	ck_assert_int_eq(stat(path, &st), 0);

	ck_assert_int_eq(queue_hold(id1), 0);
	ck_assert_uint_eq(queue_count(), 2);
	ck_assert_int_eq(count_spool("queue"), 2);
	ck_assert_int_eq(count_spool("hold"), 2);
	qpath(path, sizeof path, "queue", id1, "env");
	ck_assert_msg(!exists(path), "%s kept", path);
	check_msg_file("hold", id1, data, sizeof data);
	check_env_file("hold", id1, "a@example.org",
	    (const char *const []){ "b@example.net" }, 1);
	/* The same file, linked across: the content is never copied. */
	qpath(path, sizeof path, "hold", id1, "msg");
	check_untouched(path, &st);

	/* Every read function finds it held. */
	check_load(id1, "a@example.org",
	    (const char *const []){ "b@example.net" }, 1);
	fd = queue_msg_open(id1);
	ck_assert_int_ne(fd, -1);
	close(fd);
	ck_assert_int_eq(queue_msg_headers(id1, &buf, &len), 0);
	ck_assert_uint_eq(len, 8);
	free(buf);
	ck_assert_int_eq(queue_msg_read(id1, 50, &buf, &len), 0);
	ck_assert_uint_eq(len, 50);
	ck_assert(memcmp(buf, data, 50) == 0);
	free(buf);

	/* A rewrite stays where the message is. */
	envelope_init(&env);
	ck_assert_int_eq(queue_env_load(id1, &env, &cause), 0);
	env.tries = 7;
	ck_assert_int_eq(queue_env_update(&env), 0);
	envelope_clear(&env);
	qpath(path, sizeof path, "queue", id1, "env");
	ck_assert_msg(!exists(path), "%s made by a rewrite", path);
	ck_assert_int_eq(count_spool("hold"), 2);

	/* Holding twice changes nothing. */
	ck_assert_int_eq(queue_hold(id1), 0);
	ck_assert_int_eq(count_spool("hold"), 2);
	ck_assert_int_eq(count_spool("queue"), 2);

	ck_assert_int_eq(queue_release(id1), 0);
	ck_assert_int_eq(count_spool("hold"), 0);
	ck_assert_int_eq(count_spool("queue"), 4);
	check_msg_file("queue", id1, data, sizeof data);
	envelope_init(&env);
	ck_assert_int_eq(queue_env_load(id1, &env, &cause), 0);
	ck_assert_uint_eq(env.tries, 7);
	envelope_clear(&env);
	ck_assert_int_eq(queue_release(id1), 0);
	ck_assert_int_eq(count_spool("queue"), 4);

	/* Unknown and bad ids. */
	errno = 0;
	ck_assert_int_eq(queue_hold("000000000AB0001"), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(queue_release("000000000AB0001"), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(queue_hold("../queue/AB/x"), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(queue_release("000000000AB000"), -1);
	ck_assert_int_eq(errno, EINVAL);

	/* A held message is removed from hold/. */
	ck_assert_int_eq(queue_hold(id2), 0);
	ck_assert_int_eq(queue_remove(id2), 0);
	ck_assert_int_eq(count_spool("hold"), 0);
	ck_assert_uint_eq(queue_count(), 1);

	/* After a restart the held one is reported held. */
	ck_assert_int_eq(queue_hold(id1), 0);
	queue_shutdown();
	{
		struct scan	sc;

		memset(&sc, 0, sizeof sc);
		init_spool(scan_cb, &sc);
		ck_assert_uint_eq(sc.n, 1);
		ck_assert_str_eq(sc.seen[0].id, id1);
		ck_assert_int_eq(sc.seen[0].held, 1);
	}
	queue_shutdown();
}
END_TEST

/*
 * A crash at each step of a move between the trees: after the content
 * is linked (0), after the envelope is renamed (1).  Recovery keeps
 * exactly one whole message, held or not as the commit point says.
 */
static const struct {
	int	 hold;		/* 1: queue -> hold, 0: hold -> queue */
	int	 step;
	int	 held_after;
} crashes[] = {
	{ 1, 0, 0 }, { 1, 1, 1 },
	{ 0, 0, 1 }, { 0, 1, 0 },
};

START_TEST(test_hold_crash)
{
	struct scan	 sc;
	char		 id[QUEUE_ID_SIZE], from[PATH_SIZE], to[PATH_SIZE];
	char		 data[200];
	const char	*src, *dst, *after;
	int		 hold = crashes[_i].hold;

	fill(data, sizeof data, 61);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net");
	if (!hold)
		ck_assert_int_eq(queue_hold(id), 0);
	queue_shutdown();

	src = hold ? "queue" : "hold";
	dst = hold ? "hold" : "queue";
	spath(to, sizeof to, "%s/%c%c", dst, id[QDIR_AT], id[QDIR_AT + 1]);
	make_dir(to);
	qpath(from, sizeof from, src, id, "msg");
	qpath(to, sizeof to, dst, id, "msg");
	ck_assert_int_eq(link(from, to), 0);
	if (crashes[_i].step >= 1) {
		qpath(from, sizeof from, src, id, "env");
		qpath(to, sizeof to, dst, id, "env");
		ck_assert_int_eq(rename(from, to), 0);
	}

	memset(&sc, 0, sizeof sc);
	init_spool(scan_cb, &sc);
	ck_assert_uint_eq(sc.n, 1);
	ck_assert_str_eq(sc.seen[0].id, id);
	ck_assert_int_eq(sc.seen[0].held, crashes[_i].held_after);
	ck_assert_uint_eq(queue_count(), 1);
	after = crashes[_i].held_after ? "hold" : "queue";
	ck_assert_int_eq(count_spool(after), 2);
	ck_assert_int_eq(count_spool(crashes[_i].held_after ? "queue" :
	    "hold"), 0);
	ck_assert_int_eq(count_spool("corrupt"), 0);
	check_msg_file(after, id, data, sizeof data);
	check_load(id, "a@example.org",
	    (const char *const []){ "b@example.net" }, 1);

	/* And the move can be made again from there. */
	ck_assert_int_eq(crashes[_i].held_after ? queue_release(id) :
	    queue_hold(id), 0);
	check_msg_file(crashes[_i].held_after ? "queue" : "hold", id, data,
	    sizeof data);
	queue_shutdown();
}
END_TEST

/* Content left in the other tree by a crash does not stop a move. */
START_TEST(test_hold_stale_link)
{
	char	id[QUEUE_ID_SIZE], path[PATH_SIZE], data[64];

	fill(data, sizeof data, 67);
	init_spool(NULL, NULL);
	commit_now(id, sizeof id, data, sizeof data, "a@example.org",
	    "b@example.net");
	spath(path, sizeof path, "hold/%c%c", id[QDIR_AT], id[QDIR_AT + 1]);
	make_dir(path);
	qpath(path, sizeof path, "hold", id, "msg");
	write_all(path, "stale", 5);
	ck_assert_int_eq(queue_hold(id), 0);
	check_msg_file("hold", id, data, sizeof data);
	ck_assert_int_eq(count_spool("hold"), 2);
	ck_assert_int_eq(count_spool("queue"), 0);
	queue_shutdown();
}
END_TEST

/* What queue_list() reported, in order. */
struct listed {
	size_t	n;
	char	ids[8][QUEUE_ID_SIZE];
	int	held[8];
	size_t	nrcpts[8];
};

static void
list_cb(const struct envelope *env, int held, void *arg)
{
	struct listed	*l = arg;

	ck_assert_uint_lt(l->n, nitems(l->ids));
	util_strlcpy(l->ids[l->n], env->id, sizeof l->ids[l->n]);
	l->held[l->n] = held;
	l->nrcpts[l->n] = env->nrcpts;
	l->n++;
}

/*
 * A tool reads a spool in use: no lock taken, nothing recovered or
 * changed, every committed envelope listed once in id order with its
 * held flag, a damaged one left out.
 */
START_TEST(test_list_readonly)
{
	struct listed	 l;
	char		 ids[4][QUEUE_ID_SIZE], path[PATH_SIZE];
	char		 data[80], *text, *cause = NULL;
	size_t		 i, len;
	int		 lockfd, before;

	fill(data, sizeof data, 71);
	init_spool(NULL, NULL);
	for (i = 0; i < 4; i++)
		commit_now(ids[i], sizeof ids[i], data, sizeof data,
		    "a@example.org", "b@example.net");
	ck_assert_int_eq(queue_hold(ids[2]), 0);
	ck_assert_int_eq(queue_hold(ids[0]), 0);
	/* Content without an envelope, and an envelope that is garbage. */
	qpath(path, sizeof path, "queue", ID_ORPHAN, "msg");
	spath(path, sizeof path, "queue/AB");
	make_dir(path);
	qpath(path, sizeof path, "queue", ID_ORPHAN, "msg");
	write_all(path, "orphan", 6);
	qpath(path, sizeof path, "queue", ID_GARBAGE, "env");
	write_all(path, garbage, sizeof garbage - 1);
	qpath(path, sizeof path, "queue", ID_GARBAGE, "msg");
	write_all(path, "x", 1);
	queue_shutdown();

	/* As if the daemon held its lock. */
	spath(path, sizeof path, "lock");
	lockfd = open(path, O_RDWR);
	ck_assert_int_ne(lockfd, -1);
	ck_assert_int_eq(flock(lockfd, LOCK_EX | LOCK_NB), 0);
	before = count_files(spool);

	ck_assert_msg(queue_open_readonly(spool, &cause) == 0, "%s", cause);
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(queue_list(list_cb, &l, &cause), 0);
	ck_assert_uint_eq(l.n, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(l.ids[i], ids[i]);
		ck_assert_int_eq(l.held[i], i == 0 || i == 2);
		ck_assert_uint_eq(l.nrcpts[i], 1);
	}
	check_load(ids[2], "a@example.org",
	    (const char *const []){ "b@example.net" }, 1);
	ck_assert_int_eq(queue_msg_read(ids[0], 10, &text, &len), 0);
	ck_assert_uint_eq(len, 10);
	free(text);
	queue_shutdown();
	ck_assert_int_eq(count_files(spool), before);
	qpath(path, sizeof path, "queue", ID_ORPHAN, "msg");
	ck_assert_msg(exists(path), "read-only open recovered %s", path);
	close(lockfd);

	/* A spool never used for a hold; a spool that is not there. */
	spath(path, sizeof path, "hold");
	remove_tree(AT_FDCWD, path);
	ck_assert_msg(queue_open_readonly(spool, &cause) == 0, "%s", cause);
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(queue_list(list_cb, &l, &cause), 0);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.ids[0], ids[1]);
	ck_assert_str_eq(l.ids[1], ids[3]);
	queue_shutdown();
	spath(path, sizeof path, "nonexistent");
	ck_assert_int_eq(queue_open_readonly(path, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "nonexistent"));
	free(cause);
}
END_TEST

/* Others reach maildrop/ through the spool but list nothing in it. */
START_TEST(test_spool_mode)
{
	struct stat	st;
	char		path[PATH_SIZE];

	ck_assert_int_eq(chmod(spool, 0700), 0);
	init_spool(NULL, NULL);
	ck_assert_int_eq(stat(spool, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0711);
	spath(path, sizeof path, "queue");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	queue_shutdown();
}
END_TEST

/*
 * Room for a message: what statvfs says is free, less min_free_space,
 * against the size announced; 0 turns the check off.
 */
START_TEST(test_has_room)
{
	struct statvfs	sv;
	uint64_t	avail;
	int		fd;

	init_spool(NULL, NULL);
	fd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(fstatvfs(fd, &sv), 0);
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	ck_assert_msg(avail > 1024 * 1024, "the test needs 1 MiB free");

	ck_assert_int_eq(queue_has_room(fd, UINT64_MAX, 0), 1);
	ck_assert_int_eq(queue_has_room(fd, 0, 1), 1);
	ck_assert_int_eq(queue_has_room(fd, 1000, 4096), 1);
	errno = 0;
	ck_assert_int_eq(queue_has_room(fd, 0, UINT64_MAX), 0);
	ck_assert_int_eq(errno, ENOSPC);
	/* What is free must cover the size and the margin together. */
	ck_assert_int_eq(queue_has_room(fd, UINT64_MAX - 1, 1), 0);
	ck_assert_int_eq(queue_has_room(fd, avail, avail), 0);
	ck_assert_int_eq(queue_has_room(fd, 2 * avail, 1), 0);
	ck_assert_int_eq(queue_has_room(fd, 1, 2 * avail), 0);

	/* The daemon's own spool, kept for a second, answers the same. */
	ck_assert_int_eq(queue_has_room(-1, 0, 1), 1);
	ck_assert_int_eq(queue_has_room(-1, 0, UINT64_MAX), 0);
	ck_assert_int_eq(queue_has_room(-1, 2 * avail, 1), 0);
	ck_assert_int_eq(queue_has_room(-1, 1000, 4096), 1);
	close(fd);
	queue_shutdown();
}
END_TEST

static Suite *
queue_suite(void)
{
	Suite	*s = suite_create("queue");
	TCase	*tc;

	tc = tcase_create("id");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_id_form);
	tcase_add_test(tc, test_id_order);
	tcase_add_test_raise_signal(tc, test_id_small_buffer, SIGABRT);
	tcase_add_loop_test(tc, test_is_id, 0, nitems(is_ids));
	suite_add_tcase(s, tc);

	tc = tcase_create("commit");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_commit, 0, nitems(writes));
	tcase_add_test(tc, test_commit_many);
	tcase_add_test(tc, test_commit_workers);
	tcase_add_test(tc, test_commit_workers_shutdown);
	tcase_add_loop_test(tc, test_sync_modes, 0, 2);
	tcase_add_loop_test(tc, test_sync_filesystem_fails, 1, 3);
	tcase_add_loop_test(tc, test_sync_file_fails, 0, nitems(file_fails));
	tcase_add_test(tc, test_abort);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_shutdown_completes);
	tcase_add_test(tc, test_commit_bad_envelope);
	tcase_add_test_raise_signal(tc, test_commit_wrong_envelope,
	    SIGABRT);
	suite_add_tcase(s, tc);

	tc = tcase_create("recovery");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_recovery);
	tcase_add_test(tc, test_recovery_then_commit);
	tcase_add_loop_test(tc, test_scan_short_of_descriptors, 0, 2);
	tcase_add_test(tc, test_reinit_count);
	tcase_add_test(tc, test_reinit_other_spool);
	suite_add_tcase(s, tc);

	tc = tcase_create("room");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_has_room);
	suite_add_tcase(s, tc);

	tc = tcase_create("lock");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_lock);
	suite_add_tcase(s, tc);

	tc = tcase_create("write_error");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_write_error, 0, nitems(full));
	suite_add_tcase(s, tc);

	tc = tcase_create("delivery");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_env_load);
	tcase_add_loop_test(tc, test_env_load_fails, 0, nitems(bad_loads));
	tcase_add_test(tc, test_env_update);
	tcase_add_test(tc, test_env_update_fails);
	tcase_add_loop_test(tc, test_env_rewrite, 0, 2);
	tcase_add_loop_test(tc, test_env_rewrite_removed, 0, 2);
	tcase_add_test(tc, test_remove);
	tcase_add_test(tc, test_env_fresh);
	tcase_add_test(tc, test_spare_reused);
	tcase_add_test(tc, test_spare_pool_full);
	tcase_add_test(tc, test_start_files_ahead);
	tcase_add_test(tc, test_hold_release);
	tcase_add_test(tc, test_hold_while_committing);
	tcase_add_loop_test(tc, test_hold_crash, 0, nitems(crashes));
	tcase_add_test(tc, test_hold_stale_link);
	tcase_add_test(tc, test_list_readonly);
	tcase_add_test(tc, test_spool_mode);
	tcase_add_test(tc, test_remove_then_recover);
	tcase_add_test(tc, test_msg_open);
	tcase_add_loop_test(tc, test_msg_headers, 0, nitems(hdrs));
	tcase_add_loop_test(tc, test_msg_headers_big, 0, nitems(big_hdrs));
	tcase_add_loop_test(tc, test_msg_read, 0, nitems(reads));
	tcase_add_loop_test(tc, test_bad_ids, 0, nitems(is_ids));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	util_strlcpy(top, "/tmp/check_queue.XXXXXX", sizeof top);
	if (mkdtemp(top) == NULL) {
		perror(top);
		return EXIT_FAILURE;
	}
	sr = srunner_create(queue_suite());
	/*
	 * queue.c keeps module state and some tests fork or limit file
	 * sizes: every test needs a process of its own, whatever CK_FORK
	 * says.
	 */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(AT_FDCWD, top);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
