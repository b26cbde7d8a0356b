/*
 * fuzz_pickup.c: maildrop files as pickup.c reads them, header block and
 * message, and again octet by octet through maildrop.c's reader, which
 * must say the same.  What is accepted is expanded through aliases as
 * ternd does before queueing, and the envelope it becomes must write and
 * read back.
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

/*
 * The file read again octet by octet, as a reader fed by a stream
 * would: the same verdict and reason, the same recipients and message.
 */
static void
fuzz_octets(const uint8_t *data, size_t size, int rc, const char *why,
    const struct envelope *env, size_t clen)
{
	struct maildrop_reader	 r;
	struct maildrop_limits	 limits;
	struct envelope		 env2;
	const char		*c;
	char			 why2[MAILDROP_WHY_SIZE];
	size_t			 i, n, got = 0;
	int			 rc2 = 0;

	memset(&limits, 0, sizeof limits);
	limits.max_message_size = pickup.conf->max_message_size;
	limits.max_recipients = pickup.conf->max_recipients;
	limits.is_local = pickup_is_local;
	envelope_init(&env2);
	maildrop_reader_init(&r, &limits, &env2);
	for (i = 0; i < size && rc2 == 0; i++) {
		rc2 = maildrop_reader_feed(&r, (const char *)data + i, 1, &c,
		    &n, why2, sizeof why2);
		got += rc2 == 0 ? n : 0;
	}
	if (rc2 == 0)
		rc2 = maildrop_reader_end(&r, why2, sizeof why2);
	maildrop_reader_clear(&r);
	if (rc2 != rc || (rc == -1 && strcmp(why, why2) != 0))
		fuzz_mismatch("read octet by octet", data, size, why2,
		    strlen(why2));
	if (rc == 0 && (got != clen || env2.nrcpts != env->nrcpts ||
	    strcmp(env2.sender, env->sender) != 0))
		fuzz_mismatch("read octet by octet", data, size, "", 0);
	envelope_clear(&env2);
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
		fuzz_octets(data, size, -1, why, &env, 0);
		envelope_clear(&env);
		free(buf);
		return 0;
	}
	fuzz_octets(data, size, 0, why, &env, clen);
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
