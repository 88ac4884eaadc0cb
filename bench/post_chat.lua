-- wrk script: a small non-streaming chat completion.
wrk.method = "POST"
wrk.body = '{"model":"mock-model","messages":[{"role":"user","content":"Hello! How are you today?"}]}'
wrk.headers["Content-Type"] = "application/json"
