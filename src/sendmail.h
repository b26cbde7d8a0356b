/*
 * sendmail.h: the sendmail-compatible entry point of ternctl (run as
 * "sendmail", "mailq" or "newaliases", or as "ternctl sendmail").
 */
#ifndef SENDMAIL_H
#define SENDMAIL_H

/*
 * Returned by sendmail_main() for -bp (and when run as "mailq"): the
 * caller lists the queue as "ternctl queue" does and exits with that
 * status.  A -C FILE given with it has been put in $TERN_CONFIG.
 */
#define SENDMAIL_MAILQ	(-1)
/* sendmail_main() asks for "ternctl newaliases" (-bi, newaliases). */
#define SENDMAIL_NEWALIASES	(-2)

/* A sysexits.h status, or SENDMAIL_MAILQ. */
int	 sendmail_main(int, char **);

#endif
