"""Singer tap for the Avicenna Research (formerly Ethica Data) Data Export API."""
