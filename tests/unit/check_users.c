/*
 * check_users.c: the users and aliases files.  Every kind of error names
 * its file and line; addresses resolve through users, aliases (nested,
 * several targets, remote ones, duplicates), catch-alls and the
 * postmaster rule, and fail on unknown addresses, loops and depth; the
 * mailbox of each final address; password checks against known crypt(3)
 * vectors, {PLAIN} and "-"; which senders a user owns; and new hashes.
 * Each test writes real files in its own directory under /tmp.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "users.h"
#include "util.h"

#define MB		"/var/mail/tern"
#define PM		MB "/example.org/postmaster"
#define EXPECT_SIZE	4096

/* The SHA-crypt specification's vectors (also OpenSSL's passwd -6). */
#define SPEC_PW		"Hello world!"
#define SPEC_HASH	"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWj" \
			"l/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
#define SPEC_HASH_R	"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6Bc" \
			"XZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/" \
			"YTBmSK6H9qs/y3RnOaw5v."

static char	dir[64];

static const char *const domains[] = {
	"example.org", "example.net", "example.com"
};

/* The users and aliases most tests share. */
static const char users_text[] =
	"# users of the tests\n"
	"\n"
	"alice@example.org\t" SPEC_HASH "\n"
	"  bob@example.org   {PLAIN}Ym9icHc=\n"		/* "bobpw" */
	"carol@example.org - /srv/mail/carol\n"
	"   # an indented comment\n"
	"dave@example.net -\r\n"
	"Eve@Example.ORG " SPEC_HASH_R "\n";

static const char aliases_text[] =
	"# aliases of the tests\n"
	"info@example.org:   alice@example.org, bob@example.org\n"
	"sales@example.org:  someone@remote.example,alice@example.org\n"
	"team@example.org:   info@example.org  carol@example.org , "
	    "alice@example.org\n"
	"all@example.org:    team@example.org, info@example.org, "
	    "Sales@Example.ORG\n"
	"ext@example.org:    John.Doe@Remote.Example\n"
	"@example.net:       alice@example.org\n"
	"loop1@example.org:  loop2@example.org\n"
	"loop2@example.org:  loop1@example.org\n"
	"self@example.org:   self@example.org\n"
	"bad@example.org:    alice@example.org, ghost@example.org\n"
	"loopy@example.org:  alice@example.org, loop1@example.org\n"
	"twice@example.org:  bob@example.org, BOB@example.org, "
	    "x@remote.example, x@REMOTE.example\n"
	"d0@example.org: d1@example.org\n"
	"d1@example.org: d2@example.org\n"
	"d2@example.org: d3@example.org\n"
	"d3@example.org: d4@example.org\n"
	"d4@example.org: d5@example.org\n"
	"d5@example.org: d6@example.org\n"
	"d6@example.org: d7@example.org\n"
	"d7@example.org: d8@example.org\n"
	"d8@example.org: d9@example.org\n"
	"d9@example.org: d10@example.org\n"
	"d10@example.org: alice@example.org\n"
	"n1@example.net: alice@example.org\n";

/* dir/name with data, len octets. */
static void
write_file(const char *name, const char *data, size_t len)
{
	char	 path[128];
	FILE	*f;

	ck_assert(util_snprintf(path, sizeof path, "%s/%s", dir, name) != -1);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void
remove_file(const char *name)
{
	char	path[128];

	ck_assert(util_snprintf(path, sizeof path, "%s/%s", dir, name) != -1);
	(void)unlink(path);
}

static void
setup(void)
{
	log_init("check_users", LOG_TARGET_NONE, 0);
	util_strlcpy(dir, "/tmp/check_users.XXXXXX", sizeof dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	static const char *const	names[] = { "users", "aliases",
					    "inc1", "inc2", "inc3", "loop" };
	size_t				i;

	for (i = 0; i < nitems(names); i++)
		remove_file(names[i]);
	ck_assert_int_eq(rmdir(dir), 0);
}

/* The parameters most tests use; paths point into dir. */
static void
std_params(struct users_params *p, char *upath, char *apath, size_t size)
{
	memset(p, 0, sizeof *p);
	ck_assert(util_snprintf(upath, size, "%s/users", dir) != -1);
	ck_assert(util_snprintf(apath, size, "%s/aliases", dir) != -1);
	p->users_path = upath;
	p->aliases_path = apath;
	p->local_domains = domains;
	p->nlocal_domains = nitems(domains);
	p->default_domain = "example.org";
	p->mailboxes = MB;
	p->postmaster = NULL;
}

/*
 * Writes the files (NULL: that file is not configured) and loads them
 * with p, or the standard parameters when p is NULL.
 */
static struct users *
try_load(struct users_params *p, const char *users, const char *aliases,
    char **cause)
{
	struct users_params	std;
	char			upath[128], apath[128];

	if (p == NULL) {
		std_params(&std, upath, apath, sizeof upath);
		p = &std;
	}
	if (users != NULL)
		write_file("users", users, strlen(users));
	else
		p->users_path = NULL;
	if (aliases != NULL)
		write_file("aliases", aliases, strlen(aliases));
	else
		p->aliases_path = NULL;
	*cause = NULL;
	return users_load(p, cause);
}

static struct users *
load_ok(struct users_params *p, const char *users, const char *aliases)
{
	struct users	*u;
	char		*cause;

	u = try_load(p, users, aliases, &cause);
	if (u == NULL)
		ck_abort_msg("users_load: %s", cause);
	ck_assert_ptr_null(cause);
	return u;
}

/* fmt with each "{D}" replaced by the test's directory. */
static void
expand(char *buf, size_t size, const char *fmt)
{
	const char	*p;
	size_t		 o = 0, n;

	while ((p = strstr(fmt, "{D}")) != NULL) {
		n = (size_t)(p - fmt);
		ck_assert_uint_lt(o + n + strlen(dir), size);
		memcpy(buf + o, fmt, n);
		memcpy(buf + o + n, dir, strlen(dir));
		o += n + strlen(dir);
		fmt = p + 3;
	}
	ck_assert_uint_lt(o + strlen(fmt), size);
	memcpy(buf + o, fmt, strlen(fmt) + 1);
}

/* Loads and expects exactly the error want (with "{D}"). */
static void
load_bad(struct users_params *p, const char *users, const char *aliases,
    const char *want)
{
	struct users	*u;
	char		*cause, expected[EXPECT_SIZE];

	expand(expected, sizeof expected, want);
	u = try_load(p, users, aliases, &cause);
	if (u != NULL) {
		users_free(u);
		ck_abort_msg("loaded, expected \"%s\"", expected);
	}
	ck_assert_ptr_nonnull(cause);
	ck_assert_str_eq(cause, expected);
	free(cause);
}

/* "addr=mailbox;addr=mailbox" of a resolution, or "rc=N". */
static void
resolve_str(const struct users *u, const char *addr, char *buf, size_t size)
{
	struct users_rcpt	*r;
	size_t			 n, i;
	int			 rc;

	buf[0] = '\0';
	if ((rc = users_resolve(u, addr, &r, &n)) != 0) {
		ck_assert_ptr_null(r);
		ck_assert_uint_eq(n, 0);
		util_snprintf(buf, size, "rc=%d", rc);
		return;
	}
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_ge(n, 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			util_strlcat(buf, ";", size);
		util_strlcat(buf, r[i].addr, size);
		util_strlcat(buf, "=", size);
		ck_assert_uint_lt(util_strlcat(buf, r[i].mailbox, size), size);
	}
	free(r);
}

/*
 * Errors, each naming its file and line.
 */

static const struct {
	const char	*users;
	const char	*aliases;
	const char	*want;
} bad[] = {
	{ "alice@other.example -\n", NULL,
	  "{D}/users:1: alice@other.example: not a local domain" },
	{ "# c\n\nalice -\n", NULL,
	  "{D}/users:3: alice: not an address" },
	{ "@example.org -\n", NULL,
	  "{D}/users:1: @example.org: not an address" },
	{ "alice@ -\n", NULL,
	  "{D}/users:1: alice@: not an address" },
	{ "alice@example.org -\nbob@example.org -\nALICE@Example.org -\n",
	  NULL,
	  "{D}/users:3: alice@example.org: listed twice (first on line 1)" },
	{ "alice@example.org\n", NULL,
	  "{D}/users:1: alice@example.org: no password field" },
	{ "alice@example.org secret\n", NULL,
	  "{D}/users:1: alice@example.org: password is not a crypt(3) "
	  "hash, {PLAIN} or \"-\"" },
	{ "alice@example.org {PLAIN}!!!!\n", NULL,
	  "{D}/users:1: alice@example.org: {PLAIN} secret is not base64 "
	  "of a password" },
	{ "alice@example.org {PLAIN}\n", NULL,
	  "{D}/users:1: alice@example.org: {PLAIN} secret is not base64 "
	  "of a password" },
	{ "alice@example.org {PLAIN}YQBi\n", NULL,		/* "a\0b" */
	  "{D}/users:1: alice@example.org: {PLAIN} secret is not base64 "
	  "of a password" },
	{ "alice@example.org {PLAIN}Ym9ic\n", NULL,	/* bad length */
	  "{D}/users:1: alice@example.org: {PLAIN} secret is not base64 "
	  "of a password" },
	{ "alice@example.org $zz$foo\n", NULL,
	  "{D}/users:1: alice@example.org: password hash of an unknown or "
	  "invalid kind" },
	{ "alice@example.org - mail/alice\n", NULL,
	  "{D}/users:1: alice@example.org: mailbox is not an absolute "
	  "path" },
	{ "alice@example.org - /srv/a extra\n", NULL,
	  "{D}/users:1: alice@example.org: too many fields (address "
	  "password [mailbox])" },
	{ "x@example.org -\n.alice@example.org -\n", NULL,
	  "{D}/users:2: .alice@example.org: local part unfit for a mailbox "
	  "name (give a mailbox path)" },
	{ "a/b@example.org -\n", NULL,
	  "{D}/users:1: a/b@example.org: local part unfit for a mailbox "
	  "name (give a mailbox path)" },
	{ "alice@example.org - /srv\x01\n", NULL,
	  "{D}/users:1: alice@example.org: mailbox path has a control "
	  "character" },

	{ NULL, "info@example.org alice@example.org\n",
	  "{D}/aliases:1: not \"name: target, ...\" (no ':')" },
	{ NULL, "info@other.example: alice@example.org\n",
	  "{D}/aliases:1: info@other.example: not a local domain" },
	{ NULL, "@Other.Example: alice@example.org\n",
	  "{D}/aliases:1: @other.example: not a local domain" },
	{ NULL, "# x\ninfo@example.org:\n",
	  "{D}/aliases:2: info@example.org: no targets" },
	{ NULL, "info@example.org: , ,\t,\n",
	  "{D}/aliases:1: info@example.org: no targets" },
	{ NULL, "info@example.org: alice@example.org, alice@\n",
	  "{D}/aliases:1: alice@: target is not an address" },
	{ NULL, "info@example.org: @example.net\n",
	  "{D}/aliases:1: @example.net: a target must be a full address, "
	  "not @domain" },
	{ NULL, "info@example.org: a@example.org\n"
	  "INFO@Example.org: b@example.org\n",
	  "{D}/aliases:2: info@example.org: listed twice (first on line 1)" },
	{ NULL, "@example.net: a@example.org\n@EXAMPLE.net: b@example.org\n",
	  "{D}/aliases:2: @example.net: listed twice (first on line 1)" },
	{ "x@example.org -\nalice@example.org -\n",
	  "# x\nAlice@example.org: bob@example.org\n",
	  "{D}/aliases:2: alice@example.org: also a user ({D}/users:2)" },
	{ NULL, "\"in fo\": alice@example.org\n",
	  "{D}/aliases:1: not \"name: target, ...\" (one name before "
	  "':')" },
	{ NULL, "\"info\": alice@example.org\n",
	  "{D}/aliases:1: \"info\": not a name, an address or @domain" },
	{ NULL, "@: alice@example.org\n",
	  "{D}/aliases:1: @: not a name, an address or @domain" },
	{ NULL, "@a@example.org: alice@example.org\n",
	  "{D}/aliases:1: @a@example.org: not a name, an address or "
	  "@domain" },
	{ NULL, "a b@example.org: c@example.org\n",
	  "{D}/aliases:1: not \"name: target, ...\" (one name before "
	  "':')" },
	{ NULL, ": c@example.org\n",
	  "{D}/aliases:1: not \"name: target, ...\" (one name before "
	  "':')" },
	/* Traditional forms that are still wrong. */
	{ NULL, "root: alice\nROOT: bob\n",
	  "{D}/aliases:2: root: listed twice (first on line 1)" },
	{ NULL, "# c\nroot: alice,\n  # c\n\n\tbob, @example.net\nx: y\n",
	  "{D}/aliases:2: @example.net: a target must be a full address, "
	  "not @domain" },
	{ NULL, "root:\n\t\nx: y\n",
	  "{D}/aliases:1: root: no targets" },
	{ NULL, "root: alice\n  bob\n  carol\nsome one: x\n",
	  "{D}/aliases:4: not \"name: target, ...\" (one name before "
	  "':')" },
	/* The users file is read first. */
	{ "alice@other.example -\n", "info: x\n",
	  "{D}/users:1: alice@other.example: not a local domain" },
};

START_TEST(test_bad)
{
	load_bad(NULL, bad[_i].users, bad[_i].aliases, bad[_i].want);
}
END_TEST

/* A control character in an address is quoted, never printed raw. */
START_TEST(test_bad_escaped)
{
	load_bad(NULL, "al\x01ice@example.org -\n", NULL,
	    "{D}/users:1: al\\x01ice@example.org: not an address");
}
END_TEST

/* 4096 octets are a line; 4097 are not. */
START_TEST(test_long_line)
{
	struct users	*u;
	char		 text[USERS_PATH_SIZE * 8];
	size_t		 n;

	memset(text, 0, sizeof text);
	text[0] = '#';
	memset(text + 1, 'x', 4095);
	util_strlcat(text, "\nalice@example.org -\n", sizeof text);
	u = load_ok(NULL, text, NULL);
	ck_assert_uint_eq(users_count(u), 1);
	users_free(u);

	memset(text, 0, sizeof text);
	util_strlcpy(text, "alice@example.org -\n#", sizeof text);
	n = strlen(text);
	memset(text + n, 'x', 4096);
	util_strlcat(text, "\n", sizeof text);
	load_bad(NULL, text, NULL,
	    "{D}/users:2: line longer than 4096 characters");
	memcpy(text, "a@example.org: b@xy\n", 20);
	load_bad(NULL, NULL, text,
	    "{D}/aliases:2: line longer than 4096 characters");
}
END_TEST

START_TEST(test_nul)
{
	static const char	text[] =
	    "alice@example.org -\nbob@ex\0ample.org -\n";
	struct users		*u;
	struct users_params	 p;
	char			 upath[128], apath[128], *cause = NULL;

	std_params(&p, upath, apath, sizeof upath);
	p.aliases_path = NULL;
	write_file("users", text, sizeof text - 1);
	u = users_load(&p, &cause);
	ck_assert_ptr_null(u);
	ck_assert_ptr_nonnull(cause);
	expand(upath, sizeof upath, "{D}/users:2: NUL character in line");
	ck_assert_str_eq(cause, upath);
	free(cause);
}
END_TEST

START_TEST(test_missing_file)
{
	struct users_params	 p;
	struct users		*u;
	char			 upath[128], apath[128], want[256];
	char			*cause = NULL;

	std_params(&p, upath, apath, sizeof upath);
	u = users_load(&p, &cause);
	ck_assert_ptr_null(u);
	expand(want, sizeof want, "{D}/users: No such file or directory");
	ck_assert_str_eq(cause, want);
	free(cause);

	write_file("users", "alice@example.org -\n", 20);
	u = users_load(&p, &cause);
	ck_assert_ptr_null(u);
	expand(want, sizeof want, "{D}/aliases: No such file or directory");
	ck_assert_str_eq(cause, want);
	free(cause);

	/* A directory opens, but does not read. */
	p.users_path = dir;
	u = users_load(&p, &cause);
	ck_assert_ptr_null(u);
	expand(want, sizeof want, "{D}: Is a directory");
	ck_assert_str_eq(cause, want);
	free(cause);
}
END_TEST

/* Parameters users_load() refuses. */
START_TEST(test_bad_params)
{
	struct users_params	p;
	char			upath[128], apath[128];

	std_params(&p, upath, apath, sizeof upath);
	p.mailboxes = "";
	load_bad(&p, NULL, NULL, "no mailboxes directory");
	std_params(&p, upath, apath, sizeof upath);
	p.postmaster = "nobody";
	load_bad(&p, NULL, NULL, "postmaster nobody: not an address");
}
END_TEST

/* No files, or files with only comments: no users, still answers. */
START_TEST(test_empty)
{
	struct users_params	 p;
	struct users		*u;
	char			 upath[128], apath[128], got[EXPECT_SIZE];
	char			*cause = NULL;

	std_params(&p, upath, apath, sizeof upath);
	p.users_path = "";
	p.aliases_path = NULL;
	u = users_load(&p, &cause);
	ck_assert_ptr_nonnull(u);
	ck_assert_ptr_null(cause);
	ck_assert_uint_eq(users_count(u), 0);
	resolve_str(u, "alice@example.org", got, sizeof got);
	ck_assert_str_eq(got, "rc=-1");
	resolve_str(u, "postmaster@example.net", got, sizeof got);
	ck_assert_str_eq(got, "postmaster@example.org=" MB
	    "/example.org/postmaster");
	users_free(u);

	u = load_ok(NULL, "# nobody\n\n   \n\t\n", "# nothing\n");
	ck_assert_uint_eq(users_count(u), 0);
	users_free(u);
}
END_TEST

/*
 * Lookups.
 */

START_TEST(test_count_and_local)
{
	struct users	*u;

	u = load_ok(NULL, users_text, aliases_text);
	ck_assert_uint_eq(users_count(u), 5);
	ck_assert_int_eq(users_is_local(u, "example.org"), 1);
	ck_assert_int_eq(users_is_local(u, "EXAMPLE.Net"), 1);
	ck_assert_int_eq(users_is_local(u, "example.com"), 1);
	ck_assert_int_eq(users_is_local(u, "other.example"), 0);
	ck_assert_int_eq(users_is_local(u, "sub.example.org"), 0);
	ck_assert_int_eq(users_is_local(u, "org"), 0);
	ck_assert_int_eq(users_is_local(u, ""), 0);
	users_free(u);
}
END_TEST

static const struct {
	const char	*addr;
	const char	*want;
} resolves[] = {
	/* Users, any case; default and explicit mailboxes. */
	{ "alice@example.org", "alice@example.org=" MB "/example.org/alice" },
	{ "ALICE@Example.ORG", "alice@example.org=" MB "/example.org/alice" },
	{ "carol@example.org", "carol@example.org=/srv/mail/carol" },
	{ "eve@example.org", "eve@example.org=" MB "/example.org/eve" },
	{ "dave@example.net", "dave@example.net=" MB "/example.net/dave" },
	/* Aliases: several targets, remote ones, nested, duplicates. */
	{ "info@example.org", "alice@example.org=" MB "/example.org/alice;"
	  "bob@example.org=" MB "/example.org/bob" },
	{ "Info@EXAMPLE.org", "alice@example.org=" MB "/example.org/alice;"
	  "bob@example.org=" MB "/example.org/bob" },
	{ "sales@example.org", "someone@remote.example=;"
	  "alice@example.org=" MB "/example.org/alice" },
	{ "team@example.org", "alice@example.org=" MB "/example.org/alice;"
	  "bob@example.org=" MB "/example.org/bob;"
	  "carol@example.org=/srv/mail/carol" },
	{ "all@example.org", "alice@example.org=" MB "/example.org/alice;"
	  "bob@example.org=" MB "/example.org/bob;"
	  "carol@example.org=/srv/mail/carol;someone@remote.example=" },
	{ "twice@example.org", "bob@example.org=" MB "/example.org/bob;"
	  "x@remote.example=" },
	/* A remote local part keeps its case; its domain does not. */
	{ "ext@example.org", "John.Doe@remote.example=" },
	{ "someone@Remote.Example", "someone@remote.example=" },
	{ "Some.One@remote.example", "Some.One@remote.example=" },
	/* Catch-all; a user and an exact alias win over it. */
	{ "anything@example.net", "alice@example.org=" MB
	  "/example.org/alice" },
	{ "dave@EXAMPLE.NET", "dave@example.net=" MB "/example.net/dave" },
	{ "n1@example.net", "alice@example.org=" MB "/example.org/alice" },
	/* Depth: ten expansions are fine, eleven are not. */
	{ "d1@example.org", "alice@example.org=" MB "/example.org/alice" },
	{ "d0@example.org", "rc=-2" },
	/* Postmaster, with and without a domain, over a catch-all. */
	{ "postmaster@example.org", "postmaster@example.org=" MB
	  "/example.org/postmaster" },
	{ "POSTMASTER@example.com", "postmaster@example.org=" MB
	  "/example.org/postmaster" },
	{ "postmaster@example.net", "postmaster@example.org=" MB
	  "/example.org/postmaster" },
	{ "Postmaster", "postmaster@example.org=" MB
	  "/example.org/postmaster" },
	/* Unknown and broken. */
	{ "ghost@example.org", "rc=-1" },
	{ "ghost@example.com", "rc=-1" },
	{ "bad@example.org", "rc=-1" },
	{ "loop1@example.org", "rc=-2" },
	{ "self@example.org", "rc=-2" },
	{ "loopy@example.org", "rc=-2" },
	{ "nobody", "rc=-1" },
	{ "", "rc=-1" },
	{ "@example.org", "rc=-1" },
	{ "alice@", "rc=-1" },
	{ "a b@example.org", "rc=-1" },
};

START_TEST(test_resolve)
{
	struct users	*u;
	char		 got[EXPECT_SIZE];

	u = load_ok(NULL, users_text, aliases_text);
	resolve_str(u, resolves[_i].addr, got, sizeof got);
	ck_assert_msg(strcmp(got, resolves[_i].want) == 0,
	    "%s: got \"%s\", want \"%s\"", resolves[_i].addr, got,
	    resolves[_i].want);
	users_free(u);
}
END_TEST

/* The postmaster rule under other settings and files. */
static const struct {
	const char	*postmaster;
	const char	*default_domain;
	const char	*users;
	const char	*aliases;
	const char	*addr;
	const char	*want;
	const char	*mailbox;	/* of postmaster@example.org */
} postmasters[] = {
	{ "alice@example.org", NULL, "alice@example.org -\n", NULL,
	  "postmaster@example.com", "alice@example.org=" MB
	  "/example.org/alice", PM },
	{ "Alice@Example.org", NULL, "alice@example.org -\n", NULL,
	  "postmaster@example.org", "alice@example.org=" MB
	  "/example.org/alice", PM },
	{ "Admin@Remote.Example", NULL, NULL, NULL,
	  "postmaster@example.org", "Admin@remote.example=", PM },
	{ NULL, NULL, "bob@example.org -\n",
	  "postmaster@example.org: bob@example.org\n",
	  "postmaster@example.net", "bob@example.org=" MB
	  "/example.org/bob", PM },
	{ NULL, NULL, "postmaster@example.org - /srv/pm\n", NULL,
	  "postmaster@example.com", "postmaster@example.org=/srv/pm",
	  "/srv/pm" },
	{ NULL, "example.net", NULL, "@example.net: x@remote.example\n",
	  "postmaster@example.org", "postmaster@example.net=" MB
	  "/example.net/postmaster", NULL },
	{ NULL, "", NULL, NULL,			/* the first domain */
	  "postmaster@example.com", "postmaster@example.org=" MB
	  "/example.org/postmaster", MB "/example.org/postmaster" },
	/*
	 * A postmaster that does not exist, or loops, leaves the mailbox
	 * of postmaster@<default_domain> as the last resort.
	 */
	{ "postmaster@example.com", NULL, NULL, NULL,
	  "postmaster@example.org", "postmaster@example.org=" PM, PM },
	{ "postmaster@example.com", NULL, NULL,
	  "@example.com: alice@remote.example\n",
	  "postmaster@example.org", "alice@remote.example=", PM },
	{ "loop@example.org", NULL, NULL, "loop@example.org: "
	  "postmaster@example.org\n",
	  "postmaster@example.org", "postmaster@example.org=" PM, PM },
	{ NULL, NULL, NULL, "postmaster: root\n",
	  "root@example.net", "postmaster@example.org=" PM, PM },
	{ NULL, NULL, "alice@example.org -\n", "postmaster: root\n"
	  "root: alice\n",
	  "MAILER-DAEMON@example.com", "alice@example.org=" MB
	  "/example.org/alice", PM },
};

START_TEST(test_postmaster)
{
	struct users_params	 p;
	struct users		*u;
	char			 upath[128], apath[128], got[EXPECT_SIZE];
	int			 rc;

	std_params(&p, upath, apath, sizeof upath);
	p.postmaster = postmasters[_i].postmaster;
	if (postmasters[_i].default_domain != NULL)
		p.default_domain = postmasters[_i].default_domain;
	u = load_ok(&p, postmasters[_i].users, postmasters[_i].aliases);
	resolve_str(u, postmasters[_i].addr, got, sizeof got);
	ck_assert_str_eq(got, postmasters[_i].want);

	rc = users_mailbox(u, "postmaster@example.org", got, sizeof got);
	if (postmasters[_i].mailbox == NULL)
		ck_assert_int_eq(rc, -1);
	else {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(got, postmasters[_i].mailbox);
	}
	users_free(u);
}
END_TEST

static const struct {
	const char	*addr;
	const char	*want;		/* NULL: -1 */
} mailboxes[] = {
	{ "alice@example.org", MB "/example.org/alice" },
	{ "Alice@EXAMPLE.org", MB "/example.org/alice" },
	{ "carol@example.org", "/srv/mail/carol" },
	{ "eve@example.org", MB "/example.org/eve" },
	{ "dave@example.net", MB "/example.net/dave" },
	{ "postmaster@example.org", MB "/example.org/postmaster" },
	{ "postmaster@example.com", NULL },
	{ "info@example.org", NULL },
	{ "anything@example.net", NULL },
	{ "ghost@example.org", NULL },
	{ "alice@remote.example", NULL },
	{ "alice", NULL },
};

START_TEST(test_mailbox)
{
	struct users	*u;
	char		 got[USERS_PATH_SIZE];
	int		 rc;

	u = load_ok(NULL, users_text, aliases_text);
	rc = users_mailbox(u, mailboxes[_i].addr, got, sizeof got);
	if (mailboxes[_i].want == NULL)
		ck_assert_int_eq(rc, -1);
	else {
		ck_assert_int_eq(rc, 0);
		ck_assert_str_eq(got, mailboxes[_i].want);
	}
	users_free(u);
}
END_TEST

START_TEST(test_mailbox_edges)
{
	struct users	*u;
	char		 got[USERS_PATH_SIZE], text[USERS_PATH_SIZE + 64];
	size_t		 n;

	/* Explicit mailboxes let any local part be a user. */
	u = load_ok(NULL, ".dot@example.org - /srv/dot\n"
	    "a/b@example.org - /srv/ab\n", NULL);
	ck_assert_int_eq(users_mailbox(u, ".dot@example.org", got,
	    sizeof got), 0);
	ck_assert_str_eq(got, "/srv/dot");
	ck_assert_int_eq(users_mailbox(u, "a/b@example.org", got,
	    sizeof got), 0);
	ck_assert_str_eq(got, "/srv/ab");
	/* A buffer too small is refused, not cut. */
	ck_assert_int_eq(users_mailbox(u, "a/b@example.org", got, 7), -1);
	ck_assert_int_eq(users_mailbox(u, "a/b@example.org", got, 8), 0);
	ck_assert_str_eq(got, "/srv/ab");
	users_free(u);

	/* USERS_PATH_SIZE - 1 octets fit, one more does not. */
	util_strlcpy(text, "a@example.org - /", sizeof text);
	n = strlen(text);
	memset(text + n, 'm', USERS_PATH_SIZE - 2);
	text[n + USERS_PATH_SIZE - 2] = '\0';
	util_strlcat(text, "\n", sizeof text);
	u = load_ok(NULL, text, NULL);
	ck_assert_int_eq(users_mailbox(u, "a@example.org", got, sizeof got),
	    0);
	ck_assert_uint_eq(strlen(got), USERS_PATH_SIZE - 1);
	users_free(u);
	text[n] = '\0';
	memset(text + n, 'm', USERS_PATH_SIZE - 1);
	text[n + USERS_PATH_SIZE - 1] = '\0';
	util_strlcat(text, "\n", sizeof text);
	load_bad(NULL, text, NULL,
	    "{D}/users:1: a@example.org: mailbox path too long");
}
END_TEST

/*
 * Passwords.
 */

/* The vectors themselves, so that a broken libcrypt shows up here. */
START_TEST(test_check_hash)
{
	ck_assert_int_eq(users_check_hash(SPEC_HASH, SPEC_PW), 1);
	ck_assert_int_eq(users_check_hash(SPEC_HASH, "Hello world"), 0);
	ck_assert_int_eq(users_check_hash(SPEC_HASH, "hello world!"), 0);
	ck_assert_int_eq(users_check_hash(SPEC_HASH, ""), 0);
	ck_assert_int_eq(users_check_hash(SPEC_HASH_R, SPEC_PW), 1);
	ck_assert_int_eq(users_check_hash(SPEC_HASH_R, "Hello world?"), 0);
	/* A hash with one character changed, or cut, matches nothing. */
	ck_assert_int_eq(users_check_hash("$6$saltstring$svn8UoSVapNtMuq1ukK"
	    "S4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35"
	    "inz2", SPEC_PW), 0);
	ck_assert_int_eq(users_check_hash("$6$saltstring$svn8UoSVapNt",
	    SPEC_PW), 0);
	ck_assert_int_eq(users_check_hash("$6$saltstring", SPEC_PW), 0);
	ck_assert_int_eq(users_check_hash("$zz$foo", SPEC_PW), 0);
	ck_assert_int_eq(users_check_hash("$", ""), 0);
	/* {PLAIN}, "-", and nothing. */
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc=", "bobpw"), 1);
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc", "bobpw"), 1);
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc=", "bobp"), 0);
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc=", "bobpwx"), 0);
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc=", "Bobpw"), 0);
	ck_assert_int_eq(users_check_hash("{PLAIN}Ym9icHc=", ""), 0);
	ck_assert_int_eq(users_check_hash("{PLAIN}", ""), 0);
	ck_assert_int_eq(users_check_hash("{PLAIN}YQBi", "a"), 0);
	ck_assert_int_eq(users_check_hash("-", "-"), 0);
	ck_assert_int_eq(users_check_hash("-", ""), 0);
	ck_assert_int_eq(users_check_hash("", ""), 0);
	ck_assert_int_eq(users_check_hash("bobpw", "bobpw"), 0);
	ck_assert_int_eq(users_check_hash(NULL, "x"), 0);
	ck_assert_int_eq(users_check_hash(SPEC_HASH, NULL), 0);
}
END_TEST

static const struct {
	const char	*user;
	const char	*password;
	int		 want;
} passwords[] = {
	{ "alice@example.org", SPEC_PW, 1 },
	{ "ALICE@Example.Org", SPEC_PW, 1 },
	{ "alice@example.org", "hello world!", 0 },
	{ "alice@example.org", "", 0 },
	{ "eve@example.org", SPEC_PW, 1 },
	{ "bob@example.org", "bobpw", 1 },
	{ "bob@example.org", "bobpw ", 0 },
	{ "bob@example.org", "BOBPW", 0 },
	{ "carol@example.org", "", 0 },
	{ "carol@example.org", "-", 0 },
	{ "info@example.org", "bobpw", 0 },
	{ "ghost@example.org", "", 0 },
	{ "alice", SPEC_PW, 0 },
	{ "", "", 0 },
};

START_TEST(test_check_password)
{
	struct users	*u;

	u = load_ok(NULL, users_text, aliases_text);
	ck_assert_int_eq(users_check_password(u, passwords[_i].user,
	    passwords[_i].password), passwords[_i].want);
	users_free(u);
}
END_TEST

START_TEST(test_secrets)
{
	struct users	*u;
	char		 buf[USERS_PATH_SIZE];

	u = load_ok(NULL, users_text, aliases_text);

	ck_assert_int_eq(users_stored_secret(u, "Alice@example.org", buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, SPEC_HASH);
	ck_assert_int_eq(users_check_hash(buf, SPEC_PW), 1);
	ck_assert_int_eq(users_stored_secret(u, "bob@example.org", buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, "{PLAIN}Ym9icHc=");
	ck_assert_int_eq(users_stored_secret(u, "carol@example.org", buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(users_stored_secret(u, "ghost@example.org", buf,
	    sizeof buf), -1);
	ck_assert_int_eq(users_stored_secret(u, "info@example.org", buf,
	    sizeof buf), -1);
	ck_assert_int_eq(users_stored_secret(u, "alice@example.org", buf,
	    strlen(SPEC_HASH)), -1);
	ck_assert_int_eq(users_stored_secret(u, "alice@example.org", buf,
	    strlen(SPEC_HASH) + 1), 0);

	ck_assert_int_eq(users_cram_secret(u, "BOB@example.org", buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, "bobpw");
	ck_assert_int_eq(users_cram_secret(u, "bob@example.org", buf, 5), -1);
	ck_assert_int_eq(users_cram_secret(u, "bob@example.org", buf, 6), 0);
	ck_assert_str_eq(buf, "bobpw");
	ck_assert_int_eq(users_cram_secret(u, "alice@example.org", buf,
	    sizeof buf), -1);
	ck_assert_int_eq(users_cram_secret(u, "carol@example.org", buf,
	    sizeof buf), -1);
	ck_assert_int_eq(users_cram_secret(u, "ghost@example.org", buf,
	    sizeof buf), -1);
	users_free(u);
}
END_TEST

/* New hashes: salted, checked by users_check_hash, loadable. */
START_TEST(test_hash)
{
	struct users	*u;
	char		 h1[USERS_PATH_SIZE], h2[USERS_PATH_SIZE];
	char		 line[USERS_PATH_SIZE * 2], *cause = NULL;

	ck_assert_int_eq(users_hash("s3cret pass", h1, sizeof h1, &cause),
	    0);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(users_hash("s3cret pass", h2, sizeof h2, &cause),
	    0);
	ck_assert(strncmp(h1, "$y$", 3) == 0 || strncmp(h1, "$6$", 3) == 0);
	ck_assert_str_ne(h1, h2);
	ck_assert_int_eq(users_check_hash(h1, "s3cret pass"), 1);
	ck_assert_int_eq(users_check_hash(h2, "s3cret pass"), 1);
	ck_assert_int_eq(users_check_hash(h1, "s3cret pas"), 0);
	ck_assert_int_eq(users_check_hash(h1, "S3cret pass"), 0);

	ck_assert(util_snprintf(line, sizeof line, "new@example.com %s\n",
	    h1) != -1);
	u = load_ok(NULL, line, NULL);
	ck_assert_int_eq(users_check_password(u, "new@example.com",
	    "s3cret pass"), 1);
	ck_assert_int_eq(users_check_password(u, "new@example.com",
	    "s3cret"), 0);
	users_free(u);

	/* An empty password hashes too; a buffer too small does not. */
	ck_assert_int_eq(users_hash("", h1, sizeof h1, &cause), 0);
	ck_assert_int_eq(users_check_hash(h1, ""), 1);
	ck_assert_int_eq(users_check_hash(h1, " "), 0);
	ck_assert_int_eq(users_hash("x", h1, 10, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_str_eq(h1, "");
	free(cause);
}
END_TEST

/*
 * Sender ownership.
 */

static const struct {
	const char	*user;
	const char	*sender;
	int		 want;
} owns[] = {
	{ "alice@example.org", "alice@example.org", 1 },
	{ "alice@example.org", "ALICE@Example.org", 1 },
	{ "Alice@EXAMPLE.org", "alice@example.org", 1 },
	{ "alice@example.org", "info@example.org", 1 },
	{ "bob@example.org", "info@example.org", 1 },
	{ "carol@example.org", "info@example.org", 0 },
	{ "carol@example.org", "team@example.org", 1 },
	{ "alice@example.org", "all@example.org", 1 },
	{ "alice@example.org", "sales@example.org", 1 },
	{ "alice@example.org", "anything@example.net", 1 },
	{ "dave@example.net", "anything@example.net", 0 },
	{ "dave@example.net", "Dave@example.net", 1 },
	{ "alice@example.org", "dave@example.net", 0 },
	{ "alice@example.org", "bob@example.org", 0 },
	{ "alice@example.org", "someone@remote.example", 0 },
	{ "alice@example.org", "alice@remote.example", 0 },
	{ "alice@example.org", "bad@example.org", 0 },
	{ "alice@example.org", "loopy@example.org", 0 },
	{ "alice@example.org", "ghost@example.org", 0 },
	{ "alice@example.org", "postmaster@example.org", 0 },
	{ "alice@example.org", "", 0 },
	{ "alice@example.org", "alice", 0 },
	{ "ghost@example.org", "ghost@example.org", 0 },
	{ "info@example.org", "info@example.org", 0 },
};

START_TEST(test_owns)
{
	struct users	*u;

	u = load_ok(NULL, users_text, aliases_text);
	ck_assert_msg(users_owns(u, owns[_i].user, owns[_i].sender) ==
	    owns[_i].want, "%s owns %s: want %d", owns[_i].user,
	    owns[_i].sender, owns[_i].want);
	users_free(u);
}
END_TEST

/* Postmaster owned through the setting. */
START_TEST(test_owns_postmaster)
{
	struct users_params	 p;
	struct users		*u;
	char			 upath[128], apath[128];

	std_params(&p, upath, apath, sizeof upath);
	p.postmaster = "alice@example.org";
	u = load_ok(&p, users_text, aliases_text);
	ck_assert_int_eq(users_owns(u, "alice@example.org",
	    "postmaster@example.com"), 1);
	ck_assert_int_eq(users_owns(u, "bob@example.org",
	    "postmaster@example.com"), 0);
	users_free(u);
}
END_TEST

/*
 * Many aliases sharing targets: each address is walked once per depth
 * it is reached at, not once per path (20^5 paths here).
 */
START_TEST(test_shared_targets)
{
	struct users_rcpt	*r;
	struct util_buf		 b;
	struct users		*u;
	size_t			 n;
	int			 i, j, k;

	memset(&b, 0, sizeof b);
	util_buf_adds(&b, "g0@example.org:");
	for (k = 0; k < 20; k++)
		util_buf_printf(&b, " g1x%d@example.org", k);
	util_buf_adds(&b, "\n");
	for (i = 1; i < 5; i++) {
		for (j = 0; j < 20; j++) {
			util_buf_printf(&b, "g%dx%d@example.org:", i, j);
			for (k = 0; k < 20; k++)
				util_buf_printf(&b, " g%dx%d@example.org,",
				    i + 1, k);
			util_buf_adds(&b, "\n");
		}
	}
	for (j = 0; j < 20; j++) {
		util_buf_printf(&b, "g5x%d@example.org: alice@example.org, "
		    "r%d@remote.example\n", j, j);
	}
	u = load_ok(NULL, "alice@example.org -\n", b.data);
	free(b.data);
	ck_assert_int_eq(users_resolve(u, "g0@example.org", &r, &n), 0);
	ck_assert_uint_eq(n, 21);
	ck_assert_str_eq(r[0].addr, "alice@example.org");
	ck_assert_str_eq(r[1].addr, "r0@remote.example");
	ck_assert_str_eq(r[20].addr, "r19@remote.example");
	free(r);
	users_free(u);
}
END_TEST

/*
 * An address reached first near the top and then deeper through another
 * branch is walked again where it has less room: the result does not
 * depend on the order of the targets.
 */
START_TEST(test_depth_order)
{
	static const char	aliases[] =
		"top1@example.org: mid@example.org, deep1@example.org\n"
		"top2@example.org: deep1@example.org, mid@example.org\n"
		"deep1@example.org: deep2@example.org\n"
		"deep2@example.org: deep3@example.org\n"
		"deep3@example.org: mid@example.org\n"
		"mid@example.org: m1@example.org\n"
		"m1@example.org: m2@example.org\n"
		"m2@example.org: m3@example.org\n"
		"m3@example.org: m4@example.org\n"
		"m4@example.org: m5@example.org\n"
		"m5@example.org: m6@example.org\n"
		"m6@example.org: alice@example.org\n";
	struct users		*u;
	char			 got[EXPECT_SIZE];

	/*
	 * deep1 -> deep2 -> deep3 -> mid -> m1 .. m6 -> alice is 10
	 * expansions, one more from top1 or top2.
	 */
	u = load_ok(NULL, "alice@example.org -\n", aliases);
	resolve_str(u, "deep1@example.org", got, sizeof got);
	ck_assert_str_eq(got, "alice@example.org=" MB "/example.org/alice");
	resolve_str(u, "top1@example.org", got, sizeof got);
	ck_assert_str_eq(got, "rc=-2");
	resolve_str(u, "top2@example.org", got, sizeof got);
	ck_assert_str_eq(got, "rc=-2");
	users_free(u);
}
END_TEST


/*
 * A traditional /etc/aliases: bare names for every local domain,
 * continuation lines, comments, :include: files, quoted and \name
 * targets; |command and /file targets skipped with one warning per
 * entry naming file and line, the rest loaded.
 */
static const char trad_aliases[] =
	"# /etc/aliases\n"
	"mailer-daemon: postmaster\n"
	"postmaster: root\n"
	"nobody: root\n"
	"root: alice, Bob\n"
	"\n"
	"team: alice,\n"
	"  # a comment inside the list\n"
	"\n"
	"\tcarol@example.org,\n"
	"  someone@remote.example\n"
	"list: :include:{D}/inc1, \":include: {D}/inc2\"\n"
	"majordomo: \"|/usr/lib/majordomo/wrapper majordomo\"\n"
	"archive: /var/mail/archive, |/bin/cat, alice\n"
	"pipe: |/usr/bin/procmail -a foo, \"|/bin/x, y\"\n"
	"quoted: \"alice\", \\bob\n"
	"info@example.net: carol\n"
	"ghost: :include:{D}/missing\n"
	"rel: :include:inc1, alice\n"
	"deep: :include:{D}/loop\n";

static const char *const trad_warnings[] = {
	"{D}/inc2:2: |/bin/true: command skipped: tern runs no command and "
	"writes no file for an alias",
	"{D}/aliases:13: |/usr/lib/majordomo/wrapper majordomo: command "
	"skipped: tern runs no command and writes no file for an alias",
	"{D}/aliases:13: majordomo: no target left; not an alias",
	"{D}/aliases:14: /var/mail/archive: file skipped with the other "
	"commands and files of the line: tern runs no command and writes no "
	"file for an alias",
	"{D}/aliases:15: |/usr/bin/procmail -a foo: command skipped with the "
	"other commands and files of the line: tern runs no command and "
	"writes no file for an alias",
	"{D}/aliases:15: pipe: no target left; not an alias",
	"{D}/aliases:18: :include:{D}/missing: No such file or directory; "
	"skipped",
	"{D}/aliases:18: ghost: no target left; not an alias",
	"{D}/aliases:19: inc1: :include: is not an absolute path; skipped",
	"{D}/loop:1: {D}/loop: :include: files nested deeper than 5; skipped",
	"{D}/aliases:20: deep: no target left; not an alias",
};

/* The warnings of a load, one per line. */
static void
collect_warning(const char *msg, void *arg)
{
	struct util_buf	*b = arg;

	util_buf_adds(b, msg);
	util_buf_adds(b, "\n");
}

START_TEST(test_traditional)
{
	static const struct {
		const char	*addr;
		const char	*want;
	} cases[] = {
		{ "root@example.org", "alice@example.org=" MB
		  "/example.org/alice;bob@example.org=" MB "/example.org/bob" },
		{ "ROOT@example.com", "alice@example.org=" MB
		  "/example.org/alice;bob@example.org=" MB "/example.org/bob" },
		{ "MAILER-DAEMON@example.net", "alice@example.org=" MB
		  "/example.org/alice;bob@example.org=" MB "/example.org/bob" },
		{ "team@example.com", "alice@example.org=" MB
		  "/example.org/alice;carol@example.org=/srv/mail/carol;"
		  "someone@remote.example=" },
		{ "list@example.org", "alice@example.org=" MB
		  "/example.org/alice;dave@example.net=" MB
		  "/example.net/dave;x@remote.example=" },
		{ "archive@example.org", "alice@example.org=" MB
		  "/example.org/alice" },
		{ "quoted@example.org", "alice@example.org=" MB
		  "/example.org/alice;bob@example.org=" MB "/example.org/bob" },
		/* An exact alias wins over a bare name, a user over both. */
		{ "info@example.net", "carol@example.org=/srv/mail/carol" },
		{ "alice@example.org", "alice@example.org=" MB
		  "/example.org/alice" },
		{ "rel@example.org", "alice@example.org=" MB
		  "/example.org/alice" },
		/* Skipped aliases are not there: unknown, or postmaster's. */
		{ "majordomo@example.org", "rc=-1" },
		{ "pipe@example.org", "rc=-1" },
		{ "ghost@example.org", "rc=-1" },
		{ "deep@example.org", "rc=-1" },
	};
	struct users_params	 p;
	struct users		*u;
	struct util_buf		 warnings, want;
	char			 upath[128], apath[128], got[EXPECT_SIZE];
	char			 text[2048], *cause = NULL;
	size_t			 i;

	expand(text, sizeof text, "alice@example.org, dave@example.net\n"
	    "# a comment\n:include:{D}/inc3\n");
	write_file("inc1", text, strlen(text));
	write_file("inc2", "x@remote.example\n|/bin/true\n", 28);
	expand(text, sizeof text, "alice@example.org\n");
	write_file("inc3", text, strlen(text));
	expand(text, sizeof text, ":include:{D}/loop\n");
	write_file("loop", text, strlen(text));
	expand(text, sizeof text, trad_aliases);

	std_params(&p, upath, apath, sizeof upath);
	memset(&warnings, 0, sizeof warnings);
	p.warn = collect_warning;
	p.warn_arg = &warnings;
	write_file("users", users_text, strlen(users_text));
	write_file("aliases", text, strlen(text));
	u = users_load(&p, &cause);
	if (u == NULL)
		ck_abort_msg("users_load: %s", cause);
	memset(&want, 0, sizeof want);
	for (i = 0; i < nitems(trad_warnings); i++) {
		expand(text, sizeof text, trad_warnings[i]);
		util_buf_adds(&want, text);
		util_buf_adds(&want, "\n");
	}
	ck_assert_str_eq(warnings.data, want.data);
	for (i = 0; i < nitems(cases); i++) {
		resolve_str(u, cases[i].addr, got, sizeof got);
		ck_assert_msg(strcmp(got, cases[i].want) == 0,
		    "%s: got \"%s\", want \"%s\"", cases[i].addr, got,
		    cases[i].want);
	}
	users_free(u);
	free(warnings.data);
	free(want.data);
}
END_TEST

/* A continuation line too many: the entry is too long. */
START_TEST(test_long_entry)
{
	struct util_buf	b;
	int		i;

	memset(&b, 0, sizeof b);
	util_buf_adds(&b, "big:");
	for (i = 0; i < 3000; i++)
		util_buf_printf(&b, "\n  user%d@remote.example,", i);
	util_buf_adds(&b, "\nnext: alice\n");
	load_bad(NULL, NULL, b.data, "{D}/aliases:1: entry longer than 65536 "
	    "characters with its continuation lines");
	free(b.data);
}
END_TEST

/*
 * System names (root, MAILER-DAEMON, abuse, ...) that nothing takes go
 * to the postmaster, before a catch-all; other names do not.
 */
static const struct {
	const char	*addr;
	const char	*want;
} systems[] = {
	{ "root@example.org", "postmaster@example.org=" PM },
	{ "Root@example.com", "postmaster@example.org=" PM },
	{ "MAILER-DAEMON@example.org", "postmaster@example.org=" PM },
	{ "abuse@example.net", "postmaster@example.org=" PM },
	{ "www-data@example.org", "postmaster@example.org=" PM },
	{ "nobody@example.org", "postmaster@example.org=" PM },
	{ "rooty@example.org", "rc=-1" },
	{ "info@example.com", "rc=-1" },
	{ "root@remote.example", "root@remote.example=" },
	/* A catch-all takes what is no system name. */
	{ "ghost@example.net", "alice@example.org=" MB "/example.org/alice" },
	/* A user or an alias of that name wins. */
	{ "security@example.org", "carol@example.org=/srv/mail/carol" },
	{ "webmaster@example.org", "bob@example.org=" MB "/example.org/bob" },
	/* One whose aliases fail still reaches the postmaster. */
	{ "hostmaster@example.org", "postmaster@example.org=" PM },
};

START_TEST(test_system_names)
{
	struct users	*u;
	char		 got[EXPECT_SIZE];

	u = load_ok(NULL, "alice@example.org -\nbob@example.org -\n"
	    "carol@example.org - /srv/mail/carol\n",
	    "@example.net: alice\nsecurity: carol\n"
	    "webmaster@example.org: bob\n"
	    "hostmaster: ghost@example.org\n");
	resolve_str(u, systems[_i].addr, got, sizeof got);
	ck_assert_msg(strcmp(got, systems[_i].want) == 0,
	    "%s: got \"%s\", want \"%s\"", systems[_i].addr, got,
	    systems[_i].want);
	ck_assert_int_eq(users_is_system("ROOT"), 1);
	ck_assert_int_eq(users_is_system("mailer-daemon@x"), 1);
	ck_assert_int_eq(users_is_system("alice@example.org"), 0);
	ck_assert_int_eq(users_is_system(""), 0);
	ck_assert_int_eq(users_is_system("@example.org"), 0);
	users_free(u);
}
END_TEST

/* A report to a local sender nothing takes goes to the postmaster. */
START_TEST(test_resolve_notice)
{
	struct users		*u;
	struct users_rcpt	*r;
	size_t			 n;

	u = load_ok(NULL, users_text, aliases_text);
	ck_assert_int_eq(users_resolve_notice(u, "info@example.org", &r, &n),
	    0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(r[0].addr, "alice@example.org");
	free(r);
	ck_assert_int_eq(users_resolve_notice(u, "ghost@example.org", &r,
	    &n), 1);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(r[0].addr, "postmaster@example.org");
	ck_assert_str_eq(r[0].mailbox, PM);
	free(r);
	ck_assert_int_eq(users_resolve_notice(u, "loop1@example.org", &r,
	    &n), 1);
	ck_assert_str_eq(r[0].addr, "postmaster@example.org");
	free(r);
	ck_assert_int_eq(users_resolve_notice(u, "x@remote.example", &r, &n),
	    0);
	ck_assert_str_eq(r[0].addr, "x@remote.example");
	free(r);
	ck_assert_int_eq(users_resolve_notice(u, "not an address", &r, &n),
	    1);
	free(r);
	users_free(u);
}
END_TEST

static Suite *
users_suite(void)
{
	Suite	*s = suite_create("users");
	TCase	*tc;

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_bad, 0, nitems(bad));
	tcase_add_test(tc, test_bad_escaped);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_bad_params);
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_traditional);
	tcase_add_test(tc, test_long_entry);
	suite_add_tcase(s, tc);

	tc = tcase_create("resolve");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_count_and_local);
	tcase_add_loop_test(tc, test_resolve, 0, nitems(resolves));
	tcase_add_loop_test(tc, test_postmaster, 0, nitems(postmasters));
	tcase_add_loop_test(tc, test_mailbox, 0, nitems(mailboxes));
	tcase_add_test(tc, test_mailbox_edges);
	tcase_add_test(tc, test_shared_targets);
	tcase_add_test(tc, test_depth_order);
	tcase_add_loop_test(tc, test_system_names, 0, nitems(systems));
	tcase_add_test(tc, test_resolve_notice);
	suite_add_tcase(s, tc);

	tc = tcase_create("passwords");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_check_hash);
	tcase_add_loop_test(tc, test_check_password, 0, nitems(passwords));
	tcase_add_test(tc, test_secrets);
	tcase_add_test(tc, test_hash);
	suite_add_tcase(s, tc);

	tc = tcase_create("owns");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_owns, 0, nitems(owns));
	tcase_add_test(tc, test_owns_postmaster);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(users_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
