/*
 * milter_edit.c: the changes filters ask for at the end of a message,
 * collected in a milter_mods and applied in one go: header fields and
 * body through an output callback (the spool writer), recipients and
 * sender to the envelope once every change has been checked.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "envelope.h"
#include "milter_edit.h"
#include "util.h"

void
milter_mods_init(struct milter_mods *m)
{
	memset(m, 0, sizeof *m);
}

void
milter_mods_clear(struct milter_mods *m)
{
	size_t	i;

	for (i = 0; i < m->nmods; i++) {
		free(m->mods[i].name);
		free(m->mods[i].value);
	}
	free(m->mods);
	free(m->body);
	free(m->quarantine);
	free(m->message);
	milter_mods_init(m);
}

void
milter_mods_add(struct milter_mods *m, enum milter_mod_type type,
    uint32_t index, int leadspc, const char *name, const char *value)
{
	struct milter_mod	*mod;

	if (m->nmods == m->alloc) {
		m->alloc = m->alloc == 0 ? 8 : m->alloc * 2;
		m->mods = xreallocarray(m->mods, m->alloc, sizeof *m->mods);
	}
	mod = &m->mods[m->nmods++];
	mod->type = type;
	mod->index = index;
	mod->leadspc = leadspc;
	mod->name = xstrdup(name);
	mod->value = value != NULL ? xstrdup(value) : NULL;
}

/*
 * A piece of a replacement body; the first replaces the body, the next
 * ones extend it.  Lone LFs become CRLF, as the spool keeps lines.
 */
void
milter_mods_body(struct milter_mods *m, const void *data, size_t len)
{
	const char	*p = data;
	size_t		 i;

	if (!m->replace_body) {
		m->replace_body = 1;
		m->bodylen = 0;
	}
	m->body = xreallocarray(m->body, m->bodylen + 2 * len + 1, 1);
	for (i = 0; i < len; i++) {
		if (p[i] == '\n' && (m->bodylen == 0 ||
		    m->body[m->bodylen - 1] != '\r'))
			m->body[m->bodylen++] = '\r';
		m->body[m->bodylen++] = p[i];
	}
}

/* Whether the header section or the body changes. */
int
milter_mods_has_content(const struct milter_mods *m)
{
	size_t	i;

	if (m->replace_body || m->message != NULL)
		return 1;
	for (i = 0; i < m->nmods; i++) {
		if (m->mods[i].type == MILTER_MOD_ADD_HEADER ||
		    m->mods[i].type == MILTER_MOD_INSERT_HEADER ||
		    m->mods[i].type == MILTER_MOD_CHANGE_HEADER)
			return 1;
	}
	return 0;
}

/* Whether the sender or the recipients change. */
int
milter_mods_has_envelope(const struct milter_mods *m)
{
	size_t	i;

	for (i = 0; i < m->nmods; i++) {
		if (m->mods[i].type == MILTER_MOD_ADD_RCPT ||
		    m->mods[i].type == MILTER_MOD_DELETE_RCPT ||
		    m->mods[i].type == MILTER_MOD_CHANGE_FROM)
			return 1;
	}
	return 0;
}

/* The length of a field name at p (printable, no colon), or 0. */
static size_t
milter_name_len(const char *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (p[i] == ':')
			return i;
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return 0;
	}
	return 0;
}

/*
 * The header section's fields, in a heap array, and where the body
 * starts: after the empty line, or at the first line that is neither a
 * field nor a fold (then there was no empty line).
 */
void
milter_edit_split(const char *msg, size_t len, struct milter_field **fieldsp,
    size_t *nfieldsp, size_t *bodyp)
{
	struct milter_field	*f = NULL, *cur = NULL;
	size_t			 n = 0, alloc = 0, off = 0, eol, nl;
	const char		*p;

	while (off < len) {
		p = memchr(msg + off, '\n', len - off);
		eol = p != NULL ? (size_t)(p - msg) + 1 : len;
		nl = eol - off;
		if ((nl == 2 && msg[off] == '\r') || (nl == 1 &&
		    msg[off] == '\n')) {
			off = eol;
			break;
		}
		if ((msg[off] == ' ' || msg[off] == '\t') && cur != NULL) {
			cur->valuelen = eol - (size_t)(cur->value - msg);
		} else if (milter_name_len(msg + off, nl) > 0) {
			if (n == alloc) {
				alloc = alloc == 0 ? 32 : alloc * 2;
				f = xreallocarray(f, alloc, sizeof *f);
			}
			cur = &f[n++];
			cur->name = msg + off;
			cur->namelen = milter_name_len(msg + off, nl);
			cur->value = cur->name + cur->namelen + 1;
			cur->valuelen = eol - (size_t)(cur->value - msg);
		} else
			break;
		off = eol;
	}
	/* Values end before their final line end. */
	for (nl = 0; nl < n; nl++) {
		if (f[nl].valuelen > 0 && f[nl].value[f[nl].valuelen - 1] ==
		    '\n')
			f[nl].valuelen--;
		if (f[nl].valuelen > 0 && f[nl].value[f[nl].valuelen - 1] ==
		    '\r')
			f[nl].valuelen--;
	}
	*fieldsp = f;
	*nfieldsp = n;
	*bodyp = off;
}

/* A field of the edited header: from the message or from a filter. */
struct milter_line {
	const char	*name;
	size_t		 namelen;
	const char	*value;
	size_t		 valuelen;
	int		 filter;	/* value as a filter sent it */
	int		 leadspc;
	int		 deleted;
};

/*
 * A value from a filter: its lines joined by "\n" (or CRLF) become
 * folded lines of the field, each fold starting with a blank.
 */
static int
milter_out_value(const struct milter_line *l, milter_edit_out out,
    void *arg)
{
	const char	*p = l->value, *end = l->value + l->valuelen, *nl;
	size_t		 n, i, run;

	if (!l->leadspc && out(arg, " ", 1) == -1)
		return -1;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		/* No CR goes to the spool but in a line end. */
		for (i = 0; i < n; i += run + 1) {
			run = strcspn(p + i, "\r");
			if (run > n - i)
				run = n - i;
			if (run > 0 && out(arg, p + i, run) == -1)
				return -1;
		}
		if (nl == NULL)
			break;
		p = nl + 1;
		if (p < end) {
			if (out(arg, "\r\n", 2) == -1)
				return -1;
			if (*p != ' ' && *p != '\t' && out(arg, "\t", 1) == -1)
				return -1;
		}
	}
	return 0;
}

/*
 * Write the message with the header changes and the new body, if any
 * (or the whole new message the changes of several filters made).
 * Changes apply in the order given: insert at an index counted over the
 * fields then present (0: first), change the index-th field of the name
 * (from 1; an empty value deletes it, a missing one is added), add at
 * the end.  Our own trace field is not in msg, so never touched.
 */
int
milter_edit_message(const struct milter_mods *m, const char *msg,
    size_t len, milter_edit_out out, void *arg)
{
	struct milter_field	*f;
	struct milter_line	*l, nl;
	const struct milter_mod	*mod;
	size_t			 nf, body, n, alloc, i, j, live, seen;
	int			 rc = -1;

	if (m->message != NULL)
		return out(arg, m->message, m->messagelen);
	milter_edit_split(msg, len, &f, &nf, &body);
	alloc = nf + m->nmods + 1;
	l = xreallocarray(NULL, alloc, sizeof *l);
	for (n = 0; n < nf; n++) {
		l[n].name = f[n].name;
		l[n].namelen = f[n].namelen;
		l[n].value = f[n].value;
		l[n].valuelen = f[n].valuelen;
		l[n].filter = l[n].leadspc = l[n].deleted = 0;
	}
	free(f);
	for (i = 0; i < m->nmods; i++) {
		mod = &m->mods[i];
		if (mod->type != MILTER_MOD_ADD_HEADER &&
		    mod->type != MILTER_MOD_INSERT_HEADER &&
		    mod->type != MILTER_MOD_CHANGE_HEADER)
			continue;
		nl.name = mod->name;
		nl.namelen = strlen(mod->name);
		nl.value = mod->value != NULL ? mod->value : "";
		nl.valuelen = strlen(nl.value);
		nl.filter = 1;
		nl.leadspc = mod->leadspc;
		nl.deleted = 0;
		if (mod->type == MILTER_MOD_CHANGE_HEADER) {
			seen = 0;
			for (j = 0; j < n; j++) {
				if (l[j].deleted || l[j].namelen !=
				    nl.namelen || strncasecmp(l[j].name,
				    nl.name, nl.namelen) != 0)
					continue;
				if (++seen == (mod->index == 0 ? 1 :
				    mod->index))
					break;
			}
			if (j < n) {
				if (nl.valuelen == 0)
					l[j].deleted = 1;
				else {
					nl.name = l[j].name;
					l[j] = nl;
				}
				continue;
			}
			if (nl.valuelen == 0)
				continue;
		}
		/* Add, insert, or a change of a field not there. */
		j = n;
		if (mod->type == MILTER_MOD_INSERT_HEADER) {
			for (j = 0, live = 0; j < n; j++) {
				if (l[j].deleted)
					continue;
				if (live++ == mod->index)
					break;
			}
		}
		memmove(&l[j + 1], &l[j], (n - j) * sizeof *l);
		l[j] = nl;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (l[i].deleted)
			continue;
		if (out(arg, l[i].name, l[i].namelen) == -1 ||
		    out(arg, ":", 1) == -1)
			goto done;
		if (l[i].filter) {
			if (milter_out_value(&l[i], out, arg) == -1)
				goto done;
		} else if (l[i].valuelen > 0 &&
		    out(arg, l[i].value, l[i].valuelen) == -1)
			goto done;
		if (out(arg, "\r\n", 2) == -1)
			goto done;
	}
	if (out(arg, "\r\n", 2) == -1)
		goto done;
	if (m->replace_body) {
		if (m->bodylen > 0 && out(arg, m->body, m->bodylen) == -1)
			goto done;
		if (m->bodylen > 0 && m->body[m->bodylen - 1] != '\n' &&
		    out(arg, "\r\n", 2) == -1)
			goto done;
	} else if (body < len && out(arg, msg + body, len - body) == -1)
		goto done;
	rc = 0;
done:
	free(l);
	return rc;
}

/* An address a filter gave, "<a@b>" or "a@b", into buf; -1 if bad. */
static int
milter_edit_addr(const char *in, char *buf, size_t size, int null_ok)
{
	size_t	len = strlen(in), i;

	if (len >= 2 && in[0] == '<' && in[len - 1] == '>') {
		in++;
		len -= 2;
	}
	if (len >= size || (len == 0 && !null_ok))
		return -1;
	for (i = 0; i < len; i++) {
		if ((unsigned char)in[i] <= ' ' || in[i] == '<' ||
		    in[i] == '>' || in[i] == 0x7f)
			return -1;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	return 0;
}

/* NOTIFY= and ORCPT= of an added recipient; other arguments are left. */
static void
milter_edit_rcpt_args(struct envelope_rcpt *r, const char *args)
{
	static const struct {
		const char	*name;
		int		 bit;
	} notify[] = {
		{ "NEVER", ENVELOPE_NOTIFY_NEVER },
		{ "SUCCESS", ENVELOPE_NOTIFY_SUCCESS },
		{ "FAILURE", ENVELOPE_NOTIFY_FAILURE },
		{ "DELAY", ENVELOPE_NOTIFY_DELAY },
	};
	const char	*p = args, *v;
	size_t		 n, k, i;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (n > 7 && strncasecmp(p, "NOTIFY=", 7) == 0) {
			v = p + 7;
			while (v < p + n) {
				k = strcspn(v, ", ");
				for (i = 0; i < nitems(notify); i++) {
					if (strlen(notify[i].name) == k &&
					    strncasecmp(v, notify[i].name,
					    k) == 0)
						r->notify |= notify[i].bit;
				}
				v += k + (v[k] == ',');
			}
			/* NEVER stands alone (RFC 3461 4.1). */
			if ((r->notify & ENVELOPE_NOTIFY_NEVER) &&
			    r->notify != ENVELOPE_NOTIFY_NEVER)
				r->notify = 0;
		} else if (n > 6 && strncasecmp(p, "ORCPT=", 6) == 0) {
			free(r->orcpt);
			r->orcpt = xstrndup(p + 6, n - 6);
		}
		p += n;
	}
}

/* RET= and ENVID= (xtext, RFC 3461) of a changed sender. */
static void
milter_edit_from_args(struct envelope *env, const char *args)
{
	const char	*p = args;
	char		*envid;
	size_t		 n, i, o;
	unsigned int	 x;

	while (p != NULL && *p != '\0') {
		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (n == 8 && strncasecmp(p, "RET=FULL", 8) == 0)
			env->ret = ENVELOPE_RET_FULL;
		else if (n == 8 && strncasecmp(p, "RET=HDRS", 8) == 0)
			env->ret = ENVELOPE_RET_HDRS;
		else if (n > 6 && n < 6 + 400 &&
		    strncasecmp(p, "ENVID=", 6) == 0) {
			envid = xmalloc(n);
			for (i = 6, o = 0; i < n; i++) {
				if (p[i] == '+' && i + 2 < n &&
				    sscanf(p + i + 1, "%2x", &x) == 1) {
					envid[o++] = (char)x;
					i += 2;
				} else
					envid[o++] = p[i];
			}
			envid[o] = '\0';
			free(env->envid);
			env->envid = envid;
		}
		p += n;
	}
}

static int
milter_edit_has_rcpt(const struct envelope *env, const char *addr)
{
	size_t	i;

	for (i = 0; i < env->nrcpts; i++) {
		if (strcasecmp(env->rcpts[i].addr, addr) == 0)
			return 1;
	}
	return 0;
}

static void
milter_edit_del_rcpt(struct envelope *env, const char *addr)
{
	struct envelope_rcpt	*r;
	size_t			 i = 0;

	while (i < env->nrcpts) {
		r = &env->rcpts[i];
		if (strcasecmp(r->addr, addr) != 0) {
			i++;
			continue;
		}
		free(r->addr);
		free(r->orcpt);
		free(r->error);
		free(r->relay);
		memmove(r, r + 1, (env->nrcpts - i - 1) * sizeof *r);
		env->nrcpts--;
	}
}

/*
 * Apply the sender and recipient changes to the envelope, in order;
 * every address is checked first, so that on -1 (with the reason) the
 * envelope is as it was.  Recipients may all be gone afterwards: the
 * caller decides what a message without one means.
 */
int
milter_edit_envelope(const struct milter_mods *m, struct envelope *env,
    char **cause)
{
	const struct milter_mod	*mod;
	struct envelope_rcpt	*r;
	char			 buf[ADDR_PATH_SIZE];
	size_t			 i;

	for (i = 0; i < m->nmods; i++) {
		mod = &m->mods[i];
		if ((mod->type == MILTER_MOD_ADD_RCPT ||
		    mod->type == MILTER_MOD_DELETE_RCPT ||
		    mod->type == MILTER_MOD_CHANGE_FROM) &&
		    milter_edit_addr(mod->name, buf, sizeof buf,
		    mod->type == MILTER_MOD_CHANGE_FROM) == -1) {
			xasprintf(cause, "bad address from a filter");
			return -1;
		}
	}
	for (i = 0; i < m->nmods; i++) {
		mod = &m->mods[i];
		switch (mod->type) {
		case MILTER_MOD_CHANGE_FROM:
			milter_edit_addr(mod->name, buf, sizeof buf, 1);
			envelope_set_str(&env->sender, buf);
			milter_edit_from_args(env, mod->value);
			break;
		case MILTER_MOD_ADD_RCPT:
			milter_edit_addr(mod->name, buf, sizeof buf, 0);
			if (milter_edit_has_rcpt(env, buf))
				break;
			r = envelope_add_rcpt(env, buf);
			milter_edit_rcpt_args(r, mod->value);
			break;
		case MILTER_MOD_DELETE_RCPT:
			milter_edit_addr(mod->name, buf, sizeof buf, 0);
			milter_edit_del_rcpt(env, buf);
			break;
		default:
			break;
		}
	}
	return 0;
}
