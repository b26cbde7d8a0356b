/*
 * fuzz_dvproto.c: what a Dovecot auth server (or anything listening on
 * its socket) may send, through dvproto.c's line cutter and parser.  The
 * first octet chooses the size of the pieces the rest is fed in; the
 * same bytes fed whole must give the same lines, and every reply read
 * must keep the parser's promises (a CONT's data is base64, a user name
 * is not empty and holds no control character).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "dvproto.h"
#include "fuzz.h"

#define FUZZ_LINES_MAX	64

/* Cut data into lines fed piece octets at a time: how many, and a hash. */
static size_t
fuzz_cut(const char *data, size_t len, size_t piece, unsigned long *hash)
{
	static struct dvproto_in	in;
	struct dvproto_reply		r;
	size_t				off, n, used, lines = 0;
	char				*line;
	const unsigned char		*p;
	int				rc;

	memset(&in, 0, sizeof in);
	*hash = 5381;
	for (off = 0; off < len; off += n) {
		n = len - off < piece ? len - off : piece;
		for (used = 0; used < n; ) {
			size_t	u;

			rc = dvproto_take(&in, data + off + used, n - used, &u,
			    &line);
			if (rc == -1)
				return lines | (size_t)1 << 31;
			if (u == 0)
				abort();
			used += u;
			if (rc == 0)
				continue;
			for (p = (const unsigned char *)line; *p != '\0'; p++)
				*hash = *hash * 33 + *p;
			*hash = *hash * 33 + '\n';
			lines++;
			if (dvproto_parse(line, &r) == 0) {
				if (r.kind == DVPROTO_CONT &&
				    !dvproto_is_base64(r.data))
					abort();
				if (r.user != NULL && r.user[0] == '\0')
					abort();
				for (p = (const unsigned char *)r.user;
				    p != NULL && *p != '\0'; p++) {
					if (*p < 0x20 || *p == 0x7f)
						abort();
				}
				if (r.kind == DVPROTO_MECH &&
				    !dvproto_is_mech(r.mech))
					abort();
			}
		}
	}
	return lines;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long	h1, h2;
	size_t		n1, n2, piece;

	if (size == 0)
		return 0;
	piece = (size_t)data[0] % 17 + 1;
	n1 = fuzz_cut((const char *)data + 1, size - 1, size, &h1);
	n2 = fuzz_cut((const char *)data + 1, size - 1, piece, &h2);
	if (n1 != n2 || h1 != h2)
		fuzz_mismatch("lines whole and in pieces", &n1, sizeof n1, &n2,
		    sizeof n2);
	return 0;
}
