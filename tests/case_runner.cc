// Runs one corpus case through the real `sagactl` binary and compares.
//
//   case_runner conformance SAGACTL CASE.json
//     Case format of ../shared/asl-oracle (definition, input, mockConfig,
//     testCase, stateMachine?, expected, ignore?). Runs
//     `sagactl test-run` and compares its JSON line with "expected":
//     structural equality (numbers by value, key order ignored), minus the
//     dotted paths listed in "ignore" ("cause", "output.err.Cause", "*").
//
//   case_runner validation SAGACTL CASE.json
//     {"definition", "expected_errors": [{"path", "contains"}]}. Runs
//     `sagactl validate` and checks that every expected error is reported
//     (same path, message containing the text, case-insensitive).
//
// Exit 0 on a match; 1 with a readable diff otherwise.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/common/json.h"

namespace {

using saga::json::Value;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Runs argv, returns (exit code, stdout).
std::pair<int, std::string> Run(const std::vector<std::string>& argv) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return {-1, ""};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipefd[1]);
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string LastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Removes the dotted path `parts[i..]` from v ("*" matches any key/index).
void Drop(Value* v, const std::vector<std::string>& parts, size_t i) {
  if (i >= parts.size()) return;
  const std::string& p = parts[i];
  bool last = i + 1 == parts.size();
  if (v->is_object()) {
    std::vector<std::string> keys;
    for (const auto& m : v->as_object()) {
      if (p == "*" || m.first == p) keys.push_back(m.first);
    }
    for (const auto& k : keys) {
      if (last) {
        v->Erase(k);
      } else {
        Value child = *v->Find(k);
        Drop(&child, parts, i + 1);
        v->Set(k, child);
      }
    }
  } else if (v->is_array() && !last) {
    auto& arr = v->mutable_array();
    for (size_t k = 0; k < arr.size(); ++k) {
      if (p == "*" || p == std::to_string(k)) Drop(&arr[k], parts, i + 1);
    }
  }
}

void DropAll(Value* v, const Value* ignore) {
  if (ignore == nullptr || !ignore->is_array()) return;
  for (const auto& path : ignore->as_array()) {
    if (!path.is_string()) continue;
    std::vector<std::string> parts;
    std::stringstream ss(path.as_string());
    std::string part;
    while (std::getline(ss, part, '.')) parts.push_back(part);
    Drop(v, parts, 0);
  }
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int Fail(const std::string& why) {
  std::cout << "FAIL: " << why << "\n";
  return 1;
}

int Conformance(const std::string& sagactl, const Value& c, const std::string& tmp) {
  const Value* def = c.Find("definition");
  const Value* expected = c.Find("expected");
  if (def == nullptr || expected == nullptr) return Fail("case lacks definition or expected");
  WriteAll(tmp + "/definition.json", def->Dump());
  const Value* input = c.Find("input");
  WriteAll(tmp + "/input.json", input ? input->Dump() : "{}");
  std::vector<std::string> argv = {sagactl,        "test-run",
                                   "--definition", tmp + "/definition.json",
                                   "--input",      tmp + "/input.json"};
  if (const Value* mc = c.Find("mockConfig"); mc && mc->is_object()) {
    WriteAll(tmp + "/mock.json", mc->Dump());
    std::string sm;
    if (const Value* s = c.Find("stateMachine"); s && s->is_string()) {
      sm = s->as_string();
    } else if (const Value* sms = mc->Find("StateMachines"); sms && sms->size() > 0) {
      sm = sms->as_object()[0].first;
    }
    const Value* tc = c.Find("testCase");
    argv.insert(argv.end(), {"--mock-config", tmp + "/mock.json", "--state-machine", sm,
                             "--test-case", tc && tc->is_string() ? tc->as_string() : "Default"});
  }
  auto [code, out] = Run(argv);
  if (code != 0 && code != 2) return Fail("sagactl exited " + std::to_string(code));
  auto got = saga::json::Parse(LastLine(out));
  if (!got.ok()) return Fail("unparsable output: " + out);
  Value g = *got, e = *expected;
  const Value* ignore = c.Find("ignore");
  DropAll(&g, ignore);
  DropAll(&e, ignore);
  if (g == e) return 0;
  std::cout << "expected: " << e.Dump() << "\n     got: " << g.Dump() << "\n";
  return Fail("result differs");
}

int Validation(const std::string& sagactl, const Value& c, const std::string& tmp) {
  const Value* def = c.Find("definition");
  const Value* expected = c.Find("expected_errors");
  if (def == nullptr || expected == nullptr || !expected->is_array()) {
    return Fail("case lacks definition or expected_errors");
  }
  WriteAll(tmp + "/definition.json", def->Dump());
  auto [code, out] = Run({sagactl, "validate", tmp + "/definition.json"});
  auto got = saga::json::Parse(LastLine(out));
  if (!got.ok()) return Fail("unparsable output: " + out);
  if (code != 2) return Fail("expected exit 2 (invalid), got " + std::to_string(code) + ": " + out);
  const Value* errors = got->Find("errors");
  if (errors == nullptr || !errors->is_array()) return Fail("no errors array: " + out);
  int missing = 0;
  for (const auto& want : expected->as_array()) {
    const Value* path = want.Find("path");
    const Value* contains = want.Find("contains");
    bool found = false;
    for (const auto& have : errors->as_array()) {
      const Value* hp = have.Find("path");
      const Value* hm = have.Find("message");
      if (!hp || !hm || !path || !hp->is_string() || !path->is_string()) continue;
      if (hp->as_string() != path->as_string()) continue;
      if (contains && contains->is_string() &&
          Lower(hm->as_string()).find(Lower(contains->as_string())) == std::string::npos) {
        continue;
      }
      found = true;
    }
    if (!found) {
      std::cout << "missing error: " << want.Dump() << "\n";
      ++missing;
    }
  }
  if (missing == 0) return 0;
  std::cout << "reported: " << errors->Dump() << "\n";
  return Fail("expected errors not reported");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: case_runner conformance|validation SAGACTL CASE.json\n";
    return 2;
  }
  std::string mode = argv[1], sagactl = argv[2], path = argv[3];
  auto c = saga::json::Parse(ReadAll(path));
  if (!c.ok()) {
    std::cerr << path << ": " << c.status().message() << "\n";
    return 2;
  }
  char tmpl[] = "/tmp/saga-case-XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (dir == nullptr) return 2;
  std::string tmp = dir;
  int rc = mode == "validation" ? Validation(sagactl, *c, tmp) : Conformance(sagactl, *c, tmp);
  std::filesystem::remove_all(tmp);
  return rc;
}
