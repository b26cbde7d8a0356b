/*
 * fuzz_proxy.c: PROXY protocol headers through proxy.c.  The whole input
 * is parsed, then every prefix of it: a prefix of a header that parsed
 * must only wait for more, a result must never claim octets it was not
 * given, and a header once done is the same whatever follows it.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	 h, p;
	enum proxy_result	 r, rp;
	const char		*cause;
	size_t			 want, i;

	r = proxy_parse(data, size, &h, &want, &cause);
	if (r == PROXY_ERROR && cause == NULL)
		abort();
	if (r == PROXY_MORE && want <= size && want != 0 &&
	    size < PROXY_V1_MAX)
		abort();
	if (r != PROXY_DONE)
		return 0;
	if (h.len == 0 || h.len > size || h.len > PROXY_V2_MAX)
		abort();
	if (h.version != 1 && h.version != 2)
		abort();
	/* Shorter than the header: it waits.  Longer: the same header. */
	for (i = 0; i < size; i++) {
		rp = proxy_parse(data, i, &p, &want, &cause);
		if (i < h.len && rp != PROXY_MORE)
			abort();
		if (i >= h.len && (rp != PROXY_DONE || p.len != h.len ||
		    p.family != h.family || p.command != h.command ||
		    memcmp(&p.src, &h.src, sizeof p.src) != 0))
			abort();
	}
	return 0;
}
