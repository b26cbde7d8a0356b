/*
 * sasl.h: the server side of SMTP AUTH (RFC 4954) for the PLAIN (RFC
 * 4616), LOGIN and CRAM-MD5 (RFC 2195) mechanisms.  It turns the client's
 * base64 lines into an identity and a password or digest; checking them
 * against the users file is the session's business.
 */
#ifndef SASL_H
#define SASL_H

#include <stddef.h>

#define SASL_USER_SIZE	256	/* an authentication identity, NUL incl. */
#define SASL_PASS_SIZE	256
#define SASL_LINE_MAX	12288	/* longest base64 line accepted */

/* "<" 32 hex "." time "@" hostname ">", NUL incl.; hostnames cut at 255. */
#define SASL_CHALLENGE_SIZE	320
#define SASL_DIGEST_LEN		16	/* HMAC-MD5 */

/* Room for any challenge sasl_step() writes, base64 and NUL. */
#define SASL_OUT_SIZE	(((SASL_CHALLENGE_SIZE - 1 + 2) / 3) * 4 + 1)

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_CRAM_MD5,
};

enum sasl_result {
	SASL_CONTINUE,	/* send "334 " + out, then feed the next line */
	SASL_DONE,	/* user and pass, or CRAM response, ready to check */
	SASL_CANCEL,	/* the client sent "*": reply 501 5.0.0 */
	SASL_BAD,	/* bad base64, missing parts, too long: 501 5.5.2 */
};

/* What the next sasl_step() call is fed. */
enum sasl_step {
	SASL_STEP_START,	/* the initial response, or NULL */
	SASL_STEP_RESPONSE,	/* PLAIN's or CRAM-MD5's one response */
	SASL_STEP_USER,		/* LOGIN's user name */
	SASL_STEP_PASS,		/* LOGIN's password */
	SASL_STEP_DONE,		/* SASL_DONE given: ready to check */
	SASL_STEP_OVER,		/* SASL_CANCEL or SASL_BAD given */
};

/* One exchange; owned by its session; sasl_clear() wipes it. */
struct sasl {
	enum sasl_mech	 mech;
	enum sasl_step	 step;
	char		 authzid[SASL_USER_SIZE];	/* PLAIN; "" if none */
	char		 user[SASL_USER_SIZE];
	char		 pass[SASL_PASS_SIZE];		/* PLAIN and LOGIN */
	char		 challenge[SASL_CHALLENGE_SIZE];	/* CRAM-MD5 */
	unsigned char	 digest[SASL_DIGEST_LEN];	/* CRAM-MD5 response */
};

int		 sasl_mech_parse(const char *, enum sasl_mech *);
const char	*sasl_mech_str(enum sasl_mech);

void		 sasl_start(struct sasl *, enum sasl_mech, const char *);
int		 sasl_set_challenge(struct sasl *, const char *); /* tests */
enum sasl_result sasl_step(struct sasl *, const char *, char *, size_t);
const char	*sasl_user(const struct sasl *);
const char	*sasl_authzid(const struct sasl *);
const char	*sasl_password(const struct sasl *);
int		 sasl_cram_verify(const struct sasl *, const char *, size_t);
void		 sasl_clear(struct sasl *);

/* RFC 4648 base64, padding required, no whitespace: 0, or -1. */
int		 sasl_b64_encode(const void *, size_t, char *, size_t);
int		 sasl_b64_decode(const char *, void *, size_t, size_t *);

#endif
