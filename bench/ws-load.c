/*
 * WebSocket load for the chat benchmark: one process, many connections,
 * one epoll loop.  Only loopback targets.  A C program so that the load
 * generator takes as little as possible of the CPU it shares with the
 * server it measures.
 *
 *   ws-load roundtrips PORT TOKEN SECONDS SID...   sessions chatting
 *   ws-load idle PORT TOKEN HOLD_SECONDS SID...    connect, wait, hold
 *   ws-load turns PORT TOKEN COUNT SID              COUNT turns, one socket
 *
 * Prints one line of results as "key=value ..." on stdout.
 *
 * Frames are matched with substring checks, not decoded as JSON.  A round
 * trip is counted on an assistant_end whose content is not empty; such an
 * end with an empty content, an "error" event, a closed connection, a
 * protocol error or an end with no message in flight stops the run with a
 * message and exit status 1.  A refused handshake (a 503 under load) is
 * reported and that connection left out, as before.  At most 64
 * handshakes are in flight at a time (see wl_open_more()).
 *
 *   BENCH_SYNC=PATH   roundtrips: create PATH.ready once every session is
 *                     ready, start when PATH.go appears (20 s at most)
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>


#define WL_READ_SIZE      65536
#define WL_MAX_MESSAGE    (16 * 1024 * 1024)
#define WL_MAX_HEAD       16384
#define WL_EVENTS         512
#define WL_POLL_MS        200
#define WL_OPENING        64     /* handshakes in flight at most */

#define WL_OP_CONT        0x0
#define WL_OP_TEXT        0x1
#define WL_OP_BINARY      0x2
#define WL_OP_CLOSE       0x8
#define WL_OP_PING        0x9
#define WL_OP_PONG        0xa

#define WL_S(s)           (s), sizeof(s) - 1


typedef enum {
    WL_CONNECTING = 0,
    WL_HANDSHAKE,
    WL_OPEN,
    WL_CHATTING,
    WL_REFUSED
} wl_state_e;


typedef struct {
    unsigned char  *data;
    size_t          len;
    size_t          size;
} wl_buf_t;


typedef struct {
    double         *v;
    size_t          n;
    size_t          size;
} wl_samples_t;


typedef struct {
    int             fd;
    wl_state_e      state;
    const char     *sid;
    wl_buf_t        in;         /* read, not yet a whole frame */
    wl_buf_t        msg;        /* a fragmented text message so far */
    wl_buf_t        out;        /* to write */
    size_t          out_pos;
    double          sent_at;
    unsigned        want_out:1; /* EPOLLOUT asked for */
    unsigned        in_msg:1;   /* fragments being joined */
    unsigned        pending:1;  /* a user message awaits its end */
    unsigned        first:1;    /* a delta came since the last send */
    unsigned        ready:1;
} wl_conn_t;


typedef void (*wl_message_pt)(wl_conn_t *c, unsigned char *m, size_t n);
typedef int (*wl_done_pt)(void);


static void wl_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static double wl_now(void);
static void wl_sleep(double s);
static uint64_t wl_random(void);
static void wl_buf_add(wl_buf_t *b, const void *p, size_t n);
static void wl_sample(wl_samples_t *s, double v);
static double wl_pct(wl_samples_t *s, int p);
static int wl_has(unsigned char *m, size_t n, const char *s, size_t len);
static void wl_open(wl_conn_t *c, const char *sid);
static void wl_connected(wl_conn_t *c);
static void wl_flush(wl_conn_t *c);
static void wl_send_frame(wl_conn_t *c, int op, const void *p, size_t n);
static void wl_send_msg(wl_conn_t *c, const char *text);
static void wl_event(wl_conn_t *c, uint32_t events);
static void wl_read(wl_conn_t *c);
static size_t wl_head(wl_conn_t *c, unsigned char *p, size_t n);
static size_t wl_frames(wl_conn_t *c, unsigned char *p, size_t n);
static void wl_frame(wl_conn_t *c, int b0, unsigned char *p, size_t n);
static void wl_control(wl_conn_t *c, int b0, unsigned char *p, size_t n);
static void wl_message(wl_conn_t *c, unsigned char *m, size_t n);
static int wl_is_end(wl_conn_t *c, unsigned char *m, size_t n);
static void wl_pump(double deadline, wl_done_pt done);
static void wl_open_more(void);


static int            wl_epfd;
static int            wl_port;
static const char    *wl_token;
static wl_conn_t     *wl_conns;
static size_t         wl_nconns;
static size_t         wl_live;       /* not refused */
static size_t         wl_nchatting;
static size_t         wl_nready;
static size_t         wl_nopened;
static size_t         wl_nsettled;   /* ready, chatting or refused */
static char         **wl_sids;
static unsigned long  wl_seq;
static unsigned long  wl_sent;       /* messages sent, timed */
static unsigned long  wl_trips;
static double         wl_stop;
static uint64_t       wl_rand_state;
static wl_message_pt  wl_on_message;
static wl_samples_t   wl_lat;
static wl_samples_t   wl_ttfd;
static unsigned char  wl_scratch[WL_READ_SIZE];

static const char     wl_first_text[] =
    "Thank you for waiting, I will refund you today.";
static const char     wl_next_text[] =
    "Is there anything else I can do for you today?";


static void
wl_fatal(const char *fmt, ...)
{
    va_list  ap;

    fflush(stdout);
    fputs("ws-load: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}


static double
wl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void
wl_sleep(double s)
{
    struct timespec  ts;

    ts.tv_sec = (time_t) s;
    ts.tv_nsec = (long) ((s - ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
        /* void */
    }
}


/* xorshift64*: masks and keys need not be secret, only to vary */

static uint64_t
wl_random(void)
{
    wl_rand_state ^= wl_rand_state >> 12;
    wl_rand_state ^= wl_rand_state << 25;
    wl_rand_state ^= wl_rand_state >> 27;
    return wl_rand_state * 0x2545f4914f6cdd1dULL;
}


static void
wl_buf_add(wl_buf_t *b, const void *p, size_t n)
{
    size_t  size;

    if (n == 0) {
        return;
    }

    if (b->len + n > b->size) {
        size = b->size ? b->size : 256;
        while (size < b->len + n) {
            size *= 2;
        }

        b->data = realloc(b->data, size);
        if (b->data == NULL) {
            wl_fatal("out of memory");
        }

        b->size = size;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
}


static void
wl_sample(wl_samples_t *s, double v)
{
    if (s->n == s->size) {
        s->size = s->size ? s->size * 2 : 4096;
        s->v = realloc(s->v, s->size * sizeof(double));
        if (s->v == NULL) {
            wl_fatal("out of memory");
        }
    }

    s->v[s->n++] = v;
}


static int
wl_cmp(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


/* the sample at round((n - 1) * p / 100), 0 without samples */

static double
wl_pct(wl_samples_t *s, int p)
{
    if (s->n == 0) {
        return 0;
    }

    qsort(s->v, s->n, sizeof(double), wl_cmp);
    return s->v[(size_t) ((double) ((s->n - 1) * p) / 100 + 0.5)];
}


static int
wl_has(unsigned char *m, size_t n, const char *s, size_t len)
{
    return memmem(m, n, s, len) != NULL;
}


/* a non-blocking connect: the request goes once it is writable */

static void
wl_open(wl_conn_t *c, const char *sid)
{
    int                  fd, one;
    struct sockaddr_in   sin;
    struct epoll_event   ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        wl_fatal("socket: %s", strerror(errno));
    }

    /* a frame of ours is a whole message: no need to wait for more */
    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(wl_port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1
        && errno != EINPROGRESS)
    {
        wl_fatal("connect: %s", strerror(errno));
    }

    c->fd = fd;
    c->sid = sid;
    c->state = WL_CONNECTING;
    c->want_out = 1;

    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(wl_epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        wl_fatal("epoll_ctl: %s", strerror(errno));
    }
}


static void
wl_connected(wl_conn_t *c)
{
    int            err, i, n;
    char           req[1024];
    socklen_t      len;
    unsigned char  key[18];
    char           b64[25];
    uint64_t       r;

    static const char  tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    err = 0;
    len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err) {
        wl_fatal("connect: %s", strerror(err));
    }

    /* 16 random bytes in base64: 22 characters and "==" */
    for (i = 0; i < 16; i += 8) {
        r = wl_random();
        memcpy(key + i, &r, 8);
    }

    key[16] = key[17] = 0;

    for (i = 0; i < 6; i++) {
        b64[4 * i] = tab[key[3 * i] >> 2];
        b64[4 * i + 1] = tab[((key[3 * i] & 3) << 4) | (key[3 * i + 1] >> 4)];
        b64[4 * i + 2] = tab[((key[3 * i + 1] & 0xf) << 2)
                             | (key[3 * i + 2] >> 6)];
        b64[4 * i + 3] = tab[key[3 * i + 2] & 0x3f];
    }

    b64[22] = b64[23] = '=';
    b64[24] = '\0';

    n = snprintf(req, sizeof(req),
                 "GET /sessions/%s/chat HTTP/1.1\r\nHost: localhost\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "Authorization: Bearer %s\r\n\r\n",
                 c->sid, b64, wl_token);
    if (n < 0 || (size_t) n >= sizeof(req)) {
        wl_fatal("session id or token too long");
    }

    c->state = WL_HANDSHAKE;
    wl_buf_add(&c->out, req, n);
    wl_flush(c);
}


/* writes what it can; EPOLLOUT is asked for only while bytes wait */

static void
wl_flush(wl_conn_t *c)
{
    ssize_t             n;
    struct epoll_event  ev;

    while (c->out_pos < c->out.len) {
        n = write(c->fd, c->out.data + c->out_pos, c->out.len - c->out_pos);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            if (errno != EAGAIN) {
                wl_fatal("session %s: write: %s", c->sid, strerror(errno));
            }

            if (!c->want_out) {
                ev.events = EPOLLIN | EPOLLOUT;
                ev.data.ptr = c;
                (void) epoll_ctl(wl_epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = 1;
            }

            return;
        }

        c->out_pos += n;
    }

    c->out.len = 0;
    c->out_pos = 0;

    if (c->want_out) {
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        (void) epoll_ctl(wl_epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = 0;
    }
}


/* a client frame: FIN, masked (RFC 6455 5.3) */

static void
wl_send_frame(wl_conn_t *c, int op, const void *p, size_t n)
{
    size_t                i, h;
    uint32_t              mask;
    unsigned char         head[14], *m;
    const unsigned char  *s;

    head[0] = 0x80 | op;

    if (n < 126) {
        head[1] = 0x80 | n;
        h = 2;

    } else if (n < 65536) {
        head[1] = 0x80 | 126;
        head[2] = n >> 8;
        head[3] = n & 0xff;
        h = 4;

    } else {
        head[1] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            head[2 + i] = (uint64_t) n >> (56 - 8 * i);
        }
        h = 10;
    }

    mask = (uint32_t) wl_random();
    memcpy(head + h, &mask, 4);
    h += 4;

    wl_buf_add(&c->out, head, h);
    wl_buf_add(&c->out, p, n);

    m = c->out.data + c->out.len - n;
    s = head + h - 4;
    for (i = 0; i < n; i++) {
        m[i] ^= s[i & 3];
    }

    wl_flush(c);
}


static void
wl_send_msg(wl_conn_t *c, const char *text)
{
    char  json[512];
    int   n;

    n = snprintf(json, sizeof(json),
                 "{\"type\":\"user_message\",\"client_msg_id\":\"b-%lu\","
                 "\"content\":\"%s\"}", ++wl_seq, text);

    wl_send_frame(c, WL_OP_TEXT, json, n);
    c->sent_at = wl_now();
    c->first = 0;
    c->pending = 1;
    wl_sent++;
}


static void
wl_event(wl_conn_t *c, uint32_t events)
{
    if (c->state == WL_REFUSED) {
        return;
    }

    if (c->state == WL_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }

        wl_connected(c);

    } else if ((events & EPOLLOUT) && c->out.len) {
        wl_flush(c);
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        wl_read(c);
    }
}


/*
 * One read into a buffer shared by all connections; only the part of a
 * frame that is not whole yet is kept, in the connection's own buffer:
 * thousands of idle connections hold nothing.
 */

static void
wl_read(wl_conn_t *c)
{
    ssize_t         n;
    size_t          len, used;
    unsigned char  *p;

    n = read(c->fd, wl_scratch, sizeof(wl_scratch));

    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return;
        }

        wl_fatal("session %s: read: %s", c->sid, strerror(errno));
    }

    if (n == 0) {
        wl_fatal("session %s: the server closed the connection%s", c->sid,
                 c->state == WL_HANDSHAKE ? " before its response" : "");
    }

    if (c->in.len) {
        wl_buf_add(&c->in, wl_scratch, n);
        p = c->in.data;
        len = c->in.len;

    } else {
        p = wl_scratch;
        len = n;
    }

    used = 0;

    if (c->state == WL_HANDSHAKE) {
        used = wl_head(c, p, len);
        if (c->state == WL_REFUSED) {
            return;
        }
    }

    if (c->state != WL_HANDSHAKE) {
        used += wl_frames(c, p + used, len - used);
    }

    if (p == c->in.data) {
        memmove(c->in.data, c->in.data + used, len - used);
        c->in.len = len - used;

    } else {
        wl_buf_add(&c->in, p + used, len - used);
    }
}


/* the 101, or a refusal (a 503 under load, say): reported, not fatal */

static size_t
wl_head(wl_conn_t *c, unsigned char *p, size_t n)
{
    unsigned char  *end;
    size_t          i;

    end = memmem(p, n, "\r\n\r\n", 4);
    if (end == NULL) {
        if (n > WL_MAX_HEAD) {
            wl_fatal("session %s: a response header over %d bytes", c->sid,
                     WL_MAX_HEAD);
        }

        return 0;
    }

    if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
        for (i = 0; i < 40 && i < n && p[i] >= 0x20 && p[i] < 0x7f; i++) {
            /* void */
        }

        fprintf(stderr, "handshake refused: %.*s\n", (int) i, (char *) p);
        (void) close(c->fd);
        c->state = WL_REFUSED;
        c->in.len = 0;
        wl_live--;
        wl_nsettled++;
        return n;
    }

    c->state = WL_OPEN;
    return end + 4 - p;
}


/* whole frames from p; returns the bytes they took */

static size_t
wl_frames(wl_conn_t *c, unsigned char *p, size_t n)
{
    unsigned char  *start, *last;
    uint64_t        len;
    size_t          off, i;

    start = p;
    last = p + n;

    while (last - p >= 2) {
        if (p[1] & 0x80) {
            wl_fatal("session %s: a masked frame from the server", c->sid);
        }

        if (p[0] & 0x70) {
            wl_fatal("session %s: a frame with reserved bits set (0x%02x)",
                     c->sid, p[0]);
        }

        len = p[1] & 0x7f;
        off = 2;

        if (len == 126) {
            if (last - p < 4) {
                break;
            }

            len = (p[2] << 8) | p[3];
            off = 4;

        } else if (len == 127) {
            if (last - p < 10) {
                break;
            }

            len = 0;
            for (i = 2; i < 10; i++) {
                len = (len << 8) | p[i];
            }

            off = 10;
        }

        if (len > WL_MAX_MESSAGE) {
            wl_fatal("session %s: a frame of %llu bytes", c->sid,
                     (unsigned long long) len);
        }

        if ((uint64_t) (last - p) < off + len) {
            break;
        }

        wl_frame(c, p[0], p + off, len);
        p += off + len;
    }

    return p - start;
}


static void
wl_frame(wl_conn_t *c, int b0, unsigned char *p, size_t n)
{
    int  op, fin;

    op = b0 & 0x0f;
    fin = b0 & 0x80;

    if (op >= 0x8) {
        wl_control(c, b0, p, n);
        return;
    }

    switch (op) {

    case WL_OP_TEXT:
        if (c->in_msg) {
            wl_fatal("session %s: a text frame inside a fragmented message",
                     c->sid);
        }

        if (fin) {
            wl_message(c, p, n);
            return;
        }

        c->msg.len = 0;
        wl_buf_add(&c->msg, p, n);
        c->in_msg = 1;
        return;

    case WL_OP_CONT:
        if (!c->in_msg) {
            wl_fatal("session %s: a continuation frame with no message",
                     c->sid);
        }

        if (c->msg.len + n > WL_MAX_MESSAGE) {
            wl_fatal("session %s: a message over %d bytes", c->sid,
                     WL_MAX_MESSAGE);
        }

        wl_buf_add(&c->msg, p, n);

        if (fin) {
            c->in_msg = 0;
            wl_message(c, c->msg.data, c->msg.len);
            c->msg.len = 0;
        }

        return;

    case WL_OP_BINARY:
        wl_fatal("session %s: a binary frame from the server", c->sid);

    default:
        wl_fatal("session %s: a frame with the reserved opcode 0x%x", c->sid,
                 op);
    }
}


/* ping is answered with the same payload; a close is never expected */

static void
wl_control(wl_conn_t *c, int b0, unsigned char *p, size_t n)
{
    int  op, code;

    op = b0 & 0x0f;

    if (!(b0 & 0x80) || n > 125) {
        wl_fatal("session %s: a fragmented or long control frame", c->sid);
    }

    switch (op) {

    case WL_OP_PING:
        wl_send_frame(c, WL_OP_PONG, p, n);
        return;

    case WL_OP_PONG:
        return;

    case WL_OP_CLOSE:
        code = n >= 2 ? (p[0] << 8) | p[1] : 1005;
        wl_send_frame(c, WL_OP_CLOSE, p, n >= 2 ? 2 : 0);
        wl_fatal("session %s: the server closed the WebSocket: %d %.*s",
                 c->sid, code, n > 2 ? (int) n - 2 : 0, (char *) p + 2);

    default:
        wl_fatal("session %s: a frame with the reserved opcode 0x%x", c->sid,
                 op);
    }
}


static void
wl_message(wl_conn_t *c, unsigned char *m, size_t n)
{
    if (wl_has(m, n, WL_S("\"type\":\"error\""))) {
        wl_fatal("session %s: the server sent an error: %.*s", c->sid,
                 n > 300 ? 300 : (int) n, (char *) m);
    }

    wl_on_message(c, m, n);
}


/* an assistant_end with a reply: "content":"" would be an empty one */

static int
wl_is_end(wl_conn_t *c, unsigned char *m, size_t n)
{
    if (!wl_has(m, n, WL_S("\"type\":\"assistant_end\""))) {
        return 0;
    }

    if (!wl_has(m, n, WL_S("\"content\":\""))
        || wl_has(m, n, WL_S("\"content\":\"\"")))
    {
        wl_fatal("session %s: assistant_end without content: %.*s", c->sid,
                 n > 300 ? 300 : (int) n, (char *) m);
    }

    if (!c->pending) {
        wl_fatal("session %s: assistant_end with no message in flight: %.*s",
                 c->sid, n > 300 ? 300 : (int) n, (char *) m);
    }

    c->pending = 0;
    return 1;
}


/* events until the deadline, no connection left, or done() says so */

static void
wl_pump(double deadline, wl_done_pt done)
{
    int                 i, n, ms;
    double              now;
    struct epoll_event  evs[WL_EVENTS];

    for ( ;; ) {
        now = wl_now();
        if (now >= deadline) {
            return;
        }

        ms = (int) ((deadline - now) * 1000) + 1;
        n = epoll_wait(wl_epfd, evs, WL_EVENTS,
                       ms < WL_POLL_MS ? ms : WL_POLL_MS);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            wl_fatal("epoll_wait: %s", strerror(errno));
        }

        for (i = 0; i < n; i++) {
            wl_event(evs[i].data.ptr, evs[i].events);
        }

        wl_open_more();

        if (wl_live == 0 || (done && done())) {
            return;
        }
    }
}


/* the bench's sessions have their opening stored: "ready" is all */

static void
wl_opening_message(wl_conn_t *c, unsigned char *m, size_t n)
{
    if (c->state != WL_CHATTING
        && (wl_has(m, n, WL_S("\"type\":\"ready\""))
            || wl_has(m, n, WL_S("\"type\":\"assistant_end\""))))
    {
        c->state = WL_CHATTING;
        wl_nchatting++;
        wl_nsettled++;
    }
}


static int
wl_all_chatting(void)
{
    return wl_nchatting >= wl_live;
}


static void
wl_open_all(char **sids, size_t n)
{
    wl_conns = calloc(n, sizeof(wl_conn_t));
    if (wl_conns == NULL) {
        wl_fatal("out of memory");
    }

    wl_nconns = n;
    wl_live = n;
    wl_sids = sids;
    wl_open_more();
}


/*
 * Thousands of handshakes at once would leave the workers' heaps at the
 * high-water mark of the requests in flight, and the idle figure (RSS per
 * connection) would measure that: 7.7 KiB against 7.1 with at most 64 in
 * flight at 2,000 connections.
 */

static void
wl_open_more(void)
{
    while (wl_nopened < wl_nconns && wl_nopened - wl_nsettled < WL_OPENING) {
        wl_open(&wl_conns[wl_nopened], wl_sids[wl_nopened]);
        wl_nopened++;
    }
}


static void
wl_opening(double seconds)
{
    wl_on_message = wl_opening_message;
    wl_pump(wl_now() + seconds, wl_all_chatting);

    if (wl_nchatting < wl_live) {
        wl_fatal("%zu of %zu sessions ready after %.0f s", wl_nchatting,
                 wl_live, seconds);
    }
}


/* BENCH_SYNC: the caller snapshots counters between ".ready" and ".go" */

static void
wl_sync(void)
{
    int          fd;
    char         path[4096];
    const char  *sync;
    double       until;

    sync = getenv("BENCH_SYNC");
    if (sync == NULL || *sync == '\0') {
        return;
    }

    snprintf(path, sizeof(path), "%s.ready", sync);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1) {
        wl_fatal("%s: %s", path, strerror(errno));
    }

    (void) close(fd);

    snprintf(path, sizeof(path), "%s.go", sync);
    until = wl_now() + 20;
    while (access(path, F_OK) != 0 && wl_now() < until) {
        wl_sleep(0.05);
    }
}


static void
wl_trip_message(wl_conn_t *c, unsigned char *m, size_t n)
{
    double  now;

    if (c->pending && !c->first
        && wl_has(m, n, WL_S("\"type\":\"assistant_delta\"")))
    {
        c->first = 1;
        wl_sample(&wl_ttfd, (wl_now() - c->sent_at) * 1000);
    }

    if (wl_is_end(c, m, n)) {
        now = wl_now();
        wl_sample(&wl_lat, (now - c->sent_at) * 1000);
        wl_trips++;

        if (now < wl_stop) {
            wl_send_msg(c, wl_next_text);
        }
    }
}


static void
wl_roundtrips(double seconds)
{
    size_t  i;
    double  start, el;

    wl_opening(30);

    if (wl_live == 0) {
        wl_fatal("no session connected");
    }

    wl_sync();

    wl_sent = 0;
    start = wl_now();
    wl_stop = start + seconds;
    wl_on_message = wl_trip_message;

    for (i = 0; i < wl_nconns; i++) {
        if (wl_conns[i].state == WL_CHATTING) {
            wl_send_msg(&wl_conns[i], wl_first_text);
        }
    }

    wl_pump(wl_stop, NULL);

    el = wl_now() - start;
    printf("roundtrips=%lu sent=%lu seconds=%.2f rps=%.1f p50_ms=%.2f "
           "p99_ms=%.2f ttfd_p50_ms=%.2f ttfd_p99_ms=%.2f\n",
           wl_trips, wl_sent, el, wl_trips / el, wl_pct(&wl_lat, 50),
           wl_pct(&wl_lat, 99), wl_pct(&wl_ttfd, 50), wl_pct(&wl_ttfd, 99));
}


static void
wl_idle_message(wl_conn_t *c, unsigned char *m, size_t n)
{
    if (!c->ready && wl_has(m, n, WL_S("\"type\":\"ready\""))) {
        c->ready = 1;
        wl_nready++;
        wl_nsettled++;
    }
}


static int
wl_all_ready(void)
{
    return wl_nready >= wl_live;
}


static void
wl_idle(double hold)
{
    wl_on_message = wl_idle_message;
    wl_pump(wl_now() + 120, wl_all_ready);

    printf("ready=%zu\n", wl_nready);
    fflush(stdout);

    /* hold them open while the caller measures */
    wl_pump(wl_now() + hold, NULL);
}


static unsigned long  wl_turns_want;


static void
wl_turn_message(wl_conn_t *c, unsigned char *m, size_t n)
{
    char  text[64];

    if (wl_is_end(c, m, n)) {
        wl_trips++;

        if (wl_trips < wl_turns_want) {
            snprintf(text, sizeof(text), "Turn %lu, please answer.",
                     wl_trips);
            wl_send_msg(c, text);
        }
    }
}


static int
wl_turns_done(void)
{
    return wl_trips >= wl_turns_want;
}


static void
wl_turns(unsigned long count)
{
    wl_opening(10);

    if (wl_live == 0) {
        wl_fatal("no session connected");
    }

    /* the caller samples RSS at "turn=0" and at the end */
    printf("turn=0\n");
    fflush(stdout);
    wl_sleep(1);

    wl_turns_want = count;
    wl_on_message = wl_turn_message;
    wl_send_msg(&wl_conns[0], "Turn one, please answer.");
    wl_pump(wl_now() + 600, wl_turns_done);

    printf("turns=%lu\n", wl_trips);
    fflush(stdout);

    if (wl_trips < count) {
        wl_fatal("%lu of %lu turns in 600 s", wl_trips, count);
    }

    wl_on_message = wl_idle_message;
    wl_pump(wl_now() + 3, NULL);
}


static int
wl_safe(const char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((unsigned char) *s <= 0x20 || *s == 0x7f) {
            return 0;
        }
    }

    return 1;
}


int
main(int argc, char **argv)
{
    int          i;
    char        *mode, *end;
    double       arg;

    if (argc < 6) {
        fprintf(stderr, "usage: ws-load roundtrips|idle|turns PORT TOKEN N "
                "SID...\n");
        return 2;
    }

    mode = argv[1];
    wl_port = atoi(argv[2]);
    wl_token = argv[3];
    arg = strtod(argv[4], &end);

    if (wl_port <= 0 || wl_port > 65535 || *end != '\0' || arg < 0) {
        fprintf(stderr, "ws-load: bad PORT or N\n");
        return 2;
    }

    for (i = 3; i < argc; i++) {
        if (!wl_safe(argv[i])) {
            fprintf(stderr, "ws-load: a space or control character in "
                    "\"%s\"\n", argv[i]);
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    wl_rand_state = ((uint64_t) getpid() << 32) ^ (uint64_t) time(NULL)
                    ^ (uint64_t) (wl_now() * 1e9) ^ 0x9e3779b97f4a7c15ULL;

    wl_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (wl_epfd == -1) {
        wl_fatal("epoll_create1: %s", strerror(errno));
    }

    if (strcmp(mode, "roundtrips") == 0) {
        wl_open_all(argv + 5, argc - 5);
        wl_roundtrips(arg);

    } else if (strcmp(mode, "idle") == 0) {
        wl_open_all(argv + 5, argc - 5);
        wl_idle(arg);

    } else if (strcmp(mode, "turns") == 0) {
        wl_open_all(argv + 5, 1);
        wl_turns((unsigned long) arg);

    } else {
        fprintf(stderr, "usage: ws-load roundtrips|idle|turns PORT TOKEN N "
                "SID...\n");
        return 2;
    }

    return 0;
}
