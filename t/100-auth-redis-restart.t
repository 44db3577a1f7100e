# Login sessions survive a Redis crash (issue 12 item 2): the shipped Redis
# (scripts/lib.sh) runs with an append-only file fsynced every second, so a
# token from before a kill -9 and restart of Redis still works, and a
# logged-out token stays dead (its DEL is in the file too).  nginx is
# restarted as well, so no worker's cache answers for Redis.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);

my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";
my $dir = $ENV{TEST_NGINX_REDIS_DIR};
my $port = $ENV{TEST_NGINX_REDIS_PORT};

my %conf = (
    main_config => "thread_pool scenario_hash threads=2 max_queue=256;",
    http_config => <<"_EOC_",
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_redis 127.0.0.1:$port;
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

sub lib_sh {
    my ($cmd) = @_;
    system('bash', '-c', ". '$repo/scripts/lib.sh' && $cmd") == 0
        or die "failed: $cmd\n";
}

start_nginx(\%conf);

my $kept = login();
my $gone = login();
ok $kept && $gone, 'logged in twice';
is http('POST', '/auth/logout', { Authorization => "Bearer $gone" })->{status},
    204, 'one token logged out';

sleep 1.5;    # appendfsync everysec: the writes are on disk within a second
stop_nginx();

open my $fh, '<', "$dir/redis.pid" or die "no redis pid: $!";
chomp(my $pid = <$fh>);
close $fh;
kill 'KILL', $pid or die "kill redis: $!";
my $deadline = time + 5;
sleep 0.1 while kill(0, $pid) && time < $deadline;
unlink "$dir/redis.pid";
lib_sh("redis_start '$dir' $port");

start_nginx(\%conf);
my $res = me($kept);
is $res->{status}, 200, 'the token from before the crash still works';
like $res->{body}, qr/demo\@example\.com/, 'for its user';
is me($gone)->{status}, 401, 'the logged-out token stays dead';

stop_nginx();
done_testing();
