/*
 * tls.c: OpenSSL contexts and TLS bufferevents.  It builds the contexts
 * (TLS 1.2 at least, the system's CA store), starts TLS on a connection
 * that has said STARTTLS, explains why a handshake failed, and shuts TLS
 * down before a connection is freed.  It keeps no per-connection state of
 * its own: the SSL object lives in the bufferevent, which frees it.  It
 * must never block: every handshake runs on the loop.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "util.h"

/* The oldest OpenSSL error on this thread's queue, as text; then clear. */
static void
tls_last_error(char *buf, size_t size, const char *what)
{
	unsigned long	 e = ERR_get_error();
	const char	*reason;

	reason = e != 0 ? ERR_reason_error_string(e) : NULL;
	if (reason == NULL)
		reason = "unknown error";
	snprintf(buf, size, "%s: %s", what, reason);
	ERR_clear_error();
}

/* The versions tls_protocols may name, oldest first. */
static const struct {
	const char	*name;
	int		 bit;
	int		 version;
} tls_protocols[] = {
	{ "TLSv1", TLS_PROTO_1_0, TLS1_VERSION },
	{ "TLSv1.1", TLS_PROTO_1_1, TLS1_1_VERSION },
	{ "TLSv1.2", TLS_PROTO_1_2, TLS1_2_VERSION },
	{ "TLSv1.3", TLS_PROTO_1_3, TLS1_3_VERSION },
};

/* Key exchange groups, Mozilla's "intermediate" choice. */
#define TLS_GROUPS	"X25519:prime256v1:secp384r1"

/*
 * "TLSv1.2 TLSv1.3" (blanks or commas between) into TLS_PROTO_* bits.
 * The versions must follow each other: OpenSSL offers a range.
 */
int
tls_parse_protocols(const char *s, int *out, char **cause)
{
	const char	*p = s;
	size_t		 i, len;
	int		 bits = 0, bit, lo = -1, hi = -1;

	for (;;) {
		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		len = strcspn(p, " \t,");
		bit = 0;
		for (i = 0; i < nitems(tls_protocols); i++) {
			if (strlen(tls_protocols[i].name) == len &&
			    strncasecmp(tls_protocols[i].name, p, len) == 0) {
				bit = tls_protocols[i].bit;
				if (lo == -1 || (int)i < lo)
					lo = (int)i;
				if ((int)i > hi)
					hi = (int)i;
			}
		}
		if (bit == 0) {
			xasprintf(cause, "unknown protocol \"%.*s\" (TLSv1, "
			    "TLSv1.1, TLSv1.2 or TLSv1.3)", (int)len, p);
			return -1;
		}
		bits |= bit;
		p += len;
	}
	if (bits == 0) {
		xasprintf(cause, "no protocol");
		return -1;
	}
	for (i = (size_t)lo; i <= (size_t)hi; i++) {
		if (!(bits & tls_protocols[i].bit)) {
			xasprintf(cause, "%s left out of a range: the versions "
			    "must follow each other", tls_protocols[i].name);
			return -1;
		}
	}
	*out = bits;
	return 0;
}

void
tls_format_protocols(int bits, char *buf, size_t size)
{
	size_t	i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < nitems(tls_protocols); i++) {
		if ((bits & tls_protocols[i].bit) && n < size)
			n += (size_t)snprintf(buf + n, size - n, "%s%s",
			    n > 0 ? " " : "", tls_protocols[i].name);
	}
}

/*
 * Whether OpenSSL takes a cipher string: for TLS 1.3 (tls13) a list of
 * suites, else a cipher list that selects at least one cipher.
 */
int
tls_check_ciphers(const char *s, int tls13, char **cause)
{
	SSL_CTX	*ctx;
	char	 err[TLS_ERROR_SIZE];
	int	 ok;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_last_error(err, sizeof err, "SSL_CTX_new");
		xasprintf(cause, "%s", err);
		return -1;
	}
	ok = tls13 ? SSL_CTX_set_ciphersuites(ctx, s) :
	    SSL_CTX_set_cipher_list(ctx, s);
	if (ok == 1 && tls13 &&
	    sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(ctx)) == 0)
		ok = 0;
	if (ok != 1) {
		ERR_clear_error();
		xasprintf(cause, "no %s that OpenSSL knows in \"%s\"",
		    tls13 ? "TLS 1.3 cipher suite" : "cipher", s);
	}
	SSL_CTX_free(ctx);
	return ok == 1 ? 0 : -1;
}

/* The range of versions a set of TLS_PROTO_* bits offers. */
static void
tls_protocol_range(int bits, int *min, int *max)
{
	size_t	i;

	*min = *max = 0;
	for (i = 0; i < nitems(tls_protocols); i++) {
		if (!(bits & tls_protocols[i].bit))
			continue;
		if (*min == 0)
			*min = tls_protocols[i].version;
		*max = tls_protocols[i].version;
	}
}

/*
 * The context every outbound connection shares.  Peers are verified only
 * where a session asks for it (tls_client_start), so the context itself
 * accepts any certificate: opportunistic TLS beats plaintext.
 */
SSL_CTX *
tls_client_ctx(char **cause)
{
	SSL_CTX		*ctx;
	char		 err[TLS_ERROR_SIZE];

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_last_error(err, sizeof err, "SSL_CTX_new");
		xasprintf(cause, "TLS client context: %s", err);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_last_error(err, sizeof err, "minimum protocol version");
		goto fail;
	}
	/*
	 * SSL_CERT_FILE and SSL_CERT_DIR in the environment override the
	 * system store, which is how tests bring their own CA.
	 */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_last_error(err, sizeof err, "default CA paths");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/*
	 * SMTP frames its own data (replies, the final dot), so a peer that
	 * closes without close_notify truncates nothing we would accept.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;

fail:
	xasprintf(cause, "TLS client context: %s", err);
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}

/* An address literal is never sent as SNI (RFC 6066 section 3). */
static int
tls_is_address(const char *name)
{
	struct in6_addr	a6;
	struct in_addr	a4;

	return inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1;
}

/*
 * Start a client handshake on the connection of a plain bufferevent that
 * has just been told "220" to STARTTLS.  servername goes out as SNI;
 * verify_name, when not NULL, must match the peer's certificate, which
 * must chain to a trusted CA, or the handshake fails.  Anything the peer
 * sent in plaintext after its go-ahead is discarded: it could otherwise
 * be taken as said under TLS.  On success the plain bufferevent is freed
 * and its socket belongs to the returned one, whose event callback gets
 * BEV_EVENT_CONNECTED when the handshake is done.  On failure NULL is
 * returned and the plain bufferevent is untouched.
 */
struct bufferevent *
tls_client_start(struct bufferevent *bev, SSL_CTX *ctx,
    const char *servername, const char *verify_name, char **cause)
{
	struct bufferevent	*tbev;
	struct evbuffer		*in = bufferevent_get_input(bev);
	SSL			*ssl;
	evutil_socket_t		 fd;
	char			 err[TLS_ERROR_SIZE];

	if ((ssl = SSL_new(ctx)) == NULL) {
		tls_last_error(err, sizeof err, "SSL_new");
		xasprintf(cause, "%s", err);
		return NULL;
	}
	if (servername != NULL && !tls_is_address(servername) &&
	    SSL_set_tlsext_host_name(ssl, servername) != 1) {
		tls_last_error(err, sizeof err, "server name");
		goto fail;
	}
	if (verify_name != NULL) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, verify_name) != 1) {
			tls_last_error(err, sizeof err, "host to verify");
			goto fail;
		}
	}

	evbuffer_drain(in, evbuffer_get_length(in));
	fd = bufferevent_getfd(bev);
	/* Detach the socket so that freeing the plain side keeps it open. */
	bufferevent_setfd(bev, -1);
	tbev = bufferevent_openssl_socket_new(bufferevent_get_base(bev), fd,
	    ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	bufferevent_free(bev);
	/* A close without close_notify is an EOF, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	return tbev;

fail:
	xasprintf(cause, "%s", err);
	SSL_free(ssl);
	return NULL;
}

/*
 * The context inbound connections share: our certificate chain and key,
 * the versions and ciphers of offer (by default Mozilla's "intermediate"
 * profile: TLS 1.2 and 1.3, forward secrecy and AEAD only), our cipher
 * order, no renegotiation.  Clients are never asked for a certificate.
 * Read while the files may still need root (start-up) and again on
 * SIGHUP; a session keeps the context it started with.
 */
SSL_CTX *
tls_server_ctx(const char *cert, const char *key,
    const struct tls_offer *offer, char **cause)
{
	SSL_CTX		*ctx;
	char		 err[TLS_ERROR_SIZE];
	int		 min, max;
	static const unsigned char sid[] = "tern";

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_last_error(err, sizeof err, "SSL_CTX_new");
		xasprintf(cause, "TLS server context: %s", err);
		return NULL;
	}
	tls_protocol_range(offer->protocols, &min, &max);
	if (min == 0 || SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1) {
		tls_last_error(err, sizeof err, "tls_protocols");
		xasprintf(cause, "TLS server context: %s", err);
		goto fail;
	}
	if (SSL_CTX_set_cipher_list(ctx, offer->ciphers) != 1) {
		tls_last_error(err, sizeof err, "tls_ciphers");
		xasprintf(cause, "TLS server context: %s", err);
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, offer->suites) != 1) {
		tls_last_error(err, sizeof err, "tls_ciphersuites");
		xasprintf(cause, "TLS server context: %s", err);
		goto fail;
	}
	if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		tls_last_error(err, sizeof err, "key exchange groups");
		xasprintf(cause, "TLS server context: %s", err);
		goto fail;
	}
	/* DHE with the RFC 7919 group that matches the key's strength. */
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_last_error(err, sizeof err, "certificate");
		xasprintf(cause, "%s: %s", cert, err);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_last_error(err, sizeof err, "private key");
		xasprintf(cause, "%s: %s", key, err);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_last_error(err, sizeof err, "private key");
		xasprintf(cause, "%s: does not match the certificate %s", key,
		    cert);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * Start a server handshake on a socket: a new client of an implicit TLS
 * listener (bev NULL, fd given), or a plain connection whose "220" to
 * STARTTLS has been flushed (bev given, fd ignored).  Anything the client
 * sent in plaintext after STARTTLS is discarded, never read as if said
 * under TLS (the CVE-2011-0411 class).  The plain bufferevent is freed and
 * its socket belongs to the returned one, whose event callback gets
 * BEV_EVENT_CONNECTED when the handshake is done.  NULL on failure, with
 * the plain bufferevent (or the fd) untouched.
 */
struct bufferevent *
tls_server_start(struct event_base *base, struct bufferevent *bev, int fd,
    SSL_CTX *ctx, char **cause)
{
	struct bufferevent	*tbev;
	SSL			*ssl;
	char			 err[TLS_ERROR_SIZE];

	if ((ssl = SSL_new(ctx)) == NULL) {
		tls_last_error(err, sizeof err, "SSL_new");
		xasprintf(cause, "%s", err);
		return NULL;
	}
	if (bev != NULL) {
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		fd = bufferevent_getfd(bev);
		bufferevent_setfd(bev, -1);
	}
	tbev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tbev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	if (bev != NULL)
		bufferevent_free(bev);
	bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
	return tbev;
}

/* Whether a connection's bufferevent is a TLS one. */
int
tls_is_tls(struct bufferevent *bev)
{
	return bufferevent_openssl_get_ssl(bev) != NULL;
}

/*
 * Free a connection's bufferevent, plain or TLS.  A TLS connection whose
 * handshake finished first sends its close_notify, as far as the socket
 * takes it without blocking; freeing closes the socket and the SSL.
 */
void
tls_close(struct bufferevent *bev)
{
	SSL	*ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL &&
	    SSL_is_init_finished(ssl) &&
	    !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
		SSL_shutdown(ssl);
		ERR_clear_error();
	}
	bufferevent_free(bev);
}

/* "TLSv1.3", for logs; "none" on a plain connection. */
const char *
tls_version(struct bufferevent *bev)
{
	SSL	*ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return "none";
	return SSL_get_version(ssl);
}

/* The cipher suite's name, for logs. */
const char *
tls_cipher(struct bufferevent *bev)
{
	SSL		*ssl;
	const char	*name;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL ||
	    (name = SSL_get_cipher_name(ssl)) == NULL)
		return "none";
	return name;
}

/* Did the peer's certificate chain to a trusted CA? */
int
tls_is_trusted(struct bufferevent *bev)
{
	SSL	*ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return 0;
	return SSL_get_verify_result(ssl) == X509_V_OK;
}

/*
 * Why a handshake failed, for logs and bounces: the certificate check
 * when one was asked for and failed, else OpenSSL's first error.  The
 * bufferevent's error queue is emptied.
 */
const char *
tls_error(struct bufferevent *bev, char *buf, size_t size)
{
	SSL		*ssl;
	unsigned long	 e, first = 0;
	long		 v;
	const char	*reason;

	while ((e = bufferevent_get_openssl_error(bev)) != 0) {
		if (first == 0)
			first = e;
	}
	ERR_clear_error();
	ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl != NULL && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) &&
	    (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, size, "certificate verification failed: %s",
		    X509_verify_cert_error_string(v));
		return buf;
	}
	if (first != 0) {
		if ((reason = ERR_reason_error_string(first)) == NULL)
			reason = "unknown error";
		snprintf(buf, size, "%s", reason);
		return buf;
	}
	snprintf(buf, size, "connection closed by peer");
	return buf;
}
