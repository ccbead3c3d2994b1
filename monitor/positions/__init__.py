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
- :mod:`monitor.positions.morpho_events` / :mod:`~monitor.positions.morpho_follow`: Morpho
  Blue's events (shares and collateral exactly) and :class:`MorphoFollower` (per block one
  ``eth_getLogs`` + one ``aggregate3`` of market totals, prices, touched positions, the sample);
- :mod:`monitor.positions.comet_events` / :mod:`~monitor.positions.comet_follow`: Compound III's
  events (principals at the block's indices, collateral, absorbs) and :class:`CometFollower`
  (the same plan; the principal-totals check for the debts a base transfer changes unnamed);
- :mod:`monitor.positions.devnet_activity`: random Morpho / Comet activity on the devnets;
- :mod:`monitor.positions.tracker`: :class:`~monitor.positions.tracker.PositionTracker`, what the
  daemon's tick (``monitor.service.Monitor``) reads: per config market a follower started by ONE
  full read, stepped to each head, unwound on a reorg seen in the headers (imported from its
  module: it needs ``monitor.scan``, which this package does not).
"""

from monitor.positions.base import Difference, Follower, StepReport
from monitor.positions.comet_follow import CometFollower
from monitor.positions.follow import AaveFollower
from monitor.positions.morpho_follow import MorphoFollower
from monitor.positions.state import AccountState, ChainAccount, FollowedMarket, scaled_delta

__all__ = [
    "AaveFollower",
    "AccountState",
    "ChainAccount",
    "CometFollower",
    "Difference",
    "FollowedMarket",
    "Follower",
    "MorphoFollower",
    "StepReport",
    "scaled_delta",
]
