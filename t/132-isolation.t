# Isolation (issue 9, item 6), on two workers: a trainee reaches no
# authoring or member endpoint and no other trainee's session; a trainer
# or admin of one organization sees nothing of another (404, never 403,
# for what exists there); a used or expired invite fails; a demoted
# trainer loses access at once, on every worker, and a removed member's
# or a demoted trainer's chats end and stay closed.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my %conf = %{ platform_conf(http_config => "scenario_register_limit address=1000 window=1m;\n"
                                         . "scenario_password_cost 64k 1;\n",
                            config => "add_header X-Worker \$pid always;\n") };

my $a_org = new_org('Org A');
my $b_org = new_org('Org B');
my ($a_admin_id, $a_admin) = new_user('admin', $a_org);
my ($a_trainer_id, $a_trainer) = new_user('trainer', $a_org);
my ($a_trainee_id, $a_trainee) = new_user('trainee', $a_org);
my ($a_other_id, $a_other) = new_user('trainee', $a_org);
my ($b_admin_id, $b_admin) = new_user('admin', $b_org);
my ($b_trainer_id, $b_trainer) = new_user('trainer', $b_org);
my ($b_trainee_id, $b_trainee) = new_user('trainee', $b_org);

start_nginx({ %conf, master => 1, workers => 2 });

my ($st, $sc) = api('POST', '/authoring/scenarios', $a_trainer,
                    scenario_doc(title => 'Org A only'));
is $st, 201, 'org A has a scenario' or diag explain $sc;
my $a_sc = $sc->{id};
api('POST', "/authoring/scenarios/$a_sc/publish", $a_trainer);
my (undef, $a_inv) = api('POST', '/org/invites', $a_admin, { role => 'trainer' });
my (undef, $a_sess) = api('POST', '/sessions', $a_trainee, { scenario_id => $a_sc });
ok $a_sess->{id}, 'an org A trainee plays it';

subtest 'a trainee reaches no authoring or member endpoint' => sub {
    my @calls = (
        ['GET', '/authoring/scenarios'],
        ['POST', '/authoring/scenarios', scenario_doc()],
        ['GET', "/authoring/scenarios/$a_sc"],
        ['PUT', "/authoring/scenarios/$a_sc", scenario_doc()],
        ['POST', "/authoring/scenarios/$a_sc/publish"],
        ['POST', "/authoring/scenarios/$a_sc/archive"],
        ['POST', "/authoring/scenarios/$a_sc/try"],
        ['GET', '/org/members'],
        ['PATCH', "/org/members/$a_trainee_id", { role => 'admin' }],
        ['DELETE', "/org/members/$a_other_id"],
        ['GET', '/org/invites'],
        ['POST', '/org/invites', { role => 'admin' }],
        ['DELETE', "/org/invites/$a_inv->{id}"],
    );
    for my $c (@calls) {
        my ($method, $path, $body) = @$c;
        my ($st, $doc) = api($method, $path, $a_trainee, $body);
        is_deeply [$st, $doc->{error}{code}], [403, 'forbidden'], "$method $path: 403";
    }
    is pg_exec(q{SELECT role FROM users WHERE id = :'v1'}, $a_trainee_id), 'trainee',
        'the trainee is still a trainee';
    is pg_exec(q{SELECT status FROM scenarios WHERE id = :'v1'}, $a_sc), 'published',
        'and the scenario untouched';

    my ($st, $doc) = api('GET', "/sessions/$a_sess->{id}", $a_other);
    is_deeply [$st, $doc->{error}{code}], [404, 'not_found'],
        'another trainee\'s session is not found';
    ($st) = api('POST', "/sessions/$a_sess->{id}/resolve", $a_other);
    is $st, 404, 'nor resolved';
    my $ws = ws_connect("/sessions/$a_sess->{id}/chat",
                        { Authorization => "Bearer $a_other" }, { timeout => 5 });
    is $ws->status, 404, 'nor chatted in';
    $ws->disconnect;
};

subtest 'organization B sees nothing of organization A' => sub {
    for my $who (['trainer', $b_trainer], ['admin', $b_admin]) {
        my ($role, $tok) = @$who;
        my @calls = (
            ['GET', "/authoring/scenarios/$a_sc"],
            ['PUT', "/authoring/scenarios/$a_sc", scenario_doc()],
            ['POST', "/authoring/scenarios/$a_sc/publish"],
            ['POST', "/authoring/scenarios/$a_sc/archive"],
            ['POST', "/authoring/scenarios/$a_sc/try"],
            ['GET', "/sessions/$a_sess->{id}"],
        );
        for my $c (@calls) {
            my ($method, $path, $body) = @$c;
            my ($st, $doc) = api($method, $path, $tok, $body);
            is_deeply [$st, $doc->{error}{code}], [404, 'not_found'],
                "B's $role: $method $path is 404";
        }
        my (undef, $list) = api('GET', '/authoring/scenarios', $tok);
        ok !(grep { $_->{id} == $a_sc } @$list), "B's $role does not list it";
        my (undef, $members) = api('GET', '/org/members', $tok);
        is_deeply [sort { $a <=> $b } map { $_->{id} } @$members],
                  [$b_admin_id, $b_trainer_id, $b_trainee_id],
                  "B's $role lists only B's members";
    }
    for my $c (['PATCH', "/org/members/$a_trainer_id", { role => 'trainee' }],
               ['DELETE', "/org/members/$a_trainee_id"],
               ['DELETE', "/org/invites/$a_inv->{id}"]) {
        my ($method, $path, $body) = @$c;
        my ($st, $doc) = api($method, $path, $b_admin, $body);
        is_deeply [$st, $doc->{error}{code}], [404, 'not_found'],
            "B's admin: $method $path is 404";
    }
    my (undef, $inv) = api('GET', '/org/invites', $b_admin);
    ok !(grep { $_->{id} == $a_inv->{id} } @$inv), "B's admin does not list A's invites";

    my (undef, $list) = api('GET', '/scenarios', $b_trainee);
    ok !(grep { $_->{id} == $a_sc } @$list), "B's trainee is not offered A's scenario";
    ok scalar(grep { !defined $_->{best_score} && $_->{slug} eq 'nervous-patient' } @$list),
        'but the seeded ones';
    my ($st, $doc) = api('POST', '/sessions', $b_trainee, { scenario_id => $a_sc });
    is_deeply [$st, $doc->{error}{code}], [404, 'not_found'], 'and cannot start it';

    is pg_exec(q{SELECT role FROM users WHERE id = :'v1'}, $a_trainer_id), 'trainer',
        'A\'s trainer kept their role';
    is pg_exec(q{SELECT version || status FROM scenarios WHERE id = :'v1'}, $a_sc),
        '1published', 'A\'s scenario is untouched';
};

subtest 'a used or an expired invite fails' => sub {
    my $e = uniq('a-trainer') . '@example.com';
    my ($st) = api('POST', '/auth/register', undef,
                   { email => $e, password => 'a long password', display_name => 'T',
                     invite_code => $a_inv->{code} });
    is $st, 201, 'the invite is used once';
    my $doc;
    ($st, $doc) = api('POST', '/auth/register', undef,
                      { email => uniq('again') . '@example.com', password => 'a long password',
                        display_name => 'T', invite_code => $a_inv->{code} });
    is_deeply [$st, $doc->{error}{code}], [400, 'invalid_invite'], 'not twice';

    my (undef, $late) = api('POST', '/org/invites', $a_admin,
                            { role => 'admin', expires_in => 60 });
    pg_exec(q{UPDATE invites SET expires_at = now() WHERE id = :'v1'}, $late->{id});
    ($st, $doc) = api('POST', '/auth/register', undef,
                      { email => uniq('late') . '@example.com', password => 'a long password',
                        display_name => 'T', invite_code => $late->{code} });
    is_deeply [$st, $doc->{error}{code}], [400, 'invalid_invite'], 'nor once expired';
};

# a chat on $sid, its opening reply read
sub chat_open {
    my ($sid, $token) = @_;
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5 });
    return $ws unless $ws->status == 101;
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

subtest 'a removed member\'s chats end, and the organization\'s scenarios close' => sub {
    my ($cid, $carol) = new_user('trainee', $a_org);
    my (undef, $s) = api('POST', '/sessions', $carol, { scenario_id => $a_sc });
    my $ws = chat_open($s->{id}, $carol);
    is $ws->status, 101, 'a trainee chats on the organization\'s scenario';
    my $other = chat_open($a_sess->{id}, $a_trainee);
    is $other->status, 101, 'so does another';

    my ($st) = api('DELETE', "/org/members/$cid", $a_admin);
    is $st, 204, 'the admin removes the first';
    is close_code($ws, 3), 1008, 'whose chat ends at once (1008)';
    my $again = ws_connect("/sessions/$s->{id}/chat", { Authorization => "Bearer $carol" },
                           { timeout => 5 });
    is $again->status, 404, 'and cannot be opened again';
    $again->disconnect;
    ($st) = api('POST', "/sessions/$s->{id}/resolve", $carol);
    is $st, 404, 'nor resolved';
    my $doc;
    ($st, $doc) = api('GET', "/sessions/$s->{id}", $carol);
    is_deeply [$st, $doc->{id}], [200, $s->{id}], 'but it is still theirs to read';

    $other->send_text(json_encode({ type => 'user_message', client_msg_id => 'still',
                                    content => 'Are you still there?' }));
    my $ack;
    while (my $f = $other->recv_frame(5)) {
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        if ($ev->{type} eq 'ack') { $ack = $ev; last }
    }
    ok $ack, 'the other member\'s chat goes on';
    $other->disconnect;
};

subtest 'a demoted trainer loses access at once, on every worker' => sub {
    my (undef, $trial) = api('POST', "/authoring/scenarios/$a_sc/try", $a_trainer);
    my $ws = chat_open($trial->{id}, $a_trainer);
    is $ws->status, 101, 'the trainer tries the scenario in a chat';

    my (%before, %after, @before, @after, %me);
    for (1 .. 40) {
        my ($st, undef, $res) = api('GET', '/authoring/scenarios', $a_trainer);
        push @before, $st;
        $before{ worker_of($res) }++;
        my (undef, $p, $r2) = api('GET', '/auth/me', $a_trainer);
        $me{ worker_of($r2) } = $p->{role};
    }
    is_deeply [sort keys %{{ map { $_ => 1 } @before }}], [200], 'a trainer writes scenarios';
    is scalar(keys %before), 2, 'on both workers';
    is_deeply [sort values %me], ['trainer', 'trainer'],
        'and both workers cached the profile';

    my ($st, $doc) = api('PATCH', "/org/members/$a_trainer_id", $a_admin,
                         { role => 'trainee' });
    is $st, 200, 'the admin demotes the trainer';

    %me = ();
    for (1 .. 40) {
        my ($st, $doc, $res) = api('GET', '/authoring/scenarios', $a_trainer);
        push @after, "$st $doc->{error}{code}";
        $after{ worker_of($res) }++;
        my (undef, $p, $r2) = api('GET', '/auth/me', $a_trainer);
        $me{ worker_of($r2) } = $p->{role};
    }
    is_deeply [sort keys %{{ map { $_ => 1 } @after }}], ['403 forbidden'],
        'every request after the answer is refused';
    is scalar(keys %after), 2, 'on both workers';
    is_deeply [sort values %me], ['trainee', 'trainee'],
        'and no worker shows the old role';

    ($st) = api('POST', "/authoring/scenarios/$a_sc/try", $a_trainer);
    is $st, 403, 'nor can the former trainer try a scenario';
    is close_code($ws, 3), 1008, 'and the trial chat has ended';
    my $again = ws_connect("/sessions/$trial->{id}/chat",
                           { Authorization => "Bearer $a_trainer" }, { timeout => 5 });
    is $again->status, 404, 'for good';
    $again->disconnect;
};

stop_nginx();
done_testing();
