# A client message sent in the same write as the handshake: the upgrade
# frees the connection's header buffer after moving the request's bytes
# (and the frames behind them) into the request's pool; the message must
# still be read, stored, acknowledged and answered, and the request's URI
# (the session id) and headers must still be right after the move.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Protocol::WebSocket::Frame;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('behind', 'Frame Behind');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $msg = json_encode({ type => 'user_message', client_msg_id => 'behind-1',
                        content => 'Hello, I ordered a lamp.' });
my $frame = Protocol::WebSocket::Frame->new(buffer => $msg, opcode => 1,
                                            masked => 1)->to_bytes;

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 10, behind => $frame });
ok $ws->handshake_ok, '101 with the frame in the same write';

my (%seen, $ack, $end);
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    my $e = json_decode($f->{payload});
    $seen{ $e->{type} }++;
    $ack = $e if $e->{type} eq 'ack';
    if ($e->{type} eq 'assistant_end' && $ack) { $end = $e; last }
}

ok $seen{ready}, 'ready came';
is $ack && $ack->{client_msg_id}, 'behind-1', 'the message behind the handshake is acknowledged';
ok $end && length($end->{content} // '') > 0, 'and answered';

my $stored = pg_exec("SELECT count(*) FROM messages
                      WHERE session_id = $sid AND role = 'user'
                        AND content = 'Hello, I ordered a lamp.'");
like $stored, qr/\b1\b/, 'stored once, in the session of the URI';

$ws->disconnect;
stop_nginx();
done_testing();
