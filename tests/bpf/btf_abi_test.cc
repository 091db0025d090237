// Compares the structs of include/csumfix/abi.h as the C++ compiler lays them out with the BTF
// that clang emitted for the BPF object: a mismatch means BPF and userspace disagree on a map.
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstddef>
#include <string>
#include <vector>

#include "csumfix/abi.h"
#include "gtest/gtest.h"

namespace {

struct Field {
  const char* name;
  size_t offset;
  size_t size;
};

void ExpectStruct(const btf* b, const char* name, size_t size, const std::vector<Field>& fields) {
  int id = btf__find_by_name_kind(b, name, BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct " << name << " not in the BPF object's BTF";
  const btf_type* t = btf__type_by_id(b, id);
  EXPECT_EQ(t->size, size) << "sizeof(struct " << name << ") differs between BPF and C++";
  ASSERT_EQ(btf_vlen(t), fields.size()) << "member count of struct " << name;
  const btf_member* m = btf_members(t);
  for (size_t i = 0; i < fields.size(); ++i) {
    EXPECT_STREQ(btf__name_by_offset(b, m[i].name_off), fields[i].name) << name << " member " << i;
    EXPECT_EQ(btf_member_bit_offset(t, i), fields[i].offset * 8) << name << "." << fields[i].name;
    EXPECT_EQ(static_cast<size_t>(btf__resolve_size(b, m[i].type)), fields[i].size)
        << name << "." << fields[i].name;
  }
}

TEST(BtfAbi, MapTypesMatchCxxLayout) {
  std::string path = std::string(CSUMFIX_BPF_OBJ_DIR) + "/csumfix.bpf.o";
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  ASSERT_NE(obj, nullptr) << "cannot open " << path << ": build it first (scripts/test.sh)";
  const btf* b = bpf_object__btf(obj);
  ASSERT_NE(b, nullptr) << path << " has no BTF: it must be built with clang -g";
  ExpectStruct(b, "csf_if_key", sizeof(csf_if_key),
               {{"ifindex", offsetof(csf_if_key, ifindex), 4}, {"hook", offsetof(csf_if_key, hook), 4}});
  ExpectStruct(b, "csf_ifcfg", sizeof(csf_ifcfg),
               {{"action", offsetof(csf_ifcfg, action), 4},
                {"flags", offsetof(csf_ifcfg, flags), 4},
                {"mechanism", offsetof(csf_ifcfg, mechanism), 4},
                {"target_ifindex", offsetof(csf_ifcfg, target_ifindex), 4}});
  ExpectStruct(b, "csf_bounce_ret", sizeof(csf_bounce_ret),
               {{"target_ifindex", offsetof(csf_bounce_ret, target_ifindex), 4},
                {"hook", offsetof(csf_bounce_ret, hook), 4}});
  ExpectStruct(b, "csf_counters", sizeof(csf_counters), {{"c", 0, sizeof(csf_counters)}});
  ExpectStruct(b, "csf_slot", sizeof(csf_slot),
               {{"ctr", offsetof(csf_slot, ctr), sizeof(csf_counters)},
                {"cfg", offsetof(csf_slot, cfg), sizeof(csf_ifcfg)},
                {"has_cfg", offsetof(csf_slot, has_cfg), 4},
                {"pad", offsetof(csf_slot, pad), 4},
                {"gen", offsetof(csf_slot, gen), 8}});
  ExpectStruct(b, "csf_cfg_gen", sizeof(csf_cfg_gen), {{"gen", 0, 8}});
  ExpectStruct(b, "csf_tuple", sizeof(csf_tuple),
               {{"ifindex", offsetof(csf_tuple, ifindex), 4},
                {"hook", offsetof(csf_tuple, hook), 1},
                {"ipver", offsetof(csf_tuple, ipver), 1},
                {"proto", offsetof(csf_tuple, proto), 1},
                {"pad", offsetof(csf_tuple, pad), 1},
                {"sport", offsetof(csf_tuple, sport), 2},
                {"dport", offsetof(csf_tuple, dport), 2},
                {"src", offsetof(csf_tuple, src), 16},
                {"dst", offsetof(csf_tuple, dst), 16}});
  ExpectStruct(b, "csf_pol_key", sizeof(csf_pol_key),
               {{"gen_mask", offsetof(csf_pol_key, gen_mask), 4},
                {"t", offsetof(csf_pol_key, t), sizeof(csf_tuple)}});
  ExpectStruct(b, "csf_pol_val", sizeof(csf_pol_val),
               {{"action", offsetof(csf_pol_val, action), 4},
                {"priority", offsetof(csf_pol_val, priority), 4},
                {"rule_id", offsetof(csf_pol_val, rule_id), 4},
                {"pad", offsetof(csf_pol_val, pad), 4}});
  ExpectStruct(b, "csf_pol_active", sizeof(csf_pol_active),
               {{"active", offsetof(csf_pol_active, active), 4},
                {"pad", offsetof(csf_pol_active, pad), 4}});
  bpf_object__close(obj);
}

// Every name in CSF_PINNED_MAPS is a map of the object (the loader pins them by these names, the
// control plane opens them by these names), and each is a real map, not .rodata/.bss.
TEST(BtfAbi, PinnedMapNamesAreMapsOfTheObject) {
  std::string path = std::string(CSUMFIX_BPF_OBJ_DIR) + "/csumfix.bpf.o";
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  ASSERT_NE(obj, nullptr) << "cannot open " << path;
  std::vector<std::string> names = CSF_PINNED_MAPS;
  EXPECT_EQ(names.size(), 9u);
  for (const std::string& n : names) {
    bpf_map* m = bpf_object__find_map_by_name(obj, n.c_str());
    ASSERT_NE(m, nullptr) << n << " (abi.h CSF_PINNED_MAPS) is not a map of " << path;
    EXPECT_FALSE(bpf_map__is_internal(m)) << n;
  }
  bpf_object__close(obj);
}

}  // namespace
