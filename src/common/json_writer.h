#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

// Appends JSON to a caller-owned string: the hot path emits small documents (errors, chunks,
// mock answers) and reuses one buffer instead of building a DOM.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  JsonWriter& beginObject();
  JsonWriter& endObject();
  JsonWriter& beginArray();
  JsonWriter& endArray();
  JsonWriter& key(std::string_view name);
  JsonWriter& value(std::string_view text);
  JsonWriter& value(const char* text) { return value(std::string_view(text)); }
  JsonWriter& value(int64_t number);
  JsonWriter& value(int number) { return value(static_cast<int64_t>(number)); }
  JsonWriter& value(uint64_t number);
  JsonWriter& value(double number);
  JsonWriter& value(bool flag);
  JsonWriter& null();
  // Inserts already-serialised JSON as a value.
  JsonWriter& raw(std::string_view json);

 private:
  void separate();

  std::string& out_;
  bool need_comma_ = false;
};

// Appends `text` to `out` as JSON string contents (without quotes), escaping as RFC 8259 requires.
void appendJsonEscaped(std::string& out, std::string_view text);

}  // namespace sluice
