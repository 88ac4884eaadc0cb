/* Prompt guard: answers 400 to a request whose prompt contains a denied phrase.
 * Configuration: {"deny": ["ignore previous instructions", ...], "case_insensitive": true}.
 *
 * What is read: every string value under the body's top-level "messages" (each message on its
 * own: string content, content parts, tool results, names...), "system" (Anthropic) and
 * "prompt" (completions), every occurrence of those keys (a duplicated key is no hiding place)
 * and keys written with escapes. Strings are decoded (\n, \u0041, surrogate pairs) before
 * matching, and the text and the phrases are normalised the same way: whitespace runs become one
 * space, zero-width characters and soft hyphens are dropped, ASCII letters are folded when
 * case_insensitive (the default). The strings of one message are joined by a space, so a phrase
 * split across content parts is still found; the values of "type" and "role" are checked apart
 * from that text. A body that is not valid JSON is refused too.
 *
 * The answer is in the client's dialect: OpenAI's
 * {"error":{"message","type":"invalid_request_error","param":null,"code":"prompt_rejected"}},
 * or Anthropic's {"type":"error","error":{"type":"invalid_request_error","message"}} on
 * /v1/messages. Matching is linear in the text (KMP per phrase). */
#include "proxy_wasm.h"

#define MAX_PHRASES 256
#define MAX_PHRASE_BYTES 1024
#define MAX_DEPTH 64
/* Keys of interest are short; longer keys are skipped without being decoded in full. */
#define MAX_KEY_BYTES 16

typedef struct {
  char* text; /* normalised */
  size_t len;
  uint32_t* next; /* KMP failure function */
} phrase;

static phrase* g_phrases;
static size_t g_num_phrases;
static int g_case_insensitive = 1;

/* ---------------------------------------------------------------------------------------------
 * Normalisation: code points in, comparable bytes out
 * ------------------------------------------------------------------------------------------- */

typedef struct {
  pw_buf out;
  int ci;
  int pending_space; /* a space is due before the next visible character */
} normaliser;

static int is_space_cp(uint32_t cp) {
  return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

/* Characters that render as nothing: zero-width space/joiners, word joiner, BOM, soft hyphen. */
static int is_invisible_cp(uint32_t cp) {
  return cp == 0xAD || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF;
}

static void norm_cp(normaliser* n, uint32_t cp) {
  if (is_invisible_cp(cp)) return;
  if (is_space_cp(cp)) {
    n->pending_space = n->out.len > 0;
    return;
  }
  if (n->pending_space) {
    pw_buf_append(&n->out, " ", 1);
    n->pending_space = 0;
  }
  if (n->ci && cp >= 'A' && cp <= 'Z') cp += 'a' - 'A';
  pw_buf* b = &n->out;
  if (cp < 0x80 && b->len + 1 < b->cap) {
    b->data[b->len++] = (char)cp; /* the common case, without a call */
    b->data[b->len] = '\0';
  } else {
    pw_buf_utf8(b, cp);
  }
}

/* Ends one string: what follows is a separate word. */
static void norm_break(normaliser* n) { n->pending_space = n->out.len > 0; }

/* Ends one string for good: '\n' never occurs in normalised text or phrases, so no match spans
 * it. */
static void norm_hard_break(normaliser* n) {
  if (n->out.len > 0) pw_buf_append(&n->out, "\n", 1);
  n->pending_space = 0;
}

/* Decodes one UTF-8 sequence at p (p < end); invalid or overlong input gives U+FFFD and
 * advances one byte, so no byte sequence decodes to a character it does not encode. */
static const char* utf8_next(const char* p, const char* end, uint32_t* cp) {
  const unsigned char* s = (const unsigned char*)p;
  size_t left = (size_t)(end - p);
  unsigned char c = s[0];
  uint32_t v;
  size_t n;
  if (c < 0x80) {
    *cp = c;
    return p + 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    v = c & 0x1F;
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    v = c & 0x0F;
    n = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    v = c & 0x07;
    n = 4;
  } else {
    *cp = 0xFFFD;
    return p + 1;
  }
  if (left < n) {
    *cp = 0xFFFD;
    return p + 1;
  }
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) {
      *cp = 0xFFFD;
      return p + 1;
    }
    v = v << 6 | (s[i] & 0x3F);
  }
  if ((n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
      (n == 4 && (v < 0x10000 || v > 0x10FFFF))) {
    *cp = 0xFFFD;
    return p + 1;
  }
  *cp = v;
  return p + n;
}

/* ---------------------------------------------------------------------------------------------
 * JSON: a strict walk that feeds string values to a normaliser
 * ------------------------------------------------------------------------------------------- */

/* Decodes the string literal at p (*p == '"') into `n` (NULL: only check it); returns the byte
 * after the closing quote, or NULL when it is malformed. A lone surrogate escape decodes to
 * U+FFFD, as lenient parsers do, rather than failing. */
static const char* decode_string(const char* p, const char* end, normaliser* n) {
  if (p >= end || *p != '"') return NULL;
  p++;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    uint32_t cp;
    if (c != '\\') {
      p = utf8_next(p, end, &cp);
      if (n) norm_cp(n, cp);
      continue;
    }
    if (end - p < 2) return NULL;
    char e = p[1];
    p += 2;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        cp = (uint32_t)e;
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u': {
        if (pw_json_hex4(p, end, &cp) != 0) return NULL;
        p += 4;
        uint32_t low = 0;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            pw_json_hex4(p + 2, end, &low) == 0 && low >= 0xDC00 && low <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          p += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
          cp = 0xFFFD;
        }
        break;
      }
      default:
        return NULL;
    }
    if (n) norm_cp(n, cp);
  }
  return NULL;
}

/* Decodes an object key into `key` (at most MAX_KEY_BYTES, else *len = MAX_KEY_BYTES + 1);
 * returns the byte after it or NULL. */
static const char* read_key(const char* p, const char* end, char* key, size_t* len) {
  normaliser n = {{0}, 0, 0};
  const char* after = decode_string(p, end, &n);
  *len = n.out.len;
  if (after && !n.out.failed && n.out.len <= MAX_KEY_BYTES) {
    memcpy(key, n.out.data ? n.out.data : "", n.out.len);
  } else if (after) {
    *len = MAX_KEY_BYTES + 1;
  }
  pw_buf_free(&n.out);
  return after;
}

/* Where the strings of one message go. Prose is joined with spaces, so that a phrase split over
 * content parts is found; the values of "type" and "role" are tags that sit between parts
 * ("text", "user"), kept apart so that they do not break such a phrase, and checked too. */
typedef struct {
  normaliser text;
  normaliser tags;
} sink;

static int is_tag_key(const char* key, size_t len) {
  return (len == 4 && memcmp(key, "type", 4) == 0) || (len == 4 && memcmp(key, "role", 4) == 0);
}

/* Walks the value at p; every string value inside (object keys excluded) goes to `s` (NULL:
 * only check), to its tags when `tag`. Returns the byte after the value, or NULL when it is
 * malformed or too deep. */
static const char* walk_value(const char* p, const char* end, int depth, sink* s, int tag) {
  p = pw_json_ws(p, end);
  if (p >= end || depth > MAX_DEPTH) return NULL;
  if (*p == '"') {
    normaliser* n = s ? (tag ? &s->tags : &s->text) : NULL;
    p = decode_string(p, end, n);
    if (n && tag) norm_hard_break(n);
    if (n && !tag) norm_break(n);
    return p;
  }
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = pw_json_ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      int member_tag = tag;
      if (close == '}') {
        char key[MAX_KEY_BYTES];
        size_t key_len = 0;
        p = pw_json_ws(p, end);
        p = s ? read_key(p, end, key, &key_len) : decode_string(p, end, NULL);
        if (!p) return NULL;
        if (s && is_tag_key(key, key_len)) member_tag = 1;
        p = pw_json_ws(p, end);
        if (p >= end || *p++ != ':') return NULL;
      }
      p = walk_value(p, end, depth + 1, s, member_tag);
      if (!p) return NULL;
      p = pw_json_ws(p, end);
      if (p >= end) return NULL;
      if (*p == close) return p + 1;
      if (*p++ != ',') return NULL;
      p = pw_json_ws(p, end);
    }
  }
  return pw_json_skip(p, end, depth); /* literals and numbers */
}

/* ---------------------------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------------------------- */

static int contains(const phrase* ph, const char* text, size_t len) {
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    while (k > 0 && text[i] != ph->text[k]) k = ph->next[k - 1];
    if (text[i] == ph->text[k]) k++;
    if (k == ph->len) return 1;
  }
  return 0;
}

/* Returns the index of the first denied phrase in the normalised text, or -1. */
static long denied(const normaliser* n) {
  if (n->out.failed) return 0; /* could not build the text: refuse rather than pass */
  for (size_t i = 0; i < g_num_phrases; i++) {
    if (contains(&g_phrases[i], n->out.data ? n->out.data : "", n->out.len)) return (long)i;
  }
  return -1;
}

/* Checks one text source (a message, "system" or "prompt"): 1 if denied, 0 if clean, -1 if
 * malformed. `*after` gets the end of the value. */
static int check_value(const char* p, const char* end, const char** after, long* which) {
  sink s = {{{0}, g_case_insensitive, 0}, {{0}, g_case_insensitive, 0}};
  *after = walk_value(p, end, 1, &s, 0);
  int verdict = -1;
  if (*after) {
    *which = denied(&s.text);
    if (*which < 0) *which = denied(&s.tags);
    verdict = *which >= 0;
  }
  pw_buf_free(&s.text.out);
  pw_buf_free(&s.tags.out);
  return verdict;
}

/* Checks the whole body: 1 denied, 0 clean, -1 malformed. */
static int check_body(const char* body, size_t len, long* which) {
  const char* end = body + len;
  const char* p = pw_json_ws(body, end);
  if (p >= end || *p != '{') return -1;
  p = pw_json_ws(p + 1, end);
  if (p < end && *p == '}') return pw_json_ws(p + 1, end) == end ? 0 : -1;
  for (;;) {
    char key[MAX_KEY_BYTES];
    size_t key_len = 0;
    p = read_key(p, end, key, &key_len);
    if (!p) return -1;
    p = pw_json_ws(p, end);
    if (p >= end || *p++ != ':') return -1;
    p = pw_json_ws(p, end);
    if (key_len == 8 && memcmp(key, "messages", 8) == 0 && p < end && *p == '[') {
      /* Each message on its own, so that two messages do not make a phrase together. */
      p = pw_json_ws(p + 1, end);
      if (p < end && *p == ']') {
        p++;
      } else {
        for (;;) {
          int verdict = check_value(p, end, &p, which);
          if (verdict != 0) return verdict;
          p = pw_json_ws(p, end);
          if (p >= end) return -1;
          if (*p == ']') {
            p++;
            break;
          }
          if (*p++ != ',') return -1;
        }
      }
    } else if ((key_len == 8 && memcmp(key, "messages", 8) == 0) ||
               (key_len == 6 && memcmp(key, "system", 6) == 0) ||
               (key_len == 6 && memcmp(key, "prompt", 6) == 0)) {
      int verdict = check_value(p, end, &p, which);
      if (verdict != 0) return verdict;
    } else {
      p = walk_value(p, end, 1, NULL, 0);
      if (!p) return -1;
    }
    p = pw_json_ws(p, end);
    if (p >= end) return -1;
    if (*p == '}') return pw_json_ws(p + 1, end) == end ? 0 : -1;
    if (*p++ != ',') return -1;
    p = pw_json_ws(p, end);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------------------------- */

static void free_phrases(phrase* list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(list[i].text);
    free(list[i].next);
  }
  free(list);
}

static void config_error(const char* why) {
  pw_buf msg = {0};
  pw_buf_puts(&msg, "prompt_guard: ");
  pw_buf_puts(&msg, why);
  pw_buf_puts(&msg, "; expected {\"deny\": [\"phrase\", ...], \"case_insensitive\": true}");
  if (!msg.failed) pw_log(PW_LOG_ERROR, msg.data);
  pw_buf_free(&msg);
}

/* Normalises one configured phrase (a JSON string) and builds its KMP table. */
static int make_phrase(pw_json value, int ci, phrase* out) {
  if (value.p >= value.end || *value.p != '"') return -1;
  normaliser n = {{0}, ci, 0};
  if (decode_string(value.p, value.end, &n) != value.end || n.out.failed || n.out.len == 0 ||
      n.out.len > MAX_PHRASE_BYTES) {
    pw_buf_free(&n.out);
    return -1;
  }
  out->text = n.out.data;
  out->len = n.out.len;
  out->next = (uint32_t*)malloc(out->len * sizeof(uint32_t));
  if (!out->next) {
    free(out->text);
    return -1;
  }
  out->next[0] = 0;
  for (size_t i = 1, k = 0; i < out->len; i++) {
    while (k > 0 && out->text[i] != out->text[k]) k = out->next[k - 1];
    if (out->text[i] == out->text[k]) k++;
    out->next[i] = (uint32_t)k;
  }
  return 0;
}

uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
  size_t len = 0;
  char* text = pw_get_plugin_config(config_size, &len);
  if (!text) return 0;
  pw_json doc, list, elem, flag;
  phrase* phrases = NULL;
  size_t n = 0;
  int ci = 1, rc = 0;
  uint32_t ok = 0;
  if (pw_json_parse(text, len, &doc) != 0 || *doc.p != '{') {
    config_error("configuration is not a JSON object");
  } else if (pw_json_get(doc, "case_insensitive", &flag) == 0 &&
             !((size_t)(flag.end - flag.p) == 4 && memcmp(flag.p, "true", 4) == 0) &&
             !((size_t)(flag.end - flag.p) == 5 && memcmp(flag.p, "false", 5) == 0)) {
    config_error("\"case_insensitive\" must be true or false");
  } else if (pw_json_get(doc, "deny", &list) != 0 || *list.p != '[') {
    config_error("\"deny\" is missing or not a list");
  } else {
    if (pw_json_get(doc, "case_insensitive", &flag) == 0) ci = *flag.p == 't';
    phrases = (phrase*)calloc(MAX_PHRASES, sizeof(phrase));
    pw_json it = list;
    while (phrases && (rc = pw_json_next(&it, &elem)) == 1) {
      if (n == MAX_PHRASES) {
        rc = -2;
        break;
      }
      if (make_phrase(elem, ci, &phrases[n]) != 0) {
        rc = -1;
        break;
      }
      n++;
    }
    if (!phrases) {
      config_error("out of memory");
    } else if (rc == -2) {
      config_error("\"deny\" has more than 256 phrases");
    } else if (rc != 0) {
      config_error("\"deny\" must hold non-empty strings of at most 1024 bytes");
    } else if (n == 0) {
      config_error("\"deny\" is empty; the guard would let everything through");
    } else {
      ok = 1;
    }
  }
  free(text);
  if (!ok) {
    free_phrases(phrases, n);
    return 0;
  }
  free_phrases(g_phrases, g_num_phrases);
  g_phrases = phrases;
  g_num_phrases = n;
  g_case_insensitive = ci;
  return 1;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */

static void reject(const char* message, const char* code) {
  size_t len = 0;
  char* path = pw_get_request_header(":path", &len);
  int anthropic =
      path && len >= 12 && memcmp(path, "/v1/messages", 12) == 0 && (len == 12 || path[12] == '?');
  free(path);
  pw_buf b = {0};
  if (anthropic) {
    pw_buf_puts(&b,
                "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":");
    pw_buf_json_string(&b, message, strlen(message));
    pw_buf_puts(&b, "}}");
  } else {
    pw_buf_puts(&b, "{\"error\":{\"message\":");
    pw_buf_json_string(&b, message, strlen(message));
    pw_buf_puts(&b, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":");
    pw_buf_json_string(&b, code, strlen(code));
    pw_buf_puts(&b, "}}");
  }
  if (!b.failed) {
    pw_send_json(400, b.data, NULL, 0);
  } else {
    pw_send_error(400, message, "invalid_request_error", code, NULL, 0);
  }
  pw_buf_free(&b);
}

uint32_t proxy_on_request_body(uint32_t id, size_t body_size, uint32_t end_of_stream) {
  if (!end_of_stream) return PW_ACTION_PAUSE; /* wait for the whole body */
  size_t len = 0;
  char* body = pw_get_buffer(PW_BUFFER_HTTP_REQUEST_BODY, body_size, &len);
  if (!body) {
    reject("the prompt guard could not read the request", "prompt_unreadable");
    return PW_ACTION_PAUSE;
  }
  long which = -1;
  int verdict = check_body(body, len, &which);
  free(body);
  if (verdict == 0) return PW_ACTION_CONTINUE;
  if (verdict < 0) {
    reject("the request body is not valid JSON", "invalid_json");
    return PW_ACTION_PAUSE;
  }
  pw_buf msg = {0};
  pw_buf_puts(&msg, "prompt_guard: request rejected, deny phrase #");
  pw_buf_u64(&msg, (uint64_t)which);
  if (!msg.failed) pw_log(PW_LOG_INFO, msg.data);
  pw_buf_free(&msg);
  reject("the prompt contains text this gateway does not accept", "prompt_rejected");
  return PW_ACTION_PAUSE;
}
