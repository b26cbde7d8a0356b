/*
 * sessinfo.h: what "ternctl sessions" shows of one SMTP session, inbound
 * or outbound, and the octet counters both kinds of session keep on
 * their bufferevents.
 */
#ifndef SESSINFO_H
#define SESSINFO_H

#include <stdint.h>

struct bufferevent;

struct sessinfo {
	const char	*id;		/* the session's log id, or NULL */
	const char	*peer;		/* address, or host[ip]:port */
	const char	*state;
	uint64_t	 age;		/* seconds since it began */
	uint64_t	 bytes_in;	/* octets read, after TLS */
	uint64_t	 bytes_out;	/* octets written, before TLS */
	const char	*tls;		/* the TLS version, or NULL */
};

/* Called per session; arg is the caller's. */
typedef void	(*sessinfo_fn)(const struct sessinfo *, void *);

/* The two counters of a session, kept as long as the bufferevent lives. */
struct sessinfo_bytes {
	uint64_t	in;
	uint64_t	out;
};

void	sessinfo_count(struct bufferevent *, struct sessinfo_bytes *);

#endif
