-- wrk -t2 -c64 -d5s -s stub/bench-post.lua http://127.0.0.1:PORT/v1/chat/completions
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
wrk.body = '{"model":"gpt-4o-mini","stream":true,"temperature":0.7,' ..
           '"messages":[{"role":"system","content":"You are Dana, an angry ' ..
           'customer.\\nOpening: Where is my parcel?"},' ..
           '{"role":"user","content":"I am sorry, I will refund you today."}]}'

function response(status, headers, body)
    if status ~= 200 or not body:find("data: [DONE]", 1, true) then
        bad = (bad or 0) + 1
        if bad < 3 then print("bad response", status, body:sub(1, 200)) end
    end
end
