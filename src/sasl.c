/*
 * sasl.c: the server's half of SMTP AUTH: the client's base64 lines in,
 * challenges out, and an identity with a password or an HMAC-MD5 digest
 * kept for the session to check.  Pure: no sockets, files or loop.  It
 * never logs, so no credential can reach a log line, and it wipes every
 * buffer that held one before giving it up.
 */
#include "autoconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "sasl.h"
#include "util.h"

/* Decoded octets of the longest line accepted, NUL incl. */
#define SASL_DATA_SIZE		(SASL_LINE_MAX / 4 * 3 + 1)

/* RFC 1035's longest name, all the challenge has room for. */
#define SASL_HOST_MAX		255

/* Random octets in a CRAM-MD5 challenge, so none is ever seen twice. */
#define SASL_NONCE_LEN		16

/* RFC 2195: the response is "user SP digest", digest in 32 hex digits. */
#define SASL_DIGEST_HEX		(SASL_DIGEST_LEN * 2)

/* LOGIN's prompts, sent base64 like any challenge. */
#define SASL_LOGIN_USER		"Username:"
#define SASL_LOGIN_PASS		"Password:"

static enum sasl_result	sasl_plain(struct sasl *, const char *, size_t,
			    char *, size_t);
static enum sasl_result	sasl_login(struct sasl *, const char *, size_t,
			    char *, size_t);
static enum sasl_result	sasl_cram(struct sasl *, const char *, size_t,
			    char *, size_t);

/*
 * Mechanisms.  Each step function is given the decoded line (data NULL
 * only for a missing initial response) and moves s->step on.
 */
static const struct sasl_mech_entry {
	enum sasl_mech	 mech;
	const char	*name;
	enum sasl_result (*step)(struct sasl *, const char *, size_t, char *,
			    size_t);
} sasl_mechs[] = {
	{ SASL_MECH_PLAIN, "PLAIN", sasl_plain },
	{ SASL_MECH_LOGIN, "LOGIN", sasl_login },
	{ SASL_MECH_CRAM_MD5, "CRAM-MD5", sasl_cram },
};

static const char sasl_b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const struct sasl_mech_entry *
sasl_mech_find(enum sasl_mech mech)
{
	size_t	i;

	for (i = 0; i < nitems(sasl_mechs); i++) {
		if (sasl_mechs[i].mech == mech)
			return &sasl_mechs[i];
	}
	panic("%s: unknown mechanism %d", __func__, (int)mech);
}

/* A mechanism's name as in "AUTH CRAM-MD5", in any case; -1 if unknown. */
int
sasl_mech_parse(const char *name, enum sasl_mech *mech)
{
	size_t	i;

	for (i = 0; i < nitems(sasl_mechs); i++) {
		if (strcasecmp(name, sasl_mechs[i].name) == 0) {
			*mech = sasl_mechs[i].mech;
			return 0;
		}
	}
	return -1;
}

const char *
sasl_mech_str(enum sasl_mech mech)
{
	return sasl_mech_find(mech)->name;
}

/*
 * Begin an exchange.  CRAM-MD5 makes its challenge now, unique by a
 * random nonce and the time, naming hostname (RFC 2195 section 2); the
 * other mechanisms ignore hostname, which may then be NULL.
 */
void
sasl_start(struct sasl *s, enum sasl_mech mech, const char *hostname)
{
	static const char	 hex[] = "0123456789abcdef";
	unsigned char		 nonce[SASL_NONCE_LEN];
	char			 nhex[SASL_NONCE_LEN * 2 + 1];
	size_t			 i;

	explicit_bzero(s, sizeof *s);
	s->mech = sasl_mech_find(mech)->mech;
	s->step = SASL_STEP_START;
	if (mech != SASL_MECH_CRAM_MD5)
		return;

	/*
	 * Without a good random source the challenge could repeat and an
	 * old response be replayed; OpenSSL failing here cannot serve TLS
	 * either, so there is nothing safe to go on with.
	 */
	if (RAND_bytes(nonce, sizeof nonce) != 1)
		fatalx("%s: no random octets for a challenge", __func__);
	for (i = 0; i < sizeof nonce; i++) {
		nhex[i * 2] = hex[nonce[i] >> 4];
		nhex[i * 2 + 1] = hex[nonce[i] & 0xf];
	}
	nhex[sizeof nhex - 1] = '\0';
	if (hostname == NULL || *hostname == '\0')
		hostname = "localhost";
	if (util_snprintf(s->challenge, sizeof s->challenge, "<%s.%lld@%.*s>",
	    nhex, (long long)time(NULL), SASL_HOST_MAX, hostname) == -1)
		panic("%s: challenge too long", __func__);
}

/*
 * For tests only: replace the CRAM-MD5 challenge before the first step,
 * so that RFC 2195's example can be replayed.  -1 if s is not a CRAM-MD5
 * exchange that has yet to start, or challenge does not fit.
 */
int
sasl_set_challenge(struct sasl *s, const char *challenge)
{
	if (s->mech != SASL_MECH_CRAM_MD5 || s->step != SASL_STEP_START)
		return -1;
	if (util_strlcpy(s->challenge, challenge, sizeof s->challenge) >=
	    sizeof s->challenge) {
		explicit_bzero(s->challenge, sizeof s->challenge);
		return -1;
	}
	return 0;
}

/* Write a challenge in base64 to out; out too small is the caller's bug. */
static void
sasl_challenge(const char *text, char *out, size_t outsize)
{
	if (sasl_b64_encode(text, strlen(text), out, outsize) == -1)
		panic("%s: no room for a challenge", __func__);
}

/* Copy a decoded value: not empty, without NUL, fitting with its NUL. */
static int
sasl_copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len == 0 || len >= size || memchr(src, '\0', len) != NULL)
		return -1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 0;
}

/*
 * PLAIN (RFC 4616): authzid NUL authcid NUL passwd.  An authzid is kept
 * for the session to refuse; whether it may act for another is policy.
 */
static enum sasl_result
sasl_plain(struct sasl *s, const char *data, size_t len, char *out,
    size_t outsize)
{
	const char	*user, *pass, *end;

	if (data == NULL) {
		s->step = SASL_STEP_RESPONSE;
		return SASL_CONTINUE;
	}
	end = data + len;
	if ((user = memchr(data, '\0', len)) == NULL)
		return SASL_BAD;
	user++;
	if ((pass = memchr(user, '\0', end - user)) == NULL)
		return SASL_BAD;
	pass++;
	if (user - 1 != data && sasl_copy(s->authzid, sizeof s->authzid,
	    data, user - 1 - data) == -1)
		return SASL_BAD;
	if (sasl_copy(s->user, sizeof s->user, user, pass - 1 - user) == -1)
		return SASL_BAD;
	if (sasl_copy(s->pass, sizeof s->pass, pass, end - pass) == -1)
		return SASL_BAD;
	s->step = SASL_STEP_DONE;
	return SASL_DONE;
}

/* LOGIN: the user name (perhaps the initial response), then the password. */
static enum sasl_result
sasl_login(struct sasl *s, const char *data, size_t len, char *out,
    size_t outsize)
{
	switch (s->step) {
	case SASL_STEP_START:
		if (data == NULL) {
			s->step = SASL_STEP_USER;
			sasl_challenge(SASL_LOGIN_USER, out, outsize);
			return SASL_CONTINUE;
		}
		/* FALLTHROUGH */
	case SASL_STEP_USER:
		if (sasl_copy(s->user, sizeof s->user, data, len) == -1)
			return SASL_BAD;
		s->step = SASL_STEP_PASS;
		sasl_challenge(SASL_LOGIN_PASS, out, outsize);
		return SASL_CONTINUE;
	case SASL_STEP_PASS:
		if (sasl_copy(s->pass, sizeof s->pass, data, len) == -1)
			return SASL_BAD;
		s->step = SASL_STEP_DONE;
		return SASL_DONE;
	default:
		panic("%s: step %d", __func__, (int)s->step);
	}
}

static int
sasl_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * CRAM-MD5 (RFC 2195): the server speaks first, so an initial response
 * is an error (RFC 4954 section 4).  The user name may hold spaces: the
 * digest is the last 32 octets, after the last space.
 */
static enum sasl_result
sasl_cram(struct sasl *s, const char *data, size_t len, char *out,
    size_t outsize)
{
	const char	*hex;
	size_t		 i;
	int		 hi, lo;

	if (s->step == SASL_STEP_START) {
		if (data != NULL)
			return SASL_BAD;
		s->step = SASL_STEP_RESPONSE;
		sasl_challenge(s->challenge, out, outsize);
		return SASL_CONTINUE;
	}
	if (len < SASL_DIGEST_HEX + 2)
		return SASL_BAD;
	hex = data + len - SASL_DIGEST_HEX;
	if (hex[-1] != ' ')
		return SASL_BAD;
	for (i = 0; i < SASL_DIGEST_LEN; i++) {
		hi = sasl_hexval(hex[i * 2]);
		lo = sasl_hexval(hex[i * 2 + 1]);
		if (hi == -1 || lo == -1)
			return SASL_BAD;
		s->digest[i] = hi << 4 | lo;
	}
	if (sasl_copy(s->user, sizeof s->user, data, hex - 1 - data) == -1)
		return SASL_BAD;
	s->step = SASL_STEP_DONE;
	return SASL_DONE;
}

/* Forget what the client sent; only the mechanism and the end remain. */
static void
sasl_over(struct sasl *s)
{
	explicit_bzero(s->authzid, sizeof s->authzid);
	explicit_bzero(s->user, sizeof s->user);
	explicit_bzero(s->pass, sizeof s->pass);
	explicit_bzero(s->digest, sizeof s->digest);
	s->step = SASL_STEP_OVER;
}

/*
 * One step of the exchange.  in is the initial response of "AUTH MECH
 * <ir>" on the first call (NULL when none, "=" for an empty one, RFC
 * 4954 section 4), then each line the client sent, CRLF removed.  out
 * gets the next challenge in base64, maybe empty; SASL_OUT_SIZE is
 * always enough.  Once SASL_DONE, SASL_CANCEL or SASL_BAD is returned the
 * exchange is over: calling again is a bug.
 */
enum sasl_result
sasl_step(struct sasl *s, const char *in, char *out, size_t outsize)
{
	char			 data[SASL_DATA_SIZE];
	const char		*p = NULL;
	size_t			 len = 0;
	enum sasl_result	 r;

	if (s->step == SASL_STEP_DONE || s->step == SASL_STEP_OVER)
		panic("%s: exchange already over", __func__);
	if (in == NULL && s->step != SASL_STEP_START)
		panic("%s: no line", __func__);
	if (outsize == 0)
		panic("%s: no room for a challenge", __func__);
	out[0] = '\0';

	if (in != NULL && strcmp(in, "*") == 0) {
		sasl_over(s);
		return SASL_CANCEL;
	}
	if (in != NULL && s->step == SASL_STEP_START && strcmp(in, "=") == 0)
		p = "";
	else if (in != NULL) {
		if (strnlen(in, SASL_LINE_MAX + 1) > SASL_LINE_MAX ||
		    sasl_b64_decode(in, data, sizeof data, &len) == -1) {
			sasl_over(s);
			return SASL_BAD;
		}
		p = data;
	}
	r = sasl_mech_find(s->mech)->step(s, p, len, out, outsize);
	explicit_bzero(data, sizeof data);
	if (r == SASL_BAD)
		sasl_over(s);
	return r;
}

const char *
sasl_user(const struct sasl *s)
{
	return s->user;
}

/* PLAIN's authorization identity; "" when the client gave none. */
const char *
sasl_authzid(const struct sasl *s)
{
	return s->authzid;
}

/* PLAIN and LOGIN; "" for CRAM-MD5. */
const char *
sasl_password(const struct sasl *s)
{
	return s->pass;
}

/*
 * CRAM-MD5: 1 when the client's digest is HMAC-MD5(secret, challenge),
 * compared in constant time; 0 otherwise, or before SASL_DONE.
 */
int
sasl_cram_verify(const struct sasl *s, const char *secret, size_t secretlen)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;
	int		ok;

	if (s->mech != SASL_MECH_CRAM_MD5 || s->step != SASL_STEP_DONE)
		return 0;
	if (secretlen > INT_MAX)
		return 0;
	/* A NULL key with length 0 is refused by some OpenSSL versions. */
	if (secretlen == 0)
		secret = "";
	if (HMAC(EVP_md5(), secret, (int)secretlen,
	    (const unsigned char *)s->challenge, strlen(s->challenge), md,
	    &mdlen) == NULL)
		ok = 0;
	else
		ok = mdlen == SASL_DIGEST_LEN &&
		    CRYPTO_memcmp(md, s->digest, SASL_DIGEST_LEN) == 0;
	explicit_bzero(md, sizeof md);
	return ok;
}

void
sasl_clear(struct sasl *s)
{
	explicit_bzero(s, sizeof *s);
}

/* Base64 (RFC 4648 section 4) with padding, NUL-terminated. */
int
sasl_b64_encode(const void *src, size_t len, char *dst, size_t size)
{
	const unsigned char	*p = src;
	size_t			 groups, i, o = 0;
	uint32_t		 v;

	groups = len / 3 + (len % 3 != 0);
	if (size == 0 || groups > (size - 1) / 4)
		return -1;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		dst[o++] = sasl_b64_chars[v >> 18];
		dst[o++] = sasl_b64_chars[(v >> 12) & 0x3f];
		dst[o++] = sasl_b64_chars[(v >> 6) & 0x3f];
		dst[o++] = sasl_b64_chars[v & 0x3f];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		dst[o++] = sasl_b64_chars[v >> 18];
		dst[o++] = sasl_b64_chars[(v >> 12) & 0x3f];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		dst[o++] = sasl_b64_chars[v >> 18];
		dst[o++] = sasl_b64_chars[(v >> 12) & 0x3f];
		dst[o++] = sasl_b64_chars[(v >> 6) & 0x3f];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return 0;
}

static int
sasl_b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict base64: whole quantums, padding only at the end, no whitespace,
 * and the bits padding leaves over must be zero (RFC 4648 section 3.5),
 * so every octet string has one encoding.  On failure nothing decoded is
 * left in dst.
 */
int
sasl_b64_decode(const char *src, void *dst, size_t size, size_t *lenp)
{
	const unsigned char	*s = (const unsigned char *)src;
	unsigned char		*d = dst;
	size_t			 len, outlen, pad = 0, i, o = 0;
	int			 a, b, c, e;

	len = strlen(src);
	if (len % 4 != 0)
		return -1;
	if (len > 0 && s[len - 1] == '=') {
		pad++;
		if (s[len - 2] == '=')
			pad++;
	}
	outlen = len / 4 * 3 - pad;
	if (outlen >= size)
		return -1;
	for (i = 0; i < len; i += 4) {
		a = sasl_b64_val(s[i]);
		b = sasl_b64_val(s[i + 1]);
		c = i + 4 == len && pad == 2 ? 0 : sasl_b64_val(s[i + 2]);
		e = i + 4 == len && pad >= 1 ? 0 : sasl_b64_val(s[i + 3]);
		if (a == -1 || b == -1 || c == -1 || e == -1)
			goto bad;
		d[o++] = a << 2 | b >> 4;
		if (i + 4 == len && pad == 2) {
			if ((b & 0xf) != 0)
				goto bad;
			break;
		}
		d[o++] = (b & 0xf) << 4 | c >> 2;
		if (i + 4 == len && pad == 1) {
			if ((c & 0x3) != 0)
				goto bad;
			break;
		}
		d[o++] = (c & 0x3) << 6 | e;
	}
	d[o] = '\0';
	if (lenp != NULL)
		*lenp = o;
	return 0;

bad:
	explicit_bzero(dst, o);
	return -1;
}
