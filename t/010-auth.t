# The login flow of API.md (Auth): every endpoint's success and errors.
use lib 't/lib';
use Test::Scenario;
use Test::Scenario::Util qw(pg_exec redis_cmd make_token);

our $MainConfig = "thread_pool scenario_hash threads=2 max_queue=64;";

our $HttpConfig = <<"_EOC_";
    scenario_postgres "host=127.0.0.1 port=$ENV{TEST_NGINX_PG_PORT} dbname=scenario user=postgres";
    scenario_redis 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT};
    scenario_login_limit email=3 address=1000 window=1m;
_EOC_

our $Api = <<"_EOC_";
    include $ENV{TEST_NGINX_REPO}/conf/scenario-api.conf;
    location = /whoami {
        scenario_auth_required on;
        return 200 "user=\$scenario_user_id\\n";
    }
    location = /change {
        scenario_auth_required on;
        return 200 "changed\\n";
    }
_EOC_

# A live session for the seeded demo user, made the way login makes them.
our $DemoId = pg_exec("SELECT id FROM users WHERE email = 'demo\@example.com'");
our $Token = make_token($DemoId);
our $Token2 = make_token($DemoId);
our $UserRe = qr/"user":\{"id":$DemoId,"email":"demo\@example.com","display_name":"Demo Trainee","xp":0,"level":1\}/;

# register tests use fresh addresses on every run
our $New = "new" . time() . "-$$\@example.com";

repeat_each(1);
no_shuffle();
plan tests => repeat_each() * 3 * blocks() + 60;
run_tests();

__DATA__

=== TEST 1: login with the seeded demo user
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":"demo@example.com","password":"demo-password"}
--- more_headers
Content-Type: application/json
--- error_code: 200
--- response_headers_like
Set-Cookie: scenario_token=[A-Za-z0-9_-]{43}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax
Content-Type: application/json; charset=utf-8
Cache-Control: no-store
--- response_body_like eval
qr/^\{"token":"[A-Za-z0-9_-]{43}","expires_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",$::UserRe\}$/
--- no_error_log
[error]



=== TEST 2: the email is matched without regard to case
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":"Demo@Example.COM","password":"demo-password"}
--- more_headers
Content-Type: application/json; charset=utf-8
--- error_code: 200
--- response_body_like eval
$::UserRe
--- no_error_log
[error]



=== TEST 3: a wrong password is 401 invalid_credentials
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":"alice@example.com","password":"not-her-password"}
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body
{"error":{"code":"invalid_credentials","message":"the email or the password is wrong"}}
--- response_headers
!Set-Cookie
--- no_error_log
[error]



=== TEST 4: an unknown email gets the very same answer
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":"nobody@example.com","password":"whatever-password"}
--- more_headers
Content-Type: application/json
--- error_code: 401
--- response_body
{"error":{"code":"invalid_credentials","message":"the email or the password is wrong"}}
--- no_error_log
[error]



=== TEST 5: malformed JSON is 400 bad_request
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":"demo@example.com",
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body_like
^\{"error":\{"code":"bad_request","message":"invalid JSON: [^"]+"\}\}$
--- no_error_log
[error]



=== TEST 6: wrong types are 400 bad_request
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
{"email":["demo@example.com"],"password":12345678}
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body
{"error":{"code":"bad_request","message":"\"email\" and \"password\" must be strings (email up to 254 characters, password up to 1024 bytes)"}}
--- no_error_log
[error]



=== TEST 7: invalid UTF-8 inside a string is 400 bad_request
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
"POST /auth/login\n{\"email\":\"demo\@example.com\",\"password\":\"\xc3\x28abcdefgh\"}"
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body_like
^\{"error":\{"code":"bad_request","message":"invalid JSON: .*UTF-8.*"\}\}$
--- no_error_log
[error]



=== TEST 8: a body that is not an object is 400
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
["demo@example.com","demo-password"]
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_body
{"error":{"code":"bad_request","message":"the body must be a JSON object"}}
--- no_error_log
[error]



=== TEST 9: no JSON Content-Type is 415
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
POST /auth/login
email=demo@example.com&password=demo-password
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_body
{"error":{"code":"unsupported_media_type","message":"Content-Type must be application/json"}}
--- no_error_log
[error]



=== TEST 10: a body over scenario_max_body is 413
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
"POST /auth/login\n{\"email\":\"demo\@example.com\",\"password\":\"" . ("x" x 20000) . "\"}"
--- more_headers
Content-Type: application/json
--- error_code: 413
--- response_body
{"error":{"code":"too_large","message":"request body is too large"}}
--- no_error_log
[error]



=== TEST 11: login only takes POST
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /auth/login
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
{"error":{"code":"method_not_allowed","message":"this method is not allowed here"}}
--- no_error_log
[error]



=== TEST 12: register, then the same email again is 409 email_taken
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
[
"POST /auth/register\n{\"email\":\"$::New\",\"password\":\"correct horse battery\",\"display_name\":\"Zoë Trainee\"}",
"POST /auth/register\n{\"email\":\"" . uc($::New) . "\",\"password\":\"another good one\",\"display_name\":\"Copy\"}",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[201, 409]
--- response_body_like eval
[
qr/^\{"token":"[A-Za-z0-9_-]{43}","expires_at":"[^"]+Z","user":\{"id":\d+,"email":"\Q$::New\E","display_name":"Zoë Trainee","xp":0,"level":1\}\}$/,
qr/^\{"error":\{"code":"email_taken","message":"an account with this email already exists"\}\}$/,
]
--- no_error_log
[error]



=== TEST 13: a weak password is 400 weak_password
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
[
"POST /auth/register\n{\"email\":\"weak1\@example.com\",\"password\":\"short\",\"display_name\":\"W\"}",
"POST /auth/register\n{\"email\":\"weak2\@example.com\",\"password\":\"Password1\",\"display_name\":\"W\"}",
"POST /auth/register\n{\"email\":\"weak3\@example.com\",\"password\":\"weak3\@example.com\",\"display_name\":\"W\"}",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400, 400]
--- response_body eval
[
"{\"error\":{\"code\":\"weak_password\",\"message\":\"the password must have at least 8 characters\"}}\n",
"{\"error\":{\"code\":\"weak_password\",\"message\":\"the password is too common\"}}\n",
"{\"error\":{\"code\":\"weak_password\",\"message\":\"the password must not be the email address\"}}\n",
]
--- no_error_log
[error]



=== TEST 14: register needs a display_name and a real email
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
[
"POST /auth/register\n{\"email\":\"x\@example.com\",\"password\":\"long enough pw\"}",
"POST /auth/register\n{\"email\":\"no-at-sign\",\"password\":\"long enough pw\",\"display_name\":\"X\"}",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 400]
--- response_body eval
[
"{\"error\":{\"code\":\"bad_request\",\"message\":\"\\\"display_name\\\" must be a string of 1 to 64 characters\"}}\n",
"{\"error\":{\"code\":\"bad_request\",\"message\":\"\\\"email\\\" is not an email address\"}}\n",
]
--- no_error_log
[error]



=== TEST 15: registration can be switched off
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig . "scenario_register off;"
--- config eval: $::Api
--- request
POST /auth/register
{"email":"closed@example.com","password":"long enough pw","display_name":"C"}
--- more_headers
Content-Type: application/json
--- error_code: 403
--- response_body
{"error":{"code":"forbidden","message":"registration is disabled"}}
--- no_error_log
[error]



=== TEST 16: /auth/me with a bearer token
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /auth/me
--- more_headers eval
"Authorization: Bearer $::Token"
--- error_code: 200
--- response_body_like eval
qr/^\{"id":$::DemoId,"email":"demo\@example.com","display_name":"Demo Trainee","xp":0,"level":1,"created_at":"[^"]+","role":"trainee","org_id":1\}$/
--- no_error_log
[error]



=== TEST 17: /auth/me with the session cookie
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /auth/me
--- more_headers eval
"Cookie: theme=dark; scenario_token=$::Token"
--- error_code: 200
--- response_body_like eval
qr/^\{"id":$::DemoId,"email":"demo\@example.com"/
--- no_error_log
[error]



=== TEST 18: /auth/me without a token is 401 with WWW-Authenticate
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /auth/me
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_body
{"error":{"code":"unauthorized","message":"authentication is required"}}
--- no_error_log
[error]



=== TEST 19: a malformed or unknown token is 401
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["GET /auth/me", "GET /auth/me", "GET /auth/me"]
--- more_headers eval
[
"Authorization: Bearer short",
"Authorization: Basic ZGVtbzpkZW1v",
"Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
]
--- error_code eval
[401, 401, 401]
--- response_body eval
[
"{\"error\":{\"code\":\"unauthorized\",\"message\":\"malformed token\"}}\n",
"{\"error\":{\"code\":\"unauthorized\",\"message\":\"malformed token\"}}\n",
"{\"error\":{\"code\":\"unauthorized\",\"message\":\"the session has expired or was ended, log in again\"}}\n",
]
--- no_error_log
[error]



=== TEST 20: the access check protects any location and sets $scenario_user_id
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["GET /whoami", "GET /whoami"]
--- more_headers eval
["Authorization: Bearer $::Token", ""]
--- error_code eval
[200, 401]
--- response_body eval
["user=$::DemoId\n", "{\"error\":{\"code\":\"unauthorized\",\"message\":\"authentication is required\"}}\n"]
--- no_error_log
[error]



=== TEST 21: a cookie-authenticated change needs our Origin
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["POST /change", "POST /change", "POST /change", "POST /change"]
--- more_headers eval
[
"Cookie: scenario_token=$::Token",
"Cookie: scenario_token=$::Token\nOrigin: https://evil.example",
"Cookie: scenario_token=$::Token\nOrigin: http://localhost",
"Authorization: Bearer $::Token",
]
--- error_code eval
[403, 403, 200, 200]
--- response_body eval
[
"{\"error\":{\"code\":\"forbidden\",\"message\":\"the request's Origin is not allowed\"}}\n",
"{\"error\":{\"code\":\"forbidden\",\"message\":\"the request's Origin is not allowed\"}}\n",
"changed\n",
"changed\n",
]
--- no_error_log
[error]



=== TEST 22: scenario_allowed_origin admits another origin
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig . "scenario_allowed_origin https://app.example.com;"
--- config eval: $::Api
--- request
POST /change
--- more_headers eval
"Cookie: scenario_token=$::Token\nOrigin: https://app.example.com"
--- error_code: 200
--- response_body
changed
--- no_error_log
[error]



=== TEST 23: logout kills the token at once and clears the cookie
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["POST /auth/logout", "GET /auth/me"]
--- more_headers eval
["Authorization: Bearer $::Token2", "Authorization: Bearer $::Token2"]
--- error_code eval
[204, 401]
--- response_headers eval
["Set-Cookie: scenario_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax", ""]
--- response_body eval
["", "{\"error\":{\"code\":\"unauthorized\",\"message\":\"the session has expired or was ended, log in again\"}}\n"]
--- no_error_log
[error]



=== TEST 24: logout by cookie needs our Origin; without a token it is 401
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request eval
["POST /auth/logout", "POST /auth/logout"]
--- more_headers eval
["Cookie: scenario_token=$::Token\nOrigin: https://evil.example", ""]
--- error_code eval
[403, 401]
--- response_body eval
[
"{\"error\":{\"code\":\"forbidden\",\"message\":\"the request's Origin is not allowed\"}}\n",
"{\"error\":{\"code\":\"unauthorized\",\"message\":\"authentication is required\"}}\n",
]
--- no_error_log
[error]



=== TEST 25: repeated failures for one email are 429 with Retry-After
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- init
Test::Scenario::Util::redis_cmd("eval", "for _, k in ipairs(redis.call('keys', 'rl:*')) do redis.call('del', k) end return 1", "0");
--- request eval
[
"POST /auth/login\n{\"email\":\"alice\@example.com\",\"password\":\"guess-1-wrong\"}",
"POST /auth/login\n{\"email\":\"alice\@example.com\",\"password\":\"guess-2-wrong\"}",
"POST /auth/login\n{\"email\":\"ALICE\@example.com\",\"password\":\"guess-3-wrong\"}",
"POST /auth/login\n{\"email\":\"alice\@example.com\",\"password\":\"alice-password\"}",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[401, 401, 401, 429]
--- response_headers_like eval
["", "", "", "Retry-After: (?:[1-5]?[0-9]|60)"]
--- response_body_like eval
[qr/invalid_credentials/, qr/invalid_credentials/, qr/invalid_credentials/,
 qr/^\{"error":\{"code":"rate_limited","message":"too many failed logins, try again later"\}\}$/]
--- no_error_log
[error]



=== TEST 26: repeated failures from one address are 429 too
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig =~ s/address=1000/address=2/r
--- config eval: $::Api
--- init
Test::Scenario::Util::redis_cmd("del", "rl:login:a:127.0.0.1");
--- request eval
[
"POST /auth/login\n{\"email\":\"a1\@example.com\",\"password\":\"guess-wrong\"}",
"POST /auth/login\n{\"email\":\"a2\@example.com\",\"password\":\"guess-wrong\"}",
"POST /auth/login\n{\"email\":\"demo\@example.com\",\"password\":\"demo-password\"}",
]
--- more_headers
Content-Type: application/json
--- error_code eval
[401, 401, 429]
--- response_body_like eval
[qr/invalid_credentials/, qr/invalid_credentials/, qr/rate_limited/]
--- no_error_log
[error]



=== TEST 27: healthz reports both backends
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- init
Test::Scenario::Util::redis_cmd("del", "rl:login:a:127.0.0.1");
--- request
GET /healthz
--- error_code: 200
--- response_body
{"postgres":"ok","redis":"ok"}
--- no_error_log
[error]



=== TEST 28: metrics in Prometheus text format
--- main_config eval: $::MainConfig
--- http_config eval: $::HttpConfig
--- config eval: $::Api
--- request
GET /metrics
--- error_code: 200
--- response_headers_like
Content-Type: text/plain; version=0\.0\.4; charset=utf-8
--- response_body_like
(?s)^# HELP scenario_requests_total [^\n]+\n# TYPE scenario_requests_total counter\nscenario_requests_total \d+\n.*# TYPE scenario_logins_total counter\n.*scenario_logins_total\{result="failed"\} \d+\n.*scenario_pool_connections\{pool="postgres",state="configured",pid="\d+"\} 4
--- no_error_log
[error]
