/*
 * ternctl.c: the queue and control tool.  What only looks (queue, show,
 * why, and the filters of the acting verbs) reads the spool directly, so
 * it works with the daemon down; what changes the queue or the daemon is
 * asked of ternd over its control socket (ctl_proto.h), with explicit
 * queue ids.  It never writes to the spool itself: ternd stays the one
 * writer.  Called as "sendmail" it is the sendmail-compatible submission
 * (sendmail.c), called as "mailq" it lists the queue, as "newaliases"
 * it checks the aliases file and has ternd reload it.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "confcheck.h"
#include "config.h"
#include "control.h"
#include "ctl_proto.h"
#include "envelope.h"
#include "log.h"
#include "queue.h"
#include "sasl.h"
#include "sendmail.h"
#include "users.h"
#include "util.h"

/* Exit statuses, documented in ternctl(8). */
#define TERNCTL_OK		0
#define TERNCTL_ERROR		1	/* unknown id, the daemon refused */
#define TERNCTL_USAGE		2
#define TERNCTL_NO_DAEMON	3	/* no control socket, or nobody on it */
#define TERNCTL_DENIED		4	/* not allowed on the control socket */

#define TERNCTL_CONNECT_TIMEOUT	10000	/* ms */
/* Holding or deleting thousands of messages syncs as many directories. */
#define TERNCTL_REPLY_TIMEOUT	120000	/* ms without a reply line */
#define TERNCTL_HASH_SIZE	512
#define TERNCTL_TIME_SIZE	32

/* Verb options ("--json"); each verb's table entry says which it takes. */
#define TERNCTL_OPT_JSON	0x0001
#define TERNCTL_OPT_BODY	0x0002
#define TERNCTL_OPT_ALL		0x0004
#define TERNCTL_OPT_DOMAIN	0x0008
#define TERNCTL_OPT_FROM	0x0010
#define TERNCTL_OPT_TO		0x0020
#define TERNCTL_OPT_OLDER	0x0040
#define TERNCTL_OPT_ERROR	0x0080
#define TERNCTL_OPT_DRY_RUN	0x0100
#define TERNCTL_OPT_CRAM	0x0200
#define TERNCTL_OPT_FORMAT	0x0400
#define TERNCTL_OPT_FILTERS	(TERNCTL_OPT_DOMAIN | TERNCTL_OPT_FROM | \
				 TERNCTL_OPT_TO | TERNCTL_OPT_OLDER | \
				 TERNCTL_OPT_ERROR)
#define TERNCTL_OPT_SELECT	(TERNCTL_OPT_ALL | TERNCTL_OPT_FILTERS | \
				 TERNCTL_OPT_DRY_RUN)

/* What a verb's command line said; the strings point into argv. */
struct ternctl_args {
	int		 opts;		/* TERNCTL_OPT_* given */
	const char	*domain;
	const char	*from;
	const char	*to;
	const char	*error;
	const char	*format;	/* queue --format */
	uint64_t	 older;		/* ms */
	char		**words;	/* the arguments that are no option */
	int		 nwords;
};

struct ternctl_verb;
typedef int	(*ternctl_handler)(const struct ternctl_verb *,
		    struct ternctl_args *);

/* Which messages --all and the filters pick for a verb. */
enum ternctl_select {
	TERNCTL_SELECT_ANY,
	TERNCTL_SELECT_QUEUED,		/* not held */
	TERNCTL_SELECT_HELD,
};

/* Verb flags. */
#define TERNCTL_DAEMON		0x01	/* asks ternd over the socket */
#define TERNCTL_NO_CONFIG	0x02	/* loads no configuration first */
#define TERNCTL_RAW		0x04	/* its arguments are its own */

/* One verb: OpenSMTPD smtpctl's table, with the options each takes. */
struct ternctl_verb {
	const char		*name;
	ternctl_handler		 handler;
	int			 flags;
	int			 options;	/* TERNCTL_OPT_* allowed */
	int			 min_words;
	int			 max_words;	/* -1: any */
	const char		*ctl_verb;	/* the id verb on the wire */
	enum ternctl_select	 select;
	const char		*usage;
};

/* One "--name" option. */
struct ternctl_option {
	const char	*name;
	int		 flag;
	int		 has_arg;
};

static const struct ternctl_option ternctl_options[] = {
	{ "json",	TERNCTL_OPT_JSON,	0 },
	{ "body",	TERNCTL_OPT_BODY,	0 },
	{ "all",	TERNCTL_OPT_ALL,	0 },
	{ "domain",	TERNCTL_OPT_DOMAIN,	1 },
	{ "from",	TERNCTL_OPT_FROM,	1 },
	{ "to",		TERNCTL_OPT_TO,		1 },
	{ "older-than",	TERNCTL_OPT_OLDER,	1 },
	{ "error",	TERNCTL_OPT_ERROR,	1 },
	{ "dry-run",	TERNCTL_OPT_DRY_RUN,	0 },
	{ "cram",	TERNCTL_OPT_CRAM,	0 },
	{ "format",	TERNCTL_OPT_FORMAT,	1 },
};

/* The tool's state: the configuration and whether the spool is open. */
static struct {
	const char	*conf_file;	/* NULL: built in */
	struct config	*conf;
	int		 spool_open;
	int		 status;	/* exit status of an id verb so far */
} ternctl;

/* Called with each "data" line's text. */
typedef void	(*ternctl_data_cb)(const char *, void *);

static int	ternctl_request(const char *, char *const *, size_t,
		    ternctl_data_cb, void *);
static int	ternctl_queue(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_show(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_why(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_act(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_stats(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_simple(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_check(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_passwd(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_newaliases(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_shape(const struct ternctl_verb *,
		    struct ternctl_args *);
static int	ternctl_sessions(const struct ternctl_verb *,
		    struct ternctl_args *);

#define TERNCTL_SELECT_USAGE	"ID ... | --all | filter ..."
#define TERNCTL_FILTER_USAGE \
	"filters: --domain D, --from ADDR, --to ADDR, --older-than DUR, " \
	"--error PATTERN"

static const struct ternctl_verb ternctl_verbs[] = {
	{ "queue", ternctl_queue, 0, TERNCTL_OPT_JSON | TERNCTL_OPT_FORMAT, 0,
	  0, NULL, TERNCTL_SELECT_ANY,
	  "queue [--json | --format postqueue]" },
	{ "shape", ternctl_shape, 0, TERNCTL_OPT_JSON, 0, 3, NULL,
	  TERNCTL_SELECT_ANY, "shape [--json] [active | deferred | hold ...]" },
	{ "show", ternctl_show, 0, TERNCTL_OPT_BODY, 1, 1, NULL,
	  TERNCTL_SELECT_ANY, "show ID [--body]" },
	{ "why", ternctl_why, 0, 0, 1, 1, NULL,
	  TERNCTL_SELECT_ANY, "why ID" },
	{ "flush", ternctl_act, TERNCTL_DAEMON, TERNCTL_OPT_SELECT, 0, -1,
	  CTL_VERB_FLUSH_IDS, TERNCTL_SELECT_QUEUED,
	  "flush [--dry-run] [--to HOST:PORT] [DOMAIN | "
	  TERNCTL_SELECT_USAGE "]" },
	{ "delete", ternctl_act, TERNCTL_DAEMON, TERNCTL_OPT_SELECT, 0, -1,
	  CTL_VERB_DELETE, TERNCTL_SELECT_ANY,
	  "delete [--dry-run] " TERNCTL_SELECT_USAGE },
	{ "hold", ternctl_act, TERNCTL_DAEMON, TERNCTL_OPT_SELECT, 0, -1,
	  CTL_VERB_HOLD, TERNCTL_SELECT_QUEUED,
	  "hold [--dry-run] " TERNCTL_SELECT_USAGE },
	{ "release", ternctl_act, TERNCTL_DAEMON, TERNCTL_OPT_SELECT, 0, -1,
	  CTL_VERB_RELEASE, TERNCTL_SELECT_HELD,
	  "release [--dry-run] " TERNCTL_SELECT_USAGE },
	{ "bounce", ternctl_act, TERNCTL_DAEMON, TERNCTL_OPT_SELECT, 0, -1,
	  CTL_VERB_BOUNCE, TERNCTL_SELECT_ANY,
	  "bounce [--dry-run] " TERNCTL_SELECT_USAGE },
	{ "stats", ternctl_stats, TERNCTL_DAEMON, TERNCTL_OPT_JSON, 0, 0,
	  CTL_VERB_STATS, TERNCTL_SELECT_ANY, "stats [--json]" },
	{ "sessions", ternctl_sessions, TERNCTL_DAEMON, TERNCTL_OPT_JSON, 0, 0,
	  CTL_VERB_SESSIONS, TERNCTL_SELECT_ANY, "sessions [--json]" },
	{ "reload", ternctl_simple, TERNCTL_DAEMON, 0, 0, 0, CTL_VERB_RELOAD,
	  TERNCTL_SELECT_ANY, "reload" },
	{ "stop", ternctl_simple, TERNCTL_DAEMON, 0, 0, 0, CTL_VERB_STOP,
	  TERNCTL_SELECT_ANY, "stop" },
	/* Drain: new clients refused, sessions and deliveries go on. */
	{ "drain", ternctl_simple, TERNCTL_DAEMON, 0, 0, 0, CTL_VERB_DRAIN,
	  TERNCTL_SELECT_ANY, "drain" },
	{ "undrain", ternctl_simple, TERNCTL_DAEMON, 0, 0, 0,
	  CTL_VERB_UNDRAIN, TERNCTL_SELECT_ANY, "undrain" },
	{ "check", ternctl_check, TERNCTL_NO_CONFIG, 0, 0, 0, NULL,
	  TERNCTL_SELECT_ANY, "check" },
	{ "newaliases", ternctl_newaliases, 0, 0, 0, 0, CTL_VERB_RELOAD,
	  TERNCTL_SELECT_ANY, "newaliases" },
	{ "passwd", ternctl_passwd, TERNCTL_NO_CONFIG, TERNCTL_OPT_CRAM, 0, 0,
	  NULL, TERNCTL_SELECT_ANY, "passwd [--cram]" },
	{ "sendmail", NULL, TERNCTL_NO_CONFIG | TERNCTL_RAW, 0, 0, -1, NULL,
	  TERNCTL_SELECT_ANY, "sendmail [sendmail options] [address ...]" },
};

static void __attribute__((noreturn))
ternctl_usage(void)
{
	size_t	i;

	fprintf(stderr, "usage: ternctl [-c file] verb [arg ...]\n"
	    "verbs:\n");
	for (i = 0; i < nitems(ternctl_verbs); i++)
		fprintf(stderr, "\t%s\n", ternctl_verbs[i].usage);
	fprintf(stderr, "%s\n", TERNCTL_FILTER_USAGE);
	exit(TERNCTL_USAGE);
}

static int
ternctl_verb_usage(const struct ternctl_verb *v)
{
	fprintf(stderr, "usage: ternctl [-c file] %s\n", v->usage);
	if (v->options & TERNCTL_OPT_FILTERS)
		fprintf(stderr, "%s\n", TERNCTL_FILTER_USAGE);
	return TERNCTL_USAGE;
}

static const struct ternctl_verb *
ternctl_find_verb(const char *name)
{
	size_t	i;

	for (i = 0; i < nitems(ternctl_verbs); i++) {
		if (strcmp(ternctl_verbs[i].name, name) == 0)
			return &ternctl_verbs[i];
	}
	return NULL;
}

/*
 * Split a verb's arguments into options and words: "--name", "--name
 * value" or "--name=value"; "--" ends the options.  0, or -1 after
 * saying what is wrong.
 */
static int
ternctl_parse(const struct ternctl_verb *v, int argc, char **argv,
    struct ternctl_args *a)
{
	const struct ternctl_option	*o;
	const char			*s, *value, *why;
	size_t				 len, j;
	int				 i, options = 1;

	memset(a, 0, sizeof *a);
	a->words = xcalloc((size_t)argc + 1, sizeof *a->words);
	for (i = 0; i < argc; i++) {
		s = argv[i];
		if (options && strcmp(s, "--") == 0) {
			options = 0;
			continue;
		}
		if (!options || s[0] != '-' || s[1] == '\0') {
			a->words[a->nwords++] = argv[i];
			continue;
		}
		if (s[1] != '-') {
			fprintf(stderr, "ternctl: %s: unknown option %s\n",
			    v->name, s);
			return -1;
		}
		s += 2;
		len = strcspn(s, "=");
		value = s[len] == '=' ? s + len + 1 : NULL;
		o = NULL;
		for (j = 0; j < nitems(ternctl_options); j++) {
			if (strlen(ternctl_options[j].name) == len &&
			    strncmp(ternctl_options[j].name, s, len) == 0)
				o = &ternctl_options[j];
		}
		if (o == NULL || (o->flag & v->options) == 0) {
			fprintf(stderr, "ternctl: %s: unknown option --%.*s\n",
			    v->name, (int)len, s);
			return -1;
		}
		if (a->opts & o->flag) {
			fprintf(stderr, "ternctl: %s: --%s given twice\n",
			    v->name, o->name);
			return -1;
		}
		a->opts |= o->flag;
		if (!o->has_arg) {
			if (value != NULL) {
				fprintf(stderr, "ternctl: %s: --%s takes no "
				    "value\n", v->name, o->name);
				return -1;
			}
			continue;
		}
		if (value == NULL) {
			if (i + 1 == argc) {
				fprintf(stderr, "ternctl: %s: --%s needs a "
				    "value\n", v->name, o->name);
				return -1;
			}
			value = argv[++i];
		}
		switch (o->flag) {
		case TERNCTL_OPT_DOMAIN:
			a->domain = value;
			break;
		case TERNCTL_OPT_FROM:
			a->from = value;
			break;
		case TERNCTL_OPT_TO:
			a->to = value;
			break;
		case TERNCTL_OPT_ERROR:
			a->error = value;
			break;
		case TERNCTL_OPT_FORMAT:
			a->format = value;
			break;
		case TERNCTL_OPT_OLDER:
			if (util_parse_duration(value, &a->older, &why) ==
			    -1) {
				fprintf(stderr, "ternctl: %s: --older-than "
				    "%s: %s\n", v->name, value, why);
				return -1;
			}
			break;
		}
	}
	if (a->nwords < v->min_words ||
	    (v->max_words >= 0 && a->nwords > v->max_words))
		return -1;
	return 0;
}

/*
 * The configuration: -c, else $TERN_CONFIG, else the default file when
 * it exists, else the built-in one, as ternd chooses it.
 */
static struct config *
ternctl_load_config(char **cause)
{
	struct config	*conf;
	const char	*env;

	if (ternctl.conf_file == NULL && (env = getenv("TERN_CONFIG")) !=
	    NULL && *env != '\0')
		ternctl.conf_file = env;
	if (ternctl.conf_file == NULL &&
	    access(CONFIG_DEFAULT_FILE, F_OK) == 0)
		ternctl.conf_file = CONFIG_DEFAULT_FILE;
	if (ternctl.conf_file != NULL)
		conf = config_load(ternctl.conf_file, cause);
	else
		conf = config_default();
	if (conf != NULL && queue_config_paths(conf, cause) == -1) {
		config_free(conf);
		return NULL;
	}
	return conf;
}

/* Open the spool for reading, once; -1 after saying why. */
static int
ternctl_open_spool(void)
{
	char	*cause;

	if (ternctl.spool_open)
		return 0;
	if (queue_open_readonly(ternctl.conf->spool, &cause) == -1) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return -1;
	}
	ternctl.spool_open = 1;
	return 0;
}

/* A time as administrators read it: local, "2026-11-29 07:10:01". */
static void
ternctl_format_time(time_t t, char *buf, size_t size)
{
	struct tm	tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		util_snprintf(buf, size, "@%lld", (long long)t);
}

/* A JSON string, or null for NULL; octets that are no UTF-8 as U+00XX. */
static void
ternctl_json_str(const char *s)
{
	const unsigned char	*p;
	size_t			 n;

	if (s == NULL) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else if (*p < 0x80)
			putchar(*p);
		else if ((n = util_utf8_len(p, strlen((const char *)p))) > 0) {
			fwrite(p, 1, n, stdout);
			p += n - 1;
		} else
			printf("\\u%04x", *p);
	}
	putchar('"');
}

/* An optional string field: "" is null. */
static void
ternctl_json_opt(const char *s)
{
	ternctl_json_str(s != NULL && *s != '\0' ? s : NULL);
}

/*
 * "queue": one block per message, in arrival order, as mailq shows it;
 * a "!" after the id marks a held message.
 */
struct ternctl_list {
	int		 json;
	uint64_t	 size;
	size_t		 count;
};

static void
ternctl_queue_cb(const struct envelope *env, int held, void *arg)
{
	struct ternctl_list		*l = arg;
	const struct envelope_rcpt	*r;
	char				 when[TERNCTL_TIME_SIZE];
	size_t				 i;

	l->size += env->size;
	l->count++;
	if (l->json) {
		printf("%s\n  {\"id\": ", l->count > 1 ? "," : "");
		ternctl_json_str(env->id);
		printf(", \"size\": %ju, \"arrival\": %lld, \"sender\": ",
		    (uintmax_t)env->size, (long long)env->arrival);
		ternctl_json_str(env->sender != NULL ? env->sender : "");
		printf(", \"held\": %s, \"tries\": %u, \"next_attempt\": %lld, "
		    "\"recipients\": [", held ? "true" : "false", env->tries,
		    (long long)env->next_attempt);
		for (i = 0; i < env->nrcpts; i++) {
			r = &env->rcpts[i];
			printf("%s{\"address\": ", i > 0 ? ", " : "");
			ternctl_json_str(r->addr);
			printf(", \"state\": ");
			ternctl_json_str(envelope_rcpt_state_str(r->state));
			printf(", \"status\": ");
			ternctl_json_opt(r->status);
			printf(", \"error\": ");
			ternctl_json_opt(r->error);
			putchar('}');
		}
		printf("]}");
		return;
	}
	ternctl_format_time(env->arrival, when, sizeof when);
	printf("%s%s%c %10ju  %s  %s\n", l->count > 1 ? "\n" : "", env->id,
	    held ? '!' : ' ', (uintmax_t)env->size, when,
	    env->sender == NULL || *env->sender == '\0' ? "<>" : env->sender);
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (r->state != ENVELOPE_RCPT_PENDING)
			continue;
		if (r->error != NULL && *r->error != '\0')
			printf("    %s (%s)\n", r->addr, r->error);
		else
			printf("    %s\n", r->addr);
	}
}

/* What a scan of the queue calls per message (queue_list's type). */
typedef void	(*ternctl_msg_cb)(const struct envelope *, int, void *);

/* A listing from the daemon: each message's envelope text, gathered. */
struct ternctl_remote {
	ternctl_msg_cb		 cb;
	void			*arg;
	char			 id[ENVELOPE_ID_SIZE];
	int			 held;
	int			 active;	/* a message is being read */
	int			 bad;		/* one did not parse */
	struct util_buf		 text;
};

/* The message gathered so far, listed as if read from the spool. */
static void
ternctl_remote_end(struct ternctl_remote *r)
{
	struct envelope	 env;
	char		*cause;

	if (!r->active)
		return;
	r->active = 0;
	envelope_init(&env);
	if (envelope_parse(&env, r->text.data != NULL ? r->text.data : "",
	    r->text.len, &cause) == -1) {
		fprintf(stderr, "ternctl: %s: %s\n", r->id, cause);
		free(cause);
		r->bad = 1;
	} else
		r->cb(&env, r->held, r->arg);
	envelope_clear(&env);
	r->text.len = 0;
}

/* "envelope ID HELD" starts a message; the lines after are its text. */
static void
ternctl_remote_cb(const char *text, void *arg)
{
	struct ternctl_remote	*r = arg;
	size_t			 len = strlen(CTL_LIST_ENVELOPE);
	const char		*p;

	if (strncmp(text, CTL_LIST_ENVELOPE " ", len + 1) == 0) {
		ternctl_remote_end(r);
		p = text + len + 1;
		len = strcspn(p, " ");
		if (len >= sizeof r->id)
			len = sizeof r->id - 1;
		memcpy(r->id, p, len);
		r->id[len] = '\0';
		r->held = p[len] == ' ' && strcmp(p + len + 1, "1") == 0;
		r->active = 1;
		return;
	}
	if (!r->active)
		return;
	util_buf_adds(&r->text, text);
	util_buf_add(&r->text, "\n", 1);
}

/*
 * Every message of the queue, to cb: the spool read directly when it
 * can be, as root or the daemon's user; otherwise, for every other user,
 * the listing the daemon gives over its control socket (queue_list in
 * tern.ini(5)).  A status; an error has been said.
 */
static int
ternctl_scan(ternctl_msg_cb cb, void *arg)
{
	struct ternctl_remote	 r;
	char			*cause = NULL;
	int			 rc = TERNCTL_OK, error;

	if (!ternctl.spool_open) {
		if (queue_open_readonly(ternctl.conf->spool, &cause) == -1) {
			error = errno;
			if (error != EACCES && error != EPERM) {
				fprintf(stderr, "ternctl: %s\n", cause);
				free(cause);
				return TERNCTL_ERROR;
			}
			free(cause);
			memset(&r, 0, sizeof r);
			r.cb = cb;
			r.arg = arg;
			rc = ternctl_request(CTL_VERB_QUEUE, NULL, 0,
			    ternctl_remote_cb, &r);
			ternctl_remote_end(&r);
			free(r.text.data);
			if (rc == TERNCTL_OK && r.bad)
				rc = TERNCTL_ERROR;
			return rc;
		}
		ternctl.spool_open = 1;
	}
	if (queue_list(cb, arg, &cause) == -1) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return TERNCTL_ERROR;
	}
	return TERNCTL_OK;
}

/*
 * The queue name Postfix would give a message: hold, deferred once an
 * attempt has failed, else active (arrived, or being attempted).
 */
static const char *
ternctl_queue_name(const struct envelope *env, int held)
{
	if (held)
		return "hold";
	return env->tries > 0 ? "deferred" : "active";
}

/*
 * "queue --format postqueue": one JSON object per line with the members
 * of postqueue -j (postqueue(1), "JSON OBJECT FORMAT"), so that tools
 * written for Postfix's queue read tern's.  Only the recipients still to
 * be delivered are listed, as postqueue lists them.
 */
static void
ternctl_postqueue_cb(const struct envelope *env, int held, void *arg)
{
	const struct envelope_rcpt	*r;
	size_t				 i, n = 0;

	printf("{\"queue_name\": \"%s\", \"queue_id\": ",
	    ternctl_queue_name(env, held));
	ternctl_json_str(env->id);
	printf(", \"arrival_time\": %lld, \"message_size\": %ju, "
	    "\"forced_expire\": false, \"sender\": ", (long long)env->arrival,
	    (uintmax_t)env->size);
	/* The null sender as postqueue -j (showq) names it. */
	ternctl_json_str(env->sender != NULL && *env->sender != '\0' ?
	    env->sender : "MAILER-DAEMON");
	printf(", \"recipients\": [");
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (r->state != ENVELOPE_RCPT_PENDING)
			continue;
		printf("%s{\"address\": ", n++ > 0 ? ", " : "");
		ternctl_json_str(r->addr);
		if (r->error != NULL && *r->error != '\0') {
			printf(", \"delay_reason\": ");
			ternctl_json_str(r->error);
		}
		putchar('}');
	}
	printf("]}\n");
}

/* "queue": as mailq shows it, or as JSON. */
static int
ternctl_queue(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_list	 l;
	int			 rc;

	if (a->format != NULL) {
		if (strcmp(a->format, "postqueue") != 0) {
			fprintf(stderr, "ternctl: queue: --format %s: unknown "
			    "format (postqueue is known)\n", a->format);
			return TERNCTL_USAGE;
		}
		if (a->opts & TERNCTL_OPT_JSON) {
			fprintf(stderr, "ternctl: queue: --json and --format "
			    "exclude each other\n");
			return TERNCTL_USAGE;
		}
		return ternctl_scan(ternctl_postqueue_cb, NULL);
	}
	memset(&l, 0, sizeof l);
	l.json = (a->opts & TERNCTL_OPT_JSON) != 0;
	if (l.json)
		putchar('[');
	rc = ternctl_scan(ternctl_queue_cb, &l);
	if (rc != TERNCTL_OK) {
		if (l.json)
			printf("]\n");
		return rc;
	}
	if (l.json)
		printf("%s]\n", l.count > 0 ? "\n" : "");
	else if (l.count == 0)
		printf("Mail queue is empty\n");
	else
		printf("\n-- %ju KiB in %zu request%s.\n",
		    (uintmax_t)((l.size + 1023) / 1024), l.count,
		    l.count == 1 ? "" : "s");
	return TERNCTL_OK;
}

/*
 * "shape": the queue by destination domain and age, as Postfix's qshape
 * prints it: a column per age bucket, in minutes since arrival (the
 * bucket "10" holds what is at least 5 and under 10 minutes old), the
 * total first.  A message counts once in each domain it still has a
 * recipient at; TOTAL counts each message once.
 */
static const unsigned ternctl_shape_buckets[] = {
	5, 10, 20, 40, 80, 160, 320, 640, 1280
};
#define TERNCTL_SHAPE_COLS	(nitems(ternctl_shape_buckets) + 1)

struct ternctl_shape_row {
	char		*domain;
	uint64_t	 total;
	uint64_t	 counts[TERNCTL_SHAPE_COLS];
};

struct ternctl_shape {
	int			  queues;	/* bits: ternctl_shape_names */
	time_t			  now;
	struct ternctl_shape_row  all;
	struct ternctl_shape_row *rows;
	size_t			  n;
};

static const char *const ternctl_shape_names[] = {
	"active", "deferred", "hold"
};

static void
ternctl_shape_count(struct ternctl_shape_row *row, size_t col)
{
	row->total++;
	row->counts[col]++;
}

static void
ternctl_shape_cb(const struct envelope *env, int held, void *arg)
{
	struct ternctl_shape	*sh = arg;
	const char		*name = ternctl_queue_name(env, held), *at;
	char			**seen;
	size_t			  i, j, k, col, nseen = 0;
	uint64_t		  age;

	for (i = 0; i < nitems(ternctl_shape_names); i++) {
		if (strcmp(name, ternctl_shape_names[i]) == 0)
			break;
	}
	if (i == nitems(ternctl_shape_names) || !(sh->queues & (1 << i)))
		return;
	age = env->arrival < sh->now ? (uint64_t)(sh->now - env->arrival) :
	    0;
	for (col = 0; col < nitems(ternctl_shape_buckets); col++) {
		if (age < (uint64_t)ternctl_shape_buckets[col] * 60)
			break;
	}
	ternctl_shape_count(&sh->all, col);
	seen = xcalloc(env->nrcpts + 1, sizeof *seen);
	for (i = 0; i < env->nrcpts; i++) {
		if (env->rcpts[i].state != ENVELOPE_RCPT_PENDING)
			continue;
		at = strrchr(env->rcpts[i].addr, '@');
		at = at != NULL ? at + 1 : "";
		for (k = 0; k < nseen; k++) {
			if (strcasecmp(seen[k], at) == 0)
				break;
		}
		if (k < nseen)
			continue;
		seen[nseen++] = (char *)at;
		for (j = 0; j < sh->n; j++) {
			if (strcasecmp(sh->rows[j].domain, at) == 0)
				break;
		}
		if (j == sh->n) {
			sh->rows = xreallocarray(sh->rows, sh->n + 1,
			    sizeof *sh->rows);
			memset(&sh->rows[j], 0, sizeof sh->rows[j]);
			sh->rows[j].domain = xstrdup(at);
			util_lowercase(sh->rows[j].domain);
			sh->n++;
		}
		ternctl_shape_count(&sh->rows[j], col);
	}
	free(seen);
}

/* Most messages first, then by name. */
static int
ternctl_shape_cmp(const void *a, const void *b)
{
	const struct ternctl_shape_row	*x = a, *y = b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

static void
ternctl_shape_json_row(const struct ternctl_shape_row *row)
{
	size_t	i;

	printf("{\"domain\": ");
	ternctl_json_str(row->domain);
	printf(", \"total\": %ju, \"buckets\": [", (uintmax_t)row->total);
	for (i = 0; i < TERNCTL_SHAPE_COLS; i++)
		printf("%s%ju", i > 0 ? ", " : "", (uintmax_t)row->counts[i]);
	printf("]}");
}

static void
ternctl_shape_text_row(const struct ternctl_shape_row *row, int width)
{
	size_t	i;

	printf("%*s %5ju", width, row->domain, (uintmax_t)row->total);
	for (i = 0; i < TERNCTL_SHAPE_COLS; i++)
		printf(" %5ju", (uintmax_t)row->counts[i]);
	putchar('\n');
}

static int
ternctl_shape(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_shape	 sh;
	size_t			 i, j;
	int			 rc, width = 5, json;
	char			 head[16];

	json = (a->opts & TERNCTL_OPT_JSON) != 0;
	memset(&sh, 0, sizeof sh);
	for (i = 0; i < (size_t)a->nwords; i++) {
		for (j = 0; j < nitems(ternctl_shape_names); j++) {
			if (strcmp(a->words[i], ternctl_shape_names[j]) == 0)
				break;
		}
		if (j == nitems(ternctl_shape_names)) {
			fprintf(stderr, "ternctl: shape: %s: not a queue "
			    "(active, deferred or hold)\n", a->words[i]);
			return ternctl_verb_usage(v);
		}
		sh.queues |= 1 << j;
	}
	if (sh.queues == 0)
		sh.queues = 1 << 0 | 1 << 1;	/* active and deferred */
	sh.now = time(NULL);
	sh.all.domain = "TOTAL";
	if ((rc = ternctl_scan(ternctl_shape_cb, &sh)) != TERNCTL_OK)
		goto out;
	if (sh.n > 1)
		qsort(sh.rows, sh.n, sizeof *sh.rows, ternctl_shape_cmp);
	if (json) {
		printf("{\"queues\": [");
		for (i = j = 0; i < nitems(ternctl_shape_names); i++) {
			if (sh.queues & (1 << i))
				printf("%s\"%s\"", j++ > 0 ? ", " : "",
				    ternctl_shape_names[i]);
		}
		printf("], \"buckets\": [");
		for (i = 0; i < nitems(ternctl_shape_buckets); i++)
			printf("\"%u\", ", ternctl_shape_buckets[i]);
		printf("\"%u+\"],\n \"total\": ", ternctl_shape_buckets[
		    nitems(ternctl_shape_buckets) - 1]);
		ternctl_shape_json_row(&sh.all);
		printf(",\n \"domains\": [");
		for (i = 0; i < sh.n; i++) {
			printf("%s\n  ", i > 0 ? "," : "");
			ternctl_shape_json_row(&sh.rows[i]);
		}
		printf("%s]}\n", sh.n > 0 ? "\n " : "");
		goto out;
	}
	for (i = 0; i < sh.n; i++) {
		if ((int)strlen(sh.rows[i].domain) > width)
			width = (int)strlen(sh.rows[i].domain);
	}
	printf("%*s %5s", width, "", "T");
	for (i = 0; i < nitems(ternctl_shape_buckets); i++)
		printf(" %5u", ternctl_shape_buckets[i]);
	util_snprintf(head, sizeof head, "%u+",
	    ternctl_shape_buckets[nitems(ternctl_shape_buckets) - 1]);
	printf(" %5s\n", head);
	ternctl_shape_text_row(&sh.all, width);
	for (i = 0; i < sh.n; i++)
		ternctl_shape_text_row(&sh.rows[i], width);
out:
	for (i = 0; i < sh.n; i++)
		free(sh.rows[i].domain);
	free(sh.rows);
	return rc;
}

/* Load one message's envelope; -1 after saying why. */
static int
ternctl_load(const char *id, struct envelope *env)
{
	char	*cause;

	envelope_init(env);
	if (!queue_is_id(id)) {
		fprintf(stderr, "ternctl: %s: not a queue id\n", id);
		return -1;
	}
	if (queue_env_load(id, env, &cause) == -1) {
		if (errno == ENOENT)
			fprintf(stderr, "ternctl: %s: no such message\n", id);
		else
			fprintf(stderr, "ternctl: %s: %s\n", id, cause);
		free(cause);
		envelope_clear(env);
		return -1;
	}
	return 0;
}

/* Content for a terminal: CRLF line ends become newlines. */
static void
ternctl_put_text(const char *buf, size_t len, int *cr)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (*cr && buf[i] != '\n')
			putchar('\r');
		*cr = buf[i] == '\r';
		if (!*cr)
			putchar(buf[i]);
	}
}

/* The message was finished while it was read: nothing more of it. */
static int
ternctl_gone(const char *id)
{
	fflush(stdout);
	fprintf(stderr, "ternctl: %s: removed while being read\n", id);
	return TERNCTL_ERROR;
}

/* "show": the envelope as stored, then the header or whole message. */
static int
ternctl_show(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct envelope	 env;
	const char	*id = a->words[0];
	char		*text, buf[16384];
	size_t		 len;
	ssize_t		 n;
	int		 fd, cr = 0, rc = TERNCTL_OK;

	if (ternctl_open_spool() == -1 || ternctl_load(id, &env) == -1)
		return TERNCTL_ERROR;
	if (envelope_write(&env, &text, &len) == -1) {
		fprintf(stderr, "ternctl: %s: cannot print the envelope\n",
		    id);
		envelope_clear(&env);
		return TERNCTL_ERROR;
	}
	fwrite(text, 1, len, stdout);
	free(text);
	envelope_clear(&env);
	putchar('\n');

	/*
	 * ternd may finish the message meanwhile and reuse its file for
	 * another: nothing read is printed before it is known to be this
	 * message's.
	 */
	if ((fd = queue_msg_open(id)) == -1) {
		fprintf(stderr, "ternctl: %s: cannot read the content: %s\n",
		    id, strerror(errno));
		return TERNCTL_ERROR;
	}
	if ((a->opts & TERNCTL_OPT_BODY) == 0) {
		if (queue_fd_headers(fd, &text, &len) == -1) {
			fprintf(stderr, "ternctl: %s: cannot read the "
			    "content: %s\n", id, strerror(errno));
			close(fd);
			return TERNCTL_ERROR;
		}
		if (queue_msg_still(id, fd))
			ternctl_put_text(text, len, &cr);
		else
			rc = ternctl_gone(id);
		free(text);
	} else {
		while ((n = read(fd, buf, sizeof buf)) != 0) {
			if (n == -1) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "ternctl: %s: cannot read the "
				    "content: %s\n", id, strerror(errno));
				rc = TERNCTL_ERROR;
				break;
			}
			if (!queue_msg_still(id, fd)) {
				rc = ternctl_gone(id);
				break;
			}
			ternctl_put_text(buf, (size_t)n, &cr);
		}
	}
	close(fd);
	if (cr)
		putchar('\r');
	return rc;
}

/* The message "why" looks at, found by its id in a scan of the spool. */
struct ternctl_why {
	const char	*id;
	int		 found;
	time_t		 now;
};

static void
ternctl_why_cb(const struct envelope *env, int held, void *arg)
{
	struct ternctl_why		*w = arg;
	const struct envelope_rcpt	*r;
	const struct envelope_attempt	*at;
	char				 when[TERNCTL_TIME_SIZE];
	size_t				 i, j, n;

	if (strcmp(env->id, w->id) != 0)
		return;
	w->found = 1;
	ternctl_format_time(env->arrival, when, sizeof when);
	printf("%s: from %s, arrived %s, %u tr%s%s\n", env->id,
	    env->sender == NULL || *env->sender == '\0' ? "<>" : env->sender,
	    when, env->tries, env->tries == 1 ? "y" : "ies",
	    held ? ", held" : "");
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		printf("%s: %s", r->addr, envelope_rcpt_state_str(r->state));
		if (r->error != NULL && *r->error != '\0')
			printf(" (%s)", r->error);
		putchar('\n');
		for (j = n = 0; j < env->nattempts; j++) {
			at = &env->attempts[j];
			if (at->rcpt != i)
				continue;
			n++;
			ternctl_format_time(at->when, when, sizeof when);
			printf("  %s", when);
			if (at->relay != NULL)
				printf(" %s", at->relay);
			if (at->tls >= 0)
				printf(" %s", at->tls ? "TLS" : "plain");
			if (at->status[0] != '\0')
				printf(" %s", at->status);
			if (at->text != NULL)
				printf(" %s", at->text);
			putchar('\n');
		}
		if (r->state != ENVELOPE_RCPT_PENDING)
			continue;
		if (n == 0)
			printf("  no attempt yet\n");
		if (held)
			printf("  held: no attempt until released\n");
		else if (env->next_attempt <= w->now)
			printf("  next attempt: now\n");
		else {
			ternctl_format_time(env->next_attempt, when,
			    sizeof when);
			printf("  next attempt: %s\n", when);
		}
	}
}

/*
 * "why": each recipient's state and the attempts kept for it.  The spool
 * is scanned for the id because only a scan tells a held message apart.
 */
static int
ternctl_why(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_why	 w;
	char			*cause;

	if (ternctl_open_spool() == -1)
		return TERNCTL_ERROR;
	memset(&w, 0, sizeof w);
	w.id = a->words[0];
	w.now = time(NULL);
	if (!queue_is_id(w.id)) {
		fprintf(stderr, "ternctl: %s: not a queue id\n", w.id);
		return TERNCTL_ERROR;
	}
	if (queue_list(ternctl_why_cb, &w, &cause) == -1) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return TERNCTL_ERROR;
	}
	if (!w.found) {
		fprintf(stderr, "ternctl: %s: no such message\n", w.id);
		return TERNCTL_ERROR;
	}
	return TERNCTL_OK;
}

/* An address as written on the command line: "<a@b>" is "a@b". */
static int
ternctl_addr_eq(const char *addr, const char *arg)
{
	size_t	len = strlen(arg);

	if (len >= 2 && arg[0] == '<' && arg[len - 1] == '>') {
		arg++;
		len -= 2;
	}
	if (addr == NULL)
		addr = "";
	return strlen(addr) == len && strncasecmp(addr, arg, len) == 0;
}

/* The domain of addr is domain; "@domain": or one of its subdomains. */
static int
ternctl_domain_eq(const char *addr, const char *domain)
{
	const char	*at;
	size_t		 len, dlen;
	int		 subdomains = 0;

	if (addr == NULL || (at = strrchr(addr, '@')) == NULL)
		return 0;
	at++;
	if (*domain == '@') {
		domain++;
		subdomains = 1;
	}
	if (strcasecmp(at, domain) == 0)
		return 1;
	len = strlen(at);
	dlen = strlen(domain);
	return subdomains && dlen > 0 && len > dlen + 1 &&
	    at[len - dlen - 1] == '.' &&
	    strcasecmp(at + len - dlen, domain) == 0;
}

/* The last error of a recipient against a glob, case ignored. */
static int
ternctl_error_matches(const struct envelope_rcpt *r, const char *pattern)
{
	if (r->error != NULL &&
	    fnmatch(pattern, r->error, FNM_CASEFOLD) == 0)
		return 1;
	return r->status[0] != '\0' &&
	    fnmatch(pattern, r->status, FNM_CASEFOLD) == 0;
}

/*
 * Whether a message passes every filter given.  The recipient filters
 * (--domain, --to, --error) must all hold for one pending recipient.
 */
static int
ternctl_matches(const struct ternctl_args *a, const struct envelope *env,
    time_t now)
{
	const struct envelope_rcpt	*r;
	size_t				 i;

	if (a->from != NULL && !ternctl_addr_eq(env->sender, a->from))
		return 0;
	if ((a->opts & TERNCTL_OPT_OLDER) &&
	    (env->arrival > now || (uint64_t)(now - env->arrival) <
	    a->older / 1000))
		return 0;
	if (a->domain == NULL && a->to == NULL && a->error == NULL)
		return 1;
	for (i = 0; i < env->nrcpts; i++) {
		r = &env->rcpts[i];
		if (r->state != ENVELOPE_RCPT_PENDING)
			continue;
		if (a->domain != NULL && !ternctl_domain_eq(r->addr, a->domain))
			continue;
		if (a->to != NULL && !ternctl_addr_eq(r->addr, a->to))
			continue;
		if (a->error != NULL && !ternctl_error_matches(r, a->error))
			continue;
		return 1;
	}
	return 0;
}

/* The ids an acting verb is about. */
struct ternctl_ids {
	char		**ids;
	size_t		  n;
	size_t		  alloc;
};

static void
ternctl_ids_add(struct ternctl_ids *l, const char *id)
{
	if (l->n == l->alloc) {
		l->alloc = l->alloc == 0 ? 64 : l->alloc * 2;
		l->ids = xreallocarray(l->ids, l->alloc, sizeof *l->ids);
	}
	l->ids[l->n++] = xstrdup(id);
}

static void
ternctl_ids_free(struct ternctl_ids *l)
{
	size_t	i;

	for (i = 0; i < l->n; i++)
		free(l->ids[i]);
	free(l->ids);
}

static int
ternctl_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort the ids (arrival order) and drop those given twice. */
static void
ternctl_ids_uniq(struct ternctl_ids *l)
{
	size_t	i, j;

	if (l->n < 2)
		return;
	qsort(l->ids, l->n, sizeof *l->ids, ternctl_id_cmp);
	for (i = j = 0; i < l->n; i++) {
		if (j > 0 && strcmp(l->ids[i], l->ids[j - 1]) == 0)
			free(l->ids[i]);
		else
			l->ids[j++] = l->ids[i];
	}
	l->n = j;
}

/* Picking the messages of --all, the filters or a dry run's ids. */
struct ternctl_pick {
	const struct ternctl_args	*a;
	enum ternctl_select		 select;
	time_t				 now;
	struct ternctl_ids		*ids;
	const struct ternctl_ids	*only;	/* NULL: every message */
};

static void
ternctl_pick_cb(const struct envelope *env, int held, void *arg)
{
	struct ternctl_pick	*p = arg;
	const char		*id = env->id;

	if (p->only != NULL) {
		if (p->only->n > 0 && bsearch(&id, p->only->ids, p->only->n,
		    sizeof *p->only->ids, ternctl_id_cmp) != NULL)
			ternctl_ids_add(p->ids, env->id);
		return;
	}
	if ((p->select == TERNCTL_SELECT_QUEUED && held) ||
	    (p->select == TERNCTL_SELECT_HELD && !held))
		return;
	if (ternctl_matches(p->a, env, p->now))
		ternctl_ids_add(p->ids, env->id);
}

/*
 * The spool scan behind --all, the filters and a dry run: into out, the
 * matching messages, or with only, those of its ids that exist.
 */
static int
ternctl_pick(const struct ternctl_verb *v, const struct ternctl_args *a,
    const struct ternctl_ids *only, struct ternctl_ids *out)
{
	struct ternctl_pick	 p;
	char			*cause;

	if (ternctl_open_spool() == -1)
		return -1;
	memset(&p, 0, sizeof p);
	p.a = a;
	p.select = v->select;
	p.now = time(NULL);
	p.ids = out;
	p.only = only;
	if (queue_list(ternctl_pick_cb, &p, &cause) == -1) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return -1;
	}
	return 0;
}

/*
 * The control socket: one connection per request, its descriptor made
 * non-blocking so that every wait has a deadline.
 */
static int
ternctl_wait(int fd, short events, int ms)
{
	struct pollfd	pfd;
	int		rc;

	pfd.fd = fd;
	pfd.events = events;
	do
		rc = poll(&pfd, 1, ms);
	while (rc == -1 && errno == EINTR);
	if (rc == 0)
		errno = ETIMEDOUT;
	return rc > 0 ? 0 : -1;
}

/* Say why the daemon cannot be reached; the exit status. */
static int
ternctl_connect_error(const char *path, int error)
{
	switch (error) {
	case ENOENT:
	case ENOTDIR:
		fprintf(stderr, "ternctl: ternd is not running (no control "
		    "socket at %s)\n", path);
		return TERNCTL_NO_DAEMON;
	case ECONNREFUSED:
		fprintf(stderr, "ternctl: ternd is not running (nothing "
		    "listens on the control socket %s)\n", path);
		return TERNCTL_NO_DAEMON;
	case EACCES:
	case EPERM:
		fprintf(stderr, "ternctl: permission denied on the control "
		    "socket %s\n", path);
		return TERNCTL_DENIED;
	default:
		fprintf(stderr, "ternctl: cannot connect to the control "
		    "socket %s: %s\n", path, strerror(error));
		return TERNCTL_ERROR;
	}
}

static int
ternctl_connect(const char *path, int *fdp)
{
	struct sockaddr_un	sun;
	struct timeval		tv;
	int			fd, error;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, path, sizeof sun.sun_path) >=
	    sizeof sun.sun_path) {
		fprintf(stderr, "ternctl: control socket path too long: %s\n",
		    path);
		return TERNCTL_ERROR;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "ternctl: socket: %s\n", strerror(errno));
		return TERNCTL_ERROR;
	}
	/*
	 * A Unix socket with a full backlog fails a non-blocking connect
	 * at once: block instead, for the send timeout at most, until the
	 * daemon accepts.
	 */
	tv.tv_sec = TERNCTL_CONNECT_TIMEOUT / 1000;
	tv.tv_usec = (TERNCTL_CONNECT_TIMEOUT % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		error = errno == EAGAIN || errno == EINPROGRESS ? ETIMEDOUT :
		    errno;
		close(fd);
		return ternctl_connect_error(path, error);
	}
	*fdp = fd;
	return TERNCTL_OK;
}

/* One reply line; TERNCTL_OK, -1 for more, or an exit status. */
static int
ternctl_reply_line(const char *path, char *line, ternctl_data_cb cb,
    void *arg)
{
	char	 esc[LOG_ESCAPE_SIZE];
	size_t	 dlen = strlen(CTL_REPLY_DATA);
	size_t	 elen = strlen(CTL_REPLY_ERROR);

	if (strncmp(line, CTL_REPLY_DATA, dlen) == 0) {
		if (cb != NULL)
			cb(line + dlen, arg);
		return -1;
	}
	if (strcmp(line, CTL_REPLY_OK) == 0)
		return TERNCTL_OK;
	if (strncmp(line, CTL_REPLY_ERROR, elen) == 0) {
		line += elen;
		/* The daemon's own refusal of who is asking. */
		if (strncasecmp(line, "permission denied", 17) == 0) {
			fprintf(stderr, "ternctl: ternd: permission denied on "
			    "the control socket %s\n", path);
			return TERNCTL_DENIED;
		}
		fprintf(stderr, "ternctl: ternd: %s\n",
		    log_escape(esc, sizeof esc, line, strlen(line)));
		return TERNCTL_ERROR;
	}
	fprintf(stderr, "ternctl: unexpected answer on %s: %s\n", path,
	    log_escape(esc, sizeof esc, line, strlen(line)));
	return TERNCTL_ERROR;
}

/*
 * Send one request, "TERNCTL1 verb args...", and read its reply: each
 * data line to cb, then "ok" (TERNCTL_OK) or "error" (said on stderr).
 * Returns the exit status.
 */
static int
ternctl_request(const char *verb, char *const *args, size_t nargs,
    ternctl_data_cb cb, void *arg)
{
	const char	*path = ternctl.conf->control_socket;
	struct util_buf	 req, in;
	char		*nl;
	size_t		 i, off;
	ssize_t		 n;
	int		 fd = -1, rc;

	memset(&req, 0, sizeof req);
	util_buf_adds(&req, CTL_PROTO_VERSION " ");
	util_buf_adds(&req, verb);
	for (i = 0; i < nargs; i++) {
		util_buf_add(&req, " ", 1);
		util_buf_adds(&req, args[i]);
	}
	util_buf_add(&req, "\n", 1);
	if (req.len > CTL_LINE_MAX) {
		fprintf(stderr, "ternctl: request longer than %d octets\n",
		    CTL_LINE_MAX);
		free(req.data);
		return TERNCTL_ERROR;
	}
	if ((rc = ternctl_connect(path, &fd)) != TERNCTL_OK) {
		free(req.data);
		return rc;
	}
	for (off = 0; off < req.len; off += (size_t)n) {
		n = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
		if (n != -1)
			continue;
		if (errno == EINTR || (errno == EAGAIN && ternctl_wait(fd,
		    POLLOUT, TERNCTL_REPLY_TIMEOUT) == 0)) {
			n = 0;
			continue;
		}
		fprintf(stderr, "ternctl: %s: %s\n", path, strerror(errno));
		free(req.data);
		close(fd);
		return TERNCTL_ERROR;
	}
	free(req.data);

	memset(&in, 0, sizeof in);
	rc = -1;
	while (rc == -1) {
		if ((nl = in.len > 0 ? memchr(in.data, '\n', in.len) :
		    NULL) != NULL) {
			*nl = '\0';
			if (strlen(in.data) != (size_t)(nl - in.data)) {
				fprintf(stderr, "ternctl: NUL in an answer on "
				    "%s\n", path);
				rc = TERNCTL_ERROR;
				break;
			}
			rc = ternctl_reply_line(path, in.data, cb, arg);
			off = (size_t)(nl - in.data) + 1;
			memmove(in.data, nl + 1, in.len - off);
			in.len -= off;
			continue;
		}
		if (in.len > CTL_LINE_MAX) {
			fprintf(stderr, "ternctl: answer line too long on "
			    "%s\n", path);
			rc = TERNCTL_ERROR;
			break;
		}
		if (in.size - in.len < 4096) {
			in.size = in.size == 0 ? 8192 : in.size * 2;
			in.data = xreallocarray(in.data, 1, in.size);
		}
		n = read(fd, in.data + in.len, in.size - in.len - 1);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (ternctl_wait(fd, POLLIN,
			    TERNCTL_REPLY_TIMEOUT) == 0)
				continue;
			fprintf(stderr, "ternctl: no answer from ternd on %s "
			    "within %d seconds\n", path,
			    TERNCTL_REPLY_TIMEOUT / 1000);
			rc = TERNCTL_ERROR;
		} else if (n == -1) {
			fprintf(stderr, "ternctl: %s: %s\n", path,
			    strerror(errno));
			rc = TERNCTL_ERROR;
		} else if (n == 0) {
			fprintf(stderr, "ternctl: ternd closed %s without a "
			    "complete answer\n", path);
			rc = TERNCTL_ERROR;
		} else
			in.len += (size_t)n;
	}
	free(in.data);
	close(fd);
	return rc;
}

/*
 * Before looking through the spool for a verb that needs the daemon:
 * no socket at all means no daemon, said at once.
 */
static int
ternctl_daemon_present(void)
{
	struct stat	st;

	if (stat(ternctl.conf->control_socket, &st) == -1 &&
	    (errno == ENOENT || errno == ENOTDIR))
		return ternctl_connect_error(ternctl.conf->control_socket,
		    errno);
	return TERNCTL_OK;
}

/*
 * An id verb's data line: "ID" acted on, "ID unknown" not found, "ID
 * loading" not yet (ternd is still reading its spool after a start).
 */
static void
ternctl_act_cb(const char *text, void *arg)
{
	size_t	len = strlen(text), ulen = strlen(CTL_UNKNOWN);
	size_t	llen = strlen(CTL_LOADING);

	if (len > ulen && strcmp(text + len - ulen, CTL_UNKNOWN) == 0) {
		fprintf(stderr, "ternctl: %.*s: no such message\n",
		    (int)(len - ulen), text);
		ternctl.status = TERNCTL_ERROR;
		return;
	}
	if (len > llen && strcmp(text + len - llen, CTL_LOADING) == 0) {
		fprintf(stderr, "ternctl: %.*s: ternd is still reading its "
		    "queue after starting; try again shortly\n",
		    (int)(len - llen), text);
		ternctl.status = TERNCTL_ERROR;
		return;
	}
	printf("%s\n", text);
}

/* flush [DOMAIN]'s answer: "flushed=N". */
static void
ternctl_flush_cb(const char *text, void *arg)
{
	const char	*n;

	if (strncmp(text, "flushed=", 8) == 0) {
		n = text + 8;
		printf("%s message%s flushed\n", n, strcmp(n, "1") == 0 ?
		    "" : "s");
	} else
		printf("%s\n", text);
}

/*
 * Send the ids in as few requests as fit in a request line each, after
 * the word first when there is one (handover's target).
 */
static int
ternctl_send_ids(const char *verb, const char *first_word,
    struct ternctl_ids *l)
{
	size_t	  first, i, len, k;
	char	**words;
	int	  rc;

	words = xcalloc(l->n + 1, sizeof *words);
	for (first = 0; first < l->n; first = i) {
		len = strlen(CTL_PROTO_VERSION) + 1 + strlen(verb) + 1;
		if (first_word != NULL)
			len += strlen(first_word) + 1;
		for (i = first; i < l->n; i++) {
			if (len + 1 + strlen(l->ids[i]) > CTL_LINE_MAX)
				break;
			len += 1 + strlen(l->ids[i]);
		}
		k = 0;
		if (first_word != NULL)
			words[k++] = (char *)first_word;
		memcpy(words + k, l->ids + first, (i - first) * sizeof *words);
		rc = ternctl_request(verb, words, k + i - first,
		    ternctl_act_cb, NULL);
		fflush(stdout);
		if (rc != TERNCTL_OK) {
			free(words);
			return rc;
		}
	}
	free(words);
	return TERNCTL_OK;
}

/*
 * flush, delete, hold, release, bounce.  The messages are named by id,
 * or picked on the spool (--all, filters); the daemon is then sent the
 * ids, so that what it acts on is exactly what was listed.
 */
static int
ternctl_act(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_ids	 ids, named;
	const char		*domain = NULL, *handover = NULL;
	int			 i, rc, select, dry;
	char			*arg[1];

	/*
	 * flush --to HOST:PORT hands the messages over to another MTA; a
	 * --to with an "@" is the recipient filter.
	 */
	if (strcmp(v->name, "flush") == 0 && a->to != NULL &&
	    strchr(a->to, '@') == NULL) {
		if (!control_is_target(a->to)) {
			fprintf(stderr, "ternctl: flush: --to %s: neither an "
			    "address (a recipient) nor host:port (an MTA to "
			    "hand over to)\n", a->to);
			return ternctl_verb_usage(v);
		}
		handover = a->to;
		a->to = NULL;
		a->opts &= ~TERNCTL_OPT_TO;
		if (!(a->opts & (TERNCTL_OPT_ALL | TERNCTL_OPT_FILTERS)) &&
		    a->nwords == 0)
			a->opts |= TERNCTL_OPT_ALL;
	}
	select = a->opts & (TERNCTL_OPT_ALL | TERNCTL_OPT_FILTERS);
	dry = (a->opts & TERNCTL_OPT_DRY_RUN) != 0;
	if ((a->opts & TERNCTL_OPT_ALL) && (a->opts & TERNCTL_OPT_FILTERS)) {
		fprintf(stderr, "ternctl: %s: --all and filters exclude each "
		    "other\n", v->name);
		return ternctl_verb_usage(v);
	}
	if (select && a->nwords > 0) {
		fprintf(stderr, "ternctl: %s: ids and --all or filters exclude "
		    "each other\n", v->name);
		return ternctl_verb_usage(v);
	}
	/* flush alone is every message, and one word not an id a domain. */
	if (strcmp(v->name, "flush") == 0 && !select && handover == NULL) {
		if (a->nwords == 1 && !queue_is_id(a->words[0]))
			domain = a->words[0];
		if (a->nwords == 0 || domain != NULL) {
			if (dry)
				select = TERNCTL_OPT_ALL;
			else {
				arg[0] = (char *)domain;
				return ternctl_request(CTL_VERB_FLUSH, arg,
				    domain != NULL ? 1 : 0, ternctl_flush_cb,
				    NULL);
			}
		}
	}
	if (!select && a->nwords == 0) {
		fprintf(stderr, "ternctl: %s: no id, no filter and no --all\n",
		    v->name);
		return ternctl_verb_usage(v);
	}
	/* A daemon that is not there is said before any spool scan. */
	if ((v->flags & TERNCTL_DAEMON) && !dry &&
	    (rc = ternctl_daemon_present()) != TERNCTL_OK)
		return rc;
	memset(&ids, 0, sizeof ids);
	memset(&named, 0, sizeof named);
	ternctl.status = TERNCTL_OK;
	for (i = 0; i < a->nwords; i++) {
		if (queue_is_id(a->words[i]))
			ternctl_ids_add(&named, a->words[i]);
		else {
			fprintf(stderr, "ternctl: %s: not a queue id\n",
			    a->words[i]);
			ternctl.status = TERNCTL_ERROR;
		}
	}
	ternctl_ids_uniq(&named);
	if (select) {
		if (domain != NULL)
			a->domain = domain;
		if (ternctl_pick(v, a, NULL, &ids) == -1) {
			rc = TERNCTL_ERROR;
			goto out;
		}
	} else if (dry) {
		if (ternctl_pick(v, a, &named, &ids) == -1) {
			rc = TERNCTL_ERROR;
			goto out;
		}
		ternctl_ids_uniq(&ids);
		/* Named and missing: what the daemon would call unknown. */
		for (i = 0; i < (int)named.n; i++) {
			if (ids.n == 0 || bsearch(&named.ids[i], ids.ids,
			    ids.n, sizeof *ids.ids, ternctl_id_cmp) == NULL) {
				fprintf(stderr, "ternctl: %s: no such "
				    "message\n", named.ids[i]);
				ternctl.status = TERNCTL_ERROR;
			}
		}
	} else {
		ids = named;
		memset(&named, 0, sizeof named);
	}
	ternctl_ids_uniq(&ids);

	rc = TERNCTL_OK;
	if (dry) {
		for (i = 0; i < (int)ids.n; i++)
			printf("%s\n", ids.ids[i]);
	} else if (ids.n > 0 && handover != NULL)
		rc = ternctl_send_ids(CTL_VERB_HANDOVER, handover, &ids);
	else if (ids.n > 0)
		rc = ternctl_send_ids(v->ctl_verb, NULL, &ids);
	if (rc == TERNCTL_OK)
		rc = ternctl.status;
out:
	ternctl_ids_free(&ids);
	ternctl_ids_free(&named);
	return rc;
}

/* stats' "key=value" lines, printed as they come or kept for JSON. */
struct ternctl_stats {
	char		**lines;	/* "key=value", as they came */
	size_t		  n;
};

static void
ternctl_stats_cb(const char *text, void *arg)
{
	struct ternctl_stats	*s = arg;

	if (strchr(text, '=') == NULL)
		return;
	s->lines = xreallocarray(s->lines, s->n + 1, sizeof *s->lines);
	s->lines[s->n++] = xstrdup(text);
}

/* Printed only once the daemon has said all: a failure prints nothing. */
static int
ternctl_stats(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_stats	 s;
	const char		*eq, *val;
	char			*key;
	size_t			 i;
	int			 rc, json = (a->opts & TERNCTL_OPT_JSON) != 0;

	memset(&s, 0, sizeof s);
	rc = ternctl_request(v->ctl_verb, NULL, 0, ternctl_stats_cb, &s);
	if (rc == TERNCTL_OK && json)
		putchar('{');
	for (i = 0; i < s.n; i++) {
		eq = strchr(s.lines[i], '=');
		val = eq + 1;
		if (rc == TERNCTL_OK && !json)
			printf("%.*s: %s\n", (int)(eq - s.lines[i]), s.lines[i],
			    val);
		else if (rc == TERNCTL_OK) {
			key = xstrndup(s.lines[i], (size_t)(eq - s.lines[i]));
			printf("%s\n  ", i > 0 ? "," : "");
			ternctl_json_str(key);
			printf(": ");
			if (*val != '\0' && strspn(val, "0123456789") ==
			    strlen(val))
				printf("%s", val);
			else
				ternctl_json_str(val);
			free(key);
		}
		free(s.lines[i]);
	}
	free(s.lines);
	if (rc == TERNCTL_OK && json)
		printf("%s}\n", s.n > 0 ? "\n" : "");
	return rc;
}

/*
 * "sessions": the SMTP sessions open now, one "key=value ..." line each
 * from the daemon (ctl_proto.h), as a table or JSON.  Keys it does not
 * know are left out of the table and kept in JSON as strings.
 */
static const char *const ternctl_session_keys[] = {
	"dir", "id", "peer", "state", "age", "in", "out", "tls"
};
static const char *const ternctl_session_heads[] = {
	"DIR", "ID", "PEER", "STATE", "AGE", "IN", "OUT", "TLS"
};

/* The value of key in a line of words, into buf; "-" when absent. */
static const char *
ternctl_word(const char *line, const char *key, char *buf, size_t size)
{
	const char	*p = line;
	size_t		 klen = strlen(key), len;

	while (*p != '\0') {
		len = strcspn(p, " ");
		if (len > klen && strncmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			len -= klen + 1;
			if (len >= size)
				len = size - 1;
			memcpy(buf, p + klen + 1, len);
			buf[len] = '\0';
			return buf;
		}
		p += len;
		p += strspn(p, " ");
	}
	return "-";
}

/*
 * Whether a key's value is a number in JSON: age, in and out only.  A
 * session id is a string even when all its characters are digits (it
 * may begin with a 0, which a JSON number may not).
 */
static int
ternctl_session_number(const char *key, size_t len)
{
	static const char *const numbers[] = { "age", "in", "out" };
	size_t			 i;

	for (i = 0; i < nitems(numbers); i++)
		if (strlen(numbers[i]) == len &&
		    strncmp(key, numbers[i], len) == 0)
			return 1;
	return 0;
}

static int
ternctl_sessions(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct ternctl_stats	 s;
	const char		*val, *p;
	char			 buf[256];
	size_t			 i, k, len, klen;
	int			 rc, json = (a->opts & TERNCTL_OPT_JSON) != 0;
	int			 widths[nitems(ternctl_session_keys)];

	memset(&s, 0, sizeof s);
	rc = ternctl_request(v->ctl_verb, NULL, 0, ternctl_stats_cb, &s);
	if (rc != TERNCTL_OK)
		goto out;
	if (json) {
		putchar('[');
		for (i = 0; i < s.n; i++) {
			printf("%s\n  {", i > 0 ? "," : "");
			for (p = s.lines[i], k = 0; *p != '\0'; k++) {
				klen = len = strcspn(p, "=");
				val = p + len + (p[len] == '=');
				printf("%s\"%.*s\": ", k > 0 ? ", " : "",
				    (int)len, p);
				len = strcspn(val, " ");
				util_snprintf(buf, sizeof buf, "%.*s",
				    (int)len, val);
				if (strcmp(buf, "-") == 0)
					fputs("null", stdout);
				else if (ternctl_session_number(p, klen) &&
				    strspn(buf, "0123456789") ==
				    strlen(buf) && *buf != '\0')
					fputs(buf, stdout);
				else
					ternctl_json_str(buf);
				p = val + len;
				p += strspn(p, " ");
			}
			putchar('}');
		}
		printf("%s]\n", s.n > 0 ? "\n" : "");
		goto out;
	}
	for (k = 0; k < nitems(ternctl_session_keys); k++)
		widths[k] = (int)strlen(ternctl_session_heads[k]);
	for (i = 0; i < s.n; i++) {
		for (k = 0; k < nitems(ternctl_session_keys); k++) {
			len = strlen(ternctl_word(s.lines[i],
			    ternctl_session_keys[k], buf, sizeof buf));
			if ((int)len > widths[k])
				widths[k] = (int)len;
		}
	}
	if (s.n == 0) {
		printf("No sessions\n");
		goto out;
	}
	for (k = 0; k < nitems(ternctl_session_keys); k++)
		printf("%-*s%s", widths[k], ternctl_session_heads[k],
		    k + 1 < nitems(ternctl_session_keys) ? "  " : "\n");
	for (i = 0; i < s.n; i++) {
		for (k = 0; k < nitems(ternctl_session_keys); k++)
			printf("%-*s%s", widths[k], ternctl_word(s.lines[i],
			    ternctl_session_keys[k], buf, sizeof buf),
			    k + 1 < nitems(ternctl_session_keys) ? "  " :
			    "\n");
	}
out:
	for (i = 0; i < s.n; i++)
		free(s.lines[i]);
	free(s.lines);
	return rc;
}

/* reload, stop, drain, undrain: no arguments, no output when all is well. */
static int
ternctl_simple(const struct ternctl_verb *v, struct ternctl_args *a)
{
	return ternctl_request(v->ctl_verb, NULL, 0, NULL, NULL);
}

/* What check and newaliases find, on standard error. */
static void
ternctl_error(const char *msg, void *arg)
{
	fprintf(stderr, "ternctl: %s\n", msg);
}

static void
ternctl_warning(const char *msg, void *arg)
{
	fprintf(stderr, "ternctl: warning: %s\n", msg);
}

/*
 * "check": the configuration, and every file it names read as ternd
 * would read it (confcheck.c), so that "ok" means the daemon starts.
 */
static int
ternctl_check(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct config	*conf;
	char		*cause;
	size_t		 n;

	if ((conf = ternctl_load_config(&cause)) == NULL) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return TERNCTL_ERROR;
	}
	n = confcheck_files(conf, ternctl_error, ternctl_warning, NULL);
	if (n == 0)
		printf("configuration ok: %s\n", ternctl.conf_file != NULL ?
		    ternctl.conf_file : "built-in configuration");
	config_free(conf);
	return n == 0 ? TERNCTL_OK : TERNCTL_ERROR;
}

/*
 * "newaliases": the aliases file (and the users file it goes with) read
 * as ternd reads it, errors and warnings said with their file and line;
 * then, if it loads, the daemon is told to reload.  A daemon that is not
 * running reads it when it starts.
 */
static int
ternctl_newaliases(const struct ternctl_verb *v, struct ternctl_args *a)
{
	struct users	*u;
	char		*cause;
	const char	*path = ternctl.conf->aliases;
	struct stat	 st;
	int		 rc;

	if (*path == '\0') {
		fprintf(stderr, "ternctl: no aliases file in the "
		    "configuration ([local] aliases): nothing to do\n");
		return TERNCTL_OK;
	}
	if ((u = confcheck_load_users(ternctl.conf, ternctl_warning, NULL,
	    &cause)) == NULL) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		return TERNCTL_ERROR;
	}
	users_free(u);
	if (stat(ternctl.conf->control_socket, &st) == -1 &&
	    (errno == ENOENT || errno == ENOTDIR)) {
		printf("%s: ok; ternd is not running, it reads it when it "
		    "starts\n", path);
		return TERNCTL_OK;
	}
	if ((rc = ternctl_request(v->ctl_verb, NULL, 0, NULL, NULL)) ==
	    TERNCTL_OK)
		printf("%s: ok; ternd has reloaded it\n", path);
	return rc;
}

/* Set by a signal while the terminal does not echo. */
static volatile sig_atomic_t ternctl_interrupted;

static void
ternctl_signal(int sig)
{
	ternctl_interrupted = sig;
}

/*
 * One line from fd 0 into buf, without its line end; octet by octet so
 * that nothing after it is read.  0, or -1 after saying why.
 */
static int
ternctl_read_line(char *buf, size_t size)
{
	size_t	len = 0;
	ssize_t	n;
	char	c;

	for (;;) {
		n = read(STDIN_FILENO, &c, 1);
		if (n == -1 && errno == EINTR && !ternctl_interrupted)
			continue;
		if (n == -1) {
			if (!ternctl_interrupted)
				fprintf(stderr, "ternctl: standard input: "
				    "%s\n", strerror(errno));
			return -1;
		}
		if (n == 0 || c == '\n')
			break;
		if (len + 1 >= size) {
			fprintf(stderr, "ternctl: password longer than %zu "
			    "characters\n", size - 1);
			explicit_bzero(&c, sizeof c);
			return -1;
		}
		buf[len++] = c;
	}
	if (n == 0 && len == 0) {
		fprintf(stderr, "ternctl: no password on standard input\n");
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	explicit_bzero(&c, sizeof c);
	return 0;
}

/* Ask on the terminal with echo off; the old mode is put back always. */
static int
ternctl_ask(const char *prompt, char *buf, size_t size)
{
	struct termios		 old, quiet;
	struct sigaction	 sa, saved[3];
	static const int	 sigs[] = { SIGINT, SIGTERM, SIGHUP };
	size_t			 i;
	int			 rc;

	if (tcgetattr(STDIN_FILENO, &old) == -1) {
		fprintf(stderr, "ternctl: tcgetattr: %s\n", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ternctl_signal;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &sa, &saved[i]);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	fputs(prompt, stderr);
	fflush(stderr);
	rc = ternctl_read_line(buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	for (i = 0; i < nitems(sigs); i++)
		sigaction(sigs[i], &saved[i], NULL);
	if (ternctl_interrupted)
		raise(ternctl_interrupted);
	return rc;
}

/*
 * "passwd": a secret for the users file, from the terminal (asked twice)
 * or from one line of standard input.
 */
static int
ternctl_passwd(const struct ternctl_verb *v, struct ternctl_args *a)
{
	char	pass[SASL_PASS_SIZE], again[SASL_PASS_SIZE];
	char	out[TERNCTL_HASH_SIZE], *cause;
	int	rc = TERNCTL_ERROR;

	if (isatty(STDIN_FILENO)) {
		if (ternctl_ask("Password: ", pass, sizeof pass) == -1 ||
		    ternctl_ask("Again: ", again, sizeof again) == -1)
			goto out;
		if (strcmp(pass, again) != 0) {
			fprintf(stderr, "ternctl: the passwords differ\n");
			goto out;
		}
	} else if (ternctl_read_line(pass, sizeof pass) == -1)
		goto out;
	if (pass[0] == '\0') {
		fprintf(stderr, "ternctl: empty password\n");
		goto out;
	}
	if (a->opts & TERNCTL_OPT_CRAM) {
		if (sasl_b64_encode(pass, strlen(pass), out, sizeof out) ==
		    -1) {
			fprintf(stderr, "ternctl: password too long\n");
			goto out;
		}
		fprintf(stderr, "ternctl: warning: {PLAIN} is the password "
		    "itself, not a hash: anyone who reads the users file "
		    "can log in\n");
		printf("{PLAIN}%s\n", out);
	} else {
		if (users_hash(pass, out, sizeof out, &cause) == -1) {
			fprintf(stderr, "ternctl: %s\n", cause);
			free(cause);
			goto out;
		}
		printf("%s\n", out);
	}
	rc = TERNCTL_OK;
out:
	explicit_bzero(pass, sizeof pass);
	explicit_bzero(again, sizeof again);
	explicit_bzero(out, sizeof out);
	return rc;
}

/* Run one verb with its arguments (argv[0] is the first after it). */
static int
ternctl_run(const struct ternctl_verb *v, int argc, char **argv)
{
	struct ternctl_args	 a;
	char			*cause;
	int			 rc;

	if (ternctl_parse(v, argc, argv, &a) == -1) {
		free(a.words);
		return ternctl_verb_usage(v);
	}
	if ((v->flags & TERNCTL_NO_CONFIG) == 0 &&
	    (ternctl.conf = ternctl_load_config(&cause)) == NULL) {
		fprintf(stderr, "ternctl: %s\n", cause);
		free(cause);
		free(a.words);
		return TERNCTL_ERROR;
	}
	rc = v->handler(v, &a);
	free(a.words);
	if (ternctl.spool_open)
		queue_shutdown();
	config_free(ternctl.conf);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "ternctl: standard output: %s\n",
		    strerror(errno));
		if (rc == TERNCTL_OK)
			rc = TERNCTL_ERROR;
	}
	return rc;
}

/*
 * The sendmail-compatible submission: argv[0] "sendmail", "mailq" or
 * "newaliases", or "ternctl sendmail".  A -c given to ternctl reaches it
 * through TERN_CONFIG; when it asks for the queue listing (-bp, mailq),
 * that is "ternctl queue", and for the aliases (-bi, newaliases)
 * "ternctl newaliases".
 */
static int
ternctl_sendmail(int argc, char **argv)
{
	int	rc;

	if (ternctl.conf_file != NULL &&
	    setenv("TERN_CONFIG", ternctl.conf_file, 1) == -1) {
		fprintf(stderr, "ternctl: setenv: %s\n", strerror(errno));
		return TERNCTL_ERROR;
	}
	rc = sendmail_main(argc, argv);
	if (rc != SENDMAIL_MAILQ && rc != SENDMAIL_NEWALIASES)
		return rc;
	log_init("ternctl", LOG_TARGET_STDERR, 0);
	return ternctl_run(ternctl_find_verb(rc == SENDMAIL_MAILQ ? "queue" :
	    "newaliases"), 0, argv + argc);
}

int
main(int argc, char **argv)
{
	const struct ternctl_verb	*v;
	const char			*name;
	int				 ch;

	name = strrchr(argv[0], '/') != NULL ? strrchr(argv[0], '/') + 1 :
	    argv[0];
	if (strcmp(name, "sendmail") == 0 || strcmp(name, "mailq") == 0 ||
	    strcmp(name, "newaliases") == 0)
		return ternctl_sendmail(argc, argv);
	log_init("ternctl", LOG_TARGET_STDERR, 0);

	while ((ch = getopt(argc, argv, "+c:")) != -1) {
		switch (ch) {
		case 'c':
			ternctl.conf_file = optarg;
			break;
		default:
			ternctl_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		ternctl_usage();
	if ((v = ternctl_find_verb(argv[0])) == NULL) {
		fprintf(stderr, "ternctl: unknown verb: %s\n", argv[0]);
		ternctl_usage();
	}
	if (v->flags & TERNCTL_RAW)
		return ternctl_sendmail(argc, argv);
	return ternctl_run(v, argc - 1, argv + 1);
}
