# Login attempts are counted before the argon2id verify, atomically: many
# parallel guesses for one email get no more verifies than the limit.
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
    scenario_login_limit email=3 address=1000 window=1m;
_EOC_
    config => "include $repo/conf/scenario-api.conf;",
);

my $json = { 'Content-Type' => 'application/json' };

sub register {
    my ($email) = @_;
    my $res = http('POST', '/auth/register', $json,
        json_encode({ email => $email, password => 'right-password-1',
                      display_name => 'Limit' }));
    return $res->{status};
}

sub login {
    my ($email, $password) = @_;
    return http('POST', '/auth/login', $json,
        json_encode({ email => $email, password => $password }));
}

start_nginx(\%conf);

subtest 'parallel guesses get no more verifies than the limit' => sub {
    my $email = "par$$-" . time() . '@example.com';
    is register($email), 201, 'registered';

    # 30 guesses at once: before the fix every one read a counter of 0
    my (@kids, %seen);
    for my $i (1 .. 30) {
        pipe(my $rd, my $wr) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $rd;
            print $wr login($email, "wrong-password-$i")->{status};
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @kids, [$pid, $rd];
    }
    for my $kid (@kids) {
        my $fh = $kid->[1];
        my $st = <$fh> // 'none';
        $seen{$st}++;
        waitpid $kid->[0], 0;
    }
    is_deeply \%seen, { 401 => 3, 429 => 27 },
        'three verifies (401), the rest refused before hashing (429)';

    my $res = login($email, 'right-password-1');
    is $res->{status}, 429, 'even the right password waits for the window';
    like $res->{body}, qr/^\{"error":\{"code":"rate_limited"/, 'in the error shape';
};

subtest 'a successful login resets the count' => sub {
    my $email = "reset$$-" . time() . '@example.com';
    is register($email), 201, 'registered';
    is login($email, 'wrong-1')->{status}, 401, 'first guess';
    is login($email, 'wrong-2')->{status}, 401, 'second guess';
    is login($email, 'right-password-1')->{status}, 200, 'the right password';
    is login($email, "wrong-$_")->{status}, 401, "guess $_ after the reset"
        for 3 .. 5;
    is login($email, 'wrong-6')->{status}, 429, 'the fourth is over the limit';
};

stop_nginx();
done_testing();
