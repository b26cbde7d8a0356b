/*
 * dns.h: the DNS that delivery needs, asynchronous on the loop (c-ares):
 * a domain's mail exchangers in the order to try them, with the addresses
 * of each, or a gateway host's addresses.
 */
#ifndef DNS_H
#define DNS_H

#include <sys/socket.h>
#include <stddef.h>

struct event_base;
struct dns_query;

#define DNS_HOST_SIZE		256
#define DNS_MAX_TARGETS		32	/* addresses tried per destination */
#define DNS_MAX_MX		16	/* exchangers looked at per domain */

enum dns_status {
	DNS_OK,
	DNS_TEMPFAIL,		/* SERVFAIL, timeout, refused: try later */
	DNS_NXDOMAIN,		/* the domain does not exist: 5.1.2 */
	DNS_NULLMX,		/* RFC 7505 "MX 0 .": 5.1.10 */
	DNS_NOHOST,		/* no address for any exchanger: 5.4.4 */
};

/* One address to connect to, in the order of trying. */
struct dns_target {
	char			 host[DNS_HOST_SIZE];	/* exchanger name */
	unsigned		 pref;			/* MX preference */
	struct sockaddr_storage	 ss;			/* port 0 */
	socklen_t		 sslen;
};

/* What a lookup found; valid only during the callback. */
struct dns_result {
	enum dns_status		 status;
	char			 error[256];	/* why, for logs and bounces */
	int			 implicit;	/* no MX: the domain itself */
	size_t			 ntargets;
	struct dns_target	 targets[DNS_MAX_TARGETS];
};

typedef void	(*dns_cb)(const struct dns_result *, void *);

/* An MX record as the ordering works on it. */
struct dns_mx {
	char		host[DNS_HOST_SIZE];
	unsigned	pref;
};

int	 dns_init(struct event_base *, const char *, char **);
int	 dns_set_servers(const char *, char **);
int	 dns_parse_servers(const char *, char **, char **);
void	 dns_shutdown(void);
struct dns_query *dns_resolve_mx(const char *, dns_cb, void *);
struct dns_query *dns_resolve_host(const char *, dns_cb, void *);
void	 dns_cancel(struct dns_query *);
void	 dns_mx_order(struct dns_mx *, size_t, unsigned (*)(void));
const char *dns_status_str(enum dns_status);

#endif
