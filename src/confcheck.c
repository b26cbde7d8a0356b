/*
 * confcheck.c: every file a configuration names, read the way ternd
 * reads it at start: the TLS certificate and key (parsed, and matching
 * each other), the users and aliases files, the gateway's credentials,
 * Dovecot's auth socket.
 * ternd loads its users through here, and "ternd -n" and "ternctl
 * check" ask it for the same errors the daemon would meet, so a check
 * never says "ok" of a configuration the daemon refuses.  It keeps
 * nothing open, changes nothing, and never prints a secret.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "confcheck.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* Longest line of the gateway's credentials file, as mta.c reads it. */
#define CONFCHECK_AUTH_LINE	1024

/* A message to fn, or to the log when there is none. */
static void __attribute__((format(printf, 3, 4)))
confcheck_say(users_warn_fn fn, void *arg, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("vasprintf");
	va_end(ap);
	if (fn != NULL)
		fn(msg, arg);
	else
		log_warnx("%s", msg);
	free(msg);
}

/*
 * The users and aliases files of a configuration, warnings to warn
 * (NULL: the log): a struct users, or NULL with *cause set.
 */
struct users *
confcheck_load_users(const struct config *conf, users_warn_fn warn,
    void *arg, char **cause)
{
	struct users_params	p;
	struct stat		st;

	memset(&p, 0, sizeof p);
	p.users_path = conf->users;
	p.aliases_path = conf->aliases;
	p.local_domains = (const char *const *)conf->local_domains;
	p.nlocal_domains = conf->nlocal_domains;
	p.default_domain = conf->default_domain;
	p.mailboxes = conf->mailboxes;
	p.postmaster = conf->postmaster;
	p.warn = warn;
	p.warn_arg = arg;
	/* Hashes, and {PLAIN} secrets even more, are for tern's eyes. */
	if (conf->users[0] != '\0' && stat(conf->users, &st) == 0 &&
	    (st.st_mode & S_IROTH))
		confcheck_say(warn, arg, "users %s is readable by everyone: "
		    "it holds passwords; chmod o-r it", conf->users);
	return users_load(&p, cause);
}

/* A file that must open for reading: 0, or -1 with *cause set. */
static int
confcheck_open(const char *key, const char *path, char **cause)
{
	FILE	*f;

	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s %s: %s", key, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

/*
 * The inbound TLS context of a configuration, *ctx NULL without TLS: 0,
 * or -1 with *cause set.  A file that does not open is said so before
 * OpenSSL has its say about one that does not parse or match.
 */
int
confcheck_load_tls(const struct config *conf, SSL_CTX **ctx, char **cause)
{
	*ctx = NULL;
	if (conf->tls_cert[0] == '\0')
		return 0;
	if (confcheck_open("tls_cert", conf->tls_cert, cause) == -1 ||
	    confcheck_open("tls_key", conf->tls_key, cause) == -1)
		return -1;
	if ((*ctx = tls_server_ctx(conf->tls_cert, conf->tls_key,
	    &(struct tls_offer){ conf->tls_ciphers, conf->tls_ciphersuites,
	    conf->tls_protocols }, cause)) == NULL)
		return -1;
	return 0;
}

/* The gateway's "user:password" line; the line is wiped, never shown. */
static size_t
confcheck_gateway_auth(const struct config *conf, users_warn_fn error,
    void *arg)
{
	const char	*path = conf->gateway_auth_file;
	FILE		*f;
	char		 line[CONFCHECK_AUTH_LINE];
	size_t		 n = 0;

	if (*path == '\0')
		return 0;
	if ((f = fopen(path, "r")) == NULL) {
		confcheck_say(error, arg, "gateway_auth_file %s: %s", path,
		    strerror(errno));
		return 1;
	}
	if (fgets(line, sizeof line, f) == NULL ||
	    strchr(line, ':') == NULL) {
		confcheck_say(error, arg, "gateway_auth_file %s: %s", path,
		    ferror(f) ? strerror(errno) : "expected one line "
		    "\"user:password\"");
		n = 1;
	}
	explicit_bzero(line, sizeof line);
	fclose(f);
	return n;
}

/*
 * Dovecot's auth socket, when it checks AUTH: only a warning when it is
 * missing, since Dovecot may start after tern, and ternd waits for it.
 */
static void
confcheck_dovecot(const struct config *conf, users_warn_fn warn, void *arg)
{
	const char	*path = conf->dovecot_auth_socket;
	struct stat	 st;

	if (conf->auth_backend != CONFIG_AUTH_DOVECOT ||
	    strncmp(path, "inet:", 5) == 0)
		return;
	if (strncmp(path, "unix:", 5) == 0)
		path += 5;
	if (stat(path, &st) == -1)
		confcheck_say(warn, arg, "dovecot_auth_socket %s: %s; AUTH is "
		    "not offered until Dovecot makes it", path,
		    strerror(errno));
	else if (!S_ISSOCK(st.st_mode))
		confcheck_say(warn, arg, "dovecot_auth_socket %s: not a "
		    "socket", path);
}

/*
 * Every file of conf, read now: each error to error, each warning to
 * warn (NULL: the log).  Returns the number of errors.
 */
size_t
confcheck_files(const struct config *conf, users_warn_fn error,
    users_warn_fn warn, void *arg)
{
	struct users	*u;
	SSL_CTX		*ctx;
	char		*cause;
	size_t		 n = 0;

	if (confcheck_load_tls(conf, &ctx, &cause) == -1) {
		confcheck_say(error, arg, "%s", cause);
		free(cause);
		n++;
	} else
		tls_ctx_free(ctx);
	if ((u = confcheck_load_users(conf, warn, arg, &cause)) == NULL) {
		confcheck_say(error, arg, "%s", cause);
		free(cause);
		n++;
	} else
		users_free(u);
	n += confcheck_gateway_auth(conf, error, arg);
	confcheck_dovecot(conf, warn, arg);
	return n;
}
