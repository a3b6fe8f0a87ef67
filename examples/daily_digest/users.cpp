#include "users.hpp"

#include <fstream>
#include <stdexcept>

namespace daily_digest {

void to_json(nlohmann::json& j, const User& u) {
  j = {{"id", u.id}, {"name", u.name}, {"email", u.email}, {"topics", u.topics}, {"digest", u.digest}};
}

void from_json(const nlohmann::json& j, User& u) {
  u.id = j.at("id").get<std::string>();
  u.email = j.at("email").get<std::string>();
  u.name = j.value("name", "");
  u.topics = j.value("topics", std::vector<std::string>{});
  u.digest = j.value("digest", true);
}

std::vector<User> load_users(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read the users file " + path);
  try {
    return nlohmann::json::parse(in).get<std::vector<User>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("the users file " + path + " is not a JSON array of users: " + e.what());
  }
}

void save_users(const std::string& path, const std::vector<User>& users) {
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json(users).dump(2) << '\n' << std::flush;
  if (!out) throw std::runtime_error("cannot write the users file " + path);
}

std::vector<User> demo_users() {
  return {
      {.id = "u_ada", .name = "Ada", .email = "ada@example.com", .topics = {"cpp", "sqlite"}},
      {.id = "u_grace", .name = "Grace", .email = "grace@example.com", .topics = {"compilers"}},
      {.id = "u_alan", .name = "Alan", .email = "alan@example.com", .topics = {"cryptography", "chess"}},
      {.id = "u_linus", .name = "Linus", .email = "linus@example.com", .topics = {"git"}, .digest = false},
  };
}

}  // namespace daily_digest
