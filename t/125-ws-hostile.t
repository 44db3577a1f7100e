# WebSocket peers that push the framing to its edges: the close codes the
# registry assigns since RFC 6455 (1012-1014), and a client that streams
# tiny pong frames without pause, which must not keep the worker from
# serving anyone else.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use Socket ();
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('hostile', 'Hostile Peer');
my $token = make_token($uid);
my $sid = make_session($uid);

sub connect_chat {
    my $ws = ws_connect("/sessions/$sid/chat",
                        { Authorization => "Bearer $token" }, { timeout => 5 });
    while (my $f = $ws->recv_frame(5)) {
        last if $f->{opcode} == 1 && json_decode($f->{payload})->{type} eq 'ready';
    }
    return $ws;
}

start_nginx(\%conf);

subtest 'close codes 1012-1014 are valid, 1004-1006 and 1015 are not' => sub {
    for my $code (1012, 1013, 1014) {
        my $reply = connect_chat()->close($code);
        ok $reply, "$code: a close frame comes back";
        is $reply && $reply->{close_code}, $code, "$code: echoed";
    }
    for my $code (1004, 1005, 1006, 1015, 2999) {
        my $reply = connect_chat()->close($code);
        is $reply && $reply->{close_code}, 1002, "$code: protocol error";
    }
};

# Why the worker is safe now, since a test cannot make a loopback client
# outrun the parser for long: a read pass stops after 64 KiB and the read
# event goes to ngx_posted_next_events, which nginx moves to the posted
# queue only at the next turn of its loop, after epoll and the timers.  It
# used to go to ngx_posted_events, which the same turn drains until empty:
# a client that kept 64 KiB waiting at every pass kept the worker from
# accept(), from every other socket and from its timers.  What the test
# below can show is that a flood of pongs leaves the worker serving others.
subtest 'a client that never stops sending pongs does not pin the worker' => sub {
    my $ws = connect_chat();
    my $sock = $ws->{sock};
    my $pong = "\x8a\x80\0\0\0\0";          # an empty masked pong
    my $burst = $pong x 20000;

    # the flood, from a child, until told to stop
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{TERM} = sub { exit 0 };
        $sock->blocking(1);
        while (1) { defined syswrite($sock, $burst) or exit 0 }
    }

    sleep 1;                                # the worker is busy with it
    my @took;
    for (1 .. 5) {
        my $t0 = time;
        my $res = http('GET', '/healthz', {}, undef, { timeout => 5 });
        push @took, time - $t0;
        is $res->{status}, 200, 'healthz answers during the flood';
    }
    kill 'TERM', $pid;
    waitpid $pid, 0;

    my ($slowest) = sort { $b <=> $a } @took;
    cmp_ok $slowest, '<', 2, sprintf('each within 2 s (slowest %.3f s)', $slowest);
    $ws->disconnect;

    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, error_log_data();
    is_deeply \@bad, [], 'nothing alarming in error.log';
};

# A reader that is slow during a reply: the model subrequest's upstream
# arms the connection's write timer (send_timeout) while the socket is
# full, and used to leave it armed and its timedout flag set after the
# reply; the next turn's upstream then saw a timed-out client and ended
# with 408.  The model client now disarms the timer and clears the flag
# when a call ends, and the WebSocket write handler does so whenever it
# runs (its own send deadline is a timer of its own).  Loopback buffers
# are large, so the test cannot be sure to fill the socket; it plays the
# sequence with a 1 s send_timeout and checks that later turns answer.
subtest 'a reader that pauses mid-reply, then stays: later turns answer' => sub {
    start_nginx({ %{ platform_conf(http_config => "    send_timeout 1s;\n") } });
    my $ws = connect_chat();
    $ws->{sock}->setsockopt(Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 1024);
    for my $turn (1 .. 3) {
        $ws->send_text(json_encode({ type => 'user_message',
            client_msg_id => "pause-$turn-$$",
            content => 'I am sorry, let me explain the refund in detail.' }));
        sleep 1.5;                          # not reading during the reply
        my ($end, $err);
        while (my $f = $ws->recv_frame(8)) {
            next unless $f->{opcode} == 1;
            my $ev = json_decode($f->{payload});
            if ($ev->{type} eq 'assistant_end') { $end = $ev; last }
            if ($ev->{type} eq 'error') { $err = $ev; last }
        }
        ok $end, "turn $turn: answered" or diag explain $err;
        sleep 1.5;                          # a stale timer would fire now
    }
    $ws->disconnect;
    unlike error_log_data(), qr/client timed out/, 'no client timeout logged';
};

stop_nginx();
done_testing();
