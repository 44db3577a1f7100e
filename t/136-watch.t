# Watch live (issue 9, item 5): a trainer opens a trainee's live chat
# read-only over a WebSocket (GET /sessions/{id}/watch) and hears the
# stream through the session's Redis fan-out, each event once; the
# trainee's sockets get a "watching" event when the watch begins and
# ends; a message from the watcher ends the watch and stores nothing; a
# resolve ends it; a trainee gets 403, another organization 404, a
# resolved session 409.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my %conf = %{ platform_conf(http_config => "scenario_judge off;\n") };

my $org = new_org();
my ($tid, $trainer) = new_user('trainer', $org);
my ($aid, $ann) = new_user('trainee', $org);
my ($bid, $bob) = new_user('trainee', $org);
my $other = new_org();
my ($oid, $stranger) = new_user('trainer', $other);
pg_exec(q{UPDATE users SET display_name = 'Coach Tess' WHERE id = :'v1'}, $tid);

my $refund = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
                    VALUES (:'v1', :'v2') RETURNING id}, $aid, $refund);

sub open_ws {
    my ($path, $token) = @_;
    return ws_connect($path, { Authorization => "Bearer $token" }, { timeout => 5 });
}

# events until one satisfies $stop, or the deadline
sub until_event {
    my ($ws, $secs, $stop) = @_;
    my @got;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        return (undef, @got, { close => $f->{close_code}, reason => $f->{close_reason} })
            if $f->{opcode} == 8;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        return ($ev, @got) if $stop->($ev);
    }
    return (undef, @got);
}

sub type_is { my ($t) = @_; return sub { ($_[0]{type} // '') eq $t } }

start_nginx(\%conf);

my $chat = open_ws("/sessions/$sid/chat", $ann);
ok $chat->handshake_ok, 'Ann opens her chat';
my ($end) = until_event($chat, 10, type_is('assistant_end'));
ok $end, 'the persona opens';

subtest 'a trainer watches' => sub {
    my $watch = open_ws("/sessions/$sid/watch", $trainer);
    ok $watch->handshake_ok, 'the trainer opens the watch' or diag explain $watch->response;
    my ($ready) = until_event($watch, 5, type_is('ready'));
    is_deeply [@{$ready}{qw(watch session_id last_seq)}, $ready->{trainee}{id}],
        [JSON::PP::true(), 0 + $sid, 1, 0 + $aid],
        'ready: whose session, where it stands';

    my ($seen) = until_event($chat, 5, type_is('watching'));
    is_deeply [$seen->{watching}, $seen->{watcher}{id}, $seen->{watcher}{display_name}],
        [JSON::PP::true(), 0 + $tid, 'Coach Tess'], 'Ann sees who is watching';

    $chat->send_text(json_encode({ type => 'user_message', client_msg_id => 'w1',
                                   content => "I'm sorry, I will refund you today." }));
    my ($wend, @heard) = until_event($watch, 10, type_is('assistant_end'));
    ok $wend, 'the watcher hears the reply to its end' or diag explain \@heard;
    my ($ack) = grep { $_->{type} eq 'ack' } @heard;
    is $ack->{client_msg_id}, 'w1', 'and Ann\'s message acknowledged';
    my $deltas = join '', map { $_->{delta} } grep { $_->{type} eq 'assistant_delta' } @heard;
    my $stored = pg_exec(q{SELECT content FROM messages WHERE session_id = :'v1'
                           AND seq = :'v2'}, $sid, $wend->{seq});
    is $wend->{content}, $stored, 'the reply as stored';
    is $deltas, $stored, 'every delta once, none twice';
    is scalar(grep { $_->{type} eq 'assistant_start' } @heard), 1, 'one start';
    my ($cend) = until_event($chat, 5, type_is('assistant_end'));
    is $cend->{content}, $stored, 'Ann has the same reply';

    my $before = pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'}, $sid);
    $watch->send_text(json_encode({ type => 'user_message', client_msg_id => 'x1',
                                    content => 'Let me take over.' }));
    my (undef, @rest) = until_event($watch, 5, sub { 0 });
    is_deeply $rest[-1], { close => 1008, reason => 'watching is read-only' },
        'the watcher may not speak: 1008';
    ($seen) = until_event($chat, 5, type_is('watching'));
    is_deeply [$seen->{watching}, $seen->{watcher}{id}], [JSON::PP::false(), 0 + $tid],
        'Ann sees the watch end';
    is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'}, $sid),
        $before, 'nothing was stored';
};

subtest 'who may watch' => sub {
    my $ws = open_ws("/sessions/$sid/watch", $bob);
    is $ws->status, 403, 'a trainee: 403';
    $ws = open_ws("/sessions/$sid/watch", $ann);
    is $ws->status, 403, 'nor the session\'s owner: she has the chat';
    $ws = open_ws("/sessions/$sid/watch", $stranger);
    is $ws->status, 404, 'another organization\'s trainer: 404';
    $ws = open_ws('/sessions/999999999/watch', $trainer);
    is $ws->status, 404, 'a session that does not exist: 404';
    my $res = http('GET', "/sessions/$sid/watch", { Authorization => "Bearer $trainer" });
    is $res->{status}, 400, 'not a WebSocket upgrade: 400';
};

subtest 'a resolve ends the watch' => sub {
    my $watch = open_ws("/sessions/$sid/watch", $trainer);
    until_event($watch, 5, type_is('ready'));
    my ($st) = api('POST', "/sessions/$sid/resolve", $ann);
    is $st, 200, 'Ann resolves';
    my ($resolved, @got) = until_event($watch, 5, type_is('resolved'));
    ok $resolved, 'the watcher hears it';
    my (undef, @rest) = until_event($watch, 5, sub { 0 });
    is $rest[-1]{close}, 1000, 'and the watch closes normally';
    my $again = open_ws("/sessions/$sid/watch", $trainer);
    is $again->status, 409, 'a resolved session cannot be watched: 409';
};

stop_nginx();
done_testing();
