/*
 * check_mime.c: the 8-bit to 7-bit converter.  Each case is a message,
 * the verdict of the first pass and, for a conversion, the exact output
 * of the second.  Every case is fed whole, one octet at a time, and split
 * in two at every octet, and must give the same result each way.  Every
 * conversion is also checked for what it promises: 7-bit output, lines
 * of at most 76 octets in what it encoded, and quoted-printable that
 * decodes to the octets it replaced.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "util.h"

struct mcase {
	const char		*name;
	const char		*in;
	enum mime_verdict	 verdict;
	int			 header8;
	const char		*out;	/* for MIME_CONVERT */
};

#define MV	"MIME-Version: 1.0\r\n"
#define QP	"Content-Transfer-Encoding: quoted-printable\r\n"

static const struct mcase cases[] = {
	{ "plain 7-bit",
	  "From: a@example.org\r\nSubject: hi\r\n\r\nHello.\r\n.dot\r\n",
	  MIME_7BIT, 0, NULL },
	{ "8-bit header only",
	  "Subject: caf\xc3\xa9\r\n\r\nHello.\r\n",
	  MIME_7BIT, 1, NULL },
	{ "no MIME, 8-bit body",
	  "Subject: x\r\n\r\ncaf\xc3\xa9 \r\na=b\tz\t\r\n",
	  MIME_CONVERT, 0,
	  "Subject: x\r\n" MV QP "\r\ncaf=C3=A9=20\r\na=3Db\tz=09\r\n" },
	{ "text/plain 8bit",
	  MV "Content-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n\xff\r\nplain\r\n",
	  MIME_CONVERT, 0,
	  MV "Content-Type: text/plain; charset=utf-8\r\n" QP "\r\n"
	  "=FF\r\nplain\r\n" },
	{ "folded CTE field removed whole",
	  MV "Content-Transfer-Encoding:\r\n 8bit\r\nX-A: b\r\n\r\n\xe9\r\n",
	  MIME_CONVERT, 0,
	  MV "X-A: b\r\n" QP "\r\n=E9\r\n" },
	{ "bare LF and no final line end",
	  "Subject: x\n\n\xe9t\xe9\nend \xe9",
	  MIME_CONVERT, 0,
	  "Subject: x\n" MV QP "\n=E9t=E9\r\nend =E9" },
	{ "long line gets soft breaks",
	  "S: x\r\n\r\n\xe9"
	  "0123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789\r\n",
	  MIME_CONVERT, 0,
	  "S: x\r\n" MV QP "\r\n=E9"
	  "0123456789012345678901234567890123456789"
	  "01234567890123456789012345678901=\r\n"
	  "23456789\r\n" },
	{ "multipart: only the 8-bit part changes",
	  MV "Content-Type: multipart/mixed; boundary=\"b 1\"\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n"
	  "preamble\r\n"
	  "--b 1\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n"
	  "gr\xc3\xbc\xc3\x9f\r\n"
	  "--b 1  \r\n"
	  "Content-Type: text/plain\r\n\r\n"
	  "seven bit\r\n"
	  "--b 1--\r\n"
	  "epilogue\r\n",
	  MIME_CONVERT, 0,
	  MV "Content-Type: multipart/mixed; boundary=\"b 1\"\r\n"
	  "Content-Transfer-Encoding: 7bit\r\n\r\n"
	  "preamble\r\n"
	  "--b 1\r\n"
	  "Content-Type: text/plain; charset=utf-8\r\n" QP "\r\n"
	  "gr=C3=BC=C3=9F\r\n"
	  "--b 1  \r\n"
	  "Content-Type: text/plain\r\n\r\n"
	  "seven bit\r\n"
	  "--b 1--\r\n"
	  "epilogue\r\n" },
	{ "nested multipart and message/rfc822",
	  MV "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	  "--outer\r\n"
	  "Content-Type: message/rfc822\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n"
	  "Subject: inner\r\n"
	  "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
	  "--inner\r\n\r\n"
	  "\xe9t\xe9\r\n"
	  "--inner\r\n"
	  "Content-Type: text/html\r\n\r\n"
	  "<p>ok</p>\r\n"
	  "--outer\r\n"
	  "Content-Type: application/octet-stream\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\n"
	  "AAEC\r\n"
	  "--outer--\r\n",
	  MIME_CONVERT, 0,
	  MV "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	  "--outer\r\n"
	  "Content-Type: message/rfc822\r\n"
	  "Content-Transfer-Encoding: 7bit\r\n\r\n"
	  "Subject: inner\r\n"
	  "Content-Type: multipart/alternative; boundary=inner\r\n\r\n"
	  "--inner\r\n" QP "\r\n"
	  "=E9t=E9\r\n"
	  "--inner\r\n"
	  "Content-Type: text/html\r\n\r\n"
	  "<p>ok</p>\r\n"
	  "--outer\r\n"
	  "Content-Type: application/octet-stream\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\n"
	  "AAEC\r\n"
	  "--outer--\r\n" },
	{ "digest parts are messages",
	  MV "Content-Type: multipart/digest; boundary=d\r\n\r\n"
	  "--d\r\n\r\n"
	  "Subject: one\r\n\r\n"
	  "\xe9\r\n"
	  "--d--\r\n",
	  MIME_CONVERT, 0,
	  MV "Content-Type: multipart/digest; boundary=d\r\n\r\n"
	  "--d\r\n\r\n"
	  "Subject: one\r\n" QP "\r\n"
	  "=E9\r\n"
	  "--d--\r\n" },
	{ "multipart/signed with 8-bit",
	  MV "Content-Type: multipart/signed; boundary=s;\r\n"
	  " protocol=\"application/pgp-signature\"\r\n\r\n"
	  "--s\r\n"
	  "Content-Type: text/plain\r\n"
	  "Content-Transfer-Encoding: 8bit\r\n\r\n"
	  "\xe9\r\n"
	  "--s\r\n"
	  "Content-Type: application/pgp-signature\r\n\r\n"
	  "sig\r\n"
	  "--s--\r\n",
	  MIME_SIGNED, 0, NULL },
	{ "multipart/signed, 7-bit",
	  MV "Content-Type: multipart/signed; boundary=s\r\n\r\n"
	  "--s\r\n\r\nplain\r\n--s--\r\n",
	  MIME_7BIT, 0, NULL },
	{ "8-bit in a base64 part",
	  MV "Content-Type: text/plain\r\n"
	  "Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n",
	  MIME_CANNOT, 0, NULL },
	{ "8-bit in message/partial",
	  MV "Content-Type: message/partial; id=x; number=1\r\n\r\n"
	  "\xe9\r\n",
	  MIME_CANNOT, 0, NULL },
	{ "multipart without boundary",
	  MV "Content-Type: multipart/mixed\r\n\r\n\xe9\r\n",
	  MIME_CANNOT, 0, NULL },
	{ "boundary-like text is not a boundary",
	  MV "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	  "--b\r\n\r\n"
	  "--bx \xe9\r\n"
	  "--b--\r\n",
	  MIME_CONVERT, 0,
	  MV "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	  "--b\r\n" QP "\r\n"
	  "--bx =E9\r\n"
	  "--b--\r\n" },
	{ "header block ended by a non-header line",
	  "Subject: x\r\nnot a header \xe9\r\n",
	  MIME_CONVERT, 0,
	  "Subject: x\r\n" MV QP "\r\nnot a header =E9\r\n" },
};

/* The output of the second pass, gathered. */
static void
collect(void *arg, const char *p, size_t len)
{
	util_buf_add(arg, p, len);
}

/* Feed in pieces: step 0 splits once at split, else step octets each. */
static void
feed(struct mime_conv *c, const char *in, size_t len, size_t split,
    size_t step)
{
	size_t	off;

	if (step == 0) {
		mime_feed(c, in, split);
		mime_feed(c, in + split, len - split);
		return;
	}
	for (off = 0; off < len; off += step)
		mime_feed(c, in + off, len - off < step ? len - off : step);
}

/* Both passes; returns the verdict and sets *out (NULL if none). */
static enum mime_verdict
run(const char *in, size_t len, size_t split, size_t step, int *h8,
    struct util_buf *out)
{
	struct mime_conv	*c = mime_scan_new();
	enum mime_verdict	 v;
	char			 why[MIME_WHY_SIZE];

	feed(c, in, len, split, step);
	v = mime_scan_end(c, h8, why, sizeof why);
	if (v == MIME_SIGNED || v == MIME_CANNOT)
		ck_assert_msg(why[0] != '\0', "a refusal says why");
	else
		ck_assert_str_eq(why, "");
	util_buf_add(out, "", 0);
	out->len = 0;
	if (v == MIME_CONVERT) {
		mime_convert_start(c, collect, out);
		feed(c, in, len, split, step);
		mime_convert_end(c);
	}
	mime_conv_free(c);
	return v;
}

static void
check_case(const struct mcase *mc, size_t split, size_t step)
{
	struct util_buf		out = { NULL, 0, 0 };
	enum mime_verdict	v;
	int			h8 = -1;
	size_t			len = strlen(mc->in);

	v = run(mc->in, len, split, step, &h8, &out);
	ck_assert_msg(v == mc->verdict, "%s (split %zu, step %zu): verdict "
	    "%s, want %s", mc->name, split, step, mime_verdict_str(v),
	    mime_verdict_str(mc->verdict));
	ck_assert_int_eq(h8, mc->header8);
	if (mc->out != NULL) {
		ck_assert_msg(out.len == strlen(mc->out) &&
		    memcmp(out.data, mc->out, out.len) == 0,
		    "%s (split %zu, step %zu): got\n%.*s\nwant\n%s", mc->name,
		    split, step, (int)out.len, out.data, mc->out);
	}
	free(out.data);
}

START_TEST(test_whole)
{
	const struct mcase	*mc = &cases[_i];

	check_case(mc, strlen(mc->in), 0);
}
END_TEST

START_TEST(test_split)
{
	const struct mcase	*mc = &cases[_i];
	size_t			 split;

	for (split = 0; split <= strlen(mc->in); split++)
		check_case(mc, split, 0);
}
END_TEST

START_TEST(test_octets)
{
	check_case(&cases[_i], 0, 1);
}
END_TEST

static int
hexval(int ch)
{
	const char	*hex = "0123456789ABCDEF", *p;

	p = ch != '\0' ? strchr(hex, ch) : NULL;
	return p == NULL ? -1 : (int)(p - hex);
}

/*
 * Decode quoted-printable lines into out, CRLF for each hard break,
 * checking the output rules on the way.
 */
static void
qp_decode(const char *p, size_t len, struct util_buf *out)
{
	const char	*end = p + len, *nl;
	size_t		 n, i;
	int		 hi, lo;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		ck_assert_msg(n <= 76, "a line of %zu octets", n);
		ck_assert_msg(n == 0 || (p[n - 1] != ' ' && p[n - 1] !=
		    '\t'), "white space ends an encoded line");
		for (i = 0; i < n; i++) {
			ck_assert((unsigned char)p[i] < 0x80);
			if (p[i] != '=') {
				util_buf_add(out, p + i, 1);
				continue;
			}
			if (i + 1 == n)
				break;		/* a soft line break */
			ck_assert(i + 2 < n);
			hi = hexval(p[i + 1]);
			lo = hexval(p[i + 2]);
			ck_assert(hi != -1 && lo != -1);
			util_buf_add(out, &(char){ (char)(hi * 16 + lo) }, 1);
			i += 2;
		}
		if (nl == NULL)
			break;
		if (n == 0 || p[n - 1] != '=')
			util_buf_add(out, "\r\n", 2);
		p = nl + 1;
	}
}

/*
 * Random 8-bit bodies, lines of every length around the line buffer's
 * size and the encoded width: the encoding decodes to the input.
 */
START_TEST(test_roundtrip)
{
	static const char	 head[] = "Subject: r\r\n\r\n";
	static const char	 want[] = "Subject: r\r\n" MV QP "\r\n";
	struct util_buf		 in = { NULL, 0, 0 }, out = { NULL, 0, 0 };
	struct util_buf		 dec = { NULL, 0, 0 };
	unsigned		 seed = 6152 + (unsigned)_i;
	size_t			 lines, n, i, hlen = sizeof want - 1;
	char			 ch;

	util_buf_adds(&in, head);
	for (lines = 0; lines < 25; lines++) {
		n = (size_t)(rand_r(&seed) % (_i == 0 ? 200 : 6000));
		for (i = 0; i < n; i++) {
			ch = (char)(rand_r(&seed) % 256);
			if (ch == '\r' || ch == '\n')
				ch = (rand_r(&seed) % 2) ? ' ' : '\t';
			util_buf_add(&in, &ch, 1);
		}
		util_buf_add(&in, "\r\n", 2);
	}
	util_buf_add(&in, "\xe9\r\n", 3);
	ck_assert(run(in.data, in.len, 0, 4093, NULL, &out) == MIME_CONVERT);
	ck_assert(out.len > hlen && memcmp(out.data, want, hlen) == 0);
	qp_decode(out.data + hlen, out.len - hlen, &dec);
	ck_assert_uint_eq(dec.len, in.len - (sizeof head - 1));
	ck_assert(memcmp(dec.data, in.data + sizeof head - 1, dec.len) == 0);
	free(in.data);
	free(out.data);
	free(dec.data);
}
END_TEST

/* Entities nested past the limit are not followed: 8-bit there fails. */
START_TEST(test_deep)
{
	struct util_buf		in = { NULL, 0, 0 }, out = { NULL, 0, 0 };
	enum mime_verdict	v;
	int			i, depth = _i == 0 ? 10 : 40;

	util_buf_adds(&in, MV);
	for (i = 0; i < depth; i++)
		util_buf_printf(&in, "Content-Type: multipart/mixed; "
		    "boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	util_buf_adds(&in, "\r\n\xe9\r\n");
	for (i = depth - 1; i >= 0; i--)
		util_buf_printf(&in, "--b%d--\r\n", i);
	v = run(in.data, in.len, 0, 7, NULL, &out);
	ck_assert_str_eq(mime_verdict_str(v), _i == 0 ? "convert" : "cannot");
	free(in.data);
	free(out.data);
}
END_TEST

START_TEST(test_verdict_str)
{
	ck_assert_str_eq(mime_verdict_str(MIME_7BIT), "7bit");
	ck_assert_str_eq(mime_verdict_str(MIME_SIGNED), "signed");
	ck_assert_str_eq(mime_verdict_str((enum mime_verdict)99), "unknown");
}
END_TEST

static Suite *
mime_suite(void)
{
	Suite	*s = suite_create("mime");
	TCase	*tc = tcase_create("core");

	tcase_add_loop_test(tc, test_whole, 0, nitems(cases));
	tcase_add_loop_test(tc, test_split, 0, nitems(cases));
	tcase_add_loop_test(tc, test_octets, 0, nitems(cases));
	tcase_add_loop_test(tc, test_roundtrip, 0, 3);
	tcase_add_loop_test(tc, test_deep, 0, 2);
	tcase_add_test(tc, test_verdict_str);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(mime_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
