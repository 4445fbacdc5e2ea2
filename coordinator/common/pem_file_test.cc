#include "coordinator/common/pem_file.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saga {
namespace {

using ::testing::HasSubstr;

class PemFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/saga-pem-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

constexpr char kCert[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
constexpr char kEcKey[] = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n";

TEST_F(PemFileTest, ReturnsTheFileWhenItHoldsABlockWithTheLabel) {
  const std::string chain = std::string(kCert) + kCert;
  auto cert = ReadPemFile("--tls-cert", Write("chain.pem", chain), "CERTIFICATE");
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(*cert, chain);
  // "PRIVATE KEY" also finds "EC PRIVATE KEY" (and RSA, PKCS#8); a key and a
  // certificate in one file serve for both.
  const std::string both = std::string(kCert) + kEcKey;
  EXPECT_TRUE(ReadPemFile("--tls-key", Write("both.pem", both), "PRIVATE KEY").ok());
  EXPECT_TRUE(ReadPemFile("--tls-cert", Write("both2.pem", both), "CERTIFICATE").ok());
}

TEST_F(PemFileTest, ProblemsNameTheFlagAndThePath) {
  const std::string missing = dir_ + "/missing.pem";
  auto r = ReadPemFile("--tls-ca", missing, "CERTIFICATE");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "--tls-ca: cannot read '" + missing + "'");

  EXPECT_EQ(ReadPemFile("--tls-ca", dir_, "CERTIFICATE").status().message(),
            "--tls-ca: cannot read '" + dir_ + "': it is a folder");
  EXPECT_EQ(ReadPemFile("--tls-ca", "", "CERTIFICATE").status().message(),
            "--tls-ca: needs a file name");

  const std::string cert = Write("cert.pem", kCert);
  EXPECT_EQ(ReadPemFile("--tls-key", cert, "PRIVATE KEY").status().message(),
            "--tls-key: '" + cert +
                "' holds no PEM block ending in PRIVATE KEY (-----BEGIN ...PRIVATE KEY-----)");
  for (const char* text : {"", "not pem at all", "-----BEGIN CERTIFICATE", "-----BEGIN -----",
                           "-----BEGIN KEY-----"}) {
    EXPECT_THAT(ReadPemFile("--tls-key", Write("bad.pem", text), "PRIVATE KEY").status().message(),
                HasSubstr("holds no PEM block ending in PRIVATE KEY"))
        << text;
  }
}

TEST_F(PemFileTest, ClientTlsNeedsACertificateAndAKeyTogether) {
  const std::string cert = Write("client.pem", kCert), key = Write("client.key", kEcKey);
  auto pem = ReadClientTlsPem(PemSource{cert, "--tls-ca"}, PemSource{cert, "--tls-cert"},
                              PemSource{key, "SAGA_TLS_CLIENT_KEY"});
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_EQ(pem->roots, kCert);
  EXPECT_EQ(pem->cert_chain, kCert);
  EXPECT_EQ(pem->private_key, kEcKey);
  pem = ReadClientTlsPem(std::nullopt, std::nullopt, std::nullopt);  // gRPC's default roots
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_EQ(pem->roots, "");

  EXPECT_EQ(ReadClientTlsPem(std::nullopt, PemSource{cert, "SAGA_TLS_CLIENT_CERT"}, std::nullopt)
                .status()
                .message(),
            "SAGA_TLS_CLIENT_CERT needs --tls-key (or SAGA_TLS_CLIENT_KEY)");
  EXPECT_EQ(
      ReadClientTlsPem(std::nullopt, std::nullopt, PemSource{key, "--tls-key"}).status().message(),
      "--tls-key needs --tls-cert (or SAGA_TLS_CLIENT_CERT)");
  // The key file holding no key is named by its source.
  EXPECT_THAT(std::string(ReadClientTlsPem(std::nullopt, PemSource{cert, "--tls-cert"},
                                           PemSource{cert, "SAGA_TLS_CLIENT_KEY"})
                              .status()
                              .message()),
              ::testing::StartsWith("SAGA_TLS_CLIENT_KEY: '" + cert + "' holds no PEM block"));
}

}  // namespace
}  // namespace saga
