# Registration costs an argon2id hash, so an address gets so many a window
# (scenario_register_limit), counted atomically before hashing: parallel
# sign-ups from one address cannot fill the hashing pool.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use POSIX ();
use Test::Scenario::Util qw(:all);

my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";

my %conf = (
    main_config => "thread_pool scenario_hash threads=2 max_queue=256;",
    http_config => <<"_EOC_",
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    scenario_register_limit address=3 window=1m;
_EOC_
    config => "include $repo/conf/scenario-api.conf;",
);

my $tag = 'reglimit-' . time() . "-$$";
redis_cmd('DEL', 'rl:register:a:127.0.0.1');

start_nginx(\%conf);

# twelve sign-ups at once, from twelve processes
my @kids;
for my $i (1 .. 12) {
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        close $r;
        my $res = http('POST', '/auth/register', { 'Content-Type' => 'application/json' },
            json_encode({ email => "$tag-$i\@example.com",
                          password => 'a-long-password-1', display_name => "R $i" }),
            { timeout => 20 });
        my $ra = Test::Scenario::Util::header_value($res, 'Retry-After') // '';
        print $w "$res->{status} $ra $res->{body}";
        close $w;
        POSIX::_exit(0);
    }
    close $w;
    push @kids, [$pid, $r];
}
my @answers;
for (@kids) {
    my ($pid, $r) = @$_;
    local $/;
    push @answers, scalar <$r>;
    waitpid $pid, 0;
}

my @created = grep { /^201 / } @answers;
my @limited = grep { /^429 / } @answers;
is scalar @created, 3, 'three registrations' or diag explain \@answers;
is scalar @limited, 9, 'nine refused with 429';
like $limited[0] // '', qr/^429 \d+ \{"error":\{"code":"rate_limited","message":"too many registrations/,
    'with Retry-After and the error shape';
is pg_exec(q{SELECT count(*) FROM users WHERE email LIKE :'v1'}, "$tag-%"), 3,
    'three users exist, nobody else was hashed';

pg_exec(q{DELETE FROM users WHERE email LIKE :'v1'}, "$tag-%");
redis_cmd('DEL', 'rl:register:a:127.0.0.1');

stop_nginx();
done_testing();
