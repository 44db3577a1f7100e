/*
 * Runs fuzz/fuzz_chunk.c's differential check (which aborts on a
 * difference) over the files named and over generated chunks: each
 * \uXXXX escape, surrogate pairs, every code point as raw UTF-8 and every
 * two-byte sequence.  Prints, per file, whether the fast read took it,
 * then the generated chunks' counts.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_model_chunk.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static ngx_uint_t  ngx_test_accepted, ngx_test_total;


static void
ngx_test_one(u_char *data, size_t len)
{
    u_char             buf[256];
    ngx_model_chunk_t  chunk;

    LLVMFuzzerTestOneInput(data, len);

    ngx_test_total++;

    if (len <= sizeof(buf)
        && ngx_model_chunk_parse(data, len, buf, &chunk) == NGX_OK)
    {
        ngx_test_accepted++;
    }
}


static void
ngx_test_content(u_char *text, size_t len)
{
    u_char  chunk[256], *p;

    p = chunk;
    memcpy(p, "{\"choices\":[{\"delta\":{\"content\":\"", 33);
    p += 33;
    memcpy(p, text, len);
    p += len;
    memcpy(p, "\"}}]}", 5);
    p += 5;

    ngx_test_one(chunk, p - chunk);
}


int
main(int argc, char **argv)
{
    int          i;
    FILE        *f;
    u_char       data[65536], text[32], *p;
    size_t       n;
    uint32_t     v, lo;
    ngx_uint_t   a, b;

    for (i = 1; i < argc; i++) {
        f = fopen(argv[i], "rb");
        if (f == NULL) {
            return 2;
        }

        n = fread(data, 1, sizeof(data), f);
        fclose(f);

        LLVMFuzzerTestOneInput(data, n);

        {
            u_char             *buf = malloc(n + 1);
            ngx_model_chunk_t   chunk;

            printf("%s %s\n", argv[i],
                   ngx_model_chunk_parse(data, n, buf, &chunk) == NGX_OK
                   ? "accepted" : "declined");
            free(buf);
        }
    }

    /* every \uXXXX, upper and lower case hex */

    for (v = 0; v <= 0xffff; v++) {
        ngx_test_content(text, sprintf((char *) text, "\\u%04xD", v));
        ngx_test_content(text, sprintf((char *) text, "x\\u%04Xy", v));
    }

    /* surrogate pairs, the high half with every low one and some others */

    for (v = 0xd800; v <= 0xdbff; v += 0x3f) {
        for (lo = 0xdb00; lo <= 0xe0ff; lo++) {
            ngx_test_content(text, sprintf((char *) text, "\\u%04xD\\u%04xD",
                                           v, lo));
        }
    }

    /* every code point as raw UTF-8, and some invalid encodings */

    for (v = 1; v <= 0x10ffff; v++) {
        p = text;

        if (v < 0x80) {
            *p++ = (u_char) v;

        } else if (v < 0x800) {
            *p++ = 0xc0 | (v >> 6);
            *p++ = 0x80 | (v & 0x3f);

        } else if (v < 0x10000) {
            *p++ = 0xe0 | (v >> 12);
            *p++ = 0x80 | ((v >> 6) & 0x3f);
            *p++ = 0x80 | (v & 0x3f);

        } else {
            *p++ = 0xf0 | (v >> 18);
            *p++ = 0x80 | ((v >> 12) & 0x3f);
            *p++ = 0x80 | ((v >> 6) & 0x3f);
            *p++ = 0x80 | (v & 0x3f);
        }

        ngx_test_content(text, p - text);

        /* overlong by one byte, and cut short */
        if (v < 0x10000) {
            text[0] = (v < 0x800) ? 0xe0 : 0xf0;
            ngx_test_content(text, p - text);
        }

        ngx_test_content(text, p - text - 1);
    }

    for (a = 0; a < 256; a++) {
        for (b = 0; b < 256; b++) {
            text[0] = (u_char) a;
            text[1] = (u_char) b;
            ngx_test_content(text, 2);
        }
    }

    printf("generated %lu accepted %lu\n", (unsigned long) ngx_test_total,
           (unsigned long) ngx_test_accepted);

    return 0;
}
