# The chat over WebSocket (API.md "Chat over WebSocket"), end to end on a
# real nginx, Postgres and Redis, with the stand-in model server as the only
# stub: the handshake's refusals, the persona speaking first, acks stored
# before they are sent, repeated client_msg_id, resume, every failure mode of
# the model upstream, two connections on one session, and the close codes.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;


my %conf = %{ platform_conf(http_config => "    scenario_chat_max_message 8k;\n") };

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('chat-' || :'v1' || '@example.com', 'x', 'Chat Tester')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $other = make_token(pg_exec("SELECT id FROM users WHERE email = 'alice\@example.com'"));
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub new_session {
    return pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
}

sub connect_chat {
    my ($sid, $tok) = @_;
    return ws_connect("/sessions/$sid/chat",
                      { Authorization => 'Bearer ' . ($tok // $token) },
                      { timeout => 5 });
}

# Reads text frames (JSON) until $until returns true for one; returns all.
sub read_until {
    my ($ws, $until, $secs) = @_;
    my @got;
    my $deadline = time + ($secs // 5);
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        if ($f->{opcode} == 8) {
            push @got, { type => '_close', code => $f->{close_code} };
            last;
        }
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        last if $until->($ev);
    }
    return @got;
}

sub reply_of {
    my (@events) = @_;
    my ($end) = grep { $_->{type} eq 'assistant_end' } @events;
    my $deltas = join '', map { $_->{delta} }
                          grep { $_->{type} eq 'assistant_delta' } @events;
    return ($end, $deltas);
}

sub say_to {
    my ($ws, $id, $text) = @_;
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => $id, content => $text }));
}

sub is_end   { $_[0]{type} eq 'assistant_end' }
sub is_error { $_[0]{type} eq 'error' }

start_nginx(\%conf);

subtest 'the handshake refuses what it must' => sub {
    my $sid = new_session();
    my $ws = ws_connect("/sessions/$sid/chat", {}, { timeout => 3 });
    is $ws->status, 401, 'no token: 401';

    $ws = connect_chat($sid, $other);
    is $ws->status, 404, "another user's session: 404";
    like $ws->response->{body}, qr/"code":"not_found"/, 'in the error shape';

    $ws = connect_chat(987654321);
    is $ws->status, 404, 'an unknown session: 404';

    my $done = new_session();
    pg_exec(q{UPDATE sessions SET status = 'resolved' WHERE id = :'v1'}, $done);
    $ws = connect_chat($done);
    is $ws->status, 409, 'a resolved session: 409';

    my $res = http('GET', "/sessions/$sid/chat", { Authorization => "Bearer $token" });
    is $res->{status}, 400, 'no upgrade: 400';
    like $res->{body}, qr/"code":"bad_request"/, 'said why';

    $res = http('GET', "/sessions/$sid/chat", {
        Authorization => "Bearer $token", Upgrade => 'websocket',
        Connection => 'Upgrade', 'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version' => 8 });
    is $res->{status}, 426, 'an old protocol version: 426';

    $res = http('GET', "/sessions/$sid/chat", {
        Cookie => "scenario_token=$token", Origin => 'https://evil.example',
        Upgrade => 'websocket', Connection => 'Upgrade',
        'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version' => 13 });
    is $res->{status}, 403, 'a cookie from a foreign Origin: 403';
};

my $sid = new_session();
my $ws;

subtest 'the persona speaks first, streamed' => sub {
    $ws = connect_chat($sid);
    ok $ws->handshake_ok, '101 with the right Sec-WebSocket-Accept';

    my @ev = read_until($ws, \&is_end);
    is $ev[0]{type}, 'ready', 'ready first';
    is $ev[0]{session_id}, $sid, 'for this session';
    is $ev[0]{last_seq}, 0, 'with nothing said yet';
    is $ev[0]{scenario}{id}, $scenario, 'and its scenario';
    ok $ev[0]{scenario}{persona}{name}, 'and persona';

    is $ev[1]{type}, 'assistant_start', 'then the reply starts';
    is $ev[1]{seq}, 1, 'as seq 1';
    my ($end, $deltas) = reply_of(@ev);
    ok $end, 'and ends';
    cmp_ok scalar(grep { $_->{type} eq 'assistant_delta' } @ev), '>', 2,
        'in several deltas';
    is $deltas, $end->{content}, 'the deltas make up the whole reply';
    is pg_exec(q{SELECT content FROM messages WHERE session_id = :'v1' AND seq = 1}, $sid),
        $end->{content}, 'which is stored';
};

subtest 'a message is stored, acknowledged, and answered' => sub {
    say_to($ws, 'm-1', 'I am so sorry about the broken mixer, I understand.');
    my @ev = read_until($ws, \&is_end);
    is_deeply $ev[0], { type => 'ack', client_msg_id => 'm-1', seq => 2 },
        'ack with its seq';
    is pg_exec(q{SELECT content FROM messages WHERE session_id = :'v1' AND seq = 2}, $sid),
        'I am so sorry about the broken mixer, I understand.', 'stored before the ack';
    my ($end) = reply_of(@ev);
    is $end->{seq}, 3, 'the reply is seq 3';
    like $end->{content}, qr/\S/, 'and says something';

    say_to($ws, 'm-1', 'I am so sorry about the broken mixer, I understand.');
    @ev = read_until($ws, sub { 0 }, 1);
    is_deeply \@ev, [{ type => 'ack', client_msg_id => 'm-1', seq => 2 }],
        'a repeated client_msg_id is acknowledged again, nothing more';
    is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'}, $sid), 3,
        'and not stored twice';
};

subtest 'application errors keep the connection open' => sub {
    $ws->send_text('{"type":');
    my @ev = read_until($ws, \&is_error, 2);
    is $ev[-1]{code}, 'bad_request', 'bad JSON';
    $ws->send_text('{"type":"dance"}');
    @ev = read_until($ws, \&is_error, 2);
    is $ev[-1]{code}, 'bad_request', 'an unknown type';
    $ws->send_text('{"type":"user_message","client_msg_id":"x","content":42}');
    @ev = read_until($ws, \&is_error, 2);
    is $ev[-1]{code}, 'bad_request', 'a wrong type';
    $ws->send_text(json_encode({ type => 'resume', after_seq => 0 }));
    @ev = read_until($ws, sub { $_[0]{type} eq 'message' && $_[0]{seq} == 3 }, 3);
    is_deeply [map { $_->{seq} } @ev], [1, 2, 3], 'and it still answers: resume';
    is_deeply [map { $_->{role} } @ev], [qw(assistant user assistant)], 'in order';
};

subtest 'every failure of the model is an upstream_error, and sending again works' => sub {
    my $n = 0;
    for my $mode ('[[fail:500]]', '[[fail:401]]', '[[fail:503]]', '[[cut]]',
                  '[[malformed]]', '[[nodone]]', '[[hang]]')
    {
        $n++;
        say_to($ws, "f-$n", "What now? $mode");
        my @ev = read_until($ws, sub { is_error($_[0]) || is_end($_[0]) }, 8);
        my ($ack) = grep { $_->{type} eq 'ack' } @ev;
        ok $ack, "$mode: the message is acknowledged";
        is $ev[-1]{type}, 'error', "$mode: then an error";
        is $ev[-1]{code}, 'upstream_error', "$mode: upstream_error";
        is pg_exec(q{SELECT role FROM messages WHERE session_id = :'v1' AND seq = :'v2'},
                   $sid, $ack->{seq}), 'user', "$mode: the message is kept";
    }

    # the failed message sent again (same id): acknowledged, tried again
    say_to($ws, "f-1", 'What now? [[fail:500]]');
    my @ev = read_until($ws, sub { is_error($_[0]) || is_end($_[0]) }, 8);
    is_deeply $ev[0], { type => 'ack', client_msg_id => 'f-1', seq => $ev[0]{seq} },
        'sent again: acknowledged with its seq';
    ok((grep { $_->{type} eq 'assistant_start' } @ev), 'and tried again');

    # and the conversation goes on
    say_to($ws, 'after', 'What now?');
    @ev = read_until($ws, \&is_end, 8);
    ok((grep { is_end($_) } @ev), 'the next message is answered');

    my $t0 = time;
    say_to($ws, 'rate', 'Hello? [[fail:429]]');
    @ev = read_until($ws, sub { is_error($_[0]) || is_end($_[0]) }, 15);
    is $ev[-1]{code}, 'upstream_error', '429 after its retries: upstream_error';
    cmp_ok time - $t0, '>=', 3.5, 'Retry-After was honoured before giving up';
};

subtest 'the context is rebuilt from Postgres when Redis lost it' => sub {
    redis_cmd('del', "ctx:$sid", "ctx:$sid:system");
    say_to($ws, 'lost-1', 'Are you still there?');
    my @ev = read_until($ws, \&is_end, 8);
    ok((grep { is_end($_) } @ev), 'answered');
    my $last = `curl -fsS http://127.0.0.1:$ENV{TEST_NGINX_STUB_PORT}/last`;
    my $req = eval { json_decode($last) } || {};
    my @m = @{ $req->{messages} || [] };
    is $m[0]{role}, 'system', 'the model saw the persona prompt';
    like $m[0]{content}, qr/^You are Dana Whitfield/, 'rebuilt from the scenario';
    ok((grep { $_->{content} eq 'I am so sorry about the broken mixer, I understand.' } @m),
       'and the earlier turns, from Postgres');
    is $m[-1]{content}, 'Are you still there?', 'ending with the new message';
    is redis_cmd('exists', "ctx:$sid:system"), 1, 'Redis has the prompt again';
    cmp_ok redis_cmd('llen', "ctx:$sid"), '>', 3, 'and the turns';
};

subtest 'metrics count the model calls and their latency' => sub {
    my $m = http('GET', '/metrics')->{body};
    my ($ok) = $m =~ /^scenario_model_calls_total\{result="ok"\} (\d+)$/m;
    my ($err) = $m =~ /^scenario_model_calls_total\{result="error"\} (\d+)$/m;
    cmp_ok $ok // 0, '>=', 3, 'successful calls';
    cmp_ok $err // 0, '>=', 8, 'failed calls';
    my ($inf) = $m =~ /^scenario_model_latency_seconds_bucket\{le="\+Inf"\} (\d+)$/m;
    my ($count) = $m =~ /^scenario_model_latency_seconds_count (\d+)$/m;
    is $inf, $ok + $err, '+Inf counts every call';
    is $count, $inf, 'and so does _count';
    like $m, qr/^scenario_model_latency_seconds_sum \d+\.\d{3}$/m, 'a sum in seconds';
    like $m, qr/^scenario_active_chats [1-9]/m, 'the open chat is counted';
};

subtest 'two connections on one session see the same reply, generated once' => sub {
    my $a = connect_chat($sid);
    my $b = connect_chat($sid);
    read_until($a, sub { $_[0]{type} eq 'ready' });
    read_until($b, sub { $_[0]{type} eq 'ready' });
    my $before = pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
                           AND role = 'assistant'}, $sid);
    say_to($a, 'two-1', 'I will refund you today, I promise.');
    my ($ea) = reply_of(read_until($a, \&is_end, 8));
    my ($eb) = reply_of(read_until($b, \&is_end, 8));
    ok $ea && $eb, 'both see the end';
    is $ea->{content}, $eb->{content}, 'of the same reply';
    is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
                 AND role = 'assistant'}, $sid), $before + 1, 'generated once';
    $a->close(1000); $b->close(1000);
};

subtest 'a dropped connection misses nothing' => sub {
    my $c = connect_chat($sid);
    my @ev = read_until($c, sub { $_[0]{type} eq 'ready' });
    my $last = $ev[0]{last_seq};
    say_to($c, 'drop-1', 'Please wait while I check [[delay:100]]');
    @ev = read_until($c, sub { $_[0]{type} eq 'assistant_delta' }, 5);
    ok((grep { $_->{type} eq 'assistant_delta' } @ev), 'the reply was streaming');
    $c->disconnect;    # gone mid-reply

    my $stored;
    my $deadline = time + 15;
    until ($stored || time > $deadline) {
        $stored = pg_exec(q{SELECT content FROM messages WHERE session_id = :'v1'
                            AND seq > :'v2' AND role = 'assistant'}, $sid, $last);
        sleep 0.2 unless $stored;
    }
    ok $stored, 'the reply was finished and stored after the client left';

    $c = connect_chat($sid);
    read_until($c, sub { $_[0]{type} eq 'ready' });
    $c->send_text(json_encode({ type => 'resume', after_seq => $last }));
    @ev = grep { $_->{type} eq 'message' }
          read_until($c, sub { $_[0]{type} eq 'message' && $_[0]{role} eq 'assistant' }, 5);
    is $ev[0]{content}, 'Please wait while I check [[delay:100]]', 'resume: the message';
    is $ev[1]{role}, 'assistant', 'and the reply';
    is $ev[1]{content}, $stored, 'as stored';
    $c->close(1000);
};

subtest 'resolved elsewhere: the server says so and closes with 1000' => sub {
    my $s2 = new_session();
    my $c = connect_chat($s2);
    read_until($c, \&is_end);
    redis_cmd('publish', "chat:$s2", 'resolve {"type":"resolved"}');   # as the resolver
    my @ev = read_until($c, sub { 0 }, 3);
    is $ev[0]{type}, 'resolved', 'resolved';
    is $ev[-1]{type}, '_close', 'then a close';
    is $ev[-1]{code}, 1000, 'with 1000';
};

subtest 'two nginx instances on one Redis and Postgres share a session' => sub {
    # a second nginx: the same configuration on the next port
    my $root = nginx_servroot();
    my $root2 = "$root-2";
    my $port2 = nginx_port() + 1;
    system('rm', '-rf', $root2);
    system('cp', '-r', $root, $root2) == 0 or die "cp: $!";
    unlink "$root2/logs/nginx.pid";
    my $conf = do { local (@ARGV, $/) = "$root2/conf/nginx.conf"; <> };
    $conf =~ s/\Q$root\E/$root2/g;
    $conf =~ s/listen 127\.0\.0\.1:\d+/listen 127.0.0.1:$port2/;
    open my $fh, '>', "$root2/conf/nginx.conf" or die $!;
    print {$fh} $conf;
    close $fh;
    system($ENV{TEST_NGINX_BINARY} || 'nginx', '-p', "$root2/", '-c',
           "$root2/conf/nginx.conf") == 0 or die "second nginx did not start";
    sleep 0.5;

    my $s3 = new_session();
    my $a = connect_chat($s3);
    my @ev = read_until($a, \&is_end, 8);       # the opening, on instance 1
    my $b = ws_connect("/sessions/$s3/chat", { Authorization => "Bearer $token" },
                       { timeout => 5, port => $port2 });
    ok $b->handshake_ok, 'connected to the second instance';
    read_until($b, sub { $_[0]{type} eq 'ready' });

    say_to($b, 'inst-1', 'I will refund you today, I promise.');
    my ($eb, $db) = reply_of(read_until($b, \&is_end, 8));
    my ($ea, $da) = reply_of(read_until($a, \&is_end, 8));
    ok $ea && $eb, 'both instances stream the reply';
    is $da, $db, 'the same deltas';
    is $ea->{content}, $eb->{content}, 'the same reply';
    is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
                 AND role = 'assistant'}, $s3), 2, 'generated once';
    $a->close(1000); $b->close(1000);

    my $pid = do { local (@ARGV, $/) = "$root2/logs/nginx.pid"; <> };
    chomp $pid;
    kill 'QUIT', $pid if $pid;
    sleep 0.5;
};

# protocol violations close with the RFC's codes
sub close_code_after {
    my ($bytes) = @_;
    my $c = connect_chat($sid);
    read_until($c, sub { $_[0]{type} eq 'ready' });
    $c->send_raw_bytes($bytes);
    my @ev = read_until($c, sub { 0 }, 3);
    my ($close) = grep { $_->{type} eq '_close' } @ev;
    return $close ? $close->{code} : 'none';
}

my $z = "\0\0\0\0";    # a zero mask leaves the payload as it is
subtest 'close codes' => sub {
    is close_code_after("\x81\x05hello"), 1002, 'unmasked client frame: 1002';
    is close_code_after("\xc1\x85$z" . 'hello'), 1002, 'reserved bit: 1002';
    is close_code_after("\x83\x85$z" . 'hello'), 1002, 'reserved opcode: 1002';
    is close_code_after("\x80\x85$z" . 'hello'), 1002, 'continuation without a start: 1002';
    is close_code_after("\x89\xfe\x00\x7e$z" . ('p' x 126)), 1002, 'control frame over 125 bytes: 1002';
    is close_code_after("\x81\x82$z\xc3\x28"), 1007, 'invalid UTF-8: 1007';
    is close_code_after("\x01\x82$z\xe2\x82" . "\x80\x81$z\xac"), 'none',
        'UTF-8 split across fragments is fine';
    is close_code_after("\x81\xfe\x40\x00$z" . ('x' x 16384)), 1009, 'over the size limit: 1009';
};

stop_nginx();

subtest 'a reload says 1001 to open chats' => sub {
    start_nginx({ %conf, master => 1, workers => 2 });
    my $c = connect_chat($sid);
    read_until($c, sub { $_[0]{type} eq 'ready' });
    kill 'HUP', nginx_pid();
    my @ev = read_until($c, sub { 0 }, 5);
    is $ev[-1]{type}, '_close', 'closed';
    is $ev[-1]{code}, 1001, 'going away';
    sleep 1;
    my @bad = grep { /\[(?:alert|crit|emerg)\]|open socket/ } split /\n/, error_log_data();
    is_deeply \@bad, [], 'no alert in error.log';
    stop_nginx();
};

done_testing();
