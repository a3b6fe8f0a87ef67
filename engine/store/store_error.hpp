// StoreError: a store operation failed. Its kind says what the caller should do, whatever the
// database behind the store:
//
//   transient  nothing was written, and the same operation may succeed if tried again: the
//              database was busy past every retry, the disk was full, the connection was lost
//              before the transaction committed. The HTTP API answers 503 with Retry-After.
//   conflict   the store refused the operation as asked (a key already taken, a constraint,
//              a statement it cannot run): nothing changed, and trying again does not help.
//   fatal      what was written may have been lost or damaged (a failed fsync, any I/O error,
//              corruption, an error nobody classified). The store stops writing until the
//              process restarts (fail-stop, Store::failure()).
#pragma once

#include <string>

#include <durable/errors.hpp>

namespace durable {

class StoreError : public Error {
 public:
  enum class Kind { transient, conflict, fatal };

  // `code`: the backend's own code for the failure (SQLite's extended result code), for
  // logs and for the backend itself; 0 when there is none.
  StoreError(Kind kind, const std::string& message, int code = 0) : Error(message), kind_(kind), code_(code) {}

  Kind kind() const { return kind_; }
  bool is_transient() const { return kind_ == Kind::transient; }
  bool is_conflict() const { return kind_ == Kind::conflict; }
  bool is_fatal() const { return kind_ == Kind::fatal; }
  int code() const { return code_; }

  // A copy that shares nothing with this one. std::runtime_error's copy constructor shares
  // one reference-counted message between the copies, and libstdc++ counts that reference
  // without telling ThreadSanitizer: an error handed to another thread is copied with this.
  StoreError unshared_copy() const { return StoreError(kind_, std::string(what()), code_); }

 private:
  Kind kind_;
  int code_;
};

}  // namespace durable
