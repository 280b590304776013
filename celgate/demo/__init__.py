"""`make demo`: the whole system on one machine, end to end, with progress output.

Starts the sandbox peers, a worker, beat, the HTTP API and Flower as separate processes
(exactly the production commands), then drives them only through the public HTTP API and the
sandboxes' control routes: a batch of registered payments with progress bars and a summary
(final states, throughput, latency), then a registered payment, a hold with a partial
capture, a hold that is cancelled, and an order's cashback charged through transactions.
Each run writes its process logs (readable text) to a fresh `.demo/<time>/` directory.

    python -m celgate.demo [--payments 50] [--port-offset N] [--keep-running]

`stack` starts and stops the processes, `talk` holds the output and the HTTP calls,
`walkthrough` the single payments and the cashback, `batch` the batch and its summary.
"""
