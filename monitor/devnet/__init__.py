"""The local devnet: anvil from npm running the real Aave V3 contracts from npm artifacts."""
