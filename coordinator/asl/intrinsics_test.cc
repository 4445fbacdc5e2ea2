#include "coordinator/asl/intrinsics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "coordinator/asl/errors.h"

namespace saga::asl {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

json::Value J(std::string_view text) {
  auto v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? *v : json::Value();
}

class IntrinsicTest : public ::testing::Test {
 protected:
  absl::StatusOr<json::Value> Run(std::string_view text) {
    auto in = Intrinsic::Parse(text);
    if (!in.ok()) return in.status();
    IntrinsicEnv env{input_, context_, &rng_};
    return in->Evaluate(env);
  }

  // Compact JSON of the result, or "<ErrorName>: <cause>".
  std::string Eval(std::string_view text) {
    auto v = Run(text);
    if (!v.ok()) return ErrorName(v.status()) + ": " + std::string(v.status().message());
    return v->Dump();
  }

  // The ASL error name of a failing evaluation ("" when it succeeds).
  std::string ErrorOf(std::string_view text) {
    auto v = Run(text);
    if (v.ok()) return "";
    if (v.status().code() == absl::StatusCode::kInvalidArgument) return "parse error";
    return ErrorName(v.status());
  }

  json::Value input_ = json::Value::EmptyObject();
  json::Value context_ = J(R"({"Execution": {"Id": "arn:aws:states:us-east-1:1:execution:sm:e1"},
                                "StateMachine": {"Id": "arn:sm", "Name": "sm"}})");
  Rng rng_{42};
};

constexpr char kFailure[] = "States.IntrinsicFailure";

// --- Recognition and static checks ----------------------------------------

TEST(LooksLikeIntrinsicTest, Recognises) {
  EXPECT_TRUE(LooksLikeIntrinsic("States.Format('x')"));
  EXPECT_TRUE(LooksLikeIntrinsic("States.UUID()"));
  EXPECT_TRUE(LooksLikeIntrinsic("States.Nope(1)"));  // Parse reports the unknown name
  EXPECT_FALSE(LooksLikeIntrinsic("$.States.Format"));
  EXPECT_FALSE(LooksLikeIntrinsic("States.Format"));
  EXPECT_FALSE(LooksLikeIntrinsic("States.(x)"));
  EXPECT_FALSE(LooksLikeIntrinsic(" States.UUID()"));
  EXPECT_FALSE(LooksLikeIntrinsic("$"));
  EXPECT_FALSE(LooksLikeIntrinsic(""));
}

TEST(IntrinsicParseTest, KeepsText) {
  auto in = Intrinsic::Parse("States.Array( 1 , 'a' ,$.x )");
  ASSERT_TRUE(in.ok()) << in.status().message();
  EXPECT_EQ(in->text(), "States.Array( 1 , 'a' ,$.x )");
  Intrinsic copy = *in;
  EXPECT_EQ(copy.text(), in->text());
}

TEST(IntrinsicParseTest, RejectsBadCalls) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"States.Foo(1)", "unknown intrinsic function 'States.Foo'"},
           {"States.format('x')", "unknown intrinsic function 'States.format'"},
           {"States.UUID", "expected '('"},
           {"States.UUID (", "expected '('"},
           {"States.Array(1,)", "expected an argument"},
           {"States.Array(1", "unterminated call"},
           {"States.Array('abc)", "unterminated string"},
           {"States.Array('a\\n')", "invalid escape"},
           {"States.Array('a\\')", "unterminated string"},
           {"States.UUID() x", "unexpected text after the closing parenthesis"},
           {"States.UUID(1)", "States.UUID takes exactly 0 arguments but was given 1"},
           {"States.ArrayLength()", "States.ArrayLength takes exactly 1 argument but was given 0"},
           {"States.MathRandom(1)", "States.MathRandom takes 2 to 3 arguments but was given 1"},
           {"States.MathRandom(1, 2, 3, 4)", "takes 2 to 3 arguments but was given 4"},
           {"States.Format()", "States.Format takes at least 1 argument"},
           {"States.JsonMerge($.a, $.b)", "takes exactly 3 arguments but was given 2"},
           {"States.Hash('a')", "takes exactly 2 arguments"},
           {"States.ArrayRange(1, 2)", "takes exactly 3 arguments"},
           {"States.Format(1)", "first argument of States.Format must be a string"},
           {"States.Array($.a[)", "invalid JSONPath '$.a[)'"},
           {"States.Array($.a.)", "invalid JSONPath '$.a.'"},
           {"States.Array(foo)", "unexpected 'foo'"},
           {"States.Array(1.2.3)", "invalid number"},
           {"States.Array(--1)", "invalid number"},
           {"States.Array(True)", "unexpected 'True'"},
           {"$.a", "expected 'States.'"},
           {"", "expected 'States.'"},
       }) {
    auto in = Intrinsic::Parse(c.text);
    ASSERT_FALSE(in.ok()) << "accepted: " << c.text;
    EXPECT_EQ(in.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(in.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(IntrinsicParseTest, NestingLimitIsTen) {
  std::string ok = "1";
  for (int i = 0; i < 10; ++i) ok = "States.Array(" + ok + ")";
  EXPECT_TRUE(Intrinsic::Parse(ok).ok());
  std::string deep = "States.Array(" + ok + ")";
  auto in = Intrinsic::Parse(deep);
  ASSERT_FALSE(in.ok());
  EXPECT_THAT(in.status().message(), HasSubstr("nested more than 10 deep"));
}

// --- Arguments ---------------------------------------------------------------

TEST_F(IntrinsicTest, LiteralArguments) {
  EXPECT_EQ(Eval("States.Array(1, -2, 3.5, -0.25, 1e3, true, false, null, 'x')"),
            R"([1,-2,3.5,-0.25,1000.0,true,false,null,"x"])");
  EXPECT_EQ(Eval("States.Array()"), "[]");
  EXPECT_EQ(Eval("States.Array('')"), R"([""])");
}

TEST_F(IntrinsicTest, StringEscapes) {
  EXPECT_EQ(Eval(R"(States.Array('it\'s', 'a\\b', '\{x\}', 'a,b)c'))"),
            R"(["it's","a\\b","{x}","a,b)c"])");
}

TEST_F(IntrinsicTest, PathArguments) {
  input_ = J(R"j({"a": {"b": [10, 20]}, "c d": "sp", "k,)": 5,
                  "items": [{"v": ")"}, {"v": "x"}]})j");
  EXPECT_EQ(Eval("States.Array($.a.b[1], $['c d'], $.a.b)"), R"([20,"sp",[10,20]])");
  EXPECT_EQ(Eval("States.Array($['k,)'])"), "[5]");
  EXPECT_EQ(Eval("States.Array($.items[?(@.v == ')')].v)"), R"j([[")"]])j");
  EXPECT_EQ(Eval("States.Array($)"), R"([)" + input_.Dump() + "]");
  EXPECT_EQ(Eval("States.Array($.a.b[*])"), "[[10,20]]");
  EXPECT_EQ(Eval("States.Array($.nothing[*])"), "[[]]");  // indefinite: empty array
}

TEST_F(IntrinsicTest, ContextPathArguments) {
  EXPECT_EQ(Eval("States.Format('{}/{}', $$.StateMachine.Name, $$.Execution.Id)"),
            R"("sm/arn:aws:states:us-east-1:1:execution:sm:e1")");
}

TEST_F(IntrinsicTest, MissingPathIsStatesRuntime) {
  auto v = Run("States.Array($.missing)");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(ErrorName(v.status()), "States.Runtime");
  EXPECT_THAT(v.status().message(), HasSubstr("'$.missing'"));
  EXPECT_THAT(v.status().message(), HasSubstr("States.Array"));
  EXPECT_EQ(ErrorOf("States.Format('{}', $$.Nope)"), "States.Runtime");
}

TEST_F(IntrinsicTest, NestedCallsFromTheAwsDocs) {
  input_ = J(R"({"ImageRecipe": {"Arn":
      "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my-recipe/1.2.3"}})");
  // The docs' myArn example has three placeholders but passes two values, which
  // fails the placeholder count check; this is the same call with '{}.{}'.
  EXPECT_EQ(
      Eval("States.Format('{}.{}', States.ArrayGetItem(States.StringSplit(States.ArrayGetItem("
           "States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), 0), "
           "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit("
           "$.ImageRecipe.Arn, '/'), 2), '.'), 1))"),
      R"("1.2")");
}

TEST_F(IntrinsicTest, ErrorsInNestedCallsPropagate) {
  EXPECT_EQ(ErrorOf("States.Array(States.ArrayLength(1))"), kFailure);
}

// --- States.Format -----------------------------------------------------------

TEST_F(IntrinsicTest, FormatAwsExamples) {
  input_ = J(R"({"name": "Arnav", "template": "Hello, my name is {}."})");
  EXPECT_EQ(Eval("States.Format('Hello, my name is {}.', $.name)"),
            R"("Hello, my name is Arnav.")");
  EXPECT_EQ(Eval("States.Format($.template, $.name)"), R"("Hello, my name is Arnav.")");
}

TEST_F(IntrinsicTest, FormatRendersScalarsAsJson) {
  input_ = J(R"({"i": 1, "d": 1.1, "whole": 2.0, "t": true, "n": null, "s": "", "sp": " "})");
  EXPECT_EQ(Eval("States.Format('{}|{}|{}|{}|{}|{}|{}', $.i, $.d, $.whole, $.t, $.n, $.s, $.sp)"),
            R"("1|1.1|2.0|true|null|| ")");
}

TEST_F(IntrinsicTest, FormatRendersObjectsAndArraysJavaStyle) {
  // As recorded against AWS: {"Arg1": 1, "Arg2": []} -> "{Arg1=1, Arg2=[]}".
  input_ = J(R"({"o": {"Arg1": 1, "Arg2": []}, "a": ["x", 2, {"k": null}],
                 "json": "{\"Arg1\": 1, \"Arg2\": []}"})");
  EXPECT_EQ(Eval("States.Format('fst={} snd={}', $.o, $.a)"),
            R"("fst={Arg1=1, Arg2=[]} snd=[x, 2, {k=null}]")");
  // A string holding JSON is a string: printed as is.
  EXPECT_EQ(Eval("States.Format('{}', $.json)"), R"("{\"Arg1\": 1, \"Arg2\": []}")");
  EXPECT_EQ(Eval("States.Format('{}', $$.StateMachine)"), R"("{Id=arn:sm, Name=sm}")");
}

TEST_F(IntrinsicTest, FormatEscapedBracesAreLiteral) {
  EXPECT_EQ(Eval(R"(States.Format('\{\} is {}', 'x'))"), R"("{} is x")");
  EXPECT_EQ(Eval(R"(States.Format('\{{}\}', 7))"), R"("{7}")");
  EXPECT_EQ(Eval(R"(States.Format('Hello \'{}\'', 'Arnav'))"), R"("Hello 'Arnav'")");
  EXPECT_EQ(Eval(R"(States.Format('C:\\{}', 'dir'))"), R"("C:\\dir")");
  EXPECT_EQ(Eval("States.Format('no placeholders')"), R"("no placeholders")");
  EXPECT_EQ(Eval("States.Format('{ } {x}')"), R"("{ } {x}")");  // not placeholders
}

TEST_F(IntrinsicTest, FormatPlaceholderCountMismatchFailsAtRuntime) {
  // Parses (the definition is valid) but fails when evaluated.
  for (const char* call : {"States.Format('{} and {}', 1)", "States.Format('none', 1)"}) {
    ASSERT_TRUE(Intrinsic::Parse(call).ok()) << call;
    EXPECT_EQ(ErrorOf(call), kFailure) << call;
  }
}

TEST_F(IntrinsicTest, FormatTemplateFromPathIsCheckedAtRuntime) {
  input_ = J(R"({"t": "{} and {}", "n": 5})");
  EXPECT_EQ(Eval("States.Format($.t, 1, 'b')"), R"("1 and b")");
  auto v = Run("States.Format($.t, 1)");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(ErrorName(v.status()), kFailure);
  EXPECT_THAT(v.status().message(), HasSubstr("2 placeholder(s) but 1 value(s)"));
  EXPECT_EQ(ErrorOf("States.Format($.n)"), kFailure);
}

// --- JSON ----------------------------------------------------------------------

TEST_F(IntrinsicTest, StringToJson) {
  input_ = J(R"({"escapedJsonString": "{\"foo\": \"bar\"}", "num": "12", "bad": "{x",
                 "arr": " [1, 2.5] "})");
  EXPECT_EQ(Eval("States.StringToJson($.escapedJsonString)"), R"({"foo":"bar"})");
  EXPECT_EQ(Eval("States.StringToJson($.num)"), "12");
  EXPECT_EQ(Eval("States.StringToJson($.arr)"), "[1,2.5]");
  EXPECT_EQ(Eval("States.StringToJson('\"q\"')"), R"("q")");
  EXPECT_EQ(ErrorOf("States.StringToJson($.bad)"), kFailure);
  // AWS-recorded (LocalStack snapshots): empty and blank strings give null.
  EXPECT_EQ(Eval("States.StringToJson('')"), "null");
  EXPECT_EQ(Eval("States.StringToJson(' ')"), "null");
  EXPECT_EQ(ErrorOf("States.StringToJson(5)"), kFailure);
}

TEST_F(IntrinsicTest, JsonToStringIsCompact) {
  input_ = J(R"({"unescapedJson": {"foo": "bar", "n": [1, 2.0, null]}, "s": "q\"s"})");
  EXPECT_EQ(Eval("States.JsonToString($.unescapedJson)"),
            R"("{\"foo\":\"bar\",\"n\":[1,2.0,null]}")");
  EXPECT_EQ(Eval("States.JsonToString($.s)"), R"("\"q\\\"s\"")");
  EXPECT_EQ(Eval("States.JsonToString(3)"), R"("3")");
}

TEST_F(IntrinsicTest, RoundTripStringToJsonAndBack) {
  input_ = J(R"({"o": {"b": [true, {"c": "d"}]}})");
  EXPECT_EQ(Eval("States.StringToJson(States.JsonToString($.o))"), R"({"b":[true,{"c":"d"}]})");
}

TEST_F(IntrinsicTest, JsonMergeIsShallow) {
  input_ = J(R"({"json1": {"a": {"a1": 1, "a2": 2}, "b": 2},
                 "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}})");
  json::Value before = input_;
  EXPECT_EQ(Eval("States.JsonMerge($.json1, $.json2, false)"),
            R"({"a":{"a3":1,"a4":2},"b":2,"c":3})");
  EXPECT_EQ(input_.Dump(), before.Dump());
  EXPECT_EQ(Eval("States.JsonMerge($.json1, States.StringToJson('{}'), false)"),
            R"({"a":{"a1":1,"a2":2},"b":2})");
}

TEST_F(IntrinsicTest, JsonMergeFailures) {
  input_ = J(R"({"o": {"a": 1}, "s": "x"})");
  auto deep = Run("States.JsonMerge($.o, $.o, true)");
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(ErrorName(deep.status()), kFailure);
  EXPECT_THAT(deep.status().message(), HasSubstr("deep merge"));
  EXPECT_EQ(ErrorOf("States.JsonMerge($.s, $.o, false)"), kFailure);
  EXPECT_EQ(ErrorOf("States.JsonMerge($.o, $.s, false)"), kFailure);
  EXPECT_EQ(ErrorOf("States.JsonMerge($.o, $.o, 'false')"), kFailure);
}

// --- Arrays ------------------------------------------------------------------

TEST_F(IntrinsicTest, Array) {
  input_ = J(R"({"Id": 123456})");
  EXPECT_EQ(Eval("States.Array($.Id)"), "[123456]");
  EXPECT_EQ(Eval("States.Array(States.Array(1), 'b')"), R"([[1],"b"])");
}

TEST_F(IntrinsicTest, ArrayPartition) {
  input_ = J(R"({"inputArray": [1,2,3,4,5,6,7,8,9], "empty": [], "s": "x"})");
  EXPECT_EQ(Eval("States.ArrayPartition($.inputArray,4)"), "[[1,2,3,4],[5,6,7,8],[9]]");
  EXPECT_EQ(Eval("States.ArrayPartition($.inputArray, 9)"), "[[1,2,3,4,5,6,7,8,9]]");
  EXPECT_EQ(Eval("States.ArrayPartition($.inputArray, 20)"), "[[1,2,3,4,5,6,7,8,9]]");
  EXPECT_EQ(Eval("States.ArrayPartition($.inputArray, 1)"),
            "[[1],[2],[3],[4],[5],[6],[7],[8],[9]]");
  EXPECT_EQ(Eval("States.ArrayPartition($.empty, 3)"), "[]");
  EXPECT_EQ(Eval("States.ArrayPartition($.inputArray, 3.5)"),
            "[[1,2,3,4],[5,6,7,8],[9]]");  // rounded to 4
  EXPECT_EQ(ErrorOf("States.ArrayPartition($.inputArray, 0)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayPartition($.inputArray, -2)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayPartition($.inputArray, 0.4)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayPartition($.s, 2)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayPartition($.inputArray, '2')"), kFailure);
}

TEST_F(IntrinsicTest, ArrayContains) {
  input_ = J(R"({"inputArray": [1,2,3,4,5,6,7,8,9], "lookingFor": 5,
                 "mixed": [[1,2,3], {"a": [], "b": 2}, true, null, "s"]})");
  EXPECT_EQ(Eval("States.ArrayContains($.inputArray, $.lookingFor)"), "true");
  EXPECT_EQ(Eval("States.ArrayContains($.inputArray, 10)"), "false");
  EXPECT_EQ(Eval("States.ArrayContains($.inputArray, 5.0)"), "true");
  EXPECT_EQ(Eval("States.ArrayContains($.inputArray, '5')"), "false");
  EXPECT_EQ(Eval("States.ArrayContains($.mixed, States.Array(1, 2, 3))"), "true");
  EXPECT_EQ(Eval("States.ArrayContains($.mixed, States.Array(1, 2))"), "false");
  EXPECT_EQ(Eval(R"(States.ArrayContains($.mixed, States.StringToJson('\{"b":2,"a":[]\}')))"),
            "true");
  EXPECT_EQ(Eval("States.ArrayContains($.mixed, null)"), "true");
  EXPECT_EQ(Eval("States.ArrayContains($.mixed, false)"), "false");
  EXPECT_EQ(Eval("States.ArrayContains(States.Array(), null)"), "false");
  EXPECT_EQ(ErrorOf("States.ArrayContains($.lookingFor, 5)"), kFailure);
}

TEST_F(IntrinsicTest, ArrayRange) {
  EXPECT_EQ(Eval("States.ArrayRange(1, 9, 2)"), "[1,3,5,7,9]");
  EXPECT_EQ(Eval("States.ArrayRange(0, 9, 3)"), "[0,3,6,9]");
  EXPECT_EQ(Eval("States.ArrayRange(0, 10, 3)"), "[0,3,6,9]");
  EXPECT_EQ(Eval("States.ArrayRange(1, 9, 9)"), "[1]");
  EXPECT_EQ(Eval("States.ArrayRange(9, 1, -2)"), "[9,7,5,3,1]");
  EXPECT_EQ(Eval("States.ArrayRange(5, 1, 1)"), "[]");
  EXPECT_EQ(Eval("States.ArrayRange(0.5, 2.4, 1)"), "[1,2]");  // rounded
  EXPECT_EQ(Eval("States.ArrayRange(-2, 2, 2)"), "[-2,0,2]");
  auto thousand = Run("States.ArrayRange(1, 1000, 1)");
  ASSERT_TRUE(thousand.ok());
  EXPECT_EQ(thousand->size(), 1000u);
  auto over = Run("States.ArrayRange(1, 1001, 1)");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(ErrorName(over.status()), kFailure);
  EXPECT_THAT(over.status().message(), HasSubstr("1000"));
  EXPECT_EQ(ErrorOf("States.ArrayRange(-9000000000000000000, 9000000000000000000, 1)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayRange(1, 5, 0)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayRange(1, 5, 0.4)"), kFailure);  // rounds to 0
  EXPECT_EQ(ErrorOf("States.ArrayRange('1', 5, 1)"), kFailure);
}

TEST_F(IntrinsicTest, ArrayGetItem) {
  input_ = J(R"({"inputArray": [1,2,3,4,5,6,7,8,9], "index": 5})");
  EXPECT_EQ(Eval("States.ArrayGetItem($.inputArray, $.index)"), "6");
  EXPECT_EQ(Eval("States.ArrayGetItem($.inputArray, 0)"), "1");
  EXPECT_EQ(Eval("States.ArrayGetItem($.inputArray, 8)"), "9");
  EXPECT_EQ(Eval("States.ArrayGetItem($.inputArray, 2.0)"), "3");
  auto oob = Run("States.ArrayGetItem($.inputArray, 9)");
  ASSERT_FALSE(oob.ok());
  EXPECT_EQ(ErrorName(oob.status()), kFailure);
  EXPECT_THAT(oob.status().message(), HasSubstr("out of bounds"));
  EXPECT_EQ(ErrorOf("States.ArrayGetItem($.inputArray, -1)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayGetItem($.inputArray, 1.5)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayGetItem($.inputArray, '1')"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayGetItem($.index, 0)"), kFailure);
}

TEST_F(IntrinsicTest, ArrayLength) {
  input_ = J(R"({"inputArray": [1,2,3,4,5,6,7,8,9], "o": {"a": 1}})");
  EXPECT_EQ(Eval("States.ArrayLength($.inputArray)"), "9");
  EXPECT_EQ(Eval("States.ArrayLength(States.Array())"), "0");
  EXPECT_EQ(ErrorOf("States.ArrayLength($.o)"), kFailure);
  EXPECT_EQ(ErrorOf("States.ArrayLength('abc')"), kFailure);
}

TEST_F(IntrinsicTest, ArrayUnique) {
  input_ = J(R"({"inputArray": [1,2,3,3,3,3,3,3,4],
                 "mixed": [null, null, true, true, false, false, 1, 1, 1.1, 0, -0,
                           "HelloWorld", "HelloWorld", [], [], [null], [null],
                           {"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1, "b": 1},
                           {"b": 2, "a": 1}, 1.0, [1, 2], [2, 1]]})");
  EXPECT_EQ(Eval("States.ArrayUnique($.inputArray)"), "[1,2,3,4]");
  EXPECT_EQ(Eval("States.ArrayUnique($.mixed)"),
            R"([null,true,false,1,1.1,0,"HelloWorld",[],[null],{"a":1,"b":2},{"a":1,"b":1},)"
            R"([1,2],[2,1]])");
  EXPECT_EQ(ErrorOf("States.ArrayUnique(1)"), kFailure);
}

TEST_F(IntrinsicTest, ArrayUniqueLargeInput) {
  json::Array big;
  for (int i = 0; i < 20000; ++i) big.push_back(json::Value(i % 1000));
  input_ = json::Value(json::Object{{"a", json::Value(std::move(big))}});
  auto v = Run("States.ArrayUnique($.a)");
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 1000u);
  EXPECT_EQ(v->as_array()[999].as_int(), 999);
}

// --- Encoding and hashing ------------------------------------------------------

TEST_F(IntrinsicTest, Base64Encode) {
  input_ = J(R"({"input": "Data to encode", "utf8": "héllo ✓"})");
  EXPECT_EQ(Eval("States.Base64Encode($.input)"), R"("RGF0YSB0byBlbmNvZGU=")");
  EXPECT_EQ(Eval("States.Base64Encode('')"), R"("")");
  EXPECT_EQ(Eval("States.Base64Encode('a')"), R"("YQ==")");
  EXPECT_EQ(Eval("States.Base64Encode('ab')"), R"("YWI=")");
  EXPECT_EQ(Eval("States.Base64Encode('abc')"), R"("YWJj")");
  EXPECT_EQ(Eval("States.Base64Encode($.utf8)"), R"("aMOpbGxvIOKckw==")");
  EXPECT_EQ(ErrorOf("States.Base64Encode(12)"), kFailure);
}

TEST_F(IntrinsicTest, Base64InputLimitIsTenThousandCharacters) {
  input_ = json::Value(json::Object{{"ok", json::Value(std::string(10000, 'a'))},
                                    {"long", json::Value(std::string(10001, 'a'))},
                                    {"wide", json::Value([] {
                                       std::string s;
                                       for (int i = 0; i < 10000; ++i) s += "é";
                                       return s;
                                     }())}});
  EXPECT_EQ(ErrorOf("States.Base64Encode($.ok)"), "");
  EXPECT_EQ(ErrorOf("States.Base64Encode($.wide)"), "");  // characters, not bytes
  auto v = Run("States.Base64Encode($.long)");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(ErrorName(v.status()), kFailure);
  EXPECT_THAT(v.status().message(), HasSubstr("10001 characters"));
  EXPECT_EQ(ErrorOf("States.Base64Decode($.long)"), kFailure);
  EXPECT_EQ(ErrorOf("States.Hash($.long, 'MD5')"), kFailure);
}

TEST_F(IntrinsicTest, Base64Decode) {
  input_ = J(R"({"base64": "RGF0YSB0byBlbmNvZGU="})");
  EXPECT_EQ(Eval("States.Base64Decode($.base64)"), R"("Data to encode")");
  EXPECT_EQ(Eval("States.Base64Decode('aMOpbGxvIOKckw==')"), R"("héllo ✓")");
  EXPECT_EQ(Eval("States.Base64Decode('YQ')"), R"("a")");  // padding optional
  EXPECT_EQ(Eval("States.Base64Decode('')"), R"("")");
  EXPECT_EQ(Eval("States.Base64Decode('/w==')"), "\"\xEF\xBF\xBD\"");  // 0xFF -> U+FFFD
  for (const char* bad : {"Y", "YQ=", "Y===", "a b=", "YQ==YQ==", "****", "YQ-_"}) {
    EXPECT_EQ(ErrorOf(std::string("States.Base64Decode('") + bad + "')"), kFailure) << bad;
  }
  EXPECT_EQ(ErrorOf("States.Base64Decode(1)"), kFailure);
}

TEST_F(IntrinsicTest, HashAllAlgorithms) {
  input_ = J(R"({"Data": "input data", "Algorithm": "SHA-1"})");
  EXPECT_EQ(Eval("States.Hash($.Data, $.Algorithm)"),
            R"("aaff4a450a104cd177d28d18d74485e8cae074b7")");
  EXPECT_EQ(Eval("States.Hash($.Data, 'MD5')"), R"("812f45842bc6d66ee14572ce20db8e86")");
  EXPECT_EQ(Eval("States.Hash($.Data, 'SHA-256')"),
            R"("b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3")");
  EXPECT_EQ(Eval("States.Hash($.Data, 'SHA-384')"),
            R"("d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b)"
            R"(87525bdc835ebb27e1fb9e9374a15562")");
  EXPECT_EQ(Eval("States.Hash($.Data, 'SHA-512')"),
            R"("6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce)"
            R"(2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4")");
  EXPECT_EQ(Eval("States.Hash('', 'SHA-256')"),
            R"("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")");
  EXPECT_EQ(Eval("States.Hash('héllo', 'MD5')"), R"("be50e8478cf24ff3595bc7307fb91b50")");
}

TEST_F(IntrinsicTest, HashFailures) {
  for (const char* alg : {"SHA-2", "sha-256", "SHA256", "MD4", ""}) {
    auto v = Run(std::string("States.Hash('x', '") + alg + "')");
    ASSERT_FALSE(v.ok()) << alg;
    EXPECT_EQ(ErrorName(v.status()), kFailure) << alg;
  }
  EXPECT_EQ(ErrorOf("States.Hash(1, 'MD5')"), kFailure);
  EXPECT_EQ(ErrorOf("States.Hash('x', 5)"), kFailure);
}

// --- Math ----------------------------------------------------------------------

TEST_F(IntrinsicTest, MathAdd) {
  input_ = J(R"({"value1": 111, "step": -1})");
  EXPECT_EQ(Eval("States.MathAdd($.value1, $.step)"), "110");
  EXPECT_EQ(Eval("States.MathAdd(-9, 3)"), "-6");
  EXPECT_EQ(Eval("States.MathAdd(2147483647, 2147483647)"), "4294967294");
  EXPECT_EQ(Eval("States.MathAdd(-2147483648, 0)"), "-2147483648");
  EXPECT_EQ(ErrorOf("States.MathAdd(2147483648, 0)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathAdd(0, -2147483649)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathAdd('1', 2)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathAdd(null, 2)"), kFailure);
}

TEST_F(IntrinsicTest, MathAddRoundsLikeJava) {
  // Cases LocalStack recorded against AWS (Java's Math.round: halves go up).
  struct Case {
    const char* a;
    const char* b;
    const char* sum;
  };
  for (const Case& c : std::vector<Case>{{"1.49", "1.50", "3"},
                                         {"1.50", "1.51", "4"},
                                         {"-1.49", "-1.50", "-2"},
                                         {"-1.50", "-1.51", "-3"},
                                         {"1.49", "-1.49", "0"},
                                         {"0.5", "0", "1"},
                                         {"1.5", "0", "2"},
                                         {"2.5", "0", "3"},
                                         {"-0.5", "0.5", "1"},
                                         {"-0.5", "0", "0"},
                                         {"-1.5", "0", "-1"},
                                         {"-2.5", "0", "-2"},
                                         {"-3.5", "0", "-3"}}) {
    EXPECT_EQ(Eval(std::string("States.MathAdd(") + c.a + ", " + c.b + ")"), c.sum)
        << c.a << " + " << c.b;
  }
}

TEST_F(IntrinsicTest, MathRandomStaysInRange) {
  std::set<int64_t> seen;
  for (int i = 0; i < 500; ++i) {
    auto v = Run("States.MathRandom(1, 5)");
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->is_int());
    EXPECT_GE(v->as_int(), 1);
    EXPECT_LT(v->as_int(), 5);  // end is exclusive
    seen.insert(v->as_int());
  }
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2, 3, 4}));
  for (int i = 0; i < 100; ++i) {
    auto v = Run("States.MathRandom(-99999, -9999)");
    ASSERT_TRUE(v.ok());
    EXPECT_GE(v->as_int(), -99999);
    EXPECT_LT(v->as_int(), -9999);
  }
  EXPECT_EQ(Eval("States.MathRandom(7, 8)"), "7");
  EXPECT_EQ(Eval("States.MathRandom(6.5, 8.4)"), "7");          // rounded to [7, 8)
  EXPECT_EQ(ErrorOf("States.MathRandom(6.5, 7.4)"), kFailure);  // rounded to [7, 7)
}

TEST_F(IntrinsicTest, MathRandomUsesTheEnvRng) {
  Rng a(7), b(7);
  auto in = Intrinsic::Parse("States.MathRandom(0, 1000000)");
  ASSERT_TRUE(in.ok());
  auto x = in->Evaluate(IntrinsicEnv{input_, context_, &a});
  auto y = in->Evaluate(IntrinsicEnv{input_, context_, &b});
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(x->as_int(), y->as_int());
  auto z = in->Evaluate(IntrinsicEnv{input_, context_, &a});
  ASSERT_TRUE(z.ok());
  EXPECT_NE(x->as_int(), z->as_int());  // the Rng advanced
}

TEST_F(IntrinsicTest, MathRandomWithSeedIsDeterministic) {
  input_ = J(R"({"start": 0, "end": 999, "seed": 3})");
  std::string first = Eval("States.MathRandom($.start, $.end, $.seed)");
  Rng before = rng_;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Eval("States.MathRandom($.start, $.end, $.seed)"), first);
  }
  EXPECT_EQ(rng_.Next(), before.Next());  // the seeded form leaves the env Rng alone
  auto v = json::Parse(first);
  ASSERT_TRUE(v.ok() && v->is_int());
  EXPECT_GE(v->as_int(), 0);
  EXPECT_LT(v->as_int(), 999);
  std::set<std::string> values;
  for (int s = 0; s < 20; ++s) {
    values.insert(Eval("States.MathRandom(0, 1000000, " + std::to_string(s) + ")"));
  }
  EXPECT_GT(values.size(), 15u);  // different seeds, different numbers
}

TEST_F(IntrinsicTest, MathRandomFailures) {
  EXPECT_EQ(ErrorOf("States.MathRandom(5, 5)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathRandom(9, 1)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathRandom('1', 5)"), kFailure);
  EXPECT_EQ(ErrorOf("States.MathRandom(1, 5, 'seed')"), kFailure);
}

// --- Strings and UUIDs ---------------------------------------------------------

TEST_F(IntrinsicTest, StringSplit) {
  input_ = J(R"({"inputString": "1,2,3,4,5", "splitter": ",",
                 "multi": "This.is+a,test=string", "multiSplitter": ".+,=",
                 "arrow": "a→b→c"})");
  EXPECT_EQ(Eval("States.StringSplit($.inputString, $.splitter)"), R"(["1","2","3","4","5"])");
  EXPECT_EQ(Eval("States.StringSplit($.multi, $.multiSplitter)"),
            R"(["This","is","a","test","string"])");
  EXPECT_EQ(Eval("States.StringSplit(',,a,,b,', ',')"), R"(["a","b"])");
  EXPECT_EQ(Eval("States.StringSplit('a-b_c', '_-')"), R"(["a","b","c"])");
  EXPECT_EQ(Eval("States.StringSplit('abc', ',')"), R"(["abc"])");
  EXPECT_EQ(Eval("States.StringSplit('abc', '')"), R"(["abc"])");
  EXPECT_EQ(Eval("States.StringSplit('', ',')"), "[]");
  EXPECT_EQ(Eval("States.StringSplit(',,,', ',')"), "[]");
  EXPECT_EQ(Eval("States.StringSplit($.arrow, '→')"), R"(["a","b","c"])");
  EXPECT_EQ(Eval("States.StringSplit('a b  c', ' ')"), R"(["a","b","c"])");
  EXPECT_EQ(ErrorOf("States.StringSplit(1, ',')"), kFailure);
  EXPECT_EQ(ErrorOf("States.StringSplit('a,b', 1)"), kFailure);
}

TEST_F(IntrinsicTest, UuidIsVersion4FromTheRng) {
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto v = Run("States.UUID()");
    ASSERT_TRUE(v.ok());
    ASSERT_TRUE(v->is_string());
    EXPECT_TRUE(std::regex_match(v->as_string(), v4)) << v->as_string();
    seen.insert(v->as_string());
  }
  EXPECT_EQ(seen.size(), 50u);
  Rng a(99), b(99);
  auto in = Intrinsic::Parse("States.UUID()");
  ASSERT_TRUE(in.ok());
  EXPECT_EQ(in->Evaluate(IntrinsicEnv{input_, context_, &a})->as_string(),
            in->Evaluate(IntrinsicEnv{input_, context_, &b})->as_string());
}

TEST(IntrinsicDefaultTest, DefaultConstructedFailsCleanly) {
  Intrinsic in;
  json::Value v;
  Rng rng(1);
  auto r = in.Evaluate(IntrinsicEnv{v, v, &rng});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ErrorName(r.status()), kFailure);
  EXPECT_THAT(in.text(), StartsWith(""));
}

}  // namespace
}  // namespace saga::asl
