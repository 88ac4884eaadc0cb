#include "common/json_writer.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(JsonWriter, NestedDocument) {
  std::string out;
  JsonWriter json(out);
  json.beginObject().key("a").value(1).key("b").beginArray().value("x").value(true).null();
  json.endArray().key("c").beginObject().endObject().endObject();
  EXPECT_EQ(out, R"({"a":1,"b":["x",true,null],"c":{}})");
}

TEST(JsonWriter, EscapesControlCharactersQuotesAndBackslashes) {
  std::string out;
  appendJsonEscaped(out, std::string("a\"b\\c\n\x01\x1f", 8));
  EXPECT_EQ(out, "a\\\"b\\\\c\\n\\u0001\\u001f");
}

TEST(JsonWriter, NonFiniteNumbersBecomeNull) {
  std::string out;
  JsonWriter(out).beginArray().value(1.5).value(std::numeric_limits<double>::infinity()).endArray();
  EXPECT_EQ(out, "[1.5,null]");
}

}  // namespace
}  // namespace sluice
