# The team view of issue 9, item 4, at the issue's size: an organization
# of 1,000 trainees with 50,000 resolved sessions (4 criteria each),
# against `return 200` behind the same access check, on the test stack
# with 2 workers.  Each review endpoint is one Postgres round trip.
#
#   scripts/test bench/review-bench.t      (BENCH_SECONDS=5 by default)
#
# wrk -t2 -c8, medians of 3 interleaved runs, printed as a table for
# BENCHMARKS.md.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Orgs;
use Test::Scenario::Bench;

my $secs = $ENV{BENCH_SECONDS} || 5;
my %conf = bench_conf();
my ($org, $trainer, $uid, $trainee) = bench_org('rb', 'R', 999);
pg_exec(q{WITH s AS (
              INSERT INTO sessions (user_id, scenario_id, status, created_at,
                                    resolved_at)
              SELECT u.id, (SELECT min(id) FROM scenarios) + (g % 3), 'resolved',
                     now() - make_interval(hours => g),
                     now() - make_interval(hours => g)
              FROM users u CROSS JOIN generate_series(1, 50) g
              WHERE u.org_id = :'v1' AND u.role = 'trainee'
              RETURNING id)
          INSERT INTO assessments (session_id, overall, empathy, clarity,
                                   resolution, efficiency, feedback, metrics,
                                   criteria)
          SELECT id, id % 101, id % 97, id % 89, id % 83, id % 79, '[]', '{}',
                 jsonb_build_array(
                     jsonb_build_object('key', 'a', 'description', 'A', 'met', id % 2 = 0),
                     jsonb_build_object('key', 'b', 'description', 'B', 'met', id % 3 = 0),
                     jsonb_build_object('key', 'c', 'description', 'C', 'met', id % 5 = 0),
                     jsonb_build_object('key', 'd', 'description', 'D', 'met', id % 7 = 0))
          FROM s}, $org);
pg_exec('ANALYZE');

start_nginx({ %conf, master => 1, workers => 2 });

my @urls = (
    ['return 200 (access check)', '/ok', $trainee],
    ['GET /review/team (1,000 trainees, 50,000 sessions)', '/review/team', $trainer],
    ['GET /review/trainees/{id} (50 sessions)', "/review/trainees/$uid", $trainer],
);

my ($st, $team) = api('GET', '/review/team', $trainer);
is $st, 200, 'the team view answers';
is scalar @{ $team->{trainees} }, 1000, 'with 1,000 trainees';
is eval { my $n = 0; $n += $_->{attempts} for @{ $team->{trainees} }; $n }, 50000,
    'and 50,000 sessions';

bench_table(\@urls, bench_runs(\@urls, 8, $secs), '%.1f', '%.4f');

stop_nginx();
done_testing();
