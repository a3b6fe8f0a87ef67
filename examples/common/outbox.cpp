#include "outbox.hpp"

#include <fstream>
#include <stdexcept>

namespace examples {

void to_json(nlohmann::json& j, const Email& e) {
  j = {{"to", e.to}, {"subject", e.subject}, {"body", e.body}, {"tag", e.tag}};
}

void from_json(const nlohmann::json& j, Email& e) {
  e.to = j.at("to").get<std::string>();
  e.subject = j.at("subject").get<std::string>();
  e.body = j.at("body").get<std::string>();
  e.tag = j.value("tag", "");
}

Outbox::Outbox(std::string path) : path_(std::move(path)) {}

void Outbox::send(const Email& email) {
  std::lock_guard lock(mu_);
  std::ofstream out(path_, std::ios::app);
  out << nlohmann::json(email).dump() << '\n' << std::flush;
  if (!out) throw std::runtime_error("cannot append to " + path_);
}

std::vector<Email> Outbox::emails() const {
  std::lock_guard lock(mu_);
  std::vector<Email> out;
  std::ifstream in(path_);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<Email>());
  }
  return out;
}

}  // namespace examples
