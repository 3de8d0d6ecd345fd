"""Built-in evaluation."""
