package Test::Scenario::Orgs;

# Helpers of the organization, authoring and isolation tests (issue 9):
# JSON calls with a bearer token, users and organizations made straight
# in Postgres (with a live token), and a valid scenario document.

use strict;
use warnings;
use Exporter 'import';
use Test::Scenario::Util qw(:all);

our @EXPORT = qw(api new_org new_user scenario_doc uniq worker_of);

my $n = 0;

# a name no other run or test has used
sub uniq { return join '-', $_[0] // 'x', time(), $$, ++$n }

# api($method, $path, $token, $data): (status, decoded body or undef, res)
sub api {
    my ($method, $path, $token, $data) = @_;
    my %h;
    $h{Authorization} = "Bearer $token" if defined $token;
    my $body;
    if (defined $data) {
        $h{'Content-Type'} = 'application/json';
        $body = ref $data ? json_encode($data) : $data;
    }
    my $res = http($method, $path, \%h, $body);
    my $doc = eval { json_decode($res->{body}) };
    return ($res->{status}, $doc, $res);
}

sub new_org {
    my ($name) = @_;
    return pg_exec(q{INSERT INTO organizations (name) VALUES (:'v1')
                     RETURNING id}, $name // uniq('org'));
}

# new_user($role, $org): (id, token); $org undef is the default one
sub new_user {
    my ($role, $org) = @_;
    my $email = uniq($role) . '@example.com';
    my $id = pg_exec(q{INSERT INTO users (email, password_hash, display_name,
                                          org_id, role)
                       VALUES (:'v1', 'x', :'v2', :'v3', :'v4')
                       RETURNING id}, $email, "T $role", $org // 1, $role);
    return ($id, make_token($id));
}

# the pid of the worker that answered (the test's config adds X-Worker)
sub worker_of {
    my ($res) = @_;
    my $w = $res->{headers}{'x-worker'} // '';
    return ref $w ? $w->[0] : $w;
}

sub scenario_doc {
    my (%over) = @_;
    my $doc = {
        title => 'Price rise, loyal customer',
        description => 'A long-time customer calls about a 20% price rise.',
        difficulty => 'medium',
        persona => {
            name => 'Morgan Hale',
            role => 'Customer for eight years',
            prompt => 'You are Morgan Hale, a loyal customer, upset about '
                    . 'a 20% price rise. Say "Thank you, that works for me." '
                    . 'only once you are offered a fair plan.',
        },
        backstory => 'Morgan has paid on time for eight years.',
        goal => 'Keep Morgan as a customer with a fair offer.',
        opening_line => 'Morgan asks why the bill went up so much.',
        good_resolution => 'The agent explains the rise and offers the '
                         . 'loyalty plan, in writing today.',
        criteria => [
            { key => 'explain', description => 'Explains the rise',
              keywords => ['because', 'costs'], weight => 2 },
            { key => 'offer', description => 'Offers the loyalty plan',
              keywords => ['loyalty', 'discount'], weight => 3,
              examples => ['I can move you to our loyalty plan'] },
        ],
        weights => { empathy => 2, clarity => 1, resolution => 2,
                     efficiency => 1 },
        target_turns => 5,
        xp_reward => 90,
        pass_mark => 60,
        %over,
    };
    return $doc;
}

1;
