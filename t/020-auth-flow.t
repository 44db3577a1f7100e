# The login flow end to end, with the parts that take several steps: what
# Redis keeps, a dead Redis or Postgres (503, then recovery without
# restarting nginx), and a reload under live connections.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);

my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";

my %conf = (
    main_config => "thread_pool scenario_hash threads=2 max_queue=256;",
    http_config => <<"_EOC_",
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_postgres_connect_timeout 1s;
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    scenario_redis_timeout 1s;
    scenario_login_limit email=1000 address=1000 window=1m;
_EOC_
    config => "include $repo/conf/scenario-api.conf;",
    log_level => 'info',
);

my $json = { 'Content-Type' => 'application/json' };
my $demo = '{"email":"demo@example.com","password":"demo-password"}';

sub login {
    my $res = http('POST', '/auth/login', $json, $demo);
    return $res->{status} == 200 ? json_decode($res->{body})->{token} : undef;
}

sub me {
    my ($token) = @_;
    return http('GET', '/auth/me', { Authorization => "Bearer $token" });
}

# Polls until the check passes or the time is up; returns the last result.
sub eventually {
    my ($secs, $check) = @_;
    my $deadline = time + $secs;
    my $ok;
    until (($ok = $check->()) || time > $deadline) { sleep 0.1 }
    return $ok;
}

sub lib_sh {
    my ($cmd) = @_;
    system('bash', '-c', ". '$repo/scripts/lib.sh' && $cmd") == 0
        or die "failed: $cmd\n";
}

sub errors_logged {
    return grep { /\[(?:alert|crit|emerg)\]|open socket|segfault|exited on signal/ }
           split /\n/, error_log_data();
}

start_nginx(\%conf);

subtest 'Redis holds no usable token' => sub {
    my $token = login();
    ok $token, 'logged in';
    my @keys = split /\n/, redis_cmd('keys', 'sess:*');
    ok((grep { $_ eq 'sess:' . sha256_hex($token) } @keys),
       'the session is stored under the SHA-256 of the token');
    ok(!(grep { index($_, $token) >= 0 } @keys), 'no key holds the token');
    for my $key (@keys) {
        my $value = redis_cmd('get', $key);
        unlike $value, qr/\Q$token\E/, 'no value holds the token';
        (my $hash = $key) =~ s/^sess://;
        is me($hash)->{status}, 401, 'a stored hash is no token';
    }
    is me($token)->{status}, 200, 'the token itself works';
};

subtest 'a dead Redis is 503, and it is survived' => sub {
    my $token = login();
    lib_sh("redis_stop '$ENV{TEST_NGINX_REDIS_DIR}' $ENV{TEST_NGINX_REDIS_PORT}");

    my $res = me($token);
    is $res->{status}, 503, '/auth/me is 503 while Redis is down';
    like $res->{body}, qr/^\{"error":\{"code":"unavailable","message":"redis is unavailable/,
        'in the error shape';
    my $retry = $res->{headers}{'retry-after'} // '';
    $retry = $retry->[0] if ref $retry;
    like $retry, qr/^\d+$/, 'with Retry-After';

    $res = http('GET', '/healthz');
    is $res->{status}, 503, 'healthz is 503';
    is $res->{body}, qq({"postgres":"ok","redis":"down"}\n), 'naming Redis';

    is http('POST', '/auth/login', $json, $demo)->{status}, 503,
        'login is 503 too';

    lib_sh("redis_start '$ENV{TEST_NGINX_REDIS_DIR}' $ENV{TEST_NGINX_REDIS_PORT}");

    ok eventually(10, sub { http('GET', '/healthz')->{status} == 200 }),
        'healthz recovers without restarting nginx';
    my $again = login();
    ok $again, 'login works again';
    is me($again)->{status}, 200, 'and so does the new token';
};

subtest 'a dead Postgres is 503, and it is survived' => sub {
    my $token = login();
    is me($token)->{status}, 200, 'the profile is cached';

    lib_sh("pg_stop '$ENV{TEST_NGINX_PG_DIR}'");

    my $res = http('POST', '/auth/login', $json, $demo);
    is $res->{status}, 503, 'login is 503 while Postgres is down';
    like $res->{body}, qr/"code":"unavailable","message":"postgres is unavailable/,
        'naming Postgres';

    $res = http('GET', '/healthz');
    is $res->{status}, 503, 'healthz is 503';
    is $res->{body}, qq({"postgres":"down","redis":"ok"}\n), 'naming Postgres';

    is me($token)->{status}, 200, '/auth/me still answers from Redis';

    lib_sh("pg_start '$ENV{TEST_NGINX_PG_DIR}' $ENV{TEST_NGINX_PG_PORT}");

    ok eventually(15, sub { http('GET', '/healthz')->{status} == 200 }),
        'healthz recovers without restarting nginx';
    ok login(), 'login works again';
};

stop_nginx();

subtest 'reload under live connections' => sub {
    start_nginx({ %conf, master => 1, workers => 2 });
    my $master = nginx_pid();
    my $token = login();
    ok $token, 'logged in';

    # logins in flight (each waits for argon2id) while the reload happens
    my @kids;
    for my $i (1 .. 8) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $ok = 1;
            for (1 .. 3) {
                my $st = http('POST', '/auth/login', $json, $demo)->{status};
                $ok = 0 unless $st == 200;
            }
            POSIX::_exit($ok ? 0 : 1);
        }
        push @kids, $pid;
    }

    sleep 0.05;
    kill 'HUP', $master or die "HUP: $!";

    my $failed = 0;
    for my $pid (@kids) {
        waitpid $pid, 0;
        $failed++ if $? != 0;
    }
    is $failed, 0, 'every login across the reload succeeded';

    ok eventually(10, sub { me($token)->{status} == 200 }),
        'the session lives on after the reload';

    # both workers now hold the session in their caches
    my %seen;
    for (1 .. 40) { $seen{ me($token)->{status} }++ }
    is_deeply \%seen, { 200 => 40 }, 'the token works on every worker';
    is http('POST', '/auth/logout', { Authorization => "Bearer $token" })
        ->{status}, 204, 'logged out';
    %seen = ();
    for (1 .. 40) { $seen{ me($token)->{status} }++ }
    is_deeply \%seen, { 401 => 40 }, 'and it is dead at once on every worker';

    sleep 1;
    is_deeply [errors_logged()], [], 'no alert, crit or open socket in error.log';
    stop_nginx();
    is_deeply [errors_logged()], [], 'none at shutdown either';
};

done_testing();
