/*
 * fuzz_pickup.c: maildrop files as pickup.c reads them, header block and
 * message.  What is accepted is expanded through aliases as ternd does
 * before queueing, and the envelope it becomes must write and read back.
 * pickup.c is included to reach its reader, which is static.
 */
#include "../../src/pickup.c"

#include <err.h>

#include "fuzz.h"

static const char fuzz_ini[] =
    "[smtp]\n"
    "local_domains = example.org\n"
    "max_recipients = 100\n"
    "max_message_size = 1M\n"
    "[local]\n"
    "default_domain = example.org\n";
static const char fuzz_users[] =
    "alice@example.org {PLAIN}c2VjcmV0\n"
    "bob@example.org -\n";
static const char fuzz_aliases[] =
    "team@example.org: alice@example.org, bob@example.org, "
    "carol@example.net\n"
    "loop@example.org: loop2@example.org\n"
    "loop2@example.org: loop@example.org\n";
static const char *const fuzz_domains[] = { "example.org" };

static void
fuzz_setup(void)
{
	struct users_params	 up;
	struct config		*c;
	struct users		*u;
	char			*cause = NULL, *upath;

	if ((c = config_load(fuzz_file("tern.ini", fuzz_ini,
	    sizeof fuzz_ini - 1), &cause)) == NULL)
		errx(1, "%s", cause);
	upath = xstrdup(fuzz_file("users", fuzz_users, sizeof fuzz_users - 1));
	memset(&up, 0, sizeof up);
	up.users_path = upath;
	up.aliases_path = fuzz_file("aliases", fuzz_aliases,
	    sizeof fuzz_aliases - 1);
	up.local_domains = fuzz_domains;
	up.nlocal_domains = 1;
	up.mailboxes = "/var/mail/tern";
	if ((u = users_load(&up, &cause)) == NULL)
		errx(1, "%s", cause);
	free(upath);
	pickup.conf = c;
	pickup.users = u;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope	 env, env2;
	const char	*content;
	char		*buf, *text, *cause = NULL, why[MAILDROP_WHY_SIZE];
	size_t		 clen, len;

	if (pickup.conf == NULL)
		fuzz_setup();
	buf = fuzz_str(data, size);
	envelope_init(&env);
	why[0] = '\0';
	if (pickup_parse(buf, size, &env, &content, &clen, why,
	    sizeof why) == -1) {
		if (why[0] == '\0')
			abort();
		envelope_clear(&env);
		free(buf);
		return 0;
	}
	if (content < buf || content + clen != buf + size || env.nrcpts == 0)
		abort();
	pickup_expand(&env);
	if (env.nrcpts == 0)
		abort();
	util_strlcpy(env.id, "0QH3M2B7K9XW4TZ", sizeof env.id);
	env.arrival = 1795864624;
	env.size = clen;
	/* What pickup accepts, the queue must be able to keep. */
	if (envelope_write(&env, &text, &len) == -1)
		fuzz_mismatch("envelope not writable", data, size, "", 0);
	envelope_init(&env2);
	if (envelope_parse(&env2, text, len, &cause) == -1)
		fuzz_mismatch(cause, data, size, text, len);
	free(text);
	envelope_clear(&env2);
	envelope_clear(&env);
	free(buf);
	return 0;
}
