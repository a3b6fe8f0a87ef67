// The users of the daily-digest example: who wants a digest, at which address, about what. Our
// stand-in for the application's users table is a JSON file, which main.cpp creates with a few
// demo users and which you may edit while the program runs (it is read at every digest):
//
//   [{"id": "u_ada", "name": "Ada", "email": "ada@example.com", "topics": ["cpp", "sqlite"]},
//    {"id": "u_linus", "name": "Linus", "email": "linus@example.com", "topics": ["git"], "digest": false}]
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace daily_digest {

struct User {
  std::string id;                   // stable and unique: it names the user's digest events
  std::string name;                 // how the e-mail greets them
  std::string email;
  std::vector<std::string> topics;  // what their digest is about
  bool digest = true;               // whether they want the daily digest; "digest" may be left out
};

// {"id", "name", "email", "topics", "digest"}. from_json requires "id" and "email" (throws
// nlohmann::json::exception without them); the others default to "", [] and true.
void to_json(nlohmann::json& j, const User& u);
void from_json(const nlohmann::json& j, User& u);

// Every user in the JSON file at `path`, in file order. Throws std::runtime_error, saying
// which, when the file cannot be read or is not an array of users.
std::vector<User> load_users(const std::string& path);

// Writes `users` to `path` as a JSON array, replacing the file. Throws std::runtime_error when
// it cannot.
void save_users(const std::string& path, const std::vector<User>& users);

// Four users to try the example with; one of them does not want the digest.
std::vector<User> demo_users();

}  // namespace daily_digest
