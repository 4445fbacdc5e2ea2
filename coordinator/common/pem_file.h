// Reading PEM files named on a command line (TLS certificates and keys for
// saga-coordinator, sagactl and the example services).
#ifndef SAGA_COORDINATOR_COMMON_PEM_FILE_H_
#define SAGA_COORDINATOR_COMMON_PEM_FILE_H_

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

}  // namespace saga

#endif  // SAGA_COORDINATOR_COMMON_PEM_FILE_H_
