#include "coordinator/common/pem_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "coordinator/common/status_macros.h"
#include "coordinator/common/strings.h"

namespace saga {

absl::StatusOr<std::string> ReadPemFile(std::string_view flag, const std::string& path,
                                        std::string_view label) {
  if (path.empty()) return absl::InvalidArgumentError(saga::StrCat(flag, ": needs a file name"));
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        saga::StrCat(flag, ": cannot read '", path, "': it is a folder"));
  }
  std::ifstream f(path, std::ios::binary);
  std::ostringstream text;
  if (f) text << f.rdbuf();
  if (!f || f.bad()) {
    return absl::InvalidArgumentError(saga::StrCat(flag, ": cannot read '", path, "'"));
  }
  std::string pem = text.str();
  constexpr std::string_view kBegin = "-----BEGIN ";
  for (size_t at = pem.find(kBegin); at != std::string::npos; at = pem.find(kBegin, at + 1)) {
    const size_t start = at + kBegin.size();
    const size_t end = pem.find("-----", start);
    if (end == std::string::npos) break;
    if (end - start >= label.size() &&
        std::string_view(pem).substr(end - label.size(), label.size()) == label) {
      return pem;
    }
  }
  return absl::InvalidArgumentError(saga::StrCat(flag, ": '", path,
                                                 "' holds no PEM block ending in ", label,
                                                 " (-----BEGIN ...", label, "-----)"));
}

absl::StatusOr<ClientTlsPem> ReadClientTlsPem(const std::optional<PemSource>& ca,
                                              const std::optional<PemSource>& cert,
                                              const std::optional<PemSource>& key) {
  if (cert.has_value() != key.has_value()) {
    return absl::InvalidArgumentError(
        cert ? saga::StrCat(cert->source, " needs --tls-key (or SAGA_TLS_CLIENT_KEY)")
             : saga::StrCat(key->source, " needs --tls-cert (or SAGA_TLS_CLIENT_CERT)"));
  }
  ClientTlsPem pem;
  if (ca) {
    ASSIGN_OR_RETURN(pem.roots, ReadPemFile(ca->source, ca->path, "CERTIFICATE"));
  }
  if (cert) {
    ASSIGN_OR_RETURN(pem.cert_chain, ReadPemFile(cert->source, cert->path, "CERTIFICATE"));
    ASSIGN_OR_RETURN(pem.private_key, ReadPemFile(key->source, key->path, "PRIVATE KEY"));
  }
  return pem;
}

}  // namespace saga
