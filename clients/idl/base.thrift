/*
 * Subset of damsel proto/base.thrift: only what accounter, domain and limiter use here.
 * Field ids and types follow the public IDL; the rest of the file is left out.
 */

namespace erlang dmsl.base

typedef string ID

/** RFC 3339 instant in UTC, e.g. `2016-03-22T06:12:27Z`. */
typedef string Timestamp

typedef binary Opaque

struct Rational {
    1: required i64 p
    2: required i64 q
}

/** Business-logic rejection of the input, with human-readable reasons. */
exception InvalidRequest {
    1: required list<string> errors
}
