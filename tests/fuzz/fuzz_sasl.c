/*
 * fuzz_sasl.c: AUTH exchanges on the server side of sasl.c.  The first
 * octet chooses the mechanism, whether an initial response is given and
 * whether the lines go as they are or are first base64-encoded here (so
 * that the mechanisms themselves see arbitrary octets); the rest is the
 * client's lines.  Base64 must also survive a round trip.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sasl.h"

#define FUZZ_LINE_SIZE	(SASL_LINE_MAX + 2)

static void
fuzz_b64_round_trip(const char *p, size_t len)
{
	static char	enc[FUZZ_LINE_SIZE], dec[FUZZ_LINE_SIZE];
	size_t		n;

	if (len > 3 * (SASL_LINE_MAX / 4))
		return;
	if (sasl_b64_encode(p, len, enc, sizeof enc) == -1)
		abort();
	if (sasl_b64_decode(enc, dec, sizeof dec, &n) == -1 || n != len ||
	    memcmp(dec, p, len) != 0)
		fuzz_mismatch("base64 round trip", p, len, dec, n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char		 line[FUZZ_LINE_SIZE], out[SASL_OUT_SIZE];
	struct sasl		 s;
	enum sasl_mech		 mech;
	enum sasl_result	 r;
	const char		*p, *end, *nl;
	size_t			 len;
	int			 encode;

	if (size == 0)
		return 0;
	mech = (enum sasl_mech)(data[0] % 3);
	encode = data[0] & 4;
	(void)sasl_mech_str(mech);
	sasl_start(&s, mech, "mx.example.org");
	if (!(data[0] & 8)) {
		r = sasl_step(&s, NULL, out, sizeof out);
		if (r != SASL_CONTINUE)
			goto over;
	}
	p = (const char *)data + 1;
	end = (const char *)data + size;
	r = SASL_CONTINUE;
	while (r == SASL_CONTINUE) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = (size_t)((nl != NULL ? nl : end) - p);
		fuzz_b64_round_trip(p, len);
		if (encode) {
			if (len > 3 * (SASL_LINE_MAX / 4))
				len = 3 * (SASL_LINE_MAX / 4);
			if (sasl_b64_encode(p, len, line, sizeof line) == -1)
				abort();
		} else {
			if (len >= sizeof line)
				len = sizeof line - 1;
			memcpy(line, p, len);
			line[len] = '\0';
		}
		r = sasl_step(&s, line, out, sizeof out);
		if (strnlen(out, sizeof out) == sizeof out)
			abort();
		if (nl == NULL)
			break;
		p = nl + 1;
	}
over:
	if (strnlen(sasl_user(&s), SASL_USER_SIZE) == SASL_USER_SIZE ||
	    strnlen(sasl_authzid(&s), SASL_USER_SIZE) == SASL_USER_SIZE ||
	    strnlen(sasl_password(&s), SASL_PASS_SIZE) == SASL_PASS_SIZE)
		abort();
	if (r == SASL_DONE && mech == SASL_MECH_CRAM_MD5)
		(void)sasl_cram_verify(&s, "secret", 6);
	sasl_clear(&s);
	return 0;
}
