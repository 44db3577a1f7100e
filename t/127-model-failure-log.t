# A failed model call is one line in error.log, at one level: the caller
# (the chat, the judge) logs it with what it cost; the model client, which
# hands the error over, does not log it again.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('faillog', 'Fail Log');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                    { timeout => 5 });
is $ws->status, 101, 'connected';

# the persona's opening first: a message sent while it streams waits for
# the reply lock, which is another test's matter
while (my $f = $ws->recv_frame(8)) {
    last if $f->{opcode} == 1 && json_decode($f->{payload})->{type} eq 'assistant_end';
}

my %seen;
for my $mode ('[[fail:500]]', '[[cut]]', '[[malformed]]') {
    $ws->send_text(json_encode({ type => 'user_message',
        client_msg_id => "log-$mode", content => "Hello? $mode" }));
    while (my $f = $ws->recv_frame(8)) {
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        if ($ev->{type} eq 'error') { $seen{$mode} = $ev->{code}; last }
    }
}
is_deeply \%seen, { map { ($_ => 'upstream_error') } '[[fail:500]]', '[[cut]]',
                    '[[malformed]]' }, 'each call failed';
$ws->disconnect;

my @lines = grep { /model call failed/ } split /\n/, error_log_data();
is scalar @lines, 3, 'three failures, three lines' or diag join "\n", @lines;
is scalar(grep { /\[warn\]/ } @lines), 3, 'each at one level (warn)';
like $lines[0], qr/500/, 'with the status';

stop_nginx();
done_testing();
