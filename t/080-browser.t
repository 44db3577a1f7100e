# The browser app end to end in a real browser: Debian's Chromium driven by
# playwright-core (t/e2e/journey.mjs) against nginx serving ui/ and the API,
# with the stand-in model server.  Fails (never skips) when Chromium, node
# or node_modules/playwright-core is missing.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;

my $repo = $ENV{TEST_NGINX_REPO} or die "run me through scripts/test\n";
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';

my $node = `sh -c 'command -v node'`;
chomp $node;
ok($node, 'node is installed') or diag('install nodejs (apt-get install nodejs npm)');
ok(-x $chromium, "Chromium is installed at $chromium")
    or diag('install it: apt-get install chromium');
ok(-f "$repo/node_modules/playwright-core/package.json",
   'node_modules/playwright-core is installed')
    or diag("run: (cd $repo && npm ci)");
if (!$node || !-x $chromium || !-f "$repo/node_modules/playwright-core/package.json") {
    done_testing();
    exit 1;
}

start_nginx(platform_conf(
    model_timeout => '10s',
    read_timeout => '10s',
    http_config => "    include /etc/nginx/mime.types;\n",
    config => <<"_EOC_",
    location / {
        root $repo/ui;
        default_type application/octet-stream;
        index index.html;
        try_files \$uri \$uri/ /index.html;
    }
_EOC_
    nginx => { no_root_location => 1 },
));

my $shots = "$repo/t/e2e/screenshots";
unlink glob("$shots/*.png");

$ENV{E2E_BASE_URL} = "http://127.0.0.1:$ENV{TEST_NGINX_PORT}";
$ENV{CHROMIUM} = $chromium;
my $out = `cd '$repo' && '$node' t/e2e/journey.mjs 2>&1`;
my $rc = $? >> 8;
is($rc, 0, 'the browser journey passes (t/e2e/journey.mjs)') or diag($out);
note($out) if $rc == 0;

for my $name (qw(login dashboard chat summary dashboard-after session)) {
    ok(-s "$shots/$name.png", "screenshot $name.png");
}
ok(-s "$repo/t/e2e/screenshots/$_.png", "t/e2e/screenshots/$_.png") for qw(chat summary);

stop_nginx();
done_testing();
