#include "translate/json_input.h"

#include <fmt/format.h>

namespace sluice::translate::detail {
namespace {

// Per-thread parser memory kept between documents; larger documents are served, then released.
constexpr size_t kKeptCapacity = 1 << 20;

struct ParserState {
  dom::parser parser;
  std::string buffer;  // the input, copied with SIMDJSON_PADDING spare bytes
};

ParserState& parserState(ParserSlot slot) {
  thread_local ParserState states[2];
  return states[static_cast<int>(slot)];
}

}  // namespace

void Path::append(std::string& out) const {
  if (parent_ != nullptr) parent_->append(out);
  if (index_ >= 0) {
    fmt::format_to(std::back_inserter(out), "[{}]", index_);
  } else if (!key_.empty()) {
    if (!out.empty()) out += '.';
    out += key_;
  }
}

std::string Path::str() const {
  std::string out;
  append(out);
  return out;
}

simdjson::error_code parseJson(std::string_view text, dom::element& out, ParserSlot slot) {
  ParserState& state = parserState(slot);
  state.buffer.clear();
  state.buffer.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  state.buffer.append(text);
  return state.parser.parse(state.buffer.data(), state.buffer.size(), false).get(out);
}

void trimParsers() {
  for (ParserSlot slot : {ParserSlot::kDocument, ParserSlot::kNested}) {
    ParserState& state = parserState(slot);
    if (state.buffer.capacity() > kKeptCapacity || state.parser.capacity() > kKeptCapacity) {
      state.parser = dom::parser();
      state.buffer = std::string();
    }
  }
}

bool lookup(dom::object object, std::string_view key, dom::element& out) {
  if (object.at_key(key).get(out) != simdjson::SUCCESS) return false;
  return !out.is_null();
}

bool Reader::object(dom::element value, const Path& at, dom::object& out) {
  if (value.get_object().get(out) == simdjson::SUCCESS) return true;
  return fail(at, "must be an object");
}

bool Reader::array(dom::element value, const Path& at, dom::array& out) {
  if (value.get_array().get(out) == simdjson::SUCCESS) return true;
  return fail(at, "must be an array");
}

bool Reader::string(dom::element value, const Path& at, std::string_view& out) {
  if (value.get_string().get(out) == simdjson::SUCCESS) return true;
  return fail(at, "must be a string");
}

bool Reader::boolean(dom::element value, const Path& at, bool& out) {
  if (value.get_bool().get(out) == simdjson::SUCCESS) return true;
  return fail(at, "must be a boolean");
}

bool Reader::number(dom::element value, const Path& at) {
  if (value.is_number()) return true;
  return fail(at, "must be a number");
}

bool Reader::count(dom::element value, const Path& at, uint64_t& out) {
  if (value.get_uint64().get(out) == simdjson::SUCCESS) return true;
  // 100.0 is an integer too; some clients serialise every number as a double.
  double real = 0;
  if (value.get_double().get(real) == simdjson::SUCCESS && real >= 0 && real < 1e18 &&
      real == static_cast<double>(static_cast<uint64_t>(real))) {
    out = static_cast<uint64_t>(real);
    return true;
  }
  return fail(at, "must be a non-negative integer");
}

bool Reader::requiredString(dom::object parent, std::string_view key, const Path& parent_path,
                            std::string_view& out) {
  dom::element value;
  if (!lookup(parent, key, value)) {
    // "an id", "an input", but "a url", "a type".
    const bool an =
        !key.empty() && std::string_view("aeio").find(key.front()) != std::string_view::npos;
    return fail(parent_path,
                std::string(an ? "needs an \"" : "needs a \"") + std::string(key) + "\"");
  }
  return string(value, Path(parent_path, key), out);
}

bool Reader::optionalString(dom::object parent, std::string_view key, const Path& parent_path,
                            std::optional<std::string_view>& out) {
  dom::element value;
  if (!lookup(parent, key, value)) return true;
  std::string_view text;
  if (!string(value, Path(parent_path, key), text)) return false;
  out = text;
  return true;
}

bool Reader::optionalCount(dom::object parent, std::string_view key, const Path& parent_path,
                           uint64_t& out) {
  dom::element value;
  if (!lookup(parent, key, value)) return true;
  return count(value, Path(parent_path, key), out);
}

bool Reader::fail(const Path& at, std::string_view what) {
  std::string where = at.str();
  if (where.empty()) return failMessage(std::string(what));
  return failMessage(fmt::format("{} {}", where, what));
}

bool Reader::failMessage(std::string message) {
  if (!error_) error_ = TranslateError{status_, std::string(type_), std::move(message)};
  return false;
}

TranslateError Reader::takeError() {
  if (!error_) return TranslateError{status_, std::string(type_), "invalid input"};
  TranslateError error = std::move(*error_);
  error_.reset();
  return error;
}

std::string serialize(dom::element value) { return simdjson::to_string(value); }

}  // namespace sluice::translate::detail
