/*
 * dvproto.h: the client side of Dovecot's authentication protocol
 * (version 1, as Dovecot's auth-client socket speaks it), as pure
 * functions: the bytes from the server cut into lines, each line read
 * into a reply, and the lines tern sends written.  See dvauth.h for the
 * connection that uses them.
 */
#ifndef DVPROTO_H
#define DVPROTO_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stddef.h>

/* The protocol version tern speaks; the server's major must match. */
#define DVPROTO_MAJOR		1
#define DVPROTO_MINOR		2

/* Longest line taken from the server, LF excluded (Dovecot's own bound). */
#define DVPROTO_LINE_MAX	16384
/* A mechanism name (RFC 4422 section 3.1: at most 20 characters). */
#define DVPROTO_MECH_SIZE	21
/* Mechanisms kept from one handshake. */
#define DVPROTO_MECH_MAX	32

/* A MECH line's flags that matter to an SMTP server. */
#define DVPROTO_MECH_PLAINTEXT	0x01	/* the password crosses the wire */
#define DVPROTO_MECH_ANONYMOUS	0x02	/* no identity at all */
#define DVPROTO_MECH_PRIVATE	0x04	/* not to be announced */

/* Cuts the server's bytes into lines; one per connection. */
struct dvproto_in {
	char	 line[DVPROTO_LINE_MAX + 1];
	size_t	 len;
	int	 overflow;	/* the line being read is too long */
};

enum dvproto_kind {
	DVPROTO_IGNORE,		/* SPID, CUID, COOKIE, anything unknown */
	DVPROTO_VERSION,
	DVPROTO_MECH,
	DVPROTO_DONE,
	DVPROTO_OK,
	DVPROTO_CONT,
	DVPROTO_FAIL,
};

/*
 * One line from the server, read in place: the pointers lead into the
 * line given to dvproto_parse(), which must outlive them.
 */
struct dvproto_reply {
	enum dvproto_kind	 kind;
	unsigned		 major;		/* VERSION */
	unsigned		 minor;
	char			 mech[DVPROTO_MECH_SIZE];  /* MECH, upper case */
	int			 flags;		/* MECH: DVPROTO_MECH_* */
	unsigned		 id;		/* OK, CONT, FAIL */
	const char		*data;		/* CONT: base64, maybe "" */
	const char		*user;		/* OK, FAIL: user=, or NULL */
	const char		*reason;	/* FAIL: reason=, or NULL */
	int			 temp;		/* FAIL: temporary (temp) */
};

/* What an AUTH request tells the server about the client. */
struct dvproto_auth {
	unsigned	 id;
	const char	*mech;
	const char	*service;	/* "smtp" */
	const char	*lip;		/* numeric addresses, or NULL */
	const char	*rip;
	unsigned	 lport;		/* 0: not given */
	unsigned	 rport;
	int		 secured;	/* under TLS */
	const char	*session;	/* tern's session id, or NULL */
	const char	*resp;		/* initial response, base64; NULL none */
};

int	dvproto_take(struct dvproto_in *, const char *, size_t, size_t *,
	    char **);
int	dvproto_parse(char *, struct dvproto_reply *);
int	dvproto_is_base64(const char *);
int	dvproto_is_mech(const char *);
int	dvproto_is_offered(const char *, int);
int	dvproto_unescape(char *);

int	dvproto_handshake(char *, size_t, unsigned);
int	dvproto_auth_line(char *, size_t, const struct dvproto_auth *);
int	dvproto_cont_line(char *, size_t, unsigned, const char *);
int	dvproto_cancel_line(char *, size_t, unsigned);

int	dvproto_parse_socket(const char *, struct sockaddr_storage *,
	    socklen_t *, char **);

#endif
