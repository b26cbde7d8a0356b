/*
 * users.c: the users file and the aliases file (tern-users(5)), read once
 * into a struct users that is never changed afterwards, and the questions
 * asked of it: is this domain ours, where does this address go, whose
 * Maildir is this, does this password match, may this user send as that
 * address.
 *
 * It owns no global state, so that a check of a slow password hash can
 * run on another thread while the loop goes on: everything a question
 * needs is in the struct users or on the caller's stack.  It never
 * includes libevent, never creates a mailbox (local.c does) and never
 * logs a secret.
 */
#include "autoconf.h"

#include <sys/types.h>

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "users.h"
#include "util.h"

/* Longest line accepted in either file, end of line excluded. */
#define USERS_LINE_MAX		4096
/* Longest alias entry, its continuation lines joined. */
#define USERS_ENTRY_MAX		65536
/* How much of a bad item an error message quotes. */
#define USERS_QUOTE_SIZE	128
/* Field and target separators. */
#define USERS_SPACE		" \t"
#define USERS_LIST_SEP		" \t,"
/* The password field's forms other than a crypt(3) hash. */
#define USERS_PLAIN_PREFIX	"{PLAIN}"
#define USERS_NO_LOGIN		"-"
/* Random bytes for a salt when libxcrypt cannot find its own. */
#define USERS_SALT_BYTES	16

/* One line of the users file; the strings are the struct's own. */
struct users_user {
	char	*addr;		/* lowercased */
	char	*secret;	/* as written: "$...", "{PLAIN}...", or "-" */
	char	*mailbox;	/* absolute */
	int	 line;
};

/* One line of the aliases file: "local@domain" or "@domain" (catch-all). */
struct users_alias {
	char	 *key;
	char	**targets;	/* full addresses, local parts of local
				   ones lowercased */
	size_t	  ntargets;
	int	  line;
};

/*
 * An open-addressing table from a name to its index in an array; the
 * names belong to the array's entries.  Kept at most half full.
 */
struct users_map {
	struct users_slot {
		const char	*key;	/* NULL: empty */
		size_t		 index;
	}		*slots;
	size_t		 size;	/* a power of two, or 0 */
	size_t		 n;
};

/* Owned by whoever called users_load(); read-only until users_free(). */
struct users {
	char			**domains;	/* lowercased */
	size_t			  ndomains;
	char			  default_domain[ADDR_DOMAIN_SIZE];
	char			  postmaster[USERS_ADDR_SIZE];
	/* The implicit postmaster's mailbox, when it is one. */
	char			  pm_addr[USERS_ADDR_SIZE];
	char			  pm_mailbox[USERS_PATH_SIZE];
	char			 *mailboxes;

	char			 *users_path;
	struct users_user	 *users;
	size_t			  nusers;
	struct users_map	  user_map;

	struct users_alias	 *aliases;
	size_t			  naliases;
	struct users_map	  alias_map;

	users_warn_fn		  warn;		/* while loading */
	void			 *warn_arg;
};

/*
 * One file being read, line by line, for error messages.  The aliases
 * and include files are read in entries (a line and its continuation
 * lines), with one line read ahead.
 */
struct users_file {
	const struct users	*u;	/* whom to tell warnings */
	const char		*path;
	FILE			*f;
	char			*line;		/* getline() buffer */
	size_t			 linesize;
	int			 lineno;	/* of what is being looked at */
	int			 physno;	/* lines read so far */
	char			*ahead;		/* the next entry's first line */
	int			 aheadno;
	struct util_buf		 entry;
	int			 depth;		/* of :include: files */
};

/* State of one users_resolve(): the results and the addresses walked. */
struct users_walk {
	const struct users	*u;
	struct users_rcpt	*out;
	size_t			 nout;
	size_t			 outsize;
	struct users_seen {
		char	addr[USERS_ADDR_SIZE];
		int	depth;		/* the most it was expanded at */
		int	active;		/* on the current path */
	}			*seen;
	size_t			 nseen;
	size_t			 seensize;
};

static const char users_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* FNV-1a: names here are short and chosen by the administrator. */
static uint64_t
users_hash_name(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The slot of key: where it is, or the empty one where it would go. */
static struct users_slot *
users_map_slot(const struct users_map *m, const char *key)
{
	size_t	i;

	i = (size_t)users_hash_name(key) & (m->size - 1);
	while (m->slots[i].key != NULL && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->size - 1);
	return &m->slots[i];
}

/* The index of key, or -1. */
static ssize_t
users_map_find(const struct users_map *m, const char *key)
{
	const struct users_slot	*sl;

	if (m->size == 0)
		return -1;
	sl = users_map_slot(m, key);
	return sl->key != NULL ? (ssize_t)sl->index : -1;
}

/* Adds key (which must not be there yet), growing the table. */
static void
users_map_add(struct users_map *m, const char *key, size_t index)
{
	struct users_slot	*old = m->slots, *sl;
	size_t			 oldsize = m->size, i;

	if ((m->n + 1) * 2 > m->size) {
		m->size = m->size == 0 ? 64 : m->size * 2;
		m->slots = xcalloc(m->size, sizeof *m->slots);
		for (i = 0; i < oldsize; i++) {
			if (old[i].key != NULL)
				*users_map_slot(m, old[i].key) = old[i];
		}
		free(old);
	}
	sl = users_map_slot(m, key);
	sl->key = key;
	sl->index = index;
	m->n++;
}

/* "text" made printable and cut to a sane length, for an error. */
static const char *
users_quote(char *buf, size_t size, const char *text)
{
	return log_escape(buf, size, text, strlen(text));
}

/* Sets *cause to "path:line: item: why" with item made printable. */
static void
users_bad(char **cause, const struct users_file *uf, const char *item,
    const char *why)
{
	char	quoted[USERS_QUOTE_SIZE];

	if (item == NULL)
		xasprintf(cause, "%s:%d: %s", uf->path, uf->lineno, why);
	else {
		xasprintf(cause, "%s:%d: %s: %s", uf->path, uf->lineno,
		    users_quote(quoted, sizeof quoted, item), why);
	}
}

/*
 * The next line worth reading as it is, leading blanks kept, without its
 * end of line: 1, 0 at the end of the file, or -1 with *cause set.
 * Blank lines and lines whose first non-blank character is '#' are
 * skipped; a '#' further on is part of the text, since local parts may
 * contain one.
 */
static int
users_raw_line(struct users_file *uf, char **line, char **cause)
{
	ssize_t	 len;
	size_t	 text;
	char	*s;

	for (;;) {
		errno = 0;
		if ((len = getline(&uf->line, &uf->linesize, uf->f)) == -1) {
			if (ferror(uf->f)) {
				xasprintf(cause, "%s: %s", uf->path,
				    strerror(errno != 0 ? errno : EIO));
				return -1;
			}
			return 0;
		}
		uf->lineno = ++uf->physno;
		if ((size_t)len != strlen(uf->line)) {
			users_bad(cause, uf, NULL, "NUL character in line");
			return -1;
		}
		text = strcspn(uf->line, "\r\n");
		if (text > USERS_LINE_MAX) {
			xasprintf(cause, "%s:%d: line longer than %d "
			    "characters", uf->path, uf->lineno,
			    USERS_LINE_MAX);
			return -1;
		}
		uf->line[text] = '\0';
		s = uf->line + strspn(uf->line, USERS_SPACE);
		if (*s == '\0' || *s == '#')
			continue;
		*line = uf->line;
		return 1;
	}
}

/* The next line worth reading, its leading blanks gone. */
static int
users_next_line(struct users_file *uf, char **line, char **cause)
{
	int	rc;

	if ((rc = users_raw_line(uf, line, cause)) == 1)
		*line += strspn(*line, USERS_SPACE);
	return rc;
}

/*
 * The next entry of an aliases or include file: a line and the lines
 * after it that start with a blank, joined by a space, as sendmail and
 * Postfix read them (comments and blank lines between are skipped).  1
 * with uf->lineno the entry's first line, 0 at the end, or -1 with
 * *cause set.
 */
static int
users_next_entry(struct users_file *uf, char **entry, char **cause)
{
	char	*s;
	int	 rc, first;

	if (uf->ahead == NULL) {
		if ((rc = users_raw_line(uf, &s, cause)) != 1)
			return rc;
		uf->ahead = xstrdup(s);
		uf->aheadno = uf->lineno;
	}
	uf->entry.len = 0;
	util_buf_adds(&uf->entry, uf->ahead);
	free(uf->ahead);
	uf->ahead = NULL;
	first = uf->aheadno;
	while ((rc = users_raw_line(uf, &s, cause)) == 1) {
		if (strchr(USERS_SPACE, *s) == NULL) {
			uf->ahead = xstrdup(s);
			uf->aheadno = uf->lineno;
			break;
		}
		if (uf->entry.len + 1 + strlen(s) > USERS_ENTRY_MAX) {
			xasprintf(cause, "%s:%d: entry longer than %d "
			    "characters with its continuation lines",
			    uf->path, first, USERS_ENTRY_MAX);
			return -1;
		}
		util_buf_add(&uf->entry, " ", 1);
		util_buf_adds(&uf->entry, s);
	}
	if (rc == -1)
		return -1;
	uf->lineno = first;
	*entry = uf->entry.data + strspn(uf->entry.data, USERS_SPACE);
	return 1;
}

/* Opens path for users_next_line(): 0, or -1 with *cause set. */
static int
users_open(struct users_file *uf, const char *path, char **cause)
{
	memset(uf, 0, sizeof *uf);
	uf->path = path;
	if ((uf->f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Closes the file; the line buffer held secrets, so it is wiped. */
static void
users_close(struct users_file *uf)
{
	if (uf->line != NULL)
		explicit_bzero(uf->line, uf->linesize);
	free(uf->line);
	free(uf->ahead);
	free(uf->entry.data);
	if (uf->f != NULL)
		fclose(uf->f);
}

/* The next item of s separated by any of sep, NUL-terminated in place. */
static char *
users_token(char **s, const char *sep)
{
	char	*start, *end;

	start = *s + strspn(*s, sep);
	if (*start == '\0') {
		*s = start;
		return NULL;
	}
	end = start + strcspn(start, sep);
	if (*end != '\0')
		*end++ = '\0';
	*s = end;
	return start;
}

int
users_is_local(const struct users *u, const char *domain)
{
	size_t	i;

	for (i = 0; i < u->ndomains; i++) {
		if (strcasecmp(u->domains[i], domain) == 0)
			return 1;
	}
	return 0;
}

/* Whether s has no space nor control character. */
static int
users_is_printable(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

/*
 * An address as this module compares it, in out: the domain lowercased,
 * and the local part too when the domain is ours (local parts elsewhere
 * are the other side's business, RFC 5321 2.4).  The '@' is the last one
 * of the address.  -1 when there is no '@', either side is empty, a
 * control character appears, or it does not fit.
 */
static int
users_normalize(const struct users *u, const char *in, char *out,
    size_t size)
{
	char	*at;

	if (!users_is_printable(in))
		return -1;
	if (util_strlcpy(out, in, size) >= size)
		return -1;
	if ((at = strrchr(out, '@')) == NULL || at == out || at[1] == '\0')
		return -1;
	util_lowercase(at + 1);
	if (users_is_local(u, at + 1)) {
		*at = '\0';
		util_lowercase(out);
		*at = '@';
	}
	return 0;
}

/* The user of a normalized address, or NULL. */
static const struct users_user *
users_find_user(const struct users *u, const char *addr)
{
	ssize_t	i;

	if ((i = users_map_find(&u->user_map, addr)) == -1)
		return NULL;
	return &u->users[i];
}

/* The alias of a normalized address or "@domain", or NULL. */
static const struct users_alias *
users_find_alias(const struct users *u, const char *key)
{
	ssize_t	i;

	if ((i = users_map_find(&u->alias_map, key)) == -1)
		return NULL;
	return &u->aliases[i];
}

/* The user of an authenticated name (any case), or NULL. */
static const struct users_user *
users_find_login(const struct users *u, const char *user)
{
	char	addr[USERS_ADDR_SIZE];

	if (users_normalize(u, user, addr, sizeof addr) == -1)
		return NULL;
	return users_find_user(u, addr);
}

/*
 * Decodes base64 (RFC 4648 section 4, padding optional) into out and
 * NUL-terminates it: the decoded length, or -1 if in is not base64 or
 * does not fit.
 */
static ssize_t
users_b64_decode(const char *in, unsigned char *out, size_t size)
{
	const char	*p;
	size_t		 len, pad = 0, i, o = 0;
	uint32_t	 acc = 0;
	int		 bits = 0;

	len = strlen(in);
	while (len > 0 && in[len - 1] == '=' && pad < 2) {
		len--;
		pad++;
	}
	if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
		return -1;
	for (i = 0; i < len; i++) {
		if (in[i] == '\0' || (p = strchr(users_b64, in[i])) == NULL)
			return -1;
		acc = (acc << 6) | (uint32_t)(p - users_b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= size)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (size == 0)
		return -1;
	out[o] = '\0';
	return (ssize_t)o;
}

/*
 * The password of a "{PLAIN}base64" secret as a C string in buf: its
 * length, or -1 if it is not one, is empty, holds a NUL or does not fit.
 */
static ssize_t
users_plain_decode(const char *secret, char *buf, size_t size)
{
	size_t	plen = strlen(USERS_PLAIN_PREFIX);
	ssize_t	n;

	if (strncmp(secret, USERS_PLAIN_PREFIX, plen) != 0)
		return -1;
	n = users_b64_decode(secret + plen, (unsigned char *)buf, size);
	if (n <= 0 || strlen(buf) != (size_t)n) {
		if (size > 0)
			explicit_bzero(buf, size);
		return -1;
	}
	return n;
}

/* Whether a password field can be used as written; NULL or why not. */
static const char *
users_check_secret(const char *secret)
{
	char	plain[USERS_LINE_MAX];

	if (strcmp(secret, USERS_NO_LOGIN) == 0)
		return NULL;
	if (strncmp(secret, USERS_PLAIN_PREFIX,
	    strlen(USERS_PLAIN_PREFIX)) == 0) {
		if (users_plain_decode(secret, plain, sizeof plain) == -1)
			return "{PLAIN} secret is not base64 of a password";
		explicit_bzero(plain, sizeof plain);
		return NULL;
	}
	if (secret[0] != '$')
		return "password is not a crypt(3) hash, {PLAIN} or \"-\"";
	if (strlen(secret) >= CRYPT_OUTPUT_SIZE)
		return "password hash too long";
#ifdef CRYPT_CHECKSALT_AVAILABLE
	if (crypt_checksalt(secret) == CRYPT_SALT_INVALID)
		return "password hash of an unknown or invalid kind";
#endif
	return NULL;
}

/* Adds a user from its fields; -1 with *cause set if they are wrong. */
static int
users_add_user(struct users *u, const struct users_file *uf, char *addr,
    const char *secret, const char *mailbox, char **cause)
{
	struct users_user	*uu;
	char			 path[USERS_PATH_SIZE], norm[USERS_ADDR_SIZE];
	char			*at, *local;
	const char		*why;
	ssize_t			 i;

	if (users_normalize(u, addr, norm, sizeof norm) == -1) {
		users_bad(cause, uf, addr, "not an address");
		return -1;
	}
	at = strrchr(norm, '@');
	if (!users_is_local(u, at + 1)) {
		users_bad(cause, uf, norm, "not a local domain");
		return -1;
	}
	if ((i = users_map_find(&u->user_map, norm)) != -1) {
		xasprintf(cause, "%s:%d: %s: listed twice (first on line %d)",
		    uf->path, uf->lineno, norm, u->users[i].line);
		return -1;
	}
	if (secret == NULL) {
		users_bad(cause, uf, norm, "no password field");
		return -1;
	}
	if ((why = users_check_secret(secret)) != NULL) {
		users_bad(cause, uf, norm, why);
		return -1;
	}
	if (mailbox != NULL) {
		if (mailbox[0] != '/') {
			users_bad(cause, uf, norm,
			    "mailbox is not an absolute path");
			return -1;
		}
		if (!users_is_printable(mailbox)) {
			users_bad(cause, uf, norm,
			    "mailbox path has a control character");
			return -1;
		}
		if (util_strlcpy(path, mailbox, sizeof path) >= sizeof path) {
			users_bad(cause, uf, norm, "mailbox path too long");
			return -1;
		}
	} else {
		/* The local part becomes a directory name. */
		local = norm;
		*at = '\0';
		if (local[0] == '.' || strchr(local, '/') != NULL) {
			*at = '@';
			users_bad(cause, uf, norm, "local part unfit for a "
			    "mailbox name (give a mailbox path)");
			return -1;
		}
		if ((size_t)snprintf(path, sizeof path, "%s/%s/%s",
		    u->mailboxes, at + 1, local) >= sizeof path) {
			*at = '@';
			users_bad(cause, uf, norm, "mailbox path too long");
			return -1;
		}
		*at = '@';
	}

	u->users = xreallocarray(u->users, u->nusers + 1, sizeof *u->users);
	uu = &u->users[u->nusers];
	uu->addr = xstrdup(norm);
	uu->secret = xstrdup(secret);
	uu->mailbox = xstrdup(path);
	uu->line = uf->lineno;
	users_map_add(&u->user_map, uu->addr, u->nusers);
	u->nusers++;
	return 0;
}

/* Reads the users file: "address password [mailbox]" lines. */
static int
users_read_users(struct users *u, const char *path, char **cause)
{
	struct users_file	 uf;
	char			*line, *addr, *secret, *mailbox;
	int			 rc;

	if (users_open(&uf, path, cause) == -1)
		return -1;
	while ((rc = users_next_line(&uf, &line, cause)) == 1) {
		addr = users_token(&line, USERS_SPACE);
		secret = users_token(&line, USERS_SPACE);
		mailbox = users_token(&line, USERS_SPACE);
		if (users_token(&line, USERS_SPACE) != NULL) {
			users_bad(cause, &uf, addr,
			    "too many fields (address password [mailbox])");
			rc = -1;
			break;
		}
		if (users_add_user(u, &uf, addr, secret, mailbox,
		    cause) == -1) {
			rc = -1;
			break;
		}
	}
	users_close(&uf);
	return rc;
}

/* Tells a warning, "file:line: what", to whoever loads. */
static void __attribute__((format(printf, 3, 4)))
users_warn(const struct users_file *uf, const char *item, const char *fmt,
    ...)
{
	const struct users	*u = uf->u;
	char			 quoted[USERS_QUOTE_SIZE], *msg, *why;
	va_list			 ap;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
	if (item != NULL)
		xasprintf(&msg, "%s:%d: %s: %s", uf->path, uf->lineno,
		    users_quote(quoted, sizeof quoted, item), why);
	else
		xasprintf(&msg, "%s:%d: %s", uf->path, uf->lineno, why);
	if (u->warn != NULL)
		u->warn(msg, u->warn_arg);
	else
		log_warnx("%s", msg);
	free(why);
	free(msg);
}

/*
 * Checks and normalizes one alias key: "local@domain" or "@domain" with
 * the domain ours, or a bare name (/etc/aliases), which stands for that
 * local part at every local domain.  0, or -1 with *cause set.
 */
static int
users_alias_key(const struct users *u, const struct users_file *uf,
    char *key, char *norm, size_t size, char **cause)
{
	char	*at;

	if (strchr(key, '@') == NULL) {
		if (key[0] == '"' || !users_is_printable(key) ||
		    util_strlcpy(norm, key, size) >= size) {
			users_bad(cause, uf, key, "not a name, an address or "
			    "@domain");
			return -1;
		}
		util_lowercase(norm);
		return 0;
	}
	if (key[0] == '@') {
		if (util_strlcpy(norm, key, size) >= size || key[1] == '\0' ||
		    strchr(key + 1, '@') != NULL || !users_is_printable(key)) {
			users_bad(cause, uf, key, "not a name, an address or "
			    "@domain");
			return -1;
		}
		util_lowercase(norm);
	} else if (users_normalize(u, key, norm, size) == -1) {
		users_bad(cause, uf, key, "not a name, an address or @domain");
		return -1;
	}
	at = strrchr(norm, '@');
	if (!users_is_local(u, at + 1)) {
		users_bad(cause, uf, norm, "not a local domain");
		return -1;
	}
	return 0;
}

/* The targets of one alias as they are read. */
struct users_targets {
	char		**v;
	size_t		  n;
	/* The first target skipped on the entry being read, and how many. */
	char		 *skipped;
	size_t		  nskipped;
	int		  dropped;	/* something warned about, left out */
};

static void
users_targets_free(struct users_targets *t)
{
	size_t	i;

	for (i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	free(t->skipped);
	memset(t, 0, sizeof *t);
}

/* One warning for the entry just read, if it had skipped targets. */
static void
users_targets_warn(struct users_targets *t, const struct users_file *uf)
{
	if (t->nskipped == 0)
		return;
	users_warn(uf, t->skipped, "%s skipped%s: tern runs no command and "
	    "writes no file for an alias", t->skipped[0] == '|' ?
	    "command" : "file", t->nskipped > 1 ? " with the other "
	    "commands and files of the line" : "");
	free(t->skipped);
	t->skipped = NULL;
	t->nskipped = 0;
}

/* The next item of s up to a comma outside double quotes. */
static char *
users_list_item(char **s)
{
	char	*start, *p;
	int	 quoted = 0;

	start = *s + strspn(*s, USERS_SPACE ",");
	if (*start == '\0') {
		*s = start;
		return NULL;
	}
	for (p = start; *p != '\0'; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == ',' && !quoted)
			break;
	}
	if (*p != '\0')
		*p++ = '\0';
	*s = p;
	return start;
}

static int	users_add_targets(struct users *, struct users_targets *,
		    const struct users_file *, char *, char **);

/*
 * ":include:path": the targets of that file, one or more per line, as
 * sendmail reads them.  A file that cannot be read is a warning, as is
 * a relative path or one nested too deep: the rest of the alias stands.
 * Blocking: a local file, read at start and reload like the others.
 */
static int
users_include(struct users *u, struct users_targets *t,
    const struct users_file *from, const char *path, char **cause)
{
	struct users_file	 uf;
	char			*entry, *why = NULL;
	int			 rc;

	if (path[0] != '/') {
		users_warn(from, path, ":include: is not an absolute path; "
		    "skipped");
		t->dropped = 1;
		return 0;
	}
	if (from->depth + 1 > USERS_INCLUDE_MAX) {
		users_warn(from, path, ":include: files nested deeper than "
		    "%d; skipped", USERS_INCLUDE_MAX);
		t->dropped = 1;
		return 0;
	}
	if (users_open(&uf, path, &why) == -1) {
		users_warn(from, NULL, ":include:%s; skipped", why);
		free(why);
		t->dropped = 1;
		return 0;
	}
	uf.u = u;
	uf.depth = from->depth + 1;
	while ((rc = users_next_entry(&uf, &entry, cause)) == 1) {
		if (users_add_targets(u, t, &uf, entry, cause) == -1) {
			rc = -1;
			break;
		}
		users_targets_warn(t, &uf);
	}
	users_close(&uf);
	return rc;
}

/* Notes a |command or /file target of the entry, which is skipped. */
static void
users_skip(struct users_targets *t, const char *item)
{
	if (t->nskipped++ == 0)
		t->skipped = xstrdup(item);
}

/*
 * One address or name of a list: a bare name (or "\name") is that user
 * at the default domain.
 */
static int
users_add_target(struct users *u, struct users_targets *t,
    const struct users_file *uf, char *word, char **cause)
{
	char		 target[USERS_ADDR_SIZE], buf[USERS_ADDR_SIZE];
	const char	*kind, *addr = word;
	size_t		 i;

	if (word[0] == '|' || word[0] == '/') {
		users_skip(t, word);
		return 0;
	}
	if (word[0] == '\\')
		addr = ++word;
	if (*word != '\0' && strchr(word, '@') == NULL) {
		if (*u->default_domain == '\0' ||
		    (size_t)snprintf(buf, sizeof buf, "%s@%s", word,
		    u->default_domain) >= sizeof buf) {
			users_bad(cause, uf, word, "a name needs a "
			    "default_domain to be an address");
			return -1;
		}
		addr = buf;
	}
	if (users_normalize(u, addr, target, sizeof target) == -1) {
		kind = word[0] == '@' ? "a target must be a full address, "
		    "not @domain" : "target is not an address";
		users_bad(cause, uf, word, kind);
		return -1;
	}
	for (i = 0; i < t->n; i++) {
		if (strcmp(t->v[i], target) == 0)
			return 0;
	}
	t->v = xreallocarray(t->v, t->n + 1, sizeof *t->v);
	t->v[t->n++] = xstrdup(target);
	return 0;
}

/*
 * The targets of a list: items separated by commas (outside double
 * quotes), each an address or several separated by blanks, a
 * ":include:" file, or a |command or /file, skipped with one warning
 * per entry.  0, or -1 with *cause set.
 */
static int
users_add_targets(struct users *u, struct users_targets *t,
    const struct users_file *uf, char *list, char **cause)
{
	char	*item, *word;
	size_t	 len;

	while ((item = users_list_item(&list)) != NULL) {
		len = strlen(item);
		while (len > 0 && strchr(USERS_SPACE, item[len - 1]) != NULL)
			item[--len] = '\0';
		if (len >= 2 && item[0] == '"' && item[len - 1] == '"') {
			item[len - 1] = '\0';
			item++;
		}
		if (item[0] == '|' || item[0] == '/') {
			users_skip(t, item);
			continue;
		}
		if (strncasecmp(item, ":include:", 9) == 0) {
			item += 9;
			item += strspn(item, USERS_SPACE);
			if (users_include(u, t, uf, item, cause) == -1)
				return -1;
			continue;
		}
		while ((word = users_token(&item, USERS_SPACE)) != NULL) {
			if (users_add_target(u, t, uf, word, cause) == -1)
				return -1;
		}
	}
	return 0;
}

/*
 * Adds an alias from its key and the rest of its entry.  One whose every
 * target was skipped is left out, with the warning saying why.
 */
static int
users_add_alias(struct users *u, const struct users_file *uf, char *key,
    char *rest, char **cause)
{
	struct users_alias	*ua;
	struct users_targets	 t;
	char			 norm[USERS_ADDR_SIZE];
	ssize_t			 i;
	int			 skipped;

	if (users_alias_key(u, uf, key, norm, sizeof norm, cause) == -1)
		return -1;
	if ((i = users_map_find(&u->alias_map, norm)) != -1) {
		xasprintf(cause, "%s:%d: %s: listed twice (first on line %d)",
		    uf->path, uf->lineno, norm, u->aliases[i].line);
		return -1;
	}
	if ((i = users_map_find(&u->user_map, norm)) != -1) {
		xasprintf(cause, "%s:%d: %s: also a user (%s:%d)", uf->path,
		    uf->lineno, norm, u->users_path, u->users[i].line);
		return -1;
	}
	memset(&t, 0, sizeof t);
	if (users_add_targets(u, &t, uf, rest, cause) == -1) {
		users_targets_free(&t);
		return -1;
	}
	skipped = t.nskipped > 0 || t.dropped;
	users_targets_warn(&t, uf);
	if (t.n == 0) {
		users_targets_free(&t);
		if (skipped) {
			users_warn(uf, norm, "no target left; not an alias");
			return 0;
		}
		users_bad(cause, uf, norm, "no targets");
		return -1;
	}
	u->aliases = xreallocarray(u->aliases, u->naliases + 1,
	    sizeof *u->aliases);
	ua = &u->aliases[u->naliases];
	memset(ua, 0, sizeof *ua);
	ua->key = xstrdup(norm);
	ua->line = uf->lineno;
	ua->targets = t.v;
	ua->ntargets = t.n;
	u->naliases++;
	users_map_add(&u->alias_map, ua->key, u->naliases - 1);
	return 0;
}

/*
 * Reads the aliases file: "key: target, target ..." entries, in tern's
 * form or in the traditional one of /etc/aliases (tern-users(5)).
 */
static int
users_read_aliases(struct users *u, const char *path, char **cause)
{
	struct users_file	 uf;
	char			*line, *key, *colon;
	int			 rc;

	if (users_open(&uf, path, cause) == -1)
		return -1;
	uf.u = u;
	while ((rc = users_next_entry(&uf, &line, cause)) == 1) {
		if ((colon = strchr(line, ':')) == NULL) {
			users_bad(cause, &uf, NULL,
			    "not \"name: target, ...\" (no ':')");
			rc = -1;
			break;
		}
		*colon = '\0';
		key = users_token(&line, USERS_SPACE);
		if (key == NULL || users_token(&line, USERS_SPACE) != NULL) {
			users_bad(cause, &uf, NULL,
			    "not \"name: target, ...\" (one name "
			    "before ':')");
			rc = -1;
			break;
		}
		if (users_add_alias(u, &uf, key, colon + 1, cause) == -1) {
			rc = -1;
			break;
		}
	}
	users_close(&uf);
	return rc;
}

/* Copies what users_load() needs of the parameters. */
static int
users_setup(struct users *u, const struct users_params *up, char **cause)
{
	char		 quoted[USERS_QUOTE_SIZE];
	const char	*dflt;
	size_t		 i;

	u->domains = xcalloc(up->nlocal_domains + 1, sizeof *u->domains);
	for (i = 0; i < up->nlocal_domains; i++) {
		u->domains[i] = xstrdup(up->local_domains[i]);
		util_lowercase(u->domains[i]);
	}
	u->ndomains = up->nlocal_domains;

	dflt = up->default_domain;
	if ((dflt == NULL || *dflt == '\0') && u->ndomains > 0)
		dflt = u->domains[0];
	if (dflt != NULL && util_strlcpy(u->default_domain, dflt,
	    sizeof u->default_domain) >= sizeof u->default_domain) {
		xasprintf(cause, "default domain too long");
		return -1;
	}
	util_lowercase(u->default_domain);

	if (up->mailboxes == NULL || *up->mailboxes == '\0') {
		xasprintf(cause, "no mailboxes directory");
		return -1;
	}
	u->mailboxes = xstrdup(up->mailboxes);

	if (up->postmaster != NULL && *up->postmaster != '\0') {
		if (users_normalize(u, up->postmaster, u->postmaster,
		    sizeof u->postmaster) == -1) {
			xasprintf(cause, "postmaster %s: not an address",
			    users_quote(quoted, sizeof quoted,
			    up->postmaster));
			return -1;
		}
	} else if (*u->default_domain != '\0') {
		(void)snprintf(u->postmaster, sizeof u->postmaster,
		    "postmaster@%s", u->default_domain);
	}

	/*
	 * postmaster@<default_domain> is a mailbox of its own when it is
	 * the postmaster and nobody else takes it (RFC 5321 4.5.1).
	 */
	if (*u->default_domain != '\0' && users_is_local(u,
	    u->default_domain)) {
		(void)snprintf(u->pm_addr, sizeof u->pm_addr,
		    "postmaster@%s", u->default_domain);
		if ((size_t)snprintf(u->pm_mailbox, sizeof u->pm_mailbox,
		    "%s/%s/postmaster", u->mailboxes, u->default_domain) >=
		    sizeof u->pm_mailbox) {
			xasprintf(cause, "postmaster's mailbox path too long");
			return -1;
		}
	}
	return 0;
}

/*
 * Reads the users and aliases files named in up: a struct users, or NULL
 * with *cause set to "file:line: what is wrong".
 */
struct users *
users_load(const struct users_params *up, char **cause)
{
	struct users	*u;

	u = xcalloc(1, sizeof *u);
	u->warn = up->warn;
	u->warn_arg = up->warn_arg;
	if (users_setup(u, up, cause) == -1)
		goto fail;
	if (up->users_path != NULL && *up->users_path != '\0') {
		u->users_path = xstrdup(up->users_path);
		if (users_read_users(u, up->users_path, cause) == -1)
			goto fail;
	}
	if (up->aliases_path != NULL && *up->aliases_path != '\0') {
		if (users_read_aliases(u, up->aliases_path, cause) == -1)
			goto fail;
	}
	u->warn = NULL;
	u->warn_arg = NULL;
	return u;

fail:
	users_free(u);
	return NULL;
}

void
users_free(struct users *u)
{
	size_t	i, j;

	if (u == NULL)
		return;
	for (i = 0; i < u->ndomains; i++)
		free(u->domains[i]);
	free(u->domains);
	free(u->mailboxes);
	free(u->users_path);
	for (i = 0; i < u->nusers; i++) {
		free(u->users[i].addr);
		explicit_bzero(u->users[i].secret,
		    strlen(u->users[i].secret));
		free(u->users[i].secret);
		free(u->users[i].mailbox);
	}
	free(u->users);
	free(u->user_map.slots);
	for (i = 0; i < u->naliases; i++) {
		free(u->aliases[i].key);
		for (j = 0; j < u->aliases[i].ntargets; j++)
			free(u->aliases[i].targets[j]);
		free(u->aliases[i].targets);
	}
	free(u->aliases);
	free(u->alias_map.slots);
	free(u);
}

/* The number of users, for log lines. */
size_t
users_count(const struct users *u)
{
	return u->nusers;
}

/* Adds a final recipient unless it is there already. */
static void
users_walk_add(struct users_walk *w, const char *addr, const char *mailbox)
{
	struct users_rcpt	*r;
	size_t			 i;

	for (i = 0; i < w->nout; i++) {
		if (strcmp(w->out[i].addr, addr) == 0)
			return;
	}
	if (w->nout == w->outsize) {
		w->outsize = w->outsize == 0 ? 4 : w->outsize * 2;
		w->out = xreallocarray(w->out, w->outsize, sizeof *w->out);
	}
	r = &w->out[w->nout++];
	util_strlcpy(r->addr, addr, sizeof r->addr);
	util_strlcpy(r->mailbox, mailbox, sizeof r->mailbox);
}

/* The record of an address expanded in this walk, made if new. */
static struct users_seen *
users_walk_seen(struct users_walk *w, const char *addr)
{
	struct users_seen	*s;
	size_t			 i;

	for (i = 0; i < w->nseen; i++) {
		if (strcmp(w->seen[i].addr, addr) == 0)
			return &w->seen[i];
	}
	if (w->nseen == w->seensize) {
		w->seensize = w->seensize == 0 ? 8 : w->seensize * 2;
		w->seen = xreallocarray(w->seen, w->seensize,
		    sizeof *w->seen);
	}
	s = &w->seen[w->nseen++];
	util_strlcpy(s->addr, addr, sizeof s->addr);
	s->depth = -1;
	s->active = 0;
	return s;
}

/*
 * Where a normalized address goes, reached after depth expansions, added
 * to w: 0, USERS_UNKNOWN or USERS_LOOP.  The order of the rules: a user,
 * an exact alias, postmaster, the domain's catch-all.  An address already
 * expanded at this depth or deeper is not expanded again: it gave the
 * same recipients then with no more room than now, which keeps a file
 * full of shared targets from costing one walk per path.  Reached deeper
 * than before, it is walked again, since it may now go too deep; that
 * happens at most USERS_DEPTH_MAX times per address.
 */
static int
users_walk(struct users_walk *w, const char *addr, int depth)
{
	const struct users		*u = w->u;
	const struct users_user		*uu;
	const struct users_alias	*ua;
	const char *const		*targets = NULL;
	const char			*domain, *pm = u->postmaster;
	char				 key[USERS_ADDR_SIZE];
	char				 norm[USERS_ADDR_SIZE];
	struct users_seen		*s;
	size_t				 ntargets = 0, i;
	int				 rc;

	domain = strrchr(addr, '@') + 1;
	if (!users_is_local(u, domain)) {
		users_walk_add(w, addr, "");
		return 0;
	}
	if ((uu = users_find_user(u, addr)) != NULL) {
		users_walk_add(w, addr, uu->mailbox);
		return 0;
	}
	/* An exact alias, else the bare name of /etc/aliases. */
	if ((ua = users_find_alias(u, addr)) == NULL) {
		util_strlcpy(key, addr, sizeof key);
		*strrchr(key, '@') = '\0';
		ua = users_find_alias(u, key);
	}
	if (ua != NULL) {
		targets = (const char *const *)ua->targets;
		ntargets = ua->ntargets;
	} else if (users_is_system(addr)) {
		if (strcmp(addr, u->postmaster) != 0) {
			targets = &pm;
			ntargets = 1;
		} else if (strcmp(addr, u->pm_addr) == 0) {
			users_walk_add(w, addr, u->pm_mailbox);
			return 0;
		}
	}
	if (targets == NULL) {
		(void)snprintf(key, sizeof key, "@%s", domain);
		if ((ua = users_find_alias(u, key)) == NULL)
			return USERS_UNKNOWN;
		targets = (const char *const *)ua->targets;
		ntargets = ua->ntargets;
	}

	s = users_walk_seen(w, addr);
	if (s->active)
		return USERS_LOOP;
	if (s->depth != -1 && depth <= s->depth)
		return 0;
	if (depth >= USERS_DEPTH_MAX)
		return USERS_LOOP;
	s->active = 1;
	s->depth = depth;
	for (i = 0; i < ntargets; i++) {
		/* Targets were normalized at load; postmaster too. */
		util_strlcpy(norm, targets[i], sizeof norm);
		if ((rc = users_walk(w, norm, depth + 1)) != 0)
			return rc;
		/* w->seen may have moved. */
		s = users_walk_seen(w, addr);
	}
	s->active = 0;
	return 0;
}

/*
 * The system names of tern-users(5): mail to them at a local domain
 * that no user or alias takes goes to the postmaster.  RFC 2142's role
 * names, and the accounts of a Debian system that cron and daemons
 * write as.  Sorted, for bsearch().
 */
static const char *const users_system_names[] = {
	"abuse", "backup", "bin", "daemon", "ftp", "games", "gnats",
	"hostmaster", "irc", "list", "lp", "mail", "mailer-daemon", "man",
	"news", "noc", "nobody", "operator", "postmaster", "proxy", "root",
	"security", "sync", "sys", "usenet", "uucp", "webmaster", "www",
	"www-data",
};

static int
users_name_cmp(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

/*
 * Whether the local part of addr (a name, or "name@domain"), any case,
 * is a system name.  1 or 0.
 */
int
users_is_system(const char *addr)
{
	char		 local[USERS_ADDR_SIZE];
	const char	*at;
	size_t		 len;

	len = (at = strrchr(addr, '@')) != NULL ? (size_t)(at - addr) :
	    strlen(addr);
	if (len == 0 || len >= sizeof local)
		return 0;
	memcpy(local, addr, len);
	local[len] = '\0';
	util_lowercase(local);
	return bsearch(local, users_system_names, nitems(users_system_names),
	    sizeof *users_system_names, users_name_cmp) != NULL;
}

/* One walk from a normalized address into *out: 0 or USERS_*. */
static int
users_walk_from(const struct users *u, const char *norm,
    struct users_rcpt **out, size_t *nout)
{
	struct users_walk	w;
	int			rc;

	memset(&w, 0, sizeof w);
	w.u = u;
	rc = users_walk(&w, norm, 0);
	free(w.seen);
	if (rc != 0) {
		free(w.out);
		return rc;
	}
	*out = w.out;
	*nout = w.nout;
	return 0;
}

/*
 * The postmaster's recipients, for mail that must reach someone: the
 * postmaster address resolved, else (it is unknown or loops back, as a
 * "postmaster: root" line without a root can) the postmaster's own
 * mailbox.  0, or USERS_UNKNOWN when the default domain is not ours.
 */
static int
users_postmaster(const struct users *u, struct users_rcpt **out,
    size_t *nout)
{
	struct users_rcpt	*r;

	if (*u->postmaster != '\0' && users_walk_from(u, u->postmaster, out,
	    nout) == 0)
		return 0;
	if (*u->pm_addr == '\0')
		return USERS_UNKNOWN;
	r = xcalloc(1, sizeof *r);
	util_strlcpy(r->addr, u->pm_addr, sizeof r->addr);
	util_strlcpy(r->mailbox, u->pm_mailbox, sizeof r->mailbox);
	*out = r;
	*nout = 1;
	return 0;
}

/*
 * The final recipients of an address: 0 with a heap array in *out (at
 * least one; the caller frees it), USERS_UNKNOWN for a local address
 * nothing takes, or for one of its local targets that nothing takes,
 * USERS_LOOP for an alias loop or more than USERS_DEPTH_MAX expansions.
 * A remote address is its own only recipient, with mailbox "".  A bare
 * "postmaster" (RCPT TO:<Postmaster>) is postmaster@<default_domain>.
 * A local system name whose own resolution fails goes to the postmaster
 * (users_postmaster()), so that mail to root is never refused.
 */
int
users_resolve(const struct users *u, const char *addr,
    struct users_rcpt **out, size_t *nout)
{
	char			norm[USERS_ADDR_SIZE];
	int			rc;

	*out = NULL;
	*nout = 0;
	if (strcasecmp(addr, "postmaster") == 0 && *u->default_domain != '\0')
		(void)snprintf(norm, sizeof norm, "postmaster@%s",
		    u->default_domain);
	else if (users_normalize(u, addr, norm, sizeof norm) == -1)
		return USERS_UNKNOWN;

	if ((rc = users_walk_from(u, norm, out, nout)) != 0 &&
	    users_is_local(u, strrchr(norm, '@') + 1) &&
	    users_is_system(norm))
		rc = users_postmaster(u, out, nout);
	return rc;
}

/*
 * The recipients of a report to a sender: as users_resolve(), but a
 * local sender that does not resolve has it sent to the postmaster, so
 * that a report never becomes a second, undeliverable one.  0, 1 when
 * it went to the postmaster instead, or USERS_* when it cannot (a
 * remote sender is its own recipient).
 */
int
users_resolve_notice(const struct users *u, const char *addr,
    struct users_rcpt **out, size_t *nout)
{
	char	norm[USERS_ADDR_SIZE];
	int	rc;

	if ((rc = users_resolve(u, addr, out, nout)) == 0)
		return 0;
	if (users_normalize(u, addr, norm, sizeof norm) == 0 &&
	    !users_is_local(u, strrchr(norm, '@') + 1))
		return rc;
	if (users_postmaster(u, out, nout) != 0)
		return rc;
	return 1;
}

/*
 * The Maildir of a final local address (a user, or postmaster@<default
 * domain> when no user has it: resolution makes it final only when it
 * is the postmaster's own mailbox) in buf: 0, or -1 if it has none or
 * buf is too small.
 */
int
users_mailbox(const struct users *u, const char *addr, char *buf,
    size_t size)
{
	const struct users_user	*uu;
	char			 norm[USERS_ADDR_SIZE];
	const char		*mailbox;

	if (users_normalize(u, addr, norm, sizeof norm) == -1)
		return -1;
	if ((uu = users_find_user(u, norm)) != NULL)
		mailbox = uu->mailbox;
	else if (*u->pm_addr != '\0' && strcmp(norm, u->pm_addr) == 0)
		mailbox = u->pm_mailbox;
	else
		return -1;
	if (util_strlcpy(buf, mailbox, size) >= size)
		return -1;
	return 0;
}

/*
 * Whether an authenticated user may use sender as its address: its own,
 * or one that resolves to a list including it (an alias, a catch-all,
 * postmaster).  1 or 0.
 */
int
users_owns(const struct users *u, const char *user, const char *sender)
{
	const struct users_user	*uu;
	struct users_rcpt	*r;
	char			 norm[USERS_ADDR_SIZE];
	size_t			 n, i;
	int			 owns = 0;

	if ((uu = users_find_login(u, user)) == NULL)
		return 0;
	if (users_normalize(u, sender, norm, sizeof norm) == -1)
		return 0;
	if (strcmp(norm, uu->addr) == 0)
		return 1;
	if (users_resolve(u, norm, &r, &n) != 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (strcmp(r[i].addr, uu->addr) == 0)
			owns = 1;
	}
	free(r);
	return owns;
}

/*
 * Whether two addresses are one as this module compares them: domains
 * in any case, local parts too in local domains.
 */
int
users_is_same_addr(const struct users *u, const char *a, const char *b)
{
	char	na[USERS_ADDR_SIZE], nb[USERS_ADDR_SIZE];

	if (users_normalize(u, a, na, sizeof na) == -1 ||
	    users_normalize(u, b, nb, sizeof nb) == -1)
		return 0;
	return strcmp(na, nb) == 0;
}

/* Equal strings, in a time that depends on neither's contents. */
static int
users_equal(const char *a, size_t alen, const char *b, size_t blen)
{
	volatile unsigned char	diff;
	size_t			i;

	diff = alen != blen;
	for (i = 0; i < alen; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)(i < blen ?
		    b[i] : 0);
	return diff == 0;
}

/*
 * Whether password matches a stored password field: a crypt(3) hash,
 * checked with crypt_rn() and state of our own (so any thread may call
 * this, and yescrypt is slow on purpose: keep it off the loop), or a
 * {PLAIN} secret compared in constant time.  "-", "" and anything else
 * match nothing.  1 or 0.
 */
int
users_check_hash(const char *stored, const char *password)
{
	struct crypt_data	*cd;
	char			 plain[USERS_LINE_MAX];
	const char		*h;
	ssize_t			 n;
	int			 ok = 0;

	if (stored == NULL || password == NULL)
		return 0;
	if (stored[0] == '$') {
		cd = xcalloc(1, sizeof *cd);
		h = crypt_rn(password, stored, cd, sizeof *cd);
		if (h != NULL && h[0] != '*')
			ok = users_equal(h, strlen(h), stored, strlen(stored));
		explicit_bzero(cd, sizeof *cd);
		free(cd);
	} else if ((n = users_plain_decode(stored, plain, sizeof plain)) >
	    0) {
		ok = users_equal(plain, (size_t)n, password, strlen(password));
		explicit_bzero(plain, sizeof plain);
	}
	return ok;
}

/* Whether password is the one of user (any case); 1 or 0. */
int
users_check_password(const struct users *u, const char *user,
    const char *password)
{
	const struct users_user	*uu;

	if ((uu = users_find_login(u, user)) == NULL)
		return 0;
	return users_check_hash(uu->secret, password);
}

/*
 * The password field of user in buf ("" for "-"), for a caller that
 * checks it on another thread with users_check_hash(): 0, or -1 for an
 * unknown user or a buf too small.
 */
int
users_stored_secret(const struct users *u, const char *user, char *buf,
    size_t size)
{
	const struct users_user	*uu;
	const char		*secret;

	if ((uu = users_find_login(u, user)) == NULL)
		return -1;
	secret = strcmp(uu->secret, USERS_NO_LOGIN) == 0 ? "" : uu->secret;
	if (util_strlcpy(buf, secret, size) >= size) {
		if (size > 0)
			explicit_bzero(buf, size);
		return -1;
	}
	return 0;
}

/*
 * The password of a user with a {PLAIN} secret, which CRAM-MD5 needs
 * (RFC 2195): 0, or -1 when the user is unknown, has a hash or "-", or
 * buf is too small.
 */
int
users_cram_secret(const struct users *u, const char *user, char *buf,
    size_t size)
{
	const struct users_user	*uu;

	if ((uu = users_find_login(u, user)) == NULL)
		return -1;
	return users_plain_decode(uu->secret, buf, size) == -1 ? -1 : 0;
}

/*
 * Whether CRAM-MD5 can serve every user who can log in: 1 when each
 * secret other than "-" is a {PLAIN} one, and at least one is.
 */
int
users_cram_usable(const struct users *u)
{
	size_t	i, n = 0;

	for (i = 0; i < u->nusers; i++) {
		const char	*secret = u->users[i].secret;

		if (*secret == '\0' || strcmp(secret, USERS_NO_LOGIN) == 0)
			continue;
		if (strncmp(secret, USERS_PLAIN_PREFIX,
		    strlen(USERS_PLAIN_PREFIX)) != 0)
			return 0;
		n++;
	}
	return n > 0;
}

/*
 * A new crypt(3) hash of password in out: yescrypt at libxcrypt's
 * default cost where it is built in, else SHA-512 crypt.  0, or -1 with
 * *cause set.
 */
int
users_hash(const char *password, char *out, size_t size, char **cause)
{
	static const char *const	 prefixes[] = { "$y$", "$6$" };
	struct crypt_data		*cd;
	char				 setting[CRYPT_GENSALT_OUTPUT_SIZE];
	const char			*rbytes = NULL, *h;
	int				 nrbytes = 0, rc = -1;
	size_t				 i;
#ifndef CRYPT_GENSALT_IMPLEMENTS_AUTO_ENTROPY
	char				 salt[USERS_SALT_BYTES];

	if (getentropy(salt, sizeof salt) == -1) {
		xasprintf(cause, "getentropy: %s", strerror(errno));
		return -1;
	}
	rbytes = salt;
	nrbytes = sizeof salt;
#endif

	for (i = 0; i < nitems(prefixes); i++) {
		if (crypt_gensalt_rn(prefixes[i], 0, rbytes, nrbytes, setting,
		    sizeof setting) != NULL)
			break;
	}
	if (i == nitems(prefixes)) {
		xasprintf(cause, "crypt_gensalt: %s", strerror(errno));
		return -1;
	}
	cd = xcalloc(1, sizeof *cd);
	if ((h = crypt_rn(password, setting, cd, sizeof *cd)) == NULL ||
	    h[0] == '*')
		xasprintf(cause, "crypt: %s", strerror(errno));
	else if (util_strlcpy(out, h, size) >= size)
		xasprintf(cause, "hash longer than %zu characters", size - 1);
	else
		rc = 0;
	explicit_bzero(cd, sizeof *cd);
	free(cd);
	if (rc == -1 && size > 0)
		out[0] = '\0';
	return rc;
}
