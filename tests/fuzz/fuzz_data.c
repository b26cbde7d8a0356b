/*
 * fuzz_data.c: the DATA dot machine fed the same octets whole, in random
 * pieces and one octet at a time; every way must give the same message,
 * the same end and the same error.  The first octet chooses the mode
 * (strict or normalizing, DATA or BDAT chunks) and seeds the cuts; the
 * rest is the data.  A BDAT message is finished after its last octet.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_parse.h"

struct fuzz_run {
	char	*out;
	size_t	 outlen;
	size_t	 consumed;		/* octets taken up to the end */
	int	 end;
	int	 error;
};

/* Feeds data in pieces: cut 0 whole, 1 one octet at a time, else random. */
static void
fuzz_feed(const char *data, size_t len, int normalize, int chunked,
    unsigned seed, int cut, struct fuzz_run *r)
{
	struct smtp_data	 d;
	char			*chunk;
	size_t			 off = 0, n, consumed, outlen;
	int			 rc = SMTP_DATA_MORE;

	memset(r, 0, sizeof *r);
	r->out = malloc(2 * len + 2);
	chunk = malloc(2 * len + 2);
	if (chunked)
		smtp_data_init_chunked(&d, normalize);
	else
		smtp_data_init(&d, normalize);
	while (off < len && rc == SMTP_DATA_MORE) {
		if (cut == 0)
			n = len - off;
		else if (cut == 1)
			n = 1;
		else {
			seed = seed * 1103515245 + 12345;
			n = 1 + (seed >> 16) % 17;
			if (n > len - off)
				n = len - off;
		}
		rc = smtp_data_feed(&d, data + off, n, &consumed, chunk,
		    &outlen);
		if (consumed > n || outlen > 2 * n)
			abort();
		if (rc == SMTP_DATA_MORE && consumed != n)
			abort();
		memcpy(r->out + r->outlen, chunk, outlen);
		r->outlen += outlen;
		off += consumed;
	}
	if (chunked) {
		if (rc != SMTP_DATA_MORE || off != len)
			abort();
		smtp_data_finish(&d, chunk, &outlen);
		if (outlen > 2)
			abort();
		memcpy(r->out + r->outlen, chunk, outlen);
		r->outlen += outlen;
		rc = SMTP_DATA_END;
	}
	r->consumed = off;
	r->end = rc == SMTP_DATA_END;
	r->error = d.error;
	(void)smtp_data_error_str(d.error);
	free(chunk);
}

/*
 * A message that ended is the same octets whichever way it came.  One
 * that has not may still owe one octet to the next call (the machine
 * holds it back when a call's output is full), so one way may be one
 * octet behind the other, never more nor different.
 */
static void
fuzz_compare(const struct fuzz_run *a, const struct fuzz_run *b)
{
	size_t	n = a->outlen < b->outlen ? a->outlen : b->outlen;

	if ((a->end && a->outlen != b->outlen) ||
	    a->outlen > b->outlen + 1 || b->outlen > a->outlen + 1 ||
	    memcmp(a->out, b->out, n) != 0)
		fuzz_mismatch("message written", a->out, a->outlen, b->out,
		    b->outlen);
	if (a->consumed != b->consumed || a->end != b->end ||
	    a->error != b->error)
		fuzz_mismatch("end or error", a->out, a->outlen, b->out,
		    b->outlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_run	 whole, bytes, pieces;
	const char	*p = (const char *)data + 1;
	size_t		 len, i;
	int		 normalize, chunked;

	if (size == 0)
		return 0;
	normalize = data[0] & 1;
	chunked = (data[0] & 2) != 0;
	len = size - 1;
	fuzz_feed(p, len, normalize, chunked, data[0], 0, &whole);
	fuzz_feed(p, len, normalize, chunked, data[0], 1, &bytes);
	fuzz_feed(p, len, normalize, chunked, data[0], 2, &pieces);
	fuzz_compare(&whole, &bytes);
	fuzz_compare(&whole, &pieces);

	/* The message is made of CRLF lines (ending in one, if chunked). */
	if (chunked && whole.error == 0 && whole.outlen > 0 &&
	    whole.out[whole.outlen - 1] != '\n')
		abort();
	if (whole.end && whole.error == 0) {
		for (i = 0; i < whole.outlen; i++) {
			if (whole.out[i] == '\r' && (i + 1 == whole.outlen ||
			    whole.out[i + 1] != '\n'))
				abort();
			if (whole.out[i] == '\n' && (i == 0 ||
			    whole.out[i - 1] != '\r'))
				abort();
		}
	}
	free(whole.out);
	free(bytes.out);
	free(pieces.out);
	return 0;
}
