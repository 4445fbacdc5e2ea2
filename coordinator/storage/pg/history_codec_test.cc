#include "coordinator/storage/pg/history_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

namespace saga::storage {
namespace {

std::string FromHex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// A 1-task execution's first history row, as the coordinator writes it.
constexpr std::string_view kStartRow =
    R"([[1,1796201567654728,0,"ExecutionStarted",null,{"input":{"orderId":"o-1","amount":42.5},)"
    R"("roleArn":"arn:saga:iam:::role/saga-coordinator","executionArn":"arn:saga:states:::)"
    R"(execution:Order:o1","name":"o1","stateMachineArn":"arn:saga:states:::stateMachine:Order",)"
    R"("stateMachineName":"Order"}],[2,1796201567654728,0,"TaskStateEntered","Work",{"input":)"
    R"({"orderId":"o-1","amount":42.5}}],[3,1796201567654728,0,"ActivityScheduled","Work",)"
    R"({"resource":"work","input":{"orderId":"o-1","amount":42.5},"taskId":1}]])";

// Rows written with codec 1 must read back for ever: this one was packed
// when the codec was made (commit "History rows packed with zstd and a
// dictionary"). Fails if the dictionary's bytes change.
constexpr std::string_view kPackedStartRow =
    "0128b52ffd60f5006d0400c40339363230313536373635343732387b226f72646f2d31222c22616d"
    "34322e357d4f726465723a6f317d5d2c5b32576f726b227d5d2c5b3377317d5d5d1c001564037114"
    "90431cfa9af80281adc2c0502980179f96ac167c88ad2ae412a3640323ebabcf88299a01d70e4b18"
    "e02807800ba07f1d942d81d70543bbf1dd5953939c07a734332d071175c02810";

TEST(HistoryCodec, RowsPackedWhenTheCodecWasMadeStillReadBack) {
  auto text = UnpackHistory(FromHex(kPackedStartRow));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, kStartRow);
}

TEST(HistoryCodec, TheDictionaryIsPinned) {
  // FNV-1a of dictionary 1: changing it would make every row written with
  // codec 1 unreadable (a new dictionary is a new codec).
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : HistoryDictionary1()) h = (h ^ c) * 1099511628211ull;
  EXPECT_EQ(HistoryDictionary1().size(), 2337u);
  EXPECT_EQ(h, 18000347246057268552ull);
}

TEST(HistoryCodec, PackedRowsReadBackExactlyAndTheHistoryFormatShrinks) {
  const std::string packed = PackHistory(kStartRow);
  ASSERT_FALSE(packed.empty());
  EXPECT_EQ(packed[0], '\x01');  // codec 1
  // The dictionary holds the format's names and keys: well under half.
  EXPECT_LT(packed.size() * 2, kStartRow.size()) << packed.size();
  auto back = UnpackHistory(packed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, kStartRow);

  // Any text, of any size, including bytes JSON would escape.
  std::mt19937 rng(11);
  for (size_t n : {size_t{1}, size_t{7}, size_t{300}, size_t{70000}, size_t{1} << 20}) {
    std::string text(n, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 7 == 0 ? rng() : 'a' + rng() % 3);
    const std::string p = PackHistory(text);
    ASSERT_FALSE(p.empty()) << n;
    auto t = UnpackHistory(p);
    ASSERT_TRUE(t.ok()) << n << ": " << t.status();
    EXPECT_EQ(*t, text) << n;
  }
}

TEST(HistoryCodec, DamagedRowsAreDataLossNotACrash) {
  const std::string packed = PackHistory(kStartRow);
  ASSERT_GT(packed.size(), 20u);
  struct Case {
    const char* what;
    std::string data;
  };
  std::string unknown = packed;
  unknown[0] = '\x02';
  std::string flipped = packed;
  flipped[packed.size() / 2] = static_cast<char>(flipped[packed.size() / 2] ^ 0x5a);
  // A frame claiming more than a row may hold (the content size field).
  const std::string huge = PackHistory(std::string(kMaxHistoryRowText + 1, 'x'));
  const Case cases[] = {
      {"empty", ""},
      {"unknown codec", unknown},
      {"codec byte only", packed.substr(0, 1)},
      {"truncated", packed.substr(0, packed.size() - 5)},
      {"flipped byte", flipped},
      {"too large", huge},
      {"not zstd", std::string("\x01not a zstd frame at all", 24)},
  };
  for (const Case& c : cases) {
    auto t = UnpackHistory(c.data);
    if (t.ok()) {
      // A flipped literal byte can decode to other text of the same size;
      // it must never be mistaken for the original.
      EXPECT_NE(*t, kStartRow) << c.what;
      continue;
    }
    EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss) << c.what << ": " << t.status();
  }
  EXPECT_FALSE(UnpackHistory(unknown).ok());
  EXPECT_FALSE(UnpackHistory(huge).ok());
  EXPECT_FALSE(UnpackHistory("").ok());
}

// kStartRow as schema version 4 stored it: its length in 4 bytes,
// little-endian, then one LZ4 block (LZ4_compress_default).
constexpr std::string_view kLz4StartRow =
    "f5010000f47c5b5b312c313739363230313536373635343732382c302c22457865637574696f6e53"
    "746172746564222c6e756c6c2c7b22696e707574223a7b226f726465724964223a226f2d31222c22"
    "616d6f756e74223a34322e357d2c22726f6c6541726e223a2261726e3a736167613a69616d3a3a3a"
    "726f6c652f736167612d636f6f7264696e61746f72222c226572000b3600957374617465733a3a3a"
    "2100203a4f7b00203a6f7600406e616d658300000c00012a006c4d616368696e7b00011b00004500"
    "0109000324000248000b3900124e51000163006f227d5d2c5b32200102505461736b539a0050456e"
    "74657220016f22576f726b22220116005b001f335b0002f90041637469766974795363686564756c"
    "5c00707265736f757263f30011776f000f900116c07461736b4964223a317d5d5d";

// kStartRow as schema version 3 stored it: raw deflate (zlib level 1,
// window 2^12, memLevel 4).
constexpr std::string_view kDeflatedStartRow =
    "8d91bd6ec3300c84df85b3d2c66e1cb7da3264e8d07670810e860742161221b654d0547f10f8dd2b"
    "3a68d01a19b24920efbb2359d799caca8775becc8a75b92e56657eaf960ab65fd64476c1578cc4b6"
    "05e563d7a92338ff1e19f41102b5961e5bd010161928c03e449f2aabfca6181550e8ec867c2a2379"
    "3de00eb5c35e6b2d855bf92f4c480ce7910325bdfd759ca90646b643129e1bf48b58eb20ae1e7b2b"
    "11e43d753ea1d93b3fb73e43fef69c3833e1f3093859c0d8a83abfb89f571c0e9524db7ab624fb81"
    "b74007b87a4382bebb88de18761f8ebf2bb3b76decfeb1c90e219291913f27bbabefc129b05c2b1b"
    "9be607";

TEST(HistoryCodec, RowsOfEarlierSchemaVersionsReadBack) {
  const std::string lz4 = FromHex(kLz4StartRow);
  auto from_lz4 = HistoryLz4Text(lz4);
  ASSERT_TRUE(from_lz4.ok()) << from_lz4.status();
  EXPECT_EQ(*from_lz4, kStartRow);
  EXPECT_EQ(HistoryLz4Text(lz4.substr(0, 3)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(HistoryLz4Text(lz4.substr(0, lz4.size() - 2)).status().code(),
            absl::StatusCode::kDataLoss);

  const std::string deflated = FromHex(kDeflatedStartRow);
  auto from_deflate = HistoryDeflateText(deflated);
  ASSERT_TRUE(from_deflate.ok()) << from_deflate.status();
  EXPECT_EQ(*from_deflate, kStartRow);
  EXPECT_EQ(HistoryDeflateText(deflated.substr(0, deflated.size() / 2)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(HistoryDeflateText(std::string_view("\x00\xff\x01", 3)).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace saga::storage
