// The stored forms of a history row's events JSON text (see pg_store.cc:
// every form reads back as the same text).
//
// - text (`events`), written when compressing saves less than a fifth;
// - raw deflate (`events_z`), written by schema version 3;
// - LZ4 (`events_lz4`), written by schema version 4: the text's length in 4
//   bytes, little-endian, then one LZ4 block;
// - packed (`events_packed`), written from schema version 5: one byte naming
//   the codec, then its data. Codec 1 is a zstd frame (content size in its
//   header, no checksum) compressed with history dictionary 1, a fixed text
//   of the fragments every history repeats (event type names, detail keys,
//   the ARN prefixes, error names). The dictionary is part of the stored
//   format: rows written with it need exactly its bytes, so it never
//   changes; a better one would be codec 2.
//
// Thread safety: every function may be called from any thread.
#ifndef SAGA_COORDINATOR_STORAGE_PG_HISTORY_CODEC_H_
#define SAGA_COORDINATOR_STORAGE_PG_HISTORY_CODEC_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace saga::storage {

// At most 64 MiB of text out: a history row is a transition's events, each
// payload at most 256 KiB.
inline constexpr size_t kMaxHistoryRowText = size_t{64} << 20;

// The packed form of `text` (codec 1); empty if compression failed.
std::string PackHistory(std::string_view text);

// The text of a packed row; DATA_LOSS when `data` is not a packed row.
absl::StatusOr<std::string> UnpackHistory(std::string_view data);

// The text of an LZ4 row (schema version 4); DATA_LOSS when it is not one.
absl::StatusOr<std::string> HistoryLz4Text(std::string_view data);

// The text of a raw-deflate row (schema version 3); DATA_LOSS when it is
// not one.
absl::StatusOr<std::string> HistoryDeflateText(std::string_view data);

// History dictionary 1 (codec 1), as stored: exposed for the test that pins
// it.
std::string_view HistoryDictionary1();

}  // namespace saga::storage

#endif  // SAGA_COORDINATOR_STORAGE_PG_HISTORY_CODEC_H_
