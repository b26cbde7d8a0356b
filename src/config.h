/*
 * config.h: the one read-only configuration, parsed from an INI file (or
 * built from defaults when there is none).  Pure logic: no sockets, no
 * libevent.  A reload builds a whole new struct config and swaps it in;
 * nothing may keep a pointer into an old one across events.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"

#define CONFIG_DEFAULT_FILE	SYSCONFDIR "/tern/tern.ini"
/* Where the built-in configuration keeps its data, under the cwd. */
#define CONFIG_BUILTIN_DIR	"tern-data"

#define CONFIG_HOST_SIZE	256
#define CONFIG_PATH_SIZE	1024
#define CONFIG_NAME_SIZE	64	/* user and group names */
#define CONFIG_ADDR_SIZE	520	/* local@domain */
#define CONFIG_CIPHERS_SIZE	1024	/* an OpenSSL cipher string */

/* A listen address so marked reads a PROXY protocol header first. */
#define CONFIG_PROXY_PREFIX	"proxy:"

/* One address to listen on ("127.0.0.1:2525", "[::1]:25", "*:25"). */
struct config_listen {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 proxy;		/* "proxy:": PROXY protocol */
	char			 text[80];	/* as written, for logs */
};

/* One client network in CIDR form ("192.0.2.0/24", "2001:db8::/32"). */
struct config_net {
	int		family;			/* AF_INET or AF_INET6 */
	unsigned char	addr[16];		/* network, host bits zero */
	unsigned	prefix;
};

/* Who may list the queue through the control socket. */
enum config_queue_list {
	CONFIG_QUEUE_LIST_ANYONE,	/* every local user, as Postfix */
	CONFIG_QUEUE_LIST_ADMINS,	/* those who may use the socket */
};

/* How the spool makes a batch of commits durable (spool_sync). */
enum config_spool_sync {
	CONFIG_SPOOL_SYNC_FILE,		/* each file and directory */
	CONFIG_SPOOL_SYNC_FILESYSTEM	/* syncfs(2), twice a batch */
};

/* Which mail gets a Message-ID and a Date when it has none. */
enum config_add_headers {
	CONFIG_ADD_HEADERS_SUBMISSION,	/* authenticated, submission, sendmail */
	CONFIG_ADD_HEADERS_ALL,		/* and every other client */
	CONFIG_ADD_HEADERS_NO,		/* never */
};

/* Where mail for local recipients goes ([local] transport). */
enum config_transport {
	CONFIG_TRANSPORT_MAILDIR,	/* tern's own Maildir delivery */
	CONFIG_TRANSPORT_LMTP_UNIX,	/* LMTP on a unix socket */
	CONFIG_TRANSPORT_LMTP_INET,	/* LMTP on host:port */
};

/* Who checks SMTP AUTH. */
enum config_auth_backend {
	CONFIG_AUTH_USERS,		/* the users file */
	CONFIG_AUTH_DOVECOT,		/* Dovecot's auth client socket */
};

enum config_bare_newlines {
	CONFIG_BARE_REJECT,
	CONFIG_BARE_NORMALIZE,
};

/* What a filter that cannot be reached or fails means (milter.c). */
enum config_milter_action {
	CONFIG_MILTER_TEMPFAIL,		/* 451 4.7.1 */
	CONFIG_MILTER_ACCEPT,		/* go on without the filter */
	CONFIG_MILTER_REJECT,		/* 550 5.7.1 */
	CONFIG_MILTER_QUARANTINE,	/* as accept, then the hold queue */
};

/*
 * Owned by whoever called config_load() or config_default(); freed with
 * config_free().  Durations are milliseconds, sizes octets.
 */
struct config {
	char			 path[CONFIG_PATH_SIZE]; /* "" when built in */

	/* [main] */
	char			 hostname[CONFIG_HOST_SIZE];
	char			 spool[CONFIG_PATH_SIZE];
	uint64_t		 min_free_space;	/* 0: not checked */
	enum config_spool_sync	 spool_sync;
	enum log_target		 log;
	char			 log_server[CONFIG_HOST_SIZE];	/* "" for none */
	uint64_t		 log_server_port;
	int			 debug;
	uint64_t		 shutdown_timeout;
	char			 user[CONFIG_NAME_SIZE];
	char			 group[CONFIG_NAME_SIZE];	/* "": user's */
	char			 control_socket[CONFIG_PATH_SIZE];
	enum config_queue_list	 queue_list;	/* who may list the queue */
	struct config_listen	*metrics_listen;	/* none: off */
	size_t			 nmetrics_listen;

	/* [smtp] */
	struct config_listen	*listen;
	size_t			 nlisten;
	uint64_t		 max_connections;
	uint64_t		 max_connections_per_ip;
	uint64_t		 max_message_size;
	uint64_t		 max_recipients;
	uint64_t		 max_errors;
	uint64_t		 command_timeout;
	uint64_t		 data_timeout;
	uint64_t		 data_min_rate;		/* bytes/s; 0: none */
	uint64_t		 tls_timeout;
	uint64_t		 auth_timeout;
	uint64_t		 stress_timeout;
	uint64_t		 session_memory;
	enum config_bare_newlines bare_newlines;
	char			**local_domains;	/* lowercase */
	size_t			 nlocal_domains;
	struct config_net	*relay_networks;
	size_t			 nrelay_networks;
	struct config_listen	*submission_listen;
	size_t			 nsubmission_listen;
	struct config_listen	*smtps_listen;
	size_t			 nsmtps_listen;
	char			 tls_cert[CONFIG_PATH_SIZE];	/* "": no TLS */
	char			 tls_key[CONFIG_PATH_SIZE];
	int			 tls_protocols;		/* TLS_PROTO_* */
	char			 tls_ciphers[CONFIG_CIPHERS_SIZE];
	char			 tls_ciphersuites[CONFIG_CIPHERS_SIZE];
	int			 auth_plaintext;
	int			 auth_sender_check;
	uint64_t		 auth_max_failures;
	uint64_t		 auth_failure_delay;
	int			 auth_mechanisms;	/* 1 << SASL_MECH_*;
							   0: auto */
	int			 add_missing_headers;	/* CONFIG_ADD_HEADERS_* */
	int			 auth_backend;	/* CONFIG_AUTH_* */
	char			 dovecot_auth_socket[CONFIG_PATH_SIZE];
	struct config_net	*etrn_networks;
	size_t			 netrn_networks;
	/* Per-client limits across sessions (anvil.c); rates per unit. */
	struct config_net	*client_limit_exempt;
	size_t			 nclient_limit_exempt;
	uint64_t		 client_rate_unit;
	uint64_t		 max_connection_rate;
	uint64_t		 max_message_rate;
	uint64_t		 max_recipient_rate;
	uint64_t		 max_auth_failure_rate;
	uint64_t		 max_auth_failure_rate_per_user;
	uint64_t		 auth_penalty;
	uint64_t		 client_ipv6_prefix;
	uint64_t		 client_table_size;
	/* The PROXY protocol on "proxy:" listeners (proxy.c). */
	struct config_net	*proxy_networks;
	size_t			 nproxy_networks;
	uint64_t		 proxy_timeout;

	/* [local] */
	char			 default_domain[CONFIG_HOST_SIZE];
	char			 users[CONFIG_PATH_SIZE];	/* "": none */
	char			 aliases[CONFIG_PATH_SIZE];	/* "": none */
	char			 mailboxes[CONFIG_PATH_SIZE];
	char			 postmaster[CONFIG_ADDR_SIZE];
	int			 transport;	/* CONFIG_TRANSPORT_* */
	char			 lmtp_host[CONFIG_PATH_SIZE];	/* socket path,
							   or host */
	uint64_t		 lmtp_port;	/* inet only */
	uint64_t		 lmtp_max_connections;

	/* [delivery] */
	uint64_t		 queue_interval;
	uint64_t		 max_tries;
	uint64_t		 max_deliveries;
	uint64_t		 max_per_destination;
	uint64_t		 remote_port;
	char			 dns_servers[CONFIG_PATH_SIZE];	/* as written */
	char			 gateway[CONFIG_HOST_SIZE];	/* "" for none */
	uint64_t		 gateway_port;
	int			 gateway_all;
	uint64_t		 gateway_after_tries;		/* 0: never */
	int			 gateway_tls_verify;
	char			 gateway_auth_file[CONFIG_PATH_SIZE];
	int			 starttls;
	uint64_t		 connect_timeout;
	uint64_t		 reply_timeout;
	uint64_t		 delivery_data_timeout;
	uint64_t		 idle_timeout;
	uint64_t		 max_received_headers;
	uint64_t		 delay_notice_after;		/* 0: never */
	uint64_t		 bounce_size_limit;	/* octets returned */

	/* [milter]: sockets "inet:host:port", "inet6:...", "unix:/path" */
	char			**smtpd_milters;
	size_t			 nsmtpd_milters;
	char			**non_smtpd_milters;
	size_t			 nnon_smtpd_milters;
	enum config_milter_action milter_default_action;
	uint64_t		 milter_connect_timeout;
	uint64_t		 milter_command_timeout;
	uint64_t		 milter_content_timeout;
	uint64_t		 milter_protocol;
};

struct config	*config_default(void);
struct config	*config_load(const char *, char **);
void		 config_free(struct config *);
void		 config_print(const struct config *, FILE *);

int		 config_is_local_domain(const struct config *, const char *);
int		 config_is_relay_client(const struct config *,
		    const struct sockaddr *);
int		 config_is_etrn_client(const struct config *,
		    const struct sockaddr *);
int		 config_is_limit_exempt(const struct config *,
		    const struct sockaddr *);
int		 config_is_proxy_client(const struct config *,
		    const struct sockaddr *);
int		 config_has_proxy_listen(const struct config *);

#endif
