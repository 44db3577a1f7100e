# After the upgrade the request's two header lists are replaced by copies
# of the entries they hold (ngx_http_ws_shrink_headers()): the client's
# headers, its cookie and the 101's headers must still be read from the
# copies when the access log writes the chat's line at close.  The 101's
# copy is in the response trailers' unused entries: the trailers, still a
# list of their own, read as empty.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $root = nginx_servroot();
my %conf = %{ platform_conf(http_config => <<"_EOC_") };
    log_format probe 'probe uri=\$uri ua=\$http_user_agent x=\$http_x_probe '
                     'cookie=\$cookie_shrunk host=\$host '
                     'upgrade=\$sent_http_upgrade '
                     'trailer=\$sent_trailer_x_probe '
                     'accept=\$sent_http_sec_websocket_accept';
    access_log $root/logs/probe.log probe;
_EOC_

my $uid = make_user('shrunk', 'Headers Shrunk');
my $token = make_token($uid);
my $sid = make_session($uid);

start_nginx(\%conf);

my $ws = ws_connect("/sessions/$sid/chat",
                    { Authorization => "Bearer $token",
                      'User-Agent' => 'shrink-probe/1.0',
                      'X-Probe' => 'still-here',
                      Cookie => 'other=1; shrunk=kept' },
                    { timeout => 10 });
ok $ws->handshake_ok, 'the handshake answered 101';

my $ready;
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    my $e = json_decode($f->{payload});
    if ($e->{type} eq 'ready') { $ready = 1; last }
}
ok $ready, 'ready came';

$ws->disconnect;

# the line is written when the request is freed, after the close
my $line;
for (1 .. 50) {
    open my $fh, '<', "$root/logs/probe.log" or die "probe.log: $!";
    ($line) = grep { m{uri=/sessions/$sid/chat } } <$fh>;
    close $fh;
    last if $line;
    select undef, undef, undef, 0.1;
}
stop_nginx();

ok $line, 'the chat has its access log line';
like $line, qr{ ua=shrink-probe/1\.0 }, 'User-Agent read from the copy';
like $line, qr{ x=still-here }, 'an unknown header read from the copy';
like $line, qr{ cookie=kept }, 'the cookie read from the copy';
like $line, qr{ host=localhost }, 'the host still right';
like $line, qr{ upgrade=websocket }, "the 101's Upgrade read from its copy";
like $line, qr{ trailer=- }, 'the trailers are still an empty list';
like $line, qr{ accept=[A-Za-z0-9+/]{27}=$}, "the 101's Sec-WebSocket-Accept too";

# headers over the 1k header buffer: nginx reads them into a large header
# buffer, which is not copied, and the header entries are copied apart
my $big = 'big-' . ('y' x 1500);
my $sid2 = make_session($uid);
start_nginx(\%conf);
$ws = ws_connect("/sessions/$sid2/chat",
                 { Authorization => "Bearer $token",
                   'User-Agent' => 'shrink-probe/2.0', 'X-Probe' => $big },
                 { timeout => 10 });
ok $ws->handshake_ok, 'a large request answered 101';
$ready = 0;
while (my $f = $ws->recv_frame(10)) {
    next unless $f->{opcode} == 1;
    if (json_decode($f->{payload})->{type} eq 'ready') { $ready = 1; last }
}
ok $ready, 'ready came';
$ws->disconnect;
$line = undef;
for (1 .. 50) {
    open my $fh, '<', "$root/logs/probe.log" or die "probe.log: $!";
    ($line) = grep { m{uri=/sessions/$sid2/chat } } <$fh>;
    close $fh;
    last if $line;
    select undef, undef, undef, 0.1;
}
stop_nginx();
ok $line, 'the large request has its access log line';
like $line, qr{ ua=shrink-probe/2\.0 }, 'its User-Agent read';
like $line, qr{ x=\Q$big\E }, 'its large header read';
like $line, qr{ upgrade=websocket }, "and the 101's Upgrade";

done_testing();
