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

/* Protocol versions a server may offer (tls_protocols). */
#define TLS_PROTO_1_0	0x01
#define TLS_PROTO_1_1	0x02
#define TLS_PROTO_1_2	0x04
#define TLS_PROTO_1_3	0x08

/*
 * Mozilla's "intermediate" profile (version 5.7): TLS 1.2 and 1.3, only
 * forward-secret key exchange (ECDHE, DHE) with AEAD ciphers.
 */
#define TLS_DEFAULT_PROTOCOLS	"TLSv1.2 TLSv1.3"
#define TLS_DEFAULT_CIPHERS						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"		\
	"DHE-RSA-CHACHA20-POLY1305"
#define TLS_DEFAULT_SUITES						\
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"		\
	"TLS_CHACHA20_POLY1305_SHA256"

/* What a server context offers: OpenSSL cipher strings and versions. */
struct tls_offer {
	const char	*ciphers;	/* TLS 1.2 and older */
	const char	*suites;	/* TLS 1.3 */
	int		 protocols;	/* TLS_PROTO_*, a contiguous range */
};

int		 tls_check_ciphers(const char *, int, char **);
int		 tls_parse_protocols(const char *, int *, char **);
void		 tls_format_protocols(int, char *, size_t);
SSL_CTX		*tls_client_ctx(char **);
SSL_CTX		*tls_server_ctx(const char *, const char *,
		    const struct tls_offer *, char **);
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
