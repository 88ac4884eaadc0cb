#include "proxy/json_scan.h"

#include <string>

namespace sluice::proxy::detail {
namespace {

// Parser and input memory kept between documents; larger documents are served, then released.
constexpr size_t kKeptCapacity = 1 << 20;

size_t skipSpace(std::string_view json, size_t pos) {
  while (pos < json.size() && isJsonSpace(json[pos])) ++pos;
  return pos;
}

}  // namespace

size_t findMemberValue(std::string_view json, std::string_view key, size_t from) {
  if (key.empty()) return std::string_view::npos;
  size_t pos = from;
  while ((pos = json.find(key, pos)) != std::string_view::npos) {
    const size_t at = pos;
    pos += key.size();
    if (at == 0 || json[at - 1] != '"' || pos >= json.size() || json[pos] != '"') continue;
    size_t value = skipSpace(json, pos + 1);
    if (value >= json.size() || json[value] != ':') continue;
    value = skipSpace(json, value + 1);
    if (value < json.size()) return value;
  }
  return std::string_view::npos;
}

std::string_view objectMember(std::string_view json, std::string_view key) {
  size_t value = 0;
  while ((value = findMemberValue(json, key, value)) != std::string_view::npos) {
    if (json[value] == '{') {
      const size_t end = containerEnd(json, value);
      if (end == std::string_view::npos) return {};
      return json.substr(value, end - value);
    }
  }
  return {};
}

bool hasNonEmptyStringMember(std::string_view json, std::string_view key) {
  size_t value = 0;
  while ((value = findMemberValue(json, key, value)) != std::string_view::npos) {
    if (json[value] == '"' && value + 1 < json.size() && json[value + 1] != '"') return true;
  }
  return false;
}

size_t containerEnd(std::string_view json, size_t open) {
  int depth = 0;
  for (size_t i = open; i < json.size(); ++i) {
    switch (json[i]) {
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (--depth == 0) return i + 1;
        break;
      case '"':
        // Skips the string: a '"' ends it unless escaped.
        for (++i; i < json.size() && json[i] != '"'; ++i) {
          if (json[i] == '\\') ++i;
        }
        break;
      default:
        break;
    }
  }
  return std::string_view::npos;
}

bool isClosedObject(std::string_view json) {
  while (!json.empty() && isJsonSpace(json.back())) json.remove_suffix(1);
  return !json.empty() && json.front() == '{' && containerEnd(json, 0) == json.size();
}

simdjson::error_code parseCopy(std::string_view json, simdjson::ondemand::document& out) {
  thread_local simdjson::ondemand::parser parser;
  thread_local std::string buffer;
  if (json.size() < kKeptCapacity &&
      (buffer.capacity() > 2 * kKeptCapacity || parser.capacity() > 2 * kKeptCapacity)) {
    parser = simdjson::ondemand::parser();
    buffer = std::string();
  }
  buffer.clear();
  buffer.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  buffer.append(json);
  return parser
      .iterate(simdjson::padded_string_view(buffer.data(), buffer.size(), buffer.capacity()))
      .get(out);
}

bool readCount(simdjson::ondemand::value value, uint64_t& out) {
  simdjson::ondemand::number number;
  if (value.get_number().get(number) != simdjson::SUCCESS) return false;
  switch (number.get_number_type()) {
    case simdjson::ondemand::number_type::unsigned_integer:
      out = number.get_uint64();
      return true;
    case simdjson::ondemand::number_type::signed_integer:
      if (number.get_int64() < 0) return false;
      out = static_cast<uint64_t>(number.get_int64());
      return true;
    case simdjson::ondemand::number_type::floating_point_number: {
      const double real = number.get_double();
      if (!(real >= 0 && real < 1e15) || real != static_cast<double>(static_cast<uint64_t>(real))) {
        return false;
      }
      out = static_cast<uint64_t>(real);
      return true;
    }
    default:
      return false;
  }
}

}  // namespace sluice::proxy::detail
