-- wrk script: a non-streaming chat completion of exactly BENCH_BODY_BYTES bytes (default
-- 1024): alternating user/assistant turns of ~2 KB and a last user turn padded to the size,
-- the same bytes as chatBody() in bench/lib.mjs. BENCH_MOCK_TOKENS asks the mock for that
-- many tokens in the answer (x-mock-tokens); BENCH_SESSIONS > 0 sends a random
-- x-session-id out of that many (the key of the consistent_hash policy in the routing runs).
local bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "1024")
local tokens = os.getenv("BENCH_MOCK_TOKENS")
local sessions = tonumber(os.getenv("BENCH_SESSIONS") or "0")

local head = '{"model":"mock-model","messages":['
local tail = ']}'
local text = string.rep("The quick brown fox jumps over the lazy dog. ", 44)
local messages = {}
local size = #head + #tail
local i = 0
while true do
  local role = (i % 2 == 0) and "user" or "assistant"
  local m = '{"role":"' .. role .. '","content":"' .. text .. '"}'
  if size + #m + 1 + 200 > bytes then break end
  messages[#messages + 1] = m
  size = size + #m + 1
  i = i + 1
end
local prefix = '{"role":"user","content":"'
local suffix = '"}'
local fill = math.max(0, bytes - size - #prefix - #suffix)
local filler = string.rep("Hello! How are you today? ", math.ceil(fill / 26) + 1):sub(1, fill)
messages[#messages + 1] = prefix .. filler .. suffix

wrk.method = "POST"
wrk.body = head .. table.concat(messages, ",") .. tail
wrk.headers["Content-Type"] = "application/json"
if tokens then wrk.headers["x-mock-tokens"] = tokens end

if sessions > 0 then
  math.randomseed(os.time())
  request = function()
    wrk.headers["x-session-id"] = "s" .. math.random(sessions)
    return wrk.format()
  end
end
