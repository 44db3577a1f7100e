# The WebSocket's timers, one event per connection since round 7 of the
# idle memory work (BENCHMARKS.md): pings at scenario_chat_ping, the idle
# close (1001) at scenario_chat_idle_timeout when nothing is received and
# the close timeout when our CLOSE is not answered, a client that answers
# the pings kept open, and a client that stops reading dropped at
# scenario_chat_send_timeout while frames wait (small socket buffers, as
# t/116-chat-resume-paged.t, so that the kernel does not absorb the
# replay).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $port = $ENV{TEST_NGINX_PORT} + 1;
my $api = platform_conf()->{config};
my %conf = %{ platform_conf() };
$conf{http_config} .= <<"_EOC_";
    server {
        listen 127.0.0.1:$port sndbuf=16k;
        server_name localhost;
        scenario_chat_ping 400ms;
        scenario_chat_idle_timeout 1500ms;
        scenario_chat_send_timeout 1s;
        scenario_chat_max_output 8m;
$api
    }
_EOC_

my $uid = make_user('wstimers', 'WS Timers');
my $token = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

# a session whose last message is the persona's: nothing is due on connect
sub quiet_session {
    my ($n, $size) = @_;
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
    pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
        SELECT :'v1', g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
               'line ' || g || ' ' || repeat('x', :'v3'::int),
               CASE WHEN g % 2 = 1 THEN 'old-' || g END
        FROM generate_series(1, :'v2'::int) g}, $sid, $n, $size);
    pg_exec(q{UPDATE sessions SET last_seq = :'v2' WHERE id = :'v1'}, $sid, $n);
    return $sid;
}

sub open_chat {
    my ($sid) = @_;
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5, port => $port });
    my $f = $ws->recv_frame(5);
    my $ready = $f && $f->{opcode} == 1 ? json_decode($f->{payload}) : {};
    return ($ws, $ready);
}

start_nginx(\%conf);

subtest 'pings, then the idle close' => sub {
    my ($ws, $ready) = open_chat(quiet_session(2, 10));
    is $ready->{type}, 'ready', 'ready';
    my $t0 = time;
    my ($pings, $close, $closed_at) = (0);
    while (my $f = $ws->recv_frame(5)) {
        $pings++ if $f->{opcode} == 9;
        if ($f->{opcode} == 8) { ($close, $closed_at) = ($f->{close_code}, time - $t0); last }
    }
    cmp_ok $pings, '>=', 2, "pinged ($pings) before the idle close";
    is $close, 1001, 'closed going away, pings unanswered';
    ok defined $closed_at && $closed_at > 1.0 && $closed_at < 3.5,
        'at the idle timeout (' . ($closed_at // 'never') . ' s)';

    # our CLOSE unanswered: the server closes at its close timeout (2 s)
    my $t1 = time;
    1 while $ws->recv_frame(4);
    my $eof = time - $t1;
    ok $ws->is_closed && $eof > 1.5 && $eof < 3.5,
        sprintf('the close timeout ends it (%.2f s)', $eof);
    $ws->disconnect;
};

subtest 'a client that answers stays open' => sub {
    my ($ws, $ready) = open_chat(quiet_session(2, 10));
    is $ready->{type}, 'ready', 'ready';
    my ($pings, $close) = (0);
    my $deadline = time + 3.5;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        if ($f->{opcode} == 9) { $pings++; $ws->send_pong($f->{payload}) }
        if ($f->{opcode} == 8) { $close = $f->{close_code}; last }
    }
    cmp_ok $pings, '>=', 5, "pinged ($pings) and answered";
    is $close, undef, 'not closed past two idle timeouts';
    ok !$ws->is_closed, 'the socket is open';
    my $reply = $ws->close(1000);
    is $reply && $reply->{close_code}, 1000, 'and closes normally';
};

subtest 'a client that stops reading is dropped at the send timeout' => sub {
    my $sid = quiet_session(2000, 1500);
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5, port => $port });
    $ws->{sock}->setsockopt(SOL_SOCKET, SO_RCVBUF, 16384);
    my $f = $ws->recv_frame(5);
    ok $f && $f->{opcode} == 1, 'ready';
    $ws->send_text(json_encode({ type => 'resume', after_seq => 0 }));
    my $t0 = time;
    my $dropped;
    while (time - $t0 < 8) {
        sleep 0.25;
        if (error_log_data() =~ /client timed out reading websocket frames/) {
            $dropped = time - $t0;
            last;
        }
    }
    ok defined $dropped, 'dropped (' . ($dropped // 'never') . ' s)';
    ok defined $dropped && $dropped < 5, 'within the send timeout and a ping or two';
    $ws->disconnect;
};

stop_nginx();
done_testing();
