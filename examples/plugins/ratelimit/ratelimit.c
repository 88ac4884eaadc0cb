/* Request rate limit per client key, per minute, shared by every worker thread.
 * Configuration: {"requests_per_minute": 60, "header": "x-api-key", "scope": "default"}
 *   header: the request header whose value identifies the client ("authorization" drops its
 *           "Bearer " prefix); requests without it share one anonymous bucket.
 *   scope:  separates the counters of several ratelimit plugins (optional).
 * Each client has one shared-data entry "<window> <count>" (fixed one-minute windows), updated
 * with compare-and-swap so that concurrent workers never lose a count once the entry exists.
 * Over the limit: 429 with retry-after (seconds to the end of the window) and an OpenAI-style
 * error body. */
#include "proxy_wasm.h"

static int64_t g_limit;
static uint32_t g_rejected_metric; /* requests refused with 429 (0: not defined) */
static char* g_header;
static char* g_scope;

static char* config_string(pw_json doc, const char* key, const char* fallback) {
  pw_json v;
  if (pw_json_get(doc, key, &v) != 0) return strdup(fallback);
  size_t len = 0;
  char* s = pw_json_string(v, &len);
  if (s && len == 0) {
    free(s);
    return NULL;
  }
  return s;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, v;
  int64_t limit = 0;
  int ok = pw_json_parse(text, len, &doc) == 0;
  if (!ok) {
    pw_log(PW_LOG_ERROR, "ratelimit: configuration is not valid JSON");
  } else if (pw_json_get(doc, "requests_per_minute", &v) != 0 || pw_json_int(v, &limit) != 0 ||
             limit <= 0) {
    pw_log(PW_LOG_ERROR, "ratelimit: \"requests_per_minute\" must be a positive integer");
    ok = 0;
  }
  char* header = ok ? config_string(doc, "header", "x-api-key") : NULL;
  char* scope = ok ? config_string(doc, "scope", "default") : NULL;
  free(text);
  if (ok && (!header || !scope)) {
    pw_log(PW_LOG_ERROR, "ratelimit: \"header\" and \"scope\" must be non-empty strings");
    ok = 0;
  }
  if (!ok) {
    free(header);
    free(scope);
    return 0;
  }
  /* Header names are compared in lower case by the host. */
  for (char* p = header; *p; p++) {
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
  }
  free(g_header);
  free(g_scope);
  g_limit = limit;
  static const char kMetric[] = "ratelimit_rejected_total";
  if (proxy_define_metric(PW_METRIC_COUNTER, kMetric, sizeof kMetric - 1, &g_rejected_metric) !=
      PW_STATUS_OK) {
    g_rejected_metric = 0;
  }
  g_header = header;
  g_scope = scope;
  return 1;
}

/* FNV-1a, so that shared data holds a digest of the client key rather than the key itself. */
static uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
  return h;
}

/* Builds the shared-data key of the client that sent this request. */
static int bucket_key(pw_buf* key) {
  size_t len = 0;
  char* value = pw_get_request_header(g_header, &len);
  const char* id = value ? value : "";
  if (value && strcmp(g_header, "authorization") == 0 && len > 7 &&
      (memcmp(value, "Bearer ", 7) == 0 || memcmp(value, "bearer ", 7) == 0)) {
    id += 7;
    len -= 7;
  }
  static const char hex[] = "0123456789abcdef";
  char digest[17];
  uint64_t h = fnv1a(id, value ? len : 0);
  for (int i = 15; i >= 0; i--, h >>= 4) digest[i] = hex[h & 15];
  digest[16] = '\0';
  pw_buf_puts(key, "sluice.ratelimit/");
  pw_buf_puts(key, g_scope);
  pw_buf_puts(key, "/");
  pw_buf_puts(key, g_header);
  pw_buf_puts(key, "/");
  pw_buf_puts(key, value ? digest : "anonymous");
  free(value);
  return key->failed ? -1 : 0;
}

/* Parses "<window> <count>"; anything else counts as an empty bucket. */
static void parse_entry(const char* s, uint64_t* window, uint64_t* count) {
  uint64_t w = 0, c = 0;
  const char* p = s;
  while (*p >= '0' && *p <= '9') w = w * 10 + (uint64_t)(*p++ - '0');
  if (p == s || *p++ != ' ') return;
  const char* digits = p;
  while (*p >= '0' && *p <= '9') c = c * 10 + (uint64_t)(*p++ - '0');
  if (p == digits || *p != '\0') return;
  *window = w;
  *count = c;
}

/* Counts this request; returns 1 when it is within the limit. */
static int admit(const char* key, uint64_t window) {
  for (int attempt = 0; attempt < 32; attempt++) {
    char* value = NULL;
    uint32_t cas = 0;
    uint64_t stored_window = 0, count = 0;
    pw_status_t st = pw_get_shared(key, &value, NULL, &cas);
    if (st == PW_STATUS_OK) {
      parse_entry(value, &stored_window, &count);
      free(value);
    } else if (st != PW_STATUS_NOT_FOUND) {
      pw_log(PW_LOG_WARN, "ratelimit: shared data unavailable; request let through");
      return 1;
    }
    if (stored_window != window) count = 0;
    if (count >= (uint64_t)g_limit) return 0;
    pw_buf entry = {0};
    pw_buf_u64(&entry, window);
    pw_buf_puts(&entry, " ");
    pw_buf_u64(&entry, count + 1);
    if (entry.failed) return 1;
    /* A missing entry has no CAS token: cas 0 writes unconditionally (a first-write race can
     * lose one count; the ABI offers no create-if-absent). */
    st = pw_set_shared(key, entry.data, entry.len, st == PW_STATUS_OK ? cas : 0);
    pw_buf_free(&entry);
    if (st == PW_STATUS_OK) return 1;
    if (st != PW_STATUS_CAS_MISMATCH) break;
  }
  pw_log(PW_LOG_WARN, "ratelimit: could not update the counter; request let through");
  return 1;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  if (g_limit <= 0) return PW_ACTION_CONTINUE; /* not configured */
  uint64_t now_s = pw_now_ns() / 1000000000ull;
  uint64_t window = now_s / 60;
  pw_buf key = {0};
  int allowed = bucket_key(&key) != 0 || admit(key.data, window);
  pw_buf_free(&key);
  if (allowed) return PW_ACTION_CONTINUE;

  pw_buf retry = {0}, limit = {0}, reset = {0}, message = {0};
  uint64_t retry_after = 60 - now_s % 60;
  pw_buf_u64(&retry, retry_after);
  pw_buf_u64(&limit, (uint64_t)g_limit);
  pw_buf_u64(&reset, retry_after);
  pw_buf_puts(&reset, "s");
  pw_buf_puts(&message, "Rate limit reached: ");
  pw_buf_u64(&message, (uint64_t)g_limit);
  pw_buf_puts(&message, " requests per minute. Retry after ");
  pw_buf_u64(&message, retry_after);
  pw_buf_puts(&message, retry_after == 1 ? " second." : " seconds.");
  if (g_rejected_metric) proxy_increment_metric(g_rejected_metric, 1);
  if (!retry.failed && !limit.failed && !reset.failed && !message.failed) {
    pw_pair headers[] = {
        pw_pair_of("retry-after", retry.data),
        pw_pair_of("x-ratelimit-limit-requests", limit.data),
        pw_pair_of("x-ratelimit-remaining-requests", "0"),
        pw_pair_of("x-ratelimit-reset-requests", reset.data),
    };
    pw_send_error(429, message.data, "rate_limit_error", "rate_limit_exceeded", headers, 4);
  } else {
    pw_send_error(429, "Rate limit reached.", "rate_limit_error", "rate_limit_exceeded", NULL, 0);
  }
  pw_buf_free(&retry);
  pw_buf_free(&limit);
  pw_buf_free(&reset);
  pw_buf_free(&message);
  return PW_ACTION_PAUSE;
}
