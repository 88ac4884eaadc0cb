/* Test plugin: rewrites the response body as it passes, chunk by chunk, replacing every "tok"
 * with "TOK" (the mock's answers are "tok0 tok1 ..."). It never pauses, so a streamed answer
 * stays streamed: each chunk leaves the gateway as soon as it is rewritten. A "tok" split across
 * two chunks is not rewritten; the mock's events are far smaller than the gateway's reads.
 * No configuration. */
#include "proxy_wasm.h"

uint32_t proxy_on_response_body(uint32_t id, size_t body_size, uint32_t end_of_stream) {
  if (body_size == 0) return PW_ACTION_CONTINUE;
  size_t len = 0;
  char* chunk = pw_get_buffer(PW_BUFFER_HTTP_RESPONSE_BODY, body_size, &len);
  if (!chunk) return PW_ACTION_CONTINUE;
  int changed = 0;
  for (size_t i = 0; i + 3 <= len; i++) {
    if (chunk[i] == 't' && chunk[i + 1] == 'o' && chunk[i + 2] == 'k') {
      memcpy(chunk + i, "TOK", 3);
      changed = 1;
      i += 2;
    }
  }
  if (changed) proxy_set_buffer_bytes(PW_BUFFER_HTTP_RESPONSE_BODY, 0, len, chunk, len);
  free(chunk);
  return PW_ACTION_CONTINUE;
}
