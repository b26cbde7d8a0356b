/*
 * milter_edit.h: what filters asked to change at the end of a message,
 * and how those changes are applied: to the header section and body of
 * a message held in memory, and to its envelope.  Pure logic: no
 * sockets, no libevent; nothing is changed unless all of it applies.
 */
#ifndef MILTER_EDIT_H
#define MILTER_EDIT_H

#include <stddef.h>
#include <stdint.h>

struct envelope;

enum milter_mod_type {
	MILTER_MOD_ADD_HEADER,		/* append name: value */
	MILTER_MOD_INSERT_HEADER,	/* at index (0: first field) */
	MILTER_MOD_CHANGE_HEADER,	/* index-th field of the name (from
					   1); an empty value deletes it */
	MILTER_MOD_ADD_RCPT,		/* name: address; value: ESMTP args */
	MILTER_MOD_DELETE_RCPT,		/* name: address */
	MILTER_MOD_CHANGE_FROM,		/* name: address; value: ESMTP args */
};

/*
 * One change, in the order the filters asked for it; owned by its
 * milter_mods.  Header values are as the filter sent them: lines joined
 * by "\n", without the space after the colon unless the filter asked
 * for leading spaces (then leadspc is 1).
 */
struct milter_mod {
	enum milter_mod_type	 type;
	uint32_t		 index;
	int			 leadspc;
	char			*name;		/* field name, or address */
	char			*value;		/* field value, args, or NULL */
};

/*
 * Every change the filters asked for at the end of one message, filters
 * in list order; owned by whoever initialised it, emptied by
 * milter_mods_clear().
 */
struct milter_mods {
	struct milter_mod	*mods;
	size_t			 nmods;
	size_t			 alloc;
	int			 replace_body;	/* body is the new body */
	char			*body;		/* CRLF lines; heap */
	size_t			 bodylen;
	char			*quarantine;	/* reason, or NULL */
	char			*message;	/* or the whole new message,
					   header and body; heap */
	size_t			 messagelen;
};

/* One header field of a message, found by milter_edit_split(). */
struct milter_field {
	const char	*name;
	size_t		 namelen;
	const char	*value;		/* after the colon, folded lines */
	size_t		 valuelen;	/* up to the final CRLF, excluded */
};

/* Called with each piece of the edited message, in order; 0 or -1. */
typedef int	(*milter_edit_out)(void *, const void *, size_t);

void	 milter_mods_init(struct milter_mods *);
void	 milter_mods_clear(struct milter_mods *);
void	 milter_mods_add(struct milter_mods *, enum milter_mod_type,
	    uint32_t, int, const char *, const char *);
void	 milter_mods_body(struct milter_mods *, const void *, size_t);
int	 milter_mods_has_content(const struct milter_mods *);
int	 milter_mods_has_envelope(const struct milter_mods *);

void	 milter_edit_split(const char *, size_t, struct milter_field **,
	    size_t *, size_t *);
int	 milter_edit_message(const struct milter_mods *, const char *,
	    size_t, milter_edit_out, void *);
int	 milter_edit_envelope(const struct milter_mods *, struct envelope *,
	    char **);

#endif
