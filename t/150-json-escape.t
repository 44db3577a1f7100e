# JSON text written without jansson (ngx_http_json_escape*(), which the
# chat's model request and events use, and ngx_http_json_scan_string(),
# which lets the context's stored items into the request as they are),
# against jansson, built without nginx against the configured tree's
# headers (build/nginx, which scripts/test configures): every code point,
# every string of one or two bytes, every \uXXXX and random strings must
# escape to jansson's compact dump byte for byte, be refused where jansson
# refuses them, and what the scan accepts jansson must read.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $tree = 'build/nginx';
plan skip_all => 'no configured nginx tree in build/nginx'
    unless -f "$tree/objs/ngx_auto_config.h";

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/escape_test";
my $cc = $ENV{CC} || 'cc';

my @cmd = ($cc, qw(-O1 -g -Wall -Wextra -Werror -Wno-unused-parameter),
           map({ ('-I', "$tree/$_") }
               qw(src/core src/event src/event/modules src/os/unix src/http
                  src/http/modules src/http/v2 objs)),
           '-I', 'ngx_scenario_module', '-o', $bin,
           't/json/escape_test.c', 'ngx_scenario_module/ngx_http_json.c',
           'ngx_scenario_module/ngx_http_headers.c', 'fuzz/ngx_fuzz_pool.c',
           'fuzz/ngx_fuzz_http.c', 'fuzz/ngx_fuzz_log.c', '-ljansson');
my $out = `@cmd 2>&1`;
is $?, 0, 'the escape and its test build with -Wall -Wextra -Werror'
    or BAIL_OUT("cannot build: $out");

my $got = `$bin 2>&1`;
is $?, 0, 'no string escaped or read differently from jansson'
    or diag $got;

like $got, qr/^strings (\d+) valid (\d+) scanned (\d+)$/m, 'the strings ran';
my ($total, $valid, $scanned) = $got =~ /strings (\d+) valid (\d+) scanned (\d+)/;
cmp_ok $valid, '>', 1_114_112 - 2048, 'every code point escaped';
cmp_ok $valid, '<', $total, 'invalid strings among them';
cmp_ok $scanned, '>', 1_000_000, 'most valid strings scanned';

done_testing;
