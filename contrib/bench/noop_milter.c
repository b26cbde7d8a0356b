/*
 * noop_milter.c: a content filter that looks at everything and changes
 * nothing, for contrib/bench/milter.sh.  Built on libmilter (Debian's
 * libmilter-dev), as OpenDKIM and most filters are: it asks for every
 * step of the protocol (connect, HELO, MAIL, RCPT, DATA, each header,
 * end of headers, the body, end of message) and answers each with
 * "continue", so that a server passing mail through it does all the
 * protocol work of a real filter, and the filter itself costs next to
 * nothing.
 *
 *	cc -o noop_milter noop_milter.c -lmilter -pthread
 *	noop_milter inet:PORT@127.0.0.1
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmilter/mfapi.h>

static sfsistat
noop_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *addr)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_helo(SMFICTX *ctx, char *helo)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_envfrom(SMFICTX *ctx, char **argv)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_envrcpt(SMFICTX *ctx, char **argv)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_data(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_header(SMFICTX *ctx, char *name, char *value)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_eoh(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_eom(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_abort(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static sfsistat
noop_close(SMFICTX *ctx)
{
	return SMFIS_CONTINUE;
}

static struct smfiDesc noop_desc = {
	.xxfi_name = "noop",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = 0,		/* changes nothing */
	.xxfi_connect = noop_connect,
	.xxfi_helo = noop_helo,
	.xxfi_envfrom = noop_envfrom,
	.xxfi_envrcpt = noop_envrcpt,
	.xxfi_header = noop_header,
	.xxfi_eoh = noop_eoh,
	.xxfi_body = noop_body,
	.xxfi_eom = noop_eom,
	.xxfi_abort = noop_abort,
	.xxfi_close = noop_close,
	.xxfi_data = noop_data,
};

int
main(int argc, char *argv[])
{
	if (argc != 2) {
		fprintf(stderr, "usage: noop_milter inet:PORT@127.0.0.1\n");
		return 2;
	}
	if (smfi_setconn(argv[1]) == MI_FAILURE ||
	    smfi_register(noop_desc) == MI_FAILURE) {
		fprintf(stderr, "noop_milter: cannot set up %s\n", argv[1]);
		return 1;
	}
	/* Many sessions at once: the listen queue as deep as allowed. */
	smfi_setbacklog(1024);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
