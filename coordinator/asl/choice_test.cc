#include "coordinator/asl/choice.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "coordinator/asl/errors.h"

namespace saga::asl {
namespace {

using ::testing::HasSubstr;

json::Value J(std::string_view text) {
  auto v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << text << ": " << v.status().message();
  return v.ok() ? *v : json::Value();
}

// The Choice state input used by most tests.
constexpr std::string_view kInput = R"({
  "str": "banana", "apple": "apple", "cherry": "cherry", "empty": "",
  "int": 10, "dbl": 10.0, "half": 2.5, "neg": -3, "big": 20,
  "yes": true, "no": false, "nil": null,
  "numstr": "10", "boolstr": "true",
  "ts": "2016-03-14T01:59:00Z", "ts_offset": "2016-03-14T02:59:00+01:00",
  "ts_later": "2016-03-14T01:59:00.5Z", "not_ts": "2016-03-14",
  "file": "log-2024-01.txt", "star": "a*b", "backslash": "a\\b",
  "obj": {"k": 1}, "arr": [1, 2],
  "items": [{"x": 1}, {"x": 2}]
})";

class ChoiceTest : public ::testing::Test {
 protected:
  // "true", "false", or "<ErrorName>: <cause>" (compile errors: "compile: ...").
  std::string Match(std::string_view rule) {
    auto r = ChoiceRule::Compile(J(rule));
    if (!r.ok()) return "compile: " + std::string(r.status().message());
    auto m = r->Matches(input_, context_);
    if (!m.ok()) return ErrorName(m.status()) + ": " + std::string(m.status().message());
    return *m ? "true" : "false";
  }

  // Builds {"Variable": var, op: operand} and matches it.
  std::string Op(std::string_view var, std::string_view op, std::string_view operand_json) {
    return Match(absl::StrCat(R"({"Variable": ")", absl::string_view(var.data(), var.size()),
                              R"(", ")", absl::string_view(op.data(), op.size()), R"(": )",
                              absl::string_view(operand_json.data(), operand_json.size()),
                              R"(, "Next": "N"})"));
  }

  json::Value input_ = J(kInput);
  json::Value context_ = J(R"({"Execution": {"Name": "run-7"}, "Map": {"Item": {"Index": 3}}})");
};

// --- Compile -------------------------------------------------------------------

TEST_F(ChoiceTest, CompileErrors) {
  struct Case {
    const char* rule;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {R"("x")", "must be an object"},
           {R"({"Next": "A"})", "needs Variable, And, Or or Not"},
           {R"({"Variable": "$.a", "Next": "A"})", "needs a comparison operator"},
           {R"({"Variable": 5, "IsNull": true})", "Variable must be a string path"},
           {R"({"Variable": "a.b", "IsNull": true})", "Variable is not a valid path"},
           {R"({"Variable": "$.a", "StringEquals": "x", "IsNull": true})",
            "two comparison operators"},
           {R"({"Variable": "$.a", "StringEquals": 1})", "StringEquals must be a string"},
           {R"({"Variable": "$.a", "StringMatches": 1})", "StringMatches must be a string"},
           {R"({"Variable": "$.a", "NumericEquals": "1"})", "NumericEquals must be a number"},
           {R"({"Variable": "$.a", "BooleanEquals": "true"})", "must be true or false"},
           {R"({"Variable": "$.a", "IsPresent": 1})", "IsPresent must be true or false"},
           {R"({"Variable": "$.a", "TimestampEquals": "2016-03-14"})", "RFC 3339"},
           {R"({"Variable": "$.a", "TimestampLessThan": 5})", "RFC 3339"},
           {R"({"Variable": "$.a", "StringEqualsPath": 5})", "must be a string path"},
           {R"({"Variable": "$.a", "NumericLessThanPath": "b"})", "is not a valid path"},
           {R"({"Variable": "$.a", "StringEqual": "x"})", "unknown field 'StringEqual'"},
           {R"({"And": []})", "And must be a non-empty array"},
           {R"({"Or": {"Variable": "$.a", "IsNull": true}})", "Or must be a non-empty array"},
           {R"({"Not": [{"Variable": "$.a", "IsNull": true}]})", "must be an object"},
           {R"({"And": [{"Variable": "$.a", "IsNull": true}], "Not": {}})", "cannot have both"},
           {R"({"And": [{"Variable": "$.a", "IsNull": true}], "Variable": "$.a"})",
            "cannot be combined"},
           {R"({"Or": [{"Variable": "$.a", "IsNull": true}, {"Variable": "$.b"}]})",
            "needs a comparison operator"},
       }) {
    auto r = ChoiceRule::Compile(J(c.rule));
    ASSERT_FALSE(r.ok()) << "accepted: " << c.rule;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.rule;
    EXPECT_THAT(r.status().message(), HasSubstr(c.message)) << c.rule;
  }
}

TEST_F(ChoiceTest, NextAndCommentAreIgnored) {
  EXPECT_EQ(Match(R"({"Variable": "$.int", "NumericEquals": 10, "Next": "A", "Comment": "c"})"),
            "true");
}

TEST_F(ChoiceTest, CompileRejectsDeepNesting) {
  std::string rule = R"({"Variable": "$.int", "IsNumeric": true})";
  for (int i = 0; i < 100; ++i) rule = R"({"Not": )" + rule + "}";
  EXPECT_THAT(Match(rule), HasSubstr("compile: choice rules are nested too deeply"));
}

TEST_F(ChoiceTest, DefaultRuleMatchesNothing) {
  ChoiceRule r;
  auto m = r.Matches(input_, context_);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(*m);
}

// --- Strings -------------------------------------------------------------------

TEST_F(ChoiceTest, StringEquals) {
  EXPECT_EQ(Op("$.str", "StringEquals", R"("banana")"), "true");
  EXPECT_EQ(Op("$.str", "StringEquals", R"("Banana")"), "false");
  EXPECT_EQ(Op("$.empty", "StringEquals", R"("")"), "true");
  EXPECT_EQ(Op("$.int", "StringEquals", R"("10")"), "false");  // type mismatch
  EXPECT_EQ(Op("$.numstr", "StringEquals", R"("10")"), "true");
  EXPECT_EQ(Op("$.nil", "StringEquals", R"("null")"), "false");
}

TEST_F(ChoiceTest, StringOrdering) {
  EXPECT_EQ(Op("$.str", "StringLessThan", R"("cherry")"), "true");
  EXPECT_EQ(Op("$.str", "StringLessThan", R"("apple")"), "false");
  EXPECT_EQ(Op("$.str", "StringLessThan", R"("banana")"), "false");
  EXPECT_EQ(Op("$.str", "StringLessThanEquals", R"("banana")"), "true");
  EXPECT_EQ(Op("$.str", "StringLessThanEquals", R"("apple")"), "false");
  EXPECT_EQ(Op("$.str", "StringGreaterThan", R"("apple")"), "true");
  EXPECT_EQ(Op("$.str", "StringGreaterThan", R"("banana")"), "false");
  EXPECT_EQ(Op("$.str", "StringGreaterThanEquals", R"("banana")"), "true");
  EXPECT_EQ(Op("$.str", "StringGreaterThanEquals", R"("cherry")"), "false");
  EXPECT_EQ(Op("$.str", "StringGreaterThan", R"("B")"), "true");  // byte order: 'b' > 'B'
  EXPECT_EQ(Op("$.int", "StringLessThan", R"("z")"), "false");    // type mismatch
  EXPECT_EQ(Op("$.yes", "StringGreaterThanEquals", R"("")"), "false");
}

TEST_F(ChoiceTest, StringPathForms) {
  EXPECT_EQ(Op("$.str", "StringEqualsPath", R"("$.str")"), "true");
  EXPECT_EQ(Op("$.str", "StringEqualsPath", R"("$.apple")"), "false");
  EXPECT_EQ(Op("$.str", "StringLessThanPath", R"("$.cherry")"), "true");
  EXPECT_EQ(Op("$.str", "StringLessThanEqualsPath", R"("$.apple")"), "false");
  EXPECT_EQ(Op("$.str", "StringGreaterThanPath", R"("$.apple")"), "true");
  EXPECT_EQ(Op("$.str", "StringGreaterThanEqualsPath", R"("$.str")"), "true");
  EXPECT_EQ(Op("$.numstr", "StringEqualsPath", R"("$.int")"), "false");  // operand not a string
  EXPECT_EQ(Op("$$.Execution.Name", "StringEqualsPath", R"("$$.Execution.Name")"), "true");
}

TEST_F(ChoiceTest, StringMatchesWildcards) {
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log-*.txt")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log-*.csv")"), "false");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("*")"), "true");
  EXPECT_EQ(Op("$.empty", "StringMatches", R"("*")"), "true");
  EXPECT_EQ(Op("$.empty", "StringMatches", R"("")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log-2024-01.txt")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log")"), "false");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("*.txt")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log*")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("*2024*")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("l*g*0*1*t")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("*01*2024*")"), "false");  // order matters
  EXPECT_EQ(Op("$.file", "StringMatches", R"("**txt")"), "true");
  EXPECT_EQ(Op("$.str", "StringMatches", R"("*ana*ana")"), "false");  // runs cannot overlap
  EXPECT_EQ(Op("$.str", "StringMatches", R"("*an*na")"), "true");
  EXPECT_EQ(Op("$.str", "StringMatches", R"("b?nana")"), "false");  // no '?' wildcard
}

TEST_F(ChoiceTest, StringMatchesEscapes) {
  // In JSON "\\*" is the two characters \* : a literal star.
  EXPECT_EQ(Op("$.star", "StringMatches", R"("a\\*b")"), "true");
  EXPECT_EQ(Op("$.file", "StringMatches", R"("log-\\*")"), "false");
  EXPECT_EQ(Op("$.star", "StringMatches", R"("*\\**")"), "true");
  EXPECT_EQ(Op("$.str", "StringMatches", R"("*\\**")"), "false");
  // "\\\\" is \\ : a literal backslash.
  EXPECT_EQ(Op("$.backslash", "StringMatches", R"("a\\\\b")"), "true");
  EXPECT_EQ(Op("$.backslash", "StringMatches", R"("a\\\\*")"), "true");
  EXPECT_EQ(Op("$.str", "StringMatches", R"("a\\\\*")"), "false");
}

TEST_F(ChoiceTest, StringMatchesTypeMismatch) {
  EXPECT_EQ(Op("$.int", "StringMatches", R"("*")"), "false");
  EXPECT_EQ(Op("$.nil", "StringMatches", R"("*")"), "false");
}

// --- Numbers -------------------------------------------------------------------

TEST_F(ChoiceTest, NumericComparisons) {
  EXPECT_EQ(Op("$.int", "NumericEquals", "10"), "true");
  EXPECT_EQ(Op("$.int", "NumericEquals", "10.0"), "true");
  EXPECT_EQ(Op("$.dbl", "NumericEquals", "10"), "true");
  EXPECT_EQ(Op("$.int", "NumericEquals", "11"), "false");
  EXPECT_EQ(Op("$.half", "NumericEquals", "2.5"), "true");
  EXPECT_EQ(Op("$.int", "NumericLessThan", "10.5"), "true");
  EXPECT_EQ(Op("$.int", "NumericLessThan", "10"), "false");
  EXPECT_EQ(Op("$.neg", "NumericLessThan", "0"), "true");
  EXPECT_EQ(Op("$.int", "NumericGreaterThan", "9.99"), "true");
  EXPECT_EQ(Op("$.int", "NumericGreaterThan", "10"), "false");
  EXPECT_EQ(Op("$.int", "NumericLessThanEquals", "10"), "true");
  EXPECT_EQ(Op("$.int", "NumericLessThanEquals", "9"), "false");
  EXPECT_EQ(Op("$.int", "NumericGreaterThanEquals", "10"), "true");
  EXPECT_EQ(Op("$.int", "NumericGreaterThanEquals", "11"), "false");
}

TEST_F(ChoiceTest, NumericTypeMismatchIsFalse) {
  EXPECT_EQ(Op("$.numstr", "NumericEquals", "10"), "false");
  EXPECT_EQ(Op("$.yes", "NumericEquals", "1"), "false");
  EXPECT_EQ(Op("$.nil", "NumericLessThan", "1"), "false");
  EXPECT_EQ(Op("$.arr", "NumericGreaterThan", "0"), "false");
  EXPECT_EQ(Op("$.obj", "NumericGreaterThanEquals", "0"), "false");
}

TEST_F(ChoiceTest, NumericLargeIntegersCompareExactly) {
  input_ = J(R"({"a": 9007199254740993})");
  EXPECT_EQ(Op("$.a", "NumericEquals", "9007199254740993"), "true");
  EXPECT_EQ(Op("$.a", "NumericGreaterThan", "9007199254740992"), "true");
}

TEST_F(ChoiceTest, NumericPathForms) {
  EXPECT_EQ(Op("$.int", "NumericEqualsPath", R"("$.dbl")"), "true");
  EXPECT_EQ(Op("$.int", "NumericLessThanPath", R"("$.big")"), "true");
  EXPECT_EQ(Op("$.int", "NumericGreaterThanPath", R"("$.big")"), "false");
  EXPECT_EQ(Op("$.int", "NumericLessThanEqualsPath", R"("$.dbl")"), "true");
  EXPECT_EQ(Op("$.int", "NumericGreaterThanEqualsPath", R"("$.neg")"), "true");
  EXPECT_EQ(Op("$.int", "NumericEqualsPath", R"("$.numstr")"), "false");
  EXPECT_EQ(Op("$$.Map.Item.Index", "NumericEquals", "3"), "true");
  EXPECT_EQ(Op("$.half", "NumericLessThanPath", R"("$$.Map.Item.Index")"), "true");
}

// --- Booleans ------------------------------------------------------------------

TEST_F(ChoiceTest, BooleanEquals) {
  EXPECT_EQ(Op("$.yes", "BooleanEquals", "true"), "true");
  EXPECT_EQ(Op("$.yes", "BooleanEquals", "false"), "false");
  EXPECT_EQ(Op("$.no", "BooleanEquals", "false"), "true");
  EXPECT_EQ(Op("$.boolstr", "BooleanEquals", "true"), "false");  // type mismatch
  EXPECT_EQ(Op("$.int", "BooleanEquals", "true"), "false");
  EXPECT_EQ(Op("$.nil", "BooleanEquals", "false"), "false");
  EXPECT_EQ(Op("$.yes", "BooleanEqualsPath", R"("$.yes")"), "true");
  EXPECT_EQ(Op("$.yes", "BooleanEqualsPath", R"("$.no")"), "false");
  EXPECT_EQ(Op("$.yes", "BooleanEqualsPath", R"("$.boolstr")"), "false");
}

// --- Timestamps ----------------------------------------------------------------

TEST_F(ChoiceTest, TimestampComparisons) {
  EXPECT_EQ(Op("$.ts", "TimestampEquals", R"("2016-03-14T01:59:00Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampEquals", R"("2016-03-14T01:59:00.000Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampEquals", R"("2016-03-13T20:59:00-05:00")"), "true");
  EXPECT_EQ(Op("$.ts_offset", "TimestampEquals", R"("2016-03-14T01:59:00Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampEquals", R"("2016-03-14T01:59:01Z")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampLessThan", R"("2016-03-14T01:59:00.000001Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampLessThan", R"("2016-03-14T01:59:00Z")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampGreaterThan", R"("2016-03-14T01:58:59.999Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampGreaterThan", R"("2017-01-01T00:00:00Z")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampLessThanEquals", R"("2016-03-14T02:59:00+01:00")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampLessThanEquals", R"("2016-03-14T01:58:00Z")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampGreaterThanEquals", R"("2016-03-14T01:59:00Z")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampGreaterThanEquals", R"("2016-03-14T01:59:00.1Z")"), "false");
}

TEST_F(ChoiceTest, TimestampTypeMismatchIsFalse) {
  EXPECT_EQ(Op("$.not_ts", "TimestampEquals", R"("2016-03-14T00:00:00Z")"), "false");
  EXPECT_EQ(Op("$.int", "TimestampLessThan", R"("2016-03-14T00:00:00Z")"), "false");
  EXPECT_EQ(Op("$.str", "TimestampGreaterThan", R"("2016-03-14T00:00:00Z")"), "false");
}

TEST_F(ChoiceTest, TimestampPathForms) {
  EXPECT_EQ(Op("$.ts", "TimestampEqualsPath", R"("$.ts_offset")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampLessThanPath", R"("$.ts_later")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampGreaterThanPath", R"("$.ts_later")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampLessThanEqualsPath", R"("$.ts_offset")"), "true");
  EXPECT_EQ(Op("$.ts_later", "TimestampGreaterThanEqualsPath", R"("$.ts")"), "true");
  EXPECT_EQ(Op("$.ts", "TimestampEqualsPath", R"("$.not_ts")"), "false");
  EXPECT_EQ(Op("$.ts", "TimestampEqualsPath", R"("$.int")"), "false");
}

// --- Type tests ----------------------------------------------------------------

TEST_F(ChoiceTest, IsNull) {
  EXPECT_EQ(Op("$.nil", "IsNull", "true"), "true");
  EXPECT_EQ(Op("$.nil", "IsNull", "false"), "false");
  EXPECT_EQ(Op("$.str", "IsNull", "true"), "false");
  EXPECT_EQ(Op("$.str", "IsNull", "false"), "true");
}

TEST_F(ChoiceTest, IsPresent) {
  EXPECT_EQ(Op("$.nil", "IsPresent", "true"), "true");
  EXPECT_EQ(Op("$.nil", "IsPresent", "false"), "false");
  EXPECT_EQ(Op("$.missing", "IsPresent", "true"), "false");
  EXPECT_EQ(Op("$.missing", "IsPresent", "false"), "true");
  EXPECT_EQ(Op("$.arr[5]", "IsPresent", "true"), "false");
  EXPECT_EQ(Op("$.arr[1]", "IsPresent", "true"), "true");
  EXPECT_EQ(Op("$$.Execution.Name", "IsPresent", "true"), "true");
  EXPECT_EQ(Op("$$.Execution.Nope", "IsPresent", "true"), "false");
  // An indefinite path matching nothing counts as absent.
  EXPECT_EQ(Op("$.items[?(@.x > 5)]", "IsPresent", "true"), "false");
  EXPECT_EQ(Op("$.items[?(@.x > 1)]", "IsPresent", "true"), "true");
}

TEST_F(ChoiceTest, IsNumeric) {
  EXPECT_EQ(Op("$.int", "IsNumeric", "true"), "true");
  EXPECT_EQ(Op("$.half", "IsNumeric", "true"), "true");
  EXPECT_EQ(Op("$.numstr", "IsNumeric", "true"), "false");
  EXPECT_EQ(Op("$.yes", "IsNumeric", "true"), "false");
  EXPECT_EQ(Op("$.numstr", "IsNumeric", "false"), "true");
  EXPECT_EQ(Op("$.int", "IsNumeric", "false"), "false");
}

TEST_F(ChoiceTest, IsString) {
  EXPECT_EQ(Op("$.str", "IsString", "true"), "true");
  EXPECT_EQ(Op("$.ts", "IsString", "true"), "true");
  EXPECT_EQ(Op("$.int", "IsString", "true"), "false");
  EXPECT_EQ(Op("$.nil", "IsString", "false"), "true");
  EXPECT_EQ(Op("$.obj", "IsString", "true"), "false");
}

TEST_F(ChoiceTest, IsBoolean) {
  EXPECT_EQ(Op("$.yes", "IsBoolean", "true"), "true");
  EXPECT_EQ(Op("$.no", "IsBoolean", "true"), "true");
  EXPECT_EQ(Op("$.boolstr", "IsBoolean", "true"), "false");
  EXPECT_EQ(Op("$.int", "IsBoolean", "false"), "true");
}

TEST_F(ChoiceTest, IsTimestamp) {
  EXPECT_EQ(Op("$.ts", "IsTimestamp", "true"), "true");
  EXPECT_EQ(Op("$.ts_later", "IsTimestamp", "true"), "true");
  EXPECT_EQ(Op("$.not_ts", "IsTimestamp", "true"), "false");
  EXPECT_EQ(Op("$.int", "IsTimestamp", "true"), "false");
  EXPECT_EQ(Op("$.str", "IsTimestamp", "false"), "true");
}

// --- Missing values --------------------------------------------------------------

TEST_F(ChoiceTest, MissingVariableIsStatesRuntime) {
  EXPECT_EQ(Op("$.missing", "StringEquals", R"("x")"),
            "States.Runtime: Invalid path '$.missing': The choice state's condition path "
            "references an invalid value.");
  for (const char* op : {"NumericEquals", "NumericLessThan"}) {
    EXPECT_THAT(Op("$.missing.deeper", op, "1"), HasSubstr("States.Runtime: Invalid path "
                                                           "'$.missing.deeper'"));
  }
  EXPECT_THAT(Op("$.missing", "IsNull", "true"), HasSubstr("States.Runtime"));
  EXPECT_THAT(Op("$.missing", "IsNull", "false"), HasSubstr("States.Runtime"));
  EXPECT_THAT(Op("$.missing", "IsString", "false"), HasSubstr("States.Runtime"));
  EXPECT_THAT(Op("$.missing", "StringMatches", R"("*")"), HasSubstr("States.Runtime"));
  EXPECT_THAT(Op("$.missing", "BooleanEquals", "true"), HasSubstr("States.Runtime"));
  EXPECT_THAT(Op("$.missing", "TimestampEquals", R"("2016-03-14T01:59:00Z")"),
              HasSubstr("States.Runtime"));
}

TEST_F(ChoiceTest, MissingPathOperandIsStatesRuntime) {
  EXPECT_EQ(Op("$.str", "StringEqualsPath", R"("$.nope")"),
            "States.Runtime: Invalid path '$.nope': The choice state's condition path "
            "references an invalid value.");
  EXPECT_THAT(Op("$.int", "NumericLessThanPath", R"("$$.Nope")"),
              HasSubstr("States.Runtime: Invalid path '$$.Nope'"));
}

TEST_F(ChoiceTest, IndefiniteVariableIsAnArray) {
  EXPECT_EQ(Op("$.items[*].x", "NumericEquals", "1"), "false");  // an array is not a number
  EXPECT_EQ(Op("$.items[*].x", "IsNumeric", "false"), "true");
}

// --- And / Or / Not --------------------------------------------------------------

TEST_F(ChoiceTest, BooleanCombinators) {
  EXPECT_EQ(Match(R"({"And": [{"Variable": "$.int", "NumericGreaterThanEquals": 5},
                              {"Variable": "$.int", "NumericLessThan": 20}], "Next": "A"})"),
            "true");
  EXPECT_EQ(Match(R"({"And": [{"Variable": "$.int", "NumericGreaterThanEquals": 5},
                              {"Variable": "$.int", "NumericLessThan": 10}]})"),
            "false");
  EXPECT_EQ(Match(R"({"Or": [{"Variable": "$.str", "StringEquals": "x"},
                             {"Variable": "$.yes", "BooleanEquals": true}]})"),
            "true");
  EXPECT_EQ(Match(R"({"Or": [{"Variable": "$.str", "StringEquals": "x"},
                             {"Variable": "$.no", "BooleanEquals": true}]})"),
            "false");
  EXPECT_EQ(Match(R"({"Not": {"Variable": "$.str", "StringEquals": "x"}, "Next": "A"})"), "true");
  EXPECT_EQ(Match(R"({"Not": {"Variable": "$.str", "StringEquals": "banana"}})"), "false");
  // A type mismatch is false, so its negation is true.
  EXPECT_EQ(Match(R"({"Not": {"Variable": "$.str", "NumericEquals": 1}})"), "true");
}

TEST_F(ChoiceTest, NestedCombinators) {
  // The AWS docs example: Not(type == "Private") And value in [20, 30).
  input_ = J(R"({"type": "Public", "value": 25})");
  const char* rule = R"({
    "And": [
      {"Not": {"Variable": "$.type", "StringEquals": "Private"}},
      {"Variable": "$.value", "NumericGreaterThanEquals": 20},
      {"Variable": "$.value", "NumericLessThan": 30}
    ],
    "Next": "Public"})";
  EXPECT_EQ(Match(rule), "true");
  input_ = J(R"({"type": "Private", "value": 25})");
  EXPECT_EQ(Match(rule), "false");
  input_ = J(R"({"type": "Public", "value": 30})");
  EXPECT_EQ(Match(rule), "false");
  EXPECT_EQ(Match(R"({"Or": [{"And": [{"Variable": "$.value", "IsPresent": true},
                                      {"Not": {"Variable": "$.value", "IsNull": true}}]},
                             {"Variable": "$.type", "StringMatches": "P*"}]})"),
            "true");
}

TEST_F(ChoiceTest, CombinatorsShortCircuit) {
  // The missing variable is never read, so there is no States.Runtime.
  EXPECT_EQ(Match(R"({"And": [{"Variable": "$.no", "BooleanEquals": true},
                              {"Variable": "$.missing", "IsNull": true}]})"),
            "false");
  EXPECT_EQ(Match(R"({"Or": [{"Variable": "$.yes", "BooleanEquals": true},
                             {"Variable": "$.missing", "IsNull": true}]})"),
            "true");
  EXPECT_THAT(Match(R"({"And": [{"Variable": "$.yes", "BooleanEquals": true},
                                {"Variable": "$.missing", "IsNull": true}]})"),
              HasSubstr("States.Runtime"));
  EXPECT_THAT(Match(R"({"Not": {"Variable": "$.missing", "IsNull": true}})"),
              HasSubstr("States.Runtime"));
}

TEST_F(ChoiceTest, CompiledRuleIsReusable) {
  auto r = ChoiceRule::Compile(J(R"({"Variable": "$.n", "NumericGreaterThan": 1})"));
  ASSERT_TRUE(r.ok());
  ChoiceRule copy = *r;
  EXPECT_TRUE(*copy.Matches(J(R"({"n": 2})"), json::Value()));
  EXPECT_FALSE(*copy.Matches(J(R"({"n": 1})"), json::Value()));
  EXPECT_TRUE(*r->Matches(J(R"({"n": 5})"), json::Value()));
}

// --- ParseTimestampMicros --------------------------------------------------------

TEST(ParseTimestampTest, ValidTimestamps) {
  EXPECT_EQ(ParseTimestampMicros("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T01:59:00Z"), int64_t{1457920740} * 1000000);
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T01:59:00.123456Z"),
            int64_t{1457920740} * 1000000 + 123456);
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T01:59:00.5Z"), int64_t{1457920740} * 1000000 + 500000);
  // Digits past microseconds are truncated.
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T01:59:00.1234569Z"),
            int64_t{1457920740} * 1000000 + 123456);
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T02:59:00+01:00"), int64_t{1457920740} * 1000000);
  EXPECT_EQ(ParseTimestampMicros("2016-03-13T20:29:00-05:30"), int64_t{1457920740} * 1000000);
  EXPECT_EQ(ParseTimestampMicros("2016-03-14T01:59:00.25-00:00"),
            int64_t{1457920740} * 1000000 + 250000);
  EXPECT_EQ(ParseTimestampMicros("1969-12-31T23:59:59Z"), -1000000);
  EXPECT_EQ(ParseTimestampMicros("1969-12-31T23:59:59.5Z"), -500000);
  EXPECT_EQ(ParseTimestampMicros("2000-02-29T12:00:00Z"), int64_t{951825600} * 1000000);
  EXPECT_EQ(ParseTimestampMicros("9999-12-31T23:59:59Z"), int64_t{253402300799} * 1000000);
  EXPECT_EQ(ParseTimestampMicros("0001-01-01T00:00:00Z"), int64_t{-62135596800} * 1000000);
}

TEST(ParseTimestampTest, RejectsNonRfc3339) {
  for (const char* s : {
           "",
           "2016-03-14",
           "2016-03-14T01:59:00",        // offset required
           "2016-03-14t01:59:00Z",       // uppercase T required
           "2016-03-14T01:59:00z",       // uppercase Z required
           "2016-03-14 01:59:00Z",       // 'T' required
           "2016-03-14T01:59Z",          // seconds required
           "2016-03-14T01:59:00.Z",      // empty fraction
           "2016-03-14T01:59:00+0100",   // offset needs a colon
           "2016-03-14T01:59:00+01",     // offset needs minutes
           "2016-03-14T01:59:00+24:00",  // offset hour range
           "2016-03-14T01:59:00Zjunk",   // trailing text
           "2016-3-14T01:59:00Z",        // two-digit month
           "2016-13-01T00:00:00Z",       // month range
           "2016-00-01T00:00:00Z",
           "2016-02-30T00:00:00Z",  // day range
           "2015-02-29T00:00:00Z",  // not a leap year
           "1900-02-29T00:00:00Z",  // century rule
           "2016-04-31T00:00:00Z",
           "2016-03-14T24:00:00Z",  // hour range
           "2016-03-14T01:60:00Z",
           "2016-03-14T01:59:60Z",
           "+2016-03-14T01:59:00Z",
           "2016-03-14T01:59:00.5",
       }) {
    EXPECT_EQ(ParseTimestampMicros(s), std::nullopt) << s;
  }
  EXPECT_NE(ParseTimestampMicros("2016-02-29T00:00:00Z"), std::nullopt);
}

}  // namespace
}  // namespace saga::asl
