# The origin that marks a chat's own events on the session's Redis channel
# (a connection drops the events it published itself) is 64 random bits
# made by each worker, not its pid: replicas in containers run workers with
# the same pids, and two tabs on two replicas used to ignore each other.
# Two instances with equal pids cannot be made here; the test checks the
# origin's form and that it does not come from the pid.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf() };

my $uid = make_user('origin', 'Origin');
my $token = make_token($uid);

start_nginx({ %conf, master => 1, workers => 2 });

# redis-cli prints to stdout: capture it through a pipe instead
sub capture_origins {
    my $sid = make_session($uid);
    open my $sub, '-|', 'timeout', '3', 'redis-cli', '-h', '127.0.0.1',
        '-p', $ENV{TEST_NGINX_REDIS_PORT}, 'SUBSCRIBE', "chat:$sid"
        or die "redis-cli: $!";
    sleep 0.5;
    my $ws = ws_connect("/sessions/$sid/chat", { Authorization => "Bearer $token" },
                        { timeout => 5 });
    while (my $f = $ws->recv_frame(5)) {
        last if $f->{opcode} == 1 && json_decode($f->{payload})->{type} eq 'assistant_end';
    }
    $ws->disconnect;
    my @lines = <$sub>;
    close $sub;
    chomp @lines;
    return map { /^(\S+) \{/ ? $1 : () } @lines;
}

my @origins = capture_origins();
ok @origins > 0, 'the chat published its events' or diag 'nothing heard';
like $_, qr/^[0-9a-f]{16}\.\d+$/, "origin $_: 16 hex digits and a counter"
    for @origins[0 .. ($#origins < 2 ? $#origins : 2)];

my @workers = split ' ', `pgrep -P ${\ nginx_pid()}`;
my %pid = map { $_ => 1 } @workers;
ok !(grep { /^(\d+)\./ && $pid{$1} } @origins), 'no origin is a worker pid';

my %instance = map { /^([0-9a-f]{16})\./ ? ($1 => 1) : () } @origins,
               capture_origins(), capture_origins(), capture_origins();
cmp_ok scalar keys %instance, '>=', 1, 'instances seen: ' . join ' ', sort keys %instance;

stop_nginx();
done_testing();
