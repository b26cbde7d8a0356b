/*
 * check_dvproto.c: Dovecot's auth protocol, client side.  A server's
 * handshake and answers cut at every byte and fed in pieces; every line
 * kind read, well formed and not; tab-escaping undone; lines that would
 * let a client inject a field refused; socket names; random garbage fed
 * to the line cutter and the parser.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dvproto.h"
#include "util.h"

/* A Dovecot 2.3 handshake and answers, as one stream. */
static const char stream[] =
    "VERSION\t1\t2\n"
    "MECH\tPLAIN\tplaintext\n"
    "MECH\tLOGIN\tplaintext\n"
    "MECH\tCRAM-MD5\tdictionary\tactive\n"
    "MECH\tANONYMOUS\tanonymous\n"
    "SPID\t4242\n"
    "CUID\t7\n"
    "COOKIE\t0123456789abcdef0123456789abcdef\n"
    "DONE\n"
    "CONT\t1\t\n"
    "OK\t1\tuser=alice@example.org\n"
    "FAIL\t2\tuser=bob\treason=Password\001texpired\n"
    "FAIL\t3\ttemp\n"
    "CONT\t4\tVXNlcm5hbWU6\r\n";

static const struct {
	enum dvproto_kind	 kind;
	const char		*mech;
	unsigned		 id;
	const char		*data;
	const char		*user;
	int			 temp;
} stream_want[] = {
	{ DVPROTO_VERSION, NULL, 0, NULL, NULL, 0 },
	{ DVPROTO_MECH, "PLAIN", 0, NULL, NULL, 0 },
	{ DVPROTO_MECH, "LOGIN", 0, NULL, NULL, 0 },
	{ DVPROTO_MECH, "CRAM-MD5", 0, NULL, NULL, 0 },
	{ DVPROTO_MECH, "ANONYMOUS", 0, NULL, NULL, 0 },
	{ DVPROTO_IGNORE, NULL, 0, NULL, NULL, 0 },
	{ DVPROTO_IGNORE, NULL, 0, NULL, NULL, 0 },
	{ DVPROTO_IGNORE, NULL, 0, NULL, NULL, 0 },
	{ DVPROTO_DONE, NULL, 0, NULL, NULL, 0 },
	{ DVPROTO_CONT, NULL, 1, "", NULL, 0 },
	{ DVPROTO_OK, NULL, 1, NULL, "alice@example.org", 0 },
	{ DVPROTO_FAIL, NULL, 2, NULL, "bob", 0 },
	{ DVPROTO_FAIL, NULL, 3, NULL, NULL, 1 },
	{ DVPROTO_CONT, NULL, 4, "VXNlcm5hbWU6", NULL, 0 },
};

/* Feed data in pieces of the given sizes (cycled); check every line. */
static void
feed(const char *data, size_t len, const size_t *sizes, size_t nsizes)
{
	struct dvproto_in	*in = xcalloc(1, sizeof *in);
	struct dvproto_reply	 r;
	size_t			 off = 0, piece, used, k = 0, n = 0;
	char			*line, *piece_buf;
	int			 rc;

	while (off < len) {
		piece = sizes[k++ % nsizes];
		if (piece > len - off)
			piece = len - off;
		/* Exactly the piece, so that ASan sees a read past it. */
		piece_buf = xmalloc(piece);
		memcpy(piece_buf, data + off, piece);
		for (used = 0; used < piece; ) {
			size_t	u;

			rc = dvproto_take(in, piece_buf + used, piece - used,
			    &u, &line);
			ck_assert_int_ne(rc, -1);
			ck_assert_uint_gt(u, 0);
			used += u;
			if (rc == 0) {
				ck_assert_uint_eq(used, piece);
				continue;
			}
			ck_assert_uint_lt(n, nitems(stream_want));
			ck_assert_int_eq(dvproto_parse(line, &r), 0);
			ck_assert_int_eq(r.kind, stream_want[n].kind);
			if (stream_want[n].mech != NULL)
				ck_assert_str_eq(r.mech, stream_want[n].mech);
			ck_assert_uint_eq(r.id, stream_want[n].id);
			if (stream_want[n].data != NULL)
				ck_assert_str_eq(r.data, stream_want[n].data);
			if (stream_want[n].user != NULL)
				ck_assert_str_eq(r.user, stream_want[n].user);
			else
				ck_assert_ptr_null(r.user);
			ck_assert_int_eq(r.temp, stream_want[n].temp);
			n++;
		}
		free(piece_buf);
		off += piece;
	}
	ck_assert_uint_eq(n, nitems(stream_want));
	free(in);
}

START_TEST(test_stream_whole)
{
	size_t	whole = sizeof stream - 1;

	feed(stream, sizeof stream - 1, &whole, 1);
}
END_TEST

START_TEST(test_stream_split_everywhere)
{
	size_t	cut, sizes[2];

	/* Two pieces, cut at every octet. */
	for (cut = 1; cut < sizeof stream - 1; cut++) {
		sizes[0] = cut;
		sizes[1] = sizeof stream;
		feed(stream, sizeof stream - 1, sizes, 2);
	}
	/* One octet at a time, and in pieces of every small size. */
	for (cut = 1; cut < 40; cut++)
		feed(stream, sizeof stream - 1, &cut, 1);
}
END_TEST

START_TEST(test_mech_flags)
{
	struct dvproto_reply	r;
	char			line[] = "MECH\tANONYMOUS\tanonymous\tprivate"
				    "\tplaintext\tunknown-flag";

	ck_assert_int_eq(dvproto_parse(line, &r), 0);
	ck_assert_int_eq(r.kind, DVPROTO_MECH);
	ck_assert_str_eq(r.mech, "ANONYMOUS");
	ck_assert_int_eq(r.flags, DVPROTO_MECH_ANONYMOUS |
	    DVPROTO_MECH_PRIVATE | DVPROTO_MECH_PLAINTEXT);
}
END_TEST

START_TEST(test_offered)
{
	static const struct {
		const char	*mech;
		int		 flags;
		int		 offered;
	} t[] = {
		{ "PLAIN", DVPROTO_MECH_PLAINTEXT, 1 },
		{ "LOGIN", DVPROTO_MECH_PLAINTEXT, 1 },
		{ "CRAM-MD5", 0, 1 },
		{ "SCRAM-SHA-256", 0, 1 },
		{ "SCRAM-SHA-256-PLUS", 0, 0 },
		{ "EXTERNAL", 0, 0 },
		{ "ANONYMOUS", 0, 0 },
		{ "OTHER", DVPROTO_MECH_ANONYMOUS, 0 },
		{ "GSSAPI", DVPROTO_MECH_PRIVATE, 0 },
	};
	size_t	i;

	for (i = 0; i < nitems(t); i++)
		ck_assert_msg(dvproto_is_offered(t[i].mech, t[i].flags) ==
		    t[i].offered, "%s", t[i].mech);
}
END_TEST

/* Lines a server must not send, each refused rather than half-read. */
START_TEST(test_malformed)
{
	static const char *const bad[] = {
		"VERSION",
		"VERSION\t1",
		"VERSION\tone\t2",
		"VERSION\t-1\t2",
		"VERSION\t99999999999\t0",
		"MECH",
		"MECH\t",
		"MECH\tplain",
		"MECH\tPLA IN",
		"MECH\tTHIS-NAME-IS-FAR-TOO-LONG",
		"OK",
		"OK\t",
		"OK\t0\tuser=a",
		"OK\tx\tuser=a",
		"OK\t1x\tuser=a",
		"OK\t1\tuser=",
		"OK\t1\tuser=a\001",
		"OK\t1\tuser=a\0010b",
		"OK\t1\tuser=a\001nb",
		"OK\t1\tuser=a\rb",
		"FAIL\t1\tuser=\001t",
		"CONT",
		"CONT\t1\tnot base64!",
		"CONT\t1\tab\001t",
		"CONT\t\tAAAA",
	};
	struct dvproto_reply	 r;
	char			*line;
	size_t			 i;

	for (i = 0; i < nitems(bad); i++) {
		line = xstrdup(bad[i]);
		ck_assert_msg(dvproto_parse(line, &r) == -1, "%s", bad[i]);
		free(line);
	}
}
END_TEST

START_TEST(test_ignored)
{
	static const char *const ok[] = {
		"", "SPID\t1", "CUID\tx", "COOKIE", "NOTHING\tat all",
		"ok\t1\tuser=lowercase-command",
	};
	struct dvproto_reply	 r;
	char			*line;
	size_t			 i;

	for (i = 0; i < nitems(ok); i++) {
		line = xstrdup(ok[i]);
		ck_assert_int_eq(dvproto_parse(line, &r), 0);
		ck_assert_int_eq(r.kind, DVPROTO_IGNORE);
		free(line);
	}
}
END_TEST

START_TEST(test_fail_fields)
{
	struct dvproto_reply	r;
	char			l1[] = "FAIL\t9\tcode=temp_fail\treason=LDAP down";
	char			l2[] = "FAIL\t9\tuser=x\001zy\tunknown=1\t"
			    "reason=a\001\061b";
	char			l3[] = "OK\t5\tuser=u\001tv\tnologin";

	ck_assert_int_eq(dvproto_parse(l1, &r), 0);
	ck_assert_int_eq(r.kind, DVPROTO_FAIL);
	ck_assert_int_eq(r.temp, 1);
	ck_assert_str_eq(r.reason, "LDAP down");
	ck_assert_int_eq(dvproto_parse(l2, &r), 0);
	ck_assert_int_eq(r.temp, 0);
	ck_assert_str_eq(r.user, "xzy");
	ck_assert_str_eq(r.reason, "a\001b");
	/* A TAB inside a user name is a control character: refused. */
	ck_assert_int_eq(dvproto_parse(l3, &r), -1);
}
END_TEST

START_TEST(test_unescape)
{
	char	a[] = "a\001tb\001rc\001nd\001le\0011f\001zg";
	char	b[] = "end\001";
	char	c[] = "nul\0010";

	ck_assert_int_eq(dvproto_unescape(a), 0);
	ck_assert_str_eq(a, "a\tb\rc\nd\ne\001fzg");
	ck_assert_int_eq(dvproto_unescape(b), -1);
	ck_assert_int_eq(dvproto_unescape(c), -1);
}
END_TEST

START_TEST(test_take_limits)
{
	struct dvproto_in	*in = xcalloc(1, sizeof *in);
	char			*big, *line;
	size_t			 used;

	/* The longest line passes, LF in a piece of its own. */
	big = xmalloc(DVPROTO_LINE_MAX + 1);
	memset(big, 'A', DVPROTO_LINE_MAX);
	ck_assert_int_eq(dvproto_take(in, big, DVPROTO_LINE_MAX, &used,
	    &line), 0);
	ck_assert_int_eq(dvproto_take(in, "\n", 1, &used, &line), 1);
	ck_assert_uint_eq(strlen(line), DVPROTO_LINE_MAX);
	/* One more octet is too long, and the stream stays refused. */
	ck_assert_int_eq(dvproto_take(in, big, DVPROTO_LINE_MAX, &used,
	    &line), 0);
	ck_assert_int_eq(dvproto_take(in, "A\n", 2, &used, &line), -1);
	ck_assert_int_eq(dvproto_take(in, "DONE\n", 5, &used, &line), -1);
	free(in);
	/* A NUL anywhere in a line. */
	in = xcalloc(1, sizeof *in);
	ck_assert_int_eq(dvproto_take(in, "DO\0NE\n", 6, &used, &line), -1);
	free(in);
	/* Empty lines are lines. */
	in = xcalloc(1, sizeof *in);
	ck_assert_int_eq(dvproto_take(in, "\n\r\nX", 4, &used, &line), 1);
	ck_assert_uint_eq(used, 1);
	ck_assert_str_eq(line, "");
	ck_assert_int_eq(dvproto_take(in, "\r\nX", 3, &used, &line), 1);
	ck_assert_uint_eq(used, 2);
	ck_assert_str_eq(line, "");
	free(in);
	free(big);
}
END_TEST

START_TEST(test_client_lines)
{
	struct dvproto_auth	a;
	char			buf[512];

	ck_assert_int_ne(dvproto_handshake(buf, sizeof buf, 77), -1);
	ck_assert_str_eq(buf, "VERSION\t1\t2\nCPID\t77\n");

	memset(&a, 0, sizeof a);
	a.id = 3;
	a.mech = "PLAIN";
	a.service = "smtp";
	a.lip = "127.0.0.1";
	a.rip = "192.0.2.7";
	a.lport = 587;
	a.rport = 40000;
	a.secured = 1;
	a.session = "0A1B2C3D";
	a.resp = "AGEAYg==";
	ck_assert_int_ne(dvproto_auth_line(buf, sizeof buf, &a), -1);
	ck_assert_str_eq(buf, "AUTH\t3\tPLAIN\tservice=smtp\t"
	    "session=0A1B2C3D\tlip=127.0.0.1\trip=192.0.2.7\tlport=587\t"
	    "rport=40000\tsecured\tresp=AGEAYg==\n");

	/* An empty initial response, and nothing optional. */
	memset(&a, 0, sizeof a);
	a.id = 4;
	a.mech = "LOGIN";
	a.service = "smtp";
	a.resp = "";
	ck_assert_int_ne(dvproto_auth_line(buf, sizeof buf, &a), -1);
	ck_assert_str_eq(buf, "AUTH\t4\tLOGIN\tservice=smtp\tresp=\n");
	a.resp = NULL;
	ck_assert_int_ne(dvproto_auth_line(buf, sizeof buf, &a), -1);
	ck_assert_str_eq(buf, "AUTH\t4\tLOGIN\tservice=smtp\n");

	/* Anything that could add a field or a line is refused. */
	a.resp = "AAAA\tuser=root";
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.resp = "AAAA\nCANCEL\t1";
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.resp = NULL;
	a.mech = "PLAIN\tx";
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.mech = "plain";
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.mech = "PLAIN";
	a.session = "x\ty";
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.session = NULL;
	a.id = 0;
	ck_assert_int_eq(dvproto_auth_line(buf, sizeof buf, &a), -1);
	a.id = 1;
	ck_assert_int_eq(dvproto_auth_line(buf, 10, &a), -1);

	ck_assert_int_ne(dvproto_cont_line(buf, sizeof buf, 5, "dGVzdA=="),
	    -1);
	ck_assert_str_eq(buf, "CONT\t5\tdGVzdA==\n");
	ck_assert_int_ne(dvproto_cont_line(buf, sizeof buf, 5, ""), -1);
	ck_assert_str_eq(buf, "CONT\t5\t\n");
	ck_assert_int_eq(dvproto_cont_line(buf, sizeof buf, 5, "a b"), -1);
	ck_assert_int_eq(dvproto_cont_line(buf, sizeof buf, 5, "a\n"), -1);
	ck_assert_int_ne(dvproto_cancel_line(buf, sizeof buf, 6), -1);
	ck_assert_str_eq(buf, "CANCEL\t6\n");
}
END_TEST

START_TEST(test_socket)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_un	*sun = (struct sockaddr_un *)&ss;
	socklen_t		 len;
	char			*cause, longpath[200];
	static const char *const bad[] = {
		"", "relative/path", "unix:relative", "inet:", "inet:1.2.3.4",
		"inet:1.2.3.4:", "inet:1.2.3.4:0", "inet:1.2.3.4:65536",
		"inet:1.2.3.4:+5", "inet:mail.example.org:12345",
		"inet::12345", "inet:[]:1", "tcp:1.2.3.4:5",
	};
	size_t			 i;

	ck_assert_int_eq(dvproto_parse_socket("/run/dovecot/auth-client", &ss,
	    &len, &cause), 0);
	ck_assert_int_eq(sun->sun_family, AF_UNIX);
	ck_assert_str_eq(sun->sun_path, "/run/dovecot/auth-client");
	ck_assert_int_eq(dvproto_parse_socket("unix:/x", &ss, &len, &cause),
	    0);
	ck_assert_str_eq(sun->sun_path, "/x");
	ck_assert_int_eq(dvproto_parse_socket("inet:127.0.0.1:12345", &ss,
	    &len, &cause), 0);
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_int_eq(ntohs(sin->sin_port), 12345);
	ck_assert_uint_eq(len, sizeof *sin);
	ck_assert_int_eq(dvproto_parse_socket("inet:[::1]:1", &ss, &len,
	    &cause), 0);
	ck_assert_int_eq(sin6->sin6_family, AF_INET6);
	ck_assert_int_eq(ntohs(sin6->sin6_port), 1);
	ck_assert_int_eq(dvproto_parse_socket("inet:localhost:65535", &ss,
	    &len, &cause), 0);
	ck_assert_int_eq(sin->sin_family, AF_INET);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

	for (i = 0; i < nitems(bad); i++) {
		cause = NULL;
		ck_assert_msg(dvproto_parse_socket(bad[i], &ss, &len,
		    &cause) == -1, "%s", bad[i]);
		ck_assert_ptr_nonnull(cause);
		free(cause);
	}
	longpath[0] = '/';
	memset(longpath + 1, 'p', sizeof longpath - 2);
	longpath[sizeof longpath - 1] = '\0';
	ck_assert_int_eq(dvproto_parse_socket(longpath, &ss, &len, &cause),
	    -1);
	free(cause);
}
END_TEST

/* Random octets, biased toward the protocol's own, never crash it. */
START_TEST(test_garbage)
{
	static const char alphabet[] = "\t\n\r\001 =0123456789ABCDEFOKFAIL"
	    "CONTMECHDONEVERSIONuser=reason=temp";
	struct dvproto_in	*in = xcalloc(1, sizeof *in);
	struct dvproto_reply	 r;
	unsigned char		 buf[257];
	char			*line;
	size_t			 len, off, used, i;
	unsigned		 seed = 12345;
	int			 round, rc;

	for (round = 0; round < 20000; round++) {
		seed = seed * 1103515245 + 12345;
		len = (seed >> 16) % sizeof buf;
		for (i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] = (seed >> 16) % 4 == 0 ?
			    (unsigned char)(seed >> 8) :
			    (unsigned char)alphabet[(seed >> 16) %
			    (sizeof alphabet - 1)];
		}
		for (off = 0; off < len; off += used) {
			rc = dvproto_take(in, (char *)buf + off, len - off,
			    &used, &line);
			if (rc == -1) {
				memset(in, 0, sizeof *in);
				break;
			}
			ck_assert_uint_gt(used, 0);
			if (rc == 1 && dvproto_parse(line, &r) == 0 &&
			    r.kind == DVPROTO_CONT)
				ck_assert(dvproto_is_base64(r.data));
			if (rc == 1 && r.user != NULL)
				ck_assert_uint_gt(strlen(r.user), 0);
		}
	}
	free(in);
}
END_TEST

static Suite *
dvproto_suite(void)
{
	Suite	*s = suite_create("dvproto");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_stream_whole);
	tcase_add_test(tc, test_stream_split_everywhere);
	tcase_add_test(tc, test_mech_flags);
	tcase_add_test(tc, test_offered);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_ignored);
	tcase_add_test(tc, test_fail_fields);
	tcase_add_test(tc, test_unescape);
	tcase_add_test(tc, test_take_limits);
	tcase_add_test(tc, test_client_lines);
	tcase_add_test(tc, test_socket);
	tcase_add_test(tc, test_garbage);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(dvproto_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
