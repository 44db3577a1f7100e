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
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my $secs = $ENV{BENCH_SECONDS} || 5;
my %conf = %{ platform_conf(config => "location = /ok {\n"
                                    . "    scenario_auth_required on;\n"
                                    . "    return 200 ok;\n}\n") };

my $org = new_org();
my ($tid, $trainer) = new_user('trainer', $org);
my ($uid, $trainee) = new_user('trainee', $org);
pg_exec(q{INSERT INTO users (email, password_hash, display_name, org_id)
          SELECT 'bench-' || :'v1' || '-' || g || '@example.com', 'x', 'B' || g, :'v1'
          FROM generate_series(1, 198) g}, $org);

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

my %rps;
for my $run (1 .. 3) {
    for my $u (@urls) {
        my $out = `wrk -t2 -c32 -d${secs}s -H 'Authorization: Bearer $u->[2]' http://127.0.0.1:$ENV{TEST_NGINX_PORT}$u->[1] 2>&1`;
        my ($r) = $out =~ /Requests\/sec:\s+([\d.]+)/;
        my ($non) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
        is $non // 0, 0, "$u->[1]: every answer 200 (run $run)";
        push @{ $rps{ $u->[0] } }, $r // 0;
    }
}

sub median { my @s = sort { $a <=> $b } @_; return $s[@s / 2] }

my $base = median(@{ $rps{ $urls[0][0] } });
diag "| endpoint | rps (median of 3) | runs | ratio to return 200 |";
diag "|---|---|---|---|";
for my $u (@urls) {
    my $m = median(@{ $rps{ $u->[0] } });
    diag sprintf "| %s | %.0f | %s | %.2f |", $u->[0], $m,
        join(' ', map { sprintf '%.0f', $_ } @{ $rps{ $u->[0] } }), $m / $base;
}

stop_nginx();
done_testing();
