#include "daemon/webconfig.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

namespace csumfix::daemon {
namespace {

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("--web.config.file ", path, ": ", what));
}

// The map's keys must be among `known`; keys of the toolkit's format csumfix does not implement
// are named as such.
absl::Status OnlyKnownKeys(const std::string& path, const YAML::Node& map, const char* where,
                           std::initializer_list<const char*> known,
                           std::initializer_list<const char*> unsupported) {
  if (!map.IsMap()) return Bad(path, absl::StrCat(where, " must be a mapping"));
  for (const auto& kv : map) {
    const std::string k = kv.first.as<std::string>();
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (ok) continue;
    for (const char* n : unsupported)
      if (k == n)
        return Bad(path, absl::StrCat(where, k, ": valid in the exporter-toolkit format but not "
                                                "supported by csumfix; remove it"));
    return Bad(path, absl::StrCat("unknown key ", where, k, " (known: ",
                                  absl::StrJoin(known, ", "), ")"));
  }
  return absl::OkStatus();
}

absl::Status Readable(const std::string& path, const char* key, const std::string& file) {
  if (access(file.c_str(), R_OK) != 0)
    return Bad(path, absl::StrCat(key, " ", file, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

bool IsBcrypt(const std::string& h) {
  return h.size() == 60 && (absl::StartsWith(h, "$2a$") || absl::StartsWith(h, "$2b$") ||
                            absl::StartsWith(h, "$2y$"));
}

}  // namespace

absl::StatusOr<WebConfig> LoadWebConfig(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Bad(path, absl::StrCat("cannot read it: ", std::strerror(errno)));
  } catch (const YAML::Exception& e) {
    return Bad(path, absl::StrCat("YAML: line ", e.mark.line + 1, ", column ", e.mark.column + 1,
                                  ": ", e.msg));
  }
  WebConfig w;
  if (root.IsNull()) return w;  // an empty file: plain HTTP, no auth (as the toolkit)
  try {
    if (auto s = OnlyKnownKeys(path, root, "", {"tls_server_config", "basic_auth_users"},
                               {"http_server_config", "rate_limit"});
        !s.ok())
      return s;
    if (const YAML::Node tls = root["tls_server_config"]; tls && !tls.IsNull()) {
      if (auto s = OnlyKnownKeys(path, tls, "tls_server_config.",
                                 {"cert_file", "key_file", "client_ca_file", "client_auth_type",
                                  "min_version"},
                                 {"cert", "key", "client_ca", "client_allowed_sans", "max_version",
                                  "cipher_suites", "curve_preferences",
                                  "prefer_server_cipher_suites"});
          !s.ok())
        return s;
      if (tls["cert_file"]) w.cert_file = tls["cert_file"].as<std::string>();
      if (tls["key_file"]) w.key_file = tls["key_file"].as<std::string>();
      if (w.cert_file.empty() != w.key_file.empty())
        return Bad(path, "tls_server_config needs both cert_file and key_file");
      if (w.cert_file.empty())
        return Bad(path, "tls_server_config without cert_file and key_file; give both, or "
                         "remove tls_server_config for plain HTTP");
      if (auto s = Readable(path, "cert_file", w.cert_file); !s.ok()) return s;
      if (auto s = Readable(path, "key_file", w.key_file); !s.ok()) return s;
      if (tls["client_ca_file"]) {
        w.client_ca_file = tls["client_ca_file"].as<std::string>();
        if (auto s = Readable(path, "client_ca_file", w.client_ca_file); !s.ok()) return s;
      }
      const std::string auth =
          tls["client_auth_type"] ? tls["client_auth_type"].as<std::string>() : "NoClientCert";
      if (auth == "RequireAndVerifyClientCert") {
        if (w.client_ca_file.empty())
          return Bad(path, "client_auth_type RequireAndVerifyClientCert needs client_ca_file");
        w.require_client_cert = true;
      } else if (auth != "NoClientCert") {
        return Bad(path, absl::StrCat("client_auth_type ", auth,
                                      ": csumfix supports NoClientCert and "
                                      "RequireAndVerifyClientCert"));
      } else if (!w.client_ca_file.empty()) {
        return Bad(path, "client_ca_file is given but client_auth_type is NoClientCert; set "
                         "client_auth_type: RequireAndVerifyClientCert");
      }
      const std::string min = tls["min_version"] ? tls["min_version"].as<std::string>() : "TLS12";
      if (min == "TLS10") w.min_version = TLS1_VERSION;
      else if (min == "TLS11") w.min_version = TLS1_1_VERSION;
      else if (min == "TLS12") w.min_version = TLS1_2_VERSION;
      else if (min == "TLS13") w.min_version = TLS1_3_VERSION;
      else return Bad(path, absl::StrCat("min_version ", min, ": use TLS10, TLS11, TLS12 or TLS13"));
    }
    if (const YAML::Node users = root["basic_auth_users"]; users && !users.IsNull()) {
      if (!users.IsMap()) return Bad(path, "basic_auth_users must map user names to bcrypt hashes");
      for (const auto& kv : users) {
        const std::string user = kv.first.as<std::string>(), hash = kv.second.as<std::string>();
        if (user.empty() || user.find(':') != std::string::npos)
          return Bad(path, absl::StrCat("basic_auth_users: \"", user,
                                        "\" is not a user name (non-empty, no colon)"));
        if (!IsBcrypt(hash))
          return Bad(path, absl::StrCat("basic_auth_users.", user,
                                        ": not a bcrypt hash ($2y$..., 60 characters); make one "
                                        "with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"));
        w.users[user] = hash;
      }
    }
  } catch (const YAML::Exception& e) {
    return Bad(path, absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
  return w;
}

size_t AuthCache::size() {
  std::lock_guard<std::mutex> l(mu_);
  return ok_.size();
}

bool AuthCache::Has(const std::string& digest) {
  std::lock_guard<std::mutex> l(mu_);
  return ok_.count(digest) != 0;
}

void AuthCache::Add(const std::string& digest) {
  std::lock_guard<std::mutex> l(mu_);
  if (ok_.size() >= 64) ok_.clear();
  ok_.insert(digest);
}

namespace {

std::string Sha256(const std::string& s) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return std::string(reinterpret_cast<const char*>(md), sizeof(md));
}

}  // namespace

bool CheckBasicAuth(const std::map<std::string, std::string>& users, absl::string_view header,
                    AuthCache* cache) {
  if (users.empty()) return false;
  if (!absl::ConsumePrefix(&header, "Basic ")) return false;
  std::string plain;
  if (!absl::Base64Unescape(header, &plain)) return false;
  const size_t colon = plain.find(':');
  if (colon == std::string::npos) return false;
  auto known = users.find(plain.substr(0, colon));
  // Keyed by the stored hash too: a user whose hash changed is verified again.
  const std::string digest =
      cache != nullptr && known != users.end() ? Sha256(plain + '\n' + known->second) : "";
  if (!digest.empty() && cache->Has(digest)) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return true;
  }
  const std::string user = plain.substr(0, colon), password = plain.substr(colon + 1);
  auto it = users.find(user);
  // An unknown user still costs one hash, so timing does not tell which users exist.
  const std::string& hash = it != users.end() ? it->second : users.begin()->second;
  auto data = std::make_unique<crypt_data>();
  const char* got = crypt_r(password.c_str(), hash.c_str(), data.get());
  const bool match = got != nullptr && std::strlen(got) == hash.size() &&
                     CRYPTO_memcmp(got, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  OPENSSL_cleanse(plain.data(), plain.size());
  const bool ok = match && it != users.end();
  if (ok && !digest.empty()) cache->Add(digest);
  return ok;
}

}  // namespace csumfix::daemon
