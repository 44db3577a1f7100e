/*
 * ngx_http_json_escape*() and ngx_http_json_scan_string() against jansson:
 * for every code point, every string of one or two bytes, every \uXXXX
 * and random short strings, the escape is byte for byte jansson's compact
 * dump of the string (and invalid exactly where jansson refuses it), what
 * the scan accepts jansson reads, and the scan accepts each escape.
 * Aborts on the first difference; prints the counts.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>

#include "ngx_http_json.h"


static ngx_uint_t  ngx_test_total, ngx_test_valid, ngx_test_scanned;


static void
ngx_test_fail(const char *what, u_char *s, size_t len)
{
    size_t  i;

    fprintf(stderr, "%s:", what);

    for (i = 0; i < len; i++) {
        fprintf(stderr, " %02x", s[i]);
    }

    fprintf(stderr, "\n");
    abort();
}


/* s as the text of a string: escaped, then scanned back */

static void
ngx_test_escape(u_char *s, size_t len)
{
    u_char   out[1024], quoted[1024], *p;
    char     dump[1024];
    size_t   n, d;
    json_t  *str, *back;

    ngx_test_total++;

    n = ngx_http_json_escape_len(s, len);
    str = json_stringn((char *) s, len);

    if (str == NULL) {
        if (n != NGX_HTTP_JSON_INVALID) {
            ngx_test_fail("valid, jansson refuses", s, len);
        }

        return;
    }

    if (n == NGX_HTTP_JSON_INVALID) {
        ngx_test_fail("invalid, jansson takes", s, len);
    }

    ngx_test_valid++;

    d = json_dumpb(str, dump, sizeof(dump), JSON_ENCODE_ANY | JSON_COMPACT);

    p = ngx_http_json_escape(out, s, len);

    if ((size_t) (p - out) != n || d != n + 2
        || memcmp(dump + 1, out, n) != 0)
    {
        ngx_test_fail("escaped differently", s, len);
    }

    quoted[0] = '"';
    memcpy(quoted + 1, out, n);
    quoted[n + 1] = '"';

    back = json_loadb((char *) quoted, n + 2, JSON_DECODE_ANY, NULL);

    if (memchr(s, 0, len) != NULL) {
        /* \u0000: jansson reads it only when told to, and nor does the scan */
        if (back != NULL
            || ngx_http_json_scan_string(quoted, quoted + n + 2) != NULL)
        {
            ngx_test_fail("NUL taken", s, len);
        }

        json_decref(str);
        return;
    }

    if (ngx_http_json_scan_string(quoted, quoted + n + 2) != quoted + n + 2) {
        ngx_test_fail("an escape not scanned", s, len);
    }

    if (back == NULL || !json_equal(back, str)) {
        ngx_test_fail("an escape read back differently", s, len);
    }

    json_decref(back);
    json_decref(str);
}


/* s as the inside of a string's quotes, raw */

static void
ngx_test_scan(u_char *s, size_t len)
{
    u_char   quoted[1024], *end;
    json_t  *json;

    quoted[0] = '"';
    memcpy(quoted + 1, s, len);
    quoted[len + 1] = '"';

    end = ngx_http_json_scan_string(quoted, quoted + len + 2);

    if (end == NULL) {
        return;
    }

    ngx_test_scanned++;

    json = json_loadb((char *) quoted, end - quoted, JSON_DECODE_ANY, NULL);

    if (json == NULL || !json_is_string(json)) {
        ngx_test_fail("scanned, jansson refuses", s, len);
    }

    json_decref(json);
}


static void
ngx_test_both(u_char *s, size_t len)
{
    ngx_test_escape(s, len);
    ngx_test_scan(s, len);
}


static size_t
ngx_test_utf8(u_char *p, uint32_t cp)
{
    if (cp < 0x80) {
        p[0] = (u_char) cp;
        return 1;
    }

    if (cp < 0x800) {
        p[0] = (u_char) (0xc0 | (cp >> 6));
        p[1] = (u_char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        p[0] = (u_char) (0xe0 | (cp >> 12));
        p[1] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
        p[2] = (u_char) (0x80 | (cp & 0x3f));
        return 3;
    }

    p[0] = (u_char) (0xf0 | (cp >> 18));
    p[1] = (u_char) (0x80 | ((cp >> 12) & 0x3f));
    p[2] = (u_char) (0x80 | ((cp >> 6) & 0x3f));
    p[3] = (u_char) (0x80 | (cp & 0x3f));
    return 4;
}


int
main(void)
{
    u_char      s[64];
    size_t      n, len, i;
    uint32_t    cp, r;
    ngx_uint_t  k;

    static u_char  pick[] = "a\"\\/\b\f\n\r\t\x01\x1f\x7f\x80\xbf\xc2\xdf"
                            "\xe0\xed\xa0\xef\xf0\xf4\x90\xf5\xffu0";

    /* every code point, surrogates included (jansson refuses them) */
    for (cp = 0; cp <= 0x10ffff; cp++) {
        s[0] = 'x';
        n = ngx_test_utf8(s + 1, cp);
        s[n + 1] = 'y';
        ngx_test_both(s, n + 2);
    }

    /* every string of one and two bytes */
    for (k = 0; k < 256; k++) {
        s[0] = (u_char) k;
        ngx_test_both(s, 1);
    }

    for (k = 0; k < 65536; k++) {
        s[0] = (u_char) (k >> 8);
        s[1] = (u_char) k;
        ngx_test_both(s, 2);
    }

    /* every \uXXXX for the scan */
    for (k = 0; k < 65536; k++) {
        n = sprintf((char *) s, "\\u%04X", (unsigned) k);
        ngx_test_scan(s, n);
        n = sprintf((char *) s, "\\u%04x", (unsigned) k);
        ngx_test_scan(s, n);
    }

    /* random short strings of the bytes that matter, and of any byte */
    srandom(1);

    for (k = 0; k < 2000000; k++) {
        len = random() % 12;

        for (i = 0; i < len; i++) {
            r = (uint32_t) random();
            s[i] = (r & 0x100) ? (u_char) r : pick[r % (sizeof(pick) - 1)];
        }

        ngx_test_both(s, len);
    }

    printf("strings %lu valid %lu scanned %lu\n",
           (unsigned long) ngx_test_total, (unsigned long) ngx_test_valid,
           (unsigned long) ngx_test_scanned);

    return 0;
}
