#!/usr/bin/env perl
# WebSocket load for the chat benchmark: one process, many connections,
# driven by select().  Only loopback targets.
#
#   ws-load.pl roundtrips PORT TOKEN SECONDS SID...   64 sessions chatting
#   ws-load.pl idle PORT TOKEN HOLD_SECONDS SID...    connect, wait, hold
#   ws-load.pl turns PORT TOKEN COUNT SID              COUNT turns, one socket
#
# Prints one line of results as "key=value ..." on stdout.
#
# Server frames are read by next_text() below (unpack, no per-byte Perl):
# the frames it writes still go through Protocol::WebSocket::Frame.  Frames
# are matched with substring checks, not decoded as JSON; a round trip is
# counted on an assistant_end whose content is not empty.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use Protocol::WebSocket::Frame;
use MIME::Base64 qw(encode_base64);

my ($mode, $port, $token, $arg, @sids) = @ARGV;
die "usage: ws-load.pl roundtrips|idle|turns PORT TOKEN N SID...\n"
    unless $mode && $port && $token && defined $arg && @sids;

my $sel = IO::Select->new;
my %conn;                                   # fileno -> state
my $seq = 0;
my $sent = 0;                               # messages sent, timed

sub open_ws {
    my ($sid) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Blocking => 1)
        or die "connect: $!\n";
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    print {$s} "GET /sessions/$sid/chat HTTP/1.1\r\nHost: localhost\r\n"
             . "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n"
             . "Authorization: Bearer $token\r\n\r\n";
    $s->blocking(0);
    my $c = { sock => $s, sid => $sid, buf => '', head => 1,
              frag => undef,
              state => 'handshake', sent => 0, lat => [] };
    $conn{ fileno $s } = $c;
    $sel->add($s);
    return $c;
}

sub send_msg {
    my ($c, $text) = @_;
    my $id = 'b-' . ++$seq;
    my $json = qq({"type":"user_message","client_msg_id":"$id","content":"$text"});
    my $bytes = Protocol::WebSocket::Frame->new(buffer => $json, masked => 1)
                                          ->to_bytes;
    $c->{sock}->blocking(1);
    print { $c->{sock} } $bytes;
    $c->{sock}->blocking(0);
    $c->{sent} = time;
    $c->{first} = 0;
    $sent++;
}

# events: calls $on->($c, $json_text) per text frame
sub pump {
    my ($deadline, $on) = @_;
    while (time < $deadline) {
        my @ready = $sel->can_read(0.2);
        for my $s (@ready) {
            my $c = $conn{ fileno $s } or next;
            my $n = sysread $s, my $chunk, 65536;
            if (!defined $n) { next if $!{EAGAIN}; $n = 0 }
            if ($n == 0) { $sel->remove($s); delete $conn{ fileno $s };
                           $c->{state} = 'closed'; next }
            if ($c->{head}) {
                $c->{buf} .= $chunk;
                my $i = index $c->{buf}, "\r\n\r\n";
                next if $i < 0;
                if ($c->{buf} !~ m{^HTTP/1\.1 101}) {
                    # refused (a 503 under load, say): counted, not fatal
                    warn "handshake refused: " . substr($c->{buf}, 0, 40) . "\n";
                    $sel->remove($s);
                    delete $conn{ fileno $s };
                    $c->{state} = 'refused';
                    next;
                }
                $chunk = substr $c->{buf}, $i + 4;
                $c->{buf} = '';
                $c->{head} = 0;
            }
            $c->{buf} .= $chunk;
            while (defined(my $msg = next_text($c))) {
                $on->($c, $msg);
            }
        }
        return if !%conn;
        return if $on->(undef, undef);      # the caller may say "done"
    }
}

# the next whole text message in $c->{buf} (server frames are not masked);
# control frames are skipped, fragments joined
sub next_text {
    my ($c) = @_;
    for (;;) {
        my $len = length $c->{buf};
        return undef if $len < 2;
        my ($b0, $b1) = unpack 'CC', $c->{buf};
        my ($n, $off) = ($b1 & 0x7f, 2);
        if ($n == 126) {
            return undef if $len < 4;
            $n = unpack 'x2n', $c->{buf};
            $off = 4;
        } elsif ($n == 127) {
            return undef if $len < 10;
            $n = unpack 'x2Q>', $c->{buf};
            $off = 10;
        }
        return undef if $len < $off + $n;
        my $payload = substr $c->{buf}, $off, $n;
        substr($c->{buf}, 0, $off + $n) = '';
        my $op = $b0 & 0x0f;
        next if $op >= 8;                           # close, ping, pong
        if ($op == 0) {                             # continuation
            next unless defined $c->{frag};
            $c->{frag} .= $payload;
        } elsif ($op == 1) {
            $c->{frag} = $payload;
        } else {
            $c->{frag} = undef;                     # binary: not ours
            next;
        }
        next unless $b0 & 0x80;                     # FIN
        my $msg = $c->{frag};
        $c->{frag} = undef;
        return $msg;
    }
}

# an assistant_end with a reply: "content":"" would be an empty one
sub is_end {
    my ($m) = @_;
    return 0 if index($m, '"type":"assistant_end"') < 0;
    die "assistant_end without content: $m\n"
        if index($m, '"content":"') < 0 || index($m, '"content":""') >= 0;
    return 1;
}

sub pct {
    my ($p, @v) = @_;
    return 0 unless @v;
    @v = sort { $a <=> $b } @v;
    return $v[ int(($#v) * $p / 100 + 0.5) ];
}

if ($mode eq 'roundtrips') {
    open_ws($_) for @sids;
    # ready, then the opening reply; then message after message
    my ($start, $stop, @lat, $trips);
    pump(time + 30, sub {
        my ($c, $m) = @_;
        return (grep { $_->{state} ne 'chatting' } values %conn) ? 0 : 1
            unless $c;
        # the bench's sessions have their opening stored: "ready" is all
        if ($m =~ /"type":"(?:ready|assistant_end)"/ && $c->{state} ne 'chatting') {
            $c->{state} = 'chatting';
        }
        return 0;
    });
    # BENCH_SYNC: the caller snapshots counters between ".ready" and ".go"
    if (my $sync = $ENV{BENCH_SYNC}) {
        open my $f, '>', "$sync.ready" or die "$sync.ready: $!\n";
        close $f;
        my $until = time + 20;
        sleep 0.05 while !-e "$sync.go" && time < $until;
    }
    $sent = 0;
    my @ttfd;
    $start = time;
    $stop = $start + $arg;
    send_msg($_, 'Thank you for waiting, I will refund you today.') for values %conn;
    pump($stop, sub {
        my ($c, $m) = @_;
        return 0 unless $c;
        if (!$c->{first} && index($m, '"type":"assistant_delta"') >= 0) {
            $c->{first} = 1;
            push @ttfd, (time - $c->{sent}) * 1000;
        }
        if (is_end($m)) {
            push @lat, (time - $c->{sent}) * 1000;
            $trips++;
            send_msg($c, 'Is there anything else I can do for you today?')
                if time < $stop;
        }
        return 0;
    });
    my $el = time - $start;
    printf "roundtrips=%d sent=%d seconds=%.2f rps=%.1f p50_ms=%.2f "
         . "p99_ms=%.2f ttfd_p50_ms=%.2f ttfd_p99_ms=%.2f\n",
        $trips, $sent, $el, $trips / $el, pct(50, @lat), pct(99, @lat),
        pct(50, @ttfd), pct(99, @ttfd);
}
elsif ($mode eq 'idle') {
    open_ws($_) for @sids;
    my $ready = 0;
    pump(time + 120, sub {
        my ($c, $m) = @_;
        return $ready >= @sids unless $c;
        if ($m =~ /"type":"ready"/) { $ready++ }
        return 0;
    });
    print "ready=$ready\n";
    STDOUT->flush;
    # hold them open while the caller measures
    pump(time + $arg, sub { 0 });
}
elsif ($mode eq 'turns') {
    my $c = open_ws($sids[0]);
    my $n = 0;
    pump(time + 10, sub {
        my ($cc, $m) = @_;
        return $c->{state} eq 'chatting' unless $cc;
        $c->{state} = 'chatting' if $m =~ /"type":"(?:ready|assistant_end)"/;
        return 0;
    });
    # the caller samples RSS at "turn=0" and at the end
    print "turn=0\n";
    STDOUT->flush;
    sleep 1;
    send_msg($c, 'Turn one, please answer.');
    pump(time + 600, sub {
        my ($cc, $m) = @_;
        return $n >= $arg unless $cc;
        if ($m =~ /"type":"assistant_end"/) {
            $n++;
            send_msg($c, "Turn $n, please answer.") if $n < $arg;
        }
        return 0;
    });
    print "turns=$n\n";
    STDOUT->flush;
    pump(time + 3, sub { 0 });
}
