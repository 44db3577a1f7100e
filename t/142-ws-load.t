# The chat benchmark's load generator (bench/ws-load.c) against a small
# WebSocket server written here, no nginx: the handshake it sends, its
# masked frames and message format; server frames with 7-, 16- and 64-bit
# lengths, several per read, split over many reads, fragmented messages
# with a ping in the middle (answered with a pong); the modes' output
# lines; and the failures that must stop a run with a message and a
# non-zero exit: an assistant_end with an empty content, an error event,
# a close from the server.  The tool runs under ASan and UBSan here.

use strict;
use warnings;

use Digest::SHA qw(sha1_base64);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use MIME::Base64 qw(decode_base64);
use POSIX ();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Test::More;

my $dir = tempdir(CLEANUP => 1);
my $cc = $ENV{CC} || 'cc';
my $src = 'bench/ws-load.c';

# the bench's own flags first, then a sanitized build to run
my $out = `$cc -O2 -Wall -Wextra -Werror -o $dir/ws-load-O2 $src 2>&1`;
is $?, 0, 'builds with -O2 -Wall -Wextra -Werror' or diag $out;
my $san = '-fsanitize=address,undefined -fno-sanitize-recover=all';
$out = `$cc -O1 -g -Wall -Wextra -Werror $san -o $dir/ws-load $src 2>&1`;
is $?, 0, 'builds with ASan and UBSan' or BAIL_OUT("cannot build: $out");
$ENV{ASAN_OPTIONS} = 'detect_leaks=0:abort_on_error=0:exitcode=99';
$ENV{UBSAN_OPTIONS} = 'halt_on_error=1:exitcode=99';

my $token = 'tok-139';
my $log = "$dir/server.log";

# ---------------------------------------------------------------------------
# the server: a child per connection; what it saw goes to $log, a line
# per connection once the client has gone
# ---------------------------------------------------------------------------

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 256, ReuseAddr => 1)
    or die "listen: $!";
my $port = $listen->sockport;

my $server = fork // die "fork: $!";
if (!$server) {
    POSIX::setpgid(0, 0);
    $SIG{CHLD} = 'IGNORE';
    while (my $s = $listen->accept) {
        my $pid = fork;
        if (defined $pid && !$pid) {
            $SIG{PIPE} = 'IGNORE';      # the client may go mid-reply
            serve($s);
            POSIX::_exit(0);
        }
        close $s;
    }
    POSIX::_exit(0);
}
close $listen;

sub frame {     # opcode, payload[, fin, force 64-bit length]
    my ($op, $p, $fin, $long) = @_;
    $fin //= 1;
    my $n = length $p;
    my $h = chr(($fin ? 0x80 : 0) | $op);
    if ($long) { $h .= chr(127) . pack('Q>', $n) }
    elsif ($n < 126) { $h .= chr($n) }
    elsif ($n < 65536) { $h .= chr(126) . pack('n', $n) }
    else { $h .= chr(127) . pack('Q>', $n) }
    return $h . $p;
}

sub read_exact {
    my ($s, $n) = @_;
    my $buf = '';
    while (length $buf < $n) {
        my $r = sysread $s, $buf, $n - length $buf, length $buf;
        return undef unless $r;
    }
    return $buf;
}

sub read_frame {    # (opcode, unmasked payload, masked?) or () at EOF
    my ($s) = @_;
    my $h = read_exact($s, 2) // return;
    my ($b0, $b1) = unpack 'CC', $h;
    my $n = $b1 & 0x7f;
    $n = unpack 'n', read_exact($s, 2) // return if $n == 126;
    $n = unpack 'Q>', read_exact($s, 8) // return if $n == 127;
    my $mask = $b1 & 0x80 ? read_exact($s, 4) // return : "\0\0\0\0";
    my $p = $n ? read_exact($s, $n) // return : '';
    $p ^= substr($mask x (int($n / 4) + 1), 0, $n);
    return ($b0 & 0x0f, $p, $b1 & 0x80 ? 1 : 0, $b0 & 0x80 ? 1 : 0);
}

sub dribble {   # a few bytes per write: the client reads them in pieces
    my ($s, $bytes) = @_;
    while (length $bytes) {
        syswrite($s, substr($bytes, 0, 3, '')) or return;
        select undef, undef, undef, 0.001;
    }
}

sub serve {
    my ($s) = @_;
    setsockopt $s, IPPROTO_TCP, TCP_NODELAY, 1;
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        sysread($s, $head, 4096, length $head) or return;
    }
    my ($sid) = $head =~ m{^GET /sessions/(\S+)/chat HTTP/1\.1\r\n};
    $sid //= '?';
    my ($key) = $head =~ /\r\nSec-WebSocket-Key: (\S+)\r\n/;
    my $hs = ($head =~ /\r\nHost: localhost\r\n/
              && $head =~ /\r\nUpgrade: websocket\r\n/
              && $head =~ /\r\nConnection: Upgrade\r\n/
              && $head =~ /\r\nSec-WebSocket-Version: 13\r\n/
              && $head =~ /\r\nAuthorization: Bearer \Q$token\E\r\n/
              && $key && length(decode_base64($key)) == 16) ? 'ok' : 'bad';
    if ($sid =~ /^refuse/ || $hs ne 'ok') {
        syswrite $s, "HTTP/1.1 503 Service Unavailable\r\n"
                   . "Content-Length: 0\r\n\r\n";
        note_conn("$sid hs=$hs refused");
        return;
    }
    my $accept = sha1_base64($key . '258EAFA5-E914-47DA-95CA-C5AB0DC11B65');
    syswrite $s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept=\r\n\r\n"
               . frame(1, qq({"type":"ready","session_id":1,"last_seq":1}));
    my ($msgs, $pongs, $bad, $last_ping) = (0, 0, 0, '');
    my $ping = sub { $last_ping = 'p' . int rand 1e6; frame(9, $last_ping) };
    while (my ($op, $p, $masked, $fin) = read_frame($s)) {
        $bad++ unless $masked && $fin;
        if ($op == 10) { $p eq $last_ping ? $pongs++ : $bad++; next }
        last if $op == 8;
        if ($op != 1 || $p !~ /^\{"type":"user_message",
                                 "client_msg_id":"b-\d+",
                                 "content":"[^"]+"\}$/x) {
            $bad++;
            next;
        }
        $msgs++;
        # frag-: in pieces, the client reads them a few bytes at a time
        my $bytes = reply($sid, $msgs, $ping);
        if ($sid =~ /^frag/) { dribble($s, $bytes); next }
        while (length $bytes) {
            my $w = syswrite $s, $bytes;
            last unless $w;
            substr($bytes, 0, $w, '');
        }
    }
    note_conn("$sid hs=ok msgs=$msgs pongs=$pongs bad=$bad");
}

# the reply to the n-th message, as bytes
sub reply {
    my ($sid, $n, $ping) = @_;
    my $start = frame(1, qq({"type":"ack","client_msg_id":"b-$n"}))
              . frame(1, qq({"type":"assistant_start","seq":$n}));
    my @delta = map {
        frame(1, qq({"type":"assistant_delta","seq":$n,"delta":"w$_ "}))
    } 1 .. 3;
    # 16-bit lengths mostly, a 64-bit one every third reply
    my $text = $n % 3 || $sid =~ /^frag/ ? 'Fine. ' x 50 : 'Long. ' x 12000;
    my $e = qq({"type":"assistant_end","seq":$n,"content":"$text"});
    my $end = frame(1, $e, 1, $n % 3 == 2);
    if ($sid =~ /^empty/) {
        return $start
             . frame(1, qq({"type":"assistant_end","seq":$n,"content":""}));
    }
    if ($sid =~ /^error/) {
        return frame(1,
            qq({"type":"error","code":"model_failed","message":"x"}));
    }
    if ($sid =~ /^close/) {
        return frame(8, pack('n', 1011) . 'going');
    }
    if ($sid =~ /^frag/) {
        # a delta and the end in fragments, a ping between them
        my $d = qq({"type":"assistant_delta","seq":$n,"delta":"frag"});
        return $start . frame(1, substr($d, 0, 10), 0) . $ping->()
             . frame(0, substr($d, 10, 10), 0) . frame(0, substr($d, 20), 1)
             . join('', @delta) . frame(1, substr($e, 0, 5), 0)
             . frame(0, substr($e, 5, 30), 0) . frame(0, substr($e, 35), 1);
    }
    return $start . $ping->() . join('', @delta) . $end;
}

sub note_conn {
    my ($line) = @_;
    open my $f, '>>', $log or die;
    print $f "$line\n";
    close $f;
}

sub server_lines {      # the lines of $n connections, waited for
    my ($n) = @_;
    my @l;
    for (1 .. 100) {
        @l = -e $log ? do { open my $f, '<', $log; <$f> } : ();
        last if @l >= $n;
        select undef, undef, undef, 0.05;
    }
    unlink $log;
    chomp @l;
    return sort @l;
}

sub run {       # args -> (exit status, stdout, stderr)
    my $cmd = join ' ', "$dir/ws-load", @_;
    my $o = `$cmd 2>$dir/err`;
    my $rc = $? >> 8;
    open my $f, '<', "$dir/err";
    my $e = do { local $/; <$f> } // '';
    return ($rc, $o, $e);
}

# ---------------------------------------------------------------------------

my ($rc, $o, $e) = run('roundtrips', $port, $token, 1,
                       qw(plain-1 plain-2 frag-3));
is $rc, 0, 'roundtrips: exit 0' or diag $e;
like $o, qr/^roundtrips=\d+\ sent=\d+\ seconds=[\d.]+\ rps=[\d.]+
             \ p50_ms=[\d.]+\ p99_ms=[\d.]+
             \ ttfd_p50_ms=[\d.]+\ ttfd_p99_ms=[\d.]+\n\z/x,
    'roundtrips: the one result line';
my ($trips, $sent) = $o =~ /^roundtrips=(\d+) sent=(\d+)/;
ok $trips && $trips > 10, "round trips counted ($trips)";
ok $sent >= $trips && $sent - $trips <= 3,
    'sent: the round trips and at most one in flight per session';
my @l = server_lines(3);
my $msgs = 0;
$msgs += $_ for map { /msgs=(\d+)/ } @l;
is $msgs, $sent, 'the server got as many messages as were sent'
    or diag explain \@l;
is scalar(grep { /hs=ok .*bad=0$/ } @l), 3,
    'each handshake as expected, each frame masked, FIN, well formed'
    or diag explain \@l;
# a reply's ping comes before its end: only the last reply's may be unread
# and each session, the fragmented one too, went on past its first reply
is scalar(grep { /msgs=(\d+) pongs=(\d+)/ && $1 >= 2 && $2 >= $1 - 1 } @l), 3,
    'each session chatting, every ping answered with its pong'
    or diag explain \@l;
unlike $e, qr/runtime error|AddressSanitizer/, 'no sanitizer report';

($rc, $o, $e) = run('turns', $port, $token, 5, 'plain-t');
is $rc, 0, 'turns: exit 0' or diag $e;
is $o, "turn=0\nturns=5\n", 'turns: turn=0, then turns=5';
@l = server_lines(1);
like $l[0], qr/^plain-t hs=ok msgs=5 pongs=5 bad=0$/, 'five messages sent';

($rc, $o, $e) = run('idle', $port, $token, 1, qw(plain-a plain-b refuse-c));
is $rc, 0, 'idle: exit 0' or diag $e;
is $o, "ready=2\n", 'idle: ready=2, the refused one left out';
like $e, qr/^handshake refused: HTTP\/1\.1 503/m, 'the refusal reported';
server_lines(3);

# more sessions than handshakes in flight at once: the rest follow
($rc, $o, $e) = run('idle', $port, $token, 0, map { "plain-i$_" } 1 .. 100);
is $rc, 0, 'idle, 100 sessions: exit 0' or diag $e;
is $o, "ready=100\n", 'idle: ready=100';
server_lines(100);

for my $case (['empty', qr/assistant_end without content/],
              ['error', qr/the server sent an error: \{"type":"error"/],
              ['close', qr/the server closed the WebSocket: 1011 going/]) {
    my ($sid, $why) = @$case;
    ($rc, $o, $e) = run('roundtrips', $port, $token, 1, 'plain-x', "$sid-1");
    is $rc, 1, "$sid: exit 1";
    note "$sid: stderr: $e";
    like $e, $why, "$sid: the reason on stderr";
    is $o, '', "$sid: no result line";
    server_lines(2);
}

($rc, $o, $e) = run('roundtrips', $port, $token, 1, 'refuse-1');
is $rc, 1, 'no session connected: exit 1';
like $e, qr/no session connected/, 'and why';
server_lines(1);

kill 'TERM', -$server;
waitpid $server, 0;
done_testing();
