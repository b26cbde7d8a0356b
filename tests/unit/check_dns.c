/*
 * check_dns.c: the DNS module.  The MX order with fixed and with real
 * random numbers, the dns_servers syntax, address literals, and live
 * lookups through c-ares against a dnsmasq this test starts on loopback:
 * MX order and addresses, implicit MX, NXDOMAIN, null MX, exchangers
 * without addresses, the limits, unanswering and refusing servers, a
 * change of servers, cancelling and shutting down.  No callback may come
 * before its request has returned.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns.h"
#include "util.h"

#define DNSMASQ_PATH	"/usr/sbin/dnsmasq"
#define LIVE_TIMEOUT	40	/* seconds, per live test */
#define MANY_MX		20	/* more than DNS_MAX_MX */
#define BIG_ADDRS	40	/* more than DNS_MAX_TARGETS */

/* The ordering: "host:pref ..." in, hosts out, with fixed random numbers. */
static const unsigned rand_zero[] = { 0 };
static const unsigned rand_one[] = { 1 };
static const unsigned rand_two_one[] = { 2, 1 };
static const unsigned rand_three_zero_one[] = { 3, 0, 1 };

static const struct {
	const char	*in;
	const unsigned	*rands;
	size_t		 nrands;
	const char	*want;
	size_t		 calls;		/* random numbers used */
} orders[] = {
	{ "", rand_zero, 1, "", 0 },
	{ "a:10", rand_zero, 1, "a", 0 },
	{ "b:1 a:2", rand_zero, 1, "b a", 0 },
	{ "a:2 b:1 c:0", rand_zero, 1, "c b a", 0 },
	{ "c:20 a:10 b:10", rand_zero, 1, "b a c", 1 },
	{ "c:20 a:10 b:10", rand_one, 1, "a b c", 1 },
	{ "b:10 c:20 a:10", rand_one, 1, "a b c", 1 },
	{ "x:5 y:5 z:5", rand_zero, 1, "y z x", 2 },
	{ "z:5 x:5 y:5", rand_zero, 1, "y z x", 2 },
	{ "x:5 y:5 z:5", rand_two_one, 2, "x y z", 2 },
	{ "m:30 l:0 k:65535 j:30", rand_one, 1, "l j m k", 1 },
	{ "m:30 l:0 k:65535 j:30", rand_zero, 1, "l m j k", 1 },
	{ "d:10 c:10 b:10 a:10", rand_three_zero_one, 3, "c b a d", 3 },
	{ "p:1 q:1 r:2 s:2", rand_zero, 1, "q p s r", 2 },
};

static const unsigned	*fake_vals;
static size_t		 fake_n, fake_calls;

static unsigned
fake_rand(void)
{
	return fake_vals[fake_calls++ % fake_n];
}

static unsigned
real_rand(void)
{
	return (unsigned)random();
}

/* Parses "host:pref ..." into mx; returns the count. */
static size_t
mx_parse(const char *text, struct dns_mx *mx, size_t size)
{
	char	*copy, *tok, *last, *colon;
	size_t	 n = 0;

	copy = xstrdup(text);
	for (tok = strtok_r(copy, " ", &last); tok != NULL;
	    tok = strtok_r(NULL, " ", &last)) {
		ck_assert_uint_lt(n, size);
		ck_assert_ptr_nonnull(colon = strchr(tok, ':'));
		*colon = '\0';
		util_strlcpy(mx[n].host, tok, sizeof mx[n].host);
		mx[n].pref = (unsigned)strtoul(colon + 1, NULL, 10);
		n++;
	}
	free(copy);
	return n;
}

static void
mx_names(const struct dns_mx *mx, size_t n, char *out, size_t size)
{
	size_t	i;

	*out = '\0';
	for (i = 0; i < n; i++) {
		if (i > 0)
			util_strlcat(out, " ", size);
		util_strlcat(out, mx[i].host, size);
	}
}

START_TEST(test_mx_order)
{
	struct dns_mx	mx[16];
	char		got[256];
	size_t		n;

	n = mx_parse(orders[_i].in, mx, nitems(mx));
	fake_vals = orders[_i].rands;
	fake_n = orders[_i].nrands;
	fake_calls = 0;
	dns_mx_order(mx, n, fake_rand);
	mx_names(mx, n, got, sizeof got);
	ck_assert_msg(strcmp(got, orders[_i].want) == 0,
	    "\"%s\": got \"%s\", want \"%s\"", orders[_i].in, got,
	    orders[_i].want);
	ck_assert_uint_eq(fake_calls, orders[_i].calls);
}
END_TEST

/* With a real random source every order of a tie turns up, evenly. */
START_TEST(test_mx_order_random)
{
	static const char	*perms[] = {
		"a b c d", "a c b d", "b a c d", "b c a d", "c a b d", "c b a d"
	};
	struct dns_mx		 mx[4];
	char			 got[64];
	unsigned		 seen[nitems(perms)];
	size_t			 i, j, n;

	memset(seen, 0, sizeof seen);
	srandom(12345);
	for (i = 0; i < 6000; i++) {
		n = mx_parse("d:20 c:10 a:10 b:10", mx, nitems(mx));
		dns_mx_order(mx, n, real_rand);
		mx_names(mx, n, got, sizeof got);
		for (j = 0; j < nitems(perms); j++) {
			if (strcmp(got, perms[j]) == 0)
				break;
		}
		ck_assert_msg(j < nitems(perms), "order \"%s\"", got);
		seen[j]++;
	}
	for (j = 0; j < nitems(perms); j++)
		ck_assert_msg(seen[j] > 800 && seen[j] < 1200,
		    "\"%s\" seen %u times in 6000", perms[j], seen[j]);
}
END_TEST

/* Any input comes out sorted by preference, as a permutation. */
START_TEST(test_mx_order_property)
{
	struct dns_mx	mx[24], orig[24];
	size_t		i, j, k, n, found;

	srandom(777);
	for (i = 0; i < 500; i++) {
		n = (size_t)random() % nitems(mx);
		for (j = 0; j < n; j++) {
			util_snprintf(mx[j].host, sizeof mx[j].host, "h%zu", j);
			mx[j].pref = (unsigned)random() % 5;
		}
		memcpy(orig, mx, sizeof mx);
		dns_mx_order(mx, n, real_rand);
		for (j = 1; j < n; j++)
			ck_assert_uint_le(mx[j - 1].pref, mx[j].pref);
		for (j = 0; j < n; j++) {
			found = 0;
			for (k = 0; k < n; k++) {
				if (strcmp(mx[k].host, orig[j].host) == 0) {
					ck_assert_uint_eq(mx[k].pref,
					    orig[j].pref);
					found++;
				}
			}
			ck_assert_uint_eq(found, 1);
		}
	}
}
END_TEST

START_TEST(test_status_str)
{
	ck_assert_str_eq(dns_status_str(DNS_OK), "ok");
	ck_assert_str_eq(dns_status_str(DNS_TEMPFAIL), "tempfail");
	ck_assert_str_eq(dns_status_str(DNS_NXDOMAIN), "nxdomain");
	ck_assert_str_eq(dns_status_str(DNS_NULLMX), "nullmx");
	ck_assert_str_eq(dns_status_str(DNS_NOHOST), "nohost");
	ck_assert_str_eq(dns_status_str((enum dns_status)99), "unknown");
}
END_TEST

static const struct {
	const char	*in;
	const char	*csv;		/* NULL: refused */
	const char	*entry;		/* the entry the cause must name */
} server_settings[] = {
	{ "", "", NULL },
	{ "  \t ", "", NULL },
	{ "127.0.0.1", "127.0.0.1:53", NULL },
	{ "127.0.0.1:5353", "127.0.0.1:5353", NULL },
	{ "10.0.0.1:65535", "10.0.0.1:65535", NULL },
	{ "10.0.0.1:1", "10.0.0.1:1", NULL },
	{ "[::1]:5353", "[::1]:5353", NULL },
	{ "[::1]", "[::1]:53", NULL },
	{ "::1", "[::1]:53", NULL },
	{ "2001:DB8:0::1", "[2001:db8::1]:53", NULL },
	{ "[IPv6:::1]", NULL, "[IPv6:::1]" },
	{ " 192.0.2.1   198.51.100.7:1053\t[2001:db8::53]:53 ",
	  "192.0.2.1:53,198.51.100.7:1053,[2001:db8::53]:53", NULL },
	{ "localhost", NULL, "localhost" },
	{ "dns.example.com:53", NULL, "dns.example.com:53" },
	{ "1.2.3", NULL, "1.2.3" },
	{ "256.1.1.1", NULL, "256.1.1.1" },
	{ "1.2.3.4:0", NULL, "1.2.3.4:0" },
	{ "1.2.3.4:65536", NULL, "1.2.3.4:65536" },
	{ "1.2.3.4:", NULL, "1.2.3.4:" },
	{ "1.2.3.4:53x", NULL, "1.2.3.4:53x" },
	{ "1.2.3.4:-53", NULL, "1.2.3.4:-53" },
	{ "1.2.3.4,5.6.7.8", NULL, "1.2.3.4,5.6.7.8" },
	{ "[::1", NULL, "[::1" },
	{ "[::1]x", NULL, "[::1]x" },
	{ "[::1]:", NULL, "[::1]:" },
	{ "[::1]:99999", NULL, "[::1]:99999" },
	{ "[1.2.3.4]", NULL, "[1.2.3.4]" },
	{ "[]", NULL, "[]" },
	{ "::1::2", NULL, "::1::2" },
	{ "fe80::1%eth0", NULL, "fe80::1%eth0" },
	{ "192.0.2.1 bad 198.51.100.7", NULL, "bad" },
	{ "192.0.2.1 [::1]:0", NULL, "[::1]:0" },
};

START_TEST(test_parse_servers)
{
	char	*csv = (char *)"untouched", *cause = NULL, quoted[128];
	int	 rc;

	rc = dns_parse_servers(server_settings[_i].in, &csv, &cause);
	if (server_settings[_i].csv != NULL) {
		ck_assert_msg(rc == 0, "\"%s\": %s", server_settings[_i].in,
		    cause);
		ck_assert_str_eq(csv, server_settings[_i].csv);
		free(csv);
		return;
	}
	ck_assert_msg(rc == -1, "\"%s\" accepted as \"%s\"",
	    server_settings[_i].in, rc == 0 ? csv : "");
	ck_assert_str_eq(csv, "untouched");
	ck_assert_ptr_nonnull(cause);
	util_snprintf(quoted, sizeof quoted, "\"%s\"",
	    server_settings[_i].entry);
	ck_assert_msg(strstr(cause, quoted) != NULL, "\"%s\": cause \"%s\"",
	    server_settings[_i].in, cause);
	free(cause);
}
END_TEST

START_TEST(test_parse_servers_null)
{
	char	*csv = NULL, *cause = NULL;

	ck_assert_int_eq(dns_parse_servers(NULL, &csv, &cause), 0);
	ck_assert_str_eq(csv, "");
	free(csv);
}
END_TEST

/* A lookup's answer as the test keeps it. */
struct answer {
	int			 returned;	/* the request has returned */
	int			 called;
	struct dns_result	 res;
};

static struct event_base	*base;

static void
answer_cb(const struct dns_result *res, void *arg)
{
	struct answer	*a = arg;

	ck_assert_msg(a->returned, "called back before the request returned");
	ck_assert_msg(a->called == 0, "called back twice");
	a->called = 1;
	a->res = *res;
}

static void
never_cb(const struct dns_result *res, void *arg)
{
	ck_abort_msg("cancelled query %s called back (%s)", (char *)arg,
	    res->error);
}

static void
flag_cb(evutil_socket_t fd, short what, void *arg)
{
	*(int *)arg = 1;
}

/* Runs the loop until *flag is set or seconds pass; 0 if it was set. */
static int
run_until(const int *flag, double seconds)
{
	struct event	*ev;
	struct timeval	 tv;
	int		 expired = 0;

	ck_assert_ptr_nonnull(ev = evtimer_new(base, flag_cb, &expired));
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev, &tv);
	while (!*flag && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
	return *flag ? 0 : -1;
}

/* Runs the loop for a while, whatever happens. */
static void
run_for(double seconds)
{
	int	never = 0;

	run_until(&never, seconds);
}

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
start_mx(const char *domain, struct answer *a)
{
	memset(a, 0, sizeof *a);
	ck_assert_ptr_nonnull(dns_resolve_mx(domain, answer_cb, a));
	ck_assert_int_eq(a->called, 0);
	a->returned = 1;
}

static void
start_host(const char *host, struct answer *a)
{
	memset(a, 0, sizeof *a);
	ck_assert_ptr_nonnull(dns_resolve_host(host, answer_cb, a));
	ck_assert_int_eq(a->called, 0);
	a->returned = 1;
}

static void
wait_answer(struct answer *a, const char *what)
{
	ck_assert_msg(run_until(&a->called, 20) == 0,
	    "no answer for %s in 20 s", what);
}

static void
resolve_mx(const char *domain, struct answer *a)
{
	start_mx(domain, a);
	wait_answer(a, domain);
}

static void
resolve_host(const char *host, struct answer *a)
{
	start_host(host, a);
	wait_answer(a, host);
}

/* A target's address as text; checks the parts that never vary. */
static void
target_text(const struct dns_target *t, char *out, size_t size)
{
	const struct sockaddr_in	*sin = (const void *)&t->ss;
	const struct sockaddr_in6	*sin6 = (const void *)&t->ss;

	if (t->ss.ss_family == AF_INET) {
		ck_assert_uint_eq(t->sslen, sizeof *sin);
		ck_assert_uint_eq(sin->sin_port, 0);
		ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, out,
		    size));
	} else {
		ck_assert_int_eq(t->ss.ss_family, AF_INET6);
		ck_assert_uint_eq(t->sslen, sizeof *sin6);
		ck_assert_uint_eq(sin6->sin6_port, 0);
		ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr,
		    out, size));
	}
}

static void
assert_target(const struct dns_result *r, size_t i, const char *host,
    unsigned pref, const char *addr)
{
	char	text[INET6_ADDRSTRLEN];

	ck_assert_msg(i < r->ntargets, "target %zu of %zu", i, r->ntargets);
	target_text(&r->targets[i], text, sizeof text);
	ck_assert_msg(strcmp(r->targets[i].host, host) == 0 &&
	    r->targets[i].pref == pref && strcmp(text, addr) == 0,
	    "target %zu: %s %u %s, want %s %u %s", i, r->targets[i].host,
	    r->targets[i].pref, text, host, pref, addr);
}

static void
assert_status(const struct answer *a, enum dns_status want)
{
	ck_assert_msg(a->res.status == want, "status %s, want %s: %s",
	    dns_status_str(a->res.status), dns_status_str(want),
	    a->res.error);
	if (want == DNS_OK)
		ck_assert_uint_gt(a->res.ntargets, 0);
	else {
		ck_assert_uint_eq(a->res.ntargets, 0);
		ck_assert_msg(a->res.error[0] != '\0', "no error text");
	}
}

/* A loopback UDP socket; its port in *port. */
static int
udp_socket(int *port)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;
	int			fd;

	ck_assert_int_ne(fd = socket(AF_INET, SOCK_DGRAM, 0), -1);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
dns_up(const char *servers)
{
	char	*cause = NULL;

	ck_assert_ptr_nonnull(base = event_base_new());
	ck_assert_msg(dns_init(base, servers, &cause) == 0, "dns_init %s: %s",
	    servers, cause);
}

static void
dns_down(void)
{
	dns_shutdown();
	event_base_free(base);
	base = NULL;
}

/* The module asking a loopback port where nothing listens: every query
 * is refused at once. */
static void
dns_up_closed(void)
{
	char	setting[64];
	int	fd, port;

	fd = udp_socket(&port);
	close(fd);
	util_snprintf(setting, sizeof setting, "127.0.0.1:%d", port);
	dns_up(setting);
}

/*
 * The live server.  dnsmasq runs in the foreground with the records on
 * its command line; it is started before each live test and killed after
 * it by the parent process, so a failing test never leaves it behind.
 */
static pid_t	live_pid = -1;
static int	live_port;
static int	live_upstream = -1;	/* slow.test's server: never reads */
static char	live_error[512];

static const char *live_records[] = {
	"--mx-host=two.test,mx1.two.test,10",
	"--mx-host=two.test,mx2.two.test,20",
	"--host-record=mx1.two.test,127.0.0.2",
	"--host-record=mx2.two.test,127.0.0.3,::1",
	"--host-record=noMX.test,127.0.0.4",
	"--dns-rr=nullmx.test,15,000000",
	"--mx-host=eq.test,a.eq.test,10",
	"--mx-host=eq.test,b.eq.test,10",
	"--host-record=a.eq.test,127.0.1.1",
	"--host-record=b.eq.test,127.0.1.2",
	"--mx-host=nohost.test,gone.nohost.test,10",
	"--mx-host=mixed.test,gone.mixed.test,5",
	"--mx-host=mixed.test,mx1.two.test,10",
	"--mx-host=dup.test,mx1.two.test,10",
	"--mx-host=dup.test,alias.dup.test,20",
	"--host-record=alias.dup.test,127.0.0.2",
	"--host-record=alias.dup.test,127.0.0.5",
	"--host-record=v6only.test,::2",
	"--mx-host=big.test,hosts.big.test,10",
	"--mx-host=slowmx.test,host.slow.test,10",
	"--mx-host=partial.test,gone.partial.test,10",
	"--mx-host=partial.test,host.slow.test,20",
	"--local=/test/",
};

/* A loopback UDP port nothing uses just now, or -1. */
static int
free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;
	int			fd, port = -1;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* Starts dnsmasq on port; its pid, or -1 with live_error set. */
static pid_t
live_spawn(const char *path, int port, int upstream)
{
	char	*argv[16 + nitems(live_records) + 2 * MANY_MX + BIG_ADDRS];
	char	 portarg[32], slowarg[64];
	size_t	 n = 0, i, first;
	pid_t	 pid;
	int	 fd;

	argv[n++] = (char *)path;
	argv[n++] = (char *)"--keep-in-foreground";
	argv[n++] = (char *)"--conf-file=/dev/null";
	argv[n++] = (char *)"--no-resolv";
	argv[n++] = (char *)"--no-hosts";
	argv[n++] = (char *)"--no-poll";
	argv[n++] = (char *)"--bind-interfaces";
	argv[n++] = (char *)"--listen-address=127.0.0.1";
	argv[n++] = (char *)"--pid-file=";
	util_snprintf(portarg, sizeof portarg, "--port=%d", port);
	argv[n++] = portarg;
	util_snprintf(slowarg, sizeof slowarg,
	    "--server=/slow.test/127.0.0.1#%d", upstream);
	argv[n++] = slowarg;
	for (i = 0; i < nitems(live_records); i++)
		argv[n++] = (char *)live_records[i];
	first = n;
	/* many.test: mxNN with preference 20 - NN, so mx19 comes first. */
	for (i = 0; i < MANY_MX; i++) {
		xasprintf(&argv[n++], "--mx-host=many.test,mx%02zu.many.test,"
		    "%zu", i, MANY_MX - i);
		xasprintf(&argv[n++], "--host-record=mx%02zu.many.test,"
		    "127.0.2.%zu", i, i + 1);
	}
	for (i = 0; i < BIG_ADDRS; i++)
		xasprintf(&argv[n++], "--host-record=hosts.big.test,"
		    "127.0.3.%zu", i + 1);
	argv[n] = NULL;

	pid = fork();
	if (pid == 0) {
		if ((fd = open("/dev/null", O_WRONLY)) != -1)
			dup2(fd, STDOUT_FILENO);
		execv(path, argv);
		_exit(127);
	}
	for (i = first; i < n; i++)
		free(argv[i]);
	if (pid == -1)
		util_snprintf(live_error, sizeof live_error,
		    "cannot fork for dnsmasq: %s", strerror(errno));
	return pid;
}

/* Asks the server for two.test MX until it answers; 0 once it does. */
static int
live_ready(pid_t pid, int port, double deadline)
{
	static const unsigned char	query[] = {
		0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
		3, 't', 'w', 'o', 4, 't', 'e', 's', 't', 0,
		0x00, 0x0f, 0x00, 0x01,
	};
	struct sockaddr_in		 sin;
	struct pollfd			 pfd;
	unsigned char			 buf[512];
	int				 fd, status, rc = -1;

	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (now() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		sendto(fd, query, sizeof query, 0, (struct sockaddr *)&sin,
		    sizeof sin);
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) == 1 &&
		    recv(fd, buf, sizeof buf, 0) > 2 &&
		    buf[0] == 0x12 && buf[1] == 0x34) {
			rc = 0;
			break;
		}
	}
	close(fd);
	return rc;
}

static void
live_kill(void)
{
	double	deadline;
	int	status;

	if (live_pid <= 0)
		return;
	kill(live_pid, SIGTERM);
	deadline = now() + 3;
	while (waitpid(live_pid, &status, WNOHANG) == 0) {
		if (now() > deadline) {
			kill(live_pid, SIGKILL);
			waitpid(live_pid, &status, 0);
			break;
		}
		usleep(10000);
	}
	live_pid = -1;
}

static void
live_setup(void)
{
	const char		*path = getenv("DNSMASQ");
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof sin;
	int			 attempt, port;

	live_error[0] = '\0';
	live_pid = -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (path == NULL || *path == '\0')
		path = DNSMASQ_PATH;
	if (access(path, X_OK) == -1) {
		util_snprintf(live_error, sizeof live_error,
		    "dnsmasq not found at %s (%s): install the Debian package "
		    "dnsmasq-base", path, strerror(errno));
		return;
	}
	if ((live_upstream = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(live_upstream, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    getsockname(live_upstream, (struct sockaddr *)&sin, &len) == -1) {
		util_snprintf(live_error, sizeof live_error,
		    "upstream socket: %s", strerror(errno));
		return;
	}
	for (attempt = 0; attempt < 5; attempt++) {
		if ((port = free_port()) == -1) {
			util_snprintf(live_error, sizeof live_error,
			    "no free port: %s", strerror(errno));
			return;
		}
		if ((live_pid = live_spawn(path, port,
		    ntohs(sin.sin_port))) == -1)
			return;
		if (live_ready(live_pid, port, now() + 5) == 0) {
			live_port = port;
			return;
		}
		live_kill();
	}
	util_snprintf(live_error, sizeof live_error,
	    "dnsmasq (%s) did not answer on 127.0.0.1; see its messages "
	    "above", path);
}

static void
live_teardown(void)
{
	live_kill();
	if (live_upstream != -1)
		close(live_upstream);
	live_upstream = -1;
}

/* The servers setting naming the live server, with more entries around. */
static void
live_servers(char *out, size_t size, const char *before, const char *after)
{
	ck_assert_msg(live_error[0] == '\0', "%s", live_error);
	ck_assert_msg(live_pid > 0, "dnsmasq is not running");
	util_snprintf(out, size, "%s 127.0.0.1:%d %s", before, live_port,
	    after);
}

static void
live_up(void)
{
	char	servers[128];

	live_servers(servers, sizeof servers, "", "");
	dns_up(servers);
}

START_TEST(test_live_two)
{
	struct answer	a;

	live_up();
	resolve_mx("two.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 0);
	ck_assert_str_eq(a.res.error, "");
	ck_assert_uint_eq(a.res.ntargets, 3);
	assert_target(&a.res, 0, "mx1.two.test", 10, "127.0.0.2");
	assert_target(&a.res, 1, "mx2.two.test", 20, "127.0.0.3");
	assert_target(&a.res, 2, "mx2.two.test", 20, "::1");
	dns_down();
}
END_TEST

START_TEST(test_live_implicit)
{
	struct answer	a;

	live_up();
	resolve_mx("noMX.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 1);
	ck_assert_uint_eq(a.res.ntargets, 1);
	assert_target(&a.res, 0, "noMX.test", 0, "127.0.0.4");

	resolve_mx("nomx.test.", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 1);
	assert_target(&a.res, 0, "nomx.test", 0, "127.0.0.4");

	resolve_mx("v6only.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 1);
	ck_assert_uint_eq(a.res.ntargets, 1);
	assert_target(&a.res, 0, "v6only.test", 0, "::2");

	/* An exchanger's own name has no MX and no A of its domain. */
	resolve_mx("mx1.two.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 1);
	assert_target(&a.res, 0, "mx1.two.test", 0, "127.0.0.2");
	dns_down();
}
END_TEST

START_TEST(test_live_nxdomain)
{
	struct answer	a;

	live_up();
	resolve_mx("nope.test", &a);
	assert_status(&a, DNS_NXDOMAIN);
	ck_assert_str_eq(a.res.error, "MX lookup for nope.test: NXDOMAIN");
	dns_down();
}
END_TEST

START_TEST(test_live_nullmx)
{
	struct answer	a;

	live_up();
	resolve_mx("nullmx.test", &a);
	assert_status(&a, DNS_NULLMX);
	ck_assert_int_eq(a.res.implicit, 0);
	ck_assert_msg(strstr(a.res.error, "nullmx.test") != NULL &&
	    strstr(a.res.error, "null MX") != NULL, "error \"%s\"",
	    a.res.error);
	dns_down();
}
END_TEST

START_TEST(test_live_nohost)
{
	struct answer	a;

	live_up();
	/* The only exchanger has no address. */
	resolve_mx("nohost.test", &a);
	assert_status(&a, DNS_NOHOST);
	ck_assert_msg(strstr(a.res.error, "nohost.test") != NULL &&
	    strstr(a.res.error, "gone.nohost.test: NXDOMAIN") != NULL,
	    "error \"%s\"", a.res.error);

	/* The best exchanger has none; the next one is used. */
	resolve_mx("mixed.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, 1);
	assert_target(&a.res, 0, "mx1.two.test", 10, "127.0.0.2");

	/* An address two exchangers share is tried once, the first time. */
	resolve_mx("dup.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, 2);
	assert_target(&a.res, 0, "mx1.two.test", 10, "127.0.0.2");
	assert_target(&a.res, 1, "alias.dup.test", 20, "127.0.0.5");
	dns_down();
}
END_TEST

START_TEST(test_live_limits)
{
	struct answer	a;
	char		host[64], addr[32];
	size_t		i, j;

	live_up();
	/* Of 20 exchangers the 16 best are kept, best first. */
	resolve_mx("many.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, DNS_MAX_MX);
	for (i = 0; i < DNS_MAX_MX; i++) {
		util_snprintf(host, sizeof host, "mx%02zu.many.test",
		    MANY_MX - 1 - i);
		util_snprintf(addr, sizeof addr, "127.0.2.%zu", MANY_MX - i);
		assert_target(&a.res, i, host, (unsigned)i + 1, addr);
	}

	/* 40 addresses do not fit in UDP (c-ares goes over TCP); 32 kept. */
	resolve_mx("big.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, DNS_MAX_TARGETS);
	for (i = 0; i < a.res.ntargets; i++) {
		target_text(&a.res.targets[i], addr, sizeof addr);
		ck_assert_msg(strncmp(addr, "127.0.3.", 8) == 0, "%s", addr);
		ck_assert_str_eq(a.res.targets[i].host, "hosts.big.test");
		for (j = 0; j < i; j++)
			ck_assert_int_ne(memcmp(&a.res.targets[i].ss,
			    &a.res.targets[j].ss, a.res.targets[i].sslen), 0);
	}
	dns_down();
}
END_TEST

/* Equal preferences come in both orders over many lookups. */
START_TEST(test_live_equal)
{
	struct answer	a;
	int		afirst = 0, bfirst = 0, i;

	live_up();
	for (i = 0; i < 40; i++) {
		resolve_mx("eq.test", &a);
		assert_status(&a, DNS_OK);
		ck_assert_uint_eq(a.res.ntargets, 2);
		if (strcmp(a.res.targets[0].host, "a.eq.test") == 0) {
			assert_target(&a.res, 0, "a.eq.test", 10, "127.0.1.1");
			assert_target(&a.res, 1, "b.eq.test", 10, "127.0.1.2");
			afirst++;
		} else {
			assert_target(&a.res, 0, "b.eq.test", 10, "127.0.1.2");
			assert_target(&a.res, 1, "a.eq.test", 10, "127.0.1.1");
			bfirst++;
		}
	}
	ck_assert_msg(afirst > 0 && bfirst > 0, "a first %d times, b %d",
	    afirst, bfirst);
	dns_down();
}
END_TEST

START_TEST(test_live_host)
{
	struct answer	a;

	live_up();
	resolve_host("mx2.two.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_int_eq(a.res.implicit, 1);
	ck_assert_uint_eq(a.res.ntargets, 2);
	assert_target(&a.res, 0, "mx2.two.test", 0, "127.0.0.3");
	assert_target(&a.res, 1, "mx2.two.test", 0, "::1");

	resolve_host("nope.test", &a);
	assert_status(&a, DNS_NOHOST);
	ck_assert_str_eq(a.res.error, "address lookup for nope.test: NXDOMAIN");

	/* A host lookup never follows MX records. */
	resolve_host("two.test", &a);
	assert_status(&a, DNS_NOHOST);
	ck_assert_str_eq(a.res.error, "address lookup for two.test: NODATA");
	dns_down();
}
END_TEST

/* A server that never answers: TEMPFAIL after c-ares' tries. */
START_TEST(test_live_timeout)
{
	struct answer	a;
	char		servers[64];
	double		start, took;
	int		fd, port;

	fd = udp_socket(&port);
	util_snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
	dns_up(servers);
	start = now();
	resolve_mx("two.test", &a);
	took = now() - start;
	assert_status(&a, DNS_TEMPFAIL);
	ck_assert_str_eq(a.res.error, "MX lookup for two.test: timeout");
	ck_assert_msg(took > 1.5 && took < 10, "took %.1f s", took);
	dns_down();
	close(fd);
}
END_TEST

/* The first server never answers; the second one does. */
START_TEST(test_live_failover)
{
	struct answer	a;
	char		dead[32], servers[128];
	int		fd, port;

	fd = udp_socket(&port);
	util_snprintf(dead, sizeof dead, "127.0.0.1:%d", port);
	live_servers(servers, sizeof servers, dead, "");
	dns_up(servers);
	resolve_mx("two.test", &a);
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, 3);
	dns_down();
	close(fd);
}
END_TEST

/* A closed port, and a server refusing a name it does not serve. */
START_TEST(test_live_refused)
{
	struct answer	a;
	double		start;

	dns_up_closed();
	start = now();
	resolve_mx("two.test", &a);
	assert_status(&a, DNS_TEMPFAIL);
	ck_assert_str_eq(a.res.error,
	    "MX lookup for two.test: connection refused");
	ck_assert_msg(now() - start < 1.5, "took %.1f s", now() - start);
	resolve_host("mx1.two.test", &a);
	assert_status(&a, DNS_TEMPFAIL);
	ck_assert_str_eq(a.res.error,
	    "address lookup for mx1.two.test: connection refused");
	dns_down();

	live_up();
	resolve_mx("example.org", &a);
	assert_status(&a, DNS_TEMPFAIL);
	ck_assert_msg(strncmp(a.res.error, "MX lookup for example.org: ",
	    27) == 0, "error \"%s\"", a.res.error);
	dns_down();
}
END_TEST

/* New servers take new queries; queries in flight finish on the old. */
START_TEST(test_live_reload)
{
	struct answer	a, b;
	char		closed[64], servers[128], *cause = NULL;
	int		fd, port;

	fd = udp_socket(&port);
	close(fd);
	util_snprintf(closed, sizeof closed, "127.0.0.1:%d", port);
	live_up();
	start_mx("two.test", &a);
	ck_assert_int_eq(dns_set_servers(closed, &cause), 0);
	start_mx("two.test", &b);
	wait_answer(&a, "two.test on the old servers");
	wait_answer(&b, "two.test on the new servers");
	assert_status(&a, DNS_OK);
	ck_assert_uint_eq(a.res.ntargets, 3);
	assert_status(&b, DNS_TEMPFAIL);

	ck_assert_int_eq(dns_set_servers("127.0.0.1 junk", &cause), -1);
	ck_assert_msg(strstr(cause, "\"junk\"") != NULL, "cause %s", cause);
	free(cause);
	resolve_mx("two.test", &b);
	assert_status(&b, DNS_TEMPFAIL);

	live_servers(servers, sizeof servers, "", "");
	ck_assert_int_eq(dns_set_servers(servers, &cause), 0);
	resolve_mx("two.test", &a);
	assert_status(&a, DNS_OK);

	ck_assert_int_eq(dns_set_servers("", &cause), 0);
	ck_assert_int_eq(dns_set_servers(NULL, &cause), 0);
	run_for(0.1);
	dns_down();
}
END_TEST

/* Cancelled queries never call back, whatever stage they were in. */
START_TEST(test_live_cancel)
{
	struct dns_query	*q;
	struct answer		 a;

	live_up();
	dns_cancel(dns_resolve_mx("two.test", never_cb, (char *)"MX"));
	dns_cancel(dns_resolve_host("mx2.two.test", never_cb,
	    (char *)"host"));
	dns_cancel(dns_resolve_host("192.0.2.1", never_cb, (char *)"literal"));
	dns_cancel(dns_resolve_mx("a..b", never_cb, (char *)"bad name"));
	dns_cancel(NULL);

	/* The MX answer is in; the address lookups wait on the upstream. */
	q = dns_resolve_mx("slowmx.test", never_cb, (char *)"addresses");
	run_for(0.5);
	dns_cancel(q);

	resolve_mx("noMX.test", &a);
	assert_status(&a, DNS_OK);
	run_for(0.3);
	/* The lookups still in flight come back as the channel ends. */
	dns_down();
}
END_TEST

/*
 * Address lookups that time out make the domain TEMPFAIL, even beside an
 * exchanger that does not exist; a query cancelled meanwhile is freed
 * when its lookups time out too.
 */
START_TEST(test_live_slow)
{
	struct dns_query	*q;
	struct answer		 a, b;

	live_up();
	start_mx("slowmx.test", &a);
	start_mx("partial.test", &b);
	q = dns_resolve_mx("slowmx.test", never_cb, (char *)"slow");
	run_for(0.5);
	dns_cancel(q);
	wait_answer(&a, "slowmx.test");
	wait_answer(&b, "partial.test");
	assert_status(&a, DNS_TEMPFAIL);
	ck_assert_str_eq(a.res.error,
	    "address lookup for host.slow.test: timeout");
	assert_status(&b, DNS_TEMPFAIL);
	ck_assert_str_eq(b.res.error,
	    "address lookup for host.slow.test: timeout");
	run_for(0.3);
	dns_down();
}
END_TEST

/* Shutting down with lookups in flight calls nothing back, leaks nothing. */
START_TEST(test_shutdown_pending)
{
	struct answer	a;
	char		servers[64], *cause = NULL;
	int		fd, port;

	fd = udp_socket(&port);
	util_snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
	dns_up(servers);
	dns_resolve_mx("two.test", never_cb, (char *)"pending MX");
	dns_resolve_host("mx1.two.test", never_cb, (char *)"pending host");
	dns_cancel(dns_resolve_mx("noMX.test", never_cb, (char *)"cancelled"));
	ck_assert_int_eq(dns_set_servers(servers, &cause), 0);
	dns_resolve_mx("two.test", never_cb, (char *)"second channel");
	run_for(0.2);
	/* Answered, but not yet handed over. */
	dns_resolve_host("192.0.2.7", never_cb, (char *)"pending literal");
	dns_shutdown();
	dns_shutdown();

	/* The module starts again cleanly. */
	ck_assert_int_eq(dns_init(base, servers, &cause), 0);
	resolve_host("192.0.2.7", &a);
	assert_status(&a, DNS_OK);
	dns_down();
	close(fd);
}
END_TEST

static const struct {
	const char	*host;
	const char	*addr;		/* NULL: refused */
	const char	*name;		/* the target's host */
} literals[] = {
	{ "192.0.2.1", "192.0.2.1", "192.0.2.1" },
	{ "2001:db8::1", "2001:db8::1", "2001:db8::1" },
	{ "[::1]", "::1", "::1" },
	{ "[192.0.2.9]", "192.0.2.9", "192.0.2.9" },
	{ "[IPv6:2001:DB8::2]", "2001:db8::2", "2001:DB8::2" },
	{ "[ipv6:::1]", "::1", "::1" },
	{ "::ffff:192.0.2.3", "::ffff:192.0.2.3", "::ffff:192.0.2.3" },
	{ "[nope]", NULL, "[nope]" },
	{ "[::1", NULL, "[::1" },
	{ "[]", NULL, "[]" },
	{ "[IPv6:]", NULL, "[IPv6:]" },
	{ "", NULL, "" },
	{ ".", NULL, "." },
	{ "a..b", NULL, "a..b" },
	{ "bad name", NULL, "bad name" },
	{ "-\x01-", NULL, "-\\x01-" },
};

/* Literals are answered without asking: the server here refuses all. */
START_TEST(test_host_literal)
{
	struct answer	a;
	char		text[INET6_ADDRSTRLEN], want[128];

	dns_up_closed();
	resolve_host(literals[_i].host, &a);
	if (literals[_i].addr != NULL) {
		assert_status(&a, DNS_OK);
		ck_assert_int_eq(a.res.implicit, 1);
		ck_assert_uint_eq(a.res.ntargets, 1);
		ck_assert_str_eq(a.res.targets[0].host, literals[_i].name);
		ck_assert_uint_eq(a.res.targets[0].pref, 0);
		target_text(&a.res.targets[0], text, sizeof text);
		ck_assert_str_eq(text, literals[_i].addr);
	} else {
		assert_status(&a, DNS_NOHOST);
		util_snprintf(want, sizeof want,
		    "address lookup for %s: bad host name", literals[_i].name);
		ck_assert_str_eq(a.res.error, want);
	}
	dns_down();
}
END_TEST

static const struct {
	const char	*domain;
	const char	*shown;
} bad_domains[] = {
	{ "", "" },
	{ ".", "." },
	{ "..", ".." },
	{ "a..b", "a..b" },
	{ ".a", ".a" },
	{ "x y.test", "x y.test" },
	{ "a\nb", "a\\x0ab" },
	{ "[192.0.2.1]", "[192.0.2.1]" },
	{ "caf\xc3\xa9.test", "caf\xc3\xa9.test" },
};

/* A domain that cannot exist fails at once, still from the loop. */
START_TEST(test_bad_domain)
{
	struct answer	a;
	char		want[256];

	dns_up_closed();
	resolve_mx(bad_domains[_i].domain, &a);
	assert_status(&a, DNS_NXDOMAIN);
	util_snprintf(want, sizeof want, "MX lookup for %s: bad domain name",
	    bad_domains[_i].shown);
	ck_assert_str_eq(a.res.error, want);
	dns_down();
}
END_TEST

START_TEST(test_long_name)
{
	struct answer	a;
	char		name[600];
	size_t		i;

	for (i = 0; i + 1 < sizeof name; i++)
		name[i] = i % 10 == 9 ? '.' : 'a';
	name[sizeof name - 1] = '\0';
	dns_up_closed();
	resolve_mx(name, &a);
	assert_status(&a, DNS_NXDOMAIN);
	ck_assert_uint_lt(strlen(a.res.error), sizeof a.res.error);

	/* 253 octets may be asked for (and the server refuses); 254 not. */
	name[253] = '\0';
	resolve_host(name, &a);
	assert_status(&a, DNS_TEMPFAIL);
	name[253] = 'a';
	name[254] = '\0';
	resolve_host(name, &a);
	assert_status(&a, DNS_NOHOST);
	name[254] = '.';
	name[255] = '\0';
	resolve_mx(name, &a);
	assert_status(&a, DNS_NXDOMAIN);
	name[253] = '.';
	name[254] = '\0';
	resolve_mx(name, &a);
	assert_status(&a, DNS_TEMPFAIL);

	/* Labels of 63 octets at most. */
	memset(name, 'x', 63);
	util_strlcpy(name + 63, ".test", sizeof name - 63);
	resolve_mx(name, &a);
	assert_status(&a, DNS_TEMPFAIL);
	memset(name, 'x', 64);
	util_strlcpy(name + 64, ".test", sizeof name - 64);
	resolve_mx(name, &a);
	assert_status(&a, DNS_NXDOMAIN);
	ck_assert_str_eq(a.res.error, "MX lookup for "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    ".test: bad domain name");
	dns_down();
}
END_TEST

START_TEST(test_init_bad)
{
	char	*cause = NULL;

	ck_assert_ptr_nonnull(base = event_base_new());
	ck_assert_int_eq(dns_init(base, "127.0.0.1 bogus", &cause), -1);
	ck_assert_msg(strstr(cause, "\"bogus\"") != NULL, "cause %s", cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(dns_init(base, "127.0.0.1:5353 [::1]:5353", &cause),
	    0);
	ck_assert_int_eq(dns_set_servers("[::1]:0", &cause), -1);
	ck_assert_msg(strstr(cause, "\"[::1]:0\"") != NULL, "cause %s", cause);
	free(cause);
	dns_down();
}
END_TEST

static void
add_live(Suite *s, const char *name, const TTest *test)
{
	TCase	*tc;

	tc = tcase_create(name);
	tcase_add_unchecked_fixture(tc, live_setup, live_teardown);
	tcase_set_timeout(tc, LIVE_TIMEOUT);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *
dns_suite(void)
{
	Suite	*s = suite_create("dns");
	TCase	*tc;

	tc = tcase_create("order");
	tcase_add_loop_test(tc, test_mx_order, 0, nitems(orders));
	tcase_add_test(tc, test_mx_order_random);
	tcase_add_test(tc, test_mx_order_property);
	tcase_add_test(tc, test_status_str);
	suite_add_tcase(s, tc);

	tc = tcase_create("servers");
	tcase_add_loop_test(tc, test_parse_servers, 0, nitems(server_settings));
	tcase_add_test(tc, test_parse_servers_null);
	tcase_add_test(tc, test_init_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("offline");
	tcase_set_timeout(tc, LIVE_TIMEOUT);
	tcase_add_loop_test(tc, test_host_literal, 0, nitems(literals));
	tcase_add_loop_test(tc, test_bad_domain, 0, nitems(bad_domains));
	tcase_add_test(tc, test_long_name);
	tcase_add_test(tc, test_live_timeout);
	tcase_add_test(tc, test_shutdown_pending);
	suite_add_tcase(s, tc);

	add_live(s, "live_two", test_live_two);
	add_live(s, "live_implicit", test_live_implicit);
	add_live(s, "live_nxdomain", test_live_nxdomain);
	add_live(s, "live_nullmx", test_live_nullmx);
	add_live(s, "live_nohost", test_live_nohost);
	add_live(s, "live_limits", test_live_limits);
	add_live(s, "live_equal", test_live_equal);
	add_live(s, "live_host", test_live_host);
	add_live(s, "live_failover", test_live_failover);
	add_live(s, "live_refused", test_live_refused);
	add_live(s, "live_reload", test_live_reload);
	add_live(s, "live_cancel", test_live_cancel);
	add_live(s, "live_slow", test_live_slow);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(dns_suite());
	int	 failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
