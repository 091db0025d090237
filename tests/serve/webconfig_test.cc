// --web.config.file (daemon/webconfig.h): the exporter-toolkit format is read, mistakes are named,
// and basic auth accepts exactly the right user and password.
#include "daemon/webconfig.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace csumfix::daemon {
namespace {

// bcrypt of "s3cret", cost 5, salt "abcdefghijklmnopqrstuu" (any bcrypt tool gives this hash).
constexpr char kHash[] = "$2y$05$abcdefghijklmnopqrstuuLK7U1u6pVRmL7L1BBM2aS35PSZnDXlK";

class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/csf-webcfg-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/c.pem") << "x";
    std::ofstream(dir_ + "/k.pem") << "x";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string Write(const std::string& text) {
    const std::string p = dir_ + "/web.yml";
    std::ofstream(p) << text;
    return p;
  }
  std::string dir_;
};

std::string Basic(const std::string& user_pw) { return "Basic " + absl::Base64Escape(user_pw); }

TEST_F(WebConfigTest, ReadsTlsAndUsers) {
  auto w = LoadWebConfig(Write("tls_server_config:\n  cert_file: " + dir_ + "/c.pem\n  key_file: " +
                               dir_ + "/k.pem\n  min_version: TLS13\nbasic_auth_users:\n  prom: '" +
                               kHash + "'\n"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->tls());
  EXPECT_EQ(w->key_file, dir_ + "/k.pem");
  EXPECT_EQ(w->users.at("prom"), kHash);
  EXPECT_FALSE(w->require_client_cert);
}

TEST_F(WebConfigTest, AnEmptyFileIsPlainHttpWithoutAuth) {
  auto w = LoadWebConfig(Write("# nothing\n"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_FALSE(w->tls());
  EXPECT_TRUE(w->users.empty());
}

TEST_F(WebConfigTest, MistakesAreNamed) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"tls_server_config:\n  cert_file: " + dir_ + "/c.pem\n", "needs both cert_file and key_file"},
      {"tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: " + dir_ + "/k.pem\n",
       "cert_file /nonexistent.pem: No such file or directory"},
      {"tls_server_config:\n  cert_file: " + dir_ + "/c.pem\n  key_file: " + dir_ +
           "/k.pem\n  min_version: SSL3\n",
       "min_version SSL3"},
      {"tls_server_config:\n  cert_file: " + dir_ + "/c.pem\n  key_file: " + dir_ +
           "/k.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
       "needs client_ca_file"},
      {"tls_server_config:\n  cert_file: " + dir_ + "/c.pem\n  key_file: " + dir_ +
           "/k.pem\n  cipher_suites: [x]\n",
       "tls_server_config.cipher_suites: valid in the exporter-toolkit format but not supported"},
      {"http_server_config:\n  http2: false\n", "http_server_config: valid in the exporter-toolkit"},
      {"basic_auth_user:\n  a: b\n", "unknown key basic_auth_user"},
      {"basic_auth_users:\n  prom: s3cret\n", "basic_auth_users.prom: not a bcrypt hash"},
      {"basic_auth_users: [a]\n", "basic_auth_users must map"},
      {"tls_server_config: {cert_file: [\n", "YAML: line"},
  };
  for (const Case& c : cases) {
    auto w = LoadWebConfig(Write(c.text));
    ASSERT_FALSE(w.ok()) << c.text;
    EXPECT_NE(std::string(w.status().message()).find(c.want), std::string::npos)
        << c.text << "\n" << w.status();
    EXPECT_NE(std::string(w.status().message()).find("--web.config.file " + dir_ + "/web.yml"),
              std::string::npos)
        << w.status();
  }
}

TEST(BasicAuth, OnlyTheRightUserAndPassword) {
  const std::map<std::string, std::string> users = {{"prom", kHash}};
  EXPECT_TRUE(CheckBasicAuth(users, Basic("prom:s3cret")));
  EXPECT_FALSE(CheckBasicAuth(users, Basic("prom:s3cre")));
  EXPECT_FALSE(CheckBasicAuth(users, Basic("prom:s3cret ")));
  EXPECT_FALSE(CheckBasicAuth(users, Basic("other:s3cret")));
  EXPECT_FALSE(CheckBasicAuth(users, Basic("proms3cret")));
  EXPECT_FALSE(CheckBasicAuth(users, "Bearer x"));
  EXPECT_FALSE(CheckBasicAuth(users, ""));
  EXPECT_FALSE(CheckBasicAuth(users, "Basic !!!"));
  EXPECT_FALSE(CheckBasicAuth({}, Basic("prom:s3cret")));
}

// With a cache (serve's), verified credentials are remembered and failures are not; a user
// whose stored hash changed is verified again, so the old password does not outlive it.
TEST(BasicAuth, TheCacheKeepsOnlyWhatWasVerified) {
  const std::map<std::string, std::string> users = {{"prom", kHash}};
  AuthCache cache;
  EXPECT_FALSE(CheckBasicAuth(users, Basic("prom:wrong"), &cache));
  EXPECT_FALSE(CheckBasicAuth(users, Basic("other:s3cret"), &cache));
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(CheckBasicAuth(users, Basic("prom:s3cret"), &cache));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(CheckBasicAuth(users, Basic("prom:s3cret"), &cache));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_FALSE(CheckBasicAuth(users, Basic("prom:s3cre"), &cache));
  // Another hash for prom (its password changed): the cached entry no longer matches.
  const std::map<std::string, std::string> changed = {
      {"prom", "$2y$10$abcdefghijklmnopqrstuuQm9oZ1r0yB0nHk8l0vJ0y2JrM3t5k2W"}};
  EXPECT_FALSE(CheckBasicAuth(changed, Basic("prom:s3cret"), &cache));
}

}  // namespace
}  // namespace csumfix::daemon
