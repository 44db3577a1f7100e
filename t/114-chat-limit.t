# Open chats are capped per user and per client address (issue 11, item
# 5), across workers: scenario_chat_limit user=3 address=5 lease=3s.  Of
# 30 parallel handshakes of one user, exactly 3 get in.  The
# cap+1st socket of a user is refused before the upgrade (429
# rate_limited, Retry-After); closing one frees a slot at once; another
# user is unaffected until the address's cap, which counts every user.
# Slots are not leaked: the workers killed with SIGKILL hold theirs only
# until their leases run out, a Redis that lost its data gets the live
# leases back from the workers' batch renewal, and a close that a
# restarting Redis never heard frees its slot when its lease runs out.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my %conf = %{ platform_conf(
    http_config => "    scenario_chat_limit user=3 address=5 lease=3s;\n") };
$conf{master} = 1;
$conf{workers} = 2;

my $scenario = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
my $tag = time() . "-$$";

sub user {
    my ($name) = @_;
    my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
        VALUES ('chatlimit-' || :'v1' || '@example.com', 'x', 'Limit')
        RETURNING id}, "$name-$tag");
    my $sid = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
    return { uid => $uid, sid => $sid, token => make_token($uid) };
}

sub open_chat {
    my ($u) = @_;
    my $ws = ws_connect("/sessions/$u->{sid}/chat",
                        { Authorization => "Bearer $u->{token}" },
                        { timeout => 5 });
    return $ws->handshake_ok ? $ws : undef;
}

# the upgrade refused: the whole answer, on a connection nginx then closes
sub refused {
    my ($u) = @_;
    return http('GET', "/sessions/$u->{sid}/chat", {
        Authorization => "Bearer $u->{token}",
        Connection => 'Upgrade, close', Upgrade => 'websocket',
        'Sec-WebSocket-Version' => 13,
        'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==' });
}

sub is_refused {
    my ($u, $who, $name) = @_;
    my $res = refused($u);
    is $res->{status}, 429, "$name: 429" or diag $res->{raw};
    my $body = eval { json_decode($res->{body}) } // {};
    is $body->{error}{code}, 'rate_limited', "$name: rate_limited";
    like $body->{error}{message} // '', qr/too many open chats $who/,
        "$name: the message says why";
    is $res->{headers}{'retry-after'}, 3, "$name: Retry-After is the lease";
}

sub worker_of {
    my ($ws) = @_;
    my $cport = $ws->{sock}->sockport;
    my ($pid) = `ss -Htnp 'sport = :$ENV{TEST_NGINX_PORT} and dport = :$cport'`
                =~ /pid=(\d+)/;
    return $pid;
}

# a slot freed elsewhere is seen by the next handshake; allow the close's
# ZREM a moment to reach Redis
sub open_soon {
    my ($u, $secs) = @_;
    my $deadline = time + ($secs // 2);
    while (time < $deadline) {
        my $ws = open_chat($u);
        return $ws if $ws;
        sleep 0.1;
    }
    return undef;
}

# a worker killed by an earlier test (t/101) leaves leases of this address
# that run for the default 30 s
redis_cmd('DEL', 'chats:a:127.0.0.1');

start_nginx(\%conf);

my ($u1, $u2, $u3) = (user('a'), user('b'), user('c'));

# parallel handshakes of one user, on both workers: the script that counts
# and adds is atomic, so exactly the cap gets in
subtest 'a burst of 30 handshakes' => sub {
    my $u = user('burst');
    my $start = time + 1;
    my @kids;
    for (1 .. 30) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            sleep 0.001 while time < $start;
            my $ws = open_chat($u);
            syswrite $w, $ws ? '1' : '0';
            close $w;
            sleep 2;                    # held until every handshake is done
            exit 0;
        }
        close $w;
        push @kids, [$pid, $r];
    }
    my $in = 0;
    for (@kids) {
        my ($pid, $r) = @$_;
        sysread $r, my $got, 1;
        $in += ($got // 0);
        waitpid $pid, 0;
    }
    is $in, 3, 'three of thirty admitted';
    my $deadline = time + 3;
    sleep 0.1 while redis_cmd('ZCARD', 'chats:a:127.0.0.1') > 0 && time < $deadline;
    is redis_cmd('ZCARD', 'chats:a:127.0.0.1'), 0, 'and their slots freed as they went';
};

subtest 'per user, across workers' => sub {
    my @ws = map { open_chat($u1) } 1 .. 3;
    is scalar(grep { $_ } @ws), 3, 'three chats of one user open';
    my %workers = map { (worker_of($_) // '?') => 1 } grep { $_ } @ws;
    diag 'held by workers: ' . join(', ', sort keys %workers);
    is redis_cmd('ZCARD', "chats:u:$u1->{uid}"), 3, 'three leases in Redis';

    is_refused($u1, 'for this user', 'the fourth');

    $ws[0]->close(1000);
    $ws[0] = open_soon($u1);
    ok $ws[0], 'closing one frees a slot';
    is_refused($u1, 'for this user', 'and the cap holds again');
    $u1->{ws} = \@ws;
};

subtest 'per address, several users' => sub {
    my @ws = map { open_chat($u2) } 1 .. 2;
    is scalar(grep { $_ } @ws), 2, 'another user opens chats';
    is_refused($u2, 'from this address', "the address's sixth");
    is_refused($u3, 'from this address', 'a third user, same address');

    $ws[1]->close(1000);
    my $cws = open_soon($u3);
    ok $cws, 'a slot freed by one user serves another';
    is redis_cmd('ZCARD', 'chats:a:127.0.0.1'), 5, 'five leases for the address';
    $_->close(1000) for grep { $_ } $ws[0], $cws;
};

subtest 'a Redis that lost its data gets the live leases back' => sub {
    redis_cmd('DEL', "chats:u:$u1->{uid}", 'chats:a:127.0.0.1');
    sleep 1.5;                          # one renewal: every third of 3 s
    is redis_cmd('ZCARD', "chats:u:$u1->{uid}"), 3, 'renewed back';
    is_refused($u1, 'for this user', 'the cap holds after the loss');
};

# Redis killed (its append-only file keeps the leases), a chat closed
# while it is down (the ZREM is lost), Redis started again: the closed
# chat's lease is no longer renewed and runs out, the live ones are.
subtest 'no slot leaks when Redis restarts' => sub {
    my $dir = $ENV{TEST_NGINX_REDIS_DIR};
    my $port = $ENV{TEST_NGINX_REDIS_PORT};
    my $repo = $ENV{TEST_NGINX_REPO};
    sleep 1.2;                          # a renewal, fsynced within a second
    open my $fh, '<', "$dir/redis.pid" or die "no redis pid: $!";
    chomp(my $pid = <$fh>);
    close $fh;
    kill 'KILL', $pid or die "kill redis: $!";
    my $deadline = time + 5;
    sleep 0.1 while kill(0, $pid) && time < $deadline;
    unlink "$dir/redis.pid";

    my $ws = $u1->{ws};
    $ws->[2]->close(1000);              # heard by nginx, not by Redis
    system('bash', '-c', ". '$repo/scripts/lib.sh' && redis_start '$dir' $port") == 0
        or die 'redis did not start';

    my $t0 = time;
    $ws->[2] = open_soon($u1, 10);
    ok $ws->[2], 'the slot of the chat closed meanwhile comes back';
    diag sprintf 'after %.1f s', time - $t0;
    # a worker whose renewal failed renews again within 250 ms of Redis's
    # return and before its next admission; the other worker's may come
    # a renewal period later
    sleep 1.2;
    is redis_cmd('ZCARD', "chats:u:$u1->{uid}"), 3, 'the live leases are back';
    is_refused($u1, 'for this user', 'and the cap holds');
};

subtest 'no slot leaks when the workers crash' => sub {
    my %pids = map { (worker_of($_) // 0) => 1 } grep { $_ } @{ $u1->{ws} };
    delete $pids{0};
    ok scalar(keys %pids), 'the chats\' workers found';
    kill 'KILL', keys %pids;
    $_->disconnect for grep { $_ } @{ $u1->{ws} };
    sleep 0.5;                          # the master starts new workers
    is_refused($u1, 'for this user', 'the dead chats hold their slots a while');

    # each worker's leases run out a lease after its last renewal
    my $t0 = time;
    my @back = map { open_soon($u1, 6) } 1 .. 3;
    is scalar(grep { $_ } @back), 3, 'and free them when their leases run out';
    cmp_ok time - $t0, '<', 5, 'within the lease';
    is_refused($u1, 'for this user', 'the cap holds with the new chats');
};

stop_nginx();
done_testing();
