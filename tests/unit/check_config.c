/*
 * check_config.c: the configuration module.  Good files give the values
 * they say; every bad file is refused with a cause naming the file, the
 * line and the key (also for keys that need another key); defaults, the
 * built-in configuration, the print -> load round trip, the shipped
 * example file, and the local domain and relay client questions.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tls.h"
#include "util.h"

/* A temporary file holding text; its name is written to path. */
static void
write_tmp(const char *text, size_t len, char *path, size_t size)
{
	const char	*dir = getenv("TMPDIR");
	FILE		*f;
	int		 fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	ck_assert_int_ne(util_snprintf(path, size, "%s/tern-config-XXXXXX",
	    dir), -1);
	ck_assert_int_ne(fd = mkstemp(path), -1);
	ck_assert_ptr_nonnull(f = fdopen(fd, "w"));
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Load text as a file; the file is gone again on return. */
static struct config *
load_text(const char *text, char *path, size_t size, char **cause)
{
	struct config	*c;

	write_tmp(text, strlen(text), path, size);
	*cause = NULL;
	c = config_load(path, cause);
	unlink(path);
	return c;
}

static struct config *
load_ok(const char *text)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause;

	c = load_text(text, path, sizeof path, &cause);
	ck_assert_msg(c != NULL, "load failed: %s\n---\n%s---", cause, text);
	ck_assert_str_eq(c->path, path);
	return c;
}

/* Whether two configurations hold the same values (path aside). */
static void
assert_same(const struct config *a, const struct config *b)
{
	size_t	i;

	ck_assert_str_eq(a->hostname, b->hostname);
	ck_assert_str_eq(a->spool, b->spool);
	ck_assert_int_eq(a->log, b->log);
	ck_assert_str_eq(a->log_server, b->log_server);
	ck_assert_uint_eq(a->log_server_port, b->log_server_port);
	ck_assert_int_eq(a->debug, b->debug);
	ck_assert_uint_eq(a->shutdown_timeout, b->shutdown_timeout);
	ck_assert_str_eq(a->user, b->user);
	ck_assert_str_eq(a->group, b->group);
	ck_assert_uint_eq(a->nlisten, b->nlisten);
	for (i = 0; i < a->nlisten; i++) {
		ck_assert_uint_eq(a->listen[i].sslen, b->listen[i].sslen);
		ck_assert_mem_eq(&a->listen[i].ss, &b->listen[i].ss,
		    a->listen[i].sslen);
		ck_assert_str_eq(a->listen[i].text, b->listen[i].text);
	}
	ck_assert_uint_eq(a->min_free_space, b->min_free_space);
	ck_assert_int_eq(a->tls_protocols, b->tls_protocols);
	ck_assert_str_eq(a->tls_ciphers, b->tls_ciphers);
	ck_assert_str_eq(a->tls_ciphersuites, b->tls_ciphersuites);
	ck_assert_uint_eq(a->max_connections, b->max_connections);
	ck_assert_uint_eq(a->max_connections_per_ip,
	    b->max_connections_per_ip);
	ck_assert_uint_eq(a->max_message_size, b->max_message_size);
	ck_assert_uint_eq(a->max_recipients, b->max_recipients);
	ck_assert_uint_eq(a->max_errors, b->max_errors);
	ck_assert_uint_eq(a->command_timeout, b->command_timeout);
	ck_assert_uint_eq(a->data_timeout, b->data_timeout);
	ck_assert_int_eq(a->bare_newlines, b->bare_newlines);
	ck_assert_uint_eq(a->nlocal_domains, b->nlocal_domains);
	for (i = 0; i < a->nlocal_domains; i++)
		ck_assert_str_eq(a->local_domains[i], b->local_domains[i]);
	ck_assert_uint_eq(a->nrelay_networks, b->nrelay_networks);
	for (i = 0; i < a->nrelay_networks; i++) {
		ck_assert_int_eq(a->relay_networks[i].family,
		    b->relay_networks[i].family);
		ck_assert_uint_eq(a->relay_networks[i].prefix,
		    b->relay_networks[i].prefix);
		ck_assert_mem_eq(a->relay_networks[i].addr,
		    b->relay_networks[i].addr, 16);
	}
	ck_assert_uint_eq(a->queue_interval, b->queue_interval);
	ck_assert_uint_eq(a->max_tries, b->max_tries);
	ck_assert_uint_eq(a->max_deliveries, b->max_deliveries);
	ck_assert_uint_eq(a->max_per_destination, b->max_per_destination);
	ck_assert_uint_eq(a->remote_port, b->remote_port);
	ck_assert_str_eq(a->dns_servers, b->dns_servers);
	ck_assert_str_eq(a->gateway, b->gateway);
	ck_assert_uint_eq(a->gateway_port, b->gateway_port);
	ck_assert_int_eq(a->gateway_all, b->gateway_all);
	ck_assert_uint_eq(a->gateway_after_tries, b->gateway_after_tries);
	ck_assert_int_eq(a->gateway_tls_verify, b->gateway_tls_verify);
	ck_assert_str_eq(a->gateway_auth_file, b->gateway_auth_file);
	ck_assert_int_eq(a->starttls, b->starttls);
	ck_assert_uint_eq(a->connect_timeout, b->connect_timeout);
	ck_assert_uint_eq(a->reply_timeout, b->reply_timeout);
	ck_assert_uint_eq(a->delivery_data_timeout, b->delivery_data_timeout);
	ck_assert_uint_eq(a->idle_timeout, b->idle_timeout);
	ck_assert_uint_eq(a->max_received_headers, b->max_received_headers);
	ck_assert_int_eq(a->transport, b->transport);
	ck_assert_str_eq(a->lmtp_host, b->lmtp_host);
	ck_assert_uint_eq(a->lmtp_port, b->lmtp_port);
	ck_assert_uint_eq(a->lmtp_max_connections, b->lmtp_max_connections);
}

/* The port and printable address of a listen entry. */
static void
listen_addr(const struct config_listen *l, char *buf, size_t size,
    int *port)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	if (l->ss.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)&l->ss;
		ck_assert_uint_eq(l->sslen, sizeof *sin);
		ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, buf,
		    size));
		*port = ntohs(sin->sin_port);
	} else {
		ck_assert_int_eq(l->ss.ss_family, AF_INET6);
		sin6 = (const struct sockaddr_in6 *)(const void *)&l->ss;
		ck_assert_uint_eq(l->sslen, sizeof *sin6);
		ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr,
		    buf, size));
		*port = ntohs(sin6->sin6_port);
	}
}

/* The relay networks as "addr/prefix addr/prefix". */
static void
nets_text(const struct config *c, char *buf, size_t size)
{
	char	a[INET6_ADDRSTRLEN], one[64];
	size_t	i;

	buf[0] = '\0';
	for (i = 0; i < c->nrelay_networks; i++) {
		ck_assert_ptr_nonnull(inet_ntop(c->relay_networks[i].family,
		    c->relay_networks[i].addr, a, sizeof a));
		util_snprintf(one, sizeof one, "%s%s/%u", i > 0 ? " " : "", a,
		    c->relay_networks[i].prefix);
		util_strlcat(buf, one, size);
	}
}

/* The listen addresses as "addr port text; addr port text". */
static void
listen_text(const struct config *c, char *buf, size_t size)
{
	char	a[INET6_ADDRSTRLEN], one[128];
	size_t	i;
	int	port;

	buf[0] = '\0';
	for (i = 0; i < c->nlisten; i++) {
		listen_addr(&c->listen[i], a, sizeof a, &port);
		util_snprintf(one, sizeof one, "%s%s %d %s", i > 0 ? "; " : "",
		    a, port, c->listen[i].text);
		util_strlcat(buf, one, size);
	}
}

static void
domains_text(const struct config *c, char *buf, size_t size)
{
	size_t	i;

	buf[0] = '\0';
	for (i = 0; i < c->nlocal_domains; i++) {
		if (i > 0)
			util_strlcat(buf, " ", size);
		util_strlcat(buf, c->local_domains[i], size);
	}
}

/* Good files: the value of one number, bool or enum field. */
static const struct {
	const char	*text;
	size_t		 offset;
	int		 is_int;	/* int field, else uint64_t */
	uint64_t	 want;
} good_numbers[] = {
	{ "[smtp]\nauth_backend = dovecot\n",
	  offsetof(struct config, auth_backend), 1, CONFIG_AUTH_DOVECOT },
	{ "[smtp]\nauth_backend = users\n",
	  offsetof(struct config, auth_backend), 1, CONFIG_AUTH_USERS },
	{ "[main]\nmin_free_space = 0\n",
	  offsetof(struct config, min_free_space), 0, 0 },
	{ "[main]\nmin_free_space = 1G\n",
	  offsetof(struct config, min_free_space), 0, 1073741824 },
	{ "[smtp]\ntls_protocols = TLSv1.3\n",
	  offsetof(struct config, tls_protocols), 1, TLS_PROTO_1_3 },
	{ "[smtp]\ntls_protocols = tlsv1.2,TLSv1.1\n",
	  offsetof(struct config, tls_protocols), 1,
	  TLS_PROTO_1_1 | TLS_PROTO_1_2 },
	{ "[smtp]\nmax_recipients = 5\n",
	  offsetof(struct config, max_recipients), 0, 5 },
	{ "[smtp]\nmax_recipients = 100000\n",
	  offsetof(struct config, max_recipients), 0, 100000 },
	{ "[smtp]\nmax_recipients=1\n",
	  offsetof(struct config, max_recipients), 0, 1 },
	{ "[smtp]\n  max_errors   =   7   ; why seven\n",
	  offsetof(struct config, max_errors), 0, 7 },
	{ "[smtp]\r\nmax_errors = 8\r\n",
	  offsetof(struct config, max_errors), 0, 8 },
	{ "\xef\xbb\xbf[smtp]\nmax_errors = 9\n",
	  offsetof(struct config, max_errors), 0, 9 },
	{ "; comment\n# comment\n\n[smtp]\n# max_errors = 1\nmax_errors = 10",
	  offsetof(struct config, max_errors), 0, 10 },
	{ "[smtp]\nmax_connections = 1\n",
	  offsetof(struct config, max_connections), 0, 1 },
	{ "[smtp]\nmax_connections_per_ip = 0\n",
	  offsetof(struct config, max_connections_per_ip), 0, 0 },
	{ "[smtp]\nmax_message_size = 10M\n",
	  offsetof(struct config, max_message_size), 0, 10485760 },
	{ "[smtp]\nmax_message_size = 1K\n",
	  offsetof(struct config, max_message_size), 0, 1024 },
	{ "[smtp]\nmax_message_size = 1024\n",
	  offsetof(struct config, max_message_size), 0, 1024 },
	{ "[smtp]\nmax_message_size = 2G\n",
	  offsetof(struct config, max_message_size), 0, 2147483648ULL },
	{ "[smtp]\nmax_message_size = 512k\n",
	  offsetof(struct config, max_message_size), 0, 524288 },
	{ "[smtp]\ncommand_timeout = 30s\n",
	  offsetof(struct config, command_timeout), 0, 30000 },
	{ "[smtp]\ncommand_timeout = 90\n",
	  offsetof(struct config, command_timeout), 0, 90000 },
	{ "[smtp]\ncommand_timeout = 1500ms\n",
	  offsetof(struct config, command_timeout), 0, 1500 },
	{ "[smtp]\ndata_timeout = 10m\n",
	  offsetof(struct config, data_timeout), 0, 600000 },
	{ "[smtp]\ndata_timeout = 2h\n",
	  offsetof(struct config, data_timeout), 0, 7200000 },
	{ "[smtp]\ndata_timeout = 1d\n",
	  offsetof(struct config, data_timeout), 0, 86400000 },
	{ "[main]\nshutdown_timeout = 0\n",
	  offsetof(struct config, shutdown_timeout), 0, 0 },
	{ "[main]\nshutdown_timeout = 2m\n",
	  offsetof(struct config, shutdown_timeout), 0, 120000 },
	{ "[main]\ndebug = yes\n", offsetof(struct config, debug), 1, 1 },
	{ "[main]\ndebug = On\n", offsetof(struct config, debug), 1, 1 },
	{ "[main]\ndebug = true\n", offsetof(struct config, debug), 1, 1 },
	{ "[main]\ndebug = 1\n", offsetof(struct config, debug), 1, 1 },
	{ "[main]\ndebug = no\n", offsetof(struct config, debug), 1, 0 },
	{ "[main]\ndebug = off\n", offsetof(struct config, debug), 1, 0 },
	{ "[main]\ndebug = FALSE\n", offsetof(struct config, debug), 1, 0 },
	{ "[main]\ndebug = 0\n", offsetof(struct config, debug), 1, 0 },
	{ "[main]\nlog = stderr\n", offsetof(struct config, log), 1,
	  LOG_TARGET_STDERR },
	{ "[main]\nlog = none\n", offsetof(struct config, log), 1,
	  LOG_TARGET_NONE },
	{ "[main]\nlog = syslog\n", offsetof(struct config, log), 1,
	  LOG_TARGET_SYSLOG },
	{ "[main]\nlog = file\n", offsetof(struct config, log), 1,
	  LOG_TARGET_FILE },
	{ "[main]\nlog = Remote\nlog_server = 192.0.2.9\n",
	  offsetof(struct config, log), 1, LOG_TARGET_REMOTE },
	{ "[smtp]\nbare_newlines = normalize\n",
	  offsetof(struct config, bare_newlines), 1, CONFIG_BARE_NORMALIZE },
	{ "[smtp]\nbare_newlines = reject\n",
	  offsetof(struct config, bare_newlines), 1, CONFIG_BARE_REJECT },
	{ "[smtp]\nmax_errors = 3\n[main]\ndebug = yes\n[smtp]\n"
	  "max_recipients = 4\n",
	  offsetof(struct config, max_recipients), 0, 4 },
	/* [delivery], each number at both ends of its range */
	{ "[delivery]\nqueue_interval = 1s\n",
	  offsetof(struct config, queue_interval), 0, 1000 },
	{ "[delivery]\nqueue_interval = 1d\n",
	  offsetof(struct config, queue_interval), 0, 86400000 },
	{ "[delivery]\nqueue_interval = 45m\n",
	  offsetof(struct config, queue_interval), 0, 2700000 },
	{ "[delivery]\nqueue_interval = 90\n",
	  offsetof(struct config, queue_interval), 0, 90000 },
	{ "[delivery]\nmax_tries = 1\n",
	  offsetof(struct config, max_tries), 0, 1 },
	{ "[delivery]\nmax_tries = 1000\n",
	  offsetof(struct config, max_tries), 0, 1000 },
	{ "[delivery]\nmax_deliveries = 1\n",
	  offsetof(struct config, max_deliveries), 0, 1 },
	{ "[delivery]\nmax_deliveries = 10000\n",
	  offsetof(struct config, max_deliveries), 0, 10000 },
	{ "[delivery]\nmax_per_destination = 1\n",
	  offsetof(struct config, max_per_destination), 0, 1 },
	{ "[delivery]\nmax_per_destination = 1000\n",
	  offsetof(struct config, max_per_destination), 0, 1000 },
	{ "[delivery]\nremote_port = 1\n",
	  offsetof(struct config, remote_port), 0, 1 },
	{ "[delivery]\nremote_port = 65535\n",
	  offsetof(struct config, remote_port), 0, 65535 },
	{ "[delivery]\nremote_port = 2525\n",
	  offsetof(struct config, remote_port), 0, 2525 },
	{ "[delivery]\ngateway_after_tries = 0\n",
	  offsetof(struct config, gateway_after_tries), 0, 0 },
	{ "[delivery]\ngateway = mx.example.org\ngateway_after_tries = 1\n",
	  offsetof(struct config, gateway_after_tries), 0, 1 },
	{ "[delivery]\ngateway_after_tries = 1000\ngateway = 192.0.2.1\n",
	  offsetof(struct config, gateway_after_tries), 0, 1000 },
	{ "[delivery]\ngateway = mx.example.org\ngateway_all = yes\n",
	  offsetof(struct config, gateway_all), 1, 1 },
	{ "[delivery]\ngateway_all = no\n",
	  offsetof(struct config, gateway_all), 1, 0 },
	{ "[delivery]\ngateway_tls_verify = yes\n",
	  offsetof(struct config, gateway_tls_verify), 1, 1 },
	{ "[delivery]\ngateway_tls_verify = off\n",
	  offsetof(struct config, gateway_tls_verify), 1, 0 },
	{ "[delivery]\nstarttls = no\n",
	  offsetof(struct config, starttls), 1, 0 },
	{ "[delivery]\nstarttls = TRUE\n",
	  offsetof(struct config, starttls), 1, 1 },
	{ "[delivery]\nconnect_timeout = 1s\n",
	  offsetof(struct config, connect_timeout), 0, 1000 },
	{ "[delivery]\nconnect_timeout = 1h\n",
	  offsetof(struct config, connect_timeout), 0, 3600000 },
	{ "[delivery]\nreply_timeout = 1000ms\n",
	  offsetof(struct config, reply_timeout), 0, 1000 },
	{ "[delivery]\nreply_timeout = 60m\n",
	  offsetof(struct config, reply_timeout), 0, 3600000 },
	{ "[delivery]\ndata_timeout = 1s\n",
	  offsetof(struct config, delivery_data_timeout), 0, 1000 },
	{ "[delivery]\ndata_timeout = 3600\n",
	  offsetof(struct config, delivery_data_timeout), 0, 3600000 },
	{ "[delivery]\nidle_timeout = 1500ms\n",
	  offsetof(struct config, idle_timeout), 0, 1500 },
	{ "[delivery]\nidle_timeout = 1h\n",
	  offsetof(struct config, idle_timeout), 0, 3600000 },
	{ "[delivery]\nmax_received_headers = 1\n",
	  offsetof(struct config, max_received_headers), 0, 1 },
	{ "[delivery]\nmax_received_headers = 1000\n",
	  offsetof(struct config, max_received_headers), 0, 1000 },
	/* A gateway with no port gets 25. */
	{ "[delivery]\ngateway = mx.example.org\n",
	  offsetof(struct config, gateway_port), 0, 25 },
	{ "[delivery]\ngateway =\n",
	  offsetof(struct config, gateway_port), 0, 25 },
	/* A log server with no port gets syslog's 514. */
	{ "[main]\nlog_server = logs.example.org\n",
	  offsetof(struct config, log_server_port), 0, 514 },
	{ "[main]\nlog_server =\n",
	  offsetof(struct config, log_server_port), 0, 514 },
	{ "[main]\nlog_server = [::1]:1514\n",
	  offsetof(struct config, log_server_port), 0, 1514 },
};

START_TEST(test_good_numbers)
{
	struct config	*c = load_ok(good_numbers[_i].text);
	const char	*field = (const char *)c + good_numbers[_i].offset;
	uint64_t	 got;
	int		 i;

	if (good_numbers[_i].is_int) {
		memcpy(&i, field, sizeof i);
		got = (uint64_t)i;
	} else
		memcpy(&got, field, sizeof got);
	ck_assert_msg(got == good_numbers[_i].want, "%s: got %llu",
	    good_numbers[_i].text, (unsigned long long)got);
	config_free(c);
}
END_TEST

/* Good files: strings and lists, compared in a printable form. */
enum what {
	W_HOSTNAME, W_SPOOL, W_LISTEN, W_NETS, W_DOMAINS, W_DNS, W_GATEWAY,
	W_AUTH_FILE, W_LOG_SERVER, W_USER, W_GROUP, W_TRANSPORT
};

static const struct {
	const char	*text;
	enum what	 what;
	const char	*want;
} good_strings[] = {
	{ "[main]\nhostname = mx.example.org\n", W_HOSTNAME,
	  "mx.example.org" },
	{ "[main]\nhostname = MX.Example.org.\n", W_HOSTNAME,
	  "MX.Example.org" },
	{ "[main]\nhostname = localhost\n", W_HOSTNAME, "localhost" },
	{ "[main]\nspool = /srv/tern spool\n", W_SPOOL, "/srv/tern spool" },
	{ "[smtp]\nlisten = 192.0.2.1:2525\n", W_LISTEN,
	  "192.0.2.1 2525 192.0.2.1:2525" },
	{ "[smtp]\nlisten = *:25\n", W_LISTEN,
	  "0.0.0.0 25 *:25; :: 25 *:25" },
	{ "[smtp]\nlisten = 127.0.0.1:25,[2001:db8::1]:587 , [::]:465\n",
	  W_LISTEN, "127.0.0.1 25 127.0.0.1:25; 2001:db8::1 587 "
	  "[2001:db8::1]:587; :: 465 [::]:465" },
	{ "[smtp]\nlisten = [::1]:65535\t0.0.0.0:1\n", W_LISTEN,
	  "::1 65535 [::1]:65535; 0.0.0.0 1 0.0.0.0:1" },
	{ "[smtp]\nlisten = *:25 127.0.0.2:25\n", W_LISTEN,
	  "0.0.0.0 25 *:25; :: 25 *:25; 127.0.0.2 25 127.0.0.2:25" },
	{ "[smtp]\nrelay_networks = 10.0.0.0/8 192.0.2.7 2001:db8::/32 ::1\n",
	  W_NETS, "10.0.0.0/8 192.0.2.7/32 2001:db8::/32 ::1/128" },
	{ "[smtp]\nrelay_networks = 0.0.0.0/0,::/0\n", W_NETS,
	  "0.0.0.0/0 ::/0" },
	{ "[smtp]\nrelay_networks = 198.51.100.128/25\n", W_NETS,
	  "198.51.100.128/25" },
	{ "[smtp]\nrelay_networks = none\n", W_NETS, "" },
	{ "[smtp]\nrelay_networks = NONE\n", W_NETS, "" },
	{ "[smtp]\nrelay_networks =\n", W_NETS, "" },
	{ "[smtp]\nlocal_domains = Example.COM. mail.example.com "
	  "example.com\n", W_DOMAINS, "example.com mail.example.com" },
	{ "[smtp]\nlocal_domains = a,b-c.d,x1.y2.z3\n", W_DOMAINS,
	  "a b-c.d x1.y2.z3" },
	{ "[main]\nhostname = mx.example.net\n", W_DOMAINS,
	  "mx.example.net localhost" },
	{ "[main]\nhostname = LocalHost\n", W_DOMAINS, "localhost" },
	/* dns_servers: kept as written, one space between entries */
	{ "[delivery]\ndns_servers =\n", W_DNS, "" },
	{ "[delivery]\ndns_servers = 192.0.2.53\n", W_DNS, "192.0.2.53" },
	{ "[delivery]\ndns_servers = 192.0.2.53:5353 [2001:db8::53] "
	  "[::1]:53 2001:db8::54\n", W_DNS,
	  "192.0.2.53:5353 [2001:db8::53] [::1]:53 2001:db8::54" },
	{ "[delivery]\ndns_servers = 127.0.0.1:1 ,\t[::1]:65535,::1\n",
	  W_DNS, "127.0.0.1:1 [::1]:65535 ::1" },
	{ "[delivery]\ndns_servers = [2001:DB8::53]:53\n", W_DNS,
	  "[2001:DB8::53]:53" },
	/* log_server: like the gateway, 514 by default */
	{ "[main]\nlog_server =\n", W_LOG_SERVER, " 514" },
	/* user and group */
	{ "[main]\nuser = mail\n", W_USER, "mail" },
	{ "[main]\nuser = _tern-2.x\n", W_USER, "_tern-2.x" },
	{ "[main]\nuser = machine$\n", W_USER, "machine$" },
	{ "[main]\ngroup =\n", W_GROUP, "" },
	{ "[main]\ngroup = nogroup\n", W_GROUP, "nogroup" },
	{ "[main]\nlog_server = Logs.Example.ORG.\n", W_LOG_SERVER,
	  "logs.example.org 514" },
	{ "[main]\nlog_server = 127.0.0.1:5514\n", W_LOG_SERVER,
	  "127.0.0.1 5514" },
	{ "[main]\nlog_server = [2001:DB8::1]\n", W_LOG_SERVER,
	  "2001:db8::1 514" },
	/* gateway: the host, without brackets, and the port */
	{ "[delivery]\ngateway =\n", W_GATEWAY, " 25" },
	{ "[delivery]\ngateway = mx.example.org\n", W_GATEWAY,
	  "mx.example.org 25" },
	{ "[delivery]\ngateway = Smart.Example.NET.:587\n", W_GATEWAY,
	  "smart.example.net 587" },
	{ "[delivery]\ngateway = localhost:1\n", W_GATEWAY, "localhost 1" },
	{ "[delivery]\ngateway = 192.0.2.1\n", W_GATEWAY, "192.0.2.1 25" },
	{ "[delivery]\ngateway = 127.0.0.1:2525\n", W_GATEWAY,
	  "127.0.0.1 2525" },
	{ "[delivery]\ngateway = [2001:DB8:0:0::1]\n", W_GATEWAY,
	  "2001:db8::1 25" },
	{ "[delivery]\ngateway = [::1]:65535\n", W_GATEWAY, "::1 65535" },
	{ "[delivery]\ngateway = [::ffff:192.0.2.1]:465\n", W_GATEWAY,
	  "::ffff:192.0.2.1 465" },
	{ "[delivery]\ngateway = x1-y.example:025\n", W_GATEWAY,
	  "x1-y.example 25" },
	/* transport: type, LMTP socket path or host, port */
	{ "[local]\ntransport = maildir\n", W_TRANSPORT, "0  0" },
	{ "[local]\ntransport = Maildir\n", W_TRANSPORT, "0  0" },
	{ "[local]\ntransport = lmtp:unix:/run/dovecot/lmtp\n", W_TRANSPORT,
	  "1 /run/dovecot/lmtp 0" },
	{ "[local]\ntransport = lmtp:inet:127.0.0.1:24\n", W_TRANSPORT,
	  "2 127.0.0.1 24" },
	{ "[local]\ntransport = lmtp:inet:Mail.Example.ORG\n", W_TRANSPORT,
	  "2 mail.example.org 24" },
	{ "[local]\ntransport = lmtp:inet:[::1]:2424\n", W_TRANSPORT,
	  "2 ::1 2424" },
	/* gateway_auth_file */
	{ "[delivery]\ngateway_auth_file =\n", W_AUTH_FILE, "" },
	{ "[delivery]\ngateway_auth_file = /etc/tern/gateway auth\n",
	  W_AUTH_FILE, "/etc/tern/gateway auth" },
};

START_TEST(test_good_strings)
{
	struct config	*c = load_ok(good_strings[_i].text);
	char		 got[1024];

	switch (good_strings[_i].what) {
	case W_HOSTNAME:
		util_strlcpy(got, c->hostname, sizeof got);
		break;
	case W_SPOOL:
		util_strlcpy(got, c->spool, sizeof got);
		break;
	case W_LISTEN:
		listen_text(c, got, sizeof got);
		break;
	case W_NETS:
		nets_text(c, got, sizeof got);
		break;
	case W_DOMAINS:
		domains_text(c, got, sizeof got);
		break;
	case W_DNS:
		util_strlcpy(got, c->dns_servers, sizeof got);
		break;
	case W_GATEWAY:
		util_snprintf(got, sizeof got, "%s %llu", c->gateway,
		    (unsigned long long)c->gateway_port);
		break;
	case W_AUTH_FILE:
		util_strlcpy(got, c->gateway_auth_file, sizeof got);
		break;
	case W_LOG_SERVER:
		util_snprintf(got, sizeof got, "%s %llu", c->log_server,
		    (unsigned long long)c->log_server_port);
		break;
	case W_USER:
		util_strlcpy(got, c->user, sizeof got);
		break;
	case W_GROUP:
		util_strlcpy(got, c->group, sizeof got);
		break;
	case W_TRANSPORT:
		util_snprintf(got, sizeof got, "%d %s %llu", c->transport,
		    c->lmtp_host, (unsigned long long)c->lmtp_port);
		break;
	}
	ck_assert_msg(strcmp(got, good_strings[_i].want) == 0,
	    "%s: got \"%s\", want \"%s\"", good_strings[_i].text, got,
	    good_strings[_i].want);
	config_free(c);
}
END_TEST

/* Bad files: the line the cause must name and text it must contain. */
static const struct {
	const char	*text;
	int		 line;
	const char	*key;
	const char	*why;
} bad[] = {
	/* Dovecot authentication */
	{ "[smtp]\nauth_backend = sasl\n", 2, "auth_backend", "sasl" },
	{ "[smtp]\ndovecot_auth_socket = run/auth\n", 2,
	  "dovecot_auth_socket", "neither an absolute path nor" },
	{ "[smtp]\ndovecot_auth_socket = inet:dovecot.example:12345\n", 2,
	  "dovecot_auth_socket", "not a numeric address" },
	{ "[smtp]\ndovecot_auth_socket = inet:127.0.0.1:0\n", 2,
	  "dovecot_auth_socket", "bad port" },
	/* TLS offers and spool space */
	{ "[smtp]\ntls_protocols = TLSv1.2 TLSv1.4\n", 2, "tls_protocols",
	  "unknown protocol \"TLSv1.4\"" },
	{ "[smtp]\ntls_protocols = TLSv1 TLSv1.3\n", 2, "tls_protocols",
	  "left out of a range" },
	{ "[smtp]\ntls_protocols =\n", 2, "tls_protocols", "no protocol" },
	{ "[smtp]\ntls_ciphers = NOPE\n", 2, "tls_ciphers",
	  "no cipher that OpenSSL knows in \"NOPE\"" },
	{ "[smtp]\ntls_ciphersuites = AES128-SHA\n", 2, "tls_ciphersuites",
	  "no TLS 1.3 cipher suite" },
	{ "[main]\nmin_free_space = 2000000G\n", 2, "min_free_space",
	  "out of range" },
	/* content filters */
	{ "[milter]\nsmtpd_milters = inet:8891\n", 2, "smtpd_milters",
	  "milter socket needs host:port \"inet:8891\"" },
	{ "[milter]\nsmtpd_milters = inet:h.example:8891\n", 2,
	  "smtpd_milters", "not an IP address or localhost" },
	{ "[milter]\nnon_smtpd_milters = unix:rel/path\n", 2,
	  "non_smtpd_milters", "not absolute" },
	{ "[milter]\nsmtpd_milters = tcp:1.2.3.4:5\n", 2, "smtpd_milters",
	  "not inet:host:port" },
	{ "[milter]\nsmtpd_milters = inet6:127.0.0.1:5\n", 2,
	  "smtpd_milters", "not an IP address" },
	{ "[milter]\nsmtpd_milters = inet:1.2.3.4:70000\n", 2,
	  "smtpd_milters", "needs host:port" },
	{ "[milter]\ndefault_action = bounce\n", 2, "default_action", "" },
	{ "[milter]\nprotocol = 7\n", 2, "protocol", "out of range" },
	/* structure */
	{ "[main]\ndebug = no\n[frobs]\nx = 1\n", 3, "[frobs]",
	  "unknown section" },
	{ "[main]\n[bogus]\n", 2, "[bogus]", "unknown section" },
	{ "[]\nx = 1\n", 1, "[]", "unknown section" },
	{ "[Main]\ndebug = no\n", 1, "[Main]", "unknown section" },
	{ "[smtp]\n\nmax_recipient = 5\n", 3, "max_recipient",
	  "unknown key" },
	{ "[main]\nlisten = *:25\n", 2, "listen", "unknown key" },
	{ "[smtp]\nMax_Errors = 3\n", 2, "Max_Errors", "unknown key" },
	{ "debug = yes\n", 1, "debug", "outside any section" },
	{ "[smtp]\nmax_errors = 3\n# c\nmax_errors = 4\n", 4, "max_errors",
	  "twice (first on line 2)" },
	{ "[smtp]\nmax_errors = 3\n[main]\n[smtp]\nmax_errors = 3\n", 5,
	  "max_errors", "twice" },
	{ "[smtp]\nmax_errors\n", 2, "", "syntax error" },
	{ "[smtp\nmax_errors = 3\n", 1, "", "syntax error" },
	{ "[main]\n\n\n\n\n\n\n\n\ndebug = perhaps\n", 10, "debug",
	  "not yes or no \"perhaps\"" },
	{ "[main]\ndebug = no\nde\0bug = yes\n", 3, "", "NUL" },
	/* numbers */
	{ "[smtp]\nmax_recipients = abc\n", 2, "max_recipients",
	  "not a number \"abc\"" },
	{ "[smtp]\nmax_recipients = -5\n", 2, "max_recipients",
	  "not a number" },
	{ "[smtp]\nmax_recipients = 5x\n", 2, "max_recipients",
	  "not a number" },
	{ "[smtp]\nmax_recipients = 1 2\n", 2, "max_recipients",
	  "not a number" },
	{ "[smtp]\nmax_recipients =\n", 2, "max_recipients",
	  "not a number" },
	{ "[smtp]\nmax_recipients = 0\n", 2, "max_recipients",
	  "out of range (1 to 100000) \"0\"" },
	{ "[smtp]\nmax_recipients = 100001\n", 2, "max_recipients",
	  "out of range" },
	{ "[smtp]\nmax_recipients = 99999999999999999999999\n", 2,
	  "max_recipients", "out of range" },
	{ "[smtp]\ndata_min_rate = 2G\n", 2, "data_min_rate",
	  "out of range" },
	{ "[smtp]\nstress_timeout = 0\n", 2, "stress_timeout",
	  "out of range" },
	{ "[smtp]\nmax_errors = 0\n", 2, "max_errors", "out of range" },
	/* sizes */
	{ "[smtp]\nmax_message_size = 25X\n", 2, "max_message_size",
	  "unknown unit \"25X\"" },
	{ "[smtp]\nmax_message_size = 25 M\n", 2, "max_message_size",
	  "unknown unit" },
	{ "[smtp]\nmax_message_size = 1.5M\n", 2, "max_message_size",
	  "unknown unit" },
	{ "[smtp]\nmax_message_size = M\n", 2, "max_message_size",
	  "not a number" },
	{ "[smtp]\nmax_message_size = 512\n", 2, "max_message_size",
	  "out of range (1K to 64G)" },
	{ "[smtp]\nmax_message_size = 65G\n", 2, "max_message_size",
	  "out of range" },
	{ "[smtp]\nmax_message_size = 99999999999999999999G\n", 2,
	  "max_message_size", "out of range" },
	/* durations */
	{ "[smtp]\ncommand_timeout = 5 minutes\n", 2, "command_timeout",
	  "unknown unit" },
	{ "[smtp]\ncommand_timeout = 5y\n", 2, "command_timeout",
	  "unknown unit" },
	{ "[smtp]\ncommand_timeout = m\n", 2, "command_timeout",
	  "not a number" },
	{ "[smtp]\ncommand_timeout = 500ms\n", 2, "command_timeout",
	  "out of range (1s to 1d)" },
	{ "[smtp]\ndata_timeout = 0\n", 2, "data_timeout", "out of range" },
	{ "[smtp]\ndata_timeout = 2d\n", 2, "data_timeout", "out of range" },
	{ "[main]\nshutdown_timeout = -1s\n", 2, "shutdown_timeout",
	  "not a number" },
	/* user and group names */
	{ "[main]\nuser =\n", 2, "user", "must not be empty" },
	{ "[main]\nuser = -tern\n", 2, "user",
	  "not a valid user or group name" },
	{ "[main]\nuser = te:rn\n", 2, "user",
	  "not a valid user or group name" },
	{ "[main]\nuser = a$b\n", 2, "user",
	  "not a valid user or group name" },
	{ "[main]\ngroup = /etc\n", 2, "group",
	  "not a valid user or group name" },
	{ "[main]\nuser = "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  2, "user", "too long" },
	/* bools and enums */
	{ "[main]\ndebug = maybe\n", 2, "debug", "not yes or no" },
	{ "[main]\ndebug =\n", 2, "debug", "not yes or no" },
	{ "[main]\nlog = files\n", 2, "log",
	  "not one of syslog, stderr, none, file, remote \"files\"" },
	{ "[smtp]\nbare_newlines = accept\n", 2, "bare_newlines",
	  "not one of reject, normalize" },
	/* listen */
	{ "[smtp]\nlisten = 127.0.0.1\n", 2, "listen", "no port" },
	{ "[smtp]\nlisten = [::1]\n", 2, "listen", "no port" },
	{ "[smtp]\nlisten = 127.0.0.1:\n", 2, "listen", "port" },
	{ "[smtp]\nlisten = 127.0.0.1:0\n", 2, "listen",
	  "port not a number from 1 to 65535 \"127.0.0.1:0\"" },
	{ "[smtp]\nlisten = 127.0.0.1:70000\n", 2, "listen",
	  "port not a number from 1 to 65535" },
	{ "[smtp]\nlisten = [::1]:smtp\n", 2, "listen", "port" },
	{ "[smtp]\nlisten = localhost:25\n", 2, "listen",
	  "not a numeric IPv4 address \"localhost:25\"" },
	{ "[smtp]\nlisten = mail.example.com:25\n", 2, "listen",
	  "not a numeric IPv4 address" },
	{ "[smtp]\nlisten = 127.0.0.1:25 [localhost]:25\n", 2, "listen",
	  "not a numeric IPv6 address \"[localhost]:25\"" },
	{ "[smtp]\nlisten = [127.0.0.1]:25\n", 2, "listen",
	  "not a numeric IPv6 address" },
	{ "[smtp]\nlisten = 300.0.0.1:25\n", 2, "listen",
	  "not a numeric IPv4 address" },
	{ "[smtp]\nlisten = ::1:25\n", 2, "listen", "not in brackets" },
	{ "[smtp]\nlisten = [::1:25\n", 2, "listen", "IPv6" },
	{ "[smtp]\nlisten = [::1]x25\n", 2, "listen", "IPv6" },
	{ "[smtp]\nlisten = :25\n", 2, "listen", "IPv4" },
	{ "[smtp]\nlisten = 127.0.0.1:25 127.0.0.1:25\n", 2, "listen",
	  "listed twice" },
	{ "[smtp]\nlisten = *:25 [::]:25\n", 2, "listen", "listed twice" },
	{ "[smtp]\nlisten =\n", 2, "listen", "no address" },
	{ "[smtp]\nlisten = [1234:5678:9abc:def0:1234:5678:9abc:def0%"
	  "averyveryveryveryverylonginterfacename]:25\n", 2, "listen",
	  "too long" },
	/* relay_networks */
	{ "[smtp]\nrelay_networks = 10.0.0.0/33\n", 2, "relay_networks",
	  "prefix length not from 0 to 32 \"10.0.0.0/33\"" },
	{ "[smtp]\nrelay_networks = ::/129\n", 2, "relay_networks",
	  "prefix length not from 0 to 128" },
	{ "[smtp]\nrelay_networks = 10.0.0.1/8\n", 2, "relay_networks",
	  "host bits set \"10.0.0.1/8\"" },
	{ "[smtp]\nrelay_networks = 198.51.100.1/25\n", 2, "relay_networks",
	  "host bits set" },
	{ "[smtp]\nrelay_networks = 2001:db8::1/32\n", 2, "relay_networks",
	  "host bits set" },
	{ "[smtp]\nrelay_networks = garbage\n", 2, "relay_networks",
	  "not an IP address \"garbage\"" },
	{ "[smtp]\nrelay_networks = 10.0.0.0/\n", 2, "relay_networks",
	  "prefix length" },
	{ "[smtp]\nrelay_networks = 10.0.0.0/x\n", 2, "relay_networks",
	  "prefix length" },
	{ "[smtp]\nrelay_networks = 10.0.0.0/8 none\n", 2, "relay_networks",
	  "not an IP address \"none\"" },
	{ "[smtp]\nrelay_networks = example.com\n", 2, "relay_networks",
	  "not an IP address" },
	/* strings and domains */
	{ "[main]\nspool = var/spool/tern\n", 2, "spool",
	  "not an absolute path \"var/spool/tern\"" },
	{ "[main]\nspool =\n", 2, "spool", "not an absolute path" },
	{ "[main]\nhostname = bad_host.example\n", 2, "hostname",
	  "not a valid domain name" },
	{ "[main]\nhostname = 192.0.2.1\n", 2, "hostname",
	  "not a valid domain name" },
	{ "[main]\nhostname =\n", 2, "hostname", "not a valid domain name" },
	{ "[smtp]\nlocal_domains = example.com a..b\n", 2, "local_domains",
	  "not a valid domain name \"a..b\"" },
	{ "[smtp]\nlocal_domains = -a.example\n", 2, "local_domains",
	  "not a valid domain name" },
	{ "[smtp]\nlocal_domains = a-.example\n", 2, "local_domains",
	  "not a valid domain name" },
	{ "[smtp]\nlocal_domains = [192.0.2.1]\n", 2, "local_domains",
	  "not a valid domain name" },
	{ "[smtp]\nlocal_domains = "
	  "a123456789012345678901234567890123456789012345678901234567890123"
	  ".example\n", 2, "local_domains", "not a valid domain name" },
	{ "[smtp]\nlocal_domains =\n", 2, "local_domains", "no domain" },
	/* [delivery]: the section is named too */
	{ "[delivery]\nmax_try = 3\n", 2, "[delivery] max_try",
	  "unknown key" },
	{ "[smtp]\ngateway = mx.example.org\n", 2, "[smtp] gateway",
	  "unknown key" },
	{ "[delivery]\nmax_tries = 3\nmax_tries = 4\n", 3,
	  "[delivery] max_tries", "twice (first on line 2)" },
	{ "[delivery]\nqueue_interval = 0\n", 2, "[delivery] queue_interval",
	  "out of range (1s to 1d) \"0\"" },
	{ "[delivery]\nqueue_interval = 999ms\n", 2,
	  "[delivery] queue_interval", "out of range" },
	{ "[delivery]\nqueue_interval = 25h\n", 2,
	  "[delivery] queue_interval", "out of range" },
	{ "[delivery]\nqueue_interval = soon\n", 2,
	  "[delivery] queue_interval", "not a number" },
	{ "[delivery]\nmax_tries = 0\n", 2, "[delivery] max_tries",
	  "out of range (1 to 1000) \"0\"" },
	{ "[delivery]\nmax_tries = 1001\n", 2, "[delivery] max_tries",
	  "out of range" },
	{ "[delivery]\nmax_tries = many\n", 2, "[delivery] max_tries",
	  "not a number \"many\"" },
	{ "[delivery]\nmax_deliveries = 0\n", 2, "[delivery] max_deliveries",
	  "out of range (1 to 10000)" },
	{ "[delivery]\nmax_deliveries = 10001\n", 2,
	  "[delivery] max_deliveries", "out of range" },
	{ "[delivery]\nmax_per_destination = 0\n", 2,
	  "[delivery] max_per_destination", "out of range (1 to 1000)" },
	{ "[delivery]\nmax_per_destination = 1001\n", 2,
	  "[delivery] max_per_destination", "out of range" },
	{ "[delivery]\nremote_port = 0\n", 2, "[delivery] remote_port",
	  "out of range (1 to 65535)" },
	{ "[delivery]\nremote_port = 65536\n", 2, "[delivery] remote_port",
	  "out of range" },
	{ "[delivery]\nremote_port = smtp\n", 2, "[delivery] remote_port",
	  "not a number" },
	{ "[delivery]\ngateway_after_tries = 1001\n", 2,
	  "[delivery] gateway_after_tries", "out of range (0 to 1000)" },
	{ "[delivery]\ngateway_after_tries = -1\n", 2,
	  "[delivery] gateway_after_tries", "not a number" },
	{ "[delivery]\ngateway_all = always\n", 2, "[delivery] gateway_all",
	  "not yes or no \"always\"" },
	{ "[delivery]\ngateway_tls_verify = strict\n", 2,
	  "[delivery] gateway_tls_verify", "not yes or no" },
	{ "[delivery]\nstarttls = required\n", 2, "[delivery] starttls",
	  "not yes or no" },
	{ "[delivery]\nstarttls =\n", 2, "[delivery] starttls",
	  "not yes or no" },
	{ "[delivery]\nconnect_timeout = 0\n", 2,
	  "[delivery] connect_timeout", "out of range (1s to 1h)" },
	{ "[delivery]\nconnect_timeout = 61m\n", 2,
	  "[delivery] connect_timeout", "out of range" },
	{ "[delivery]\nreply_timeout = 500ms\n", 2,
	  "[delivery] reply_timeout", "out of range (1s to 1h)" },
	{ "[delivery]\nreply_timeout = 2h\n", 2, "[delivery] reply_timeout",
	  "out of range" },
	{ "[delivery]\ndata_timeout = 3601s\n", 2, "[delivery] data_timeout",
	  "out of range (1s to 1h) \"3601s\"" },
	{ "[delivery]\ndata_timeout = 0\n", 2, "[delivery] data_timeout",
	  "out of range" },
	{ "[delivery]\nidle_timeout = 0\n", 2, "[delivery] idle_timeout",
	  "out of range (1s to 1h)" },
	{ "[delivery]\nidle_timeout = 1d\n", 2, "[delivery] idle_timeout",
	  "out of range" },
	{ "[delivery]\nidle_timeout = 5 s\n", 2, "[delivery] idle_timeout",
	  "unknown unit" },
	{ "[delivery]\nmax_received_headers = 0\n", 2,
	  "[delivery] max_received_headers", "out of range (1 to 1000)" },
	{ "[delivery]\nmax_received_headers = 1001\n", 2,
	  "[delivery] max_received_headers", "out of range" },
	{ "[delivery]\ngateway_auth_file = gateway.auth\n", 2,
	  "[delivery] gateway_auth_file",
	  "not an absolute path \"gateway.auth\"" },
	/* gateway */
	{ "[delivery]\ngateway = mx.example.org:0\n", 2, "[delivery] gateway",
	  "port not a number from 1 to 65535 \"mx.example.org:0\"" },
	{ "[delivery]\ngateway = mx.example.org:65536\n", 2,
	  "[delivery] gateway", "port not a number from 1 to 65535" },
	{ "[delivery]\ngateway = mx.example.org:\n", 2, "[delivery] gateway",
	  "port not a number" },
	{ "[delivery]\ngateway = mx.example.org:smtp\n", 2,
	  "[delivery] gateway", "port not a number" },
	{ "[delivery]\ngateway = [2001:db8::1]:0\n", 2, "[delivery] gateway",
	  "port not a number" },
	{ "[delivery]\ngateway = [2001:db8::1]:99999\n", 2,
	  "[delivery] gateway", "port not a number" },
	{ "[delivery]\ngateway = [2001:db8::1\n", 2, "[delivery] gateway",
	  "not a numeric IPv6 address \"[2001:db8::1\"" },
	{ "[delivery]\ngateway = [2001:db8::1]587\n", 2, "[delivery] gateway",
	  "not a numeric IPv6 address" },
	{ "[delivery]\ngateway = [192.0.2.1]\n", 2, "[delivery] gateway",
	  "not a numeric IPv6 address" },
	{ "[delivery]\ngateway = [mx.example.org]:25\n", 2,
	  "[delivery] gateway", "not a numeric IPv6 address" },
	{ "[delivery]\ngateway = [fe80::1%eth0]\n", 2, "[delivery] gateway",
	  "not a numeric IPv6 address" },
	{ "[delivery]\ngateway = []:25\n", 2, "[delivery] gateway",
	  "not a numeric IPv6 address" },
	{ "[delivery]\ngateway = 2001:db8::1\n", 2, "[delivery] gateway",
	  "IPv6 address not in brackets" },
	{ "[delivery]\ngateway = ::1:25\n", 2, "[delivery] gateway",
	  "not in brackets" },
	{ "[delivery]\ngateway = bad_host.example\n", 2, "[delivery] gateway",
	  "not a host name or IPv4 address \"bad_host.example\"" },
	{ "[delivery]\ngateway = 300.0.0.1:25\n", 2, "[delivery] gateway",
	  "not a host name or IPv4 address" },
	{ "[delivery]\ngateway = 127.1\n", 2, "[delivery] gateway",
	  "not a host name or IPv4 address" },
	{ "[delivery]\ngateway = :25\n", 2, "[delivery] gateway",
	  "not a host name or IPv4 address" },
	{ "[delivery]\ngateway = -mx.example\n", 2, "[delivery] gateway",
	  "not a host name" },
	{ "[delivery]\ngateway = a.example b.example\n", 2,
	  "[delivery] gateway", "more than one host" },
	{ "[delivery]\ngateway = a.example,b.example\n", 2,
	  "[delivery] gateway", "more than one host" },
	{ "[delivery]\ngateway = "
	  "a123456789.a123456789.a123456789.a123456789.a123456789.a123456789."
	  "a123456789.a123456789.a123456789.a123456789.a123456789.a123456789."
	  "a123456789.a123456789.a123456789.a123456789.a123456789.a123456789."
	  "a123456789.a123456789.a123456789.a123456789.a123456789.a123456789."
	  "example\n", 2, "[delivery] gateway", "too long" },
	/* transport */
	{ "[local]\ntransport = lmtp\n", 2, "[local] transport",
	  "not maildir, lmtp:unix:/path or lmtp:inet:host:port" },
	{ "[local]\ntransport = virtual\n", 2, "[local] transport",
	  "not maildir" },
	{ "[local]\ntransport = lmtp:unix:private/dovecot-lmtp\n", 2,
	  "[local] transport", "needs an absolute socket path" },
	{ "[local]\ntransport = lmtp:unix:/a "
	  "b\n", 2, "[local] transport", "blank in the socket path" },
	{ "[local]\ntransport = lmtp:unix:/"
	  "a123456789a123456789a123456789a123456789a123456789"
	  "a123456789a123456789a123456789a123456789a123456789a123456789\n", 2,
	  "[local] transport", "socket path too long" },
	{ "[local]\ntransport = lmtp:inet:\n", 2, "[local] transport",
	  "needs a host" },
	{ "[local]\ntransport = lmtp:inet:127.0.0.1:0\n", 2,
	  "[local] transport", "port not a number" },
	{ "[local]\ntransport = lmtp:inet:2001:db8::1\n", 2,
	  "[local] transport", "IPv6 address not in brackets" },
	{ "[local]\nlmtp_max_connections = 0\n", 2,
	  "[local] lmtp_max_connections", "out of range" },
	/* dns_servers */
	{ "[delivery]\ndns_servers = dns.example.org\n", 2,
	  "[delivery] dns_servers",
	  "not a numeric IPv4 address \"dns.example.org\"" },
	{ "[delivery]\ndns_servers = 192.0.2.1 300.0.0.1\n", 2,
	  "[delivery] dns_servers",
	  "not a numeric IPv4 address \"300.0.0.1\"" },
	{ "[delivery]\ndns_servers = 127.1\n", 2, "[delivery] dns_servers",
	  "not a numeric IPv4 address" },
	{ "[delivery]\ndns_servers = none\n", 2, "[delivery] dns_servers",
	  "not a numeric IPv4 address" },
	{ "[delivery]\ndns_servers = 192.0.2.1:0\n", 2,
	  "[delivery] dns_servers",
	  "port not a number from 1 to 65535 \"192.0.2.1:0\"" },
	{ "[delivery]\ndns_servers = 192.0.2.1:65536\n", 2,
	  "[delivery] dns_servers", "port not a number" },
	{ "[delivery]\ndns_servers = 192.0.2.1:\n", 2,
	  "[delivery] dns_servers", "port not a number" },
	{ "[delivery]\ndns_servers = [::1]:domain\n", 2,
	  "[delivery] dns_servers", "port not a number" },
	{ "[delivery]\ndns_servers = [::1\n", 2, "[delivery] dns_servers",
	  "not a numeric IPv6 address \"[::1\"" },
	{ "[delivery]\ndns_servers = [::1]53\n", 2, "[delivery] dns_servers",
	  "not a numeric IPv6 address" },
	{ "[delivery]\ndns_servers = [192.0.2.1]\n", 2,
	  "[delivery] dns_servers", "not a numeric IPv6 address" },
	{ "[delivery]\ndns_servers = fe80::1%eth0\n", 2,
	  "[delivery] dns_servers", "not a numeric IPv6 address" },
	{ "[delivery]\ndns_servers = 2001:db8::zz\n", 2,
	  "[delivery] dns_servers", "not a numeric IPv6 address" },
	{ "[delivery]\ndns_servers = :53\n", 2, "[delivery] dns_servers",
	  "not a numeric IPv4 address" },
	{ "[delivery]\ndns_servers = "
	  "[1234:5678:9abc:def0:1234:5678:9abc:def0%averyverylonginterface]"
	  ":53\n", 2, "[delivery] dns_servers", "too long" },
	{ "[main]\nlog_server = 192.0.2.1:0\n", 2, "[main] log_server",
	  "port not a number from 1 to 65535" },
	{ "[main]\nlog_server = a b\n", 2, "[main] log_server",
	  "more than one host" },
	{ "[main]\nlog_server = [192.0.2.1]\n", 2, "[main] log_server",
	  "not a numeric IPv6 address" },
	/* remote logging needs a server */
	{ "[main]\nhostname = x.example\nlog = remote\n", 3, "[main] log",
	  "needs a log_server" },
	{ "[main]\nlog = remote\nlog_server =\n", 2, "[main] log",
	  "needs a log_server" },
	/* keys that need a gateway */
	{ "[delivery]\ngateway_all = yes\n", 2, "[delivery] gateway_all",
	  "needs a gateway" },
	{ "[delivery]\nmax_tries = 3\n\ngateway_after_tries = 2\n", 4,
	  "[delivery] gateway_after_tries", "needs a gateway" },
	{ "[delivery]\ngateway =\ngateway_all = on\n", 3,
	  "[delivery] gateway_all", "needs a gateway" },
	{ "[delivery]\ngateway_all = no\ngateway_after_tries = 1000\n", 3,
	  "[delivery] gateway_after_tries", "needs a gateway" },
	/* TLS needs both files; implicit TLS needs TLS */
	{ "[smtp]\ntls_cert = /etc/tern/cert.pem\n", 2, "[smtp] tls_cert",
	  "needs tls_key too" },
	{ "[smtp]\n\ntls_key = /etc/tern/key.pem\n", 3, "[smtp] tls_key",
	  "needs tls_cert too" },
	{ "[smtp]\nsmtps_listen = *:465\n", 2, "[smtp] smtps_listen",
	  "needs tls_cert and tls_key" },
	{ "[smtp]\nsubmission_listen = 127.0.0.1\n", 2,
	  "[smtp] submission_listen", "" },
	{ "[smtp]\ntls_cert = cert.pem\n", 2, "[smtp] tls_cert",
	  "not an absolute path" },
	{ "[smtp]\nauth_max_failures = 0\n", 2, "[smtp] auth_max_failures",
	  "" },
	{ "[smtp]\nauth_failure_delay = 2m\n", 2,
	  "[smtp] auth_failure_delay", "" },
	{ "[smtp]\netrn_networks = 10.0.0.0/33\n", 2, "[smtp] etrn_networks",
	  "" },
	/* [local] */
	{ "[smtp]\nlocal_domains = a.example\n[local]\n"
	  "default_domain = b.example\n", 4, "[local] default_domain",
	  "b.example is not one of [smtp] local_domains" },
	{ "[local]\npostmaster = nobody\n", 2, "[local] postmaster",
	  "not an address" },
	{ "[local]\npostmaster = a%b@x.example\n", 2, "[local] postmaster",
	  "not an address" },
	{ "[local]\nmailboxes = mail\n", 2, "[local] mailboxes",
	  "not an absolute path" },
	{ "[local]\nusers = users\n", 2, "[local] users",
	  "not an absolute path" },
	{ "[local]\nshell = /bin/sh\n", 2, "[local] shell", "unknown key" },
	/* The PROXY protocol */
	{ "[smtp]\nlisten = proxy:127.0.0.1:25\n", 2,
	  "[smtp] proxy_networks", "need the networks of the load balancers" },
	{ "[smtp]\nproxy_networks = none\nsubmission_listen = "
	  "proxy:127.0.0.1:587\n", 2, "[smtp] proxy_networks",
	  "need the networks" },
	{ "[smtp]\nlisten = proxy:localhost:25\nproxy_networks = ::1\n", 2,
	  "[smtp] listen", "" },
	{ "[smtp]\nlisten = proxy:127.0.0.1:25 127.0.0.1:25\n"
	  "proxy_networks = ::1\n", 2, "[smtp] listen", "listed twice" },
	{ "[smtp]\nproxy_timeout = 0s\n", 2, "[smtp] proxy_timeout", "" },
	{ "[smtp]\nproxy_networks = 10.0.0.0/33\n", 2,
	  "[smtp] proxy_networks", "" },
};

START_TEST(test_bad)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause, where[PATH_MAX + 32];
	size_t		 len;

	/* The NUL case needs its length; the others end at their NUL. */
	len = strlen(bad[_i].text);
	if (strcmp(bad[_i].why, "NUL") == 0)
		len += 1 + strlen(bad[_i].text + len + 1);
	write_tmp(bad[_i].text, len, path, sizeof path);
	cause = NULL;
	c = config_load(path, &cause);
	unlink(path);
	ck_assert_msg(c == NULL, "loaded: %s", bad[_i].text);
	ck_assert_ptr_nonnull(cause);
	util_snprintf(where, sizeof where, "%s:%d: ", path, bad[_i].line);
	ck_assert_msg(strncmp(cause, where, strlen(where)) == 0,
	    "cause \"%s\" does not start with \"%s\"", cause, where);
	ck_assert_msg(strstr(cause, bad[_i].key) != NULL,
	    "cause \"%s\" lacks \"%s\"", cause, bad[_i].key);
	ck_assert_msg(strstr(cause, bad[_i].why) != NULL,
	    "cause \"%s\" lacks \"%s\"", cause, bad[_i].why);
	free(cause);
}
END_TEST

/* The exact form of an error, as documented. */
START_TEST(test_bad_exact)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause, want[PATH_MAX + 128];

	c = load_text("[main]\ndebug = no\n\n[smtp]\nmax_recipients = abc\n",
	    path, sizeof path, &cause);
	ck_assert_ptr_null(c);
	util_snprintf(want, sizeof want,
	    "%s:5: [smtp] max_recipients: not a number \"abc\"", path);
	ck_assert_str_eq(cause, want);
	free(cause);
}
END_TEST

/* A key that needs another: the documented form of the error. */
START_TEST(test_bad_exact_needs)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause, want[PATH_MAX + 128];

	c = load_text("[delivery]\nmax_tries = 5\n\ngateway_all = yes\n",
	    path, sizeof path, &cause);
	ck_assert_ptr_null(c);
	util_snprintf(want, sizeof want,
	    "%s:4: [delivery] gateway_all: needs a gateway", path);
	ck_assert_str_eq(cause, want);
	free(cause);
}
END_TEST

/* [delivery] data_timeout is its own key, apart from [smtp]'s. */
START_TEST(test_two_data_timeouts)
{
	struct config	*c;

	c = load_ok("[smtp]\ndata_timeout = 2h\n[delivery]\n"
	    "data_timeout = 3m\n");
	ck_assert_uint_eq(c->data_timeout, 7200000);
	ck_assert_uint_eq(c->delivery_data_timeout, 180000);
	config_free(c);

	c = load_ok("[delivery]\ndata_timeout = 1h\n");
	ck_assert_uint_eq(c->data_timeout, 300000);
	ck_assert_uint_eq(c->delivery_data_timeout, 3600000);
	config_free(c);

	c = load_ok("[smtp]\ndata_timeout = 1s\n");
	ck_assert_uint_eq(c->data_timeout, 1000);
	ck_assert_uint_eq(c->delivery_data_timeout, 600000);
	config_free(c);
}
END_TEST

/*
 * dns_servers up to its field's size: as many entries as fit load, one
 * more is refused as too long rather than cut short.
 */
START_TEST(test_dns_servers_long)
{
	struct config	*c;
	char		*text, path[PATH_MAX], *cause, one[64];
	const char	*head = "[delivery]\ndns_servers =";
	size_t		 i, size = 4096, list = 0, n;

	text = xmalloc(size);
	util_strlcpy(text, head, size);
	for (n = 0; ; n++) {
		util_snprintf(one, sizeof one, "[2001:db8::%zx]:5353", n);
		if (list + (n > 0) + strlen(one) >= CONFIG_PATH_SIZE)
			break;
		list += (n > 0) + strlen(one);
		util_strlcat(text, " ", size);
		util_strlcat(text, one, size);
	}
	ck_assert_uint_gt(n, 10);
	util_strlcat(text, "\n", size);
	c = load_ok(text);
	ck_assert_uint_eq(strlen(c->dns_servers), list);
	/* one is now the entry that did not fit */
	ck_assert_ptr_null(strstr(c->dns_servers, one));
	for (i = 0; i < n; i++) {
		util_snprintf(one, sizeof one, "[2001:db8::%zx]:5353", i);
		ck_assert_msg(strstr(c->dns_servers, one) != NULL, "%s", one);
	}
	config_free(c);

	text[strlen(text) - 1] = '\0';
	util_strlcat(text, " 192.0.2.1\n", size);
	c = load_text(text, path, sizeof path, &cause);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(cause, "[delivery] dns_servers: too long") !=
	    NULL, "%s", cause);
	free(cause);
	free(text);
}
END_TEST

/* Control characters in a bad value are escaped in the cause. */
START_TEST(test_bad_escaped)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause;

	c = load_text("[smtp]\nmax_errors = 1\x1b[2J\n", path, sizeof path,
	    &cause);
	ck_assert_ptr_null(c);
	ck_assert_ptr_null(strchr(cause, '\x1b'));
	ck_assert_ptr_nonnull(strstr(cause, "\\x1b"));
	free(cause);
}
END_TEST

START_TEST(test_long_line)
{
	struct config	*c;
	char		 path[PATH_MAX], *cause, *text, where[PATH_MAX + 32];
	size_t		 n = 5000;

	text = xmalloc(n + 64);
	util_strlcpy(text, "[smtp]\nlocal_domains = ", n + 64);
	memset(text + strlen(text), 'a', n);
	util_strlcpy(text + strlen("[smtp]\nlocal_domains = ") + n,
	    "\nmax_errors = 1\n", 64);
	c = load_text(text, path, sizeof path, &cause);
	ck_assert_ptr_null(c);
	util_snprintf(where, sizeof where, "%s:2: ", path);
	ck_assert_msg(strncmp(cause, where, strlen(where)) == 0, "%s", cause);
	ck_assert_ptr_nonnull(strstr(cause, "line longer"));
	free(cause);
	free(text);
}
END_TEST

/* Long lists on long lines (under the limit) are fine. */
START_TEST(test_long_list)
{
	struct config	*c;
	char		*text, one[32];
	size_t		 i, size = 4096;

	text = xmalloc(size);
	util_strlcpy(text, "[smtp]\nrelay_networks =", size);
	for (i = 0; i < 150; i++) {
		util_snprintf(one, sizeof one, " 10.%zu.0.0/16", i);
		util_strlcat(text, one, size);
	}
	util_strlcat(text, "\n", size);
	ck_assert_uint_lt(strlen(text), size - 1);
	c = load_ok(text);
	ck_assert_uint_eq(c->nrelay_networks, 150);
	ck_assert_uint_eq(c->relay_networks[149].addr[1], 149);
	config_free(c);
	free(text);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config	*c;
	char		*cause = NULL;
	const char	*path = "/nonexistent-tern-dir/tern.ini";

	c = config_load(path, &cause);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, path));
	ck_assert_ptr_nonnull(strstr(cause, strerror(ENOENT)));
	free(cause);
}
END_TEST

START_TEST(test_directory)
{
	struct config	*c;
	char		*cause = NULL;

	c = config_load("/", &cause);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(cause);
	ck_assert_msg(strncmp(cause, "/: ", 3) == 0, "%s", cause);
	free(cause);
}
END_TEST

/* An empty file gives every documented default. */
START_TEST(test_defaults)
{
	struct config	*c = load_ok(""), *f;
	char		 buf[1024], want[CONFIG_HOST_SIZE + 16];

	ck_assert_str_eq(c->spool, "/var/spool/tern");
	ck_assert_int_eq(c->log, LOG_TARGET_SYSLOG);
	ck_assert_str_eq(c->log_server, "");
	ck_assert_uint_eq(c->log_server_port, 514);
	ck_assert_int_eq(c->debug, 0);
	ck_assert_uint_eq(c->shutdown_timeout, 30000);
	ck_assert_str_eq(c->user, "tern");
	ck_assert_str_eq(c->group, "");
	listen_text(c, buf, sizeof buf);
	ck_assert_str_eq(buf, "127.0.0.1 25 127.0.0.1:25; ::1 25 [::1]:25");
	ck_assert_uint_eq(c->max_connections, 0);
	ck_assert_uint_eq(c->data_min_rate, 500);
	ck_assert_uint_eq(c->tls_timeout, 60000);
	ck_assert_uint_eq(c->auth_timeout, 120000);
	ck_assert_uint_eq(c->stress_timeout, 10000);
	ck_assert_uint_eq(c->session_memory, 256 * 1024 * 1024);
	ck_assert_uint_eq(c->max_connections_per_ip, 50);
	ck_assert_uint_eq(c->max_message_size, 25 * 1024 * 1024);
	ck_assert_uint_eq(c->max_recipients, 1000);
	ck_assert_uint_eq(c->max_errors, 20);
	ck_assert_uint_eq(c->command_timeout, 300000);
	ck_assert_uint_eq(c->data_timeout, 300000);
	ck_assert_int_eq(c->bare_newlines, CONFIG_BARE_REJECT);
	nets_text(c, buf, sizeof buf);
	ck_assert_str_eq(buf, "127.0.0.0/8 ::1/128");

	ck_assert_uint_eq(c->queue_interval, 30 * 60 * 1000);
	ck_assert_uint_eq(c->max_tries, 20);
	ck_assert_uint_eq(c->max_deliveries, 30);
	ck_assert_uint_eq(c->max_per_destination, 10);
	ck_assert_uint_eq(c->remote_port, 25);
	ck_assert_str_eq(c->dns_servers, "");
	ck_assert_str_eq(c->gateway, "");
	ck_assert_uint_eq(c->gateway_port, 25);
	ck_assert_int_eq(c->gateway_all, 0);
	ck_assert_uint_eq(c->gateway_after_tries, 0);
	ck_assert_int_eq(c->gateway_tls_verify, 0);
	ck_assert_str_eq(c->gateway_auth_file, "");
	ck_assert_int_eq(c->starttls, 1);
	ck_assert_uint_eq(c->connect_timeout, 30000);
	ck_assert_uint_eq(c->reply_timeout, 300000);
	ck_assert_uint_eq(c->delivery_data_timeout, 600000);
	ck_assert_uint_eq(c->idle_timeout, 5000);
	ck_assert_uint_eq(c->max_received_headers, 100);

	/* The hostname comes from the system: a name without end dot. */
	ck_assert_uint_gt(strlen(c->hostname), 0);
	ck_assert_int_ne(c->hostname[strlen(c->hostname) - 1], '.');
	util_strlcpy(want, c->hostname, sizeof want);
	util_lowercase(want);
	if (strcmp(want, "localhost") != 0)
		util_strlcat(want, " localhost", sizeof want);
	domains_text(c, buf, sizeof buf);
	ck_assert_str_eq(buf, want);

	/* A reload finds the same name (the lookup's answer is kept). */
	f = config_default();
	ck_assert_str_eq(f->hostname, c->hostname);
	config_free(f);
	config_free(c);
}
END_TEST

/* The built-in configuration for a first run without a file. */
START_TEST(test_builtin)
{
	struct config	*c = config_default(), *f;
	char		 buf[1024], cwd[PATH_MAX];

	ck_assert_str_eq(c->path, "");
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	util_snprintf(buf, sizeof buf, "%s/tern-data/spool", cwd);
	ck_assert_str_eq(c->spool, buf);
	ck_assert_int_eq(c->log, LOG_TARGET_STDERR);
	listen_text(c, buf, sizeof buf);
	ck_assert_str_eq(buf,
	    "127.0.0.1 2525 127.0.0.1:2525; ::1 2525 [::1]:2525");

	/* Everything else is a file's default. */
	f = load_ok("[main]\nspool = /x\nlog = stderr\n[smtp]\n"
	    "listen = 127.0.0.1:2525 [::1]:2525\n");
	util_strlcpy(f->spool, c->spool, sizeof f->spool);
	assert_same(c, f);
	config_free(f);
	config_free(c);
}
END_TEST

/* Files whose printed form must load back to the same values. */
static const char *const round_trip[] = {
	"",
	"[main]\nmin_free_space = 1G\n[smtp]\ntls_protocols = TLSv1.2\n"
	"tls_ciphers = ECDHE-RSA-AES128-GCM-SHA256\n"
	"tls_ciphersuites = TLS_AES_256_GCM_SHA384\n",
	"[main]\nhostname = mx.example.org\nspool = /srv/tern\nlog = none\n"
	"debug = yes\nshutdown_timeout = 1500ms\nuser = mail\ngroup = adm\n"
	"[smtp]\nlisten = *:2525 192.0.2.1:25 [2001:db8::1]:587\n"
	"max_connections = 7\nmax_connections_per_ip = 0\n"
	"max_message_size = 1536\nmax_recipients = 100000\nmax_errors = 1\n"
	"command_timeout = 90\ndata_timeout = 1d\n"
	"bare_newlines = normalize\n"
	"local_domains = Example.ORG. example.net\n"
	"relay_networks = none\n",
	"[smtp]\nrelay_networks = 192.0.2.0/24 2001:db8::/32 10.1.2.3\n"
	"max_message_size = 1025K\ncommand_timeout = 61m\n",
	"[smtp]\nlisten = [::]:25, 0.0.0.0:26\nlocal_domains = a\n",
	"[delivery]\nqueue_interval = 90\nmax_tries = 1\n"
	"max_deliveries = 10000\nmax_per_destination = 1\n"
	"remote_port = 2525\n"
	"dns_servers = 192.0.2.53:5353, [2001:db8::53] 2001:db8::54 [::1]:53\n"
	"gateway = [2001:DB8::1]:587\ngateway_all = yes\n"
	"gateway_after_tries = 3\ngateway_tls_verify = on\n"
	"gateway_auth_file = /etc/tern/gw auth\nstarttls = no\n"
	"connect_timeout = 1500ms\nreply_timeout = 1h\ndata_timeout = 1s\n"
	"idle_timeout = 61s\nmax_received_headers = 1000\n",
	"[delivery]\ngateway = Smart.Example.NET.\n"
	"gateway_after_tries = 1000\n",
	"[delivery]\ngateway = 192.0.2.1:25\ngateway_all = yes\n",
	"[delivery]\ngateway = mx.example.org:2525\n",
	"[delivery]\ngateway = [::1]\ndns_servers = ::1\n",
	"[local]\ntransport = lmtp:unix:/run/dovecot/lmtp\n"
	"lmtp_max_connections = 3\n",
	"[local]\ntransport = lmtp:inet:[2001:DB8::24]:2424\n",
	"[local]\ntransport = lmtp:inet:lmtp.example.org\n",
};

/* Print c, load the output, compare; the second print is identical. */
static void
check_round_trip(const struct config *c)
{
	struct config	*back;
	char		*text1, *text2, path[PATH_MAX], *cause;
	size_t		 len1, len2;
	FILE		*fp;

	ck_assert_ptr_nonnull(fp = open_memstream(&text1, &len1));
	config_print(c, fp);
	ck_assert_int_eq(fclose(fp), 0);
	back = load_text(text1, path, sizeof path, &cause);
	ck_assert_msg(back != NULL, "%s\n---\n%s", cause, text1);
	assert_same(c, back);

	ck_assert_ptr_nonnull(fp = open_memstream(&text2, &len2));
	config_print(back, fp);
	ck_assert_int_eq(fclose(fp), 0);
	/* Only the first line, naming the source, differs. */
	ck_assert_str_eq(strchr(text1, '\n'), strchr(text2, '\n'));
	free(text1);
	free(text2);
	config_free(back);
}

START_TEST(test_round_trip)
{
	struct config	*c = load_ok(round_trip[_i]);

	check_round_trip(c);
	config_free(c);
}
END_TEST

START_TEST(test_round_trip_builtin)
{
	struct config	*c = config_default();

	check_round_trip(c);
	config_free(c);
}
END_TEST

/* Every key is printed, under its section, one "key = value" a line. */
START_TEST(test_print_form)
{
	struct config	*c = load_ok("[main]\nhostname = mx.example.org\n");
	char		*text;
	size_t		 len;
	FILE		*fp;

	ck_assert_ptr_nonnull(fp = open_memstream(&text, &len));
	config_print(c, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_ptr_nonnull(strstr(text, "\n[main]\nhostname = "
	    "mx.example.org\nspool = /var/spool/tern\n"
	    "min_free_space = 100M\nlog = syslog\n"
	    "log_server = \ndebug = no\nshutdown_timeout = 30s\n"));
	ck_assert_ptr_nonnull(strstr(text, "\n[smtp]\n"
	    "listen = 127.0.0.1:25 [::1]:25\nmax_connections = 0\n"
	    "max_connections_per_ip = 50\nmax_message_size = 25M\n"
	    "max_recipients = 1000\nmax_errors = 20\n"
	    "command_timeout = 5m\ndata_timeout = 5m\n"
	    "data_min_rate = 500\ntls_timeout = 1m\nauth_timeout = 2m\n"
	    "stress_timeout = 10s\nsession_memory = 256M\n"
	    "bare_newlines = reject\n"
	    "local_domains = mx.example.org localhost\n"
	    "relay_networks = 127.0.0.0/8 ::1/128\n"));
	ck_assert_ptr_nonnull(strstr(text, "\n[delivery]\n"
	    "queue_interval = 30m\nmax_tries = 20\nmax_deliveries = 30\n"
	    "max_per_destination = 10\nremote_port = 25\ndns_servers = \n"
	    "gateway = \ngateway_all = no\ngateway_after_tries = 0\n"
	    "gateway_tls_verify = no\ngateway_auth_file = \nstarttls = yes\n"
	    "connect_timeout = 30s\nreply_timeout = 5m\ndata_timeout = 10m\n"
	    "idle_timeout = 5s\nmax_received_headers = 100\n"));
	free(text);
	config_free(c);
}
END_TEST

/* How one value is printed: the line config_print() writes for it. */
static const struct {
	const char	*text;
	const char	*want;
} print_values[] = {
	{ "[delivery]\ngateway = mx.example.org\n",
	  "\ngateway = mx.example.org\n" },
	{ "[delivery]\ngateway = Mx.Example.ORG.:25\n",
	  "\ngateway = mx.example.org\n" },
	{ "[delivery]\ngateway = mx.example.org:587\n",
	  "\ngateway = mx.example.org:587\n" },
	{ "[delivery]\ngateway = 192.0.2.1:2525\n",
	  "\ngateway = 192.0.2.1:2525\n" },
	{ "[delivery]\ngateway = [2001:DB8:0::1]\n",
	  "\ngateway = [2001:db8::1]\n" },
	{ "[delivery]\ngateway = [2001:db8::1]:587\n",
	  "\ngateway = [2001:db8::1]:587\n" },
	{ "[delivery]\ndns_servers = 192.0.2.1,\t[::1]:53   ::2\n",
	  "\ndns_servers = 192.0.2.1 [::1]:53 ::2\n" },
	{ "[delivery]\ngateway_auth_file = /etc/tern/gw\n",
	  "\ngateway_auth_file = /etc/tern/gw\n" },
	{ "[delivery]\nqueue_interval = 120\n", "\nqueue_interval = 2m\n" },
	{ "[local]\nusers =\n", "\ntransport = maildir\n" },
	{ "[local]\ntransport = LMTP:UNIX:/run/lmtp\n",
	  "\ntransport = lmtp:unix:/run/lmtp\n" },
	{ "[local]\ntransport = lmtp:inet:[::1]\n",
	  "\ntransport = lmtp:inet:[::1]:24\n" },
	{ "[delivery]\nidle_timeout = 1500ms\n",
	  "\nidle_timeout = 1500ms\n" },
};

START_TEST(test_print_value)
{
	struct config	*c = load_ok(print_values[_i].text);
	char		*text;
	size_t		 len;
	FILE		*fp;

	ck_assert_ptr_nonnull(fp = open_memstream(&text, &len));
	config_print(c, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_msg(strstr(text, print_values[_i].want) != NULL,
	    "%s: no \"%s\" in\n%s", print_values[_i].text,
	    print_values[_i].want, text);
	free(text);
	config_free(c);
}
END_TEST

/* The path of a file in the source tree. */
static void
srcdir_path(const char *rel, char *buf, size_t size)
{
	const char	*dir = getenv("TERN_SRCDIR");

	if (dir == NULL || *dir == '\0')
		dir = ".";
	util_snprintf(buf, size, "%s/%s", dir, rel);
}

/*
 * The shipped example loads, changes nothing, and shows every key
 * commented out under its section with the default a file gets.
 */
START_TEST(test_example_file)
{
	struct config	*c, *dflt;
	char		 path[PATH_MAX], *cause = NULL, *printed, *example;
	char		*line, *next, *eq, want[512], section[32] = "";
	char		*sec, *end, *hit;
	size_t		 len;
	FILE		*fp;
	long		 size;

	srcdir_path("etc/tern.ini", path, sizeof path);
	c = config_load(path, &cause);
	ck_assert_msg(c != NULL, "%s", cause);
	dflt = load_ok("");
	assert_same(c, dflt);

	ck_assert_ptr_nonnull(fp = fopen(path, "r"));
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	ck_assert_int_ge(size = ftell(fp), 0);
	rewind(fp);
	example = xmalloc(size + 2);
	example[0] = '\n';
	ck_assert_uint_eq(fread(example + 1, 1, size, fp), (size_t)size);
	example[size + 1] = '\0';
	fclose(fp);

	ck_assert_ptr_nonnull(fp = open_memstream(&printed, &len));
	config_print(dflt, fp);
	ck_assert_int_eq(fclose(fp), 0);
	for (line = printed; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == '[') {
			util_strlcpy(section, line, sizeof section);
			ck_assert_ptr_nonnull(strstr(example, section));
			continue;
		}
		if (line[0] == '#' || (eq = strstr(line, " = ")) == NULL)
			continue;
		/* Computed defaults are shown with an example value. */
		if (strncmp(line, "hostname ", 9) == 0 ||
		    strncmp(line, "local_domains ", 14) == 0 ||
		    strncmp(line, "default_domain ", 15) == 0 ||
		    strncmp(line, "postmaster ", 11) == 0)
			eq[3] = '\0';
		util_snprintf(want, sizeof want, "\n# %s", line);
		ck_assert_msg(strstr(example, want) != NULL,
		    "etc/tern.ini lacks \"%s\"", want + 1);
		/*
		 * ... and under the section of its key (a name may be in
		 * two sections: [delivery] and [milter] connect_timeout).
		 */
		sec = strstr(example, section);
		end = strstr(sec + 1, "\n[");
		hit = strstr(sec, want);
		ck_assert_msg(hit != NULL && (end == NULL || hit < end),
		    "\"%s\" not under %s", want + 1, section);
	}
	free(printed);
	free(example);
	config_free(dflt);
	config_free(c);
}
END_TEST

static const struct {
	const char	*domain;
	int		 want;
} local_domains[] = {
	{ "example.com", 1 },
	{ "EXAMPLE.Com", 1 },
	{ "example.com.", 1 },
	{ "mail.example.org", 1 },
	{ "Mail.Example.Org.", 1 },
	{ "sub.example.com", 0 },
	{ "xample.com", 0 },
	{ "example.co", 0 },
	{ "example.comm", 0 },
	{ "example.com..", 0 },
	{ ".example.com", 0 },
	{ "", 0 },
	{ ".", 0 },
	{ "localhost", 0 },
	{ "example.org", 0 },
};

START_TEST(test_is_local_domain)
{
	struct config	*c = load_ok("[smtp]\n"
	    "local_domains = Example.com mail.example.org\n");

	ck_assert_msg(config_is_local_domain(c, local_domains[_i].domain) ==
	    local_domains[_i].want, "%s", local_domains[_i].domain);
	config_free(c);
}
END_TEST

static const struct {
	const char	*nets;		/* NULL: the defaults */
	const char	*addr;
	int		 want;
} relay_clients[] = {
	{ NULL, "127.0.0.1", 1 },
	{ NULL, "127.255.0.9", 1 },
	{ NULL, "::1", 1 },
	{ NULL, "::ffff:127.0.0.1", 1 },
	{ NULL, "128.0.0.1", 0 },
	{ NULL, "::2", 0 },
	{ NULL, "192.0.2.1", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "192.0.2.1", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "192.0.2.255", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "192.0.3.1", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "10.1.2.3", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "10.1.2.4", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "198.51.100.200", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "198.51.100.127", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "::ffff:192.0.2.9", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "::ffff:10.1.2.3", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "::ffff:10.1.2.4", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "::192.0.2.9", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "2001:db8:ffff::5", 1 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "2001:db9::1", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "127.0.0.1", 0 },
	{ "192.0.2.0/24 10.1.2.3 2001:db8::/32 198.51.100.128/25",
	  "::1", 0 },
	{ "0.0.0.0/0", "203.0.113.1", 1 },
	{ "0.0.0.0/0", "::ffff:203.0.113.1", 1 },
	{ "0.0.0.0/0", "2001:db8::1", 0 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "203.0.113.1", 0 },
	{ "none", "127.0.0.1", 0 },
	{ "none", "::1", 0 },
};

START_TEST(test_is_relay_client)
{
	struct config		*c;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	const struct sockaddr	*sa;
	char			 text[256];

	if (relay_clients[_i].nets == NULL)
		c = load_ok("");
	else {
		util_snprintf(text, sizeof text,
		    "[smtp]\nrelay_networks = %s\n", relay_clients[_i].nets);
		c = load_ok(text);
	}
	memset(&sin, 0, sizeof sin);
	memset(&sin6, 0, sizeof sin6);
	if (inet_pton(AF_INET, relay_clients[_i].addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sa = (const struct sockaddr *)&sin;
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, relay_clients[_i].addr,
		    &sin6.sin6_addr), 1);
		sin6.sin6_family = AF_INET6;
		sa = (const struct sockaddr *)&sin6;
	}
	ck_assert_msg(config_is_relay_client(c, sa) == relay_clients[_i].want,
	    "%s in %s", relay_clients[_i].addr, relay_clients[_i].nets);
	config_free(c);
}
END_TEST

/* "proxy:" marks one listen address, keeps its text, and is compared. */
START_TEST(test_proxy_listen)
{
	struct config	*c;
	char		*text;
	size_t		 len;
	FILE		*fp;

	c = load_ok("[smtp]\nlisten = proxy:127.0.0.1:2525 [::1]:2525 "
	    "proxy:*:2526\nproxy_networks = 192.0.2.5 2001:db8::/64\n"
	    "proxy_timeout = 3s\n");
	ck_assert_uint_eq(c->nlisten, 4);
	ck_assert_int_eq(c->listen[0].proxy, 1);
	ck_assert_int_eq(c->listen[1].proxy, 0);
	ck_assert_int_eq(c->listen[2].proxy, 1);
	ck_assert_int_eq(c->listen[3].proxy, 1);
	ck_assert_int_eq(c->listen[0].ss.ss_family, AF_INET);
	ck_assert_str_eq(c->listen[0].text, "proxy:127.0.0.1:2525");
	ck_assert_uint_eq(c->proxy_timeout, 3000);
	ck_assert_uint_eq(c->nproxy_networks, 2);
	ck_assert_int_eq(config_has_proxy_listen(c), 1);
	fp = open_memstream(&text, &len);
	config_print(c, fp);
	fclose(fp);
	ck_assert_ptr_nonnull(strstr(text, "listen = proxy:127.0.0.1:2525 "
	    "[::1]:2525 proxy:*:2526\n"));
	free(text);
	config_free(c);
	c = load_ok("");
	ck_assert_int_eq(config_has_proxy_listen(c), 0);
	ck_assert_uint_eq(c->nproxy_networks, 0);
	ck_assert_uint_eq(c->proxy_timeout, 10000);
	config_free(c);
}
END_TEST

START_TEST(test_is_proxy_client)
{
	struct config		*c;
	struct sockaddr_in	 sin;

	c = load_ok("[smtp]\nproxy_networks = 127.0.0.3/32\n");
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.3", &sin.sin_addr);
	ck_assert_int_eq(config_is_proxy_client(c,
	    (struct sockaddr *)&sin), 1);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	ck_assert_int_eq(config_is_proxy_client(c,
	    (struct sockaddr *)&sin), 0);
	/* relay_networks has nothing to do with it. */
	ck_assert_int_eq(config_is_relay_client(c,
	    (struct sockaddr *)&sin), 1);
	config_free(c);
}
END_TEST

START_TEST(test_relay_other_family)
{
	struct config	*c;
	struct sockaddr	 sa;

	c = load_ok("[smtp]\nrelay_networks = 0.0.0.0/0 ::/0\n");

	memset(&sa, 0, sizeof sa);
	sa.sa_family = AF_UNIX;
	ck_assert_int_eq(config_is_relay_client(c, &sa), 0);
	config_free(c);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("good");
	tcase_add_loop_test(tc, test_good_numbers, 0, nitems(good_numbers));
	tcase_add_loop_test(tc, test_good_strings, 0, nitems(good_strings));
	tcase_add_test(tc, test_long_list);
	tcase_add_test(tc, test_two_data_timeouts);
	tcase_add_test(tc, test_dns_servers_long);
	tcase_add_test(tc, test_proxy_listen);
	tcase_add_test(tc, test_is_proxy_client);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad");
	tcase_add_loop_test(tc, test_bad, 0, nitems(bad));
	tcase_add_test(tc, test_bad_exact);
	tcase_add_test(tc, test_bad_exact_needs);
	tcase_add_test(tc, test_bad_escaped);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_directory);
	suite_add_tcase(s, tc);

	tc = tcase_create("defaults");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_builtin);
	tcase_add_test(tc, test_example_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("print");
	tcase_add_loop_test(tc, test_round_trip, 0, nitems(round_trip));
	tcase_add_test(tc, test_round_trip_builtin);
	tcase_add_test(tc, test_print_form);
	tcase_add_loop_test(tc, test_print_value, 0, nitems(print_values));
	suite_add_tcase(s, tc);

	tc = tcase_create("queries");
	tcase_add_loop_test(tc, test_is_local_domain, 0,
	    nitems(local_domains));
	tcase_add_loop_test(tc, test_is_relay_client, 0,
	    nitems(relay_clients));
	tcase_add_test(tc, test_relay_other_family);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(config_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
