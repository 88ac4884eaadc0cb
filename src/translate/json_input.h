#pragma once

// Reading untrusted JSON for the translators: per-thread simdjson DOM parsers, typed access that
// names the offending field on a mismatch, and the path of a value inside its document.
// Private to src/translate (simdjson stays out of the public header).

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "translate/translate.h"

namespace sluice::translate::detail {

namespace dom = simdjson::dom;

// Where a value sits in a document ("messages[2].content[0].source"), formatted only when an
// error is reported. Each Path borrows its parent: keep parents alive (named locals, never a
// temporary chain stored in a variable).
class Path {
 public:
  Path() = default;
  Path(const Path& parent, std::string_view key) : parent_(&parent), key_(key) {}
  Path(const Path& parent, size_t index) : parent_(&parent), index_(static_cast<int64_t>(index)) {}

  std::string str() const;

 private:
  void append(std::string& out) const;

  const Path* parent_ = nullptr;
  std::string_view key_;
  int64_t index_ = -1;
};

// Which per-thread parser to use. A document's elements stay valid until the next parse with the
// same slot, so a value found inside a document (tool arguments, a JSON string) uses kNested.
enum class ParserSlot { kDocument = 0, kNested = 1 };

// Parses `text` (copied into a padded per-thread buffer). Fully validates JSON and UTF-8.
simdjson::error_code parseJson(std::string_view text, dom::element& out,
                               ParserSlot slot = ParserSlot::kDocument);

// Frees per-thread parser memory above a threshold, after an unusually large document.
void trimParsers();

// The value of `key` in `object`; false when absent or null.
bool lookup(dom::object object, std::string_view key, dom::element& out);

// Typed access that records the first mismatch as a TranslateError ("messages[0].role must be a
// string") and returns false, so that callers can unwind with `if (!...) return false;`.
class Reader {
 public:
  Reader(int status, std::string_view type) : status_(status), type_(type) {}

  bool object(dom::element value, const Path& at, dom::object& out);
  bool array(dom::element value, const Path& at, dom::array& out);
  bool string(dom::element value, const Path& at, std::string_view& out);
  bool boolean(dom::element value, const Path& at, bool& out);
  bool number(dom::element value, const Path& at);
  bool count(dom::element value, const Path& at, uint64_t& out);  // non-negative integer

  // A string member that must be present: "<path> needs a \"key\"" when absent or null.
  bool requiredString(dom::object parent, std::string_view key, const Path& parent_path,
                      std::string_view& out);

  // Optional fields: absent or null leaves `out` untouched and succeeds.
  bool optionalString(dom::object parent, std::string_view key, const Path& parent_path,
                      std::optional<std::string_view>& out);
  bool optionalCount(dom::object parent, std::string_view key, const Path& parent_path,
                     uint64_t& out);

  // Records "<path> <what>" (or just `what` for the document root).
  bool fail(const Path& at, std::string_view what);
  bool failMessage(std::string message);

  bool failed() const { return error_.has_value(); }
  TranslateError takeError();

 private:
  int status_;
  std::string_view type_;
  std::optional<TranslateError> error_;
};

// Client input is wrong: 400 in the client's dialect.
inline Reader clientReader() { return Reader(400, "invalid_request_error"); }
// The upstream answered something we cannot read: 502.
inline Reader upstreamReader() { return Reader(502, "upstream_error"); }

// `json[key]` when it is a string, else empty; `json` is an element, an object or a lookup
// result. For reading upstream data leniently, where absent and wrong-typed mean the same.
template <typename Json>
std::string_view stringField(Json json, std::string_view key) {
  std::string_view text;
  if (json[key].get_string().get(text) != simdjson::SUCCESS) return {};
  return text;
}

// A JSON text for `value`, minified.
std::string serialize(dom::element value);

}  // namespace sluice::translate::detail
