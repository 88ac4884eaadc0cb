/* API-key authentication. A request passes when it carries one of the configured keys, as
 * "authorization: Bearer <key>" or "x-api-key: <key>"; otherwise it is answered with a 401 in the
 * OpenAI error shape. Configuration: {"keys": ["k1", "k2"]}.
 *
 * The host hides credential headers from plugins unless the module is granted
 * expose_credentials: true; without it every request looks unauthenticated. */
#include "proxy_wasm.h"

typedef struct {
  char* data;
  size_t len;
} api_key;

static api_key* g_keys;
static size_t g_num_keys;
static int g_warned_no_credentials;

static void free_keys(api_key* keys, size_t n) {
  for (size_t i = 0; i < n; i++) free(keys[i].data);
  free(keys);
}

/* Parses {"keys": [...]} into a new key list; returns its size, or 0 with a logged reason. */
static size_t parse_keys(const char* text, size_t len, api_key** out) {
  pw_json doc, list, elem;
  if (pw_json_parse(text, len, &doc) != 0) {
    pw_log(PW_LOG_ERROR, "auth: configuration is not valid JSON; expected {\"keys\": [...]}");
    return 0;
  }
  if (pw_json_get(doc, "keys", &list) != 0) {
    pw_log(PW_LOG_ERROR, "auth: configuration has no \"keys\" list");
    return 0;
  }
  size_t n = 0, cap = 0;
  api_key* keys = NULL;
  pw_json it = list;
  int rc;
  while ((rc = pw_json_next(&it, &elem)) == 1) {
    size_t key_len = 0;
    char* key = pw_json_string(elem, &key_len);
    if (!key || key_len == 0) {
      free(key);
      pw_log(PW_LOG_ERROR, "auth: \"keys\" must hold non-empty strings");
      free_keys(keys, n);
      return 0;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      api_key* grown = (api_key*)realloc(keys, cap * sizeof(api_key));
      if (!grown) {
        free(key);
        free_keys(keys, n);
        return 0;
      }
      keys = grown;
    }
    keys[n].data = key;
    keys[n].len = key_len;
    n++;
  }
  if (rc < 0 || n == 0) {
    pw_log(PW_LOG_ERROR, rc < 0 ? "auth: \"keys\" must be a list of strings"
                                : "auth: \"keys\" is empty; every request would be refused");
    free_keys(keys, n);
    return 0;
  }
  *out = keys;
  return n;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  api_key* keys = NULL;
  size_t n = parse_keys(text, len, &keys);
  free(text);
  if (n == 0) return 0;
  free_keys(g_keys, g_num_keys);
  g_keys = keys;
  g_num_keys = n;
  pw_buf msg = {0};
  pw_buf_puts(&msg, "auth: ");
  pw_buf_u64(&msg, n);
  pw_buf_puts(&msg, n == 1 ? " key loaded" : " keys loaded");
  if (!msg.failed) pw_log(PW_LOG_INFO, msg.data);
  pw_buf_free(&msg);
  return 1;
}

/* Compares without an early exit, so timing tells nothing about how much of a key matched. */
static int same_key(const char* a, size_t a_len, const api_key* key) {
  if (a_len != key->len) return 0;
  unsigned char diff = 0;
  for (size_t i = 0; i < a_len; i++) diff |= (unsigned char)(a[i] ^ key->data[i]);
  return diff == 0;
}

static int known_key(const char* k, size_t len) {
  int found = 0;
  for (size_t i = 0; i < g_num_keys; i++) found |= same_key(k, len, &g_keys[i]);
  return found;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

/* Returns 1 when the request presents a configured key; sets *seen when it presents any. */
static int authorized(int* seen) {
  int ok = 0;
  size_t len = 0;
  char* auth = pw_get_request_header("authorization", &len);
  if (auth) {
    *seen = 1;
    const char* p = auth;
    const char* end = auth + len;
    while (p < end && is_space(*p)) p++;
    static const char bearer[] = "bearer";
    size_t i = 0;
    while (i < 6 && p + i < end && (p[i] | 0x20) == bearer[i]) i++;
    if (i == 6 && p + 6 < end && is_space(p[6])) {
      p += 7;
      while (p < end && is_space(*p)) p++;
      while (end > p && is_space(end[-1])) end--;
      ok = known_key(p, (size_t)(end - p));
    }
    free(auth);
  }
  if (!ok) {
    char* key = pw_get_request_header("x-api-key", &len);
    if (key) {
      *seen = 1;
      ok = known_key(key, len);
      free(key);
    }
  }
  return ok;
}

uint32_t proxy_on_request_headers(uint32_t id, size_t num_headers, uint32_t end_of_stream) {
  int seen = 0;
  if (authorized(&seen)) return PW_ACTION_CONTINUE;
  if (!seen && !g_warned_no_credentials) {
    g_warned_no_credentials = 1;
    pw_log(PW_LOG_WARN,
           "auth: request without credentials; if clients send keys, grant this plugin "
           "expose_credentials: true");
  }
  pw_pair extra[] = {pw_pair_of("www-authenticate", "Bearer")};
  pw_send_error(401, "invalid API key", "invalid_request_error", "invalid_api_key", extra, 1);
  return PW_ACTION_PAUSE;
}
