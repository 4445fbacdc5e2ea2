#include "coordinator/asl/jsonpath.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"

namespace saga::asl {
namespace {

using ::testing::HasSubstr;

json::Value J(std::string_view text) {
  auto v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << v.status().message();
  return v.ok() ? *v : json::Value();
}

JsonPath P(std::string_view text) {
  auto p = JsonPath::Parse(text);
  EXPECT_TRUE(p.ok()) << text << ": " << p.status().message();
  return p.ok() ? *p : JsonPath();
}

// The Jayway README document.
constexpr std::string_view kStore = R"({
  "store": {
    "book": [
      {"category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century",
       "price": 8.95},
      {"category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour",
       "price": 12.99},
      {"category": "fiction", "author": "Herman Melville", "title": "Moby Dick",
       "isbn": "0-553-21311-3", "price": 8.99},
      {"category": "fiction", "author": "J. R. R. Tolkien", "title": "The Lord of the Rings",
       "isbn": "0-395-19395-8", "price": 22.99}
    ],
    "bicycle": {"color": "red", "price": 19.95}
  },
  "expensive": 10
})";

class JsonPathTest : public ::testing::Test {
 protected:
  // Evaluates `path` against the store document and returns compact JSON, or
  // "<code>: message" on error.
  std::string Eval(std::string_view path) {
    auto p = JsonPath::Parse(path);
    if (!p.ok()) return "parse error: " + std::string(p.status().message());
    auto v = p->Evaluate(doc_, ctx_);
    if (!v.ok()) return "error: " + std::string(v.status().message());
    return v->Dump();
  }

  json::Value doc_ = J(kStore);
  json::Value ctx_ = J(R"({"Execution": {"Id": "arn:exec", "Input": {"x": 1}},
                           "State": {"Name": "S1"}, "Map": {"Item": {"Index": 2}}})");
};

// --- Parse properties --------------------------------------------------------

TEST(JsonPathParseTest, Properties) {
  JsonPath root = P("$");
  EXPECT_EQ(root.text(), "$");
  EXPECT_TRUE(root.is_root());
  EXPECT_TRUE(root.is_definite());
  EXPECT_TRUE(root.is_reference_path());
  EXPECT_FALSE(root.is_context());

  JsonPath ctx = P("$$");
  EXPECT_TRUE(ctx.is_root());
  EXPECT_TRUE(ctx.is_context());

  JsonPath a = P("$.a.b[0]['c d']");
  EXPECT_FALSE(a.is_root());
  EXPECT_TRUE(a.is_definite());
  EXPECT_TRUE(a.is_reference_path());
  EXPECT_EQ(a.text(), "$.a.b[0]['c d']");

  EXPECT_TRUE(P("$$.Execution.Id").is_context());
  EXPECT_TRUE(P("$$.Execution.Id").is_definite());
}

TEST(JsonPathParseTest, IndefiniteForms) {
  for (const char* text : {"$.a[*]", "$.a.*", "$.a[1:2]", "$.a[::2]", "$.a[0,1]", "$['a','b']",
                           "$..a", "$..*", "$.a[?(@.b)]", "$..[0]"}) {
    JsonPath p = P(text);
    EXPECT_FALSE(p.is_definite()) << text;
    EXPECT_FALSE(p.is_reference_path()) << text;
  }
}

TEST(JsonPathParseTest, DefaultIsRoot) {
  JsonPath p;
  EXPECT_EQ(p.text(), "$");
  EXPECT_TRUE(p.is_root());
  auto v = p.Evaluate(J(R"({"a":1})"), json::Value());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Dump(), R"({"a":1})");
}

TEST(JsonPathParseTest, ErrorsNameThePathAndPosition) {
  auto p = JsonPath::Parse("$.a[");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), "invalid JSONPath '$.a[': unterminated bracket at position 3");
}

TEST(JsonPathParseTest, RejectsMalformedPaths) {
  for (const char* text : {"",
                           "a",
                           "$a",
                           "$.",
                           "$..",
                           "$.a.",
                           "$[",
                           "$['a",
                           "$['a'",
                           "$[a]",
                           "$[1",
                           "$[?(@.a = 1)]",
                           "$[?(@.a == 1]",
                           "$[?@.a]",
                           "$[0:1:0]",
                           "$[?(@.a =~ 'x')]",
                           "$[?(@.a == /x/)]",
                           "$[?(@.a =~ /[/)]",
                           "$.a b",
                           "$.a)",
                           "$[?(@.a == )]",
                           "$['a\\q']",
                           "$[0,]",
                           "$[?(@.a =~ /x/g)]",
                           "$[99999999999999999999]"}) {
    auto p = JsonPath::Parse(text);
    EXPECT_FALSE(p.ok()) << "accepted: " << text;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << text;
      EXPECT_THAT(p.status().message(), HasSubstr("invalid JSONPath")) << text;
    }
  }
}

// --- Definite paths ----------------------------------------------------------

TEST_F(JsonPathTest, RootReturnsTheInputNode) {
  auto v = P("$").Evaluate(doc_, ctx_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->SharesNodeWith(doc_));
}

TEST_F(JsonPathTest, DotAndBracketNames) {
  EXPECT_EQ(Eval("$.store.bicycle.color"), R"("red")");
  EXPECT_EQ(Eval("$['store']['bicycle']['color']"), R"("red")");
  EXPECT_EQ(Eval(R"($["store"]["bicycle"]["price"])"), "19.95");
  EXPECT_EQ(Eval("$.store['bicycle'].color"), R"("red")");
  EXPECT_EQ(Eval("$.store.['bicycle'].color"), R"("red")");  // as in the AWS docs
  EXPECT_EQ(Eval("$.expensive"), "10");
  EXPECT_EQ(Eval("$[ 'expensive' ]"), "10");
}

TEST_F(JsonPathTest, QuotedNamesWithSpacesAndEscapes) {
  doc_ = J(R"({"a b": 1, "it's": 2, "q\"x": 3, "back\\slash": 4, "dot.ted": 5, "é": 6})");
  EXPECT_EQ(Eval("$['a b']"), "1");
  EXPECT_EQ(Eval(R"($['it\'s'])"), "2");
  EXPECT_EQ(Eval(R"($["it's"])"), "2");
  EXPECT_EQ(Eval(R"($["q\"x"])"), "3");
  EXPECT_EQ(Eval(R"($['back\\slash'])"), "4");
  EXPECT_EQ(Eval("$['dot.ted']"), "5");
  EXPECT_EQ(Eval(R"($['\u00e9'])"), "6");
  EXPECT_EQ(Eval("$.é"), "6");
}

TEST_F(JsonPathTest, DotNamesWithPunctuation) {
  doc_ = J(R"({"my-key": {"x_y": {"$v": 1}}})");
  EXPECT_EQ(Eval("$.my-key.x_y.$v"), "1");
}

TEST_F(JsonPathTest, Indexes) {
  EXPECT_EQ(Eval("$.store.book[0].author"), R"("Nigel Rees")");
  EXPECT_EQ(Eval("$.store.book[3].title"), R"("The Lord of the Rings")");
  EXPECT_EQ(Eval("$.store.book[-1].author"), R"("J. R. R. Tolkien")");
  EXPECT_EQ(Eval("$.store.book[-4].author"), R"("Nigel Rees")");
  EXPECT_EQ(Eval("$.store.book[ 1 ].price"), "12.99");
}

TEST_F(JsonPathTest, DefiniteMissIsNotFoundNamingThePath) {
  auto v = P("$.store.car.wheels").Evaluate(doc_, ctx_);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("'$.store.car.wheels'"));

  for (const char* path : {"$.store.book[4]", "$.store.book[-5]", "$.store.book.title",
                           "$.store.bicycle[0]", "$.expensive.x", "$.nope", "$[0]"}) {
    auto r = P(path).Evaluate(doc_, ctx_);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << path;
  }
}

TEST_F(JsonPathTest, NullValueIsFound) {
  doc_ = J(R"({"a": null})");
  EXPECT_EQ(Eval("$.a"), "null");
}

TEST_F(JsonPathTest, DefiniteResultSharesTheNode) {
  auto v = P("$.store.book").Evaluate(doc_, ctx_);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->SharesNodeWith(*doc_.Find("store")->Find("book")));
}

TEST_F(JsonPathTest, ContextPaths) {
  EXPECT_EQ(Eval("$$.Execution.Id"), R"("arn:exec")");
  EXPECT_EQ(Eval("$$.Map.Item.Index"), "2");
  EXPECT_EQ(Eval("$$.State"), R"({"Name":"S1"})");
  EXPECT_EQ(Eval("$$.Execution.Input.*"), "[1]");
  EXPECT_THAT(Eval("$$.Nope"), HasSubstr("error"));
  // A context path never reads the input.
  EXPECT_THAT(Eval("$$.store"), HasSubstr("error"));
}

// --- Indefinite paths --------------------------------------------------------

TEST_F(JsonPathTest, Wildcards) {
  EXPECT_EQ(Eval("$.store.book[*].author"),
            R"(["Nigel Rees","Evelyn Waugh","Herman Melville","J. R. R. Tolkien"])");
  EXPECT_EQ(Eval("$.store.book.*.price"), "[8.95,12.99,8.99,22.99]");
  EXPECT_EQ(Eval("$.store.bicycle.*"), R"(["red",19.95])");
  EXPECT_EQ(Eval("$.store.bicycle[*]"), R"(["red",19.95])");
  EXPECT_EQ(Eval("$.expensive.*"), "[]");
}

TEST_F(JsonPathTest, WildcardSkipsMissingProperties) {
  EXPECT_EQ(Eval("$.store.book[*].isbn"), R"(["0-553-21311-3","0-395-19395-8"])");
  EXPECT_EQ(Eval("$.store.book[*].nope"), "[]");
}

TEST_F(JsonPathTest, Slices) {
  doc_ = J("[0,1,2,3,4,5]");
  EXPECT_EQ(Eval("$[1:3]"), "[1,2]");
  EXPECT_EQ(Eval("$[:2]"), "[0,1]");
  EXPECT_EQ(Eval("$[4:]"), "[4,5]");
  EXPECT_EQ(Eval("$[-2:]"), "[4,5]");
  EXPECT_EQ(Eval("$[:-4]"), "[0,1]");
  EXPECT_EQ(Eval("$[::2]"), "[0,2,4]");
  EXPECT_EQ(Eval("$[1::2]"), "[1,3,5]");
  EXPECT_EQ(Eval("$[::-1]"), "[5,4,3,2,1,0]");
  EXPECT_EQ(Eval("$[4:1:-2]"), "[4,2]");
  EXPECT_EQ(Eval("$[2:100]"), "[2,3,4,5]");
  EXPECT_EQ(Eval("$[-100:1]"), "[0]");
  EXPECT_EQ(Eval("$[3:1]"), "[]");
  EXPECT_EQ(Eval("$[:]"), "[0,1,2,3,4,5]");
}

TEST_F(JsonPathTest, SliceOnBooks) {
  EXPECT_EQ(Eval("$.store.book[0:2].title"), R"(["Sayings of the Century","Sword of Honour"])");
  EXPECT_EQ(Eval("$.store.book[-1:].title"), R"(["The Lord of the Rings"])");
}

TEST_F(JsonPathTest, Unions) {
  EXPECT_EQ(Eval("$.store.book[0,2].price"), "[8.95,8.99]");
  EXPECT_EQ(Eval("$.store.book[2,0].price"), "[8.99,8.95]");  // union order
  EXPECT_EQ(Eval("$.store.book[0,-1,9].price"), "[8.95,22.99]");
  EXPECT_EQ(Eval("$.store.bicycle['color','price']"), R"(["red",19.95])");
  EXPECT_EQ(Eval(R"($.store.bicycle["price", 'nope', 'color'])"), R"([19.95,"red"])");
}

TEST_F(JsonPathTest, RecursiveDescent) {
  EXPECT_EQ(Eval("$..author"),
            R"(["Nigel Rees","Evelyn Waugh","Herman Melville","J. R. R. Tolkien"])");
  EXPECT_EQ(Eval("$.store..price"), "[8.95,12.99,8.99,22.99,19.95]");
  EXPECT_EQ(Eval("$..book[2].title"), R"(["Moby Dick"])");
  EXPECT_EQ(Eval("$..book[-1:].title"), R"(["The Lord of the Rings"])");
  EXPECT_EQ(Eval("$..['color']"), R"(["red"])");
  EXPECT_EQ(Eval("$..nothing"), "[]");
}

TEST_F(JsonPathTest, RecursiveWildcardOrderIsJayways) {
  // Jayway applies the selector at a node before descending into it.
  doc_ = J(R"({"a": {"b": 1, "c": [2, 3]}, "d": 4})");
  EXPECT_EQ(Eval("$..*"), R"([{"b":1,"c":[2,3]},4,1,[2,3],2,3])");
  EXPECT_EQ(Eval("$..[0]"), "[2]");
}

TEST_F(JsonPathTest, RecursiveDescentFindsNestedSameName) {
  doc_ = J(R"({"id": 1, "kids": [{"id": 2, "kids": [{"id": 3}]}, {"id": 4}]})");
  EXPECT_EQ(Eval("$..id"), "[1,2,3,4]");
}

// --- Filters -----------------------------------------------------------------

TEST_F(JsonPathTest, FilterNumericComparisons) {
  EXPECT_EQ(Eval("$.store.book[?(@.price < 10)].title"),
            R"(["Sayings of the Century","Moby Dick"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price<=8.99)].price"), "[8.95,8.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price > 20)].price"), "[22.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price >= 12.99)].price"), "[12.99,22.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price == 8.99)].title"), R"(["Moby Dick"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price != 8.99)].price"), "[8.95,12.99,22.99]");
  EXPECT_EQ(Eval("$.store.book[?(@.price > -1e3)].price"), "[8.95,12.99,8.99,22.99]");
}

TEST_F(JsonPathTest, FilterIntegerAndDoubleCompareByValue) {
  doc_ = J(R"([{"n": 1}, {"n": 1.0}, {"n": 2}, {"n": "1"}])");
  EXPECT_EQ(Eval("$[?(@.n == 1)].n"), "[1,1.0]");
  EXPECT_EQ(Eval("$[?(@.n < 1.5)].n"), "[1,1.0]");
}

TEST_F(JsonPathTest, FilterStringComparisons) {
  EXPECT_EQ(Eval("$.store.book[?(@.category == 'reference')].author"), R"(["Nigel Rees"])");
  EXPECT_EQ(Eval(R"($.store.book[?(@.category == "reference")].author)"), R"(["Nigel Rees"])");
  EXPECT_EQ(Eval("$.store.book[?(@.author > 'I')].author"), R"(["Nigel Rees","J. R. R. Tolkien"])");
  EXPECT_EQ(Eval("$.store.book[?(@.author <= 'Evelyn Waugh')].author"), R"(["Evelyn Waugh"])");
}

TEST_F(JsonPathTest, FilterTypeMismatchIsFalse) {
  doc_ = J(R"([{"v": "10"}, {"v": 10}, {"v": true}, {"v": null}])");
  EXPECT_EQ(Eval("$[?(@.v > 5)].v"), "[10]");
  EXPECT_EQ(Eval("$[?(@.v == '10')].v"), R"(["10"])");
  EXPECT_EQ(Eval("$[?(@.v == true)].v"), "[true]");
  EXPECT_EQ(Eval("$[?(@.v == null)].v"), "[null]");
  EXPECT_EQ(Eval("$[?(@.v < 'z')].v"), R"(["10"])");
}

TEST_F(JsonPathTest, FilterExistence) {
  EXPECT_EQ(Eval("$.store.book[?(@.isbn)].title"), R"(["Moby Dick","The Lord of the Rings"])");
  EXPECT_EQ(Eval("$.store.book[?(!@.isbn)].title"),
            R"(["Sayings of the Century","Sword of Honour"])");
  doc_ = J(R"([{"t": null}, {"t": false}, {}])");
  EXPECT_EQ(Eval("$[?(@.t)]"), R"([{"t":null},{"t":false}])");  // present, whatever the value
}

TEST_F(JsonPathTest, FilterLogic) {
  EXPECT_EQ(Eval("$.store.book[?(@.price < 10 && @.category == 'fiction')].title"),
            R"(["Moby Dick"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price > 20 || @.category == 'reference')].price"),
            "[8.95,22.99]");
  EXPECT_EQ(Eval("$.store.book[?(!(@.price < 10))].price"), "[12.99,22.99]");
  EXPECT_EQ(
      Eval("$.store.book[?((@.price < 9 || @.price > 20) && !(@.category == 'reference'))].price"),
      "[8.99,22.99]");
  // && binds tighter than ||.
  EXPECT_EQ(Eval("$.store.book[?(@.price > 20 || @.price < 9 && @.isbn)].price"), "[8.99,22.99]");
  EXPECT_EQ(Eval("$.store.book[?(true)].price"), "[8.95,12.99,8.99,22.99]");
  EXPECT_EQ(Eval("$.store.book[?(false)].price"), "[]");
}

TEST_F(JsonPathTest, FilterMissingOperandIsFalseEvenForNotEquals) {
  EXPECT_EQ(Eval("$.store.book[?(@.isbn != '0-553-21311-3')].title"),
            R"(["The Lord of the Rings"])");
}

TEST_F(JsonPathTest, FilterRegex) {
  EXPECT_EQ(Eval("$.store.book[?(@.author =~ /.*Tolkien/)].title"), R"(["The Lord of the Rings"])");
  // Jayway matches the whole string.
  EXPECT_EQ(Eval("$.store.book[?(@.author =~ /Tolkien/)].title"), "[]");
  EXPECT_EQ(Eval("$.store.book[?(@.author =~ /.*tolkien/i)].title"),
            R"(["The Lord of the Rings"])");
  EXPECT_EQ(Eval("$.store.book[?(@.price =~ /.*/)].title"), "[]");  // not a string
  doc_ = J(R"([{"p": "a/b"}, {"p": "ab"}])");
  EXPECT_EQ(Eval(R"($[?(@.p =~ /a\/b/)].p)"), R"(["a/b"])");
}

TEST_F(JsonPathTest, FilterRootReference) {
  EXPECT_EQ(Eval("$.store.book[?(@.price < $.expensive)].price"), "[8.95,8.99]");
}

TEST_F(JsonPathTest, FilterNestedPathsAndIndexes) {
  doc_ = J(R"([{"a": {"b": [1, 5]}}, {"a": {"b": [7]}}, {"a": 3}])");
  EXPECT_EQ(Eval("$[?(@.a.b[0] > 2)].a.b"), "[[7]]");
  EXPECT_EQ(Eval("$[?(@['a']['b'][-1] == 5)].a.b"), "[[1,5]]");
  EXPECT_EQ(Eval("$[?(@.a.b[?(@ > 4)])].a.b"), "[[1,5],[7]]");
}

TEST_F(JsonPathTest, FilterOnScalarsWithAt) {
  doc_ = J(R"({"nums": [1, 5, 10, "x"]})");
  EXPECT_EQ(Eval("$.nums[?(@ > 2)]"), "[5,10]");
  EXPECT_EQ(Eval("$.nums[?(@ == 'x')]"), R"(["x"])");
}

TEST_F(JsonPathTest, FilterOnObjectTestsTheObject) {
  EXPECT_EQ(Eval("$.store.bicycle[?(@.color == 'red')].price"), "[19.95]");
  EXPECT_EQ(Eval("$.store.bicycle[?(@.color == 'blue')].price"), "[]");
}

TEST_F(JsonPathTest, RecursiveFilter) {
  EXPECT_EQ(Eval("$..[?(@.price > 19)].price"), "[22.99,19.95]");
  EXPECT_EQ(Eval("$..book[?(@.isbn)].author"), R"(["Herman Melville","J. R. R. Tolkien"])");
}

TEST_F(JsonPathTest, IndefiniteOnScalarIsEmpty) {
  doc_ = J(R"("text")");
  EXPECT_EQ(Eval("$[*]"), "[]");
  EXPECT_EQ(Eval("$..a"), "[]");
  EXPECT_EQ(Eval("$[?(@.a)]"), "[]");
}

// --- Assign ------------------------------------------------------------------

class AssignTest : public ::testing::Test {
 protected:
  std::string Assign(std::string_view root, std::string_view path, std::string_view value) {
    json::Value r = J(root);
    std::string before = r.Dump();
    auto out = P(path).Assign(r, J(value));
    EXPECT_EQ(r.Dump(), before) << "Assign changed its input";
    if (!out.ok()) return "error: " + std::string(out.status().message());
    return out->Dump();
  }
};

TEST_F(AssignTest, RootReplacesEverything) {
  EXPECT_EQ(Assign(R"({"a":1})", "$", R"([1,2])"), "[1,2]");
  EXPECT_EQ(Assign(R"("x")", "$", "7"), "7");
}

TEST_F(AssignTest, SetsNewAndExistingMembers) {
  EXPECT_EQ(Assign(R"({"a":1})", "$.b", R"("x")"), R"({"a":1,"b":"x"})");
  EXPECT_EQ(Assign(R"({"a":1,"b":2,"c":3})", "$.b", "9"), R"({"a":1,"b":9,"c":3})");
  EXPECT_EQ(Assign(R"({"a b":1})", "$['a b']", "null"), R"({"a b":null})");
}

TEST_F(AssignTest, CreatesMissingIntermediateObjects) {
  EXPECT_EQ(Assign(R"({"a":1})", "$.x.y.z", "true"), R"({"a":1,"x":{"y":{"z":true}}})");
  EXPECT_EQ(Assign(R"({"x":{"k":0}})", "$.x.y.z", "1"), R"({"x":{"k":0,"y":{"z":1}}})");
  EXPECT_EQ(Assign("{}", "$.result", R"({"r":[1]})"), R"({"result":{"r":[1]}})");
}

TEST_F(AssignTest, ArrayIndexes) {
  EXPECT_EQ(Assign(R"({"a":[1,2,3]})", "$.a[1]", R"("x")"), R"({"a":[1,"x",3]})");
  EXPECT_EQ(Assign(R"({"a":[1,2,3]})", "$.a[-1]", "0"), R"({"a":[1,2,0]})");
  EXPECT_EQ(Assign(R"({"a":[{"b":1}]})", "$.a[0].c", "2"), R"({"a":[{"b":1,"c":2}]})");
}

TEST_F(AssignTest, FailsWhenAnIntermediateIsNotAnObject) {
  for (auto [root, path] : std::vector<std::pair<const char*, const char*>>{
           {R"("str")", "$.a"},
           {R"({"a":5})", "$.a.b"},
           {R"({"a":null})", "$.a.b"},
           {R"({"a":[1]})", "$.a.b"},
           {R"({"a":{}})", "$.a[0]"},
           {R"({"a":[1,2]})", "$.a[2]"},
           {R"({"a":[1,2]})", "$.a[-3]"},
           {R"({})", "$.a[0]"},
       }) {
    json::Value r = J(root);
    auto out = P(path).Assign(r, json::Value(1));
    ASSERT_FALSE(out.ok()) << root << " " << path;
    EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << root << " " << path;
    EXPECT_THAT(out.status().message(), HasSubstr(path));
  }
}

TEST_F(AssignTest, CopyOnWriteSharesUntouchedNodes) {
  json::Value root = J(R"({"keep":{"big":[1,2,3]},"edit":{"x":1}})");
  json::Value keep_before = *root.Find("keep");
  json::Value edit_before = *root.Find("edit");
  auto out = P("$.edit.x").Assign(root, json::Value(2));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->Dump(), R"({"keep":{"big":[1,2,3]},"edit":{"x":2}})");
  EXPECT_TRUE(out->Find("keep")->SharesNodeWith(keep_before));
  EXPECT_FALSE(out->Find("edit")->SharesNodeWith(edit_before));
  EXPECT_EQ(root.Dump(), R"({"keep":{"big":[1,2,3]},"edit":{"x":1}})");
  EXPECT_EQ(edit_before.Dump(), R"({"x":1})");
}

TEST_F(AssignTest, RejectsNonReferencePaths) {
  auto out = P("$.a[*]").Assign(J("{}"), json::Value(1));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  auto ctx = P("$$.a").Assign(J("{}"), json::Value(1));
  EXPECT_EQ(ctx.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(JsonPathCopyTest, CopiesShareTheParsedPath) {
  JsonPath a = P("$.x[0]");
  JsonPath b = a;
  JsonPath c;
  c = b;
  JsonPath d = std::move(b);
  EXPECT_EQ(c.text(), "$.x[0]");
  EXPECT_EQ(d.text(), "$.x[0]");
  auto v = d.Evaluate(J(R"({"x":[4]})"), json::Value());
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->Dump(), "4");
}

}  // namespace
}  // namespace saga::asl
