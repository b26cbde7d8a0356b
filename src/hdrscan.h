/*
 * hdrscan.h: which of Date and Message-ID a message's header section
 * holds, found as the message streams past, and where that section ends
 * (RFC 6409 section 8: submission adds the missing ones).  Pure: a few
 * octets of state, no buffering of the message.
 */
#ifndef HDRSCAN_H
#define HDRSCAN_H

#include <stddef.h>
#include <sys/types.h>

#define HDRSCAN_DATE	0x01
#define HDRSCAN_MSGID	0x02
#define HDRSCAN_ALL	(HDRSCAN_DATE | HDRSCAN_MSGID)

/* Longest field name told apart; longer ones are neither. */
#define HDRSCAN_NAME_MAX	16

struct hdrscan {
	int	state;
	int	seen;		/* HDRSCAN_* */
	int	bad;		/* a line that is not a field: add nothing */
	size_t	namelen;
	char	name[HDRSCAN_NAME_MAX];
};

void	hdrscan_init(struct hdrscan *);
ssize_t	hdrscan_feed(struct hdrscan *, const char *, size_t);
int	hdrscan_open(const struct hdrscan *);

#endif
