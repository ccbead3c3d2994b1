"""The history store: one class composed of one mixin per group of tables."""

from __future__ import annotations

from monitor.store.accounts import AccountsMixin
from monitor.store.alert_log import AlertLogMixin
from monitor.store.bot import BotMixin
from monitor.store.desk import DeskMixin
from monitor.store.lease import LeaseMixin
from monitor.store.mirror import MirrorMixin
from monitor.store.queries import QueriesMixin
from monitor.store.runs import RiskRunsMixin
from monitor.store.silences import SilencesMixin


class Store(
    MirrorMixin,
    QueriesMixin,
    AccountsMixin,
    LeaseMixin,
    AlertLogMixin,
    RiskRunsMixin,
    SilencesMixin,
    BotMixin,
    DeskMixin,
):
    """The history database. Open once per process; every public write is atomic."""
