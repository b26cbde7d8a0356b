/*
 * fuzz_envelope.c: ID.env files through envelope.c.  What parses is
 * written back; that text must parse again and write the same octets.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope	 env, env2;
	char		*cause = NULL, *text = NULL, *text2 = NULL;
	size_t		 len, len2;

	envelope_init(&env);
	if (envelope_parse(&env, (const char *)data, size, &cause) == -1) {
		if (cause == NULL)
			abort();
		free(cause);
		envelope_clear(&env);
		return 0;
	}
	if (envelope_write(&env, &text, &len) == -1)
		abort();
	envelope_init(&env2);
	if (envelope_parse(&env2, text, len, &cause) == -1) {
		fuzz_mismatch(cause != NULL ? cause : "reparse", data, size,
		    text, len);
	}
	if (envelope_write(&env2, &text2, &len2) == -1)
		abort();
	if (len != len2 || memcmp(text, text2, len) != 0)
		fuzz_mismatch("envelope written twice", text, len, text2, len2);
	if (env.nrcpts != env2.nrcpts || env.nattempts != env2.nattempts)
		fuzz_mismatch("recipient or attempt count", text, len, text2,
		    len2);
	free(text);
	free(text2);
	envelope_clear(&env);
	envelope_clear(&env2);
	return 0;
}
