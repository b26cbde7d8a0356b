/*
 * config.c: the INI file, parsed with inih through one key table that
 * also gives every default and drives config_print(), and the questions
 * asked of the result (is this domain ours, may this client relay).
 * Pure logic: never touches the network beyond a numeric address
 * conversion and the host name lookup of the default hostname (once per
 * process, at the first load), never includes libevent, and never
 * changes a struct config once returned.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ini.h>

#include "addr.h"
#include "config.h"
#include "dvproto.h"
#include "log.h"
#include "sasl.h"
#include "tls.h"
#include "util.h"

/* Longest line accepted in a file, end of line excluded. */
#define CONFIG_LINE_MAX		4096
/* How long the default hostname may wait for its canonical name. */
#define CONFIG_CANON_TIMEOUT_MS	2000
/* How much of a bad value an error message quotes. */
#define CONFIG_QUOTE_SIZE	128
/* Separators between the items of a list. */
#define CONFIG_LIST_SEP		" \t,"
/* The port of a gateway written without one. */
#define CONFIG_SMTP_PORT	25
#define CONFIG_SYSLOG_PORT	514

/* A host[:port] key's port when none is written: k->min, else SMTP's. */
#define CONFIG_DFLT_PORT(k)	\
	((k)->min != 0 ? (k)->min : CONFIG_SMTP_PORT)

struct config_key;

/*
 * What a type of key knows: how to read a value into a struct config
 * (replacing what was there; on error *cause says why, quoting the bad
 * part, and the struct is unchanged), how to print it back in the same
 * syntax, and how to free what it allocated.
 */
struct config_type {
	int	(*parse)(struct config *, const struct config_key *,
		    const char *, char **);
	void	(*print)(const struct config *, const struct config_key *,
		    FILE *);
	void	(*clear)(struct config *, const struct config_key *);
};

/* One value of an enum key. */
struct config_choice {
	const char	*name;
	int		 value;
};

/* One key of the file: where it lives, its type, default and bounds. */
struct config_key {
	const char			*section;
	const char			*name;
	const struct config_type	*type;
	size_t				 offset;
	size_t				 count;	/* lists: offset of the count;
						   gateway: of the port */
	size_t				 size;	/* strings: field size */
	const char			*dflt;	/* NULL: computed at load */
	uint64_t			 min;
	uint64_t			 max;
	const struct config_choice	*choices;
};

/* State of one config_load() while inih runs. */
struct config_parse {
	struct config	*c;
	const char	*path;
	FILE		*f;
	char		*line;		/* getline() buffer */
	size_t		 linesize;
	int		 lineno;
	int		*seen;		/* line of each key, 0 if not given */
	char		*cause;
};

static int	config_parse_host(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_path(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_name(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_opt_path(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_bool(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_uint(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_size(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_duration(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_enum(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_listen(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_metrics_listen(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_nets(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_domains(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_dns(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_gateway(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_addr(struct config *, const struct config_key *,
		    const char *, char **);
static int	config_parse_transport(struct config *,
		    const struct config_key *, const char *, char **);

static void	config_print_string(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_bool(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_uint(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_size(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_duration(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_enum(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_listen(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_nets(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_domains(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_gateway(const struct config *,
		    const struct config_key *, FILE *);
static void	config_print_transport(const struct config *,
		    const struct config_key *, FILE *);

static void	config_clear_listen(struct config *, const struct config_key *);
static void	config_clear_nets(struct config *, const struct config_key *);
static void	config_clear_domains(struct config *,
		    const struct config_key *);

static const struct config_type config_type_host = {
	config_parse_host, config_print_string, NULL
};
static const struct config_type config_type_path = {
	config_parse_path, config_print_string, NULL
};
static const struct config_type config_type_opt_path = {
	config_parse_opt_path, config_print_string, NULL
};
static const struct config_type config_type_name = {
	config_parse_name, config_print_string, NULL
};
static const struct config_type config_type_bool = {
	config_parse_bool, config_print_bool, NULL
};
static const struct config_type config_type_uint = {
	config_parse_uint, config_print_uint, NULL
};
static const struct config_type config_type_size = {
	config_parse_size, config_print_size, NULL
};
static const struct config_type config_type_duration = {
	config_parse_duration, config_print_duration, NULL
};
static const struct config_type config_type_enum = {
	config_parse_enum, config_print_enum, NULL
};
static const struct config_type config_type_listen = {
	config_parse_listen, config_print_listen, config_clear_listen
};
static const struct config_type config_type_metrics_listen = {
	config_parse_metrics_listen, config_print_listen, config_clear_listen
};
static const struct config_type config_type_nets = {
	config_parse_nets, config_print_nets, config_clear_nets
};
static const struct config_type config_type_domains = {
	config_parse_domains, config_print_domains, config_clear_domains
};
static const struct config_type config_type_dns = {
	config_parse_dns, config_print_string, NULL
};
static const struct config_type config_type_gateway = {
	config_parse_gateway, config_print_gateway, NULL
};
static const struct config_type config_type_addr = {
	config_parse_addr, config_print_string, NULL
};
static const struct config_type config_type_transport = {
	config_parse_transport, config_print_transport, NULL
};

/* Milter sockets: "inet:host:port", "inet6:host:port", "unix:/path". */
static int	config_parse_milters(struct config *,
		    const struct config_key *, const char *, char **);
static const struct config_type config_type_milters = {
	config_parse_milters, config_print_domains, config_clear_domains
};
static const struct config_choice config_choices_milter_action[] = {
	{ "tempfail", CONFIG_MILTER_TEMPFAIL },
	{ "accept", CONFIG_MILTER_ACCEPT },
	{ "reject", CONFIG_MILTER_REJECT },
	{ "quarantine", CONFIG_MILTER_QUARANTINE },
	{ NULL, 0 }
};

/* TLS offers: cipher strings OpenSSL must take, a range of versions. */
static int	config_parse_ciphers(struct config *,
		    const struct config_key *, const char *, char **);
static int	config_parse_protocols(struct config *,
		    const struct config_key *, const char *, char **);
static void	config_print_protocols(const struct config *,
		    const struct config_key *, FILE *);
static const struct config_type config_type_ciphers = {
	config_parse_ciphers, config_print_string, NULL
};
static const struct config_type config_type_protocols = {
	config_parse_protocols, config_print_protocols, NULL
};

/* Submission: SASL mechanisms offered, "auto" (0) or a set of bits. */
static int	config_parse_flags(struct config *, const struct config_key *,
		    const char *, char **);
static void	config_print_flags(const struct config *,
		    const struct config_key *, FILE *);
static int	config_next_item(const char **, const char **, size_t *);
static const struct config_type config_type_flags = {
	config_parse_flags, config_print_flags, NULL
};
static const struct config_choice config_choices_mechs[] = {
	{ "auto", 0 },
	{ "PLAIN", 1 << SASL_MECH_PLAIN },
	{ "LOGIN", 1 << SASL_MECH_LOGIN },
	{ "CRAM-MD5", 1 << SASL_MECH_CRAM_MD5 },
	{ NULL, 0 }
};
static const struct config_choice config_choices_add_headers[] = {
	{ "submission", CONFIG_ADD_HEADERS_SUBMISSION },
	{ "all", CONFIG_ADD_HEADERS_ALL },
	{ "no", CONFIG_ADD_HEADERS_NO },
	{ NULL, 0 }
};

/* SMTP AUTH against Dovecot: who checks, and its socket. */
static int	config_parse_auth_socket(struct config *,
		    const struct config_key *, const char *, char **);
static const struct config_type config_type_auth_socket = {
	config_parse_auth_socket, config_print_string, NULL
};
static const struct config_choice config_choices_auth_backend[] = {
	{ "users", CONFIG_AUTH_USERS },
	{ "dovecot", CONFIG_AUTH_DOVECOT },
	{ NULL, 0 }
};

static const struct config_choice config_choices_log[] = {
	{ "syslog", LOG_TARGET_SYSLOG },
	{ "stderr", LOG_TARGET_STDERR },
	{ "none", LOG_TARGET_NONE },
	{ "file", LOG_TARGET_FILE },
	{ "remote", LOG_TARGET_REMOTE },
	{ NULL, 0 }
};

static const struct config_choice config_choices_queue_list[] = {
	{ "anyone", CONFIG_QUEUE_LIST_ANYONE },
	{ "admins", CONFIG_QUEUE_LIST_ADMINS },
	{ NULL, 0 }
};

static const struct config_choice config_choices_spool_sync[] = {
	{ "file", CONFIG_SPOOL_SYNC_FILE },
	{ "filesystem", CONFIG_SPOOL_SYNC_FILESYSTEM },
	{ NULL, 0 }
};

static const struct config_choice config_choices_bare[] = {
	{ "reject", CONFIG_BARE_REJECT },
	{ "normalize", CONFIG_BARE_NORMALIZE },
	{ NULL, 0 }
};

/* Enum keys are stored through an int. */
_Static_assert(sizeof(enum log_target) == sizeof(int), "enum log_target");
_Static_assert(sizeof(enum config_bare_newlines) == sizeof(int),
    "enum config_bare_newlines");
_Static_assert(sizeof(enum config_add_headers) == sizeof(int),
    "enum config_add_headers");
_Static_assert(sizeof(enum config_auth_backend) == sizeof(int),
    "enum config_auth_backend");
_Static_assert(sizeof(enum config_queue_list) == sizeof(int),
    "enum config_queue_list");
_Static_assert(sizeof(enum config_spool_sync) == sizeof(int),
    "enum config_spool_sync");
_Static_assert(sizeof(enum config_milter_action) == sizeof(int),
    "enum config_milter_action");

#define CONFIG_OFF(f)	offsetof(struct config, f)
#define CONFIG_K	1024ULL
#define CONFIG_G	(1024ULL * 1024 * 1024)
#define CONFIG_S	1000ULL
#define CONFIG_HR	(3600ULL * 1000)
#define CONFIG_D	(86400ULL * 1000)
#define CONFIG_COUNT_MAX 1000000

/* Every key, in the order config_print() writes them. */
static const struct config_key config_keys[] = {
	{ "main", "hostname", &config_type_host, CONFIG_OFF(hostname), 0,
	  CONFIG_HOST_SIZE, NULL, 0, 0, NULL },
	{ "main", "spool", &config_type_path, CONFIG_OFF(spool), 0,
	  CONFIG_PATH_SIZE, "/var/spool/tern", 0, 0, NULL },
	{ "main", "min_free_space", &config_type_size,
	  CONFIG_OFF(min_free_space), 0, 0, "100M", 0, 1024 * 1024 * CONFIG_G,
	  NULL },
	{ "main", "log", &config_type_enum, CONFIG_OFF(log), 0, 0,
	  "syslog", 0, 0, config_choices_log },
	{ "main", "log_server", &config_type_gateway, CONFIG_OFF(log_server),
	  CONFIG_OFF(log_server_port), CONFIG_HOST_SIZE, "", CONFIG_SYSLOG_PORT,
	  0, NULL },
	{ "main", "debug", &config_type_bool, CONFIG_OFF(debug), 0, 0,
	  "no", 0, 0, NULL },
	{ "main", "shutdown_timeout", &config_type_duration,
	  CONFIG_OFF(shutdown_timeout), 0, 0, "30s", 0, CONFIG_D, NULL },
	{ "main", "user", &config_type_name, CONFIG_OFF(user), 0,
	  CONFIG_NAME_SIZE, "tern", 0, 0, NULL },
	{ "main", "group", &config_type_name, CONFIG_OFF(group), 0,
	  CONFIG_NAME_SIZE, "", 1, 0, NULL },
	{ "main", "control_socket", &config_type_path,
	  CONFIG_OFF(control_socket), 0, CONFIG_PATH_SIZE, NULL, 0, 0, NULL },
	{ "main", "queue_list", &config_type_enum, CONFIG_OFF(queue_list), 0,
	  0, "anyone", 0, 0, config_choices_queue_list },
	{ "main", "spool_sync", &config_type_enum, CONFIG_OFF(spool_sync), 0,
	  0, "file", 0, 0, config_choices_spool_sync },
	{ "main", "metrics_listen", &config_type_metrics_listen,
	  CONFIG_OFF(metrics_listen), CONFIG_OFF(nmetrics_listen), 0, "", 1, 0,
	  NULL },

	{ "smtp", "listen", &config_type_listen, CONFIG_OFF(listen),
	  CONFIG_OFF(nlisten), 0, "127.0.0.1:25 [::1]:25", 0, 0, NULL },
	{ "smtp", "max_connections", &config_type_uint,
	  CONFIG_OFF(max_connections), 0, 0, "0", 0, CONFIG_COUNT_MAX,
	  NULL },
	{ "smtp", "max_connections_per_ip", &config_type_uint,
	  CONFIG_OFF(max_connections_per_ip), 0, 0, "50", 0,
	  CONFIG_COUNT_MAX, NULL },
	{ "smtp", "max_message_size", &config_type_size,
	  CONFIG_OFF(max_message_size), 0, 0, "25M", CONFIG_K,
	  64 * CONFIG_G, NULL },
	{ "smtp", "max_recipients", &config_type_uint,
	  CONFIG_OFF(max_recipients), 0, 0, "1000", 1, 100000, NULL },
	{ "smtp", "max_errors", &config_type_uint, CONFIG_OFF(max_errors), 0,
	  0, "20", 1, CONFIG_COUNT_MAX, NULL },
	{ "smtp", "command_timeout", &config_type_duration,
	  CONFIG_OFF(command_timeout), 0, 0, "5m", CONFIG_S, CONFIG_D, NULL },
	{ "smtp", "data_timeout", &config_type_duration,
	  CONFIG_OFF(data_timeout), 0, 0, "5m", CONFIG_S, CONFIG_D, NULL },
	/* Deadlines and admission control (smtp_session.c, smtp_server.c). */
	{ "smtp", "data_min_rate", &config_type_size,
	  CONFIG_OFF(data_min_rate), 0, 0, "500", 0, CONFIG_G, NULL },
	{ "smtp", "tls_timeout", &config_type_duration,
	  CONFIG_OFF(tls_timeout), 0, 0, "1m", CONFIG_S, CONFIG_HR, NULL },
	{ "smtp", "auth_timeout", &config_type_duration,
	  CONFIG_OFF(auth_timeout), 0, 0, "2m", CONFIG_S, CONFIG_HR, NULL },
	{ "smtp", "stress_timeout", &config_type_duration,
	  CONFIG_OFF(stress_timeout), 0, 0, "10s", CONFIG_S, CONFIG_HR, NULL },
	{ "smtp", "session_memory", &config_type_size,
	  CONFIG_OFF(session_memory), 0, 0, "256M", CONFIG_K * CONFIG_K,
	  64 * CONFIG_G, NULL },
	{ "smtp", "bare_newlines", &config_type_enum,
	  CONFIG_OFF(bare_newlines), 0, 0, "reject", 0, 0,
	  config_choices_bare },
	{ "smtp", "local_domains", &config_type_domains,
	  CONFIG_OFF(local_domains), CONFIG_OFF(nlocal_domains), 0, NULL, 0,
	  0, NULL },
	{ "smtp", "relay_networks", &config_type_nets,
	  CONFIG_OFF(relay_networks), CONFIG_OFF(nrelay_networks), 0,
	  "127.0.0.0/8 ::1/128", 0, 0, NULL },
	{ "smtp", "submission_listen", &config_type_listen,
	  CONFIG_OFF(submission_listen), CONFIG_OFF(nsubmission_listen), 0,
	  "", 1, 0, NULL },
	{ "smtp", "smtps_listen", &config_type_listen,
	  CONFIG_OFF(smtps_listen), CONFIG_OFF(nsmtps_listen), 0, "", 1, 0,
	  NULL },
	{ "smtp", "tls_cert", &config_type_opt_path, CONFIG_OFF(tls_cert), 0,
	  CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "smtp", "tls_key", &config_type_opt_path, CONFIG_OFF(tls_key), 0,
	  CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "smtp", "tls_protocols", &config_type_protocols,
	  CONFIG_OFF(tls_protocols), 0, 0, TLS_DEFAULT_PROTOCOLS, 0, 0, NULL },
	{ "smtp", "tls_ciphers", &config_type_ciphers, CONFIG_OFF(tls_ciphers),
	  0, CONFIG_CIPHERS_SIZE, TLS_DEFAULT_CIPHERS, 0, 0, NULL },
	{ "smtp", "tls_ciphersuites", &config_type_ciphers,
	  CONFIG_OFF(tls_ciphersuites), 0, CONFIG_CIPHERS_SIZE,
	  TLS_DEFAULT_SUITES, 1, 0, NULL },
	{ "smtp", "auth_plaintext", &config_type_bool,
	  CONFIG_OFF(auth_plaintext), 0, 0, "no", 0, 0, NULL },
	{ "smtp", "auth_sender_check", &config_type_bool,
	  CONFIG_OFF(auth_sender_check), 0, 0, "yes", 0, 0, NULL },
	{ "smtp", "auth_max_failures", &config_type_uint,
	  CONFIG_OFF(auth_max_failures), 0, 0, "3", 1, 100, NULL },
	{ "smtp", "auth_mechanisms", &config_type_flags,
	  CONFIG_OFF(auth_mechanisms), 0, 0, "auto", 0, 0,
	  config_choices_mechs },
	{ "smtp", "add_missing_headers", &config_type_enum,
	  CONFIG_OFF(add_missing_headers), 0, 0, "submission", 0, 0,
	  config_choices_add_headers },
	{ "smtp", "auth_failure_delay", &config_type_duration,
	  CONFIG_OFF(auth_failure_delay), 0, 0, "1s", 0, 60 * CONFIG_S,
	  NULL },
	{ "smtp", "auth_backend", &config_type_enum,
	  CONFIG_OFF(auth_backend), 0, 0, "users", 0, 0,
	  config_choices_auth_backend },
	{ "smtp", "dovecot_auth_socket", &config_type_auth_socket,
	  CONFIG_OFF(dovecot_auth_socket), 0, CONFIG_PATH_SIZE,
	  "/run/dovecot/auth-client", 0, 0, NULL },
	{ "smtp", "etrn_networks", &config_type_nets,
	  CONFIG_OFF(etrn_networks), CONFIG_OFF(netrn_networks), 0, NULL, 0,
	  0, NULL },
	/* Per-client limits across sessions (anvil.c). */
	{ "smtp", "client_limit_exempt", &config_type_nets,
	  CONFIG_OFF(client_limit_exempt), CONFIG_OFF(nclient_limit_exempt),
	  0, NULL, 0, 0, NULL },
	{ "smtp", "client_rate_unit", &config_type_duration,
	  CONFIG_OFF(client_rate_unit), 0, 0, "1m", CONFIG_S, CONFIG_D, NULL },
	{ "smtp", "max_connection_rate", &config_type_uint,
	  CONFIG_OFF(max_connection_rate), 0, 0, "0", 0, CONFIG_COUNT_MAX,
	  NULL },
	{ "smtp", "max_message_rate", &config_type_uint,
	  CONFIG_OFF(max_message_rate), 0, 0, "0", 0, CONFIG_COUNT_MAX, NULL },
	{ "smtp", "max_recipient_rate", &config_type_uint,
	  CONFIG_OFF(max_recipient_rate), 0, 0, "0", 0, CONFIG_COUNT_MAX,
	  NULL },
	{ "smtp", "max_auth_failure_rate", &config_type_uint,
	  CONFIG_OFF(max_auth_failure_rate), 0, 0, "5", 0, CONFIG_COUNT_MAX,
	  NULL },
	{ "smtp", "max_auth_failure_rate_per_user", &config_type_uint,
	  CONFIG_OFF(max_auth_failure_rate_per_user), 0, 0, "10", 0,
	  CONFIG_COUNT_MAX, NULL },
	{ "smtp", "auth_penalty", &config_type_duration,
	  CONFIG_OFF(auth_penalty), 0, 0, "10m", CONFIG_S, CONFIG_D, NULL },
	{ "smtp", "client_ipv6_prefix", &config_type_uint,
	  CONFIG_OFF(client_ipv6_prefix), 0, 0, "64", 1, 128, NULL },
	{ "smtp", "client_table_size", &config_type_uint,
	  CONFIG_OFF(client_table_size), 0, 0, "50000", 100,
	  10 * CONFIG_COUNT_MAX, NULL },
	/* The PROXY protocol on "proxy:" listeners (smtp_server.c). */
	{ "smtp", "proxy_networks", &config_type_nets,
	  CONFIG_OFF(proxy_networks), CONFIG_OFF(nproxy_networks), 0, "", 0,
	  0, NULL },
	{ "smtp", "proxy_timeout", &config_type_duration,
	  CONFIG_OFF(proxy_timeout), 0, 0, "10s", CONFIG_S, CONFIG_HR, NULL },

	{ "local", "default_domain", &config_type_host,
	  CONFIG_OFF(default_domain), 0, CONFIG_HOST_SIZE, NULL, 0, 0, NULL },
	{ "local", "users", &config_type_opt_path, CONFIG_OFF(users), 0,
	  CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "local", "aliases", &config_type_opt_path, CONFIG_OFF(aliases), 0,
	  CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "local", "mailboxes", &config_type_path, CONFIG_OFF(mailboxes), 0,
	  CONFIG_PATH_SIZE, "/var/lib/tern/mail", 0, 0, NULL },
	{ "local", "postmaster", &config_type_addr, CONFIG_OFF(postmaster), 0,
	  CONFIG_ADDR_SIZE, NULL, 0, 0, NULL },
	/* Local delivery over LMTP (mta_session.c in its LMTP mode). */
	{ "local", "transport", &config_type_transport,
	  CONFIG_OFF(transport), 0, 0, "maildir", 0, 0, NULL },
	{ "local", "lmtp_max_connections", &config_type_uint,
	  CONFIG_OFF(lmtp_max_connections), 0, 0, "10", 1, 1000, NULL },

	{ "delivery", "queue_interval", &config_type_duration,
	  CONFIG_OFF(queue_interval), 0, 0, "30m", CONFIG_S, CONFIG_D, NULL },
	{ "delivery", "max_tries", &config_type_uint, CONFIG_OFF(max_tries),
	  0, 0, "20", 1, 1000, NULL },
	{ "delivery", "max_deliveries", &config_type_uint,
	  CONFIG_OFF(max_deliveries), 0, 0, "30", 1, 10000, NULL },
	{ "delivery", "max_per_destination", &config_type_uint,
	  CONFIG_OFF(max_per_destination), 0, 0, "10", 1, 1000, NULL },
	{ "delivery", "remote_port", &config_type_uint,
	  CONFIG_OFF(remote_port), 0, 0, "25", 1, 65535, NULL },
	{ "delivery", "dns_servers", &config_type_dns, CONFIG_OFF(dns_servers),
	  0, CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "delivery", "gateway", &config_type_gateway, CONFIG_OFF(gateway),
	  CONFIG_OFF(gateway_port), CONFIG_HOST_SIZE, "", 0, 0, NULL },
	{ "delivery", "gateway_all", &config_type_bool,
	  CONFIG_OFF(gateway_all), 0, 0, "no", 0, 0, NULL },
	{ "delivery", "gateway_after_tries", &config_type_uint,
	  CONFIG_OFF(gateway_after_tries), 0, 0, "0", 0, 1000, NULL },
	{ "delivery", "gateway_tls_verify", &config_type_bool,
	  CONFIG_OFF(gateway_tls_verify), 0, 0, "no", 0, 0, NULL },
	{ "delivery", "gateway_auth_file", &config_type_opt_path,
	  CONFIG_OFF(gateway_auth_file), 0, CONFIG_PATH_SIZE, "", 0, 0, NULL },
	{ "delivery", "starttls", &config_type_bool, CONFIG_OFF(starttls), 0,
	  0, "yes", 0, 0, NULL },
	{ "delivery", "connect_timeout", &config_type_duration,
	  CONFIG_OFF(connect_timeout), 0, 0, "30s", CONFIG_S, CONFIG_HR, NULL },
	{ "delivery", "reply_timeout", &config_type_duration,
	  CONFIG_OFF(reply_timeout), 0, 0, "5m", CONFIG_S, CONFIG_HR, NULL },
	{ "delivery", "data_timeout", &config_type_duration,
	  CONFIG_OFF(delivery_data_timeout), 0, 0, "10m", CONFIG_S, CONFIG_HR,
	  NULL },
	{ "delivery", "idle_timeout", &config_type_duration,
	  CONFIG_OFF(idle_timeout), 0, 0, "5s", CONFIG_S, CONFIG_HR, NULL },
	{ "delivery", "max_received_headers", &config_type_uint,
	  CONFIG_OFF(max_received_headers), 0, 0, "100", 1, 1000, NULL },
	{ "delivery", "delay_notice_after", &config_type_duration,
	  CONFIG_OFF(delay_notice_after), 0, 0, "4h", 0, 30 * CONFIG_D,
	  NULL },
	{ "delivery", "bounce_size_limit", &config_type_size,
	  CONFIG_OFF(bounce_size_limit), 0, 0, "50000", 0, 64 * 1024 * CONFIG_K,
	  NULL },

	/* Content filters (milter.c). */
	{ "milter", "smtpd_milters", &config_type_milters,
	  CONFIG_OFF(smtpd_milters), CONFIG_OFF(nsmtpd_milters), 0, "", 0, 0,
	  NULL },
	{ "milter", "non_smtpd_milters", &config_type_milters,
	  CONFIG_OFF(non_smtpd_milters), CONFIG_OFF(nnon_smtpd_milters), 0, "",
	  0, 0, NULL },
	{ "milter", "default_action", &config_type_enum,
	  CONFIG_OFF(milter_default_action), 0, 0, "tempfail", 0, 0,
	  config_choices_milter_action },
	{ "milter", "connect_timeout", &config_type_duration,
	  CONFIG_OFF(milter_connect_timeout), 0, 0, "30s", CONFIG_S, CONFIG_HR,
	  NULL },
	{ "milter", "command_timeout", &config_type_duration,
	  CONFIG_OFF(milter_command_timeout), 0, 0, "30s", CONFIG_S, CONFIG_HR,
	  NULL },
	{ "milter", "content_timeout", &config_type_duration,
	  CONFIG_OFF(milter_content_timeout), 0, 0, "5m", CONFIG_S, CONFIG_HR,
	  NULL },
	{ "milter", "protocol", &config_type_uint, CONFIG_OFF(milter_protocol),
	  0, 0, "6", 2, 6, NULL },
};

/* Where the built-in configuration differs from a file's defaults. */
static const struct {
	const char	*section;
	const char	*name;
	const char	*value;
} config_builtin[] = {
	{ "main", "log", "stderr" },
	{ "smtp", "listen", "127.0.0.1:2525 [::1]:2525" },
};

#define CONFIG_FIELD(c, k, t)	((t *)(void *)((char *)(c) + (k)->offset))
#define CONFIG_CFIELD(c, k, t)	\
	((const t *)(const void *)((const char *)(c) + (k)->offset))
#define CONFIG_COUNT(c, k)	((size_t *)(void *)((char *)(c) + (k)->count))
#define CONFIG_CCOUNT(c, k)	\
	((const size_t *)(const void *)((const char *)(c) + (k)->count))
#define CONFIG_PORT(c, k)	\
	((uint64_t *)(void *)((char *)(c) + (k)->count))
#define CONFIG_CPORT(c, k)	\
	((const uint64_t *)(const void *)((const char *)(c) + (k)->count))

static int
config_is_section(const char *section)
{
	size_t	i;

	for (i = 0; i < nitems(config_keys); i++) {
		if (strcmp(config_keys[i].section, section) == 0)
			return 1;
	}
	return 0;
}

/* The index of a key in config_keys, or -1. */
static int
config_find_key(const char *section, const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(config_keys); i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/* "why "text"" with the text made printable and cut to a sane length. */
static void
config_bad(char **cause, const char *why, const char *text, size_t len)
{
	char	quoted[CONFIG_QUOTE_SIZE];

	log_escape(quoted, sizeof quoted, text, len);
	xasprintf(cause, "%s \"%s\"", why, quoted);
}

/*
 * A domain name as RFC 1035 section 2.3.1 spells host names: labels of
 * letters, digits and inner hyphens, at most 63 octets each and 253 in
 * all.  An all-numeric last label is refused so that an IP address never
 * passes for a domain.
 */
static int
config_is_domain(const char *s, size_t len)
{
	size_t	i, label = 0, start = 0;
	int	numeric = 1;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			label = i - start;
			if (label == 0 || label > 63 || s[start] == '-' ||
			    s[i - 1] == '-')
				return 0;
			start = i + 1;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	}
	for (i = len - label; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			numeric = 0;
	}
	return !numeric;
}

/* Length of a domain without its one trailing dot. */
static size_t
config_domain_len(const char *s)
{
	size_t	len = strlen(s);

	if (len > 1 && s[len - 1] == '.')
		len--;
	return len;
}

static int
config_parse_host(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	size_t	len = config_domain_len(value);

	if (!config_is_domain(value, len)) {
		config_bad(cause, "not a valid domain name", value,
		    strlen(value));
		return -1;
	}
	if (len >= k->size) {
		config_bad(cause, "too long", value, strlen(value));
		return -1;
	}
	memcpy(CONFIG_FIELD(c, k, char), value, len);
	CONFIG_FIELD(c, k, char)[len] = '\0';
	return 0;
}

static int
config_parse_path(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	if (value[0] != '/') {
		config_bad(cause, "not an absolute path", value, strlen(value));
		return -1;
	}
	if (strlen(value) >= k->size) {
		config_bad(cause, "too long", value, strlen(value));
		return -1;
	}
	util_strlcpy(CONFIG_FIELD(c, k, char), value, k->size);
	return 0;
}

/* A mailbox address, local@domain, stored lowercased. */
static int
config_parse_addr(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	struct addr	 a;
	const char	*rest, *why;
	char		 path[ADDR_PATH_SIZE + 2], buf[ADDR_PATH_SIZE];
	size_t		 i;

	if (util_snprintf(path, sizeof path, "<%s>", value) == -1 ||
	    addr_parse_path(path, 0, &a, &rest, &why) != 0 || *rest != '\0' ||
	    addr_has_routing(&a) || addr_format(&a, buf, sizeof buf) == -1 ||
	    strlen(buf) >= k->size) {
		config_bad(cause, "not an address (local@domain)", value,
		    strlen(value));
		return -1;
	}
	for (i = 0; buf[i] != '\0'; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	util_strlcpy(CONFIG_FIELD(c, k, char), buf, k->size);
	return 0;
}

/* A path that may be left empty: the feature it names is not used. */
static int
config_parse_opt_path(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	if (*value == '\0') {
		CONFIG_FIELD(c, k, char)[0] = '\0';
		return 0;
	}
	return config_parse_path(c, k, value, cause);
}

/*
 * Dovecot's auth client socket: an absolute path, unix:/path, or
 * inet:HOST:PORT with a numeric HOST, as dvproto reads it.
 */
static int
config_parse_auth_socket(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*why;

	if (dvproto_parse_socket(value, &ss, &sslen, &why) == -1) {
		config_bad(cause, why, value, strlen(value));
		free(why);
		return -1;
	}
	if (strlen(value) >= k->size) {
		config_bad(cause, "too long", value, strlen(value));
		return -1;
	}
	util_strlcpy(CONFIG_FIELD(c, k, char), value, k->size);
	return 0;
}

/* An OpenSSL cipher string: TLS 1.3 suites when k->min is 1. */
static int
config_parse_ciphers(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	char	*why = NULL;

	if (strlen(value) >= k->size) {
		config_bad(cause, "too long", value, strlen(value));
		return -1;
	}
	if (tls_check_ciphers(value, k->min == 1, &why) == -1) {
		*cause = why;
		return -1;
	}
	util_strlcpy(CONFIG_FIELD(c, k, char), value, k->size);
	return 0;
}

/* "TLSv1.2 TLSv1.3": stored as TLS_PROTO_* bits. */
static int
config_parse_protocols(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	return tls_parse_protocols(value, CONFIG_FIELD(c, k, int), cause);
}

static void
config_print_protocols(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	char	buf[64];

	tls_format_protocols(*CONFIG_CFIELD(c, k, int), buf, sizeof buf);
	fputs(buf, fp);
}

static void
config_print_string(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	fputs(CONFIG_CFIELD(c, k, char), fp);
}

/*
 * A user or group name: what useradd accepts, so a typo is reported here
 * rather than as an unknown user at start-up.  A key with min 1 may be
 * left empty (group: the user's primary group).
 */
static int
config_parse_name(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	size_t	i, len = strlen(value);

	if (len == 0 && k->min == 0) {
		config_bad(cause, "must not be empty", value, len);
		return -1;
	}
	if (len >= k->size) {
		config_bad(cause, "too long", value, len);
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char	ch = value[i];

		if (!isalnum(ch) && ch != '_' && ch != '.' &&
		    (ch != '-' || i == 0) && (ch != '$' || i != len - 1)) {
			config_bad(cause, "not a valid user or group name",
			    value, len);
			return -1;
		}
	}
	util_strlcpy(CONFIG_FIELD(c, k, char), value, k->size);
	return 0;
}

static int
config_parse_bool(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	int	v;

	if (util_parse_bool(value, &v) == -1) {
		config_bad(cause, "not yes or no", value, strlen(value));
		return -1;
	}
	*CONFIG_FIELD(c, k, int) = v;
	return 0;
}

static void
config_print_bool(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	fputs(*CONFIG_CFIELD(c, k, int) ? "yes" : "no", fp);
}

/*
 * The common end of the number types: report a parse failure or a value
 * out of the key's range (printed with the type's own formatter).
 */
static int
config_check_number(const struct config_key *k, const char *value,
    int rc, const char *why, uint64_t v,
    void (*format)(char *, size_t, uint64_t), char **cause)
{
	char	lo[32], hi[32], msg[96];

	if (rc == -1 && strcmp(why, "too large") != 0) {
		config_bad(cause, why, value, strlen(value));
		return -1;
	}
	if (rc == -1 || v < k->min || v > k->max) {
		format(lo, sizeof lo, k->min);
		format(hi, sizeof hi, k->max);
		util_snprintf(msg, sizeof msg, "out of range (%s to %s)", lo,
		    hi);
		config_bad(cause, msg, value, strlen(value));
		return -1;
	}
	return 0;
}

static void
config_format_uint(char *buf, size_t size, uint64_t v)
{
	util_snprintf(buf, size, "%llu", (unsigned long long)v);
}

static int
config_parse_uint(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	const char	*why = NULL;
	uint64_t	 v = 0;
	int		 rc;

	rc = util_parse_uint(value, 0, UINT64_MAX, &v, &why);
	if (config_check_number(k, value, rc, why, v, config_format_uint,
	    cause) == -1)
		return -1;
	*CONFIG_FIELD(c, k, uint64_t) = v;
	return 0;
}

static void
config_print_uint(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	fprintf(fp, "%llu",
	    (unsigned long long)*CONFIG_CFIELD(c, k, uint64_t));
}

static int
config_parse_size(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	const char	*why = NULL;
	uint64_t	 v = 0;
	int		 rc;

	rc = util_parse_size(value, &v, &why);
	if (config_check_number(k, value, rc, why, v, util_format_size,
	    cause) == -1)
		return -1;
	*CONFIG_FIELD(c, k, uint64_t) = v;
	return 0;
}

static void
config_print_size(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	char	buf[32];

	util_format_size(buf, sizeof buf, *CONFIG_CFIELD(c, k, uint64_t));
	fputs(buf, fp);
}

static int
config_parse_duration(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	const char	*why = NULL;
	uint64_t	 v = 0;
	int		 rc;

	rc = util_parse_duration(value, &v, &why);
	if (config_check_number(k, value, rc, why, v, util_format_duration,
	    cause) == -1)
		return -1;
	*CONFIG_FIELD(c, k, uint64_t) = v;
	return 0;
}

static void
config_print_duration(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	char	buf[32];

	util_format_duration(buf, sizeof buf,
	    *CONFIG_CFIELD(c, k, uint64_t));
	fputs(buf, fp);
}

static int
config_parse_enum(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	const struct config_choice	*ch;
	char				 msg[96] = "not one of";

	for (ch = k->choices; ch->name != NULL; ch++) {
		if (strcasecmp(ch->name, value) == 0) {
			*CONFIG_FIELD(c, k, int) = ch->value;
			return 0;
		}
	}
	for (ch = k->choices; ch->name != NULL; ch++) {
		util_strlcat(msg, ch == k->choices ? " " : ", ", sizeof msg);
		util_strlcat(msg, ch->name, sizeof msg);
	}
	config_bad(cause, msg, value, strlen(value));
	return -1;
}

static void
config_print_enum(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const struct config_choice	*ch;
	int				 v = *CONFIG_CFIELD(c, k, int);

	for (ch = k->choices; ch->name != NULL; ch++) {
		if (ch->value == v) {
			fputs(ch->name, fp);
			return;
		}
	}
	fatalx("config: [%s] %s holds unknown value %d", k->section, k->name,
	    v);
}

/*
 * A list of choices ORed together; the choice worth 0 ("auto") only
 * alone.
 */
static int
config_parse_flags(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	const struct config_choice	*ch;
	const char			*p = value, *item;
	size_t				 len, n = 0;
	int				 v = 0, zero = 0;

	while (config_next_item(&p, &item, &len)) {
		for (ch = k->choices; ch->name != NULL; ch++) {
			if (strlen(ch->name) == len &&
			    strncasecmp(ch->name, item, len) == 0)
				break;
		}
		if (ch->name == NULL) {
			config_bad(cause, "unknown name", item, len);
			return -1;
		}
		zero |= ch->value == 0;
		v |= ch->value;
		n++;
	}
	if (n == 0 || (zero && n > 1)) {
		config_bad(cause, n == 0 ? "must not be empty" :
		    "\"auto\" must stand alone", value, strlen(value));
		return -1;
	}
	*CONFIG_FIELD(c, k, int) = v;
	return 0;
}

static void
config_print_flags(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const struct config_choice	*ch;
	int				 v = *CONFIG_CFIELD(c, k, int);
	const char			*sep = "";

	for (ch = k->choices; ch->name != NULL; ch++) {
		if (ch->value == 0 ? v == 0 : (v & ch->value) != 0) {
			fprintf(fp, "%s%s", sep, ch->name);
			sep = " ";
		}
	}
}

/* The next item of a list: *item and *len, or 0 at the end. */
static int
config_next_item(const char **p, const char **item, size_t *len)
{
	*p += strspn(*p, CONFIG_LIST_SEP);
	if (**p == '\0')
		return 0;
	*item = *p;
	*len = strcspn(*p, CONFIG_LIST_SEP);
	*p += *len;
	return 1;
}

/* A list that is empty or the one word "none". */
static int
config_is_none(const char *value)
{
	const char	*p = value, *item;
	size_t		 len;

	if (!config_next_item(&p, &item, &len))
		return 1;
	if (len != 4 || strncasecmp(item, "none", 4) != 0)
		return 0;
	return !config_next_item(&p, &item, &len);
}

/*
 * Split "host", "host:port", "[host]" or "[host]:port" in place into
 * *host, without brackets, and *port, NULL when none is given; *v6 says
 * whether there were brackets.  A colon outside brackets always starts
 * the port, so an IPv6 address must be bracketed to be told from one.
 */
static int
config_split_port(char *entry, char **host, char **port, int *v6,
    const char **why)
{
	char	*end;

	*host = entry;
	*port = NULL;
	*v6 = entry[0] == '[';
	if (*v6) {
		if ((end = strchr(entry, ']')) == NULL ||
		    (end[1] != ':' && end[1] != '\0')) {
			*why = "not a numeric IPv6 address";
			return -1;
		}
		(*host)++;
		*end++ = '\0';
		if (*end == ':')
			*port = end + 1;
	} else if ((end = strchr(entry, ':')) != NULL) {
		if (strchr(end + 1, ':') != NULL) {
			*why = "IPv6 address not in brackets";
			return -1;
		}
		*end = '\0';
		*port = end + 1;
	}
	return 0;
}

/*
 * One numeric address of a listen entry (the part before the port) into
 * l->ss; never asks DNS.
 */
static int
config_listen_addr(struct config_listen *l, const char *host, int family,
    const char *port)
{
	struct addrinfo	 hints, *res;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	if (res->ai_addrlen > sizeof l->ss) {
		freeaddrinfo(res);
		return -1;
	}
	memcpy(&l->ss, res->ai_addr, res->ai_addrlen);
	l->sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * One listen entry ("192.0.2.1:25", "[2001:db8::1]:25", "*:25") appended
 * to the list; "*" gives two entries, 0.0.0.0 and [::].
 */
static int
config_listen_entry(struct config_listen **ls, size_t *n, const char *item,
    size_t len, char **cause)
{
	struct config_listen	 l[2];
	char			 entry[sizeof l[0].text], *host, *port;
	const char		*why = NULL;
	uint64_t		 num;
	size_t			 i, j, nl = 1;
	int			 family, v6;

	memset(l, 0, sizeof l);
	if (len >= sizeof entry) {
		config_bad(cause, "too long", item, len);
		return -1;
	}
	memcpy(entry, item, len);
	entry[len] = '\0';
	/* "proxy:": the PROXY protocol first, from proxy_networks. */
	host = entry;
	if (strncmp(entry, CONFIG_PROXY_PREFIX,
	    sizeof CONFIG_PROXY_PREFIX - 1) == 0) {
		l[0].proxy = l[1].proxy = 1;
		host += sizeof CONFIG_PROXY_PREFIX - 1;
	}
	if (config_split_port(host, &host, &port, &v6, &why) == -1) {
		config_bad(cause, why, item, len);
		return -1;
	}
	family = v6 ? AF_INET6 : AF_INET;
	if (port == NULL) {
		config_bad(cause, "no port", item, len);
		return -1;
	}
	if (util_parse_uint(port, 1, 65535, &num, &why) == -1) {
		config_bad(cause, "port not a number from 1 to 65535", item,
		    len);
		return -1;
	}
	if (family == AF_INET && strcmp(host, "*") == 0) {
		nl = 2;
		if (config_listen_addr(&l[0], "0.0.0.0", AF_INET, port) == -1 ||
		    config_listen_addr(&l[1], "::", AF_INET6, port) == -1)
			fatalx("config: cannot convert wildcard addresses");
	} else if (config_listen_addr(&l[0], host, family, port) == -1) {
		config_bad(cause, family == AF_INET ?
		    "not a numeric IPv4 address" :
		    "not a numeric IPv6 address", item, len);
		return -1;
	}
	for (j = 0; j < nl; j++) {
		memcpy(l[j].text, item, len);
		l[j].text[len] = '\0';
		for (i = 0; i < *n; i++) {
			if ((*ls)[i].sslen == l[j].sslen &&
			    memcmp(&(*ls)[i].ss, &l[j].ss, l[j].sslen) == 0) {
				config_bad(cause, "address listed twice", item,
				    len);
				return -1;
			}
		}
		*ls = xreallocarray(*ls, *n + 1, sizeof **ls);
		(*ls)[(*n)++] = l[j];
	}
	return 0;
}

static int
config_parse_listen(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	struct config_listen	*ls = NULL;
	const char		*p = value, *item;
	size_t			 n = 0, len;

	while (config_next_item(&p, &item, &len)) {
		if (config_listen_entry(&ls, &n, item, len, cause) == -1) {
			free(ls);
			return -1;
		}
	}
	/* A key with min 1 may be left empty: nothing listens there. */
	if (n == 0 && k->min == 0) {
		config_bad(cause, "no address", value, strlen(value));
		return -1;
	}
	config_clear_listen(c, k);
	*CONFIG_FIELD(c, k, struct config_listen *) = ls;
	*CONFIG_COUNT(c, k) = n;
	return 0;
}

/*
 * metrics_listen: listen entries, where a bare port means the loopback
 * address ("9100" is "127.0.0.1:9100"): metrics are for the host's own
 * scraper unless an address says otherwise.
 */
static int
config_parse_metrics_listen(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	struct util_buf	 b;
	const char	*p = value, *item;
	size_t		 len;
	int		 rc;

	memset(&b, 0, sizeof b);
	util_buf_adds(&b, "");
	while (config_next_item(&p, &item, &len)) {
		if (b.len > 0)
			util_buf_adds(&b, " ");
		if (len > 0 && strspn(item, "0123456789") >= len)
			util_buf_adds(&b, "127.0.0.1:");
		util_buf_add(&b, item, len);
	}
	rc = config_parse_listen(c, k, b.data, cause);
	free(b.data);
	return rc;
}

/*
 * The entries as written; the two halves of a "*" share one text and
 * are printed once.
 */
static void
config_print_listen(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const struct config_listen	*ls;
	size_t				 i, n;

	ls = *CONFIG_CFIELD(c, k, struct config_listen *);
	n = *CONFIG_CCOUNT(c, k);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(ls[i].text, ls[i - 1].text) == 0)
			continue;
		fprintf(fp, "%s%s", i > 0 ? " " : "", ls[i].text);
	}
}

static void
config_clear_listen(struct config *c, const struct config_key *k)
{
	free(*CONFIG_FIELD(c, k, struct config_listen *));
	*CONFIG_FIELD(c, k, struct config_listen *) = NULL;
	*CONFIG_COUNT(c, k) = 0;
}

/* One network in CIDR form; a bare address is a network of one. */
static int
config_net_entry(struct config_net *net, const char *item, size_t len,
    char **cause)
{
	char		 text[64], *slash;
	const char	*why = NULL;
	uint64_t	 prefix;
	unsigned	 bits, i;

	memset(net, 0, sizeof *net);
	if (len >= sizeof text) {
		config_bad(cause, "not a network", item, len);
		return -1;
	}
	memcpy(text, item, len);
	text[len] = '\0';
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, text, net->addr) == 1) {
		net->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, text, net->addr) == 1) {
		net->family = AF_INET6;
		bits = 128;
	} else {
		config_bad(cause, "not an IP address", item, len);
		return -1;
	}
	net->prefix = bits;
	if (slash != NULL) {
		if (util_parse_uint(slash + 1, 0, bits, &prefix, &why) == -1) {
			config_bad(cause, net->family == AF_INET ?
			    "prefix length not from 0 to 32" :
			    "prefix length not from 0 to 128", item, len);
			return -1;
		}
		net->prefix = (unsigned)prefix;
	}
	for (i = net->prefix; i < bits; i++) {
		if (net->addr[i / 8] & (0x80 >> (i % 8))) {
			config_bad(cause, "host bits set", item, len);
			return -1;
		}
	}
	return 0;
}

static int
config_parse_nets(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	struct config_net	*nets = NULL;
	const char		*p = value, *item;
	size_t			 n = 0, len;

	if (!config_is_none(value)) {
		while (config_next_item(&p, &item, &len)) {
			nets = xreallocarray(nets, n + 1, sizeof *nets);
			if (config_net_entry(&nets[n], item, len,
			    cause) == -1) {
				free(nets);
				return -1;
			}
			n++;
		}
	}
	config_clear_nets(c, k);
	*CONFIG_FIELD(c, k, struct config_net *) = nets;
	*CONFIG_COUNT(c, k) = n;
	return 0;
}

static void
config_print_nets(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const struct config_net	*nets;
	char			 buf[INET6_ADDRSTRLEN];
	size_t			 i, n;

	nets = *CONFIG_CFIELD(c, k, struct config_net *);
	n = *CONFIG_CCOUNT(c, k);
	if (n == 0)
		fputs("none", fp);
	for (i = 0; i < n; i++) {
		if (inet_ntop(nets[i].family, nets[i].addr, buf,
		    sizeof buf) == NULL)
			fatal("config: inet_ntop");
		fprintf(fp, "%s%s/%u", i > 0 ? " " : "", buf, nets[i].prefix);
	}
}

static void
config_clear_nets(struct config *c, const struct config_key *k)
{
	free(*CONFIG_FIELD(c, k, struct config_net *));
	*CONFIG_FIELD(c, k, struct config_net *) = NULL;
	*CONFIG_COUNT(c, k) = 0;
}

static void
config_free_domains(char **d, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(d[i]);
	free(d);
}

/*
 * Domains lowercased without a trailing dot; one listed twice is kept
 * once.  At least one is needed: the postmaster of a bare
 * "<Postmaster>" lives in the first.
 */
static int
config_parse_domains(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	char		**d = NULL, *s;
	const char	 *p = value, *item;
	size_t		  n = 0, len, dlen, i;

	while (config_next_item(&p, &item, &len)) {
		dlen = len;
		if (dlen > 1 && item[dlen - 1] == '.')
			dlen--;
		if (!config_is_domain(item, dlen)) {
			config_bad(cause, "not a valid domain name", item,
			    len);
			config_free_domains(d, n);
			return -1;
		}
		s = xstrndup(item, dlen);
		util_lowercase(s);
		for (i = 0; i < n; i++) {
			if (strcmp(d[i], s) == 0)
				break;
		}
		if (i < n) {
			free(s);
			continue;
		}
		d = xreallocarray(d, n + 1, sizeof *d);
		d[n++] = s;
	}
	if (n == 0) {
		config_bad(cause, "no domain", value, strlen(value));
		return -1;
	}
	config_clear_domains(c, k);
	*CONFIG_FIELD(c, k, char **) = d;
	*CONFIG_COUNT(c, k) = n;
	return 0;
}

static void
config_print_domains(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	char *const	*d;
	size_t		 i, n = *CONFIG_CCOUNT(c, k);

	d = *(char **const *)(const void *)((const char *)c + k->offset);
	for (i = 0; i < n; i++)
		fprintf(fp, "%s%s", i > 0 ? " " : "", d[i]);
}

static void
config_clear_domains(struct config *c, const struct config_key *k)
{
	config_free_domains(*CONFIG_FIELD(c, k, char **), *CONFIG_COUNT(c, k));
	*CONFIG_FIELD(c, k, char **) = NULL;
	*CONFIG_COUNT(c, k) = 0;
}

/*
 * The host of "inet:host:port" (item to the colon before the port): an
 * address, as no name is looked up for a filter, or localhost.
 */
static int
config_is_milter_host(const char *item, const char *end)
{
	char		 host[INET6_ADDRSTRLEN + 2];
	unsigned char	 addr[16];
	const char	*p = item + (item[4] == ':' ? 5 : 6);
	size_t		 len = (size_t)(end - p);
	int		 v6 = item[4] != ':';

	if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
		p++;
		len -= 2;
		v6 = 1;
	}
	if (len == 0 || len >= sizeof host)
		return 0;
	memcpy(host, p, len);
	host[len] = '\0';
	if (strcmp(host, "localhost") == 0)
		return 1;
	return inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) == 1;
}

/*
 * Milter sockets, in the order the filters run: "inet:host:port" (an IPv4
 * address or localhost; "inet:[ipv6]:port" too), "inet6:host:port"
 * (IPv6) or "unix:/absolute/path".  Empty or "none": no filters.
 */
static int
config_parse_milters(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	char		**d = NULL;
	const char	 *p = value, *item, *port, *why;
	size_t		  n = 0, len, plen;
	unsigned long	  num;
	char		  digits[8], *end;

	if (config_is_none(value))
		p = "";
	while (config_next_item(&p, &item, &len)) {
		why = NULL;
		if (len > 5 && strncmp(item, "unix:", 5) == 0) {
			if (item[5] != '/' || len - 5 >= CONFIG_PATH_SIZE)
				why = "milter socket path not absolute or too "
				    "long";
		} else if ((len > 5 && strncmp(item, "inet:", 5) == 0) ||
		    (len > 6 && strncmp(item, "inet6:", 6) == 0)) {
			port = item + len;
			while (port > item && port[-1] != ':')
				port--;
			plen = (size_t)(item + len - port);
			num = 0;
			if (plen > 0 && plen < sizeof digits) {
				memcpy(digits, port, plen);
				digits[plen] = '\0';
				num = strtoul(digits, &end, 10);
				if (*end != '\0')
					num = 0;
			}
			if (num == 0 || num > 65535 ||
			    port - item <= (item[4] == ':' ? 6 : 7))
				why = "milter socket needs host:port";
			else if (!config_is_milter_host(item, port - 1))
				why = "milter host not an IP address or "
				    "localhost";
		} else
			why = "milter socket not inet:host:port, "
			    "inet6:host:port or unix:/path";
		if (why == NULL && len >= CONFIG_PATH_SIZE)
			why = "milter socket too long";
		if (why != NULL) {
			config_bad(cause, why, item, len);
			config_free_domains(d, n);
			return -1;
		}
		d = xreallocarray(d, n + 1, sizeof *d);
		d[n++] = xstrndup(item, len);
	}
	config_clear_domains(c, k);
	*CONFIG_FIELD(c, k, char **) = d;
	*CONFIG_COUNT(c, k) = n;
	return 0;
}

/*
 * One dns_servers entry: "ip", "ip:port", "[ipv6]" or "[ipv6]:port",
 * or a bare IPv6 address without a port as resolv.conf writes it.
 * Addresses are read with inet_pton(), as the resolver reads them, so
 * nothing passes here that the resolver would refuse at start: no
 * names, no scope, no short IPv4 forms.
 */
static int
config_dns_entry(const char *item, size_t len, char **cause)
{
	char		 entry[INET6_ADDRSTRLEN + sizeof "[]:65535"];
	char		*host, *port;
	unsigned char	 addr[16];
	const char	*why = NULL;
	uint64_t	 num;
	int		 v6;

	if (len >= sizeof entry) {
		config_bad(cause, "too long", item, len);
		return -1;
	}
	memcpy(entry, item, len);
	entry[len] = '\0';
	if (entry[0] != '[' && strchr(entry, ':') != strrchr(entry, ':')) {
		host = entry;
		port = NULL;
		v6 = 1;
	} else if (config_split_port(entry, &host, &port, &v6, &why) == -1) {
		config_bad(cause, why, item, len);
		return -1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, addr) != 1) {
		config_bad(cause, v6 ? "not a numeric IPv6 address" :
		    "not a numeric IPv4 address", item, len);
		return -1;
	}
	if (port != NULL &&
	    util_parse_uint(port, 1, 65535, &num, &why) == -1) {
		config_bad(cause, "port not a number from 1 to 65535", item,
		    len);
		return -1;
	}
	return 0;
}

/*
 * The DNS servers as written, one space between entries: the daemon
 * hands this text to the resolver module, which reads it again.
 * Empty: the servers of /etc/resolv.conf.
 */
static int
config_parse_dns(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	char		*list;
	const char	*p = value, *item;
	size_t		 len, used = 0;

	list = xcalloc(1, k->size);
	while (config_next_item(&p, &item, &len)) {
		if (config_dns_entry(item, len, cause) == -1) {
			free(list);
			return -1;
		}
		if (used + (used > 0) + len >= k->size) {
			config_bad(cause, "too long", value, strlen(value));
			free(list);
			return -1;
		}
		if (used > 0)
			list[used++] = ' ';
		memcpy(list + used, item, len);
		used += len;
	}
	memcpy(CONFIG_FIELD(c, k, char), list, used + 1);
	free(list);
	return 0;
}

/*
 * The gateway: "host", "host:port", "ipv4", "ipv4:port", "[ipv6]" or
 * "[ipv6]:port".  The host is kept without brackets (a name lowercased
 * without its trailing dot, an address in inet_ntop() form) and the
 * port, CONFIG_DFLT_PORT() when none is given, goes where k->count says.
 * Empty: no gateway.
 */
static int
config_parse_gateway(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	char		 entry[CONFIG_HOST_SIZE + sizeof ":65535"];
	char		 host[INET6_ADDRSTRLEN], *name, *port;
	unsigned char	 addr[16];
	const char	*why = NULL;
	uint64_t	 num = CONFIG_DFLT_PORT(k);
	size_t		 len = strlen(value);
	int		 v6;

	if (len == 0) {
		CONFIG_FIELD(c, k, char)[0] = '\0';
		*CONFIG_PORT(c, k) = CONFIG_DFLT_PORT(k);
		return 0;
	}
	if (strcspn(value, CONFIG_LIST_SEP) != len) {
		config_bad(cause, "more than one host", value, len);
		return -1;
	}
	if (len >= sizeof entry) {
		config_bad(cause, "too long", value, len);
		return -1;
	}
	memcpy(entry, value, len + 1);
	if (config_split_port(entry, &name, &port, &v6, &why) == -1) {
		config_bad(cause, why, value, len);
		return -1;
	}
	if (port != NULL &&
	    util_parse_uint(port, 1, 65535, &num, &why) == -1) {
		config_bad(cause, "port not a number from 1 to 65535", value,
		    len);
		return -1;
	}
	if (v6) {
		if (inet_pton(AF_INET6, name, addr) != 1) {
			config_bad(cause, "not a numeric IPv6 address", value,
			    len);
			return -1;
		}
		if (inet_ntop(AF_INET6, addr, host, sizeof host) == NULL)
			fatal("config: inet_ntop");
		name = host;
	} else if (inet_pton(AF_INET, name, addr) != 1) {
		len = config_domain_len(name);
		if (!config_is_domain(name, len)) {
			config_bad(cause, "not a host name or IPv4 address",
			    value, strlen(value));
			return -1;
		}
		name[len] = '\0';
		util_lowercase(name);
	}
	if (strlen(name) >= k->size) {
		config_bad(cause, "too long", value, strlen(value));
		return -1;
	}
	util_strlcpy(CONFIG_FIELD(c, k, char), name, k->size);
	*CONFIG_PORT(c, k) = num;
	return 0;
}

/*
 * Where local mail goes: "maildir", "lmtp:unix:/path" or
 * "lmtp:inet:host[:port]" (the host as for gateway, port 24 when none
 * is written), Postfix's spelling of an LMTP destination.  The path
 * must fit a unix socket address.
 */
#define CONFIG_LMTP_PORT	24
#define CONFIG_SUN_PATH_MAX	107	/* sizeof sun_path - 1 on Linux */

static int
config_parse_transport(struct config *c, const struct config_key *k,
    const char *value, char **cause)
{
	static const struct config_key	 inet = { "local", "transport",
	    &config_type_gateway, CONFIG_OFF(lmtp_host),
	    CONFIG_OFF(lmtp_port), CONFIG_HOST_SIZE, NULL, CONFIG_LMTP_PORT,
	    0, NULL };
	const char			*path;
	size_t				 len = strlen(value);

	if (strcasecmp(value, "maildir") == 0) {
		*CONFIG_FIELD(c, k, int) = CONFIG_TRANSPORT_MAILDIR;
		c->lmtp_host[0] = '\0';
		c->lmtp_port = 0;
		return 0;
	}
	if (strncasecmp(value, "lmtp:unix:", 10) == 0) {
		path = value + 10;
		if (*path != '/') {
			config_bad(cause, "lmtp:unix: needs an absolute socket "
			    "path", value, len);
			return -1;
		}
		if (strlen(path) > CONFIG_SUN_PATH_MAX) {
			config_bad(cause, "socket path too long", value, len);
			return -1;
		}
		if (strcspn(path, CONFIG_LIST_SEP) != strlen(path)) {
			config_bad(cause, "blank in the socket path", value,
			    len);
			return -1;
		}
		util_strlcpy(c->lmtp_host, path, sizeof c->lmtp_host);
		c->lmtp_port = 0;
		*CONFIG_FIELD(c, k, int) = CONFIG_TRANSPORT_LMTP_UNIX;
		return 0;
	}
	if (strncasecmp(value, "lmtp:inet:", 10) == 0) {
		if (value[10] == '\0') {
			config_bad(cause, "lmtp:inet: needs a host", value,
			    len);
			return -1;
		}
		if (config_parse_gateway(c, &inet, value + 10, cause) == -1)
			return -1;
		*CONFIG_FIELD(c, k, int) = CONFIG_TRANSPORT_LMTP_INET;
		return 0;
	}
	config_bad(cause, "not maildir, lmtp:unix:/path or lmtp:inet:host:port",
	    value, len);
	return -1;
}

static void
config_print_transport(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const char	*host = c->lmtp_host;
	int		 v6 = strchr(host, ':') != NULL;

	switch (*CONFIG_CFIELD(c, k, int)) {
	case CONFIG_TRANSPORT_LMTP_UNIX:
		fprintf(fp, "lmtp:unix:%s", host);
		break;
	case CONFIG_TRANSPORT_LMTP_INET:
		fprintf(fp, "lmtp:inet:%s%s%s:%llu", v6 ? "[" : "", host,
		    v6 ? "]" : "", (unsigned long long)c->lmtp_port);
		break;
	default:
		fputs("maildir", fp);
		break;
	}
}

/* Brackets around an IPv6 address, the port only when not the default. */
static void
config_print_gateway(const struct config *c, const struct config_key *k,
    FILE *fp)
{
	const char	*host = CONFIG_CFIELD(c, k, char);
	uint64_t	 port = *CONFIG_CPORT(c, k);
	int		 v6 = strchr(host, ':') != NULL;

	if (*host == '\0')
		return;
	fprintf(fp, "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
	if (port != CONFIG_DFLT_PORT(k))
		fprintf(fp, ":%llu", (unsigned long long)port);
}

/* Set one key from text that is known to be good (a default). */
static void
config_set_builtin(struct config *c, const struct config_key *k,
    const char *value)
{
	char	*cause;

	if (k->type->parse(c, k, value, &cause) == -1)
		fatalx("config: built-in [%s] %s: %s", k->section, k->name,
		    cause);
}

/* A new struct config holding every default that is not computed. */
static struct config *
config_new(void)
{
	struct config	*c;
	size_t		 i;

	c = xcalloc(1, sizeof *c);
	for (i = 0; i < nitems(config_keys); i++) {
		if (config_keys[i].dflt != NULL)
			config_set_builtin(c, &config_keys[i],
			    config_keys[i].dflt);
	}
	return c;
}

#if defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 34)
#define CONFIG_HAVE_GAI_A
#endif
#endif

#ifdef CONFIG_HAVE_GAI_A
/* One asynchronous canonical name lookup and what it points into. */
struct config_canon {
	struct gaicb	cb;
	struct addrinfo	hints;
	char		name[CONFIG_HOST_SIZE];
};

/*
 * The canonical name of host into buf, waiting at most
 * CONFIG_CANON_TIMEOUT_MS.  A lookup still running when the wait ends
 * is left to finish on its own; its request cannot be freed under it.
 */
static int
config_canon_name(const char *host, char *buf, size_t size)
{
	struct config_canon	*q;
	struct gaicb		*list[1];
	struct timespec		 now, end, left;
	int			 rc = -1, err;

	q = xcalloc(1, sizeof *q);
	util_strlcpy(q->name, host, sizeof q->name);
	q->hints.ai_flags = AI_CANONNAME;
	q->hints.ai_socktype = SOCK_STREAM;
	q->cb.ar_name = q->name;
	q->cb.ar_request = &q->hints;
	list[0] = &q->cb;
	if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
		free(q);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += CONFIG_CANON_TIMEOUT_MS / 1000;
	end.tv_nsec += (CONFIG_CANON_TIMEOUT_MS % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	while ((err = gai_error(&q->cb)) == EAI_INPROGRESS) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			break;
		(void)gai_suspend((const struct gaicb *const *)list, 1, &left);
	}
	if (err == EAI_INPROGRESS) {
		if (gai_cancel(&q->cb) == EAI_NOTCANCELED)
			return -1;
		err = gai_error(&q->cb);
	}
	if (err == 0) {
		if (q->cb.ar_result->ai_canonname != NULL &&
		    util_strlcpy(buf, q->cb.ar_result->ai_canonname,
		    size) < size)
			rc = 0;
		freeaddrinfo(q->cb.ar_result);
	}
	free(q);
	return rc;
}
#else
/* The canonical name of host into buf. */
static int
config_canon_name(const char *host, char *buf, size_t size)
{
	struct addrinfo	 hints, *res;
	int		 rc = -1;

	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_CANONNAME;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	if (res->ai_canonname != NULL &&
	    util_strlcpy(buf, res->ai_canonname, size) < size)
		rc = 0;
	freeaddrinfo(res);
	return rc;
}
#endif

/*
 * The default hostname found by the first load of this process: the
 * system's name then, and what it became.  A reload (SIGHUP, on the
 * running loop) reuses it and never asks the resolver again.
 */
static struct {
	int	known;
	char	sys[CONFIG_HOST_SIZE];
	char	name[CONFIG_HOST_SIZE];
} config_host;

/*
 * The default hostname: the system's name, fully qualified through the
 * resolver when it is not already and the answer comes quickly;
 * "localhost" when the system's name is not a valid domain name.  The
 * resolver is asked once per process, at the first load: later loads
 * reuse that answer while the system's name is the same, and take a
 * changed name as it is.
 */
static void
config_default_hostname(char *buf, size_t size)
{
	char	name[CONFIG_HOST_SIZE], canon[CONFIG_HOST_SIZE];
	int	first = !config_host.known;

	if (gethostname(name, sizeof name) == -1)
		name[0] = '\0';
	name[sizeof name - 1] = '\0';
	if (!first && strcmp(name, config_host.sys) == 0) {
		util_strlcpy(buf, config_host.name, size);
		return;
	}
	if (first)
		util_strlcpy(config_host.sys, name, sizeof config_host.sys);
	/* Blocking: at most CONFIG_CANON_TIMEOUT_MS, before the loop runs. */
	if (first && strchr(name, '.') == NULL && name[0] != '\0' &&
	    config_canon_name(name, canon, sizeof canon) == 0 &&
	    strchr(canon, '.') != NULL &&
	    config_is_domain(canon, config_domain_len(canon)))
		util_strlcpy(name, canon, sizeof name);
	if (!config_is_domain(name, config_domain_len(name)))
		util_strlcpy(name, "localhost", sizeof name);
	util_strlcpy(buf, name, size);
	buf[config_domain_len(buf)] = '\0';
	if (first) {
		util_strlcpy(config_host.name, buf, sizeof config_host.name);
		config_host.known = 1;
	}
}

/* Whether a file set a key; seen is NULL for the built-in config. */
static int
config_is_seen(const int *seen, const char *section, const char *name)
{
	return seen != NULL && seen[config_find_key(section, name)] != 0;
}

/*
 * Fill the computed defaults a file left out: hostname, then
 * local_domains from the hostname in force, then what follows from
 * those and the spool.
 */
static void
config_compute(struct config *c, const int *seen)
{
	char	value[CONFIG_PATH_SIZE + sizeof " localhost"];
	size_t	i;

	if (!config_is_seen(seen, "main", "hostname"))
		config_default_hostname(c->hostname, sizeof c->hostname);
	if (!config_is_seen(seen, "smtp", "local_domains")) {
		util_snprintf(value, sizeof value, "%s localhost",
		    c->hostname);
		config_set_builtin(c, &config_keys[config_find_key("smtp",
		    "local_domains")], value);
	}
	if (!config_is_seen(seen, "local", "default_domain"))
		util_strlcpy(c->default_domain, c->local_domains[0],
		    sizeof c->default_domain);
	for (i = 0; c->default_domain[i] != '\0'; i++)
		c->default_domain[i] =
		    (char)tolower((unsigned char)c->default_domain[i]);
	if (!config_is_seen(seen, "local", "postmaster")) {
		util_snprintf(value, sizeof value, "postmaster@%s",
		    c->default_domain);
		config_set_builtin(c, &config_keys[config_find_key("local",
		    "postmaster")], value);
	}
	if (!config_is_seen(seen, "smtp", "etrn_networks")) {
		c->etrn_networks = xreallocarray(NULL,
		    c->nrelay_networks + 1, sizeof *c->etrn_networks);
		if (c->nrelay_networks > 0)
			memcpy(c->etrn_networks, c->relay_networks,
			    c->nrelay_networks * sizeof *c->etrn_networks);
		c->netrn_networks = c->nrelay_networks;
	}
	if (!config_is_seen(seen, "smtp", "client_limit_exempt")) {
		c->client_limit_exempt = xreallocarray(NULL,
		    c->nrelay_networks + 1, sizeof *c->client_limit_exempt);
		if (c->nrelay_networks > 0)
			memcpy(c->client_limit_exempt, c->relay_networks,
			    c->nrelay_networks *
			    sizeof *c->client_limit_exempt);
		c->nclient_limit_exempt = c->nrelay_networks;
	}
}

struct config *
config_default(void)
{
	struct config	*c;
	char		 cwd[CONFIG_PATH_SIZE];
	size_t		 i;
	int		 k;

	c = config_new();
	for (i = 0; i < nitems(config_builtin); i++) {
		k = config_find_key(config_builtin[i].section,
		    config_builtin[i].name);
		config_set_builtin(c, &config_keys[k], config_builtin[i].value);
	}
	if (getcwd(cwd, sizeof cwd) == NULL)
		fatal("getcwd");
	if (util_snprintf(c->spool, sizeof c->spool, "%s/%s/spool",
	    strcmp(cwd, "/") == 0 ? "" : cwd, CONFIG_BUILTIN_DIR) == -1 ||
	    util_snprintf(c->mailboxes, sizeof c->mailboxes, "%s/%s/mail",
	    strcmp(cwd, "/") == 0 ? "" : cwd, CONFIG_BUILTIN_DIR) == -1)
		fatalx("current directory too long for the built-in spool");
	config_compute(c, NULL);
	c->path[0] = '\0';
	return c;
}

/*
 * A section header must name a known section.  Checked on the raw line
 * because inih only reports key = value lines; a malformed header is
 * left for inih to report as a syntax error.
 */
static int
config_check_header(struct config_parse *p, const char *s)
{
	const char	*end;
	char		 name[64], quoted[CONFIG_QUOTE_SIZE];
	size_t		 len;

	while (isspace((unsigned char)*s))
		s++;
	if (*s != '[' || (end = strchr(s + 1, ']')) == NULL)
		return 0;
	len = end - (s + 1);
	if (len < sizeof name) {
		memcpy(name, s + 1, len);
		name[len] = '\0';
		if (config_is_section(name))
			return 0;
	}
	log_escape(quoted, sizeof quoted, s + 1, len);
	xasprintf(&p->cause, "%s:%d: [%s] unknown section", p->path,
	    p->lineno, quoted);
	return -1;
}

/*
 * inih's reader: one whole line per call, counted, so that errors can
 * name their line.  Returning NULL ends the parse, also on an error
 * (the cause is then set).
 */
static char *
config_read_cb(char *str, int num, void *arg)
{
	struct config_parse	*p = arg;
	ssize_t			 len;
	size_t			 text;
	const char		*s;

	if ((len = getline(&p->line, &p->linesize, p->f)) == -1)
		return NULL;
	p->lineno++;
	if ((size_t)len != strlen(p->line)) {
		xasprintf(&p->cause, "%s:%d: NUL character in line", p->path,
		    p->lineno);
		return NULL;
	}
	text = strcspn(p->line, "\r\n");
	if (text > CONFIG_LINE_MAX || len + 1 > num) {
		xasprintf(&p->cause, "%s:%d: line longer than %d characters",
		    p->path, p->lineno, CONFIG_LINE_MAX);
		return NULL;
	}
	s = p->line;
	if (p->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	if (config_check_header(p, s) == -1)
		return NULL;
	memcpy(str, p->line, len + 1);
	return str;
}

/* inih's handler: one key = value line; 0 stops the parse. */
static int
config_handler_cb(void *arg, const char *section, const char *name,
    const char *value)
{
	struct config_parse	*p = arg;
	char			*why, quoted[CONFIG_QUOTE_SIZE];
	int			 k;

	if (*section == '\0' || (k = config_find_key(section, name)) == -1) {
		log_escape(quoted, sizeof quoted, name, strlen(name));
		if (*section == '\0')
			xasprintf(&p->cause, "%s:%d: %s: key outside any "
			    "section", p->path, p->lineno, quoted);
		else
			xasprintf(&p->cause, "%s:%d: [%s] %s: unknown key",
			    p->path, p->lineno, section, quoted);
		return 0;
	}
	if (p->seen[k] != 0) {
		xasprintf(&p->cause, "%s:%d: [%s] %s: given twice (first on "
		    "line %d)", p->path, p->lineno, section, name, p->seen[k]);
		return 0;
	}
	p->seen[k] = p->lineno;
	if (config_keys[k].type->parse(p->c, &config_keys[k], value,
	    &why) == -1) {
		xasprintf(&p->cause, "%s:%d: [%s] %s: %s", p->path, p->lineno,
		    section, name, why);
		free(why);
		return 0;
	}
	return 1;
}

/*
 * What no single key can check, once the whole file is read: keys that
 * only mean something with another set.  The error names the line of
 * the key that is set in vain.
 */
static int
config_check(struct config_parse *p)
{
	const struct config	*c = p->c;
	const char		*name = NULL;
	int			 k;

	if (c->log == LOG_TARGET_REMOTE && c->log_server[0] == '\0') {
		k = config_find_key("main", "log");
		xasprintf(&p->cause, "%s:%d: [main] log: remote needs a "
		    "log_server", p->path, p->seen[k]);
		return -1;
	}
	if (c->gateway[0] == '\0') {
		if (c->gateway_all)
			name = "gateway_all";
		else if (c->gateway_after_tries > 0)
			name = "gateway_after_tries";
	}
	if (name != NULL) {
		k = config_find_key("delivery", name);
		xasprintf(&p->cause, "%s:%d: [delivery] %s: needs a gateway",
		    p->path, p->seen[k], name);
		return -1;
	}
	name = NULL;
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0'))
		name = c->tls_cert[0] == '\0' ? "tls_key" : "tls_cert";
	if (name != NULL) {
		k = config_find_key("smtp", name);
		xasprintf(&p->cause, "%s:%d: [smtp] %s: needs %s too",
		    p->path, p->seen[k], name, c->tls_cert[0] == '\0' ?
		    "tls_cert" : "tls_key");
		return -1;
	}
	if (c->nsmtps_listen > 0 && c->tls_cert[0] == '\0') {
		k = config_find_key("smtp", "smtps_listen");
		xasprintf(&p->cause, "%s:%d: [smtp] smtps_listen: needs "
		    "tls_cert and tls_key", p->path, p->seen[k]);
		return -1;
	}
	if (config_has_proxy_listen(c) && c->nproxy_networks == 0) {
		k = config_find_key("smtp", "proxy_networks");
		if (p->seen[k] == 0)
			k = config_find_key("smtp", "listen");
		xasprintf(&p->cause, "%s:%d: [smtp] proxy_networks: the "
		    "\"%s\" listen addresses need the networks of the load "
		    "balancers", p->path, p->seen[k], CONFIG_PROXY_PREFIX);
		return -1;
	}
	return 0;
}

/* After the computed defaults: the default domain must be ours. */
static int
config_check_local(const struct config *c, const char *path,
    const int *seen, char **cause)
{
	if (config_is_local_domain(c, c->default_domain))
		return 0;
	xasprintf(cause, "%s:%d: [local] default_domain: %s is not one of "
	    "[smtp] local_domains", path,
	    seen[config_find_key("local", "default_domain")],
	    c->default_domain);
	return -1;
}

struct config *
config_load(const char *path, char **cause)
{
	struct config_parse	 p;
	int			 rc, seen[nitems(config_keys)];

	memset(&p, 0, sizeof p);
	memset(seen, 0, sizeof seen);
	p.path = path;
	p.seen = seen;
	if (strlen(path) >= sizeof p.c->path) {
		xasprintf(cause, "%s: file name too long", path);
		return NULL;
	}
	if ((p.f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return NULL;
	}
	p.c = config_new();
	util_strlcpy(p.c->path, path, sizeof p.c->path);

	ini_allow_multiline = 0;
	ini_stop_on_first_error = 1;
	ini_allow_no_value = 0;
	ini_use_stack = 1;
	ini_max_line = CONFIG_LINE_MAX + 3;
	rc = ini_parse_stream(config_read_cb, &p, config_handler_cb, &p);

	if (p.cause == NULL && ferror(p.f))
		xasprintf(&p.cause, "%s: %s", path, strerror(errno));
	if (p.cause == NULL && rc > 0)
		xasprintf(&p.cause, "%s:%d: syntax error: not \"[section]\" "
		    "nor \"key = value\"", path, rc);
	if (p.cause == NULL && rc < 0)
		xasprintf(&p.cause, "%s: cannot parse (%d)", path, rc);
	if (p.cause == NULL)
		(void)config_check(&p);
	free(p.line);
	fclose(p.f);
	if (p.cause != NULL) {
		config_free(p.c);
		*cause = p.cause;
		return NULL;
	}
	config_compute(p.c, seen);
	if (config_check_local(p.c, path, seen, cause) == -1) {
		config_free(p.c);
		return NULL;
	}
	return p.c;
}

void
config_free(struct config *c)
{
	size_t	i;

	if (c == NULL)
		return;
	for (i = 0; i < nitems(config_keys); i++) {
		if (config_keys[i].type->clear != NULL)
			config_keys[i].type->clear(c, &config_keys[i]);
	}
	free(c);
}

/* The configuration in force as an INI file config_load() reads back. */
void
config_print(const struct config *c, FILE *fp)
{
	const char	*section = NULL;
	size_t		 i;

	fprintf(fp, "# tern configuration in force, from %s\n",
	    c->path[0] != '\0' ? c->path : "the built-in defaults");
	for (i = 0; i < nitems(config_keys); i++) {
		if (section == NULL ||
		    strcmp(section, config_keys[i].section) != 0) {
			section = config_keys[i].section;
			fprintf(fp, "\n[%s]\n", section);
		}
		/* An unset path (control_socket: in the spool) stays so. */
		if (config_keys[i].type == &config_type_path &&
		    CONFIG_CFIELD(c, &config_keys[i], char)[0] == '\0') {
			fprintf(fp, "# %s is unset\n", config_keys[i].name);
			continue;
		}
		fprintf(fp, "%s = ", config_keys[i].name);
		config_keys[i].type->print(c, &config_keys[i], fp);
		fputc('\n', fp);
	}
}

int
config_is_local_domain(const struct config *c, const char *domain)
{
	size_t	i, len = config_domain_len(domain);

	if (len == 0)
		return 0;
	for (i = 0; i < c->nlocal_domains; i++) {
		if (strlen(c->local_domains[i]) == len &&
		    strncasecmp(c->local_domains[i], domain, len) == 0)
			return 1;
	}
	return 0;
}

/* Whether the first prefix bits of two addresses agree. */
static int
config_prefix_match(const unsigned char *a, const unsigned char *b,
    unsigned prefix)
{
	unsigned	full = prefix / 8, rest = prefix % 8;
	unsigned char	mask;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/*
 * Whether a client address is in a list of networks; an IPv4-mapped IPv6
 * address is also matched as the IPv4 address it carries.
 */
static int
config_is_in_nets(const struct config_net *nets, size_t nnets,
    const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const unsigned char		*a4 = NULL, *a6 = NULL;
	size_t				 i;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		a4 = (const unsigned char *)&sin->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		a6 = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			a4 = a6 + 12;
	} else
		return 0;
	for (i = 0; i < nnets; i++) {
		const struct config_net	*net = &nets[i];

		if (net->family == AF_INET && a4 != NULL &&
		    config_prefix_match(net->addr, a4, net->prefix))
			return 1;
		if (net->family == AF_INET6 && a6 != NULL &&
		    config_prefix_match(net->addr, a6, net->prefix))
			return 1;
	}
	return 0;
}

int
config_is_relay_client(const struct config *c, const struct sockaddr *sa)
{
	return config_is_in_nets(c->relay_networks, c->nrelay_networks, sa);
}

int
config_is_etrn_client(const struct config *c, const struct sockaddr *sa)
{
	return config_is_in_nets(c->etrn_networks, c->netrn_networks, sa);
}

int
config_is_proxy_client(const struct config *c, const struct sockaddr *sa)
{
	return config_is_in_nets(c->proxy_networks, c->nproxy_networks, sa);
}

/* Whether any listener wants the PROXY protocol. */
int
config_has_proxy_listen(const struct config *c)
{
	size_t	i;

	for (i = 0; i < c->nlisten; i++)
		if (c->listen[i].proxy)
			return 1;
	for (i = 0; i < c->nsubmission_listen; i++)
		if (c->submission_listen[i].proxy)
			return 1;
	for (i = 0; i < c->nsmtps_listen; i++)
		if (c->smtps_listen[i].proxy)
			return 1;
	return 0;
}

int
config_is_limit_exempt(const struct config *c, const struct sockaddr *sa)
{
	return config_is_in_nets(c->client_limit_exempt,
	    c->nclient_limit_exempt, sa);
}
