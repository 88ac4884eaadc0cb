/* Daily token quota per API key, kept in Redis through Higress's proxy_redis_call.
 *
 * Configuration (JSON):
 *   {"daily_tokens": 100000,        required, > 0
 *    "key_prefix": "quota:",        Redis key prefix (default "token_quota:")
 *    "key_header": "x-user-id",     identify callers by this request header instead of the
 *                                   gateway's API key id (property ai.api_key_id)
 *    "fail_open": true,             when Redis does not answer: let requests through (default)
 *                                   or refuse them with 503
 *    "redis_timeout_ms": 500}       per Redis call (default 1000)
 *
 * On request headers it reads the caller's counter for today (UTC), GET <prefix><key>:<YYYY-MM-DD>,
 * pausing the request until Redis answers, and answers 429 in OpenAI's error format when the
 * counter has reached daily_tokens. In proxy_on_log it adds the tokens the request used
 * (ai.usage.input_tokens + ai.usage.output_tokens) with INCRBY and keeps the key two days
 * (EXPIRE). Requests without a key are not counted. The check is not a reservation: requests
 * running at the same time may together go past the quota by what they use. */
#include "proxy_wasm.h"

static int64_t g_daily_tokens;
static char* g_prefix;
static char* g_key_header;
static int g_fail_open = 1;
static const char g_cluster[] = "sluice-redis";

static pw_ctx_map g_key_by_stream;   /* stream context -> malloc'd Redis key */
static pw_ctx_map g_stream_by_token; /* call token + 1 -> stream context id */

void proxy_abi_version_0_2_100(void) {}

static char* json_string_or(pw_json doc, const char* name, const char* fallback) {
  pw_json v;
  char* s = pw_json_get(doc, name, &v) == 0 ? pw_json_string(v, NULL) : NULL;
  if (!s && fallback) {
    s = (char*)malloc(strlen(fallback) + 1);
    if (s) strcpy(s, fallback);
  }
  return s;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, v;
  int ok = pw_json_parse(text, len, &doc) == 0 && pw_json_get(doc, "daily_tokens", &v) == 0 &&
           pw_json_int(v, &g_daily_tokens) == 0 && g_daily_tokens > 0;
  if (!ok) {
    pw_log(PW_LOG_ERROR, "token_quota: configuration needs {\"daily_tokens\": N} with N > 0");
    free(text);
    return 0;
  }
  free(g_prefix);
  free(g_key_header);
  g_prefix = json_string_or(doc, "key_prefix", "token_quota:");
  g_key_header = json_string_or(doc, "key_header", NULL);
  if (pw_json_get(doc, "fail_open", &v) == 0) {
    g_fail_open = !(v.end - v.p == 5 && strncmp(v.p, "false", 5) == 0);
  }
  int64_t timeout = 1000;
  if (pw_json_get(doc, "redis_timeout_ms", &v) == 0) pw_json_int(v, &timeout);
  free(text);
  if (!g_prefix) return 0;
  if (proxy_redis_init(g_cluster, sizeof g_cluster - 1, "", 0, "", 0,
                       (uint32_t)(timeout > 0 ? timeout : 1000)) != PW_STATUS_OK) {
    pw_log(PW_LOG_WARN, "token_quota: no Redis for plugins (wasm.redis): quotas are not enforced");
  }
  return 1;
}

/* "YYYY-MM-DD" (UTC) of the current day, from the civil-from-days conversion. */
static void today(char out[11]) {
  int64_t days = (int64_t)(pw_now_ns() / 1000000000ull / 86400ull);
  int64_t z = days + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t day = doy - (153 * mp + 2) / 5 + 1;
  int64_t month = mp < 10 ? mp + 3 : mp - 9;
  int64_t year = yoe + era * 400 + (month <= 2);
  out[0] = (char)('0' + year / 1000 % 10);
  out[1] = (char)('0' + year / 100 % 10);
  out[2] = (char)('0' + year / 10 % 10);
  out[3] = (char)('0' + year % 10);
  out[4] = '-';
  out[5] = (char)('0' + month / 10);
  out[6] = (char)('0' + month % 10);
  out[7] = '-';
  out[8] = (char)('0' + day / 10);
  out[9] = (char)('0' + day % 10);
  out[10] = '\0';
}

/* Sends one command; 0 with *token set, or the host's status. */
static pw_status_t redis_call(const char* const* argv, size_t argc, uint32_t* token) {
  pw_buf query = {0};
  pw_redis_query(&query, argv, argc);
  if (query.failed) return PW_STATUS_INTERNAL_FAILURE;
  pw_status_t st = proxy_redis_call(g_cluster, sizeof g_cluster - 1, query.data, query.len, token);
  pw_buf_free(&query);
  return st;
}

/* Redis gave no answer: let the request through or refuse it, as configured. */
static uint32_t redis_unavailable(const char* why) {
  pw_log(PW_LOG_WARN, why);
  if (g_fail_open) return PW_ACTION_CONTINUE;
  pw_send_error(503, "token quota unavailable: the quota store did not answer", "server_error",
                "token_quota_unavailable", NULL, 0);
  return PW_ACTION_PAUSE;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  size_t len = 0;
  char* who = g_key_header ? pw_get_request_header(g_key_header, &len)
                           : pw_get_property("ai.api_key_id", &len);
  if (!who || len == 0) {
    free(who);
    return PW_ACTION_CONTINUE;
  }
  char day[11];
  today(day);
  pw_buf key = {0};
  pw_buf_puts(&key, g_prefix);
  pw_buf_append(&key, who, len);
  pw_buf_puts(&key, ":");
  pw_buf_puts(&key, day);
  free(who);
  if (key.failed || pw_ctx_put(&g_key_by_stream, id, key.data) != 0) {
    pw_buf_free(&key);
    return PW_ACTION_CONTINUE;
  }
  const char* argv[] = {"GET", key.data};
  uint32_t token = 0;
  if (redis_call(argv, 2, &token) != PW_STATUS_OK) {
    return redis_unavailable("token_quota: proxy_redis_call was refused");
  }
  pw_ctx_put(&g_stream_by_token, token + 1, (void*)(uintptr_t)id);
  return PW_ACTION_PAUSE;
}

void proxy_on_redis_call_response(uint32_t root_id, uint32_t token, uint32_t status,
                                  size_t response_size) {
  uint32_t stream = (uint32_t)(uintptr_t)pw_ctx_take(&g_stream_by_token, token + 1);
  if (stream == 0) return;
  proxy_set_effective_context(stream);
  if (status != 0) {
    if (redis_unavailable("token_quota: Redis did not answer") == PW_ACTION_CONTINUE) {
      proxy_continue_stream(PW_STREAM_HTTP_REQUEST);
    }
    return;
  }
  size_t len = 0;
  char* reply = pw_get_buffer(PW_BUFFER_REDIS_CALL_RESPONSE, response_size, &len);
  int64_t used = 0;
  int parsed = reply ? pw_redis_reply_int(reply, len, &used) : -1;
  free(reply);
  if (parsed < 0) {
    if (redis_unavailable("token_quota: unexpected Redis reply") == PW_ACTION_CONTINUE) {
      proxy_continue_stream(PW_STREAM_HTTP_REQUEST);
    }
    return;
  }
  if (parsed == 0 && used >= g_daily_tokens) {
    pw_buf message = {0};
    pw_buf_puts(&message, "daily token quota exceeded: ");
    pw_buf_u64(&message, (uint64_t)used);
    pw_buf_puts(&message, " of ");
    pw_buf_u64(&message, (uint64_t)g_daily_tokens);
    pw_buf_puts(&message, " tokens used today");
    pw_pair extra[] = {pw_pair_of("retry-after", "3600")};
    pw_send_error(429, message.failed ? "daily token quota exceeded" : message.data,
                  "insufficient_quota", "token_quota_exceeded", extra, 1);
    pw_buf_free(&message);
    return;
  }
  proxy_continue_stream(PW_STREAM_HTTP_REQUEST);
}

void proxy_on_log(uint32_t id) {
  const char* key = (const char*)pw_ctx_get(&g_key_by_stream, id);
  if (!key) return;
  uint64_t input = 0, output = 0;
  pw_get_property_u64("ai.usage.input_tokens", &input);
  pw_get_property_u64("ai.usage.output_tokens", &output);
  if (input + output == 0) return;
  pw_buf amount = {0};
  pw_buf_u64(&amount, input + output);
  if (amount.failed) return;
  uint32_t token = 0;
  const char* incr[] = {"INCRBY", key, amount.data};
  const char* expire[] = {"EXPIRE", key, "172800"};
  if (redis_call(incr, 3, &token) != PW_STATUS_OK ||
      redis_call(expire, 3, &token) != PW_STATUS_OK) {
    pw_log(PW_LOG_WARN, "token_quota: the usage could not be charged (no Redis)");
  }
  pw_buf_free(&amount);
}

void proxy_on_delete(uint32_t id) { free(pw_ctx_take(&g_key_by_stream, id)); }
