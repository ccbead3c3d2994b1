"""Risk engine: exact health factors, liquidation prices, stress, calibration (pure numpy)."""
