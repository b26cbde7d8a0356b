/*
 * milter_proto.h: the bytes of the Sendmail milter protocol, version 6:
 * packets (a 4-octet length in network order, a command octet, data)
 * appended to a util_buf, and packets from a filter found in what
 * has arrived and decoded.  Pure logic: no sockets, no libevent.
 */
#ifndef MILTER_PROTO_H
#define MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>

struct util_buf;

#define MILTER_PROTO_VERSION	6
/* Body chunks sent are at most this long (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_PROTO_CHUNK	65535
/* The longest packet taken from a filter; longer is an error. */
#define MILTER_PROTO_MAX	(1024 * 1024)

/* Commands, to the filter. */
#define SMFIC_ABORT		'A'
#define SMFIC_BODY		'B'
#define SMFIC_CONNECT		'C'
#define SMFIC_MACRO		'D'
#define SMFIC_BODYEOB		'E'
#define SMFIC_HELO		'H'
#define SMFIC_QUIT_NC		'K'
#define SMFIC_HEADER		'L'
#define SMFIC_MAIL		'M'
#define SMFIC_EOH		'N'
#define SMFIC_OPTNEG		'O'
#define SMFIC_QUIT		'Q'
#define SMFIC_RCPT		'R'
#define SMFIC_DATA		'T'
#define SMFIC_UNKNOWN		'U'

/* Replies and actions, from the filter. */
#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_SHUTDOWN		'4'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_CONN_FAIL		'f'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_SETSYMLIST	'l'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'

/* Actions a filter may take (option negotiation). */
#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080
#define SMFIF_SETSYMLIST	0x100

/* Protocol steps a filter skips, and steps it does not answer. */
#define SMFIP_NOCONNECT		0x000001
#define SMFIP_NOHELO		0x000002
#define SMFIP_NOMAIL		0x000004
#define SMFIP_NORCPT		0x000008
#define SMFIP_NOBODY		0x000010
#define SMFIP_NOHDRS		0x000020
#define SMFIP_NOEOH		0x000040
#define SMFIP_NR_HDR		0x000080
#define SMFIP_NOUNKNOWN		0x000100
#define SMFIP_NODATA		0x000200
#define SMFIP_SKIP		0x000400
#define SMFIP_RCPT_REJ		0x000800
#define SMFIP_NR_CONN		0x001000
#define SMFIP_NR_HELO		0x002000
#define SMFIP_NR_MAIL		0x004000
#define SMFIP_NR_RCPT		0x008000
#define SMFIP_NR_DATA		0x010000
#define SMFIP_NR_UNKN		0x020000
#define SMFIP_NR_EOH		0x040000
#define SMFIP_NR_BODY		0x080000
#define SMFIP_HDR_LEADSPC	0x100000

/* Connect: the client's address family. */
#define SMFIA_UNKNOWN		'U'
#define SMFIA_UNIX		'L'
#define SMFIA_INET		'4'
#define SMFIA_INET6		'6'

/* Macro stages a filter may ask for at negotiation (SMFIM_*). */
enum milter_proto_stage {
	MILTER_STAGE_CONNECT,
	MILTER_STAGE_HELO,
	MILTER_STAGE_MAIL,
	MILTER_STAGE_RCPT,
	MILTER_STAGE_DATA,
	MILTER_STAGE_EOM,
	MILTER_STAGE_EOH,
	MILTER_STAGE_COUNT
};

/* A packet from a filter; data points into the caller's bytes. */
struct milter_packet {
	int		 cmd;
	const char	*data;
	size_t		 len;
};

#define MILTER_PROTO_REPLY_SIZE	4096

/*
 * A decoded reply.  Strings point into the packet (they are NUL-ended
 * there), except smtp, the reply of SMFIR_REPLYCODE rendered for the
 * client with CRLF line ends, and esc, the enhanced code of its last
 * line ("" when none).
 */
struct milter_proto_reply {
	int		 cmd;
	/* SMFIC_OPTNEG */
	uint32_t	 version;
	uint32_t	 actions;
	uint32_t	 protocol;
	const char	*macros[MILTER_STAGE_COUNT];	/* NULL: default */
	/* SMFIR_REPLYCODE */
	int		 code;
	char		 esc[16];
	const char	*text;		/* first line, after code and esc */
	size_t		 textlen;
	char		 smtp[MILTER_PROTO_REPLY_SIZE];
	/* header changes, recipients, sender, quarantine */
	uint32_t	 index;
	const char	*name;
	const char	*value;		/* NULL when absent */
	/* SMFIR_REPLBODY */
	const char	*body;
	size_t		 bodylen;
};

void	 milter_proto_command(struct util_buf *, int, const void *,
	    size_t);
void	 milter_proto_optneg(struct util_buf *, uint32_t, uint32_t,
	    uint32_t);
void	 milter_proto_macros(struct util_buf *, int, const char *const *,
	    size_t);
void	 milter_proto_connect(struct util_buf *, const char *,
	    const char *, uint16_t);
void	 milter_proto_string(struct util_buf *, int, const char *);
void	 milter_proto_args(struct util_buf *, int, const char *,
	    const char *);
void	 milter_proto_header(struct util_buf *, const char *, size_t,
	    const char *, size_t, int);

int	 milter_proto_parse(const void *, size_t, struct milter_packet *,
	    size_t *);
int	 milter_proto_decode(const struct milter_packet *,
	    struct milter_proto_reply *, const char **);
int	 milter_proto_stage_cmd(enum milter_proto_stage);

#endif
