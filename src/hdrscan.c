/*
 * hdrscan.c: a small state machine over the field names of a message's
 * header section, up to its blank line.  Fed the message as stored
 * (CRLF lines, dot-unstuffed), chunk by chunk; after the blank line it
 * looks at nothing more.
 */
#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "hdrscan.h"
#include "util.h"

enum hdrscan_state {
	HDRSCAN_LINE,		/* at the start of a line */
	HDRSCAN_NAME,		/* in a field name */
	HDRSCAN_REST,		/* in a field's value, to the line's end */
	HDRSCAN_DONE,		/* past the header section */
};

/* The fields looked for. */
static const struct hdrscan_field {
	const char	*name;
	int		 bit;
} hdrscan_fields[] = {
	{ "Date", HDRSCAN_DATE },
	{ "Message-ID", HDRSCAN_MSGID },
};

void
hdrscan_init(struct hdrscan *h)
{
	memset(h, 0, sizeof *h);
	h->state = HDRSCAN_LINE;
}

/* A field name has ended at its colon: is it one looked for? */
static void
hdrscan_name_end(struct hdrscan *h)
{
	size_t	i;

	for (i = 0; i < nitems(hdrscan_fields); i++) {
		if (h->namelen == strlen(hdrscan_fields[i].name) &&
		    strncasecmp(h->name, hdrscan_fields[i].name,
		    h->namelen) == 0)
			h->seen |= hdrscan_fields[i].bit;
	}
}

/*
 * Feed len octets.  The offset in buf where the header section ends (the
 * start of its blank line) when it ends in this chunk, else -1.  A line
 * that is not a field (no colon after a name of printable octets) ends
 * the scan with h->bad set: where the section ended is behind us.
 */
ssize_t
hdrscan_feed(struct hdrscan *h, const char *buf, size_t len)
{
	size_t	i;

	for (i = 0; i < len && h->state != HDRSCAN_DONE; i++) {
		unsigned char	ch = buf[i];

		switch (h->state) {
		case HDRSCAN_LINE:
			if (ch == '\r' || ch == '\n') {
				h->state = HDRSCAN_DONE;
				return (ssize_t)i;
			}
			if (ch == ' ' || ch == '\t') {
				h->state = HDRSCAN_REST;
				break;
			}
			h->namelen = 0;
			h->state = HDRSCAN_NAME;
			/* FALLTHROUGH */
		case HDRSCAN_NAME:
			if (ch == ':') {
				hdrscan_name_end(h);
				h->state = HDRSCAN_REST;
			} else if (ch < 33 || ch > 126) {
				h->bad = 1;
				h->state = HDRSCAN_DONE;
			} else if (h->namelen < sizeof h->name)
				h->name[h->namelen++] = ch;
			else
				h->namelen = sizeof h->name + 1;
			break;
		case HDRSCAN_REST:
			if (ch == '\n')
				h->state = HDRSCAN_LINE;
			break;
		}
	}
	return -1;
}

/*
 * At the end of the message: 1 when it was all header section, ended by
 * a whole line, so fields may still be appended.
 */
int
hdrscan_open(const struct hdrscan *h)
{
	return h->state == HDRSCAN_LINE;
}
