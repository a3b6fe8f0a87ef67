// The examples' stand-in for a mail provider: every e-mail "sent" is appended to a
// JSON-lines file, one e-mail a line, so you can watch it with `tail -f` and tests can read
// back exactly what went out.
//
//   examples::Outbox outbox("invoice_outbox.jsonl");
//   outbox.send({.to = "ada@example.com", .subject = "Invoice INV-1", .body = "...", .tag = "invoice"});
//   for (const examples::Email& e : outbox.emails()) std::cout << e.to << ": " << e.subject << "\n";
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace examples {

struct Email {
  std::string to;       // the recipient's address
  std::string subject;
  std::string body;     // plain text
  std::string tag;      // what kind of e-mail ("invoice", "reminder", "digest", ...), as mail providers tag them
};

// {"to", "subject", "body", "tag"}: an e-mail is what a step returns, so the journal shows it.
void to_json(nlohmann::json& j, const Email& e);
void from_json(const nlohmann::json& j, Email& e);

// An append-only file of e-mails. Thread-safe: the engine's workers send from many threads.
class Outbox {
 public:
  // The file at `path` is created on the first send.
  explicit Outbox(std::string path);

  // Appends `email` as one line and flushes it. Throws std::runtime_error when the file cannot
  // be written (the step that sends is then retried).
  void send(const Email& email);

  // Every e-mail sent, oldest first (none if the file does not exist).
  std::vector<Email> emails() const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mu_;  // serialises appends and reads of path_
};

}  // namespace examples
