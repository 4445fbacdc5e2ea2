// Reading PEM files named on a command line (TLS certificates and keys for
// saga-coordinator, sagactl and the example services).
#ifndef SAGA_COORDINATOR_COMMON_PEM_FILE_H_
#define SAGA_COORDINATOR_COMMON_PEM_FILE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace saga {

// The text of the PEM file `path` given to `flag`, checked to hold a block
// whose label ends in `label` ("CERTIFICATE" for "-----BEGIN CERTIFICATE-----",
// "PRIVATE KEY" also for "-----BEGIN EC PRIVATE KEY-----"). On a problem,
// INVALID_ARGUMENT whose message names the flag and the path:
//   "--tls-ca: cannot read '/etc/ca.pem'"
//   "--tls-key: '/etc/cert.pem' holds no PEM block ending in PRIVATE KEY (...)"
absl::StatusOr<std::string> ReadPemFile(std::string_view flag, const std::string& path,
                                        std::string_view label);

// A PEM file named on a command line, and the flag or environment variable
// that named it (messages name it).
struct PemSource {
  std::string path, source;
};

// What a TLS client (sagactl, a worker) needs: the CA certificates to trust
// (empty: gRPC's default roots) and, for mutual TLS, its certificate chain and
// private key.
struct ClientTlsPem {
  std::string roots, cert_chain, private_key;
};

// Reads the files of every client's --tls-ca, --tls-cert and --tls-key
// (SAGA_TLS_CA, SAGA_TLS_CLIENT_CERT, SAGA_TLS_CLIENT_KEY). A certificate
// without a key, or a key without a certificate, is INVALID_ARGUMENT naming
// the one given and the one missing; a file problem as ReadPemFile's.
absl::StatusOr<ClientTlsPem> ReadClientTlsPem(const std::optional<PemSource>& ca,
                                              const std::optional<PemSource>& cert,
                                              const std::optional<PemSource>& key);

}  // namespace saga

#endif  // SAGA_COORDINATOR_COMMON_PEM_FILE_H_
