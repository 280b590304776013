/*
 * Subset of damsel proto/domain.thrift: the types the accounter and the limiter payment context
 * carry. Field ids, types and required/optional follow the damsel revision described in
 * wire-facts.md (99c91c9, after the party_ref/shop_ref rework). Optional fields this project
 * never sets are left out; decoders skip them when a real peer sends them.
 */

include "base.thrift"

namespace erlang dmsl.domain

typedef i64 DataRevision
typedef i32 ObjectID
typedef i64 Amount
typedef string CurrencySymbolicCode

struct CurrencyRef {
    1: required CurrencySymbolicCode symbolic_code
}

struct Cash {
    1: required Amount amount
    2: required CurrencyRef currency
}

struct ExchangeContext {
    1: required CurrencySymbolicCode source_currency
    2: required CurrencySymbolicCode destination_currency
    3: required base.Rational exchange_rate
}

struct PartyConfigRef {
    1: required base.ID id
}

struct ShopConfigRef {
    1: required base.ID id
}

struct ProviderRef {
    1: required ObjectID id
}

struct TerminalRef {
    1: required ObjectID id
}

/* Failures */

struct OperationTimeout {}

struct SubFailure {
    1: required string code
    2: optional SubFailure sub
}

struct Failure {
    1: required string code
    2: optional string reason
    3: optional SubFailure sub
}

union OperationFailure {
    1: OperationTimeout operation_timeout
    2: Failure failure
}

/* Invoice */

struct InvoiceUnpaid {}
struct InvoicePaid {}
struct InvoiceCancelled { 1: required string details }
struct InvoiceFulfilled { 1: required string details }

union InvoiceStatus {
    1: InvoiceUnpaid unpaid
    2: InvoicePaid paid
    3: InvoiceCancelled cancelled
    4: InvoiceFulfilled fulfilled
}

struct InvoiceDetails {
    1: required string product
    2: optional string description
}

struct Invoice {
    1: required base.ID id
    2: required DataRevision domain_revision
    3: required PartyConfigRef party_ref
    4: required ShopConfigRef shop_ref
    5: required base.Timestamp created_at
    6: required InvoiceStatus status
    7: required InvoiceDetails details
    8: required base.Timestamp due
    9: required Cash cost
}

/* Invoice payment */

struct InvoicePaymentPending {}
struct InvoicePaymentProcessed {}
struct InvoicePaymentCaptured {
    1: optional string reason
    2: optional Cash cost
}
struct InvoicePaymentCancelled { 1: optional string reason }
struct InvoicePaymentRefunded {}
struct InvoicePaymentFailed { 1: required OperationFailure failure }
struct InvoicePaymentChargedBack {}

union InvoicePaymentStatus {
    1: InvoicePaymentPending pending
    2: InvoicePaymentProcessed processed
    3: InvoicePaymentCaptured captured
    4: InvoicePaymentCancelled cancelled
    5: InvoicePaymentRefunded refunded
    6: InvoicePaymentFailed failed
    7: InvoicePaymentChargedBack charged_back
}

enum OnHoldExpiration {
    cancel = 0
    capture = 1
}

struct InvoicePaymentFlowInstant {}

struct InvoicePaymentFlowHold {
    1: required OnHoldExpiration on_hold_expiration
    2: required base.Timestamp held_until
}

union InvoicePaymentFlow {
    1: InvoicePaymentFlowInstant instant
    2: InvoicePaymentFlowHold hold
}

/* The payer: a disposable resource with a bank card (when the payment names one) or else the
   smallest valid tool, a payment terminal. */

struct ContactInfo {
    1: optional string phone_number
    2: optional string email
}

struct PaymentTerminal {}

struct PaymentSystemRef {
    1: required string id
}

struct BankCard {
    1: required string token
    3: required string bin
    4: required string last_digits
    14: optional PaymentSystemRef payment_system
}

union PaymentTool {
    2: BankCard bank_card
    3: PaymentTerminal payment_terminal
}

struct DisposablePaymentResource {
    1: required PaymentTool payment_tool
}

struct PaymentResourcePayer {
    1: required DisposablePaymentResource resource
    2: required ContactInfo contact_info
}

union Payer {
    1: PaymentResourcePayer payment_resource
}

struct InvoicePayment {
    1: required base.ID id
    2: required base.Timestamp created_at
    3: required InvoicePaymentStatus status
    5: required Cash cost
    6: optional Cash changed_cost
    7: required DataRevision domain_revision
    8: required InvoicePaymentFlow flow
    9: required Payer payer
    12: optional PartyConfigRef party_ref
    13: optional ShopConfigRef shop_ref
    15: optional string external_id
}
