// A private PostgreSQL server for the tests, started on first use and stopped when the test
// program exits: initdb in a temporary directory, a free port on 127.0.0.1, its own socket
// directory, fsync on. Nothing else on the machine is used or touched. When it cannot start,
// the test asking for it fails and says why: a PostgreSQL test never skips.
#pragma once

#include <string>

namespace durable::testing {

// Creates an empty database on the server and returns its URL
// ("postgres://durable@127.0.0.1:PORT/t_N").
std::string postgres_test_database();

}  // namespace durable::testing
