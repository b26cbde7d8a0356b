/*
 * fuzz.c: the shared part of the fuzz targets.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <err.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"
#include "util.h"

static char	fuzz_dir[PATH_MAX];
static int	fuzz_ready;
static char	fuzz_path[PATH_MAX + 64];

/* At exit: the files fuzz_file() wrote, then the directory. */
static void
fuzz_cleanup(void)
{
	DIR		*d;
	struct dirent	*de;

	if ((d = opendir(fuzz_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(fuzz_path, sizeof fuzz_path, "%s/%s", fuzz_dir,
		    de->d_name);
		(void)unlink(fuzz_path);
	}
	closedir(d);
	(void)rmdir(fuzz_dir);
}

void
fuzz_init(void)
{
	if (fuzz_ready)
		return;
	fuzz_ready = 1;
	log_init("fuzz", LOG_TARGET_NONE, 0);
}

/* The private directory, made at the first file written into it. */
static void
fuzz_mkdir(void)
{
	const char	*tmp;

	if (fuzz_dir[0] != '\0')
		return;
	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(fuzz_dir, sizeof fuzz_dir, "%s/tern-fuzz.XXXXXX",
	    tmp) >= sizeof fuzz_dir)
		errx(1, "TMPDIR too long");
	if (mkdtemp(fuzz_dir) == NULL)
		err(1, "mkdtemp %s", fuzz_dir);
	atexit(fuzz_cleanup);
}

const char *
fuzz_file(const char *name, const void *data, size_t len)
{
	int	fd;

	fuzz_mkdir();
	snprintf(fuzz_path, sizeof fuzz_path, "%s/%s", fuzz_dir, name);
	if ((fd = open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		err(1, "%s", fuzz_path);
	if (util_write_all(fd, data, len) == -1)
		err(1, "%s", fuzz_path);
	close(fd);
	return fuzz_path;
}

char *
fuzz_str(const uint8_t *data, size_t len)
{
	char	*s = xmalloc(len + 1);

	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

void
fuzz_mismatch(const char *what, const void *a, size_t alen, const void *b,
    size_t blen)
{
	fprintf(stderr, "fuzz: %s differ\n--- first (%zu octets)\n", what,
	    alen);
	fwrite(a, 1, alen, stderr);
	fprintf(stderr, "\n--- second (%zu octets)\n", blen);
	fwrite(b, 1, blen, stderr);
	fprintf(stderr, "\n");
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init();
	return 0;
}
