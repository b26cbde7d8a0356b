/*
 * mime.h: 8-bit MIME to 7-bit for a next hop without 8BITMIME (RFC 6152
 * section 3).  Pure logic: a converter is fed the message in pieces of
 * any size and hands its output, also in pieces, to a function it was
 * given; it never reads files or sockets.
 *
 * A message is read twice.  The first pass (mime_scan_*) finds which
 * parts hold 8-bit octets and whether they can be converted; the
 * second (mime_convert_*) writes the message again with those parts in
 * quoted-printable and their Content-Transfer-Encoding changed, every
 * other octet as it was.
 */
#ifndef MIME_H
#define MIME_H

#include <stddef.h>

/* What the first pass found. */
enum mime_verdict {
	MIME_7BIT,	/* no 8-bit octet in any body: send as it is */
	MIME_CONVERT,	/* 8-bit parts, all of them convertible */
	MIME_SIGNED,	/* 8-bit under multipart/signed or /encrypted */
	MIME_CANNOT,	/* 8-bit where no encoding may be applied */
};

#define MIME_WHY_SIZE	128

struct mime_conv;
typedef void	 mime_out_fn(void *, const char *, size_t);

struct mime_conv *mime_scan_new(void);
void		 mime_feed(struct mime_conv *, const char *, size_t);
enum mime_verdict mime_scan_end(struct mime_conv *, int *, char *, size_t);
void		 mime_convert_start(struct mime_conv *, mime_out_fn *, void *);
void		 mime_convert_end(struct mime_conv *);
void		 mime_conv_free(struct mime_conv *);
const char	*mime_verdict_str(enum mime_verdict);

#endif
