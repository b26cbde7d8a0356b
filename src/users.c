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
};

/* One file being read, line by line, for error messages. */
struct users_file {
	const char	*path;
	FILE		*f;
	char		*line;		/* getline() buffer */
	size_t		 linesize;
	int		 lineno;
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
 * The next line worth reading, without its end of line: 1, 0 at the end
 * of the file, or -1 with *cause set.  Blank lines and lines whose first
 * non-blank character is '#' are skipped; a '#' further on is part of the
 * text, since local parts may contain one.
 */
static int
users_next_line(struct users_file *uf, char **line, char **cause)
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
		uf->lineno++;
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
		*line = s;
		return 1;
	}
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

/*
 * Checks and normalizes one alias key in place: "local@domain" or
 * "@domain" with the domain ours.  0, or -1 with *cause set.
 */
static int
users_alias_key(const struct users *u, const struct users_file *uf,
    char *key, char *norm, size_t size, char **cause)
{
	char	*at;

	if (key[0] == '@') {
		if (util_strlcpy(norm, key, size) >= size || key[1] == '\0' ||
		    strchr(key + 1, '@') != NULL || !users_is_printable(key)) {
			users_bad(cause, uf, key, "not an address or @domain");
			return -1;
		}
		util_lowercase(norm);
	} else if (users_normalize(u, key, norm, size) == -1) {
		users_bad(cause, uf, key, "not an address or @domain");
		return -1;
	}
	at = strrchr(norm, '@');
	if (!users_is_local(u, at + 1)) {
		users_bad(cause, uf, norm, "not a local domain");
		return -1;
	}
	return 0;
}

/* Adds an alias from its key and the rest of its line. */
static int
users_add_alias(struct users *u, const struct users_file *uf, char *key,
    char *rest, char **cause)
{
	struct users_alias	*ua;
	char			 norm[USERS_ADDR_SIZE];
	char			 target[USERS_ADDR_SIZE];
	char			*item;
	const char		*kind;
	ssize_t			 i;

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

	u->aliases = xreallocarray(u->aliases, u->naliases + 1,
	    sizeof *u->aliases);
	ua = &u->aliases[u->naliases];
	memset(ua, 0, sizeof *ua);
	ua->key = xstrdup(norm);
	ua->line = uf->lineno;
	/* Counted now, so that users_free() sees it even on an error. */
	u->naliases++;
	users_map_add(&u->alias_map, ua->key, u->naliases - 1);

	while ((item = users_token(&rest, USERS_LIST_SEP)) != NULL) {
		if (users_normalize(u, item, target, sizeof target) == -1) {
			kind = item[0] == '@' ? "a target must be a full "
			    "address, not @domain" : "target is not an address";
			users_bad(cause, uf, item, kind);
			return -1;
		}
		ua->targets = xreallocarray(ua->targets, ua->ntargets + 1,
		    sizeof *ua->targets);
		ua->targets[ua->ntargets++] = xstrdup(target);
	}
	if (ua->ntargets == 0) {
		users_bad(cause, uf, norm, "no targets");
		return -1;
	}
	return 0;
}

/* Reads the aliases file: "key: target, target ..." lines. */
static int
users_read_aliases(struct users *u, const char *path, char **cause)
{
	struct users_file	 uf;
	char			*line, *key, *colon;
	int			 rc;

	if (users_open(&uf, path, cause) == -1)
		return -1;
	while ((rc = users_next_line(&uf, &line, cause)) == 1) {
		if ((colon = strchr(line, ':')) == NULL) {
			users_bad(cause, &uf, NULL,
			    "not \"address: target, ...\" (no ':')");
			rc = -1;
			break;
		}
		*colon = '\0';
		key = users_token(&line, USERS_SPACE);
		if (key == NULL || users_token(&line, USERS_SPACE) != NULL) {
			users_bad(cause, &uf, NULL,
			    "not \"address: target, ...\" (one address "
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
	if ((ua = users_find_alias(u, addr)) != NULL) {
		targets = (const char *const *)ua->targets;
		ntargets = ua->ntargets;
	} else if (strncmp(addr, "postmaster@", 11) == 0) {
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
 * The final recipients of an address: 0 with a heap array in *out (at
 * least one; the caller frees it), USERS_UNKNOWN for a local address
 * nothing takes, or for one of its local targets that nothing takes,
 * USERS_LOOP for an alias loop or more than USERS_DEPTH_MAX expansions.
 * A remote address is its own only recipient, with mailbox "".  A bare
 * "postmaster" (RCPT TO:<Postmaster>) is postmaster@<default_domain>.
 */
int
users_resolve(const struct users *u, const char *addr,
    struct users_rcpt **out, size_t *nout)
{
	struct users_walk	w;
	char			norm[USERS_ADDR_SIZE];
	int			rc;

	*out = NULL;
	*nout = 0;
	if (strcasecmp(addr, "postmaster") == 0 && *u->default_domain != '\0')
		(void)snprintf(norm, sizeof norm, "postmaster@%s",
		    u->default_domain);
	else if (users_normalize(u, addr, norm, sizeof norm) == -1)
		return USERS_UNKNOWN;

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
 * The Maildir of a final local address (a user, or the implicit
 * postmaster) in buf: 0, or -1 if it has none or buf is too small.
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
	else if (*u->pm_addr != '\0' && strcmp(norm, u->pm_addr) == 0 &&
	    strcmp(norm, u->postmaster) == 0 &&
	    users_find_alias(u, norm) == NULL)
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
