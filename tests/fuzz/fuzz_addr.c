/*
 * fuzz_addr.c: mailbox paths through addr.c.  The first octet chooses
 * the flags, the rest is the path.  A path that parses is printed back
 * and must parse again to the same mailbox.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr	 a, b;
	const char	*rest, *cause;
	char		*path, out[ADDR_PATH_SIZE], out2[ADDR_PATH_SIZE];
	int		 flags;

	if (size == 0)
		return 0;
	flags = data[0] & (ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER |
	    ADDR_ALLOW_UTF8 | ADDR_ALLOW_BARE);
	path = fuzz_str(data + 1, size - 1);
	if (addr_parse_path(path, flags, &a, &rest, &cause) != 0) {
		free(path);
		return 0;
	}
	if (rest < path || rest > path + strlen(path))
		abort();
	if (strnlen(a.local, sizeof a.local) == sizeof a.local ||
	    strnlen(a.domain, sizeof a.domain) == sizeof a.domain)
		abort();
	(void)addr_is_null(&a);
	(void)addr_has_routing(&a);
	(void)addr_is_utf8(&a);
	(void)addr_format(&a, out, sizeof out);
	if (addr_format_path(&a, out, sizeof out) == 0) {
		/* What tern prints it reads back as the same mailbox. */
		if (addr_parse_path(out, flags, &b, &rest, &cause) != 0 ||
		    *rest != '\0')
			fuzz_mismatch("path printed and parsed", path,
			    strlen(path), out, strlen(out));
		if (strcmp(a.local, b.local) != 0 ||
		    strcmp(a.domain, b.domain) != 0 ||
		    addr_format_path(&b, out2, sizeof out2) != 0 ||
		    strcmp(out, out2) != 0)
			fuzz_mismatch("mailbox after a round trip", out,
			    strlen(out), out2, strlen(out2));
	}
	free(path);
	return 0;
}
