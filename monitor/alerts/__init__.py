"""Alert pipeline: rules, dedup, outbox and delivery channels (Telegram, email, console)."""
