"""What the operator saw: plain view types and the pure JSON -> view parsing."""
