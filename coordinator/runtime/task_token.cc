#include "coordinator/runtime/task_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

#include "absl/strings/escaping.h"

namespace saga::runtime {
namespace {

constexpr size_t kMacBytes = 16;  // truncated HMAC-SHA-256 (128 bits)
constexpr char kVersion = 1;

bool ParseUuid(const std::string& s, unsigned char out[16]) {
  if (s.size() != 36) return false;
  int k = 0;
  for (size_t i = 0; i < s.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
      ++i;
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = hex(s[i]), lo = hex(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[k++] = static_cast<unsigned char>(hi * 16 + lo);
    i += 2;
  }
  return k == 16;
}

std::string FormatUuid(const unsigned char b[16]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

std::string Mac(const std::string& secret, const std::string& payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), kMacBytes);
}

}  // namespace

std::string TaskTokenCodec::Encode(const TaskRef& ref) const {
  unsigned char id[16] = {};
  ParseUuid(ref.execution_id, id);
  std::string payload(1, kVersion);
  payload.append(reinterpret_cast<char*>(id), 16);
  for (int i = 7; i >= 0; --i) payload.push_back(static_cast<char>((ref.task_id >> (8 * i)) & 0xFF));
  std::string raw = payload + Mac(secret_, payload);
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(raw.data(), raw.size()), &out);
  return out;
}

absl::StatusOr<TaskRef> TaskTokenCodec::Decode(const std::string& token) const {
  std::string raw;
  if (token.empty()) return absl::InvalidArgumentError("task_token: must not be empty");
  if (token.size() > 1024 || !absl::WebSafeBase64Unescape(token, &raw) ||
      raw.size() != 1 + 16 + 8 + kMacBytes || raw[0] != kVersion) {
    return absl::InvalidArgumentError("task_token: not a task token issued by this coordinator");
  }
  const std::string payload = raw.substr(0, 25);
  const std::string mac = Mac(secret_, payload);
  if (CRYPTO_memcmp(mac.data(), raw.data() + 25, kMacBytes) != 0) {
    return absl::InvalidArgumentError("task_token: not a task token issued by this coordinator");
  }
  TaskRef ref;
  ref.execution_id = FormatUuid(reinterpret_cast<const unsigned char*>(raw.data() + 1));
  int64_t t = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | static_cast<unsigned char>(raw[17 + i]);
  ref.task_id = t;
  return ref;
}

}  // namespace saga::runtime
