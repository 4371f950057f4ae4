"""What a trained model is for: sampling, scoring, inspection."""
