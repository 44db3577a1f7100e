# With request_pool_size 1k (the shipped server's) an upgraded chat keeps
# two blocks of its request's pool and one of its connection's: the chat,
# its lease and its watches are allocations of their own or use the room
# left in those blocks, never a block more (the debug log's line at the end
# of the upgrade counts them; with them in r->pool it was three blocks).
# The socket goes on working: a turn, then a member's change heard through
# the watch kept in the connection's pool (1008), and a logout heard
# through the token's watch on another chat (1008).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(config => "request_pool_size 1k;\n") };
$conf{log_level} = 'debug';

my $uid = make_user('idle-pool', 'Idle Pool');
my $token = make_token($uid);

sub opened {
    my ($sid) = @_;
    my $ws = ws_connect("/sessions/$sid/chat",
                        { Authorization => "Bearer $token" },
                        { timeout => 10 });
    ok $ws->handshake_ok, "session $sid: 101";

    # a new session: the persona's opening line
    my $end;
    while (my $f = $ws->recv_frame(10)) {
        next unless $f->{opcode} == 1;
        my $e = json_decode($f->{payload});
        if ($e->{type} eq 'assistant_end') { $end = $e; last }
    }
    ok $end, "session $sid: the opening line came";

    return $ws;
}

sub close_code {
    my ($ws, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        return $f->{close_code} if $f->{opcode} == 8;
    }
    return 'none';
}

start_nginx(\%conf);

my $sid = make_session($uid);
my $ws = opened($sid);

my $kept_re = 'chat upgraded: request pool of (\d+) blocks, '
             . 'connection pool of (\d+)';
my ($blocks, $cpool) = error_log_data() =~ /$kept_re/;
ok defined $blocks, 'the upgrade counted what the socket keeps'
    or diag 'no debug line: is nginx built --with-debug?';
is $blocks, 2, "two blocks of the request's pool";
is $cpool, 1, "one block of the connection's pool";

$ws->send_text(json_encode({ type => 'user_message', client_msg_id => 'one',
                             content => 'Where is my refund?' }));
my $end;
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    my $e = json_decode($f->{payload});
    if ($e->{type} eq 'assistant_end') { $end = $e; last }
}
ok $end && length($end->{content} // '') > 0, 'a turn after the upgrade';

# the member's watch: not in the request's pool
my $other = opened(make_session($uid));

redis_cmd('PUBLISH', 'scenario:invalidate', "member:$uid");
is close_code($ws, 3), 1008, "a member's change ends the chat";
is close_code($other, 3), 1008, '... and the other one';

# the token's watch
$ws = opened(make_session($uid));
my $res = http('POST', '/auth/logout', { Authorization => "Bearer $token" });
is $res->{status}, 204, 'logged out' or diag $res->{body};
is close_code($ws, 3), 1008, 'the logout ends the chat';

my $log = error_log_data();
stop_nginx();

unlike $log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing();
