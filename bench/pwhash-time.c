/*
 * One argon2id verify's time with the module's default cost, on one core:
 * the bound for logins per second is cores / this time.
 *
 *   pwhash-time [memory_mib] [passes] [rounds]
 */

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


int
main(int argc, char **argv)
{
    int     i, rounds;
    char    hash[crypto_pwhash_STRBYTES];
    size_t  mem;
    double  t0, t;
    unsigned long long  ops;

    mem = (argc > 1 ? strtoul(argv[1], NULL, 10) : 19) * 1024 * 1024;
    ops = argc > 2 ? strtoull(argv[2], NULL, 10) : 2;
    rounds = argc > 3 ? atoi(argv[3]) : 20;

    if (sodium_init() < 0
        || crypto_pwhash_str(hash, "demo-password", 13, ops, mem) != 0)
    {
        return 1;
    }

    t0 = now();

    for (i = 0; i < rounds; i++) {
        if (crypto_pwhash_str_verify(hash, "demo-password", 13) != 0) {
            return 1;
        }
    }

    t = (now() - t0) / rounds;

    printf("%.6f\n", t);

    return 0;
}
