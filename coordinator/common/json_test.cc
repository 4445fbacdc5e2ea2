#include "coordinator/common/json.h"

#include <gtest/gtest.h>

namespace saga::json {
namespace {

Value P(std::string_view s) {
  auto v = Parse(s);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value();
}

TEST(JsonTest, ParsesAndDumpsEveryType) {
  Value v = P(R"({"a":1,"b":-2.5,"c":"x\"y\\z\n","d":[true,false,null],"e":{}})");
  EXPECT_EQ(v.Dump(), R"({"a":1,"b":-2.5,"c":"x\"y\\z\n","d":[true,false,null],"e":{}})");
}

TEST(JsonTest, KeepsIntegerAndDoubleApart) {
  EXPECT_TRUE(P("5").is_int());
  EXPECT_TRUE(P("5.0").is_double());
  EXPECT_EQ(P("5.0").Dump(), "5.0");
  EXPECT_EQ(P("1e2").Dump(), "100.0");
  EXPECT_EQ(P("0.1").Dump(), "0.1");
  EXPECT_EQ(P("9223372036854775807").as_int(), INT64_MAX);
  EXPECT_TRUE(P("9223372036854775808").is_double());
}

TEST(JsonTest, NumbersCompareByValue) {
  EXPECT_EQ(P("5"), P("5.0"));
  EXPECT_NE(P("5"), P("5.1"));
  EXPECT_NE(P("5"), P("\"5\""));
}

TEST(JsonTest, ObjectsCompareIgnoringKeyOrder) {
  EXPECT_EQ(P(R"({"a":1,"b":[1,2]})"), P(R"({"b":[1,2],"a":1})"));
  EXPECT_NE(P(R"({"a":1})"), P(R"({"a":1,"b":2})"));
  EXPECT_NE(P("[1,2]"), P("[2,1]"));
}

TEST(JsonTest, DecodesUnicodeEscapesAndSurrogatePairs) {
  EXPECT_EQ(P(R"("\u00e9\ud83d\ude00")").as_string(), "\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(P(R"("\u0001")").Dump(), R"("\u0001")");
}

TEST(JsonTest, RejectsMalformedInputWithOffset) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "tru", "01", "1.", "\"abc", "[1] x",
                          "{\"a\":1,}", "\"\t\""}) {
    auto v = Parse(bad);
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("offset"), std::string::npos);
    }
  }
}

TEST(JsonTest, RefusesVeryDeepNesting) {
  std::string deep(600, '[');
  deep += std::string(600, ']');
  EXPECT_FALSE(Parse(deep).ok());
}

TEST(JsonTest, CopyOnWriteNeverChangesSharedNodes) {
  Value a = P(R"({"x":{"y":1}})");
  Value b = a;
  EXPECT_TRUE(a.SharesNodeWith(b));
  b.Set("z", Value(2));
  EXPECT_EQ(a.Dump(), R"({"x":{"y":1}})");
  EXPECT_EQ(b.Dump(), R"({"x":{"y":1},"z":2})");
  EXPECT_TRUE(a.Find("x")->SharesNodeWith(*b.Find("x")));
}

TEST(JsonTest, SetReplacesInPlaceAndEraseRemoves) {
  Value a = P(R"({"a":1,"b":2})");
  a.Set("a", Value("x"));
  EXPECT_EQ(a.Dump(), R"({"a":"x","b":2})");
  EXPECT_TRUE(a.Erase("a"));
  EXPECT_FALSE(a.Erase("a"));
  EXPECT_EQ(a.Dump(), R"({"b":2})");
}

TEST(JsonTest, DuplicateKeysKeepTheLastValue) {
  EXPECT_EQ(P(R"({"a":1,"a":2})").Dump(), R"({"a":2})");
}

TEST(JsonTest, SerializedSizeMatchesDump) {
  for (const char* s : {"null", "true", "false", "-12", "1.5", "\"a\\\"b\\u0002\"",
                        R"({"k":[1,{"x":"y"},[]],"e":{}})", "[]", "{}"}) {
    Value v = P(s);
    EXPECT_EQ(SerializedSize(v), v.Dump().size()) << s;
  }
}

TEST(JsonTest, FitsInAgreesWithSerializedSize) {
  Value small = P(R"({"a":[1,2.5,"x"],"b":null})");
  size_t n = small.Dump().size();
  EXPECT_TRUE(FitsIn(small, n));
  EXPECT_FALSE(FitsIn(small, n - 1));
  Value big(std::string(300000, 'a'));
  EXPECT_FALSE(FitsIn(big, 262144));
  Value escaped(std::string(50000, '\n'));  // 100,002 bytes once escaped
  EXPECT_TRUE(FitsIn(escaped, 262144));
  EXPECT_FALSE(FitsIn(escaped, 100001));
}

TEST(JsonTest, PrettyPrintsNested) {
  EXPECT_EQ(P(R"({"a":[1,2],"b":{}})").Pretty(),
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}");
}

}  // namespace
}  // namespace saga::json
