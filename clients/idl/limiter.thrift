/*
 * limiter-proto proto/limiter.thrift: the Limiter service with all its methods; field ids as in
 * the public IDL. LimitContext field 1 (withdrawal context) is left out: this project only
 * sends payment-processing contexts. LimitContextType comes from limiter_config.thrift in the
 * public IDL; it is declared here to keep the subset small (same wire shape).
 */

include "base.thrift"
include "domain.thrift"
include "limiter_base.thrift"
include "limiter_payproc_context.thrift"

namespace erlang limproto.limiter

typedef string LimitChangeID
typedef string LimitID
typedef string OperationID
typedef limiter_base.AmountRange AmountRange
typedef domain.DataRevision Version

struct LimitContextTypePaymentProcessing {}
struct LimitContextTypeWithdrawalProcessing {}

union LimitContextType {
    1: LimitContextTypePaymentProcessing payment_processing
    2: LimitContextTypeWithdrawalProcessing withdrawal_processing
}

struct LimitContext {
    2: optional limiter_payproc_context.Context payment_processing
}

struct VectorClock {
    1: required base.Opaque state
}

struct LatestClock {}

union Clock {
    1: VectorClock vector
    2: LatestClock latest
}

struct Limit {
    1: required LimitID id
    2: required domain.Amount amount
    3: optional base.Timestamp creation_time
    4: optional string description
}

struct LimitChange {
    1: required LimitID id
    /* Only for the single-change methods. */
    2: optional LimitChangeID change_id
    3: optional Version version
}

struct LimitRequest {
    1: required OperationID operation_id
    2: required list<LimitChange> limit_changes
}

exception LimitNotFound {}
exception LimitChangeNotFound {}

exception ForbiddenOperationAmount {
    1: required domain.Amount amount
    2: required AmountRange allowed_range
}

exception InvalidOperationCurrency {
    1: required domain.CurrencySymbolicCode currency
    2: required domain.CurrencySymbolicCode expected_currency
}

exception OperationContextNotSupported {
    1: required LimitContextType context_type
}

exception PaymentToolNotSupported {
    1: required string payment_tool
}

service Limiter {
    Limit Get(1: LimitID id, 2: Clock clock, 3: LimitContext context)
        throws (1: LimitNotFound e1, 2: base.InvalidRequest e2)

    Limit GetVersioned(1: LimitID id, 2: Version version, 3: Clock clock, 4: LimitContext context)
        throws (1: LimitNotFound e1, 2: base.InvalidRequest e2)

    /* Hold and HoldBatch declare no exception id 2. */
    Clock Hold(1: LimitChange change, 2: Clock clock, 3: LimitContext context)
        throws (
            1: LimitNotFound e1,
            3: base.InvalidRequest e2,
            4: InvalidOperationCurrency e3,
            5: OperationContextNotSupported e4,
            6: PaymentToolNotSupported e5
        )

    Clock Commit(1: LimitChange change, 2: Clock clock, 3: LimitContext context)
        throws (
            1: LimitNotFound e1,
            2: LimitChangeNotFound e2,
            3: base.InvalidRequest e3,
            4: ForbiddenOperationAmount e4
        )

    Clock Rollback(1: LimitChange change, 2: Clock clock, 3: LimitContext context)
        throws (
            1: LimitNotFound e1,
            2: LimitChangeNotFound e2,
            3: base.InvalidRequest e3,
            4: InvalidOperationCurrency e4,
            5: OperationContextNotSupported e5,
            6: PaymentToolNotSupported e6
        )

    list<Limit> GetValues(1: LimitRequest request, 2: LimitContext context)
        throws (1: LimitNotFound e1, 2: base.InvalidRequest e2)

    list<Limit> GetBatch(1: LimitRequest request, 2: LimitContext context)
        throws (1: LimitNotFound e1, 2: base.InvalidRequest e2)

    list<Limit> HoldBatch(1: LimitRequest request, 2: LimitContext context)
        throws (
            1: LimitNotFound e1,
            3: base.InvalidRequest e2,
            4: InvalidOperationCurrency e3,
            5: OperationContextNotSupported e4,
            6: PaymentToolNotSupported e5
        )

    void CommitBatch(1: LimitRequest request, 2: LimitContext context)
        throws (
            1: LimitNotFound e1,
            2: LimitChangeNotFound e2,
            3: base.InvalidRequest e3,
            4: ForbiddenOperationAmount e4
        )

    void RollbackBatch(1: LimitRequest request, 2: LimitContext context)
        throws (
            1: LimitNotFound e1,
            2: LimitChangeNotFound e2,
            3: base.InvalidRequest e3,
            4: InvalidOperationCurrency e4,
            5: OperationContextNotSupported e5,
            6: PaymentToolNotSupported e6
        )
}
