/*
 * fuzz_dns.c: DNS answers as c-ares hands them to dns.c.  No packet is
 * sent: ares_query() is replaced here by a recorder, and each query dns.c
 * asks (MX, then A and AAAA of every exchanger) is answered from the
 * input, which is a list of answers, each a status octet, a 16-bit
 * length and that many octets of DNS message.  dns.c parses them with
 * c-ares' ares_parse_mx_reply() and ares_parse_a{,aaa}_reply() and makes
 * of them its list of exchangers and addresses; the result handed to the
 * callback is checked.  The first octet chooses an MX or a host lookup
 * and the name asked.  dns.c is included to replace ares_query().
 */
#include <ares.h>

void	fuzz_ares_query(ares_channel, const char *, int, int, ares_callback,
	    void *);
#define ares_query	fuzz_ares_query
#include "../../src/dns.c"
#undef ares_query

#include <err.h>

#include "fuzz.h"

#define FUZZ_QUERIES_MAX	(2 * DNS_MAX_MX + 1)

static struct {
	ares_callback	 cb;
	void		*arg;
	int		 type;
} fuzz_q[FUZZ_QUERIES_MAX];
static size_t		 fuzz_nq, fuzz_next;
static struct event_base *fuzz_base;
static int		 fuzz_called;

/* What dns.c asks c-ares, kept to be answered from the input. */
void
fuzz_ares_query(ares_channel channel, const char *name, int dnsclass,
    int type, ares_callback cb, void *arg)
{
	if (fuzz_nq == FUZZ_QUERIES_MAX)
		errx(1, "more queries than %d", FUZZ_QUERIES_MAX);
	if (!dns_is_name(name))
		abort();
	fuzz_q[fuzz_nq].cb = cb;
	fuzz_q[fuzz_nq].arg = arg;
	fuzz_q[fuzz_nq].type = type;
	fuzz_nq++;
}

static void
fuzz_result(const struct dns_result *res, void *arg)
{
	size_t	i;

	fuzz_called++;
	if (res->ntargets > DNS_MAX_TARGETS ||
	    strnlen(res->error, sizeof res->error) == sizeof res->error)
		abort();
	if (res->status == DNS_OK && res->ntargets == 0)
		abort();
	if (res->status != DNS_OK && res->ntargets != 0)
		abort();
	(void)dns_status_str(res->status);
	for (i = 0; i < res->ntargets; i++) {
		if (strnlen(res->targets[i].host, DNS_HOST_SIZE) ==
		    DNS_HOST_SIZE)
			abort();
		if (!(res->targets[i].ss.ss_family == AF_INET &&
		    res->targets[i].sslen == sizeof(struct sockaddr_in)) &&
		    !(res->targets[i].ss.ss_family == AF_INET6 &&
		    res->targets[i].sslen == sizeof(struct sockaddr_in6)))
			abort();
	}
}

static const int fuzz_status[] = {
	ARES_SUCCESS, ARES_ENODATA, ARES_ENOTFOUND, ARES_ESERVFAIL,
	ARES_ETIMEOUT, ARES_EREFUSED, ARES_ECONNREFUSED, ARES_EBADRESP,
	ARES_EFORMERR, ARES_ENOMEM, ARES_ECANCELLED, ARES_EDESTRUCTION,
};

static const char *const fuzz_names[] = {
	"example.org", "example.org.", "mx.example.net", "192.0.2.1",
	"[IPv6:2001:db8::1]", "a..b", "-", "x_y.example",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t	*p = data + 1, *end = data + size;
	unsigned char	 empty[1] = { 0 };
	unsigned char	*abuf;
	size_t		 len;
	int		 status;
	char		*cause = NULL;

	if (fuzz_base == NULL) {
		if ((fuzz_base = event_base_new()) == NULL ||
		    dns_init(fuzz_base, "127.0.0.1", &cause) == -1)
			errx(1, "dns_init: %s", cause);
	}
	if (size == 0)
		return 0;
	fuzz_nq = fuzz_next = 0;
	fuzz_called = 0;
	if (data[0] & 1)
		(void)dns_resolve_host(fuzz_names[(data[0] >> 1) %
		    nitems(fuzz_names)], fuzz_result, NULL);
	else
		(void)dns_resolve_mx(fuzz_names[(data[0] >> 1) %
		    nitems(fuzz_names)], fuzz_result, NULL);
	/* Answer in the order asked; answers may ask further. */
	while (fuzz_next < fuzz_nq) {
		status = ARES_ETIMEOUT;
		abuf = NULL;
		len = 0;
		if (end - p >= 3) {
			status = fuzz_status[p[0] % nitems(fuzz_status)];
			len = (size_t)p[1] << 8 | p[2];
			p += 3;
			if (len > (size_t)(end - p))
				len = (size_t)(end - p);
			/* A copy of its own, so ASan sees any overread. */
			abuf = xmalloc(len > 0 ? len : 1);
			memcpy(abuf, p, len);
			p += len;
		}
		fuzz_q[fuzz_next].cb(fuzz_q[fuzz_next].arg, status, 0,
		    status == ARES_SUCCESS ? (abuf != NULL ? abuf : empty) :
		    NULL, status == ARES_SUCCESS ? (int)len : 0);
		fuzz_next++;
		free(abuf);
	}
	event_base_loop(fuzz_base, EVLOOP_NONBLOCK);
	if (fuzz_called != 1)
		abort();
	return 0;
}
