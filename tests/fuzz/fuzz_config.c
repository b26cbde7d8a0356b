/*
 * fuzz_config.c: tern.ini through config.c (inih and the key table).
 * The input is written to a file and loaded as ternd loads it.  What
 * loads is printed (ternd -n) and must load back and print the same.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "util.h"

static char *
fuzz_print(const struct config *c, size_t *len)
{
	FILE	*f;
	char	*text = NULL;

	if ((f = open_memstream(&text, len)) == NULL)
		abort();
	config_print(c, f);
	if (fclose(f) != 0)
		abort();
	return text;
}

static void
fuzz_queries(const struct config *c)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	(void)config_is_relay_client(c, (struct sockaddr *)&sin);
	(void)config_is_relay_client(c, (struct sockaddr *)&sin6);
	(void)config_is_etrn_client(c, (struct sockaddr *)&sin);
	(void)config_is_etrn_client(c, (struct sockaddr *)&sin6);
	(void)config_is_local_domain(c, "example.org");
	(void)config_is_local_domain(c, "localhost.");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config	*c, *c2;
	char		*path, *cause = NULL, *text, *text2;
	size_t		 len, len2;

	path = xstrdup(fuzz_file("tern.ini", data, size));
	if ((c = config_load(path, &cause)) == NULL) {
		if (cause == NULL)
			abort();
		free(cause);
		free(path);
		return 0;
	}
	fuzz_queries(c);
	text = fuzz_print(c, &len);
	(void)fuzz_file("tern.ini", text, len);
	if ((c2 = config_load(path, &cause)) == NULL)
		fuzz_mismatch(cause != NULL ? cause : "reload", data, size,
		    text, len);
	text2 = fuzz_print(c2, &len2);
	if (len != len2 || memcmp(text, text2, len) != 0)
		fuzz_mismatch("configuration printed twice", text, len, text2,
		    len2);
	free(text);
	free(text2);
	config_free(c);
	config_free(c2);
	free(path);
	return 0;
}
