# The reply lock (issue 12 item 1, issue 11 item 10): a short lease that
# its holder renews, the holder's token in the lock, and waiters that take
# over.  (a) A worker killed with SIGKILL mid-reply leaves its lock behind;
# the same message sent again on a new connection gets its reply within
# 10 s, as the dead holder's lease runs out and the waiter takes over.
# (b) Redis paused longer than scenario_redis_timeout: each session hears a
# retryable error, and after the resume the message sent again gets its
# reply within 10 s (the lock set by the buffered SET NX is released by its
# turn, or expires with its short lease).  (c) A live holder's lease is
# renewed: a reply longer than the lease is generated once.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $dir = $ENV{TEST_NGINX_REDIS_DIR};

my %conf = %{ platform_conf(model_timeout => '8s', read_timeout => '8s',
    http_config => "    scenario_redis_timeout 1s;\n") };
$conf{master} = 1;
$conf{workers} = 2;

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('takeover-' || :'v1' || '@example.com', 'x', 'Takeover')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub new_session {
    return pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
}

sub connect_to {
    my ($sid) = @_;
    my $ws = ws_connect("/sessions/$sid/chat",
                        { Authorization => "Bearer $token" }, { timeout => 5 });
    return $ws->handshake_ok ? $ws : undef;
}

sub say_to {
    my ($ws, $id, $text) = @_;
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => $id, content => $text }));
}

# events until one satisfies $stop, or the deadline
sub until_event {
    my ($ws, $secs, $stop) = @_;
    my @got;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        return ($ev, @got) if $stop->($ev);
    }
    return (undef, @got);
}

sub is_last { $_[0]{type} eq 'assistant_end' || $_[0]{type} eq 'error' }

sub replies {
    my ($sid) = @_;
    return pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
        AND role = 'assistant'}, $sid);
}

start_nginx(\%conf);

subtest 'a worker killed mid-reply: the session answers again' => sub {
    my $sid = new_session();
    my $ws = connect_to($sid);
    ok $ws, 'connected';
    until_event($ws, 3, sub { $_[0]{type} eq 'ready' });

    my $text = 'Where is my refund? [[slow:2000]]';
    say_to($ws, 'kill-1', $text);
    my ($start) = until_event($ws, 5,
                              sub { $_[0]{type} eq 'assistant_start' });
    ok $start, 'the reply started';

    my $lock = redis_cmd('GET', "gen:$sid") // '';
    like $lock, qr/^[0-9a-f]{16}\.\d+\.\d+$/, 'the lock holds its owner token';

    # the holder is the worker that has our connection
    my $cport = $ws->{sock}->sockport;
    my ($pid) = `ss -Htnp 'sport = :$ENV{TEST_NGINX_PORT} and dport = :$cport'`
                =~ /pid=(\d+)/;
    ok $pid && kill('KILL', $pid), 'holder worker ' . ($pid // '?') . ' killed';

    my $ttl = redis_cmd('PTTL', "gen:$sid");
    cmp_ok $ttl, '<=', 5000, "the lock's lease is short ($ttl ms)";

    sleep 0.3;
    my $t0 = time;
    my $again;
    for (1 .. 10) {
        $again = connect_to($sid) and last;
        sleep 0.2;
    }
    ok $again, 'reconnected';
    say_to($again, 'kill-1', $text);
    my ($end, @got) = until_event($again, 10, \&is_last);
    ok $end, sprintf('the client hears the end within 10 s (%.1f s)',
                     time - $t0);
    if ($end && $end->{type} eq 'error') {
        is $end->{code}, 'unavailable', 'a retryable error';
    } else {
        is $end && $end->{type}, 'assistant_end', 'the reply'
            or diag explain \@got;
        is replies($sid), 1, 'stored once';
    }
};

subtest 'redis paused longer than its timeout' => sub {
    my @sids = map { new_session() } 1 .. 3;
    my @ws = map { connect_to($_) } @sids;
    is scalar(grep { $_ } @ws), 3, 'three sessions connected';
    until_event($_, 3, sub { $_[0]{type} eq 'ready' }) for @ws;

    open my $fh, '<', "$dir/redis.pid" or die "no redis pid: $!";
    chomp(my $rpid = <$fh>);
    close $fh;

    kill 'STOP', $rpid or die "stop redis: $!";
    say_to($ws[$_], "pause-$_", "Hello number $_") for 0 .. 2;
    sleep 3;
    kill 'CONT', $rpid;
    my $resumed = time;

    for my $i (0 .. 2) {
        my ($end, @got) = until_event($ws[$i], $resumed + 10 - time,
                                      \&is_last);
        ok $end, "session $i hears something within 10 s of the resume";
        ok $end && ($end->{type} eq 'assistant_end'
                    || $end->{code} eq 'unavailable'),
           "session $i: the reply or a retryable error"
            or diag explain \@got;
        next if !$end || $end->{type} eq 'assistant_end';

        # retryable: sent again, it is answered, not silenced by a lock
        say_to($ws[$i], "pause-$i", "Hello number $i");
        ($end, @got) = until_event($ws[$i], $resumed + 10 - time,
                                   sub { $_[0]{type} eq 'assistant_end' });
        ok $end, "session $i: sent again, the reply within 10 s of the "
                 . "resume" or diag explain \@got;
    }

    is replies($sids[$_]), 1, "session $_: one reply stored" for 0 .. 2;
};

subtest 'a live holder renews its lease' => sub {
    my $sid = new_session();
    my $ws = connect_to($sid);
    my $other = connect_to($sid);
    ok $ws && $other, 'two connections';
    until_event($_, 3, sub { $_[0]{type} eq 'ready' }) for $ws, $other;

    # about 6.5 s: longer than a lease of 5 s
    say_to($ws, 'long-1', 'Tell me everything [[slow:6500]]');
    my ($end, @got) = until_event($ws, 12, \&is_last);
    is $end && $end->{type}, 'assistant_end', 'the reply comes'
        or diag explain \@got;
    my ($seen) = until_event($other, 2, \&is_last);
    is $seen && $seen->{type}, 'assistant_end', 'the other connection sees it';
    is replies($sid), 1, 'generated and stored once';
    is scalar(grep { $_->{type} eq 'assistant_start' } @got), 1,
        'one start only';
};

stop_nginx();
done_testing();
