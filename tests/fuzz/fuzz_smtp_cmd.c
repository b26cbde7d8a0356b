/*
 * fuzz_smtp_cmd.c: SMTP command lines as a client sends them, through
 * smtp_parse.c and addr.c the way a session takes them apart: the line
 * check, the verb, the path of MAIL and RCPT, its ESMTP parameters and
 * the xtext of ENVID and ORCPT, the size of BDAT.  The input is one or
 * more lines.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "smtp_parse.h"

static void
fuzz_params(char *rest)
{
	struct smtp_param	 params[SMTP_PARAMS_MAX];
	char			 buf[SMTP_LINE_MAX], dec[SMTP_LINE_MAX];
	char			 enc[3 * SMTP_LINE_MAX];
	size_t			 n, i;

	if (strlen(rest) >= sizeof buf)
		return;
	memcpy(buf, rest, strlen(rest) + 1);
	if (smtp_parse_params(buf, params, SMTP_PARAMS_MAX, &n) == -1)
		return;
	if (n > SMTP_PARAMS_MAX)
		abort();
	for (i = 0; i < n; i++) {
		if (params[i].key[0] == '\0')
			abort();
		if (params[i].value == NULL)
			continue;
		if (strcasecmp(params[i].key, "ENVID") != 0 &&
		    strcasecmp(params[i].key, "ORCPT") != 0)
			continue;
		if (smtp_xtext_decode(params[i].value, dec, sizeof dec) == -1)
			continue;
		/* What decodes encodes back, and decodes the same again. */
		if (smtp_xtext_encode(dec, enc, sizeof enc) == -1)
			abort();
		if (smtp_xtext_decode(enc, buf, sizeof buf) == -1 ||
		    strcmp(buf, dec) != 0)
			fuzz_mismatch("xtext round trip", dec, strlen(dec),
			    buf, strlen(buf));
	}
}

/* A BDAT size that parses prints back as digits that parse the same. */
static void
fuzz_bdat(const char *args)
{
	uint64_t	 size, again;
	int		 last, last2;
	char		 buf[64];

	if (smtp_parse_bdat(args, &size, &last) == -1)
		return;
	snprintf(buf, sizeof buf, "%" PRIu64 "%s", size, last ? " LAST" : "");
	if (smtp_parse_bdat(buf, &again, &last2) == -1 || again != size ||
	    last2 != last)
		fuzz_mismatch("BDAT round trip", args, strlen(args), buf,
		    strlen(buf));
}

static void
fuzz_line(const char *raw, size_t len)
{
	struct smtp_cmd	 cmd;
	struct addr	 a;
	const char	*rest, *cause;
	char		*line, out[ADDR_PATH_SIZE];
	int		 flags, rc;

	(void)smtp_parse_line(raw, len);
	line = fuzz_str((const uint8_t *)raw, len);
	line[strcspn(line, "\r\n")] = '\0';
	rc = smtp_parse_cmd(line, &cmd);
	(void)smtp_verb_str(cmd.verb);
	if (cmd.verb == SMTP_VERB_BDAT)
		fuzz_bdat(cmd.args);
	if (rc == -1 || (cmd.verb != SMTP_VERB_MAIL &&
	    cmd.verb != SMTP_VERB_RCPT)) {
		free(line);
		return;
	}
	flags = ADDR_ALLOW_UTF8 | (cmd.verb == SMTP_VERB_MAIL ?
	    ADDR_ALLOW_NULL : ADDR_ALLOW_POSTMASTER);
	if (addr_parse_path(cmd.args, flags, &a, &rest, &cause) == 0) {
		(void)addr_format(&a, out, sizeof out);
		(void)addr_format_path(&a, out, sizeof out);
		(void)addr_has_routing(&a);
		(void)addr_is_utf8(&a);
		fuzz_params((char *)rest);
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*p = (const char *)data, *end = p + size, *nl;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl != NULL ? nl + 1 : end;
		fuzz_line(p, (size_t)(nl - p));
		p = nl;
	}
	return 0;
}
