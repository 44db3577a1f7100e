# The session's reply lock (issue 11 item 11): "scenario_model_timeout 0"
# means no bound on the model, yet the lock used PX timeout*2, so Redis got
# "PX 0", rejected it, and every turn failed.  Such a turn now takes a fixed
# lease, and the reply comes.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(model_timeout => '0') };

my $uid = make_user('lock', 'Lock Tester');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
ok $ws->handshake_ok, 'connected';

my (@got, $end);
my $deadline = time + 8;
while (time < $deadline) {
    my $f = $ws->recv_frame($deadline - time) or last;
    next unless $f->{opcode} == 1;
    my $ev = json_decode($f->{payload});
    push @got, $ev;
    if ($ev->{type} eq 'assistant_end' || $ev->{type} eq 'error') {
        $end = $ev;
        last;
    }
}

ok $end, 'the turn ends';
is $end && $end->{type}, 'assistant_end', 'with the reply, not an error'
    or diag explain \@got;
is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
    AND role = 'assistant'}, $sid), 1, 'which is stored';
is redis_cmd('EXISTS', "gen:$sid"), 0, 'and the lock is released';

stop_nginx();
done_testing();
