// serve's --web.config.file: TLS and basic authentication for the HTTP endpoint, in the file
// format of the Prometheus exporter-toolkit (the one node_exporter and most exporters read), so
// an operator's existing file works unchanged:
//
//   tls_server_config:
//     cert_file: /etc/csumfix/tls.crt
//     key_file: /etc/csumfix/tls.key
//     client_auth_type: RequireAndVerifyClientCert   # optional; with client_ca_file
//     client_ca_file: /etc/csumfix/ca.crt
//     min_version: TLS12                             # TLS10..TLS13 (default TLS12)
//   basic_auth_users:
//     prometheus: $2y$10$...                          # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')
//
// Keys the toolkit has but csumfix does not implement (cipher_suites, http_server_config, ...)
// are refused by name rather than silently ignored. TLS uses cpp-httplib's OpenSSL server;
// passwords are checked with the system's crypt_r (libxcrypt, which knows bcrypt).
#ifndef CSUMFIX_USERSPACE_DAEMON_WEBCONFIG_H_
#define CSUMFIX_USERSPACE_DAEMON_WEBCONFIG_H_

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace csumfix::daemon {

struct WebConfig {
  std::string cert_file, key_file;  // both empty: plain HTTP
  std::string client_ca_file;       // verify clients against this CA ("" none)
  bool require_client_cert = false;
  int min_version = 0;              // OpenSSL's TLS1_2_VERSION etc. (0: TLS 1.2)
  std::map<std::string, std::string> users;  // basic auth: user -> bcrypt hash (empty: none)

  bool tls() const { return !cert_file.empty(); }
};

// Reads and checks `path`: YAML syntax, known keys only, cert/key together and readable, every
// user's hash a bcrypt hash. Errors name the file, the key and what to write instead.
absl::StatusOr<WebConfig> LoadWebConfig(const std::string& path);

// Credentials already verified, kept as SHA-256 digests of "user:password" and the user's stored
// hash (never the password),
// so that a scraper sending the same header every few seconds costs one SHA-256 instead of one
// bcrypt (as exporter-toolkit caches). Bounded: emptied when it reaches 64 entries. Thread-safe.
class AuthCache {
 public:
  bool Has(const std::string& digest);
  void Add(const std::string& digest);
  size_t size();

 private:
  std::mutex mu_;
  std::set<std::string> ok_;
};

// Whether an Authorization header value ("Basic base64(user:password)") names a user of `users`
// with the right password. Compared in constant time once hashed. With `cache`, a header that
// was verified before is accepted without bcrypt.
bool CheckBasicAuth(const std::map<std::string, std::string>& users, absl::string_view header,
                    AuthCache* cache = nullptr);

}  // namespace csumfix::daemon

#endif  // CSUMFIX_USERSPACE_DAEMON_WEBCONFIG_H_
