/*
 * check_local.c: Maildir delivery.  The bytes stored (trace headers, CRLF
 * made LF, a lone CR kept, chunk boundaries anywhere), the unique name and
 * its ",S=" size, the Maildir and its parents made with owner-only modes
 * while an existing one is left as it is, many deliveries in a row, the
 * message's offset left alone, and every failure: a path that is a file
 * (permanent), a parent that is a file, a symbolic link, a directory that
 * refuses writes, a full disk, an unreadable message (all temporary, and
 * nothing left in tmp/ or new/).  Every test runs in its own process on
 * its own directory under /tmp.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "local.h"
#include "util.h"

#define CHUNK		(64 * 1024)	/* local.c reads this much at once */
#define PATH_SIZE	512
#define NMANY		200
#define NOBODY		65534		/* the user of the tests as non-root */
#define FSIZE_LIMIT	1000

static char	top[64];	/* every directory of this run */
static char	dir[128];	/* this test's directory */

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

static void
setup(void)
{
	int	n;

	n = snprintf(dir, sizeof dir, "%s/t.XXXXXX", top);
	ck_assert(n > 0 && (size_t)n < sizeof dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* Others may pass through, for the tests run as another user. */
	ck_assert_int_eq(chmod(dir, 0711), 0);
	umask(022);
}

static void
teardown(void)
{
	remove_tree(AT_FDCWD, dir);
}

/* snprintf that must not cut. */
static void __attribute__((format(printf, 3, 4)))
pathf(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0 && (size_t)n < size);
}

/* A path below this test's directory. */
static void __attribute__((format(printf, 3, 4)))
tpath(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(buf, size, "%s/", dir);
	ck_assert(n > 0 && (size_t)n < size);
	va_start(ap, fmt);
	n = vsnprintf(buf + n, size - (size_t)n, fmt, ap);
	va_end(ap);
	ck_assert(n >= 0);
}

/* A queued message: a file holding data, open read-only. */
static int
msg_fd(const char *data, size_t len)
{
	char	path[PATH_SIZE];
	int	fd;

	tpath(path, sizeof path, "message");
	unlink(path);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	fd = open(path, O_RDONLY);
	ck_assert_int_ne(fd, -1);
	return fd;
}

/* What the stored file must hold, built the plain way: all at once. */
static char *
expect(const char *return_path, const char *delivered_to, const char *msg,
    size_t len, size_t *lenp)
{
	char	*buf;
	size_t	 i, o;
	int	 n;

	buf = xmalloc(len + strlen(return_path) + strlen(delivered_to) + 64);
	n = sprintf(buf, "Return-Path: <%s>\nDelivered-To: %s\n", return_path,
	    delivered_to);
	o = (size_t)n;
	for (i = 0; i < len; i++) {
		if (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n')
			continue;
		buf[o++] = msg[i];
	}
	*lenp = o;
	return buf;
}

/* A whole file, or NULL. */
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
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = xmalloc((size_t)st.st_size + 1);
	while ((n = read(fd, buf + off, (size_t)st.st_size - off)) > 0)
		off += (size_t)n;
	close(fd);
	ck_assert_uint_eq(off, (size_t)st.st_size);
	buf[off] = '\0';
	*lenp = off;
	return buf;
}

/* How many entries a directory holds; the first one's name in first. */
static int
count_dir(const char *path, char *first, size_t size)
{
	DIR		*dp;
	struct dirent	*de;
	int		 n = 0;

	dp = opendir(path);
	ck_assert_msg(dp != NULL, "%s: %s", path, strerror(errno));
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			util_strlcpy(first, de->d_name, size);
	}
	closedir(dp);
	return n;
}

static void
assert_mode(const char *path, mode_t type, mode_t mode)
{
	struct stat	st;

	ck_assert_msg(lstat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_msg((st.st_mode & S_IFMT) == type, "%s: type %o", path,
	    (unsigned)(st.st_mode & S_IFMT));
	ck_assert_msg((st.st_mode & 07777) == mode, "%s: mode %o, not %o",
	    path, (unsigned)(st.st_mode & 07777), (unsigned)mode);
}

/* Neither tmp/ nor new/ holds anything. */
static void
assert_empty(const char *maildir)
{
	char	path[PATH_SIZE], name[256];

	pathf(path, sizeof path, "%s/tmp", maildir);
	ck_assert_msg(count_dir(path, name, sizeof name) == 0, "left: tmp/%s",
	    name);
	pathf(path, sizeof path, "%s/new", maildir);
	ck_assert_msg(count_dir(path, name, sizeof name) == 0, "left: new/%s",
	    name);
}

/* How many descriptors this process has open. */
static int
count_fds(void)
{
	return count_dir("/proc/self/fd", NULL, 0);
}

/* One delivery to maildir, which must leave no descriptor open. */
static enum local_result
deliver(const char *maildir, const char *return_path, int fd, char *err,
    size_t errsize)
{
	struct local_params	lp = {
		.maildir = maildir,
		.return_path = return_path,
		.delivered_to = "alice@example.org",
		.hostname = "mx.example.org",
	};
	enum local_result	res;
	int			n;

	n = count_fds();
	res = local_deliver(&lp, fd, err, errsize);
	ck_assert_int_eq(count_fds(), n);
	return res;
}

/*
 * Messages to store.  gen, when set, makes one of size octets: filler
 * with insert placed at offset at (CRLF or a lone CR at a chunk's edge).
 */
static const struct {
	const char	*name;
	const char	*return_path;
	const char	*text;
	size_t		 size;
	size_t		 at;
	const char	*insert;
} msgs[] = {
	{ "simple", "bob@example.net",
	  "Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
	  "Subject: hi\r\n\r\nbody\r\n", 0, 0, NULL },
	{ "null sender", "",
	  "Subject: bounce\r\n\r\nbody\r\n", 0, 0, NULL },
	{ "lone CR", "bob@example.net",
	  "Subject: a\r\n\r\nA lone\rCR, then CR CR LF\r\r\n\rx\r\n", 0, 0,
	  NULL },
	{ "dots", "bob@example.net",
	  "Subject: a\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n", 0,
	  0, NULL },
	{ "bare LF kept", "bob@example.net", "Subject: a\n\nb\r\n", 0, 0,
	  NULL },
	{ "ends in CR", "bob@example.net", "Subject: a\r\n\r\nend\r", 0, 0,
	  NULL },
	{ "no final newline", "bob@example.net", "Subject: a\r\n\r\nend", 0,
	  0, NULL },
	{ "empty", "bob@example.net", "", 0, 0, NULL },
	{ "big", "bob@example.net", NULL, 300 * 1024, 0, NULL },
	{ "CRLF across chunks", "b@x", NULL, CHUNK + 100, CHUNK - 1, "\r\n" },
	{ "CRLF ends chunk", "b@x", NULL, CHUNK + 100, CHUNK - 2, "\r\n" },
	{ "CRLF starts chunk", "b@x", NULL, CHUNK + 100, CHUNK, "\r\n" },
	{ "CR ends chunk", "b@x", NULL, CHUNK + 100, CHUNK - 1, "\rx" },
	{ "CR CRLF across", "b@x", NULL, CHUNK + 100, CHUNK - 1, "\r\r\n" },
	{ "CR ends file", "b@x", NULL, CHUNK, CHUNK - 1, "\r" },
	{ "CRLF ends file", "b@x", NULL, 2 * CHUNK, 2 * CHUNK - 2, "\r\n" },
};

/* Lines of varying length, CRLF ended, so every boundary case occurs. */
static char *
gen_msg(size_t _i, size_t *lenp)
{
	char	*buf;
	size_t	 i, line = 0, width = 1;

	if (msgs[_i].text != NULL) {
		*lenp = strlen(msgs[_i].text);
		return xstrdup(msgs[_i].text);
	}
	buf = xmalloc(msgs[_i].size);
	for (i = 0; i < msgs[_i].size; i++) {
		if (msgs[_i].insert == NULL && line + 2 == width &&
		    i + 1 < msgs[_i].size) {
			buf[i++] = '\r';
			buf[i] = '\n';
			line = 0;
			width = width % 997 + 1;
			continue;
		}
		buf[i] = (char)('a' + i % 26);
		line++;
	}
	if (msgs[_i].insert != NULL)
		memcpy(buf + msgs[_i].at, msgs[_i].insert,
		    strlen(msgs[_i].insert));
	*lenp = msgs[_i].size;
	return buf;
}

START_TEST(test_content)
{
	struct stat	 st;
	char		 md[PATH_SIZE], path[PATH_SIZE], name[256];
	char		 err[LOCAL_ERR_SIZE], *msg, *want, *got;
	size_t		 len, wantlen, gotlen;
	unsigned long long size;
	off_t		 off;
	int		 fd, n;

	msg = gen_msg(_i, &len);
	want = expect(msgs[_i].return_path, "alice@example.org", msg, len,
	    &wantlen);
	fd = msg_fd(msg, len);
	off = (off_t)(len / 2);
	ck_assert_int_eq(lseek(fd, off, SEEK_SET), off);
	tpath(md, sizeof md, "Maildir");

	strcpy(err, "not cleared");
	ck_assert_msg(deliver(md, msgs[_i].return_path, fd, err, sizeof err) ==
	    LOCAL_OK, "%s: %s", msgs[_i].name, err);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), off);

	pathf(path, sizeof path, "%s/tmp", md);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	pathf(path, sizeof path, "%s/cur", md);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	pathf(path, sizeof path, "%s/new", md);
	ck_assert_int_eq(count_dir(path, name, sizeof name), 1);
	pathf(path, sizeof path, "%s/new/%s", md, name);
	assert_mode(path, S_IFREG, 0600);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq((size_t)st.st_size, wantlen);

	got = read_all(path, &gotlen);
	ck_assert_ptr_nonnull(got);
	ck_assert_uint_eq(gotlen, wantlen);
	ck_assert_msg(memcmp(got, want, wantlen) == 0, "%s: content differs",
	    msgs[_i].name);

	/* The name ends in the file's size. */
	ck_assert_ptr_nonnull(strstr(name, ",S="));
	n = sscanf(strstr(name, ",S=") + 3, "%llu", &size);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(size, wantlen);

	close(fd);
	free(got);
	free(want);
	free(msg);
}
END_TEST

/* "<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>", the host escaped. */
START_TEST(test_name)
{
	struct local_params	 lp = {
		.return_path = "",
		.delivered_to = "a@example.org",
		.hostname = "mx/1:2,x",
	};
	struct timeval		 before, after;
	char			 md[PATH_SIZE], path[PATH_SIZE], name[256];
	char			 err[LOCAL_ERR_SIZE], host[64], rest[64];
	long long		 secs;
	long			 usecs, pid;
	unsigned long long	 q, size;
	int			 fd, end = 0;

	fd = msg_fd("x\r\n", 3);
	tpath(md, sizeof md, "Maildir");
	lp.maildir = md;
	gettimeofday(&before, NULL);
	ck_assert_int_eq(local_deliver(&lp, fd, err, sizeof err), LOCAL_OK);
	gettimeofday(&after, NULL);
	pathf(path, sizeof path, "%s/new", md);
	ck_assert_int_eq(count_dir(path, name, sizeof name), 1);

	ck_assert_msg(sscanf(name, "%lld.M%ldP%ldQ%llu.%63[^,]%63s%n", &secs,
	    &usecs, &pid, &q, host, rest, &end) == 6, "name %s", name);
	ck_assert_uint_eq((size_t)end, strlen(name));
	ck_assert(secs >= (long long)before.tv_sec &&
	    secs <= (long long)after.tv_sec);
	ck_assert(usecs >= 0 && usecs < 1000000);
	ck_assert_int_eq(pid, (long)getpid());
	ck_assert_str_eq(host, "mx\\0571\\0722\\054x");
	ck_assert_int_eq(sscanf(rest, ",S=%llu%n", &size, &end), 1);
	ck_assert_uint_eq((size_t)end, strlen(rest));
	ck_assert_uint_eq(size, strlen("Return-Path: <>\n"
	    "Delivered-To: a@example.org\nx\n"));
	ck_assert_ptr_null(strchr(name, '/'));
	ck_assert_ptr_null(strchr(name, ':'));
	close(fd);
}
END_TEST

static int
cmp_ull(const void *a, const void *b)
{
	const unsigned long long	*x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

/* Many deliveries in a row: as many files, no counter used twice. */
START_TEST(test_many)
{
	struct stat	 st;
	char		 md[PATH_SIZE], path[PATH_SIZE], err[LOCAL_ERR_SIZE];
	char		 name[256];
	DIR		*dp;
	struct dirent	*de;
	size_t		 wantlen;
	unsigned long long q[NMANY];
	int		 fd, i, n = 0;

	free(expect("b@x", "alice@example.org", "m\r\n", 3, &wantlen));
	fd = msg_fd("m\r\n", 3);
	tpath(md, sizeof md, "Maildir");
	for (i = 0; i < NMANY; i++) {
		ck_assert_msg(deliver(md, "b@x", fd, err, sizeof err) ==
		    LOCAL_OK, "delivery %d: %s", i, err);
	}
	pathf(path, sizeof path, "%s/new", md);
	ck_assert_int_eq(count_dir(path, name, sizeof name), NMANY);
	dp = opendir(path);
	ck_assert_ptr_nonnull(dp);
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		ck_assert_int_eq(fstatat(dirfd(dp), de->d_name, &st, 0), 0);
		ck_assert_uint_eq((size_t)st.st_size, wantlen);
		ck_assert_msg(sscanf(de->d_name, "%*d.M%*dP%*dQ%llu.",
		    &q[n]) == 1, "name %s", de->d_name);
		n++;
	}
	closedir(dp);
	ck_assert_int_eq(n, NMANY);
	/* Unique by the counter alone, whatever the clock says. */
	qsort(q, NMANY, sizeof q[0], cmp_ull);
	for (i = 1; i < NMANY; i++)
		ck_assert_msg(q[i] != q[i - 1], "counter %llu twice", q[i]);
	pathf(path, sizeof path, "%s/tmp", md);
	ck_assert_int_eq(count_dir(path, NULL, 0), 0);
	close(fd);
}
END_TEST

/* Missing parents and the Maildir are made, owner-only. */
START_TEST(test_make)
{
	static const char	*made[] = { "a", "a/b", "a/b/Maildir",
				    "a/b/Maildir/tmp", "a/b/Maildir/new",
				    "a/b/Maildir/cur" };
	char			 md[PATH_SIZE], path[PATH_SIZE];
	char			 err[LOCAL_ERR_SIZE];
	size_t			 i;
	int			 fd;

	fd = msg_fd("x\r\n", 3);
	tpath(md, sizeof md, "a//b/Maildir/");
	ck_assert_msg(deliver(md, "", fd, err, sizeof err) == LOCAL_OK, "%s",
	    err);
	for (i = 0; i < nitems(made); i++) {
		tpath(path, sizeof path, "%s", made[i]);
		assert_mode(path, S_IFDIR, 0700);
	}
	tpath(path, sizeof path, "a/b/Maildir/new");
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	close(fd);
}
END_TEST

/* An existing Maildir is used as it is, modes and all. */
START_TEST(test_existing)
{
	static const char	*sub[] = { "", "/tmp", "/new", "/cur" };
	char			 md[PATH_SIZE], path[PATH_SIZE];
	char			 err[LOCAL_ERR_SIZE];
	size_t			 i;
	int			 fd;

	tpath(md, sizeof md, "Maildir");
	for (i = 0; i < nitems(sub); i++) {
		pathf(path, sizeof path, "%s%s", md, sub[i]);
		ck_assert_int_eq(mkdir(path, 0750), 0);
		ck_assert_int_eq(chmod(path, 0750), 0);
	}
	pathf(path, sizeof path, "%s/cur/old:2,S", md);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ne(fd, -1);
	close(fd);

	fd = msg_fd("x\r\n", 3);
	ck_assert_msg(deliver(md, "", fd, err, sizeof err) == LOCAL_OK, "%s",
	    err);
	for (i = 0; i < nitems(sub); i++) {
		pathf(path, sizeof path, "%s%s", md, sub[i]);
		assert_mode(path, S_IFDIR, 0750);
	}
	pathf(path, sizeof path, "%s/new", md);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	pathf(path, sizeof path, "%s/cur", md);
	ck_assert_int_eq(count_dir(path, NULL, 0), 1);
	close(fd);
}
END_TEST

/* A file where the Maildir should be: a mistake to report, for good. */
START_TEST(test_path_is_file)
{
	struct stat	st;
	char		md[PATH_SIZE], err[LOCAL_ERR_SIZE];
	int		fd, mfd;

	tpath(md, sizeof md, "Maildir");
	mfd = open(md, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ne(mfd, -1);
	ck_assert_int_eq(write(mfd, "mbox\n", 5), 5);
	close(mfd);

	fd = msg_fd("x\r\n", 3);
	ck_assert_int_eq(deliver(md, "", fd, err, sizeof err), LOCAL_PERM);
	ck_assert_msg(strstr(err, md) != NULL && strstr(err,
	    "not a directory") != NULL, "err: %s", err);
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert_int_eq(lstat(md, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_int_eq(st.st_size, 5);
	close(fd);
}
END_TEST

/* A parent that is a file: not the Maildir itself, so temporary. */
START_TEST(test_parent_is_file)
{
	char	md[PATH_SIZE], path[PATH_SIZE], err[LOCAL_ERR_SIZE];
	int	fd, pfd;

	tpath(path, sizeof path, "file");
	pfd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ne(pfd, -1);
	close(pfd);
	tpath(md, sizeof md, "file/sub/Maildir");

	fd = msg_fd("x\r\n", 3);
	ck_assert_int_eq(deliver(md, "", fd, err, sizeof err), LOCAL_TEMP);
	ck_assert_msg(strstr(err, path) != NULL && strstr(err,
	    strerror(ENOTDIR)) != NULL, "err: %s", err);
	close(fd);
}
END_TEST

/* A symbolic link at the Maildir is never followed, with a slash or not. */
static const char *links[] = { "link", "link/", "link//" };

START_TEST(test_symlink)
{
	char	md[PATH_SIZE], real[PATH_SIZE], err[LOCAL_ERR_SIZE];
	int	fd;

	tpath(real, sizeof real, "real");
	ck_assert_int_eq(mkdir(real, 0700), 0);
	tpath(md, sizeof md, "link");
	ck_assert_int_eq(symlink(real, md), 0);
	tpath(md, sizeof md, "%s", links[_i]);

	fd = msg_fd("x\r\n", 3);
	ck_assert_int_eq(deliver(md, "", fd, err, sizeof err), LOCAL_TEMP);
	ck_assert_msg(strstr(err, "symbolic link") != NULL, "err: %s", err);
	ck_assert_int_eq(count_dir(real, NULL, 0), 0);
	close(fd);
}
END_TEST

/*
 * A directory of the Maildir that refuses writes.  Root ignores modes,
 * so the delivery then runs in a child as another user owning the
 * Maildir.
 */
static const char *refusing[] = { "tmp", "new" };

START_TEST(test_refused)
{
	char		 md[PATH_SIZE], path[PATH_SIZE], err[LOCAL_ERR_SIZE];
	char		 want[PATH_SIZE];
	enum local_result res;
	pid_t		 pid;
	size_t		 i;
	ssize_t		 n;
	int		 fd, p[2], status, root = geteuid() == 0;

	tpath(md, sizeof md, "Maildir");
	ck_assert_int_eq(mkdir(md, 0700), 0);
	for (i = 0; i < 3; i++) {
		pathf(path, sizeof path, "%s/%s", md,
		    i < 2 ? refusing[i] : "cur");
		ck_assert_int_eq(mkdir(path, 0700), 0);
		if (root)
			ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
	}
	if (root)
		ck_assert_int_eq(chown(md, NOBODY, NOBODY), 0);
	pathf(path, sizeof path, "%s/%s", md, refusing[_i]);
	ck_assert_int_eq(chmod(path, 0500), 0);
	fd = msg_fd("Subject: x\r\n\r\nbody\r\n", 20);

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(p[0]);
		if (root && (setgroups(0, NULL) == -1 ||
		    setgid(NOBODY) == -1 || setuid(NOBODY) == -1))
			_exit(2);
		memset(err, 0, sizeof err);
		res = deliver(md, "b@x", fd, err, sizeof err);
		if (write(p[1], &res, sizeof res) != sizeof res ||
		    write(p[1], err, sizeof err) != sizeof err)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &res, sizeof res), (ssize_t)sizeof res);
	n = read(p[0], err, sizeof err);
	ck_assert_int_eq(n, (ssize_t)sizeof err);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ck_assert_int_eq(res, LOCAL_TEMP);
	pathf(want, sizeof want, "maildir %s/%s: %s", md, refusing[_i],
	    strerror(EACCES));
	ck_assert_str_eq(err, want);
	assert_empty(md);
	ck_assert_int_eq(chmod(path, 0700), 0);
	close(fd);
}
END_TEST

/* The disk is full: nothing is left behind. */
START_TEST(test_write_fails)
{
	struct rlimit	 old, rl;
	char		 md[PATH_SIZE], err[LOCAL_ERR_SIZE], want[PATH_SIZE];
	char		*msg;
	size_t		 len = 5 * FSIZE_LIMIT;
	int		 fd, res;

	msg = xmalloc(len);
	memset(msg, 'x', len);
	fd = msg_fd(msg, len);
	tpath(md, sizeof md, "Maildir");
	ck_assert(signal(SIGXFSZ, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl = old;
	rl.rlim_cur = FSIZE_LIMIT;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	res = deliver(md, "b@x", fd, err, sizeof err);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);

	ck_assert_int_eq(res, LOCAL_TEMP);
	pathf(want, sizeof want, "maildir %s/tmp: %s", md, strerror(EFBIG));
	ck_assert_str_eq(err, want);
	assert_empty(md);
	close(fd);
	free(msg);
}
END_TEST

/* The message cannot be read: nothing is left behind. */
START_TEST(test_read_fails)
{
	char	md[PATH_SIZE], path[PATH_SIZE], err[LOCAL_ERR_SIZE];
	int	fd;

	close(msg_fd("x\r\n", 3));
	tpath(path, sizeof path, "message");
	fd = open(path, O_WRONLY);
	ck_assert_int_ne(fd, -1);
	tpath(md, sizeof md, "Maildir");
	ck_assert_int_eq(deliver(md, "b@x", fd, err, sizeof err), LOCAL_TEMP);
	ck_assert_msg(strstr(err, "reading the message") != NULL &&
	    strstr(err, strerror(EBADF)) != NULL, "err: %s", err);
	assert_empty(md);
	close(fd);
}
END_TEST

/* An address with a line break would forge a header: refused. */
START_TEST(test_bad_address)
{
	struct local_params	lp = {
		.return_path = "b@x\r\nX-Forged: yes",
		.delivered_to = "a@example.org",
		.hostname = "mx",
	};
	char			md[PATH_SIZE], err[LOCAL_ERR_SIZE];
	int			fd;

	fd = msg_fd("x\r\n", 3);
	tpath(md, sizeof md, "Maildir");
	lp.maildir = md;
	ck_assert_int_eq(local_deliver(&lp, fd, err, sizeof err), LOCAL_TEMP);
	ck_assert_ptr_nonnull(strstr(err, "line break"));
	ck_assert_int_eq(access(md, F_OK), -1);
	close(fd);
}
END_TEST

/* A short err buffer is cut, still terminated; none at all is fine. */
START_TEST(test_small_err)
{
	char	md[PATH_SIZE], err[8];
	int	fd, mfd;

	tpath(md, sizeof md, "Maildir");
	mfd = open(md, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ne(mfd, -1);
	close(mfd);
	fd = msg_fd("x\r\n", 3);
	memset(err, 'z', sizeof err);
	ck_assert_int_eq(deliver(md, "", fd, err, sizeof err), LOCAL_PERM);
	ck_assert_str_eq(err, "maildir");
	ck_assert_int_eq(deliver(md, "", fd, NULL, 0), LOCAL_PERM);
	close(fd);
}
END_TEST

static Suite *
local_suite(void)
{
	Suite	*s = suite_create("local");
	TCase	*tc;

	tc = tcase_create("deliver");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_content, 0, nitems(msgs));
	tcase_add_test(tc, test_name);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_make);
	tcase_add_test(tc, test_existing);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_path_is_file);
	tcase_add_test(tc, test_parent_is_file);
	tcase_add_loop_test(tc, test_symlink, 0, nitems(links));
	tcase_add_loop_test(tc, test_refused, 0, nitems(refusing));
	tcase_add_test(tc, test_write_fails);
	tcase_add_test(tc, test_read_fails);
	tcase_add_test(tc, test_bad_address);
	tcase_add_test(tc, test_small_err);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	util_strlcpy(top, "/tmp/check_local.XXXXXX", sizeof top);
	if (mkdtemp(top) == NULL || chmod(top, 0711) == -1) {
		perror(top);
		return EXIT_FAILURE;
	}
	sr = srunner_create(local_suite());
	/* Tests change limits, signals and users: each in its own process. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	remove_tree(AT_FDCWD, top);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
