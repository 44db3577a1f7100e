# `resume` replays a long transcript in pages under the output cap (issue
# 11, item 13): 3,000 messages of 1.5 KB (4.5 MB) with
# scenario_chat_max_output 64k, to a reader that pauses 2 s and then reads
# slowly.  The chat is served on a second port with small socket buffers
# (listen sndbuf=16k, the client's SO_RCVBUF 16k), so that the kernel does
# not absorb the transcript and the replay must wait for the queue to
# drain again and again.  Every seq arrives once and in order (it was cut at 1,000, and a
# transcript over the cap got the socket dropped), the connection stays
# open, and the next message is answered after the replay.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $N = 3000;

my $port = $ENV{TEST_NGINX_PORT} + 1;
my $api = platform_conf()->{config};
my %conf = %{ platform_conf() };
$conf{http_config} .= <<"_EOC_";
    server {
        listen 127.0.0.1:$port sndbuf=16k;
        server_name localhost;
        scenario_chat_max_output 64k;
$api
    }
_EOC_
$conf{master} = 1;
$conf{workers} = 2;

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('resumepaged-' || :'v1' || '@example.com', 'x', 'Resume Paged')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);

# the last message is the persona's: no reply is due on connect
pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
    SELECT :'v1', g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END,
           'line ' || g || ' ' || repeat('x', 1500),
           CASE WHEN g % 2 = 1 THEN 'old-' || g END
    FROM generate_series(1, :'v2'::int) g}, $sid, $N);
pg_exec(q{UPDATE sessions SET last_seq = :'v2' WHERE id = :'v1'}, $sid, $N);

start_nginx(\%conf);

sub replay {
    my ($after, $pause) = @_;
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5, port => $port });
    $ws->{sock}->setsockopt(SOL_SOCKET, SO_RCVBUF, 16384);
    my $f = $ws->recv_frame(5);
    my $ready = $f && $f->{opcode} == 1 ? json_decode($f->{payload}) : {};
    $ws->send_text(json_encode({ type => 'resume', after_seq => $after }));
    sleep $pause;

    my (@seqs, $close, $bad);
    my $deadline = time + 60;
    while (time < $deadline && @seqs < $N - $after) {
        $f = $ws->recv_frame(5) or last;
        if ($f->{opcode} == 8) { $close = $f->{close_code}; last }
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        next unless $ev->{type} eq 'message';
        $bad++ unless $ev->{content} =~ /^line $ev->{seq} /;
        push @seqs, $ev->{seq};
        sleep 0.02 if @seqs % 50 == 0;      # a slow reader
    }
    return ($ws, $ready, \@seqs, $close, $bad);
}

my ($ws, $ready, $seqs, $close, $bad) = replay(0, 2);
is $ready->{last_seq}, $N, 'ready says the transcript is long';
is scalar(@$seqs), $N, "all $N messages replayed";
is_deeply $seqs, [1 .. $N], 'each once, in order';
ok !$bad, 'each with its own content';
is $close, undef, 'the slow reader is not dropped';

$ws->send_text(json_encode({ type => 'user_message', client_msg_id => 'after',
                             content => 'Thanks for waiting, here is my order number.' }));
my $ack;
while (my $f = $ws->recv_frame(10)) {
    last if $f->{opcode} == 8;
    next unless $f->{opcode} == 1;
    my $ev = json_decode($f->{payload});
    if ($ev->{type} eq 'ack') { $ack = $ev; last }
}
is $ack && $ack->{seq}, $N + 1, 'and the chat goes on after the replay';
$ws->close(1000);

($ws, $ready, $seqs, $close) = replay(2500, 0);
is_deeply $seqs, [2501 .. $N], 'a resume from the middle sends the rest';
$ws->close(1000);

unlike error_log_data(), qr/does not read/, 'no connection was dropped';

stop_nginx();
done_testing();
