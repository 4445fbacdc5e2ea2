// String concatenation over std types.
//
// Debian's Abseil 20220623 defines its own absl::string_view (not an alias
// of std::string_view), so absl::StrCat rejects std::string_view arguments
// and absl::Status::message() does not convert to std::string_view. These
// helpers bridge the two without sprinkling conversions everywhere.
#ifndef SAGA_COORDINATOR_COMMON_STRINGS_H_
#define SAGA_COORDINATOR_COMMON_STRINGS_H_

#include <charconv>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace saga {

inline std::string_view ToStd(absl::string_view s) { return {s.data(), s.size()}; }

namespace strings_internal {

inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, const char* s) { out->append(s); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
inline void Append(std::string* out, absl::string_view s) { out->append(s.data(), s.size()); }
inline void Append(std::string* out, char c) { out->push_back(c); }
inline void Append(std::string* out, bool b) { out->append(b ? "true" : "false"); }
template <typename T>
requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
         !std::is_same_v<T, char>) void Append(std::string* out, T v) {
  char buf[40];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(&out, args), ...);
  return out;
}

}  // namespace saga

#endif  // SAGA_COORDINATOR_COMMON_STRINGS_H_
