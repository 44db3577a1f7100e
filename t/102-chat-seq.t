# Seqs without holes (issue 12 item 3): a reply takes its seq when it is
# stored (sql/015), not before the model call, so failed calls leave no
# gap.  After several [[fail:500]] turns a session's seqs run 1, 2, 3 ...,
# last_seq agrees, and resume and GET /sessions/{id} show the same list.
# The ack still comes after the store, a repeated client_msg_id still gets
# its seq, and a reply's start and end carry the same seq.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('seq-' || :'v1' || '@example.com', 'x', 'Seq Tester')
    RETURNING id}, time() . "-$$");
my $token = make_token($uid);
my $auth = { Authorization => "Bearer $token" };
my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);

sub until_event {
    my ($ws, $secs, $stop) = @_;
    my @got;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        push @got, $ev;
        return ($ev, @got) if $stop->($ev);
    }
    return (undef, @got);
}

sub is_last { $_[0]{type} eq 'assistant_end' || $_[0]{type} eq 'error' }

sub say_to {
    my ($ws, $id, $text) = @_;
    $ws->send_text(json_encode({ type => 'user_message',
                                 client_msg_id => $id, content => $text }));
}

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", $auth, { timeout => 5 });
ok $ws->handshake_ok, 'connected';

my ($end, @got) = until_event($ws, 8, \&is_last);
is $end && $end->{type}, 'assistant_end', 'the persona opens';
my ($start) = grep { $_->{type} eq 'assistant_start' } @got;
is $start && $start->{seq}, $end && $end->{seq}, 'start and end agree';

for my $i (1 .. 4) {
    say_to($ws, "fail-$i", "This fails [[fail:500]] $i");
    ($end, @got) = until_event($ws, 8, \&is_last);
    my ($ack) = grep { $_->{type} eq 'ack' } @got;
    ok $ack, "failing turn $i acked (seq " . ($ack ? $ack->{seq} : '?') . ')';
    is $end && $end->{code}, 'upstream_error', "failing turn $i: an error";
}

say_to($ws, 'fail-2', 'This fails [[fail:500]] 2');
my ($dup) = until_event($ws, 5, sub { $_[0]{type} eq 'ack' });
is $dup && $dup->{seq}, 3, 'a repeated message keeps its seq';
until_event($ws, 3, \&is_last);

say_to($ws, 'ok-1', 'Now answer me, please');
($end, @got) = until_event($ws, 8, \&is_last);
my ($ack) = grep { $_->{type} eq 'ack' } @got;
($start) = grep { $_->{type} eq 'assistant_start' } @got;
is $ack && $ack->{seq}, 6, 'the next message follows without a gap';
is $end && $end->{type}, 'assistant_end', 'the reply comes';
is $end && $end->{seq}, 7, 'stored right after it';
is $start && $start->{seq}, 7, 'as its start said';

my $seqs = pg_exec(q{SELECT string_agg(seq::text, ',' ORDER BY seq)
    FROM messages WHERE session_id = :'v1'}, $sid);
is $seqs, '1,2,3,4,5,6,7', 'seqs run 1..7 with no hole';
is pg_exec(q{SELECT last_seq FROM sessions WHERE id = :'v1'}, $sid), 7,
    'last_seq agrees';

$ws->send_text(json_encode({ type => 'resume', after_seq => 0 }));
my @replayed;
while (my $f = $ws->recv_frame(2)) {
    next unless $f->{opcode} == 1;
    my $ev = json_decode($f->{payload});
    push @replayed, $ev if $ev->{type} eq 'message';
    last if @replayed == 7;
}
is join(',', map { $_->{seq} } @replayed), $seqs, 'resume agrees';

my $res = http('GET', "/sessions/$sid", $auth);
is $res->{status}, 200, 'history';
my $hist = json_decode($res->{body});
is join(',', map { $_->{seq} } @{ $hist->{messages} }), $seqs,
    'history agrees';
is join('|', map { "$_->{role}:$_->{content}" } @{ $hist->{messages} }),
   join('|', map { "$_->{role}:$_->{content}" } @replayed),
   'same messages in both';

# a message stored while a reply streams takes the seq the reply expected;
# the reply is stored after it, and that message is answered next
subtest 'a message during a reply' => sub {
    my $s2 = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
    my $c = ws_connect("/sessions/$s2/chat", $auth, { timeout => 5 });
    my ($e) = until_event($c, 8, \&is_last);
    is $e && $e->{seq}, 1, 'the opening';

    say_to($c, 'mid-1', 'First question [[delay:100]]');
    my ($st) = until_event($c, 5, sub { $_[0]{type} eq 'assistant_start' });
    is $st && $st->{seq}, 3, 'the reply expects seq 3';
    say_to($c, 'mid-2', 'And a second one');
    my ($a2, @g) = until_event($c, 5, sub { $_[0]{type} eq 'ack' });
    is $a2 && $a2->{seq}, 3, 'the second message takes it';
    ($e, @g) = until_event($c, 10, sub { $_[0]{type} eq 'assistant_end' });
    is $e && $e->{seq}, 4, 'the first reply is stored after it';
    ($e, @g) = until_event($c, 10, \&is_last);
    is $e && $e->{type}, 'assistant_end', 'the second message is answered';
    is $e && $e->{seq}, 5, 'next';
    is pg_exec(q{SELECT string_agg(seq || role, ',' ORDER BY seq)
        FROM messages WHERE session_id = :'v1'}, $s2),
       '1assistant,2user,3user,4assistant,5assistant', 'no hole, no loss';
};

stop_nginx();
done_testing();
