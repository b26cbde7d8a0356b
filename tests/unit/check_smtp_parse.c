/*
 * check_smtp_parse.c: the SMTP wire syntax.  Line endings, command
 * splitting, ESMTP parameters, xtext both ways, reply lines, and the DATA
 * dot machine: every case fed whole, split in two at every octet and fed
 * one octet at a time (each piece in a buffer of exactly its size) must
 * give the same message, error and end, and random streams must agree
 * with a plain reference reading of the rules.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "util.h"

/* A literal with its length, NULs included. */
#define B(s)	s, sizeof(s) - 1

static const struct {
	const char	*line;
	size_t		 len;
	enum smtp_line	 want;
} lines[] = {
	{ B("HELO x\r\n"), SMTP_LINE_OK },
	{ B("\r\n"), SMTP_LINE_OK },
	{ B("MAIL FROM:<a@b> SIZE=1\r\n"), SMTP_LINE_OK },
	{ B("\xc3\xa4\r\n"), SMTP_LINE_OK },
	{ B("HELO x\n"), SMTP_LINE_BARE_LF },
	{ B("\n"), SMTP_LINE_BARE_LF },
	{ B(""), SMTP_LINE_BARE_LF },
	{ B("a\nb\r\n"), SMTP_LINE_BARE_LF },
	{ B("HELO\rx\r\n"), SMTP_LINE_BARE_CR },
	{ B("HELO x\r\r\n"), SMTP_LINE_BARE_CR },
	{ B("\rHELO x\r\n"), SMTP_LINE_BARE_CR },
	{ B("HELO x\r"), SMTP_LINE_BARE_CR },
	{ B("\r"), SMTP_LINE_BARE_CR },
	{ B("HELO\rx\n"), SMTP_LINE_BARE_CR },
	{ B("a\rx"), SMTP_LINE_BARE_CR },
	{ B("HE\0LO\r\n"), SMTP_LINE_NUL },
	{ B("\0\r\n"), SMTP_LINE_NUL },
	{ B("HELO x\0\n"), SMTP_LINE_NUL },
};

START_TEST(test_lines)
{
	char	*buf;

	/* Exactly its size: nothing past len may be read. */
	buf = xmalloc(lines[_i].len);
	memcpy(buf, lines[_i].line, lines[_i].len);
	ck_assert_int_eq(smtp_parse_line(buf, lines[_i].len), lines[_i].want);
	free(buf);
}
END_TEST

#define V(x)	SMTP_VERB_ ## x

static const struct {
	const char	*line;
	int		 rc;
	enum smtp_verb	 verb;
	const char	*args;
} cmds[] = {
	{ "HELO example.com", 0, V(HELO), "example.com" },
	{ "helo example.com", 0, V(HELO), "example.com" },
	{ "EHLO  example.com  ", 0, V(EHLO), "example.com" },
	{ "eHlO [192.0.2.1]", 0, V(EHLO), "[192.0.2.1]" },
	{ "EHLO", 0, V(EHLO), "" },
	{ "EHLO ", 0, V(EHLO), "" },
	{ "EHLO a b", 0, V(EHLO), "a b" },
	{ "MAIL FROM:<a@b>", 0, V(MAIL), "<a@b>" },
	{ "mail from:<a@b> SIZE=10", 0, V(MAIL), "<a@b> SIZE=10" },
	{ "Mail From:<>", 0, V(MAIL), "<>" },
	{ "MAIL FROM: <a@b>", 0, V(MAIL), "<a@b>" },
	{ "MAIL FROM:   <a@b>   ", 0, V(MAIL), "<a@b>" },
	{ "MAIL FROM:", 0, V(MAIL), "" },
	{ "MAIL FROM:<a@b>  BODY=8BITMIME ", 0, V(MAIL),
	    "<a@b>  BODY=8BITMIME" },
	{ "MAIL FROM <a@b>", -1, V(MAIL), "" },
	{ "MAIL FROM : <a@b>", -1, V(MAIL), "" },
	{ "MAIL TO:<a@b>", -1, V(MAIL), "" },
	{ "MAIL  FROM:<a@b>", -1, V(MAIL), "" },
	{ "MAIL", -1, V(MAIL), "" },
	{ "MAIL ", -1, V(MAIL), "" },
	{ "MAIL FROM", -1, V(MAIL), "" },
	{ "MAIL FRO", -1, V(MAIL), "" },
	{ "RCPT TO:<a@b>", 0, V(RCPT), "<a@b>" },
	{ "rcpt to: <a@b>", 0, V(RCPT), "<a@b>" },
	{ "RCPT TO:<Postmaster>", 0, V(RCPT), "<Postmaster>" },
	{ "RCPT FROM:<a@b>", -1, V(RCPT), "" },
	{ "RCPT TO <a@b>", -1, V(RCPT), "" },
	{ "RCPT", -1, V(RCPT), "" },
	{ "RCPTTO:<a@b>", 0, V(UNKNOWN), "" },
	{ "MAILFROM:<a@b>", 0, V(UNKNOWN), "" },
	{ "DATA", 0, V(DATA), "" },
	{ "data ", 0, V(DATA), "" },
	{ "DATA x", 0, V(DATA), "x" },
	{ "RSET", 0, V(RSET), "" },
	{ "NOOP hello there", 0, V(NOOP), "hello there" },
	{ "QUIT", 0, V(QUIT), "" },
	{ "VRFY user", 0, V(VRFY), "user" },
	{ "EXPN list", 0, V(EXPN), "list" },
	{ "HELP", 0, V(HELP), "" },
	{ "HELP MAIL", 0, V(HELP), "MAIL" },
	{ "STARTTLS", 0, V(STARTTLS), "" },
	{ "starttls", 0, V(STARTTLS), "" },
	{ "AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", 0, V(AUTH),
	    "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
	{ "ETRN example.com", 0, V(ETRN), "example.com" },
	{ "BDAT 100 LAST", 0, V(BDAT), "100 LAST" },
	{ "", 0, V(UNKNOWN), "" },
	{ " HELO x", 0, V(UNKNOWN), "" },
	{ "FOO bar", 0, V(UNKNOWN), "" },
	{ "HEL", 0, V(UNKNOWN), "" },
	{ "HELOx", 0, V(UNKNOWN), "" },
	{ "HELO\tx", 0, V(UNKNOWN), "" },
	{ "STARTTLSX", 0, V(UNKNOWN), "" },
	{ "STARTTL", 0, V(UNKNOWN), "" },
	{ "\xc3\xa4HELO", 0, V(UNKNOWN), "" },
};

START_TEST(test_cmds)
{
	struct smtp_cmd	 cmd;
	char		*buf;
	int		 rc;

	buf = xstrdup(cmds[_i].line);
	cmd.verb = (enum smtp_verb)-1;
	cmd.args = NULL;
	rc = smtp_parse_cmd(buf, &cmd);
	ck_assert_msg(rc == cmds[_i].rc, "\"%s\": rc %d", cmds[_i].line, rc);
	ck_assert_msg(cmd.verb == cmds[_i].verb, "\"%s\": verb %s",
	    cmds[_i].line, smtp_verb_str(cmd.verb));
	ck_assert_ptr_nonnull(cmd.args);
	if (rc == 0)
		ck_assert_str_eq(cmd.args, cmds[_i].args);
	if (rc == 0 && cmd.verb != SMTP_VERB_UNKNOWN && cmd.args[0] != '\0')
		ck_assert(cmd.args >= buf && cmd.args < buf + strlen(
		    cmds[_i].line));
	free(buf);
}
END_TEST

START_TEST(test_verb_str)
{
	struct smtp_cmd	cmd;
	char		buf[32];
	int		v;

	for (v = SMTP_VERB_HELO; v <= SMTP_VERB_BDAT; v++) {
		util_strlcpy(buf, smtp_verb_str((enum smtp_verb)v),
		    sizeof buf);
		if (v == SMTP_VERB_MAIL)
			util_strlcat(buf, " FROM:", sizeof buf);
		if (v == SMTP_VERB_RCPT)
			util_strlcat(buf, " TO:", sizeof buf);
		ck_assert_int_eq(smtp_parse_cmd(buf, &cmd), 0);
		ck_assert_int_eq(cmd.verb, v);
	}
	ck_assert_str_eq(smtp_verb_str(SMTP_VERB_STARTTLS), "STARTTLS");
	ck_assert_str_eq(smtp_verb_str(SMTP_VERB_UNKNOWN), "UNKNOWN");
}
END_TEST

static const struct {
	const char	*text;
	int		 rc;
	size_t		 n;
	const char	*kv[8];		/* key, value (NULL: no "=") */
} params[] = {
	{ "", 0, 0, { NULL } },
	{ "   ", 0, 0, { NULL } },
	{ "SIZE=1000", 0, 1, { "SIZE", "1000" } },
	{ " SIZE=1000 BODY=8BITMIME SMTPUTF8", 0, 3,
	    { "SIZE", "1000", "BODY", "8BITMIME", "SMTPUTF8", NULL } },
	{ "SIZE=1000    BODY=7BIT  ", 0, 2,
	    { "SIZE", "1000", "BODY", "7BIT" } },
	{ "SMTPUTF8", 0, 1, { "SMTPUTF8", NULL } },
	{ "X-FOO=bar", 0, 1, { "X-FOO", "bar" } },
	{ "9X-=1", 0, 1, { "9X-", "1" } },
	{ "ORCPT=rfc822;a+2Bb@x", 0, 1, { "ORCPT", "rfc822;a+2Bb@x" } },
	{ "ENVID=<!~>", 0, 1, { "ENVID", "<!~>" } },
	{ "ENVID=\xc3\xa4\xe2\x82\xac", 0, 1,
	    { "ENVID", "\xc3\xa4\xe2\x82\xac" } },
	{ "A B C D", 0, 4, { "A", NULL, "B", NULL, "C", NULL, "D", NULL } },
	{ "-X=1", -1, 0, { NULL } },
	{ "SIZE=", -1, 0, { NULL } },
	{ "SIZE= 1", -1, 0, { NULL } },
	{ "SIZE==1", -1, 0, { NULL } },
	{ "=1", -1, 0, { NULL } },
	{ "SIZE=1=2", -1, 0, { NULL } },
	{ "SIZ_E=1", -1, 0, { NULL } },
	{ "SIZE=a\tb", -1, 0, { NULL } },
	{ "SIZE\t=1", -1, 0, { NULL } },
	{ "SIZE=1\x7f", -1, 0, { NULL } },
	{ "ENVID=\xc3", -1, 0, { NULL } },
	{ "ENVID=\xc3\xa4\xa4", -1, 0, { NULL } },
	{ "\xc3\xa4=1", -1, 0, { NULL } },
	{ "A=1 B=2 -C", -1, 0, { NULL } },
};

START_TEST(test_params)
{
	struct smtp_param	 p[SMTP_PARAMS_MAX];
	char			*buf;
	size_t			 n = 99, i;
	int			 rc;

	buf = xstrdup(params[_i].text);
	rc = smtp_parse_params(buf, p, nitems(p), &n);
	ck_assert_msg(rc == params[_i].rc, "\"%s\": rc %d", params[_i].text,
	    rc);
	ck_assert_uint_eq(n, params[_i].n);
	for (i = 0; rc == 0 && i < n; i++) {
		ck_assert_str_eq(p[i].key, params[_i].kv[2 * i]);
		if (params[_i].kv[2 * i + 1] == NULL)
			ck_assert_ptr_null(p[i].value);
		else
			ck_assert_str_eq(p[i].value, params[_i].kv[2 * i + 1]);
	}
	free(buf);
}
END_TEST

/* No more parameters than the caller has room for. */
START_TEST(test_params_max)
{
	struct smtp_param	 p[SMTP_PARAMS_MAX + 1];
	char			 buf[256];
	size_t			 n, i;

	buf[0] = '\0';
	for (i = 0; i < SMTP_PARAMS_MAX; i++)
		util_strlcat(buf, " K=V", sizeof buf);
	ck_assert_int_eq(smtp_parse_params(buf, p, SMTP_PARAMS_MAX, &n), 0);
	ck_assert_uint_eq(n, SMTP_PARAMS_MAX);

	buf[0] = '\0';
	for (i = 0; i <= SMTP_PARAMS_MAX; i++)
		util_strlcat(buf, " K=V", sizeof buf);
	ck_assert_int_eq(smtp_parse_params(buf, p, SMTP_PARAMS_MAX, &n), -1);
	ck_assert_uint_eq(n, 0);

	util_strlcpy(buf, "A=1 B", sizeof buf);
	ck_assert_int_eq(smtp_parse_params(buf, p, 1, &n), -1);
	util_strlcpy(buf, "A=1  ", sizeof buf);
	ck_assert_int_eq(smtp_parse_params(buf, p, 1, &n), 0);
	ck_assert_uint_eq(n, 1);
	util_strlcpy(buf, "", sizeof buf);
	ck_assert_int_eq(smtp_parse_params(buf, p, 0, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

static const struct {
	const char	*xtext;
	const char	*plain;		/* NULL: bad xtext */
} xdecode[] = {
	{ "", "" },
	{ "abc", "abc" },
	{ "a+2Bb", "a+b" },
	{ "+3D", "=" },
	{ "+2b", "+" },
	{ "+C3+A4", "\xc3\xa4" },
	{ "rfc822;user+2Bext@example.com", "rfc822;user+ext@example.com" },
	{ "+20+0D+0A", " \r\n" },
	{ "!~", "!~" },
	{ "+", NULL },
	{ "+2", NULL },
	{ "a+", NULL },
	{ "+ZZ", NULL },
	{ "+2G", NULL },
	{ "+G2", NULL },
	{ "+00", NULL },
	{ "a=b", NULL },
	{ "a b", NULL },
	{ "a\tb", NULL },
	{ "\xc3\xa4", NULL },
	{ "\x7f", NULL },
};

START_TEST(test_xtext_decode)
{
	char	buf[64];
	int	rc;

	rc = smtp_xtext_decode(xdecode[_i].xtext, buf, sizeof buf);
	if (xdecode[_i].plain == NULL) {
		ck_assert_msg(rc == -1, "\"%s\" decoded", xdecode[_i].xtext);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(buf, xdecode[_i].plain);
}
END_TEST

static const struct {
	const char	*plain;
	const char	*xtext;
} xencode[] = {
	{ "", "" },
	{ "abc", "abc" },
	{ "a+b", "a+2Bb" },
	{ "a=b", "a+3Db" },
	{ "a b", "a+20b" },
	{ "\xc3\xa4", "+C3+A4" },
	{ "\t\r\n", "+09+0D+0A" },
	{ "~!", "~!" },
	{ "\x7f\x01", "+7F+01" },
	{ "rfc822;u+x@y", "rfc822;u+2Bx@y" },
};

START_TEST(test_xtext_encode)
{
	char	buf[64];

	ck_assert_int_eq(smtp_xtext_encode(xencode[_i].plain, buf,
	    sizeof buf), 0);
	ck_assert_str_eq(buf, xencode[_i].xtext);
}
END_TEST

/* Every octet survives the round trip; sizes are exact. */
START_TEST(test_xtext_round_trip)
{
	char	plain[256], enc[3 * 255 + 1], dec[256];
	size_t	i, elen;

	for (i = 0; i < 255; i++)
		plain[i] = (char)(i + 1);
	plain[255] = '\0';
	ck_assert_int_eq(smtp_xtext_encode(plain, enc, sizeof enc), 0);
	elen = strlen(enc);
	ck_assert_int_eq(smtp_xtext_decode(enc, dec, sizeof dec), 0);
	ck_assert_str_eq(dec, plain);

	ck_assert_int_eq(smtp_xtext_encode(plain, enc, elen + 1), 0);
	ck_assert_int_eq(smtp_xtext_encode(plain, enc, elen), -1);
	ck_assert_int_eq(smtp_xtext_encode("a+", enc, 5), 0);
	ck_assert_int_eq(smtp_xtext_encode("a+", enc, 4), -1);
	ck_assert_int_eq(smtp_xtext_encode("", enc, 0), -1);
	ck_assert_int_eq(smtp_xtext_encode(plain, enc, sizeof enc), 0);
	ck_assert_int_eq(smtp_xtext_decode(enc, dec, 256), 0);
	ck_assert_int_eq(smtp_xtext_decode(enc, dec, 255), -1);
	ck_assert_int_eq(smtp_xtext_decode("ab", dec, 3), 0);
	ck_assert_int_eq(smtp_xtext_decode("ab", dec, 2), -1);
	ck_assert_int_eq(smtp_xtext_decode("", dec, 0), -1);
}
END_TEST

static const struct {
	const char	*line;
	int		 rc;
	int		 code;
	int		 more;
	const char	*text;
} replies[] = {
	{ "250 OK", 0, 250, 0, "OK" },
	{ "250-PIPELINING", 0, 250, 1, "PIPELINING" },
	{ "250", 0, 250, 0, "" },
	{ "220 ", 0, 220, 0, "" },
	{ "354-", 0, 354, 1, "" },
	{ "599 x", 0, 599, 0, "x" },
	{ "200 x", 0, 200, 0, "x" },
	{ "421 4.3.2 Shutting down", 0, 421, 0, "4.3.2 Shutting down" },
	{ "550 5.1.1 No such user", 0, 550, 0, "5.1.1 No such user" },
	{ "250  two spaces", 0, 250, 0, " two spaces" },
	{ "199 x", -1, 0, 0, NULL },
	{ "600 x", -1, 0, 0, NULL },
	{ "099 x", -1, 0, 0, NULL },
	{ "25", -1, 0, 0, NULL },
	{ "2", -1, 0, 0, NULL },
	{ "", -1, 0, 0, NULL },
	{ "2500", -1, 0, 0, NULL },
	{ "25a x", -1, 0, 0, NULL },
	{ "2a0 x", -1, 0, 0, NULL },
	{ "250x", -1, 0, 0, NULL },
	{ "250\tx", -1, 0, 0, NULL },
	{ " 250 x", -1, 0, 0, NULL },
	{ "abc", -1, 0, 0, NULL },
};

START_TEST(test_replies)
{
	struct smtp_reply_line	 r;
	char			*buf;
	int			 rc;

	buf = xstrdup(replies[_i].line);
	rc = smtp_parse_reply(buf, &r);
	ck_assert_msg(rc == replies[_i].rc, "\"%s\": rc %d", replies[_i].line,
	    rc);
	if (rc == 0) {
		ck_assert_int_eq(r.code, replies[_i].code);
		ck_assert_int_eq(r.more, replies[_i].more);
		ck_assert_str_eq(r.text, replies[_i].text);
	}
	free(buf);
}
END_TEST

/*
 * The dot machine.  end is the offset just after the final LF, or -1 when
 * the input does not end the message (everything consumed).
 */
#define S	0	/* strict */
#define NM	1	/* normalize */
#define E_OK	SMTP_DATA_OK
#define E_CR	SMTP_DATA_BARE_CR
#define E_LF	SMTP_DATA_BARE_LF
#define E_LONG	SMTP_DATA_LINE_TOO_LONG
#define E_NUL	SMTP_DATA_NUL

#define ALL	-2	/* ends at the very last octet */

struct dot_case {
	const char		*in;
	size_t			 inlen;
	int			 normalize;
	const char		*out;
	size_t			 outlen;
	enum smtp_data_error	 error;
	long			 end;
};

static const struct dot_case dots[] = {
	/* The end, dot-stuffing, pipelining after the end. */
	{ B(".\r\n"), S, B(""), E_OK, ALL },
	{ B(".\r\n"), NM, B(""), E_OK, ALL },
	{ B("\r\n.\r\n"), S, B("\r\n"), E_OK, ALL },
	{ B("a\r\n.\r\n"), S, B("a\r\n"), E_OK, ALL },
	{ B("a\r\nb\r\n.\r\n"), S, B("a\r\nb\r\n"), E_OK, ALL },
	{ B("..\r\n.\r\n"), S, B(".\r\n"), E_OK, ALL },
	{ B("..a\r\n.\r\n"), S, B(".a\r\n"), E_OK, ALL },
	{ B(".a\r\n.\r\n"), S, B("a\r\n"), E_OK, ALL },
	{ B("a\r\n..\r\n.\r\n"), NM, B("a\r\n.\r\n"), E_OK, ALL },
	{ B("a\r\n...\r\n.\r\n"), S, B("a\r\n..\r\n"), E_OK, ALL },
	{ B("a\r\n. \r\n.\r\n"), S, B("a\r\n \r\n"), E_OK, ALL },
	{ B("a.\r\n.b\r\n.\r\n"), S, B("a.\r\nb\r\n"), E_OK, ALL },
	{ B("a\r\n.\r\nQUIT\r\n"), S, B("a\r\n"), E_OK, 6 },
	{ B("a\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n.\r\n"), S,
	    B("a\r\n"), E_OK, 6 },
	{ B(".\r\n.\r\n"), S, B(""), E_OK, 3 },
	/* A NUL is never written; a line that held one cannot end. */
	{ B("a\0b\r\n.\r\n"), S, B("ab\r\n"), E_NUL, ALL },
	{ B("a\0b\r\n.\r\n"), NM, B("ab\r\n"), E_OK, ALL },
	{ B("\0\r\n.\r\n"), NM, B("\r\n"), E_OK, ALL },
	{ B("a\r\n\0.\r\nX\r\n.\r\n"), S, B("a\r\n.\r\nX\r\n"), E_NUL,
	    ALL },
	{ B("a\r\n\0.\r\nX\r\n.\r\n"), NM, B("a\r\n.\r\nX\r\n"), E_OK,
	    ALL },
	{ B("a\r\n.\0\r\nX\r\n.\r\n"), S, B("a\r\n\r\nX\r\n"), E_NUL,
	    ALL },
	{ B("a\r\n.\0\r\nX\r\n.\r\n"), NM, B("a\r\n\r\nX\r\n"), E_OK,
	    ALL },
	{ B("a\r\n.\r\0\nX\r\n.\r\n"), NM, B("a\r\n\r\n\r\nX\r\n"),
	    E_OK, ALL },
	{ B("a\r\n.\r\0\nX\r\n.\r\n"), S, B("a\r\n\r\n\r\nX\r\n"),
	    E_CR, ALL },
	{ B("a\r\0\n.\r\n"), NM, B("a\r\n\r\n.\r\n"), E_OK, -1 },
	{ B("a\r\n.\r\n\0"), S, B("a\r\n"), E_OK, 6 },
	{ B("\xc3\xa4\r\n.\r\n"), S, B("\xc3\xa4\r\n"), E_OK, ALL },
	/* Not there yet: everything consumed. */
	{ B(""), S, B(""), E_OK, -1 },
	{ B("a"), S, B("a"), E_OK, -1 },
	{ B("a\r"), S, B("a\r"), E_OK, -1 },
	{ B("a\r\n"), S, B("a\r\n"), E_OK, -1 },
	{ B("a\r\n."), S, B("a\r\n"), E_OK, -1 },
	{ B("a\r\n.\r"), S, B("a\r\n"), E_OK, -1 },
	{ B("a\r\n.."), S, B("a\r\n."), E_OK, -1 },
	{ B("a\r\n.x"), S, B("a\r\nx"), E_OK, -1 },
	{ B("a.\r\n"), S, B("a.\r\n"), E_OK, -1 },
	/* Smuggling: only CRLF.CRLF ends the message, in either mode. */
	{ B("a\n.\nMAIL FROM:<x@y>\r\n"), S,
	    B("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), E_LF, -1 },
	{ B("a\n.\nMAIL FROM:<x@y>\r\n"), NM,
	    B("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), E_OK, -1 },
	{ B("a\n.\r\nX\r\n.\r\n"), S, B("a\r\n.\r\nX\r\n"), E_LF, ALL },
	{ B("a\n.\r\nX\r\n.\r\n"), NM, B("a\r\n.\r\nX\r\n"), E_OK, ALL },
	{ B("a\r.\r\nX\r\n.\r\n"), S, B("a\r\n.\r\nX\r\n"), E_CR, ALL },
	{ B("a\r.\r\nX\r\n.\r\n"), NM, B("a\r\n.\r\nX\r\n"), E_OK, ALL },
	{ B("a\r.\nX\r\n.\r\n"), S, B("a\r\n.\r\nX\r\n"), E_CR, ALL },
	{ B("a\r.\nX\r\n.\r\n"), NM, B("a\r\n.\r\nX\r\n"), E_OK, ALL },
	{ B("a\r\n.\nX\r\n.\r\n"), S, B("a\r\n\r\nX\r\n"), E_LF, ALL },
	{ B("a\r\n.\nX\r\n.\r\n"), NM, B("a\r\n\r\nX\r\n"), E_OK, ALL },
	{ B("a\r\n.\rX\r\n.\r\n"), S, B("a\r\n\r\nX\r\n"), E_CR, ALL },
	{ B("a\r\n.\rX\r\n.\r\n"), NM, B("a\r\n\r\nX\r\n"), E_OK, ALL },
	{ B("a\r\n.\r.\r\n.\r\n"), S, B("a\r\n\r\n.\r\n"), E_CR, ALL },
	{ B("a\r\n.\r.\r\n.\r\n"), NM, B("a\r\n\r\n.\r\n"), E_OK, ALL },
	{ B("a\r\n.\r\r\n.\r\n"), S, B("a\r\n\r\n\r\n"), E_CR, ALL },
	{ B("a\r\n.\r\r\n.\r\n"), NM, B("a\r\n\r\n\r\n"), E_OK, ALL },
	{ B("a\n.\n"), S, B("a\r\n.\r\n"), E_LF, -1 },
	{ B("a\n.\n"), NM, B("a\r\n.\r\n"), E_OK, -1 },
	{ B("a\n.\r\n"), NM, B("a\r\n.\r\n"), E_OK, -1 },
	{ B("a\r.\r\n"), NM, B("a\r\n.\r\n"), E_OK, -1 },
	{ B("\n.\r\n"), S, B("\r\n.\r\n"), E_LF, -1 },
	{ B("\r.\r\n"), S, B("\r\n.\r\n"), E_CR, -1 },
	{ B(".\n"), S, B("\r\n"), E_LF, -1 },
	{ B(".\n.\r\n"), NM, B("\r\n.\r\n"), E_OK, -1 },
	{ B(".\rX"), NM, B("\r\nX"), E_OK, -1 },
	{ B("a\n..\r\n.\r\n"), NM, B("a\r\n..\r\n"), E_OK, ALL },
	{ B("a\n..\r\n.\r\n"), S, B("a\r\n..\r\n"), E_LF, ALL },
	{ B("a\r\r\n.\r\n"), S, B("a\r\n\r\n"), E_CR, ALL },
	{ B("a\r\r\n.\r\n"), NM, B("a\r\n\r\n"), E_OK, ALL },
	{ B("a\n\r\n.\r\n"), S, B("a\r\n\r\n"), E_LF, ALL },
	{ B("a\n\r\n.\r\n"), NM, B("a\r\n\r\n"), E_OK, ALL },
	{ B("a\r\n\n.\r\n"), S, B("a\r\n\r\n.\r\n"), E_LF, -1 },
	{ B("a\r\n\r.\r\n"), NM, B("a\r\n\r\n.\r\n"), E_OK, -1 },
	{ B("a\r\n.\r\n\n"), S, B("a\r\n"), E_OK, 6 },
	/* Bare line ends in a row, and a ".\r" owed across pieces. */
	{ B("x\r\n.\ra\n\n\n\n"), NM, B("x\r\n\r\na\r\n\r\n\r\n\r\n"),
	    E_OK, -1 },
	{ B("x\r\n.\ra\n\n\n\n\r\n.\r\n"), NM,
	    B("x\r\n\r\na\r\n\r\n\r\n\r\n\r\n"), E_OK, ALL },
	{ B("x\r\n.\r\r\r\r\r\n.\r\n"), NM, B("x\r\n\r\n\r\n\r\n\r\n\r\n"),
	    E_OK, ALL },
	{ B("\n\n\n"), NM, B("\r\n\r\n\r\n"), E_OK, -1 },
	{ B("\r\r\r"), NM, B("\r\n\r\n\r"), E_OK, -1 },
	{ B("\r\r\r"), S, B("\r\n\r\n\r"), E_CR, -1 },
	{ B("\n\r"), S, B("\r\n\r"), E_LF, -1 },
	{ B("\r\n\r\n.\r\n"), S, B("\r\n\r\n"), E_OK, ALL },
};

/* Line length: 998 octets and one more, built at run time. */
struct long_case {
	const char		*head;		/* before the long run */
	size_t			 n;		/* octets of 'x' */
	const char		*tail;
	int			 normalize;
	const char		*out_head;
	const char		*out_tail;
	enum smtp_data_error	 error;
	int			 ends;
};

static const struct long_case longs[] = {
	{ "", 998, "\r\n.\r\n", S, "", "\r\n", E_OK, 1 },
	{ "", 999, "\r\n.\r\n", S, "", "\r\n", E_LONG, 1 },
	{ "", 999, "\r\n.\r\n", NM, "", "\r\n", E_LONG, 1 },
	{ "a\r\n", 998, "\r\nb\r\n.\r\n", S, "a\r\n", "\r\nb\r\n", E_OK, 1 },
	{ "a\r\n", 999, "\r\nb\r\n.\r\n", S, "a\r\n", "\r\nb\r\n", E_LONG,
	    1 },
	{ ".", 997, "\r\n.\r\n", S, "", "\r\n", E_OK, 1 },
	{ ".", 998, "\r\n.\r\n", S, "", "\r\n", E_LONG, 1 },
	{ "..", 996, "\r\n.\r\n", S, ".", "\r\n", E_OK, 1 },
	{ "", 998, "\nyy\r\n.\r\n", NM, "", "\r\nyy\r\n", E_OK, 1 },
	{ "", 998, "\ryy\r\n.\r\n", NM, "", "\r\nyy\r\n", E_OK, 1 },
	{ "", 998, "\nyy\r\n.\r\n", S, "", "\r\nyy\r\n", E_LF, 1 },
	{ "", 999, "\nyy\r\n.\r\n", S, "", "\r\nyy\r\n", E_LONG, 1 },
	{ "a\n", 999, "\r\n.\r\n", S, "a\r\n", "\r\n", E_LF, 1 },
	{ "", 1500, "", S, "", "", E_LONG, 0 },
	{ "", 998, "\r", S, "", "\r", E_OK, 0 },
};

struct dot_result {
	char			*out;
	size_t			 outlen;
	enum smtp_data_error	 error;
	long			 end;
};

/*
 * Feed in as pieces cut at the given offsets, each piece copied into a
 * buffer of exactly its size with an output buffer of exactly twice that.
 */
static void
dot_feed(const char *in, size_t inlen, int normalize, const size_t *cuts,
    size_t ncuts, struct dot_result *r)
{
	struct smtp_data	 d;
	size_t			 start = 0, stop, k, consumed, outlen;
	char			*piece, *out;
	int			 rc;

	smtp_data_init(&d, normalize);
	r->out = xmalloc(2 * inlen + 2);
	r->outlen = 0;
	r->end = -1;
	for (k = 0; k <= ncuts; k++) {
		stop = k < ncuts ? cuts[k] : inlen;
		piece = xmalloc(stop - start);
		memcpy(piece, in + start, stop - start);
		out = xmalloc(2 * (stop - start));
		rc = smtp_data_feed(&d, piece, stop - start, &consumed, out,
		    &outlen);
		/* Plain tests here: ck_assert costs too much in this loop. */
		if (outlen > 2 * (stop - start) ||
		    r->outlen + outlen > 2 * inlen + 2)
			ck_abort_msg("output beyond twice the input");
		memcpy(r->out + r->outlen, out, outlen);
		r->outlen += outlen;
		free(piece);
		free(out);
		if (rc == SMTP_DATA_END) {
			if (consumed > stop - start || d.pending != -1)
				ck_abort_msg("bad end: consumed %zu of %zu",
				    consumed, stop - start);
			r->end = (long)(start + consumed);
			break;
		}
		if (rc != SMTP_DATA_MORE || consumed != stop - start)
			ck_abort_msg("rc %d, consumed %zu of %zu", rc,
			    consumed, stop - start);
		start = stop;
	}
	/* An octet still owed belongs to the message all the same. */
	if (r->end == -1 && d.pending != -1)
		r->out[r->outlen++] = (char)d.pending;
	r->error = d.error;
}

/* Feed one way and compare; a mismatch fails the test, naming the way. */
static void
dot_try(const char *in, size_t inlen, int normalize, const size_t *cuts,
    size_t ncuts, const char *out, size_t outlen, enum smtp_data_error error,
    long end, const char *how, const char *way)
{
	struct dot_result	r;

	dot_feed(in, inlen, normalize, cuts, ncuts, &r);
	if (r.end != end)
		ck_abort_msg("%s %s: end %ld, want %ld", how, way, r.end, end);
	if (r.error != error)
		ck_abort_msg("%s %s: error %s, want %s", how, way,
		    smtp_data_error_str(r.error), smtp_data_error_str(error));
	if (r.outlen != outlen || memcmp(r.out, out, outlen) != 0)
		ck_abort_msg("%s %s: output differs (%zu octets, want %zu)",
		    how, way, r.outlen, outlen);
	free(r.out);
}

/* Whole, cut in two at every octet, and one octet at a time. */
static void
dot_check(const char *in, size_t inlen, int normalize, const char *out,
    size_t outlen, enum smtp_data_error error, long end, const char *how)
{
	size_t	*cuts, k;
	char	 way[32];

	cuts = xreallocarray(NULL, inlen + 1, sizeof *cuts);
	dot_try(in, inlen, normalize, cuts, 0, out, outlen, error, end, how,
	    "whole");
	for (k = 0; k <= inlen; k++) {
		cuts[0] = k;
		util_snprintf(way, sizeof way, "cut at %zu", k);
		dot_try(in, inlen, normalize, cuts, 1, out, outlen, error, end,
		    how, way);
	}
	for (k = 1; k < inlen; k++)
		cuts[k - 1] = k;
	dot_try(in, inlen, normalize, cuts, inlen > 0 ? inlen - 1 : 0, out,
	    outlen, error, end, how, "by octet");
	free(cuts);
}

START_TEST(test_dots)
{
	char	how[32];

	util_snprintf(how, sizeof how, "case %d", _i);
	dot_check(dots[_i].in, dots[_i].inlen, dots[_i].normalize,
	    dots[_i].out, dots[_i].outlen, dots[_i].error,
	    dots[_i].end == ALL ? (long)dots[_i].inlen : dots[_i].end, how);
}
END_TEST

START_TEST(test_dot_long_lines)
{
	const struct long_case	*c = &longs[_i];
	size_t			 hl = strlen(c->head), tl = strlen(c->tail);
	size_t			 ohl = strlen(c->out_head);
	size_t			 otl = strlen(c->out_tail);
	char			*in, *out, how[32];

	in = xmalloc(hl + c->n + tl);
	memcpy(in, c->head, hl);
	memset(in + hl, 'x', c->n);
	memcpy(in + hl + c->n, c->tail, tl);
	out = xmalloc(ohl + c->n + otl);
	memcpy(out, c->out_head, ohl);
	memset(out + ohl, 'x', c->n);
	memcpy(out + ohl + c->n, c->out_tail, otl);
	util_snprintf(how, sizeof how, "long case %d", _i);
	dot_check(in, hl + c->n + tl, c->normalize, out, ohl + c->n + otl,
	    c->error, c->ends ? (long)(hl + c->n + tl) : -1, how);
	free(in);
	free(out);
}
END_TEST

/* A NUL is not written, so it does not count toward a line's length. */
START_TEST(test_dot_nul_line_length)
{
	char	in[1100], out[1100];
	size_t	n;

	in[0] = '\0';
	memset(in + 1, 'x', 998);
	memcpy(in + 999, "\0\r\n.\r\n", 6);
	n = 1005;
	memset(out, 'x', 998);
	memcpy(out + 998, "\r\n", 2);
	dot_check(in, n, NM, out, 1000, E_OK, (long)n, "nul long NM");
	dot_check(in, n, S, out, 1000, E_NUL, (long)n, "nul long S");
	in[500] = '\0';
	memset(in + 1, 'y', 499);
	memset(out, 'y', 499);
	memmove(out + 499, out + 500, 500);
	dot_check(in, n, NM, out, 999, E_OK, (long)n, "nul inside NM");
}
END_TEST

/* After the end the machine takes nothing more. */
START_TEST(test_dot_after_end)
{
	struct smtp_data	d;
	char			out[64];
	size_t			consumed, outlen;

	smtp_data_init(&d, 0);
	ck_assert_int_eq(smtp_data_feed(&d, "a\r\n.\r\nb", 7, &consumed, out,
	    &outlen), SMTP_DATA_END);
	ck_assert_uint_eq(consumed, 6);
	ck_assert_uint_eq(outlen, 3);
	ck_assert_int_eq(smtp_data_feed(&d, "b\r\n", 3, &consumed, out,
	    &outlen), SMTP_DATA_END);
	ck_assert_uint_eq(consumed, 0);
	ck_assert_uint_eq(outlen, 0);

	/* A fresh start forgets the old message. */
	smtp_data_init(&d, 0);
	ck_assert_int_eq(smtp_data_feed(&d, ".\r\n", 3, &consumed, out,
	    &outlen), SMTP_DATA_END);
	ck_assert_uint_eq(outlen, 0);
}
END_TEST

START_TEST(test_dot_error_str)
{
	const char	*s[5];
	int		 i, j;

	s[0] = smtp_data_error_str(SMTP_DATA_OK);
	s[1] = smtp_data_error_str(SMTP_DATA_BARE_CR);
	s[2] = smtp_data_error_str(SMTP_DATA_BARE_LF);
	s[3] = smtp_data_error_str(SMTP_DATA_LINE_TOO_LONG);
	s[4] = smtp_data_error_str(SMTP_DATA_NUL);
	for (i = 0; i < 5; i++) {
		ck_assert_ptr_nonnull(s[i]);
		ck_assert(s[i][0] != '\0');
		for (j = 0; j < i; j++)
			ck_assert_str_ne(s[i], s[j]);
	}
	ck_assert_ptr_nonnull(smtp_data_error_str((enum smtp_data_error)99));
}
END_TEST

/*
 * The rules read plainly, with the whole input in view: a line may end
 * the message or be dot-stuffed only if it starts the data or follows a
 * real CRLF; a bare CR or LF becomes CRLF; a NUL is dropped but keeps its
 * line from ending the message; a ".\r" left at the very end is not
 * written yet.
 */
static void
dot_reference(const char *in, size_t len, int normalize, char *out,
    size_t *outlen, enum smtp_data_error *error, long *end)
{
	size_t	i = 0, o = 0, linelen = 0;
	int	eligible = 1;

	*error = SMTP_DATA_OK;
	*end = -1;
#define REF_ERR(e)	do {						\
	if (*error == SMTP_DATA_OK && (!normalize ||			\
	    (e) == SMTP_DATA_LINE_TOO_LONG))				\
		*error = (e);						\
} while (0)
	while (i < len) {
		if (eligible && in[i] == '.') {
			eligible = 0;
			if (i + 2 < len && in[i + 1] == '\r' &&
			    in[i + 2] == '\n') {
				*end = (long)(i + 3);
				break;
			}
			if (i + 2 == len && in[i + 1] == '\r')
				break;
			i++;
			linelen = 1;
			continue;
		}
		eligible = 0;
		if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			i += 2;
			linelen = 0;
			eligible = 1;
		} else if (in[i] == '\r' && i + 1 == len) {
			out[o++] = '\r';
			i++;
		} else if (in[i] == '\0') {
			REF_ERR(SMTP_DATA_NUL);
			i++;
		} else if (in[i] == '\r' || in[i] == '\n') {
			REF_ERR(in[i] == '\r' ? SMTP_DATA_BARE_CR :
			    SMTP_DATA_BARE_LF);
			out[o++] = '\r';
			out[o++] = '\n';
			i++;
			linelen = 0;
		} else {
			if (++linelen > 998)
				REF_ERR(SMTP_DATA_LINE_TOO_LONG);
			out[o++] = in[i++];
		}
	}
#undef REF_ERR
	*outlen = o;
}

/* Random streams of the octets that matter, cut at random places. */
START_TEST(test_dot_random)
{
	static const char	 alphabet[] = "\r\n.\r\n.a\0";
	uint32_t		 seed = 0xd07u + (uint32_t)_i;
	struct dot_result	 r;
	enum smtp_data_error	 error;
	size_t			 len, k, outlen, cuts[64], ncuts;
	char			 in[64], out[160];
	long			 end;
	int			 round, normalize;

	for (round = 0; round < 3000; round++) {
		seed ^= seed << 13;
		seed ^= seed >> 17;
		seed ^= seed << 5;
		len = seed % 40;
		normalize = (seed >> 8) & 1;
		for (k = 0; k < len; k++) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			in[k] = alphabet[seed % (sizeof alphabet - 1)];
		}
		ncuts = 0;
		for (k = 1; k < len; k++) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (seed % 3 == 0)
				cuts[ncuts++] = k;
		}
		dot_reference(in, len, normalize, out, &outlen, &error, &end);
		dot_feed(in, len, normalize, cuts, ncuts, &r);
		if (r.end != end || r.error != error || r.outlen != outlen ||
		    memcmp(r.out, out, outlen) != 0)
			ck_abort_msg("round %d: end %ld/%ld, error %d/%d, "
			    "output %zu/%zu octets", round, r.end, end,
			    r.error, error, r.outlen, outlen);
		free(r.out);
	}
}
END_TEST

/*
 * BDAT chunks: the same machine without dots and without an end, and
 * smtp_data_finish() after the last octet.
 */
static const struct chunk_case {
	const char		*in;
	size_t			 inlen;
	int			 normalize;
	const char		*out;
	size_t			 outlen;
	enum smtp_data_error	 error;
} chunks[] = {
	{ B("a\r\nb\r\n"), S, B("a\r\nb\r\n"), E_OK },
	/* Dots are text; CRLF.CRLF is no end. */
	{ B(".\r\n..x\r\n\r\n.\r\nmore\r\n"), S,
	    B(".\r\n..x\r\n\r\n.\r\nmore\r\n"), E_OK },
	{ B(""), S, B(""), E_OK },
	/* A last line without CRLF gets one; a last CR is a bare CR. */
	{ B("a\r\nb"), S, B("a\r\nb\r\n"), E_OK },
	{ B("a\r\nb\r"), S, B("a\r\nb\r\n"), E_CR },
	{ B("a\r\nb\r"), NM, B("a\r\nb\r\n"), E_OK },
	{ B("."), S, B(".\r\n"), E_OK },
	/* The DATA rules for bare CR and LF, NUL. */
	{ B("a\nb\r\n"), S, B("a\r\nb\r\n"), E_LF },
	{ B("a\nb\r\n"), NM, B("a\r\nb\r\n"), E_OK },
	{ B("a\rb\r\n"), S, B("a\r\nb\r\n"), E_CR },
	{ B("a\n.\n"), NM, B("a\r\n.\r\n"), E_OK },
	{ B("a\0b\r\n"), S, B("ab\r\n"), E_NUL },
	{ B("a\0b\r\n\0"), NM, B("ab\r\n"), E_OK },
};

/* Feed a chunked message cut at the given offsets, then finish it. */
static void
chunk_try(const struct chunk_case *c, const size_t *cuts, size_t ncuts,
    const char *how)
{
	struct smtp_data	 d;
	size_t			 start = 0, stop, k, consumed, outlen;
	size_t			 total = 0;
	char			*out, *piece, tail[2];

	smtp_data_init_chunked(&d, c->normalize);
	out = xmalloc(2 * c->inlen + 2);
	for (k = 0; k <= ncuts; k++) {
		stop = k < ncuts ? cuts[k] : c->inlen;
		piece = xmalloc(stop - start + 1);
		memcpy(piece, c->in + start, stop - start);
		if (smtp_data_feed(&d, piece, stop - start, &consumed,
		    out + total, &outlen) != SMTP_DATA_MORE ||
		    consumed != stop - start || outlen > 2 * (stop - start))
			ck_abort_msg("%s: piece %zu not taken whole", how, k);
		total += outlen;
		free(piece);
		start = stop;
	}
	smtp_data_finish(&d, tail, &outlen);
	if (outlen > 2)
		ck_abort_msg("%s: finish wrote %zu octets", how, outlen);
	memcpy(out + total, tail, outlen);
	total += outlen;
	if (d.error != c->error)
		ck_abort_msg("%s: error %s, want %s", how,
		    smtp_data_error_str(d.error),
		    smtp_data_error_str(c->error));
	if (total != c->outlen || memcmp(out, c->out, total) != 0)
		ck_abort_msg("%s: output differs (%zu octets, want %zu)", how,
		    total, c->outlen);
	free(out);
}

/* Whole, cut in two at every octet, and one octet at a time. */
START_TEST(test_chunks)
{
	const struct chunk_case	*c = &chunks[_i];
	size_t			 cuts[64] = { 0 }, k;
	char			 how[48];

	ck_assert_uint_lt(c->inlen, nitems(cuts));
	util_snprintf(how, sizeof how, "chunk case %d whole", _i);
	chunk_try(c, cuts, 0, how);
	for (k = 0; k <= c->inlen; k++) {
		cuts[0] = k;
		util_snprintf(how, sizeof how, "chunk case %d cut at %zu", _i,
		    k);
		chunk_try(c, cuts, 1, how);
	}
	for (k = 1; k < c->inlen; k++)
		cuts[k - 1] = k;
	util_snprintf(how, sizeof how, "chunk case %d by octet", _i);
	chunk_try(c, cuts, c->inlen > 0 ? c->inlen - 1 : 0, how);
}
END_TEST

/* A chunked line of 998 octets is fine, one more is too long. */
START_TEST(test_chunk_long_line)
{
	struct smtp_data	 d;
	static char		 in[1002], out[2004];
	size_t			 consumed, outlen;

	memset(in, 'x', 999);
	smtp_data_init_chunked(&d, 0);
	smtp_data_feed(&d, in, 998, &consumed, out, &outlen);
	ck_assert_int_eq(d.error, SMTP_DATA_OK);
	smtp_data_feed(&d, in, 1, &consumed, out, &outlen);
	ck_assert_int_eq(d.error, SMTP_DATA_LINE_TOO_LONG);
}
END_TEST

static const struct bdat_case {
	const char	*args;
	int		 rc;
	uint64_t	 size;
	int		 last;
} bdats[] = {
	{ "0", 0, 0, 0 },
	{ "0 LAST", 0, 0, 1 },
	{ "100 last", 0, 100, 1 },
	{ "100  LaSt", 0, 100, 1 },
	{ "007", 0, 7, 0 },
	{ "18446744073709551615", 0, UINT64_MAX, 0 },
	{ "18446744073709551616", -1, 0, 0 },
	{ "99999999999999999999999", -1, 0, 0 },
	{ "", -1, 0, 0 },
	{ "LAST", -1, 0, 0 },
	{ "-1", -1, 0, 0 },
	{ "+1", -1, 0, 0 },
	{ "1.5", -1, 0, 0 },
	{ "0x10", -1, 0, 0 },
	{ "10 LASTX", -1, 0, 0 },
	{ "10 LAST x", -1, 0, 0 },
	{ "10 NOTLAST", -1, 0, 0 },
	{ "10\tLAST", -1, 0, 0 },
};

START_TEST(test_bdat_args)
{
	const struct bdat_case	*c = &bdats[_i];
	uint64_t		 size = 12345;
	int			 last = 7;

	ck_assert_msg(smtp_parse_bdat(c->args, &size, &last) == c->rc,
	    "\"%s\"", c->args);
	if (c->rc == 0) {
		ck_assert_msg(size == c->size, "\"%s\": size", c->args);
		ck_assert_int_eq(last, c->last);
	}
}
END_TEST

static Suite *
smtp_parse_suite(void)
{
	Suite	*s = suite_create("smtp_parse");
	TCase	*tc;

	tc = tcase_create("commands");
	tcase_add_loop_test(tc, test_lines, 0, nitems(lines));
	tcase_add_loop_test(tc, test_cmds, 0, nitems(cmds));
	tcase_add_test(tc, test_verb_str);
	tcase_add_loop_test(tc, test_params, 0, nitems(params));
	tcase_add_test(tc, test_params_max);
	tcase_add_loop_test(tc, test_replies, 0, nitems(replies));
	suite_add_tcase(s, tc);

	tc = tcase_create("xtext");
	tcase_add_loop_test(tc, test_xtext_decode, 0, nitems(xdecode));
	tcase_add_loop_test(tc, test_xtext_encode, 0, nitems(xencode));
	tcase_add_test(tc, test_xtext_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("data");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_dots, 0, nitems(dots));
	tcase_add_loop_test(tc, test_dot_long_lines, 0, nitems(longs));
	tcase_add_test(tc, test_dot_after_end);
	tcase_add_test(tc, test_dot_nul_line_length);
	tcase_add_test(tc, test_dot_error_str);
	tcase_add_loop_test(tc, test_dot_random, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_add_loop_test(tc, test_chunks, 0, nitems(chunks));
	tcase_add_test(tc, test_chunk_long_line);
	tcase_add_loop_test(tc, test_bdat_args, 0, nitems(bdats));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(smtp_parse_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
