/*
 * priv.h: dropping root for good after start-up, and checking that the
 * spool belongs to the user ternd runs as.
 */
#ifndef PRIV_H
#define PRIV_H

int	 priv_prepare(const char *, const char *, const char *, const char *,
	    int, char **);
int	 priv_drop(const char *, const char *, const char *, const char *,
	    int, char **);

#endif
