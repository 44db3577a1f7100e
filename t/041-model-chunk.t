# The model client's fast read of streamed chunks (ngx_model_chunk.c)
# against jansson, built without nginx against the configured tree's
# headers (build/nginx, which scripts/test configures): whatever the fast
# read accepts must read to what jansson reads (fuzz/fuzz_chunk.c's check,
# which aborts otherwise), over the seed corpus of fuzz/corpus/chunk and
# generated chunks; the stand-in's and OpenAI's common shapes must take
# the fast read, and what jansson fails on must not.

use strict;
use warnings;

use File::Temp qw(tempdir);
use Test::More;

my $tree = 'build/nginx';
plan skip_all => 'no configured nginx tree in build/nginx'
    unless -f "$tree/objs/ngx_auto_config.h";

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/chunk_test";
my $cc = $ENV{CC} || 'cc';

my @cmd = ($cc, qw(-O1 -g -Wall -Wextra -Werror -Wno-unused-parameter),
           map({ ('-I', "$tree/$_") }
               qw(src/core src/event src/event/modules src/os/unix objs)),
           '-I', 'ngx_scenario_module', '-o', $bin,
           't/chunk/chunk_test.c', 'fuzz/fuzz_chunk.c',
           'ngx_scenario_module/ngx_model_chunk.c', '-ljansson');
my $out = `@cmd 2>&1`;
is $?, 0, 'the fast read and its test build with -Wall -Wextra -Werror'
    or BAIL_OUT("cannot build: $out");

my @seeds = sort glob 'fuzz/corpus/chunk/*';
my @lines = `$bin @seeds`;
is $?, 0, 'no input read differently by the fast read and jansson'
    or diag "@lines";

my %took = map { /^(\S+) (\w+)$/ ? ($1 => $2) : () } @lines;
is scalar(keys %took), scalar(@seeds), 'each seed reported';

# what the fast read is for
for my $i (qw(00 01 02 03 04 05 12 13 15 18 19 24 26 33)) {
    is $took{"fuzz/corpus/chunk/seed-$i"}, 'accepted', "seed-$i: fast";
}

# what jansson fails on or reads as an error, and what is left to it
for my $i (qw(06 07 08 09 10 11 14 16 17 20 21 22 23 25 27 28 29 30 31 32 34)) {
    is $took{"fuzz/corpus/chunk/seed-$i"}, 'declined', "seed-$i: jansson's";
}
for my $i (qw(00 01 02 03 04 05)) {
    is $took{"fuzz/corpus/chunk/raw-$i"}, 'declined', "raw-$i: jansson's";
}

my ($gen) = grep { /^generated/ } @lines;
like $gen, qr/^generated (\d+) accepted (\d+)$/, 'the generated chunks ran';
my ($total, $accepted) = $gen =~ /(\d+) accepted (\d+)/;
# the valid escapes and characters: 0xffff escapes bar \u0000 and the
# 2048 surrogates, twice; 1,112,064 scalar values minus U+0022 and U+005C
# and the controls; most chunks otherwise (invalid) must be declined
cmp_ok $accepted, '>', 1_100_000, "most valid chunks are read fast ($accepted)";
cmp_ok $accepted, '<', $total, "not every chunk ($total)";

done_testing;
