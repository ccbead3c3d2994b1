"""Everything that talks JSON-RPC: transport, failover, retries, Multicall3, logs."""
