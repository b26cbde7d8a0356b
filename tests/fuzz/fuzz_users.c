/*
 * fuzz_users.c: the users and aliases files through users.c.  The input
 * is the users file, a line "%%", and the aliases file; both are written
 * to a private directory and loaded as ternd loads them.  Every address
 * named in them is then resolved, mapped to a mailbox and checked as a
 * sender and a login, which walks the alias graph the files made.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "users.h"
#include "util.h"

static const char *const fuzz_domains[] = { "example.org", "example.net" };

/* Every token of text with an "@" in it, and "postmaster". */
static void
fuzz_lookups(const struct users *u, const char *text)
{
	struct users_rcpt	*rcpts;
	char			*copy, *p, *tok, buf[USERS_PATH_SIZE];
	size_t			 n, i, count = 0;

	if (users_resolve(u, "postmaster", &rcpts, &n) == 0)
		free(rcpts);
	copy = xstrdup(text);
	p = copy;
	while ((tok = strsep(&p, " \t\r\n:,")) != NULL && count < 64) {
		if (strchr(tok, '@') == NULL)
			continue;
		count++;
		if (users_resolve(u, tok, &rcpts, &n) == 0) {
			if (n == 0)
				abort();
			for (i = 0; i < n; i++) {
				if (strnlen(rcpts[i].addr, USERS_ADDR_SIZE) ==
				    USERS_ADDR_SIZE ||
				    strnlen(rcpts[i].mailbox,
				    USERS_PATH_SIZE) == USERS_PATH_SIZE)
					abort();
				(void)users_mailbox(u, rcpts[i].addr, buf,
				    sizeof buf);
			}
			free(rcpts);
		}
		(void)users_mailbox(u, tok, buf, sizeof buf);
		(void)users_owns(u, tok, tok);
		(void)users_stored_secret(u, tok, buf, sizeof buf);
		(void)users_cram_secret(u, tok, buf, sizeof buf);
		(void)users_is_local(u, strrchr(tok, '@') + 1);
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct users_params	 up;
	struct users		*u;
	const char		*p = (const char *)data, *sep;
	char			*users_path, *text, *cause = NULL;
	size_t			 ulen, alen;

	sep = memmem(p, size, "\n%%\n", 4);
	ulen = sep != NULL ? (size_t)(sep - p) + 1 : size;
	alen = sep != NULL ? size - ulen - 3 : 0;
	users_path = xstrdup(fuzz_file("users", p, ulen));
	memset(&up, 0, sizeof up);
	up.users_path = users_path;
	up.aliases_path = sep != NULL ? fuzz_file("aliases", sep + 4, alen) :
	    NULL;
	up.local_domains = fuzz_domains;
	up.nlocal_domains = 2;
	up.mailboxes = "/var/mail/tern";
	if ((u = users_load(&up, &cause)) == NULL) {
		if (cause == NULL)
			abort();
		free(cause);
		free(users_path);
		return 0;
	}
	(void)users_count(u);
	text = fuzz_str(data, size);
	fuzz_lookups(u, text);
	free(text);
	users_free(u);
	free(users_path);
	return 0;
}
