/*
 * users.h: the users file (who may log in, with which secret, and where
 * their Maildir is) and the aliases file (which local addresses expand to
 * which others), loaded once into a read-only struct users and asked
 * questions.  See tern-users(5).
 */
#ifndef USERS_H
#define USERS_H

#include <stddef.h>

#include "addr.h"

/* "local@domain" and its NUL. */
#define USERS_ADDR_SIZE		ADDR_PATH_SIZE
/* A Maildir path and its NUL. */
#define USERS_PATH_SIZE		1024
/* Alias expansions allowed on the way from an address to a mailbox. */
#define USERS_DEPTH_MAX		10
/* :include: files within :include: files, the first one counted. */
#define USERS_INCLUDE_MAX	5

/* Results of users_resolve() other than 0. */
#define USERS_UNKNOWN		-1	/* a local address nobody has */
#define USERS_LOOP		-2	/* an alias loop, or deeper than 10 */

/* Told each warning of users_load(), "file:line: what", and its arg. */
typedef void	(*users_warn_fn)(const char *, void *);

/* What users_load() needs from the configuration; copied, not kept. */
struct users_params {
	const char		*users_path;	/* NULL or "": none */
	const char		*aliases_path;	/* NULL or "": none */
	const char *const	*local_domains;
	size_t			 nlocal_domains;
	const char		*default_domain;  /* NULL or "": the first */
	const char		*mailboxes;	/* base directory of Maildirs */
	const char		*postmaster;	/* NULL or "": postmaster@
						   <default_domain> */
	users_warn_fn		 warn;		/* NULL: log_warnx() */
	void			*warn_arg;
};

/* One final recipient of an address. */
struct users_rcpt {
	char	addr[USERS_ADDR_SIZE];	/* local part lowercased if local */
	char	mailbox[USERS_PATH_SIZE];	/* "" when remote */
};

struct users;

struct users	*users_load(const struct users_params *, char **);
void		 users_free(struct users *);
size_t		 users_count(const struct users *);
int		 users_is_local(const struct users *, const char *);

int		 users_resolve(const struct users *, const char *,
		    struct users_rcpt **, size_t *);
int		 users_resolve_notice(const struct users *, const char *,
		    struct users_rcpt **, size_t *);
int		 users_is_system(const char *);
int		 users_mailbox(const struct users *, const char *, char *,
		    size_t);
int		 users_owns(const struct users *, const char *, const char *);
int		 users_is_same_addr(const struct users *, const char *,
		    const char *);

int		 users_check_password(const struct users *, const char *,
		    const char *);
int		 users_check_hash(const char *, const char *);
int		 users_stored_secret(const struct users *, const char *, char *,
		    size_t);
int		 users_cram_secret(const struct users *, const char *, char *,
		    size_t);
int		 users_cram_usable(const struct users *);
int		 users_hash(const char *, char *, size_t, char **);

#endif
