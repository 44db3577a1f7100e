# A multi-host connection string whose first host refuses: libpq closes
# that socket inside one PQconnectPoll() and opens the next, usually with
# the same fd number.  The pool must follow it to the second host rather
# than wait for events on a socket epoll no longer knows (503 forever).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);

my $pg = $ENV{TEST_NGINX_PG_PORT};
my $dead = 1;                         # nothing listens on port 1

my %conf = (
    main_config => "thread_pool scenario_hash threads=2 max_queue=64;",
    http_config => <<"_EOC_",
    scenario_postgres "host=127.0.0.1,127.0.0.1 port=$dead,$pg dbname=scenario user=postgres";
    scenario_postgres_connect_timeout 2s;
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
_EOC_
    config => "include $ENV{TEST_NGINX_REPO}/conf/scenario-api.conf;",
);

my $uid = make_user('multihost', 'Multi Host');
my $token = make_token($uid);

start_nginx(\%conf);

my $res = http('GET', '/scenarios', { Authorization => "Bearer $token" },
               undef, { timeout => 10 });
is $res->{status}, 200, 'the first request is answered from the second host';
my $list = eval { json_decode($res->{body}) };
is ref $list, 'ARRAY', 'with the scenario list';
cmp_ok ref $list eq 'ARRAY' ? scalar @$list : 0, '>=', 6, 'all of it';

# every connection of the pool gets there, not only the first
my @status = map {
    http('GET', '/me/progress', { Authorization => "Bearer $token" },
         undef, { timeout => 10 })->{status}
} 1 .. 8;
is_deeply \@status, [(200) x 8], 'eight more requests, all 200';

my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, error_log_data();
is_deeply \@bad, [], 'no alert (no epoll_ctl on a socket it never had)';

stop_nginx();
done_testing();
