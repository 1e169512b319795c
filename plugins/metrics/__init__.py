"""The built-in accuracy metrics (top1, top5, agreement, cosine), registered through the entry point like a plugin's."""
