/*
 * metrics_server.h: the optional HTTP listener (metrics_listen) that
 * serves GET /metrics in the Prometheus text format, and the timer that
 * measures the loop's lag.
 */
#ifndef METRICS_SERVER_H
#define METRICS_SERVER_H

#include <stddef.h>

struct event_base;
struct config_listen;
struct metrics_gauges;

/* Fills the gauges of the moment, on the loop, for each scrape. */
typedef void	(*metrics_gauges_fn)(struct metrics_gauges *);

int	metrics_server_init(struct event_base *, const struct config_listen *,
	    size_t, metrics_gauges_fn, char **);
int	metrics_server_set_listen(const struct config_listen *, size_t,
	    char **);
void	metrics_server_shutdown(void);

#endif
