/*
 * proxy.h: the PROXY protocol header, versions 1 and 2, as HAProxy's
 * specification (doc/proxy-protocol.txt) defines it: a load balancer
 * sends it first on a connection to tell who its client is.  Pure
 * logic: parses bytes already read, never reads, never decides policy.
 */
#ifndef PROXY_H
#define PROXY_H

#include <sys/socket.h>

#include <stddef.h>

/* A version 1 line, CRLF included, is never longer. */
#define PROXY_V1_MAX		107
/* The fixed part of a version 2 header: signature, command, length. */
#define PROXY_V2_FIXED		16
/* The longest version 2 header: the fixed part and a 16-bit length. */
#define PROXY_V2_MAX		(PROXY_V2_FIXED + 65535)

enum proxy_result {
	PROXY_ERROR = -1,	/* not a header, or a malformed one */
	PROXY_MORE = 0,		/* a valid beginning: wait for more */
	PROXY_DONE = 1,		/* a whole header, hdr->len octets */
};

enum proxy_command {
	PROXY_CMD_LOCAL,	/* the proxy's own connection (v2 LOCAL) */
	PROXY_CMD_PROXY,	/* relayed for the client it names */
};

/*
 * What one header says.  family is AF_INET or AF_INET6 when the header
 * names a TCP client (src and dst are then set, ports included); it is
 * AF_UNSPEC for v1 UNKNOWN, v2 LOCAL and v2 UNSPEC, AF_UNIX for a v2
 * UNIX header (its paths are not kept).  stream is 0 for a v2 DGRAM
 * header.
 */
struct proxy_hdr {
	int			 version;	/* 1 or 2 */
	enum proxy_command	 command;
	int			 family;
	int			 stream;
	struct sockaddr_storage	 src;
	struct sockaddr_storage	 dst;
	socklen_t		 srclen;
	socklen_t		 dstlen;
	size_t			 len;	/* octets of header, when done */
};

enum proxy_result proxy_parse(const unsigned char *, size_t,
	    struct proxy_hdr *, size_t *, const char **);
const char	*proxy_command_str(enum proxy_command);

#endif
