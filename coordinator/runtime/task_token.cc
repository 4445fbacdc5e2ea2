#include "coordinator/runtime/task_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

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

}  // namespace

struct TaskTokenCodec::Key {
  EVP_MD_CTX* inner = nullptr;
  EVP_MD_CTX* outer = nullptr;
  ~Key() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

TaskTokenCodec::TaskTokenCodec(const std::string& secret) {
  // RFC 2104: K' = K (padded to the 64-byte block) or SHA-256(K) if longer.
  constexpr size_t kBlock = 64;
  unsigned char k[kBlock] = {};
  if (secret.size() > kBlock) {
    unsigned int len = 0;
    EVP_Digest(secret.data(), secret.size(), k, &len, EVP_sha256(), nullptr);
  } else {
    std::memcpy(k, secret.data(), secret.size());
  }
  unsigned char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  auto key = std::make_shared<Key>();
  key->inner = EVP_MD_CTX_new();
  key->outer = EVP_MD_CTX_new();
  EVP_DigestInit_ex(key->inner, EVP_sha256(), nullptr);
  EVP_DigestUpdate(key->inner, ipad, kBlock);
  EVP_DigestInit_ex(key->outer, EVP_sha256(), nullptr);
  EVP_DigestUpdate(key->outer, opad, kBlock);
  OPENSSL_cleanse(k, kBlock);
  OPENSSL_cleanse(ipad, kBlock);
  OPENSSL_cleanse(opad, kBlock);
  key_ = std::move(key);
}

// HMAC-SHA-256(secret, payload), truncated to kMacBytes.
std::string TaskTokenCodec::Mac(const std::string& payload) const {
  thread_local std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                       EVP_MD_CTX_free);
  unsigned char inner[EVP_MAX_MD_SIZE], mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX_copy_ex(ctx.get(), key_->inner);
  EVP_DigestUpdate(ctx.get(), payload.data(), payload.size());
  EVP_DigestFinal_ex(ctx.get(), inner, &len);
  EVP_MD_CTX_copy_ex(ctx.get(), key_->outer);
  EVP_DigestUpdate(ctx.get(), inner, len);
  EVP_DigestFinal_ex(ctx.get(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), kMacBytes);
}

std::string TaskTokenCodec::Encode(const TaskRef& ref) const {
  unsigned char id[16] = {};
  ParseUuid(ref.execution_id, id);
  std::string payload(1, kVersion);
  payload.append(reinterpret_cast<char*>(id), 16);
  for (int i = 7; i >= 0; --i) payload.push_back(static_cast<char>((ref.task_id >> (8 * i)) & 0xFF));
  std::string raw = payload + Mac(payload);
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
  const std::string mac = Mac(payload);
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
