/*
 * check_milter.c: the milter protocol codec (packets built octet for
 * octet; replies found in a stream split at every octet; zero, oversized
 * and unknown packets and malformed data refused; reply codes checked
 * and rendered) and the message edits (header split, header changes,
 * body replacement, envelope changes applied all or nothing).
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "milter_edit.h"
#include "milter_proto.h"
#include "util.h"

static void
put_u32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

/* A packet by hand: length, command, data. */
static size_t
pkt(char *out, int cmd, const void *data, size_t len)
{
	put_u32(out, (uint32_t)len + 1);
	out[4] = (char)cmd;
	memcpy(out + 5, data, len);
	return len + 5;
}

START_TEST(test_build_optneg)
{
	struct util_buf	b = { NULL, 0, 0 };
	static const unsigned char want[] = {
		0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 0x01, 0xff,
		0, 0x1f, 0xff, 0xff
	};

	milter_proto_optneg(&b, 6, 0x1ff, 0x1fffff);
	ck_assert_uint_eq(b.len, sizeof want);
	ck_assert(memcmp(b.data, want, sizeof want) == 0);
	free(b.data);
}
END_TEST

START_TEST(test_build_connect_macros_args)
{
	struct util_buf	 b = { NULL, 0, 0 };
	const char	*nv[] = { "j", "mx", "{client_addr}", "192.0.2.1" };
	static const char want_conn[] = "\0\0\0\026Cunknown\0" "4\x01\xbb"
	    "192.0.2.1";
	static const char want_unknown[] = "\0\0\0\010Clocal\0U";
	static const char want_macro[] = "\0\0\0\037DCj\0mx\0{client_addr}\0"
	    "192.0.2.1";
	static const char want_mail[] = "\0\0\0\044M<a@b.example>\0SIZE=1\0"
	    "BODY=8BITMIME";

	milter_proto_connect(&b, "unknown", "192.0.2.1", 443);
	ck_assert_uint_eq(b.len, sizeof want_conn);
	ck_assert(memcmp(b.data, want_conn, sizeof want_conn) == 0);
	b.len = 0;
	milter_proto_connect(&b, "local", NULL, 0);
	ck_assert_uint_eq(b.len, sizeof want_unknown - 1);
	ck_assert(memcmp(b.data, want_unknown, b.len) == 0);
	b.len = 0;
	milter_proto_macros(&b, SMFIC_CONNECT, nv, 2);
	ck_assert_uint_eq(b.len, sizeof want_macro);
	ck_assert(memcmp(b.data, want_macro, sizeof want_macro) == 0);
	b.len = 0;
	milter_proto_args(&b, SMFIC_MAIL, "a@b.example",
	    " SIZE=1  BODY=8BITMIME ");
	ck_assert_uint_eq(b.len, sizeof want_mail);
	ck_assert(memcmp(b.data, want_mail, sizeof want_mail) == 0);
	free(b.data);
}
END_TEST

START_TEST(test_build_header)
{
	struct util_buf	 b = { NULL, 0, 0 };
	static const char v[] = " first\r\n\tsecond";

	milter_proto_header(&b, "Subject", 7, v, sizeof v - 1, 0);
	ck_assert_uint_eq(b.len, 5 + 8 + 14);
	ck_assert(memcmp(b.data + 5, "Subject\0first\n\tsecond", 22) == 0);
	b.len = 0;
	milter_proto_header(&b, "Subject", 7, v, sizeof v - 1, 1);
	ck_assert(memcmp(b.data + 5, "Subject\0 first\n\tsecond", 23) == 0);
	free(b.data);
}
END_TEST

/* A stream of replies, fed in two pieces split at every octet. */
START_TEST(test_parse_split)
{
	char			 stream[512], copy[512];
	size_t			 n = 0, split, have, off, used, count;
	struct milter_packet	 p;
	struct milter_proto_reply r;
	const char		*why;
	static const int	 cmds[] = { 'h', 'c', 'y', 'b', 'a' };
	int			 rc;

	n += pkt(stream + n, SMFIR_ADDHEADER, "X-A\0v\0", 6);
	n += pkt(stream + n, SMFIR_CONTINUE, "", 0);
	n += pkt(stream + n, SMFIR_REPLYCODE, "550 5.7.1 no\0", 13);
	n += pkt(stream + n, SMFIR_REPLBODY, "new\r\n", 5);
	n += pkt(stream + n, SMFIR_ACCEPT, "", 0);
	for (split = 0; split <= n; split++) {
		/* What has arrived: the first split octets, then all. */
		memset(copy, 0xee, sizeof copy);
		memcpy(copy, stream, split);
		have = split;
		off = 0;
		count = 0;
		for (;;) {
			rc = milter_proto_parse(copy + off, have - off, &p,
			    &used);
			if (rc == 0) {
				if (have == n)
					break;
				memcpy(copy + have, stream + have, n - have);
				have = n;
				continue;
			}
			ck_assert_int_eq(rc, 1);
			ck_assert_int_eq(p.cmd, cmds[count]);
			ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
			off += used;
			count++;
		}
		ck_assert_uint_eq(count, nitems(cmds));
		ck_assert_uint_eq(off, n);
	}
}
END_TEST

START_TEST(test_parse_bad_lengths)
{
	char			 b[16];
	struct milter_packet	 p;
	size_t			 used;

	put_u32(b, 0);
	ck_assert_int_eq(milter_proto_parse(b, 4, &p, &used), -1);
	put_u32(b, MILTER_PROTO_MAX + 1);
	ck_assert_int_eq(milter_proto_parse(b, 5, &p, &used), -1);
	put_u32(b, 0xffffffffu);
	ck_assert_int_eq(milter_proto_parse(b, 4, &p, &used), -1);
	put_u32(b, MILTER_PROTO_MAX);
	ck_assert_int_eq(milter_proto_parse(b, 8, &p, &used), 0);
	ck_assert_int_eq(milter_proto_parse(b, 3, &p, &used), 0);
}
END_TEST

/* Packets whose data make no sense for their command. */
static const struct {
	int		 cmd;
	const char	*data;
	size_t		 len;
} bad_replies[] = {
	{ 'z', "", 0 },
	{ 0, "", 0 },
	{ SMFIR_ADDHEADER, "X-A\0v", 5 },
	{ SMFIR_ADDHEADER, "X-A", 3 },
	{ SMFIR_ADDHEADER, "\0v\0", 3 },
	{ SMFIR_ADDHEADER, "X A\0v\0", 6 },
	{ SMFIR_ADDHEADER, "X:A\0v\0", 6 },
	{ SMFIR_CHGHEADER, "\0\0\0", 3 },
	{ SMFIR_INSHEADER, "\0\0\0\1X", 5 },
	{ SMFIR_ADDRCPT, "", 0 },
	{ SMFIR_ADDRCPT, "\0", 1 },
	{ SMFIR_DELRCPT, "a@b", 3 },
	{ SMFIR_CHGFROM, "", 0 },
	{ SMFIR_QUARANTINE, "why", 3 },
	{ SMFIR_REPLYCODE, "250 2.0.0 ok\0", 13 },
	{ SMFIR_REPLYCODE, "55\0", 3 },
	{ SMFIR_REPLYCODE, "5x0 no\0", 7 },
	{ SMFIR_REPLYCODE, "550-a\r\n450 b\0", 13 },
	{ SMFIR_REPLYCODE, "550xno\0", 7 },
	{ SMFIC_OPTNEG, "\0\0\0\6\0\0", 6 },
};

START_TEST(test_decode_bad)
{
	struct milter_packet		 p;
	struct milter_proto_reply	 r;
	const char			*why = NULL;

	p.cmd = bad_replies[_i].cmd;
	p.data = bad_replies[_i].data;
	p.len = bad_replies[_i].len;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), -1);
	ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(test_decode_replycode)
{
	struct milter_packet		 p;
	struct milter_proto_reply	 r;
	const char			*why;
	static const char		 ml[] = "550-5.7.1 first\r\n"
	    "550 5.7.1 last\0";
	static const char		 crlf[] = "451 4.7.1 a\x01z\0";

	p.cmd = SMFIR_REPLYCODE;
	p.data = ml;
	p.len = sizeof ml - 1;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_int_eq(r.code, 550);
	ck_assert_str_eq(r.esc, "5.7.1");
	ck_assert_str_eq(r.smtp, "550-5.7.1 first\r\n550 5.7.1 last\r\n");
	ck_assert_uint_eq(r.textlen, 5);
	ck_assert(memcmp(r.text, "first", 5) == 0);
	/* A filter's last line with "-" still ends the reply. */
	p.data = "550-no\0";
	p.len = 7;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_str_eq(r.smtp, "550 no\r\n");
	ck_assert_str_eq(r.esc, "");
	/* Control octets never reach a client. */
	p.data = crlf;
	p.len = sizeof crlf - 1;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_str_eq(r.smtp, "451 4.7.1 a?z\r\n");
	p.data = "421\0";
	p.len = 4;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_str_eq(r.smtp, "421 \r\n");
}
END_TEST

START_TEST(test_decode_optneg_changes)
{
	struct milter_packet		 p;
	struct milter_proto_reply	 r;
	const char			*why;
	char				 d[64];
	size_t				 n;

	put_u32(d, 6);
	put_u32(d + 4, SMFIF_ADDHDRS | SMFIF_SETSYMLIST);
	put_u32(d + 8, SMFIP_NR_HDR);
	put_u32(d + 12, MILTER_STAGE_MAIL);
	memcpy(d + 16, "{auth_type} i\0", 14);
	n = 30;
	p.cmd = SMFIC_OPTNEG;
	p.data = d;
	p.len = n;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_uint_eq(r.version, 6);
	ck_assert_uint_eq(r.actions, SMFIF_ADDHDRS | SMFIF_SETSYMLIST);
	ck_assert_uint_eq(r.protocol, SMFIP_NR_HDR);
	ck_assert_str_eq(r.macros[MILTER_STAGE_MAIL], "{auth_type} i");
	ck_assert_ptr_null(r.macros[MILTER_STAGE_CONNECT]);

	put_u32(d, 7);
	memcpy(d + 4, "X-B\0two\0", 8);
	p.cmd = SMFIR_CHGHEADER;
	p.len = 12;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_uint_eq(r.index, 7);
	ck_assert_str_eq(r.name, "X-B");
	ck_assert_str_eq(r.value, "two");

	p.cmd = SMFIR_ADDRCPT_PAR;
	p.data = "<c@d>\0NOTIFY=NEVER\0";
	p.len = 19;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_str_eq(r.name, "<c@d>");
	ck_assert_str_eq(r.value, "NOTIFY=NEVER");
	p.cmd = SMFIR_CHGFROM;
	p.data = "<e@f>\0";
	p.len = 6;
	ck_assert_int_eq(milter_proto_decode(&p, &r, &why), 0);
	ck_assert_ptr_null(r.value);
}
END_TEST

START_TEST(test_split)
{
	static const char	 m[] = "A: 1\r\nB-C:two\r\n\tfolded\r\n"
	    "\r\nbody\r\n";
	static const char	 nosep[] = "A: 1\r\nnot a header\r\nx\r\n";
	struct milter_field	*f;
	size_t			 n, body;

	milter_edit_split(m, sizeof m - 1, &f, &n, &body);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(f[0].namelen, 1);
	ck_assert(memcmp(f[0].value, " 1", f[0].valuelen) == 0);
	ck_assert_uint_eq(f[1].namelen, 3);
	ck_assert_uint_eq(f[1].valuelen, strlen("two\r\n\tfolded"));
	ck_assert_str_eq(m + body, "body\r\n");
	free(f);
	milter_edit_split(nosep, sizeof nosep - 1, &f, &n, &body);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(nosep + body, "not a header\r\nx\r\n");
	free(f);
}
END_TEST

static int
out_buf(void *arg, const void *p, size_t len)
{
	util_buf_add(arg, p, len);
	return 0;
}

START_TEST(test_edit_headers)
{
	static const char	 m[] = "From: a\r\nSubject: s\r\nX-T: 1\r\n"
	    "X-T: 2\r\nX-Del: d\r\n\r\nbody\r\n";
	struct milter_mods	 mods;
	struct util_buf		 b = { NULL, 0, 0 };

	milter_mods_init(&mods);
	milter_mods_add(&mods, MILTER_MOD_ADD_HEADER, 0, 0, "X-New",
	    "one\ntwo");
	milter_mods_add(&mods, MILTER_MOD_INSERT_HEADER, 0, 0, "X-Top", "t");
	milter_mods_add(&mods, MILTER_MOD_INSERT_HEADER, 2, 1, "X-Mid",
	    " m");
	milter_mods_add(&mods, MILTER_MOD_CHANGE_HEADER, 2, 0, "x-t", "22");
	milter_mods_add(&mods, MILTER_MOD_CHANGE_HEADER, 1, 0, "X-Del", "");
	milter_mods_add(&mods, MILTER_MOD_CHANGE_HEADER, 3, 0, "X-T", "");
	milter_mods_add(&mods, MILTER_MOD_CHANGE_HEADER, 1, 0, "X-Gone", "");
	ck_assert(milter_mods_has_content(&mods));
	ck_assert(!milter_mods_has_envelope(&mods));
	ck_assert_int_eq(milter_edit_message(&mods, m, sizeof m - 1, out_buf,
	    &b), 0);
	ck_assert_str_eq(b.data, "X-Top: t\r\nFrom: a\r\nX-Mid: m\r\n"
	    "Subject: s\r\nX-T: 1\r\nX-T: 22\r\nX-New: one\r\n\ttwo\r\n"
	    "\r\nbody\r\n");
	milter_mods_clear(&mods);
	free(b.data);
}
END_TEST

START_TEST(test_edit_header_cr)
{
	static const char	 m[] = "A: b\r\n\r\nbody\r\n";
	struct milter_mods	 mods;
	struct util_buf		 b = { NULL, 0, 0 };

	/* A filter's lone CR never reaches the spool. */
	milter_mods_init(&mods);
	milter_mods_add(&mods, MILTER_MOD_ADD_HEADER, 0, 0, "X-Cr",
	    "one\rtwo\r\r\nthree\r");
	ck_assert_int_eq(milter_edit_message(&mods, m, sizeof m - 1, out_buf,
	    &b), 0);
	util_buf_add(&b, "", 1);
	ck_assert_str_eq(b.data, "A: b\r\nX-Cr: onetwo\r\n\tthree\r\n"
	    "\r\nbody\r\n");
	milter_mods_clear(&mods);
	free(b.data);
}
END_TEST

START_TEST(test_edit_body)
{
	static const char	 m[] = "A: b\r\n\r\nold body\r\n";
	struct milter_mods	 mods;
	struct util_buf		 b = { NULL, 0, 0 };

	milter_mods_init(&mods);
	milter_mods_body(&mods, "new\nbo", 6);
	milter_mods_body(&mods, "dy", 2);
	ck_assert(milter_mods_has_content(&mods));
	ck_assert_int_eq(milter_edit_message(&mods, m, sizeof m - 1, out_buf,
	    &b), 0);
	ck_assert_str_eq(b.data, "A: b\r\n\r\nnew\r\nbody\r\n");
	milter_mods_clear(&mods);
	free(b.data);
}
END_TEST

START_TEST(test_edit_envelope)
{
	struct envelope		 env;
	struct milter_mods	 mods;
	char			*cause = NULL;

	envelope_init(&env);
	envelope_set_str(&env.sender, "a@b");
	envelope_add_rcpt(&env, "x@y");
	envelope_add_rcpt(&env, "gone@y");
	milter_mods_init(&mods);
	milter_mods_add(&mods, MILTER_MOD_CHANGE_FROM, 0, 0, "<new@b>",
	    "RET=HDRS ENVID=a+2Bb");
	milter_mods_add(&mods, MILTER_MOD_ADD_RCPT, 0, 0, "<z@y>",
	    "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;q@y");
	milter_mods_add(&mods, MILTER_MOD_ADD_RCPT, 0, 0, "X@Y", NULL);
	milter_mods_add(&mods, MILTER_MOD_DELETE_RCPT, 0, 0, "<GONE@y>",
	    NULL);
	ck_assert(milter_mods_has_envelope(&mods));
	ck_assert(!milter_mods_has_content(&mods));
	ck_assert_int_eq(milter_edit_envelope(&mods, &env, &cause), 0);
	ck_assert_str_eq(env.sender, "new@b");
	ck_assert_int_eq(env.ret, ENVELOPE_RET_HDRS);
	ck_assert_str_eq(env.envid, "a+b");
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_str_eq(env.rcpts[0].addr, "x@y");
	ck_assert_str_eq(env.rcpts[1].addr, "z@y");
	ck_assert_int_eq(env.rcpts[1].notify, ENVELOPE_NOTIFY_SUCCESS |
	    ENVELOPE_NOTIFY_DELAY);
	ck_assert_str_eq(env.rcpts[1].orcpt, "rfc822;q@y");

	/* One bad address: nothing is applied. */
	milter_mods_clear(&mods);
	milter_mods_add(&mods, MILTER_MOD_DELETE_RCPT, 0, 0, "x@y", NULL);
	milter_mods_add(&mods, MILTER_MOD_ADD_RCPT, 0, 0, "<a b@c>", NULL);
	ck_assert_int_eq(milter_edit_envelope(&mods, &env, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_str_eq(env.rcpts[0].addr, "x@y");
	milter_mods_clear(&mods);
	envelope_clear(&env);
}
END_TEST

static Suite *
milter_suite(void)
{
	Suite	*s = suite_create("milter");
	TCase	*proto = tcase_create("proto");
	TCase	*edit = tcase_create("edit");

	tcase_add_test(proto, test_build_optneg);
	tcase_add_test(proto, test_build_connect_macros_args);
	tcase_add_test(proto, test_build_header);
	tcase_add_test(proto, test_parse_split);
	tcase_add_test(proto, test_parse_bad_lengths);
	tcase_add_loop_test(proto, test_decode_bad, 0, nitems(bad_replies));
	tcase_add_test(proto, test_decode_replycode);
	tcase_add_test(proto, test_decode_optneg_changes);
	suite_add_tcase(s, proto);
	tcase_add_test(edit, test_split);
	tcase_add_test(edit, test_edit_headers);
	tcase_add_test(edit, test_edit_header_cr);
	tcase_add_test(edit, test_edit_body);
	tcase_add_test(edit, test_edit_envelope);
	suite_add_tcase(s, edit);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(milter_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
