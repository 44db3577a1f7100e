# A chat with the error log at debug level: the chat limit's renewal timer
# had no ev->data, which nginx's debug line for a timer reads as a
# connection, so the first admission killed the worker.  The handshake,
# a turn and the close must work, and the debug log shows the 101's
# scratch pool given back (ngx_http_ws_send_101()).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(nginx => { log_level => 'debug' }) };

my $uid = make_user('debug-log', 'Debug Log');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 10 });
ok $ws->handshake_ok, '101 with the log at debug level';

my ($ready, $opened, $end);
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    my $e = json_decode($f->{payload});
    $ready = 1 if $e->{type} eq 'ready';
    next unless $e->{type} eq 'assistant_end';
    if ($opened) { $end = $e; last }
    $opened = 1;
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => 'dbg-1',
                                 content => 'Hello, about my refund.' }));
}

ok $ready, 'ready came';
ok $end && length($end->{content} // '') > 0, 'a turn is answered';

my $reply = $ws->close(1000);
ok $reply, 'the close is answered';

my $log = error_log_data();
stop_nginx();

like $log, qr/websocket 101 buffers given back/,
     "the 101's scratch pool given back";
unlike $log, qr/exited on signal/, 'no worker died';

done_testing();
