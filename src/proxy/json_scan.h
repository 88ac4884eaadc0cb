#pragma once

// Looking into JSON text on the streaming path without parsing it: cheap filters that decide
// whether an SSE event is worth a parse, and the per-thread parser for the few that are.
// Private to src/proxy (simdjson stays out of the public headers).
//
// The lexical look-ups rely on one property of JSON: inside a string every '"' is escaped, so
// the text `"key"` followed by ':' is a member named `key` (at some depth). Only contrived keys
// (one ending in `\"key`) fool them; callers that must be exact parse what they find.

#include <simdjson.h>

#include <cstddef>
#include <string_view>

namespace sluice::proxy::detail {

constexpr bool isJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Offset of the first byte of the value of the next member named `key` at or after `from`, or
// npos.
size_t findMemberValue(std::string_view json, std::string_view key, size_t from = 0);

// The text of the first member named `key` whose value is an object ("{...}", brackets
// balanced), or empty.
std::string_view objectMember(std::string_view json, std::string_view key);

// Whether some member named `key` holds a non-empty string.
bool hasNonEmptyStringMember(std::string_view json, std::string_view key);

// One past the bracket that closes the object or array opening at `open`, or npos when the text
// ends first. Brackets inside strings do not count.
size_t containerEnd(std::string_view json, size_t open);

// Whether `json` is one object whose brackets close at its end (trailing spaces aside): a
// truncated or concatenated event is not.
bool isClosedObject(std::string_view json);

// Parses `json` with this thread's on-demand parser, from a padded copy; `out` is valid until the
// next call on the same thread. Memory kept after an unusually large document is released at the
// next parse of a small one.
simdjson::error_code parseCopy(std::string_view json, simdjson::ondemand::document& out);

// A JSON count: a non-negative integer (an integral double too: some servers write 12.0).
bool readCount(simdjson::ondemand::value value, uint64_t& out);

}  // namespace sluice::proxy::detail
