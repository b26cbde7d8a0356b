/*
 * check_maildrop.c: the maildrop file, written and read.  What the
 * writer makes the reader takes back; a table of damaged files is
 * refused, each for its reason; every file is read whole, octet by
 * octet and split in two at every position, with the same outcome;
 * every proper prefix of a good file is refused (a file cut short never
 * passes); every octet of a good file is replaced in turn by each of a
 * set of hostile octets, and whatever is still accepted must be a file
 * the writer would make for what was read.  Files are handed over in
 * buffers of exactly their length, so the sanitizers catch any read past
 * the end.
 */
#include "autoconf.h"

#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "maildrop.h"
#include "util.h"

#define GOOD_BODY	"From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n"

static int
is_local(const char *domain, void *arg)
{
	(void)arg;
	return strcasecmp(domain, "example.org") == 0;
}

static const struct maildrop_limits limits = {
	.max_message_size = 4096,
	.max_recipients = 5,
	.is_local = is_local,
};

/* A file: the header block as the writer makes it, then the body. */
static char *
make_file(const char *sender, char *const *rcpts, size_t n, const char *body,
    size_t blen, size_t *len)
{
	struct util_buf	b = { NULL, 0, 0 };

	ck_assert_int_eq(maildrop_header(&b, sender, rcpts, n, blen), 0);
	util_buf_add(&b, body, blen);
	*len = b.len;
	return b.data;
}

/* The outcome of one reading: accepted or why not, and what it gave. */
struct result {
	int		 rc;
	char		 why[MAILDROP_WHY_SIZE];
	struct envelope	 env;
	struct util_buf	 content;
};

static void
result_clear(struct result *res)
{
	envelope_clear(&res->env);
	free(res->content.data);
}

/* Read buf in pieces at the offsets of cuts (ascending), then end. */
static void
read_split(const char *buf, size_t len, const size_t *cuts, size_t ncuts,
    struct result *res)
{
	struct maildrop_reader	 r;
	const char		*c;
	char			*copy;
	size_t			 clen, from = 0, to, k;

	memset(res, 0, sizeof *res);
	envelope_init(&res->env);
	maildrop_reader_init(&r, &limits, &res->env);
	res->rc = 0;
	for (k = 0; k <= ncuts && res->rc == 0; k++) {
		to = k < ncuts ? cuts[k] : len;
		/* Exactly the piece, so a read past it is caught. */
		copy = xmalloc(to - from + 1);
		memcpy(copy, buf + from, to - from);
		res->rc = maildrop_reader_feed(&r, copy, to - from, &c, &clen,
		    res->why, sizeof res->why);
		/* The message's part is the piece's tail, empty or not. */
		if (res->rc == 0) {
			ck_assert(c >= copy && c + clen == copy + (to - from));
			util_buf_add(&res->content, c, clen);
		}
		free(copy);
		from = to;
	}
	if (res->rc == 0)
		res->rc = maildrop_reader_end(&r, res->why, sizeof res->why);
	maildrop_reader_clear(&r);
}

static void
read_whole(const char *buf, size_t len, struct result *res)
{
	read_split(buf, len, NULL, 0, res);
}

/* Two readings came out the same. */
static void
assert_same(const struct result *a, const struct result *b, const char *how)
{
	size_t	i;

	ck_assert_msg(a->rc == b->rc, "%s: %d (%s) against %d (%s)", how,
	    a->rc, a->why, b->rc, b->why);
	if (a->rc == -1) {
		ck_assert_msg(strcmp(a->why, b->why) == 0, "%s: %s / %s", how,
		    a->why, b->why);
		return;
	}
	ck_assert_str_eq(a->env.sender, b->env.sender);
	ck_assert_uint_eq(a->env.nrcpts, b->env.nrcpts);
	for (i = 0; i < a->env.nrcpts; i++)
		ck_assert_str_eq(a->env.rcpts[i].addr, b->env.rcpts[i].addr);
	ck_assert_int_eq(a->env.body, b->env.body);
	ck_assert_int_eq(a->env.smtputf8, b->env.smtputf8);
	ck_assert_uint_eq(a->content.len, b->content.len);
	ck_assert(a->content.len == 0 || memcmp(a->content.data,
	    b->content.data, a->content.len) == 0);
}

/* Every file read whole, octet by octet, and cut in two anywhere. */
static void
assert_split_invariant(const char *buf, size_t len, struct result *whole)
{
	struct result	 res;
	size_t		*cuts, i;

	read_whole(buf, len, whole);
	cuts = xcalloc(len + 1, sizeof *cuts);
	for (i = 0; i < len; i++)
		cuts[i] = i + 1;
	read_split(buf, len, cuts, len > 0 ? len - 1 : 0, &res);
	assert_same(whole, &res, "octet by octet");
	result_clear(&res);
	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		read_split(buf, len, cuts, 1, &res);
		assert_same(whole, &res, "split in two");
		result_clear(&res);
	}
	free(cuts);
}

START_TEST(test_round_trip)
{
	char		*rcpts[] = { "bob@example.org", "carol@example.net",
			    "Dave@Example.NET" };
	struct result	 res;
	char		*buf;
	size_t		 len;

	buf = make_file("alice@example.org", rcpts, 3, GOOD_BODY,
	    sizeof GOOD_BODY - 1, &len);
	assert_split_invariant(buf, len, &res);
	ck_assert_msg(res.rc == 0, "%s", res.why);
	ck_assert_str_eq(res.env.sender, "alice@example.org");
	ck_assert_uint_eq(res.env.nrcpts, 3);
	ck_assert_str_eq(res.env.rcpts[0].addr, "bob@example.org");
	ck_assert_str_eq(res.env.rcpts[1].addr, "carol@example.net");
	ck_assert_int_eq(res.env.body, ENVELOPE_BODY_7BIT);
	ck_assert_int_eq(res.env.smtputf8, 0);
	ck_assert_uint_eq(res.content.len, sizeof GOOD_BODY - 1);
	ck_assert(memcmp(res.content.data, GOOD_BODY, res.content.len) == 0);
	result_clear(&res);
	free(buf);
}
END_TEST

START_TEST(test_null_sender_8bit)
{
	static const char body[] = "Subject: \xc3\xa9t\xc3\xa9\r\n\r\n\xff\r\n";
	char		*rcpts[] = { "j\xc3\xb6rg@example.net" };
	struct result	 res;
	char		*buf;
	size_t		 len;

	buf = make_file("", rcpts, 1, body, sizeof body - 1, &len);
	assert_split_invariant(buf, len, &res);
	ck_assert_msg(res.rc == 0, "%s", res.why);
	ck_assert_str_eq(res.env.sender, "");
	ck_assert_int_eq(res.env.body, ENVELOPE_BODY_8BITMIME);
	ck_assert_int_eq(res.env.smtputf8, 1);
	result_clear(&res);
	free(buf);
}
END_TEST

START_TEST(test_empty_message)
{
	char		*rcpts[] = { "bob@example.org" };
	struct result	 res;
	char		*buf;
	size_t		 len;

	buf = make_file("alice@example.org", rcpts, 1, "", 0, &len);
	assert_split_invariant(buf, len, &res);
	ck_assert_msg(res.rc == 0, "%s", res.why);
	ck_assert_uint_eq(res.content.len, 0);
	result_clear(&res);
	free(buf);
}
END_TEST

/* Damaged files and the reason each is refused for. */
static const struct bad_case {
	const char	*file;
	const char	*why;
} bad_cases[] = {
	{ "", "header block not ended" },
	{ "TERN-MAILDROP 1", "header block not ended" },
	{ "TERN-MAILDROP 2\nsender: a@b.c\nrcpt: d@e.f\nsize: 0\n\n",
	    "not a version 1 maildrop file" },
	{ "TERN-MAILDROP 1 \nsender: a@b.c\nrcpt: d@e.f\nsize: 0\n\n",
	    "not a version 1 maildrop file" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 0\n",
	    "header block not ended" },
	{ "TERN-MAILDROP 1\nrcpt: d@e.f\nsize: 0\n\n",
	    "sender, recipient or size missing" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nsize: 0\n\n",
	    "sender, recipient or size missing" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\n\n",
	    "sender, recipient or size missing" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nsender: a@b.c\n",
	    "bad or second sender" },
	{ "TERN-MAILDROP 1\nsender: <a@b.c>\n", "bad or second sender" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: \n", "bad recipient address" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: bare\n",
	    "bad recipient address" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: x%y@example.org\n",
	    "recipient local part with @, % or !" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: a@x\nrcpt: b@x\nrcpt: c@x\n"
	    "rcpt: d@x\nrcpt: e@x\nrcpt: f@x\n",
	    "more recipients than max_recipients" },
	{ "TERN-MAILDROP 1\nsize: 1\nsize: 1\n", "bad or second size" },
	{ "TERN-MAILDROP 1\nsize: -1\n", "bad or second size" },
	{ "TERN-MAILDROP 1\nsize: 99999999999999999999999\n",
	    "bad or second size" },
	{ "TERN-MAILDROP 1\nfrom: a@b.c\n", "unknown header line" },
	{ "TERN-MAILDROP 1\nSENDER: a@b.c\n", "unknown header line" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 4097\n\n",
	    "message larger than max_message_size" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 4\n\nab\r\n"
	    "extra", "message is 9 octets, not 4" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 8\n\nab\r\n",
	    "message is 4 octets, not 8" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 4\n\nab\n\n",
	    "bare CR or LF in the message" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 4\n\nab\rx",
	    "bare CR or LF in the message" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 3\n\nab\r",
	    "bare CR or LF in the message" },
	{ "TERN-MAILDROP 1\nsender: a@b.c\nrcpt: d@e.f\nsize: 2\n\nab",
	    "message does not end in CRLF" },
};

/* The NUL cases cannot be C strings: built here. */
START_TEST(test_nul)
{
	static const char hdr[] = "TERN-MAILDROP 1\nsender: a@b.c\0x\n";
	static const char msg[] = "TERN-MAILDROP 1\nsender: a@b.c\n"
	    "rcpt: d@e.f\nsize: 4\n\na\0\r\n";
	struct result	 res;

	assert_split_invariant(hdr, sizeof hdr - 1, &res);
	ck_assert_int_eq(res.rc, -1);
	ck_assert_str_eq(res.why, "NUL in the header block");
	result_clear(&res);
	assert_split_invariant(msg, sizeof msg - 1, &res);
	ck_assert_int_eq(res.rc, -1);
	ck_assert_str_eq(res.why, "NUL in the message");
	result_clear(&res);
}
END_TEST

START_TEST(test_bad)
{
	const struct bad_case	*c = &bad_cases[_i];
	struct result		 res;

	assert_split_invariant(c->file, strlen(c->file), &res);
	ck_assert_msg(res.rc == -1, "accepted: %s", c->file);
	ck_assert_str_eq(res.why, c->why);
	result_clear(&res);
}
END_TEST

/* A line of MAILDROP_LINE_MAX octets passes, one more does not. */
START_TEST(test_line_max)
{
	char		*rcpts[] = { "bob@example.org" };
	struct result	 res;
	char		*body, *buf;
	size_t		 len, n;
	int		 extra;

	for (extra = 0; extra <= 1; extra++) {
		n = MAILDROP_LINE_MAX + extra;
		body = xmalloc(n);
		memset(body, 'x', n - 2);
		memcpy(body + n - 2, "\r\n", 2);
		buf = make_file("a@example.org", rcpts, 1, body, n, &len);
		read_whole(buf, len, &res);
		if (extra) {
			ck_assert_int_eq(res.rc, -1);
			ck_assert_str_eq(res.why, "line longer than 1000 "
			    "octets");
		} else
			ck_assert_msg(res.rc == 0, "%s", res.why);
		result_clear(&res);
		free(buf);
		free(body);
	}
}
END_TEST

/* The header block may fill MAILDROP_HDR_MAX octets, no more. */
START_TEST(test_header_max)
{
	struct util_buf	 b = { NULL, 0, 0 };
	struct result	 res;
	size_t		 pad;
	int		 over;

	for (over = 0; over <= 1; over++) {
		b.len = 0;
		util_buf_adds(&b, "TERN-MAILDROP 1\nsender: a@b.c\n"
		    "rcpt: d@e.f\nsize: 0\nsize: ");
		/*
		 * The second size is refused once its line is whole, if
		 * it ends within the limit.
		 */
		pad = MAILDROP_HDR_MAX - b.len - 1 + (size_t)over;
		while (pad-- > 0)
			util_buf_add(&b, "0", 1);
		util_buf_adds(&b, "\n\n");
		read_whole(b.data, b.len, &res);
		ck_assert_int_eq(res.rc, -1);
		ck_assert_str_eq(res.why, over ? "header block not ended" :
		    "bad or second size");
		result_clear(&res);
	}
	free(b.data);
}
END_TEST

/* The writer says so rather than write a file the reader refuses. */
START_TEST(test_header_max_writer)
{
	struct util_buf	  b = { NULL, 0, 0 };
	char		**rcpts;
	size_t		  i, n = MAILDROP_HDR_MAX / 20;

	rcpts = xcalloc(n, sizeof *rcpts);
	for (i = 0; i < n; i++)
		rcpts[i] = "somebody@example.org";
	ck_assert_int_eq(maildrop_header(&b, "a@b.c", rcpts, n, 0), -1);
	free(b.data);
	free(rcpts);
}
END_TEST

/*
 * Every octet of a good file replaced in turn by each hostile octet:
 * whatever is still accepted is read the same in pieces, and written
 * back by the writer it is the same file.
 */
START_TEST(test_damage)
{
	static const char	 hostile[] = { '\0', '\n', '\r', ' ', ':',
				    '@', '<', 'x', '9', (char)0x80,
				    (char)0xff, '%' };
	char			*rcpts[] = { "bob@example.org",
				    "carol@example.net" };
	struct result		 res;
	struct util_buf		 back = { NULL, 0, 0 };
	char			*good, *buf, **addrs;
	size_t			 len, pos, h, i;

	good = make_file("alice@example.org", rcpts, 2, GOOD_BODY,
	    sizeof GOOD_BODY - 1, &len);
	buf = xmalloc(len);
	for (pos = 0; pos < len; pos++) {
		for (h = 0; h < sizeof hostile; h++) {
			memcpy(buf, good, len);
			if (buf[pos] == hostile[h])
				continue;
			buf[pos] = hostile[h];
			read_whole(buf, len, &res);
			if (res.rc == -1) {
				ck_assert_msg(res.why[0] != '\0',
				    "refused without a reason");
				result_clear(&res);
				continue;
			}
			/*
			 * Accepted: the same in pieces, and the writer
			 * makes the very file that was read.
			 */
			result_clear(&res);
			assert_split_invariant(buf, len, &res);
			addrs = xcalloc(res.env.nrcpts, sizeof *addrs);
			for (i = 0; i < res.env.nrcpts; i++)
				addrs[i] = res.env.rcpts[i].addr;
			back.len = 0;
			ck_assert_int_eq(maildrop_header(&back, res.env.sender,
			    addrs, res.env.nrcpts, res.content.len), 0);
			util_buf_add(&back, res.content.data,
			    res.content.len);
			ck_assert_msg(back.len == len && memcmp(back.data, buf,
			    len) == 0, "octet %zu as 0x%02x: read back "
			    "differently", pos, (unsigned char)hostile[h]);
			free(addrs);
			result_clear(&res);
		}
	}
	free(back.data);
	free(buf);
	free(good);
}
END_TEST

/* Every proper prefix of a good file is refused. */
START_TEST(test_truncation)
{
	char		*rcpts[] = { "bob@example.org" };
	struct result	 res;
	char		*good, *buf;
	size_t		 len, n;

	good = make_file("alice@example.org", rcpts, 1, GOOD_BODY,
	    sizeof GOOD_BODY - 1, &len);
	for (n = 0; n < len; n++) {
		buf = xmalloc(n + 1);
		memcpy(buf, good, n);
		read_whole(buf, n, &res);
		ck_assert_msg(res.rc == -1, "a prefix of %zu octets passed",
		    n);
		result_clear(&res);
		free(buf);
	}
	free(good);
}
END_TEST

START_TEST(test_feed_after_fault)
{
	struct maildrop_reader	 r;
	struct envelope		 env;
	const char		*c;
	char			 why[MAILDROP_WHY_SIZE];
	size_t			 clen;

	envelope_init(&env);
	maildrop_reader_init(&r, &limits, &env);
	ck_assert_int_eq(maildrop_reader_feed(&r, "NOPE\n", 5, &c, &clen, why,
	    sizeof why), -1);
	ck_assert_int_eq(maildrop_reader_feed(&r, "x", 1, &c, &clen, why,
	    sizeof why), -1);
	ck_assert_int_eq(maildrop_reader_end(&r, why, sizeof why), -1);
	maildrop_reader_clear(&r);
	envelope_clear(&env);
}
END_TEST

static Suite *
maildrop_suite(void)
{
	Suite	*s = suite_create("maildrop");
	TCase	*tc;

	tc = tcase_create("good");
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_null_sender_8bit);
	tcase_add_test(tc, test_empty_message);
	tcase_add_test(tc, test_line_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad, 0, nitems(bad_cases));
	tcase_add_test(tc, test_nul);
	tcase_add_test(tc, test_header_max);
	tcase_add_test(tc, test_header_max_writer);
	tcase_add_test(tc, test_feed_after_fault);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_damage);
	tcase_set_timeout(tc, 300);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(maildrop_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
