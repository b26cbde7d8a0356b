/*
 * log.h: where tern's log lines go, at which level, and how text a peer
 * sent is made safe to print.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_NONE,
	LOG_TARGET_FILE,
	LOG_TARGET_REMOTE,
};

/* Big enough for any escaped SMTP line (512 octets, 4 per octet). */
#define LOG_ESCAPE_SIZE	2100

void	log_init(const char *, enum log_target, int);
void	log_set_target(enum log_target);
void	log_set_dir(const char *);
void	log_set_hostname(const char *);
int	log_set_server(const char *, unsigned, char **);
void	log_set_debug(int);
int	log_is_debug(void);
const char *log_target_str(enum log_target);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_mail(const char *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	panic(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

const char *log_escape(char *, size_t, const char *, size_t);

#endif
