"""liqmon: a liquidation-threshold monitor for lending protocols on EVM chains."""

__version__ = "0.1.0"
