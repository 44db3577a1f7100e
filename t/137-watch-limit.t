# Watch sockets hold a slot of scenario_chat_limit, as chats do (issue 9):
# with user=2, a trainer's third socket, watch or chat, is refused before
# the upgrade with 429 rate_limited and Retry-After; closing a watch frees
# its slot at once; a watch refused by its check (404) keeps no slot.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my %conf = %{ platform_conf(http_config => "scenario_judge off;\n"
    . "    scenario_chat_limit user=2 address=50 lease=3s;\n") };

my $org = new_org();
my ($tid, $trainer) = new_user('trainer', $org);
my ($aid, $ann) = new_user('trainee', $org);
my $other = new_org();
my ($xid, $outsider) = new_user('trainee', $other);

my $refund = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my @sid = map { pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
                          VALUES (:'v1', :'v2') RETURNING id}, $aid, $refund) } 1 .. 3;
my $foreign = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
                        VALUES (:'v1', :'v2') RETURNING id}, $xid, $refund);
my $own = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
                    VALUES (:'v1', :'v2') RETURNING id}, $tid, $refund);

sub open_ws {
    my ($path) = @_;
    my $ws = ws_connect($path, { Authorization => "Bearer $trainer" }, { timeout => 5 });
    return $ws->handshake_ok ? $ws : undef;
}

# the upgrade refused: the whole answer
sub refused {
    my ($path) = @_;
    return http('GET', $path, {
        Authorization => "Bearer $trainer",
        Connection => 'Upgrade, close', Upgrade => 'websocket',
        'Sec-WebSocket-Version' => 13,
        'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==' });
}

sub is_refused {
    my ($path, $name) = @_;
    my $res = refused($path);
    is $res->{status}, 429, "$name: 429" or diag $res->{raw};
    my $body = eval { json_decode($res->{body}) } // {};
    is $body->{error}{code}, 'rate_limited', "$name: rate_limited";
    like $body->{error}{message} // '', qr/too many open chats for this user/,
        "$name: the message says why";
    is $res->{headers}{'retry-after'}, 3, "$name: Retry-After is the lease";
}

sub leases { return 0 + redis_cmd('ZCARD', "chats:u:$tid") }

# the trainer's leases once they come to $n (a close's or a refused
# check's ZREM goes out after the answer), or what they are after 2 s
sub leases_at {
    my ($n) = @_;
    my $deadline = time + 2;
    sleep 0.05 while leases() != $n && time < $deadline;
    return leases();
}

# a close's ZREM may take a moment to reach Redis
sub open_soon {
    my ($path) = @_;
    my $deadline = time + 2;
    while (time < $deadline) {
        my $ws = open_ws($path);
        return $ws if $ws;
        sleep 0.1;
    }
    return undef;
}

redis_cmd('DEL', 'chats:a:127.0.0.1', "chats:u:$tid");
start_nginx(\%conf);

subtest 'watches count as chats' => sub {
    my $w1 = open_ws("/sessions/$sid[0]/watch");
    my $w2 = open_ws("/sessions/$sid[1]/watch");
    ok $w1 && $w2, 'two watches open';
    is leases(), 2, 'each holds a lease of the trainer\'s';
    is_refused("/sessions/$sid[2]/watch", 'a third watch');
    is_refused("/sessions/$own/chat", 'a chat of the trainer\'s own');

    $w1->close;
    my $w3 = open_soon("/sessions/$sid[2]/watch");
    ok $w3, 'a closed watch frees its slot at once';
    is leases_at(2), 2, 'two leases again';
    $_->close for $w2, $w3;
};

subtest 'chats and watches share the leases' => sub {
    my $chat = open_soon("/sessions/$own/chat");
    ok $chat, 'the trainer opens a chat of his own';
    my $w = open_soon("/sessions/$sid[0]/watch");
    ok $w, 'and one watch';
    is_refused("/sessions/$sid[1]/watch", 'a watch past the chat and the watch');
    $chat->close;
    $w->close;
};

subtest 'a refused watch keeps no slot' => sub {
    is leases_at(0), 0, 'every socket closed: no lease left';
    my $res = refused("/sessions/$foreign/watch");
    is $res->{status}, 404, 'another organization\'s session: 404';
    is leases_at(0), 0, 'and no lease held';
    my $w1 = open_ws("/sessions/$sid[0]/watch");
    my $w2 = open_ws("/sessions/$sid[1]/watch");
    ok $w1 && $w2, 'both slots free for watches still';
    $_->close for grep { $_ } $w1, $w2;
};

stop_nginx();
done_testing();
