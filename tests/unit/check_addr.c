/*
 * check_addr.c: RFC 5321 paths.  A table of valid and invalid paths under
 * each flag, every address trick that could route mail elsewhere, the
 * length limits at their edges, UTF-8 with and without SMTPUTF8, every
 * prefix of a valid path, mutated paths, and the printed forms (which
 * must parse back to the same address).
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "util.h"

#define N	ADDR_ALLOW_NULL
#define P	ADDR_ALLOW_POSTMASTER
#define U	ADDR_ALLOW_UTF8
#define B	ADDR_ALLOW_BARE
#define SYN	ADDR_ERR_SYNTAX
#define UTF	ADDR_ERR_UTF8

static const struct {
	const char	*path;
	int		 flags;
	int		 rc;
	const char	*local;		/* for rc 0 and UTF */
	const char	*domain;
	const char	*rest;
	int		 routing;	/* addr_has_routing() on success */
} paths[] = {
	/* A bare local part, for the caller to qualify, only when asked. */
	{ "<alice>", B, 0, "alice", "", "", 0 },
	{ "<\"a b\">", B, 0, "\"a b\"", "", "", 0 },
	{ "<alice> SIZE=1", B, 0, "alice", "", " SIZE=1", 0 },
	{ "<alice>", N | P | U, SYN, NULL, NULL, NULL, 0 },
	{ "<@a.example:alice>", B, SYN, NULL, NULL, NULL, 0 },
	{ "<alice@>", B, SYN, NULL, NULL, NULL, 0 },
	{ "<a%b>", B, 0, "a%b", "", "", 1 },
	/* Plain mailboxes. */
	{ "<user@example.com>", 0, 0, "user", "example.com", "", 0 },
	{ " <user@example.com>", 0, 0, "user", "example.com", "", 0 },
	{ "   <user@example.com> SIZE=100", 0, 0, "user", "example.com",
	    " SIZE=100", 0 },
	{ "<User@Example.COM>", 0, 0, "User", "example.com", "", 0 },
	{ "<a.b.c@x.example>", 0, 0, "a.b.c", "x.example", "", 0 },
	{ "<first.last+tag@sub.example.org>", N | P | U, 0,
	    "first.last+tag", "sub.example.org", "", 0 },
	{ "<#$&'*+-/=?^_`{|}~@x>", 0, 0, "#$&'*+-/=?^_`{|}~", "x", "", 0 },
	{ "<user@example.com.>", 0, 0, "user", "example.com", "", 0 },
	{ "<user@b-c.d>", 0, 0, "user", "b-c.d", "", 0 },
	{ "<user@1.2.3.4.in-addr.example>", 0, 0, "user",
	    "1.2.3.4.in-addr.example", "", 0 },
	{ "<x@y>  BODY=8BITMIME  ", 0, 0, "x", "y", "  BODY=8BITMIME  ", 0 },
	{ "<\"a b\"@x>", 0, 0, "\"a b\"", "x", "", 0 },
	/* Quotes that are not needed are removed. */
	{ "<\"alice\"@x>", 0, 0, "alice", "x", "", 0 },
	{ "<\"a.b\"@x>", 0, 0, "a.b", "x", "", 0 },
	{ "<\"al\\ice\"@x>", 0, 0, "alice", "x", "", 0 },
	{ "<\"a+b\"@x>", 0, 0, "a+b", "x", "", 0 },
	{ "<\"\xc3\xb6\"@x>", U, 0, "\xc3\xb6", "x", "", 0 },
	{ "<\".a\"@x>", 0, 0, "\".a\"", "x", "", 0 },
	{ "<\"a.\"@x>", 0, 0, "\"a.\"", "x", "", 0 },
	{ "<\"a..b\"@x>", 0, 0, "\"a..b\"", "x", "", 0 },
	{ "<\"a\\ b\"@x>", 0, 0, "\"a\\ b\"", "x", "", 0 },
	{ "<\"a,b\"@x>", 0, 0, "\"a,b\"", "x", "", 0 },
	{ "<\"alice\">", B, 0, "alice", "", "", 0 },
	{ "<\"a\\\"b\"@x>", 0, 0, "\"a\\\"b\"", "x", "", 0 },
	{ "<\"a\\\\b\"@x>", 0, 0, "\"a\\\\b\"", "x", "", 0 },
	{ "<\"!#[]~\"@x>", 0, 0, "\"!#[]~\"", "x", "", 1 },
	/* Address tricks: each parses, each is seen as routing. */
	{ "<user%other@local>", 0, 0, "user%other", "local", "", 1 },
	{ "<\"user@other\"@local>", 0, 0, "\"user@other\"", "local", "", 1 },
	{ "<\"user\\@other\"@local>", 0, 0, "\"user\\@other\"", "local", "",
	    1 },
	{ "<\"user%other\"@local>", 0, 0, "user%other", "local", "", 1 },
	{ "<bang!path@local>", 0, 0, "bang!path", "local", "", 1 },
	{ "<\"bang!path\"@local>", 0, 0, "bang!path", "local", "", 1 },
	{ "<a!b%c@local>", 0, 0, "a!b%c", "local", "", 1 },
	/* Source routes are checked and dropped. */
	{ "<@local:user@other>", 0, 0, "user", "other", "", 0 },
	{ "<@a.example,@b.example:user@c.example>", 0, 0, "user",
	    "c.example", "", 0 },
	{ "<@A.example.:user@C.Example>", 0, 0, "user", "c.example", "", 0 },
	{ "<@local:user%other@local>", 0, 0, "user%other", "local", "", 1 },
	{ "<@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@a,b:c@d>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@a:@b:c@d>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@a.example:>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@[192.0.2.1]:a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@a;b:c@d>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@:a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	/* Address literals. */
	{ "<user@[192.0.2.1]>", 0, 0, "user", "[192.0.2.1]", "", 0 },
	{ "<user@[IPv6:2001:DB8::1]>", 0, 0, "user", "[IPv6:2001:db8::1]",
	    "", 0 },
	{ "<user@[ipv6:::1]>", 0, 0, "user", "[IPv6:::1]", "", 0 },
	{ "<user@[IPv6:::ffff:192.0.2.1]>", 0, 0, "user",
	    "[IPv6:::ffff:192.0.2.1]", "", 0 },
	{ "<a@[300.1.1.1]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[1.2.3]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[IPv6:zz::1]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[IPv6:192.0.2.1]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[2001:db8::1]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[tag:stuff]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[192.0.2.1>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@192.0.2.1]>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[192.0.2.1]x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[1.2.3.\xc3\xa4]>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<a@[ 1.2.3.4]>", 0, SYN, NULL, NULL, NULL, 0 },
	/* The null path and Postmaster. */
	{ "<>", N, 0, "", "", "", 0 },
	{ "<> BODY=8BITMIME", N | P | U, 0, "", "", " BODY=8BITMIME", 0 },
	{ " <>", N, 0, "", "", "", 0 },
	{ "<>", P | U, SYN, NULL, NULL, NULL, 0 },
	{ "<>x", N, SYN, NULL, NULL, NULL, 0 },
	{ "<Postmaster>", P, 0, "Postmaster", "", "", 0 },
	{ "<postMASTER> X=1", P, 0, "postMASTER", "", " X=1", 0 },
	{ "<Postmaster>", N | U, SYN, NULL, NULL, NULL, 0 },
	{ "<Postmaster@Example.COM>", P, 0, "Postmaster", "example.com", "",
	    0 },
	{ "<postmaster@x>", 0, 0, "postmaster", "x", "", 0 },
	{ "<Postmasters>", P, SYN, NULL, NULL, NULL, 0 },
	{ "<Postmaster>x", P, SYN, NULL, NULL, NULL, 0 },
	{ "<@a:Postmaster>", P, SYN, NULL, NULL, NULL, 0 },
	/* UTF-8: valid with SMTPUTF8, UTF without it, never if malformed. */
	{ "<j\xc3\xb6ran@example.com>", U, 0, "j\xc3\xb6ran", "example.com",
	    "", 0 },
	{ "<j\xc3\xb6ran@example.com>", N | P, UTF, "j\xc3\xb6ran",
	    "example.com", "", 0 },
	{ "<user@b\xc3\xbc" "cher.example>", U, 0, "user",
	    "b\xc3\xbc" "cher.example", "", 0 },
	{ "<user@B\xc3\x9c" "CHER.example>", U, 0, "user",
	    "b\xc3\x9c" "cher.example", "", 0 },
	{ "<user@b\xc3\xbc" "cher.example>", 0, UTF, "user",
	    "b\xc3\xbc" "cher.example", "", 0 },
	{ "<\"\xc3\xb6 \xc3\xb6\"@x>", U, 0, "\"\xc3\xb6 \xc3\xb6\"", "x", "",
	    0 },
	{ "<\xe2\x82\xac@\xf0\x9f\x98\x80.example>", U, 0, "\xe2\x82\xac",
	    "\xf0\x9f\x98\x80.example", "", 0 },
	{ "<@\xc3\xa4.example:a@b>", 0, UTF, "a", "b", "", 0 },
	{ "<j\xc3@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<j\xc3@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\xc3\xb6\xb6@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<\xc0\xaf@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<\xed\xa0\x80@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<\xf4\x90\x80\x80@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<\xff@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<a@x\xe2\x82>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a\\\xc3\xa4\"@x>", U, SYN, NULL, NULL, NULL, 0 },
	{ "<j\xc3\xb6ran@example.com", 0, SYN, NULL, NULL, NULL, 0 },
	/* Broken syntax. */
	{ "", 0, SYN, NULL, NULL, NULL, 0 },
	{ "   ", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<", N | P | U, SYN, NULL, NULL, NULL, 0 },
	{ "user@example.com", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<user@example.com", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<user@example.com>x", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<user@example.com>>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<user@example.com>\t", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<<a@b>>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "\t<a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<user@other@local>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a\\@b@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a\\b@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a b@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "< a@x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a @x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@ x>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@x >", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b..c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@.b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@.>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b..>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@-b.c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b-.c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b.c->", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b.-c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b_c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b,c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<.a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a.@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a..b@c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"\"@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a\"b@c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a.\"b\"@c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a\x01\"@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a\\\x01\"@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<\"a\\", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a\x01@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b\tc>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b\r\n>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a\x7f@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<(comment)a@b>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b(comment)>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a@b;c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a,b@c>", 0, SYN, NULL, NULL, NULL, 0 },
	{ "<a:b@c>", 0, SYN, NULL, NULL, NULL, 0 },
};

static int
has_high(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return 1;
	}
	return 0;
}

/* Parse, then check the outcome and the printed forms against the table. */
START_TEST(test_paths)
{
	struct addr	 a;
	const char	*rest = NULL, *cause = NULL;
	char		 buf[ADDR_PATH_SIZE], path[ADDR_PATH_SIZE];
	int		 rc;

	memset(&a, 'X', sizeof a);
	rc = addr_parse_path(paths[_i].path, paths[_i].flags, &a, &rest,
	    &cause);
	ck_assert_msg(rc == paths[_i].rc, "\"%s\": rc %d, want %d (%s)",
	    paths[_i].path, rc, paths[_i].rc, cause ? cause : "-");
	if (rc == ADDR_ERR_SYNTAX) {
		ck_assert_ptr_nonnull(cause);
		ck_assert_msg(cause[0] != '\0', "\"%s\": empty cause",
		    paths[_i].path);
		ck_assert_msg(addr_is_null(&a), "\"%s\": not cleared",
		    paths[_i].path);
		return;
	}
	if (rc == ADDR_ERR_UTF8)
		ck_assert_ptr_nonnull(cause);
	ck_assert_str_eq(a.local, paths[_i].local);
	ck_assert_str_eq(a.domain, paths[_i].domain);
	ck_assert_ptr_nonnull(rest);
	ck_assert_str_eq(rest, paths[_i].rest);
	ck_assert_ptr_eq(rest, paths[_i].path + strlen(paths[_i].path) -
	    strlen(paths[_i].rest));
	ck_assert_int_eq(addr_is_utf8(&a), has_high(paths[_i].local) ||
	    has_high(paths[_i].domain));
	ck_assert_int_eq(addr_has_routing(&a), paths[_i].routing);
	ck_assert_int_eq(addr_is_null(&a), paths[_i].local[0] == '\0' &&
	    paths[_i].domain[0] == '\0');

	ck_assert_int_eq(addr_format(&a, buf, sizeof buf), 0);
	ck_assert_int_eq(addr_format_path(&a, path, sizeof path), 0);
	if (addr_is_null(&a)) {
		ck_assert_str_eq(buf, "");
		ck_assert_str_eq(path, "<>");
	} else if (a.domain[0] == '\0') {
		ck_assert_str_eq(buf, a.local);
	} else {
		ck_assert_uint_eq(strlen(buf), strlen(a.local) + 1 +
		    strlen(a.domain));
		ck_assert(strncmp(buf, a.local, strlen(a.local)) == 0);
		ck_assert_int_eq(buf[strlen(a.local)], '@');
		ck_assert_str_eq(buf + strlen(a.local) + 1, a.domain);
	}
	ck_assert_uint_eq(strlen(path), strlen(buf) + 2);
	ck_assert_int_eq(path[0], '<');
	ck_assert(strncmp(path + 1, buf, strlen(buf)) == 0);
	ck_assert_int_eq(path[strlen(path) - 1], '>');
}
END_TEST

/* The printed path parses back to the same address. */
START_TEST(test_round_trip)
{
	struct addr	 a, b;
	const char	*rest, *cause;
	char		 path[ADDR_PATH_SIZE];
	int		 rc;

	rc = addr_parse_path(paths[_i].path, paths[_i].flags | U, &a, &rest,
	    &cause);
	if (rc != 0)
		return;
	ck_assert_int_eq(addr_format_path(&a, path, sizeof path), 0);
	rc = addr_parse_path(path, paths[_i].flags | U, &b, &rest, &cause);
	ck_assert_msg(rc == 0, "\"%s\" -> \"%s\": %s", paths[_i].path, path,
	    cause);
	ck_assert_str_eq(rest, "");
	ck_assert_str_eq(a.local, b.local);
	ck_assert_str_eq(a.domain, b.domain);
}
END_TEST

/*
 * Every prefix of a path, in a buffer of exactly its size, fails cleanly
 * until the ">" is in; from there on it parses as the whole did.
 */
START_TEST(test_prefixes)
{
	const char	*s = paths[_i].path, *rest, *cause, *full_rest;
	struct addr	 a, full;
	size_t		 len = strlen(s), k, end;
	char		*buf;
	int		 rc;

	if (paths[_i].rc != 0)
		return;
	ck_assert_int_eq(addr_parse_path(s, paths[_i].flags, &full,
	    &full_rest, &cause), 0);
	end = (size_t)(full_rest - s);
	for (k = 0; k <= len; k++) {
		buf = xmalloc(k + 1);
		memcpy(buf, s, k);
		buf[k] = '\0';
		cause = NULL;
		rc = addr_parse_path(buf, paths[_i].flags, &a, &rest, &cause);
		if (k < end) {
			ck_assert_msg(rc == ADDR_ERR_SYNTAX,
			    "\"%s\" prefix %zu: rc %d", s, k, rc);
			ck_assert_ptr_nonnull(cause);
		} else {
			ck_assert_msg(rc == 0, "\"%s\" prefix %zu: %s", s, k,
			    cause);
			ck_assert_ptr_eq(rest, buf + end);
			ck_assert_str_eq(a.local, full.local);
			ck_assert_str_eq(a.domain, full.domain);
		}
		free(buf);
	}
}
END_TEST

/* Lengths at their limits: a path built as prefix, n units, suffix. */
static const struct {
	const char	*prefix;
	size_t		 n;
	const char	*unit;
	const char	*suffix;
	int		 flags;
	int		 rc;
	size_t		 local_len;	/* on success */
	size_t		 domain_len;
} sizes[] = {
	{ "<", 256, "a", "@x>", 0, 0, 256, 1 },
	{ "<", 257, "a", "@x>", 0, SYN, 0, 0 },
	{ "<", 128, "a.", "@x>", 0, SYN, 0, 0 },
	{ "<a", 127, ".a", "@x>", 0, 0, 255, 1 },
	{ "<\"", 254, "a", "\"@x>", 0, 0, 254, 1 },
	{ "<\"", 255, "a", "\"@x>", 0, SYN, 0, 0 },
	{ "<\"", 127, "\\a", "\"@x>", 0, 0, 127, 1 },
	{ "<\"", 128, "\\a", "\"@x>", 0, SYN, 0, 0 },
	{ "<", 128, "\xc3\xa4", "@x>", U, 0, 256, 1 },
	{ "<", 128, "\xc3\xa4", "@x>", 0, UTF, 256, 1 },
	{ "<a", 128, "\xc3\xa4", "@x>", U, SYN, 0, 0 },
	{ "<a@", 63, "b", ".x>", 0, 0, 1, 65 },
	{ "<a@", 64, "b", ".x>", 0, SYN, 0, 0 },
	{ "<a@x.", 63, "b", ">", 0, 0, 1, 65 },
	{ "<a@x.", 64, "b", ">", 0, SYN, 0, 0 },
	{ "<a@x.", 63, "b", ".>", 0, 0, 1, 65 },
	{ "<a@x.", 64, "b", ".>", 0, SYN, 0, 0 },
	{ "<a@", 63, "\xc3\xa4", ".x>", U, 0, 1, 128 },
	{ "<a@", 64, "\xc3\xa4", ".x>", U, SYN, 0, 0 },
	{ "<a@", 63, "bbb.", "bbb>", 0, 0, 1, 255 },
	{ "<a@", 63, "bbb.", "bbb.>", 0, 0, 1, 255 },
	{ "<a@", 63, "bbb.", "bbbb>", 0, SYN, 0, 0 },
	{ "<a@", 64, "bbb.", "b>", 0, SYN, 0, 0 },
	{ "<a@", 63, "bbb.", "bb>", 0, 0, 1, 254 },
	{ "<a@", 127, "b.", "x>", 0, 0, 1, 255 },
	{ "<a@", 128, "b.", "x>", 0, SYN, 0, 0 },
	{ "<@", 63, "b", ":a@x>", 0, 0, 1, 1 },
	{ "<@", 64, "b", ":a@x>", 0, SYN, 0, 0 },
	{ "<@", 64, "bbb.", "b:a@x>", 0, SYN, 0, 0 },
	{ "<", 100, "@r.example,", "@r:a@x>", 0, 0, 1, 1 },
	{ "<", 1000, "@r,", "@r:a@x>", 0, 0, 1, 1 },
	{ "<", 10000, "a", "@x>", 0, SYN, 0, 0 },
	{ "<a@", 10000, "b", ">", 0, SYN, 0, 0 },
	{ "<a@", 10000, "b.", "x>", 0, SYN, 0, 0 },
	{ "<\"", 10000, " ", "\"@x>", 0, SYN, 0, 0 },
};

START_TEST(test_sizes)
{
	struct addr	 a;
	const char	*rest, *cause = NULL;
	char		*s;
	size_t		 ulen = strlen(sizes[_i].unit), plen, len, k;
	int		 rc;

	plen = strlen(sizes[_i].prefix);
	len = plen + sizes[_i].n * ulen + strlen(sizes[_i].suffix);
	s = xmalloc(len + 1);
	memcpy(s, sizes[_i].prefix, plen);
	for (k = 0; k < sizes[_i].n; k++)
		memcpy(s + plen + k * ulen, sizes[_i].unit, ulen);
	memcpy(s + plen + sizes[_i].n * ulen, sizes[_i].suffix,
	    strlen(sizes[_i].suffix) + 1);
	rc = addr_parse_path(s, sizes[_i].flags, &a, &rest, &cause);
	ck_assert_msg(rc == sizes[_i].rc, "case %d: rc %d (%s)", _i, rc,
	    cause ? cause : "-");
	if (rc != ADDR_ERR_SYNTAX) {
		ck_assert_uint_eq(strlen(a.local), sizes[_i].local_len);
		ck_assert_uint_eq(strlen(a.domain), sizes[_i].domain_len);
		ck_assert_ptr_eq(rest, s + len);
	} else
		ck_assert_ptr_nonnull(cause);
	free(s);
}
END_TEST

/* Formatting into buffers of exactly the size needed, and one less. */
START_TEST(test_format_sizes)
{
	static const char	*inputs[] = {
		"<>", "<Postmaster>", "<a@b>", "<\"a b\"@example.com>",
	};
	struct addr		 a;
	const char		*rest, *cause;
	char			 buf[ADDR_PATH_SIZE];
	size_t			 i, len;

	for (i = 0; i < nitems(inputs); i++) {
		ck_assert_int_eq(addr_parse_path(inputs[i], N | P, &a, &rest,
		    &cause), 0);
		len = strlen(inputs[i]);
		ck_assert_int_eq(addr_format_path(&a, buf, len + 1), 0);
		ck_assert_str_eq(buf, inputs[i]);
		ck_assert_int_eq(addr_format_path(&a, buf, len), -1);
		ck_assert_int_eq(addr_format(&a, buf, len - 1), 0);
		ck_assert_uint_eq(strlen(buf), len - 2);
		ck_assert_int_eq(addr_format(&a, buf, len - 2), -1);
	}
	/* The largest address fits the documented buffer. */
	memset(&a, 0, sizeof a);
	memset(a.local, 'l', ADDR_LOCAL_SIZE - 1);
	memset(a.domain, 'd', ADDR_DOMAIN_SIZE - 1);
	ck_assert_int_eq(addr_format_path(&a, buf, sizeof buf), 0);
	ck_assert_uint_eq(strlen(buf), ADDR_LOCAL_SIZE - 1 +
	    ADDR_DOMAIN_SIZE - 1 + 3);
	ck_assert_int_eq(addr_format(&a, buf, sizeof buf), 0);
}
END_TEST

START_TEST(test_predicates)
{
	struct addr	a;

	memset(&a, 0, sizeof a);
	ck_assert_int_eq(addr_is_null(&a), 1);
	ck_assert_int_eq(addr_has_routing(&a), 0);
	ck_assert_int_eq(addr_is_utf8(&a), 0);
	util_strlcpy(a.domain, "x", sizeof a.domain);
	ck_assert_int_eq(addr_is_null(&a), 0);
	util_strlcpy(a.domain, "\xc3\xa4", sizeof a.domain);
	ck_assert_int_eq(addr_is_utf8(&a), 1);
	memset(&a, 0, sizeof a);
	util_strlcpy(a.local, "p", sizeof a.local);
	ck_assert_int_eq(addr_is_null(&a), 0);
	ck_assert_int_eq(addr_has_routing(&a), 0);
	util_strlcpy(a.local, "\"a\\@b\"", sizeof a.local);
	ck_assert_int_eq(addr_has_routing(&a), 1);
	util_strlcpy(a.local, "x\xe2\x82\xac", sizeof a.local);
	ck_assert_int_eq(addr_is_utf8(&a), 1);
}
END_TEST

static uint32_t
rnd(uint32_t *state)
{
	uint32_t	x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/*
 * Whatever comes back must be consistent and print back into a path.
 * Plain tests here: ck_assert costs too much in the fuzz loops.
 */
static void
check_any(const char *s, size_t len, int flags)
{
	struct addr	 a, b;
	const char	*rest = NULL, *cause = NULL;
	char		 path[ADDR_PATH_SIZE];
	int		 rc;

	rc = addr_parse_path(s, flags, &a, &rest, &cause);
	if (rc != 0 && rc != ADDR_ERR_SYNTAX && rc != ADDR_ERR_UTF8)
		ck_abort_msg("rc %d", rc);
	if (strnlen(a.local, sizeof a.local) == sizeof a.local ||
	    strnlen(a.domain, sizeof a.domain) == sizeof a.domain)
		ck_abort_msg("unterminated result");
	if (rc == ADDR_ERR_SYNTAX) {
		if (cause == NULL || !addr_is_null(&a))
			ck_abort_msg("syntax error without cause or cleared "
			    "address");
		return;
	}
	if (rest <= s || rest > s + len || (*rest != '\0' && *rest != ' '))
		ck_abort_msg("bad rest");
	if (rc == ADDR_ERR_UTF8 && (flags & U))
		ck_abort_msg("UTF-8 refused though allowed");
	if (addr_is_utf8(&a) && !(flags & U) && rc != ADDR_ERR_UTF8)
		ck_abort_msg("UTF-8 accepted though not allowed");
	if (addr_format_path(&a, path, sizeof path) == -1)
		ck_abort_msg("does not print");
	if (addr_parse_path(path, flags | U, &b, &rest, &cause) != 0 ||
	    strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0)
		ck_abort_msg("printed form does not parse back");
}

static const char	fuzz_alphabet[] = "<>@.\"\\ :,[]%!-_aZ09+\t\x01\x7f"
			    "\xc3\xa4\xe2\x82\xac\xff\x80";

/* Random strings of the octets that matter, in exact-size buffers. */
START_TEST(test_fuzz_random)
{
	uint32_t	 seed = 0x7e57u + (uint32_t)_i;
	size_t		 len, k;
	char		*s;
	int		 round;

	for (round = 0; round < 2000; round++) {
		len = rnd(&seed) % 40;
		s = xmalloc(len + 1);
		for (k = 0; k < len; k++)
			s[k] = fuzz_alphabet[rnd(&seed) %
			    (sizeof fuzz_alphabet - 1)];
		s[len] = '\0';
		check_any(s, len, (int)(rnd(&seed) % 8));
		free(s);
	}
}
END_TEST

/* Each valid path with one octet changed, dropped or added. */
START_TEST(test_fuzz_mutate)
{
	const char	*orig = paths[_i].path;
	uint32_t	 seed = 0x5eedu + (uint32_t)_i;
	size_t		 olen = strlen(orig), len, pos;
	char		*s;
	int		 round, op;

	if (paths[_i].rc != 0)
		return;
	for (round = 0; round < 300; round++) {
		s = xmalloc(olen + 2);
		memcpy(s, orig, olen + 1);
		len = olen;
		pos = rnd(&seed) % (olen + 1);
		op = (int)(rnd(&seed) % 3);
		if (op == 0 && pos < olen)
			s[pos] = fuzz_alphabet[rnd(&seed) %
			    (sizeof fuzz_alphabet - 1)];
		else if (op == 1 && pos < olen) {
			memmove(s + pos, s + pos + 1, olen - pos);
			len--;
		} else {
			memmove(s + pos + 1, s + pos, olen - pos + 1);
			s[pos] = fuzz_alphabet[rnd(&seed) %
			    (sizeof fuzz_alphabet - 1)];
			len++;
		}
		check_any(s, len, (int)(rnd(&seed) % 8));
		free(s);
	}
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite	*s = suite_create("addr");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_paths, 0, nitems(paths));
	tcase_add_loop_test(tc, test_round_trip, 0, nitems(paths));
	tcase_add_loop_test(tc, test_prefixes, 0, nitems(paths));
	tcase_add_loop_test(tc, test_sizes, 0, nitems(sizes));
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_test(tc, test_format_sizes);
	tcase_add_test(tc, test_predicates);
	suite_add_tcase(s, tc);

	tc = tcase_create("fuzz");
	tcase_add_loop_test(tc, test_fuzz_random, 0, 8);
	tcase_add_loop_test(tc, test_fuzz_mutate, 0, nitems(paths));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(addr_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
