/*
 * fuzz_dsn.c: DSN parameters and the reports made from them.  The input
 * is lines: an ORCPT value (xtext, as RCPT sends it), an ENVID (xtext),
 * a recipient, a peer's reply text, a status, then the original message.
 * The xtext is decoded as a session does and must encode back the same;
 * the decoded ORCPT is passed on as mta_session.c would write it for the
 * next hop; then delivery status notifications of every kind are built
 * from an envelope holding all of it.  mta_session.c is included to
 * reach its ORCPT writer, which is static.
 */
#include "../../src/mta_session.c"

#include "dsn.h"
#include "envelope.h"
#include "fuzz.h"

#define FUZZ_FIELDS	5

/* As a session keeps ENVID and ORCPT: decoded, printable; or NULL. */
static char *
fuzz_xtext(const char *value, size_t max)
{
	char	dec[SMTP_LINE_MAX], again[SMTP_LINE_MAX];
	char	enc[3 * SMTP_LINE_MAX];
	size_t	i;

	if (strlen(value) > max || smtp_xtext_decode(value, dec,
	    sizeof dec) == -1 || dec[0] == '\0')
		return NULL;
	if (smtp_xtext_encode(dec, enc, sizeof enc) == -1 ||
	    smtp_xtext_decode(enc, again, sizeof again) == -1 ||
	    strcmp(dec, again) != 0)
		fuzz_mismatch("xtext round trip", dec, strlen(dec), again,
		    strlen(again));
	for (i = 0; dec[i] != '\0'; i++) {
		if ((unsigned char)dec[i] < 0x20 || dec[i] == 0x7f)
			return NULL;
	}
	return xstrdup(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dsn_action actions[] = { DSN_ACTION_FAILED,
	    DSN_ACTION_DELAYED, DSN_ACTION_DELIVERED, DSN_ACTION_RELAYED };
	struct envelope		 env;
	struct envelope_rcpt	*r;
	struct dsn_params	 dp;
	char			*text, *field[FUZZ_FIELDS], *orig, *p, *out;
	char			 wire[MTA_ORCPT_MAX + 64];
	size_t			 i, n, olen, outlen, sel[2] = { 0, 1 };

	text = fuzz_str(data, size);
	p = text;
	for (i = 0; i < FUZZ_FIELDS; i++) {
		field[i] = strsep(&p, "\n");
		if (field[i] == NULL)
			field[i] = "";
	}
	/* The original message as the queue keeps it: CRLF lines. */
	orig = xmalloc(2 * (p != NULL ? strlen(p) : 0) + 1);
	for (olen = 0; p != NULL && *p != '\0'; p++) {
		if (*p == '\r')
			continue;
		if (*p == '\n')
			orig[olen++] = '\r';
		orig[olen++] = *p;
	}
	orig[olen] = '\0';

	envelope_init(&env);
	util_strlcpy(env.id, "0QH3M2B7K9XW4TZ", sizeof env.id);
	env.arrival = 1795864624;
	envelope_set_str(&env.sender, "alice@example.org");
	env.envid = fuzz_xtext(field[1], 100);
	env.ret = data[0] % 3;
	r = envelope_add_rcpt(&env, field[2][0] != '\0' ? field[2] :
	    "bob@example.net");
	r->orcpt = fuzz_xtext(field[0], 500);
	r->notify = ENVELOPE_NOTIFY_FAILURE | ENVELOPE_NOTIFY_DELAY;
	util_strlcpy(r->status, field[4], sizeof r->status);
	envelope_set_str(&r->error, field[3]);
	envelope_set_str(&r->relay, "mx.example.net[198.51.100.3]:25");
	r = envelope_add_rcpt(&env, "carol@example.net");
	r->orcpt = xstrdup(field[0]);
	util_strlcpy(r->status, "5.1.1", sizeof r->status);
	envelope_set_str(&r->error, field[3]);
	r->state = ENVELOPE_RCPT_FAILED;

	for (i = 0; i < env.nrcpts; i++) {
		if (env.rcpts[i].orcpt != NULL &&
		    mta_orcpt_encode(env.rcpts[i].orcpt, wire,
		    sizeof wire) == 0 && strlen(wire) > MTA_ORCPT_MAX)
			abort();
	}
	for (i = 0; i < nitems(actions); i++) {
		memset(&dp, 0, sizeof dp);
		dp.reporting_mta = "mx.example.org";
		dp.id = "0QH3M2B7K9XW4TA";
		dp.now = 1795868224;
		dp.action = actions[i];
		dp.original = orig;
		dp.original_len = olen;
		dp.full = data[0] & 4;
		dp.retry_until = 1796209024;
		if (dsn_build(&env, sel, 2, &dp, &out, &outlen) == -1)
			continue;
		if (memchr(out, '\0', outlen) != NULL)
			fuzz_mismatch("NUL in a report", out, outlen, "", 0);
		for (n = 0; n < outlen; n++) {
			if (out[n] == '\n' && (n == 0 || out[n - 1] != '\r'))
				fuzz_mismatch("bare LF in a report", out,
				    outlen, "", 0);
			if (out[n] == '\r' && (n + 1 == outlen ||
			    out[n + 1] != '\n'))
				fuzz_mismatch("bare CR in a report", out,
				    outlen, "", 0);
		}
		(void)dsn_headers_len(out, outlen);
		(void)dsn_action_str(actions[i]);
		free(out);
	}
	envelope_clear(&env);
	free(orig);
	free(text);
	return 0;
}
