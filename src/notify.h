/*
 * notify.h: telling the service manager (systemd's notify protocol) when
 * ternd is ready, reloading or stopping, and what it is doing.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

void	 notify_init(void);
int	 notify_is_enabled(void);
void	 notify_ready(const char *);
void	 notify_reloading(void);
void	 notify_stopping(const char *);
void	 notify_status(const char *);
void	 notify_shutdown(void);

#endif
