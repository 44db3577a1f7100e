# A control frame's payload is held in a buffer of its own only while the
# frame comes in (ngx_http_ws.c frees it at the frame's end): a ping of
# 125 bytes whose payload arrives in three writes is answered with the
# same payload, twice in a row, the socket keeps working (a turn), and a
# close whose code and reason arrive in pieces is echoed.  The sanitizer
# build shows a use of the freed buffer.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Protocol::WebSocket::Frame;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('control', 'Control Payload');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 10 });
ok $ws->handshake_ok, 'upgraded';

# in pieces: the header and part of the payload, the middle, the end
sub in_pieces {
    my ($bytes) = @_;
    my $n = length $bytes;
    for my $piece (substr($bytes, 0, 9), substr($bytes, 9, $n / 2 - 9),
                   substr($bytes, $n / 2)) {
        $ws->send_raw_bytes($piece);
        select undef, undef, undef, 0.05;
    }
}

# the persona's opening line may come among the pongs
my $opening;

sub next_of {
    my ($opcode) = @_;
    while (my $f = $ws->recv_frame(10)) {
        return $f if $f->{opcode} == $opcode;
        $opening = 1 if $f->{opcode} == 1
                        && json_decode($f->{payload})->{type} eq 'assistant_end';
    }
    return undef;
}

for my $round (1, 2) {
    my $payload = join '', map { chr(33 + ($_ * 7 + $round) % 90) } 1 .. 125;
    in_pieces(Protocol::WebSocket::Frame->new(buffer => $payload, opcode => 9,
                                              masked => 1)->to_bytes);
    my $pong = next_of(10);
    is $pong && $pong->{payload}, $payload,
       "ping $round: the pong carries its 125 bytes";
}

while (!$opening and my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    if (json_decode($f->{payload})->{type} eq 'assistant_end') {
        $opening = 1;
        last;
    }
}
ok $opening, "the persona's opening line came";

$ws->send_text(json_encode({ type => 'user_message', client_msg_id => 'c-1',
                             content => 'Is my refund on its way?' }));
my $end;
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    my $e = json_decode($f->{payload});
    if ($e->{type} eq 'assistant_end') { $end = $e; last }
}
ok $end && length($end->{content} // '') > 0, 'a turn after the pings';

in_pieces(Protocol::WebSocket::Frame->new(
    buffer => pack('n', 4001) . ('closing, said in pieces ' x 4),
    opcode => 8, masked => 1)->to_bytes);
my $close = next_of(8);
ok $close, 'the close is answered';
is $close && unpack('n', $close->{payload}), 4001, 'its code echoed';

$ws->disconnect;
stop_nginx();
done_testing();
