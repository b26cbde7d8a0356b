/*
 * metrics.c: the counters every module bumps, and their Prometheus text
 * exposition (version 0.0.4): a HELP and a TYPE line per family, names
 * prefixed tern_, counters ending in _total, durations in seconds.  Pure:
 * the gauges come from the caller, the text goes into a buffer.
 */
#include "autoconf.h"

#include <stdint.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

struct metrics_counters metrics;

static const char *const metrics_refusal_names[METRICS_REFUSED_MAX] = {
	[METRICS_REFUSED_BUDGET] = "session_budget",
	[METRICS_REFUSED_CLIENT_LIMIT] = "client_limit",
	[METRICS_REFUSED_CLIENT_RATE] = "client_rate",
	[METRICS_REFUSED_RESOURCES] = "out_of_resources",
	[METRICS_REFUSED_DRAINING] = "draining",
};

static const char *const metrics_reject_names[METRICS_REJECT_MAX] = {
	[METRICS_REJECT_OTHER] = "other",
	[METRICS_REJECT_RELAY] = "relay_denied",
	[METRICS_REJECT_UNKNOWN_USER] = "unknown_user",
	[METRICS_REJECT_ALIAS_LOOP] = "alias_loop",
	[METRICS_REJECT_SENDER] = "sender_not_owned",
	[METRICS_REJECT_RATE] = "rate_limit",
	[METRICS_REJECT_SIZE] = "size",
	[METRICS_REJECT_CONTENT] = "content",
	[METRICS_REJECT_STORAGE] = "storage",
	[METRICS_REJECT_ETRN] = "etrn_denied",
};

static const char *const metrics_status_names[METRICS_STATUS_MAX] = {
	[METRICS_SENT] = "sent",
	[METRICS_DEFERRED] = "deferred",
	[METRICS_BOUNCED] = "bounced",
};

static const char *const metrics_dest_names[METRICS_DEST_MAX] = {
	[METRICS_LOCAL] = "local",
	[METRICS_REMOTE] = "remote",
	[METRICS_GATEWAY] = "gateway",
};

/* Each histogram: its name, help and upper bounds (+Inf implied). */
static const struct {
	const char	*name;
	const char	*help;
	double		 le[METRICS_BUCKETS_MAX];
	size_t		 n;
} metrics_hists[METRICS_HIST_MAX] = {
	[METRICS_HIST_COMMIT] = { "tern_commit_duration_seconds",
	    "Time to make a received message durable in the spool.",
	    { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	      2.5, 5, 10 }, 13 },
	[METRICS_HIST_DELIVERY] = { "tern_delivery_delay_seconds",
	    "Time from a message's arrival to a recipient's delivery.",
	    { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400 },
	    12 },
	[METRICS_HIST_LOOP_LAG] = { "tern_loop_lag_seconds",
	    "Lateness of a periodic timer of the event loop.",
	    { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5 }, 8 },
};

void
metrics_refused(enum metrics_refusal r)
{
	if (r < METRICS_REFUSED_MAX)
		metrics.refused[r]++;
}

void
metrics_rejected(enum metrics_reject r)
{
	metrics.rejected[r < METRICS_REJECT_MAX ? r : METRICS_REJECT_OTHER]++;
}

void
metrics_delivery(enum metrics_status st, enum metrics_dest d)
{
	if (st < METRICS_STATUS_MAX && d < METRICS_DEST_MAX)
		metrics.deliveries[st][d]++;
}

/* One observation; a negative one (a clock stepped back) counts as 0. */
void
metrics_observe(enum metrics_hist_kind k, double v)
{
	struct metrics_hist	*h;
	size_t			 i;

	if (k >= METRICS_HIST_MAX)
		return;
	if (v < 0)
		v = 0;
	h = &metrics.hist[k];
	for (i = 0; i < metrics_hists[k].n; i++) {
		if (v <= metrics_hists[k].le[i])
			break;
	}
	h->counts[i]++;		/* i == n: above every bound, +Inf only */
	h->count++;
	h->sum += v;
}

static void
metrics_head(struct util_buf *b, const char *name, const char *type,
    const char *help)
{
	util_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* A family of one unlabelled sample. */
static void
metrics_one(struct util_buf *b, const char *name, const char *type,
    const char *help, const char *value)
{
	metrics_head(b, name, type, help);
	util_buf_printf(b, "%s %s\n", name, value);
}

static void
metrics_u64(struct util_buf *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	char	num[32];

	util_snprintf(num, sizeof num, "%ju", (uintmax_t)v);
	metrics_one(b, name, type, help, num);
}

static void
metrics_dbl(struct util_buf *b, const char *name, const char *help,
    double v)
{
	char	num[64];

	util_snprintf(num, sizeof num, "%.6f", v);
	metrics_one(b, name, "gauge", help, num);
}

/* A counter with one label over a table of names. */
static void
metrics_labelled(struct util_buf *b, const char *name, const char *help,
    const char *label, const char *const *names, const uint64_t *v,
    size_t n)
{
	size_t	i;

	metrics_head(b, name, "counter", help);
	for (i = 0; i < n; i++)
		util_buf_printf(b, "%s{%s=\"%s\"} %ju\n", name, label,
		    names[i], (uintmax_t)v[i]);
}

static void
metrics_hist_format(struct util_buf *b, enum metrics_hist_kind k,
    const struct metrics_hist *h)
{
	const char	*name = metrics_hists[k].name;
	uint64_t	 cum = 0;
	size_t		 i;

	metrics_head(b, name, "histogram", metrics_hists[k].help);
	for (i = 0; i < metrics_hists[k].n; i++) {
		cum += h->counts[i];
		util_buf_printf(b, "%s_bucket{le=\"%g\"} %ju\n", name,
		    metrics_hists[k].le[i], (uintmax_t)cum);
	}
	util_buf_printf(b, "%s_bucket{le=\"+Inf\"} %ju\n", name,
	    (uintmax_t)h->count);
	util_buf_printf(b, "%s_sum %.6f\n%s_count %ju\n", name, h->sum, name,
	    (uintmax_t)h->count);
}

/* The whole exposition, appended to b. */
void
metrics_format(struct util_buf *b, const struct metrics_counters *c,
    const struct metrics_gauges *g)
{
	size_t	i, j;

	metrics_head(b, "tern_sessions", "gauge",
	    "SMTP sessions open now, by direction.");
	util_buf_printf(b, "tern_sessions{direction=\"inbound\"} %ju\n"
	    "tern_sessions{direction=\"outbound\"} %ju\n",
	    (uintmax_t)g->inbound, (uintmax_t)g->outbound);
	metrics_u64(b, "tern_sessions_accepted_total", "counter",
	    "Inbound SMTP sessions accepted.", c->sessions);
	metrics_labelled(b, "tern_sessions_refused_total",
	    "Inbound connections refused before a session, by reason.",
	    "reason", metrics_refusal_names, c->refused, METRICS_REFUSED_MAX);
	metrics_u64(b, "tern_messages_received_total", "counter",
	    "Messages committed to the queue.", c->received);
	metrics_labelled(b, "tern_messages_rejected_total",
	    "Commands of inbound sessions refused (NOQUEUE: reject), by "
	    "reason.", "reason", metrics_reject_names, c->rejected,
	    METRICS_REJECT_MAX);

	metrics_head(b, "tern_deliveries_total", "counter",
	    "Recipient delivery outcomes, by status and destination kind.");
	for (i = 0; i < METRICS_STATUS_MAX; i++) {
		for (j = 0; j < METRICS_DEST_MAX; j++)
			util_buf_printf(b, "tern_deliveries_total{"
			    "status=\"%s\",destination=\"%s\"} %ju\n",
			    metrics_status_names[i], metrics_dest_names[j],
			    (uintmax_t)c->deliveries[i][j]);
	}

	metrics_head(b, "tern_queue_messages", "gauge",
	    "Messages in the queue, by state.");
	util_buf_printf(b, "tern_queue_messages{state=\"active\"} %ju\n"
	    "tern_queue_messages{state=\"deferred\"} %ju\n"
	    "tern_queue_messages{state=\"hold\"} %ju\n",
	    (uintmax_t)g->queue_active, (uintmax_t)g->queue_deferred,
	    (uintmax_t)g->queue_hold);
	metrics_dbl(b, "tern_queue_oldest_message_age_seconds",
	    "Age of the oldest message waiting for delivery; 0 when none.",
	    g->oldest_age);

	for (i = 0; i < METRICS_HIST_MAX; i++)
		metrics_hist_format(b, (enum metrics_hist_kind)i, &c->hist[i]);
	metrics_dbl(b, "tern_loop_lag_last_seconds",
	    "Lateness of the loop's periodic timer, last measured.",
	    g->loop_lag);

	metrics_u64(b, "tern_session_budget", "gauge",
	    "Inbound sessions admitted at most (admission control).",
	    g->session_budget);
	metrics_u64(b, "tern_session_memory_bytes", "gauge",
	    "Memory held by inbound sessions, estimated.", g->bytes_held);
	metrics_u64(b, "tern_stress", "gauge",
	    "1 while under stress (timeouts cut), else 0.",
	    g->stress ? 1 : 0);
	metrics_dbl(b, "tern_start_time_seconds",
	    "Start time of the daemon since the Unix epoch.", g->start_time);
}
