# Scenarios and sessions of API.md: listing, starting, reading, and the
# owner check (another user's session is 404, never revealed).
use lib 't/lib';
use Test::Scenario;
use Test::Scenario::Util qw(pg_exec make_token);

our $MainConfig = "thread_pool scenario_hash threads=2 max_queue=64;";
our $HttpConfig = <<"_EOC_";
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
_EOC_
our $Api = "include $ENV{TEST_NGINX_REPO}/conf/scenario-api.conf;";

# a user of its own, with two sessions and a short transcript
our $Uid = pg_exec(q{INSERT INTO users (email, password_hash, display_name)
    VALUES ('sessions-' || :'v1' || '@example.com', 'x', 'Sessions Tester')
    RETURNING id}, time() . "-$$");
our $Token = make_token($Uid);
our $Refund = pg_exec("SELECT id FROM scenarios WHERE slug = 'refund-angry-customer'");
our $Patient = pg_exec("SELECT id FROM scenarios WHERE slug = 'nervous-patient'");
our $Old = pg_exec(q{INSERT INTO sessions (user_id, scenario_id, created_at)
    VALUES (:'v1', :'v2', now() - interval '1 hour') RETURNING id}, $Uid, $Refund);
our $New = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $Uid, $Patient);
pg_exec(q{INSERT INTO messages (session_id, seq, role, content, client_msg_id)
    VALUES (:'v1', 1, 'assistant', 'Where is my refund?', NULL),
           (:'v1', 2, 'user', 'I am sorry, let me check.', 'c-1')}, $Old);

our $Alice = pg_exec("SELECT id FROM users WHERE email = 'alice\@example.com'");
our $Foreign = pg_exec(q{INSERT INTO sessions (user_id, scenario_id)
    VALUES (:'v1', :'v2') RETURNING id}, $Alice, $Refund);

our $Auth = "Authorization: Bearer $Token";
our $T = qr/"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"/;

repeat_each(1);
no_shuffle();
plan tests => repeat_each() * 3 * blocks() + 15;
run_tests();

__DATA__

=== TEST 1: the scenario library, with the caller's progress
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /scenarios
--- more_headers eval: $::Auth
--- error_code: 200
--- response_body_like eval
qr/^\[\{"id":\d+,"slug":"[a-z-]+","title":"[^"]+","description":"[^"]+","difficulty":"(?:easy|medium|hard)","persona":\{"name":"[^"]+","role":"[^"]+"\},"xp_reward":\d+,"completed":false,"best_score":null\}(?:,\{[^\]]+\}){5}\]$/
--- no_error_log
[error]



=== TEST 2: start a session
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
"POST /sessions\n{\"scenario_id\":$::Refund}"
--- more_headers eval
"$::Auth\nContent-Type: application/json"
--- error_code: 201
--- response_body_like eval
qr/^\{"id":\d+,"scenario_id":$::Refund,"status":"active","created_at":$::T\}$/
--- no_error_log
[error]



=== TEST 3: an unknown scenario is 404, a wrong type 400
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["POST /sessions\n{\"scenario_id\":999999}", "POST /sessions\n{\"scenario_id\":\"1\"}", "POST /sessions\n{}"]
--- more_headers eval
["$::Auth\nContent-Type: application/json", "$::Auth\nContent-Type: application/json", "$::Auth\nContent-Type: application/json"]
--- error_code eval
[404, 400, 400]
--- response_body eval
[
"{\"error\":{\"code\":\"not_found\",\"message\":\"no such scenario\"}}\n",
"{\"error\":{\"code\":\"bad_request\",\"message\":\"\\\"scenario_id\\\" must be a positive integer\"}}\n",
"{\"error\":{\"code\":\"bad_request\",\"message\":\"\\\"scenario_id\\\" must be a positive integer\"}}\n",
]
--- no_error_log
[error]



=== TEST 4: the caller's sessions, newest first
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /sessions
--- more_headers eval: $::Auth
--- error_code: 200
--- response_body_like eval
qr/^\[\{"id":\d+,"scenario_id":$::Refund,.*"status":"active".*\},\{"id":$::New,"scenario_id":$::Patient,"scenario":\{"id":$::Patient,"slug":"nervous-patient","title":"[^"]+","difficulty":"medium"\},"status":"active","created_at":$::T,"resolved_at":null,"overall":null\},\{"id":$::Old,.*\}\]$/
--- response_body_unlike eval
qr/"id":$::Foreign,/
--- no_error_log
[error]



=== TEST 5: one session with its transcript
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
"GET /sessions/$::Old"
--- more_headers eval: $::Auth
--- error_code: 200
--- response_body_like eval
qr/^\{"id":$::Old,"scenario":\{"id":$::Refund,"slug":"refund-angry-customer",.*"persona":\{"name":"[^"]+","role":"[^"]+"\},"xp_reward":\d+\},"status":"active","created_at":$::T,"resolved_at":null,"messages":\[\{"seq":1,"role":"assistant","content":"Where is my refund\?","created_at":$::T\},\{"seq":2,"role":"user","content":"I am sorry, let me check\.","created_at":$::T\}\],"performance":null\}$/
--- no_error_log
[error]



=== TEST 6: another user's session does not exist for the caller
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["GET /sessions/$::Foreign", "GET /sessions/987654321"]
--- more_headers eval
[$::Auth, $::Auth]
--- error_code eval
[404, 404]
--- response_body eval
["{\"error\":{\"code\":\"not_found\",\"message\":\"no such session\"}}\n", "{\"error\":{\"code\":\"not_found\",\"message\":\"no such session\"}}\n"]
--- no_error_log
[error]



=== TEST 7: sessions need a login
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["GET /scenarios", "GET /sessions", "GET /sessions/1"]
--- error_code eval
[401, 401, 401]
--- response_body eval
["{\"error\":{\"code\":\"unauthorized\",\"message\":\"authentication is required\"}}\n", "{\"error\":{\"code\":\"unauthorized\",\"message\":\"authentication is required\"}}\n", "{\"error\":{\"code\":\"unauthorized\",\"message\":\"authentication is required\"}}\n"]
--- no_error_log
[error]
