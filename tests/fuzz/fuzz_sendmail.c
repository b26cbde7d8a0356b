/*
 * fuzz_sendmail.c: a message given to the sendmail entry point (ternctl
 * as sendmail, which scripts feed with text they may not control): the
 * header and body split, -t's address lists in To, Cc and Bcc, and the
 * message composed for the maildrop.  What sendmail composes, pickup must
 * accept as it stands, or a message said sent would be lost: the
 * maildrop file is built as sendmail_drop() writes it and read back by
 * pickup.c's reader.  The first octet sets -t, -i and -F; with -F the
 * first line of the input is the full name.  sendmail.c and pickup.c
 * are included to reach their static functions; sendmail's complaints
 * go to /dev/null.
 */
#include "autoconf.h"

#include <err.h>
#include <stdio.h>

static FILE	*fuzz_devnull;
#undef stderr
#define stderr	fuzz_devnull
#include "../../src/sendmail.c"
#include "../../src/pickup.c"
#undef stderr
#define stderr	stderr

#include "fuzz.h"

static const char fuzz_ini[] =
    "[main]\n"
    "hostname = mx.example.org\n"
    "[smtp]\n"
    "local_domains = example.org\n"
    "max_recipients = 100\n"
    "max_message_size = 1M\n"
    "[local]\n"
    "default_domain = example.org\n";

static void
fuzz_setup(void)
{
	struct config	*c;
	char		*cause = NULL;

	if ((fuzz_devnull = fopen("/dev/null", "w")) == NULL)
		err(1, "/dev/null");
	if ((c = config_load(fuzz_file("tern.ini", fuzz_ini,
	    sizeof fuzz_ini - 1), &cause)) == NULL)
		errx(1, "%s", cause);
	pickup.conf = c;
}

static void
fuzz_free(struct sendmail *sm)
{
	size_t	i;

	for (i = 0; i < sm->nrcpts; i++)
		free(sm->rcpts[i]);
	free(sm->rcpts);
	for (i = 0; i < sm->nfields; i++)
		free(sm->fields[i].text);
	free(sm->fields);
	free(sm->body.data);
	free(sm->msg.data);
	free(sm->sender);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sendmail	 sm;
	struct envelope	 env;
	struct util_buf	 drop = { NULL, 0, 0 };
	const char	*in, *content, *nl;
	char		*name = NULL, *file, why[MAILDROP_WHY_SIZE];
	size_t		 inlen, i, clen;

	if (fuzz_devnull == NULL)
		fuzz_setup();
	/* sendmail refuses a NUL before anything else. */
	if (size == 0 || memchr(data + 1, '\0', size - 1) != NULL)
		return 0;
	in = (const char *)data + 1;
	inlen = size - 1;
	memset(&sm, 0, sizeof sm);
	sm.conf = pickup.conf;
	sm.extract = data[0] & 1;
	sm.ignore_dots = data[0] & 2;
	util_strlcpy(sm.login, "alice", sizeof sm.login);
	util_strlcpy(sm.gecos, "Alice Example", sizeof sm.gecos);
	if (data[0] & 4) {
		nl = memchr(in, '\n', inlen);
		i = nl != NULL ? (size_t)(nl - in) : inlen;
		name = xstrndup(in, i);
		sm.fullname = name;
		in += i < inlen ? i + 1 : i;
		inlen -= i < inlen ? i + 1 : i;
	}
	sm.sender = xstrdup("alice@example.org");
	if (!sm.extract && sendmail_parse_list(&sm, "bob, carol@example.net",
	    sendmail_rcpt_cb) == -1)
		abort();
	sendmail_split(&sm, in, inlen);
	if ((sm.extract && sendmail_extract(&sm) == -1) || sm.nrcpts == 0) {
		fuzz_free(&sm);
		free(name);
		return 0;
	}
	sendmail_compose(&sm);
	if (sm.msg.len > sm.conf->max_message_size) {
		fuzz_free(&sm);
		free(name);
		return 0;
	}

	/* The maildrop file as sendmail_drop() writes it. */
	if (maildrop_header(&drop, sm.sender, sm.rcpts, sm.nrcpts,
	    sm.msg.len) == -1) {
		fuzz_free(&sm);
		free(drop.data);
		free(name);
		return 0;
	}
	util_buf_add(&drop, sm.msg.data, sm.msg.len);
	file = fuzz_str((const uint8_t *)drop.data, drop.len);
	/* FUZZ_VERBOSE=1 fuzz_sendmail INPUT shows the maildrop file. */
	if (getenv("FUZZ_VERBOSE") != NULL)
		fwrite(drop.data, 1, drop.len, stderr);
	envelope_init(&env);
	if (pickup_parse(file, drop.len, &env, &content, &clen, why,
	    sizeof why) == -1)
		fuzz_mismatch(why, data, size, drop.data, drop.len);
	if (env.nrcpts != sm.nrcpts || clen != sm.msg.len)
		fuzz_mismatch("recipients or size", data, size, drop.data,
		    drop.len);
	envelope_clear(&env);
	free(file);
	free(drop.data);
	fuzz_free(&sm);
	free(name);
	return 0;
}
