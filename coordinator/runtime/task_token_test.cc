// Task tokens: round trip, tampering, and the MAC is HMAC-SHA-256 (checked
// against OpenSSL's one-shot HMAC, for secrets shorter and longer than the
// SHA-256 block).
#include "coordinator/runtime/task_token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace saga::runtime {
namespace {

constexpr char kExecution[] = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0ff";

std::string Raw(const std::string& token) {
  std::string raw;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(token, &raw));
  return raw;
}

std::string OneShotHmac(const std::string& secret, const std::string& payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), 16);
}

TEST(TaskToken, RoundTripsExecutionAndTask) {
  TaskTokenCodec codec("secret");
  auto ref = codec.Decode(codec.Encode({kExecution, 0x0102030405060708}));
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->execution_id, kExecution);
  EXPECT_EQ(ref->task_id, 0x0102030405060708);
}

TEST(TaskToken, MacIsHmacSha256UnderTheSecret) {
  for (const std::string& secret :
       {std::string("k"), std::string(64, 'x'), std::string(65, 'y'), std::string(200, 'z')}) {
    TaskTokenCodec codec(secret);
    const std::string raw = Raw(codec.Encode({kExecution, 42}));
    ASSERT_EQ(raw.size(), 41u);
    EXPECT_EQ(raw.substr(25), OneShotHmac(secret, raw.substr(0, 25))) << secret.size();
  }
}

TEST(TaskToken, OtherSecretsAndAlteredTokensAreRefused) {
  TaskTokenCodec codec("secret"), other("secret2");
  const std::string token = codec.Encode({kExecution, 7});
  EXPECT_FALSE(other.Decode(token).ok());
  std::string raw = Raw(token);
  raw[20] ^= 1;  // the task id
  std::string altered;
  absl::WebSafeBase64Escape(raw, &altered);
  auto r = codec.Decode(altered);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("task_token"), std::string::npos);
  EXPECT_FALSE(codec.Decode("").ok());
  EXPECT_FALSE(codec.Decode("not base64 !").ok());
}

TEST(TaskToken, EncodesConcurrentlyFromManyThreads) {
  TaskTokenCodec codec("secret");
  const std::string expected = codec.Encode({kExecution, 9});
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        if (codec.Encode({kExecution, 9}) != expected) ++mismatches[t];
        if (!codec.Decode(expected).ok()) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
}  // namespace saga::runtime
