/*
 * priv.c: ternd's privileges.  Started as root, ternd binds its
 * listeners and opens its spool first, then becomes the configured user
 * and group for good; it never runs mail as root.  Started as anyone
 * else it stays that user.  Either way the spool root must belong to the
 * user ternd runs as and must not be writable by anyone else, since
 * whoever can write it can inject or read mail.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "priv.h"
#include "queue.h"
#include "util.h"

/* Used when the built-in configuration starts as root without "tern". */
#define PRIV_FALLBACK_USER	"nobody"

/* Who ternd will run as, found by priv_prepare(). */
static struct {
	int	prepared;
	uid_t	uid;
	gid_t	gid;
	char	name[256];
} priv;

/*
 * Hand what a run as root left behind to the run-as user: entries owned
 * by root, down to depth levels below dirfd (queue/XX/ID.* is two), but
 * not the submissions waiting in maildrop/.  Never follows symbolic
 * links, and leaves anything owned by someone other than root alone.
 */
static int
priv_chown_tree(int dirfd, const char *path, int depth, uid_t uid,
    gid_t gid, size_t *changed, char **cause)
{
	DIR		*dir;
	struct dirent	*de;
	struct stat	 st;
	char		 sub[PATH_MAX];
	int		 fd, rc = 0;

	if ((fd = dup(dirfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* A dup shares the offset, which an earlier walk left at the end. */
	rewinddir(dir);
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;	/* gone meanwhile */
		(void)snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
		/* maildrop/ is its installer's to set up (priv_maildrop()). */
		if (strcmp(de->d_name, QUEUE_MAILDROP) == 0)
			continue;
		if (st.st_uid == 0 && (S_ISREG(st.st_mode) ||
		    S_ISDIR(st.st_mode))) {
			if (fchownat(dirfd, de->d_name, uid, gid,
			    AT_SYMLINK_NOFOLLOW) == -1) {
				xasprintf(cause, "chown %s: %s", sub,
				    strerror(errno));
				rc = -1;
				break;
			}
			(*changed)++;
		}
		if (S_ISDIR(st.st_mode) && depth > 1) {
			int	subfd = openat(dirfd, de->d_name, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (subfd == -1) {
				xasprintf(cause, "%s: %s", sub,
				    strerror(errno));
				rc = -1;
				break;
			}
			rc = priv_chown_tree(subfd, sub, depth - 1, uid, gid,
			    changed, cause);
			close(subfd);
		}
	}
	closedir(dir);
	return rc;
}

/*
 * maildrop/ takes files from every local user: sticky, setgid, writable
 * by all, and the run-as user's and group's, so that a file written
 * there takes that group and ternd reads it through it.  ternd started
 * as root never makes or changes it, since the unit forbids giving a
 * directory those bits (queue_maildrop_make()): it checks it, and names
 * what is wrong and the command that puts it right.  Only the built-in
 * configuration, which the unit never runs, makes a missing one, so
 * that the quick start works as root.  A file in maildrop/ is its
 * submitter's, named by its owner: nothing in it is ever chowned.
 */
static int
priv_maildrop(int spoolfd, const char *spool, uid_t uid, gid_t gid,
    const char *user, int make, char **cause)
{
	struct stat	 st;
	struct group	*gr;
	char		 group[64], dir[PATH_MAX];
	int		 fd;

	if (queue_spool_path(dir, sizeof dir, spool,
	    QUEUE_SPOOL_MAILDROP) == -1) {
		xasprintf(cause, "spool %s: path too long", spool);
		return -1;
	}

	if ((gr = getgrgid(gid)) != NULL)
		util_strlcpy(group, gr->gr_name, sizeof group);
	else
		(void)snprintf(group, sizeof group, "%lu", (unsigned long)gid);
	if (fstatat(spoolfd, QUEUE_MAILDROP, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT && make) {
			/* Root's while made, so nobody else may use it yet. */
			if (mkdirat(spoolfd, QUEUE_MAILDROP, 0700) == -1 ||
			    (fd = openat(spoolfd, QUEUE_MAILDROP, O_RDONLY |
			    O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
				xasprintf(cause, "%s: %s", dir,
				    strerror(errno));
				return -1;
			}
			if (fchmod(fd, QUEUE_MAILDROP_MODE) == -1 ||
			    fchown(fd, uid, gid) == -1) {
				xasprintf(cause, "%s: %s", dir,
				    strerror(errno));
				close(fd);
				return -1;
			}
			close(fd);
			return 0;
		}
		xasprintf(cause, "%s: %s; create it: install -d -o %s "
		    "-g %s -m %04o %s", dir, strerror(errno), user, group,
		    QUEUE_MAILDROP_MODE, dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		xasprintf(cause, "%s: not a directory; remove it and run: "
		    "install -d -o %s -g %s -m %04o %s", dir, user, group,
		    QUEUE_MAILDROP_MODE, dir);
		return -1;
	}
	if (st.st_uid != uid || st.st_gid != gid) {
		xasprintf(cause, "%s: owned by uid %lu gid %lu, expected "
		    "%s:%s; run: chown %s:%s %s", dir,
		    (unsigned long)st.st_uid, (unsigned long)st.st_gid, user,
		    group, user, group, dir);
		return -1;
	}
	if ((st.st_mode & 07777) != QUEUE_MAILDROP_MODE) {
		xasprintf(cause, "%s: mode %04o, expected %04o; run: "
		    "chmod %04o %s", dir, (unsigned)(st.st_mode & 07777),
		    QUEUE_MAILDROP_MODE, QUEUE_MAILDROP_MODE, dir);
		return -1;
	}
	return 0;
}

/* The spool root: owned by uid, not writable by group or others. */
static int
priv_check_spool(const char *spool, uid_t uid, const char *user,
    char **cause)
{
	struct stat	st;

	if (lstat(spool, &st) == -1) {
		xasprintf(cause, "spool %s: %s", spool, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		xasprintf(cause, "spool %s: not a directory", spool);
		return -1;
	}
	if (st.st_uid != uid) {
		xasprintf(cause, "spool %s: owned by uid %lu, expected %s "
		    "(uid %lu)", spool, (unsigned long)st.st_uid, user,
		    (unsigned long)uid);
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		xasprintf(cause, "spool %s: mode %04o is group/world writable",
		    spool, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	/* The mailbox roots will be checked here the same way. */
	return 0;
}

/*
 * A mailbox root that another user owns makes every local delivery
 * fail, quietly until mail arrives: say so at start.
 */
static void
priv_mailboxes_owner(const char *path, const struct stat *st, uid_t uid,
    const char *user)
{
	struct passwd	*pw;

	if (st->st_uid == uid)
		return;
	pw = getpwuid(st->st_uid);
	log_warnx("mailboxes %s: owned by %s (uid %lu), but ternd runs as %s "
	    "(uid %lu): local delivery will fail; run: chown %s %s", path,
	    pw != NULL ? pw->pw_name : "?", (unsigned long)st->st_uid, user,
	    (unsigned long)uid, user, path);
}

/*
 * Once root is gone, the spool and the mailbox root must still be
 * reachable through every directory above them: one that is not (a
 * built-in configuration run as root from a directory under /root, say)
 * accepts mail and then defers every delivery.  Blocking: access(2) at
 * start only, before the loop runs.
 */
static void
priv_check_reach(const char *what, const char *path)
{
	if (path == NULL || path[0] == '\0' ||
	    access(path, W_OK | X_OK) == 0 || errno == ENOENT)
		return;
	log_warnx("%s %s: %s for %s once root is dropped: let that user "
	    "through every directory above it (chmod o+x) or choose another "
	    "path", what, path, strerror(errno), priv.name);
}

/*
 * The root of the Maildirs must be the run-as user's to create mailboxes
 * in: made (with its parents, 0755) when missing, and given to the user
 * when root owns it.  Anything else owning it is left alone: local
 * delivery then reports the error it meets.
 */
static int
priv_mailboxes(const char *dir, uid_t uid, gid_t gid, const char *user,
    char **cause)
{
	struct stat	 st;
	char		 path[PATH_MAX];
	char		*p;

	if (util_strlcpy(path, dir, sizeof path) >= sizeof path) {
		xasprintf(cause, "mailboxes %s: path too long", dir);
		return -1;
	}
	for (p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(path, 0755) == -1 && errno != EEXIST) {
			xasprintf(cause, "mailboxes: mkdir %s: %s", path,
			    strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) == -1 && errno != EEXIST) {
		xasprintf(cause, "mailboxes: mkdir %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (lstat(path, &st) == -1) {
		xasprintf(cause, "mailboxes %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode) && st.st_uid == 0 &&
	    lchown(path, uid, gid) == -1) {
		xasprintf(cause, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_uid != 0)
		priv_mailboxes_owner(path, &st, uid, user);
	return 0;
}

/*
 * Started as an ordinary user: the spool and maildrop/ as for root, and
 * the mailbox root's owner when it exists (local delivery makes it).
 */
static int
priv_check_self(const char *spool, const char *mailboxes, const char *name,
    char **cause)
{
	struct stat	st;
	int		fd, rc;

	if (priv_check_spool(spool, geteuid(), name, cause) == -1)
		return -1;
	if ((fd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		xasprintf(cause, "spool %s: %s", spool, strerror(errno));
		return -1;
	}
	rc = priv_maildrop(fd, spool, geteuid(), getegid(), name, 0, cause);
	close(fd);
	if (rc == 0 && lstat(mailboxes, &st) == 0)
		priv_mailboxes_owner(mailboxes, &st, geteuid(), name);
	return rc;
}

/*
 * Called once the spool is open, before maildrop/ is.  As root: resolve
 * user/group ("" group: the user's primary group), give the spool to
 * them and check it, maildrop/ and the mailbox root.  builtin allows
 * falling back to "nobody" when the default user does not exist, so the
 * quick start works as root on a fresh machine.  Started as anyone else:
 * check the same for that user.
 */
int
priv_prepare(const char *user, const char *group, const char *spool,
    const char *mailboxes, int builtin, char **cause)
{
	struct passwd	*pw;
	struct group	*gr;
	char		*name = priv.name;
	uid_t		 uid;
	gid_t		 gid;
	size_t		 changed;
	int		 fd;

	if (geteuid() != 0) {
		struct passwd *me = getpwuid(geteuid());

		log_debug("not started as root: running as uid %lu, "
		    "user and group ignored", (unsigned long)geteuid());
		if (me != NULL)
			util_strlcpy(name, me->pw_name, sizeof priv.name);
		else
			(void)snprintf(name, sizeof priv.name, "uid %lu",
			    (unsigned long)geteuid());
		if (priv_check_self(spool, mailboxes, name, cause) == -1)
			return -1;
		priv.prepared = 1;
		return 0;
	}

	if (*user == '\0') {
		xasprintf(cause, "user: must not be empty when started as "
		    "root");
		return -1;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL && builtin &&
	    strcmp(user, "tern") == 0) {
		log_warnx("user tern does not exist: the built-in "
		    "configuration runs as %s", PRIV_FALLBACK_USER);
		user = PRIV_FALLBACK_USER;
		pw = getpwnam(user);
	}
	if (pw == NULL) {
		xasprintf(cause, "user: unknown user \"%s\" (create it, see "
		    "ternd(8))", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		xasprintf(cause, "user: \"%s\" is root; ternd does not run "
		    "mail as root", user);
		return -1;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	util_strlcpy(name, pw->pw_name, sizeof priv.name);
	if (*group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			xasprintf(cause, "group: unknown group \"%s\"", group);
			return -1;
		}
		gid = gr->gr_gid;
	}

	/* A first start as root created the tree as root. */
	if ((fd = open(spool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		xasprintf(cause, "spool %s: %s", spool, strerror(errno));
		return -1;
	}
	{
		struct stat st;

		if (fstat(fd, &st) == 0 && st.st_uid == 0 &&
		    fchown(fd, uid, gid) == -1) {
			xasprintf(cause, "chown %s: %s", spool,
			    strerror(errno));
			close(fd);
			return -1;
		}
	}
	/*
	 * The directories first (two levels: queue/XX); the messages in them
	 * (a third) only when root had left something there, since walking
	 * a million of them at every start would delay it by seconds.
	 * Nothing ternd does as root writes a message file.
	 */
	changed = 0;
	if (priv_chown_tree(fd, spool, 2, uid, gid, &changed, cause) == -1 ||
	    (changed > 0 &&
	    priv_chown_tree(fd, spool, 3, uid, gid, &changed, cause) == -1)) {
		close(fd);
		return -1;
	}
	if (priv_check_spool(spool, uid, name, cause) == -1 ||
	    priv_maildrop(fd, spool, uid, gid, name, builtin, cause) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	if (priv_mailboxes(mailboxes, uid, gid, name, cause) == -1)
		return -1;
	priv.uid = uid;
	priv.gid = gid;
	priv.prepared = 1;
	return 0;
}

/*
 * Become the run-as user and group for good, after priv_prepare() (called
 * here when it was not yet).  Nothing to do when not started as root.
 */
int
priv_drop(const char *user, const char *group, const char *spool,
    const char *mailboxes, int builtin, char **cause)
{
	uid_t	uid;
	gid_t	gid;

	if (!priv.prepared && priv_prepare(user, group, spool, mailboxes,
	    builtin, cause) == -1)
		return -1;
	if (geteuid() != 0)
		return 0;
	uid = priv.uid;
	gid = priv.gid;

	if (setgroups(1, &gid) == -1) {
		xasprintf(cause, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) == -1) {
		xasprintf(cause, "setresgid %lu: %s", (unsigned long)gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) == -1) {
		xasprintf(cause, "setresuid %lu: %s", (unsigned long)uid,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) != -1 || seteuid(0) != -1) {
		xasprintf(cause, "could get root back after dropping it");
		return -1;
	}
	log_info("running as %s (uid %lu, gid %lu)", priv.name,
	    (unsigned long)uid, (unsigned long)gid);
	priv_check_reach("spool", spool);
	priv_check_reach("mailboxes", mailboxes);
	return 0;
}
