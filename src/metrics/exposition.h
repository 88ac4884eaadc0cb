#pragma once

// Pieces of the Prometheus text exposition format 0.0.4, for the registry and for code that
// renders its own series (Registry::addCollector).

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::metrics {

// The Content-Type of a /metrics answer.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool isValidMetricName(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved for Prometheus itself).
bool isValidLabelName(std::string_view name);

// A label value between its quotes: \ " and newline escaped as \\ \" \n.
void appendLabelValue(std::string& out, std::string_view value);
// A # HELP docstring: \ and newline escaped as \\ \n.
void appendHelp(std::string& out, std::string_view help);

// Numbers as Prometheus parses them, whatever the locale: integers in decimal; doubles in the
// shortest form that reads back to the same value (std::to_chars), NaN, +Inf and -Inf.
void appendNumber(std::string& out, double value);
void appendNumber(std::string& out, uint64_t value);
void appendNumber(std::string& out, int64_t value);

// `text` with each invalid UTF-8 sequence replaced by U+FFFD: Prometheus rejects a whole scrape
// over one label value that is not UTF-8, and some label values come from clients.
std::string toValidUtf8(std::string_view text);

}  // namespace sluice::metrics
