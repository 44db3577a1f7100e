# The end of a turn releases the reply lock with one GETDEL inside the
# unlock script (issue 10): (a) on the common path a turn costs 7 Redis
# commands (INFO commandstats: SET NX PX, LRANGE, EVAL with GETDEL and
# RPUSH inside, two PUBLISH), the lock is gone after the reply and the
# turn's two messages are in the context; (b) a turn
# whose lock was taken by another holder meanwhile leaves that holder's
# lock in place (put back with a whole lease), appends nothing to the
# context, and the next turn, once the lock is free, rebuilds the context
# from Postgres with nothing missing.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('unlock-' || :'v1' || '@example.com', 'x', 'Unlock Tester')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);

sub until_end {
    my ($ws) = @_;
    return ws_events($ws, 8, sub {
        $_[0]{type} eq 'assistant_end' || $_[0]{type} eq 'error' });
}

sub context_seqs {
    return join ',', map { (eval { json_decode($_) } || {})->{seq} // '?' }
                     split /\n/, redis_cmd('lrange', "ctx:$sid", 0, -1);
}

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
ok $ws->handshake_ok, 'connected';
until_end($ws);                     # the persona opens: seq 1

sub redis_counts {
    my %c;
    for (split /\r?\n/, redis_cmd('info', 'commandstats')) {
        $c{$1} = $2 if /^cmdstat_([a-z|]+):calls=(\d+)/;
    }
    return \%c;
}

subtest 'the common path: the lock goes, the turn joins the context' => sub {
    my $r0 = redis_counts();
    ws_say($ws, 'u-1', 'Hello there [[delay:0]]');
    my ($end) = grep { $_->{type} eq 'assistant_end' } until_end($ws);
    is $end && $end->{seq}, 3, 'the reply, seq 3';
    sleep 0.2;
    my $r1 = redis_counts();
    my %d = map { $_ => $r1->{$_} - ($r0->{$_} // 0) }
            grep { $_ ne 'info' && $r1->{$_} > ($r0->{$_} // 0) } keys %$r1;
    my $by = join ' ', map { "$_ $d{$_}" } sort keys %d;
    is $by, 'eval 1 getdel 1 lrange 1 publish 2 rpush 1 set 1',
        'the turn: 7 Redis commands, the lock released by its GETDEL';
    is redis_cmd('exists', "gen:$sid"), 0, 'no lock left behind';
    is context_seqs(), '1,2,3', 'the context holds seqs 1, 2 and 3';
};

subtest 'a lock taken meanwhile stays its taker\'s' => sub {
    ws_say($ws, 'u-2', 'Where is it? [[slow:1000]]');

    my $held = '';
    my $deadline = time + 3;
    while (time < $deadline) {
        $held = redis_cmd('get', "gen:$sid") // '';
        last if $held =~ /^[0-9a-f]{16}\.\d+\.\d+$/;
        sleep 0.02;
    }
    like $held, qr/^[0-9a-f]{16}\.\d+\.\d+$/, 'the turn holds the lock';
    redis_cmd('set', "gen:$sid", 'another-holder', 'PX', 2000);

    my ($end) = grep { $_->{type} eq 'assistant_end' } until_end($ws);
    is $end && $end->{seq}, 5, 'the reply still comes, seq 5';
    sleep 0.2;
    is redis_cmd('get', "gen:$sid"), 'another-holder',
        "the taker's lock is still there";
    my $ttl = redis_cmd('pttl', "gen:$sid");
    cmp_ok $ttl, '>', 2000, "put back with a whole lease ($ttl ms)";
    cmp_ok $ttl, '<=', 5000, 'no longer than a lease';
    is context_seqs(), '1,2,3', 'the turn appended nothing';
    is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'},
               $sid), 5, 'Postgres has all five messages';

    redis_cmd('del', "gen:$sid");
    ws_say($ws, 'u-3', 'And now?');
    ($end) = grep { $_->{type} eq 'assistant_end' } until_end($ws);
    is $end && $end->{seq}, 7, 'the next turn, seq 7';
    my $last = `curl -fsS http://127.0.0.1:$ENV{TEST_NGINX_STUB_PORT}/last`;
    my @m = @{ (eval { json_decode($last) } || {})->{messages} || [] };
    is scalar(@m), 7, 'the model saw the prompt and all six messages'
        or diag $last;
    is $m[-3] && $m[-3]{content}, 'Where is it? [[slow:1000]]',
        'with the turn the context missed';
    sleep 0.2;
    is redis_cmd('exists', "gen:$sid"), 0, 'no lock left behind';
};

$ws->disconnect;
stop_nginx();
done_testing();
