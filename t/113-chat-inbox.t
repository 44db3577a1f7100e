# A chat's inbox (messages read but not yet stored) is bounded in bytes as
# well as in count: 64 messages of 64 KiB used to be 4 MiB per connection.
# Postgres is paused so that nothing is stored and the inbox only grows;
# past 256 KiB waiting the connection is closed with 1008.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(http_config => "    scenario_chat_max_message 64k;\n") };

my $uid = make_user('inbox', 'Inbox');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
while (my $f = $ws->recv_frame(5)) {
    last if $f->{opcode} == 1 && json_decode($f->{payload})->{type} eq 'assistant_end';
}

# every Postgres process stopped: the first message's INSERT waits
my @pg = split ' ', `pgrep -f 'postgres.*$ENV{TEST_NGINX_PG_DIR}' ; pgrep -P \$(head -1 $ENV{TEST_NGINX_PG_DIR}/data/postmaster.pid)`;
kill 'STOP', @pg;
ok @pg > 0, 'Postgres paused (' . scalar(@pg) . ' processes)';
my $text = 'x' x 60000;
my $code = 'none';
eval {
    # a valid message first: its store waits, and what follows is queued
    $ws->send_text(json_encode({ type => 'user_message',
        client_msg_id => 'first', content => 'I am sorry about the delay.' }));
    sleep 0.2;
    for my $i (1 .. 10) {
        $ws->send_text(json_encode({ type => 'user_message',
            client_msg_id => "big-$i", content => $text }));
        sleep 0.1;
    }
};
my $deadline = time + 3;
while (time < $deadline) {
    my $f = $ws->recv_frame($deadline - time) or last;
    if ($f->{opcode} == 8) { $code = $f->{close_code}; last }
}
kill 'CONT', @pg;

is $code, 1008, 'past 256 KiB waiting: closed with 1008';
sleep 1;
my $stored = pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
                       AND role = 'user'}, $sid);
cmp_ok $stored, '<=', 5, "at most what fit was stored ($stored)";

stop_nginx();
done_testing();
