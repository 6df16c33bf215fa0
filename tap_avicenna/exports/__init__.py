"""The export engine: plan exports, run them at Avicenna, hand their files over."""
