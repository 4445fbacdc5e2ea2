#include "coordinator/asl/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "coordinator/common/json.h"

namespace saga::asl {

void PrintTo(const ValidationError& e, std::ostream* os) {
  *os << "{" << e.path << ": " << e.message << "}";
}

namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Matcher;
using ::testing::SizeIs;

Matcher<ValidationError> Err(const std::string& path, const std::string& substr) {
  return AllOf(Field("path", &ValidationError::path, path),
               Field("message", &ValidationError::message, HasSubstr(substr)));
}

Matcher<ValidationError> AtPath(const std::string& path) {
  return Field("path", &ValidationError::path, path);
}

std::vector<ValidationError> V(std::string_view text) {
  absl::StatusOr<json::Value> v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << v.status() << "\n" << text;
  if (!v.ok()) return {};
  return Validate(*v);
}

// A machine whose only state "S" is `state` (JSON text).
std::vector<ValidationError> One(const std::string& state) {
  return V(R"({"StartAt":"S","States":{"S":)" + state + "}}");
}

// A machine starting at "S" = `state`, with terminal states "Done" and "Oops"
// reachable from "S" only if `state` points at them.
std::vector<ValidationError> WithTargets(const std::string& state) {
  return V(R"({"StartAt":"S","States":{"S":)" + state +
           R"(,"Done":{"Type":"Succeed"},"Oops":{"Type":"Fail"}}})");
}

constexpr char kComplex[] = R"json({
  "Comment": "Order saga",
  "Version": "1.0",
  "TimeoutSeconds": 3600,
  "QueryLanguage": "JSONPath",
  "StartAt": "Validate Order",
  "States": {
    "Validate Order": {
      "Type": "Pass",
      "Comment": "shape the input",
      "InputPath": "$.order",
      "Parameters": {
        "id.$": "$.id",
        "items.$": "$.items",
        "label.$": "States.Format('order {}', $.id)",
        "execution.$": "$$.Execution.Id",
        "static": {"nested": [1, {"x.$": "$.id"}]}
      },
      "ResultPath": "$.order",
      "OutputPath": "$",
      "Next": "Route"
    },
    "Route": {
      "Type": "Choice",
      "Choices": [
        {
          "And": [
            {"Variable": "$.order.total", "NumericGreaterThan": 100},
            {"Not": {"Variable": "$.order.vip", "BooleanEquals": true}},
            {"Or": [
              {"Variable": "$.order.country", "StringEquals": "DE"},
              {"Variable": "$.order.country", "StringMatches": "F*"}
            ]}
          ],
          "Next": "Review"
        },
        {"Variable": "$.order.placed", "TimestampLessThan": "2024-01-01T00:00:00Z",
         "Next": "Reject"},
        {"Variable": "$.order.limit", "NumericLessThanEqualsPath": "$.order.total",
         "Next": "Reject"},
        {"Variable": "$.order.coupon", "IsPresent": true, "Comment": "has coupon",
         "Next": "Charge Card"}
      ],
      "Default": "Charge Card"
    },
    "Review": {
      "Type": "Wait",
      "Timestamp": "2030-03-14T01:59:00.123+02:00",
      "Next": "Charge Card"
    },
    "Charge Card": {
      "Type": "Task",
      "Resource": "payments:charge",
      "Parameters": {"amount.$": "$.order.total"},
      "ResultSelector": {"chargeId.$": "$.id"},
      "ResultPath": "$.charge",
      "TimeoutSeconds": 30,
      "HeartbeatSeconds": 10,
      "Retry": [
        {"ErrorEquals": ["Payments.Throttled", "States.Timeout"], "IntervalSeconds": 2,
         "MaxAttempts": 5, "BackoffRate": 1.5, "MaxDelaySeconds": 60, "JitterStrategy": "FULL"},
        {"ErrorEquals": ["States.ALL"]}
      ],
      "Catch": [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Undo"}
      ],
      "Compensation": {
        "Resource": "payments:refund",
        "Parameters": {"chargeId.$": "$.charge.chargeId"},
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 10}],
        "TimeoutSeconds": 20,
        "HeartbeatSeconds": 5,
        "Comment": "refund"
      },
      "Next": "Ship"
    },
    "Ship": {
      "Type": "Parallel",
      "Branches": [
        {
          "StartAt": "Reserve",
          "States": {
            "Reserve": {"Type": "Task", "Resource": "stock:reserve", "TimeoutSecondsPath": "$.t",
                        "End": true}
          }
        },
        {
          "Comment": "notify",
          "StartAt": "Notify",
          "States": {"Notify": {"Type": "Task", "Resource": "mail:send", "End": true}}
        }
      ],
      "ResultPath": null,
      "Catch": [{"ErrorEquals": ["States.BranchFailed"], "Next": "Undo"}],
      "Next": "Pack Items"
    },
    "Pack Items": {
      "Type": "Map",
      "ItemsPath": "$.order.items",
      "ItemSelector": {"item.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
      "MaxConcurrency": 4,
      "ToleratedFailurePercentage": 10,
      "ItemProcessor": {
        "ProcessorConfig": {"Mode": "INLINE"},
        "StartAt": "Pack",
        "States": {
          "Pack": {"Type": "Task", "Resource": "warehouse:pack", "Next": "Packed"},
          "Packed": {"Type": "Succeed"}
        }
      },
      "Label": "packing",
      "ResultPath": "$.packed",
      "Next": "Delay"
    },
    "Delay": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Done"},
    "Done": {"Type": "Succeed", "OutputPath": "$.charge"},
    "Undo": {"Type": "Compensate", "ResultPath": "$.undo", "Next": "Failed"},
    "Reject": {"Type": "Fail", "Error": "Order.Rejected", "Cause": "too old"},
    "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error",
               "CausePath": "States.Format('failed: {}', $.error.Cause)"}
  }
})json";

// --- whole definitions -------------------------------------------------------

TEST(ValidateTest, ComplexValidDefinitionHasNoErrors) { EXPECT_THAT(V(kComplex), IsEmpty()); }

TEST(ValidateTest, MinimalDefinitionHasNoErrors) {
  EXPECT_THAT(One(R"({"Type":"Succeed"})"), IsEmpty());
}

TEST(ValidateTest, LegacyIteratorAndParametersAreAccepted) {
  EXPECT_THAT(One(R"({"Type":"Map","Parameters":{"x.$":"$$.Map.Item.Value"},
      "Iterator":{"StartAt":"I","States":{"I":{"Type":"Pass","End":true}}},"End":true})"),
              IsEmpty());
}

TEST(ValidateTest, ReportsEveryProblemInDocumentOrder) {
  auto errors = V(R"({
    "StartAt": "Missing",
    "Bogus": 1,
    "States": {
      "A": {"Type": "Task", "Next": "Nowhere"},
      "B": {"Type": "Pass", "End": true, "InputPath": "nope",
            "Retry": [{"ErrorEquals": ["States.ALL"]}]},
      "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": 1}]}
    },
    "TimeoutSeconds": 0
  })");
  EXPECT_THAT(errors,
              ElementsAre(Err("$.StartAt", "does not exist"),
                          Err("$.Bogus", "Field 'Bogus' is not allowed"),
                          Err("$.States.A", "missing the required field 'Resource'"),
                          Err("$.States.A.Next", "'Nowhere'"), AtPath("$.States.B.InputPath"),
                          Err("$.States.B.Retry", "not allowed in a Pass state"),
                          Err("$.States.C.Choices[0]", "'Next'"),
                          Err("$.States.C.Choices[0].StringEquals", "must be a string"),
                          Err("$.TimeoutSeconds", "positive integer")));
}

TEST(ValidateTest, ErrorsAreSortedEvenWhenFoundOutOfOrder) {
  // The Heartbeat check runs before field checks but its path comes later.
  auto errors = One(R"({"Type":"Task","Comment":5,"Resource":"r","TimeoutSeconds":5,
                        "HeartbeatSeconds":5,"End":true})");
  EXPECT_THAT(errors, ElementsAre(AtPath("$.States.S.Comment"),
                                  Err("$.States.S.HeartbeatSeconds", "smaller than")));
}

TEST(ValidateTest, RootMustBeObject) {
  EXPECT_THAT(V("[]"), ElementsAre(Err("$", "must be a JSON object")));
  EXPECT_THAT(V("null"), ElementsAre(Err("$", "must be a JSON object")));
}

// --- ValidateText ------------------------------------------------------------

TEST(ValidateTextTest, AcceptsValidText) { EXPECT_THAT(ValidateText(kComplex), IsEmpty()); }

TEST(ValidateTextTest, RejectsOversizedText) {
  std::string big = R"({"StartAt":"S","States":{"S":{"Type":"Succeed","Comment":")";
  big.append(kMaxDefinitionBytes, 'x');
  big += R"("}}})";
  EXPECT_THAT(ValidateText(big), ElementsAre(Err("$", "definition is larger than 1048576 bytes")));
}

TEST(ValidateTextTest, ReportsJsonSyntaxErrorAtRoot) {
  auto errors = ValidateText(R"({"StartAt": )");
  ASSERT_THAT(errors, SizeIs(1));
  EXPECT_EQ(errors[0].path, "$");
  EXPECT_THAT(errors[0].message, HasSubstr("invalid JSON"));
}

TEST(ValidateTextTest, RejectsNonObjectRoot) {
  EXPECT_THAT(ValidateText("42"), ElementsAre(Err("$", "must be a JSON object")));
}

// --- top level -----------------------------------------------------------------

TEST(TopLevelTest, StartAtRequired) {
  EXPECT_THAT(V(R"({"States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$", "Missing required field 'StartAt'")));
}

TEST(TopLevelTest, StartAtMustBeString) {
  EXPECT_THAT(V(R"({"StartAt":1,"States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.StartAt", "StartAt must be a string")));
}

TEST(TopLevelTest, StartAtMustNameAState) {
  EXPECT_THAT(V(R"({"StartAt":"X","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.StartAt", "'X', which does not exist")));
}

TEST(TopLevelTest, StatesRequired) {
  EXPECT_THAT(V(R"({"StartAt":"S"})"), ElementsAre(Err("$", "Missing required field 'States'")));
}

TEST(TopLevelTest, StatesMustBeNonEmptyObject) {
  EXPECT_THAT(V(R"({"StartAt":"S","States":[]})"),
              ElementsAre(Err("$.States", "must be an object")));
  EXPECT_THAT(
      V(R"({"StartAt":"S","States":{}})"),
      ElementsAre(Err("$.StartAt", "does not exist"), Err("$.States", "at least one state")));
}

TEST(TopLevelTest, CommentMustBeString) {
  EXPECT_THAT(V(R"({"Comment":{},"StartAt":"S","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.Comment", "Comment must be a string")));
}

TEST(TopLevelTest, VersionMustBe10) {
  EXPECT_THAT(V(R"({"Version":"2.0","StartAt":"S","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.Version", "Version must be \"1.0\"")));
  EXPECT_THAT(V(R"({"Version":1.0,"StartAt":"S","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(AtPath("$.Version")));
}

TEST(TopLevelTest, TimeoutSecondsRange) {
  auto with = [](const std::string& t) {
    return V(R"({"TimeoutSeconds":)" + t + R"(,"StartAt":"S","States":{"S":{"Type":"Succeed"}}})");
  };
  EXPECT_THAT(with("99999999"), IsEmpty());
  EXPECT_THAT(with("0"), ElementsAre(Err("$.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(with("-5"), ElementsAre(Err("$.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(with("1.5"), ElementsAre(Err("$.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(with("\"10\""), ElementsAre(Err("$.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(with("100000000"), ElementsAre(Err("$.TimeoutSeconds", "at most 99999999")));
}

TEST(TopLevelTest, QueryLanguage) {
  EXPECT_THAT(V(R"({"QueryLanguage":"JSONata","StartAt":"S","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.QueryLanguage", "JSONata is not supported yet")));
  EXPECT_THAT(V(R"({"QueryLanguage":"XPath","StartAt":"S","States":{"S":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.QueryLanguage", "must be \"JSONPath\"")));
}

TEST(TopLevelTest, JsonataAndVariableFieldsNotSupported) {
  EXPECT_THAT(V(R"({"StartAt":"S","States":{"S":{"Type":"Succeed"}},
                    "Arguments":{},"Output":{},"Assign":{},"Items":[]})"),
              ElementsAre(Err("$.Arguments", "Arguments is not supported yet"),
                          Err("$.Output", "Output is not supported yet"),
                          Err("$.Assign", "Assign is not supported yet"),
                          Err("$.Items", "Items is not supported yet")));
}

TEST(TopLevelTest, UnknownFieldRejected) {
  EXPECT_THAT(V(R"({"StartAt":"S","States":{"S":{"Type":"Succeed"}},"startAt":"S"})"),
              ElementsAre(Err("$.startAt", "Field 'startAt' is not allowed")));
}

// json::Parse keeps the last of repeated keys, but a Value built in code can
// hold duplicates; the validator reports them.
json::Value Succeed() { return json::Value(json::Object{{"Type", "Succeed"}}); }

TEST(TopLevelTest, DuplicateMemberReported) {
  json::Value def(json::Object{
      {"StartAt", "S"}, {"StartAt", "S"}, {"States", json::Value(json::Object{{"S", Succeed()}})}});
  EXPECT_THAT(Validate(def), ElementsAre(Err("$.StartAt", "appears more than once")));
}

// --- states: Type, fields, Next/End -------------------------------------------

TEST(StateTest, StateMustBeObject) {
  EXPECT_THAT(One("[]"), ElementsAre(Err("$.States.S", "must be an object")));
}

TEST(StateTest, TypeRequired) {
  EXPECT_THAT(One(R"({"End":true})"), ElementsAre(Err("$.States.S", "'Type'")));
}

TEST(StateTest, TypeMustBeKnownString) {
  EXPECT_THAT(One(R"({"Type":3})"), ElementsAre(Err("$.States.S.Type", "must be a string")));
  EXPECT_THAT(One(R"({"Type":"Activity","End":true})"),
              ElementsAre(Err("$.States.S.Type", "Unknown state Type 'Activity'")));
}

TEST(StateTest, UnknownFieldPerType) {
  EXPECT_THAT(
      One(R"({"Type":"Task","Resource":"r","Result":1,"End":true})"),
      ElementsAre(Err("$.States.S.Result", "Field 'Result' is not allowed in a Task state")));
  EXPECT_THAT(One(R"({"Type":"Pass","ResultSelector":{},"End":true})"),
              ElementsAre(Err("$.States.S.ResultSelector", "not allowed in a Pass state")));
  EXPECT_THAT(One(R"({"Type":"Succeed","ResultPath":"$.x"})"),
              ElementsAre(Err("$.States.S.ResultPath", "not allowed in a Succeed state")));
  EXPECT_THAT(One(R"({"Type":"Fail","InputPath":"$"})"),
              ElementsAre(Err("$.States.S.InputPath", "not allowed in a Fail state")));
  EXPECT_THAT(One(R"({"Type":"Wait","Seconds":1,"Retry":[],"End":true})"),
              ElementsAre(Err("$.States.S.Retry", "not allowed in a Wait state")));
  EXPECT_THAT(One(R"({"Type":"Compensate","Parameters":{},"End":true})"),
              ElementsAre(Err("$.States.S.Parameters", "not allowed in a Compensate state")));
}

TEST(StateTest, TerminalTypesMustNotHaveNextOrEnd) {
  EXPECT_THAT(WithTargets(R"({"Type":"Succeed","Next":"Done"})"),
              Contains(Err("$.States.S.Next", "Field 'Next' is not allowed in a Succeed state")));
  EXPECT_THAT(One(R"({"Type":"Fail","End":true})"),
              ElementsAre(Err("$.States.S.End", "Field 'End' is not allowed in a Fail state")));
  EXPECT_THAT(WithTargets(R"({"Type":"Choice","Choices":[{"Variable":"$.a","IsNull":true,
                                "Next":"Done"}],"Default":"Oops","End":true})"),
              ElementsAre(Err("$.States.S.End", "not allowed in a Choice state")));
}

TEST(StateTest, NonTerminalNeedsNextOrEnd) {
  EXPECT_THAT(One(R"({"Type":"Pass"})"),
              ElementsAre(Err("$.States.S", "must have either Next or \"End\": true")));
  EXPECT_THAT(One(R"({"Type":"Pass","End":false})"),
              ElementsAre(Err("$.States.S", "must have either Next")));
  EXPECT_THAT(One(R"({"Type":"Compensate"})"), ElementsAre(Err("$.States.S", "Compensate state")));
}

TEST(StateTest, NotBothNextAndEnd) {
  EXPECT_THAT(WithTargets(R"({"Type":"Pass","Next":"Done","End":true})"),
              Contains(Err("$.States.S.End", "cannot have both Next and")));
}

TEST(StateTest, EndMustBeBoolean) {
  EXPECT_THAT(One(R"({"Type":"Pass","End":"yes"})"),
              ElementsAre(Err("$.States.S", "must have either Next"),
                          Err("$.States.S.End", "End must be a boolean")));
}

TEST(StateTest, NextMustNameAState) {
  EXPECT_THAT(One(R"({"Type":"Pass","Next":"Nope"})"),
              ElementsAre(Err("$.States.S.Next", "names state 'Nope', which does not exist")));
  EXPECT_THAT(One(R"({"Type":"Pass","Next":7})"),
              ElementsAre(Err("$.States.S.Next", "Next must be a string")));
}

TEST(StateTest, UnreachableStates) {
  EXPECT_THAT(V(R"({"StartAt":"A","States":{
                  "A":{"Type":"Pass","Next":"C"},
                  "B":{"Type":"Pass","Next":"C"},
                  "C":{"Type":"Succeed"},
                  "D":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.States.B", "State 'B' is not reachable"),
                          Err("$.States.D", "State 'D' is not reachable")));
}

TEST(StateTest, ReachabilityFollowsChoicesDefaultAndCatch) {
  EXPECT_THAT(V(R"({"StartAt":"C","States":{
                  "C":{"Type":"Choice","Choices":[{"Variable":"$.a","IsNull":true,"Next":"T"}],
                       "Default":"X"},
                  "T":{"Type":"Task","Resource":"r","Catch":[{"ErrorEquals":["E"],"Next":"Y"}],
                       "End":true},
                  "X":{"Type":"Succeed"},
                  "Y":{"Type":"Succeed"}}})"),
              IsEmpty());
}

TEST(StateTest, JsonataAndVariablesOnStatesNotSupported) {
  EXPECT_THAT(One(R"({"Type":"Pass","QueryLanguage":"JSONata","End":true})"),
              ElementsAre(Err("$.States.S.QueryLanguage", "JSONata is not supported yet")));
  EXPECT_THAT(One(R"({"Type":"Pass","QueryLanguage":"JSONPath","End":true})"), IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Pass","Assign":{"x":1},"Output":{},"End":true})"),
              ElementsAre(Err("$.States.S.Assign", "Assign is not supported yet"),
                          Err("$.States.S.Output", "Output is not supported yet")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","Arguments":{},"End":true})"),
              ElementsAre(Err("$.States.S.Arguments", "Arguments is not supported yet")));
}

TEST(StateTest, DuplicateFieldInState) {
  json::Value state(json::Object{{"Type", "Pass"}, {"End", true}, {"End", true}});
  json::Value def(
      json::Object{{"StartAt", "S"}, {"States", json::Value(json::Object{{"S", state}})}});
  EXPECT_THAT(Validate(def),
              ElementsAre(Err("$.States.S.End", "Field 'End' appears more than once")));
}

// --- state names ---------------------------------------------------------------

TEST(StateNameTest, LengthLimit) {
  std::string ok(80, 'a');
  std::string bad(81, 'a');
  EXPECT_THAT(V(R"({"StartAt":")" + ok + R"(","States":{")" + ok + R"(":{"Type":"Succeed"}}})"),
              IsEmpty());
  EXPECT_THAT(V(R"({"StartAt":")" + bad + R"(","States":{")" + bad + R"(":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.States." + bad, "at most 80 characters")));
}

TEST(StateNameTest, ForbiddenCharacters) {
  EXPECT_THAT(V(R"({"StartAt":"a:b","States":{"a:b":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.States.a:b", "Invalid state name 'a:b'")));
  EXPECT_EQ(CheckName("a:b").empty(), false);
  EXPECT_EQ(CheckName("a b").empty(), false);
  EXPECT_EQ(CheckName("order-42_x.y").empty(), true);
  EXPECT_THAT(V(R"({"StartAt":"a\tb","States":{"a\tb":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.States.a\tb", "control character U+0009")));
  EXPECT_THAT(V(R"({"StartAt":"","States":{"":{"Type":"Succeed"}}})"),
              ElementsAre(Err("$.States.", "must not be empty")));
}

TEST(StateNameTest, SpacesAllowedInStateNames) {
  EXPECT_THAT(V(R"({"StartAt":"Hello World","States":{"Hello World":{"Type":"Succeed"}}})"),
              IsEmpty());
}

TEST(StateNameTest, NamesUniqueAcrossBranchesAndProcessors) {
  EXPECT_THAT(V(R"({"StartAt":"P","States":{
      "P":{"Type":"Parallel","Next":"M","Branches":[
        {"StartAt":"X","States":{"X":{"Type":"Succeed"}}},
        {"StartAt":"X","States":{"X":{"Type":"Succeed"}}}]},
      "M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"P",
        "States":{"P":{"Type":"Succeed"}}}}}})"),
              ElementsAre(Err("$.States.P.Branches[1].States.X",
                              "'X' is not unique in the state machine (first used at "
                              "$.States.P.Branches[0].States.X)"),
                          Err("$.States.M.ItemProcessor.States.P", "'P' is not unique")));
}

TEST(StateNameTest, DuplicateKeyInStatesObject) {
  json::Value def(json::Object{
      {"StartAt", "S"}, {"States", json::Value(json::Object{{"S", Succeed()}, {"S", Succeed()}})}});
  EXPECT_THAT(Validate(def), ElementsAre(Err("$.States.S", "'S' is not unique")));
}

TEST(CheckNameTest, AcceptsOrdinaryNames) {
  EXPECT_EQ(CheckName("order-1234_retry.2"), "");
  EXPECT_EQ(CheckName(std::string(80, 'z')), "");
  EXPECT_EQ(CheckName("Bestellung-Überprüfung"), "");
}

TEST(CheckNameTest, LengthCountsCharactersNotBytes) {
  std::string s;
  for (int i = 0; i < 80; ++i) s += "\xC3\xBC";  // ü
  EXPECT_EQ(CheckName(s), "");
  s += "\xC3\xBC";
  EXPECT_THAT(CheckName(s), HasSubstr("at most 80"));
  EXPECT_THAT(CheckName(""), HasSubstr("empty"));
}

TEST(CheckNameTest, RejectsForbiddenCharacters) {
  for (char c : std::string("<>{}[]?*\"#%\\^|~`$&,;:/")) {
    EXPECT_THAT(CheckName(std::string("a") + c + "b"), HasSubstr("must not contain")) << c;
  }
  EXPECT_THAT(CheckName("a b"), HasSubstr("a space"));
  EXPECT_THAT(CheckName("a\nb"), HasSubstr("U+000A"));
  EXPECT_THAT(CheckName("a\x7f"), HasSubstr("U+007F"));
  EXPECT_THAT(CheckName("a\xC2\x85"), HasSubstr("U+0085"));      // NEL
  EXPECT_THAT(CheckName("a\xE3\x80\x80"), HasSubstr("U+3000"));  // ideographic space
  EXPECT_THAT(CheckName("a\xFF"), HasSubstr("UTF-8"));
}

// --- paths ---------------------------------------------------------------------

TEST(PathTest, InputOutputPath) {
  EXPECT_THAT(One(R"({"Type":"Pass","InputPath":null,"OutputPath":"$$.Execution","End":true})"),
              IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Pass","InputPath":"$.a[","End":true})"),
              ElementsAre(Err("$.States.S.InputPath", "InputPath is not a valid JSONPath")));
  EXPECT_THAT(One(R"({"Type":"Pass","OutputPath":5,"End":true})"),
              ElementsAre(Err("$.States.S.OutputPath", "OutputPath must be a JSONPath string")));
  EXPECT_THAT(One(R"j({"Type":"Pass","InputPath":"States.ArrayLength($.a)","End":true})j"),
              ElementsAre(Err("$.States.S.InputPath", "intrinsic functions are not allowed")));
}

TEST(PathTest, ResultPathMustBeReferencePathWithoutContext) {
  EXPECT_THAT(One(R"({"Type":"Pass","ResultPath":null,"End":true})"), IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Pass","ResultPath":"$.a.b[2]","End":true})"), IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Pass","ResultPath":"$.a[*]","End":true})"),
              ElementsAre(Err("$.States.S.ResultPath", "reference path")));
  EXPECT_THAT(One(R"({"Type":"Pass","ResultPath":"$$.Execution.Id","End":true})"),
              ElementsAre(Err("$.States.S.ResultPath", "context object")));
  EXPECT_THAT(One(R"({"Type":"Pass","ResultPath":"x","End":true})"),
              ElementsAre(Err("$.States.S.ResultPath", "not a valid JSONPath")));
}

TEST(PathTest, PayloadTemplateDynamicFields) {
  EXPECT_THAT(One(R"j({"Type":"Pass","Parameters":{
                    "good.$":"$.a",
                    "bad1.$":23,
                    "bad2.$":"23",
                    "f":{"bad3.$":"$.a[","arr":["x",{"bad4.$":{"y":1}}]},
                    "bad5.$":"States.NoSuchFunction($.a)",
                    "ok.$":"States.Array($.a, 1)"},"End":true})j"),
              ElementsAre(Err("$.States.S.Parameters", "must be a JSONPath or intrinsic"),
                          Err("$.States.S.Parameters", "is not a JSONPath or intrinsic"),
                          Err("$.States.S.Parameters", "not a valid JSONPath"),
                          Err("$.States.S.Parameters", "must be a JSONPath"),
                          Err("$.States.S.Parameters", "not a valid intrinsic")));
}

TEST(PathTest, PayloadTemplateFieldClash) {
  EXPECT_THAT(One(R"({"Type":"Pass","Parameters":{"a":1,"a.$":"$.a"},"End":true})"),
              ElementsAre(Err("$.States.S.Parameters.a.$", "clashes with 'a'")));
}

TEST(PathTest, PayloadTemplatesMustBeObjects) {
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","Parameters":[1],"End":true})"),
              ElementsAre(Err("$.States.S.Parameters", "Parameters must be an object")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","ResultSelector":"$","End":true})"),
              ElementsAre(Err("$.States.S.ResultSelector", "must be an object")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","Credentials":{"RoleArn.$":"nope"},
                      "End":true})"),
              ElementsAre(Err("$.States.S.Credentials", "not a JSONPath")));
}

// --- Task ------------------------------------------------------------------------

TEST(TaskTest, ResourceRequiredString) {
  EXPECT_THAT(
      One(R"({"Type":"Task","End":true})"),
      ElementsAre(Err("$.States.S", "Task state is missing the required field 'Resource'")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":{},"End":true})"),
              ElementsAre(Err("$.States.S.Resource", "Resource must be a string")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"","End":true})"),
              ElementsAre(Err("$.States.S.Resource", "must not be empty")));
}

TEST(TaskTest, TimeoutAndHeartbeatArePositiveIntegers) {
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","TimeoutSeconds":0,"End":true})"),
              ElementsAre(Err("$.States.S.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","HeartbeatSeconds":2.5,"End":true})"),
              ElementsAre(Err("$.States.S.HeartbeatSeconds", "positive integer")));
}

TEST(TaskTest, NotBothValueAndPath) {
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","TimeoutSeconds":5,
                      "TimeoutSecondsPath":"$.t","End":true})"),
              ElementsAre(Err("$.States.S.TimeoutSecondsPath",
                              "cannot have both TimeoutSeconds and TimeoutSecondsPath")));
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","HeartbeatSecondsPath":"$.h",
                      "HeartbeatSeconds":5,"End":true})"),
              ElementsAre(Err("$.States.S.HeartbeatSeconds",
                              "cannot have both HeartbeatSeconds and HeartbeatSecondsPath")));
}

TEST(TaskTest, HeartbeatBelowTimeout) {
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","TimeoutSeconds":10,"HeartbeatSeconds":10,
                      "End":true})"),
              ElementsAre(Err("$.States.S.HeartbeatSeconds",
                              "HeartbeatSeconds (10) must be smaller than TimeoutSeconds (10)")));
}

TEST(TaskTest, DynamicTimeoutPathsAreReferencePaths) {
  EXPECT_THAT(One(R"({"Type":"Task","Resource":"r","TimeoutSecondsPath":"$.t[*]",
                      "HeartbeatSecondsPath":3,"End":true})"),
              ElementsAre(Err("$.States.S.TimeoutSecondsPath", "reference path"),
                          Err("$.States.S.HeartbeatSecondsPath", "JSONPath string")));
}

// --- Retry / Catch ------------------------------------------------------------------

std::vector<ValidationError> Retry(const std::string& retry) {
  return One(R"({"Type":"Task","Resource":"r","Retry":)" + retry + R"(,"End":true})");
}

TEST(RetryTest, ShapeErrors) {
  EXPECT_THAT(Retry("{}"), ElementsAre(Err("$.States.S.Retry", "must be an array")));
  EXPECT_THAT(Retry("[1]"), ElementsAre(Err("$.States.S.Retry[0]", "must be an object")));
  EXPECT_THAT(Retry("[{}]"), ElementsAre(Err("$.States.S.Retry[0]", "'ErrorEquals'")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"Delay":1}])"),
              ElementsAre(Err("$.States.S.Retry[0].Delay", "not allowed in a retrier")));
}

TEST(RetryTest, ErrorEqualsChecks) {
  EXPECT_THAT(Retry(R"([{"ErrorEquals":[]}])"),
              ElementsAre(Err("$.States.S.Retry[0].ErrorEquals", "must not be empty")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":"E"}])"),
              ElementsAre(Err("$.States.S.Retry[0].ErrorEquals", "array of strings")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E",1]}])"),
              ElementsAre(Err("$.States.S.Retry[0].ErrorEquals[1]", "must be strings")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["States.Nope"]}])"),
              ElementsAre(Err("$.States.S.Retry[0].ErrorEquals[0]",
                              "Unknown predefined error name 'States.Nope'")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E","F","E"]}])"),
              ElementsAre(Err("$.States.S.Retry[0].ErrorEquals[2]", "more than once")));
  EXPECT_THAT(
      Retry(R"([{"ErrorEquals":["E","States.ALL"]}])"),
      ElementsAre(Err("$.States.S.Retry[0].ErrorEquals[1]", "States.ALL must appear alone")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["States.ALL"]},{"ErrorEquals":["E"]}])"),
              ElementsAre(Err("$.States.S.Retry[0]", "must be the last one in Retry")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["States.TaskFailed","States.Timeout",
                         "States.HeartbeatTimeout","Custom.Error"]}])"),
              IsEmpty());
}

TEST(RetryTest, NumericFields) {
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"IntervalSeconds":0}])"),
              ElementsAre(Err("$.States.S.Retry[0].IntervalSeconds", "positive integer")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"IntervalSeconds":100000000}])"),
              ElementsAre(Err("$.States.S.Retry[0].IntervalSeconds", "at most 99999999")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"MaxAttempts":-1}])"),
              ElementsAre(Err("$.States.S.Retry[0].MaxAttempts", "non-negative integer")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"MaxAttempts":0}])"), IsEmpty());
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"BackoffRate":0.5}])"),
              ElementsAre(Err("$.States.S.Retry[0].BackoffRate", "at least 1.0")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"BackoffRate":"2"}])"),
              ElementsAre(Err("$.States.S.Retry[0].BackoffRate", "must be a number")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"BackoffRate":1}])"), IsEmpty());
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"MaxDelaySeconds":31622401}])"),
              ElementsAre(Err("$.States.S.Retry[0].MaxDelaySeconds", "at most 31622400")));
  EXPECT_THAT(Retry(R"([{"ErrorEquals":["E"],"JitterStrategy":"HALF"}])"),
              ElementsAre(Err("$.States.S.Retry[0].JitterStrategy", "\"FULL\" or \"NONE\"")));
}

TEST(CatchTest, CatcherChecks) {
  auto c = [](const std::string& catchers) {
    return WithTargets(R"({"Type":"Task","Resource":"r","Next":"Done","Catch":)" + catchers + "}");
  };
  EXPECT_THAT(c(R"([{"ErrorEquals":["E"],"Next":"Oops"}])"), IsEmpty());
  EXPECT_THAT(
      c(R"([{"ErrorEquals":["E"]}])"),
      ElementsAre(Err("$.States.S.Catch[0]", "Catcher is missing the required field 'Next'"),
                  Err("$.States.Oops", "State 'Oops' is not reachable")));
  EXPECT_THAT(c(R"([{"ErrorEquals":["E"],"Next":"Elsewhere"}])"),
              Contains(Err("$.States.S.Catch[0].Next", "'Elsewhere', which does not exist")));
  EXPECT_THAT(c(R"([{"ErrorEquals":["E"],"Next":"Oops","ResultPath":"$.e[0:1]"}])"),
              ElementsAre(Err("$.States.S.Catch[0].ResultPath", "reference path")));
  EXPECT_THAT(c(R"([{"ErrorEquals":["States.ALL"],"Next":"Oops"},
                    {"ErrorEquals":["E"],"Next":"Oops"}])"),
              ElementsAre(Err("$.States.S.Catch[0]", "must be the last one in Catch")));
  EXPECT_THAT(c(R"([{"ErrorEquals":["E"],"Next":"Oops","Retry":1}])"),
              ElementsAre(Err("$.States.S.Catch[0].Retry", "not allowed in a catcher")));
  EXPECT_THAT(c("{}"), Contains(Err("$.States.S.Catch", "must be an array")));
}

// --- Choice ------------------------------------------------------------------------

std::vector<ValidationError> Choice(const std::string& choices) {
  return WithTargets(R"({"Type":"Choice","Default":"Oops","Choices":)" + choices + "}");
}

TEST(ChoiceTest, ChoicesRequiredNonEmptyArray) {
  EXPECT_THAT(WithTargets(R"({"Type":"Choice","Default":"Done"})"),
              Contains(Err("$.States.S", "missing the required field 'Choices'")));
  EXPECT_THAT(Choice("[]"), Contains(Err("$.States.S.Choices", "must not be empty")));
  EXPECT_THAT(Choice("{}"), Contains(Err("$.States.S.Choices", "must be a non-empty array")));
}

TEST(ChoiceTest, DefaultMustNameAState) {
  EXPECT_THAT(WithTargets(R"({"Type":"Choice","Default":"Nope",
                  "Choices":[{"Variable":"$.a","IsNull":true,"Next":"Done"}]})"),
              Contains(Err("$.States.S.Default", "'Nope', which does not exist")));
}

TEST(ChoiceTest, TopLevelRuleNeedsValidNext) {
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","IsNull":true}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "missing the required field 'Next'"),
                          Err("$.States.Done", "not reachable")));
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","IsNull":true,"Next":"Nope"},
                         {"Variable":"$.a","IsNull":false,"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].Next", "'Nope', which does not exist")));
}

TEST(ChoiceTest, NestedRuleMustNotHaveNext) {
  EXPECT_THAT(Choice(R"([{"Not":{"Variable":"$.a","IsNull":true,"Next":"Done"},"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].Not.Next", "not allowed in a nested")));
}

TEST(ChoiceTest, ComparisonNeedsVariableAndExactlyOneOperator) {
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "no comparison operator")));
  EXPECT_THAT(Choice(R"([{"StringEquals":"x","Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "'Variable'")));
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","StringEquals":"x","IsNull":true,"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].IsNull", "exactly one comparison operator")));
  EXPECT_THAT(Choice(R"([{"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "needs a Variable")));
}

TEST(ChoiceTest, ExactlyOneOfComparisonAndOrNot) {
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","IsNull":true,"Not":{"Variable":"$.b","IsNull":true},
                  "Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "exactly one of")));
  EXPECT_THAT(Choice(R"([{"And":[{"Variable":"$.b","IsNull":true}],
                          "Or":[{"Variable":"$.b","IsNull":true}],"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "exactly one of")));
}

TEST(ChoiceTest, BooleanOperatorShapes) {
  EXPECT_THAT(Choice(R"([{"And":[],"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].And", "And must not be empty")));
  EXPECT_THAT(Choice(R"([{"Or":{},"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].Or", "non-empty array")));
  EXPECT_THAT(Choice(R"([{"Not":[],"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].Not", "Not must be an object")));
}

TEST(ChoiceTest, ErrorsDeepInsideRulesHaveExactPaths) {
  EXPECT_THAT(
      Choice(R"([{"Variable":"$.a","IsNull":true,"Next":"Done"},
                         {"And":[{"Variable":"$.a","StringEquals":5},
                                 {"Or":[{"Not":{"Variable":"$.b","NumericEquals":"1"}}]}],
                          "Next":"Done"}])"),
      ElementsAre(Err("$.States.S.Choices[1].And[0].StringEquals", "StringEquals must be a string"),
                  Err("$.States.S.Choices[1].And[1].Or[0].Not.NumericEquals",
                      "NumericEquals must be a number")));
}

TEST(ChoiceTest, OperandTypes) {
  auto rule = [](const std::string& op_and_value) {
    return Choice(R"([{"Variable":"$.a",)" + op_and_value + R"(,"Next":"Done"}])");
  };
  EXPECT_THAT(rule(R"("StringLessThan":"b")"), IsEmpty());
  EXPECT_THAT(rule(R"("StringMatches":1)"),
              ElementsAre(Err("$.States.S.Choices[0].StringMatches", "must be a string")));
  EXPECT_THAT(rule(R"("NumericGreaterThanEquals":1.5)"), IsEmpty());
  EXPECT_THAT(rule(R"("BooleanEquals":"true")"),
              ElementsAre(Err("$.States.S.Choices[0].BooleanEquals", "must be a boolean")));
  EXPECT_THAT(rule(R"("IsTimestamp":1)"),
              ElementsAre(Err("$.States.S.Choices[0].IsTimestamp", "must be a boolean")));
  EXPECT_THAT(rule(R"("TimestampEquals":"yesterday")"),
              ElementsAre(Err("$.States.S.Choices[0].TimestampEquals", "RFC 3339")));
  EXPECT_THAT(rule(R"("TimestampGreaterThanEquals":"2016-03-14T01:59:00Z")"), IsEmpty());
  EXPECT_THAT(rule(R"("StringEqualsPath":"$.b")"), IsEmpty());
  EXPECT_THAT(
      rule(R"("NumericLessThanPath":"b")"),
      ElementsAre(Err("$.States.S.Choices[0].NumericLessThanPath", "not a valid JSONPath")));
  EXPECT_THAT(rule(R"("BooleanEqualsPath":true)"),
              ElementsAre(Err("$.States.S.Choices[0].BooleanEqualsPath", "JSONPath string")));
}

TEST(ChoiceTest, VariableMustBeValidPath) {
  EXPECT_THAT(Choice(R"([{"Variable":"a.b","IsNull":true,"Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0].Variable", "not a valid JSONPath")));
  EXPECT_THAT(Choice(R"([{"Variable":"$$.Execution.Input.x","IsNull":true,"Next":"Done"}])"),
              IsEmpty());
}

TEST(ChoiceTest, UnknownRuleField) {
  EXPECT_THAT(Choice(R"([{"Variable":"$.a","StringEqual":"x","Next":"Done"}])"),
              ElementsAre(Err("$.States.S.Choices[0]", "no comparison operator"),
                          Err("$.States.S.Choices[0].StringEqual",
                              "Field 'StringEqual' is not allowed in a Choice rule")));
  EXPECT_THAT(Choice(R"([{"Condition":"{% true %}","Next":"Done"}])"),
              Contains(Err("$.States.S.Choices[0].Condition", "not supported yet")));
}

// --- Wait ------------------------------------------------------------------------------

TEST(WaitTest, ExactlyOneDuration) {
  EXPECT_THAT(One(R"({"Type":"Wait","End":true})"),
              ElementsAre(Err("$.States.S", "exactly one of Seconds, Timestamp")));
  EXPECT_THAT(One(R"({"Type":"Wait","Seconds":1,"SecondsPath":"$.s","End":true})"),
              ElementsAre(Err("$.States.S.SecondsPath", "exactly one of")));
}

TEST(WaitTest, FieldValues) {
  EXPECT_THAT(One(R"({"Type":"Wait","Seconds":0,"End":true})"), IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Wait","Seconds":-1,"End":true})"),
              ElementsAre(Err("$.States.S.Seconds", "non-negative integer")));
  EXPECT_THAT(One(R"({"Type":"Wait","Seconds":"5","End":true})"),
              ElementsAre(Err("$.States.S.Seconds", "non-negative integer")));
  EXPECT_THAT(One(R"({"Type":"Wait","Timestamp":"2016-03-14 01:59:00","End":true})"),
              ElementsAre(Err("$.States.S.Timestamp", "RFC 3339")));
  EXPECT_THAT(One(R"({"Type":"Wait","TimestampPath":"$.when[0]","End":true})"), IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Wait","TimestampPath":"$..when","End":true})"),
              ElementsAre(Err("$.States.S.TimestampPath", "reference path")));
}

// --- Fail --------------------------------------------------------------------------------

TEST(FailTest, NotBothStaticAndDynamic) {
  EXPECT_THAT(One(R"({"Type":"Fail","Error":"E","ErrorPath":"$.e"})"),
              ElementsAre(Err("$.States.S.ErrorPath", "cannot have both Error and ErrorPath")));
  EXPECT_THAT(One(R"({"Type":"Fail","CausePath":"$.c","Cause":"C"})"),
              ElementsAre(Err("$.States.S.Cause", "cannot have both Cause and CausePath")));
}

TEST(FailTest, FieldValues) {
  EXPECT_THAT(One(R"({"Type":"Fail","Error":1,"Cause":true})"),
              ElementsAre(Err("$.States.S.Error", "Error must be a string"),
                          Err("$.States.S.Cause", "Cause must be a string")));
  EXPECT_THAT(One(R"({"Type":"Fail","ErrorPath":"$.e[*]"})"),
              ElementsAre(Err("$.States.S.ErrorPath", "reference path")));
  EXPECT_THAT(One(R"j({"Type":"Fail","CausePath":"States.Bogus($.c)"})j"),
              ElementsAre(Err("$.States.S.CausePath", "not a valid intrinsic")));
  EXPECT_THAT(One(R"j({"Type":"Fail","ErrorPath":"States.Format('E{}', $.n)",
                      "CausePath":"$$.Execution.Id"})j"),
              IsEmpty());
}

// --- Parallel ------------------------------------------------------------------------------

TEST(ParallelTest, BranchesRequiredNonEmpty) {
  EXPECT_THAT(One(R"({"Type":"Parallel","End":true})"),
              ElementsAre(Err("$.States.S", "missing the required field 'Branches'")));
  EXPECT_THAT(One(R"({"Type":"Parallel","Branches":[],"End":true})"),
              ElementsAre(Err("$.States.S.Branches", "must not be empty")));
  EXPECT_THAT(One(R"({"Type":"Parallel","Branches":[5],"End":true})"),
              ElementsAre(Err("$.States.S.Branches[0]", "must be an object")));
}

TEST(ParallelTest, BranchesAreValidatedAsTheirOwnScope) {
  EXPECT_THAT(
      V(R"({"StartAt":"P","States":{
      "P":{"Type":"Parallel","Next":"After","Branches":[
        {"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}},
        {"StartAt":"Y","Version":"1.0","States":{
          "X":{"Type":"Pass","Next":"After"},
          "Y":{"Type":"Pass"}}}]},
      "After":{"Type":"Succeed"}}})"),
      ElementsAre(Err("$.States.P.Branches[1].Version",
                      "Field 'Version' is not allowed in a Parallel branch"),
                  Err("$.States.P.Branches[1].States.X", "State 'X' is not reachable"),
                  Err("$.States.P.Branches[1].States.X.Next", "'After', which does not exist"),
                  Err("$.States.P.Branches[1].States.Y", "must have either Next")));
  EXPECT_THAT(One(R"({"Type":"Parallel","End":true,"Branches":[{"States":{}}]})"),
              ElementsAre(Err("$.States.S.Branches[0]", "'StartAt' in a Parallel branch"),
                          Err("$.States.S.Branches[0].States", "at least one state")));
}

// --- Map ---------------------------------------------------------------------------------

constexpr char kProc[] = R"("ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}})";

std::vector<ValidationError> Map(const std::string& fields) {
  return One(R"({"Type":"Map","End":true,)" + std::string(kProc) +
             (fields.empty() ? "" : "," + fields) + "}");
}

TEST(MapTest, ProcessorRequiredExactlyOnce) {
  EXPECT_THAT(One(R"({"Type":"Map","End":true})"),
              ElementsAre(Err("$.States.S", "missing the required field 'ItemProcessor'")));
  EXPECT_THAT(
      Map(R"("Iterator":{"StartAt":"J","States":{"J":{"Type":"Succeed"}}})"),
      ElementsAre(Err("$.States.S.Iterator", "cannot have both ItemProcessor and Iterator")));
  EXPECT_THAT(One(R"({"Type":"Map","End":true,"ItemProcessor":[]})"),
              ElementsAre(Err("$.States.S.ItemProcessor", "must be an object")));
}

TEST(MapTest, ProcessorStatesUseProcessorPaths) {
  EXPECT_THAT(One(R"({"Type":"Map","End":true,"ItemProcessor":{"StartAt":"I",
                    "States":{"I":{"Type":"Pass"}}}})"),
              ElementsAre(Err("$.States.S.ItemProcessor.States.I", "must have either Next")));
  EXPECT_THAT(One(R"({"Type":"Map","End":true,"Iterator":{"StartAt":"I",
                    "ProcessorConfig":{"Mode":"INLINE"},"States":{"I":{"Type":"Pass"}}}})"),
              ElementsAre(Err("$.States.S.Iterator.ProcessorConfig", "not allowed in Iterator"),
                          Err("$.States.S.Iterator.States.I", "must have either Next")));
}

TEST(MapTest, ProcessorConfig) {
  auto with = [](const std::string& config) {
    return One(R"({"Type":"Map","End":true,"ItemProcessor":{"ProcessorConfig":)" + config +
               R"(,"StartAt":"I","States":{"I":{"Type":"Succeed"}}}})");
  };
  EXPECT_THAT(with(R"({"Mode":"INLINE"})"), IsEmpty());
  EXPECT_THAT(with(R"({"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"})"),
              ElementsAre(Err("$.States.S.ItemProcessor.ProcessorConfig.Mode",
                              "DISTRIBUTED is not supported yet")));
  EXPECT_THAT(with(R"({"Mode":"inline"})"),
              ElementsAre(Err("$.States.S.ItemProcessor.ProcessorConfig.Mode", "\"INLINE\"")));
  EXPECT_THAT(with(R"({"ExecutionType":"FAST","Other":1})"),
              ElementsAre(Err("$.States.S.ItemProcessor.ProcessorConfig.ExecutionType",
                              "\"STANDARD\" or \"EXPRESS\""),
                          Err("$.States.S.ItemProcessor.ProcessorConfig.Other", "not allowed")));
}

TEST(MapTest, SelectorAndItemsPath) {
  EXPECT_THAT(
      Map(R"("ItemSelector":{},"Parameters":{})"),
      ElementsAre(Err("$.States.S.Parameters", "cannot have both ItemSelector and Parameters")));
  EXPECT_THAT(Map(R"("ItemsPath":"$$.Execution.Input.items")"), IsEmpty());
  EXPECT_THAT(Map(R"("ItemsPath":"$.items[*].id")"),
              ElementsAre(Err("$.States.S.ItemsPath", "reference path")));
  EXPECT_THAT(Map(R"("ItemsPath":null)"),
              ElementsAre(Err("$.States.S.ItemsPath", "JSONPath string")));
  EXPECT_THAT(Map(R"("ItemSelector":{"v.$":"Map.Item.Value"})"),
              ElementsAre(Err("$.States.S.ItemSelector", "not a JSONPath")));
}

TEST(MapTest, ConcurrencyAndToleratedFailures) {
  EXPECT_THAT(
      Map(R"("MaxConcurrency":0,"ToleratedFailureCount":0,"ToleratedFailurePercentage":100)"),
      IsEmpty());
  EXPECT_THAT(Map(R"("MaxConcurrency":-1)"),
              ElementsAre(Err("$.States.S.MaxConcurrency", "non-negative integer")));
  EXPECT_THAT(Map(R"("MaxConcurrency":2,"MaxConcurrencyPath":"$.n")"),
              ElementsAre(Err("$.States.S.MaxConcurrencyPath", "cannot have both")));
  EXPECT_THAT(Map(R"("MaxConcurrencyPath":"$.n[*]")"),
              ElementsAre(Err("$.States.S.MaxConcurrencyPath", "reference path")));
  EXPECT_THAT(Map(R"("ToleratedFailureCount":1.5)"),
              ElementsAre(Err("$.States.S.ToleratedFailureCount", "non-negative integer")));
  EXPECT_THAT(Map(R"("ToleratedFailurePercentage":100.5)"),
              ElementsAre(Err("$.States.S.ToleratedFailurePercentage", "between 0 and 100")));
  EXPECT_THAT(Map(R"("ToleratedFailurePercentage":-1)"),
              ElementsAre(Err("$.States.S.ToleratedFailurePercentage", "between 0 and 100")));
  EXPECT_THAT(Map(R"("ToleratedFailureCount":1,"ToleratedFailureCountPath":"$.c")"),
              ElementsAre(Err("$.States.S.ToleratedFailureCountPath", "cannot have both")));
  EXPECT_THAT(Map(R"("ToleratedFailurePercentagePath":"$.p","ToleratedFailurePercentage":5)"),
              ElementsAre(Err("$.States.S.ToleratedFailurePercentage", "cannot have both")));
}

TEST(MapTest, UnsupportedDistributedFields) {
  EXPECT_THAT(Map(R"("ItemReader":{},"ItemBatcher":{},"ResultWriter":{})"),
              ElementsAre(Err("$.States.S.ItemReader", "ItemReader is not supported yet"),
                          Err("$.States.S.ItemBatcher", "ItemBatcher is not supported yet"),
                          Err("$.States.S.ResultWriter", "ResultWriter is not supported yet")));
  EXPECT_THAT(Map(R"("Items":[1,2])"),
              ElementsAre(Err("$.States.S.Items", "Items is not supported yet")));
  EXPECT_THAT(Map(R"("Label":7)"), ElementsAre(Err("$.States.S.Label", "Label must be a string")));
}

// --- saga extension: Compensation and Compensate ------------------------------------------------

std::vector<ValidationError> Comp(const std::string& compensation) {
  return One(R"({"Type":"Task","Resource":"r","End":true,"Compensation":)" + compensation + "}");
}

TEST(CompensationTest, OnlyOnTaskStates) {
  EXPECT_THAT(
      One(R"({"Type":"Pass","End":true,"Compensation":{"Resource":"r"}})"),
      ElementsAre(Err("$.States.S.Compensation", "Compensation is only allowed on Task states")));
}

TEST(CompensationTest, Fields) {
  EXPECT_THAT(Comp(R"({"Resource":"undo"})"), IsEmpty());
  EXPECT_THAT(Comp("true"), ElementsAre(Err("$.States.S.Compensation", "must be an object")));
  EXPECT_THAT(Comp(R"({"Parameters":{}})"),
              ElementsAre(Err("$.States.S.Compensation", "missing the required field 'Resource'")));
  EXPECT_THAT(Comp(R"({"Resource":1})"),
              ElementsAre(Err("$.States.S.Compensation.Resource", "must be a string")));
  EXPECT_THAT(Comp(R"({"Resource":"r","Catch":[]})"),
              ElementsAre(Err("$.States.S.Compensation.Catch", "not allowed in Compensation")));
  EXPECT_THAT(Comp(R"({"Resource":"r","Parameters":{"a.$":"nope"}})"),
              ElementsAre(Err("$.States.S.Compensation.Parameters", "not a JSONPath")));
  EXPECT_THAT(Comp(R"({"Resource":"r","Retry":[{"ErrorEquals":["States.ALL"]},
                       {"ErrorEquals":["E"],"BackoffRate":0}]})"),
              ElementsAre(Err("$.States.S.Compensation.Retry[0]", "must be the last one"),
                          Err("$.States.S.Compensation.Retry[1].BackoffRate", "at least 1.0")));
  EXPECT_THAT(Comp(R"({"Resource":"r","TimeoutSeconds":0})"),
              ElementsAre(Err("$.States.S.Compensation.TimeoutSeconds", "positive integer")));
  EXPECT_THAT(Comp(R"({"Resource":"r","TimeoutSeconds":5,"HeartbeatSeconds":6})"),
              ElementsAre(Err("$.States.S.Compensation.HeartbeatSeconds", "smaller than")));
}

TEST(CompensateStateTest, Fields) {
  EXPECT_THAT(One(R"({"Type":"Compensate","Comment":"undo","InputPath":"$","OutputPath":"$",
                      "ResultPath":"$.r","End":true})"),
              IsEmpty());
  EXPECT_THAT(One(R"({"Type":"Compensate","ResultPath":"$[*]","End":true})"),
              ElementsAre(Err("$.States.S.ResultPath", "reference path")));
  EXPECT_THAT(One(R"({"Type":"Compensate","Resource":"r","End":true})"),
              ElementsAre(Err("$.States.S.Resource", "not allowed in a Compensate state")));
}

}  // namespace
}  // namespace saga::asl
