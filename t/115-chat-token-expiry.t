# A chat ends with its login session's expiry (issue 11, item 4): with
# scenario_token_ttl 3s, a chat is closed with 1008 about 3 s after its
# handshake (which renewed the token, sliding).  A token renewed meanwhile
# by another request (GET /auth/me, the auth cache off so that it reaches
# Redis) keeps its chat open until the new expiry.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(http_config => "    scenario_token_ttl 3s;\n"
                                         . "    scenario_auth_cache off;\n") };
$conf{master} = 1;
$conf{workers} = 2;

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('expirychat-' || :'v1' || '@example.com', 'x', 'Expiry Chat')
    RETURNING id}, time() . "-$$");
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub chat_with {
    my ($token) = @_;
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5 });
    return $ws;
}

# the close code, and when it came; 'none' by the deadline
sub close_at {
    my ($ws, $deadline) = @_;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        return ($f->{close_code}, time) if $f->{opcode} == 8;
    }
    return ('none', time);
}

start_nginx(\%conf);

my $t0 = time;
my $short = chat_with(make_token($uid, 60));
my $renewed_token = make_token($uid, 60);
my $renewed = chat_with($renewed_token);
ok $short->handshake_ok && $renewed->handshake_ok, 'two chats open';

sleep 1.5;
my $me = http('GET', '/auth/me', { Authorization => "Bearer $renewed_token" });
is $me->{status}, 200, 'the second token is used again (renewed to 3 s)';
my $t1 = time;

my ($code, $at) = close_at($short, $t0 + 6);
is $code, 1008, 'the first chat is closed with 1008';
cmp_ok $at - $t0, '>', 2.5, 'not before its token expires';
cmp_ok $at - $t0, '<', 4.5, 'and at its expiry';

($code, $at) = close_at($renewed, $t1 + 6);
is $code, 1008, 'the renewed one too, later';
cmp_ok $at - $t1, '>', 2.5, 'at the renewed expiry, not the first';
cmp_ok $at - $t1, '<', 4.5, 'and not much after';

like error_log_data(), qr/chat: its login session expired/, 'logged';

stop_nginx();
done_testing();
