package Test::Scenario::Bench;

# What the wrk benchmarks of bench/*.t share: the `return 200` baseline
# behind the access check, an organization of many members, and the runs
# (interleaved, medians of 3) printed as a table for BENCHMARKS.md.

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

our @EXPORT = qw(bench_conf bench_org bench_runs bench_table);

# the platform's configuration plus /ok: `return 200` once the token holds
sub bench_conf {
    return %{ platform_conf(config => "location = /ok {\n"
                                   . "    scenario_auth_required on;\n"
                                   . "    return 200 ok;\n}\n") };
}

# bench_org($email, $name, $more): an organization with a trainer, a
# trainee and $more members made in Postgres ("$email-<org>-<n>@...",
# named "$name<n>"): ($org, $trainer, $trainee_id, $trainee)
sub bench_org {
    my ($email, $name, $more) = @_;
    my $org = new_org();
    my (undef, $trainer) = new_user('trainer', $org);
    my ($uid, $trainee) = new_user('trainee', $org);
    pg_exec(q{INSERT INTO users (email, password_hash, display_name, org_id)
              SELECT :'v2' || '-' || :'v1' || '-' || g || '@example.com', 'x',
                     :'v3' || g, :'v1'
              FROM generate_series(1, :v4) g}, $org, $email, $name, $more);
    return ($org, $trainer, $uid, $trainee);
}

# bench_runs(\@urls, $connections, $seconds): 3 interleaved wrk runs of
# each [name, path, token]; every answer must be 200.  { name => [rps] }
sub bench_runs {
    my ($urls, $conns, $secs) = @_;
    my %rps;
    for my $run (1 .. 3) {
        for my $u (@$urls) {
            my $out = `wrk -t2 -c$conns -d${secs}s -H 'Authorization: Bearer $u->[2]' http://127.0.0.1:$ENV{TEST_NGINX_PORT}$u->[1] 2>&1`;
            my ($r) = $out =~ /Requests\/sec:\s+([\d.]+)/;
            my ($non) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
            is $non // 0, 0, "$u->[1]: every answer 200 (run $run)";
            push @{ $rps{ $u->[0] } }, $r // 0;
        }
    }
    return \%rps;
}

sub median { my @s = sort { $a <=> $b } @_; return $s[@s / 2] }

# the table, each median against the first url's (the baseline): rps
# printed with $rps_fmt, the ratio with $ratio_fmt
sub bench_table {
    my ($urls, $rps, $rps_fmt, $ratio_fmt) = @_;
    my $base = median(@{ $rps->{ $urls->[0][0] } });
    diag "| endpoint | rps (median of 3) | runs | ratio to return 200 |";
    diag "|---|---|---|---|";
    for my $u (@$urls) {
        my $m = median(@{ $rps->{ $u->[0] } });
        diag sprintf "| %s | $rps_fmt | %s | $ratio_fmt |", $u->[0], $m,
            join(' ', map { sprintf $rps_fmt, $_ } @{ $rps->{ $u->[0] } }),
            $m / $base;
    }
}

1;
