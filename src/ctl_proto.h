/*
 * ctl_proto.h: the wire format between ternctl and ternd's control
 * socket, versioned by its first word.  A request is one line,
 * "TERNCTL1 <verb> [arg ...]\n", arguments separated by single spaces,
 * at most CTL_LINE_MAX octets with its newline.  The reply is zero or
 * more "data <text>\n" lines, then one "ok\n" or "error <message>\n";
 * then the daemon closes the connection.
 */
#ifndef CTL_PROTO_H
#define CTL_PROTO_H

#define CTL_PROTO_VERSION	"TERNCTL1"
#define CTL_LINE_MAX		65536

/* Reply line prefixes; "ok" is a whole line. */
#define CTL_REPLY_DATA		"data "
#define CTL_REPLY_OK		"ok"
#define CTL_REPLY_ERROR		"error "

/*
 * Verbs.  The id verbs answer "data ID" per id acted on and "data ID
 * unknown" per id not found, then "ok" even when every id was unknown.
 * flush takes an optional domain ("@domain": its subdomains too) and
 * answers "data flushed=N"; stats answers "data key=value" lines.
 * queue answers, per message in arrival order, "data envelope ID HELD"
 * (HELD 1 or 0) then its envelope in the form of tern-envelope(5), one
 * "data" line per line, with only what a listing shows (sender, size,
 * times, tries, recipients, their states and errors).  It is the one
 * verb the socket's other users may be allowed (queue_list).
 */
#define CTL_VERB_HOLD		"hold"
#define CTL_VERB_RELEASE	"release"
#define CTL_VERB_DELETE		"delete"
#define CTL_VERB_BOUNCE		"bounce"
#define CTL_VERB_FLUSH		"flush"
#define CTL_VERB_FLUSH_IDS	"flush-ids"
#define CTL_VERB_STATS		"stats"
#define CTL_VERB_RELOAD		"reload"
#define CTL_VERB_STOP		"stop"
#define CTL_VERB_QUEUE		"queue"
/*
 * sessions answers one "data" line per SMTP session open, inbound then
 * outbound, of space-separated key=value words: dir (inbound or
 * outbound), id (the log's session id, "-" for none), peer, state, age
 * (seconds), in and out (octets), tls (the version, "-" for none).
 */
#define CTL_VERB_SESSIONS	"sessions"
/*
 * handover TARGET ID ...: hand the messages over to the MTA at TARGET
 * ("host:port", "[address]:port"), answered as the id verbs are.
 */
#define CTL_VERB_HANDOVER	"handover"

/*
 * drain stops taking new SMTP clients (each gets a 421) while sessions
 * open and deliveries go on; undrain takes them again.  Each answers
 * "data draining=1" or "data draining=0", the state now.
 */
#define CTL_VERB_DRAIN		"drain"
#define CTL_VERB_UNDRAIN	"undrain"

/* The first word of the line that starts a message in a listing. */
#define CTL_LIST_ENVELOPE	"envelope"

/* The suffix of an id not found. */
#define CTL_UNKNOWN		" unknown"
#define CTL_LOADING		" loading"	/* try again shortly */

#endif
