# The 101's header buffer and chain links come from a scratch pool that is
# destroyed once the response is out (ngx_http_ws_send_101()), and the
# socket keeps working: a turn, then the access log line at close reads
# the 101's headers.  When a filter left something in that pool (an
# "add_header ... always" value), the pool is kept with the request (the
# log says so at info) and the access log still reads the header at
# close; the sanitizer build shows a read of a freed pool.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $root = nginx_servroot();

sub turn {
    my ($sid, $token, $id) = @_;

    my $ws = ws_connect("/sessions/$sid/chat",
                        { Authorization => "Bearer $token" },
                        { timeout => 10 });
    ok $ws->handshake_ok, "$id: 101";

    my ($ready, $started, $end);
    while (my $f = $ws->recv_frame(10)) {
        next unless $f->{opcode} == 1;
        my $e = json_decode($f->{payload});
        $ready = 1 if $e->{type} eq 'ready';

        # the persona's opening line first, then a message of ours
        if ($e->{type} eq 'assistant_end' && !$started) {
            $started = 1;
            $ws->send_text(json_encode({ type => 'user_message',
                                         client_msg_id => $id,
                                         content => 'Where is my lamp?' }));
            next;
        }

        if ($e->{type} eq 'assistant_end') { $end = $e; last }
    }

    ok $ready, "$id: ready came";
    ok $end && length($end->{content} // '') > 0,
       "$id: a message sent after the upgrade is answered";

    $ws->disconnect;
}

sub log_line {
    my ($sid) = @_;
    for (1 .. 50) {
        if (open my $fh, '<', "$root/logs/probe.log") {
            my ($line) = grep { m{uri=/sessions/$sid/chat } } <$fh>;
            close $fh;
            return $line if $line;
        }
        select undef, undef, undef, 0.1;
    }
    return undef;
}

my $log_format = <<"_EOC_";
    log_format probe 'probe uri=\$uri upgrade=\$sent_http_upgrade '
                     'probe=\$sent_http_x_probe';
    access_log $root/logs/probe.log probe;
_EOC_

my $uid = make_user('given-back', 'Given Back');
my $token = make_token($uid);

# the shipped server: nothing of the 101 is kept

my $sid = make_session($uid);
my %conf = %{ platform_conf(http_config => $log_format) };
start_nginx(\%conf);
turn($sid, $token, 'plain');

my $line = log_line($sid);
my $log = error_log_data();
stop_nginx();

unlike $log, qr/websocket 101 scratch pool kept/, "nothing of the 101 kept";
like $line // '', qr/ upgrade=websocket /,
     "the access log reads the 101's Upgrade at close";

# a filter's header value in the scratch pool: kept until the request ends

$sid = make_session($uid);
%conf = %{ platform_conf(http_config => $log_format,
                         config => 'add_header X-Probe "p-$request_method" '
                                   . "always;\n") };
start_nginx(\%conf);
turn($sid, $token, 'header');

$line = log_line($sid);
$log = error_log_data();
stop_nginx();

like $log, qr/websocket 101 scratch pool kept/, 'kept for the header';
like $line // '', qr/ probe=p-GET$/,
     "the filter's header read at close from the kept pool";

done_testing();
