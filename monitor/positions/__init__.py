"""The followed positions: ONE home of "what does this account hold now".

- :mod:`monitor.positions.base`: the :class:`Follower` protocol every protocol's follower
  meets (start / step / unwind / add_accounts / reconcile / snapshots), :class:`StepReport`;
- :mod:`monitor.positions.aave_events`: the Aave V3 events that change an account's balances,
  collateral flags or eMode (3.0 and 3.5+ semantics), decoded exactly;
- :mod:`monitor.positions.state`: :class:`FollowedMarket`, the exact followed state (reserves,
  eMode categories, per account scaled balances, configuration bitmap, eMode), updated by
  :meth:`FollowedMarket.apply`, health factors recomputed locally;
- :mod:`monitor.positions.follow`: :class:`AaveFollower`, the per-block read plan (one
  ``eth_getLogs``, one batched read of reserves + touched accounts) and reconciliation.
"""

from monitor.positions.base import Difference, Follower, StepReport
from monitor.positions.follow import AaveFollower
from monitor.positions.state import AccountState, ChainAccount, FollowedMarket, scaled_delta

__all__ = [
    "AaveFollower",
    "AccountState",
    "ChainAccount",
    "Difference",
    "FollowedMarket",
    "Follower",
    "StepReport",
    "scaled_delta",
]
