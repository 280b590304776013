/*
 * Subset of limiter-proto proto/limiter_payproc_context.thrift (payment-processing context).
 * Field ids as in the public IDL; InvoicePayment fields 2-4 (adjustment, refund, chargeback)
 * are left out because this project only sends payment operations.
 */

include "domain.thrift"
include "limiter_base.thrift"

namespace erlang limiter.context.payproc

struct OperationInvoice {}
struct OperationInvoicePayment {}
struct OperationInvoicePaymentAdjustment {}
struct OperationInvoicePaymentRefund {}
struct OperationInvoicePaymentChargeback {}

/* Id 2 is retired. */
union Operation {
    1: OperationInvoice invoice
    3: OperationInvoicePayment invoice_payment
    4: OperationInvoicePaymentAdjustment invoice_payment_adjustment
    5: OperationInvoicePaymentRefund invoice_payment_refund
    6: OperationInvoicePaymentChargeback invoice_payment_chargeback
}

struct InvoicePayment {
    1: optional domain.InvoicePayment payment
    5: optional limiter_base.Route route
}

struct Invoice {
    1: optional domain.Invoice invoice
    2: optional InvoicePayment payment
}

struct Context {
    1: optional Operation op
    2: optional Invoice invoice
}
