# The deterministic assessment engine (ngx_scenario_assess.c), built
# without nginx against the stand-in headers of t/assess/ and run as a
# TAP program: polite versus rude transcripts on seeded scenarios,
# determinism, UTF-8, the judge request and the blend of a model's grade.
# The scenarios' rubrics come from the test database when there is one
# (PGDATABASE), else from the copies in t/assess/assess_test.c.

use strict;
use warnings;
use lib 't/lib';

use File::Temp qw(tempdir);
use Test::More;
use Test::Scenario::Util qw(pg_exec);

my $dir = tempdir(CLEANUP => 1);
my $bin = "$dir/assess_test";
my $cc = $ENV{CC} || 'cc';

# the module's own warning flags: the engine must build clean with them
my @cmd = ($cc, qw(-std=gnu99 -O2 -Wall -Wextra -Werror -Wno-unused-parameter
                   -I t/assess -I ngx_scenario_module -o), $bin,
           't/assess/assess_test.c',
           'ngx_scenario_module/ngx_scenario_assess.c',
           'ngx_scenario_module/ngx_scenario_judge.c',
           '-ljansson');
my $out = `@cmd 2>&1`;
is $?, 0, 'the engine and its test build with -Wall -Wextra -Werror'
    or BAIL_OUT("cannot build: $out");

# and inside the module, against nginx's real headers, when scripts/build
# has configured a tree (build/nginx)
SKIP: {
    my $tree = 'build/nginx';
    skip 'no configured nginx tree in build/nginx', 1
        unless -f "$tree/objs/ngx_auto_config.h";
    my @real = ($cc, qw(-c -pipe -O -W -Wall -Wpointer-arith -Wextra -Werror
                        -Wno-unused-parameter),
                map({ ('-I', "$tree/$_") }
                    qw(src/core src/event src/event/modules src/os/unix objs)),
                '-I', 'ngx_scenario_module', '-o', "$dir/assess.o",
                'ngx_scenario_module/ngx_scenario_assess.c');
    my $err = `@real 2>&1`;
    (my $judge = "@real") =~ s{assess(\.[co])}{judge$1}g;
    $err .= `$judge 2>&1`;
    is $?, 0, 'the engine builds against the real nginx headers'
        or diag $err;
}

my @args;
if ($ENV{PGDATABASE}) {
    my $rows = eval {
        pg_exec(<<'SQL');
SELECT json_agg(json_build_object(
    'slug', slug, 'difficulty', difficulty, 'target_turns', target_turns,
    'weights', weights, 'success_criteria', success_criteria) ORDER BY id)
FROM scenarios
SQL
    };
    if (defined $rows && length $rows) {
        open my $fh, '>', "$dir/scenarios.json" or die $!;
        print $fh $rows;
        close $fh;
        @args = ("$dir/scenarios.json");
    } else {
        diag "no scenarios from the database ($@): using the seed's copies";
    }
}

my @lines = `$bin @args`;
my $status = $? >> 8;
my ($plan, $seen) = (undef, 0);

for (@lines) {
    chomp;
    if (/^(not )?ok (\d+) - (.*)$/) {
        $seen++;
        ok !$1, "engine: $3";
    } elsif (/^1\.\.(\d+)$/) {
        $plan = $1;
    } elsif (/^#\s?(.*)$/) {
        note $1;
    } else {
        diag "unexpected output: $_";
    }
}

ok defined $plan && $plan == $seen && $seen > 0,
   "the engine test ran all its checks ($seen of " . ($plan // '?') . ')';
is $status, 0, 'the engine test exits 0';

done_testing;
