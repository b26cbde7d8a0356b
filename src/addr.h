/*
 * addr.h: RFC 5321 mailbox paths ("<local@domain>") as they appear in MAIL
 * FROM and RCPT TO.  Pure logic: parses and prints, never looks anything
 * up.
 */
#ifndef ADDR_H
#define ADDR_H

#include <stddef.h>

/* Limits with room to spare over RFC 5321 4.5.3.1 (64 and 255). */
#define ADDR_LOCAL_SIZE		257
#define ADDR_DOMAIN_SIZE	256
/* "<" local "@" domain ">" and the NUL. */
#define ADDR_PATH_SIZE		(ADDR_LOCAL_SIZE + ADDR_DOMAIN_SIZE + 3)

/*
 * A mailbox.  The null reverse path has both parts empty; a bare
 * "<Postmaster>" recipient has an empty domain.  local keeps the local part
 * as sent, quotes included (it is what the next hop must see), except that
 * quotes it does not need are removed ("alice" is alice); domain is
 * lowercased, its one trailing dot removed.
 */
struct addr {
	char	local[ADDR_LOCAL_SIZE];
	char	domain[ADDR_DOMAIN_SIZE];
};

/* Flags for addr_parse_path(). */
#define ADDR_ALLOW_NULL		0x01	/* "<>" (MAIL FROM) */
#define ADDR_ALLOW_POSTMASTER	0x02	/* "<Postmaster>" (RCPT TO) */
#define ADDR_ALLOW_UTF8		0x04	/* UTF-8 per RFC 6531 (SMTPUTF8) */
#define ADDR_ALLOW_BARE		0x08	/* "<local>", domain left empty */

/* Results of addr_parse_path() other than 0. */
#define ADDR_ERR_SYNTAX		-1
#define ADDR_ERR_UTF8		-2	/* valid, but UTF-8 without SMTPUTF8 */

int	 addr_parse_path(const char *, int, struct addr *, const char **,
	    const char **);
int	 addr_is_null(const struct addr *);
int	 addr_has_routing(const struct addr *);
int	 addr_is_utf8(const struct addr *);
int	 addr_format(const struct addr *, char *, size_t);
int	 addr_format_path(const struct addr *, char *, size_t);

#endif
