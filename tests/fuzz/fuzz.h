/*
 * fuzz.h: what every libFuzzer target of tests/fuzz/ shares.  Each target
 * defines LLVMFuzzerTestOneInput(); fuzz.c quiets the log and keeps a
 * private directory for targets whose parser reads a named file.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int		 LLVMFuzzerInitialize(int *, char ***);

/* Once per process: the log goes nowhere, a private directory is made. */
void		 fuzz_init(void);
/* Writes the octets to a file of that name in the private directory. */
const char	*fuzz_file(const char *, const void *, size_t);
/* A NUL-terminated heap copy of the input. */
char		*fuzz_str(const uint8_t *, size_t);
/* Aborts, naming what differs: an invariant of the parser is broken. */
void		 fuzz_mismatch(const char *, const void *, size_t,
		    const void *, size_t) __attribute__((noreturn));

#endif
