-- wrk: POST /auth/login with the demo user
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"demo@example.com","password":"demo-password"}'
