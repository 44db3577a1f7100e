# Organizations and roles (issue 9, item 1): the first account of the
# default organization is its admin, and so is an email named by
# scenario_admin_email; admins make single-use, expiring invite codes,
# stored hashed, that set the role and organization of the account that
# registers with them; roles change and members are removed by admins,
# never below one admin; registration may create an organization.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256_hex);
use Test::Scenario::Util qw(:all);
use Test::Scenario::Platform;
use Test::Scenario::Orgs;

my $boss = uniq('boss') . '@example.com';
my $limits = <<"_EOC_";
    scenario_register_limit address=1000 window=1m;
    scenario_login_limit email=1000 address=1000 window=1m;
    scenario_password_cost 64k 1;
    scenario_admin_email $boss;
_EOC_

my %conf = %{ platform_conf(http_config => $limits
                            . "scenario_register_organization on;\n") };

sub register {
    my (%f) = @_;
    my $email = delete $f{email} // uniq('user') . '@example.com';
    return api('POST', '/auth/register', undef,
               { email => $email, password => 'a long password',
                 display_name => 'Someone', %f });
}

sub me {
    my ($token) = @_;
    my (undef, $doc) = api('GET', '/auth/me', $token);
    return $doc;
}

start_nginx(\%conf);

# the default organization as if fresh: no admin yet
pg_exec("UPDATE users SET role = 'trainee' WHERE org_id = 1 AND role = 'admin'");

my ($st, $doc) = register();
is $st, 201, 'the first account registers' or diag explain $doc;
my $admin = $doc->{token};
is me($admin)->{role}, 'admin', 'and is the admin of the default organization';
is me($admin)->{org_id}, 1, 'which is organization 1';

($st, $doc) = register();
my $plain = $doc->{token};
is me($plain)->{role}, 'trainee', 'the second account is a trainee';

($st, $doc) = register(email => uc $boss);
is $st, 201, 'the scenario_admin_email account registers';
is me($doc->{token})->{role}, 'admin', 'as an admin (case does not matter)';

($st, $doc) = api('GET', '/org', $admin);
is $st, 200, 'GET /org';
is_deeply [@{$doc}{qw(id name role)}], [1, 'Default organization', 'admin'],
    'the organization and the caller\'s role';

subtest 'an invite sets the role and is single-use' => sub {
    my ($st, $inv) = api('POST', '/org/invites', $admin, { role => 'trainer' });
    is $st, 201, 'an admin makes an invite' or diag explain $inv;
    like $inv->{code}, qr/^[A-Za-z0-9_-]{43}$/, 'its code: 256 bits, base64url';
    is $inv->{role}, 'trainer', 'for a trainer';
    is $inv->{status}, 'open', 'open';
    like $inv->{expires_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'expiring';

    my $stored = pg_exec('SELECT code_hash FROM invites WHERE id = :\'v1\'', $inv->{id});
    is $stored, sha256_hex($inv->{code}), 'Postgres keeps only its SHA-256';
    is pg_exec(q{SELECT count(*) FROM invites WHERE code_hash = :'v1'}, $inv->{code}),
        0, 'a stored hash is not the code';

    my ($lst, $list) = api('GET', '/org/invites', $admin);
    is $lst, 200, 'the admin lists the invites';
    my ($row) = grep { $_->{id} == $inv->{id} } @$list;
    ok $row && !exists $row->{code}, 'without their codes';

    my $email = uniq('invited') . '@example.com';
    my ($rst, $reg) = register(email => $email, invite_code => $inv->{code});
    is $rst, 201, 'registering with the code' or diag explain $reg;
    my $p = me($reg->{token});
    is_deeply [$p->{role}, $p->{org_id}], ['trainer', 1],
        'gives the invite\'s role in its organization';

    ($rst, $reg) = register(invite_code => $inv->{code});
    is $rst, 400, 'the same code again is refused';
    is $reg->{error}{code}, 'invalid_invite', 'as an invalid invite';

    (undef, $list) = api('GET', '/org/invites', $admin);
    ($row) = grep { $_->{id} == $inv->{id} } @$list;
    is $row->{status}, 'used', 'the invite is used';
};

subtest 'an expired, revoked or unknown invite fails and stores nothing' => sub {
    my (undef, $old) = api('POST', '/org/invites', $admin,
                           { role => 'trainer', expires_in => 60 });
    pg_exec(q{UPDATE invites SET expires_at = now() - interval '1 second'
              WHERE id = :'v1'}, $old->{id});
    my $email = uniq('late') . '@example.com';
    my ($st, $doc) = register(email => $email, invite_code => $old->{code});
    is $st, 400, 'an expired code is refused';
    is $doc->{error}{code}, 'invalid_invite', 'invalid_invite';
    is pg_exec(q{SELECT count(*) FROM users WHERE email = :'v1'}, $email), 0,
        'no account was made';

    my (undef, $gone) = api('POST', '/org/invites', $admin, { role => 'admin' });
    my ($dst) = api('DELETE', "/org/invites/$gone->{id}", $admin);
    is $dst, 204, 'an admin revokes an invite';
    ($st, $doc) = register(invite_code => $gone->{code});
    is $doc->{error}{code}, 'invalid_invite', 'a revoked code is refused';

    ($st, $doc) = register(invite_code => 'A' x 43);
    is_deeply [$st, $doc->{error}{code}], [400, 'invalid_invite'],
        'an unknown code is refused';

    ($st, $doc) = api('POST', '/org/invites', $admin, { role => 'boss' });
    is_deeply [$st, $doc->{error}{field}], [400, 'role'], 'a bad role names the field';
    ($st, $doc) = api('POST', '/org/invites', $admin,
                      { role => 'trainee', expires_in => 10 });
    is_deeply [$st, $doc->{error}{field}], [400, 'expires_in'],
        'so does a lifetime under a minute';
};

subtest 'only admins invite and change roles' => sub {
    my ($tid, $trainer) = new_user('trainer');
    my ($st, $doc) = api('POST', '/org/invites', $trainer, { role => 'trainer' });
    is_deeply [$st, $doc->{error}{code}], [403, 'forbidden'],
        'a trainer cannot invite';
    ($st) = api('GET', '/org/invites', $trainer);
    is $st, 403, 'nor list the invites';
    ($st, $doc) = api('GET', '/org/members', $trainer);
    is $st, 200, 'a trainer lists the members';
    ok((grep { $_->{id} == $tid && $_->{role} eq 'trainer' } @$doc),
       'with their roles');
    ($st, $doc) = api('GET', '/org/members', $plain);
    is_deeply [$st, $doc->{error}{code}], [403, 'forbidden'],
        'a trainee cannot';
    ($st) = api('PATCH', "/org/members/$tid", $trainer, { role => 'admin' });
    is $st, 403, 'a trainer cannot promote themselves';
};

subtest 'roles change and members leave, at once' => sub {
    my ($tid, $trainer) = new_user('trainer');
    is me($trainer)->{role}, 'trainer', 'the profile (now cached) says trainer';

    my ($st, $doc) = api('PATCH', "/org/members/$tid", $admin, { role => 'trainee' });
    is $st, 200, 'an admin demotes a trainer' or diag explain $doc;
    is_deeply [@{$doc}{qw(id role)}], [$tid, 'trainee'], 'the member as it is now';
    is me($trainer)->{role}, 'trainee', 'the cached profile follows at once';
    ($st) = api('GET', '/org/members', $trainer);
    is $st, 403, 'and the trainer\'s rights are gone';

    ($st, $doc) = api('PATCH', "/org/members/$tid", $admin, { role => 'king' });
    is_deeply [$st, $doc->{error}{field}], [400, 'role'], 'a bad role is 400';

    ($st) = api('DELETE', "/org/members/$tid", $admin);
    is $st, 204, 'an admin removes a member';
    ($st, $doc) = api('GET', '/org', $trainer);
    is_deeply [$st, $doc->{error}{code}], [404, 'not_found'],
        'who belongs to no organization';
    is me($trainer)->{org_id}, undef, 'as the profile says at once';
    ($st) = api('PATCH', "/org/members/$tid", $admin, { role => 'trainer' });
    is $st, 404, 'and is no member to change any more';
};

subtest 'the organization keeps an admin' => sub {
    my $org = new_org();
    my ($aid, $only) = new_user('admin', $org);
    my ($st, $doc) = api('PATCH', "/org/members/$aid", $only, { role => 'trainer' });
    is_deeply [$st, $doc->{error}{code}], [409, 'conflict'],
        'the last admin cannot step down';
    ($st) = api('DELETE', "/org/members/$aid", $only);
    is $st, 409, 'nor leave';
    my ($bid) = new_user('admin', $org);
    ($st, $doc) = api('PATCH', "/org/members/$aid", $only, { role => 'trainer' });
    is_deeply [$st, $doc->{role}], [200, 'trainer'], 'with a second admin, it can';
};

subtest 'registration may create an organization' => sub {
    my $name = uniq('Acme');
    my ($st, $doc) = register(organization => $name);
    is $st, 201, 'registering with an organization name' or diag explain $doc;
    my $p = me($doc->{token});
    is $p->{role}, 'admin', 'makes its admin';
    my (undef, $org) = api('GET', '/org', $doc->{token});
    is_deeply [$org->{name}, $org->{members}], [$name, 1],
        'of a new organization of one';
    isnt $p->{org_id}, 1, 'not the default one';

    ($st, $doc) = register(organization => $name, invite_code => 'A' x 43);
    is_deeply [$st, $doc->{error}{field}], [400, 'organization'],
        'not together with an invite';
};

stop_nginx();

subtest 'with registration off, an invite still works' => sub {
    my %off = %{ platform_conf(http_config => $limits . "scenario_register off;\n") };
    start_nginx(\%off);

    my ($st, $doc) = register();
    is_deeply [$st, $doc->{error}{message}], [403, 'registration is disabled'],
        'without a code: 403';
    ($st, $doc) = register(organization => 'Nope');
    is $st, 403, 'creating an organization is off by default';

    my (undef, $inv) = api('POST', '/org/invites', $admin, { role => 'trainee' });
    ($st, $doc) = register(invite_code => $inv->{code});
    is $st, 201, 'with a code: registered' or diag explain $doc;
    is me($doc->{token})->{role}, 'trainee', 'as a trainee';

    stop_nginx();
};

done_testing();
