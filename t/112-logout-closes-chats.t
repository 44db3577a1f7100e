# A logout ends the live chats of that token at once (close 1008), on
# every worker: the revocation rides the invalidation channel that every
# worker of every instance hears.  Another token of the same user, and its
# chat, stay.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('logoutchat-' || :'v1' || '@example.com', 'x', 'Logout Chat')
    RETURNING id}, time() . "-$$");
my $gone = make_token($uid);
my $kept = make_token($uid);
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub chat_with {
    my ($token) = @_;
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5 });
    while (my $f = $ws->recv_frame(5)) {
        last if $f->{opcode} == 1 && json_decode($f->{payload})->{type} eq 'assistant_end';
    }
    return $ws;
}

sub close_code {
    my ($ws, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        return $f->{close_code} if $f->{opcode} == 8;
    }
    return 'none';
}

start_nginx({ %conf, master => 1, workers => 2 });

my @doomed = map { chat_with($gone) } 1 .. 4;
my $other = chat_with($kept);

my $res = http('POST', '/auth/logout', { Authorization => "Bearer $gone" });
is $res->{status}, 204, 'logged out' or diag $res->{body};

my $t0 = time;
my @codes = map { close_code($_, 3) } @doomed;
is_deeply \@codes, [(1008) x 4], 'its four chats closed with 1008';
cmp_ok time - $t0, '<', 3, 'at once';

$other->send_text(json_encode({ type => 'user_message', client_msg_id => 'still',
                                content => 'Are you still there?' }));
my $ack;
while (my $f = $other->recv_frame(5)) {
    next unless $f->{opcode} == 1;
    my $ev = json_decode($f->{payload});
    if ($ev->{type} eq 'ack') { $ack = $ev; last }
}
ok $ack, "the other token's chat goes on";
$other->disconnect;

my $again = ws_connect('/sessions/1/chat', { Authorization => "Bearer $gone" },
                       { timeout => 5 });
is $again->status, 401, 'and the logged-out token cannot open a new one';

stop_nginx();
done_testing();
