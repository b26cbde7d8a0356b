/*
 * anvil.h: what tern remembers of each client address across sessions
 * (connections, messages, recipients, AUTH failures per unit of time,
 * sessions open now) and the per-client limits it enforces from it, as
 * Postfix's anvil(8) does.  Pure logic: time is passed in.
 */
#ifndef ANVIL_H
#define ANVIL_H

#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

struct config;

/* What a client is known by: an address (IPv6 cut to its prefix). */
struct anvil_key {
	uint8_t		family;		/* 0: not counted */
	uint8_t		addr[16];
};

enum anvil_result {
	ANVIL_OK,		/* counted, within every limit */
	ANVIL_EXEMPT,		/* a client of client_limit_exempt */
	ANVIL_CONN_RATE,	/* max_connection_rate reached */
	ANVIL_CONN_COUNT,	/* max_connections_per_ip reached */
	ANVIL_MSG_RATE,		/* max_message_rate reached */
	ANVIL_RCPT_RATE,	/* max_recipient_rate reached */
	ANVIL_AUTH_PENALTY,	/* the address is in its AUTH penalty */
	ANVIL_USER_PENALTY,	/* the account is in its AUTH penalty */
};

void		 anvil_init(const struct config *);
void		 anvil_set_config(const struct config *);
void		 anvil_shutdown(void);
uint64_t	 anvil_now(void);
const char	*anvil_result_str(enum anvil_result);

enum anvil_result anvil_connect(const struct sockaddr *, uint64_t,
		    struct anvil_key *);
void		 anvil_disconnect(const struct anvil_key *, int, uint64_t);
enum anvil_result anvil_mail(const struct sockaddr *, uint64_t);
enum anvil_result anvil_rcpt(const struct sockaddr *, uint64_t);
enum anvil_result anvil_auth_allowed(const struct sockaddr *, const char *,
		    uint64_t);
enum anvil_result anvil_auth_failed(const struct sockaddr *, const char *,
		    uint64_t);

size_t		 anvil_entries(void);
size_t		 anvil_entry_size(void);

#endif
