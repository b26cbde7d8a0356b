/*
 * confcheck.h: the files a configuration names, opened and read as
 * ternd reads them, for ternd itself, "ternd -n" and "ternctl check".
 */
#ifndef CONFCHECK_H
#define CONFCHECK_H

#include <openssl/ssl.h>

#include "config.h"
#include "users.h"

struct users	*confcheck_load_users(const struct config *, users_warn_fn,
		    void *, char **);
int		 confcheck_load_tls(const struct config *, SSL_CTX **,
		    char **);
size_t		 confcheck_files(const struct config *, users_warn_fn,
		    users_warn_fn, void *);

#endif
