/*
 * smtp_server.h: the SMTP listeners and the limits on who may connect.
 */
#ifndef SMTP_SERVER_H
#define SMTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct config;

int	 smtp_server_init(struct event_base *, const struct config *,
	    char **);
int	 smtp_server_set_config(const struct config *, char **);
void	 smtp_server_shutdown(void (*)(void));
void	 smtp_server_close_all(void);
size_t	 smtp_server_session_count(void);
int	 smtp_server_drain(int);
int	 smtp_server_is_draining(void);

/* Admission control as ternctl stats shows it. */
struct smtp_server_stats {
	uint64_t	sessions;	/* in use */
	uint64_t	budget;		/* the cap in force */
	uint64_t	bytes;		/* held by sessions, estimated */
	int		stress;		/* 1 while under stress */
	int		draining;	/* 1 while drained (ternctl drain) */
	uint64_t	drain_refused;	/* clients refused while draining */
};

void	 smtp_server_stats(struct smtp_server_stats *);
struct sessinfo;
void	 smtp_server_sessions(void (*)(const struct sessinfo *, void *),
	    void *);
void	 smtp_server_free(void);

#endif
