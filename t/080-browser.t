# The browser app end to end in a real browser: Debian's Chromium driven by
# playwright-core (t/e2e/journey.mjs) against nginx serving ui/ and the API,
# with the stand-in model server: the trainee's journey, then the trainer's
# (t/e2e/trainer.mjs: invites, roles, the scenario editor and its field
# errors, try, publish, an assignment to the demo trainee and its status,
# watch live, the team view, the CSV, a session's review, a comment and an
# override that the trainee sees, archive; an admin
# made by scenario_admin_email, the seed's demo trainer).  Fails (never skips) when Chromium, node or
# node_modules/playwright-core is missing.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs qw(api uniq);

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

# the trainer's journey registers and signs in several times from one
# address; the admin is the account of scenario_admin_email
my $admin_email = uniq('e2e-admin') . '@example.com';
my $admin_password = 'admin-e2e-password';

start_nginx(platform_conf(
    model_timeout => '10s',
    read_timeout => '10s',
    http_config => "    include /etc/nginx/mime.types;\n"
        . "    scenario_register_limit address=1000 window=1m;\n"
        . "    scenario_login_limit email=1000 address=1000 window=1m;\n"
        . "    scenario_admin_email $admin_email;\n",
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

# the admin first, so that no account of the journeys is the first one of
# a fresh organization (which would make it its admin)
my ($st, $reg) = api('POST', '/auth/register', undef,
                     { email => $admin_email, password => $admin_password,
                       display_name => 'E2E Admin' });
is($st, 201, 'the admin registers') or diag(explain($reg));
my (undef, $who) = api('GET', '/auth/me', $reg->{token});
is($who->{role}, 'admin', 'as the admin (scenario_admin_email)');

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

$ENV{E2E_ADMIN_EMAIL} = $admin_email;
$ENV{E2E_ADMIN_PASSWORD} = $admin_password;
$out = `cd '$repo' && '$node' t/e2e/trainer.mjs 2>&1`;
$rc = $? >> 8;
is($rc, 0, 'the trainer\'s journey passes (t/e2e/trainer.mjs)') or diag($out);
note($out) if $rc == 0;
ok(-s "$shots/$_.png", "screenshot $_.png")
    for qw(org editor-error editor assignments dashboard-assigned chat-watched
           watch team trainee review);

stop_nginx();
done_testing();
