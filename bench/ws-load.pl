#!/usr/bin/env perl
# WebSocket load for the chat benchmark: one process, many connections,
# driven by select().  Only loopback targets.
#
#   ws-load.pl roundtrips PORT TOKEN SECONDS SID...   64 sessions chatting
#   ws-load.pl idle PORT TOKEN HOLD_SECONDS SID...    connect, wait, hold
#   ws-load.pl turns PORT TOKEN COUNT SID              COUNT turns, one socket
#
# Prints one line of results as "key=value ..." on stdout.
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
              frame => Protocol::WebSocket::Frame->new(max_payload_size => 0),
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
                $c->{head} = 0;
            }
            $c->{frame}->append($chunk);
            while (defined(my $msg = $c->{frame}->next_bytes)) {
                next unless $c->{frame}->is_text;
                $on->($c, $msg);
            }
        }
        return if !%conn;
        return if $on->(undef, undef);      # the caller may say "done"
    }
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
        if (!$c->{first} && $m =~ /"type":"assistant_delta"/) {
            $c->{first} = 1;
            push @ttfd, (time - $c->{sent}) * 1000;
        }
        if ($m =~ /"type":"assistant_end"/) {
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
