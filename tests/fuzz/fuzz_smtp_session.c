/*
 * fuzz_smtp_session.c: a whole inbound SMTP session, smtp_session.c
 * driven through a socket pair by a client that sends the input: every
 * command, its parameters as the session checks them (SIZE, BODY, RET,
 * ENVID, NOTIFY, ORCPT, AUTH=), AUTH exchanges, DATA and BDAT.  The
 * first octet chooses the listener (port 25 or submission) and whether
 * the client is in relay_networks; the rest is what the client sends.
 * Every reply must be a well-formed reply line, and every message the
 * session commits must have an envelope the queue can write and read
 * back.  The queue and the password checks are fakes kept here: a commit
 * is answered from the loop as the real queue does, without disk or
 * threads, and a password is checked on the loop.  They replace the real
 * functions at link time (ld --wrap), so the rest of queue.c and
 * pwcheck.c may still be linked in.
 */
#include "autoconf.h"

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "anvil.h"
#include "config.h"
#include "envelope.h"
#include "fuzz.h"
#include "pwcheck.h"
#include "queue.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "users.h"
#include "util.h"

static struct event_base	*fuzz_base;

struct queue_msg	*__wrap_queue_msg_new(char *, size_t);
int			 __wrap_queue_msg_write(struct queue_msg *, const void *,
			    size_t);
uint64_t		 __wrap_queue_msg_size(const struct queue_msg *);
void			 __wrap_queue_msg_abort(struct queue_msg *);
struct queue_commit	*__wrap_queue_msg_commit(struct queue_msg *,
			    const struct envelope *, queue_commit_cb, void *);
void			 __wrap_queue_commit_cancel(struct queue_commit *);
struct pwcheck		*__wrap_pwcheck_start(const char *, const char *,
			    pwcheck_cb, void *);
void			 __wrap_pwcheck_cancel(struct pwcheck *);

/* The fake queue: messages counted, commits answered from the loop. */
struct queue_msg {
	char		id[ENVELOPE_ID_SIZE];
	uint64_t	size;
};

struct queue_commit {
	struct event		*ev;
	struct queue_msg	*m;
	queue_commit_cb		 cb;
	void			*arg;
	int			 cancelled;
};

struct queue_msg *
__wrap_queue_msg_new(char *id, size_t size)
{
	static unsigned long	 n;
	struct queue_msg	*m = xcalloc(1, sizeof *m);

	snprintf(m->id, sizeof m->id, "0QH3M2B7K%06lu", n++ % 1000000);
	util_strlcpy(id, m->id, size);
	return m;
}

int
__wrap_queue_msg_write(struct queue_msg *m, const void *data, size_t len)
{
	m->size += len;
	return 0;
}

uint64_t
__wrap_queue_msg_size(const struct queue_msg *m)
{
	return m->size;
}

void
__wrap_queue_msg_abort(struct queue_msg *m)
{
	free(m);
}

static void
fuzz_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queue_commit	*c = arg;

	if (!c->cancelled)
		c->cb(c->arg, 0);
	event_free(c->ev);
	free(c->m);
	free(c);
}

struct queue_commit *
__wrap_queue_msg_commit(struct queue_msg *m, const struct envelope *env,
    queue_commit_cb cb, void *arg)
{
	struct queue_commit	*c;
	struct envelope		 back;
	char			*text, *cause = NULL;
	size_t			 len;

	if (strcmp(env->id, m->id) != 0 || env->nrcpts == 0)
		abort();
	/* What a session accepts, the queue must keep. */
	if (envelope_write(env, &text, &len) == -1)
		fuzz_mismatch("envelope not writable", env->id,
		    strlen(env->id), "", 0);
	envelope_init(&back);
	if (envelope_parse(&back, text, len, &cause) == -1)
		fuzz_mismatch(cause, text, len, "", 0);
	envelope_clear(&back);
	free(text);
	c = xcalloc(1, sizeof *c);
	c->m = m;
	c->cb = cb;
	c->arg = arg;
	if ((c->ev = event_new(fuzz_base, -1, 0, fuzz_commit_cb, c)) == NULL)
		abort();
	event_active(c->ev, EV_TIMEOUT, 1);
	return c;
}

void
__wrap_queue_commit_cancel(struct queue_commit *c)
{
	c->cancelled = 1;
}

/* The fake password checks: on the loop, crypt(3) hashes never match. */
struct pwcheck {
	struct event	*ev;
	int		 result;
	pwcheck_cb	 cb;
	void		*arg;
};

static void
fuzz_pwcheck_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pwcheck	*pc = arg;

	pc->cb(pc->result, pc->arg);
	event_free(pc->ev);
	free(pc);
}

struct pwcheck *
__wrap_pwcheck_start(const char *stored, const char *password,
    pwcheck_cb cb, void *arg)
{
	struct pwcheck	*pc = xcalloc(1, sizeof *pc);

	pc->result = stored[0] != '$' && users_check_hash(stored, password);
	pc->cb = cb;
	pc->arg = arg;
	if ((pc->ev = event_new(fuzz_base, -1, 0, fuzz_pwcheck_cb, pc)) ==
	    NULL)
		abort();
	event_active(pc->ev, EV_TIMEOUT, 1);
	return pc;
}

void
__wrap_pwcheck_cancel(struct pwcheck *pc)
{
	event_free(pc->ev);
	free(pc);
}

static const char fuzz_ini[] =
    "[main]\n"
    "hostname = mx.example.org\n"
    "[smtp]\n"
    "local_domains = example.org\n"
    "relay_networks = 127.0.0.0/8\n"
    "etrn_networks = 127.0.0.0/8\n"
    "max_message_size = 64K\n"
    "max_recipients = 20\n"
    "max_errors = 50\n"
    "auth_plaintext = yes\n"
    "auth_failure_delay = 0s\n"
    "[local]\n"
    "default_domain = example.org\n";
static const char fuzz_users[] =
    "alice@example.org {PLAIN}c2VjcmV0\n"
    "bob@example.org -\n";
static const char fuzz_aliases[] =
    "team@example.org: alice@example.org, bob@example.org, "
    "carol@example.net\n";

static int	fuzz_closed;

static void
fuzz_closed_cb(struct smtp_session *s, void *arg)
{
	fuzz_closed = 1;
}

static size_t
fuzz_etrn_cb(const char *domain, int flags)
{
	return 0;
}

static void
fuzz_setup(void)
{
	struct users_params	 up;
	struct config		*c;
	struct users		*u;
	const char		*domains[] = { "example.org" };
	char			*cause = NULL, *upath;

	if ((fuzz_base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	if ((c = config_load(fuzz_file("tern.ini", fuzz_ini,
	    sizeof fuzz_ini - 1), &cause)) == NULL)
		errx(1, "%s", cause);
	upath = xstrdup(fuzz_file("users", fuzz_users, sizeof fuzz_users - 1));
	memset(&up, 0, sizeof up);
	up.users_path = upath;
	up.aliases_path = fuzz_file("aliases", fuzz_aliases,
	    sizeof fuzz_aliases - 1);
	up.local_domains = domains;
	up.nlocal_domains = 1;
	up.mailboxes = "/var/mail/tern";
	if ((u = users_load(&up, &cause)) == NULL)
		errx(1, "%s", cause);
	free(upath);
	anvil_init(c);
	smtp_session_init(fuzz_base, c, NULL);
	smtp_session_set_users(u);
	smtp_session_set_etrn(fuzz_etrn_cb);
}

/* Every reply line: a code, "-" or " ", text, CRLF, 512 octets at most. */
static void
fuzz_check_replies(const char *out, size_t len)
{
	struct smtp_reply_line	 r;
	const char		*p = out, *end = out + len, *nl;
	char			 line[SMTP_LINE_MAX + 1];
	size_t			 n;

	while (p < end) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			fuzz_mismatch("reply without CRLF", out, len, p,
			    (size_t)(end - p));
		n = (size_t)(nl + 1 - p);
		if (n < 6 || n > SMTP_LINE_MAX || nl[-1] != '\r' ||
		    memchr(p, '\r', n - 2) != NULL ||
		    memchr(p, '\0', n) != NULL)
			fuzz_mismatch("reply line", out, len, p, n);
		memcpy(line, p, n - 2);
		line[n - 2] = '\0';
		if (smtp_parse_reply(line, &r) == -1 || line[3] == '\0')
			fuzz_mismatch("reply line", out, len, p, n);
		p = nl + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in	 sin;
	struct util_buf		 out = { NULL, 0, 0 };
	const uint8_t		*in;
	char			 buf[4096];
	size_t			 inlen, off = 0, turns;
	ssize_t			 n;
	int			 fds[2], pending, idle = 0, shut = 0;

	if (fuzz_base == NULL)
		fuzz_setup();
	if (size == 0)
		return 0;
	in = data + 1;
	inlen = size - 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == -1)
		err(1, "socketpair");
	if (fcntl(fds[0], F_SETFL, O_NONBLOCK) == -1 ||
	    fcntl(fds[1], F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	inet_pton(AF_INET, data[0] & 2 ? "192.0.2.7" : "127.0.0.1",
	    &sin.sin_addr);
	fuzz_closed = 0;
	if (smtp_session_new(fds[0], (struct sockaddr *)&sin, sizeof sin,
	    data[0] & 1 ? SMTP_KIND_SUBMISSION : SMTP_KIND_MX, fuzz_closed_cb,
	    NULL) == NULL)
		abort();

	/*
	 * Send what the client says, read what the session answers; once
	 * everything was sent and taken and nothing moves, the client
	 * hangs up.  The session must then close.
	 */
	for (turns = 0; !fuzz_closed; turns++) {
		if (turns > 100000)
			fuzz_mismatch("session still open", out.data, out.len,
			    "", 0);
		if (off < inlen) {
			n = write(fds[1], in + off, inlen - off);
			if (n > 0)
				off += (size_t)n;
		}
		event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
		idle++;
		while ((n = read(fds[1], buf, sizeof buf)) > 0) {
			util_buf_add(&out, buf, (size_t)n);
			idle = 0;
		}
		if (ioctl(fds[0], FIONREAD, &pending) == -1)
			pending = 0;
		if (off == inlen && pending == 0 && idle > 3 && !shut) {
			shutdown(fds[1], SHUT_WR);
			shut = 1;
		}
	}
	while ((n = read(fds[1], buf, sizeof buf)) > 0)
		util_buf_add(&out, buf, (size_t)n);
	close(fds[1]);
	/* FUZZ_VERBOSE=1 fuzz_smtp_session INPUT shows the session's side. */
	if (getenv("FUZZ_VERBOSE") != NULL)
		fwrite(out.data, 1, out.len, stderr);
	fuzz_check_replies(out.data, out.len);
	free(out.data);
	return 0;
}
