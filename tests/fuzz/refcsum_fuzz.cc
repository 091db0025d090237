// libFuzzer target on the reference parser/classifier (userspace/refcsum), checking the contract
// of docs/SEMANTICS.md as invariants on arbitrary bytes.
//
// Input: byte 0 is the meta byte, the rest is the frame (from the Ethernet header):
//   bits 0-1  hook (0 tc ingress, 1 tc egress, 2 and 3 XDP)
//   bit  2    is_partial (skb CHECKSUM_PARTIAL; the reference ignores it under XDP)
//   bit  3    is_gso
//   bit  4    xdp_redirect (XDP only)
// Every action (and one unknown action number, which must act as pass) runs on every input.
// Any broken invariant prints what broke and aborts, which libFuzzer reports as a crash.
//
// Build and run: docs/FUZZING.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "csumfix/abi.h"
#include "refcsum/refcsum.h"

namespace csumfix::ref {
namespace {

constexpr uint32_t kUnknownAction = CSF_ACT_MAX;  // must act and count as pass

[[noreturn]] void Broken(const char* what, uint32_t action, const Meta& m, size_t len,
                         uint32_t cls) {
  std::fprintf(stderr,
               "refcsum_fuzz: invariant broken: %s (action %u %s, hook %u, is_partial %d, "
               "is_gso %d, xdp_redirect %d, frame %zu bytes, class %s)\n",
               what, action, std::string(ActionName(action)).c_str(), m.hook, m.is_partial,
               m.is_gso, m.xdp_redirect, len, std::string(ClassName(cls)).c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, what) \
  do {                         \
    if (!(cond)) Broken(what, action, meta, frame.size(), r.cls); \
  } while (0)

bool Verifies(uint32_t a) {
  return a == CSF_ACT_VERIFY || a == CSF_ACT_DROP_BAD || a == CSF_ACT_FILL ||
         a == CSF_ACT_ZERO_UDP4;
}

size_t FieldSize(const Parsed& p) { return p.proto == 132 ? 4 : 2; }

void CheckParse(std::span<const uint8_t> frame) {
  const Parsed p = Parse(frame);
  const uint32_t action = CSF_ACT_VERIFY;
  const Meta meta;
  const Result r;
  if (p.cls == CSF_CLASS_NONE) {
    // Everything the parser points at lies inside the frame.
    FUZZ_CHECK(p.l3 != L3::kNone, "L4 found without L3");
    FUZZ_CHECK(p.l3_off >= 14 && p.l3_off < p.l4_off, "L3 offset");
    FUZZ_CHECK(p.l4_off + p.l4_len <= frame.size(), "L4 segment runs past the frame");
    FUZZ_CHECK(p.covered <= p.l4_len, "checksum coverage exceeds the L4 segment");
    FUZZ_CHECK(p.field_off >= p.l4_off && p.field_off + FieldSize(p) <= p.l4_off + p.covered,
               "checksum field outside the covered bytes");
    FUZZ_CHECK(p.vlan_tags >= 0 && p.vlan_tags <= 2, "more than two VLAN tags parsed");
  } else {
    FUZZ_CHECK(p.cls == CSF_CLASS_NA || p.cls == CSF_CLASS_UNPARSABLE,
               "parser stopped with a class other than na/unparsable");
  }
  if (frame.size() < 14) FUZZ_CHECK(p.cls == CSF_CLASS_UNPARSABLE, "short frame not unparsable");
}

void CheckAction(uint32_t action, std::span<const uint8_t> frame, const Meta& meta,
                 uint32_t verify_cls, const Parsed& parsed) {
  const Result r = Apply(action, frame, meta);
  const bool xdp = meta.hook == CSF_HOOK_XDP;
  const bool tc_partial = !xdp && meta.is_partial;
  const uint32_t eff = action < CSF_ACT_MAX ? action : CSF_ACT_PASS;

  // Output length: never changes (no helper here adjusts the frame).
  FUZZ_CHECK(r.out.size() == frame.size(), "output length differs from input length");
  // Classify agrees with Apply.
  FUZZ_CHECK(Classify(frame, action, meta) == r.cls, "Classify and Apply disagree on the class");
  FUZZ_CHECK(r.cls < CSF_CLASS_MAX, "class out of range");

  // Counters: one packet, its bytes, exactly one class and one action.
  FUZZ_CHECK(r.deltas[CSF_CTR_PACKETS] == 1, "PACKETS delta != 1");
  FUZZ_CHECK(r.deltas[CSF_CTR_BYTES] == frame.size(), "BYTES delta != frame length");
  uint64_t classes = 0, actions = 0;
  for (uint32_t c = 0; c < CSF_CLASS_MAX; ++c) classes += r.deltas[CSF_CTR_CLASS_BASE + c];
  for (uint32_t a = 0; a < CSF_ACT_MAX; ++a) actions += r.deltas[CSF_CTR_ACTION_BASE + a];
  FUZZ_CHECK(classes == 1 && r.deltas[CSF_CTR_CLASS_BASE + r.cls] == 1, "class counters");
  FUZZ_CHECK(actions == 1 && r.deltas[CSF_CTR_ACTION_BASE + eff] == 1, "action counters");
  for (int i = CSF_CTR_FILLED; i < CSF_CTR_MAX; ++i)
    FUZZ_CHECK(r.deltas[i] <= 1, "a per-packet event counted twice");
  FUZZ_CHECK(r.deltas[CSF_CTR_BOUNCED] == 0 && r.deltas[CSF_CTR_BOUNCE_RETURNED] == 0 &&
                 r.deltas[CSF_CTR_POLICY_HIT] == 0 && r.deltas[CSF_CTR_FILL_ERROR] == 0,
             "reference counted a bounce/policy/fill-error event");

  // Which classes an action may produce.
  if (eff == CSF_ACT_PASS) FUZZ_CHECK(r.cls == CSF_CLASS_NONE, "pass classified");
  if (eff != CSF_ACT_PASS) FUZZ_CHECK(r.cls != CSF_CLASS_NONE, "non-pass action left class none");
  if (eff == CSF_ACT_OBSERVE)
    FUZZ_CHECK((r.cls != CSF_CLASS_VALID && r.cls != CSF_CLASS_BAD) ||
                   (r.cls == CSF_CLASS_BAD && parsed.cls == CSF_CLASS_NONE &&
                    (parsed.proto == 17 || parsed.proto == 136)),
               "observe computed a checksum (valid/bad other than a forbidden zero)");
  if (Verifies(eff)) FUZZ_CHECK(r.cls != CSF_CLASS_UNVERIFIED, "verifying action: unverified");
  if (r.cls == CSF_CLASS_GSO) FUZZ_CHECK(!xdp && meta.is_gso, "GSO without tc is_gso");
  if (!xdp && meta.is_gso && eff != CSF_ACT_PASS)
    FUZZ_CHECK(r.cls == CSF_CLASS_GSO, "tc is_gso not classified GSO");
  // Every verifying action classifies the same way.
  if (Verifies(eff)) FUZZ_CHECK(r.cls == verify_cls, "verifying actions disagree on the class");

  // Verdict.
  const bool ip4_hdr_bad = parsed.l3 == L3::kIpv4 && !parsed.ip4_hdr_ok;
  const bool gso = r.cls == CSF_CLASS_GSO;
  FUZZ_CHECK(r.deltas[CSF_CTR_IP4_HDR_BAD] == (Verifies(eff) && !gso && ip4_hdr_bad ? 1u : 0u),
             "IP4_HDR_BAD counter");
  const bool want_drop = eff == CSF_ACT_DROP_BAD && (r.cls == CSF_CLASS_BAD || (!gso && ip4_hdr_bad));
  FUZZ_CHECK((r.verdict == Verdict::kDrop) == want_drop, "drop verdict");
  FUZZ_CHECK(r.deltas[CSF_CTR_DROPPED] == (want_drop ? 1u : 0u), "DROPPED counter");
  if (!want_drop) {
    const Verdict v = xdp && meta.xdp_redirect ? Verdict::kRedirect : Verdict::kPass;
    FUZZ_CHECK(r.verdict == v, "pass/redirect verdict");
  }

  // Modification rules.
  const bool modified = r.out != std::vector<uint8_t>(frame.begin(), frame.end());
  if (r.cls != CSF_CLASS_PARTIAL) FUZZ_CHECK(!modified, "a packet not PARTIAL was modified");
  if (eff != CSF_ACT_FILL && eff != CSF_ACT_ZERO_UDP4)
    FUZZ_CHECK(!modified, "an action other than fill/zero-udp4 modified the packet");
  if (xdp && !meta.xdp_redirect) FUZZ_CHECK(!modified, "XDP_PASS modified the packet");
  // A packet the verifier calls valid leaves byte-identical under every action, unless the kernel
  // holds it as CHECKSUM_PARTIAL (tc is_partial), where the field is rewritten anyway.
  if (verify_cls == CSF_CLASS_VALID && !tc_partial)
    FUZZ_CHECK(!modified, "a VALID packet was modified");
  FUZZ_CHECK(r.deltas[CSF_CTR_FILLED] + r.deltas[CSF_CTR_ZEROED] <= 1, "filled and zeroed");
  if (!modified) {
    // A fill that writes the value already there still counts as FILLED: only possible for a
    // PARTIAL packet under fill/zero-udp4.
    if (r.deltas[CSF_CTR_FILLED] || r.deltas[CSF_CTR_ZEROED])
      FUZZ_CHECK(r.cls == CSF_CLASS_PARTIAL, "FILLED/ZEROED on a packet not PARTIAL");
    return;
  }
  FUZZ_CHECK(r.deltas[CSF_CTR_FILLED] + r.deltas[CSF_CTR_ZEROED] == 1,
             "modified without FILLED or ZEROED");
  // Only the checksum field changed.
  const size_t fo = parsed.field_off, fs = FieldSize(parsed);
  for (size_t i = 0; i < frame.size(); ++i)
    if (i < fo || i >= fo + fs) FUZZ_CHECK(r.out[i] == frame[i], "a byte outside the field changed");

  // A filled packet re-classifies as valid (and a second fill leaves it alone); a zeroed UDP/IPv4
  // packet re-classifies as zero.
  Meta after = meta;
  after.is_partial = false;  // the mechanism clears CHECKSUM_PARTIAL with the fill
  const uint32_t again = Classify(r.out, CSF_ACT_VERIFY, after);
  if (r.deltas[CSF_CTR_ZEROED]) {
    FUZZ_CHECK(parsed.l3 == L3::kIpv4 && parsed.proto == 17, "zeroed a packet not UDP/IPv4");
    FUZZ_CHECK(again == CSF_CLASS_ZERO, "a zeroed packet does not re-classify as zero");
  } else {
    FUZZ_CHECK(again == CSF_CLASS_VALID, "a filled packet does not re-classify as valid");
    const Result twice = Apply(action, r.out, after);
    FUZZ_CHECK(twice.out == r.out, "a second fill changed a filled packet");
  }
}

void CheckPrimitives(std::span<const uint8_t> data) {
  const uint32_t action = 0;
  const Meta meta;
  const Result r;
  const std::span<const uint8_t> frame = data;
  // RFC 1624 incremental update agrees with recomputation for the first word.
  if (data.size() >= 4) {
    std::vector<uint8_t> b(data.begin(), data.end());
    const uint16_t before = InternetChecksum(b);
    const uint16_t old_word = static_cast<uint16_t>(b[0] << 8 | b[1]);
    const uint16_t new_word = static_cast<uint16_t>(b[2] << 8 | b[3]);
    b[0] = static_cast<uint8_t>(new_word >> 8);
    b[1] = static_cast<uint8_t>(new_word);
    const uint16_t after = InternetChecksum(b);
    const uint16_t inc = IncrementalUpdate(before, old_word, new_word);
    // One's complement has two zeros: 0x0000 and 0xffff are the same value.
    FUZZ_CHECK(inc == after || (inc ^ after) == 0xffff, "RFC 1624 update disagrees");
  }
  // Summing in two pieces (split at an even offset) equals summing at once.
  const size_t half = (data.size() / 2) & ~size_t{1};
  const uint16_t whole = OnesSum16(data);
  const uint16_t split = OnesSum16(data.subspan(half), OnesSum16(data.first(half)));
  FUZZ_CHECK(whole == split || (whole ^ split) == 0xffff, "OnesSum16 not associative");
  // CRC32c (slicing tables) against a bit-at-a-time CRC32c (Castagnoli, reflected).
  uint32_t crc = 0xffffffffu;
  for (uint8_t b : data) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  FUZZ_CHECK(Crc32c(data) == ~crc, "Crc32c disagrees with the bitwise CRC32c");
}

// Inspect (what `csumfix diagnose` shows for a captured frame) agrees with the classifier.
void CheckInspect(std::span<const uint8_t> frame, const Parsed& parsed) {
  const uint32_t action = CSF_ACT_VERIFY;
  const Meta meta;
  const Result r;
  const Inspection in = Inspect(frame);
  FUZZ_CHECK(in.cls == Classify(frame, CSF_ACT_VERIFY, Meta{}), "Inspect class != Classify");
  FUZZ_CHECK(in.has_field == (parsed.cls == CSF_CLASS_NONE), "Inspect has_field");
  if (!in.has_field) return;
  FUZZ_CHECK(in.correct == CorrectField(frame, parsed), "Inspect correct != CorrectField");
  // A field holding the correct value verifies (UDP/UDP-Lite 0 is zero/bad before validity).
  if (in.found == in.correct && in.found != 0)
    FUZZ_CHECK(in.cls == CSF_CLASS_VALID, "the correct value in the field is not valid");
}

}  // namespace
}  // namespace csumfix::ref

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace csumfix::ref;
  if (size < 1) return 0;
  const uint8_t m = data[0];
  Meta meta;
  meta.hook = (m & 3) >= CSF_HOOK_MAX ? CSF_HOOK_XDP : (m & 3);
  meta.is_partial = m & 4;
  meta.is_gso = m & 8;
  meta.xdp_redirect = (m & 16) && meta.hook == CSF_HOOK_XDP;
  const std::span<const uint8_t> frame(data + 1, size - 1);

  CheckParse(frame);
  CheckPrimitives(frame);
  const Parsed parsed = Parse(frame);
  const uint32_t verify_cls = Classify(frame, CSF_ACT_VERIFY, meta);
  for (uint32_t action = 0; action <= kUnknownAction; ++action)
    CheckAction(action, frame, meta, verify_cls, parsed);
  CheckInspect(frame, parsed);
  return 0;
}
