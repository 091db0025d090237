// A gtest fixture whose suite loads the csumfix BPF programs once (BPF_PROG_TEST_RUN suites).
#ifndef CSUMFIX_TESTS_BPF_PROGRAMS_FIXTURE_H_
#define CSUMFIX_TESTS_BPF_PROGRAMS_FIXTURE_H_

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "bpf/loader.h"

namespace csumfix::testing {

// The object the BPF suites test: CSUMFIX_TEST_BPF_OBJECT=main|compat (ctest runs the suites
// once per object: `bpf` and `bpf_compat`); unset: what this kernel gets (auto).
inline bpf::Object TestObject() {
  const char* e = std::getenv("CSUMFIX_TEST_BPF_OBJECT");
  const std::string v = e ? e : "";
  return v == "main" ? bpf::Object::kMain : v == "compat" ? bpf::Object::kCompat
                                                          : bpf::Object::kAuto;
}

class LoadedPrograms : public ::testing::Test {
 protected:
  // Each suite deriving from this loads its own copy (gtest runs suites one after another).
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    bpf::LoadOptions lo;
    lo.object = TestObject();
    auto p = bpf::Programs::Load(lo);
    if (!p.ok()) {
      load_error_ = new std::string(p.status().ToString());
      return;
    }
    progs_ = p->release();
  }
  static void TearDownTestSuite() {
    delete progs_;
    progs_ = nullptr;
    delete load_error_;
    load_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0) << "BPF_PROG_TEST_RUN needs root (CAP_BPF, CAP_NET_ADMIN): run it "
                               "through scripts/test.sh as root";
    ASSERT_NE(progs_, nullptr) << "loading the BPF programs failed: "
                               << (load_error_ ? *load_error_ : "?");
  }

  static inline bpf::Programs* progs_ = nullptr;
  static inline std::string* load_error_ = nullptr;
};

}  // namespace csumfix::testing

#endif  // CSUMFIX_TESTS_BPF_PROGRAMS_FIXTURE_H_
