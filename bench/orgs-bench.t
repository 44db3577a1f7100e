# Reads of the trainer's endpoints (issue 9) against `return 200` behind
# the same access check, on the test stack with 2 workers: each is one
# Postgres round trip, one SQL function that checks role and organization.
#
#   scripts/test bench/orgs-bench.t        (BENCH_SECONDS=5 by default)
#
# An organization of 200 members, 50 scenarios of its own and 10
# assignments, 5 of them to the whole organization; wrk -t2 -c32, medians
# of 3 interleaved runs, printed as a table for BENCHMARKS.md.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Orgs;
use Test::Scenario::Bench;

my $secs = $ENV{BENCH_SECONDS} || 5;
my %conf = bench_conf();
my ($org, $trainer, $uid, $trainee) = bench_org('bench', 'B', 198);

start_nginx({ %conf, master => 1, workers => 2 });

my $doc = scenario_doc();
for (1 .. 50) {
    my ($st, $sc) = api('POST', '/authoring/scenarios', $trainer, $doc);
    die "create: $st\n" unless $st == 201;
    api('POST', "/authoring/scenarios/$sc->{id}/publish", $trainer);
    next if $_ > 10;
    my %to = $_ <= 5 ? () : (user_ids => [0 + $uid]);
    ($st) = api('POST', '/assignments', $trainer,
                { scenario_id => $sc->{id}, max_attempts => 3, %to });
    die "assign: $st\n" unless $st == 201;
}

my @urls = (
    ['return 200 (access check)', '/ok', $trainee],
    ['GET /scenarios (56 offered)', '/scenarios', $trainee],
    ['GET /authoring/scenarios (50)', '/authoring/scenarios', $trainer],
    ['GET /org/members (200)', '/org/members', $trainer],
    ['GET /me/assignments (10)', '/me/assignments', $trainee],
);

for my $u (@urls) {
    my ($st) = api('GET', $u->[1], $u->[2]);
    is $st, 200, "$u->[1] answers 200";
}

bench_table(\@urls, bench_runs(\@urls, 32, $secs), '%.0f', '%.2f');

stop_nginx();
done_testing();
