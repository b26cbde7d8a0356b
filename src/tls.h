/*
 * tls.h: OpenSSL contexts and TLS on bufferevents.  A context is built
 * once at start-up and shared by every connection of its side; a session
 * turns its plain connection into a TLS one after STARTTLS, asks here for
 * what to log about it, and closes it here so TLS is shut down first.
 * Nothing else in tern calls OpenSSL.
 */
#ifndef TLS_H
#define TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct bufferevent;
struct event_base;

/* Big enough for any reason tls_error() gives. */
#define TLS_ERROR_SIZE	256

SSL_CTX		*tls_client_ctx(char **);
SSL_CTX		*tls_server_ctx(const char *, const char *, char **);
struct bufferevent *tls_server_start(struct event_base *,
		    struct bufferevent *, int, SSL_CTX *, char **);
int		 tls_is_tls(struct bufferevent *);
void		 tls_ctx_free(SSL_CTX *);
struct bufferevent *tls_client_start(struct bufferevent *, SSL_CTX *,
		    const char *, const char *, char **);
void		 tls_close(struct bufferevent *);
const char	*tls_version(struct bufferevent *);
const char	*tls_cipher(struct bufferevent *);
int		 tls_is_trusted(struct bufferevent *);
const char	*tls_error(struct bufferevent *, char *, size_t);

#endif
