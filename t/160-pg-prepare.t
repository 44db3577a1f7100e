# scenario_postgres_prepare on: the chat's statements are prepared once
# per Postgres connection and then only executed.  Postgres's own log
# (log_min_duration_statement = 0 names every parse and execute) shows
# each backend parsing chat_store_message at most once however many turns
# it runs; backends killed under the pool are replaced and prepare again;
# a prepare that fails (the function renamed away) gives the caller the
# statement's error, and the statement then runs unnamed on that
# connection, logged once at warn.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

local $ENV{TEST_PG_PREPARE} = 'on';
# one connection per worker: a retry meets the connection that failed
my %conf = %{ platform_conf(http_config => "scenario_postgres_pool_size 1;\n") };
my $pglog = "$ENV{TEST_NGINX_PG_DIR}/postgres.log";

my $uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('prep-' || :'v1' || '@example.com', 'x', 'Prepare Tester')
    RETURNING id}, time() . "-$$");
my $auth = { Authorization => 'Bearer ' . make_token($uid) };
my $scenario = pg_exec(
    "SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");

sub new_session {
    return pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
        VALUES (:'v1', :'v2') RETURNING id}, $uid, $scenario);
}

sub until_event {
    my ($ws, $secs, $stop) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $f = $ws->recv_frame($deadline - time) or last;
        next unless $f->{opcode} == 1;
        my $ev = json_decode($f->{payload});
        return $ev if $stop->($ev);
    }
    return undef;
}

sub is_last { $_[0]{type} eq 'assistant_end' || $_[0]{type} eq 'error' }

sub turn {      # the reply's end event, or the error
    my ($ws, $id) = @_;
    $ws->send_text(json_encode({ type => 'user_message', client_msg_id => $id,
                                 content => "I will sort it out ($id)." }));
    return until_event($ws, 8, \&is_last);
}

sub log_from {  # Postgres's log lines since byte $pos
    my ($pos) = @_;
    open my $in, '<', $pglog or die "$pglog: $!";
    seek $in, $pos, 0;
    local $/;
    my $text = <$in> // '';
    return split /\n/, $text;
}

# "pid name" of every parse and execute of chat_store_message
sub store_steps {
    my ($step, @lines) = @_;
    return map { /\[(\d+)\].*duration: [\d.]+ ms  $step (\S+): SELECT seq, duplicate, needs_reply, last_seq FROM chat_store_message/
                 ? "$1 $2" : () } @lines;
}

pg_exec('ALTER SYSTEM SET log_min_duration_statement = 0');
pg_exec('SELECT pg_reload_conf()');
sleep 0.5;
my $pos = -s $pglog;

start_nginx(\%conf);

subtest 'prepared once per connection, executed by name' => sub {
    my $ws = ws_connect('/sessions/' . new_session() . '/chat', $auth,
                        { timeout => 5 });
    ok $ws->handshake_ok, 'connected';
    is until_event($ws, 8, \&is_last)->{type}, 'assistant_end',
        'the persona opens';
    for my $i (1 .. 6) {
        my $end = turn($ws, "p-$i");
        is $end && $end->{type}, 'assistant_end', "turn $i answered";
    }
    $ws->close(1000);
    sleep 0.3;

    my @lines = log_from($pos);
    my @exec = store_steps('execute', @lines);
    my @parse = store_steps('parse', @lines);
    is scalar(@exec), 6, 'six executions of chat_store_message';
    is scalar(grep { !/ ngx_pg_[0-9a-f]{8}_\d+$/ } @exec), 0,
        'every one of a named statement';
    my %parsed;
    $parsed{(split / /)[0]}++ for @parse;
    ok @parse >= 1, 'parsed';
    is scalar(grep { $_ > 1 } values %parsed), 0,
        'no backend parsed it twice (' . scalar(@parse) . ' parses for '
        . scalar(@exec) . ' executions)';
};

subtest 'new backends prepare again' => sub {
    $pos = -s $pglog;
    my $killed = pg_exec(q{SELECT count(pg_terminate_backend(pid))
        FROM pg_stat_activity WHERE datname = 'scenario'
          AND pid <> pg_backend_pid() AND backend_type = 'client backend'});
    ok $killed >= 1, "the pool's backends killed ($killed)";
    sleep 1.5;

    my $ws = ws_connect('/sessions/' . new_session() . '/chat', $auth,
                        { timeout => 5 });
    ok $ws->handshake_ok, 'connected';
    is until_event($ws, 8, \&is_last)->{type}, 'assistant_end',
        'the persona opens';
    my $end = turn($ws, 'k-1');
    is $end && $end->{type}, 'assistant_end', 'a turn is answered';
    $ws->close(1000);
    sleep 0.3;

    my @lines = log_from($pos);
    my @parse = store_steps('parse', @lines);
    my @exec = store_steps('execute', @lines);
    is scalar(@exec), 1, 'one execution';
    ok scalar(@parse) == 1 && (split / /, $parse[0])[0]
                               eq (split / /, $exec[0])[0],
        'prepared anew by the backend that ran it';
};

subtest 'a failed prepare: the error, then unnamed' => sub {
    # new connections: nothing prepared yet
    stop_nginx();
    start_nginx(\%conf);
    $pos = -s $pglog;

    my $ws = ws_connect('/sessions/' . new_session() . '/chat', $auth,
                        { timeout => 5 });
    ok $ws->handshake_ok, 'connected';
    is until_event($ws, 8, \&is_last)->{type}, 'assistant_end',
        'the persona opens';

    pg_exec('ALTER FUNCTION chat_store_message(bigint, text, text)
             RENAME TO chat_store_message_away');
    my $end = eval { turn($ws, 'f-1') };
    pg_exec('ALTER FUNCTION chat_store_message_away(bigint, text, text)
             RENAME TO chat_store_message');
    is $end && $end->{type}, 'error', 'the message is refused';

    $end = turn($ws, 'f-1');
    is $end && $end->{type}, 'assistant_end', 'sent again: answered';
    $ws->close(1000);
    sleep 0.3;

    my @exec = store_steps('execute', log_from($pos));
    is scalar(@exec), 1, 'one execution';
    like $exec[0] // '', qr/ <unnamed>$/, 'unnamed on that connection';
    my @warn = grep { /\[warn\].*prepare failed, the statement runs unnamed/ }
               split /\n/, error_log_data();
    is scalar(@warn), 1, 'logged once, at warn';
    my @bad = grep { /\[(?:alert|crit|emerg)\]|segfault|exited on signal/ }
              split /\n/, error_log_data();
    is "@bad", '', 'no worker trouble';
};

stop_nginx();
pg_exec('ALTER SYSTEM RESET log_min_duration_statement');
pg_exec('SELECT pg_reload_conf()');

done_testing;
