# A reply that finishes after the session was resolved is not stored into
# the assessed transcript (issue 11 item 14): chat_add_reply (sql/012)
# inserts only while the session is active, and the client hears "conflict".
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('resolved', 'Late Tester');
my $token = make_token($uid);
my $sid = make_session($uid);

sub read_until {
    my ($ws, $until, $secs) = @_;
    my @got;
    my $deadline = time + ($secs // 5);
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        last if $until->($ev);
    }
    return @got;
}

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
ok $ws->handshake_ok, 'connected';
my @ev = read_until($ws, sub { $_[0]{type} eq 'assistant_end' });
ok((grep { $_->{type} eq 'assistant_end' } @ev), 'the persona speaks first');

# a slow reply: the session is resolved while it streams
$ws->send_text(json_encode({ type => 'user_message', client_msg_id => 'late-1',
                             content => 'Sorry about that [[slow:1500]]' }));
@ev = read_until($ws, sub { $_[0]{type} eq 'ack' });
is $ev[-1]{type}, 'ack', 'the message is acknowledged';
my $ack = $ev[-1]{seq};

pg_exec(q{UPDATE sessions SET status = 'resolved' WHERE id = :'v1'}, $sid);

@ev = read_until($ws, sub { $_[0]{type} =~ /^(assistant_end|error)$/ }, 8);
is $ev[-1]{type}, 'error', 'the late reply ends in an error'
    or diag explain \@ev;
is $ev[-1]{code}, 'conflict', 'a conflict';
is pg_exec(q{SELECT count(*) FROM messages WHERE session_id = :'v1'
    AND seq > :'v2'}, $sid, $ack), 0, 'and nothing is stored after the ack';

stop_nginx();
done_testing();
