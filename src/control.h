/*
 * control.h: the control socket of ternd, where ternctl asks for queue
 * actions (ctl_proto.h).  It checks who is asking, parses one request
 * per connection and hands it to the callbacks ternd gave it.
 */
#ifndef CONTROL_H
#define CONTROL_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

struct event_base;

/* The counters of "stats", filled by ternd. */
struct control_stats {
	uint64_t	sessions;	/* inbound SMTP sessions now */
	uint64_t	accepted;	/* messages since start */
	uint64_t	delivered;	/* recipients since start */
	uint64_t	deferred;
	uint64_t	bounced;
	uint64_t	queue_size;	/* messages in the spool */
	uint64_t	oldest;		/* arrival, epoch seconds; 0: none */
	uint64_t	uptime;		/* seconds */
	uint64_t	session_budget;	/* sessions admitted at most */
	uint64_t	bytes_held;	/* by sessions, estimated */
	uint64_t	stress;		/* 1: under stress */
	uint64_t	draining;	/* 1: drained, new clients refused */
	uint64_t	drain_refused;	/* clients refused while draining */
};

/* One line of a listing, for the client. */
typedef void	(*control_emit_fn)(const char *, void *);

/*
 * What the daemon does for each verb; each called from the loop.  The id
 * callbacks return 0 when the id was acted on, -1 when it is unknown.
 * flush returns how many messages were made due (domain NULL: all).
 * stop is called once the reply has reached the client.  list runs in
 * a child process of its own (control.c forks it, so that a long spool
 * scan never stalls the loop): it emits the listing's lines and returns
 * 0, or -1 with *cause set.
 */
struct control_ops {
	int	(*hold)(const char *);
	int	(*release)(const char *);
	int	(*delete)(const char *);
	int	(*bounce)(const char *);
	size_t	(*flush)(const char *, int);
	int	(*flush_ids)(const char *);
	void	(*stats)(struct control_stats *);
	int	(*reload)(char **);	/* -1: refused, *cause why */
	void	(*stop)(void);
	int	(*list)(control_emit_fn, void *, char **);
	void	(*drain)(int);		/* 1: drain, 0: undrain */
	void	(*sessions)(control_emit_fn, void *);	/* on the loop */
	int	(*handover)(const char *, const char *);	/* id, to */
};

int	 control_is_target(const char *);
int	 control_init(struct event_base *, const char *, gid_t,
	    const struct control_ops *, char **);
void	 control_set_queue_list(int);
void	 control_shutdown(void);

#endif
