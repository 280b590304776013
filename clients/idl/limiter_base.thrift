/*
 * Subset of limiter-proto proto/limiter_base.thrift; field ids as in the public IDL.
 */

include "domain.thrift"

namespace erlang limproto.base

union AmountBound {
    1: domain.Amount inclusive
    2: domain.Amount exclusive
}

struct AmountRange {
    1: required AmountBound upper
    2: required AmountBound lower
}

struct Route {
    1: optional domain.ProviderRef provider
    2: optional domain.TerminalRef terminal
}
