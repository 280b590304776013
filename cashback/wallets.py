"""Which wallet an order's cashback goes to.

The wallet given at register wins. Otherwise the user's current wallet in the order currency,
as the wallet service lists it; a legacy wallet (`z...`) does not count, so a user with none
or only a legacy one gets a wallet created. The wallet found is kept on the order so every
later version of the order charges the same one.
"""

from __future__ import annotations

import logging

from cashback import orders, peers
from cashback.orders import Order
from workers.db import Tx

log = logging.getLogger(__name__)


def wallet_for(tx: Tx, order: Order, user_ip: str) -> str:
    if order.wallet_id:
        return order.wallet_id
    client = peers.wallet()
    current = [w for w in client.balances(order.yandex_uid, order.currency)
               if w.currency == order.currency and not w.legacy]
    if current:
        wallet_id = current[0].wallet_id
    else:
        wallet_id = client.create(order.yandex_uid, order.currency, user_ip)
        log.info("wallet created for the order's user", extra={"wallet_id": wallet_id})
    orders.remember_wallet(tx, order, wallet_id)
    return wallet_id
