"""Fine-tune a Hugging Face encoder for the two-label task."""
