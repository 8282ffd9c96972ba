"""Knowledge distillation: a smaller, faster student of a fine-tuned teacher."""
