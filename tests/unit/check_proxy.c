/*
 * check_proxy.c: the PROXY protocol parser (proxy.c), versions 1 and 2,
 * each good header also fed split at every octet and followed by the
 * client's first octets, and every malformed form refused.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define SIG	"\r\n\r\n\0\r\nQUIT\n"
#define SIGLEN	12

/* One header, the octets after it (the client's), what it must say. */
struct good {
	const char	*name;
	const char	*bytes;
	size_t		 len;		/* of the header alone */
	int		 version;
	enum proxy_command command;
	int		 family;
	int		 stream;
	const char	*src;		/* NULL: no address */
	unsigned	 sport;
	const char	*dst;
	unsigned	 dport;
};

#define V1(s)	s, sizeof(s) - 1

static const struct good good_cases[] = {
	{ "v1 tcp4", V1("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"),
	  1, PROXY_CMD_PROXY, AF_INET, 1, "192.0.2.7", 40000, "198.51.100.1",
	  25 },
	{ "v1 tcp4 longest",
	  V1("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"),
	  1, PROXY_CMD_PROXY, AF_INET, 1, "255.255.255.255", 65535,
	  "255.255.255.255", 65535 },
	{ "v1 tcp4 zeros", V1("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n"), 1,
	  PROXY_CMD_PROXY, AF_INET, 1, "0.0.0.0", 0, "10.0.0.1", 0 },
	{ "v1 tcp6", V1("PROXY TCP6 2001:db8::7 2001:db8::1 50000 587\r\n"),
	  1, PROXY_CMD_PROXY, AF_INET6, 1, "2001:db8::7", 50000,
	  "2001:db8::1", 587 },
	{ "v1 tcp6 longest", V1("PROXY TCP6 "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), 1,
	  PROXY_CMD_PROXY, AF_INET6, 1,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535 },
	{ "v1 unknown", V1("PROXY UNKNOWN\r\n"), 1, PROXY_CMD_PROXY,
	  AF_UNSPEC, 1, NULL, 0, NULL, 0 },
	{ "v1 unknown with fields", V1("PROXY UNKNOWN "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"), 1,
	  PROXY_CMD_PROXY, AF_UNSPEC, 1, NULL, 0, NULL, 0 },
	{ "v2 tcp4", SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x07"
	  "\xc6\x33\x64\x01" "\x9c\x40\x00\x19", SIGLEN + 4 + 12, 2,
	  PROXY_CMD_PROXY, AF_INET, 1, "192.0.2.7", 40000, "198.51.100.1",
	  25 },
	{ "v2 tcp4 with TLVs", SIG "\x21\x11\x00\x17" "\x7f\x00\x00\x02"
	  "\x7f\x00\x00\x01" "\x04\xd2\x09\xc4"
	  "\x04\x00\x04" "abcd" "\x20\x00\x01" "\x01", SIGLEN + 4 + 23, 2,
	  PROXY_CMD_PROXY, AF_INET, 1, "127.0.0.2", 1234, "127.0.0.1",
	  2500 },
	{ "v2 tcp6", SIG "\x21\x21\x00\x24"
	  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	  "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01" "\xc3\x50\x02\x4b",
	  SIGLEN + 4 + 36, 2, PROXY_CMD_PROXY, AF_INET6, 1, "2001:db8::7",
	  50000, "2001:db8::1", 587 },
	{ "v2 local", SIG "\x20\x00\x00\x00", SIGLEN + 4, 2, PROXY_CMD_LOCAL,
	  AF_UNSPEC, 0, NULL, 0, NULL, 0 },
	/* LOCAL: addresses and TLVs are skipped, whatever they say. */
	{ "v2 local with addresses", SIG "\x20\x11\x00\x0f"
	  "\x7f\x00\x00\x01" "\x7f\x00\x00\x01" "\x00\x01\x00\x02" "xyz",
	  SIGLEN + 4 + 15, 2, PROXY_CMD_LOCAL, AF_UNSPEC, 1, NULL, 0, NULL,
	  0 },
	{ "v2 local short length", SIG "\x20\x11\x00\x02" "\x7f\x00",
	  SIGLEN + 4 + 2, 2, PROXY_CMD_LOCAL, AF_UNSPEC, 1, NULL, 0, NULL,
	  0 },
	{ "v2 proxy unspec", SIG "\x21\x00\x00\x03" "abc", SIGLEN + 4 + 3, 2,
	  PROXY_CMD_PROXY, AF_UNSPEC, 0, NULL, 0, NULL, 0 },
	{ "v2 udp4", SIG "\x21\x12\x00\x0c" "\x7f\x00\x00\x02"
	  "\x7f\x00\x00\x01" "\x04\xd2\x09\xc4", SIGLEN + 4 + 12, 2,
	  PROXY_CMD_PROXY, AF_INET, 0, "127.0.0.2", 1234, "127.0.0.1", 2500 },
};

/* The v2 UNIX header is 216 octets of paths: built at run time. */
static size_t
unix_header(unsigned char *buf)
{
	memcpy(buf, SIG, SIGLEN);
	buf[12] = 0x21;
	buf[13] = 0x31;
	buf[14] = 0;
	buf[15] = 216;
	memset(buf + 16, 0, 216);
	memcpy(buf + 16, "/run/client.sock", 16);
	memcpy(buf + 16 + 108, "/run/server.sock", 16);
	return 16 + 216;
}

static void
check_addr(const struct sockaddr_storage *ss, socklen_t len, int family,
    const char *want, unsigned port)
{
	char		 text[INET6_ADDRSTRLEN];
	const void	*ip;
	unsigned	 p;

	ck_assert_int_eq(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		ck_assert_uint_eq(len, sizeof *sin);
		ip = &sin->sin_addr;
		p = ntohs(sin->sin_port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		ck_assert_uint_eq(len, sizeof *sin6);
		ip = &sin6->sin6_addr;
		p = ntohs(sin6->sin6_port);
	}
	ck_assert_ptr_nonnull(inet_ntop(family, ip, text, sizeof text));
	ck_assert_str_eq(text, want);
	ck_assert_uint_eq(p, port);
}

static void
check_good(const struct good *g, const struct proxy_hdr *h)
{
	ck_assert_uint_eq(h->len, g->len);
	ck_assert_int_eq(h->version, g->version);
	ck_assert_int_eq(h->command, g->command);
	ck_assert_int_eq(h->family, g->family);
	ck_assert_int_eq(h->stream, g->stream);
	if (g->src != NULL) {
		check_addr(&h->src, h->srclen, g->family, g->src, g->sport);
		check_addr(&h->dst, h->dstlen, g->family, g->dst, g->dport);
	}
}

/*
 * Fed octet by octet as a reader would see them: every prefix is MORE
 * (and asks for room at least that long), the whole is DONE, and client
 * octets after it change nothing.
 */
static void
feed(const unsigned char *bytes, size_t len, const struct good *g)
{
	unsigned char		 buf[PROXY_V2_FIXED + 512];
	struct proxy_hdr	 h;
	const char		*cause;
	size_t			 i, want;

	for (i = 0; i < len; i++) {
		ck_assert_msg(proxy_parse(bytes, i, &h, &want, &cause) ==
		    PROXY_MORE, "%s: prefix of %zu: %s", g->name, i,
		    cause != NULL ? cause : "done");
		ck_assert_uint_gt(want, i);
	}
	ck_assert_msg(proxy_parse(bytes, len, &h, &want, &cause) ==
	    PROXY_DONE, "%s: %s", g->name, cause != NULL ? cause : "more");
	check_good(g, &h);
	/* The client's EHLO after the header is not part of it. */
	memcpy(buf, bytes, len);
	memcpy(buf + len, "EHLO x\r\n", 8);
	for (i = 1; i <= 8; i++) {
		ck_assert_int_eq(proxy_parse(buf, len + i, &h, &want, &cause),
		    PROXY_DONE);
		check_good(g, &h);
	}
}

START_TEST(test_good)
{
	const struct good	*g = &good_cases[_i];

	feed((const unsigned char *)g->bytes, g->len, g);
}
END_TEST

START_TEST(test_unix)
{
	unsigned char		buf[PROXY_V2_FIXED + 216];
	struct good		g = { "v2 unix", NULL, 0, 2, PROXY_CMD_PROXY,
				    AF_UNIX, 1, NULL, 0, NULL, 0 };

	g.len = unix_header(buf);
	feed(buf, g.len, &g);
}
END_TEST

/* A v2 header as long as it may be: 65535 octets of TLVs after it. */
START_TEST(test_v2_longest)
{
	unsigned char		*buf;
	struct proxy_hdr	 h;
	const char		*cause;
	size_t			 want;

	buf = calloc(1, PROXY_V2_MAX + 8);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, SIG "\x21\x11\xff\xff", 16);
	ck_assert_int_eq(proxy_parse(buf, 16, &h, &want, &cause), PROXY_MORE);
	ck_assert_uint_eq(want, PROXY_V2_MAX);
	ck_assert_int_eq(proxy_parse(buf, PROXY_V2_MAX - 1, &h, &want,
	    &cause), PROXY_MORE);
	ck_assert_int_eq(proxy_parse(buf, PROXY_V2_MAX + 8, &h, &want,
	    &cause), PROXY_DONE);
	ck_assert_uint_eq(h.len, PROXY_V2_MAX);
	ck_assert_int_eq(h.family, AF_INET);
	free(buf);
}
END_TEST

/* Refused, at the latest once the whole of it has been given. */
static const struct {
	const char	*name;
	const char	*bytes;
	size_t		 len;
} bad_cases[] = {
	{ "SMTP instead", V1("EHLO client.example\r\n") },
	{ "blank lines", V1("\r\n\r\n\r\n") },
	{ "lowercase", V1("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n") },
	{ "no space after PROXY", V1("PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n") },
	{ "v1 bare LF", V1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n") },
	{ "v1 bare CR", V1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX") },
	{ "v1 LF inside", V1("PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n") },
	{ "v1 NUL inside", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 34 },
	{ "v1 too long", V1("PROXY UNKNOWN "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n") },
	{ "v1 no CRLF in 107", V1("PROXY UNKNOWN "
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") },
	{ "v1 unknown protocol", V1("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n") },
	{ "v1 UNKNOWNX", V1("PROXY UNKNOWNX\r\n") },
	{ "v1 nothing", V1("PROXY \r\n") },
	{ "v1 protocol only", V1("PROXY TCP4\r\n") },
	{ "v1 four fields", V1("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") },
	{ "v1 six fields", V1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") },
	{ "v1 trailing space", V1("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n") },
	{ "v1 two spaces", V1("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n") },
	{ "v1 tab", V1("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n") },
	{ "v1 tcp4 with v6", V1("PROXY TCP4 ::1 5.6.7.8 1 2\r\n") },
	{ "v1 tcp6 with v4", V1("PROXY TCP6 1.2.3.4 ::1 1 2\r\n") },
	{ "v1 tcp6 mixed", V1("PROXY TCP6 ::1 5.6.7.8 1 2\r\n") },
	{ "v1 octet too big", V1("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n") },
	{ "v1 three octets", V1("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n") },
	{ "v1 heading zero address",
	  V1("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n") },
	{ "v1 hostname", V1("PROXY TCP4 mx.example 5.6.7.8 1 2\r\n") },
	{ "v1 port too big", V1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n") },
	{ "v1 port heading zero", V1("PROXY TCP4 1.2.3.4 5.6.7.8 025 2\r\n") },
	{ "v1 port sign", V1("PROXY TCP4 1.2.3.4 5.6.7.8 +25 2\r\n") },
	{ "v1 port negative", V1("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n") },
	{ "v1 port hex", V1("PROXY TCP4 1.2.3.4 5.6.7.8 0x19 2\r\n") },
	{ "v1 port empty", V1("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n") },
	{ "v1 port long", V1("PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n") },
	{ "v2 wrong signature", "\r\n\r\n\0\r\nQUIX\n\x21\x11\0\x0c", 16 },
	{ "v2 signature cut by CRLF", V1("\r\n\r\nQUIT\r\n") },
	{ "v2 version 1", SIG "\x11\x11\x00\x0c" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0\x02", 28 },
	{ "v2 version 3", SIG "\x31\x11\x00\x0c" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0\x02", 28 },
	{ "v2 command 2", SIG "\x22\x11\x00\x0c" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0\x02", 28 },
	{ "v2 command 15", SIG "\x2f\x00\x00\x00", 16 },
	{ "v2 family 4", SIG "\x21\x41\x00\x0c" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0\x02", 28 },
	{ "v2 transport 3", SIG "\x21\x13\x00\x0c" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0\x02", 28 },
	{ "v2 inet unspec transport", SIG "\x21\x10\x00\x0c"
	  "\x7f\0\0\x01\x7f\0\0\x01" "\0\x01\0\x02", 28 },
	{ "v2 unspec stream", SIG "\x21\x01\x00\x00", 16 },
	{ "v2 tcp4 short", SIG "\x21\x11\x00\x0b" "\x7f\0\0\x01\x7f\0\0\x01"
	  "\0\x01\0", 27 },
	{ "v2 tcp4 empty", SIG "\x21\x11\x00\x00", 16 },
	{ "v2 tcp6 with tcp4 length", SIG "\x21\x21\x00\x0c"
	  "\x7f\0\0\x01\x7f\0\0\x01" "\0\x01\0\x02", 28 },
	{ "v2 unix short", SIG "\x21\x31\x00\x6c", 16 },
};

START_TEST(test_bad)
{
	const unsigned char	*b = (const unsigned char *)bad_cases[_i].bytes;
	size_t			 len = bad_cases[_i].len, i, want;
	struct proxy_hdr	 h;
	const char		*cause;
	enum proxy_result	 r = PROXY_MORE;

	for (i = 0; i <= len && r == PROXY_MORE; i++)
		r = proxy_parse(b, i, &h, &want, &cause);
	ck_assert_msg(r == PROXY_ERROR, "%s: %s", bad_cases[_i].name,
	    r == PROXY_DONE ? "accepted" : "still waiting");
	ck_assert_ptr_nonnull(cause);
}
END_TEST

/* Truncated: every proper prefix of a good header only waits. */
START_TEST(test_truncated)
{
	const struct good	*g = &good_cases[_i];
	struct proxy_hdr	 h;
	const char		*cause;
	size_t			 want;

	ck_assert_int_eq(proxy_parse((const unsigned char *)g->bytes,
	    g->len - 1, &h, &want, &cause), PROXY_MORE);
	ck_assert_uint_ge(want, g->len - 1);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("proxy");
	TCase	*tc = tcase_create("proxy");
	SRunner	*sr;
	int	 failed;

	tcase_add_loop_test(tc, test_good, 0,
	    (int)(sizeof good_cases / sizeof good_cases[0]));
	tcase_add_loop_test(tc, test_truncated, 0,
	    (int)(sizeof good_cases / sizeof good_cases[0]));
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_v2_longest);
	tcase_add_loop_test(tc, test_bad, 0,
	    (int)(sizeof bad_cases / sizeof bad_cases[0]));
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
