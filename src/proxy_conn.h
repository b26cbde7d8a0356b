/*
 * proxy_conn.h: read the PROXY protocol header that starts a connection
 * from a load balancer, and not one octet more.
 */
#ifndef PROXY_CONN_H
#define PROXY_CONN_H

#include <stdint.h>

#include "proxy.h"

struct event_base;
struct proxy_conn;

/*
 * Told once: the header (NULL on failure, with why), the descriptor now
 * the caller's again.  The reader is already freed when this is called.
 */
typedef void	(*proxy_conn_cb)(int, const struct proxy_hdr *, const char *,
		    void *);

struct proxy_conn *proxy_conn_new(struct event_base *, int, uint64_t,
	    proxy_conn_cb, void *);
void	 proxy_conn_free(struct proxy_conn *);

#endif
