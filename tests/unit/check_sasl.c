/*
 * check_sasl.c: SMTP AUTH's server side.  Base64 against RFC 4648's
 * vectors and OpenSSL's encoder; PLAIN, LOGIN and CRAM-MD5 exchanges from
 * the RFCs and malformed ones; "*" and broken base64 fed at every step of
 * every exchange; size limits at their boundaries; CRAM-MD5 with RFC
 * 2195's example and with random challenges answered as a client would.
 * Client lines written as plain text here are encoded with OpenSSL, not
 * with the module under test.
 */
#include "autoconf.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sasl.h"
#include "util.h"

/* A literal with its length, NULs included. */
#define B(s)	s, sizeof(s) - 1

/* RFC 2195 section 2. */
#define RFC2195_CHALLENGE	"<1896.697170952@postoffice.reston.mci.net>"
#define RFC2195_CHALLENGE64	\
    "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
#define RFC2195_RESPONSE64	\
    "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
#define RFC2195_SECRET		"tanstaaftanstaaf"
#define RFC2195_DIGEST		"b913a602c7eda7a495b4e6e7334d3890"

#define LOGIN_USER64	"VXNlcm5hbWU6"
#define LOGIN_PASS64	"UGFzc3dvcmQ6"

/* Buffers of exactly the size asked for, so ASan sees any overrun. */
static char *
exact(size_t size)
{
	return xmalloc(size == 0 ? 1 : size);
}

/* Base64 by OpenSSL, for what the client sends. */
static char *
ref_encode(const char *data, size_t len)
{
	char	*out = xmalloc((len + 2) / 3 * 4 + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data,
	    (int)len);
	return out;
}

/* RFC 4648 section 10. */
static const struct {
	const char	*data;
	size_t		 len;
	const char	*b64;
} vectors[] = {
	{ B(""), "" },
	{ B("f"), "Zg==" },
	{ B("fo"), "Zm8=" },
	{ B("foo"), "Zm9v" },
	{ B("foob"), "Zm9vYg==" },
	{ B("fooba"), "Zm9vYmE=" },
	{ B("foobar"), "Zm9vYmFy" },
	{ B("\0"), "AA==" },
	{ B("\0\0\0"), "AAAA" },
	{ B("\xff\xfe\xfd"), "//79" },
	{ B("\xfb\xff"), "+/8=" },
};

START_TEST(test_b64_encode)
{
	size_t	 size = strlen(vectors[_i].b64) + 1;
	char	*out = exact(size);

	ck_assert_int_eq(sasl_b64_encode(vectors[_i].data, vectors[_i].len,
	    out, size), 0);
	ck_assert_str_eq(out, vectors[_i].b64);
	free(out);
}
END_TEST

START_TEST(test_b64_decode)
{
	size_t	 size = vectors[_i].len + 1, len = 12345;
	char	*out = exact(size);

	ck_assert_int_eq(sasl_b64_decode(vectors[_i].b64, out, size, &len),
	    0);
	ck_assert_uint_eq(len, vectors[_i].len);
	ck_assert_mem_eq(out, vectors[_i].data, len);
	ck_assert_int_eq(out[len], '\0');
	free(out);
}
END_TEST

static const char *bad_b64[] = {
	"Z", "Zg", "Zg=", "Zm9vY", "Zm9vYg=", "Zg===",	/* wrong length */
	"Zm9v!A==", "Zm 9", "Zm9\n", "Zm9v\r\n", " Zm9", "Zm9v\t",
	"-_8A", "Zm9v.A==", "Zm\xc3\xa4",		/* bad characters */
	"====", "Z===", "=Zg=", "Zg==Zg==", "Zm=v", "Zg=a", "Zm9v=AAA",
	"Zh==", "Zm9=", "Zm//Zm/=", "AB==",		/* bits under padding */
	"*", "=",
};

START_TEST(test_b64_bad)
{
	char	out[64];
	size_t	len = 12345;

	memset(out, 'x', sizeof out);
	ck_assert_msg(sasl_b64_decode(bad_b64[_i], out, sizeof out, &len) ==
	    -1, "\"%s\" accepted", bad_b64[_i]);
	ck_assert_uint_eq(len, 12345);
}
END_TEST

/* A failed decode leaves nothing of what it decoded before the error. */
START_TEST(test_b64_bad_wiped)
{
	char	out[16];
	size_t	len, i;

	memset(out, 'x', sizeof out);
	ck_assert_int_eq(sasl_b64_decode("Zm9vYmFy!A==", out, sizeof out,
	    &len), -1);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(out[i], '\0');
}
END_TEST

/* Room: the output and its NUL, no more, no less. */
static const struct {
	int		 decode;
	const char	*in;
	size_t		 len;
	size_t		 size;
	int		 rc;
} rooms[] = {
	{ 0, B(""), 0, -1 },
	{ 0, B(""), 1, 0 },
	{ 0, B("f"), 4, -1 },
	{ 0, B("f"), 5, 0 },
	{ 0, B("foo"), 4, -1 },
	{ 0, B("foo"), 5, 0 },
	{ 0, B("foob"), 8, -1 },
	{ 0, B("foob"), 9, 0 },
	{ 1, B(""), 0, -1 },
	{ 1, B(""), 1, 0 },
	{ 1, B("Zg=="), 1, -1 },
	{ 1, B("Zg=="), 2, 0 },
	{ 1, B("Zm9v"), 3, -1 },
	{ 1, B("Zm9v"), 4, 0 },
	{ 1, B("Zm9vYmE="), 5, -1 },
	{ 1, B("Zm9vYmE="), 6, 0 },
};

START_TEST(test_b64_room)
{
	char	*out = exact(rooms[_i].size);
	size_t	 len;
	int	 rc;

	if (rooms[_i].decode)
		rc = sasl_b64_decode(rooms[_i].in, out, rooms[_i].size, &len);
	else
		rc = sasl_b64_encode(rooms[_i].in, rooms[_i].len, out,
		    rooms[_i].size);
	ck_assert_msg(rc == rooms[_i].rc, "%s \"%s\" in %zu: %d",
	    rooms[_i].decode ? "decode" : "encode", rooms[_i].in,
	    rooms[_i].size, rc);
	free(out);
}
END_TEST

/* Every length up to 300 of pseudo-random octets, against OpenSSL. */
START_TEST(test_b64_round_trip)
{
	uint32_t	 seed = 2463534242U;
	unsigned char	 data[300];
	char		*ref, *enc, *dec;
	size_t		 len, i, n;

	for (len = 0; len <= sizeof data; len++) {
		for (i = 0; i < len; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			data[i] = seed & 0xff;
		}
		ref = ref_encode((char *)data, len);
		enc = exact(strlen(ref) + 1);
		ck_assert_int_eq(sasl_b64_encode(data, len, enc,
		    strlen(ref) + 1), 0);
		ck_assert_str_eq(enc, ref);
		dec = exact(len + 1);
		ck_assert_int_eq(sasl_b64_decode(enc, dec, len + 1, &n), 0);
		ck_assert_uint_eq(n, len);
		ck_assert_mem_eq(dec, data, len);
		free(ref);
		free(enc);
		free(dec);
	}
}
END_TEST

static const struct {
	const char	*name;
	int		 rc;
	enum sasl_mech	 mech;
	const char	*str;
} mechs[] = {
	{ "PLAIN", 0, SASL_MECH_PLAIN, "PLAIN" },
	{ "plain", 0, SASL_MECH_PLAIN, "PLAIN" },
	{ "Login", 0, SASL_MECH_LOGIN, "LOGIN" },
	{ "CRAM-MD5", 0, SASL_MECH_CRAM_MD5, "CRAM-MD5" },
	{ "cram-md5", 0, SASL_MECH_CRAM_MD5, "CRAM-MD5" },
	{ "CRAM", -1, 0, NULL },
	{ "CRAM-MD5X", -1, 0, NULL },
	{ "PLAI", -1, 0, NULL },
	{ "PLAIN ", -1, 0, NULL },
	{ "DIGEST-MD5", -1, 0, NULL },
	{ "XOAUTH2", -1, 0, NULL },
	{ "", -1, 0, NULL },
};

START_TEST(test_mechs)
{
	enum sasl_mech	mech = (enum sasl_mech)-1;

	ck_assert_int_eq(sasl_mech_parse(mechs[_i].name, &mech),
	    mechs[_i].rc);
	if (mechs[_i].rc == 0) {
		ck_assert_int_eq(mech, mechs[_i].mech);
		ck_assert_str_eq(sasl_mech_str(mech), mechs[_i].str);
	}
}
END_TEST

/* What a client sends at one step. */
enum input_kind {
	IN_END,		/* no more steps */
	IN_NONE,	/* no initial response: NULL */
	IN_LINE,	/* the line as written */
	IN_RAW,		/* the octets, base64-encoded by OpenSSL */
};

struct input {
	enum input_kind	 kind;
	const char	*data;
	size_t		 len;
};

#define NONE		{ IN_NONE, NULL, 0 }
#define LINE(s)		{ IN_LINE, s, 0 }
#define RAW(s)		{ IN_RAW, s, sizeof(s) - 1 }

static char *
input_line(const struct input *in)
{
	switch (in->kind) {
	case IN_NONE:
		return NULL;
	case IN_LINE:
		return xstrdup(in->data);
	case IN_RAW:
		return ref_encode(in->data, in->len);
	default:
		ck_abort_msg("no input");
	}
	return NULL;
}

struct step {
	struct input		 in;
	enum sasl_result	 want;
	const char		*out;	/* for SASL_CONTINUE */
};

static const char *
result_str(enum sasl_result r)
{
	static const char	*names[] = {
		[SASL_CONTINUE] = "CONTINUE",
		[SASL_DONE] = "DONE",
		[SASL_CANCEL] = "CANCEL",
		[SASL_BAD] = "BAD",
	};

	if ((size_t)r < nitems(names))
		return names[r];
	return "?";
}

#define S(in, want, out)	{ in, SASL_ ## want, out }
#define NOTHING			NULL, NULL, NULL, NULL, 0

static const struct {
	const char	*name;
	enum sasl_mech	 mech;
	const char	*challenge;	/* CRAM-MD5: instead of a random one */
	struct step	 steps[4];
	const char	*user;		/* after SASL_DONE */
	const char	*pass;
	const char	*authzid;
	const char	*secret;	/* CRAM-MD5 */
	int		 verify;
} exchanges[] = {
	/* PLAIN, RFC 4616 section 4. */
	{ "plain rfc4616", SASL_MECH_PLAIN, NULL,
	    { S(LINE("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), DONE, NULL) },
	    "tim", "tanstaaftanstaaf", "", NULL, 0 },
	{ "plain rfc4616 authzid", SASL_MECH_PLAIN, NULL,
	    { S(RAW("Ursel\0Kurt\0xipj3plmq"), DONE, NULL) },
	    "Kurt", "xipj3plmq", "Ursel", NULL, 0 },
	{ "plain authzid same", SASL_MECH_PLAIN, NULL,
	    { S(RAW("tim\0tim\0pw"), DONE, NULL) },
	    "tim", "pw", "tim", NULL, 0 },
	{ "plain no initial response", SASL_MECH_PLAIN, NULL,
	    { S(NONE, CONTINUE, ""),
	      S(RAW("\0alice@example.org\0s3cr3t pass \xc3\xa4"), DONE,
	      NULL) },
	    "alice@example.org", "s3cr3t pass \xc3\xa4", "", NULL, 0 },
	{ "plain 8-bit", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0\xff\x01\0\x80 \x7f"), DONE, NULL) },
	    "\xff\x01", "\x80 \x7f", "", NULL, 0 },
	{ "plain = empty", SASL_MECH_PLAIN, NULL,
	    { S(LINE("="), BAD, NULL) },
	    NOTHING },
	{ "plain empty line", SASL_MECH_PLAIN, NULL,
	    { S(NONE, CONTINUE, ""), S(LINE(""), BAD, NULL) },
	    NOTHING },
	{ "plain empty initial response", SASL_MECH_PLAIN, NULL,
	    { S(LINE(""), BAD, NULL) },
	    NOTHING },
	{ "plain = after challenge", SASL_MECH_PLAIN, NULL,
	    { S(NONE, CONTINUE, ""), S(LINE("="), BAD, NULL) },
	    NOTHING },
	{ "plain empty authcid", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0\0pw"), BAD, NULL) },
	    NOTHING },
	{ "plain authzid, empty authcid", SASL_MECH_PLAIN, NULL,
	    { S(RAW("tim\0\0pw"), BAD, NULL) },
	    NOTHING },
	{ "plain empty password", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0tim\0"), BAD, NULL) },
	    NOTHING },
	{ "plain all empty", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0\0"), BAD, NULL) },
	    NOTHING },
	{ "plain one NUL", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0timpw"), BAD, NULL) },
	    NOTHING },
	{ "plain no NUL", SASL_MECH_PLAIN, NULL,
	    { S(RAW("timpw"), BAD, NULL) },
	    NOTHING },
	{ "plain NUL in password", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0tim\0p\0w"), BAD, NULL) },
	    NOTHING },
	{ "plain NUL at end", SASL_MECH_PLAIN, NULL,
	    { S(RAW("\0tim\0pw\0"), BAD, NULL) },
	    NOTHING },
	{ "plain bad base64", SASL_MECH_PLAIN, NULL,
	    { S(LINE("AHRpbQB0YW5zdGFhZnRhbnN0YWFm="), BAD, NULL) },
	    NOTHING },

	/* LOGIN. */
	{ "login", SASL_MECH_LOGIN, NULL,
	    { S(NONE, CONTINUE, LOGIN_USER64),
	      S(LINE("dGlt"), CONTINUE, LOGIN_PASS64),
	      S(LINE("dGFuc3RhYWZ0YW5zdGFhZg=="), DONE, NULL) },
	    "tim", "tanstaaftanstaaf", "", NULL, 0 },
	{ "login initial response", SASL_MECH_LOGIN, NULL,
	    { S(RAW("bob@example.org"), CONTINUE, LOGIN_PASS64),
	      S(RAW("pass word"), DONE, NULL) },
	    "bob@example.org", "pass word", "", NULL, 0 },
	{ "login = empty user", SASL_MECH_LOGIN, NULL,
	    { S(LINE("="), BAD, NULL) },
	    NOTHING },
	{ "login empty user", SASL_MECH_LOGIN, NULL,
	    { S(NONE, CONTINUE, LOGIN_USER64), S(LINE(""), BAD, NULL) },
	    NOTHING },
	{ "login empty password", SASL_MECH_LOGIN, NULL,
	    { S(NONE, CONTINUE, LOGIN_USER64),
	      S(RAW("tim"), CONTINUE, LOGIN_PASS64),
	      S(LINE(""), BAD, NULL) },
	    NOTHING },
	{ "login = password", SASL_MECH_LOGIN, NULL,
	    { S(RAW("tim"), CONTINUE, LOGIN_PASS64),
	      S(LINE("="), BAD, NULL) },
	    NOTHING },
	{ "login NUL in user", SASL_MECH_LOGIN, NULL,
	    { S(NONE, CONTINUE, LOGIN_USER64), S(RAW("ti\0m"), BAD, NULL) },
	    NOTHING },
	{ "login NUL in password", SASL_MECH_LOGIN, NULL,
	    { S(RAW("tim"), CONTINUE, LOGIN_PASS64),
	      S(RAW("\0pw"), BAD, NULL) },
	    NOTHING },

	/* CRAM-MD5, RFC 2195 section 2. */
	{ "cram rfc2195", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(LINE(RFC2195_RESPONSE64), DONE, NULL) },
	    "tim", "", "", RFC2195_SECRET, 1 },
	{ "cram uppercase hex", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim B913A602C7EDA7A495B4E6E7334D3890"), DONE, NULL) },
	    "tim", "", "", RFC2195_SECRET, 1 },
	{ "cram user with spaces", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim  smith " RFC2195_DIGEST), DONE, NULL) },
	    "tim  smith", "", "", RFC2195_SECRET, 1 },
	{ "cram wrong digest", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim b913a602c7eda7a495b4e6e7334d3891"), DONE, NULL) },
	    "tim", "", "", RFC2195_SECRET, 0 },
	{ "cram wrong secret", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(LINE(RFC2195_RESPONSE64), DONE, NULL) },
	    "tim", "", "", "tanstaaftanstaag", 0 },
	{ "cram secret a prefix", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(LINE(RFC2195_RESPONSE64), DONE, NULL) },
	    "tim", "", "", "tanstaaf", 0 },
	{ "cram initial response", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(LINE(RFC2195_RESPONSE64), BAD, NULL) },
	    NOTHING },
	{ "cram = initial response", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(LINE("="), BAD, NULL) },
	    NOTHING },
	{ "cram empty response", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(LINE(""), BAD, NULL) },
	    NOTHING },
	{ "cram digest only", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW(RFC2195_DIGEST), BAD, NULL) },
	    NOTHING },
	{ "cram empty user", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW(" " RFC2195_DIGEST), BAD, NULL) },
	    NOTHING },
	{ "cram no space", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim" RFC2195_DIGEST), BAD, NULL) },
	    NOTHING },
	{ "cram short digest", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim b913a602c7eda7a495b4e6e7334d389"), BAD, NULL) },
	    NOTHING },
	{ "cram long digest", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim " RFC2195_DIGEST "0"), BAD, NULL) },
	    NOTHING },
	{ "cram non-hex digest", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim b913a602c7eda7a495b4e6e7334d389g"), BAD, NULL) },
	    NOTHING },
	{ "cram trailing space", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim " RFC2195_DIGEST " "), BAD, NULL) },
	    NOTHING },
	{ "cram NUL in user", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("t\0m " RFC2195_DIGEST), BAD, NULL) },
	    NOTHING },
	{ "cram NUL in digest", SASL_MECH_CRAM_MD5, RFC2195_CHALLENGE,
	    { S(NONE, CONTINUE, RFC2195_CHALLENGE64),
	      S(RAW("tim b913a602c7eda7a495b4e6e7334d389\0"), BAD, NULL) },
	    NOTHING },
};

/* After SASL_CANCEL or SASL_BAD nothing the client sent is left. */
static void
assert_wiped(const struct sasl *s)
{
	size_t	i;

	ck_assert_str_eq(sasl_user(s), "");
	ck_assert_str_eq(sasl_password(s), "");
	ck_assert_str_eq(sasl_authzid(s), "");
	for (i = 0; i < sizeof s->digest; i++)
		ck_assert_int_eq(s->digest[i], 0);
	ck_assert_int_eq(sasl_cram_verify(s, B(RFC2195_SECRET)), 0);
}

START_TEST(test_exchanges)
{
	struct sasl		 s;
	const struct step	*st;
	char			 out[SASL_OUT_SIZE], *line;
	enum sasl_result	 r = SASL_CONTINUE;
	size_t			 i;

	sasl_start(&s, exchanges[_i].mech, "mx.example.org");
	if (exchanges[_i].challenge != NULL)
		ck_assert_int_eq(sasl_set_challenge(&s,
		    exchanges[_i].challenge), 0);
	for (i = 0; r == SASL_CONTINUE; i++) {
		st = &exchanges[_i].steps[i];
		ck_assert_msg(st->in.kind != IN_END, "%s: steps run out",
		    exchanges[_i].name);
		line = input_line(&st->in);
		memset(out, 'x', sizeof out);
		r = sasl_step(&s, line, out, sizeof out);
		ck_assert_msg(r == st->want, "%s: step %zu: %s, not %s",
		    exchanges[_i].name, i, result_str(r),
		    result_str(st->want));
		if (r == SASL_CONTINUE)
			ck_assert_str_eq(out, st->out);
		else
			ck_assert_str_eq(out, "");
		free(line);
	}
	ck_assert_msg(exchanges[_i].steps[i].in.kind == IN_END,
	    "%s: ended early", exchanges[_i].name);

	if (r != SASL_DONE) {
		assert_wiped(&s);
		return;
	}
	ck_assert_str_eq(sasl_user(&s), exchanges[_i].user);
	ck_assert_str_eq(sasl_password(&s), exchanges[_i].pass);
	ck_assert_str_eq(sasl_authzid(&s), exchanges[_i].authzid);
	if (exchanges[_i].mech == SASL_MECH_CRAM_MD5)
		ck_assert_int_eq(sasl_cram_verify(&s, exchanges[_i].secret,
		    strlen(exchanges[_i].secret)), exchanges[_i].verify);
	else
		ck_assert_int_eq(sasl_cram_verify(&s, B("pw")), 0);
	sasl_clear(&s);
}
END_TEST

/* Good exchanges, each line of which is replaced in turn by a bad one. */
static const struct {
	const char	*name;
	enum sasl_mech	 mech;
	struct input	 in[4];
} flows[] = {
	{ "plain ir", SASL_MECH_PLAIN, { RAW("\0tim\0pw") } },
	{ "plain", SASL_MECH_PLAIN, { NONE, RAW("\0tim\0pw") } },
	{ "login", SASL_MECH_LOGIN, { NONE, RAW("tim"), RAW("pw") } },
	{ "login ir", SASL_MECH_LOGIN, { RAW("tim"), RAW("pw") } },
	{ "cram", SASL_MECH_CRAM_MD5, { NONE, LINE(RFC2195_RESPONSE64) } },
};

/*
 * Run flows[flow], line at replaced by bad; the steps before it must
 * continue and the bad one give want.  Returns the number of steps.
 */
static size_t
run_flow(size_t flow, size_t at, const char *bad, enum sasl_result want)
{
	struct sasl		 s;
	char			 out[SASL_OUT_SIZE], *line;
	enum sasl_result	 r;
	size_t			 i;

	sasl_start(&s, flows[flow].mech, "mx.example.org");
	for (i = 0; flows[flow].in[i].kind != IN_END; i++) {
		line = i == at ? xstrdup(bad) : input_line(&flows[flow].in[i]);
		r = sasl_step(&s, line, out, sizeof out);
		free(line);
		if (i == at) {
			ck_assert_msg(r == want, "%s: step %zu \"%.20s\": %s",
			    flows[flow].name, i, bad, result_str(r));
			ck_assert_str_eq(out, "");
			assert_wiped(&s);
			return i + 1;
		}
		if (flows[flow].in[i + 1].kind == IN_END)
			ck_assert_int_eq(r, SASL_DONE);
		else
			ck_assert_int_eq(r, SASL_CONTINUE);
	}
	sasl_clear(&s);
	return i;
}

START_TEST(test_cancel_every_step)
{
	size_t	at, n;

	n = run_flow(_i, SIZE_MAX, NULL, SASL_DONE);
	ck_assert_uint_gt(n, 0);
	for (at = 0; at < n; at++)
		ck_assert_uint_eq(run_flow(_i, at, "*", SASL_CANCEL), at + 1);
}
END_TEST

START_TEST(test_bad_every_step)
{
	char	*longline;
	size_t	 at, n, i;

	/* Valid base64, but longer than any line accepted. */
	longline = xmalloc(SASL_LINE_MAX + 5);
	memset(longline, 'A', SASL_LINE_MAX + 4);
	longline[SASL_LINE_MAX + 4] = '\0';

	n = run_flow(_i, SIZE_MAX, NULL, SASL_DONE);
	for (at = 0; at < n; at++) {
		for (i = 0; i < nitems(bad_b64); i++) {
			if (strcmp(bad_b64[i], "*") == 0)
				continue;
			run_flow(_i, at, bad_b64[i], SASL_BAD);
		}
		run_flow(_i, at, "", SASL_BAD);
		run_flow(_i, at, "**", SASL_BAD);
		run_flow(_i, at, longline, SASL_BAD);
		longline[SASL_LINE_MAX] = '\0';
		run_flow(_i, at, longline, SASL_BAD);
		longline[SASL_LINE_MAX] = 'A';
	}
	free(longline);
}
END_TEST

/* Values at the edge of their buffers: 255 octets fit, 256 do not. */
enum field { F_USER, F_PASS, F_AUTHZID };

static const struct {
	enum sasl_mech	 mech;
	enum field	 field;
	size_t		 len;
	enum sasl_result want;
} sizes[] = {
	{ SASL_MECH_PLAIN, F_USER, SASL_USER_SIZE - 1, SASL_DONE },
	{ SASL_MECH_PLAIN, F_USER, SASL_USER_SIZE, SASL_BAD },
	{ SASL_MECH_PLAIN, F_PASS, SASL_PASS_SIZE - 1, SASL_DONE },
	{ SASL_MECH_PLAIN, F_PASS, SASL_PASS_SIZE, SASL_BAD },
	{ SASL_MECH_PLAIN, F_AUTHZID, SASL_USER_SIZE - 1, SASL_DONE },
	{ SASL_MECH_PLAIN, F_AUTHZID, SASL_USER_SIZE, SASL_BAD },
	{ SASL_MECH_LOGIN, F_USER, SASL_USER_SIZE - 1, SASL_DONE },
	{ SASL_MECH_LOGIN, F_USER, SASL_USER_SIZE, SASL_BAD },
	{ SASL_MECH_LOGIN, F_PASS, SASL_PASS_SIZE - 1, SASL_DONE },
	{ SASL_MECH_LOGIN, F_PASS, SASL_PASS_SIZE, SASL_BAD },
	{ SASL_MECH_CRAM_MD5, F_USER, SASL_USER_SIZE - 1, SASL_DONE },
	{ SASL_MECH_CRAM_MD5, F_USER, SASL_USER_SIZE, SASL_BAD },
};

START_TEST(test_sizes)
{
	struct sasl		 s;
	char			 user[1024], pass[1024], authzid[1024];
	char			 data[4096], out[SASL_OUT_SIZE], *line;
	enum sasl_result	 r;
	size_t			 len;

	strcpy(user, "u");
	strcpy(pass, "p");
	strcpy(authzid, "");
	switch (sizes[_i].field) {
	case F_USER:
		memset(user, 'u', sizes[_i].len);
		user[sizes[_i].len] = '\0';
		break;
	case F_PASS:
		memset(pass, 'p', sizes[_i].len);
		pass[sizes[_i].len] = '\0';
		break;
	case F_AUTHZID:
		memset(authzid, 'z', sizes[_i].len);
		authzid[sizes[_i].len] = '\0';
		break;
	}

	sasl_start(&s, sizes[_i].mech, "mx.example.org");
	switch (sizes[_i].mech) {
	case SASL_MECH_PLAIN:
		len = (size_t)snprintf(data, sizeof data, "%s%c%s%c%s",
		    authzid, '\0', user, '\0', pass);
		line = ref_encode(data, len);
		r = sasl_step(&s, line, out, sizeof out);
		break;
	case SASL_MECH_LOGIN:
		line = ref_encode(user, strlen(user));
		r = sasl_step(&s, line, out, sizeof out);
		free(line);
		line = NULL;
		if (r != SASL_CONTINUE)
			break;
		line = ref_encode(pass, strlen(pass));
		r = sasl_step(&s, line, out, sizeof out);
		break;
	default:
		ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out),
		    SASL_CONTINUE);
		len = (size_t)snprintf(data, sizeof data, "%s %s", user,
		    RFC2195_DIGEST);
		line = ref_encode(data, len);
		r = sasl_step(&s, line, out, sizeof out);
		break;
	}
	free(line);
	ck_assert_int_eq(r, sizes[_i].want);
	if (r == SASL_DONE) {
		ck_assert_str_eq(sasl_user(&s), user);
		if (sizes[_i].mech != SASL_MECH_CRAM_MD5)
			ck_assert_str_eq(sasl_password(&s), pass);
		ck_assert_str_eq(sasl_authzid(&s), authzid);
	} else
		assert_wiped(&s);
}
END_TEST

/* The client's answer to a challenge, as a CRAM-MD5 client computes it. */
static char *
cram_answer(const char *challenge, const char *user, const char *secret,
    size_t secretlen)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen, i;
	char		text[512];
	int		n;

	ck_assert_ptr_nonnull(HMAC(EVP_md5(), secretlen ? secret : "x",
	    (int)secretlen, (const unsigned char *)challenge,
	    strlen(challenge), md, &mdlen));
	ck_assert_uint_eq(mdlen, 16);
	n = snprintf(text, sizeof text, "%s ", user);
	for (i = 0; i < mdlen; i++)
		n += snprintf(text + n, sizeof text - n, "%02x", md[i]);
	return ref_encode(text, (size_t)n);
}

/* Decode a challenge with OpenSSL and check its form. */
static void
cram_challenge(const char *out, const char *host, time_t t0, char *text,
    size_t size)
{
	unsigned char	 buf[SASL_OUT_SIZE];
	size_t		 len, i;
	const char	*p;
	char		*end, want[512];
	long long	 t;
	int		 n;

	len = strlen(out);
	n = EVP_DecodeBlock(buf, (const unsigned char *)out, (int)len);
	ck_assert_int_ge(n, 0);
	if (len >= 1 && out[len - 1] == '=')
		n--;
	if (len >= 2 && out[len - 2] == '=')
		n--;
	ck_assert_uint_lt((size_t)n, size);
	memcpy(text, buf, n);
	text[n] = '\0';

	/* "<" 32 lowercase hex "." time "@" host ">" */
	ck_assert_int_eq(text[0], '<');
	for (i = 1; i <= 32; i++)
		ck_assert_msg(strchr("0123456789abcdef", text[i]) != NULL &&
		    text[i] != '\0', "challenge \"%s\"", text);
	ck_assert_int_eq(text[33], '.');
	p = text + 34;
	t = strtoll(p, &end, 10);
	ck_assert_ptr_ne(end, p);
	ck_assert_int_ge(t, (long long)t0);
	ck_assert_int_le(t, (long long)time(NULL));
	snprintf(want, sizeof want, "@%s>", host);
	ck_assert_str_eq(end, want);
}

/* Random challenges: unique, well formed, answerable like RFC 2195's. */
START_TEST(test_cram_random)
{
	struct sasl	s1, s2;
	char		out1[SASL_OUT_SIZE], out2[SASL_OUT_SIZE];
	char		c1[SASL_OUT_SIZE], c2[SASL_OUT_SIZE], *line;
	time_t		t0 = time(NULL);

	sasl_start(&s1, SASL_MECH_CRAM_MD5, "mx.example.org");
	sasl_start(&s2, SASL_MECH_CRAM_MD5, "mx.example.org");
	ck_assert_int_eq(sasl_step(&s1, NULL, out1, sizeof out1),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s2, NULL, out2, sizeof out2),
	    SASL_CONTINUE);
	cram_challenge(out1, "mx.example.org", t0, c1, sizeof c1);
	cram_challenge(out2, "mx.example.org", t0, c2, sizeof c2);
	ck_assert_str_ne(c1, c2);

	line = cram_answer(c1, "alice@example.org", B("alice's secret"));
	ck_assert_int_eq(sasl_step(&s1, line, out1, sizeof out1), SASL_DONE);
	free(line);
	ck_assert_str_eq(sasl_user(&s1), "alice@example.org");
	ck_assert_int_eq(sasl_cram_verify(&s1, B("alice's secret")), 1);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("alice's secreT")), 0);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("")), 0);

	/* The same answer does not fit the other challenge. */
	line = cram_answer(c1, "alice@example.org", B("alice's secret"));
	ck_assert_int_eq(sasl_step(&s2, line, out2, sizeof out2), SASL_DONE);
	free(line);
	ck_assert_int_eq(sasl_cram_verify(&s2, B("alice's secret")), 0);

	/* Secrets with NULs, and empty ones, are octets like any other. */
	sasl_start(&s1, SASL_MECH_CRAM_MD5, "mx.example.org");
	sasl_step(&s1, NULL, out1, sizeof out1);
	cram_challenge(out1, "mx.example.org", t0, c1, sizeof c1);
	line = cram_answer(c1, "bob", B("a\0b"));
	ck_assert_int_eq(sasl_step(&s1, line, out1, sizeof out1), SASL_DONE);
	free(line);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("a\0b")), 1);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("a")), 0);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("a\0c")), 0);

	sasl_start(&s1, SASL_MECH_CRAM_MD5, "mx.example.org");
	sasl_step(&s1, NULL, out1, sizeof out1);
	cram_challenge(out1, "mx.example.org", t0, c1, sizeof c1);
	line = cram_answer(c1, "bob", B(""));
	ck_assert_int_eq(sasl_step(&s1, line, out1, sizeof out1), SASL_DONE);
	free(line);
	ck_assert_int_eq(sasl_cram_verify(&s1, NULL, 0), 1);
	ck_assert_int_eq(sasl_cram_verify(&s1, B("x")), 0);
	sasl_clear(&s1);
	sasl_clear(&s2);
}
END_TEST

/* Hostnames: none gives localhost, a long one is cut to 255 octets. */
START_TEST(test_cram_hostname)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE], text[SASL_OUT_SIZE];
	char		host[400];
	time_t		t0 = time(NULL);

	sasl_start(&s, SASL_MECH_CRAM_MD5, NULL);
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	cram_challenge(out, "localhost", t0, text, sizeof text);

	memset(host, 'h', sizeof host - 1);
	host[sizeof host - 1] = '\0';
	sasl_start(&s, SASL_MECH_CRAM_MD5, host);
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	host[255] = '\0';
	cram_challenge(out, host, t0, text, sizeof text);
	sasl_clear(&s);
}
END_TEST

START_TEST(test_cram_not_done)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_CRAM_MD5, "mx.example.org");
	ck_assert_int_eq(sasl_set_challenge(&s, RFC2195_CHALLENGE), 0);
	ck_assert_int_eq(sasl_cram_verify(&s, B(RFC2195_SECRET)), 0);
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	ck_assert_int_eq(sasl_cram_verify(&s, B(RFC2195_SECRET)), 0);
	ck_assert_int_eq(sasl_step(&s, RFC2195_RESPONSE64, out, sizeof out),
	    SASL_DONE);
	ck_assert_int_eq(sasl_cram_verify(&s, B(RFC2195_SECRET)), 1);
}
END_TEST

START_TEST(test_set_challenge)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE], big[SASL_CHALLENGE_SIZE + 10];

	sasl_start(&s, SASL_MECH_PLAIN, "mx.example.org");
	ck_assert_int_eq(sasl_set_challenge(&s, RFC2195_CHALLENGE), -1);
	sasl_start(&s, SASL_MECH_LOGIN, "mx.example.org");
	ck_assert_int_eq(sasl_set_challenge(&s, RFC2195_CHALLENGE), -1);

	sasl_start(&s, SASL_MECH_CRAM_MD5, "mx.example.org");
	memset(big, 'c', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_int_eq(sasl_set_challenge(&s, big), -1);
	big[SASL_CHALLENGE_SIZE] = '\0';
	ck_assert_int_eq(sasl_set_challenge(&s, big), -1);
	big[SASL_CHALLENGE_SIZE - 1] = '\0';
	ck_assert_int_eq(sasl_set_challenge(&s, big), 0);
	ck_assert_int_eq(sasl_set_challenge(&s, RFC2195_CHALLENGE), 0);
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	ck_assert_str_eq(out, RFC2195_CHALLENGE64);
	ck_assert_int_eq(sasl_set_challenge(&s, "<1@x>"), -1);

	/* The longest challenge fits in SASL_OUT_SIZE. */
	sasl_start(&s, SASL_MECH_CRAM_MD5, "mx.example.org");
	ck_assert_int_eq(sasl_set_challenge(&s, big), 0);
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	ck_assert_uint_eq(strlen(out), sizeof out - 1);
}
END_TEST

/* sasl_clear() leaves not one octet of the exchange. */
START_TEST(test_clear)
{
	static const struct sasl	zero;
	struct sasl			s;
	char				out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_PLAIN, "mx.example.org");
	ck_assert_int_eq(sasl_step(&s, "emFwAHRpbQB0YW5zdGFhZg==", out,
	    sizeof out), SASL_DONE);
	ck_assert_str_eq(sasl_authzid(&s), "zap");
	ck_assert_str_eq(sasl_password(&s), "tanstaaf");
	sasl_clear(&s);
	ck_assert_mem_eq(&s, &zero, sizeof s);

	sasl_start(&s, SASL_MECH_CRAM_MD5, "mx.example.org");
	ck_assert_int_eq(sasl_step(&s, NULL, out, sizeof out), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, RFC2195_RESPONSE64, out, sizeof out),
	    SASL_DONE);
	sasl_clear(&s);
	ck_assert_mem_eq(&s, &zero, sizeof s);

	/* sasl_start() forgets the exchange before. */
	sasl_start(&s, SASL_MECH_PLAIN, "mx.example.org");
	ck_assert_int_eq(sasl_step(&s, "emFwAHRpbQB0YW5zdGFhZg==", out,
	    sizeof out), SASL_DONE);
	sasl_start(&s, SASL_MECH_PLAIN, "mx.example.org");
	ck_assert_str_eq(sasl_user(&s), "");
	ck_assert_str_eq(sasl_password(&s), "");
	ck_assert_str_eq(sasl_authzid(&s), "");
}
END_TEST

/* Stepping on after the end, or without a line, is the caller's bug. */
START_TEST(test_step_after_done)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_PLAIN, "mx.example.org");
	sasl_step(&s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", out, sizeof out);
	sasl_step(&s, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", out, sizeof out);
}
END_TEST

START_TEST(test_step_after_bad)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_LOGIN, "mx.example.org");
	sasl_step(&s, "!", out, sizeof out);
	sasl_step(&s, "dGlt", out, sizeof out);
}
END_TEST

START_TEST(test_step_no_line)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_LOGIN, "mx.example.org");
	sasl_step(&s, NULL, out, sizeof out);
	sasl_step(&s, NULL, out, sizeof out);
}
END_TEST

START_TEST(test_step_no_room)
{
	struct sasl	s;
	char		out[SASL_OUT_SIZE];

	sasl_start(&s, SASL_MECH_CRAM_MD5, "mx.example.org");
	sasl_step(&s, NULL, out, 20);
}
END_TEST

static Suite *
sasl_suite(void)
{
	Suite	*s = suite_create("sasl");
	TCase	*tc;

	tc = tcase_create("base64");
	tcase_add_loop_test(tc, test_b64_encode, 0, nitems(vectors));
	tcase_add_loop_test(tc, test_b64_decode, 0, nitems(vectors));
	tcase_add_loop_test(tc, test_b64_bad, 0, nitems(bad_b64));
	tcase_add_test(tc, test_b64_bad_wiped);
	tcase_add_loop_test(tc, test_b64_room, 0, nitems(rooms));
	tcase_add_test(tc, test_b64_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("exchanges");
	tcase_add_loop_test(tc, test_mechs, 0, nitems(mechs));
	tcase_add_loop_test(tc, test_exchanges, 0, nitems(exchanges));
	tcase_add_loop_test(tc, test_cancel_every_step, 0, nitems(flows));
	tcase_add_loop_test(tc, test_bad_every_step, 0, nitems(flows));
	tcase_add_loop_test(tc, test_sizes, 0, nitems(sizes));
	tcase_add_test(tc, test_clear);
	suite_add_tcase(s, tc);

	tc = tcase_create("cram-md5");
	tcase_add_test(tc, test_cram_random);
	tcase_add_test(tc, test_cram_hostname);
	tcase_add_test(tc, test_cram_not_done);
	tcase_add_test(tc, test_set_challenge);
	suite_add_tcase(s, tc);

	/* Needs a child process to survive the abort. */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no") != 0) {
		tc = tcase_create("misuse");
		tcase_add_test_raise_signal(tc, test_step_after_done, SIGABRT);
		tcase_add_test_raise_signal(tc, test_step_after_bad, SIGABRT);
		tcase_add_test_raise_signal(tc, test_step_no_line, SIGABRT);
		tcase_add_test_raise_signal(tc, test_step_no_room, SIGABRT);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(sasl_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
