/*
 * fuzz_reply.c: a peer's replies as mta_session.c reads them.  The first
 * octet chooses the state the replies answer (EHLO reads extensions);
 * the rest is the peer's lines.  Each line goes through smtp_parse_reply()
 * and the session's own steps that follow it: the checks of
 * mta_read_line(), the joined text, the enhanced status code, the EHLO
 * (and LHLO) keywords and the outcome made of a complete reply.
 * mta_session.c is included to reach those steps, which are static.
 */
#include "../../src/mta_session.c"

#include "fuzz.h"

/* One line, its end of line removed, as mta_read_line() takes it. */
static int
fuzz_reply_line(struct mta_session *s, char *line)
{
	struct smtp_reply_line	r;
	struct dlv_status	st;

	if (smtp_parse_reply(line, &r) == -1)
		return -1;
	if (r.code < 200 || r.code > 599 || r.text < line)
		abort();
	if (s->reply_lines > 0 && r.code != s->reply_code)
		return -1;
	if (s->reply_lines >= MTA_REPLY_LINES_MAX)
		return -1;
	if (s->reply_lines++ == 0) {
		s->reply_code = r.code;
		s->reply_len = 0;
		s->reply[0] = '\0';
	}
	mta_reply_add(s, &r);
	if (s->reply_len >= sizeof s->reply || strlen(s->reply) !=
	    s->reply_len)
		abort();
	if (s->reply_lines > 1 && (s->state == MTA_STATE_EHLO ||
	    s->state == MTA_STATE_LHLO) && r.code / 100 == 2)
		mta_ehlo_line(s, r.text);
	if (r.more)
		return 0;
	s->reply_lines = 0;
	memset(&st, 0, sizeof st);
	mta_status_reply(s, &st);
	if (st.status[0] != '2' && st.status[0] != '4' && st.status[0] != '5')
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mta_session	*s;
	const char		*p, *end, *nl;
	size_t			 len, i;

	if (size == 0)
		return 0;
	s = xcalloc(1, sizeof *s);
	s->state = MTA_STATE_GREETING + data[0] % (MTA_STATE_CLOSED -
	    MTA_STATE_GREETING);
	util_strlcpy(s->peer, "mx.example.net[192.0.2.1]", sizeof s->peer);
	util_strlcpy(s->relay, "mx.example.net[192.0.2.1]:25",
	    sizeof s->relay);
	p = (const char *)data + 1;
	end = (const char *)data + size;
	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		len = (size_t)(nl + 1 - p);
		if (len > SMTP_TEXT_LINE_MAX)
			break;
		memcpy(mta_line, p, len);
		len--;
		if (len > 0 && mta_line[len - 1] == '\r')
			len--;
		mta_line[len] = '\0';
		for (i = 0; i < len; i++) {
			if (mta_line[i] == '\0')
				mta_line[i] = '?';
		}
		if (fuzz_reply_line(s, mta_line) == -1)
			break;
		p = nl + 1;
	}
	free(s);
	return 0;
}
