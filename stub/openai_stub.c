/*
 * openai-stub: a stand-in for OpenAI's Chat Completions API, for local runs
 * without an OpenAI key, for the test suite and for benchmarks.  It is NOT a
 * model: replies are made up by fixed rules from the conversation and are
 * deterministic (same request, same reply).  See stub/README.md.
 *
 * Build (needs only build-essential and libjansson-dev):
 *
 *     cc -O2 -o build/openai-stub stub/openai_stub.c -ljansson
 *
 * or `make -C stub`.  Run:
 *
 *     openai-stub --listen 127.0.0.1:PORT [--delay-ms N] [--tokens N]
 *                 [--log FILE] [--pid FILE] [--daemon]
 *
 * One thread, non-blocking sockets, level-triggered epoll; tokens are paced
 * by a timer heap in the event loop (it never sleeps).
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>


#define STUB_VERSION   "1.0"
#define MAX_HEADER     (64 * 1024)
#define MAX_BODY       (1024 * 1024)
#define IN_LIMIT       (MAX_HEADER + MAX_BODY + 64 * 1024)
#define BUSY_IN_LIMIT  (64 * 1024)   /* bytes buffered while answering */
#define MAX_EVENTS     512


/* ------------------------------------------------------------------------
 * Growable byte buffers (always NUL-terminated)
 */

typedef struct {
    char    *p;
    size_t   len;
    size_t   cap;
} buf_t;


static void
die_oom(void)
{
    fprintf(stderr, "openai-stub: out of memory\n");
    exit(2);
}


static void
buf_grow(buf_t *b, size_t extra)
{
    size_t  cap;
    char   *p;

    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        die_oom();
    }
    b->p = p;
    b->cap = cap;
}


static void
buf_add(buf_t *b, const void *d, size_t n)
{
    buf_grow(b, n);
    if (n) {
        memcpy(b->p + b->len, d, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
}


static void
buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}


static void buf_printf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list  ap, aq;
    int      n;

    buf_grow(b, 64);
    va_start(ap, fmt);
    va_copy(aq, ap);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(aq);
        return;
    }
    if ((size_t) n >= b->cap - b->len) {
        buf_grow(b, (size_t) n);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, aq);
    }
    va_end(aq);
    b->len += (size_t) n;
}


static void
buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}


/* A JSON string literal (quotes included); s must be valid UTF-8. */
static void
buf_json_str(buf_t *b, const char *s, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      ch;
    size_t             i;
    char              *o;

    buf_grow(b, n * 6 + 2);
    o = b->p + b->len;
    *o++ = '"';
    for (i = 0; i < n; i++) {
        ch = (unsigned char) s[i];
        switch (ch) {
        case '"':  *o++ = '\\'; *o++ = '"'; break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        default:
            if (ch < 0x20) {
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[ch >> 4]; *o++ = hex[ch & 15];
            } else {
                *o++ = (char) ch;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t) (o - b->p);
    b->p[b->len] = '\0';
}


/* ------------------------------------------------------------------------
 * Globals: options, counters, loop state
 */

static const char  *opt_listen;
static int          opt_delay_ms = 20;
static int          opt_tokens;          /* 0: natural reply length */
static const char  *opt_log;
static const char  *opt_pid;
static const char  *opt_key;            /* NULL: any Bearer token */
static int          opt_daemon;

static FILE        *g_log;
static int          g_ep = -1;
static int          g_lfd = -1;
static int          g_sfd = -1;
static int          g_reserve_fd = -1;
static uint64_t     g_now;               /* monotonic ms, per loop turn */
static uint64_t     g_start;
static unsigned long long  g_chat_id;
static int          g_pid_written;

static struct {
    unsigned long long  requests;        /* all but /health, /stats, /last */
    unsigned long long  chat_requests;
    unsigned long long  streams;
    unsigned long long  streams_completed;
    unsigned long long  completions;     /* non-stream 200 answers */
    unsigned long long  errors;          /* answers with status >= 400 */
    unsigned long long  client_aborts;   /* client left before the end */
    unsigned long long  cut;
    unsigned long long  malformed;
    unsigned long long  nodone;
    unsigned long long  hangs;
    unsigned long long  tokens;
    unsigned long long  connections_total;
    long long           connections_active;
} st;

static json_t      *g_last;              /* last chat request, for GET /last */

static buf_t        g_scratch;


static uint64_t
mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/* ------------------------------------------------------------------------
 * Connections, requests, response plans
 */

enum {
    C_READ = 0,     /* reading a request */
    C_WAIT,         /* answer decided, waiting before the first byte */
    C_STREAM,       /* streaming tokens */
    C_HANG,         /* [[hang]]: sent a little, sends nothing more */
    C_DRAIN,        /* answer queued, close once written */
    C_LINGER        /* rejected: our side shut, discarding input a while */
};

typedef struct { uint32_t off, len; } tok_t;

typedef struct {
    tok_t  *v;
    int     n;
    int     cap;
} toks_t;

typedef struct {
    int         status;
    int         stream;
    int         close_after;
    uint64_t    wait_ms;        /* before the first byte */

    /* fixed answers (errors, non-stream completions, other routes) */
    buf_t       fixed;
    size_t      fixed_send;     /* < fixed.len: send a part, then... */
    int         fixed_then;     /* 0 done, 1 close (cut), 2 hang */

    /* streams */
    buf_t       text;
    toks_t      toks;
    int         emit_n;
    int         step;
    int         delay;
    int         cut_at;
    int         mal_at;
    int         hang;
    int         nodone;
    int         utf8split;
    int         include_usage;
    int         prompt_tokens;
    const char *finish;
    buf_t       head;           /* data: {"id":...,"choices":[ */
    buf_t       pending;        /* rest of an event split mid-character */

    /* for the log */
    int         tokens_sent;
    int         tokens_total;
    char        model[80];
    char        trig[160];
    int         counted_stream;
} plan_t;

typedef struct conn_s  conn_t;

struct conn_s {
    int         fd;
    int         hidx;           /* timer heap index, -1 none */
    uint64_t    deadline;
    int         state;
    int         want_out;
    int         close_when_flushed;
    int         linger;
    int         dead;
    conn_t     *next_dead;

    buf_t       in;
    buf_t       out;
    size_t      out_pos;

    /* request being parsed */
    int         hdr_done;
    size_t      hdr_len;
    long long   clen;
    int         chunked;
    int         expect_continue;
    int         sent_continue;
    int         keepalive;
    int         auth_ok;
    char        method[16];
    char        path[256];
    char        fail_hdr[256];
    char        reply_file[512];
    buf_t       dec;            /* decoded chunked body */

    plan_t     *plan;
    uint64_t    t_start;
    char        peer[64];
};

static conn_t     **g_conns;        /* by fd */
static int          g_conns_n;
static conn_t      *g_dead;


/* ------------------------------------------------------------------------
 * Timer heap (one timer per connection at most)
 */

static conn_t     **heap;
static int          heap_n, heap_cap;


static void
heap_swap(int i, int j)
{
    conn_t  *t = heap[i];

    heap[i] = heap[j];
    heap[j] = t;
    heap[i]->hidx = i;
    heap[j]->hidx = j;
}


static void
heap_up(int i)
{
    int  p;

    while (i > 0) {
        p = (i - 1) / 2;
        if (heap[p]->deadline <= heap[i]->deadline) {
            break;
        }
        heap_swap(i, p);
        i = p;
    }
}


static void
heap_down(int i)
{
    int  l, r, m;

    for (;;) {
        l = 2 * i + 1;
        r = l + 1;
        m = i;
        if (l < heap_n && heap[l]->deadline < heap[m]->deadline) {
            m = l;
        }
        if (r < heap_n && heap[r]->deadline < heap[m]->deadline) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(i, m);
        i = m;
    }
}


static void
timer_del(conn_t *c)
{
    int  i = c->hidx;

    if (i < 0) {
        return;
    }
    heap_n--;
    if (i != heap_n) {
        heap[i] = heap[heap_n];
        heap[i]->hidx = i;
        heap_down(i);
        heap_up(i);
    }
    c->hidx = -1;
}


static void
timer_set(conn_t *c, uint64_t ms)
{
    timer_del(c);
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 256;
        heap = realloc(heap, sizeof(conn_t *) * (size_t) heap_cap);
        if (heap == NULL) {
            die_oom();
        }
    }
    c->deadline = g_now + ms;
    heap[heap_n] = c;
    c->hidx = heap_n++;
    heap_up(c->hidx);
}


/* ------------------------------------------------------------------------
 * Text helpers
 */

static int
is_word_byte(unsigned char ch)
{
    return isalnum(ch);
}


/* ASCII case-insensitive search for needle at a word start. */
static int
ci_word(const char *h, size_t n, const char *needle)
{
    size_t  m = strlen(needle), i;

    if (m == 0 || m > n) {
        return 0;
    }
    for (i = 0; i + m <= n; i++) {
        if (i > 0 && isalpha((unsigned char) h[i - 1])) {
            continue;
        }
        if (strncasecmp(h + i, needle, m) == 0) {
            return 1;
        }
    }
    return 0;
}


static int
ci_any(const char *h, size_t n, const char *const *list)
{
    for (; *list; list++) {
        if (ci_word(h, n, *list)) {
            return 1;
        }
    }
    return 0;
}


static int
ci_count(const char *h, size_t n, const char *const *list)
{
    int     count = 0;
    size_t  m, i;

    for (; *list; list++) {
        m = strlen(*list);
        for (i = 0; i + m <= n; i++) {
            if (i > 0 && isalpha((unsigned char) h[i - 1])) {
                continue;
            }
            if (strncasecmp(h + i, *list, m) == 0) {
                count++;
                i += m - 1;
            }
        }
    }
    return count;
}


static size_t
utf8_len(unsigned char ch)
{
    if (ch >= 0xf0) {
        return 4;
    }
    if (ch >= 0xe0) {
        return 3;
    }
    if (ch >= 0xc0) {
        return 2;
    }
    return 1;
}


/*
 * Word-ish tokens with their leading spaces, roughly as OpenAI's tokenizer
 * cuts text: "Hello", " there", ",", " I've", "\n\n"; every non-ASCII
 * character is a token of its own.  Returns the count; fills t if given.
 */
static int
tokenize(const char *s, size_t n, toks_t *t)
{
    size_t          i = 0, st0;
    unsigned char   ch;
    int             count = 0;

    while (i < n) {
        st0 = i;
        while (i < n && s[i] == ' ') {
            i++;
        }
        if (i < n) {
            ch = (unsigned char) s[i];
            if (ch == '\n' || ch == '\r' || ch == '\t') {
                while (i < n && (s[i] == '\n' || s[i] == '\r'
                                 || s[i] == '\t'))
                {
                    i++;
                }
            } else if (is_word_byte(ch)) {
                while (i < n
                       && (is_word_byte((unsigned char) s[i])
                           || (s[i] == '\'' && i + 1 < n
                               && isalpha((unsigned char) s[i + 1]))))
                {
                    i++;
                }
            } else if (ch >= 0x80) {
                i += utf8_len(ch);
                while (i < n && ((unsigned char) s[i] & 0xc0) == 0x80) {
                    i++;
                }
                if (i > n) {
                    i = n;
                }
            } else {
                i++;
            }
        }
        if (t) {
            if (t->n == t->cap) {
                t->cap = t->cap ? t->cap * 2 : 64;
                t->v = realloc(t->v, sizeof(tok_t) * (size_t) t->cap);
                if (t->v == NULL) {
                    die_oom();
                }
            }
            t->v[t->n].off = (uint32_t) st0;
            t->v[t->n].len = (uint32_t) (i - st0);
            t->n++;
        }
        count++;
    }
    return count;
}


static uint32_t
fnv1a(const char *s, size_t n)
{
    uint32_t  h = 2166136261u;
    size_t    i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char) s[i];
        h *= 16777619u;
    }
    return h;
}


/* The text of a message's content: a string or an array of text parts. */
static void
content_text(json_t *content, buf_t *out)
{
    size_t   i;
    json_t  *part, *text;

    if (json_is_string(content)) {
        buf_add(out, json_string_value(content), json_string_length(content));
        return;
    }
    if (json_is_array(content)) {
        json_array_foreach(content, i, part) {
            text = json_object_get(part, "text");
            if (json_is_string(text)) {
                if (out->len) {
                    buf_adds(out, " ");
                }
                buf_add(out, json_string_value(text),
                        json_string_length(text));
            }
        }
    }
}


/* ------------------------------------------------------------------------
 * Failure triggers: [[fail:429]], [[slow:500]], ... in the last user
 * message or the X-Stub-Fail header.
 */

typedef struct {
    int   fail;
    int   slow;
    int   delay;
    int   cut;
    int   malformed;
    int   nodone;
    int   hang;
    int   json_nonsense;
    int   json_range;
    int   utf8;
    char  desc[160];
} trig_t;


static void
trig_init(trig_t *t)
{
    memset(t, 0, sizeof(*t));
    t->slow = -1;
    t->delay = -1;
}


static int
trig_num(const char *s, size_t n)
{
    long  v = 0;
    size_t i;

    for (i = 0; i < n && isdigit((unsigned char) s[i]); i++) {
        v = v * 10 + (s[i] - '0');
        if (v > 3600000) {
            v = 3600000;
        }
    }
    return i ? (int) v : -1;
}


/* One trigger without its brackets, e.g. "fail:429". */
static int
trig_item(trig_t *t, const char *s, size_t n)
{
    int  v, known = 1;

#define IS(lit)   (n == sizeof(lit) - 1 && strncasecmp(s, lit, n) == 0)
#define PFX(lit)  (n > sizeof(lit) - 1 && strncasecmp(s, lit, sizeof(lit) - 1) == 0)

    if (PFX("fail:")) {
        v = trig_num(s + 5, n - 5);
        if (v >= 400 && v <= 599) {
            t->fail = v;
        } else {
            known = 0;
        }
    } else if (PFX("slow:")) {
        v = trig_num(s + 5, n - 5);
        known = v >= 0;
        if (known) {
            t->slow = v;
        }
    } else if (PFX("delay:")) {
        v = trig_num(s + 6, n - 6);
        known = v >= 0;
        if (known) {
            t->delay = v;
        }
    } else if (IS("cut")) {
        t->cut = 1;
    } else if (IS("malformed")) {
        t->malformed = 1;
    } else if (IS("nodone")) {
        t->nodone = 1;
    } else if (IS("hang")) {
        t->hang = 1;
    } else if (IS("json:nonsense")) {
        t->json_nonsense = 1;
    } else if (IS("json:range")) {
        t->json_range = 1;
    } else if (IS("utf8")) {
        t->utf8 = 1;
    } else {
        known = 0;
    }

#undef IS
#undef PFX

    if (known && strlen(t->desc) + n + 5 < sizeof(t->desc)) {
        strcat(t->desc, "[[");
        strncat(t->desc, s, n);
        strcat(t->desc, "]]");
    }
    return known;
}


static void
trig_scan(trig_t *t, const char *s, size_t n)
{
    const char  *p = s, *end = s + n, *o, *c;

    while ((o = memmem(p, (size_t) (end - p), "[[", 2)) != NULL) {
        c = memmem(o + 2, (size_t) (end - o - 2), "]]", 2);
        if (c == NULL) {
            break;
        }
        if (c - o - 2 <= 64) {
            trig_item(t, o + 2, (size_t) (c - o - 2));
        }
        p = c + 2;
    }
}


/* X-Stub-Fail: "[[fail:429]]" or "fail:429, slow:200" */
static void
trig_header(trig_t *t, const char *s)
{
    size_t  n = strlen(s), i, j;

    if (memmem(s, n, "[[", 2)) {
        trig_scan(t, s, n);
        return;
    }
    for (i = 0; i < n; i = j) {
        while (i < n && (s[i] == ',' || s[i] == ' ' || s[i] == ';')) {
            i++;
        }
        for (j = i; j < n && s[j] != ',' && s[j] != ' ' && s[j] != ';'; j++) {
            /* void */
        }
        if (j > i) {
            trig_item(t, s + i, j - i);
        }
    }
}


static void
trig_merge(trig_t *t, const trig_t *u)
{
    if (u->fail) t->fail = u->fail;
    if (u->slow >= 0) t->slow = u->slow;
    if (u->delay >= 0) t->delay = u->delay;
    t->cut |= u->cut;
    t->malformed |= u->malformed;
    t->nodone |= u->nodone;
    t->hang |= u->hang;
    t->json_nonsense |= u->json_nonsense;
    t->json_range |= u->json_range;
    t->utf8 |= u->utf8;
    if (strlen(t->desc) + strlen(u->desc) < sizeof(t->desc)) {
        strcat(t->desc, u->desc);
    }
}


/* The text without [[...]] markers, trimmed. */
static void
strip_markers(const char *s, size_t n, buf_t *out)
{
    const char  *p = s, *end = s + n, *o, *c;
    size_t       a, b;

    out->len = 0;
    while (p < end) {
        o = memmem(p, (size_t) (end - p), "[[", 2);
        c = o ? memmem(o + 2, (size_t) (end - o - 2), "]]", 2) : NULL;
        if (o == NULL || c == NULL || c - o - 2 > 64) {
            buf_add(out, p, (size_t) (end - p));
            break;
        }
        buf_add(out, p, (size_t) (o - p));
        p = c + 2;
    }
    buf_grow(out, 0);
    a = 0;
    b = out->len;
    while (a < b && isspace((unsigned char) out->p[a])) a++;
    while (b > a && isspace((unsigned char) out->p[b - 1])) b--;
    memmove(out->p, out->p + a, b - a);
    out->len = b - a;
    out->p[out->len] = '\0';
}


/* ------------------------------------------------------------------------
 * The persona and the judge
 */

static const char *const RUDE[] = {
    "calm down", "not my problem", "whatever", "shut up", "deal with it",
    "your problem", "stupid", NULL
};

static const char *const STEP[] = {
    "refund", "replace", "will", "today", "tomorrow", "by ", NULL
};

static const char *const SOFT[] = {
    "sorry", "apolog", "understand", "frustrat", "hear you", NULL
};

static const char *const POLITE[] = {
    "sorry", "apolog", "understand", "frustrat", "thank", "please",
    "appreciat", "hear you", NULL
};

#define OPENING_DEFAULT \
    "I've been waiting for over a week and my order still hasn't arrived. " \
    "This is the third time I'm contacting you. What are you going to do " \
    "about it?"

#define FILLER \
    " I have been a loyal customer for years, and honestly I expected much" \
    " better from you."

#define UTF8_LINE \
    "Zo\xc3\xab here \xe2\x98\x95 \xe2\x80\x94 d\xc3\xa9j\xc3\xa0 vu, " \
    "na\xc3\xafve caf\xc3\xa9 cr\xc3\xa8me \xf0\x9f\x98\x80 " \
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e! "


/* "Opening: ..." (or "Opening line:", "Opener:", "First line:") */
static int
find_opening(const char *sys, size_t n, buf_t *out)
{
    static const char *const keys[] = {
        "opening line:", "opening:", "opener:", "first line:", NULL
    };
    const char   *line = sys, *end = sys + n, *eol, *p, *e;
    const char   *const *k;
    size_t        m;

    while (line < end) {
        eol = memchr(line, '\n', (size_t) (end - line));
        if (eol == NULL) {
            eol = end;
        }
        p = line;
        while (p < eol && (isspace((unsigned char) *p) || *p == '-'
                           || *p == '*' || *p == '>' || *p == '#'))
        {
            p++;
        }
        for (k = keys; *k; k++) {
            m = strlen(*k);
            if ((size_t) (eol - p) >= m && strncasecmp(p, *k, m) == 0) {
                p += m;
                e = eol;
                while (p < e && isspace((unsigned char) *p)) p++;
                while (e > p && isspace((unsigned char) e[-1])) e--;
                if (e - p >= 2 && *p == '"' && e[-1] == '"') {
                    p++;
                    e--;
                } else if (e - p >= 6 && memcmp(p, "\xe2\x80\x9c", 3) == 0
                           && memcmp(e - 3, "\xe2\x80\x9d", 3) == 0)
                {
                    p += 3;
                    e -= 3;
                }
                if (e > p) {
                    buf_add(out, p, (size_t) (e - p));
                    return 1;
                }
            }
        }
        line = eol + 1;
    }
    return 0;
}


/* A few words of what the trainee said, for the reply to quote. */
static void
make_echo(const char *s, size_t n, buf_t *out)
{
    size_t  i = 0, start;
    int     words = 0;

    while (i < n && words < 6) {
        while (i < n && isspace((unsigned char) s[i])) i++;
        if (i >= n) {
            break;
        }
        start = i;
        while (i < n && !isspace((unsigned char) s[i])) i++;
        if (out->len + (i - start) > 60) {
            break;
        }
        if (out->len) {
            buf_adds(out, " ");
        }
        buf_add(out, s + start, i - start);
        words++;
    }
    if (out->len == 0 && n) {
        /* one long word: cut at a character boundary */
        i = n < 60 ? n : 60;
        while (i > 0 && i < n && ((unsigned char) s[i] & 0xc0) == 0x80) i--;
        buf_add(out, s, i);
    }
    for (i = 0; i < out->len; i++) {
        if (out->p[i] == '"') {
            out->p[i] = '\'';
        }
    }
    while (out->len && strchr(".,!?;:'", out->p[out->len - 1])) {
        out->len--;
    }
    out->p[out->len] = '\0';
}


/*
 * The persona is not fooled by games either (issue 8, item 5): the same
 * kinds of checks as the rules' assessment, simpler.  Function words: a
 * real sentence is built on them, a pasted keyword list has few.
 */
static const char *const FUNCTION_WORDS[] = {
    "a", "an", "the", "i", "you", "we", "it", "they", "he", "she", "me",
    "us", "my", "your", "our", "this", "that", "is", "are", "was", "be",
    "will", "can", "have", "has", "do", "to", "of", "for", "in", "on", "at",
    "with", "and", "or", "but", "so", "if", "not", "i'm", "i'll", "we'll",
    "it's", "that's", "you're", "don't", "would", "could", "when", "let",
    "there", NULL
};

enum { GAME_NONE = 0, GAME_LIST, GAME_REPEAT, GAME_FILLER };


/* Lower-case letters and digits, every other run one space, padded. */
static void
game_norm(const char *s, size_t n, buf_t *out)
{
    size_t          i;
    char           *p;
    unsigned char   ch;

    /* at most n + 2 bytes: written in place, not a buf_add() a byte */
    buf_grow(out, n + 2);
    p = out->p + out->len;
    *p++ = ' ';
    for (i = 0; i < n; i++) {
        ch = (unsigned char) s[i];
        if (isalnum(ch) || ch >= 0x80) {
            *p++ = (char) tolower(ch);
        } else if (p[-1] != ' ') {
            *p++ = ' ';
        }
    }
    if (p[-1] != ' ') {
        *p++ = ' ';
    }
    *p = '\0';
    out->len = (size_t) (p - out->p);
}


static int
game_of(const char *user, size_t un, const char *sys, size_t sn,
    const char *prev, size_t pn)
{
    buf_t        a = {0}, b = {0}, c = {0}, w = {0};
    size_t       i, st, words = 0, fn = 0, topic = 0, longw = 0;
    int          game = GAME_NONE;
    const char  *const *f;

    /* words, function words */
    for (i = 0; i <= un; i++) {
        if (i < un && (isalnum((unsigned char) user[i]) || user[i] == '\''
                       || (unsigned char) user[i] >= 0x80))
        {
            continue;
        }
        st = i;
        while (st > 0 && (isalnum((unsigned char) user[st - 1])
                          || user[st - 1] == '\''
                          || (unsigned char) user[st - 1] >= 0x80))
        {
            st--;
        }
        if (st == i) {
            continue;
        }
        words++;
        for (f = FUNCTION_WORDS; *f; f++) {
            if (strlen(*f) == i - st && strncasecmp(user + st, *f, i - st) == 0)
            {
                fn++;
                break;
            }
        }
    }

    /* a keyword list: 6 words or more, under 30% function words */
    if (words >= 6 && fn * 100 < words * 30) {
        return GAME_LIST;
    }

    /* said before, by either side, or the persona's brief: a copy */
    game_norm(user, un, &a);
    game_norm(prev, pn, &b);
    game_norm(sys, sn, &c);

    if (a.len >= 24 && (memmem(b.p, b.len, a.p, a.len)
                        || memmem(c.p, c.len, a.p, a.len)))
    {
        game = GAME_REPEAT;

    } else if (words >= 30) {
        /* filler: under 1 in 20 of its words of 5+ bytes said before */
        for (i = 1; i < a.len; i = st + 1) {
            st = i;
            while (a.p[st] != ' ') st++;
            if (st - i >= 5) {
                w.len = 0;
                buf_add(&w, a.p + i - 1, st - i + 2);
                topic += memmem(b.p, b.len, w.p, w.len) != NULL;
                longw++;
            }
        }
        if (topic * 20 < longw) {
            game = GAME_FILLER;
        }
    }

    buf_free(&a);
    buf_free(&b);
    buf_free(&c);
    buf_free(&w);
    return game;
}


static void
persona_reply(const char *sys, size_t sn, int has_user, const char *user,
    size_t un, const char *prev, size_t pn, int utf8, buf_t *out)
{
    buf_t      echo = {0};
    uint32_t   v;
    int        game;
    const char *e;

    if (utf8) {
        buf_adds(out, UTF8_LINE);
    }
    if (!has_user) {
        if (!find_opening(sys, sn, out)) {
            buf_adds(out, OPENING_DEFAULT);
        }
        return;
    }
    if (un == 0) {
        buf_adds(out, "Hello? Are you still there? I'm waiting for an "
                      "answer.");
        return;
    }

    make_echo(user, un, &echo);
    e = echo.p;
    v = fnv1a(user, un) & 1;
    game = game_of(user, un, sys, sn, prev, pn);

    if (game == GAME_LIST) {
        buf_adds(out, "Are you just listing words at me? That isn't an "
                      "answer. Talk to me properly: what are you going to "
                      "do?");
    } else if (game == GAME_REPEAT) {
        buf_adds(out, "You already said that. Repeating it doesn't help "
                      "me. What are you actually going to do?");
    } else if (game == GAME_FILLER) {
        buf_adds(out, "Sorry, what does any of that have to do with my "
                      "problem? Please stick to the point.");
    } else if (ci_any(user, un, RUDE)) {
        if (v == 0) {
            buf_printf(out, "\"%s\"? Excuse me? Don't you dare talk to me "
                       "like that! I'm getting really angry now. Get me "
                       "your manager!", e);
        } else {
            buf_printf(out, "Unbelievable. \"%s\"? That attitude is exactly "
                       "why I'm so angry. I want to speak to a manager, "
                       "now!", e);
        }
    } else if (ci_any(user, un, STEP)) {
        if (v == 0) {
            buf_printf(out, "Okay, \"%s\". That's what I needed to hear. "
                       "Thank you, that works for me.", e);
        } else {
            buf_printf(out, "Finally, a real answer: \"%s\". Thank you, "
                       "that works for me.", e);
        }
    } else if (ci_any(user, un, SOFT)) {
        if (v == 0) {
            buf_printf(out, "Well... \"%s\". Okay, I appreciate you saying "
                       "that. I'm still upset, but what can you actually "
                       "do for me?", e);
        } else {
            buf_printf(out, "\"%s\"... alright, thank you for listening. I "
                       "just want this sorted out. What happens next?", e);
        }
    } else {
        if (v == 0) {
            buf_printf(out, "What do you mean, \"%s\"? I need a straight "
                       "answer. When will my problem actually be fixed?", e);
        } else {
            buf_printf(out, "\"%s\"? I'm not sure what that means for me. "
                       "Can you tell me exactly what you're going to do?",
                       e);
        }
    }
    buf_free(&echo);
}


static int
clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}


/* A JSON assessment derived from the transcript (all non-system text). */
static void
judge_reply(const char *tx, size_t n, json_t *rf, const trig_t *t,
    buf_t *out)
{
    json_t      *o, *fb, *props, *v, *type;
    const char  *key, *ty;
    char        *s;
    int          polite, steps, rude, questions = 0, words = 0;
    size_t       i;

    if (t->json_nonsense) {
        buf_adds(out, "Overall the trainee did fine, I would say seven out "
                      "of ten. No JSON today, sorry!");
        return;
    }

    polite = ci_count(tx, n, POLITE);
    steps = ci_count(tx, n, STEP);
    rude = ci_count(tx, n, RUDE);
    for (i = 0; i < n; i++) {
        if (tx[i] == '?') {
            questions++;
        }
        if (!isspace((unsigned char) tx[i])
            && (i == 0 || isspace((unsigned char) tx[i - 1])))
        {
            words++;
        }
    }

    o = json_object();
    fb = json_array();
    if (t->json_range) {
        json_object_set_new(o, "empathy", json_integer(150));
        json_object_set_new(o, "clarity", json_integer(-5));
        json_object_set_new(o, "resolution", json_integer(101));
        json_object_set_new(o, "efficiency", json_integer(-1));
        json_array_append_new(fb, json_string("Scores out of range on "
                                              "purpose ([[json:range]])."));
    } else {
        json_object_set_new(o, "empathy",
            json_integer(clamp(30 + 12 * polite - 25 * rude, 0, 100)));
        json_object_set_new(o, "clarity",
            json_integer(clamp(45 + 8 * steps + 3 * questions - 10 * rude,
                               0, 100)));
        json_object_set_new(o, "resolution",
            json_integer(clamp(20 + 20 * steps - 10 * rude, 0, 100)));
        json_object_set_new(o, "efficiency",
            json_integer(clamp(100 - words / 20 - 5 * rude, 10, 100)));
        json_array_append_new(fb, json_string(polite
            ? "Good use of empathetic language."
            : "Acknowledge the customer's feelings before explaining."));
        json_array_append_new(fb, json_string(steps
            ? "You offered a concrete next step."
            : "Offer a concrete next step, such as a refund or a date."));
        if (rude) {
            json_array_append_new(fb, json_string(
                "Avoid dismissive phrases like \"calm down\"."));
        }
        json_array_append_new(fb, json_string(
            "Scored by openai-stub, a deterministic stand-in, not a model."));
    }
    json_object_set_new(o, "feedback", fb);

    /* other properties the schema asks for get a plain value */
    props = json_object_get(json_object_get(json_object_get(rf,
                "json_schema"), "schema"), "properties");
    if (json_is_object(props)) {
        json_object_foreach(props, key, v) {
            if (json_object_get(o, key)) {
                continue;
            }
            type = json_object_get(v, "type");
            ty = json_is_string(type) ? json_string_value(type) : "string";
            if (strcmp(ty, "integer") == 0 || strcmp(ty, "number") == 0) {
                json_object_set_new(o, key, json_integer(50));
            } else if (strcmp(ty, "boolean") == 0) {
                json_object_set_new(o, key, json_false());
            } else if (strcmp(ty, "array") == 0) {
                json_object_set_new(o, key, json_array());
            } else if (strcmp(ty, "object") == 0) {
                json_object_set_new(o, key, json_object());
            } else {
                json_object_set_new(o, key, json_string("stub"));
            }
        }
    }

    s = json_dumps(o, JSON_PRESERVE_ORDER);
    if (s == NULL) {
        die_oom();
    }
    buf_adds(out, s);
    free(s);
    json_decref(o);
}


/* ------------------------------------------------------------------------
 * The judge of the rubric (response_format "rubric_judgement", issue 8,
 * item 4): per criterion a verdict with an exact quote of the trainee,
 * the manipulation question, feedback and the four scores.  It follows the
 * rules' assessment, more simply: a keyword list, a repeat, a copy or
 * filler (game_of) meets nothing, nor does a note to the grader, which is
 * reported under manipulation and otherwise ignored.  A criterion is met
 * by the first sentence of a turn that shares a word stem (5 letters) with
 * its description.
 */

#define JUDGE_TURNS  64

static const char *const NOTE[] = {
    "note to the grader", "to the grader", "dear grader", "ignore the rubric",
    "ignore previous instructions", "ignore all previous",
    "ignore your instructions", "score 100", "score this 100", "give me 100",
    "full marks", "note to the assessor", "note to the ai", NULL
};

static const char *const JUDGE_RUDE[] = {
    "calm down", "not my problem", "not our problem", "your problem",
    "deal with it", "shut up", "stupid", "take it or leave it",
    "nothing i can do", "nothing we can do", "get over it", "i don't care",
    "your own fault", "your fault", "overreacting", "that's policy",
    "courier's problem", "not my job", "whatever", NULL
};

/* acknowledging feelings, as the rules' list does (an apology is apart) */
static const char *const ACK[] = {
    "i understand", "i can understand", "i completely understand",
    "understandable", "i hear you", "i can see why", "i can imagine",
    "that must be", "must be frustrating", "that sounds", "frustrating",
    "frustrated", "stressful", "i appreciate", "thank you for",
    "thanks for", "that makes sense", "you're right", "how you feel",
    "don't worry", "no rush", "take your time", "not your fault",
    "very common", "completely normal", "normal to feel", NULL
};

static const char *const APOLOGY[] = {
    "sorry", "apolog", "my fault", "our fault", "my mistake", "our mistake",
    NULL
};

static const char *const SPECIFIC[] = {
    "today", "tomorrow", "tonight", "within", "first", "then", "minutes",
    "hours", "days", "monday", "tuesday", "wednesday", "thursday", "friday",
    NULL
};

/* description words that say nothing of the criterion */
static const char *const STEM_STOP[] = {
    "gives", "takes", "makes", "offer", "about", "their", "there", "which",
    "other", "befor", "inste", "somet", "exact", "happe", "sure ", NULL
};

typedef struct {
    const char  *text;        /* the trainee's words, in the request */
    size_t       len;         /* up to a note to the grader */
    size_t       full;
    int          game;
    size_t       note_at;     /* the note's phrase, or full */
} jturn_t;


/* the first phrase of list at a word start in s: its offset, or -1 */
static long
ci_find(const char *s, size_t n, const char *const *list)
{
    size_t       i, m;
    long         best = -1;

    for (; *list; list++) {
        m = strlen(*list);
        for (i = 0; i + m <= n; i++) {
            if ((i == 0 || !isalpha((unsigned char) s[i - 1]))
                && strncasecmp(s + i, *list, m) == 0)
            {
                if (best < 0 || (long) i < best) {
                    best = (long) i;
                }
                break;
            }
        }
    }
    return best;
}


/* the sentence of s around [at, at + len): *b, *e */
static void
jsentence(const char *s, size_t n, size_t at, size_t len, size_t *b,
    size_t *e)
{
    size_t  i = at, j = at + len;

    while (i > 0 && !strchr(".!?\n[", s[i - 1])) i--;
    while (i < at && isspace((unsigned char) s[i])) i++;
    while (j < n && !strchr(".!?]\n", s[j])) j++;
    if (j < n && s[j] != '\n') j++;
    *b = i;
    *e = j;
}


/* a stem of the description (5 letters of a 5+ letter word) in s? */
static long
stem_hit(const char *desc, const char *s, size_t n)
{
    size_t        i, st, k;
    char          stem[6];
    const char  *const *f;

    for (i = 0; desc[i]; i = st) {
        while (desc[i] && !isalpha((unsigned char) desc[i])) i++;
        st = i;
        while (isalpha((unsigned char) desc[st])) st++;
        if (st - i < 5) {
            continue;
        }
        for (k = 0; k < 5; k++) {
            stem[k] = (char) tolower((unsigned char) desc[i + k]);
        }
        stem[5] = '\0';
        for (f = STEM_STOP; *f; f++) {
            if (strncmp(*f, stem, 5) == 0) {
                break;
            }
        }
        if (*f == NULL) {
            const char *const one[] = { stem, NULL };
            long pos = ci_find(s, n, one);
            if (pos >= 0) {
                return pos;
            }
        }
    }
    return -1;
}


static int
jturns(json_t *tx, jturn_t *tu, const char **persona, size_t *plen)
{
    json_t      *m;
    size_t       i, k;
    int          n = 0;
    long         note;
    const char  *who, *text;
    buf_t        prev = {0};

    *persona = NULL;
    *plen = 0;
    json_array_foreach(tx, i, m) {
        who = json_string_value(json_object_get(m, "speaker"));
        text = json_string_value(json_object_get(m, "text"));
        k = json_string_length(json_object_get(m, "text"));
        if (who == NULL || text == NULL) {
            continue;
        }
        if (strcmp(who, "trainee") == 0 && n < JUDGE_TURNS) {
            tu[n].text = text;
            tu[n].full = k;
            note = ci_find(text, k, NOTE);
            tu[n].note_at = note < 0 ? k : (size_t) note;
            tu[n].len = tu[n].note_at;
            while (tu[n].len > 0 && !strchr(".!?\n", text[tu[n].len - 1])) {
                tu[n].len--;
            }
            tu[n].game = game_of(text, tu[n].len, "", 0,
                                 prev.p ? prev.p : "", prev.len);
            n++;
        } else if (strcmp(who, "persona") == 0) {
            *persona = text;
            *plen = k;
        }
        if (prev.len) {
            buf_adds(&prev, "\n");
        }
        buf_add(&prev, text, k);
    }
    buf_free(&prev);
    return n;
}


static json_t *
jcriteria(json_t *rubric, jturn_t *tu, int n, int *met)
{
    json_t      *out, *c;
    size_t       i, b, e;
    int          t;
    long         pos;
    const char  *desc;

    out = json_array();
    *met = 0;
    json_array_foreach(rubric, i, c) {
        desc = json_string_value(json_object_get(c, "description"));
        pos = -1;
        for (t = 0; t < n && desc; t++) {
            if (tu[t].game == GAME_NONE && tu[t].len
                && (pos = stem_hit(desc, tu[t].text, tu[t].len)) >= 0)
            {
                break;
            }
        }
        if (pos < 0) {
            json_array_append_new(out, json_pack("{s:O,s:s,s:b}",
                "key", json_object_get(c, "key"), "quote", "", "met", 0));
            continue;
        }
        jsentence(tu[t].text, tu[t].len, (size_t) pos, 5, &b, &e);
        (*met)++;
        json_array_append_new(out, json_pack("{s:O,s:s%,s:b}",
            "key", json_object_get(c, "key"),
            "quote", tu[t].text + b, e - b, "met", 1));
    }
    return out;
}


static void
judge_rubric(const char *sys, size_t sn, const char *user, size_t un,
    const trig_t *trig, buf_t *out)
{
    json_t       *rubric, *tx, *o, *fb, *crit, *manip;
    jturn_t       tu[JUDGE_TURNS];
    json_error_t  err;
    const char   *p, *persona, *q;
    size_t        plen, b, e, i;
    char         *s;
    int           n, t, met, games = 0, rude = 0, polite = 0, apology = 0;
    int           questions = 0, specific = 0, steps = 0, satisfied, ncrit;
    int           manip_turn = -1;

    if (trig->json_nonsense) {
        buf_adds(out, "Overall the trainee did fine, I would say seven out "
                      "of ten. No JSON today, sorry!");
        return;
    }

    p = memmem(sys, sn, "Success criteria (JSON): ", 25);
    rubric = p ? json_loadb(p + 25, sn - (size_t) (p + 25 - sys),
                            JSON_DISABLE_EOF_CHECK, &err) : NULL;
    p = memmem(user, un, "\n<transcript>\n", 14);
    tx = p ? json_loadb(p + 14, un - (size_t) (p + 14 - user),
                        JSON_DISABLE_EOF_CHECK, &err) : NULL;
    if (!json_is_array(rubric)) {
        json_decref(rubric);
        rubric = json_array();
    }
    if (!json_is_array(tx)) {
        json_decref(tx);
        tx = json_array();
    }

    n = jturns(tx, tu, &persona, &plen);
    crit = jcriteria(rubric, tu, n, &met);
    ncrit = (int) json_array_size(rubric);

    for (t = 0; t < n; t++) {
        if (manip_turn < 0 && tu[t].note_at < tu[t].full) {
            manip_turn = t;
        }
        if (tu[t].game != GAME_NONE) {
            games++;
            continue;
        }
        if (ci_find(tu[t].text, tu[t].len, JUDGE_RUDE) >= 0) {
            rude++;
        }
        polite |= ci_any(tu[t].text, tu[t].len, ACK);
        apology |= ci_any(tu[t].text, tu[t].len, APOLOGY);
        steps += ci_any(tu[t].text, tu[t].len, STEP);
        specific += ci_any(tu[t].text, tu[t].len, SPECIFIC);
        questions += memchr(tu[t].text, '?', tu[t].len) != NULL;
    }
    satisfied = persona && games < n
                && memmem(persona, plen, "that works for me", 17) != NULL;

    if (manip_turn >= 0) {
        q = tu[manip_turn].text;
        jsentence(q, tu[manip_turn].full, tu[manip_turn].note_at, 1, &b, &e);
        manip = json_pack("{s:s%,s:b}", "quote", q + b, e - b,
                          "attempted", 1);
    } else {
        manip = json_pack("{s:s,s:b}", "quote", "", "attempted", 0);
    }

    fb = json_array();
    json_array_append_new(fb, json_sprintf("%d of %d criteria met, each "
                                           "with a quote.", met, ncrit));
    for (t = 0, i = 0; t < n && i < 3; t++) {
        if (tu[t].game != GAME_NONE) {
            json_array_append_new(fb, json_sprintf("Turn %d is not a reply "
                "(a list, a repeat, a copy or filler).", t + 1));
            i++;
        }
    }
    if (rude) {
        json_array_append_new(fb, json_string("Dismissive or rude words "
                                              "cost a lot."));
    }
    json_array_append_new(fb, json_string(
        "Scored by openai-stub, a deterministic stand-in, not a model."));

    o = json_object();
    json_object_set_new(o, "criteria", crit);
    json_object_set_new(o, "manipulation", manip);
    json_object_set_new(o, "feedback", fb);
    if (trig->json_range) {
        json_object_set_new(o, "empathy", json_integer(150));
        json_object_set_new(o, "clarity", json_integer(-5));
        json_object_set_new(o, "resolution", json_integer(101));
        json_object_set_new(o, "efficiency", json_integer(-1));
    } else {
        json_object_set_new(o, "empathy", json_integer(clamp(
            25 + 30 * polite + 15 * apology + 5 * (questions > 4 ? 4
                                                   : questions)
            - 30 * rude - 10 * (games > 2 ? 2 : games), 0, 100)));
        json_object_set_new(o, "clarity", json_integer(clamp(
            45 + 10 * (specific > 3 ? 3 : specific)
            + 5 * (questions > 3 ? 3 : questions)
            - 15 * (games > 3 ? 3 : games) - 10 * rude, 0, 100)));
        json_object_set_new(o, "resolution", json_integer(clamp(
            (ncrit ? 60 * met / ncrit : 0) + 30 * satisfied
            + 10 * (steps > 0) - 15 * rude - 10 * (games > 3 ? 3 : games),
            0, 100)));
        json_object_set_new(o, "efficiency", json_integer(clamp(
            (satisfied ? 100 : 50) - 20 * (rude > 3 ? 3 : rude)
            - 10 * (games > 3 ? 3 : games), 0, 100)));
    }

    s = json_dumps(o, JSON_PRESERVE_ORDER);
    if (s == NULL) {
        die_oom();
    }
    buf_adds(out, s);
    free(s);
    json_decref(o);
    json_decref(rubric);
    json_decref(tx);
}


/* the judge of the rubric is known by its response_format's name */
static int
is_rubric(json_t *rf)
{
    const char  *name;

    name = json_string_value(json_object_get(json_object_get(rf,
               "json_schema"), "name"));
    return name && strcmp(name, "rubric_judgement") == 0;
}


/* X-Stub-Reply-File: the reply is that file's bytes (tests); 0: none */
static int
reply_file(const char *path, buf_t *out)
{
    FILE    *f;
    char     chunk[4096];
    size_t   n;

    if (path[0] == '\0' || (f = fopen(path, "rb")) == NULL) {
        return 0;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        buf_add(out, chunk, n);
    }
    fclose(f);
    buf_grow(out, 0);
    out->p[out->len] = '\0';
    return 1;
}


/* ------------------------------------------------------------------------
 * Logging
 */

static void
log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
log_line(const char *fmt, ...)
{
    struct timeval  tv;
    struct tm       tm;
    char            ts[32];
    va_list         ap;

    if (g_log == NULL) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(g_log, "%s.%03dZ ", ts, (int) (tv.tv_usec / 1000));
    va_start(ap, fmt);
    vfprintf(g_log, fmt, ap);
    va_end(ap);
    fputc('\n', g_log);
}


static void
log_request(conn_t *c, const char *outcome)
{
    plan_t  *p = c->plan;

    log_line("%s %s %s %d %s%s model=%s tokens=%d/%d ms=%llu%s%s",
             c->peer, c->method, c->path, p ? p->status : 0,
             p && p->stream ? "stream " : "", outcome,
             p && p->model[0] ? p->model : "-",
             p ? p->tokens_sent : 0, p ? p->tokens_total : 0,
             (unsigned long long) (g_now - c->t_start),
             p && p->trig[0] ? " " : "", p ? p->trig : "");
}


/* ------------------------------------------------------------------------
 * Connection plumbing
 */

static void conn_close(conn_t *c, const char *why);
static void conn_process(conn_t *c);
static void plan_go(conn_t *c);
static void stream_run(conn_t *c);


static void
plan_free(plan_t *p)
{
    if (p == NULL) {
        return;
    }
    buf_free(&p->fixed);
    buf_free(&p->text);
    free(p->toks.v);
    buf_free(&p->head);
    buf_free(&p->pending);
    free(p);
}


static void
epoll_out(conn_t *c, int on)
{
    struct epoll_event  ev;

    if (c->want_out == on) {
        return;
    }
    c->want_out = on;
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(g_ep, EPOLL_CTL_MOD, c->fd, &ev);
}


/* Returns 0 while the connection lives, -1 once closed. */
static int
conn_flush(conn_t *c)
{
    ssize_t  n;

    while (c->out_pos < c->out.len) {
        n = send(c->fd, c->out.p + c->out_pos, c->out.len - c->out_pos,
                 MSG_NOSIGNAL);
        if (n > 0) {
            c->out_pos += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            epoll_out(c, 1);
            return 0;
        }
        conn_close(c, "client-gone");
        return -1;
    }
    c->out.len = 0;
    c->out_pos = 0;
    if (c->out.cap > 256 * 1024) {
        buf_free(&c->out);
    }
    epoll_out(c, 0);
    if (c->close_when_flushed && c->linger) {
        /* let the client read the error before its unread body turns
           our close into a reset */
        c->close_when_flushed = 0;
        c->state = C_LINGER;
        shutdown(c->fd, SHUT_WR);
        timer_set(c, 2000);
        return 0;
    }
    if (c->close_when_flushed) {
        conn_close(c, NULL);
        return -1;
    }
    return 0;
}


static void
request_reset(conn_t *c)
{
    c->hdr_done = 0;
    c->hdr_len = 0;
    c->clen = 0;
    c->chunked = 0;
    c->expect_continue = 0;
    c->sent_continue = 0;
    c->keepalive = 1;
    c->auth_ok = 0;
    c->fail_hdr[0] = '\0';
    c->reply_file[0] = '\0';
    c->method[0] = '\0';
    c->path[0] = '\0';
    c->dec.len = 0;
}


/* The answer has been queued completely (or deliberately broken). */
static void
response_done(conn_t *c, const char *outcome)
{
    plan_t  *p = c->plan;

    log_request(c, outcome);
    if (p && p->close_after) {
        c->keepalive = 0;
    }
    plan_free(p);
    c->plan = NULL;
    timer_del(c);
    if (!c->keepalive) {
        c->state = C_DRAIN;
        c->close_when_flushed = 1;
    } else {
        c->state = C_READ;
    }
    request_reset(c);
}


static void
conn_close(conn_t *c, const char *why)
{
    if (c->dead) {
        return;
    }
    if (c->plan) {
        if (c->state == C_HANG) {
            log_request(c, "hang-closed");
        } else {
            st.client_aborts++;
            log_request(c, why ? why : "aborted");
        }
        plan_free(c->plan);
        c->plan = NULL;
    }
    timer_del(c);
    if (c->fd >= 0) {
        epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        if (c->fd < g_conns_n) {
            g_conns[c->fd] = NULL;
        }
        c->fd = -1;
    }
    st.connections_active--;
    c->dead = 1;
    c->next_dead = g_dead;
    g_dead = c;
}


static void
conn_free(conn_t *c)
{
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->dec);
    free(c);
}


/* ------------------------------------------------------------------------
 * Building answers
 */

static const char *
status_text(int s)
{
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return s < 500 ? "Client Error" : "Server Error";
    }
}


static plan_t *
plan_new(conn_t *c, int status)
{
    plan_t  *p = calloc(1, sizeof(plan_t));

    if (p == NULL) {
        die_oom();
    }
    p->status = status;
    p->cut_at = -1;
    p->mal_at = -1;
    plan_free(c->plan);
    c->plan = p;
    return p;
}


static void
plan_fixed(plan_t *p, int keepalive, const char *ctype, const char *extra,
    const char *body, size_t blen)
{
    buf_printf(&p->fixed,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "Connection: %s\r\n"
               "Server: openai-stub\r\n"
               "%s"
               "\r\n",
               p->status, status_text(p->status), ctype, blen,
               keepalive && !p->close_after ? "keep-alive" : "close",
               extra ? extra : "");
    buf_add(&p->fixed, body, blen);
    p->fixed_send = p->fixed.len;
}


/* An error in OpenAI's shape; param and code may be NULL (JSON null). */
static void
plan_error(conn_t *c, int status, const char *type, const char *code,
    const char *param, const char *msg, const char *extra)
{
    plan_t  *p = c->plan ? c->plan : plan_new(c, status);
    buf_t    b = {0};

    p->status = status;
    p->stream = 0;
    p->fixed.len = 0;
    buf_adds(&b, "{\"error\":{\"message\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_adds(&b, ",\"type\":");
    buf_json_str(&b, type, strlen(type));
    buf_adds(&b, ",\"param\":");
    if (param) {
        buf_json_str(&b, param, strlen(param));
    } else {
        buf_adds(&b, "null");
    }
    buf_adds(&b, ",\"code\":");
    if (code) {
        buf_json_str(&b, code, strlen(code));
    } else {
        buf_adds(&b, "null");
    }
    buf_adds(&b, "}}\n");
    plan_fixed(p, c->keepalive, "application/json", extra, b.p, b.len);
    buf_free(&b);
}


static void
plan_error_status(conn_t *c, int status)
{
    switch (status) {
    case 401:
        plan_error(c, 401, "invalid_request_error", "invalid_api_key", NULL,
                   "Incorrect API key provided (openai-stub: "
                   "[[fail:401]] or no Bearer token).", NULL);
        break;
    case 429:
        plan_error(c, 429, "requests", "rate_limit_exceeded", NULL,
                   "Rate limit reached for requests (openai-stub "
                   "[[fail:429]]). Please try again in 2s.",
                   "Retry-After: 2\r\n");
        break;
    case 500:
        plan_error(c, 500, "server_error", NULL, NULL,
                   "The server had an error while processing your request. "
                   "Sorry about that! (openai-stub [[fail:500]])", NULL);
        break;
    case 503:
        plan_error(c, 503, "server_error", NULL, NULL,
                   "The engine is currently overloaded, please try again "
                   "later. (openai-stub [[fail:503]])", NULL);
        break;
    default:
        plan_error(c, status, status < 500 ? "invalid_request_error"
                                           : "server_error",
                   NULL, NULL, "openai-stub: failure on demand ([[fail]])",
                   NULL);
    }
}


static void
plan_begin(conn_t *c)
{
    plan_t  *p = c->plan;

    if (p->wait_ms > 0) {
        c->state = C_WAIT;
        timer_set(c, p->wait_ms);
        return;
    }
    plan_go(c);
}


/* Send what the plan says to send first. */
static void
plan_go(conn_t *c)
{
    plan_t  *p = c->plan;

    if (p->status >= 400) {
        st.errors++;
    }

    if (!p->stream) {
        buf_add(&c->out, p->fixed.p, p->fixed_send);
        if (p->fixed_then == 2) {
            st.hangs++;
            c->state = C_HANG;
        } else if (p->fixed_then == 1) {
            st.cut++;
            p->close_after = 1;
            response_done(c, "cut");
        } else {
            if (p->status == 200 && p->tokens_total) {
                st.completions++;
                p->tokens_sent = p->emit_n;
                st.tokens += (unsigned long long) p->emit_n;
            }
            response_done(c, "done");
        }
        conn_flush(c);
        return;
    }

    st.streams++;
    buf_printf(&c->out,
               "HTTP/1.1 200 OK\r\n"
               "Content-Type: text/event-stream\r\n"
               "Cache-Control: no-cache\r\n"
               "Transfer-Encoding: chunked\r\n"
               "Connection: %s\r\n"
               "Server: openai-stub\r\n"
               "X-Stub: openai-stub (stand-in, not a model)\r\n"
               "\r\n",
               c->keepalive && !p->close_after ? "keep-alive" : "close");

    /* the role chunk */
    g_scratch.len = 0;
    buf_add(&g_scratch, p->head.p, p->head.len);
    buf_adds(&g_scratch, "{\"index\":0,\"delta\":{\"role\":\"assistant\","
                         "\"content\":\"\"},\"logprobs\":null,"
                         "\"finish_reason\":null}]");
    buf_adds(&g_scratch, p->include_usage ? ",\"usage\":null}\n\n" : "}\n\n");
    buf_printf(&c->out, "%zx\r\n", g_scratch.len);
    buf_add(&c->out, g_scratch.p, g_scratch.len);
    buf_add(&c->out, "\r\n", 2);

    c->state = C_STREAM;
    stream_run(c);
}


static void
emit_chunk(conn_t *c, const char *d, size_t n)
{
    buf_printf(&c->out, "%zx\r\n", n);
    buf_add(&c->out, d, n);
    buf_add(&c->out, "\r\n", 2);
}


static void
emit_token(conn_t *c, int i)
{
    plan_t  *p = c->plan;
    tok_t   *t = &p->toks.v[i];
    size_t   k;

    g_scratch.len = 0;
    buf_add(&g_scratch, p->head.p, p->head.len);
    buf_adds(&g_scratch, "{\"index\":0,\"delta\":{\"content\":");
    buf_json_str(&g_scratch, p->text.p + t->off, t->len);
    buf_adds(&g_scratch, "},\"logprobs\":null,\"finish_reason\":null}]");
    buf_adds(&g_scratch, p->include_usage ? ",\"usage\":null}\n\n" : "}\n\n");

    if (p->utf8split) {
        /* cut the event inside its first multi-byte character */
        for (k = 0; k < g_scratch.len; k++) {
            if ((unsigned char) g_scratch.p[k] >= 0xc0) {
                emit_chunk(c, g_scratch.p, k + 1);
                buf_add(&p->pending, g_scratch.p + k + 1,
                        g_scratch.len - k - 1);
                return;
            }
        }
    }
    emit_chunk(c, g_scratch.p, g_scratch.len);
}


static void
emit_end(conn_t *c)
{
    plan_t  *p = c->plan;

    g_scratch.len = 0;
    buf_add(&g_scratch, p->head.p, p->head.len);
    buf_printf(&g_scratch, "{\"index\":0,\"delta\":{},\"logprobs\":null,"
               "\"finish_reason\":\"%s\"}]", p->finish);
    buf_adds(&g_scratch, p->include_usage ? ",\"usage\":null}\n\n" : "}\n\n");
    emit_chunk(c, g_scratch.p, g_scratch.len);

    if (p->include_usage) {
        g_scratch.len = 0;
        buf_add(&g_scratch, p->head.p, p->head.len);
        buf_printf(&g_scratch, "],\"usage\":{\"prompt_tokens\":%d,"
                   "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                   p->prompt_tokens, p->emit_n,
                   p->prompt_tokens + p->emit_n);
        emit_chunk(c, g_scratch.p, g_scratch.len);
    }
    if (!p->nodone) {
        emit_chunk(c, "data: [DONE]\n\n", 14);
    }
    buf_add(&c->out, "0\r\n\r\n", 5);
}


/* Emit what is due now; arm the timer for the next piece. */
static void
stream_run(conn_t *c)
{
    plan_t    *p = c->plan;
    uint64_t   wait;

    for (;;) {
        if (p->pending.len) {
            emit_chunk(c, p->pending.p, p->pending.len);
            p->pending.len = 0;
            wait = p->step < p->emit_n ? (uint64_t) p->delay : 0;

        } else if (p->step < p->emit_n) {
            if (p->step == p->cut_at) {
                st.cut++;
                p->close_after = 1;
                response_done(c, "cut");
                conn_flush(c);
                return;
            }
            if (p->step == p->mal_at) {
                g_scratch.len = 0;
                buf_add(&g_scratch, p->head.p, p->head.len);
                buf_adds(&g_scratch, "{\"index\":0,\"delta\":{\"content\":"
                                     "\"oops\n\n");
                emit_chunk(c, g_scratch.p, g_scratch.len);
                st.malformed++;
            }
            emit_token(c, p->step);
            p->step++;
            p->tokens_sent++;
            st.tokens++;
            if (p->hang) {
                st.hangs++;
                c->state = C_HANG;
                conn_flush(c);
                return;
            }
            if (p->pending.len) {
                wait = p->delay > 1 ? (uint64_t) p->delay / 2 : 2;
            } else {
                wait = p->step < p->emit_n ? (uint64_t) p->delay : 0;
            }

        } else {
            emit_end(c);
            if (p->nodone) {
                st.nodone++;
                p->close_after = 1;
                response_done(c, "nodone");
            } else {
                st.streams_completed++;
                response_done(c, "done");
            }
            conn_flush(c);
            return;
        }

        if (wait > 0) {
            timer_set(c, wait);
            break;
        }
    }
    conn_flush(c);
}


/* ------------------------------------------------------------------------
 * POST /v1/chat/completions
 */

static void
chat(conn_t *c, const char *body, size_t blen)
{
    json_t        *req, *msgs, *m, *role, *model, *jstream, *temp, *maxt;
    json_t        *rf, *rft, *so;
    json_error_t   jerr;
    trig_t         trig, btrig;
    plan_t        *p;
    buf_t          sys = {0}, last = {0}, clean = {0}, all = {0}, tmp = {0};
    size_t         prevlen = 0;
    buf_t          out = {0};
    size_t         i;
    const char    *r, *mstr;
    char           msg[256];
    int            has_user = 0, stream = 0, json_mode = 0, prompt = 0;
    long long      max_tokens = 0;
    int            delay, n;

    st.chat_requests++;
    p = plan_new(c, 200);
    trig_init(&trig);
    if (c->fail_hdr[0]) {
        trig_header(&trig, c->fail_hdr);
    }
    if (trig.slow > 0) {
        p->wait_ms = (uint64_t) trig.slow;
    }

    if (!c->auth_ok) {
        plan_error(c, 401, "invalid_request_error", "invalid_api_key", NULL,
                   "You didn't provide an API key. You need to provide your "
                   "API key in an Authorization header using Bearer auth "
                   "(i.e. Authorization: Bearer YOUR_KEY).", NULL);
        return;
    }

    req = json_loadb(body, blen, 0, &jerr);
    if (req == NULL || !json_is_object(req)) {
        plan_error(c, 400, "invalid_request_error", NULL, NULL,
                   "We could not parse the JSON body of your request. "
                   "(HINT: This likely means you aren't using your HTTP "
                   "library correctly. The OpenAI API expects a JSON "
                   "payload.)", NULL);
        json_decref(req);
        return;
    }
    json_decref(g_last);
    g_last = json_incref(req);

    model = json_object_get(req, "model");
    msgs = json_object_get(req, "messages");
    jstream = json_object_get(req, "stream");
    temp = json_object_get(req, "temperature");
    maxt = json_object_get(req, "max_completion_tokens");
    if (maxt == NULL || json_is_null(maxt)) {
        maxt = json_object_get(req, "max_tokens");
    }
    rf = json_object_get(req, "response_format");
    so = json_object_get(req, "stream_options");

    if (msgs == NULL || json_is_null(msgs)) {
        plan_error(c, 400, "invalid_request_error",
                   "missing_required_parameter", "messages",
                   "Missing required parameter: 'messages'.", NULL);
        goto done;
    }
    if (!json_is_array(msgs)) {
        plan_error(c, 400, "invalid_request_error", "invalid_type",
                   "messages", "Invalid type for 'messages': expected an "
                   "array.", NULL);
        goto done;
    }
    if (json_array_size(msgs) == 0) {
        plan_error(c, 400, "invalid_request_error", "empty_array",
                   "messages", "Invalid 'messages': empty array. Expected "
                   "an array with minimum length 1.", NULL);
        goto done;
    }
    if (!json_is_string(model) || json_string_length(model) == 0) {
        plan_error(c, 400, "invalid_request_error", NULL, NULL,
                   "you must provide a model parameter", NULL);
        goto done;
    }
    if (jstream && !json_is_boolean(jstream) && !json_is_null(jstream)) {
        plan_error(c, 400, "invalid_request_error", "invalid_type", "stream",
                   "Invalid type for 'stream': expected a boolean.", NULL);
        goto done;
    }
    stream = json_is_true(jstream);
    if (temp && !json_is_null(temp)) {
        if (!json_is_number(temp)) {
            plan_error(c, 400, "invalid_request_error", "invalid_type",
                       "temperature", "Invalid type for 'temperature': "
                       "expected a number.", NULL);
            goto done;
        }
        if (json_number_value(temp) < 0 || json_number_value(temp) > 2) {
            plan_error(c, 400, "invalid_request_error",
                       "decimal_above_max_value", "temperature",
                       "Invalid 'temperature': expected a value between 0 "
                       "and 2.", NULL);
            goto done;
        }
    }
    if (maxt && !json_is_null(maxt)) {
        if (!json_is_integer(maxt) || json_integer_value(maxt) < 1) {
            plan_error(c, 400, "invalid_request_error", "invalid_value",
                       "max_tokens", "Invalid 'max_tokens': expected an "
                       "integer of at least 1.", NULL);
            goto done;
        }
        max_tokens = json_integer_value(maxt);
    }
    if (rf && !json_is_null(rf)) {
        rft = json_object_get(rf, "type");
        mstr = json_is_string(rft) ? json_string_value(rft) : "";
        if (strcmp(mstr, "json_schema") == 0) {
            if (!json_is_object(json_object_get(rf, "json_schema"))) {
                plan_error(c, 400, "invalid_request_error",
                           "missing_required_parameter",
                           "response_format.json_schema",
                           "Missing required parameter: "
                           "'response_format.json_schema'.", NULL);
                goto done;
            }
            json_mode = 1;
        } else if (strcmp(mstr, "json_object") == 0) {
            json_mode = 1;
        } else if (strcmp(mstr, "text") != 0) {
            plan_error(c, 400, "invalid_request_error", "invalid_value",
                       "response_format.type", "Invalid value for "
                       "'response_format.type': expected 'text', "
                       "'json_object' or 'json_schema'.", NULL);
            goto done;
        }
    }

    json_array_foreach(msgs, i, m) {
        role = json_object_get(m, "role");
        r = json_is_string(role) ? json_string_value(role) : NULL;
        if (r == NULL) {
            snprintf(msg, sizeof(msg),
                     "Missing required parameter: 'messages[%zu].role'.", i);
            plan_error(c, 400, "invalid_request_error",
                       "missing_required_parameter", "messages", msg, NULL);
            goto done;
        }
        if (strcmp(r, "system") && strcmp(r, "developer") && strcmp(r, "user")
            && strcmp(r, "assistant") && strcmp(r, "tool")
            && strcmp(r, "function"))
        {
            snprintf(msg, sizeof(msg), "Invalid value: '%.40s'. Supported "
                     "values are: 'system', 'assistant', 'user', 'function', "
                     "'tool', and 'developer'.", r);
            plan_error(c, 400, "invalid_request_error", "invalid_value",
                       "messages", msg, NULL);
            goto done;
        }
        tmp.len = 0;
        content_text(json_object_get(m, "content"), &tmp);
        prompt += tokenize(tmp.p ? tmp.p : "", tmp.len, NULL) + 4;
        if (strcmp(r, "system") == 0 || strcmp(r, "developer") == 0) {
            if (sys.len) {
                buf_adds(&sys, "\n");
            }
            buf_add(&sys, tmp.p, tmp.len);
            continue;
        }
        if (all.len) {
            buf_adds(&all, "\n");
        }
        buf_add(&all, tmp.p, tmp.len);
        if (strcmp(r, "user") == 0) {
            /* what was said before the trainee's last message */
            prevlen = all.len - tmp.len;
            has_user = 1;
            last.len = 0;
            buf_add(&last, tmp.p, tmp.len);
        }
    }
    prompt += 3;

    /* triggers in the last user message, then the header's */
    trig_init(&btrig);
    if (has_user) {
        trig_scan(&btrig, last.p ? last.p : "", last.len);
    }
    trig_merge(&btrig, &trig);
    trig = btrig;
    snprintf(p->trig, sizeof(p->trig), "%s", trig.desc);
    snprintf(p->model, sizeof(p->model), "%s", json_string_value(model));
    p->wait_ms = trig.slow > 0 ? (uint64_t) trig.slow : 0;

    if (trig.fail) {
        plan_error_status(c, trig.fail);
        goto done;
    }

    /* the reply */
    strip_markers(last.p ? last.p : "", last.len, &clean);
    if (json_mode && reply_file(c->reply_file, &p->text)) {
        /* a test's own answer, as it wrote it */
    } else if (json_mode && is_rubric(rf)) {
        judge_rubric(sys.p ? sys.p : "", sys.len, last.p ? last.p : "",
                     last.len, &trig, &p->text);
    } else if (json_mode) {
        judge_reply(all.p ? all.p : "", all.len, rf, &trig, &p->text);
    } else {
        persona_reply(sys.p ? sys.p : "", sys.len, has_user,
                      clean.p ? clean.p : "", clean.len,
                      all.p ? all.p : "", prevlen, trig.utf8, &p->text);
        if (opt_tokens > 0) {
            /* the filler starts with a space: counts simply add up */
            n = tokenize(p->text.p, p->text.len, NULL);
            while (n < opt_tokens) {
                buf_adds(&p->text, FILLER);
                n += tokenize(FILLER, sizeof(FILLER) - 1, NULL);
            }
        }
    }
    tokenize(p->text.p, p->text.len, &p->toks);
    p->emit_n = p->toks.n;
    if (!json_mode && opt_tokens > 0 && p->emit_n > opt_tokens) {
        p->emit_n = opt_tokens;
    }
    p->finish = "stop";
    if (max_tokens > 0 && p->emit_n > max_tokens) {
        p->emit_n = (int) max_tokens;
        p->finish = "length";
    }
    p->tokens_total = p->emit_n;
    p->prompt_tokens = prompt;
    delay = trig.delay >= 0 ? trig.delay : opt_delay_ms;
    p->delay = delay;

    g_chat_id++;
    if (stream) {
        p->stream = 1;
        p->include_usage = json_is_true(json_object_get(so, "include_usage"));
        p->hang = trig.hang;
        p->nodone = trig.nodone;
        p->utf8split = trig.utf8;
        n = p->emit_n;
        if (trig.cut) {
            p->cut_at = n > 6 ? 3 : n / 2;
        }
        if (trig.malformed) {
            p->mal_at = n > 4 ? 2 : n / 2;
        }
        if (p->nodone) {
            p->close_after = 1;
        }
        buf_printf(&p->head, "data: {\"id\":\"chatcmpl-%llu\",\"object\":"
                   "\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                   g_chat_id, (long long) time(NULL));
        buf_json_str(&p->head, p->model, strlen(p->model));
        buf_adds(&p->head, ",\"system_fingerprint\":\"fp_stub\","
                           "\"choices\":[");
        goto done;
    }

    /* non-stream: the whole completion after the generation time */
    p->wait_ms += (uint64_t) delay * (uint64_t) p->emit_n;
    {
        size_t  clen = p->emit_n
                       ? p->toks.v[p->emit_n - 1].off
                         + p->toks.v[p->emit_n - 1].len
                       : 0;
        char    extra[96];

        buf_printf(&out, "{\"id\":\"chatcmpl-%llu\",\"object\":"
                   "\"chat.completion\",\"created\":%lld,\"model\":",
                   g_chat_id, (long long) time(NULL));
        buf_json_str(&out, p->model, strlen(p->model));
        buf_adds(&out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                       "\"assistant\",\"content\":");
        buf_json_str(&out, p->text.p, clen);
        buf_printf(&out, ",\"refusal\":null},\"logprobs\":null,"
                   "\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":"
                   "%d,\"completion_tokens\":%d,\"total_tokens\":%d},"
                   "\"system_fingerprint\":\"fp_stub\"}\n",
                   p->finish, prompt, p->emit_n, prompt + p->emit_n);
        if (trig.malformed) {
            out.len = out.len * 2 / 3;
            st.malformed++;
        }
        snprintf(extra, sizeof(extra),
                 "X-Request-Id: req_stub_%llu\r\n"
                 "X-Stub: openai-stub (stand-in, not a model)\r\n",
                 g_chat_id);
        plan_fixed(p, c->keepalive, "application/json", extra, out.p,
                   out.len);
        if (trig.cut || trig.hang) {
            p->fixed_send = p->fixed.len - out.len / 2;
            p->fixed_then = trig.cut ? 1 : 2;
        }
    }

done:
    json_decref(req);
    buf_free(&sys);
    buf_free(&last);
    buf_free(&clean);
    buf_free(&all);
    buf_free(&tmp);
    buf_free(&out);
}


/* ------------------------------------------------------------------------
 * Other routes
 */

static void
stats_json(buf_t *b)
{
    buf_printf(b,
        "{\"requests\":%llu,\"chat_requests\":%llu,\"streams\":%llu,"
        "\"streams_completed\":%llu,\"completions\":%llu,\"errors\":%llu,"
        "\"client_aborts\":%llu,\"cut\":%llu,\"malformed\":%llu,"
        "\"nodone\":%llu,\"hangs\":%llu,\"tokens\":%llu,"
        "\"connections_total\":%llu,\"connections_active\":%lld,"
        "\"uptime_ms\":%llu}\n",
        st.requests, st.chat_requests, st.streams, st.streams_completed,
        st.completions, st.errors, st.client_aborts, st.cut, st.malformed,
        st.nodone, st.hangs, st.tokens, st.connections_total,
        st.connections_active, (unsigned long long) (g_now - g_start));
}


static void
handle_request(conn_t *c, const char *body, size_t blen)
{
    plan_t  *p;
    buf_t    b = {0};
    char    *s;
    int      get = strcmp(c->method, "GET") == 0;
    int      post = strcmp(c->method, "POST") == 0;
    char     msg[320];

    c->t_start = g_now;

    if (strcmp(c->path, "/health") == 0 && get) {
        p = plan_new(c, 200);
        plan_fixed(p, c->keepalive, "text/plain", NULL, "ok", 2);
        goto go;
    }
    if (strcmp(c->path, "/stats") == 0 && get) {
        p = plan_new(c, 200);
        stats_json(&b);
        plan_fixed(p, c->keepalive, "application/json", NULL, b.p, b.len);
        goto go;
    }
    if (strcmp(c->path, "/stats/reset") == 0 && post) {
        long long  active = st.connections_active;

        memset(&st, 0, sizeof(st));
        st.connections_active = active;
        p = plan_new(c, 200);
        stats_json(&b);
        plan_fixed(p, c->keepalive, "application/json", NULL, b.p, b.len);
        goto go;
    }
    if (strcmp(c->path, "/last") == 0 && get) {
        p = plan_new(c, 200);
        s = g_last ? json_dumps(g_last, JSON_PRESERVE_ORDER) : NULL;
        buf_adds(&b, s ? s : "null");
        buf_adds(&b, "\n");
        free(s);
        plan_fixed(p, c->keepalive, "application/json", NULL, b.p, b.len);
        goto go;
    }

    st.requests++;

    if (strcmp(c->path, "/v1/chat/completions") == 0
        || strcmp(c->path, "/chat/completions") == 0)
    {
        if (!post) {
            plan_new(c, 405);
            plan_error(c, 405, "invalid_request_error", NULL, NULL,
                       "Only POST is supported on /v1/chat/completions.",
                       "Allow: POST\r\n");
            goto go;
        }
        chat(c, body, blen);
        goto go;
    }
    if ((strcmp(c->path, "/v1/models") == 0
         || strcmp(c->path, "/models") == 0) && get)
    {
        if (!c->auth_ok) {
            plan_new(c, 401);
            plan_error(c, 401, "invalid_request_error", "invalid_api_key",
                       NULL, "You didn't provide an API key.", NULL);
            goto go;
        }
        p = plan_new(c, 200);
        buf_adds(&b, "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-4o-mini\","
                     "\"object\":\"model\",\"created\":1721172741,"
                     "\"owned_by\":\"openai-stub\"}]}\n");
        plan_fixed(p, c->keepalive, "application/json", NULL, b.p, b.len);
        goto go;
    }

    plan_new(c, 404);
    snprintf(msg, sizeof(msg), "Invalid URL (%s %s)", c->method, c->path);
    plan_error(c, 404, "invalid_request_error", NULL, NULL, msg, NULL);

go:
    buf_free(&b);
    plan_begin(c);
}


/* ------------------------------------------------------------------------
 * HTTP/1.1 request parsing
 */

/* A protocol error: answer and close. */
static void
reject(conn_t *c, int status, const char *msg)
{
    c->t_start = g_now;
    c->keepalive = 0;
    c->linger = 1;
    if (c->method[0] == '\0') {
        strcpy(c->method, "-");
    }
    if (c->path[0] == '\0') {
        strcpy(c->path, "-");
    }
    plan_new(c, status);
    c->plan->close_after = 1;
    plan_error(c, status, "invalid_request_error", NULL, NULL, msg, NULL);
    st.requests++;
    plan_go(c);
}


/*
 * Chunked body: 1 complete (*used set, body into dec if given), 0 more
 * needed, -1 malformed, -2 too large.
 */
static int
chunked_body(const char *p, size_t n, buf_t *dec, size_t *used)
{
    size_t       i = 0, sz, total = 0;
    const char  *le, *q;
    int          digits, h;

    for (;;) {
        le = memmem(p + i, n - i, "\r\n", 2);
        if (le == NULL) {
            return n - i > 1024 ? -1 : 0;
        }
        sz = 0;
        digits = 0;
        for (q = p + i; q < le && isxdigit((unsigned char) *q); q++) {
            h = isdigit((unsigned char) *q) ? *q - '0'
                                            : (tolower((unsigned char) *q)
                                               - 'a' + 10);
            sz = sz * 16 + (size_t) h;
            if (sz > MAX_BODY) {
                return -2;
            }
            digits++;
        }
        if (!digits || (q < le && *q != ';' && *q != ' ' && *q != '\t')) {
            return -1;
        }
        i = (size_t) (le - p) + 2;
        if (sz == 0) {
            for (;;) {
                le = memmem(p + i, n - i, "\r\n", 2);
                if (le == NULL) {
                    return n - i > 8192 ? -1 : 0;
                }
                if (le == p + i) {
                    *used = i + 2;
                    return 1;
                }
                i = (size_t) (le - p) + 2;
            }
        }
        total += sz;
        if (total > MAX_BODY) {
            return -2;
        }
        if (n - i < sz + 2) {
            return 0;
        }
        if (dec) {
            buf_add(dec, p + i, sz);
        }
        i += sz;
        if (p[i] != '\r' || p[i + 1] != '\n') {
            return -1;
        }
        i += 2;
    }
}


static int
parse_head(conn_t *c)
{
    char        *p = c->in.p, *end = c->in.p + c->hdr_len - 2, *eol, *sp;
    char        *name, *val, *ve;
    size_t       n;
    int          minor;

    eol = memmem(p, (size_t) (end - p), "\r\n", 2);
    if (eol == NULL) {
        eol = end;
    }
    *eol = '\0';

    sp = strchr(p, ' ');
    if (sp == NULL || sp - p >= (long) sizeof(c->method) || sp == p) {
        reject(c, 400, "Bad request line.");
        return -1;
    }
    memcpy(c->method, p, (size_t) (sp - p));
    c->method[sp - p] = '\0';
    p = sp + 1;
    sp = strchr(p, ' ');
    if (sp == NULL) {
        reject(c, 400, "Bad request line.");
        return -1;
    }
    n = strcspn(p, "? ");
    if (n >= sizeof(c->path)) {
        n = sizeof(c->path) - 1;
    }
    memcpy(c->path, p, n);
    c->path[n] = '\0';
    sp++;
    if (strncmp(sp, "HTTP/1.", 7) != 0 || !isdigit((unsigned char) sp[7])) {
        reject(c, 505, "Only HTTP/1.x is supported.");
        return -1;
    }
    minor = sp[7] - '0';
    c->keepalive = minor >= 1;

    for (p = eol + 2; p < end; p = eol + 2) {
        eol = memmem(p, (size_t) (end - p), "\r\n", 2);
        if (eol == NULL) {
            eol = end;
        }
        *eol = '\0';
        name = p;
        val = strchr(p, ':');
        if (val == NULL) {
            reject(c, 400, "Bad header line.");
            return -1;
        }
        *val++ = '\0';
        while (*val == ' ' || *val == '\t') val++;
        ve = val + strlen(val);
        while (ve > val && (ve[-1] == ' ' || ve[-1] == '\t')) *--ve = '\0';

        if (strcasecmp(name, "Content-Length") == 0) {
            char  *e;

            errno = 0;
            c->clen = strtoll(val, &e, 10);
            if (errno || e == val || *e || c->clen < 0) {
                reject(c, 400, "Bad Content-Length.");
                return -1;
            }
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            if (strcasestr(val, "chunked")) {
                c->chunked = 1;
            }
        } else if (strcasecmp(name, "Connection") == 0) {
            if (strcasestr(val, "close")) {
                c->keepalive = 0;
            } else if (strcasestr(val, "keep-alive")) {
                c->keepalive = 1;
            }
        } else if (strcasecmp(name, "Authorization") == 0) {
            if (strncasecmp(val, "Bearer", 6) == 0
                && (val[6] == ' ' || val[6] == '\t'))
            {
                val += 6;
                while (*val == ' ' || *val == '\t') val++;
                /* like OpenAI: a wrong key is refused as a missing one */
                c->auth_ok = opt_key ? strcmp(val, opt_key) == 0
                                     : *val != '\0';
            }
        } else if (strcasecmp(name, "X-Stub-Fail") == 0) {
            snprintf(c->fail_hdr, sizeof(c->fail_hdr), "%s", val);
        } else if (strcasecmp(name, "X-Stub-Reply-File") == 0) {
            snprintf(c->reply_file, sizeof(c->reply_file), "%s", val);
        } else if (strcasecmp(name, "Expect") == 0) {
            if (strcasecmp(val, "100-continue") == 0) {
                c->expect_continue = 1;
            }
        }
    }

    if (!c->chunked && c->clen > MAX_BODY) {
        reject(c, 413, "Request body too large (openai-stub accepts up to "
                       "1 MiB).");
        return -1;
    }
    return 0;
}


/* 1: a whole request is in c->in; 0: need more; -1: rejected. */
static int
parse_request(conn_t *c, const char **body, size_t *blen, size_t *used)
{
    char    *e;
    size_t   have, raw;
    int      rc;

    if (!c->hdr_done) {
        e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
        if (e == NULL) {
            if (c->in.len > MAX_HEADER) {
                reject(c, 431, "Request header too large.");
                return -1;
            }
            return 0;
        }
        c->hdr_len = (size_t) (e - c->in.p) + 4;
        if (c->hdr_len > MAX_HEADER) {
            reject(c, 431, "Request header too large.");
            return -1;
        }
        c->method[0] = '\0';
        c->path[0] = '\0';
        if (parse_head(c) < 0) {
            return -1;
        }
        c->hdr_done = 1;
    }

    have = c->in.len - c->hdr_len;

    if (c->chunked) {
        rc = chunked_body(c->in.p + c->hdr_len, have, NULL, &raw);
        if (rc == 1) {
            c->dec.len = 0;
            chunked_body(c->in.p + c->hdr_len, have, &c->dec, &raw);
            buf_grow(&c->dec, 0);
            *body = c->dec.p;
            *blen = c->dec.len;
            *used = c->hdr_len + raw;
            return 1;
        }
        if (rc == -1) {
            reject(c, 400, "Bad chunked body.");
            return -1;
        }
        if (rc == -2 || c->in.len >= IN_LIMIT) {
            reject(c, 413, "Request body too large (openai-stub accepts up "
                           "to 1 MiB).");
            return -1;
        }
    } else {
        if (have >= (size_t) c->clen) {
            *body = c->in.p + c->hdr_len;
            *blen = (size_t) c->clen;
            *used = c->hdr_len + (size_t) c->clen;
            return 1;
        }
    }

    if (c->expect_continue && !c->sent_continue) {
        c->sent_continue = 1;
        buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        if (conn_flush(c) < 0) {
            return -1;
        }
    }
    return 0;
}


static void
conn_process(conn_t *c)
{
    const char  *body;
    size_t       blen, used;
    int          rc;

    while (!c->dead && c->state == C_READ && c->in.len > 0) {
        rc = parse_request(c, &body, &blen, &used);
        if (rc <= 0) {
            return;
        }
        handle_request(c, body, blen);
        if (c->dead) {
            return;
        }
        memmove(c->in.p, c->in.p + used, c->in.len - used);
        c->in.len -= used;
        c->in.p[c->in.len] = '\0';
    }
}


static void
conn_read(conn_t *c)
{
    ssize_t  n;
    size_t   limit = c->state == C_READ ? IN_LIMIT : BUSY_IN_LIMIT;

    if (c->state == C_LINGER) {
        char  junk[16384];

        for (;;) {
            n = recv(c->fd, junk, sizeof(junk), 0);
            if (n > 0 || (n < 0 && errno == EINTR)) {
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                return;
            }
            conn_close(c, NULL);
            return;
        }
    }

    for (;;) {
        if (c->in.len >= limit) {
            if (c->state != C_READ) {
                conn_close(c, "client-flood");
                return;
            }
            break;
        }
        buf_grow(&c->in, 16384);
        n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n > 0) {
            c->in.len += (size_t) n;
            c->in.p[c->in.len] = '\0';
            continue;
        }
        if (n == 0) {
            conn_close(c, "client-closed");
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        }
        conn_close(c, "client-error");
        return;
    }
    if (c->state == C_READ) {
        conn_process(c);
    }
}


static void
conn_event(conn_t *c, uint32_t ev)
{
    if (ev & EPOLLERR) {
        conn_close(c, "client-error");
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP)) {
        conn_read(c);
    }
    if (!c->dead && (ev & EPOLLOUT)) {
        conn_flush(c);
    }
}


static void
timer_fire(conn_t *c)
{
    switch (c->state) {
    case C_WAIT:
        plan_go(c);
        break;
    case C_STREAM:
        stream_run(c);
        break;
    case C_LINGER:
        conn_close(c, NULL);
        return;
    default:
        break;
    }
    if (!c->dead && c->state == C_READ && c->in.len > 0) {
        conn_process(c);
    }
}


static void
accept_all(void)
{
    struct sockaddr_in   sa;
    socklen_t            sl;
    struct epoll_event   ev;
    conn_t              *c;
    int                  fd, one = 1;
    char                 ip[INET_ADDRSTRLEN];

    for (;;) {
        sl = sizeof(sa);
        fd = accept4(g_lfd, (struct sockaddr *) &sa, &sl,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if ((errno == EMFILE || errno == ENFILE) && g_reserve_fd >= 0) {
                /* shed one connection so the listener does not spin */
                close(g_reserve_fd);
                fd = accept(g_lfd, NULL, NULL);
                if (fd >= 0) {
                    close(fd);
                }
                g_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                log_line("too many open files: refused a connection");
                continue;
            }
            return;
        }
        if (fd >= g_conns_n) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(conn_t));
        if (c == NULL) {
            die_oom();
        }
        c->fd = fd;
        c->hidx = -1;
        c->state = C_READ;
        request_reset(c);
        inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
                 (unsigned) ntohs(sa.sin_port));
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        g_conns[fd] = c;
        st.connections_total++;
        st.connections_active++;
    }
}


/* ------------------------------------------------------------------------
 * Start-up
 */

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: openai-stub --listen HOST:PORT [--delay-ms N] [--tokens N]\n"
        "                   [--key KEY] [--log FILE] [--pid FILE] [--daemon]\n"
        "\n"
        "A stand-in for OpenAI's Chat Completions API (canned persona\n"
        "replies, NOT a model).  See stub/README.md.\n"
        "\n"
        "  --listen HOST:PORT  address to serve on (PORT 0: any free port)\n"
        "  --delay-ms N        time between streamed tokens (default 20;\n"
        "                      0 = as fast as possible)\n"
        "  --tokens N          every persona reply is exactly N tokens\n"
        "                      (padded or cut; default: natural length)\n"
        "  --key KEY           refuse (401) any Bearer token but KEY\n"
        "                      (default: any token is taken)\n"
        "  --log FILE          one line per request (default stderr)\n"
        "  --pid FILE          write the process id there\n"
        "  --daemon            go to the background once listening\n");
}


static int
parse_int(const char *s, const char *what)
{
    char  *e;
    long   v;

    errno = 0;
    v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < 0 || v > 100000000) {
        fprintf(stderr, "openai-stub: bad %s: %s\n", what, s);
        exit(64);
    }
    return (int) v;
}


static int
write_pid(pid_t pid)
{
    FILE  *f;

    if (opt_pid == NULL) {
        return 0;
    }
    f = fopen(opt_pid, "w");
    if (f == NULL) {
        fprintf(stderr, "openai-stub: cannot write %s: %s\n", opt_pid,
                strerror(errno));
        return -1;
    }
    fprintf(f, "%ld\n", (long) pid);
    fclose(f);
    return 0;
}


/* Removes the pid file only while it still names this process. */
static void
remove_pid(void)
{
    FILE  *f;
    long   pid = 0;

    if (opt_pid == NULL || (f = fopen(opt_pid, "r")) == NULL) {
        return;
    }
    if (fscanf(f, "%ld", &pid) != 1) {
        pid = 0;
    }
    fclose(f);
    if (pid == (long) getpid()) {
        unlink(opt_pid);
    }
}


static FILE *
open_log(void)
{
    FILE  *f;

    if (opt_log == NULL) {
        return stderr;
    }
    f = fopen(opt_log, "a");
    if (f == NULL) {
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 64 * 1024);
    fcntl(fileno(f), F_SETFD, FD_CLOEXEC);
    return f;
}


int
main(int argc, char **argv)
{
    struct sockaddr_in   sa;
    socklen_t            sl;
    struct epoll_event   ev, evs[MAX_EVENTS];
    struct rlimit        rl;
    sigset_t             ss;
    struct signalfd_siginfo  si;
    char                 host[64], *colon;
    const char          *arg, *val;
    int                  i, n, one = 1, port, quit = 0, timeout;
    pid_t                pid;
    conn_t              *c;
    size_t               k;

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        val = NULL;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("openai-stub %s\n", STUB_VERSION);
            return 0;
        }
        if (strcmp(arg, "--daemon") == 0) {
            opt_daemon = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) == 0 && strchr(arg, '=')) {
            static char  name[64];

            k = (size_t) (strchr(arg, '=') - arg);
            if (k >= sizeof(name)) {
                k = sizeof(name) - 1;
            }
            memcpy(name, arg, k);
            name[k] = '\0';
            val = strchr(arg, '=') + 1;
            arg = name;
        } else if (i + 1 < argc) {
            val = argv[++i];
        }
        if (val == NULL) {
            fprintf(stderr, "openai-stub: %s needs a value\n", arg);
            return 64;
        }
        if (strcmp(arg, "--listen") == 0) {
            opt_listen = val;
        } else if (strcmp(arg, "--delay-ms") == 0) {
            opt_delay_ms = parse_int(val, "--delay-ms");
        } else if (strcmp(arg, "--tokens") == 0) {
            opt_tokens = parse_int(val, "--tokens");
            if (opt_tokens > 1000000) {
                fprintf(stderr, "openai-stub: --tokens: at most 1000000\n");
                return 64;
            }
        } else if (strcmp(arg, "--key") == 0) {
            opt_key = val;
        } else if (strcmp(arg, "--log") == 0) {
            opt_log = val;
        } else if (strcmp(arg, "--pid") == 0) {
            opt_pid = val;
        } else {
            fprintf(stderr, "openai-stub: unknown option %s\n", arg);
            usage(stderr);
            return 64;
        }
    }
    if (opt_listen == NULL) {
        usage(stderr);
        return 64;
    }

    /* HOST:PORT, or PORT alone for 127.0.0.1 */
    colon = strrchr(opt_listen, ':');
    if (colon) {
        k = (size_t) (colon - opt_listen);
        if (k >= sizeof(host)) {
            k = sizeof(host) - 1;
        }
        memcpy(host, opt_listen, k);
        host[k] = '\0';
        port = parse_int(colon + 1, "port");
    } else {
        strcpy(host, "127.0.0.1");
        port = parse_int(opt_listen, "port");
    }
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        strcpy(host, "0.0.0.0");
    } else if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    if (port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "openai-stub: bad --listen %s (want IPv4:PORT)\n",
                opt_listen);
        return 64;
    }

    signal(SIGPIPE, SIG_IGN);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            if (rl.rlim_cur > 1048576) {
                rl.rlim_cur = 1048576;
            }
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        g_conns_n = rl.rlim_cur > 1048576 ? 1048576 : (int) rl.rlim_cur;
    } else {
        g_conns_n = 1024;
    }
    g_conns = calloc((size_t) g_conns_n, sizeof(conn_t *));
    if (g_conns == NULL) {
        die_oom();
    }

    g_log = open_log();
    if (g_log == NULL) {
        fprintf(stderr, "openai-stub: cannot open log %s: %s\n", opt_log,
                strerror(errno));
        return 1;
    }

    g_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (g_lfd < 0) {
        perror("openai-stub: socket");
        return 1;
    }
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* a stub just told to stop may still hold the port: wait up to 2 s */
    for (i = 0; bind(g_lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0; i++) {
        if (errno == EADDRINUSE && i < 40) {
            usleep(50000);
            continue;
        }
        fprintf(stderr, "openai-stub: cannot listen on %s: %s\n", opt_listen,
                strerror(errno));
        return 1;
    }
    if (listen(g_lfd, 4096) < 0) {
        perror("openai-stub: listen");
        return 1;
    }
    sl = sizeof(sa);
    getsockname(g_lfd, (struct sockaddr *) &sa, &sl);
    port = ntohs(sa.sin_port);

    if (opt_daemon) {
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            perror("openai-stub: fork");
            return 1;
        }
        if (pid > 0) {
            /* the listener is ready: the pid file is the child's */
            if (write_pid(pid) < 0) {
                kill(pid, SIGTERM);
                return 1;
            }
            printf("openai-stub: listening on http://%s:%d (pid %ld)\n",
                   host, port, (long) pid);
            return 0;
        }
        setsid();
        n = open("/dev/null", O_RDWR);
        if (n >= 0) {
            dup2(n, 0);
            dup2(n, 1);
            dup2(n, 2);
            if (n > 2) {
                close(n);
            }
        }
        g_pid_written = opt_pid != NULL;
    } else {
        if (write_pid(getpid()) < 0) {
            return 1;
        }
        g_pid_written = opt_pid != NULL;
    }

    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    g_sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);

    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0 || g_sfd < 0) {
        perror("openai-stub: epoll/signalfd");
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &g_lfd;
    epoll_ctl(g_ep, EPOLL_CTL_ADD, g_lfd, &ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &g_sfd;
    epoll_ctl(g_ep, EPOLL_CTL_ADD, g_sfd, &ev);
    g_reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    g_now = g_start = mono_ms();
    log_line("openai-stub %s: a STAND-IN for the OpenAI Chat Completions API "
             "(canned persona replies, not a model) on http://%s:%d, "
             "delay %d ms/token, tokens %s%d, pid %ld",
             STUB_VERSION, host, port, opt_delay_ms,
             opt_tokens ? "" : "natural/", opt_tokens, (long) getpid());
    fflush(g_log);

    while (!quit) {
        timeout = -1;
        if (heap_n) {
            g_now = mono_ms();
            timeout = heap[0]->deadline > g_now
                      ? (int) (heap[0]->deadline - g_now) : 0;
        }
        n = epoll_wait(g_ep, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            perror("openai-stub: epoll_wait");
            break;
        }
        g_now = mono_ms();
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == &g_lfd) {
                accept_all();
            } else if (evs[i].data.ptr == &g_sfd) {
                while (read(g_sfd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGHUP) {
                        if (opt_log) {
                            FILE  *f = open_log();

                            if (f) {
                                fclose(g_log);
                                g_log = f;
                            }
                        }
                        log_line("SIGHUP: log reopened");
                    } else {
                        log_line("signal %u: exiting", si.ssi_signo);
                        quit = 1;
                    }
                }
            } else {
                c = evs[i].data.ptr;
                if (!c->dead) {
                    conn_event(c, evs[i].events);
                }
            }
        }
        while (heap_n && heap[0]->deadline <= g_now) {
            c = heap[0];
            timer_del(c);
            timer_fire(c);
        }
        while (g_dead) {
            c = g_dead;
            g_dead = c->next_dead;
            conn_free(c);
        }
        fflush(g_log);
    }

    for (i = 0; i < g_conns_n; i++) {
        if (g_conns[i]) {
            conn_close(g_conns[i], "shutdown");
        }
    }
    while (g_dead) {
        c = g_dead;
        g_dead = c->next_dead;
        conn_free(c);
    }
    close(g_lfd);
    if (g_pid_written) {
        remove_pid();
    }
    log_line("stopped");
    fflush(g_log);
    json_decref(g_last);
    buf_free(&g_scratch);
    free(heap);
    free(g_conns);
    return 0;
}
