/*
 * check_direct.c: output of a plain socket bufferevent written from the
 * loop (direct.c), over a socketpair.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "direct.h"

static struct event_base	*base;
static struct bufferevent	*bev;
static struct direct		 d;
static int			 peer;		/* the other end */
static int			 written;	/* write callbacks */
static size_t			 left_at_cb;	/* output then, summed */
static short			 events;	/* event callbacks' flags */

static void
write_cb(struct bufferevent *b, void *arg)
{
	(void)arg;
	direct_written(&d);
	written++;
	left_at_cb += evbuffer_get_length(bufferevent_get_output(b));
}

static void
event_cb(struct bufferevent *b, short what, void *arg)
{
	(void)b;
	(void)arg;
	events |= what;
}

static void
setup(void)
{
	int	sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(bev);
	bufferevent_setcb(bev, NULL, write_cb, event_cb, NULL);
	memset(&d, 0, sizeof d);
	direct_attach(&d, bev);
	peer = sv[1];
	written = 0;
	left_at_cb = 0;
	events = 0;
}

static void
teardown(void)
{
	direct_detach(&d);
	bufferevent_free(bev);
	close(peer);
	event_base_free(base);
}

/* One turn of the loop; 1 (nothing left to wait for) is no error. */
static void
turn(void)
{
	ck_assert_int_ne(event_base_loop(base, EVLOOP_NONBLOCK), -1);
}

/* What the peer has to read now, at most size octets. */
static ssize_t
peer_read(char *buf, size_t size)
{
	ssize_t	n = read(peer, buf, size);

	return n == -1 && errno == EAGAIN ? 0 : n;
}

/* Replies added in one turn leave together, in that turn, unaided. */
START_TEST(test_written_in_turn)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	char		 buf[256];
	ssize_t		 n;

	evbuffer_add_printf(out, "250-first\r\n");
	evbuffer_add_printf(out, "250-second\r\n");
	evbuffer_add_printf(out, "250 third\r\n");
	/* Nothing leaves until the loop runs, and writing stays off. */
	ck_assert_int_eq(peer_read(buf, sizeof buf), 0);
	ck_assert_int_eq(bufferevent_get_enabled(bev) & EV_WRITE, 0);
	turn();
	n = peer_read(buf, sizeof buf);
	ck_assert_int_eq(n, 34);
	ck_assert(memcmp(buf, "250-first\r\n250-second\r\n250 third\r\n",
	    34) == 0);
	ck_assert_int_eq(written, 1);
	ck_assert_uint_eq(left_at_cb, 0);
	ck_assert_int_eq(evbuffer_get_length(out), 0);
	/* The bufferevent was never asked to write. */
	ck_assert_int_eq(bufferevent_get_enabled(bev) & EV_WRITE, 0);

	/* The next reply, the same way. */
	evbuffer_add_printf(out, "221 bye\r\n");
	turn();
	ck_assert_int_eq(peer_read(buf, sizeof buf), 9);
	ck_assert_int_eq(written, 2);
}
END_TEST

/*
 * More than the socket takes: the rest goes through the bufferevent,
 * whole and in order, and writing is off again once it has drained.
 */
START_TEST(test_full_socket)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	static char	 data[4 * 1024 * 1024], got[sizeof data];
	size_t		 have = 0, i;
	ssize_t		 n;
	int		 turns = 0;

	for (i = 0; i < sizeof data; i++)
		data[i] = (char)(i * 7 + i / 4096);
	evbuffer_add(out, data, sizeof data);
	turn();
	ck_assert_int_gt(evbuffer_get_length(out), 0);
	ck_assert_int_eq(written, 0);
	ck_assert_int_ne(bufferevent_get_enabled(bev) & EV_WRITE, 0);
	while (have < sizeof data) {
		ck_assert_int_lt(++turns, 100000);
		n = peer_read(got + have, sizeof got - have);
		ck_assert_int_ge(n, 0);
		have += (size_t)n;
		turn();
	}
	ck_assert(memcmp(got, data, sizeof data) == 0);
	ck_assert_int_eq(evbuffer_get_length(out), 0);
	ck_assert_int_ge(written, 1);
	ck_assert_int_eq(bufferevent_get_enabled(bev) & EV_WRITE, 0);

	/* Back to writing from the loop. */
	written = 0;
	left_at_cb = 0;
	evbuffer_add_printf(out, "250 ok\r\n");
	turn();
	ck_assert_int_eq(peer_read(got, sizeof got), 8);
	ck_assert_int_eq(written, 1);
	ck_assert_uint_eq(left_at_cb, 0);
}
END_TEST

/* Detached while queued (the bufferevent goes to TLS, say): not written. */
START_TEST(test_detached)
{
	struct evbuffer	*out = bufferevent_get_output(bev);
	char		 buf[64];

	evbuffer_add_printf(out, "250 one\r\n");
	direct_detach(&d);
	turn();
	ck_assert_int_eq(peer_read(buf, sizeof buf), 0);
	ck_assert_int_eq(written, 0);
	/* Attached again, what waits leaves with what comes next. */
	direct_attach(&d, bev);
	evbuffer_add_printf(out, "250 two\r\n");
	turn();
	ck_assert_int_eq(peer_read(buf, sizeof buf), 18);
	ck_assert(memcmp(buf, "250 one\r\n250 two\r\n", 18) == 0);
	ck_assert_int_eq(written, 1);
}
END_TEST

/* Pieces added by the write callback, as a message body is fed. */
static int	feed_left;

static void
feed_cb(struct bufferevent *b, void *arg)
{
	char	piece[1024];

	write_cb(b, arg);
	if (feed_left > 0) {
		memset(piece, 'a' + feed_left, sizeof piece);
		feed_left--;
		evbuffer_add(bufferevent_get_output(b), piece, sizeof piece);
	}
}

/*
 * A peer that keeps up does not keep the loop: two writes of an output
 * a turn, then the bufferevent writes the rest, a turn each, until it
 * has drained.
 */
START_TEST(test_turn_bounded)
{
	char	piece[1024], got[16 * 1024];
	size_t	have = 0;
	ssize_t	n;
	int	i, turns = 0;

	bufferevent_setcb(bev, NULL, feed_cb, event_cb, NULL);
	feed_left = 9;
	memset(piece, 'a' + 10, sizeof piece);
	evbuffer_add(bufferevent_get_output(bev), piece, sizeof piece);
	ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK),
	    -1);
	ck_assert_int_eq(written, 2);
	ck_assert_int_ne(bufferevent_get_enabled(bev) & EV_WRITE, 0);
	while (have < 10 * sizeof piece) {
		ck_assert_int_lt(++turns, 1000);
		turn();
		n = peer_read(got + have, sizeof got - have);
		ck_assert_int_ge(n, 0);
		have += (size_t)n;
	}
	ck_assert_uint_eq(have, 10 * sizeof piece);
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(got[i * 1024], 'a' + 10 - i);
	turn();
	ck_assert_int_eq(written, 10);
	ck_assert_int_eq(feed_left, 0);
	ck_assert_int_eq(bufferevent_get_enabled(bev) & EV_WRITE, 0);
}
END_TEST

/* A peer that went away: the bufferevent reports it, as before. */
START_TEST(test_peer_gone)
{
	evbuffer_add_printf(bufferevent_get_output(bev), "250 ok\r\n");
	close(peer);
	peer = -1;
	turn();
	turn();
	ck_assert_int_ne(events & BEV_EVENT_ERROR, 0);
	ck_assert_int_ne(events & BEV_EVENT_WRITING, 0);
	ck_assert_int_eq(written, 0);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("direct");
	TCase	*tc = tcase_create("direct");
	SRunner	*sr;
	int	 failed;

	signal(SIGPIPE, SIG_IGN);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_written_in_turn);
	tcase_add_test(tc, test_full_socket);
	tcase_add_test(tc, test_detached);
	tcase_add_test(tc, test_turn_bounded);
	tcase_add_test(tc, test_peer_gone);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
